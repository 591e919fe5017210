/**
 * A FUSE server whose files are a 9P2000.L server's (the Gofer): the kernel's requests on `/dev/fuse` become 9P
 * requests on the client. Node ids stand for walked fids (one per inode the kernel knows, counted by its lookups
 * and dropped at FORGET); file handles are fids opened with Tlopen/Tlcreate.
 *
 * The descriptor is read on Node's main loop: `/dev/fuse` is non-blocking and watched with uv_poll (watchFd), and
 * each readable event reads requests until EAGAIN, or only one when none was being answered (see `drain`). Each
 * read(2) returns exactly one request; they are answered in whatever order their 9P replies come, each with one
 * write(2). A Worker blocked in read(2) would cost a thread
 * hop per request for nothing: the 9P work happens on the main loop anyway.
 */
import { GETATTR, SETATTR, type Attrs } from '../../../gofer/p9/messages.ts';
import { P9Error, type Client } from '../../../gofer/client/client.ts';
import * as fs from '../../../lib/fs.ts';
import { errno, sys, watchFd, type FdWatch } from '../../../lib/libc.ts';
import { pollBudgetNs } from '../../../lib/unixstream.ts';
import { FuseRing, possibleCpus } from './uring.ts';
import {
  FATTR,
  FOPEN,
  FUSE_DEV_IOC_BACKING_CLOSE,
  FUSE_DEV_IOC_BACKING_OPEN,
  IN_HEADER_SIZE,
  INIT,
  INIT2,
  KERNEL_VERSION,
  MAX_STACK_DEPTH,
  MIN_MINOR_VERSION,
  MINOR_VERSION,
  MIN_READ_BUFFER,
  OP,
  OPEN_KILL_SUIDGID,
  OUT_HEADER_SIZE,
  WRITE_KILL_SUIDGID,
  attrOut,
  cstrings,
  decodeHeader,
  direntPlusSize,
  direntSize,
  encodeDev,
  entryOut,
  initOut,
  openOut,
  opName,
  pruneNotify,
  reply,
  statfsOut,
  view,
  writeOutHeader,
  writeDirent,
  writeDirentPlus,
  type Attr,
  type InHeader,
  type Validity,
} from './proto.ts';

const EIO = 5;
const EBADF = 9;
const EAGAIN = 11;
/** The longest `FuseServer.spin` keeps the event loop from its other work. */
const SPIN_MAX_NS = 2_000_000n;
const EBUSY = 16;
const EINVAL = 22;
const ENODEV = 19;
const ENOENT = 2;
const ENOSYS = 38;
const ERANGE = 34;
const EOPNOTSUPP = 95;
const XATTR_REPLACE = 2;
/** The only extended attributes the Gofer serves (others are EOPNOTSUPP, answered here without a round trip). */
const USER_PREFIX = new TextEncoder().encode('user.');
const EPROTO = 71;

const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_NOCTTY = 0o400;
const O_TRUNC = 0o1000;
const O_DIRECTORY = 0o200000;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o010;

/** The SETATTR fields a write-behind may carry (see FuseServer.setattrBehind): mode, owner and times. */
const BEHIND_FATTR =
  FATTR.MODE | FATTR.UID | FATTR.GID | FATTR.ATIME | FATTR.MTIME | FATTR.ATIME_NOW | FATTR.MTIME_NOW | FATTR.FH | FATTR.LOCKOWNER | FATTR.KILL_SUIDGID;
/**
 * Files made ahead of their names (Tmktmp) kept per directory that sees CREATEs, asked for again when this few are
 * left, for this many directories at once, given back after this long unused; and the open flags a CREATE answered
 * with one may carry (no O_APPEND, O_DIRECT, O_SYNC...: the file was opened before they were known).
 */
const AHEAD_POOL = 16;
const AHEAD_LOW = 8;
const AHEAD_DIRS = 2;
const AHEAD_IDLE_MS = 2000;
const O_NONBLOCK = 0o4000;
const O_LARGEFILE = 0o100000;
const O_CLOEXEC = 0o2000000;
const AHEAD_FLAGS = 3 | O_EXCL | O_TRUNC | O_NONBLOCK | O_LARGEFILE | O_CLOEXEC;

/** Requests that report a failed write-behind of their node instead of being done: they open, change, flush or sync it. */
const REPORTS_LATE = new Set<number>([OP.FLUSH, OP.FSYNC, OP.FSYNCDIR, OP.SETATTR, OP.OPEN, OP.WRITE, OP.SETXATTR, OP.REMOVEXATTR]);

/** The wall clock as seconds and nanoseconds (microsecond precision). */
function realtime(): [bigint, number] {
  const us = Math.round((performance.timeOrigin + performance.now()) * 1000);
  return [BigInt(Math.floor(us / 1e6)), (us % 1e6) * 1000];
}

/**
 * Largest WRITE the kernel sends (and READ it asks for): 128 pages of 4 KiB, which fits in one 9P read or write
 * at the Gofer's msize of 1 MiB.
 */
const MAX_IO = 512 * 1024;
/** Replies up to this size (all but reads and listings) are written from one reused buffer. */
const OUT_FRAME = 4096;
/** io_uring entries per CPU queue: requests of one CPU under way at once (more wait in the kernel). */
const RING_PER_QUEUE = 8;

/** One inode the kernel knows. */
interface Node {
  /** A walked (not opened) fid for it. */
  fid: number;
  /** The kernel's lookup count: FORGET subtracts, and at zero the fid is clunked. */
  nlookup: bigint;
  /** When the node was last used, on the server's use counter: the least recently used are pruned first. */
  used: number;
  ino: bigint;
  /**
   * The backing file registered for this inode's passthrough opens, shared by all of them while any is open (the
   * kernel refuses a second, different backing file on an inode: EIO), and whether it was opened for writing.
   * `fd` is a writable backing file's host descriptor, kept for fstat (see `dataOf`); -1 for a read-only one.
   */
  backing?: { id: number; writable: boolean; opens: number; fd: number };
  /**
   * The attributes last read from the Gofer: `attrSeq` and `attrT` say when the read was sent. They are served
   * again while younger than the attribute validity and no change has been started on the node since
   * (`dirtySeq`, from the same counter) — see `cachedAttr`.
   */
  attr?: Attr;
  attrT: number;
  attrSeq: number;
  dirtySeq: number;
  /** Names looked up in this directory: the node id found (0n: missing) and when the lookup was sent. */
  children?: Map<string, { id: bigint; t: number; seq: number }>;
  /** The last change started in this directory's entries (lookups sent before it are not kept). */
  entriesDirtySeq: number;
  /**
   * When this server made the directory (MKDIR; the monotonic clock in ms, taken before the Tmkdir went out): it
   * was empty then, and every name made in it through the mount since is in `children`. So, for the entry validity
   * after that, a name neither in `children` nor in `unsure` is missing without asking the Gofer (an untar
   * looks up each name once before it makes it). Given up when the names are dropped (the bound on memory).
   */
  madeAt?: number;
  /** Names of a made directory whose change through the mount began and whose outcome is not in `children`. */
  unsure?: Set<string>;
  /** Made or opened through the mount: a SETATTR of it may be written behind (see `setattrBehind`). */
  ours?: boolean;
  /** Open file handles of the node whose close sends no FLUSH (FOPEN_NOFLUSH): none, for a write-behind. */
  noflushOpens: number;
  /**
   * The attributes the node has once its written-behind SETATTRs are done (ctime aside: this server's clock), set
   * at `aheadSeq`: the base of the next write-behind while no other change started on it (see `writeBase`). Never
   * an answer to GETATTR, which gets the Gofer's. And the written-behind SETATTRs not yet answered.
   */
  ahead?: Attr;
  aheadSeq: number;
  behind: number;
  /** Resolves when the written-behind SETATTRs sent so far are answered (never rejects). */
  settled?: Promise<void>;
  /** The errno of a written-behind SETATTR the Gofer failed, until a request of the program reports it. */
  lateError?: number;
}

/** A file made ahead of its name (Tmktmp): open as `fid` (its donated descriptor `fd`), unopened as `nodeFid`. */
interface Ahead {
  fid: number;
  nodeFid: number;
  fd: number | undefined;
  attr: Attr;
}

/** The files made ahead in one directory, for the CREATEs of names known missing there (see `createAhead`). */
interface AheadPool {
  ready: Ahead[];
  /** Tmktmp requests under way. */
  asked: number;
  /** The mode and group they are made with (a CREATE asking for another group is not answered from them). */
  mode: number;
  gid: number;
  /** When the last CREATE in the directory came (ms, the monotonic clock); a pool is filled from the second on. */
  used: number;
  creates: number;
}

/** When a request to the Gofer was sent: a counter that orders it against changes, and the monotonic clock in ms. */
interface Stamp {
  seq: number;
  t: number;
}

function newNode(fid: number, ino: bigint, used: number): Node {
  return { fid, nlookup: 1n, ino, used, attrT: 0, attrSeq: 0, dirtySeq: 0, entriesDirtySeq: 0, noflushOpens: 0, aheadSeq: 0, behind: 0 };
}

/** A name as a map key. */
function nameKey(n: Uint8Array): string {
  return Buffer.from(n.buffer, n.byteOffset, n.byteLength).toString('latin1');
}

/** Options of the server. */
export interface FuseServerOptions {
  /** Seconds the kernel may cache lookups and attributes (default 1). */
  validity?: Validity;
  /**
   * Hand the kernel donated descriptors as backing files (FUSE passthrough, Linux 6.9+) when the client agreed
   * the 9P2000.L.tsvisor dialect and the kernel offers it; default true.
   */
  passthrough?: boolean;
  /**
   * The file-system stacking depth that backing files may have (default 2, the kernel's most). 1 when an overlay
   * is to be stacked on this mount (overlayfs adds one level and refuses to pass 2); backing files on the host's
   * own disk file system are depth 0.
   */
  maxStackDepth?: number;
  /**
   * Nodes (each a walked fid, an O_PATH descriptor in the Gofer) kept before the least recently used are offered
   * back to the kernel with FUSE_NOTIFY_PRUNE; default 8192. The kernel prunes those no dentry in use pins and
   * sends FORGET, and the fid is clunked: a walk over any number of files holds about this many fids.
   */
  maxNodes?: number;
  /**
   * Answer LOOKUP and GETATTR from what the Gofer said less than the validity ago (default true): the kernel asks
   * again where it must revalidate (O_EXCL and mkdir lookups, a directory's attributes after each change in it, a
   * chown's fresh mode), and this server, the only writer through the mount, knows what changed since. The
   * contract toward changes made on the host directly is the kernel's own: seen within the validity.
   */
  cache?: boolean;
  /**
   * Negotiate FUSE_HANDLE_KILLPRIV_V2 (default true): this server clears set-id bits on write, truncate and chown as
   * the kernel's flags ask, and the kernel stops asking for `security.capability` before each write.
   */
  killprivV2?: boolean;
  /**
   * The uid the root fid was attached as (default 0): the Gofer makes files as this user, so what a caller of
   * this uid creates needs no chown afterwards (`run --rootfs` attaches as the sandbox's host user).
   */
  owner?: number;
  /**
   * Answer a chmod, chown or utimes of a node made or opened through the mount before the Gofer has done it
   * (default true; see `setattrBehind`).
   */
  writeBehind?: boolean;
  /**
   * Take requests through io_uring (FUSE_OVER_IO_URING, uring.ts) when the kernel offers it (Linux 6.14+ with the
   * fuse module's `enable_uring` set, which the host's root decides) and io_uring can be set up; default false:
   * served from Node's loop without the device's polls, a round trip through the ring costs the program more than
   * one through read(2)/write(2) on `/dev/fuse` (sentry/fs/fuse/README.md, "Over io_uring").
   */
  uring?: boolean;
  /**
   * Microseconds to keep polling `/dev/fuse` after answering a lone caller's request at once, before going back
   * to sleep in the event loop (default 100; 0 never; never with a single CPU or over io_uring). See `spin`.
   */
  spinUs?: number;
  /**
   * Microseconds to poll the 9P socket for the Gofer's replies after sending the requests of a lone caller's
   * request, instead of sleeping in the event loop until they come (default 400; 0 never; never with a single
   * CPU). See `awaitGofer`.
   */
  replyPollUs?: number;
  /**
   * Answer a CREATE of a name known missing with a file the Gofer made ahead in that directory (O_TMPFILE), and
   * have the Gofer name it behind the answer (default true, with write-behind; see `createAhead`).
   */
  createAhead?: boolean;
  /** Called once when the connection ends (the mount went away, or the descriptor failed). */
  onClose?: (why: string) => void;
}

