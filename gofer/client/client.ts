/**
 * A 9P2000.L client over a stream socket (the Sentry's side of the Gofer), with the server's codec. Requests are
 * pipelined: each gets a free tag, and replies are matched by tag in whatever order they come. An Rlerror rejects
 * the request's promise with a `P9Error` carrying the errno.
 */
import { connect, type Socket } from 'node:net';
import { errnoName, sys } from '../../lib/libc.ts';
import { UnixStream } from '../../lib/unixstream.ts';
import { bytes, decode, encodeTagged, frameSize, isDecodeError } from '../p9/codec.ts';
import { decodeDirents, type Dirent } from '../p9/dirent.ts';
import {
  GETATTR,
  HEADER_SIZE,
  NOFID,
  NOTAG,
  QT,
  SETATTR,
  VERSION_9P2000L,
  VERSION_TSVISOR,
  type Body,
  type Message,
  type Qid,
  type ReplyOf,
  type TName,
} from '../p9/messages.ts';

/** A request answered with Rlerror (or cut short by a flush or a closed connection). */
export class P9Error extends Error {
  constructor(
    /** The Linux errno. */
    readonly errno: number,
    readonly op: string,
  ) {
    super(`${op}: ${errnoName(errno)}`);
    this.name = 'P9Error';
  }

  /** The errno's name, e.g. "ENOENT". */
  get code(): string {
    return errnoName(this.errno);
  }
}

const EINTR = 4;
/** How long a `clunkSoon` waits for a request to ride along with before it is sent alone. */
const CLUNK_DELAY_MS = 5;
const EIO = 5;
const EPROTO = 71;

interface Waiting {
  readonly op: string;
  readonly expect: string;
  resolve(m: Message): void;
  reject(e: Error): void;
}

const REPLY_NAMES = new Map<string, string>();

/** The reply's name for request `op` ("Twalk" → "Rwalk"), made once per name rather than once per request. */
function replyName(op: string): string {
  let r = REPLY_NAMES.get(op);
  if (r === undefined) REPLY_NAMES.set(op, (r = `R${op.slice(1)}`));
  return r;
}

/** Text or bytes for a name; text is sent as UTF-8. */
export type Name = string | Uint8Array;

/** A request on its way: its tag (for Tflush) and its reply. */
export interface InFlight<T extends TName> {
  readonly tag: number;
  readonly reply: Promise<Message<ReplyOf<T>>>;
}

/** A reply that may carry a donated descriptor (Rlopen, Rlcreate, Rlcreateat of a regular file in the tsvisor dialect). */
export type WithFd<M> = M & { fd?: number };

/** One client connection. */
export class Client {
  /** The negotiated maximum message size. */
  msize = 0;
  /**
   * Whether the 9P2000.L.tsvisor dialect was agreed: the server donates opened descriptors and serves `lcreateat`.
   */
  donating = false;
  /** Requests sent so far, in all and by type (for statistics and tests). */
  sent = 0;
  readonly sentByType = new Map<string, number>();
  private readonly fdQueue: number[] = [];
  private readonly waiting = new Map<number, Waiting>();
  private nextTag = 0;
  private nextFid = 1;
  private readonly freeFids: number[] = [];
  private chunks: Buffer[] = [];
  private have = 0;
  private closedError: Error | undefined;
  /**
   * Requests held back to go out just before the next one (see `clunkSoon`, `setattrSoon`), in the order they were
   * made, and the timer that sends them if no request comes.
   */
  private readonly late: {
    body: (Body<'Tclunk'> & { type: 'Tclunk' }) | (Body<'Tsetattr'> & { type: 'Tsetattr' }) | (Body<'Tlinktmp'> & { type: 'Tlinktmp' });
    settle(p: Promise<Message>): void;
  }[] = [];
  private lateTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Whether `lateTimer` runs for requests held now. The timer is made once and restarted (`refresh`) rather than
   * made and cleared for each batch (an untar holds one per file): when the held requests go out with the next
   * one first, it is left to fire once with nothing to send.
   */
  private lateArmed = false;

