// Shared fixtures for the datagram socket tests: two or three fake hosts on one segment.
import { type Address, parseAddress } from '../../../../netstack/addr.ts';
import { type NetError, isError } from '../../../../netstack/errors.ts';
import type { SocketAddress } from '../../../../netstack/socket.ts';
import { FakeNetwork } from '../../../../netstack/transport/fake.ts';
import { PortManager } from '../../../../netstack/transport/ports.ts';
import { type DatagramReadResult, installDatagramTransports } from '../../../../netstack/transport/udp/index.ts';

export const ip = (s: string): Address => parseAddress(s) ?? fail(`bad address ${s}`);
export const sa = (s: string, port: number): SocketAddress => ({ address: ip(s), port });
export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

function fail(m: string): never {
  throw new Error(m);
}

/** Unwraps a non-error value; throws (a test bug) on a NetError. */
export function ok<T>(v: T | NetError): T {
  if (isError(v)) throw new Error(`unexpected ${v}`);
  return v;
}

/** A read that must succeed. */
export function mustRead(ep: { read(o?: object): DatagramReadResult | NetError }, o?: object): DatagramReadResult {
  return ok(ep.read(o));
}

/** Hosts A (.1 / ::1), B (.2 / ::2) and C (.3 / ::3) with datagram transports installed. */
export function world(opts: { range?: { low: number; high: number } } = {}) {
  const net = new FakeNetwork();
  const mk = (n: number) => {
    const h = net.addHost([`198.18.0.${n}/24`, `fd74:7376::${n}/64`]);
    return { host: h, t: installDatagramTransports(h, new PortManager(h, opts.range)) };
  };
  const a = mk(1);
  const b = mk(2);
  const c = mk(3);
  return { net, a, b, c };
}
