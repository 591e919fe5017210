/**
 * `tsvisor/net`: Node's `node:net` TCP API on a netstack. `bindNet(netstack)` returns an object shaped like the
 * node:net module (createServer, connect, createConnection, Socket, Server, isIP), so a Node service moves onto
 * the netstack by changing `import net from 'node:net'` to `const net = bindNet(netstack)`. `Socket` is a
 * `stream.Duplex` with backpressure both ways: writes wait for room in the endpoint's send buffer (write() turns
 * false and 'drain' follows), and reading stops while the consumer does, so the TCP window closes.
 * node:http runs on it unchanged:
 *
 *     const net = bindNet(netstack);
 *     const web = http.createServer(handler);
 *     net.createServer((socket) => web.emit('connection', socket)).listen(80);
 *     http.get({ path: '/', createConnection: () => net.connect(80, '198.18.0.2') }, onResponse);
 *
 * (an http.Agent whose createConnection returns `net.createConnection(opts)` gives keep-alive pooling).
 */
import { EventEmitter } from 'node:events';
import { Duplex, type DuplexOptions } from 'node:stream';
import { parseAddress } from '../addr.ts';
import { Err, NetError } from '../errors.ts';
import { type Endpoint, type Family, ShutdownWrite, type SocketAddress, type WriteOptions } from '../socket.ts';
import { EventErr, EventHUp, EventIn, EventOut, EventRdHUp } from '../waiter.ts';
import {
  type AddressInfo,
  LoopRef,
  type SocketProvider,
  addressInfo,
  asBuffer,
  codeError,
  coalesced,
  forFamily,
  nodeError,
  notFound,
  resolveHost,
} from './common.ts';

/** Options of `new Socket()`, as node:net's. */
export interface SocketOptions {
  allowHalfOpen?: boolean;
  readable?: boolean;
  writable?: boolean;
  /** Stream buffering on both sides (bytes); Node's default. */
  highWaterMark?: number;
  signal?: AbortSignal;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
}

/** Options of connect(), as node:net's TCP ones. */
export interface ConnectOptions extends SocketOptions {
  port: number | string;
  host?: string;
  localAddress?: string;
  localPort?: number;
  family?: 0 | 4 | 6;
  timeout?: number;
}

/** Options of createServer(), as node:net's. */
export interface ServerOptions {
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
  highWaterMark?: number;
}

/** Options of listen(options), as node:net's. */
export interface ListenOptions {
  port?: number;
  host?: string;
  backlog?: number;
  ipv6Only?: boolean;
  exclusive?: boolean;
  signal?: AbortSignal;
  /** An endpoint already bound and listening, to serve instead of opening one (as Node's listen(handle)). */
  endpoint?: Endpoint;
}

/** Bytes read from the endpoint in one go (a Node read is up to 64 KiB too). */
const READ_CHUNK = 65536;
const READ_OPTIONS = { maxBytes: READ_CHUNK };
/** The options of a small read, one object refilled for each (the endpoint keeps none of it). */
const SMALL_READ_OPTIONS: { into: Buffer } = { into: Buffer.alloc(0) };
const NO_BYTES = SMALL_READ_OPTIONS.into;
/** Reads up to this size go into a pooled Buffer (Node's Buffer.allocUnsafe pool takes requests below 4 KiB). */
const SMALL_READ = 2048;
/**
 * Strings written to a connected socket are encoded here and handed to the endpoint, which copies them into its
 * send buffer, instead of into a Buffer of their own first (node:http writes every response head, and a string
 * body with it, as one string; node:net hands such strings to the kernel without a Buffer too).
 */
const scratch = Buffer.allocUnsafeSlow(16384);
/**
 * Views of the scratch buffer's first n bytes for n up to SCRATCH_VIEWS, made once per length: the answers of one
 * page, all of a size, are handed over without a Buffer made per write (subarray costs an object and a C++ lookup
 * of the memory behind it); at most SCRATCH_VIEWS small objects are ever kept.
 */
const SCRATCH_VIEWS = 4096;
const scratchViews: (Buffer | undefined)[] = new Array(SCRATCH_VIEWS + 1);

/** The scratch buffer's first `n` bytes. */
function scratchView(n: number): Buffer {
  if (n > SCRATCH_VIEWS) return scratch.subarray(0, n);
  return (scratchViews[n] ??= scratch.subarray(0, n));
}
/** Encodings whose bytes are at most three per UTF-16 unit, so that a string of SCRATCH_CHARS always fits. */
const SCRATCH_ENCODINGS = new Set(['utf8', 'utf-8', 'latin1', 'binary', 'ascii']);
const SCRATCH_CHARS = scratch.length / 3;
/** Node's default listen backlog. */
const DEFAULT_BACKLOG = 511;

const kAccepted = Symbol('accepted');
const kAcceptedPeer = Symbol('acceptedPeer');
/** MSG_MORE for every buffer of a gathered write but the last, so that TCP sends them as one segment (as writev). */
const MORE: WriteOptions = { more: true };

