/**
 * File system calls on descriptors, through koffi: openat2 and the *at family the Gofer resolves and changes files
 * with. Every function returns its result, or minus the errno when the call failed, so a refused lookup costs a
 * comparison, not an exception (the Gofer turns the errno straight into Rlerror). Paths are JS strings or byte
 * arrays (file names are bytes on Linux); `cpath` makes the NUL-terminated copy the kernel needs.
 * Struct layouts are those of 64-bit Linux; the syscall numbers used directly (openat2, fchmodat2) are the same
 * on x86-64 and aarch64 since they come from the unified syscall table.
 */
import koffi from 'koffi';
import { ERRNO, memoryAddress, minusErrno } from './libc.ts';

const libc = koffi.load('libc.so.6');

type Path = string | Uint8Array;

const raw = {
  openat2: libc.func('long syscall(long nr, int dirfd, const char *path, void *how, size_t size)') as (
    nr: number,
    dirfd: number,
    path: Path,
    how: Uint8Array,
    size: number,
  ) => number,
  fchmodat2: libc.func('syscall', 'long', ['long', 'int', 'const char *', 'uint32_t', 'int']) as (
    nr: number,
    d: number,
    p: Path,
    m: number,
    f: number,
  ) => number,
  openat: libc.func('int openat(int dirfd, const char *path, int flags, uint32_t mode)') as (
    d: number,
    p: Path,
    f: number,
    m: number,
  ) => number,
  close: libc.func('int close(int fd)') as (fd: number) => number,
  statx: libc.func('int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf)') as (
    d: number,
    p: Path,
    f: number,
    m: number,
    buf: Uint8Array,
  ) => number,
  mkdirat: libc.func('int mkdirat(int dirfd, const char *path, uint32_t mode)') as (d: number, p: Path, m: number) => number,
  mknodat: libc.func('int mknodat(int dirfd, const char *path, uint32_t mode, uint64_t dev)') as (
    d: number,
    p: Path,
    m: number,
    dev: number,
  ) => number,
  unlinkat: libc.func('int unlinkat(int dirfd, const char *path, int flags)') as (d: number, p: Path, f: number) => number,
  renameat2: libc.func('int renameat2(int od, const char *op, int nd, const char *np, unsigned int flags)') as (
    od: number,
    op: Path,
    nd: number,
    np: Path,
    f: number,
  ) => number,
  symlinkat: libc.func('int symlinkat(const char *target, int dirfd, const char *path)') as (
    t: Path,
    d: number,
    p: Path,
  ) => number,
  readlinkat: libc.func('long readlinkat(int dirfd, const char *path, void *buf, size_t size)') as (
    d: number,
    p: Path,
    buf: Uint8Array,
    n: number,
  ) => number,
  linkat: libc.func('int linkat(int od, const char *op, int nd, const char *np, int flags)') as (
    od: number,
    op: Path,
    nd: number,
    np: Path,
    f: number,
  ) => number,
  fchownat: libc.func('int fchownat(int dirfd, const char *path, uint32_t uid, uint32_t gid, int flags)') as (
    d: number,
    p: Path,
    u: number,
    g: number,
    f: number,
  ) => number,
  fchmodat: libc.func('int fchmodat(int dirfd, const char *path, uint32_t mode, int flags)') as (
    d: number,
    p: Path,
    m: number,
    f: number,
  ) => number,
  fchmod: libc.func('int fchmod(int fd, uint32_t mode)') as (fd: number, m: number) => number,
  utimensat: libc.func('int utimensat(int dirfd, const char *path, void *times, int flags)') as (
    d: number,
    p: Path,
    t: Uint8Array,
    f: number,
  ) => number,
  ftruncate: libc.func('int ftruncate(int fd, int64_t len)') as (fd: number, len: number | bigint) => number,
  getdents64: libc.func('long getdents64(int fd, void *buf, size_t n)') as (fd: number, b: Uint8Array, n: number) => number,
  lseek: libc.func('int64_t lseek(int fd, int64_t off, int whence)') as (fd: number, off: bigint, w: number) => bigint,
  fstatfs: libc.func('int fstatfs(int fd, void *buf)') as (fd: number, b: Uint8Array) => number,
  fsync: libc.func('int fsync(int fd)') as (fd: number) => number,
  fdatasync: libc.func('int fdatasync(int fd)') as (fd: number) => number,
  fcntlPtr: libc.func('fcntl', 'int', ['int', 'int', 'void *']) as (fd: number, cmd: number, arg: Uint8Array) => number,
  fcntlInt: libc.func('fcntl', 'int', ['int', 'int', 'long']) as (fd: number, cmd: number, arg: number) => number,
  fgetxattr: libc.func('long fgetxattr(int fd, const char *name, void *value, size_t size)') as (
    fd: number,
    n: Path,
    v: Uint8Array | null,
    s: number,
  ) => number,
  fsetxattr: libc.func('int fsetxattr(int fd, const char *name, const void *value, size_t size, int flags)') as (
    fd: number,
    n: Path,
    v: Uint8Array,
    s: number,
    f: number,
  ) => number,
  flistxattr: libc.func('long flistxattr(int fd, void *list, size_t size)') as (
    fd: number,
    l: Uint8Array | null,
    s: number,
  ) => number,
  fremovexattr: libc.func('int fremovexattr(int fd, const char *name)') as (fd: number, n: Path) => number,
  pread: libc.func('long pread64(int fd, void *buf, size_t n, int64_t off)') as (
    fd: number,
    b: Uint8Array,
    n: number,
    off: number | bigint,
  ) => number,
  preadv2: libc.func('long preadv2(int fd, const void *iov, int iovcnt, int64_t off, int flags)') as (
    fd: number,
    iov: Uint8Array,
    n: number,
    off: number | bigint,
    flags: number,
  ) => number,
  pwrite: libc.func('long pwrite64(int fd, const void *buf, size_t n, int64_t off)') as (
    fd: number,
    b: Uint8Array,
    n: number,
    off: number | bigint,
  ) => number,
};

