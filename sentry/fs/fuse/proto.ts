/**
 * The FUSE kernel protocol as read from and written to `/dev/fuse` (Linux's include/uapi/linux/fuse.h, 7.x):
 * opcodes, the request header, the request bodies this server reads, and the reply structs it writes. All
 * little-endian, 64-bit layouts; every request is `fuse_in_header` then its body, every reply `fuse_out_header`
 * then its body, and an error is a header alone whose `error` is the negative errno.
 */

/** Opcodes (enum fuse_opcode). */
export const OP = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  DESTROY: 38,
  BATCH_FORGET: 42,
  READDIRPLUS: 44,
  RENAME2: 45,
} as const;

const OP_NAMES: string[] = [];
for (const [name, op] of Object.entries(OP)) OP_NAMES[op] = name;

/** The name of an opcode, for messages and counters (a table lookup: it runs for every request). */
export function opName(op: number): string {
  return OP_NAMES[op] ?? `op${op}`;
}

/** FUSE_INIT flags this server uses. */
export const INIT = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  /**
   * FUSE_HANDLE_KILLPRIV_V2: this server clears set-user-ID and set-group-ID bits on write, truncate and chown
   * (as the flags below ask), so the kernel marks the super block SB_NOSEC and stops asking for
   * `security.capability` before every write.
   */
  HANDLE_KILLPRIV_V2: 1 << 28,
  /** flags2 follows in fuse_init_in/out. */
  INIT_EXT: 1 << 30,
} as const;

/** fuse_init flags2 bits (the flags' upper 32 bits). */
export const INIT2 = {
  /** FUSE_PASSTHROUGH (bit 37): opens may hand the kernel a backing file to read and write directly. */
  PASSTHROUGH: 1 << 5,
  /** FUSE_OVER_IO_URING (bit 41): requests may come through io_uring entries the server registers (uring.ts). */
  OVER_IO_URING: 1 << 9,
} as const;

/** ioctls on /dev/fuse: register a backing file (struct fuse_backing_map) for passthrough, and drop one. */
export const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
export const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;
/** The deepest stacking allowed (FILESYSTEM_MAX_STACK_DEPTH): a backing file on overlayfs is depth 1. */
export const MAX_STACK_DEPTH = 2;

/** Notification codes (enum fuse_notify_code): written to /dev/fuse with unique 0 and the code as `error`. */
export const NOTIFY = {
  /** FUSE_NOTIFY_PRUNE (Linux 6.18, protocol 7.45): drop the unused dentries of these node ids, evicting their inodes. */
  PRUNE: 9,
} as const;

/**
 * A FUSE_NOTIFY_PRUNE message: fuse_out_header (unique 0, the code as error), fuse_notify_prune_out (count, padding,
 * spare) and the node ids. The kernel prunes only dentries nobody uses (no open file, cwd or mount on them); each
 * inode that goes comes back to us as a FORGET.
 */
export function pruneNotify(ids: readonly bigint[]): Uint8Array {
  const len = OUT_HEADER_SIZE + 16 + ids.length * 8;
  const b = new Uint8Array(len);
  const v = view(b);
  v.setUint32(0, len, true);
  v.setInt32(4, NOTIFY.PRUNE, true);
  v.setBigUint64(8, 0n, true);
  v.setUint32(16, ids.length, true);
  for (let i = 0; i < ids.length; i++) v.setBigUint64(32 + i * 8, ids[i]!, true);
  return b;
}

/** fuse_open_out.open_flags bits (FOPEN_*). */
export const FOPEN = { DIRECT_IO: 1 << 0, KEEP_CACHE: 1 << 1, NOFLUSH: 1 << 5, PASSTHROUGH: 1 << 7 } as const;

/** fuse_setattr_in.valid bits (FATTR_*). */
export const FATTR = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  LOCKOWNER: 1 << 9,
  CTIME: 1 << 10,
  /** With HANDLE_KILLPRIV_V2: clear S_ISUID, and S_ISGID if group-executable, after the change. */
  KILL_SUIDGID: 1 << 11,
} as const;

/** fuse_write_in.write_flags: with HANDLE_KILLPRIV_V2, the writer lacks CAP_FSETID (FUSE_WRITE_KILL_SUIDGID). */
export const WRITE_KILL_SUIDGID = 1 << 2;
/** fuse_open_in/fuse_create_in.open_flags: an O_TRUNC open by a writer without CAP_FSETID (FUSE_OPEN_KILL_SUIDGID). */
export const OPEN_KILL_SUIDGID = 1 << 0;

/**
 * The protocol version this server speaks: 7.40 (FUSE passthrough) where the kernel knows it, else the kernel's
 * own but at least 7.31 (from there on, every struct used here has its modern size).
 */
