/**
 * `tsvisor/dgram`: Node's `node:dgram` API on a netstack. `createSocket(netstack, 'udp4')` returns a `Socket` that
 * behaves as node:dgram's (bind, send, connect, events 'listening', 'message', 'connect', 'close', 'error' with
 * Node-shaped errors), so a UDP program moves onto the netstack by passing the stack in; `bindDgram(netstack)`
 * gives an object shaped like the node:dgram module itself.
 */
import { EventEmitter } from 'node:events';
import { Err, NetError } from '../errors.ts';
import type { Endpoint, Family, SocketAddress } from '../socket.ts';
import { EventErr, EventIn } from '../waiter.ts';
import {
  type AddressInfo,
  LoopRef,
  type SocketProvider,
  addressInfo,
  asBuffer,
  codeError,
  coalesced,
  forFamily,
  formatHost,
  nodeError,
  notFound,
  resolveHost,
} from './common.ts';

/** node:dgram's socket types. */
export type SocketType = 'udp4' | 'udp6';

/** Options of createSocket, as node:dgram's. */
export interface SocketOptions {
  type: SocketType;
  reuseAddr?: boolean;
  ipv6Only?: boolean;
  recvBufferSize?: number;
  sendBufferSize?: number;
  signal?: AbortSignal;
}

/** Options of bind(options), as node:dgram's. */
export interface BindOptions {
  port?: number;
  address?: string;
  exclusive?: boolean;
}

/** The sender of a received datagram, as node:dgram's rinfo. */
export interface RemoteInfo {
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
  size: number;
}

type SendCallback = (err: Error | null, bytes?: number) => void;
type Message = string | Uint8Array | DataView | readonly (string | Uint8Array)[];

const enum State {
  Unbound,
  Binding,
  Bound,
  Closed,
}

/** The largest datagram read at once (the IPv4 and IPv6 UDP maximum payload). */
const MAX_DATAGRAM = 65535;

/** A UDP socket on the netstack with node:dgram's behaviour. */
export class Socket extends EventEmitter {
  readonly type: SocketType;
  private readonly family: Family;
  private readonly ep: Endpoint;
  private state = State.Unbound;
  private connected = false;
  private connecting = false;
  /** Sends and connects waiting for an implicit bind. */
  private queue: (() => void)[] = [];
  private unsubscribe: (() => void) | null = null;
  private readonly loop: LoopRef;
  private readonly opts: SocketOptions;

  constructor(provider: SocketProvider, options: SocketType | SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void) {
    super();
    this.loop = new LoopRef(provider);
    this.opts = typeof options === 'string' ? { type: options } : { ...options };
    if (this.opts.type !== 'udp4' && this.opts.type !== 'udp6') {
      throw codeError('ERR_SOCKET_BAD_TYPE', 'Bad socket type specified. Valid types are: udp4, udp6', TypeError);
    }
    this.type = this.opts.type;
    this.family = this.type === 'udp4' ? 4 : 6;
    const ep = provider.socket(this.family, 'dgram');
    if (ep instanceof NetError) throw nodeError(ep, 'socket');
    this.ep = ep;
    if (listener) this.on('message', listener);
    const signal = this.opts.signal;
    if (signal) {
      if (signal.aborted) queueMicrotask(() => this.state !== State.Closed && this.close());
      else signal.addEventListener('abort', () => this.state !== State.Closed && this.close(), { once: true });
    }
  }

