/**
 * Readers and writers of the socket calls' structures in a trapped program's memory (x86-64 layouts):
 * socklen_t in/out words, sockaddrs, iovec arrays, struct msghdr and struct mmsghdr. Every reader answers a
 * value or -errno as the kernel would: an unreadable pointer is EFAULT, a length the kernel refuses EINVAL.
 */

/** A program's memory as the Sentry reaches it (Target, or a fake over an array in tests). */
export interface Mem {
  /** `len` bytes at `addr`, or null when any of them is unmapped. */
  read(addr: number, len: number): Uint8Array | null;
  /** Writes `data` at `addr`; false when unmapped. */
  write(addr: number, data: Uint8Array): boolean;
}

export const EFAULT = 14;
export const EINVAL = 22;

/** sizeof(struct sockaddr_storage): the most of a name the kernel copies (larger msg_namelen is clamped). */
export const SOCKADDR_STORAGE = 128;
/** UIO_MAXIOV: the most iovecs one call takes. */
export const UIO_MAXIOV = 1024;
/** The largest total a call moves (MAX_RW_COUNT, INT_MAX rounded down to a page). */
export const MAX_RW_COUNT = 0x7ffff000;
/** sizeof(struct msghdr), sizeof(struct mmsghdr), sizeof(struct iovec). */
export const MSGHDR_LEN = 56;
export const MMSGHDR_LEN = 64;
export const IOVEC_LEN = 16;

/** A pointer argument as a number (user addresses fit in 47 bits; a kernel-half value is left as is to fault). */
export function ptr(v: bigint): number {
  return Number(BigInt.asUintN(64, v));
}

/** An int argument (the low 32 bits, signed), as the kernel reads C ints from registers. */
export function int(v: bigint): number {
  return Number(BigInt.asIntN(32, v));
}

/** An iovec: base address and length. */
export interface Iov {
  readonly base: number;
  readonly len: number;
}

/** A struct msghdr as read from memory (pointers, not contents). */
export interface MsgHdrRef {
  readonly name: number;
  /** msg_namelen as given (an int). */
  readonly namelen: number;
  readonly iov: Iov[];
  readonly control: number;
  readonly controllen: number;
  readonly flags: number;
}

/** The socklen_t at `addr` (an in/out length): its value, -EFAULT, or -EINVAL when negative as an int. */
export function readLen(mem: Mem, addr: number): number {
  if (addr === 0) return -EFAULT;
  const b = mem.read(addr, 4);
  if (!b) return -EFAULT;
  const v = new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
  return v < 0 ? -EINVAL : v;
}

/** Writes a socklen_t (or int) at `addr`. */
export function writeLen(mem: Mem, addr: number, v: number): boolean {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return mem.write(addr, b);
}

/**
 * A sockaddr the program passes in (bind, connect, sendto): EINVAL when the length is negative or larger than a
 * sockaddr_storage (move_addr_to_kernel), EFAULT when unreadable.
 */
export function readSockaddr(mem: Mem, addr: number, len: number): Uint8Array | number {
  if (len < 0 || len > SOCKADDR_STORAGE) return -EINVAL;
  if (len === 0) return new Uint8Array(0);
  const b = mem.read(addr, len);
  return b ?? -EFAULT;
}

/**
 * Hands a sockaddr back (accept, getsockname, recvfrom: move_addr_to_user): reads the buffer size at `lenAddr`,
 * writes at most that many bytes of `sa` at `addr`, and the full length at `lenAddr`. 0 or -errno.
 */
export function writeSockaddr(mem: Mem, addr: number, lenAddr: number, sa: Uint8Array): number {
  const room = readLen(mem, lenAddr);
  if (room < 0) return room;
  const n = Math.min(room, sa.length);
  if (n > 0 && !mem.write(addr, sa.subarray(0, n))) return -EFAULT;
  return writeLen(mem, lenAddr, sa.length) ? 0 : -EFAULT;
}

