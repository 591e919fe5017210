/**
 * The stream halves of the small Internet services, written on the non-blocking endpoint API: echo (RFC 862),
 * discard (RFC 863) and chargen (RFC 864) over TCP. Each connection is a small readiness-driven step function;
 * echo reads only once what it read before is sent, so a client that does not read closes its own window.
 */
import { IPV6_ANY } from '../../netstack/addr.ts';
import { coalesced, runSoon, type Runnable } from '../../netstack/adapter/common.ts';
import { Err, NetError } from '../../netstack/errors.ts';
import type { Endpoint } from '../../netstack/socket.ts';
import { EventErr, EventHUp, EventIn, EventOut, EventRdHUp, type Waiter } from '../../netstack/waiter.ts';
import { PERIOD, chargenPattern } from './chargen.ts';
import type { Service, SocketFactory } from './service.ts';

/** Counts of what a stream service has done. */
export interface StreamServiceStats {
  /** Connections accepted. */
  connections: number;
  /** Connections open now. */
  open: number;
  /** Bytes received. */
  bytesIn: number;
  /** Bytes sent. */
  bytesOut: number;
}

/** One connection's handler: runs on every readiness change; returns false when the connection is over. */
type Step = (ep: Endpoint, stats: StreamServiceStats) => boolean;

/** How much one read takes. */
const CHUNK = 65536;
// How discard and chargen read what they throw away: counted, not copied (MSG_TRUNC).
const SINK_READ = { into: new Uint8Array(CHUNK), discard: true };
// chargen's pattern never changes: the stack may queue it uncopied.
const KEEP = { keep: true };
/** Listen backlog of the services. */
const BACKLOG = 4096;

/** TCP echo (RFC 862 §"TCP Based Echo Service"): sends back what it receives until the client closes. */
export function tcpEcho(sockets: SocketFactory, port = 7): (Service & { stats: StreamServiceStats }) | NetError {
  return streamService('echo', sockets, port, (ep, stats) => {
    let pending: Uint8Array | null = null;
    let eof = false;
    return () => {
      for (;;) {
        if (pending) {
          const n = ep.write(pending);
          if (n === Err.WouldBlock) return true;
          if (n instanceof NetError) return false;
          stats.bytesOut += n;
          pending = n < pending.length ? pending.subarray(n) : null;
          if (pending) return true;
        }
        if (eof) return false;
        const r = ep.read({ maxBytes: CHUNK });
        if (r === Err.WouldBlock) return true;
        if (r instanceof NetError) return false;
        if (r.data.length === 0) eof = true;
        else {
          stats.bytesIn += r.data.length;
          pending = r.data;
        }
      }
    };
  });
}

/** TCP discard (RFC 863 §"TCP Based Discard Service"): reads and throws away until the client closes. */
export function tcpDiscard(sockets: SocketFactory, port = 9): (Service & { stats: StreamServiceStats }) | NetError {
  return streamService('discard', sockets, port, () => discardStep);
}

/** discard's step, one function for every connection: it keeps nothing of its own. */
function discardStep(ep: Endpoint, stats: StreamServiceStats): boolean {
  for (;;) {
    const r = ep.read(SINK_READ);
    if (r === Err.WouldBlock) return true;
    if (r instanceof NetError || r.data.length === 0) return false;
    stats.bytesIn += r.data.length;
  }
}

/** Enough periods of the pattern that a 64 KiB window fits from any offset inside the first one. */
const PATTERN = chargenPattern(Math.ceil((CHUNK + PERIOD) / PERIOD));

/**
 * TCP chargen (RFC 864 §"TCP Based Character Generator Service"): sends the 72-column rotating pattern for as
 * long as the client takes it, ignoring what it sends; stops when the connection fails or is reset.
 */
export function tcpChargen(sockets: SocketFactory, port = 19): (Service & { stats: StreamServiceStats }) | NetError {
  return streamService('chargen', sockets, port, (ep, stats) => {
    let offset = 0;
    let eof = false;
    return () => {
      while (!eof) {
        const r = ep.read(SINK_READ);
        if (r === Err.WouldBlock) break;
        if (r instanceof NetError) return false;
        if (r.data.length === 0) eof = true;
        stats.bytesIn += r.data.length;
      }
      for (;;) {
        const n = ep.write(PATTERN.subarray(offset, offset + CHUNK), KEEP);
        if (n === Err.WouldBlock) return true;
        if (n instanceof NetError) return false;
        stats.bytesOut += n;
        offset = (offset + n) % PERIOD;
      }
    };
  });
}

/** Readiness a stream service's connection waits for. */
const CONN_EVENTS = EventIn | EventOut | EventErr | EventHUp | EventRdHUp;

/**
 * One accepted connection of a stream service, in one object: it is its endpoint's waiter entry and its own queued
 * run, where a closure each for the run, its coalescing, the finish and the unsubscribe, their contexts and a waiter
 * entry cost an idle connection ~1 KB of heap (issue 13's conn-memory row holds 10,000 on the discard service).
 */
class StreamConn implements Waiter, Runnable {
  readonly mask = CONN_EVENTS;
  live = true;
  // A run is queued and not yet started (readiness notified again meanwhile asks for nothing more).
  private queued = false;

  constructor(
    private readonly ep: Endpoint,
    private readonly step: Step,
    private readonly owner: Set<StreamConn>,
    private readonly stats: StreamServiceStats,
  ) {}

  /**
   * The waiter's call: the step runs after the stack's packet processing, never inside it (a write from inside
   * input processing would re-enter the connection it is processing).
   */
  fn(): void {
    if (this.queued) return;
    this.queued = true;
    runSoon(this);
  }

  run(): void {
    this.queued = false;
    if (this.owner.has(this) && !this.step(this.ep, this.stats)) this.finish();
  }

  finish(): void {
    if (!this.owner.delete(this)) return;
    this.stats.open--;
    this.ep.waiter.remove(this);
    this.ep.close();
  }
}

/** Listens on [::]:port (dual-stack) and runs `handler`'s step for every accepted connection. */
function streamService(
  name: string,
  sockets: SocketFactory,
  port: number,
  handler: (ep: Endpoint, stats: StreamServiceStats) => Step,
): (Service & { stats: StreamServiceStats }) | NetError {
  const listener = sockets(6, 'stream');
  if (listener instanceof NetError) return listener;
  listener.setOption('SO_REUSEADDR', 1);
  const err = listener.bind({ address: IPV6_ANY, port }) ?? listener.listen(BACKLOG);
  if (err) {
    listener.close();
    return err;
  }
  const stats: StreamServiceStats = { connections: 0, open: 0, bytesIn: 0, bytesOut: 0 };
  const open = new Set<StreamConn>();

  const start = (ep: Endpoint) => {
    stats.connections++;
    stats.open++;
    const conn = new StreamConn(ep, handler(ep, stats), open, stats);
    open.add(conn);
    ep.waiter.add(conn);
    conn.run();
  };

  const acceptAll = coalesced(() => {
    for (;;) {
      const r = listener.accept();
      if (r === Err.WouldBlock) return;
      if (r instanceof NetError) return;
      start(r.endpoint);
    }
  });
  const stopAccepting = listener.waiter.subscribe(EventIn, acceptAll);
  acceptAll();
  return {
    name,
    port,
    stats,
    close() {
      stopAccepting();
      listener.close();
      for (const c of [...open]) c.finish();
    },
  };
}