/** Serves one mounted `/dev/fuse` descriptor from a 9P client. */
export class FuseServer {
  /** Node ids to nodes. */
  private readonly nodes = new Map<bigint, Node>();
  /** Counts uses of nodes (see Node.used). */
  private useClock = 0;
  private readonly byIno = new Map<bigint, bigint>();
  private nextNode = 2n;
  private readonly buf = new Uint8Array(MAX_IO + MIN_READ_BUFFER);
  /** `buf`'s header, read through one view rather than a new one per request. */
  private readonly bufView = view(this.buf);
  /**
   * The reply frame written to `/dev/fuse`, reused (write(2) has copied it when it returns): a reply up to this
   * size costs no buffer of its own. Larger ones (reads, listings) and those through the ring are framed anew.
   */
  private readonly out = new Uint8Array(OUT_FRAME);
  private readonly outView = view(this.out);
  private watch: FdWatch | undefined;
  /** The io_uring carrying requests, from INIT on, when agreed (see FuseServerOptions.uring). */
  private ring: FuseRing | undefined;
  /** Requests taken from the ring (counted on when it closes). */
  private ringTaken = 0;
  private closed = false;
  private readonly valid: Validity;
  /** Requests answered so far, by opcode name (for tests and stats). */
  readonly counts = new Map<string, number>();
  /** Whether the kernel and the Gofer agreed to passthrough (known after INIT). */
  passthrough = false;
  /** Opens answered with a backing file, and registrations the kernel refused. */
  passthroughOpens = 0;
  backingErrors = 0;
  /** Passthrough file handles, by fid, and their node. */
  private readonly backed = new Map<number, Node>();
  private readonly maxNodes: number;
  /** Whether the kernel takes FUSE_NOTIFY_PRUNE (unknown until the first one is written). */
  pruneSupported: boolean | undefined;
  /** Node ids offered to the kernel with FUSE_NOTIFY_PRUNE, and nodes forgotten (their fids clunked). */
  pruneOffered = 0;
  forgotten = 0;
  private pruneQueued = false;
  /** Whether the kernel agreed to FUSE_HANDLE_KILLPRIV_V2 (known after INIT). */
  killprivV2 = false;
  /** read(2) calls on /dev/fuse (those that said EAGAIN too; each request is one), and requests read and not yet answered. */
  reads = 0;
  private unanswered = 0;
  /** Requests answered in the turn that read them, without the Gofer (see answerNow). */
  answeredAtOnce = 0;
  /** LOOKUPs and GETATTRs answered from what the Gofer said within the validity, without a 9P call. */
  cacheHits = 0;
  private readonly cache: boolean;
  private readonly owner: number;
  private readonly writeBehind: boolean;
  /** `opts.spinUs` in nanoseconds; 0 when not spinning. */
  private readonly spinNs: bigint;
  /** Requests taken in `spin`, and its read(2) calls that found none (counted apart from `reads`). */
  spun = 0;
  spinPolls = 0;
  /** `opts.replyPollUs` in nanoseconds (0: off), and the recent time a lone caller's request waited for the Gofer. */
  private readonly replyPollNs: bigint;
  private goferWaitNs = 0n;
  /** Lone callers' requests after which a poll of the 9P socket was asked for (see `awaitGofer`). */
  replyPolls = 0;
  private readonly entryMs: number;
  private readonly attrMs: number;
  /** Orders requests to the Gofer against changes (see Stamp). */
  private seq = 0;
  /** Attributes read before this are stale everywhere (an unlink or rename changed some inode's links or ctime). */
  private attrEpochSeq = 0;
  /** Names cached over all directories, and the most kept before all are dropped. */
  private entryCount = 0;
  private readonly maxEntries: number;
  /** The node of each open file handle (fid), and the handles whose close sends no FLUSH. */
  private readonly openNodes = new Map<number, bigint>();
  private readonly noflushFids = new Set<number>();
  /** SETATTRs answered before the Gofer did them (see setattrBehind), and those of them the Gofer failed. */
  writtenBehind = 0;
  lateErrors = 0;
  /** Chowns to the owner a file already has, answered with no Tsetattr (see setattrBehind). */
  sameOwnerChowns = 0;
  private readonly pendingBehind = new Set<Promise<void>>();
  /** Files made ahead of their names, by directory node id (see `createAhead`); off once the Gofer refused one. */
  private readonly pools = new Map<bigint, AheadPool>();
  private poolTimer: ReturnType<typeof setInterval> | undefined;
  private aheadOff: boolean;
  /** CREATEs answered with a file made ahead, and those whose naming the Gofer then refused. */
  createdAhead = 0;
  aheadFailed = 0;

  /** `rootFid` is an attached fid of the served root; the server owns it from now on. */
  constructor(
    private readonly fd: number,
    private readonly client: Client,
    rootFid: number,
    private readonly opts: FuseServerOptions = {},
  ) {
    this.valid = opts.validity ?? { entry: 1, attr: 1 };
    this.maxNodes = Math.max(16, opts.maxNodes ?? 8192);
    this.cache = opts.cache ?? true;
    this.owner = opts.owner ?? 0;
    this.writeBehind = opts.writeBehind ?? true;
    this.aheadOff = !(opts.createAhead ?? true) || !this.writeBehind;
    this.spinNs = pollBudgetNs(opts.spinUs, 100);
    this.replyPollNs = pollBudgetNs(opts.replyPollUs, 400);
    this.entryMs = this.cache ? this.valid.entry * 1000 : 0;
    this.attrMs = this.cache ? this.valid.attr * 1000 : 0;
    this.maxEntries = 4 * this.maxNodes;
    this.nodes.set(1n, newNode(rootFid, 0n, 0));
  }

  /** Starts answering requests. */
  start(): void {
    this.watch = watchFd(this.fd, (readable, _w, status) => {
      // An unmount shows as a poll error (EPOLLERR); the read then says ENODEV, and closes with 'unmounted'.
      if (readable || status < 0) this.drain();
      if (status < 0) this.close(`poll failed (${status})`);
    });
  }

  /** Stops serving and closes the descriptor (the kernel then fails every file call on the mount with ENOTCONN). */
  close(why = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.watch?.close();
    this.dropRing();
    for (const dir of [...this.pools.keys()]) this.dropPool(dir);
    sys.close(this.fd);
    // A debugging aid: what the kernel asked for, and what that cost in 9P requests (bench/gofer.ts reads it).
    if (process.env.TSVISOR_FUSE_STATS) {
      const stats = { requests: Object.fromEntries(this.counts), cacheHits: this.cacheHits, p9: this.client.sent, writtenBehind: this.writtenBehind, sameOwnerChowns: this.sameOwnerChowns, lateErrors: this.lateErrors, createdAhead: this.createdAhead, aheadFailed: this.aheadFailed, ringRequests: this.ringRequests, spun: this.spun, replyPolls: this.replyPolls, replyPolled: this.client.polled };
      process.stderr.write(`tsvisor fuse stats: ${JSON.stringify(stats)}\n`);
    }
    this.opts.onClose?.(why);
  }

  /**
   * Sends the written-behind SETATTRs still held and waits until the Gofer has answered every one: to be awaited
   * before the client is closed (after the program is gone), or the last ones of a program that exits at once
   * (tar's last file) would never reach the host.
   */
  async settle(): Promise<void> {
    this.client.sendLate();
    while (this.pendingBehind.size > 0) await Promise.all(this.pendingBehind);
  }

  /** Written-behind SETATTRs the Gofer has not answered yet. */
  get pendingWrites(): number {
    return this.pendingBehind.size;
  }

  /** Nodes (walked fids) held now, the root included. */
  get nodeCount(): number {
    return this.nodes.size;
  }

  /** Lets the process exit while the server is idle. */
  unref(): void {
    this.watch?.unref();
    this.ring?.unref();
  }

  /** Requests that came through io_uring rather than read(2) on `/dev/fuse`. */
  get ringRequests(): number {
    return this.ringTaken + (this.ring?.requests ?? 0);
  }

  /** Whether requests are being taken through io_uring (from INIT on, when agreed). */
  get overUring(): boolean {
    return this.ring !== undefined;
  }

  private dropRing(): void {
    if (!this.ring) return;
    this.ringTaken += this.ring.requests;
    this.ring.close();
    this.ring = undefined;
  }

  /**
   * The ring for FUSE_OVER_IO_URING, when asked for, offered by the kernel (`offered2`) and io_uring can be set up:
   * made before the INIT reply, since agreeing to it makes the kernel wait for the ring's entries before it sends
   * any further request.
   */
  private openRing(offered2: number): FuseRing | undefined {
    if (!(this.opts.uring ?? false) || (offered2 & INIT2.OVER_IO_URING) === 0) return undefined;
    try {
      return new FuseRing(
        this.fd,
        { queues: possibleCpus(), perQueue: RING_PER_QUEUE, payload: MAX_IO },
        (h, body) => this.serve(h, body),
        (why, served) => {
          // Entries refused before any request came: the kernel goes on with /dev/fuse, and so do we.
          if (served) this.close(why);
          else this.dropRing();
        },
      );
    } catch {
      return undefined;
    }
  }

  private drain(): void {
    while (!this.closed) {
      const n = sys.read(this.fd, this.buf, this.buf.length);
      this.reads++;
      if (n < 0) {
        const e = errno();
        if (e === EAGAIN) return;
        if (e === 4 || e === ENOENT) continue; // EINTR; ENOENT: the request was interrupted meanwhile
        // ENODEV: the file system was unmounted.
        return this.close(e === ENODEV ? 'unmounted' : `read /dev/fuse: errno ${e}`);
      }
      if (n < IN_HEADER_SIZE) return this.close(`short request (${n} bytes)`);
      const h = decodeHeader(this.bufView);
      // A view: the buffer is reused by the next read, so `dispatch` copies it for a request that waits for the Gofer.
      const body = this.buf.subarray(IN_HEADER_SIZE, Math.min(n, h.len));
      const alone = this.unanswered === 0;
      const answers = this.serve(h, body, true);
      // A request that came while none was being answered is most likely a lone caller's (a program making one
      // file call after another): it sends nothing more before this reply, so another read(2) now would only say
      // EAGAIN. The poll is level-triggered: whatever else is queued brings the loop back here. Requests that
      // come while others are under way (several callers, readahead) are read on until EAGAIN.
      if (alone && answers) {
        if (this.unanswered === 0) this.spin();
        return;
      }
    }
  }