export const KERNEL_VERSION = 7;
export const MINOR_VERSION = 40;
export const MIN_MINOR_VERSION = 31;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
/** sizeof(struct fuse_attr). */
export const ATTR_SIZE = 88;
/** sizeof(struct fuse_entry_out). */
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
/** The kernel refuses a read(2) of /dev/fuse with a buffer smaller than this (FUSE_MIN_READ_BUFFER). */
export const MIN_READ_BUFFER = 8192;

/** fuse_in_header. */
export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  pid: number;
}

/**
 * Decodes the header of a request `buf` (at least IN_HEADER_SIZE bytes, checked by the caller); a server reading
 * into one buffer passes a DataView of it kept for that.
 */
export function decodeHeader(buf: Uint8Array | DataView): InHeader {
  const v = buf instanceof DataView ? buf : view(buf);
  return {
    len: v.getUint32(0, true),
    opcode: v.getUint32(4, true),
    unique: v.getBigUint64(8, true),
    nodeid: v.getBigUint64(16, true),
    uid: v.getUint32(24, true),
    gid: v.getUint32(28, true),
    pid: v.getUint32(32, true),
  };
}

/** A DataView over exactly `b`. */
export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** The NUL-terminated names at the start of `b` (one or two, as LOOKUP, RENAME and SYMLINK carry). */
export function cstrings(b: Uint8Array, count: number): Uint8Array[] | undefined {
  const out: Uint8Array[] = [];
  let o = 0;
  for (let i = 0; i < count; i++) {
    const end = b.indexOf(0, o);
    if (end < 0) return undefined;
    out.push(b.slice(o, end));
    o = end + 1;
  }
  return out;
}

/** File attributes in the form fuse_attr carries them. */
export interface Attr {
  ino: bigint;
  size: bigint;
  blocks: bigint;
  atime: bigint;
  mtime: bigint;
  ctime: bigint;
  atimensec: number;
  mtimensec: number;
  ctimensec: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** The device number as the kernel's new_encode_dev packs it. */
  rdev: number;
  blksize: number;
}

/** Writes a fuse_attr at `o`. */
export function writeAttr(v: DataView, o: number, a: Attr): void {
  v.setBigUint64(o, a.ino, true);
  v.setBigUint64(o + 8, a.size, true);
  v.setBigUint64(o + 16, a.blocks, true);
  v.setBigUint64(o + 24, a.atime, true);
  v.setBigUint64(o + 32, a.mtime, true);
  v.setBigUint64(o + 40, a.ctime, true);
  v.setUint32(o + 48, a.atimensec, true);
  v.setUint32(o + 52, a.mtimensec, true);
  v.setUint32(o + 56, a.ctimensec, true);
  v.setUint32(o + 60, a.mode, true);
  v.setUint32(o + 64, a.nlink, true);
  v.setUint32(o + 68, a.uid, true);
  v.setUint32(o + 72, a.gid, true);
  v.setUint32(o + 76, a.rdev, true);
  v.setUint32(o + 80, a.blksize, true);
  v.setUint32(o + 84, 0, true); // flags
}

/** How long the kernel may cache a lookup or attributes, in seconds (fractions are sent as nanoseconds). */
export interface Validity {
  entry: number;
  attr: number;
}

/** Writes `seconds` (clamped at 0) as a u64 of whole seconds at `o` and the u32 nanoseconds at `nsecAt`. */
function writeValid(v: DataView, o: number, nsecAt: number, seconds: number): void {
  const s = Math.max(0, seconds);
  const whole = Math.floor(s);
  v.setBigUint64(o, BigInt(whole), true);
  v.setUint32(nsecAt, Math.min(999_999_999, Math.floor((s - whole) * 1e9)), true);
}

/** A fuse_entry_out. */
export function entryOut(nodeid: bigint, a: Attr, valid: Validity): Uint8Array {
  const b = new Uint8Array(ENTRY_OUT_SIZE);
  writeEntry(view(b), 0, nodeid, a, valid);
  return b;
}

function writeEntry(v: DataView, o: number, nodeid: bigint, a: Attr, valid: Validity): void {
  v.setBigUint64(o, nodeid, true);
  v.setBigUint64(o + 8, 0n, true); // generation: node ids are never reused while the mount lives
  writeValid(v, o + 16, o + 32, valid.entry);
  writeValid(v, o + 24, o + 36, valid.attr);
  writeAttr(v, o + 40, a);
}

/** A fuse_attr_out. */
export function attrOut(a: Attr, valid: Validity): Uint8Array {
  const b = new Uint8Array(16 + ATTR_SIZE);
  const v = view(b);
  writeValid(v, 0, 8, valid.attr);
  writeAttr(v, 16, a);
  return b;
}

