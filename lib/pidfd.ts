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