  /**
   * After a lone caller's request was answered (at once, or when the Gofer's reply came), polls `/dev/fuse` (non-blocking reads, `sched_yield`
   * between them) for up to `spinNs` for that caller's next request, and answers it here, instead of going back
   * to epoll_wait at once. Why: a program making one file call after another (an untar: 11 of its 12 requests per
   * file are answered at once) waits for each reply, and on this VM (idle vCPUs halt at once: haltpoll with
   * guest_halt_poll_ns 0, so each wake-up of an idle CPU is an inter-processor interrupt) the two wake-ups per
   * request, the program's and this loop's, were most of an untar's time whenever the two ran on different CPUs
   * (it ran 1.7x faster with everything on one CPU). The poll takes this loop's wake-up away; `sched_yield` hands
   * the CPU over at once should the caller wait for it on this same CPU. It stops at the first request that waits
   * for the Gofer (its reply is read by the loop), after `spinNs` without a request, and after `SPIN_MAX_NS` in
   * all, so timers, the network stack and the 9P socket wait at most that long. The cost is CPU: up to `spinNs`
   * per lone request answered at once, nothing while no program makes file calls.
   */
  private spin(): void {
    if (this.spinNs === 0n || this.ring) return;
    const start = process.hrtime.bigint();
    let until = start + this.spinNs;
    for (;;) {
      const n = sys.read(this.fd, this.buf, this.buf.length);
      if (n >= IN_HEADER_SIZE) {
        const h = decodeHeader(this.bufView);
        this.reads++;
        this.spun++;
        const answers = this.serve(h, this.buf.subarray(IN_HEADER_SIZE, Math.min(n, h.len)), true);
        if (!answers || this.unanswered !== 0 || this.closed) return;
        const now = process.hrtime.bigint();
        if (now - start > SPIN_MAX_NS) return;
        until = now + this.spinNs;
        continue;
      }
      // Anything but an empty queue (EINTR, ENODEV at unmount, a short read) is left to `drain`, which the
      // level-triggered poll brings back to.
      if (n >= 0 || errno() !== EAGAIN) return;
      this.spinPolls++;
      if (process.hrtime.bigint() > until) return;
      sys.sched_yield();
    }
  }

  /**
   * Answers a request, from `/dev/fuse` or the ring; whether it gets a reply. `shared`: the body is a view of a
   * buffer the next request reuses (copied before anything waits).
   */
  private serve(h: InHeader, body: Uint8Array, shared = false): boolean {
    try {
      return this.dispatch(h, body, shared);
    } catch {
      // A body shorter than its opcode's struct (the kernel never sends one): EINVAL, and serving goes on.
      this.send(h.unique, -EINVAL);
      return true;
    }
  }

  /** Replies to request `unique`: `error` (a negative errno) or 0 and `body`. */
  private send(unique: bigint, error: number, body?: Uint8Array): void {
    if (this.closed) return;
    const len = OUT_HEADER_SIZE + (error === 0 && body ? body.length : 0);
    if (this.ring || len > this.out.length) {
      const b = reply(unique, error, body);
      // A request taken from the ring is answered in its entry.
      if (this.ring?.reply(b)) return;
      // ENOENT: the kernel gave up on the request (interrupted); nothing to do.
      sys.write(this.fd, b, b.length);
      return;
    }
    writeOutHeader(this.outView, len, error, unique);
    if (len > OUT_HEADER_SIZE) this.out.set(body!, OUT_HEADER_SIZE);
    sys.write(this.fd, this.out, len);
  }

  /** Starts answering a request; whether it gets a reply (FORGET and INTERRUPT get none). */
  private dispatch(h: InHeader, body: Uint8Array, shared: boolean): boolean {
    const name = opName(h.opcode);
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
    if (h.opcode === OP.FORGET) {
      this.forget(h.nodeid, view(body).getBigUint64(0, true));
      return false;
    }
    if (h.opcode === OP.BATCH_FORGET) {
      const v = view(body);
      const count = v.getUint32(0, true);
      for (let i = 0; i < count && 8 + i * 16 + 16 <= body.length; i++) {
        this.forget(v.getBigUint64(8 + i * 16, true), v.getBigUint64(16 + i * 16, true));
      }
      return false;
    }
    if (h.opcode === OP.INTERRUPT) return false; // 9P calls are short; the reply comes anyway
    this.touch(h.nodeid);
    let now: Uint8Array | number | undefined;
    try {
      now = this.answerNow(h, body);
    } catch (e) {
      if (!(e instanceof P9Error)) throw e;
      now = e.errno; // a node id the kernel should not have
    }
    if (now !== undefined) {
      this.answeredAtOnce++;
      if (typeof now === 'number') this.send(h.unique, -now);
      else this.send(h.unique, 0, now);
      // The kernel takes ring entries only once it has the INIT reply.
      if (h.opcode === OP.INIT) this.ring?.register();
      return true;
    }
    const alone = this.unanswered++ === 0;
    const reply = this.handle(h, shared ? body.slice() : body);
    const sent = alone && this.replyPollNs > 0n ? this.awaitGofer() : 0n;
    reply.then(
      (r) => {
        this.unanswered--;
        if (sent) this.goferWaitNs = (this.goferWaitNs * 3n + process.hrtime.bigint() - sent) / 4n;
        if (typeof r === 'number') this.send(h.unique, -r);
        else this.send(h.unique, 0, r);
        // The caller is most likely a lone one again, whose next request comes as soon as it has this reply.
        if (this.unanswered === 0) this.spin();
      },
      (e: unknown) => {
        this.unanswered--;
        this.send(h.unique, -(e instanceof P9Error ? e.errno : EIO));
      },
    );
    return true;
  }

  /**
   * Called as a lone caller's request has gone to the Gofer: has the client poll the 9P socket for the replies for up
   * to `replyPollNs` once the request's 9P batch has gone out (`Client.pollReplies`), rather than sleep in
   * epoll_wait until they come. Why: that caller (an untar's CREATE, whose batch is the one round trip of a file)
   * waits for the reply, and on this VM, whose idle CPUs halt at once, the round trip held two wake-ups through
   * the hypervisor, the Gofer's and this loop's (~150 of its 280-310 µs); the poll takes ours away and goes
   * straight on to the FUSE reply and `spin`. Adaptive: skipped while the recent waits (a moving average, polled
   * or not; the time since this call is returned and fed back at the reply) are longer than the bound, so a slow
   * Gofer or file system costs no CPU. The loop does nothing else while it polls: timers, the network stack and
   * other callers wait at most `replyPollNs`. The cost is CPU: the round trip, per lone request to the Gofer.
   * Returns when it was called (0 when nothing is in flight: the wait then says nothing of the Gofer).
   */
  private awaitGofer(): bigint {
    // Answered without a 9P request after all (a change written behind whose failure is reported instead): no
    // reply to wait for, and the poll would otherwise run after whatever is sent next, for as long as its bound.
    if (this.client.inFlight === 0) return 0n;
    if (this.goferWaitNs > this.replyPollNs) return process.hrtime.bigint();
    this.replyPolls++;
    // The request's 9P batch is written (queued for this job's flush): the poll runs right after it goes out.
    this.client.pollReplies(this.replyPollNs);
    return process.hrtime.bigint();
  }

  /**
   * The reply to a request answered without the Gofer (a lookup or attributes known within the validity, a
   * release, FLUSH with nothing written behind pending, ACCESS, an attribute namespace the Gofer does not serve, a
   * SETATTR written behind), or undefined. Answered in the turn that read it, without a promise: 11 of the 12
   * requests an untar makes per file end here.
   */
  private answerNow(h: InHeader, b: Uint8Array): Uint8Array | number | undefined {
    switch (h.opcode) {
      case OP.INIT:
        return this.init(view(b));
      case OP.LOOKUP: {
        // A view of the name, not a copy: nothing here keeps it (a LOOKUP that waits reads its body again).
        const end = b.indexOf(0);
        if (end < 0) return EINVAL;
        return this.lookupLocal(h.nodeid, b.subarray(0, end));
      }
      case OP.GETATTR: {
        const node = this.node(h.nodeid);
        const t = performance.now();
        const cached = this.cachedAttr(node, t);
        if (!cached) return undefined;
        this.cacheHits++;
        return attrOut(cached, { entry: 0, attr: (this.attrMs - (t - node.attrT)) / 1000 });
      }
      case OP.RELEASE:
      case OP.RELEASEDIR:
        return this.release(Number(view(b).getBigUint64(0, true)));
      case OP.FLUSH: {
        // Nothing is buffered here (writes went to the Gofer before their reply), but a SETATTR written behind
        // may still be under way or have failed: close(2) reports it.
        const node = this.nodes.get(h.nodeid);
        return node && (node.behind > 0 || node.lateError !== undefined) ? undefined : new Uint8Array(0);
      }
      case OP.SETATTR:
        return this.setattrBehind(h.nodeid, view(b));
      case OP.CREATE:
        return this.createAhead(h, b);
      case OP.ACCESS:
        // Mounted with default_permissions, the kernel checks modes itself; an ACCESS that still arrives is allowed.
        return new Uint8Array(0);
      case OP.GETXATTR: {
        // The name is looked at where it lies (no copy): the kernel asks for `security.capability` before a new
        // inode's first write and at each chown.
        const end = b.indexOf(0, 8);
        if (end < 0) return EINVAL;
        return isUserXattr(b, 8, end) ? undefined : EOPNOTSUPP;
      }
      default:
        return undefined;
    }
  }

  /** RELEASE: the file is closed here whatever the Gofer says. */
  private release(fh: number): Uint8Array {
    this.closedHandle(fh);
    const node = this.backed.get(fh);
    if (node) {
      this.backed.delete(fh);
      if (node.backing && --node.backing.opens === 0) {
        // Writes through the backing file went past this server: what it knew of size and times is old, unless
        // the host file says them now.
        if (node.backing.writable) this.refreshData(node, node.backing.fd);
        sys.ioctl(this.fd, FUSE_DEV_IOC_BACKING_CLOSE, new Uint8Array(new Uint32Array([node.backing.id]).buffer));
        if (node.backing.fd >= 0) sys.close(node.backing.fd);
        node.backing = undefined;
      }
    }
    // Not waited for: the Tclunk rides with the next request.
    this.client.clunkSoon(fh);
    return new Uint8Array(0);
  }

  /** Forgets the handle `fh`'s open state (its node, its FOPEN_NOFLUSH). */
  private closedHandle(fh: number): void {
    const id = this.openNodes.get(fh);
    this.openNodes.delete(fh);
    if (this.noflushFids.delete(fh)) {
      const node = id === undefined ? undefined : this.nodes.get(id);
      if (node) node.noflushOpens--;
    }
  }

  /**
   * The node's attributes with size, blocks and times as the host file `fd` has them now, or undefined (the
   * attributes are not known, or fstat failed). For a file the kernel writes itself (passthrough): its other
   * attributes do not move with writes.
   */
  private dataOf(a: Attr, fd: number): Attr | undefined {
    const st = fs.fstat(fd);
    if (typeof st === 'number') return undefined;
    return {
      ...a,
      size: st.size,
      blocks: st.blocks,
      atime: st.atimeSec,
      atimensec: st.atimeNsec,
      mtime: st.mtimeSec,
      mtimensec: st.mtimeNsec,
      ctime: st.ctimeSec,
      ctimensec: st.ctimeNsec,
    };
  }

  /**
   * At the last close of a writable passthrough file: the attributes known from before (read after every other
   * change) take size and times from the host file, and stay answerable; without them, the node is dirty.
   */
  private refreshData(node: Node, fd: number): void {
    const ahead = this.aheadOf(node);
    const a = ahead ?? this.knownAttr(node);
    const fresh = a && this.dataOf(a, fd);
    if (!fresh) return this.dirty(node);
    if (ahead) {
      node.ahead = fresh;
      node.aheadSeq = ++this.seq;
    } else {
      node.attr = fresh;
      node.attrSeq = ++this.seq;
    }
  }