/** Constants of Linux's UAPI headers for files (x86-64 and aarch64 values agree except where noted). */
export const F = {
  AT_FDCWD: -100,
  AT_SYMLINK_NOFOLLOW: 0x100,
  AT_REMOVEDIR: 0x200,
  AT_SYMLINK_FOLLOW: 0x400,
  AT_EMPTY_PATH: 0x1000,
  O_RDONLY: 0,
  O_WRONLY: 1,
  O_RDWR: 2,
  O_ACCMODE: 3,
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_NOCTTY: 0o400,
  O_TRUNC: 0o1000,
  O_APPEND: 0o2000,
  O_NONBLOCK: 0o4000,
  O_DSYNC: 0o10000,
  O_DIRECT: 0o40000,
  O_LARGEFILE: 0o100000,
  O_DIRECTORY: 0o200000,
  O_NOFOLLOW: 0o400000,
  O_NOATIME: 0o1000000,
  O_CLOEXEC: 0o2000000,
  O_SYNC: 0o4010000,
  O_PATH: 0o10000000,
  /** An unnamed file in the directory given (O_TMPFILE includes O_DIRECTORY), until linkat names it. */
  O_TMPFILE: 0o20200000,
  RESOLVE_NO_XDEV: 0x01,
  RESOLVE_NO_MAGICLINKS: 0x02,
  RESOLVE_NO_SYMLINKS: 0x04,
  RESOLVE_BENEATH: 0x08,
  RESOLVE_IN_ROOT: 0x10,
  S_IFMT: 0o170000,
  S_IFSOCK: 0o140000,
  S_IFLNK: 0o120000,
  S_IFREG: 0o100000,
  S_IFBLK: 0o60000,
  S_IFDIR: 0o40000,
  S_IFCHR: 0o20000,
  S_IFIFO: 0o10000,
  STATX_BASIC_STATS: 0x7ff,
  STATX_BTIME: 0x800,
  RENAME_NOREPLACE: 1,
  RENAME_EXCHANGE: 2,
  F_DUPFD_CLOEXEC: 1030,
  F_GETFL: 3,
  F_OFD_GETLK: 36,
  F_OFD_SETLK: 37,
  F_RDLCK: 0,
  F_WRLCK: 1,
  F_UNLCK: 2,
  SEEK_SET: 0,
  XATTR_CREATE: 1,
  XATTR_REPLACE: 2,
  UTIME_NOW: (1 << 30) - 1,
  UTIME_OMIT: (1 << 30) - 2,
  SYS_openat2: 437,
  SYS_fchmodat2: 452,
} as const;