interface PendingWrite {
  bufs: Buffer[];
  index: number;
  offset: number;
  /** Index of the last non-empty buffer: only buffers before it are written "more follows". */
  last: number;
  cb: (err?: Error | null) => void;
}

/**
 * The index of the last buffer with bytes in it. Node ends a response with an empty buffer after the body
 * (res.end() after res.write(), or the chunked terminator's empty chunk): marking the body "more follows"
 * because an empty buffer comes after it corked it for tcp(7)'s 200 ms ceiling (issue 15).
 */
function lastNonEmpty(bufs: Buffer[]): number {
  let i = bufs.length - 1;
  while (i > 0 && bufs[i]!.length === 0) i--;
  return i;
}

/** A chunk as bytes. */
function toBuffer(chunk: Buffer | string, enc: BufferEncoding): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk, enc) : chunk;
}

/** A chunk's length in bytes (a non-empty string in a scratch encoding has at least one byte: no need to count). */
function byteLength(c: { chunk: Buffer | string; encoding: BufferEncoding }): number {
  return typeof c.chunk === 'string' && !SCRATCH_ENCODINGS.has(c.encoding) ? Buffer.byteLength(c.chunk, c.encoding) : c.chunk.length;
}

/** A TCP connection on the netstack with node:net's Socket behaviour. */
export class Socket extends Duplex {
  /** Bytes handed to the stack (Node counts what left the stream). */
  private written = 0;
  private received = 0;
  private ep: Endpoint | null = null;
  private unsubscribe: (() => void) | null = null;
  private readonly loop: LoopRef;
  private readonly provider: SocketProvider;
  private wantRead = false;
  private readEnded = false;
  private pendingWrite: PendingWrite | null = null;
  private pendingFinal: ((err?: Error | null) => void) | null = null;
  /** The idle timer, kept while the socket lives (see setTimeout), and the duration it was made with. */
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerMs = 0;
  /** The idle timeout in effect (0: none). */
  private timeoutMs = 0;
  /** The idle timer's callback, made with the first timer: a connection per request never sets one. */
  private onIdle: (() => void) | null = null;
  private peer: AddressInfo | undefined;
  private local: AddressInfo | undefined;
  /** Unformatted addresses, kept from accept() and close() and formatted only when asked for. */
  private peerSa: SocketAddress | undefined;
  private localSa: SocketAddress | undefined;
  /** Where connect() was asked to go (for its errors); fields rather than objects, as below: one socket per connection. */
  private targetHost = '';
  private targetPort = 0;
  /** TCP_NODELAY and SO_KEEPALIVE as asked for before there was an endpoint (undefined: never asked). */
  private noDelayOpt: boolean | undefined = undefined;
  private keepAliveOpt: boolean | undefined = undefined;
  private keepAliveDelay = 0;
  private rstOnDestroy = false;
  private readonly pump = coalesced(() => this.runPump());
  /** runPump is running: readiness it causes itself (a read's window update, a write) needs no second pump. */
  private pumping = false;
  /** The endpoint's readiness callback. */
  private readonly onReady = (): void => {
    if (!this.pumping) this.pump();
  };
  /** Whether connect() was called and the handshake has not finished. */
  connecting = false;
  /** The server that accepted this connection. */
  server: Server | undefined;

  constructor(provider: SocketProvider, options: SocketOptions = {}) {
    super({
      allowHalfOpen: options.allowHalfOpen ?? false,
      readable: options.readable,
      writable: options.writable,
      highWaterMark: options.highWaterMark,
      emitClose: false,
      autoDestroy: true,
      // Strings reach _write as they are (see writeOne), as node:net's.
      decodeStrings: false,
    } as DuplexOptions);
    this.provider = provider;
    this.loop = new LoopRef(provider);
    // Readable's maybeReadMore (a nextTick and a read(0) after every push, to fill the buffer up to the high-water
    // mark for sources that push one chunk per _read) has nothing to do here: pumpRead already reads until the
    // endpoint is empty or push() says stop, and read() below the mark calls _read itself. Marked as running so
    // that it never schedules: a kept-alive request cost a tick of its own for it (issue 15).
    (this as unknown as { _readableState: { readingMore: boolean } })._readableState.readingMore = true;
    if (options.noDelay) this.noDelayOpt = true;
    if (options.keepAlive) {
      this.keepAliveOpt = true;
      this.keepAliveDelay = options.keepAliveInitialDelay ?? 0;
    }
    const accepted = (options as { [kAccepted]?: Endpoint })[kAccepted];
    if (accepted) {
      this.peerSa = (options as { [kAcceptedPeer]?: SocketAddress })[kAcceptedPeer];
      this.attach(accepted, false);
    }
    const signal = options.signal;
    if (signal) {
      const abort = () => this.destroy(codeError('ABORT_ERR', 'The operation was aborted'));
      if (signal.aborted) queueMicrotask(abort);
      else signal.addEventListener('abort', abort, { once: true });
    }
  }