  /** The node's `ahead` attributes, if no change other than the written-behind ones started since they were set. */
  private aheadOf(node: Node): Attr | undefined {
    if (!node.ahead || node.aheadSeq < node.dirtySeq || node.aheadSeq < this.attrEpochSeq) return undefined;
    return node.ahead;
  }

  /**
   * What a write-behind starts from: the attributes the node's written-behind SETATTRs leave, or those last read
   * from the Gofer, either known within the attribute validity of that read (`t`, ms) and not changed otherwise.
   */
  private writeBase(node: Node, t: number): Attr | undefined {
    if (t - node.attrT >= this.attrMs) return undefined;
    return this.aheadOf(node) ?? this.knownAttr(node);
  }

  /** The reply body, or an errno. */
  private async handle(h: InHeader, b: Uint8Array): Promise<Uint8Array | number> {
    const v = view(b);
    const node = this.nodes.get(h.nodeid);
    if (node && (node.behind > 0 || node.lateError !== undefined)) {
      // SETATTRs written behind on this node: every request on it waits for them (and sees their outcome), and
      // one that opens, changes, flushes or syncs it reports their failure instead of being done.
      const late = await this.settleNode(node, REPORTS_LATE.has(h.opcode));
      if (late !== undefined) return late;
    }
    switch (h.opcode) {
      case OP.FLUSH:
        return new Uint8Array(0);
      case OP.DESTROY:
        return new Uint8Array(0);
      case OP.LOOKUP: {
        const [name] = cstrings(b, 1) ?? [];
        if (!name) return EINVAL;
        return this.lookupCached(h.nodeid, name);
      }
      case OP.GETATTR: {
        // Not known here (answerNow looked first).
        const node = this.node(h.nodeid);
        const st = this.stamp();
        const a = await this.attr(node.fid);
        this.keepAttr(node, a, st);
        return attrOut(a, this.valid);
      }
      case OP.SETATTR:
        return this.setattr(h.nodeid, v);
      case OP.READLINK:
        return await this.client.readlink(this.node(h.nodeid).fid);
      case OP.OPEN:
      case OP.OPENDIR: {
        const flags = v.getUint32(0, true) & ~(O_CREAT | O_EXCL | O_NOCTTY);
        const [fid, r] = await this.cloneAnd(h.nodeid, (f) => this.client.lopen(f, h.opcode === OP.OPENDIR ? O_DIRECTORY : flags));
        if (h.opcode === OP.OPENDIR) return openOut(BigInt(fid));
        if (flags & O_TRUNC) this.dirty(this.nodes.get(h.nodeid));
        // An O_TRUNC open by a writer without CAP_FSETID (only sent with atomic O_TRUNC, which is not asked for;
        // handled as CREATE's is).
        if (this.killprivV2 && flags & O_TRUNC && v.getUint32(4, true) & OPEN_KILL_SUIDGID) {
          const node = this.node(h.nodeid);
          await this.killSuidgid(node, await this.attr(node.fid));
        }
        return this.opened(h.nodeid, fid, (flags & 3) !== 0, r.fd);
      }
      case OP.READ:
        return this.read(Number(v.getBigUint64(0, true)), v.getBigUint64(8, true), v.getUint32(16, true));
      case OP.WRITE: {
        const size = v.getUint32(16, true);
        const data = b.subarray(40, 40 + size);
        if (data.length !== size) return EINVAL;
        const fh = Number(v.getBigUint64(0, true));
        const id = this.openNodes.get(fh);
        const node = id === undefined ? undefined : this.nodes.get(id);
        this.dirty(node);
        await this.client.writeAll(fh, v.getBigUint64(8, true), data);
        // A writer without CAP_FSETID (HANDLE_KILLPRIV_V2): the set-id bits go, as a local write would clear them.
        // The mode last seen spares the round trip for the usual file that has none.
        if (v.getUint32(20, true) & WRITE_KILL_SUIDGID && node && (!node.attr || node.attr.mode & (S_ISUID | S_ISGID))) {
          await this.killSuidgid(node, await this.attr(node.fid));
        }
        const out = new Uint8Array(8);
        view(out).setUint32(0, size, true);
        return out;
      }
      case OP.FSYNC:
      case OP.FSYNCDIR:
        await this.client.fsync(Number(v.getBigUint64(0, true)), (v.getUint32(8, true) & 1) !== 0);
        return new Uint8Array(0);
      case OP.READDIR:
      case OP.READDIRPLUS:
        return this.readdir(h.opcode === OP.READDIRPLUS, h.nodeid, Number(v.getBigUint64(0, true)), v.getBigUint64(8, true), v.getUint32(16, true));
      case OP.STATFS: {
        const s = await this.client.statfs(this.node(h.nodeid).fid);
        return statfsOut({ ...s, bsize: s.bsize, frsize: s.bsize });
      }
      case OP.GETXATTR:
      case OP.LISTXATTR: {
        const list = h.opcode === OP.LISTXATTR;
        const [name] = list ? [new Uint8Array(0)] : (cstrings(b.subarray(8), 1) ?? []);
        if (!name) return EINVAL;
        return this.getxattr(h.nodeid, name, v.getUint32(0, true));
      }
      case OP.SETXATTR: {
        const [name] = cstrings(b.subarray(8), 1) ?? [];
        if (!name) return EINVAL;
        const size = v.getUint32(0, true);
        const value = b.subarray(8 + name.length + 1, 8 + name.length + 1 + size);
        if (value.length !== size) return EINVAL;
        this.dirty(this.nodes.get(h.nodeid)); // ctime
        return this.setxattr(h.nodeid, name, value, v.getUint32(4, true));
      }
      case OP.REMOVEXATTR: {
        const [name] = cstrings(b, 1) ?? [];
        if (!name) return EINVAL;
        // 9P2000.L removes with a Txattrcreate of size 0 and XATTR_REPLACE (what Linux's v9fs sends).
        this.dirty(this.nodes.get(h.nodeid));
        return this.setxattr(h.nodeid, name, new Uint8Array(0), XATTR_REPLACE);
      }
      case OP.CREATE:
        return this.create(h, b);
      case OP.MKDIR: {
        const [name] = cstrings(b.subarray(8), 1) ?? [];
        if (!name) return EINVAL;
        const p = this.node(h.nodeid);
        this.dirtyDir(p, name);
        const madeAt = performance.now();
        await this.client.mkdir(p.fid, name, v.getUint32(0, true) & ~v.getUint32(4, true) & 0o7777, h.gid);
        await this.giveToCaller(h, name);
        const { id, a } = await this.lookupNode(h.nodeid, name);
        const made = this.nodes.get(id);
        if (made) made.ours = true;
        // Empty, and known only from this lookup: a node the kernel already had (another caller's lookup of the
        // new name, or an old inode of the same number) may have names made in it that this server cannot tell.
        if (made && this.entryMs > 0 && made.nlookup === 1n && !made.children && made.entriesDirtySeq === 0) made.madeAt = madeAt;
        return entryOut(id, a, this.valid);
      }
      case OP.MKNOD: {
        const [name] = cstrings(b.subarray(16), 1) ?? [];
        if (!name) return EINVAL;
        const mode = v.getUint32(0, true);
        const umask = v.getUint32(8, true);
        this.dirtyDir(this.node(h.nodeid), name);
        await this.client.mknod(this.node(h.nodeid).fid, name, mode & ~(umask & 0o777), 0, 0, h.gid);
        await this.giveToCaller(h, name);
        return this.lookupMade(h.nodeid, name);
      }
      case OP.SYMLINK: {
        const [name, target] = cstrings(b, 2) ?? [];
        if (!name || !target) return EINVAL;
        this.dirtyDir(this.node(h.nodeid), name);
        await this.client.symlink(this.node(h.nodeid).fid, name, target, h.gid);
        return this.lookupMade(h.nodeid, name);
      }
      case OP.LINK: {
        const [name] = cstrings(b.subarray(8), 1) ?? [];
        if (!name) return EINVAL;
        this.dirtyDir(this.node(h.nodeid), name);
        this.dirty(this.nodes.get(v.getBigUint64(0, true))); // links, ctime
        await this.client.link(this.node(h.nodeid).fid, this.node(v.getBigUint64(0, true)).fid, name);
        return this.lookup(h.nodeid, name);
      }
      case OP.UNLINK:
      case OP.RMDIR: {
        const [name] = cstrings(b, 1) ?? [];
        if (!name) return EINVAL;
        const p = this.node(h.nodeid);
        this.dirtyDir(p, name);
        await this.client.unlinkat(p.fid, name, h.opcode === OP.RMDIR ? 0x200 : 0);
        // Some inode lost a link (and its ctime moved): which node that is, and its other names, are not known here.
        this.attrEpochSeq = ++this.seq;
        return new Uint8Array(0);
      }
      case OP.RENAME:
      case OP.RENAME2: {
        const skip = h.opcode === OP.RENAME ? 8 : 16;
        if (h.opcode === OP.RENAME2 && v.getUint32(8, true) !== 0) return EINVAL; // RENAME_NOREPLACE/EXCHANGE: not in 9P
        const [oldName, newName] = cstrings(b.subarray(skip), 2) ?? [];
        if (!oldName || !newName) return EINVAL;
        const newDir = this.node(v.getBigUint64(0, true));
        const oldDir = this.node(h.nodeid);
        this.dirtyDir(oldDir, oldName);
        this.dirtyDir(newDir, newName);
        await this.client.renameat(oldDir.fid, oldName, newDir.fid, newName);
        this.attrEpochSeq = ++this.seq; // the moved inode's ctime, a replaced one's links
        return new Uint8Array(0);
      }
      default:
        return ENOSYS;
    }
  }

  private init(v: DataView): Uint8Array | number {
    const major = v.getUint32(0, true);
    if (major !== KERNEL_VERSION) return EPROTO;
    const maxReadahead = v.getUint32(8, true);
    const offered = v.getUint32(12, true);
    const kernelMinor = v.getUint32(4, true);
    const offered2 = offered & INIT.INIT_EXT && v.byteLength >= 20 ? v.getUint32(16, true) : 0;
    const minor = Math.max(MIN_MINOR_VERSION, Math.min(kernelMinor, MINOR_VERSION));
    // Passthrough: only with descriptors to hand over (the Gofer donates them) and a kernel that offers it.
    this.passthrough = (this.opts.passthrough ?? true) && this.client.donating && (offered2 & INIT2.PASSTHROUGH) !== 0 && minor >= 40;
    // AUTO_INVAL_DATA: the kernel drops a file's cached pages when GETATTR shows another size or mtime, so pages
    // may be kept across opens (KEEP_CACHE) without serving stale data for longer than the attribute validity.
    // HANDLE_KILLPRIV_V2: set-id bits are cleared here (SETATTR with FATTR_KILL_SUIDGID or, from the kernel's
    // file_remove_privs before a passthrough write, with nothing to set; WRITE_KILL_SUIDGID; OPEN_KILL_SUIDGID).
    // In return the super block is SB_NOSEC: a write to an inode known to carry no set-id bit and no capability
    // asks nothing, where before every write(2) first cost a GETXATTR of security.capability.
    this.killprivV2 = (this.opts.killprivV2 ?? true) && (offered & INIT.HANDLE_KILLPRIV_V2) !== 0;
    this.ring = this.openRing(offered2);
    const want =
      INIT.ASYNC_READ | INIT.BIG_WRITES | INIT.DO_READDIRPLUS | INIT.PARALLEL_DIROPS | INIT.MAX_PAGES | INIT.AUTO_INVAL_DATA | (this.killprivV2 ? INIT.HANDLE_KILLPRIV_V2 : 0);
    return initOut({
      maxReadahead: Math.min(maxReadahead, MAX_IO),
      flags: (offered & want) | (this.passthrough || this.ring ? INIT.INIT_EXT : 0),
      maxBackground: 16,
      congestionThreshold: 12,
      maxWrite: MAX_IO,
      timeGran: 1,
      maxPages: MAX_IO / 4096,
      minor,
      flags2: (this.passthrough ? INIT2.PASSTHROUGH : 0) | (this.ring ? INIT2.OVER_IO_URING : 0),
      maxStackDepth: this.passthrough ? Math.min(this.opts.maxStackDepth ?? MAX_STACK_DEPTH, MAX_STACK_DEPTH) : 0,
    });
  }