const enc = new TextEncoder();

/** A NUL-terminated copy of a path for the kernel (strings are UTF-8, bytes are taken as they are). */
export function cpath(p: Path): Uint8Array {
  if (typeof p === 'string') p = enc.encode(p);
  const out = new Uint8Array(p.length + 1);
  out.set(p);
  return out;
}

const how = new Uint8Array(24);
const howView = new DataView(how.buffer);
let openat2Missing = false;

/**
 * openat2(2): opens `path` under `dirfd` with RESOLVE_* restrictions; -ENOSYS where the kernel (or a seccomp
 * filter) lacks it, so the caller can fall back to a component-by-component walk.
 */
export function openat2(dirfd: number, path: Path, flags: number, mode: number, resolve: number): number {
  if (openat2Missing) return -38;
  howView.setBigUint64(0, BigInt(flags), true);
  howView.setBigUint64(8, BigInt(mode), true);
  howView.setBigUint64(16, BigInt(resolve), true);
  const r = raw.openat2(F.SYS_openat2, dirfd, typeof path === 'string' ? path : cpath(path), how, 24);
  if (r >= 0) return r;
  const e = koffi.errno();
  if (e === 38) openat2Missing = true;
  return -e;
}

/** openat(2). */
export function openat(dirfd: number, path: Path, flags: number, mode = 0): number {
  return minusErrno(raw.openat(dirfd, typeof path === 'string' ? path : cpath(path), flags, mode));
}

/** close(2). */
export function close(fd: number): number {
  return minusErrno(raw.close(fd));
}

/** fcntl(F_DUPFD_CLOEXEC): a second descriptor for the same open file. */
export function dup(fd: number): number {
  return minusErrno(raw.fcntlInt(fd, F.F_DUPFD_CLOEXEC, 0));
}

/** fcntl(F_GETFL): the open flags of a descriptor. */
export function getfl(fd: number): number {
  return minusErrno(raw.fcntlInt(fd, F.F_GETFL, 0));
}

/** A file's attributes as statx(2) reports them; 64-bit fields as BigInt. */
export interface Statx {
  mask: number;
  blksize: number;
  nlink: number;
  uid: number;
  gid: number;
  mode: number;
  ino: bigint;
  size: bigint;
  blocks: bigint;
  atimeSec: bigint;
  atimeNsec: number;
  btimeSec: bigint;
  btimeNsec: number;
  ctimeSec: bigint;
  ctimeNsec: number;
  mtimeSec: bigint;
  mtimeNsec: number;
  rdevMajor: number;
  rdevMinor: number;
  devMajor: number;
  devMinor: number;
}

const stxBuf = new Uint8Array(256);
const stxView = new DataView(stxBuf.buffer);

