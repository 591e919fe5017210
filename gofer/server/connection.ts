/**
 * One client connection: framing, version negotiation, the table of outstanding tags, Tflush, and flow control.
 *
 * Memory is bounded per connection: a frame larger than the negotiated msize closes the connection; at most
 * `maxTags` requests are outstanding (queued or running) before the server stops reading the socket; and reading
 * also stops while more than msize × maxTags bytes of replies wait to be written. Reads, writes and fsyncs run on
 * the thread pool, at most `asyncLimit` at once per connection, and are answered as they finish, in any order;
 * the rest wait in a queue, and a Tflush of a queued request cancels it before it touches the file. A Tflush of a
 * running one suppresses its reply and is answered after it finishes, as 9P requires.
 */
import type { Socket } from 'node:net';
import * as fs from '../../lib/fs.ts';
import { ERRNO } from '../../lib/libc.ts';
import { UnixStream } from '../../lib/unixstream.ts';
import { bytes, decode, encode, encodeTagged, frameSize, isDecodeError, setTag } from '../p9/codec.ts';
import { HEADER_SIZE, NOTAG, VERSION_9P2000L, VERSION_TSVISOR, type Message, type MessageName } from '../p9/messages.ts';
import { handle, Session, type ServerConfig } from './ops.ts';

const E = ERRNO as Record<string, number>;
const { EBUSY, EIO, EOPNOTSUPP, EPROTO } = E;

type AnyAnswer = { type: string; fds?: number[]; release?: () => void } | { frame: Uint8Array } | number;

/** Limits of one connection. */
export interface ConnectionLimits {
  /** The largest msize the server agrees to. */
  readonly maxMsize: number;
  /** Requests outstanding at once before the server stops reading. */
  readonly maxTags: number;
  /** Thread-pool operations running at once. */
  readonly asyncLimit: number;
  /**
   * Nanoseconds to poll the socket for the next request after sending replies, while requests come closer
   * together than that (0: never). See `Connection.send`.
   */
  readonly pollNs: bigint;
}

/** Counters shared by a server's connections. */
export interface GoferStats {
  connections: number;
  requests: number;
  errors: number;
  /** Handler exceptions: always a bug; answered with EIO. */
  internalErrors: number;
  /** Connections closed for a frame whose size was impossible. */
  framingErrors: number;
  /** Queued requests cancelled by Tflush before they ran. */
  cancelled: number;
  /** Running requests whose reply a Tflush suppressed. */
  flushedRunning: number;
  /** The most requests ever outstanding on one connection. */
  maxOutstanding: number;
  /** Requests that came while the server polled for them after its replies (no wake-up; see `Connection.send`). */
  polled: number;
  /**
   * Polls of closed connections cut short because another process ran on the CPU (`UnixStream.pollsYielded`), and
   * those not made in the while after such a cut (`pollsSkipped`).
   */
  pollsCut: number;
  pollsSkipped: number;
}

/** A new set of zeroed counters. */
export function newStats(): GoferStats {
  return {
    connections: 0,
    requests: 0,
    errors: 0,
    internalErrors: 0,
    framingErrors: 0,
    cancelled: 0,
    flushedRunning: 0,
    maxOutstanding: 0,
    polled: 0,
    pollsCut: 0,
    pollsSkipped: 0,
  };
}

interface Pending {
  readonly msg: Message;
  state: 'queued' | 'running';
  flushed: boolean;
  readonly flushTags: number[];
}

const QUEUED_TYPES = new Set(['Tread', 'Twrite', 'Tfsync']);
const MIN_MSIZE = 512;

/** Serves 9P2000.L on one connected socket until it closes. */
export class Connection {
  private readonly session: Session;
  private readonly outstanding = new Map<number, Pending>();
  private readonly queue: Pending[] = [];
  private running = 0;
  private versioned = false;
  private chunks: Buffer[] = [];
  private have = 0;
  private pausedForTags = false;
  private pausedForWrites = false;
  private closed = false;
  private parsing = false;
  /** When replies last went out, and how long the client took to send its next bytes after that. */
  private lastReply = 0n;
  private gap = 0n;
  private readonly pollDone = (): boolean => {
    this.stats.polled++;
    return true;
  };

  constructor(
    private socket: Socket | UnixStream,
    cfg: ServerConfig,
    private readonly limits: ConnectionLimits,
    private readonly stats: GoferStats,
    private readonly onClosed: () => void = () => {},
  ) {
    this.session = new Session(cfg);
    stats.connections++;
    this.listen(socket);
  }

  private listen(socket: Socket | UnixStream): void {
    socket.on('data', (chunk: Buffer) => {
      if (this.limits.pollNs > 0n) this.gap = process.hrtime.bigint() - this.lastReply;
      this.chunks.push(chunk);
      this.have += chunk.length;
      this.parse();
    });
    socket.on('drain', () => {
      this.pausedForWrites = false;
      this.flow();
    });
    socket.on('error', () => this.teardown());
    socket.on('close', () => this.teardown());
  }