  /** Whether the connection has ended (every request fails with EIO from then on). */
  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /**
   * @param holdMs how long a held request (`clunkSoon`, `setattrSoon`) waits for the next one before it goes alone
   *   (CLUNK_DELAY_MS); a test that asserts two held Tsetattrs become one sets it long, since on a loaded machine a
   *   program can take longer than the default between its chmod and its utime.
   */
  private constructor(
    private readonly socket: Socket | UnixStream,
    private readonly holdMs = CLUNK_DELAY_MS,
  ) {
    socket.on('data', (c: Buffer, fds?: number[]) => {
      if (fds) this.fdQueue.push(...fds);
      this.onData(c);
    });
    const fail = (e?: Error) => {
      this.closedError ??= e ?? new P9Error(EIO, 'connection closed');
      for (const w of this.waiting.values()) w.reject(new P9Error(EIO, `${w.op} (connection closed)`));
      this.waiting.clear();
    };
    socket.on('error', fail);
    socket.on('close', () => fail());
  }

  /**
   * Connects to a unix socket path and negotiates the version; with `donation`, asks for the 9P2000.L.tsvisor
   * dialect (on a socket that can receive descriptors) and falls back to plain 9P2000.L where the server says so.
   */
  static async connect(path: string, msize = 1 << 20, opts: { donation?: boolean; holdMs?: number } = {}): Promise<Client> {
    if (opts.donation) {
      const c = new Client(UnixStream.connect(path), opts.holdMs);
      try {
        await c.version(msize, VERSION_TSVISOR);
        return c;
      } catch {
        // A server that does not know the dialect may hang up instead of answering "9P2000.L" (diod does):
        // start again, plainly.
        c.close();
      }
    }
    const sock = connect({ path });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    return Client.over(sock, msize, opts.holdMs);
  }

  /** Speaks 9P on an already connected socket and negotiates the version (`holdMs`: see the constructor). */
  static async over(socket: Socket | UnixStream, msize = 1 << 20, holdMs?: number): Promise<Client> {
    const c = new Client(socket, holdMs);
    await c.version(msize);
    return c;
  }

  /** Descriptors received and not yet matched to a reply (always 0 with a well-behaved server). */
  get queuedDescriptors(): number {
    return this.fdQueue.length;
  }

  /** Closes the connection; pending requests fail with EIO. */
  close(): void {
    clearTimeout(this.lateTimer);
    this.lateTimer = undefined;
    this.lateArmed = false;
    for (const l of this.late.splice(0)) l.settle(Promise.reject(new P9Error(EIO, `${l.body.type} (connection closed)`))); // the server drops a closed connection's fids
    this.socket.destroy();
    for (const fd of this.fdQueue.splice(0)) sys.close(fd);
  }

  /** Sends Tversion (which also resets the session on the server). */
  async version(msize: number, version = VERSION_9P2000L): Promise<Message<'Rversion'>> {
    const r = await this.start({ type: 'Tversion', msize, version: bytes(version) }, NOTAG).reply;
    const agreed = Buffer.from(r.version).toString('latin1');
    if (agreed !== VERSION_9P2000L && !(agreed === VERSION_TSVISOR && version === VERSION_TSVISOR)) {
      throw new P9Error(EPROTO, `Tversion: the server speaks '${agreed}'`);
    }
    this.donating = agreed === VERSION_TSVISOR;
    this.msize = r.msize;
    return r;
  }

  /** Sends a request and resolves with its reply. */
  rpc<T extends TName>(body: Body<T> & { type: T }): Promise<Message<ReplyOf<T>>> {
    return this.start<T>(body).reply;
  }

  /** Sends a request, returning its tag with the promise of its reply. */
  start<T extends TName>(body: Body<T> & { type: T }, tag = this.allocTag()): InFlight<T> {
    const op = body.type;
    if (this.late.length > 0) this.sendLate();
    const reply = new Promise<Message<ReplyOf<T>>>((resolve, reject) => {
      if (this.closedError) {
        reject(new P9Error(EIO, `${op} (connection closed)`));
        return;
      }
      this.waiting.set(tag, { op, expect: replyName(op), resolve: resolve as (m: Message) => void, reject });
      this.sent++;
      this.sentByType.set(op, (this.sentByType.get(op) ?? 0) + 1);
      this.socket.write(encodeTagged(body, tag));
    });
    return { tag, reply };
  }