/** statx(2) of `path` under `dirfd` (`''` with AT_EMPTY_PATH: the descriptor itself); minus the errno on failure. */
export function statx(dirfd: number, path: Path, flags: number, mask = F.STATX_BASIC_STATS | F.STATX_BTIME): Statx | number {
  const r = raw.statx(dirfd, typeof path === 'string' ? path : cpath(path), flags, mask, stxBuf);
  if (r < 0) return -koffi.errno();
  const v = stxView;
  return {
    mask: v.getUint32(0, true),
    blksize: v.getUint32(4, true),
    nlink: v.getUint32(16, true),
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    mode: v.getUint16(28, true),
    ino: v.getBigUint64(32, true),
    size: v.getBigUint64(40, true),
    blocks: v.getBigUint64(48, true),
    atimeSec: v.getBigInt64(64, true),
    atimeNsec: v.getUint32(72, true),
    btimeSec: v.getBigInt64(80, true),
    btimeNsec: v.getUint32(88, true),
    ctimeSec: v.getBigInt64(96, true),
    ctimeNsec: v.getUint32(104, true),
    mtimeSec: v.getBigInt64(112, true),
    mtimeNsec: v.getUint32(120, true),
    rdevMajor: v.getUint32(128, true),
    rdevMinor: v.getUint32(132, true),
    devMajor: v.getUint32(136, true),
    devMinor: v.getUint32(140, true),
  };
}

/** statx of the descriptor itself, never following a symlink it refers to. */
export function fstat(fd: number): Statx | number {
  return statx(fd, '', F.AT_EMPTY_PATH | F.AT_SYMLINK_NOFOLLOW);
}

/** mkdirat(2). */
export function mkdirat(dirfd: number, path: Path, mode: number): number {
  return minusErrno(raw.mkdirat(dirfd, typeof path === 'string' ? path : cpath(path), mode));
}

/** mknodat(2) with device number 0 (the Gofer makes only regular files and fifos). */
export function mknodat(dirfd: number, path: Path, mode: number): number {
  return minusErrno(raw.mknodat(dirfd, typeof path === 'string' ? path : cpath(path), mode, 0));
}

/** unlinkat(2). */
export function unlinkat(dirfd: number, path: Path, flags: number): number {
  return minusErrno(raw.unlinkat(dirfd, typeof path === 'string' ? path : cpath(path), flags));
}

/** renameat2(2). */
export function renameat2(olddir: number, oldpath: Path, newdir: number, newpath: Path, flags = 0): number {
  const o = typeof oldpath === 'string' ? oldpath : cpath(oldpath);
  const n = typeof newpath === 'string' ? newpath : cpath(newpath);
  return minusErrno(raw.renameat2(olddir, o, newdir, n, flags));
}

/** symlinkat(2). */
export function symlinkat(target: Path, dirfd: number, path: Path): number {
  const t = typeof target === 'string' ? target : cpath(target);
  return minusErrno(raw.symlinkat(t, dirfd, typeof path === 'string' ? path : cpath(path)));
}

const linkBuf = new Uint8Array(4096);

/** readlinkat(2): the link's target bytes, or minus the errno. */
export function readlinkat(dirfd: number, path: Path): Uint8Array | number {
  const r = raw.readlinkat(dirfd, typeof path === 'string' ? path : cpath(path), linkBuf, linkBuf.length);
  if (r < 0) return -koffi.errno();
  return linkBuf.slice(0, r);
}

/** linkat(2). */
export function linkat(olddir: number, oldpath: Path, newdir: number, newpath: Path, flags: number): number {
  const o = typeof oldpath === 'string' ? oldpath : cpath(oldpath);
  const n = typeof newpath === 'string' ? newpath : cpath(newpath);
  return minusErrno(raw.linkat(olddir, o, newdir, n, flags));
}

/** fchownat(2); -1 (as unsigned) leaves an id unchanged. */
export function fchownat(dirfd: number, path: Path, uid: number, gid: number, flags: number): number {
  return minusErrno(raw.fchownat(dirfd, typeof path === 'string' ? path : cpath(path), uid >>> 0, gid >>> 0, flags));
}