/** `count` iovecs at `addr`: EINVAL beyond UIO_MAXIOV or a total beyond MAX_RW_COUNT's sign, EFAULT unreadable. */
export function readIovecs(mem: Mem, addr: number, count: number): Iov[] | number {
  if (count < 0 || count > UIO_MAXIOV) return -EINVAL;
  if (count === 0) return [];
  const b = mem.read(addr, count * IOVEC_LEN);
  if (!b) return -EFAULT;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: Iov[] = [];
  let total = 0n;
  for (let i = 0; i < count; i++) {
    const base = v.getBigUint64(i * IOVEC_LEN, true);
    const len = v.getBigUint64(i * IOVEC_LEN + 8, true);
    // The kernel refuses a length that is negative as a ssize_t (import_iovec), and clamps the total.
    if (len > 0x7fffffffffffffffn) return -EINVAL;
    total += len;
    out.push({ base: Number(base), len: Number(len > BigInt(MAX_RW_COUNT) ? BigInt(MAX_RW_COUNT) : len) });
  }
  if (total > 0x7fffffffffffffffn) return -EINVAL;
  return out;
}

/** A struct msghdr at `addr` and its iovec array (copy_msghdr_from_user). */
export function readMsghdr(mem: Mem, addr: number): MsgHdrRef | number {
  const b = mem.read(addr, MSGHDR_LEN);
  if (!b) return -EFAULT;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const name = Number(v.getBigUint64(0, true));
  const namelen = v.getInt32(8, true);
  const iovAddr = Number(v.getBigUint64(16, true));
  const iovlen = v.getBigUint64(24, true);
  const control = Number(v.getBigUint64(32, true));
  const controllen = Number(v.getBigUint64(40, true));
  const flags = v.getInt32(48, true);
  if (namelen < 0) return -EINVAL;
  if (iovlen > BigInt(UIO_MAXIOV)) return -EMSGSIZE;
  const iov = readIovecs(mem, iovAddr, Number(iovlen));
  if (typeof iov === 'number') return iov;
  return { name, namelen: Math.min(namelen, SOCKADDR_STORAGE), iov, control, controllen, flags };
}

/** EMSGSIZE: Linux's answer for msg_iovlen beyond UIO_MAXIOV. */
export const EMSGSIZE = 90;

/**
 * Writes msghdr's msg_namelen (offset 8), msg_controllen (offset 40: the bytes of control messages written, 0
 * when none, as the kernel says) and msg_flags (offset 48) after a receive.
 */
export function writeMsghdrOut(mem: Mem, addr: number, namelen: number, flags: number, controllen = 0): boolean {
  const cl = new Uint8Array(8);
  new DataView(cl.buffer).setBigUint64(0, BigInt(controllen), true);
  return writeLen(mem, addr + 8, namelen) && mem.write(addr + 40, cl) && writeLen(mem, addr + 48, flags);
}

/** Total bytes of an iovec list. */
export function iovTotal(iov: Iov[]): number {
  let n = 0;
  for (const x of iov) n += x.len;
  return Math.min(n, MAX_RW_COUNT);
}

/** Gathers the bytes of an iovec list (sendmsg's payload), or -EFAULT. */
export function gather(mem: Mem, iov: Iov[]): Uint8Array | number {
  const out = new Uint8Array(iovTotal(iov));
  let off = 0;
  for (const x of iov) {
    const n = Math.min(x.len, out.length - off);
    if (n <= 0) break;
    const b = mem.read(x.base, n);
    if (!b) return -EFAULT;
    out.set(b, off);
    off += n;
  }
  return out;
}

/** Scatters `data` over an iovec list (recvmsg's payload); false on EFAULT. */
export function scatter(mem: Mem, iov: Iov[], data: Uint8Array): boolean {
  let off = 0;
  for (const x of iov) {
    if (off >= data.length) break;
    const n = Math.min(x.len, data.length - off);
    if (n > 0 && !mem.write(x.base, data.subarray(off, off + n))) return false;
    off += n;
  }
  return true;
}
