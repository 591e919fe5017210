/**
 * The file operations behind each 9P2000.L request, for one session (one connection's fids). A handler answers
 * with the R-message body, a ready frame (Rread, read in place), or an errno, which the connection sends as
 * Rlerror. Metadata calls are synchronous koffi calls (about a microsecond each); reads, writes and fsync run on
 * libuv's thread pool through Node's fd-based `fs`, so they finish out of order and never stall the other
 * clients. No handler takes a path from the client: names are single components checked by `checkName`, and every
 * lookup goes through the `Resolver`.
 */
import { read as fsRead, write as fsWrite, fsync as fsFsync, fdatasync as fsFdatasync } from 'node:fs';
import * as fs from '../../lib/fs.ts';
import { ERRNO } from '../../lib/libc.ts';
import { finishRread, RREAD_HEADER, rreadFrame } from '../p9/codec.ts';
import { direntSize, writeDirent } from '../p9/dirent.ts';
import {
  GETATTR,
  LOCK,
  NOFID,
  QT,
  SETATTR,
  type Attrs,
  type Body,
  type Message,
  type Qid,
  type ReplyOf,
  type TName,
} from '../p9/messages.ts';
import { kindOf, Node, OpenFile, type Fid, type Kind } from './fids.ts';
import type { IdMap } from './idmap.ts';
import { checkName, isDot, isDotDot, type Resolver } from './resolve.ts';

const { F } = fs;
const E = ERRNO as Record<string, number>;
const { EBADF, EBUSY, EEXIST, EFBIG, EINVAL, EIO, EISDIR, ELOOP, EMFILE, ENODATA, ENOENT, ENOTDIR } = E;
const { EOPNOTSUPP, EPERM, EPROTO, EROFS, E2BIG, ESTALE } = E;

/** What every session of one server shares. */
export interface ServerConfig {
  readonly resolver: Resolver;
  readonly readOnly: boolean;
  readonly ids: IdMap;
  /** An O_PATH descriptor of /proc/self/fd: reopening a fid's O_PATH descriptor for I/O goes through it. */
  readonly procFd: number;
  /** Fids one connection may hold. */
  readonly maxFids: number;
}

/** A handler's answer: the reply body, a complete frame (the tag is set by the caller), or an errno. */
export type Answer<T extends TName> = (Body<ReplyOf<T>> & { fds?: number[]; release?: () => void }) | { frame: Uint8Array } | number;

type Handler<T extends TName> = (s: Session, m: Message<T>) => Answer<T> | Promise<Answer<T>>;

const XATTR_MAX = 65536; // Linux's XATTR_SIZE_MAX
const USER_PREFIX = new TextEncoder().encode('user.');
const OPEN_PASS = F.O_ACCMODE | F.O_TRUNC | F.O_APPEND | F.O_DSYNC | F.O_DIRECT | F.O_SYNC;
const running = process.getuid?.() === 0;

/** One connection's fids and negotiated size. */
export class Session {
  readonly fids = new Map<number, Fid>();
  /** The negotiated maximum message size. */
  msize = 0;
  /**
   * Whether the 9P2000.L.tsvisor dialect was agreed: replies may carry descriptors, and its own requests
   * (Tlcreateat) are served.
   */
  donate = false;

  constructor(readonly cfg: ServerConfig) {}

  /** The fid, or undefined. */
  fid(n: number): Fid | undefined {
    return this.fids.get(n);
  }

  /** Installs a new fid; the errno when the number is taken or the table is full. */
  add(n: number, fid: Fid): number {
    if (n === NOFID) return EBADF;
    if (this.fids.has(n)) return EEXIST;
    if (this.fids.size >= this.cfg.maxFids) return EMFILE;
    this.fids.set(n, fid);
    return 0;
  }

  /** 0 when both fids, distinct, could be added now (see `add`); else the errno adding them would meet. */
  canAdd(a: number, b: number): number {
    if (a === NOFID || b === NOFID) return EBADF;
    if (a === b || this.fids.has(a) || this.fids.has(b)) return EEXIST;
    if (this.fids.size + 2 > this.cfg.maxFids) return EMFILE;
    return 0;
  }

  /** Forgets a fid and releases what it holds. */
  drop(n: number): Fid | undefined {
    const f = this.fids.get(n);
    if (!f) return undefined;
    this.fids.delete(n);
    f.open?.close();
    f.node.release();
    return f;
  }

  /** Releases every fid (Tversion's reset, or the connection's end). */
  reset(): void {
    for (const n of [...this.fids.keys()]) this.drop(n);
  }
}

function qidOf(kindMode: number, ino: bigint): Qid {
  return kindQid(kindOf(kindMode), ino);
}

function kindQid(k: Kind, ino: bigint): Qid {
  return { type: k === 'dir' ? QT.DIR : k === 'symlink' ? QT.SYMLINK : QT.FILE, version: 0, path: ino };
}

/** The qid of `name` in the directory `fd` (what Tmkdir, Tmknod and Tsymlink made). */
function statQid(fd: number, name: Uint8Array): Qid | number {
  const st = fs.statx(fd, name, F.AT_SYMLINK_NOFOLLOW);
  if (typeof st === 'number') return -st;
  return qidOf(st.mode, st.ino);
}

/** A node's qid, from what its descriptor was when opened (kind and inode never change for it): no fstat. */
function nodeQid(n: Node): Qid {
  return kindQid(n.kind, n.ino);
}

