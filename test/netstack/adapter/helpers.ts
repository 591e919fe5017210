// Two Netstacks over an in-memory channel pair on Node's real clock, for the adapter tests.
import { NodeClock } from '../../../lib/clock.ts';
import { parseSubnet } from '../../../netstack/addr.ts';
import { ChannelEndpoint } from '../../../netstack/link/channel.ts';
import type { LinkEndpoint } from '../../../netstack/link/endpoint.ts';
import { ImpairEndpoint, type ImpairSpec } from '../../../netstack/link/impair.ts';
import { Netstack } from '../../../netstack/netstack.ts';

export const A4 = '198.18.0.1';
export const B4 = '198.18.0.2';
export const A6 = 'fd74:7376::1';
export const B6 = 'fd74:7376::2';

/** Stacks a (198.18.0.1, fd74:7376::1) and b (.2, ::2) joined by a channel; close() stops both. */
export function twoNetstacks(opts: { mtu?: number; impair?: Partial<ImpairSpec>; latencyMs?: number } = {}) {
  const clock = new NodeClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, mtu: opts.mtu ?? 1500, latencyMs: opts.latencyMs ?? 0 });
  const linkA: LinkEndpoint = opts.impair ? new ImpairEndpoint(la, clock, opts.impair) : la;
  const a = new Netstack({ clock, seed: 1, dadTransmits: 0 });
  const b = new Netstack({ clock, seed: 2, dadTransmits: 0 });
  const na = a.stack.addNic(linkA);
  const nb = b.stack.addNic(lb);
  for (const [n, nic, x] of [[a, na, 1], [b, nb, 2]] as const) {
    n.stack.addAddress(nic, parseSubnet(`198.18.0.${x}/24`)!);
    n.stack.addAddress(nic, parseSubnet(`fd74:7376::${x}/64`)!);
  }
  return {
    clock,
    a,
    b,
    close() {
      a.close();
      b.close();
      clock.dispose();
    },
  };
}
