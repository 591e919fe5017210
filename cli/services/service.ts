/**
 * Services that `tsvisor serve` runs on the netstack, written against the socket endpoint API only, so they
 * exercise the same non-blocking, readiness-driven calls that the Sentry serves to sandboxed programs.
 */
import { IPV4_ANY, IPV6_ANY } from '../../netstack/addr.ts';
import { Err, NetError } from '../../netstack/errors.ts';
import type { Endpoint, Family, SocketAddress, SocketType } from '../../netstack/socket.ts';
import { EventIn } from '../../netstack/waiter.ts';

/** Creates socket endpoints (the netstack facade's `socket()`). */
export type SocketFactory = (family: Family, type: SocketType, protocol?: number) => Endpoint | NetError;

/**
 * The other shards of a `serve --threads N` (cli/serve-shard.ts), for a service whose state spans connections
 * that the kernel's flow hash may give to different shards (an iperf3 test's control and data connections).
 */
export interface ShardPeers {
  /** This shard's index, from 0. */
  readonly self: number;
  /** How many shards there are. */
  readonly count: number;
  /** Sends `msg` (structured-cloneable) to the same service on shard `to`, or on every other shard. */
  send(to: number | 'others', msg: unknown): void;
  /** Sets the receiver of what the same service on other shards sends. */
  listen(fn: (from: number, msg: unknown) => void): void;
}

/** A running service; close() releases its sockets. */
export interface Service {
  readonly name: string;
  readonly port: number;
  close(): void;
}

/** Binds one datagram socket per family on `port` (IPv6 with V6ONLY so the two never clash). */
export function bindDatagram(sockets: SocketFactory, port: number): Endpoint[] | NetError {
  const out: Endpoint[] = [];
  for (const family of [4, 6] as const) {
    const ep = sockets(family, 'dgram');
    if (ep instanceof NetError) return closeAll(out, ep);
    if (family === 6) ep.setOption('IPV6_V6ONLY', 1);
    const err = ep.bind({ address: family === 4 ? IPV4_ANY : IPV6_ANY, port });
    if (err) return closeAll([...out, ep], err);
    out.push(ep);
  }
  return out;
}

function closeAll(eps: Endpoint[], err: NetError): NetError {
  for (const e of eps) e.close();
  return err;
}

/**
 * Calls `onDatagram` for every datagram that arrives on `ep`, draining the queue each time the endpoint
 * becomes readable. Returns the unsubscribe function.
 */
export function serveDatagrams(
  ep: Endpoint,
  onDatagram: (data: Uint8Array, from: SocketAddress) => void,
): () => void {
  const drain = () => {
    for (;;) {
      const r = ep.read({ maxBytes: 65536 });
      if (r instanceof NetError) {
        if (r === Err.WouldBlock) return;
        continue; // a pending ICMP error was reported; keep serving
      }
      if (r.from) onDatagram(r.data, r.from);
    }
  };
  const unsubscribe = ep.waiter.subscribe(EventIn, drain);
  drain();
  return unsubscribe;
}