  /** connect(options[, cb]) or connect(port[, host][, cb]); 'connect' and 'ready' follow, or 'error' and 'close'. */
  connect(...args: unknown[]): this {
    let cb: (() => void) | undefined;
    if (typeof args[args.length - 1] === 'function') cb = args.pop() as () => void;
    const o: ConnectOptions =
      args[0] !== null && typeof args[0] === 'object'
        ? { ...(args[0] as ConnectOptions) }
        : { port: args[0] as number, host: typeof args[1] === 'string' ? args[1] : undefined };
    if ((o as { path?: string }).path !== undefined) throw codeError('ERR_INVALID_ARG_VALUE', 'tsvisor/net has no unix sockets', TypeError);
    const port = Number(o.port);
    if (o.port === undefined || o.port === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
      throw codeError('ERR_SOCKET_BAD_PORT', `Port should be >= 0 and < 65536. Received ${String(o.port)}.`, RangeError);
    }
    if (this.ep || this.connecting) throw codeError('ERR_SOCKET_CONNECTION_IN_PROGRESS', 'Socket is already connected or connecting');
    if (cb) this.once('connect', cb);
    if (o.timeout) this.setTimeout(o.timeout);
    if (o.noDelay) this.noDelayOpt = true;
    if (o.keepAlive) {
      this.keepAliveOpt = true;
      this.keepAliveDelay = o.keepAliveInitialDelay ?? 0;
    }
    const host = o.host ?? 'localhost';
    this.targetHost = host;
    this.targetPort = port;
    this.connecting = true;
    this.loop.activate();
    const addr = resolveHost(host, o.family ?? 0);
    if (!addr) {
      process.nextTick(() => this.destroy(notFound(host)));
      return this;
    }
    const family: Family = addr.length === 4 ? 4 : 6;
    const ep = this.provider.socket(family, 'stream');
    if (ep instanceof NetError) {
      process.nextTick(() => this.destroy(nodeError(ep, 'socket')));
      return this;
    }
    this.attach(ep, true);
    if (o.localAddress !== undefined || o.localPort) {
      const la = resolveHost(o.localAddress ?? (family === 4 ? '0.0.0.0' : '::'), family);
      const e = la ? ep.bind({ address: forFamily(la, family), port: o.localPort ?? 0 }) : Err.AddressNotAvailable;
      if (e) {
        process.nextTick(() => this.destroy(nodeError(e, 'bind', o.localAddress, o.localPort)));
        return this;
      }
    }
    const r = ep.connect({ address: forFamily(addr, family), port });
    if (r && r !== Err.ConnectStarted) {
      process.nextTick(() => this.destroy(nodeError(r, 'connect', host, port)));
      return this;
    }
    this.pump();
    return this;
  }

  /** TCP_NODELAY (default true, as Node). */
  setNoDelay(noDelay = true): this {
    this.noDelayOpt = noDelay;
    this.ep?.setOption('TCP_NODELAY', noDelay ? 1 : 0);
    return this;
  }

  /** SO_KEEPALIVE, with TCP_KEEPIDLE from `initialDelay` (ms, rounded down to seconds, as Node). */
  setKeepAlive(enable = false, initialDelay = 0): this {
    this.keepAliveOpt = enable;
    this.keepAliveDelay = initialDelay;
    this.applyKeepAlive();
    return this;
  }

  /** Emits 'timeout' after `ms` of inactivity (0 disables); the socket stays open, as in Node. */
  setTimeout(ms: number, cb?: () => void): this {
    this.timeoutMs = ms;
    if (cb) {
      if (ms === 0) this.removeListener('timeout', cb);
      else this.once('timeout', cb);
    }
    // node:http turns the keep-alive timeout off at every request and on again after every response: a timer
    // disabled here is kept (it fires once as a no-op at most) and re-armed by refresh(), so that costs no new
    // timer and no unlinking per request. As node:net's, a timer that fired is re-armed by activity.
    if (ms > 0 && !this.destroyed) {
      if (this.timer !== null && this.timerMs === ms) this.timer.refresh();
      else {
        if (this.timer !== null) clearTimeout(this.timer);
        this.timerMs = ms;
        this.onIdle ??= () => {
          if (this.timeoutMs > 0 && !this.destroyed) this.emit('timeout');
        };
        this.timer = setTimeout(this.onIdle, ms);
        this.timer.unref();
      }
    }
    return this;
  }

  /** The idle timeout set by setTimeout, or undefined. */
  get timeout(): number | undefined {
    return this.timeoutMs || undefined;
  }

  /** The local address ({} before connecting, as Node). */
  address(): AddressInfo | Record<string, never> {
    return this.localInfo() ?? {};
  }

  /** The peer's address text (IPv4 peers of an IPv6 socket as ::ffff:a.b.c.d). */
  get remoteAddress(): string | undefined {
    return this.peerInfo()?.address;
  }

