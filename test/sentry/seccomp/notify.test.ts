import t from 'tap';
import {
  NOTIF_ADDFD_SIZE,
  NOTIF_RESP_SIZE,
  NOTIF_SIZE,
  SECCOMP_IOCTL_NOTIF,
  decodeAddfd,
  decodeNotif,
  decodeResp,
  encodeAddfd,
  encodeNotif,
  encodeResp,
} from '../../../sentry/seccomp/notify.ts';

// _IOC(dir, type, nr, size) of asm-generic/ioctl.h.
const IOC = (dir: number, nr: number, size: number) => ((dir << 30) | (size << 16) | (0x21 /* '!' */ << 8) | nr) >>> 0;

t.test('ioctl numbers = _IOWR/_IOW of linux/seccomp.h', (t) => {
  t.equal(SECCOMP_IOCTL_NOTIF.RECV, IOC(3, 0, NOTIF_SIZE));
  t.equal(SECCOMP_IOCTL_NOTIF.SEND, IOC(3, 1, NOTIF_RESP_SIZE));
  t.equal(SECCOMP_IOCTL_NOTIF.ID_VALID, IOC(1, 2, 8));
  t.equal(SECCOMP_IOCTL_NOTIF.ADDFD, IOC(1, 3, NOTIF_ADDFD_SIZE));
  t.equal(SECCOMP_IOCTL_NOTIF.SET_FLAGS, IOC(1, 4, 8));
  t.end();
});

t.test('seccomp_notif: byte offsets and round trip', (t) => {
  const n = {
    id: 0x0102030405060708n,
    tid: 4242,
    nr: 41,
    arch: 0xc000003e,
    ip: 0x7f0011223344n,
    args: [2n, 0x80801n, 0n, 0xffffffffffffffffn, 0x7ffd12345678n, 6n],
  };
  const b = encodeNotif(n);
  t.equal(b.length, 80);
  t.same([...b.subarray(0, 8)], [8, 7, 6, 5, 4, 3, 2, 1], 'id @0');
  t.same([...b.subarray(8, 12)], [0x92, 0x10, 0, 0], 'pid @8');
  t.same([...b.subarray(16, 20)], [41, 0, 0, 0], 'nr @16');
  t.same([...b.subarray(20, 24)], [0x3e, 0, 0, 0xc0], 'arch @20');
  t.same([...b.subarray(40, 48)], [1, 8, 8, 0, 0, 0, 0, 0], 'args[1] @40');
  t.same(decodeNotif(b), n);
  const neg = decodeNotif(encodeNotif({ ...n, nr: -1 }));
  t.equal(neg.nr, -1, 'nr is signed');
  t.throws(() => decodeNotif(new Uint8Array(79)), /80 bytes/);
  t.end();
});

t.test('seccomp_notif_resp and seccomp_notif_addfd: byte offsets and round trip', (t) => {
  const r = { id: 9n, val: -1n, error: -111, flags: 1 };
  const rb = encodeResp(r);
  t.equal(rb.length, 24);
  t.same([...rb.subarray(8, 16)], [255, 255, 255, 255, 255, 255, 255, 255], 'val @8 s64');
  t.same([...rb.subarray(16, 24)], [0x91, 0xff, 0xff, 0xff, 1, 0, 0, 0], 'error @16 s32, flags @20');
  t.same(decodeResp(rb), r);
  const a = { id: 77n, flags: 2, srcfd: 12, newfd: 0, newfdFlags: 0o2000000 };
  const ab = encodeAddfd(a);
  t.equal(ab.length, 24);
  t.same([...ab.subarray(8, 24)], [2, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0], 'flags @8, srcfd @12, newfd @16, newfd_flags @20');
  t.same(decodeAddfd(ab), a);
  t.end();
});
