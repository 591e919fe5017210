/**
 * The seccomp user-notification ABI (linux/seccomp.h, seccomp_unotify(2)): filter flags, listener ioctls, and
 * codecs for `struct seccomp_notif` (80 bytes), `seccomp_notif_resp` (24) and `seccomp_notif_addfd` (24), as
 * SECCOMP_GET_NOTIF_SIZES reported them on x86-64. The ioctl numbers and sizes live with the ioctls in
 * lib/seccomp.ts and are re-exported here.
 */
import { NOTIF_ADDFD_SIZE, NOTIF_RESP_SIZE, NOTIF_SIZE } from '../../lib/seccomp.ts';

export { NOTIF_ADDFD_SIZE, NOTIF_RESP_SIZE, NOTIF_SIZE, SECCOMP_IOCTL_NOTIF } from '../../lib/seccomp.ts';

/** `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)` flags. */
export const SECCOMP_FILTER_FLAG = {
  TSYNC: 1,
  LOG: 2,
  SPEC_ALLOW: 4,
  /** Return a listener fd for the filter's USER_NOTIF actions (5.0). */
  NEW_LISTENER: 8,
  TSYNC_ESRCH: 16,
  /** Once a notification is received, the target waits killably: other signals no longer restart the call (5.19). */
  WAIT_KILLABLE_RECV: 32,
} as const;

/** `seccomp()` operations. */
export const SECCOMP_SET_MODE_FILTER = 1;

/** Response flag: let the kernel run the call as if no filter had asked (5.5); val and error must be 0. */
export const SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1;

/** ADDFD flags: SETFD installs at `newfd` (replacing what is there); SEND also answers the call with the fd (5.14). */
export const SECCOMP_ADDFD_FLAG = { SETFD: 1, SEND: 2 } as const;

/** SET_FLAGS flag: wake the target on the answering CPU, which halves the round trip (6.6). */
export const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP = 1;

/** One trapped call, as RECV reports it. */
export interface Notification {
  /** The cookie every answer names; unique for the listener's lifetime. */
  id: bigint;
  /** The calling thread's TID (in the receiver's pid namespace), not its TGID. */
  tid: number;
  /** The call number (seccomp_data.nr). */
  nr: number;
  /** AUDIT_ARCH_* of the call. */
  arch: number;
  /** The instruction pointer after the syscall instruction. */
  ip: bigint;
  /** The six raw arguments. */
  args: bigint[];
}

/** Decodes a `struct seccomp_notif`: id @0, pid @8, flags @12, seccomp_data @16 (nr, arch, ip, args[6]). */
export function decodeNotif(b: Uint8Array): Notification {
  if (b.length < NOTIF_SIZE) throw new Error(`seccomp_notif is ${NOTIF_SIZE} bytes, got ${b.length}`);
  const v = new DataView(b.buffer, b.byteOffset, NOTIF_SIZE);
  const args: bigint[] = [];
  for (let i = 0; i < 6; i++) args.push(v.getBigUint64(32 + 8 * i, true));
  return {
    id: v.getBigUint64(0, true),
    tid: v.getUint32(8, true),
    nr: v.getInt32(16, true),
    arch: v.getUint32(20, true),
    ip: v.getBigUint64(24, true),
    args,
  };
}

/** Encodes a `struct seccomp_notif` (what the kernel writes; for tests). */
export function encodeNotif(n: Notification, out = new Uint8Array(NOTIF_SIZE)): Uint8Array {
  const v = new DataView(out.buffer, out.byteOffset, NOTIF_SIZE);
  out.fill(0, 0, NOTIF_SIZE);
  v.setBigUint64(0, n.id, true);
  v.setUint32(8, n.tid, true);
  v.setInt32(16, n.nr, true);
  v.setUint32(20, n.arch >>> 0, true);
  v.setBigUint64(24, n.ip, true);
  for (let i = 0; i < 6; i++) v.setBigUint64(32 + 8 * i, BigInt.asUintN(64, n.args[i] ?? 0n), true);
  return out;
}

/** An answer: `val` is the call's return value, or `error` a negative errno, or CONTINUE in `flags`. */
export interface NotifResp {
  id: bigint;
  val: bigint;
  error: number;
  flags: number;
}

/** Encodes a `struct seccomp_notif_resp`: id @0, val s64 @8, error s32 @16, flags u32 @20. */
export function encodeResp(r: NotifResp, out = new Uint8Array(NOTIF_RESP_SIZE)): Uint8Array {
  const v = new DataView(out.buffer, out.byteOffset, NOTIF_RESP_SIZE);
  v.setBigUint64(0, r.id, true);
  v.setBigInt64(8, r.val, true);
  v.setInt32(16, r.error, true);
  v.setUint32(20, r.flags, true);
  return out;
}

/** Decodes a `struct seccomp_notif_resp`. */
export function decodeResp(b: Uint8Array): NotifResp {
  const v = new DataView(b.buffer, b.byteOffset, NOTIF_RESP_SIZE);
  return { id: v.getBigUint64(0, true), val: v.getBigInt64(8, true), error: v.getInt32(16, true), flags: v.getUint32(20, true) };
}

/** A request to install one of our fds in the target. */
export interface NotifAddfd {
  id: bigint;
  /** SECCOMP_ADDFD_FLAG bits. */
  flags: number;
  srcfd: number;
  /** The target fd number with SETFD, else 0. */
  newfd: number;
  /** Only O_CLOEXEC is accepted. */
  newfdFlags: number;
}

/** Encodes a `struct seccomp_notif_addfd`: id @0, flags @8, srcfd @12, newfd @16, newfd_flags @20. */
export function encodeAddfd(r: NotifAddfd, out = new Uint8Array(NOTIF_ADDFD_SIZE)): Uint8Array {
  const v = new DataView(out.buffer, out.byteOffset, NOTIF_ADDFD_SIZE);
  v.setBigUint64(0, r.id, true);
  v.setUint32(8, r.flags, true);
  v.setUint32(12, r.srcfd, true);
  v.setUint32(16, r.newfd, true);
  v.setUint32(20, r.newfdFlags, true);
  return out;
}

/** Decodes a `struct seccomp_notif_addfd`. */
export function decodeAddfd(b: Uint8Array): NotifAddfd {
  const v = new DataView(b.buffer, b.byteOffset, NOTIF_ADDFD_SIZE);
  return {
    id: v.getBigUint64(0, true),
    flags: v.getUint32(8, true),
    srcfd: v.getUint32(12, true),
    newfd: v.getUint32(16, true),
    newfdFlags: v.getUint32(20, true),
  };
}