  /**
   * The fuse_open_out of an opened fid. With passthrough and a donated descriptor, the inode's backing file (the
   * descriptor, registered with the kernel, or the one its other open files share) serves the open: the kernel
   * reads and writes it directly and never asks us. Without, the kernel's page cache is kept across opens
   * (KEEP_CACHE) and READ/WRITE come here.
   */
  private opened(nodeid: bigint, fid: number, writable: boolean, fd: number | undefined): Uint8Array {
    const node = this.nodes.get(nodeid);
    this.openNodes.set(fid, nodeid);
    if (node) node.ours = true;
    // A handle open for writing sends FLUSH at close(2): it carries the failure of a SETATTR written behind while
    // the file was open (see setattrBehind). Read-only handles skip it; a node with one open takes no write-behind.
    const noflush = writable ? 0 : FOPEN.NOFLUSH;
    if (noflush && node) {
      node.noflushOpens++;
      this.noflushFids.add(fid);
    }
    if (fd === undefined || !this.passthrough || !node) {
      if (fd !== undefined) sys.close(fd);
      return openOut(BigInt(fid), FOPEN.KEEP_CACHE | noflush);
    }
    if (node.backing && (node.backing.writable || !writable)) {
      sys.close(fd);
    } else {
      if (node.backing) {
        // A read-only backing file in use and a write wanted: the kernel allows one backing file per inode.
        sys.close(fd);
        this.closedHandle(fid);
        throw new P9Error(EBUSY, 'OPEN for writing while read-only passthrough opens are live');
      }
      const map = new Uint8Array(16);
      view(map).setInt32(0, fd, true);
      const id = sys.ioctl(this.fd, FUSE_DEV_IOC_BACKING_OPEN, map);
      if (id < 0) {
        sys.close(fd);
        this.backingErrors++;
        return openOut(BigInt(fid), FOPEN.KEEP_CACHE | noflush);
      }
      // A writable one's is kept while the backing file is: the host's size and times after writes the kernel
      // made past this server are one fstat away (see `dataOf`). A read-only one needs nothing of it.
      if (!writable) sys.close(fd);
      node.backing = { id, writable, opens: 0, fd: writable ? fd : -1 };
    }
    node.backing.opens++;
    this.backed.set(fid, node);
    this.passthroughOpens++;
    return openOut(BigInt(fid), FOPEN.PASSTHROUGH | noflush, node.backing.id);
  }

  /**
   * Gives a file just made in `h.nodeid` to the caller's uid and gid: the Gofer makes files as the attaching
   * user (root), and a program running as another host user must own what it makes (tar writing into the
   * directories it has just created). Best effort: a Gofer that cannot chown leaves root's.
   */
  private async giveToCaller(h: InHeader, name: Uint8Array): Promise<void> {
    if (!this.needsChown(h)) return;
    const fid = this.client.allocFid();
    // Walk, chown and clunk in one round trip (the Gofer runs them in order).
    const walked = this.client.walk(this.node(h.nodeid).fid, fid, [name]);
    const chowned = this.client.setattr(fid, SETATTR.UID | SETATTR.GID, { uid: h.uid, gid: h.gid }).catch(() => {});
    const clunked = this.clunk(fid);
    await Promise.all([walked.catch(() => {}), chowned, clunked]);
  }

  /**
   * Whether a file `h`'s caller made needs a chown: the Gofer makes files as the user the root was attached as
   * (`owner`) with the group asked for. Attached as root, any other caller's files are given over, and root's own
   * with a group other than 0 (as before `owner` existed).
   */
  private needsChown(h: InHeader): boolean {
    return this.owner === 0 ? h.uid !== 0 || h.gid !== 0 : h.uid !== this.owner;
  }

  private node(id: bigint): Node {
    const n = this.nodes.get(id);
    // A node id the kernel should not have: answer ENOENT rather than touch any other fid.
    if (!n) throw new P9Error(ENOENT, `unknown node ${id}`);
    return n;
  }

  /**
   * A clone of the node's fid and `op` on it, sent together (one round trip); the fid is clunked if either fails.
   * A server that ran `op` before the walk (EBADF: threads, as diod has) is asked again.
   */
  private async cloneAnd<T>(id: bigint, op: (fid: number) => Promise<T>): Promise<[number, T]> {
    const fid = this.client.allocFid();
    const walked = this.client.walk(this.node(id).fid, fid, []);
    const done = op(fid);
    try {
      await walked;
    } catch (e) {
      done.catch(() => {});
      throw e;
    }
    try {
      return [fid, await done];
    } catch (e) {
      if (e instanceof P9Error && e.errno === EBADF) {
        try {
          return [fid, await op(fid)];
        } catch (again) {
          await this.clunk(fid);
          throw again;
        }
      }
      await this.clunk(fid);
      throw e;
    }
  }

  private async clunk(fid: number): Promise<void> {
    try {
      await this.client.rpc({ type: 'Tclunk', fid });
    } catch {
      // The fid is gone either way.
    }
  }

  private forget(id: bigint, n: bigint): void {
    const node = this.nodes.get(id);
    if (!node || id === 1n) return;
    node.nlookup -= n;
    if (node.nlookup > 0n) return;
    this.nodes.delete(id);
    this.forgotten++;
    if (node.children) this.entryCount -= node.children.size;
    if (this.byIno.get(node.ino) === id) this.byIno.delete(node.ino);
    this.client.clunkSoon(node.fid);
  }

  /**
   * Marks a node as just used. A stamp, not a move to the end of an ordered map: every request touches its node,
   * and a delete and insert per request cost more than ordering the nodes once per prune.
   */
  private touch(id: bigint): void {
    const node = this.nodes.get(id);
    if (node) node.used = ++this.useClock;
  }

  /** Touches a node already at hand. */
  private used(node: Node): void {
    node.used = ++this.useClock;
  }

  /**
   * Past maxNodes, offers the least recently used eighth-and-excess back to the kernel (FUSE_NOTIFY_PRUNE), once per
   * turn of the loop. Why PRUNE and not FUSE_NOTIFY_INVAL_ENTRY: INVAL_ENTRY takes the parent directory's lock, so
   * written from this loop it deadlocks against a LOOKUP that holds the lock waiting for our reply; PRUNE takes no
   * inode lock (it drops only dentries nobody holds) and needs no name. Nodes the kernel keeps (open files, a cwd,
   * mount points such as the sandbox's /proc, directories whose children are cached) go to the back and are
   * offered again later; those with passthrough files open are not offered.
   */
  private maybePrune(): void {
    if (this.pruneQueued || this.pruneSupported === false || this.nodes.size <= this.maxNodes) return;
    this.pruneQueued = true;
    setImmediate(() => {
      this.pruneQueued = false;
      if (this.closed) return;
      const want = this.nodes.size - Math.floor(this.maxNodes * 0.875);
      if (want <= 0) return;
      const candidates: [bigint, Node][] = [];
      for (const entry of this.nodes) if (entry[0] !== 1n && !entry[1].backing) candidates.push(entry);
      candidates.sort((a, b) => a[1].used - b[1].used);
      const ids = candidates.slice(0, want).map(([id, node]) => (this.used(node), id));
      for (let i = 0; i < ids.length; i += 4096) {
        const msg = pruneNotify(ids.slice(i, i + 4096));
        if (sys.write(this.fd, msg, msg.length) < 0) {
          const e = errno();
          // A kernel before 6.18 does not know the code: EINVAL. Then nodes stay until the kernel forgets them.
          if (e === EINVAL || e === ENOSYS) this.pruneSupported = false;
          return;
        }
        this.pruneSupported = true;
        this.pruneOffered += Math.min(4096, ids.length - i);
      }
    });
  }

  /** Walks `name` from `parent`, and gives the kernel a node for it (the same node for the same inode). */
  private async lookup(parent: bigint, name: Uint8Array): Promise<Uint8Array> {
    const { id, a } = await this.lookupNode(parent, name);
    return entryOut(id, a, this.valid);
  }

  /** The lookup of a name this server has just made (MKNOD, SYMLINK): its node is the sandbox's own. */
  private async lookupMade(parent: bigint, name: Uint8Array): Promise<Uint8Array> {
    const { id, a } = await this.lookupNode(parent, name);
    const node = this.nodes.get(id);
    if (node) node.ours = true;
    return entryOut(id, a, this.valid);
  }

  /**
   * LOOKUP: from the names and attributes this server saw within the validity (a missing name as a negative
   * entry, node id 0), else from the Gofer. The kernel sends LOOKUPs it could answer itself: an O_EXCL open or a
   * mkdir revalidates the name whatever its dentry says, and tar asks for each name three times (unlink, then
   * open O_EXCL, then its directory again at mkdir -p).
   */
  private async lookupCached(parentId: bigint, name: Uint8Array): Promise<Uint8Array> {
    // What needs no Gofer was answered by lookupLocal (answerNow): a name known with its node's attributes, a
    // name known missing. Left: a name known whose node's attributes must be read again, and names not known.
    const parent = this.node(parentId);
    const st = this.stamp();
    const e = this.entryMs > 0 ? parent.children?.get(nameKey(name)) : undefined;
    if (e && e.id !== 0n && this.fresh(parent, e, st.t)) {
      const entryLeft = (this.entryMs - (st.t - e.t)) / 1000;
      const child = this.nodes.get(e.id);
      if (child) {
        const a = await this.attr(child.fid).then((x) => (this.keepAttr(child, x, st), x), () => undefined);
        // Forgotten while the Tgetattr ran: the node is gone, so it is looked up afresh.
        if (a && this.nodes.get(e.id) === child) {
          child.nlookup++;
          this.used(child);
          return entryOut(e.id, a, { entry: entryLeft, attr: this.valid.attr });
        }
      }
    }
    try {
      return await this.lookup(parentId, name);
    } catch (err) {
      // A missing name is cached as missing for the entry validity (node id 0), as a found one is: tar and
      // compilers ask for the same absent name several times before they create it.
      if (!(err instanceof P9Error && err.errno === ENOENT)) throw err;
      this.keepEntry(parent, name, 0n, st);
      return entryOut(0n, zeroAttr(0n, 0), { entry: this.valid.entry, attr: 0 });
    }
  }

  /**
   * A LOOKUP answered from what this server knows, or undefined: a name looked up within the entry validity,
   * missing or found with its node's attributes still valid; a name missing from a directory this server made.
   */
  private lookupLocal(parentId: bigint, name: Uint8Array): Uint8Array | number | undefined {
    const parent = this.node(parentId);
    if (this.client.closed) return this.lookupGone(parent, name);
    const t = performance.now();
    const e = this.entryMs > 0 ? parent.children?.get(nameKey(name)) : undefined;
    if (e && this.fresh(parent, e, t)) {
      const entryLeft = (this.entryMs - (t - e.t)) / 1000;
      if (e.id === 0n) {
        this.cacheHits++;
        return entryOut(0n, zeroAttr(0n, 0), { entry: entryLeft, attr: 0 });
      }
      const child = this.nodes.get(e.id);
      const a = child && this.cachedAttr(child, t);
      if (!child || !a) return undefined;
      this.cacheHits++;
      child.nlookup++;
      this.used(child);
      return entryOut(e.id, a, { entry: entryLeft, attr: (this.attrMs - (t - child.attrT)) / 1000 });
    }
    const left = this.knownMissing(parent, name, t);
    if (left === undefined) return undefined;
    this.cacheHits++;
    return entryOut(0n, zeroAttr(0n, 0), { entry: left, attr: 0 });
  }