  /** Requests sent (or written to go out at the end of this job) whose replies have not come yet. */
  get inFlight(): number {
    return this.waiting.size;
  }

  /**
   * Polls the socket for up to `ns` nanoseconds once the requests written so far (or the next) have gone out, until
   * every request has its reply, instead of leaving them to a wake-up of the loop (`UnixStream.pollAfterSend`);
   * nothing on a Node socket.
   */
  pollReplies(ns: bigint): void {
    if (this.socket instanceof UnixStream) this.socket.pollAfterSend(ns, () => this.waiting.size === 0);
  }

  /**
   * Polls of `pollReplies` that found the replies, that ran to their bound, that were cut short by another
   * process on the CPU, and those not made in the while after such a cut (all 0 on a Node socket).
   */
  get polled(): { found: number; missed: number; cut: number; skipped: number } {
    const s = this.socket;
    return s instanceof UnixStream ? { found: s.polled, missed: s.pollMisses, cut: s.pollsYielded, skipped: s.pollsSkipped } : { found: 0, missed: 0, cut: 0, skipped: 0 };
  }

  /** Sends Tflush for a request in flight; resolves when the server has answered the flush. */
  async flush(oldtag: number): Promise<void> {
    await this.rpc({ type: 'Tflush', oldtag });
    const w = this.waiting.get(oldtag);
    if (w) {
      this.waiting.delete(oldtag);
      w.reject(new P9Error(EINTR, `${w.op} (flushed)`));
    }
  }

  private allocTag(): number {
    for (let i = 0; i < 0xffff; i++) {
      const t = this.nextTag;
      this.nextTag = (this.nextTag + 1) % 0xffff;
      if (!this.waiting.has(t)) return t;
    }
    throw new Error('no free 9P tag');
  }

  /** A fid number not in use by this client. */
  allocFid(): number {
    return this.freeFids.pop() ?? this.nextFid++;
  }

  /** Gives back a fid number that no request made (the server refused the request that would have). */
  freeFid(fid: number): void {
    this.freeFids.push(fid);
  }

  private onData(c: Buffer): void {
    this.chunks.push(c);
    this.have += c.length;
    while (this.have >= 4) {
      let head = this.chunks[0]!;
      if (head.length < 4) {
        head = Buffer.concat(this.chunks);
        this.chunks = [head];
      }
      const size = frameSize(head);
      if (size < HEADER_SIZE) {
        this.socket.destroy(new P9Error(EPROTO, `reply of ${size} bytes`));
        return;
      }
      if (this.have < size) return;
      if (head.length < size) {
        head = Buffer.concat(this.chunks);
        this.chunks = [head];
      }
      const frame = head.subarray(0, size);
      if (head.length === size) this.chunks.shift();
      else this.chunks[0] = head.subarray(size);
      this.have -= size;
      this.dispatch(frame);
    }
  }

  private dispatch(frame: Uint8Array): void {
    const m = decode(frame);
    const tag = isDecodeError(m) ? m.tag : m.tag;
    const w = this.waiting.get(tag);
    if (!w) return; // a reply to a flushed request
    this.waiting.delete(tag);
    if (isDecodeError(m)) w.reject(new P9Error(EPROTO, `${w.op}: undecodable reply (${m.error})`));
    else if (m.type === 'Rlerror') w.reject(new P9Error(m.ecode, w.op));
    else if (m.type !== w.expect) w.reject(new P9Error(EPROTO, `${w.op}: got ${m.type}`));
    else if (this.donating && (m.type === 'Rlopen' || m.type === 'Rlcreate' || m.type === 'Rlcreateat' || m.type === 'Rmktmp') && m.qid.type === QT.FILE) {
      // The dialect's rule: each such reply carried one descriptor, and it arrived no later than the reply's bytes.
      const fd = this.fdQueue.shift();
      if (fd === undefined) w.reject(new P9Error(EPROTO, `${w.op}: no descriptor came with the reply`));
      else w.resolve(Object.assign(m, { fd }));
    } else w.resolve(m);
  }

