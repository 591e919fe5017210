/**
 * The seccomp listener's ioctls through koffi (the struct codecs are in sentry/seccomp/notify.ts). Each
 * returns the kernel's answer or `-errno`, never throws: ENOENT (the call is gone: the target was interrupted or
 * died) is an everyday answer on the hot path.
 */
import koffi from 'koffi';
import { minusErrno } from './libc.ts';

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
  return minusErrno(r);
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

const pthreadSigmask = libc.func('int pthread_sigmask(int how, void *set, void *old)') as (
  how: number,
  set: Uint8Array | null,
  old: Uint8Array | null,
) => number;
const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
// sigset_t as glibc has it (1024 bits): every signal, and the caller's mask while they are blocked.
const ALL_SIGNALS = new Uint8Array(128).fill(0xff);
const savedMask = new Uint8Array(128);

/**
 * Installs one of our fds in the target from an encoded `seccomp_notif_addfd`: the target's fd number, or -errno.
 * `send` says the request carries SECCOMP_ADDFD_FLAG_SEND (the fd is also the call's answer): that ioctl then
 * runs with every signal blocked on this thread. It waits for the target to install the fd, and the kernel marks
 * the call answered before the target does; a signal in that wait (a profiler's SIGPROF, a SIGCHLD) withdraws the
 * request while leaving the call answered, so the target's call returns 0, a number that is no fd of the kind it
 * asked for (seen on Linux 6.18: socket() answered 0 under `node --cpu-prof`, 3 of 12 runs).
 */
export function notifAddfd(fd: number, addfd: Uint8Array, send = false): number {
  if (!send) return call(fd, SECCOMP_IOCTL_NOTIF.ADDFD, addfd);
  pthreadSigmask(SIG_BLOCK, ALL_SIGNALS, savedMask);
  try {
    return call(fd, SECCOMP_IOCTL_NOTIF.ADDFD, addfd);
  } finally {
    pthreadSigmask(SIG_SETMASK, savedMask, null);
  }
}

/** Sets listener flags (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 6.6+): 0, or -errno (EINVAL on older kernels). */
export function notifSetFlags(fd: number, flags: number): number {
  return call(fd, SECCOMP_IOCTL_NOTIF.SET_FLAGS, BigInt(flags));
}

const SockFprog = koffi.struct('seccomp_sock_fprog', { len: 'uint16_t', filter: 'void *' });
const seccompSetFilter = libc.func('syscall', 'long', ['long', 'unsigned int', 'unsigned int', koffi.pointer(SockFprog)]) as (
  nr: number,
  op: number,
  flags: number,
  prog: { len: number; filter: Uint8Array },
) => number;
const prctl = libc.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)') as (
  o: number,
  a: number,
  b: number,
  c: number,
  d: number,
) => number;

const SYS_SECCOMP = 317; // x86-64
const PR_SET_NO_NEW_PRIVS = 38;
const SECCOMP_FILTER_FLAG_TSYNC = 1;

/**
 * Installs a plain filter (an encoded `struct sock_filter` array) on every thread of this process at once
 * (SECCOMP_FILTER_FLAG_TSYNC, which also gives the other threads NO_NEW_PRIVS): how a Node process, whose libuv
 * and V8 threads already run, confines itself. 0, or -errno (a positive result is the id of a thread that could
 * not be synchronised).
 */
export function installFilterAllThreads(program: Uint8Array): number {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -koffi.errno();
  const r = seccompSetFilter(SYS_SECCOMP, 1, SECCOMP_FILTER_FLAG_TSYNC, { len: program.length / 8, filter: program });
  return minusErrno(r);
}