  /**
   * LOOKUP once the Gofer is gone: a name this server knew to lead to a node that the kernel still has is answered
   * with that node and its last attributes, valid for no time, and anything else with EIO. Why: the kernel's
   * revalidation of an expired dentry takes any failed LOOKUP for a changed name and drops the dentry, and an
   * overlayfs above (`run --rootfs --overlay`) then fails the program's call with ESTALE (ovl_revalidate_real)
   * instead of the EIO a dead Gofer gives every file call; answered so, the dentry stays and the call itself (the
   * open, the stat of attributes that are no longer valid, the readdir) meets EIO. Nothing is served from the
   * answer: the attributes are valid for no time and every request that needs the Gofer fails.
   */
  private lookupGone(parent: Node, name: Uint8Array): Uint8Array | number {
    const e = parent.children?.get(nameKey(name));
    const child = e && e.id !== 0n ? this.nodes.get(e.id) : undefined;
    if (!child?.attr) return EIO;
    child.nlookup++;
    return entryOut(e!.id, child.attr, { entry: 0, attr: 0 });
  }

  /** The walk and Tgetattr of a lookup: the node (remembered, its count taken) and its attributes. */
  private async lookupNode(parent: bigint, name: Uint8Array): Promise<{ id: bigint; a: Attr }> {
    const st = this.stamp();
    const fid = this.client.allocFid();
    // Twalk and Tgetattr of the new fid go out together: one round trip, not two (the Gofer handles metadata
    // requests in order). A server that ran the Tgetattr first (threads, as diod has) fails it; it is asked again.
    const walked = this.client.walk(this.node(parent).fid, fid, [name]);
    const got = this.client.getattr(fid, GETATTR.ALL);
    try {
      await walked;
    } catch (e) {
      got.catch(() => {});
      throw e;
    }
    let a: Attr;
    try {
      a = toAttr(await got.catch(() => this.client.getattr(fid, GETATTR.ALL)));
    } catch (e) {
      await this.clunk(fid);
      throw e;
    }
    const id = this.remember(fid, a.ino);
    this.keepAttr(this.nodes.get(id), a, st);
    this.keepEntry(this.nodes.get(parent), name, id, st);
    return { id, a };
  }

  /** The node id for the inode `ino` walked as `fid`: an existing node (and `fid` clunked) or a new one. */
  private remember(fid: number, ino: bigint): bigint {
    const known = this.byIno.get(ino);
    const node = known === undefined ? undefined : this.nodes.get(known);
    if (known !== undefined && node) {
      node.nlookup++;
      this.used(node);
      this.client.clunkSoon(fid);
      return known;
    }
    const id = this.nextNode++;
    this.nodes.set(id, newNode(fid, ino, ++this.useClock));
    this.byIno.set(ino, id);
    this.maybePrune();
    return id;
  }

  private async attr(fid: number): Promise<Attr> {
    return toAttr(await this.client.getattr(fid, GETATTR.ALL));
  }

  /** Now, for a request about to be sent. */
  private stamp(): Stamp {
    return { seq: ++this.seq, t: performance.now() };
  }

  /**
   * The node's attributes if they may be answered without asking the Gofer: read less than the attribute validity
   * ago (`t`, ms) and after every change started on the node or on links in general. Never while a passthrough
   * file of the node is open for writing: the kernel writes the host file itself, and its size and times move
   * without a word to this server.
   */
  private cachedAttr(node: Node, t: number): Attr | undefined {
    if (t - node.attrT >= this.attrMs || node.backing?.writable) return undefined;
    return this.knownAttr(node);
  }

  /** The node's attributes as last read, if no change started on it (or on links in general) since, whatever their age. */
  private knownAttr(node: Node): Attr | undefined {
    if (!node.attr || node.attrSeq < node.dirtySeq || node.attrSeq < this.attrEpochSeq) return undefined;
    return node.attr;
  }

  /** Keeps attributes read by a request sent at `st`, unless a change started on the node since. */
  private keepAttr(node: Node | undefined, a: Attr, st: Stamp): void {
    if (!node || st.seq < node.dirtySeq) return;
    node.attr = a;
    node.attrT = st.t;
    node.attrSeq = st.seq;
  }

  /** A change to the node is starting: its attributes are not answered again until read anew (its mode is kept as a hint). */
  private dirty(node: Node | undefined): void {
    if (node) node.dirtySeq = ++this.seq;
  }

  /** A change to `name` in the directory `dir` is starting: the name and the directory's attributes are forgotten. */
  private dirtyDir(dir: Node, name: Uint8Array): void {
    this.dirty(dir);
    dir.entriesDirtySeq = ++this.seq;
    const key = nameKey(name);
    if (dir.children?.delete(key)) this.entryCount--;
    if (dir.madeAt !== undefined) (dir.unsure ??= new Set()).add(key);
  }

  /** Keeps what a lookup sent at `st` found for `name` in `dir` (0n: missing), unless the directory changed since. */
  private keepEntry(dir: Node | undefined, name: Uint8Array, id: bigint, st: Stamp): void {
    if (!dir || this.entryMs <= 0 || st.seq < dir.entriesDirtySeq) return;
    if (this.entryCount >= this.maxEntries) {
      // A bound on memory, reached by walks over many more names than nodes: start again (and with the names
      // gone, no directory's names are all known).
      for (const n of this.nodes.values()) {
        n.children = undefined;
        n.madeAt = undefined;
        n.unsure = undefined;
      }
      this.entryCount = 0;
    }
    dir.children ??= new Map();
    const key = nameKey(name);
    if (!dir.children.has(key)) this.entryCount++;
    dir.children.set(key, { id, t: st.t, seq: st.seq });
    dir.unsure?.delete(key);
  }

  /** Whether the lookup `e` of a name in `dir` may still be answered at `t`: within the entry validity, and sent after the directory's last change. */
  private fresh(dir: Node, e: { t: number; seq: number }, t: number): boolean {
    return t - e.t < this.entryMs && e.seq > dir.entriesDirtySeq;
  }

  /**
   * Whether `name` is missing from `dir` by what this server knows: the directory was made through the mount less
   * than the entry validity ago (`t`), and the name was not made in it since (nor is a change of it under way).
   * The seconds of validity left, or undefined.
   */
  private knownMissing(dir: Node, name: Uint8Array, t: number): number | undefined {
    if (dir.madeAt === undefined || t - dir.madeAt >= this.entryMs || isDot(name)) return undefined;
    const key = nameKey(name);
    if (dir.children?.get(key)?.id || dir.unsure?.has(key)) return undefined;
    return (this.entryMs - (t - dir.madeAt)) / 1000;
  }

  /**
   * Clears S_ISUID, and S_ISGID where group-executable, of a regular file (`a` its attributes): what a write,
   * truncate or chown by a caller without CAP_FSETID does on a local file system, and what HANDLE_KILLPRIV_V2 asks
   * of this server. The Gofer, as root, would keep them. The attributes after.
   */
  private async killSuidgid(node: Node, a: Attr): Promise<Attr> {
    if ((a.mode & S_IFMT) !== S_IFREG) return a;
    const kill = (a.mode & S_ISUID) | ((a.mode & (S_ISGID | S_IXGRP)) === (S_ISGID | S_IXGRP) ? S_ISGID : 0);
    if (kill === 0) return a;
    this.dirty(node);
    const st = this.stamp();
    const set = this.client.setattr(node.fid, SETATTR.MODE, { mode: a.mode & 0o7777 & ~kill });
    const got = this.attr(node.fid);
    try {
      await set;
    } catch (e) {
      got.catch(() => {});
      throw e;
    }
    const after = await got;
    this.keepAttr(node, after, st);
    return after;
  }

  private async setattr(id: bigint, v: DataView): Promise<Uint8Array> {
    const valid = v.getUint32(0, true);
    const node = this.node(id);
    const fid = node.fid;
    // With HANDLE_KILLPRIV_V2 the kernel asks for the set-id bits to go with FATTR_KILL_SUIDGID (truncate, chown),
    // and its file_remove_privs (a write by a caller without CAP_FSETID, a chown(-1, -1)) arrives as a SETATTR with
    // nothing to set: it strips the mode change it would have made and leaves the clearing to the server.
    const kill = this.killprivV2 && ((valid & FATTR.KILL_SUIDGID) !== 0 || (valid & ~(FATTR.FH | FATTR.LOCKOWNER)) === 0);
    this.dirty(node);
    const st = this.stamp();
    let p9 = 0;
    if (valid & FATTR.MODE) p9 |= SETATTR.MODE;
    if (valid & FATTR.UID) p9 |= SETATTR.UID;
    if (valid & FATTR.GID) p9 |= SETATTR.GID;
    if (valid & FATTR.SIZE) p9 |= SETATTR.SIZE;
    if (valid & (FATTR.ATIME | FATTR.ATIME_NOW)) p9 |= SETATTR.ATIME | (valid & FATTR.ATIME_NOW ? 0 : SETATTR.ATIME_SET);
    if (valid & (FATTR.MTIME | FATTR.MTIME_NOW)) p9 |= SETATTR.MTIME | (valid & FATTR.MTIME_NOW ? 0 : SETATTR.MTIME_SET);
    if (valid & FATTR.CTIME) p9 |= SETATTR.CTIME;
    // The change and the Tgetattr of its result go out together (the Gofer runs them in order).
    const set =
      p9 === 0
        ? undefined
        : this.client.setattr(fid, p9, {
        size: v.getBigUint64(16, true),
        atimeSec: v.getBigUint64(32, true),
        mtimeSec: v.getBigUint64(40, true),
        atimeNsec: BigInt(v.getUint32(56, true)),
        mtimeNsec: BigInt(v.getUint32(60, true)),
        mode: v.getUint32(68, true) & 0o7777,
        uid: v.getUint32(76, true),
        gid: v.getUint32(80, true),
          });
    const got = this.attr(fid);
    if (set) {
      try {
        await set;
      } catch (e) {
        got.catch(() => {});
        throw e;
      }
    }
    let a = await got;
    this.keepAttr(node, a, st);
    if (kill) a = await this.killSuidgid(node, a);
    return attrOut(a, this.valid);
  }