  // Conveniences, one per message. Fids are numbers chosen with allocFid (or any the caller manages).

  /** Tattach: a new fid for the root (or the directory `aname` inside it). */
  async attach(fid: number, uid = 0, aname: Name = '', uname: Name = ''): Promise<Qid> {
    const r = await this.rpc({ type: 'Tattach', fid, afid: NOFID, uname: bytes(uname), aname: bytes(aname), nUname: uid });
    return r.qid;
  }

  /** Twalk from `fid` to `newfid` through `names` (up to 16); the qids of the steps that succeeded. */
  async walk(fid: number, newfid: number, names: readonly Name[]): Promise<Qid[]> {
    const r = await this.rpc({ type: 'Twalk', fid, newfid, wnames: names.map(bytes) });
    return r.wqids;
  }

  /** Tlopen; in the tsvisor dialect a regular file's reply has `fd`, the opened descriptor, now the caller's. */
  async lopen(fid: number, flags: number): Promise<WithFd<Message<'Rlopen'>>> {
    return this.rpc({ type: 'Tlopen', fid, flags });
  }

  /** Tlcreate: creates `name` in the directory `fid`, which then stands for the new, opened file (`fd` as Tlopen). */
  async lcreate(fid: number, name: Name, flags: number, mode: number, gid = 0): Promise<WithFd<Message<'Rlcreate'>>> {
    return this.rpc({ type: 'Tlcreate', fid, name: bytes(name), flags, mode, gid });
  }

  /**
   * Tlcreateat (the tsvisor dialect only, see `donating`): creates `name` in the directory `dfid`, which stays as it
   * is; `newfid` is the new file opened with `flags` (`fd` as Tlopen), `nodefid` the same file unopened (as a walk
   * of `dfid` to the name). The reply has the file's attributes and the directory's after the create, as Rgetattr
   * gives them. On an error neither fid exists.
   */
  async lcreateat(
    dfid: number,
    newfid: number,
    nodefid: number,
    name: Name,
    flags: number,
    mode: number,
    gid = 0,
  ): Promise<WithFd<Message<'Rlcreateat'>>> {
    return this.rpc({ type: 'Tlcreateat', dfid, newfid, nodefid, name: bytes(name), flags, mode, gid });
  }

  /**
   * Tmktmp (the tsvisor dialect only): a regular file made in the directory `dfid` with no name yet (O_TMPFILE),
   * `newfid` open for reading and writing (`fd` as Tlopen), `nodefid` unopened; `linktmpSoon` names it. Clunking
   * both unnamed leaves nothing behind. On an error neither fid exists.
   */
  async mktmp(dfid: number, newfid: number, nodefid: number, mode: number, gid = 0): Promise<WithFd<Message<'Rmktmp'>>> {
    return this.rpc({ type: 'Tmktmp', dfid, newfid, nodefid, mode, gid });
  }

  /**
   * Tlinktmp held back as `setattrSoon` holds a Tsetattr (in order with every other held or later request): names
   * the Tmktmp file `fid` (open as `openfid`) `name` in `dfid`, with `mode`, and the time `time` where nothing has
   * written to it yet. For a caller that has answered for the create already; the promise carries the server's
   * verdict and the file's and the directory's attributes after it.
   */
  linktmpSoon(fid: number, openfid: number, dfid: number, name: Name, mode: number, time: readonly [bigint, number]): Promise<Message<'Rlinktmp'>> {
    return new Promise((resolve, reject) => {
      if (this.closedError) return reject(new P9Error(EIO, 'Tlinktmp (connection closed)'));
      const body = { type: 'Tlinktmp' as const, fid, openfid, dfid, name: bytes(name), mode, timeSec: time[0], timeNsec: BigInt(time[1]) };
      this.hold(body, (p) => p.then((m) => resolve(m as Message<'Rlinktmp'>), reject));
    });
  }

  /** Tread of up to `count` bytes (capped to what fits in msize). */
  async read(fid: number, offset: bigint, count: number): Promise<Uint8Array> {
    const r = await this.rpc({ type: 'Tread', fid, offset, count: Math.min(count, this.msize - 24) }); // P9_IOHDRSZ: diod refuses more
    return r.data;
  }