  /** The peer's port. */
  get remotePort(): number | undefined {
    return this.peerInfo()?.port;
  }

  /** 'IPv4' or 'IPv6'. */
  get remoteFamily(): string | undefined {
    return this.peerInfo()?.family;
  }

  /** The local address text. */
  get localAddress(): string | undefined {
    return this.localInfo()?.address;
  }

  /** The local port. */
  get localPort(): number | undefined {
    return this.localInfo()?.port;
  }

  /** The local address's family, 'IPv4' or 'IPv6'. */
  get localFamily(): string | undefined {
    return this.localInfo()?.family;
  }

  /** Bytes received. */
  get bytesRead(): number {
    return this.received;
  }

  /** Bytes sent, counting those still queued in the stream, as Node does. */
  get bytesWritten(): number {
    let bytes = this.written;
    // What the stream still buffers (strings counted in bytes, as node:net's), then the unwritten rest of the
    // chunk being handed over.
    const buffered = (this as unknown as { writableBuffer?: { chunk: Buffer | string; encoding: BufferEncoding }[] }).writableBuffer;
    for (const el of buffered ?? []) {
      bytes += typeof el.chunk === 'string' ? Buffer.byteLength(el.chunk, el.encoding) : el.chunk.length;
    }
    const p = this.pendingWrite;
    if (p) for (let i = p.index; i < p.bufs.length; i++) bytes += p.bufs[i]!.length - (i === p.index ? p.offset : 0);
    return bytes;
  }

  /** Whether the socket has not connected yet. */
  get pending(): boolean {
    return !this.ep || this.connecting;
  }

  /** 'opening', 'open', 'readOnly', 'writeOnly' or 'closed', as Node. */
  get readyState(): string {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  /** Keeps the event loop open while the socket is (the default). */
  ref(): this {
    this.loop.ref();
    return this;
  }

  /** Lets the process exit while this socket is open. */
  unref(): this {
    this.loop.unref();
    return this;
  }

  /**
   * Ends the writable side and destroys the socket once everything written has been handed to the stack, as
   * node:net's destroySoon (node:http closes `Connection: close` sockets with it, without waiting for the peer's FIN).
   */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', this.destroy);
  }

  /** Closes with a RST instead of a FIN (SO_LINGER 0), as Node's resetAndDestroy. */
  resetAndDestroy(): this {
    this.rstOnDestroy = true;
    this.destroy();
    return this;
  }

  // ---- stream.Duplex ----

  override _read(): void {
    // Already waiting for data: the pump that last read stopped only when the endpoint had none left, and the
    // endpoint's readiness brings the next (node:http asks again after every response).
    if (this.wantRead) return;
    this.wantRead = true;
    this.pump();
  }

  /**
   * Hands the write to the endpoint at once when connected, as node:net tries a write synchronously
   * (uv_try_write): a pump of its own would cost a microtask per response (issue 15). What does not fit waits for
   * room (EventOut), and a connecting socket's writes for the handshake.
   */
  override _write(chunk: Buffer | string, enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const ep = this.ep;
    if (ep === null || this.connecting || this.destroyed) {
      this.pendingWrite = { bufs: [toBuffer(chunk, enc)], index: 0, offset: 0, last: 0, cb };
      this.pump();
      return;
    }
    const r = this.writeOne(ep, chunk, enc, undefined);
    if (r === true) {
      this.touch();
      cb();
    } else if (r instanceof Error) cb(r);
    else this.pendingWrite = { bufs: [r], index: 0, offset: 0, last: 0, cb };
  }

  /**
   * A gathered write (node:http's head and body): every chunk but the last non-empty one written "more follows",
   * and that one too when it ends the connection's last response.
   */
  override _writev(chunks: { chunk: Buffer | string; encoding: BufferEncoding }[], cb: (err?: Error | null) => void): void {
    const ep = this.ep;
    if (ep === null || this.connecting || this.destroyed) {
      const bufs = chunks.map((c) => toBuffer(c.chunk, c.encoding));
      this.pendingWrite = { bufs, index: 0, offset: 0, last: lastNonEmpty(bufs), cb };
      this.pump();
      return;
    }
    let last = chunks.length - 1;
    while (last > 0 && byteLength(chunks[last]!) === 0) last--;
    // node:http's last response on a connection it then closes (`Connection: close`, every request of the bench's
    // http-rps row): its end (an empty chunk) is in this write, and the socket's end() follows in this turn, from
    // this write's callback. The whole write is queued "more follows", so that the FIN leaves with it in one
    // segment, as Linux sends a MSG_MORE write and a shutdown: a FIN apart was one frame more each way for a peer
    // to take and answer, and for serve to build and send.
    const closing = last < chunks.length - 1 && (this as { _httpMessage?: { _last?: boolean } })._httpMessage?._last === true;
    // One call's writes take the stack's time once, as writev's one sendmsg does (a response's head and body:
    // a host clock read less per response).
    ep.holdTime?.();
    let r: true | Error | Buffer = true;
    let i = 0;
    try {
      for (; i < chunks.length; i++) {
        const c = chunks[i]!;
        r = this.writeOne(ep, c.chunk, c.encoding, i < last || closing ? MORE : undefined);
        if (r !== true) break;
      }
    } finally {
      ep.releaseTime?.();
    }
    if (r instanceof Error) {
      cb(r);
      return;
    }
    if (r !== true) {
      // The rest of this chunk and the chunks after it wait for room.
      const bufs = [r];
      for (let j = i + 1; j < chunks.length; j++) bufs.push(toBuffer(chunks[j]!.chunk, chunks[j]!.encoding));
      this.pendingWrite = { bufs, index: 0, offset: 0, last: lastNonEmpty(bufs), cb };
      return;
    }
    this.touch();
    cb();
    // After the ticks the callback started (node:http's end() comes in them): a socket still not ending sends what
    // it held at once, rather than at the cork's 200 ms ceiling.
    if (closing) process.nextTick(Socket.pushHeld, this);
  }