  /** Closes the connection. */
  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Moves the connection from Node's socket to a UnixStream on a duplicate of its descriptor, so that replies can
   * carry descriptors. Node has handed over every byte it read (a paused socket's buffer is drained here), and
   * reads nothing more once destroyed. False where the socket exposes no descriptor.
   */
  private takeOver(): boolean {
    if (this.socket instanceof UnixStream) return true;
    const sock = this.socket;
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return false;
    const copy = fs.dup(fd);
    if (copy < 0) return false;
    sock.removeAllListeners('data');
    sock.pause();
    for (let b: Buffer | null; (b = sock.read() as Buffer | null) !== null; ) {
      this.chunks.push(b);
      this.have += b.length;
    }
    sock.removeAllListeners('drain');
    sock.removeAllListeners('close');
    sock.removeAllListeners('error');
    sock.on('error', () => {});
    sock.destroy();
    this.socket = new UnixStream(copy);
    this.listen(this.socket);
    return true;
  }

  private get frameLimit(): number {
    return this.versioned ? this.session.msize : this.limits.maxMsize;
  }

  /** Cuts whole frames off the received bytes and serves them, until paused or out of bytes. */
  private parse(): void {
    if (this.parsing) return;
    this.parsing = true;
    try {
      while (!this.closed && !this.pausedForTags && !this.pausedForWrites && this.have >= 4) {
        const head = this.chunks[0]!.length >= 4 ? this.chunks[0]! : Buffer.concat(this.chunks);
        if (head !== this.chunks[0]) this.chunks = [head];
        const size = frameSize(head);
        if (size < HEADER_SIZE || size > this.frameLimit) {
          this.stats.framingErrors++;
          this.teardown();
          this.socket.destroy();
          return;
        }
        if (this.have < size) break;
        this.serve(this.take(size));
      }
    } finally {
      this.parsing = false;
    }
  }

  private take(size: number): Uint8Array {
    let first = this.chunks[0]!;
    if (first.length < size) {
      first = Buffer.concat(this.chunks);
      this.chunks = [first];
    }
    const frame = first.subarray(0, size);
    if (first.length === size) this.chunks.shift();
    else this.chunks[0] = first.subarray(size);
    this.have -= size;
    return frame;
  }

  private serve(frame: Uint8Array): void {
    this.stats.requests++;
    const m = decode(frame);
    if (isDecodeError(m)) {
      const tag = m.tag;
      this.error(tag, m.error === 'unknown-type' ? EOPNOTSUPP : EPROTO);
      return;
    }
    if (m.type[0] !== 'T' || m.type === 'Tlerror') {
      this.error(m.tag, EOPNOTSUPP);
      return;
    }
    if (m.type === 'Tversion') {
      this.version(m);
      return;
    }
    if (!this.versioned) {
      this.error(m.tag, EPROTO);
      return;
    }
    if (m.type === 'Tflush') {
      this.flush(m.tag, m.oldtag);
      return;
    }
    if (this.outstanding.has(m.tag)) {
      this.error(m.tag, EBUSY); // the client reused a tag still in flight
      return;
    }
    if (QUEUED_TYPES.has(m.type)) {
      const p: Pending = { msg: m, state: 'queued', flushed: false, flushTags: [] };
      this.outstanding.set(m.tag, p);
      if (this.outstanding.size > this.stats.maxOutstanding) this.stats.maxOutstanding = this.outstanding.size;
      if (this.running < this.limits.asyncLimit) this.start(p);
      else this.queue.push(p);
      this.flow();
      return;
    }
    this.answer(m.tag, this.call(m));
  }

  private call(m: Message): AnyAnswer | Promise<AnyAnswer> {
    try {
      return (handle(this.session, m) ?? EOPNOTSUPP) as AnyAnswer | Promise<AnyAnswer>;
    } catch (e) {
      this.stats.internalErrors++;
      process.emitWarning(`gofer: ${m.type} handler threw: ${(e as Error).stack ?? e}`);
      return EIO;
    }
  }

  private start(p: Pending): void {
    p.state = 'running';
    this.running++;
    const r = this.call(p.msg);
    const done = (a: AnyAnswer) => {
      this.running--;
      this.outstanding.delete(p.msg.tag);
      if (p.flushed) {
        this.stats.flushedRunning++;
        for (const t of p.flushTags) this.reply({ type: 'Rflush', tag: t });
      } else {
        this.answer(p.msg.tag, a);
      }
      while (this.running < this.limits.asyncLimit && this.queue.length > 0) this.start(this.queue.shift()!);
      this.flow();
    };
    if (r instanceof Promise) {
      r.then(done, (e) => {
        this.stats.internalErrors++;
        process.emitWarning(`gofer: ${p.msg.type} failed: ${(e as Error).stack ?? e}`);
        done(EIO);
      });
    } else {
      done(r);
    }
  }

  private flush(tag: number, oldtag: number): void {
    const p = this.outstanding.get(oldtag);
    if (!p) {
      this.reply({ type: 'Rflush', tag });
      return;
    }
    if (p.state === 'queued') {
      this.queue.splice(this.queue.indexOf(p), 1);
      this.outstanding.delete(oldtag);
      this.stats.cancelled++;
      for (const t of p.flushTags) this.reply({ type: 'Rflush', tag: t });
      this.reply({ type: 'Rflush', tag });
      this.flow();
      return;
    }
    p.flushed = true;
    p.flushTags.push(tag);
  }

  /** Tversion: aborts everything outstanding, clunks every fid, and agrees on msize and the dialect. */
  private version(m: Message<'Tversion'>): void {
    for (const p of this.outstanding.values()) p.flushed = true; // running ones finish without a reply
    this.queue.length = 0;
    for (const [tag, p] of this.outstanding) if (p.state === 'queued') this.outstanding.delete(tag);
    this.session.reset();
    const v = Buffer.from(m.version).toString('latin1');
    const msize = Math.min(m.msize, this.limits.maxMsize);
    if (!v.startsWith(VERSION_9P2000L) || msize < MIN_MSIZE) {
      this.versioned = false;
      this.reply({ type: 'Rversion', tag: m.tag, msize, version: bytes('unknown') });
      return;
    }
    this.versioned = true;
    this.session.msize = msize;
    // The descriptor-donation dialect only when asked for by name, so a plain 9P client never sees it.
    this.session.donate = v === VERSION_TSVISOR && this.takeOver();
    this.reply({ type: 'Rversion', tag: m.tag, msize, version: bytes(this.session.donate ? VERSION_TSVISOR : VERSION_9P2000L) });
  }

  private answer(tag: number, a: AnyAnswer | Promise<AnyAnswer>): void {
    if (a instanceof Promise) {
      // Only queued types may be asynchronous; anything else is a bug, but still answered.
      a.then(
        (x) => this.answer(tag, x),
        () => this.error(tag, EIO),
      );
      return;
    }
    if (typeof a === 'number') this.error(tag, a);
    else if ('frame' in a) {
      setTag(a.frame, tag);
      this.send(a.frame);
    } else {
      // The answer's own object, tag given apart (its `fds` and `release`, not layout fields, are not encoded).
      const frame = encodeTagged(a as { type: MessageName }, tag);
      if (a.fds) this.send(frame, a.fds, a.release);
      else this.send(frame);
    }
  }

  private error(tag: number, ecode: number): void {
    this.stats.errors++;
    this.reply({ type: 'Rlerror', tag: tag < 0 ? NOTAG : tag, ecode });
  }

  private reply(m: Message): void {
    this.send(encode(m));
  }

  /** Sends a reply; its descriptors are closed once sent, or with `release` handed back to their lender. */
  private send(frame: Uint8Array, fds?: number[], release?: () => void): void {
    if (this.closed) {
      if (release) release();
      else for (const fd of fds ?? []) fs.close(fd);
      return;
    }
    if (fds) (this.socket as UnixStream).write(frame, fds, release); // only a donating session answers with descriptors
    else this.socket.write(frame);
    // Then polls for the client's next request, if its last came within the bound after our replies: on a VM whose
    // idle CPUs halt at once, a wake-up from epoll is an inter-processor interrupt through the hypervisor (tens of
    // µs) in the round trip of a client that sends its next batch soon (the Sentry during an untar: a CREATE's
    // batch ~250 µs after the last one's replies). A client that went quiet costs one poll, then none until it
    // comes back within the bound. Only on a UnixStream (the donating dialect), never with one CPU (`pollNs` 0).
    if (this.limits.pollNs > 0n && this.socket instanceof UnixStream) {
      this.lastReply = process.hrtime.bigint();
      if (this.gap <= this.limits.pollNs) this.socket.pollAfterSend(this.limits.pollNs, this.pollDone);
    }
    if (this.socket.writableLength > (this.session.msize || this.limits.maxMsize) * this.limits.maxTags) this.pausedForWrites = true;
    this.flow();
  }

  /** Pauses or resumes reading from the socket to keep the limits. */
  private flow(): void {
    if (this.closed) return;
    this.pausedForTags = this.outstanding.size >= this.limits.maxTags;
    if (this.pausedForTags || this.pausedForWrites) {
      if (!this.socket.isPaused()) this.socket.pause();
      return;
    }
    if (this.socket.isPaused()) this.socket.resume();
    if (this.have >= 4 && !this.parsing) setImmediate(() => this.parse());
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.socket instanceof UnixStream) {
      this.stats.pollsCut += this.socket.pollsYielded;
      this.stats.pollsSkipped += this.socket.pollsSkipped;
    }
    this.onClosed();
    this.queue.length = 0;
    for (const p of this.outstanding.values()) p.flushed = true;
    this.session.reset();
    this.chunks = [];
    this.have = 0;
  }
}