  /**
   * A SETATTR answered before the Gofer has done it (write-behind), or undefined where it must wait. Written
   * behind: a chmod, chown or utimes (no size, no ctime) of a node made or opened through the mount whose
   * attributes are known (read within the validity and not changed since, or those its earlier written-behind
   * SETATTRs will leave), with no handle of it open whose close skips FLUSH and no earlier failure unreported. The
   * Tsetattr goes out with the next request (Client.setattrSoon; the Gofer runs them in order), and the reply's
   * attributes are computed here (ctime: now), valid for no time, so that the kernel asks again (GETATTR, which
   * waits for the call) before it shows them to a later stat. A failure is kept on the node and reported by the
   * next request that opens, changes, flushes (close(2)) or syncs it (see `settleNode`), as NFS reports a failed
   * write-behind at close.
   */
  private setattrBehind(id: bigint, v: DataView): Uint8Array | undefined {
    const node = this.nodes.get(id);
    if (!this.writeBehind || !node?.ours || node.noflushOpens > 0 || node.lateError !== undefined) return undefined;
    const valid = v.getUint32(0, true);
    if (valid & ~BEHIND_FATTR) return undefined;
    const t = performance.now();
    let a = this.writeBase(node, t);
    // A file the kernel writes itself: size and times from the host file, now.
    if (a && node.backing?.writable) a = this.dataOf(a, node.backing.fd);
    if (!a) return undefined;
    const next = { ...a };
    const attrs: Parameters<Client['setattrSoon']>[2] = {};
    let p9 = 0;
    if (valid & FATTR.MODE) {
      attrs.mode = v.getUint32(68, true) & 0o7777;
      next.mode = (a.mode & S_IFMT) | attrs.mode;
      p9 |= SETATTR.MODE;
    }
    if (valid & FATTR.UID) {
      next.uid = attrs.uid = v.getUint32(76, true);
      p9 |= SETATTR.UID;
    }
    if (valid & FATTR.GID) {
      next.gid = attrs.gid = v.getUint32(80, true);
      p9 |= SETATTR.GID;
    }
    // The host clears set-id bits of a regular file at a chown, and KILL_SUIDGID asks for it (as does a SETATTR
    // with nothing to set, under KILLPRIV_V2: see `setattr`): left to the synchronous path, which reads the
    // outcome (a file with such bits is rare).
    const kill = valid & (FATTR.UID | FATTR.GID | FATTR.KILL_SUIDGID) || (this.killprivV2 && (valid & ~(FATTR.FH | FATTR.LOCKOWNER)) === 0);
    if (kill && (next.mode & S_IFMT) === S_IFREG && next.mode & (S_ISUID | S_ISGID)) return undefined;
    const now = realtime();
    // "Now" is this clock's, sent as a time to set, so that the host's file gets the time this reply states.
    if (valid & (FATTR.ATIME | FATTR.ATIME_NOW)) {
      [next.atime, next.atimensec] = valid & FATTR.ATIME_NOW ? now : [v.getBigUint64(32, true), v.getUint32(56, true)];
      [attrs.atimeSec, attrs.atimeNsec] = [next.atime, BigInt(next.atimensec)];
      p9 |= SETATTR.ATIME | SETATTR.ATIME_SET;
    }
    if (valid & (FATTR.MTIME | FATTR.MTIME_NOW)) {
      [next.mtime, next.mtimensec] = valid & FATTR.MTIME_NOW ? now : [v.getBigUint64(40, true), v.getUint32(60, true)];
      [attrs.mtimeSec, attrs.mtimeNsec] = [next.mtime, BigInt(next.mtimensec)];
      p9 |= SETATTR.MTIME | SETATTR.MTIME_SET;
    }
    // Nothing to set (the kernel's file_remove_privs of a file without set-id bits): nothing to send. Nor for a
    // chown to the owner and group the file has (tar's chown of each file it made, to the user the Gofer made it
    // for): with no set-id bit to clear (above), the host's call would change only the ctime, which is left as it
    // is (the one deviation from a local chown, which moves it).
    if (p9 === 0) return attrOut(a, { entry: 0, attr: 0 });
    if ((p9 & ~(SETATTR.UID | SETATTR.GID)) === 0 && next.uid === a.uid && next.gid === a.gid) {
      this.sameOwnerChowns++;
      return attrOut(a, { entry: 0, attr: 0 });
    }
    [next.ctime, next.ctimensec] = now;
    this.dirty(node);
    node.ahead = next;
    node.aheadSeq = ++this.seq;
    this.writtenBehind++;
    this.behindCall(node, this.client.setattrSoon(node.fid, p9, attrs));
    return attrOut(next, { entry: 0, attr: 0 });
  }

  /** Counts a written-behind call on the node until the Gofer answers it, and keeps its failure. */
  private behindCall(node: Node, call: Promise<void>): void {
    node.behind++;
    const done = call.catch((e: unknown) => this.keepLateError(node, e));
    this.track(done);
    node.settled = Promise.all([node.settled, done]).then(() => {
      if (--node.behind === 0) node.settled = undefined;
    });
  }

  /** A change answered before the Gofer made it failed there: kept on the node for the next request to report. */
  private keepLateError(node: Node, e: unknown): void {
    this.lateErrors++;
    node.lateError ??= e instanceof P9Error ? e.errno : EIO;
    node.ahead = undefined; // not what the host file has
  }

  /** Keeps a written-behind call (never rejecting) among those `settle` waits for, until it is answered. */
  private track(done: Promise<void>): void {
    this.pendingBehind.add(done);
    void done.then(() => this.pendingBehind.delete(done));
  }

  /**
   * Waits until the node's written-behind SETATTRs are answered (sending them now if they are still held); with
   * `reports`, a failure among them, which is then reported (once).
   */
  private async settleNode(node: Node, reports: boolean): Promise<number | undefined> {
    if (node.behind > 0) {
      this.client.sendLate();
      await node.settled;
    }
    if (!reports || node.lateError === undefined) return undefined;
    const e = node.lateError;
    node.lateError = undefined;
    return e;
  }

  /**
   * GETXATTR (a name) or LISTXATTR (name empty): Txattrwalk then Tread of the value. `size` 0 asks for the length
   * only (fuse_getxattr_out); a value longer than `size` is ERANGE, as getxattr(2) says.
   */
  private async getxattr(id: bigint, name: Uint8Array, size: number): Promise<Uint8Array | number> {
    if (name.length > 0 && !isUserXattr(name)) return EOPNOTSUPP;
    const fid = this.client.allocFid();
    // A failed Txattrwalk allocates no fid; its errno (ENODATA for a missing attribute) is the reply.
    const len = Number(await this.client.xattrwalk(this.node(id).fid, fid, name));
    try {
      if (size === 0) {
        const out = new Uint8Array(8);
        view(out).setUint32(0, len, true);
        return out;
      }
      if (len > size) return ERANGE;
      return len === 0 ? new Uint8Array(0) : await this.read(fid, 0n, len);
    } finally {
      this.client.clunkSoon(fid);
    }
  }

  /** SETXATTR and REMOVEXATTR: Txattrcreate on a clone of the node's fid, Twrite of the value, Tclunk sets it. */
  private async setxattr(id: bigint, name: Uint8Array, value: Uint8Array, flags: number): Promise<Uint8Array | number> {
    if (!isUserXattr(name)) return EOPNOTSUPP;
    const [fid] = await this.cloneAnd(id, (f) => this.client.xattrcreate(f, name, BigInt(value.length), flags));
    try {
      if (value.length > 0) await this.client.writeAll(fid, 0n, value);
    } catch (e) {
      await this.clunk(fid);
      throw e;
    }
    // The attribute is set (or the error known) at Tclunk: its error is this call's.
    await this.client.clunk(fid);
    return new Uint8Array(0);
  }

  private async read(fh: number, offset: bigint, size: number): Promise<Uint8Array> {
    // A short READ reply means end of file to the kernel, so a 9P read cut by msize is continued.
    const parts: Uint8Array[] = [];
    let got = 0;
    while (got < size) {
      const d = await this.client.read(fh, offset + BigInt(got), size - got);
      if (d.length === 0) break;
      parts.push(d);
      got += d.length;
    }
    if (parts.length === 1) return parts[0]!;
    return Buffer.concat(parts);
  }

  private async readdir(plus: boolean, dirNode: bigint, fh: number, offset: bigint, size: number): Promise<Uint8Array> {
    // fuse_dirent is never smaller than 9P's entry, so `size` bytes of 9P entries fill at most the reply; the
    // ones that do not fit are read again from the last cookie sent. A direntplus is ~5 times a 9P entry: ask
    // for about what fits.
    const want = plus ? Math.max(512, Math.ceil(size / 3)) : size;
    const entries = await this.client.readdir(fh, offset, Math.min(want, this.client.msize - 11));
    const out = new Uint8Array(size);
    let o = 0;
    if (!plus) {
      for (const d of entries) {
        if (o + direntSize(d.name.length) > size) break;
        o = writeDirent(out, o, d.qid.path, d.offset, d.type, d.name);
      }
      return out.subarray(0, o);
    }
    // The entries that fit, then their lookups all at once (the 9P client pipelines them): only those sent may
    // be looked up, since each lookup is a count the kernel must later FORGET.
    let fit = 0;
    for (let used = 0; fit < entries.length; fit++) {
      used += direntPlusSize(entries[fit]!.name.length);
      if (used > size) break;
    }
    const sent = entries.slice(0, fit);
    const looked = await Promise.all(sent.map((d) => (isDot(d.name) ? undefined : this.lookup(dirNode, d.name).catch(() => undefined))));
    for (let i = 0; i < sent.length; i++) {
      const d = sent[i]!;
      const entry = looked[i];
      if (!entry) {
        // `.` and `..` (the kernel takes no lookup count for them), or a name gone since the listing: no node,
        // and the kernel looks it up itself when it needs it.
        o = writeDirentPlus(out, o, 0n, zeroAttr(d.qid.path, d.type), { entry: 0, attr: 0 }, d.offset, d.type, d.name);
        continue;
      }
      out.set(entry, o);
      o = writeDirent(out, o + entry.length, d.qid.path, d.offset, d.type, d.name);
    }
    return out.subarray(0, o);
  }

  private async create(h: InHeader, b: Uint8Array): Promise<Uint8Array> {
    const v = view(b);
    const flags = v.getUint32(0, true) & ~(O_CREAT | O_NOCTTY);
    const mode = v.getUint32(4, true) & ~v.getUint32(8, true) & 0o7777;
    const [name] = cstrings(b.subarray(16), 1) ?? [];
    if (!name) throw new P9Error(EINVAL, 'CREATE without a name');
    const parent = this.node(h.nodeid);
    this.dirtyDir(parent, name);
    const chown = this.needsChown(h);
    // A caller the Gofer already makes files for (the attaching user, `owner`) needs no chown: in the tsvisor
    // dialect, one Tlcreateat does all of it.
    if (!chown && this.client.donating) return this.createdOut(v, flags, ...(await this.createAt(h.nodeid, name, flags, mode, h.gid)));
    const created = this.cloneAnd(h.nodeid, (f) => this.client.lcreate(f, name, flags, mode, h.gid));
    // In plain 9P2000.L, for such a caller the lookup of the new name and the directory's new attributes go out
    // right behind the create, and the whole CREATE is one round trip of five requests. (The Gofer runs them in
    // order; a failed create leaves the lookup finding an existing name or nothing, and its count is given back.)
    // The kernel asks for the directory's attributes next, since a create invalidates them: they are then at hand.
    let st = this.stamp();
    const early = chown ? undefined : this.lookupNode(h.nodeid, name);
    early?.catch(() => {});
    let dirAttr = !chown && this.attrMs > 0 ? this.attr(parent.fid).then((a) => this.keepAttr(parent, a, st), () => {}) : undefined;
    let fid: number;
    let r: Awaited<typeof created>[1];
    try {
      [fid, r] = await created;
    } catch (e) {
      const f = await early?.catch(() => undefined);
      if (f) this.forget(f.id, 1n); // the count of a lookup the kernel will never hear of
      await dirAttr;
      throw e;
    }
    let found = await early?.catch(() => undefined);
    let owned: Promise<void> | undefined;
    if (!found) {
      // Another caller: the chown waits for the create (before it, the fid is the directory's clone, and a name
      // that already existed is not the caller's to take), then goes out with the lookup, so the entry shows the
      // new owner. Also the way again when the early lookup failed (a threaded server that ran it first).
      st = this.stamp();
      owned = chown ? this.client.setattr(fid, SETATTR.UID | SETATTR.GID, { uid: h.uid, gid: h.gid }).catch(() => {}) : undefined;
      const looked = this.lookupNode(h.nodeid, name);
      const again = dirAttr;
      dirAttr = this.attrMs > 0 ? this.attr(parent.fid).then((a) => this.keepAttr(parent, a, st), () => {}) : undefined;
      await again;
      await owned;
      try {
        found = await looked;
      } catch (e) {
        if (r.fd !== undefined) sys.close(r.fd);
        await this.clunk(fid);
        throw e;
      } finally {
        await dirAttr;
      }
    }
    await dirAttr;
    return this.createdOut(v, flags, fid, r.fd, found);
  }