  /** A held response whose socket did not end after all goes out now (clearing TCP_CORK pushes what is queued). */
  private static pushHeld(socket: Socket): void {
    if (socket.ep !== null && !socket.writableEnded && !socket.destroyed) socket.ep.setOption('TCP_CORK', 0);
  }

  /**
   * Writes one chunk to the connected endpoint, a string through the shared scratch buffer (the endpoint copies
   * what it takes); returns true when all of it was taken, the error when the endpoint refused, else the bytes
   * still to write (a copy when they were in the scratch buffer).
   */
  private writeOne(ep: Endpoint, chunk: Buffer | string, enc: BufferEncoding, opts: WriteOptions | undefined): true | Error | Buffer {
    // node:http ends every response with an empty string: nothing to encode (a call into C++) or write.
    if (chunk.length === 0) return true;
    let b: Buffer;
    let scratched = false;
    if (typeof chunk !== 'string') b = chunk;
    else if (chunk.length <= SCRATCH_CHARS && SCRATCH_ENCODINGS.has(enc)) {
      b = scratchView(scratch.write(chunk, 0, enc));
      scratched = true;
    } else b = Buffer.from(chunk, enc);
    if (b.length === 0) return true;
    const r = ep.write(b, opts);
    if (r === Err.WouldBlock) return scratched ? Buffer.from(b) : b;
    if (r instanceof NetError) return nodeError(r === Err.ClosedForSend || r === Err.NotConnected ? Err.ClosedForSend : r, 'write');
    this.written += r;
    if (r === b.length) return true;
    return scratched ? Buffer.from(b.subarray(r)) : b.subarray(r);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.pendingFinal = cb;
    this.pump();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.ep) {
      // Kept unformatted: most sockets are never asked for their addresses after close.
      if (!this.peer && !this.peerSa && !this.connecting) this.peerSa = okOrUndefined(this.ep.remoteAddress());
      if (!this.local && !this.localSa) this.localSa = okOrUndefined(this.ep.localAddress());
      if (this.rstOnDestroy) this.ep.setOption('SO_LINGER', { onoff: true, linger: 0 });
      this.ep.close();
      this.ep = null;
    }
    this.connecting = false;
    this.loop.deactivate();
    const pw = this.pendingWrite;
    this.pendingWrite = null;
    cb(err);
    if (pw) pw.cb(err ?? codeError('ERR_STREAM_DESTROYED', 'Cannot call write after a stream was destroyed'));
    // Node emits 'close' from the handle's close callback, a loop turn after 'error'.
    setImmediate(() => this.emit('close', !!err));
  }

  // ---- internals ----

  /** Takes an endpoint: a connecting one, or an established one from accept(). */
  private attach(ep: Endpoint, connecting: boolean): void {
    this.ep = ep;
    this.connecting = connecting;
    this.unsubscribe = ep.waiter.subscribe(EventIn | EventOut | EventErr | EventHUp | EventRdHUp, this.onReady);
    this.applyOptions();
    if (!connecting) this.loop.activate();
  }

  private applyOptions(): void {
    if (!this.ep) return;
    if (this.noDelayOpt !== undefined) this.ep.setOption('TCP_NODELAY', this.noDelayOpt ? 1 : 0);
    this.applyKeepAlive();
  }

  private applyKeepAlive(): void {
    if (!this.ep || this.keepAliveOpt === undefined) return;
    this.ep.setOption('SO_KEEPALIVE', this.keepAliveOpt ? 1 : 0);
    const secs = Math.floor(this.keepAliveDelay / 1000);
    if (this.keepAliveOpt && secs > 0) this.ep.setOption('TCP_KEEPIDLE', secs);
  }

  private peerInfo(): AddressInfo | undefined {
    if (this.peer) return this.peer;
    const a = this.peerSa ?? (this.ep && !this.connecting ? okOrUndefined(this.ep.remoteAddress()) : undefined);
    return a ? (this.peer = addressInfo(a)) : undefined;
  }

  private localInfo(): AddressInfo | undefined {
    if (this.local) return this.local;
    const a = this.localSa ?? (this.ep ? okOrUndefined(this.ep.localAddress()) : undefined);
    if (!a || a.port === 0) return undefined;
    const info = addressInfo(a);
    if (!this.connecting) this.local = info;
    return info;
  }

  private touch(): void {
    if (this.timeoutMs > 0) this.timer?.refresh();
  }

  /** Everything readiness can move: the handshake, pending writes, the FIN after them, and reads. */
  private runPump(): void {
    this.pumping = true;
    try {
      this.pumpAll();
    } finally {
      this.pumping = false;
    }
  }

  private pumpAll(): void {
    const ep = this.ep;
    if (!ep || this.destroyed) return;
    if (this.connecting && !this.finishConnect(ep)) return;
    this.pumpWrite(ep);
    if (this.ep !== ep) return;
    if (this.pendingFinal && !this.pendingWrite) {
      const cb = this.pendingFinal;
      this.pendingFinal = null;
      // Node ignores ENOTCONN from shutdown: the peer may already have reset the connection.
      ep.shutdown(ShutdownWrite);
      cb();
    }
    this.pumpRead(ep);
  }

  /** Whether the handshake is over (successfully: otherwise the socket is destroyed with connect's error). */
  private finishConnect(ep: Endpoint): boolean {
    const ready = ep.readiness(EventOut | EventErr | EventHUp);
    if (ready === 0) return false;
    this.connecting = false;
    const err = ep.takeError() ?? ((ready & EventOut) === 0 ? Err.ConnectionRefused : undefined);
    if (err) {
      this.destroy(nodeError(err, 'connect', this.targetHost, this.targetPort));
      return false;
    }
    this.applyOptions();
    this.touch();
    this.emit('connect');
    this.emit('ready');
    if (this.ep !== ep || this.destroyed) return false;
    if (!this.isPaused() || this.listenerCount('data') > 0) this.read(0);
    return true;
  }

  private pumpWrite(ep: Endpoint): void {
    const p = this.pendingWrite;
    if (!p) return;
    while (p.index < p.bufs.length) {
      const b = p.bufs[p.index]!;
      if (p.offset >= b.length) {
        p.index++;
        p.offset = 0;
        continue;
      }
      const r = ep.write(p.offset ? b.subarray(p.offset) : b, p.index < p.last ? MORE : undefined);
      if (r === Err.WouldBlock) return;
      if (r instanceof NetError) {
        this.pendingWrite = null;
        const code = r === Err.ClosedForSend || r === Err.NotConnected ? Err.ClosedForSend : r;
        p.cb(nodeError(code, 'write'));
        return;
      }
      p.offset += r;
      this.written += r;
    }
    this.pendingWrite = null;
    this.touch();
    p.cb();
  }

  /**
   * Reads what the endpoint holds into the stream, then counts it as activity for the idle timer: after the push,
   * not before it, since node:http turns the socket's timeout off (setTimeout(0)) while it parses each request, in
   * the push itself, and a refresh before it re-armed a timer turned off at once (a libuv clock update and a move
   * in Node's timer list per kept-alive request).
   */
  private pumpRead(ep: Endpoint): void {
    const before = this.received;
    this.readInto(ep);
    if (this.received !== before) this.touch();
  }

  private readInto(ep: Endpoint): void {
    while (this.wantRead && !this.readEnded && this.ep === ep) {
      // A small read (a request) lands in a Buffer cut from Node's shared pool: a fresh array of its own would be
      // an ArrayBuffer malloc'd, swept and wrapped once more as a Buffer for every request (issue 15).
      const queued = ep.inQueue();
      let r;
      if (queued > 0 && queued <= SMALL_READ) {
        SMALL_READ_OPTIONS.into = Buffer.allocUnsafe(queued);
        r = ep.read(SMALL_READ_OPTIONS);
        SMALL_READ_OPTIONS.into = NO_BYTES;
      } else r = ep.read(READ_OPTIONS);
      if (r === Err.WouldBlock) return;
      if (r instanceof NetError) {
        this.destroy(nodeError(r, 'read'));
        return;
      }
      if (r.data.length === 0) {
        this.readEnded = true;
        this.wantRead = false;
        this.push(null);
        // As Node's onStreamRead: with nothing buffered, 'end' comes even if nobody consumes the stream.
        this.read(0);
        return;
      }
      this.received += r.data.length;
      this.wantRead = this.push(r.data instanceof Buffer ? r.data : asBuffer(r.data));
      // Nothing more to take now (no bytes, no end, no error): readiness brings the next request, without a read
      // that would only answer EAGAIN (one per request).
      if (ep.readiness(EventIn | EventErr | EventHUp) === 0) return;
    }
  }
}

