import t from 'tap';
import { C, SysError, check, errnoName, ifreq, mapMemory, sockaddrIn, sys } from '../../lib/libc.ts';
import { MmsgBatch } from '../../lib/mmsg.ts';

t.test('failed call → SysError with errno, name, syscall and context', (t) => {
  const ret = sys.close(-1);
  t.equal(ret, -1);
  const e = t.throws(() => check(sys.open('/nonexistent/tsv-lib', C.O_RDONLY, 0), 'open', '/nonexistent/tsv-lib')) as SysError;
  t.ok(e instanceof SysError);
  t.equal(e.errno, C.ENOENT);
  t.equal(e.code, 'ENOENT');
  t.equal(e.syscall, 'open');
  t.equal(e.message, 'open (/nonexistent/tsv-lib): ENOENT (No such file or directory)');
  t.equal(check(0, 'x'), 0, 'non-negative passes through');
  t.end();
});

t.test('errno values → names', (t) => {
  t.equal(errnoName(C.EAGAIN), 'EAGAIN');
  t.equal(errnoName(C.ENOBUFS), 'ENOBUFS');
  t.equal(errnoName(99999), 'errno 99999');
  t.end();
});

t.test('ifreq and sockaddr_in → byte-exact layouts', (t) => {
  const r = ifreq('veth-a');
  t.equal(r.length, 40);
  t.same([...r.subarray(0, 8)], [0x76, 0x65, 0x74, 0x68, 0x2d, 0x61, 0, 0]);
  t.throws(() => ifreq('a-name-of-16-chr'), /1\.\.15 bytes/);
  t.same([...sockaddrIn(new Uint8Array([198, 18, 0, 1]), 0x1234)], [2, 0, 0x12, 0x34, 198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  t.end();
});

t.test('mapMemory → writable native bytes, free idempotent', (t) => {
  const m = mapMemory(8192);
  t.equal(m.bytes.length, 8192);
  m.bytes[8191] = 7;
  t.equal(m.view.getUint8(8191), 7);
  t.ok(m.address > 0n);
  m.free();
  m.free();
  t.end();
});

t.test('MmsgBatch over a unix datagram pair → one sendmmsg, one recvmmsg, lengths and bytes kept', (t) => {
  const sv = [0, 0];
  check(sys.socketpair(C.AF_UNIX, C.SOCK_DGRAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0, sv), 'socketpair');
  t.teardown(() => {
    sys.close(sv[0]!);
    sys.close(sv[1]!);
  });
  const out = new MmsgBatch(8, 100);
  const inb = new MmsgBatch(16, 100);
  t.teardown(() => {
    out.free();
    inb.free();
  });
  for (let i = 0; i < 8; i++) {
    out.slot(i).fill(i + 1, 0, 10 + i);
    out.setLength(i, 10 + i);
  }
  out.move(7, 6); // compaction keeps bytes and length
  t.equal(out.send(sv[0]!, 0, 7), 7);
  t.equal(inb.recv(sv[1]!, C.MSG_DONTWAIT), 7);
  const got = Array.from({ length: 7 }, (_, i) => [inb.receivedLength(i), inb.slot(i)[0], inb.slot(i)[inb.receivedLength(i) - 1]]);
  t.same(got, [[10, 1, 1], [11, 2, 2], [12, 3, 3], [13, 4, 4], [14, 5, 5], [15, 6, 6], [17, 8, 8]]);
  t.equal(inb.recv(sv[1]!, C.MSG_DONTWAIT), -1, 'empty → -1 (EAGAIN)');
  t.end();
});
