/**
 * Process handles and fd flags through koffi: pidfd_open, pidfd_getfd and pidfd_send_signal by raw syscall
 * (glibc 2.36 has no wrapper for pidfd_getfd), and fcntl with a fixed prototype. Hot-path calls return the
 * result or `-errno` rather than throwing, so a target that just exited costs a comparison.
 */
import koffi from 'koffi';
import { minusErrno } from './libc.ts';

const libc = koffi.load('libc.so.6');

// Fixed prototypes for variadic functions: on x86-64 and aarch64 the integer arguments go in the same registers
// either way, and neither syscall() nor fcntl() reads floating-point arguments.
const syscall4 = libc.func('long syscall(long nr, long a, long b, long c)') as (nr: number, a: number, b: number, c: number) => number;
const fcntl3 = libc.func('int fcntl(int fd, int cmd, long arg)') as (fd: number, cmd: number, arg: number) => number;
const readlinkat4 = libc.func('long readlinkat(int dirfd, const char *path, void *buf, size_t size)') as (
  dirfd: number,
  path: string,
  buf: Uint8Array,
  size: number,
) => number;

const faccessat4 = libc.func('int faccessat(int dirfd, const char *path, int mode, int flags)') as (
  dirfd: number,
  path: string,
  mode: number,
  flags: number,
) => number;

/** Whether `path` exists under the directory `dirfd` (faccessat with F_OK: one system call, no exception). */
export function existsAt(dirfd: number, path: string): boolean {
  return faccessat4(dirfd, path, 0, 0) === 0;
}

/** x86-64 numbers of the pidfd calls (the same on every architecture since 5.x's unified numbering). */
export const SYS_PIDFD = { send_signal: 424, open: 434, getfd: 438 } as const;

/** fcntl commands and flags. */
export const F = { GETFD: 1, SETFD: 2, GETFL: 3, SETFL: 4, FD_CLOEXEC: 1, O_NONBLOCK: 0o4000 } as const;

/** `syscall(nr, a, b, c)`: the result, or `-errno`. */
export function syscall(nr: number, a = 0, b = 0, c = 0): number {
  const r = syscall4(nr, a, b, c);
  return minusErrno(r);
}

/** A pidfd for process `pid` (a TGID; flags 0 or PIDFD_NONBLOCK), or `-errno` (ESRCH: gone). */
export function pidfdOpen(pid: number, flags = 0): number {
  return syscall(SYS_PIDFD.open, pid, flags);
}

/** Our own duplicate (close-on-exec) of fd `targetFd` of the process behind `pidfd`, or `-errno` (EBADF: no such fd). */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  return syscall(SYS_PIDFD.getfd, pidfd, targetFd, 0);
}

/** Sends signal `sig` to the process behind `pidfd`: 0, or `-errno`. */
export function pidfdSendSignal(pidfd: number, sig: number): number {
  return syscall(SYS_PIDFD.send_signal, pidfd, sig, 0);
}

/** `fcntl(fd, cmd, arg)`: the result, or `-errno`. */
export function fcntl(fd: number, cmd: number, arg = 0): number {
  const r = fcntl3(fd, cmd, arg);
  return minusErrno(r);
}

const linkBuf = new Uint8Array(64);
const SOCKET_LINK = 'socket:[';

/**
 * Which socket fd `fd` of a process is, from its `/proc/<pid>` directory `procDir` (readlinkat of `fd/<fd>`, whose
 * target reads `socket:[<inode>]`): the inode, null when the fd is open but not a socket, or `-errno` (ENOENT: no
 * such fd; ESRCH: the process is gone). One system call, where a duplicate, its fstat and its close take three.
 */
export function socketInodeAt(procDir: number, fd: number): number | bigint | null {
  const n = readlinkat4(procDir, `fd/${fd}`, linkBuf, linkBuf.length);
  if (n < 0) return minusErrno(n);
  if (n <= SOCKET_LINK.length + 1 || n >= linkBuf.length) return null;
  for (let i = 0; i < SOCKET_LINK.length; i++) if (linkBuf[i] !== SOCKET_LINK.charCodeAt(i)) return null;
  let ino = 0;
  for (let i = SOCKET_LINK.length; i < n - 1; i++) ino = ino * 10 + linkBuf[i]! - 48;
  if (Number.isSafeInteger(ino)) return ino;
  const big = BigInt(String.fromCharCode(...linkBuf.subarray(SOCKET_LINK.length, n - 1)));
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}