/** A TCP listener on the netstack with node:net's Server behaviour. */
export class Server extends EventEmitter {
  /** Refuse connections beyond this many (they are closed and 'drop' is emitted), as Node's maxConnections. */
  maxConnections = Infinity;
  private ep: Endpoint | null = null;
  private unsubscribe: (() => void) | null = null;
  private count = 0;
  private closing = false;
  private closeWaiters: ((err?: Error) => void)[] = [];
  private readonly loop: LoopRef;
  private readonly provider: SocketProvider;
  private readonly options: ServerOptions;
  private bound: AddressInfo | null = null;

  constructor(provider: SocketProvider, options?: ServerOptions | ((socket: Socket) => void), listener?: (socket: Socket) => void) {
    super();
    this.provider = provider;
    this.loop = new LoopRef(provider);
    if (typeof options === 'function') {
      listener = options;
      options = {};
    }
    this.options = options ?? {};
    if (listener) this.on('connection', listener);
  }

  /** listen([port[, host[, backlog]]][, cb]) or listen(options[, cb]); 'listening' follows, or 'error'. */
  listen(...args: unknown[]): this {
    let cb: (() => void) | undefined;
    if (typeof args[args.length - 1] === 'function') cb = args.pop() as () => void;
    let o: ListenOptions;
    if (args[0] !== null && typeof args[0] === 'object') o = { ...(args[0] as ListenOptions) };
    else {
      o = { port: args[0] === undefined || args[0] === null ? 0 : Number(args[0]) };
      if (typeof args[1] === 'string') {
        o.host = args[1];
        if (typeof args[2] === 'number') o.backlog = args[2];
      } else if (typeof args[1] === 'number') o.backlog = args[1];
    }
    const port = o.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw codeError('ERR_SOCKET_BAD_PORT', `options.port should be >= 0 and < 65536. Received ${String(o.port)}.`, RangeError);
    }
    if (this.ep) throw codeError('ERR_SERVER_ALREADY_LISTEN', 'Listen method has been called more than once without closing.');
    if (cb) this.once('listening', cb);
    const backlog = o.backlog ?? DEFAULT_BACKLOG;
    // Node's default: a dual-stack '::' listener, or 0.0.0.0 where IPv6 is unavailable.
    const attempts = o.endpoint ? [] : o.host === undefined ? ['::', '0.0.0.0'] : [o.host];
    if (o.endpoint) this.adopt(o.endpoint);
    let failure: Error | undefined;
    for (const host of attempts) {
      const r = this.open(host, port, backlog, !!o.ipv6Only);
      if (!(r instanceof Error)) {
        failure = undefined;
        break;
      }
      failure ??= r;
      if ((r as { code?: string }).code !== 'EAFNOSUPPORT') break;
    }
    if (failure) {
      process.nextTick(() => this.emit('error', failure));
      return this;
    }
    if (o.signal) o.signal.addEventListener('abort', () => this.close(), { once: true });
    process.nextTick(() => {
      if (this.ep) this.emit('listening');
    });
    return this;
  }

  /** Stops accepting; 'close' follows once every accepted connection has closed, as Node. */
  close(cb?: (err?: Error) => void): this {
    if (!this.ep) {
      const err = codeError('ERR_SERVER_NOT_RUNNING', 'Server is not running.');
      if (cb) process.nextTick(() => cb(err));
      return this;
    }
    if (cb) this.closeWaiters.push(cb);
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.ep.close();
    this.ep = null;
    this.bound = null;
    this.closing = true;
    this.loop.deactivate();
    this.maybeClosed();
    return this;
  }

  /** The bound address (null when not listening). */
  address(): AddressInfo | null {
    return this.bound;
  }

  /** Whether the server is listening. */
  get listening(): boolean {
    return this.ep !== null;
  }

  /** Open connections (node:net's deprecated property, kept because the issue asks for it). */
  get connections(): number {
    return this.count;
  }

  /** Open connections, asynchronously as Node's. */
  getConnections(cb: (err: Error | null, count: number) => void): this {
    process.nextTick(() => cb(null, this.count));
    return this;
  }

  /** Keeps the event loop open while listening (the default). */
  ref(): this {
    this.loop.ref();
    return this;
  }

  /** Lets the process exit while listening. */
  unref(): this {
    this.loop.unref();
    return this;
  }

  private open(host: string, port: number, backlog: number, ipv6Only: boolean): true | Error {
    const a = resolveHost(host, 0);
    if (!a) return notFound(host);
    const family: Family = a.length === 4 ? 4 : 6;
    const ep = this.provider.socket(family, 'stream');
    if (ep instanceof NetError) return nodeError(ep, 'listen', host, port, true);
    if (ipv6Only && family === 6) ep.setOption('IPV6_V6ONLY', 1);
    // Node sets SO_REUSEADDR on listeners, so a port in TIME-WAIT can be listened on again.
    ep.setOption('SO_REUSEADDR', 1);
    const e = ep.bind({ address: a, port }) ?? ep.listen(backlog);
    if (e) {
      ep.close();
      return nodeError(e, 'listen', host, port, true);
    }
    this.adopt(ep);
    return true;
  }

  private adopt(ep: Endpoint): void {
    const la = ep.localAddress();
    this.bound = la instanceof NetError ? null : addressInfo(la);
    this.ep = ep;
    this.closing = false;
    this.loop.activate();
    const drain = coalesced(() => this.acceptAll());
    this.unsubscribe = ep.waiter.subscribe(EventIn, drain);
    drain();
  }

  private acceptAll(): void {
    while (this.ep) {
      const r = this.ep.accept();
      if (r instanceof NetError) {
        if (r === Err.WouldBlock) return;
        this.emit('error', nodeError(r, 'accept'));
        return;
      }
      if (this.count >= this.maxConnections) {
        const peer = addressInfo(r.peer);
        r.endpoint.close();
        this.emit('drop', { localAddress: this.bound?.address, localPort: this.bound?.port, remoteAddress: peer.address, remotePort: peer.port, remoteFamily: peer.family });
        continue;
      }
      const o = this.options;
      const socket = new Socket(this.provider, {
        allowHalfOpen: o.allowHalfOpen,
        highWaterMark: o.highWaterMark,
        noDelay: o.noDelay,
        keepAlive: o.keepAlive,
        keepAliveInitialDelay: o.keepAliveInitialDelay,
        [kAccepted]: r.endpoint,
        [kAcceptedPeer]: r.peer,
      } as SocketOptions);
      socket.server = this;
      this.count++;
      socket.on('close', this.onSocketClose);
      if (o.pauseOnConnect) socket.pause();
      this.emit('connection', socket);
      if (!o.pauseOnConnect && !socket.destroyed) socket.read(0);
    }
  }

  /** One listener for every accepted socket's (single) 'close', rather than a closure per connection. */
  private readonly onSocketClose = (): void => {
    this.count--;
    this.maybeClosed();
  };

  private maybeClosed(): void {
    if (!this.closing || this.count > 0) return;
    this.closing = false;
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    process.nextTick(() => {
      for (const w of waiters) w();
      this.emit('close');
    });
  }
}