  /** Reads the whole file from offset 0 in msize-sized pieces. */
  async readAll(fid: number): Promise<Buffer> {
    const parts: Uint8Array[] = [];
    let off = 0n;
    for (;;) {
      const d = await this.read(fid, off, this.msize - 24);
      if (d.length === 0) break;
      parts.push(d.slice());
      off += BigInt(d.length);
    }
    return Buffer.concat(parts);
  }

  /** Twrite; the count written. */
  async write(fid: number, offset: bigint, data: Uint8Array): Promise<number> {
    const r = await this.rpc({ type: 'Twrite', fid, offset, data });
    return r.count;
  }

  /** Writes all of `data` at `offset` in msize-sized pieces. */
  async writeAll(fid: number, offset: bigint, data: Uint8Array): Promise<void> {
    const max = this.msize - 24; // P9_IOHDRSZ, as Linux sizes its writes (diod answers EIO to a frame of exactly msize)
    for (let o = 0; o < data.length; ) {
      const n = await this.write(fid, offset + BigInt(o), data.subarray(o, o + max));
      if (n === 0) throw new P9Error(EIO, 'Twrite wrote nothing');
      o += n;
    }
  }

  /** Tgetattr. */
  async getattr(fid: number, mask = GETATTR.ALL): Promise<Message<'Rgetattr'>> {
    return this.rpc({ type: 'Tgetattr', fid, requestMask: mask });
  }

  /** Tsetattr with the fields named by `valid` (SETATTR bits); the others are sent as zero. */
  async setattr(
    fid: number,
    valid: number,
    attrs: Partial<Omit<Body<'Tsetattr'>, 'type' | 'fid' | 'valid'>>,
  ): Promise<void> {
    await this.rpc(setattrBody(fid, valid, attrs));
  }

  /** One Treaddir: the entries from cookie `offset` that fit in `count` bytes. */
  async readdir(fid: number, offset: bigint, count = this.msize - 11): Promise<Dirent[]> {
    const r = await this.rpc({ type: 'Treaddir', fid, offset, count });
    const entries = decodeDirents(r.data);
    if (!entries) throw new P9Error(EPROTO, 'Treaddir: malformed entries');
    return entries;
  }

  /** Every entry of an opened directory, by repeated Treaddir. */
  async readdirAll(fid: number): Promise<Dirent[]> {
    const all: Dirent[] = [];
    let off = 0n;
    for (;;) {
      const part = await this.readdir(fid, off);
      if (part.length === 0) return all;
      for (const d of part) all.push({ ...d, name: d.name.slice() });
      off = part[part.length - 1]!.offset;
    }
  }

  /** Tmkdir. */
  async mkdir(dfid: number, name: Name, mode: number, gid = 0): Promise<Qid> {
    return (await this.rpc({ type: 'Tmkdir', dfid, name: bytes(name), mode, gid })).qid;
  }

  /** Tmknod. */
  async mknod(dfid: number, name: Name, mode: number, major = 0, minor = 0, gid = 0): Promise<Qid> {
    return (await this.rpc({ type: 'Tmknod', dfid, name: bytes(name), mode, major, minor, gid })).qid;
  }

  /** Tsymlink. */
  async symlink(fid: number, name: Name, target: Name, gid = 0): Promise<Qid> {
    return (await this.rpc({ type: 'Tsymlink', fid, name: bytes(name), symtgt: bytes(target), gid })).qid;
  }

  /** Treadlink: the target's bytes. */
  async readlink(fid: number): Promise<Uint8Array> {
    return (await this.rpc({ type: 'Treadlink', fid })).target;
  }

  /** Tlink: a hard link named `name` in `dfid` to the file `fid`. */
  async link(dfid: number, fid: number, name: Name): Promise<void> {
    await this.rpc({ type: 'Tlink', dfid, fid, name: bytes(name) });
  }

  /** Trename (the older form: the file of `fid` moves into `dfid` as `name`). */
  async rename(fid: number, dfid: number, name: Name): Promise<void> {
    await this.rpc({ type: 'Trename', fid, dfid, name: bytes(name) });
  }