/** A fuse_open_out; `backingId` (with FOPEN.PASSTHROUGH) names a backing file registered for it. */
export function openOut(fh: bigint, openFlags = 0, backingId = 0): Uint8Array {
  const b = new Uint8Array(16);
  const v = view(b);
  v.setBigUint64(0, fh, true);
  v.setUint32(8, openFlags, true);
  v.setInt32(12, backingId, true);
  return b;
}

/** The padded size of a fuse_dirent with a name of `n` bytes. */
export function direntSize(n: number): number {
  return (24 + n + 7) & ~7;
}

/** Writes a fuse_dirent at `o` of `out`; returns the offset after it (8-aligned). */
export function writeDirent(out: Uint8Array, o: number, ino: bigint, off: bigint, type: number, name: Uint8Array): number {
  const v = view(out);
  v.setBigUint64(o, ino, true);
  v.setBigUint64(o + 8, off, true);
  v.setUint32(o + 16, name.length, true);
  v.setUint32(o + 20, type, true);
  out.set(name, o + 24);
  const end = o + direntSize(name.length);
  out.fill(0, o + 24 + name.length, end);
  return end;
}

/** The padded size of a fuse_direntplus. */
export function direntPlusSize(n: number): number {
  return ENTRY_OUT_SIZE + direntSize(n);
}

/** Writes a fuse_direntplus (an entry_out, then the dirent); returns the offset after it. */
export function writeDirentPlus(
  out: Uint8Array,
  o: number,
  nodeid: bigint,
  a: Attr,
  valid: Validity,
  off: bigint,
  type: number,
  name: Uint8Array,
): number {
  writeEntry(view(out), o, nodeid, a, valid);
  return writeDirent(out, o + ENTRY_OUT_SIZE, a.ino, off, type, name);
}

/** Statistics in the form fuse_kstatfs carries them. */
export interface Kstatfs {
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
  bsize: number;
  namelen: number;
  frsize: number;
}

/** A fuse_statfs_out. */
export function statfsOut(s: Kstatfs): Uint8Array {
  const b = new Uint8Array(80);
  const v = view(b);
  v.setBigUint64(0, s.blocks, true);
  v.setBigUint64(8, s.bfree, true);
  v.setBigUint64(16, s.bavail, true);
  v.setBigUint64(24, s.files, true);
  v.setBigUint64(32, s.ffree, true);
  v.setUint32(40, s.bsize, true);
  v.setUint32(44, s.namelen, true);
  v.setUint32(48, s.frsize, true);
  return b;
}

/** The settings this server answers FUSE_INIT with. */
export interface InitSettings {
  maxReadahead: number;
  flags: number;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  /** Nanosecond granularity of times (1). */
  timeGran: number;
  maxPages: number;
  /** The minor version agreed. */
  minor: number;
  flags2: number;
  maxStackDepth: number;
}

/** A fuse_init_out (64 bytes). */
export function initOut(s: InitSettings): Uint8Array {
  const b = new Uint8Array(64);
  const v = view(b);
  v.setUint32(0, KERNEL_VERSION, true);
  v.setUint32(4, s.minor, true);
  v.setUint32(8, s.maxReadahead, true);
  v.setUint32(12, s.flags, true);
  v.setUint16(16, s.maxBackground, true);
  v.setUint16(18, s.congestionThreshold, true);
  v.setUint32(20, s.maxWrite, true);
  v.setUint32(24, s.timeGran, true);
  v.setUint16(28, s.maxPages, true);
  v.setUint32(32, s.flags2, true);
  v.setUint32(36, s.maxStackDepth, true);
  return b;
}

/** A whole reply: fuse_out_header (error 0 or a negative errno) and the body. */
export function reply(unique: bigint, error: number, body?: Uint8Array): Uint8Array {
  const len = OUT_HEADER_SIZE + (error === 0 && body ? body.length : 0);
  const b = new Uint8Array(len);
  writeOutHeader(view(b), len, error, unique);
  if (error === 0 && body) b.set(body, OUT_HEADER_SIZE);
  return b;
}

/** Writes a fuse_out_header at the start of `v`: the whole reply's length, its error (0 or a negative errno). */
export function writeOutHeader(v: DataView, len: number, error: number, unique: bigint): void {
  v.setUint32(0, len, true);
  v.setInt32(4, error, true);
  v.setBigUint64(8, unique, true);
}

/** The kernel's new_encode_dev of a glibc dev_t (9P's Rgetattr carries the host's). */
export function encodeDev(dev: bigint): number {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}