  /** bind([port][, address][, callback]) or bind(options[, callback]); 'listening' follows, or 'error'. */
  bind(...args: unknown[]): this {
    this.checkOpen();
    if (this.state !== State.Unbound) throw codeError('ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
    let port = 0;
    let address: string | undefined;
    let cb: (() => void) | undefined;
    if (typeof args[args.length - 1] === 'function') cb = args.pop() as () => void;
    if (args[0] !== null && typeof args[0] === 'object') {
      const o = args[0] as BindOptions;
      port = o.port ?? 0;
      address = o.address;
    } else {
      if (args[0] !== undefined) port = Number(args[0]);
      if (typeof args[1] === 'string') address = args[1];
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw codeError('ERR_SOCKET_BAD_PORT', `Port should be >= 0 and < 65536. Received ${String(port)}.`, RangeError);
    }
    if (cb) this.once('listening', cb);
    this.state = State.Binding;
    this.loop.activate();
    queueMicrotask(() => this.doBind(port, address));
    return this;
  }

  /**
   * send(msg[, offset, length][, port][, address][, callback]): one datagram; the callback gets (err, bytes),
   * and without one an error is emitted. An unbound socket binds to a random port first, as Node's does.
   */
  send(msg: Message, port?: number, address?: string, cb?: SendCallback): void;
  send(msg: Message, port: number, cb?: SendCallback): void;
  send(msg: Message, cb?: SendCallback): void;
  send(msg: Message, offset: number, length: number, port?: number, address?: string, cb?: SendCallback): void;
  send(msg: Message, offset: number, length: number, cb?: SendCallback): void;
  send(msg: Message, ...rest: unknown[]): void {
    let cb: SendCallback | undefined;
    if (typeof rest[rest.length - 1] === 'function') cb = rest.pop() as SendCallback;
    let data = toBuffer(msg);
    // send(msg, offset, length, ...) when the next two are numbers and msg is not a list.
    if (!Array.isArray(msg) && typeof rest[0] === 'number' && typeof rest[1] === 'number' && (rest.length >= 3 || this.connected)) {
      const offset = rest.shift() as number;
      const length = rest.shift() as number;
      if (offset < 0 || length < 0 || offset + length > data.length) {
        throw codeError('ERR_OUT_OF_RANGE', `The value of "offset" or "length" is out of range.`, RangeError);
      }
      data = data.subarray(offset, offset + length);
    }
    let port = rest[0] as number | string | undefined;
    const address = rest[1] as string | undefined;
    if (this.connected || this.connecting) {
      if (port !== undefined && port !== null) {
        throw codeError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
      }
    } else {
      port = Number(port);
      if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        throw codeError('ERR_SOCKET_BAD_PORT', `Port should be > 0 and < 65536. Received ${String(rest[0])}.`, RangeError);
      }
    }
    this.checkOpen();
    const go = () => this.doSend(data, port as number | undefined, address, cb);
    this.whenBound(go);
  }

  /** connect(port[, address][, callback]): fixes the peer; 'connect' follows, or the error (to callback or 'error'). */
  connect(port: number, address?: string | (() => void), cb?: (err?: Error) => void): void {
    if (typeof address === 'function') {
      cb = address as (err?: Error) => void;
      address = undefined;
    }
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
      throw codeError('ERR_SOCKET_BAD_PORT', `Port should be > 0 and < 65536. Received ${String(port)}.`, RangeError);
    }
    this.checkOpen();
    if (this.connected || this.connecting) throw codeError('ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    this.connecting = true;
    if (cb) this.once('connect', cb as () => void);
    this.whenBound(() => this.doConnect(port, address as string | undefined, cb));
  }

  /** Dissolves the association made by connect(). */
  disconnect(): void {
    this.checkOpen();
    if (!this.connected) throw codeError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    const e = this.ep.disconnect();
    if (e) throw nodeError(e, 'disconnect');
    this.connected = false;
  }

  /** Stops receiving and releases the port; 'close' follows. */
  close(cb?: () => void): this {
    this.checkOpen();
    if (cb) this.once('close', cb);
    this.state = State.Closed;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.queue = [];
    this.ep.close();
    this.loop.deactivate();
    process.nextTick(() => this.emit('close'));
    return this;
  }

  /** The bound address; throws EBADF when not bound, as Node's getsockname does. */
  address(): AddressInfo {
    this.checkBound('getsockname');
    const a = this.ep.localAddress();
    if (a instanceof NetError) throw nodeError(a, 'getsockname');
    return addressInfo(a);
  }

  /** The connected peer; throws ERR_SOCKET_DGRAM_NOT_CONNECTED otherwise. */
  remoteAddress(): AddressInfo {
    this.checkOpen();
    if (!this.connected) throw codeError('ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
    const a = this.ep.remoteAddress();
    if (a instanceof NetError) throw nodeError(a, 'getpeername');
    return addressInfo(a);
  }

  /** SO_BROADCAST. */
  setBroadcast(flag: boolean): void {
    this.setOpt('setBroadcast', 'SO_BROADCAST', flag ? 1 : 0);
  }

  /** IP_TTL / IPV6_UNICAST_HOPS (1–255). */
  setTTL(ttl: number): number {
    if (typeof ttl !== 'number') throw codeError('ERR_INVALID_ARG_TYPE', 'The "ttl" argument must be of type number', TypeError);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 255) throw nodeError(Err.InvalidArgument, 'setTTL');
    this.setOpt('setTTL', this.family === 4 ? 'IP_TTL' : 'IPV6_UNICAST_HOPS', ttl);
    return ttl;
  }