  /** Trenameat. */
  async renameat(olddirfid: number, oldname: Name, newdirfid: number, newname: Name): Promise<void> {
    await this.rpc({ type: 'Trenameat', olddirfid, oldname: bytes(oldname), newdirfid, newname: bytes(newname) });
  }

  /** Tunlinkat (flags: AT_REMOVEDIR 0x200 for a directory). */
  async unlinkat(dirfid: number, name: Name, flags = 0): Promise<void> {
    await this.rpc({ type: 'Tunlinkat', dirfid, name: bytes(name), flags });
  }

  /** Tstatfs. */
  async statfs(fid: number): Promise<Message<'Rstatfs'>> {
    return this.rpc({ type: 'Tstatfs', fid });
  }

  /** Tfsync. */
  async fsync(fid: number, datasync = false): Promise<void> {
    await this.rpc({ type: 'Tfsync', fid, datasync: datasync ? 1 : 0 });
  }

  /** Tlock; the status (LOCK.SUCCESS, LOCK.BLOCKED ...). */
  async lock(fid: number, lockType: number, start: bigint, length: bigint, flags = 0, procId = 1, clientId: Name = 'tsvisor'): Promise<number> {
    const r = await this.rpc({ type: 'Tlock', fid, lockType, flags, start, length, procId, clientId: bytes(clientId) });
    return r.status;
  }

  /** Tgetlock: the first lock that would conflict, or lockType UNLCK. */
  async getlock(fid: number, lockType: number, start: bigint, length: bigint, procId = 1, clientId: Name = 'tsvisor'): Promise<Message<'Rgetlock'>> {
    return this.rpc({ type: 'Tgetlock', fid, lockType, start, length, procId, clientId: bytes(clientId) });
  }

  /** Txattrwalk: `newfid` reads the attribute `name` (or, with name "", the list of names); its size. */
  async xattrwalk(fid: number, newfid: number, name: Name): Promise<bigint> {
    return (await this.rpc({ type: 'Txattrwalk', fid, newfid, name: bytes(name) })).size;
  }

  /** Txattrcreate: `fid` then takes the value by Twrite and sets it on Tclunk. */
  async xattrcreate(fid: number, name: Name, size: bigint, flags = 0): Promise<void> {
    await this.rpc({ type: 'Txattrcreate', fid, name: bytes(name), attrSize: size, flags });
  }

  /** Tclunk; the fid number is free again. */
  async clunk(fid: number): Promise<void> {
    try {
      await this.rpc({ type: 'Tclunk', fid });
    } finally {
      this.freeFids.push(fid);
    }
  }

  /**
   * Tclunk without waiting for it: sent just before the next request (the server then handles both in one wake-up
   * and answers both in one write), or within `CLUNK_DELAY_MS` when none comes; the fid number is free once
   * answered. For fids whose clunk cannot fail in a way the caller must report (a walked fid, a file handle
   * whose file is closed): an Rlerror is ignored, the fid is gone either way.
   */
  clunkSoon(fid: number): void {
    if (this.closedError) return;
    const free = () => this.freeFids.push(fid);
    this.hold({ type: 'Tclunk', fid }, (p) => p.then(free, free));
  }

