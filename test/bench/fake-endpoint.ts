// In-memory stand-ins for socket endpoints, enough to drive a service's protocol without a stack: a listener whose
// accept() hands out connections the test opens, and connections whose inbound bytes the test writes and whose
// outbound bytes the test reads. Readiness is notified through the real WaiterQueue, as the stack would.
import { Err, NetError } from '../../netstack/errors.ts';
import type { Endpoint, OptionValue, ReadResult, SocketAddress, SocketType, WriteOptions } from '../../netstack/socket.ts';
import { EventIn, EventOut, WaiterQueue } from '../../netstack/waiter.ts';

/** A fake endpoint; only the calls services make are meaningful. */
export class FakeEndpoint implements Endpoint {
  readonly family = 6 as const;
  readonly protocol: number;
  readonly waiter = new WaiterQueue();
  /** Bytes (stream) or datagrams the service will read. */
  readonly inbound: { data: Uint8Array; from?: SocketAddress }[] = [];
  /** Everything the service wrote, with the destination for datagrams. */
  readonly written: { data: Uint8Array; to?: SocketAddress }[] = [];
  /** Connections waiting in accept(). */
  readonly backlog: FakeEndpoint[] = [];
  eof = false;
  closed = false;
  /** Bytes the send buffer still takes; writes beyond it get WouldBlock until the test raises it. */
  writeBudget = Infinity;
  options = new Map<string, OptionValue>();

  constructor(readonly type: SocketType) {
    this.protocol = type === 'stream' ? 6 : 17;
  }

  readiness(mask: number): number {
    return mask & ((this.inbound.length || this.eof ? EventIn : 0) | EventOut);
  }
  bind(): NetError | undefined {
    return undefined;
  }
  connect(): NetError | undefined {
    return Err.NotSupported;
  }
  disconnect(): NetError | undefined {
    return undefined;
  }
  listen(): NetError | undefined {
    return undefined;
  }
  accept(): { endpoint: Endpoint; peer: SocketAddress } | NetError {
    const e = this.backlog.shift();
    return e ? { endpoint: e, peer: { address: new Uint8Array(16), port: 1 } } : Err.WouldBlock;
  }
  read(opts?: { maxBytes?: number }): ReadResult | NetError {
    const head = this.inbound[0];
    if (!head) return this.eof ? { data: new Uint8Array(0) } : Err.WouldBlock;
    const max = opts?.maxBytes ?? Infinity;
    if (this.type === 'stream' && head.data.length > max) {
      this.inbound[0] = { data: head.data.subarray(max) };
      return { data: head.data.slice(0, max) };
    }
    this.inbound.shift();
    return { data: head.data, from: head.from, size: head.data.length };
  }
  write(data: Uint8Array, opts?: WriteOptions): number | NetError {
    if (this.closed) return Err.ClosedForSend;
    const n = Math.min(data.length, this.writeBudget);
    this.writeBudget -= n;
    if (n === 0 && data.length > 0) return Err.WouldBlock;
    this.written.push({ data: data.slice(0, n), to: opts?.to });
    return n;
  }
  shutdown(): NetError | undefined {
    return undefined;
  }
  close(): void {
    this.closed = true;
  }
  localAddress(): SocketAddress | NetError {
    return { address: new Uint8Array(16), port: 0 };
  }
  remoteAddress(): SocketAddress | NetError {
    return { address: new Uint8Array(16), port: 1 };
  }
  getOption(name: string): OptionValue | NetError {
    return this.options.get(name) ?? 0;
  }
  setOption(name: string, value: OptionValue): NetError | undefined {
    this.options.set(name, value);
    return undefined;
  }
  takeError(): NetError | undefined {
    return undefined;
  }
  inQueue(): number {
    return this.inbound.reduce((a, b) => a + b.data.length, 0);
  }
  outQueue(): number {
    return 0;
  }

  /** The test side sends bytes (or a datagram) to the service and wakes it. */
  feed(data: Uint8Array, from?: SocketAddress): void {
    this.inbound.push({ data, from });
    this.waiter.notify(EventIn);
  }
  /** The test side reads: the send buffer takes `n` more bytes, and the service is told it may write. */
  grant(n: number): void {
    this.writeBudget += n;
    this.waiter.notify(EventOut);
  }
  /** The test side closes its sending direction. */
  end(): void {
    this.eof = true;
    this.waiter.notify(EventIn);
  }
  /** Everything written so far, concatenated, and forgotten. */
  drain(): Uint8Array {
    const total = this.written.reduce((a, b) => a + b.data.length, 0);
    const out = new Uint8Array(total);
    let off = 0;
    for (const w of this.written) {
      out.set(w.data, off);
      off += w.data.length;
    }
    this.written.length = 0;
    return out;
  }
}

/** A socket factory that records the endpoints it creates; `listener` is the first stream socket. */
export function fakeSockets() {
  const created: FakeEndpoint[] = [];
  const factory = (_family: 4 | 6, type: SocketType) => {
    const e = new FakeEndpoint(type);
    created.push(e);
    return e;
  };
  return {
    factory,
    created,
    /** Opens a connection to the (first) listener and lets the service accept it. */
    connect(): FakeEndpoint {
      const listener = created.find((e) => e.type === 'stream')!;
      const c = new FakeEndpoint('stream');
      listener.backlog.push(c);
      listener.waiter.notify(EventIn);
      return c;
    },
  };
}

/** Lets queued microtasks (the services' coalesced steps) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}