  /** IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS (0–255). */
  setMulticastTTL(ttl: number): number {
    if (!Number.isInteger(ttl) || ttl < 0 || ttl > 255) throw nodeError(Err.InvalidArgument, 'setMulticastTTL');
    this.setOpt('setMulticastTTL', this.family === 4 ? 'IP_MULTICAST_TTL' : 'IPV6_MULTICAST_HOPS', ttl);
    return ttl;
  }

  /** SO_RCVBUF; throws ERR_SOCKET_BUFFER_SIZE when not bound, as Node does. */
  setRecvBufferSize(size: number): void {
    this.bufferSize('SO_RCVBUF', size);
  }

  /** SO_RCVBUF as Linux reports it (double the set value). */
  getRecvBufferSize(): number {
    return this.bufferSize('SO_RCVBUF');
  }

  /** SO_SNDBUF. */
  setSendBufferSize(size: number): void {
    this.bufferSize('SO_SNDBUF', size);
  }

  /** SO_SNDBUF as Linux reports it. */
  getSendBufferSize(): number {
    return this.bufferSize('SO_SNDBUF');
  }

  /** Datagrams are handed to the stack at once, so nothing waits in a send queue. */
  getSendQueueSize(): number {
    return 0;
  }

  /** See getSendQueueSize. */
  getSendQueueCount(): number {
    return 0;
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

  // ---- internals ----

  private checkOpen(): void {
    if (this.state === State.Closed) throw codeError('ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
  }

  private checkBound(syscall: string): void {
    this.checkOpen();
    if (this.state !== State.Bound) throw nodeError(Err.BadFileDescriptor, syscall);
  }

  private setOpt(syscall: string, name: string, value: number): void {
    this.checkBound(syscall);
    const e = this.ep.setOption(name, value);
    if (e) throw nodeError(e, syscall);
  }

  private bufferSize(name: 'SO_RCVBUF' | 'SO_SNDBUF', size?: number): number {
    const fail = () =>
      codeError('ERR_SOCKET_BUFFER_SIZE', `Could not get or set buffer size: uv_${name === 'SO_RCVBUF' ? 'recv' : 'send'}_buffer_size returned EBADF (bad file descriptor)`);
    if (this.state !== State.Bound) throw fail();
    if (size !== undefined) {
      if (!Number.isInteger(size) || size <= 0) throw codeError('ERR_INVALID_ARG_TYPE', 'Buffer size must be a positive integer', TypeError);
      const e = this.ep.setOption(name, size);
      if (e) throw fail();
      return size;
    }
    const v = this.ep.getOption(name);
    if (typeof v !== 'number') throw fail();
    return v;
  }

  /** Runs `fn` once bound, binding to a random port first when nobody has bound yet. */
  private whenBound(fn: () => void): void {
    if (this.state === State.Bound) {
      queueMicrotask(fn);
      return;
    }
    this.queue.push(fn);
    if (this.state === State.Unbound) this.bind({ port: 0 });
  }

  private doBind(port: number, address: string | undefined): void {
    if (this.state !== State.Binding) return;
    const host = address ?? (this.family === 4 ? '0.0.0.0' : '::');
    const a = resolveHost(host, this.family);
    if (!a) {
      this.failBind(notFound(host));
      return;
    }
    if (this.opts.reuseAddr) this.ep.setOption('SO_REUSEADDR', 1);
    if (this.family === 6 && this.opts.ipv6Only) this.ep.setOption('IPV6_V6ONLY', 1);
    if (this.family === 4 && a.length !== 4) {
      this.failBind(nodeError(Err.AddressFamilyNotSupported, 'bind', host, port));
      return;
    }
    const e = this.ep.bind({ address: forFamily(a, this.family), port });
    if (e) {
      this.failBind(nodeError(e, 'bind', host, port));
      return;
    }
    this.state = State.Bound;
    if (this.opts.recvBufferSize) this.ep.setOption('SO_RCVBUF', this.opts.recvBufferSize);
    if (this.opts.sendBufferSize) this.ep.setOption('SO_SNDBUF', this.opts.sendBufferSize);
    const drain = coalesced(() => this.receive());
    this.unsubscribe = this.ep.waiter.subscribe(EventIn | EventErr, drain);
    this.emit('listening');
    const queued = this.queue;
    this.queue = [];
    for (const fn of queued) fn();
    drain();
  }

  private failBind(err: Error): void {
    // Node leaves the socket unbound (and usable for another bind) after a failed one.
    this.state = State.Unbound;
    this.loop.deactivate();
    this.queue = [];
    this.emit('error', err);
  }

  private doSend(data: Buffer, port: number | undefined, address: string | undefined, cb?: SendCallback): void {
    if (this.state !== State.Bound) return;
    let to: SocketAddress | undefined;
    let host = '';
    if (!this.connected) {
      if (port === undefined) return this.sendDone(nodeError(Err.DestinationRequired, 'send'), 0, cb);
      host = address ?? (this.family === 4 ? '127.0.0.1' : '::1');
      const a = resolveHost(host, this.family);
      if (!a) return this.sendDone(notFound(host), 0, cb);
      to = { address: forFamily(a, this.family), port: port! };
    }
    const r = this.ep.write(data, to ? { to } : undefined);
    if (r instanceof NetError) {
      const peer = this.connected ? this.peerText() : { host, port: port! };
      return this.sendDone(nodeError(r, 'send', peer.host, peer.port), 0, cb);
    }
    this.sendDone(null, r, cb);
  }

  private sendDone(err: Error | null, bytes: number, cb?: SendCallback): void {
    if (cb) cb(err, bytes);
    else if (err) this.emit('error', err);
  }

  private peerText(): { host: string; port: number } {
    const a = this.ep.remoteAddress();
    return a instanceof NetError ? { host: '', port: 0 } : { host: formatHost(a.address), port: a.port };
  }

  private doConnect(port: number, address: string | undefined, cb?: (err?: Error) => void): void {
    if (this.state !== State.Bound) return;
    const host = address ?? (this.family === 4 ? '127.0.0.1' : '::1');
    const a = resolveHost(host, this.family);
    const e = a ? this.ep.connect({ address: forFamily(a, this.family), port }) : undefined;
    this.connecting = false;
    if (!a || e) {
      const err = a ? nodeError(e!, 'connect', host, port) : notFound(host);
      if (cb) {
        this.removeListener('connect', cb as () => void);
        cb(err);
      } else {
        this.emit('error', err);
      }
      return;
    }
    this.connected = true;
    this.emit('connect');
  }

  /** Reads every queued datagram; an error the stack reports (ICMP unreachable on a connected socket) is emitted as Node's recvmsg error. */
  private receive(): void {
    while (this.state === State.Bound) {
      const r = this.ep.read({ maxBytes: MAX_DATAGRAM });
      if (r instanceof NetError) {
        if (r === Err.WouldBlock || r === Err.ClosedForReceive) return;
        this.emit('error', nodeError(r, 'recvmsg'));
        continue;
      }
      const from = r.from!;
      const rinfo: RemoteInfo = { ...addressInfo(from), size: r.data.length };
      this.emit('message', asBuffer(r.data), rinfo);
    }
  }
}

function toBuffer(msg: Message): Buffer {
  if (typeof msg === 'string') return Buffer.from(msg);
  if (Array.isArray(msg)) return Buffer.concat(msg.map((m) => (typeof m === 'string' ? Buffer.from(m) : asBuffer(m))));
  if (msg instanceof DataView) return Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
  if (msg instanceof Uint8Array) return asBuffer(msg);
  throw codeError('ERR_INVALID_ARG_TYPE', 'The "buffer" argument must be of type string or an instance of Buffer, TypedArray, or DataView', TypeError);
}

/** node:dgram's createSocket on `provider` (a Netstack). */
export function createSocket(
  provider: SocketProvider,
  type: SocketType | SocketOptions,
  listener?: (msg: Buffer, rinfo: RemoteInfo) => void,
): Socket {
  return new Socket(provider, type, listener);
}

/** The node:dgram-shaped module bound to one netstack: change `import dgram from 'node:dgram'` to `const dgram = bindDgram(netstack)`. */
export function bindDgram(provider: SocketProvider): {
  createSocket(type: SocketType | SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void): Socket;
} {
  return { createSocket: (type, listener) => new Socket(provider, type, listener) };
}