  /**
   * Tsetattr held back as `clunkSoon` holds a Tclunk: sent just before the next request (in order with every
   * other held or later request on the connection, so a server that runs a fid's requests in order has done it
   * before anything sent after), or within `CLUNK_DELAY_MS`, or at `sendLate`. For a caller that has answered
   * for the change already (write-behind); the promise carries the server's verdict.
   */
  setattrSoon(fid: number, valid: number, attrs: Partial<Omit<Body<'Tsetattr'>, 'type' | 'fid' | 'valid'>>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closedError) return reject(new P9Error(EIO, 'Tsetattr (connection closed)'));
      this.hold(setattrBody(fid, valid, attrs), (p) => p.then(() => resolve(), reject));
    });
  }

  private hold(body: (typeof this.late)[number]['body'], settle: (p: Promise<Message>) => void): void {
    const last = this.late[this.late.length - 1];
    if (body.type === 'Tsetattr' && last?.body.type === 'Tsetattr' && last.body.fid === body.fid && setsAfter(last.body.valid, body.valid)) {
      // One request does both (an untar's chmod and utimes of each file): the server's verdict is both calls'.
      mergeSetattr(last.body, body);
      const first = last.settle;
      last.settle = (p) => {
        first(p);
        settle(p);
      };
      return;
    }
    this.late.push({ body, settle });
    if (this.lateArmed) return;
    this.lateArmed = true;
    if (this.lateTimer) this.lateTimer.refresh();
    else {
      this.lateTimer = setTimeout(() => this.sendLate(), this.holdMs);
      this.lateTimer.unref?.();
    }
  }

  /** Sends the held requests now (a caller is about to wait for their outcome). */
  sendLate(): void {
    this.lateArmed = false;
    for (const l of this.late.splice(0)) l.settle(this.start(l.body).reply);
  }

  /** Tremove (the fid is clunked either way). */
  async remove(fid: number): Promise<void> {
    try {
      await this.rpc({ type: 'Tremove', fid });
    } finally {
      this.freeFids.push(fid);
    }
  }
}

/**
 * The order in which the Gofer (gofer/server/ops.ts) makes a Tsetattr's changes: mode, then owner, then size, then
 * times, the request stopping at the first that fails (diod makes them in one request too: test/gofer/scenario.ts).
 */
const SETATTR_STAGES = [SETATTR.MODE, SETATTR.UID | SETATTR.GID, SETATTR.SIZE, SETATTR.ATIME | SETATTR.MTIME | SETATTR.ATIME_SET | SETATTR.MTIME_SET];

/**
 * Whether a held Tsetattr (`held`) and the next one on the same fid (`next`) can be one request: every change of
 * `next` is made after every change of `held` in `SETATTR_STAGES`, so the one request makes them in the order the
 * two were asked; nothing else (ctime) is in either. The difference: after a failure of `held`'s part, `next`'s is
 * not made (both callers get that failure).
 */
function setsAfter(held: number, next: number): boolean {
  let last = -1;
  let first = SETATTR_STAGES.length;
  let seen = 0;
  for (let i = 0; i < SETATTR_STAGES.length; i++) {
    const bits = SETATTR_STAGES[i]!;
    if (held & bits) last = i;
    if (next & bits && i < first) first = i;
    seen |= bits;
  }
  return held !== 0 && next !== 0 && ((held | next) & ~seen) === 0 && last < first;
}

/** Adds the changes of the Tsetattr `next` to `held` (see `setsAfter`). */
function mergeSetattr(held: Body<'Tsetattr'>, next: Body<'Tsetattr'>): void {
  held.valid |= next.valid;
  if (next.valid & SETATTR.MODE) held.mode = next.mode;
  if (next.valid & SETATTR.UID) held.uid = next.uid;
  if (next.valid & SETATTR.GID) held.gid = next.gid;
  if (next.valid & SETATTR.SIZE) held.size = next.size;
  if (next.valid & SETATTR.ATIME_SET) [held.atimeSec, held.atimeNsec] = [next.atimeSec, next.atimeNsec];
  if (next.valid & SETATTR.MTIME_SET) [held.mtimeSec, held.mtimeNsec] = [next.mtimeSec, next.mtimeNsec];
}

/** A Tsetattr's body with the fields named by `valid`; the others zero. */
function setattrBody(fid: number, valid: number, attrs: Partial<Omit<Body<'Tsetattr'>, 'type' | 'fid' | 'valid'>>): Body<'Tsetattr'> & { type: 'Tsetattr' } {
  return {
    type: 'Tsetattr',
    fid,
    valid,
    mode: attrs.mode ?? 0,
    uid: attrs.uid ?? 0,
    gid: attrs.gid ?? 0,
    size: attrs.size ?? 0n,
    atimeSec: attrs.atimeSec ?? 0n,
    atimeNsec: attrs.atimeNsec ?? 0n,
    mtimeSec: attrs.mtimeSec ?? 0n,
    mtimeNsec: attrs.mtimeNsec ?? 0n,
  };
}
