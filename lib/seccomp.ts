/**
 * The seccomp listener's ioctls through koffi (the struct codecs are in sentry/seccomp/notify.ts). Each
 * returns the kernel's answer or `-errno`, never throws: ENOENT (the call is gone: the target was interrupted or
 * died) is an everyday answer on the hot path.
 */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

/** Struct sizes, as SECCOMP_GET_NOTIF_SIZES reports them. */
export const NOTIF_SIZE = 80;
export const NOTIF_RESP_SIZE = 24;
export const NOTIF_ADDFD_SIZE = 24;

/**
 * Listener ioctls: `_IOC(dir, '!', nr, size)` with dir WR=3, W=1. ID_VALID's size is that of a u64 (the kernel also
 * accepts the older value with the wrong direction); SET_FLAGS is newer (6.6) than Debian 12's headers.
 */
export const SECCOMP_IOCTL_NOTIF = {
  RECV: 0xc0502100,
  SEND: 0xc0182101,
  ID_VALID: 0x40082102,
  ADDFD: 0x40182103,
  SET_FLAGS: 0x40082104,
} as const;

// `void *arg` takes a typed array (passed in place for the call) or a bigint passed as the raw register value,
// which is how SET_FLAGS wants its flags.
const ioctl = libc.func('int ioctl(int fd, unsigned long req, void *arg)') as (
  fd: number,
  req: number,
  arg: Uint8Array | BigUint64Array | bigint,
) => number;

function call(fd: number, req: number, arg: Uint8Array | BigUint64Array | bigint): number {
  const r = ioctl(fd, req, arg);
  return r < 0 ? -koffi.errno() : r;
}

/**
 * Receives one notification into `notif` (80 bytes), zeroing it first as the kernel demands (EINVAL otherwise).
 * Blocks while none is pending, whatever O_NONBLOCK says: call it only after poll reported POLLIN.
 */
export function notifRecv(fd: number, notif: Uint8Array): number {
  notif.fill(0, 0, NOTIF_SIZE);
  return call(fd, SECCOMP_IOCTL_NOTIF.RECV, notif);
}

/** Sends an encoded `seccomp_notif_resp`: 0, or -ENOENT when the call is gone. */
export function notifSend(fd: number, resp: Uint8Array): number {
  return call(fd, SECCOMP_IOCTL_NOTIF.SEND, resp);
}

const idBuf = new BigUint64Array(1);

/** 0 when notification `id` is still waiting for its answer, -ENOENT when it is gone. */
export function notifIdValid(fd: number, id: bigint): number {
  idBuf[0] = id;
  return call(fd, SECCOMP_IOCTL_NOTIF.ID_VALID, idBuf);
}

/** Installs one of our fds in the target from an encoded `seccomp_notif_addfd`: the target's fd number, or -errno. */
export function notifAddfd(fd: number, addfd: Uint8Array): number {
  return call(fd, SECCOMP_IOCTL_NOTIF.ADDFD, addfd);
}

/** Sets listener flags (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 6.6+): 0, or -errno (EINVAL on older kernels). */
export function notifSetFlags(fd: number, flags: number): number {
  return call(fd, SECCOMP_IOCTL_NOTIF.SET_FLAGS, BigInt(flags));
}
