/**
 * Two Netstacks joined by an in-memory channel on a virtual clock, with one established TCP connection between
 * them, for the micro-benchmarks of the TCP paths and of stack-to-stack throughput.
 */
import { parseAddress, parseSubnet } from '../../netstack/addr.ts';
import { VirtualClock } from '../../netstack/clock.ts';
import { Err, NetError } from '../../netstack/errors.ts';
import { ChannelEndpoint } from '../../netstack/link/channel.ts';
import type { LinkEndpoint } from '../../netstack/link/endpoint.ts';
import { Netstack } from '../../netstack/netstack.ts';
import type { Endpoint } from '../../netstack/socket.ts';

/** A connected pair: `client` in stack A, `server` (accepted) in stack B. */
export interface TcpPair {
  clock: VirtualClock;
  client: Endpoint;
  server: Endpoint;
  /** Moves `n` bytes from client to server (reading them all); returns the virtual milliseconds it took. */
  pump(data: Uint8Array, n: number): number;
}

/** Options of tcpPair. */
export interface TcpPairOptions {
  /** Links with offloads as a veth has them (ChannelEndpoint `gso`): TSO super-frames and unverified checksums. */
  gso?: boolean;
  /** Wraps the server stack's link (a test's interposer between the channel and stack B). */
  wrapServerLink?: (link: ChannelEndpoint) => LinkEndpoint;
}

/** Builds the pair with links of `mtu`; throws when TCP cannot connect (the TCP code is missing or broken). */
export function tcpPair(
  mtu = 1500,
  opts: TcpPairOptions = {},
): TcpPair & { links: [ChannelEndpoint, ChannelEndpoint]; stacks: [Netstack, Netstack] } {
  const clock = new VirtualClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, mtu, gso: opts.gso });
  const a = new Netstack({ clock, seed: 1, dadTransmits: 0 });
  const b = new Netstack({ clock, seed: 2, dadTransmits: 0 });
  a.stack.addAddress(a.stack.addNic(la), parseSubnet('198.18.0.1/24')!);
  b.stack.addAddress(b.stack.addNic(opts.wrapServerLink ? opts.wrapServerLink(lb) : lb), parseSubnet('198.18.0.2/24')!);
  const listener = b.socket(4, 'stream') as Endpoint;
  listener.bind({ address: new Uint8Array(4), port: 5001 });
  listener.listen(8);
  const client = a.socket(4, 'stream') as Endpoint;
  if (client.connect({ address: parseAddress('198.18.0.2')!, port: 5001 }) !== Err.ConnectStarted) throw new Error('connect');
  let server: Endpoint | null = null;
  for (let i = 0; i < 1000 && !server; i++) {
    clock.advance(1);
    const r = listener.accept();
    if (!(r instanceof NetError)) server = r.endpoint;
  }
  if (!server) throw new Error('no connection established');
  const srv = server;
  return {
    links: [la, lb],
    stacks: [a, b],
    clock,
    client,
    server: srv,
    pump(data, n) {
      const start = clock.now();
      let sent = 0;
      let got = 0;
      while (got < n) {
        while (sent < n) {
          const w = client.write(data.subarray(0, Math.min(data.length, n - sent)));
          if (typeof w !== 'number' || w === 0) break;
          sent += w;
        }
        for (;;) {
          const r = srv.read({ maxBytes: 1 << 20 });
          if (r instanceof NetError) break;
          got += r.data.length;
        }
        if (got < n) clock.advance(1);
        if (clock.now() - start > 600_000) throw new Error(`stalled after ${got} of ${n} bytes`);
      }
      return clock.now() - start;
    },
  };
}
