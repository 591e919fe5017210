/**
 * Confinement of every lookup to the exported root. The server holds descriptors, never paths: a fid is an O_PATH
 * descriptor of a file already inside the root, and each step from it is one checked component, so renames and
 * symlink swaps between steps cannot lead out.
 *
 * - One component (`child`): openat2(dirfd, name, O_PATH|O_NOFOLLOW, RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
 *   RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV). Symlinks are returned, never followed (9P clients read and resolve
 *   them themselves); mount points inside the root are refused with EXDEV.
 * - `..` (`parent`): the root's parent is the root; otherwise the kernel's `..`, then a climb to the root to prove
 *   the result is still below it (a directory moved out of the tree by someone else gives ENOENT).
 * - A whole path (`path`, for Tattach's aname): openat2(root, path, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS|
 *   RESOLVE_NO_XDEV), so absolute symlinks and `..` are clamped at the root as if it were `/`.
 * Where openat2 refuses (ENOSYS: an old kernel or a seccomp filter; EAGAIN: the kernel saw a concurrent rename
 * during `..` resolution) each falls back to a component-by-component O_PATH|O_NOFOLLOW walk with the same rules
 * done by hand: symlinks read and re-rooted, `..` popped from a stack of held ancestors, device changes refused.
 */
import * as fs from '../../lib/fs.ts';
import { ERRNO } from '../../lib/libc.ts';

const { F } = fs;
const { EINVAL, ENAMETOOLONG, ENOENT, ENOSYS, EAGAIN, EXDEV, ELOOP, ENOTDIR } = ERRNO as Record<string, number>;

const ONE = F.RESOLVE_BENEATH | F.RESOLVE_NO_SYMLINKS | F.RESOLVE_NO_MAGICLINKS | F.RESOLVE_NO_XDEV;
const IN_ROOT = F.RESOLVE_IN_ROOT | F.RESOLVE_NO_MAGICLINKS | F.RESOLVE_NO_XDEV;
const PATH_FLAGS = F.O_PATH | F.O_NOFOLLOW | F.O_CLOEXEC;
const MAX_SYMLINKS = 40; // Linux's MAXSYMLINKS
const MAX_DEPTH = 4096;

/** 0 when `name` is one path component a client may create, look up or remove; otherwise the errno. */
export function checkName(name: Uint8Array, allowDots = false): number {
  if (name.length === 0) return ENOENT;
  if (name.length > 255) return ENAMETOOLONG;
  if (!allowDots && name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e))) return EINVAL;
  for (let i = 0; i < name.length; i++) if (name[i] === 0x2f || name[i] === 0) return EINVAL;
  return 0;
}

/** Whether `name` is "..". */
export function isDotDot(name: Uint8Array): boolean {
  return name.length === 2 && name[0] === 0x2e && name[1] === 0x2e;
}

/** Whether `name` is ".". */
export function isDot(name: Uint8Array): boolean {
  return name.length === 1 && name[0] === 0x2e;
}

interface Identity {
  ino: bigint;
  devMajor: number;
  devMinor: number;
}

function identity(fd: number): Identity | number {
  const st = fs.fstat(fd);
  if (typeof st === 'number') return st;
  return { ino: st.ino, devMajor: st.devMajor, devMinor: st.devMinor };
}

/** Lookups confined to one root directory, given as an O_PATH descriptor the resolver owns from then on. */
export class Resolver {
  private readonly root: Identity;

  /**
   * @param rootFd the root's descriptor (O_PATH|O_DIRECTORY).
   * @param useOpenat2 false forces the hand-made walk (tests run the escape attempts against both).
   */
  constructor(
    readonly rootFd: number,
    private readonly useOpenat2 = true,
  ) {
    const id = identity(rootFd);
    if (typeof id === 'number') throw new Error(`root descriptor: errno ${-id}`);
    this.root = id;
  }

  /** Whether `fd` refers to the root directory itself. */
  isRoot(fd: number): boolean {
    const id = identity(fd);
    return typeof id !== 'number' && this.same(id, this.root);
  }

  private same(a: Identity, b: Identity): boolean {
    return a.ino === b.ino && a.devMajor === b.devMajor && a.devMinor === b.devMinor;
  }

  /** The component `name` of directory `dirfd` as a new O_PATH descriptor, or minus the errno. */
  child(dirfd: number, name: Uint8Array): number {
    const e = checkName(name);
    if (e !== 0) return -e;
    if (this.useOpenat2) {
      const fd = fs.openat2(dirfd, name, PATH_FLAGS, 0, ONE);
      if (fd !== -ENOSYS && fd !== -EAGAIN) return fd;
    }
    return this.childByHand(dirfd, name);
  }