function startsWith(b: Uint8Array, prefix: Uint8Array): boolean {
  if (b.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (b[i] !== prefix[i]) return false;
  return true;
}

/** A new node for an O_PATH descriptor just opened under `parent` as `name`. */
function nodeFor(fd: number, parent: Node | undefined, name: Uint8Array | undefined): Node | number {
  const st = fs.fstat(fd);
  if (typeof st === 'number') {
    fs.close(fd);
    return -st;
  }
  return new Node(fd, kindOf(st.mode), st.ino, parent, name?.slice());
}

/**
 * Opens a fid's file for I/O. Directories through openat(fd, "."); regular files by reopening the O_PATH
 * descriptor through /proc/self/fd, which reaches exactly the inode the fid holds. Nothing else is ever opened:
 * device nodes, fifos and sockets get EPERM (the sandbox's own kernel side serves those).
 */
function openNode(s: Session, node: Node, flags: number): number {
  if (node.kind === 'dir') {
    if ((flags & F.O_ACCMODE) !== F.O_RDONLY) return -EISDIR;
    return fs.openat(node.fd, '.', F.O_RDONLY | F.O_DIRECTORY | F.O_CLOEXEC);
  }
  if (node.kind === 'symlink') return -ELOOP;
  if (node.kind !== 'file') return -EPERM;
  return fs.openat(s.cfg.procFd, String(node.fd), (flags & OPEN_PASS) | F.O_CLOEXEC | F.O_NOCTTY | F.O_LARGEFILE);
}

/** The owner ids a new file of `fid`'s user gets, on the host; EINVAL when either has no mapping. */
function hostOwner(s: Session, fid: Fid, gid: number): [number, number] | number {
  const u = s.cfg.ids.toHost(fid.uid);
  const g = s.cfg.ids.toHost(gid);
  if (u === undefined || g === undefined) return EINVAL;
  return [u, g];
}

/**
 * Gives the file just made as `io` to `owner`, and returns its attributes after (or -errno). The server creates as
 * root, so a new file is root's unless a set-group-id directory gave it its group: the chown is skipped when the file
 * already has that owner and group and no set-id bit (a chown would clear S_ISUID, so a set-id file is still
 * given, as before). `run --rootfs` as root attaches as root: one fchownat less per created file, on the path a
 * CREATE waits for.
 */
function ownNew(io: number, owner: [number, number]): fs.Statx | number {
  const st = fs.fstat(io);
  if (typeof st === 'number' || (st.uid === owner[0] && st.gid === owner[1] && (st.mode & 0o6000) === 0)) return st;
  chownNew(io, '', owner);
  return fs.fstat(io);
}

/** Gives a just-created file to the fid's user (the server itself creates as root). */
function chownNew(dirfd: number, name: Uint8Array | '', owner: [number, number]): void {
  if (!running) return;
  fs.fchownat(dirfd, name, owner[0], owner[1], F.AT_SYMLINK_NOFOLLOW | (name === '' ? F.AT_EMPTY_PATH : 0));
}

function needDir(s: Session, n: number): Fid | number {
  const f = s.fid(n);
  if (!f) return EBADF;
  if (f.node.kind !== 'dir') return ENOTDIR;
  return f;
}

/** A descriptor that can read or write the fid's extended attributes (O_PATH descriptors cannot). */
function xattrFd(s: Session, f: Fid): [number, boolean] | number {
  if (f.open) return [f.open.fd, false];
  if (f.node.kind !== 'file' && f.node.kind !== 'dir') return EOPNOTSUPP;
  const fd = openNode(s, f.node, F.O_RDONLY);
  return fd < 0 ? -fd : [fd, true];
}

/**
 * The create of Tlcreate and Tlcreateat: `name` made in the directory `d` with `mode`, opened with `flags` and given
 * to `d`'s user and `gid`; without O_EXCL, an existing regular file of that name is opened instead. The opened
 * descriptor, the flags it was opened with, and its attributes once given; or an errno.
 */
function createFile(
  s: Session,
  d: Fid,
  m: { readonly name: Uint8Array; readonly flags: number; readonly mode: number; readonly gid: number },
): { fd: number; flags: number; st: fs.Statx } | number {
  const e = checkName(m.name);
  if (e) return e;
  const owner = hostOwner(s, d, m.gid);
  if (typeof owner === 'number') return owner;
  const how = F.O_RDWR === (m.flags & F.O_ACCMODE) ? F.O_RDWR : m.flags & F.O_ACCMODE;
  const flags = how | (m.flags & (OPEN_PASS & ~F.O_ACCMODE));
  const resolve = F.RESOLVE_BENEATH | F.RESOLVE_NO_SYMLINKS | F.RESOLVE_NO_MAGICLINKS | F.RESOLVE_NO_XDEV;
  // Exclusive create first: an existing name is then looked up and opened only if it is a regular file, so an
  // existing device node or fifo is never opened through O_CREAT.
  const excl = flags | F.O_CREAT | F.O_EXCL | F.O_NOFOLLOW | F.O_CLOEXEC;
  let io = fs.openat2(d.node.fd, m.name, excl, m.mode & 0o7777, resolve);
  if (io === -E.ENOSYS!) io = fs.openat(d.node.fd, m.name, excl, m.mode & 0o7777);
  let created = io >= 0;
  if (io === -EEXIST && !(m.flags & F.O_EXCL)) {
    const pfd = s.cfg.resolver.child(d.node.fd, m.name);
    if (pfd < 0) return -pfd;
    const n = nodeFor(pfd, d.node, m.name);
    if (typeof n === 'number') return n;
    io = n.kind === 'dir' ? -EISDIR : openNode(s, n, flags); // as open(O_CREAT) of a directory is
    n.release();
    created = false;
  }
  if (io < 0) return -io;
  const st = created ? ownNew(io, owner) : fs.fstat(io);
  if (typeof st === 'number') {
    fs.close(io);
    return -st;
  }
  return { fd: io, flags, st };
}

/** A file's attributes as Rgetattr gives them, from its statx; owners mapped to the client's ids. */
function attrsOf(s: Session, st: fs.Statx): Attrs {
  const ids = s.cfg.ids;
  return {
    valid: GETATTR.BASIC | (st.mask & F.STATX_BTIME ? GETATTR.BTIME : 0n),
    qid: qidOf(st.mode, st.ino),
    mode: st.mode,
    uid: ids.toClient(st.uid),
    gid: ids.toClient(st.gid),
    nlink: BigInt(st.nlink),
    rdev: makedev(st.rdevMajor, st.rdevMinor),
    size: st.size,
    blksize: BigInt(st.blksize),
    blocks: st.blocks,
    atimeSec: BigInt.asUintN(64, st.atimeSec),
    atimeNsec: BigInt(st.atimeNsec),
    mtimeSec: BigInt.asUintN(64, st.mtimeSec),
    mtimeNsec: BigInt(st.mtimeNsec),
    ctimeSec: BigInt.asUintN(64, st.ctimeSec),
    ctimeNsec: BigInt(st.ctimeNsec),
    btimeSec: BigInt.asUintN(64, st.btimeSec),
    btimeNsec: BigInt(st.btimeNsec),
    gen: 0n,
    dataVersion: 0n,
  };
}

const handlers: { [T in TName]?: Handler<T> } = {
  Tversion: () => EPROTO, // answered by the connection, which owns the negotiation
  // No authentication: ENOENT is what diod answers when none is required, and what its clients and Linux's v9fs
  // take to mean "attach with afid = NOFID".
  Tauth: () => ENOENT,

  Tattach(s, m) {
    if (m.afid !== NOFID) return EINVAL;
    const isRoot = m.aname.length === 0 || (m.aname.length === 1 && m.aname[0] === 0x2f);
    const fd = isRoot ? fs.dup(s.cfg.resolver.rootFd) : s.cfg.resolver.path(m.aname);
    if (fd < 0) return -fd;
    const node = nodeFor(fd, undefined, undefined);
    if (typeof node === 'number') return node;
    if (node.kind !== 'dir') {
      node.release();
      return ENOTDIR;
    }
    const uid = m.nUname === NOFID ? 65534 : m.nUname;
    const e = s.add(m.fid, { node, uid });
    if (e) {
      node.release();
      return e;
    }
    return { type: 'Rattach', qid: nodeQid(node) };
  },

  Twalk(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    if (m.wnames.length > 16) return EINVAL;
    if (m.newfid !== m.fid && s.fids.has(m.newfid)) return EEXIST;
    let node = f.node.ref();
    const wqids: Qid[] = [];
    for (const name of m.wnames) {
      if (node.kind !== 'dir') {
        node.release();
        if (wqids.length === 0) return ENOTDIR;
        return { type: 'Rwalk', wqids };
      }
      let fd: number;
      let next: Node | number;
      if (isDot(name)) {
        next = node.ref(); // diod's tools walk "." (Linux's v9fs never does)
      } else if (isDotDot(name)) {
        fd = s.cfg.resolver.parent(node.fd);
        next = fd < 0 ? -fd : nodeFor(fd, undefined, undefined);
      } else {
        fd = s.cfg.resolver.child(node.fd, name);
        next = fd < 0 ? -fd : nodeFor(fd, node, name);
      }
      if (typeof next === 'number') {
        node.release();
        if (wqids.length === 0) return next;
        return { type: 'Rwalk', wqids };
      }
      node.release();
      node = next;
      wqids.push(nodeQid(node));
    }
    if (m.newfid === m.fid) {
      f.node.release();
      f.node = node;
      return { type: 'Rwalk', wqids };
    }
    const e = s.add(m.newfid, { node, uid: f.uid });
    if (e) {
      node.release();
      return e;
    }
    return { type: 'Rwalk', wqids };
  },

  Tclunk(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    let e = 0;
    if (f.xattr?.mode === 'write') e = finishXattr(s, f);
    s.drop(m.fid);
    return e || { type: 'Rclunk' };
  },

  Tremove(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    // An attribute fid (Txattrwalk/Txattrcreate) stands for a value, not for its file: nothing to remove.
    const e = s.cfg.readOnly ? EROFS : f.xattr ? EBADF : removeNode(f.node);
    s.drop(m.fid); // the fid is clunked whether or not the remove succeeded
    return e || { type: 'Rremove' };
  },

  Tlopen(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    if (f.open || f.xattr) return EBADF;
    const acc = m.flags & F.O_ACCMODE;
    if (s.cfg.readOnly && (acc !== F.O_RDONLY || m.flags & F.O_TRUNC)) return EROFS;
    const fd = openNode(s, f.node, m.flags);
    if (fd < 0) return -fd;
    f.open = new OpenFile(fd, m.flags & OPEN_PASS);
    return { type: 'Rlopen', qid: nodeQid(f.node), iounit: 0, ...donation(s, f.node, f.open) };
  },

  Tlcreate(s, m) {
    if (s.cfg.readOnly) return EROFS;
    const d = needDir(s, m.fid);
    if (typeof d === 'number') return d;
    if (d.open || d.xattr) return EBADF;
    const c = createFile(s, d, m);
    if (typeof c === 'number') return c;
    // The node keeps the descriptor the file was opened with (no O_PATH copy); the open file shares it.
    const node = new Node(c.fd, kindOf(c.st.mode), c.st.ino, d.node, m.name.slice());
    d.node.release();
    d.node = node;
    d.open = new OpenFile(c.fd, c.flags, node.ref());
    return { type: 'Rlcreate', qid: nodeQid(node), iounit: 0, ...donation(s, node, d.open) };
  },

  // The dialect's create: Tlcreate on a clone of `dfid` as `newfid`, a walk of `dfid` to the name as `nodefid`, and
  // Tgetattr of both new file and directory, in one request (gofer/README.md, "One request per created file").
  Tlcreateat(s, m) {
    if (!s.donate) return EOPNOTSUPP; // a plain 9P2000.L session has no such message
    if (s.cfg.readOnly) return EROFS;
    const d = needDir(s, m.dfid);
    if (typeof d === 'number') return d;
    const e = s.canAdd(m.newfid, m.nodefid);
    if (e) return e;
    const c = createFile(s, d, m);
    if (typeof c === 'number') return c;
    // `nodefid` holds an O_PATH descriptor of its own, never the open's access: reopened from the created one, so
    // it is exactly that inode (a walk of the name could meet a file put there since).
    const path = fs.openat(s.cfg.procFd, String(c.fd), F.O_PATH | F.O_CLOEXEC);
    const dir = fs.fstat(d.node.fd);
    if (path < 0 || typeof dir === 'number') {
      fs.close(c.fd);
      if (path >= 0) fs.close(path);
      return path < 0 ? -path : -(dir as number);
    }
    const kind = kindOf(c.st.mode);
    const opened = new Node(c.fd, kind, c.st.ino, d.node, m.name.slice());
    const open = new OpenFile(c.fd, c.flags, opened.ref());
    s.add(m.newfid, { node: opened, uid: d.uid, open });
    s.add(m.nodefid, { node: new Node(path, kind, c.st.ino, d.node, m.name.slice()), uid: d.uid });
    return {
      type: 'Rlcreateat',
      qid: kindQid(kind, c.st.ino),
      iounit: 0,
      attr: attrsOf(s, c.st),
      dirAttr: attrsOf(s, dir),
      ...donation(s, opened, open),
    };
  },

  // A file made ahead of its name (the dialect's; gofer/README.md, "Files made ahead of their names"): O_TMPFILE in
  // the directory `dfid`, on its file system, with no name until Tlinktmp gives it one. Given up (its fids
  // clunked) it vanishes with its last descriptor, and nothing is left in the root.
  Tmktmp(s, m) {
    if (!s.donate) return EOPNOTSUPP;
    if (s.cfg.readOnly) return EROFS;
    const d = needDir(s, m.dfid);
    if (typeof d === 'number') return d;
    const e = s.canAdd(m.newfid, m.nodefid);
    if (e) return e;
    const owner = hostOwner(s, d, m.gid);
    if (typeof owner === 'number') return owner;
    const io = fs.openat(d.node.fd, '.', F.O_TMPFILE | F.O_RDWR | F.O_CLOEXEC, m.mode & 0o777);
    if (io < 0) return -io;
    const st = ownNew(io, owner);
    const path = fs.openat(s.cfg.procFd, String(io), F.O_PATH | F.O_CLOEXEC);
    if (typeof st === 'number' || path < 0) {
      fs.close(io);
      if (path >= 0) fs.close(path);
      return typeof st === 'number' ? -st : -path;
    }
    const opened = new Node(io, 'file', st.ino, d.node, undefined);
    const open = new OpenFile(io, F.O_RDWR, opened.ref());
    s.add(m.newfid, { node: opened, uid: d.uid, open });
    s.add(m.nodefid, { node: new Node(path, 'file', st.ino, d.node, undefined), uid: d.uid, madeAt: { sec: st.mtimeSec, nsec: st.mtimeNsec } });
    return { type: 'Rmktmp', qid: kindQid('file', st.ino), attr: attrsOf(s, st), ...donation(s, opened, open) };
  },

  // Names a Tmktmp file (`fid` unopened, `openfid` open): linked into `dfid` as `name`, given `mode`, and, while
  // nothing has written to it since it was made, the time `time` (when the client answered for its creation).
  Tlinktmp(s, m) {
    if (!s.donate) return EOPNOTSUPP;
    if (s.cfg.readOnly) return EROFS;
    const d = needDir(s, m.dfid);
    if (typeof d === 'number') return d;
    const f = s.fid(m.fid);
    const o = s.fid(m.openfid);
    if (!f?.madeAt || !o?.open || o.node.ino !== f.node.ino) return EBADF;
    const e = checkName(m.name);
    if (e) return e;
    // As Tlink: through our own /proc/self/fd link, which reaches exactly this inode (an O_TMPFILE made without
    // O_EXCL may be linked once).
    const r = fs.linkat(s.cfg.procFd, String(f.node.fd), d.node.fd, m.name, F.AT_SYMLINK_FOLLOW);
    if (r < 0) return -r;
    const made = f.madeAt;
    f.madeAt = undefined;
    f.node.reparent(d.node, m.name);
    o.node.reparent(d.node, m.name);
    const fd = o.open.fd;
    let st = fs.fstat(fd);
    if (typeof st === 'number') return -st;
    if ((st.mode & 0o7777) !== (m.mode & 0o7777)) fs.fchmod(fd, m.mode & 0o7777);
    if (st.mtimeSec === made.sec && st.mtimeNsec === made.nsec && m.timeNsec < 1000000000n) {
      const sec = BigInt.asIntN(64, m.timeSec);
      fs.utimensat(fd, '', sec, Number(m.timeNsec), sec, Number(m.timeNsec), F.AT_EMPTY_PATH);
    }
    st = fs.fstat(fd);
    const dir = fs.fstat(d.node.fd);
    if (typeof st === 'number') return -st;
    if (typeof dir === 'number') return -dir;
    return { type: 'Rlinktmp', attr: attrsOf(s, st), dirAttr: attrsOf(s, dir) };
  },

  Tread(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    const max = Math.min(m.count, s.msize - RREAD_HEADER);
    if (f.xattr) {
      if (f.xattr.mode !== 'read') return EBADF;
      const data = f.xattr.data;
      const start = m.offset >= BigInt(data.length) ? data.length : Number(m.offset);
      return { type: 'Rread', data: data.subarray(start, Math.min(data.length, start + max)) };
    }
    const o = f.open;
    if (!o) return EBADF;
    if (!o.readable) return EBADF;
    if (m.offset > 0x7fffffffffffffffn) return EINVAL;
    const frame = rreadFrame(max);
    // Bytes in the page cache are read at once, on this thread: a trip through libuv's thread pool costs more than
    // the copy (4 KiB random Treads ran at 0.42-0.66x diod's through the pool). A short read is asked again for
    // the rest, whose 0 is the end of the file (a small file read whole ends so). Whatever is not cached (EAGAIN)
    // goes to the pool, so a read from the disk never stalls the connection; so does any other failure (a file
    // system without RWF_NOWAIT, a fifo), for the pool's read to answer as it always did.
    let have = 0;
    for (;;) {
      const n = fs.preadNowait(o.fd, frame.subarray(RREAD_HEADER + have, RREAD_HEADER + max), m.offset + BigInt(have));
      if (n < 0) break;
      have += n;
      if (n === 0 || have === max) return { frame: finishRread(frame, 0, have) };
    }
    o.use();
    return new Promise((resolve) => {
      fsRead(o.fd, frame, RREAD_HEADER + have, max - have, m.offset + BigInt(have), (err, n) => {
        o.done();
        if (err) resolve(errnoOf(err));
        else resolve({ frame: finishRread(frame, 0, have + n) });
      });
    });
  },

  Twrite(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    if (f.xattr) {
      const x = f.xattr;
      if (x.mode !== 'write') return EBADF;
      if (m.offset + BigInt(m.data.length) > BigInt(x.data.length)) return E2BIG;
      x.data.set(m.data, Number(m.offset));
      x.written += m.data.length;
      return { type: 'Rwrite', count: m.data.length };
    }
    if (s.cfg.readOnly) return EROFS;
    const o = f.open;
    if (!o) return EBADF;
    if (!o.writable) return EBADF;
    if (m.offset > 0x7fffffffffffffffn) return EINVAL;
    if (m.offset > BigInt(Number.MAX_SAFE_INTEGER)) return EFBIG; // past 8 PiB: Node's fs takes a double
    o.use();
    return new Promise((resolve) => {
      // O_APPEND descriptors ignore the position, as pwrite(2) on Linux does.
      fsWrite(o.fd, m.data, 0, m.data.length, Number(m.offset), (err, n) => {
        o.done();
        resolve(err ? errnoOf(err) : { type: 'Rwrite', count: n });
      });
    });
  },

  Tfsync(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    const o = f.open;
    if (!o) return EBADF;
    o.use();
    return new Promise((resolve) => {
      const cb = (err: NodeJS.ErrnoException | null) => {
        o.done();
        resolve(err ? errnoOf(err) : { type: 'Rfsync' });
      };
      if (m.datasync) fsFdatasync(o.fd, cb);
      else fsFsync(o.fd, cb);
    });
  },

  Tgetattr(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    const st = fs.fstat(f.node.fd);
    if (typeof st === 'number') return -st;
    return { type: 'Rgetattr', ...attrsOf(s, st) };
  },

  Tsetattr(s, m) {
    if (s.cfg.readOnly) return EROFS;
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    const fd = f.node.fd;
    if (m.valid & SETATTR.MODE) {
      let r = fs.fchmodPath(fd, m.mode & 0o7777);
      if (r === -E.ENOSYS!) {
        const chmod = (o: number) => fs.fchmod(o, m.mode & 0o7777);
        r = f.open ? chmod(f.open.fd) : withOpen(s, f, F.O_RDONLY, chmod);
      }
      if (r < 0) return -r;
    }
    if (m.valid & (SETATTR.UID | SETATTR.GID)) {
      const u = m.valid & SETATTR.UID ? s.cfg.ids.toHost(m.uid) : 0xffffffff;
      const g = m.valid & SETATTR.GID ? s.cfg.ids.toHost(m.gid) : 0xffffffff;
      if (u === undefined || g === undefined) return EINVAL;
      const r = fs.fchownat(fd, '', u, g, F.AT_EMPTY_PATH | F.AT_SYMLINK_NOFOLLOW);
      if (r < 0) return -r;
    }
    if (m.valid & SETATTR.SIZE) {
      if (f.node.kind === 'dir') return EISDIR;
      if (f.node.kind !== 'file') return EINVAL;
      const truncate = (o: number) => fs.ftruncate(o, m.size);
      const r = f.open?.writable ? truncate(f.open.fd) : withOpen(s, f, F.O_WRONLY, truncate);
      if (r < 0) return -r;
    }
    if (m.valid & (SETATTR.ATIME | SETATTR.MTIME)) {
      const at = m.valid & SETATTR.ATIME ? (m.valid & SETATTR.ATIME_SET ? null : F.UTIME_NOW) : F.UTIME_OMIT;
      const mt = m.valid & SETATTR.MTIME ? (m.valid & SETATTR.MTIME_SET ? null : F.UTIME_NOW) : F.UTIME_OMIT;
      if ((at === null && m.atimeNsec >= 1000000000n) || (mt === null && m.mtimeNsec >= 1000000000n)) return EINVAL;
      const r = fs.utimensat(
        fd,
        '',
        at === null ? BigInt.asIntN(64, m.atimeSec) : 0n,
        at === null ? Number(m.atimeNsec) : at,
        mt === null ? BigInt.asIntN(64, m.mtimeSec) : 0n,
        mt === null ? Number(m.mtimeNsec) : mt,
        F.AT_EMPTY_PATH | F.AT_SYMLINK_NOFOLLOW,
      );
      if (r < 0) return -r;
    }
    return { type: 'Rsetattr' };
  },

  Treaddir(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    if (!f.open || f.node.kind !== 'dir') return f.open ? ENOTDIR : EBADF;
    const count = Math.min(m.count, s.msize - 11);
    if (m.offset > 0x7fffffffffffffffn) return EINVAL;
    const r = fs.seek(f.open.fd, m.offset);
    if (r < 0) return -r;
    const raw = new Uint8Array(Math.max(count, 512));
    const out = new Uint8Array(count);
    const n = fs.getdents64(f.open.fd, raw);
    if (n < 0) return -n;
    const v = new DataView(raw.buffer);
    let o = 0;
    for (let p = 0; p < n; ) {
      const ino = v.getBigUint64(p, true);
      const off = v.getBigUint64(p + 8, true);
      const reclen = v.getUint16(p + 16, true);
      const dtype = v.getUint8(p + 18);
      let end = p + 19;
      while (end < p + reclen && raw[end] !== 0) end++;
      const name = raw.subarray(p + 19, end);
      if (o + direntSize(name.length) > count) {
        if (o === 0) return EINVAL; // not even one entry fits
        break;
      }
      const qtype = dtype === 4 ? QT.DIR : dtype === 10 ? QT.SYMLINK : QT.FILE;
      o = writeDirent(out, o, { qid: { type: qtype, version: 0, path: ino }, offset: off, type: dtype, name });
      p += reclen;
    }
    return { type: 'Rreaddir', data: out.subarray(0, o) };
  },

  Tmkdir(s, m) {
    if (s.cfg.readOnly) return EROFS;
    const d = needDir(s, m.dfid);
    if (typeof d === 'number') return d;
    const e = checkName(m.name);
    if (e) return e;
    const owner = hostOwner(s, d, m.gid);
    if (typeof owner === 'number') return owner;
    const r = fs.mkdirat(d.node.fd, m.name, m.mode & 0o7777);
    if (r < 0) return -r;
    chownNew(d.node.fd, m.name, owner);
    const q = statQid(d.node.fd, m.name);
    return typeof q === 'number' ? q : { type: 'Rmkdir', qid: q };
  },

  Tmknod(s, m) {
    if (s.cfg.readOnly) return EROFS;
    const d = needDir(s, m.dfid);
    if (typeof d === 'number') return d;
    const e = checkName(m.name);
    if (e) return e;
    const type = m.mode & F.S_IFMT;
    if (type !== 0 && type !== F.S_IFREG && type !== F.S_IFIFO) return EPERM; // devices and sockets: never
    const owner = hostOwner(s, d, m.gid);
    if (typeof owner === 'number') return owner;
    const r = fs.mknodat(d.node.fd, m.name, (type || F.S_IFREG) | (m.mode & 0o7777));
    if (r < 0) return -r;
    chownNew(d.node.fd, m.name, owner);
    const q = statQid(d.node.fd, m.name);
    return typeof q === 'number' ? q : { type: 'Rmknod', qid: q };
  },

  Tsymlink(s, m) {
    if (s.cfg.readOnly) return EROFS;
    const d = needDir(s, m.fid);
    if (typeof d === 'number') return d;
    const e = checkName(m.name);
    if (e) return e;
    if (m.symtgt.length === 0 || m.symtgt.includes(0)) return m.symtgt.length === 0 ? ENOENT : EINVAL;
    const owner = hostOwner(s, d, m.gid);
    if (typeof owner === 'number') return owner;
    // The target is stored as text and never followed by the server, so it may point anywhere.
    const r = fs.symlinkat(m.symtgt, d.node.fd, m.name);
    if (r < 0) return -r;
    chownNew(d.node.fd, m.name, owner);
    const q = statQid(d.node.fd, m.name);
    return typeof q === 'number' ? q : { type: 'Rsymlink', qid: q };
  },

  Treadlink(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    if (f.node.kind !== 'symlink') return EINVAL;
    const t = fs.readlinkat(f.node.fd, '');
    return typeof t === 'number' ? -t : { type: 'Rreadlink', target: t };
  },

  Tlink(s, m) {
    if (s.cfg.readOnly) return EROFS;
    const d = needDir(s, m.dfid);
    if (typeof d === 'number') return d;
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    const e = checkName(m.name);
    if (e) return e;
    if (f.node.kind === 'dir') return EPERM;
    // linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH, which also grants open_by_handle_at (a known escape);
    // following our own /proc/self/fd/N links exactly the inode the fid holds, with no capability.
    const r = fs.linkat(s.cfg.procFd, String(f.node.fd), d.node.fd, m.name, F.AT_SYMLINK_FOLLOW);
    return r < 0 ? -r : { type: 'Rlink' };
  },

  Trename(s, m) {
    if (s.cfg.readOnly) return EROFS;
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    const d = needDir(s, m.dfid);
    if (typeof d === 'number') return d;
    const e = checkName(m.name);
    if (e) return e;
    const { parent, name } = f.node;
    if (!parent || !name) return EBUSY;
    const same = sameFile(parent.fd, name, f.node.fd);
    if (same) return same;
    const r = fs.renameat2(parent.fd, name, d.node.fd, m.name, 0);
    if (r < 0) return -r;
    f.node.reparent(d.node, m.name);
    return { type: 'Rrename' };
  },

  Trenameat(s, m) {
    if (s.cfg.readOnly) return EROFS;
    const od = needDir(s, m.olddirfid);
    if (typeof od === 'number') return od;
    const nd = needDir(s, m.newdirfid);
    if (typeof nd === 'number') return nd;
    const e = checkName(m.oldname) || checkName(m.newname);
    if (e) return e;
    const r = fs.renameat2(od.node.fd, m.oldname, nd.node.fd, m.newname, 0);
    return r < 0 ? -r : { type: 'Rrenameat' };
  },

  Tunlinkat(s, m) {
    if (s.cfg.readOnly) return EROFS;
    const d = needDir(s, m.dirfid);
    if (typeof d === 'number') return d;
    const e = checkName(m.name);
    if (e) return e;
    if (m.flags & ~F.AT_REMOVEDIR) return EINVAL;
    const r = fs.unlinkat(d.node.fd, m.name, m.flags);
    return r < 0 ? -r : { type: 'Runlinkat' };
  },

  Tstatfs(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    const st = fs.fstatfs(f.node.fd);
    if (typeof st === 'number') return -st;
    return {
      type: 'Rstatfs',
      fsType: st.type >>> 0,
      bsize: st.bsize >>> 0,
      blocks: st.blocks,
      bfree: st.bfree,
      bavail: st.bavail,
      files: st.files,
      ffree: st.ffree,
      fsid: st.fsid,
      namelen: st.namelen >>> 0,
    };
  },

  Tlock(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    if (!f.open) return EBADF;
    const type = LOCK_TYPES.get(m.lockType);
    if (type === undefined) return EINVAL;
    // Never waits: a conflicting lock answers BLOCKED and the client retries (as Linux's v9fs does).
    const r = fs.ofdLock(f.open.fd, F.F_OFD_SETLK, flock(type, m.start, m.length));
    if (typeof r !== 'number') return { type: 'Rlock', status: LOCK.SUCCESS };
    if (r === -E.EAGAIN! || r === -E.EACCES!) return { type: 'Rlock', status: LOCK.BLOCKED };
    return -r;
  },

  Tgetlock(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    if (!f.open) return EBADF;
    const type = LOCK_TYPES.get(m.lockType);
    if (type === undefined || type === F.F_UNLCK) return EINVAL;
    const r = fs.ofdLock(f.open.fd, F.F_OFD_GETLK, flock(type, m.start, m.length));
    if (typeof r === 'number') return -r;
    const lockType = r.type === F.F_RDLCK ? LOCK.RDLCK : r.type === F.F_WRLCK ? LOCK.WRLCK : LOCK.UNLCK;
    return {
      type: 'Rgetlock',
      lockType,
      start: BigInt.asUintN(64, r.start),
      length: BigInt.asUintN(64, r.length),
      procId: r.pid >>> 0,
      clientId: m.clientId,
    };
  },

  Txattrwalk(s, m) {
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    if (m.newfid !== m.fid && s.fids.has(m.newfid)) return EEXIST;
    const listing = m.name.length === 0;
    if (!listing && !startsWith(m.name, USER_PREFIX)) return EOPNOTSUPP;
    let data: Uint8Array;
    if (f.node.kind === 'symlink' || f.node.kind === 'other') {
      if (!listing) return ENODATA; // Linux allows user.* attributes only on regular files and directories
      data = new Uint8Array(0);
    } else {
      const h = xattrFd(s, f);
      if (typeof h === 'number') return h;
      const [fd, own] = h;
      const r = listing ? fs.flistxattr(fd) : fs.fgetxattr(fd, m.name);
      if (own) fs.close(fd);
      if (typeof r === 'number') return -r;
      data = listing ? onlyUser(r) : r.slice();
    }
    const x = { mode: 'read' as const, data };
    if (m.newfid === m.fid) {
      f.xattr = x;
      return { type: 'Rxattrwalk', size: BigInt(data.length) };
    }
    const e = s.add(m.newfid, { node: f.node.ref(), uid: f.uid, xattr: x });
    if (e) {
      f.node.release();
      return e;
    }
    return { type: 'Rxattrwalk', size: BigInt(data.length) };
  },

  Txattrcreate(s, m) {
    if (s.cfg.readOnly) return EROFS;
    const f = s.fid(m.fid);
    if (!f) return EBADF;
    if (!startsWith(m.name, USER_PREFIX)) return EOPNOTSUPP;
    if (m.attrSize > BigInt(XATTR_MAX)) return E2BIG;
    if (m.flags & ~(F.XATTR_CREATE | F.XATTR_REPLACE)) return EINVAL;
    if (f.open || f.xattr) return EBADF;
    const data = new Uint8Array(Number(m.attrSize));
    f.xattr = { mode: 'write', name: m.name.slice(), flags: m.flags, data, written: 0 };
    return { type: 'Rxattrcreate' };
  },
};

/**
 * In a donating session, a regular file's opened descriptor to send with the reply (the rule the client relies
 * on: every successful Rlopen/Rlcreate/Rlcreateat of a regular file carries exactly one); otherwise none. It is lent, not
 * copied: the open file counts the send as a user until the descriptor is in flight, so a Tclunk that comes
 * before the reply has gone out cannot close it.
 */
function donation(s: Session, node: Node, open: OpenFile): { fds: number[]; release: () => void } | undefined {
  if (!s.donate || node.kind !== 'file') return undefined;
  open.use();
  return { fds: [open.fd], release: () => open.done() };
}

/** 9P lock types to fcntl's. */
const LOCK_TYPES = new Map<number, number>([
  [LOCK.RDLCK, F.F_RDLCK],
  [LOCK.WRLCK, F.F_WRLCK],
  [LOCK.UNLCK, F.F_UNLCK],
]);

/** A `struct flock` of 9P's unsigned start and length (fcntl takes them signed; length 0 means "to the end"). */
function flock(type: number, start: bigint, length: bigint): fs.Flock {
  return { type, start: BigInt.asIntN(64, start), length: BigInt.asIntN(64, length), pid: 0 };
}

/** Sets the attribute a Txattrcreate fid collected (on Tclunk); a size of 0 removes it, as Linux's v9fs means. */
function finishXattr(s: Session, f: Fid): number {
  const x = f.xattr;
  if (x?.mode !== 'write') return 0;
  if (x.written !== x.data.length) return EINVAL;
  const h = xattrFd(s, f);
  if (typeof h === 'number') return h;
  const [fd, own] = h;
  const remove = x.data.length === 0 && x.flags === F.XATTR_REPLACE;
  const r = remove ? fs.fremovexattr(fd, x.name) : fs.fsetxattr(fd, x.name, x.data, x.flags);
  if (own) fs.close(fd);
  return r < 0 ? -r : 0;
}

/** Keeps the `user.` names of a NUL-separated list. */
function onlyUser(list: Uint8Array): Uint8Array {
  const out: number[] = [];
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    if (list[i] !== 0) continue;
    const name = list.subarray(start, i + 1);
    if (startsWith(name, USER_PREFIX)) out.push(...name);
    start = i + 1;
  }
  return Uint8Array.from(out);
}