let fchmodat2Missing = false;

/**
 * chmod of what `fd` refers to, O_PATH descriptors included: fchmodat2(fd, "", AT_EMPTY_PATH) (Linux 6.6+);
 * -ENOSYS on older kernels.
 */
export function fchmodPath(fd: number, mode: number): number {
  if (fchmodat2Missing) return -38;
  const r = raw.fchmodat2(F.SYS_fchmodat2, fd, '', mode, F.AT_EMPTY_PATH);
  if (r >= 0) return r;
  const e = koffi.errno();
  if (e === 38) fchmodat2Missing = true;
  return -e;
}

/** fchmodat(2) (follows symlinks: AT_SYMLINK_NOFOLLOW is not supported by Linux's fchmodat). */
export function fchmodat(dirfd: number, path: Path, mode: number): number {
  return minusErrno(raw.fchmodat(dirfd, typeof path === 'string' ? path : cpath(path), mode, 0));
}

/** fchmod(2) on an open (not O_PATH) descriptor. */
export function fchmod(fd: number, mode: number): number {
  return minusErrno(raw.fchmod(fd, mode));
}

const times = new Uint8Array(32);
const timesView = new DataView(times.buffer);

/** utimensat(2) with access and modification times (nanoseconds may be UTIME_NOW or UTIME_OMIT). */
export function utimensat(
  dirfd: number,
  path: Path,
  atimeSec: bigint,
  atimeNsec: number,
  mtimeSec: bigint,
  mtimeNsec: number,
  flags: number,
): number {
  timesView.setBigInt64(0, atimeSec, true);
  timesView.setBigInt64(8, BigInt(atimeNsec), true);
  timesView.setBigInt64(16, mtimeSec, true);
  timesView.setBigInt64(24, BigInt(mtimeNsec), true);
  return minusErrno(raw.utimensat(dirfd, typeof path === 'string' ? path : cpath(path), times, flags));
}

/** ftruncate(2). */
export function ftruncate(fd: number, length: bigint): number {
  return minusErrno(raw.ftruncate(fd, length));
}

/** getdents64(2) into `buf`: bytes filled, 0 at the end, or minus the errno. */
export function getdents64(fd: number, buf: Uint8Array): number {
  return minusErrno(raw.getdents64(fd, buf, buf.length));
}

/** lseek(2) to an absolute offset (directory cookies included). */
export function seek(fd: number, offset: bigint): number {
  const r = raw.lseek(fd, offset, F.SEEK_SET);
  return r < 0n ? -koffi.errno() : 0;
}

/** What fstatfs(2) reports. */
export interface Statfs {
  type: number;
  bsize: number;
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
  fsid: bigint;
  namelen: number;
}

/** fstatfs(2) (works on O_PATH descriptors). */
export function fstatfs(fd: number): Statfs | number {
  const b = new Uint8Array(120);
  if (raw.fstatfs(fd, b) < 0) return -koffi.errno();
  const v = new DataView(b.buffer);
  return {
    type: Number(v.getBigInt64(0, true) & 0xffffffffn),
    bsize: Number(v.getBigInt64(8, true)),
    blocks: v.getBigUint64(16, true),
    bfree: v.getBigUint64(24, true),
    bavail: v.getBigUint64(32, true),
    files: v.getBigUint64(40, true),
    ffree: v.getBigUint64(48, true),
    fsid: v.getBigUint64(56, true),
    namelen: Number(v.getBigInt64(64, true)),
  };
}

/** fsync(2), or fdatasync(2) when `dataOnly`. */
export function fsync(fd: number, dataOnly: boolean): number {
  return minusErrno(dataOnly ? raw.fdatasync(fd) : raw.fsync(fd));
}

/** A byte-range lock as `struct flock` carries it. */
export interface Flock {
  type: number;
  start: bigint;
  length: bigint;
  pid: number;
}