  private childByHand(dirfd: number, name: Uint8Array): number {
    const e = checkName(name);
    if (e !== 0) return -e;
    const fd = fs.openat(dirfd, name, PATH_FLAGS);
    if (fd < 0) return fd;
    const a = identity(dirfd);
    const b = identity(fd);
    if (typeof a === 'number' || typeof b === 'number' || a.devMajor !== b.devMajor || a.devMinor !== b.devMinor) {
      fs.close(fd);
      return typeof a === 'number' ? a : typeof b === 'number' ? b : -EXDEV
    }
    return fd;
  }

  /** The parent of directory `dirfd`, clamped at the root, as a new O_PATH descriptor, or minus the errno. */
  parent(dirfd: number): number {
    if (this.isRoot(dirfd)) return fs.dup(this.rootFd);
    const up = fs.openat(dirfd, '..', F.O_PATH | F.O_DIRECTORY | F.O_CLOEXEC);
    if (up < 0) return up;
    const ok = this.below(up);
    if (ok !== 0) {
      fs.close(up);
      return -ok;
    }
    return up;
  }

  /** 0 when the directory `fd` is the root or below it (climbing `..` reaches the root), else the errno. */
  private below(fd: number): number {
    let cur = fs.dup(fd);
    if (cur < 0) return -cur;
    try {
      for (let depth = 0; depth < MAX_DEPTH; depth++) {
        const id = identity(cur);
        if (typeof id === 'number') return -id;
        if (this.same(id, this.root)) return 0;
        if (id.devMajor !== this.root.devMajor || id.devMinor !== this.root.devMinor) return EXDEV;
        const next = fs.openat(cur, '..', F.O_PATH | F.O_DIRECTORY | F.O_CLOEXEC);
        if (next < 0) return -next;
        const nid = identity(next);
        fs.close(cur);
        cur = next;
        if (typeof nid !== 'number' && nid.ino === id.ino) return ENOENT; // the file system's own root: left the tree
      }
      return ELOOP;
    } finally {
      fs.close(cur);
    }
  }

  /** A whole path resolved inside the root as RESOLVE_IN_ROOT does, following symlinks; an O_PATH descriptor. */
  path(p: Uint8Array): number {
    if (this.useOpenat2) {
      const fd = fs.openat2(this.rootFd, p.length === 0 ? '.' : p, F.O_PATH | F.O_CLOEXEC, 0, IN_ROOT);
      if (fd !== -ENOSYS && fd !== -EAGAIN) return fd;
    }
    return this.pathByHand(p);
  }

  private pathByHand(p: Uint8Array): number {
    const held: number[] = [];
    let cur = fs.dup(this.rootFd);
    if (cur < 0) return cur;
    let rest = split(p);
    let links = 0;
    const fail = (e: number) => {
      fs.close(cur);
      for (const fd of held) fs.close(fd);
      return e;
    };
    while (rest.length > 0) {
      const comp = rest.shift()!;
      if (comp.length === 0 || isDot(comp)) continue;
      if (isDotDot(comp)) {
        if (held.length > 0) {
          fs.close(cur);
          cur = held.pop()!;
        }
        continue;
      }
      const next = this.childByHand(cur, comp);
      if (next < 0) return fail(next);
      const st = fs.fstat(next);
      if (typeof st === 'number') {
        fs.close(next);
        return fail(st);
      }
      if ((st.mode & F.S_IFMT) === F.S_IFLNK) {
        const target = fs.readlinkat(next, '');
        fs.close(next);
        if (typeof target === 'number') return fail(target);
        if (++links > MAX_SYMLINKS) return fail(-ELOOP);
        if (target[0] === 0x2f) {
          for (const fd of held) fs.close(fd);
          held.length = 0;
          fs.close(cur);
          cur = fs.dup(this.rootFd);
        }
        rest = [...split(target), ...rest];
        continue;
      }
      if (rest.some((c) => c.length > 0 && !isDot(c)) && (st.mode & F.S_IFMT) !== F.S_IFDIR) {
        fs.close(next);
        return fail(-ENOTDIR);
      }
      held.push(cur);
      cur = next;
      if (held.length > MAX_DEPTH) return fail(-ELOOP);
    }
    for (const fd of held) fs.close(fd);
    return cur;
  }
}

function split(p: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= p.length; i++) {
    if (i === p.length || p[i] === 0x2f) {
      out.push(p.subarray(start, i));
      start = i + 1;
    }
  }
  return out;
}