function okOrUndefined(a: SocketAddress | NetError): SocketAddress | undefined {
  return a instanceof NetError ? undefined : a;
}

/** Which IP version text is: 4, 6, or 0 when it is no IP literal (node:net's isIP). */
export function isIP(text: string): 0 | 4 | 6 {
  const a = parseAddress(text);
  return a ? (a.length === 4 ? 4 : 6) : 0;
}

/** node:net's connect on `provider`. */
export function connect(provider: SocketProvider, options: ConnectOptions | number | string, host?: string | (() => void), cb?: () => void): Socket {
  const o: ConnectOptions = typeof options === 'object' ? options : { port: options, host: typeof host === 'string' ? host : undefined };
  const done = typeof host === 'function' ? host : cb;
  const s = new Socket(provider, o);
  return done ? s.connect(o, done) : s.connect(o);
}

/** node:net's createConnection (the same as connect). */
export const createConnection = connect;

/** node:net's createServer on `provider`. */
export function createServer(
  provider: SocketProvider,
  options?: ServerOptions | ((socket: Socket) => void),
  connectionListener?: (socket: Socket) => void,
): Server {
  return new Server(provider, options, connectionListener);
}

/** The node:net-shaped module bound to one netstack. */
export interface BoundNet {
  createServer(options?: ServerOptions | ((socket: Socket) => void), connectionListener?: (socket: Socket) => void): Server;
  connect(options: ConnectOptions | number | string, host?: string | (() => void), cb?: () => void): Socket;
  createConnection(options: ConnectOptions | number | string, host?: string | (() => void), cb?: () => void): Socket;
  /** `new net.Socket(options)` on this netstack. */
  Socket: new (options?: SocketOptions) => Socket;
  /** `new net.Server(options, listener)` on this netstack. */
  Server: new (options?: ServerOptions | ((socket: Socket) => void), listener?: (socket: Socket) => void) => Server;
  isIP(text: string): 0 | 4 | 6;
  isIPv4(text: string): boolean;
  isIPv6(text: string): boolean;
}

/** node:net's functions bound to `provider` (a Netstack): `const net = bindNet(netstack)` replaces `import net from 'node:net'`. */
export function bindNet(provider: SocketProvider): BoundNet {
  const connectBound = (options: ConnectOptions | number | string, host?: string | (() => void), cb?: () => void) =>
    connect(provider, options, host, cb);
  return {
    createServer: (options, listener) => new Server(provider, options, listener),
    connect: connectBound,
    createConnection: connectBound,
    Socket: class extends Socket {
      constructor(options?: SocketOptions) {
        super(provider, options);
      }
    },
    Server: class extends Server {
      constructor(options?: ServerOptions | ((socket: Socket) => void), listener?: (socket: Socket) => void) {
        super(provider, options, listener);
      }
    },
    isIP,
    isIPv4: (text) => isIP(text) === 4,
    isIPv6: (text) => isIP(text) === 6,
  };
}
