import t from 'tap';
import {
  EFAULT,
  EINVAL,
  EMSGSIZE,
  type Mem,
  gather,
  readIovecs,
  readLen,
  readMsghdr,
  readSockaddr,
  scatter,
  writeMsghdrOut,
  writeSockaddr,
} from '../../../sentry/syscalls/msg.ts';

/** A program's memory: one mapped range [base, base + size); everything else faults, as /proc/<pid>/mem does. */
class FakeMem implements Mem {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  constructor(readonly base: number, size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  private ok(addr: number, len: number): boolean {
    return addr >= this.base && addr + len <= this.base + this.bytes.length;
  }
  read(addr: number, len: number): Uint8Array | null {
    if (len === 0) return new Uint8Array(0);
    return this.ok(addr, len) ? this.bytes.slice(addr - this.base, addr - this.base + len) : null;
  }
  write(addr: number, data: Uint8Array): boolean {
    if (!this.ok(addr, data.length)) return false;
    this.bytes.set(data, addr - this.base);
    return true;
  }
  u32(addr: number, v: number) {
    this.view.setUint32(addr - this.base, v >>> 0, true);
  }
  u64(addr: number, v: number | bigint) {
    this.view.setBigUint64(addr - this.base, BigInt(v), true);
  }
}

const BASE = 0x10000;

t.test('socklen_t: value, EFAULT for NULL or unmapped, EINVAL when negative', async (t) => {
  const m = new FakeMem(BASE, 64);
  m.u32(BASE, 16);
  t.equal(readLen(m, BASE), 16);
  t.equal(readLen(m, 0), -EFAULT);
  t.equal(readLen(m, BASE + 62), -EFAULT, 'straddles the end of the mapping');
  m.u32(BASE + 4, -1);
  t.equal(readLen(m, BASE + 4), -EINVAL);
});

t.test('sockaddr in: EINVAL beyond 128 bytes or negative, EFAULT unreadable, empty for 0', async (t) => {
  const m = new FakeMem(BASE, 256);
  m.bytes.set([2, 0, 0, 80, 198, 18, 0, 2], 0);
  t.same([...(readSockaddr(m, BASE, 8) as Uint8Array)], [2, 0, 0, 80, 198, 18, 0, 2]);
  t.equal(readSockaddr(m, BASE, 129), -EINVAL);
  t.equal(readSockaddr(m, BASE, -1), -EINVAL);
  t.equal(readSockaddr(m, 0x99999, 16), -EFAULT);
  t.equal((readSockaddr(m, 0, 0) as Uint8Array).length, 0);
});

t.test('sockaddr out: truncated to the room given, full length written back; EFAULT for a bad buffer', async (t) => {
  const m = new FakeMem(BASE, 64);
  const sa = new Uint8Array(16).map((_, i) => i + 1);
  m.u32(BASE + 32, 4);
  t.equal(writeSockaddr(m, BASE, BASE + 32, sa), 0);
  t.same([...m.bytes.subarray(0, 6)], [1, 2, 3, 4, 0, 0], 'only 4 bytes written');
  t.equal(m.view.getUint32(32, true), 16, 'the full length comes back');
  m.u32(BASE + 32, 16);
  t.equal(writeSockaddr(m, 0x5000, BASE + 32, sa), -EFAULT);
  t.equal(writeSockaddr(m, BASE, 0x5000, sa), -EFAULT);
  m.u32(BASE + 32, 0x80000000);
  t.equal(writeSockaddr(m, BASE, BASE + 32, sa), -EINVAL);
});

t.test('iovecs: read, EINVAL beyond UIO_MAXIOV or a negative length, EFAULT for the array', async (t) => {
  const m = new FakeMem(BASE, 4096);
  m.u64(BASE, BASE + 1024);
  m.u64(BASE + 8, 3);
  m.u64(BASE + 16, BASE + 2048);
  m.u64(BASE + 24, 5);
  t.same(readIovecs(m, BASE, 2), [{ base: BASE + 1024, len: 3 }, { base: BASE + 2048, len: 5 }]);
  t.equal(readIovecs(m, BASE, 1025), -EINVAL);
  t.equal(readIovecs(m, 0x100, 1), -EFAULT);
  m.u64(BASE + 24, 0x8000000000000000n);
  t.equal(readIovecs(m, BASE, 2), -EINVAL);
});

t.test('gather/scatter across iovecs; EFAULT when a base is unmapped', async (t) => {
  const m = new FakeMem(BASE, 4096);
  m.bytes.set([1, 2, 3], 1024);
  m.bytes.set([4, 5, 6, 7, 8], 2048);
  const iov = [{ base: BASE + 1024, len: 3 }, { base: BASE + 2048, len: 5 }];
  t.same([...(gather(m, iov) as Uint8Array)], [1, 2, 3, 4, 5, 6, 7, 8]);
  t.ok(scatter(m, iov, new Uint8Array([9, 9, 9, 9])));
  t.same([...m.bytes.subarray(1024, 1027), ...m.bytes.subarray(2048, 2050)], [9, 9, 9, 9, 5], "3 bytes in the first, 1 in the second");
  t.equal(gather(m, [{ base: 0x50, len: 1 }]), -EFAULT);
  t.notOk(scatter(m, [{ base: 0x50, len: 4 }], new Uint8Array(2)));
});

t.test('msghdr: fields, namelen clamped to 128, negative namelen EINVAL, iovlen > 1024 EMSGSIZE, EFAULT', async (t) => {
  const m = new FakeMem(BASE, 4096);
  const h = BASE + 512;
  m.u64(h, BASE + 100); // msg_name
  m.u32(h + 8, 16); // msg_namelen
  m.u64(h + 16, BASE); // msg_iov
  m.u64(h + 24, 1); // msg_iovlen
  m.u64(h + 32, 0); // msg_control
  m.u64(h + 40, 0);
  m.u32(h + 48, 0);
  m.u64(BASE, BASE + 1024);
  m.u64(BASE + 8, 10);
  t.same(readMsghdr(m, h), { name: BASE + 100, namelen: 16, iov: [{ base: BASE + 1024, len: 10 }], control: 0, controllen: 0, flags: 0 });
  m.u32(h + 8, 300);
  t.equal((readMsghdr(m, h) as { namelen: number }).namelen, 128);
  m.u32(h + 8, -5);
  t.equal(readMsghdr(m, h), -EINVAL);
  m.u32(h + 8, 16);
  m.u64(h + 24, 1025);
  t.equal(readMsghdr(m, h), -EMSGSIZE);
  m.u64(h + 24, 1);
  m.u64(h + 16, 0x40);
  t.equal(readMsghdr(m, h), -EFAULT, 'the iovec array is unmapped');
  t.equal(readMsghdr(m, BASE + 4090), -EFAULT, 'the msghdr itself straddles the end');
});

t.test('after a receive: msg_namelen, msg_controllen 0 (no ancillary data), msg_flags', async (t) => {
  const m = new FakeMem(BASE, 4096);
  const h = BASE + 512;
  m.u32(h + 8, 128);
  m.u64(h + 40, 64); // the program's control buffer size
  t.ok(writeMsghdrOut(m, h, 16, 0x20));
  t.equal(m.view.getUint32(520, true), 16);
  t.equal(m.view.getBigUint64(552, true), 0n, 'controllen: nothing written there');
  t.equal(m.view.getUint32(560, true), 0x20);
  t.notOk(writeMsghdrOut(m, 0x40, 16, 0), 'EFAULT');
});