/** fcntl(F_OFD_SETLK / F_OFD_GETLK): open-file-description locks, owned by the descriptor, not the process. */
export function ofdLock(fd: number, cmd: number, lock: Flock): Flock | number {
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  v.setInt16(0, lock.type, true);
  v.setInt16(2, F.SEEK_SET, true);
  v.setBigInt64(8, lock.start, true);
  v.setBigInt64(16, lock.length, true);
  v.setInt32(24, 0, true);
  if (raw.fcntlPtr(fd, cmd, b) < 0) return -koffi.errno();
  return { type: v.getInt16(0, true), start: v.getBigInt64(8, true), length: v.getBigInt64(16, true), pid: v.getInt32(24, true) };
}

/** fgetxattr(2): the value's bytes (a size probe first), or minus the errno. */
export function fgetxattr(fd: number, name: Path): Uint8Array | number {
  const n = typeof name === 'string' ? name : cpath(name);
  for (let tries = 0; tries < 4; tries++) {
    const size = raw.fgetxattr(fd, n, null, 0);
    if (size < 0) return -koffi.errno();
    const buf = new Uint8Array(size);
    const r = raw.fgetxattr(fd, n, buf, size);
    if (r >= 0) return buf.subarray(0, r);
    const e = koffi.errno();
    if (e !== 34) return -e; // ERANGE: the value grew between the calls
  }
  return -34;
}

/** fsetxattr(2). */
export function fsetxattr(fd: number, name: Path, value: Uint8Array, flags: number): number {
  return minusErrno(raw.fsetxattr(fd, typeof name === 'string' ? name : cpath(name), value, value.length, flags));
}

/** fremovexattr(2). */
export function fremovexattr(fd: number, name: Path): number {
  return minusErrno(raw.fremovexattr(fd, typeof name === 'string' ? name : cpath(name)));
}

/** flistxattr(2): the NUL-separated names, or minus the errno. */
export function flistxattr(fd: number): Uint8Array | number {
  for (let tries = 0; tries < 4; tries++) {
    const size = raw.flistxattr(fd, null, 0);
    if (size < 0) return -koffi.errno();
    const buf = new Uint8Array(size);
    const r = raw.flistxattr(fd, buf, size);
    if (r >= 0) return buf.subarray(0, r);
    const e = koffi.errno();
    if (e !== 34) return -e;
  }
  return -34;
}

/** pread(2) into `buf`. */
export function pread(fd: number, buf: Uint8Array, offset: bigint): number {
  return minusErrno(raw.pread(fd, buf, buf.length, offset));
}

/** RWF_NOWAIT (linux/fs.h): preadv2 fails with EAGAIN rather than wait for the disk. */
const RWF_NOWAIT = 0x8;
// The one iovec `preadNowait` hands the kernel; its fields are rewritten per call.
const nowaitIov = new Uint8Array(16);
const nowaitIovView = new DataView(nowaitIov.buffer);

/**
 * pread(2) into `buf` only if the kernel can answer without waiting for the disk (preadv2 with RWF_NOWAIT: the
 * bytes are in the page cache); -EAGAIN when it cannot, or when `buf` has no address to give the kernel. The
 * count may be short of `buf.length` where only part of the range is cached (and 0 at the end of the file).
 */
export function preadNowait(fd: number, buf: Uint8Array, offset: bigint): number {
  const at = memoryAddress(buf);
  if (at < 0) return -ERRNO.EAGAIN!;
  nowaitIovView.setBigUint64(0, BigInt(at), true);
  nowaitIovView.setBigUint64(8, BigInt(buf.length), true);
  return minusErrno(raw.preadv2(fd, nowaitIov, 1, offset, RWF_NOWAIT));
}

/** pwrite(2) of `buf`. */
export function pwrite(fd: number, buf: Uint8Array, offset: bigint): number {
  return minusErrno(raw.pwrite(fd, buf, buf.length, offset));
}