  /**
   * A CREATE by a caller the Gofer makes files for, in the tsvisor dialect: one Tlcreateat, whose reply holds what
   * the five requests of `create` bring back (the open fid, the node's fid, the file's and the directory's
   * attributes). On an error the Gofer has made no fid.
   */
  private async createAt(parentId: bigint, name: Uint8Array, flags: number, mode: number, gid: number): Promise<[number, number | undefined, { id: bigint; a: Attr }]> {
    const st = this.stamp();
    const fid = this.client.allocFid();
    const nodeFid = this.client.allocFid();
    const r = await this.client.lcreateat(this.node(parentId).fid, fid, nodeFid, name, flags, mode, gid);
    const a = toAttr(r.attr);
    const id = this.remember(nodeFid, a.ino);
    const parent = this.nodes.get(parentId);
    this.keepAttr(this.nodes.get(id), a, st);
    this.keepEntry(parent, name, id, st);
    // The kernel asks for the directory's attributes next, since a create invalidates them: they are at hand.
    if (this.attrMs > 0) this.keepAttr(parent, toAttr(r.dirAttr), st);
    return [fid, r.fd, { id, a }];
  }

  /**
   * A CREATE answered with a file made ahead of its name (Tmktmp: O_TMPFILE in the directory, opened, its
   * descriptor donated), or undefined. Only where nothing can be there already: the name is known missing (a
   * directory made through the mount, or a lookup within the entry validity), by a caller the Gofer makes files for,
   * with plain open flags and no set-id bit. The Tlinktmp that names it (and gives it the mode asked for, and this
   * answer's time as its times while nothing wrote to it) is held back to go out before the next request to the
   * Gofer, so that everything sent later (a lookup, a rename, an unlink, a readdir) finds the name there; an untar
   * then waits for no round trip per file. Like a SETATTR written behind, a refusal (the host's disk full, or the
   * name made on the host meanwhile) comes after the answer: the next request on the file that opens, changes,
   * flushes or syncs it reports it, and the name is forgotten here (the kernel forgets it after the entry
   * validity: FUSE_NOTIFY_INVAL_ENTRY from this loop can deadlock, see `maybePrune`).
   */
  private createAhead(h: InHeader, b: Uint8Array): Uint8Array | undefined {
    if (this.aheadOff || !this.client.donating || this.client.closed || this.needsChown(h)) return undefined;
    const v = view(b);
    const flags = v.getUint32(0, true) & ~(O_CREAT | O_NOCTTY);
    const mode = v.getUint32(4, true) & ~v.getUint32(8, true) & 0o7777;
    if (flags & ~AHEAD_FLAGS || mode & 0o7000) return undefined;
    const end = b.indexOf(0, 16);
    if (end <= 16) return undefined;
    const name = b.subarray(16, end);
    const parent = this.node(h.nodeid);
    if (parent.behind > 0 || parent.lateError !== undefined) return undefined;
    const t = performance.now();
    if (!this.knownAbsent(parent, name, t)) return undefined;
    // The directory's attributes, which the kernel asks for next (the create invalidates them): as last read, with
    // this change's times; the Gofer's come with the Tlinktmp's reply.
    const dirAttr = this.knownAttr(parent);
    if (!dirAttr) return undefined;
    const pool = this.poolFor(h.nodeid, mode, h.gid, t);
    // An inode number a node still has (a file unlinked while the kernel holds it) would give the new file that
    // node: the usual CREATE instead.
    const made = pool.gid === h.gid && pool.ready[0] && !this.byIno.has(pool.ready[0].attr.ino) ? pool.ready.shift() : undefined;
    this.fillPool(h.nodeid, pool);
    if (!made) return undefined;
    this.dirtyDir(parent, name);
    const st = this.stamp();
    const now = realtime();
    const a: Attr = { ...made.attr, mode: S_IFREG | mode, nlink: 1, atime: now[0], atimensec: now[1], mtime: now[0], mtimensec: now[1], ctime: now[0], ctimensec: now[1] };
    const id = this.remember(made.nodeFid, a.ino);
    const node = this.nodes.get(id)!;
    this.keepAttr(node, a, st);
    this.keepEntry(parent, name, id, st);
    if (this.attrMs > 0) this.keepAttr(parent, { ...dirAttr, mtime: now[0], mtimensec: now[1], ctime: now[0], ctimensec: now[1] }, st);
    // A copy of the name: the request's buffer is read into again before the held Tlinktmp is encoded.
    const named = this.client.linktmpSoon(made.nodeFid, made.fid, parent.fid, name.slice(), mode, now).then(
      (r) => {
        this.keepAttr(node, toAttr(r.attr), st);
        this.keepAttr(parent, toAttr(r.dirAttr), st);
      },
      (e: unknown) => {
        this.aheadFailed++;
        this.keepLateError(node, e);
        if (parent.children?.get(nameKey(name))?.id === id) this.dirtyDir(parent, name);
      },
    );
    this.track(named);
    this.createdAhead++;
    const entry = entryOut(id, a, this.valid);
    const out = new Uint8Array(entry.length + 16);
    out.set(entry);
    out.set(this.opened(id, made.fid, (flags & 3) !== 0, made.fd), entry.length);
    return out;
  }

  /** Whether `name` is known missing from `dir` (a lookup within the entry validity, or a directory made here). */
  private knownAbsent(dir: Node, name: Uint8Array, t: number): boolean {
    if (this.entryMs <= 0) return false;
    const e = dir.children?.get(nameKey(name));
    if (e) return e.id === 0n && this.fresh(dir, e, t);
    return this.knownMissing(dir, name, t) !== undefined;
  }

  /** The directory's pool of files made ahead (made, or the least recently used one given back, as needed). */
  private poolFor(dir: bigint, mode: number, gid: number, t: number): AheadPool {
    let pool = this.pools.get(dir);
    if (pool && (pool.mode !== mode || pool.gid !== gid) && pool.ready.length === 0 && pool.asked === 0) {
      pool.mode = mode;
      pool.gid = gid;
    }
    if (!pool) {
      if (this.pools.size >= AHEAD_DIRS) {
        let oldest: bigint | undefined;
        let when = Infinity;
        for (const [d, p] of this.pools) if (p.used < when) [oldest, when] = [d, p.used];
        if (oldest !== undefined) this.dropPool(oldest);
      }
      pool = { ready: [], asked: 0, mode, gid, used: t, creates: 0 };
      this.pools.set(dir, pool);
      this.poolTimer ??= setInterval(() => this.prunePools(), AHEAD_IDLE_MS);
      this.poolTimer.unref?.();
    }
    pool.used = t;
    pool.creates++;
    return pool;
  }

  /**
   * Asks the Gofer for more files ahead in `dir` when few are left: from the directory's second CREATE on, or its
   * first in a directory made through the mount (an untar, a copy of a tree).
   */
  private fillPool(dir: bigint, pool: AheadPool): void {
    if (pool.ready.length + pool.asked > AHEAD_LOW || this.aheadOff) return;
    const dirNode = this.nodes.get(dir);
    if (!dirNode || (pool.creates < 2 && dirNode.madeAt === undefined)) return;
    for (let n = AHEAD_POOL - pool.ready.length - pool.asked; n > 0; n--) {
      const fid = this.client.allocFid();
      const nodeFid = this.client.allocFid();
      pool.asked++;
      this.client.mktmp(dirNode.fid, fid, nodeFid, pool.mode, pool.gid).then(
        (r) => {
          pool.asked--;
          const made = { fid, nodeFid, fd: r.fd, attr: toAttr(r.attr) };
          if (this.pools.get(dir) === pool && !this.closed) pool.ready.push(made);
          else this.giveBack(made);
        },
        (e: unknown) => {
          pool.asked--;
          this.client.freeFid(fid);
          this.client.freeFid(nodeFid);
          // A file system without O_TMPFILE, a read-only Gofer, an older one: CREATEs go the usual way from now on.
          if (e instanceof P9Error && e.errno !== EIO) this.aheadOff = true;
        },
      );
    }
  }

  /** Gives back a file made ahead and never named: with its fids and descriptor gone, nothing of it is left. */
  private giveBack(made: Ahead): void {
    if (made.fd !== undefined) sys.close(made.fd);
    this.client.clunkSoon(made.fid);
    this.client.clunkSoon(made.nodeFid);
  }

  private dropPool(dir: bigint): void {
    const pool = this.pools.get(dir);
    if (!pool) return;
    this.pools.delete(dir);
    for (const made of pool.ready.splice(0)) this.giveBack(made);
    if (this.pools.size === 0 && this.poolTimer) {
      clearInterval(this.poolTimer);
      this.poolTimer = undefined;
    }
  }

  /** Gives back the pools of directories where no CREATE came for `AHEAD_IDLE_MS`. */
  private prunePools(): void {
    const t = performance.now();
    for (const [dir, pool] of [...this.pools]) if (t - pool.used >= AHEAD_IDLE_MS) this.dropPool(dir);
  }

  /** CREATE's reply for the file made or opened as `fid` (its node `found`, counted as looked up once). */
  private async createdOut(v: DataView, flags: number, fid: number, fd: number | undefined, found: { id: bigint; a: Attr }): Promise<Uint8Array> {
    // O_CREAT|O_TRUNC by a caller without CAP_FSETID that met an existing file: truncated, so its set-id bits go.
    const node = this.nodes.get(found.id);
    if (this.killprivV2 && flags & O_TRUNC && v.getUint32(12, true) & OPEN_KILL_SUIDGID && node) {
      try {
        found.a = await this.killSuidgid(node, found.a);
      } catch (e) {
        this.forget(found.id, 1n); // the lookup's count, which the kernel will never hear of
        if (fd !== undefined) sys.close(fd);
        await this.clunk(fid);
        throw e;
      }
    }
    const entry = entryOut(found.id, found.a, this.valid);
    const out = new Uint8Array(entry.length + 16);
    out.set(entry);
    out.set(this.opened(found.id, fid, (flags & 3) !== 0, fd), entry.length);
    return out;
  }
}

/** Whether the attribute name `n[start, end)` (all of `n` by default) is in the `user.` namespace. */
function isUserXattr(n: Uint8Array, start = 0, end = n.length): boolean {
  if (end - start <= USER_PREFIX.length) return false;
  for (let i = 0; i < USER_PREFIX.length; i++) if (n[start + i] !== USER_PREFIX[i]) return false;
  return true;
}

function isDot(n: Uint8Array): boolean {
  return (n.length === 1 && n[0] === 0x2e) || (n.length === 2 && n[0] === 0x2e && n[1] === 0x2e);
}

/** Attributes as Rgetattr gives them, in fuse_attr's form. */
export function toAttr(r: Attrs): Attr {
  return {
    ino: r.qid.path,
    size: r.size,
    blocks: r.blocks,
    atime: r.atimeSec,
    mtime: r.mtimeSec,
    ctime: r.ctimeSec,
    atimensec: Number(r.atimeNsec),
    mtimensec: Number(r.mtimeNsec),
    ctimensec: Number(r.ctimeNsec),
    mode: r.mode,
    nlink: Number(r.nlink),
    uid: r.uid,
    gid: r.gid,
    rdev: encodeDev(r.rdev),
    blksize: Number(r.blksize) || 4096,
  };
}

function zeroAttr(ino: bigint, dtype: number): Attr {
  return {
    ino,
    size: 0n,
    blocks: 0n,
    atime: 0n,
    mtime: 0n,
    ctime: 0n,
    atimensec: 0,
    mtimensec: 0,
    ctimensec: 0,
    mode: (dtype << 12) >>> 0,
    nlink: 1,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: 4096,
  };
}