/** 0 when `name` in `dirfd` is still the file `fd` holds; ESTALE when it was renamed or replaced meanwhile. */
function sameFile(dirfd: number, name: Uint8Array, fd: number): number {
  const a = fs.statx(dirfd, name, F.AT_SYMLINK_NOFOLLOW);
  const b = fs.fstat(fd);
  if (typeof a === 'number') return a === -ENOENT ? ESTALE : -a;
  if (typeof b === 'number') return -b;
  return a.ino === b.ino && a.devMajor === b.devMajor && a.devMinor === b.devMinor ? 0 : ESTALE;
}

function removeNode(node: Node): number {
  const { parent, name } = node;
  if (!parent || !name) return EBUSY;
  const same = sameFile(parent.fd, name, node.fd);
  if (same) return same;
  const r = fs.unlinkat(parent.fd, name, node.kind === 'dir' ? F.AT_REMOVEDIR : 0);
  return r < 0 ? -r : 0;
}

/** Runs `fn` on a temporary descriptor of the fid's file opened with `flags`; minus the errno on failure. */
function withOpen(s: Session, f: Fid, flags: number, fn: (fd: number) => number): number {
  const fd = openNode(s, f.node, flags);
  if (fd < 0) return fd;
  try {
    return fn(fd);
  } finally {
    fs.close(fd);
  }
}

function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** The errno of a Node fs error. */
function errnoOf(err: NodeJS.ErrnoException): number {
  const code = err.code ? E[err.code] : undefined;
  return code ?? (typeof err.errno === 'number' ? -err.errno : EIO);
}

/** Calls the handler for a T-message; undefined when the message is not one a server answers. */
export function handle(s: Session, m: Message): Answer<TName> | Promise<Answer<TName>> | undefined {
  const h = handlers[m.type as TName] as Handler<TName> | undefined;
  if (!h) return undefined;
  return h(s, m as Message<TName>);
}
