/**
 * What the in-memory micro-benchmarks (rr-work, conn-work, syn-work) share: a clock that counts what a stack asks of
 * it, and two stacks on one channel (198.18.0.1 the client, 198.18.0.2 the server, whose clock is the counted one).
 */
import { parseSubnet } from '../../netstack/addr.ts';
import { type Clock, type Timer, VirtualClock } from '../../netstack/clock.ts';
import { ChannelEndpoint } from '../../netstack/link/channel.ts';
import { Netstack } from '../../netstack/netstack.ts';

/** A clock that counts what the stack asks of it: reads, timers scheduled and timers cancelled. */
export class CountingClock implements Clock {
  nows = 0;
  schedules = 0;
  cancels = 0;
  constructor(private readonly inner: Clock) {}
  now(): number {
    this.nows++;
    return this.inner.now();
  }
  schedule(delayMs: number, fn: () => void): Timer {
    this.schedules++;
    const t = this.inner.schedule(delayMs, fn);
    return {
      cancel: () => {
        this.cancels++;
        t.cancel();
      },
    };
  }
}

/** A client and a server stack on a GSO channel under one virtual clock, the server's reads of it counted. */
export function countedStacks(): { clock: VirtualClock; counting: CountingClock; client: Netstack; server: Netstack } {
  const clock = new VirtualClock();
  const counting = new CountingClock(clock);
  const [la, lb] = ChannelEndpoint.pair({ clock, mtu: 1500, gso: true });
  const client = new Netstack({ clock, seed: 1, dadTransmits: 0 });
  const server = new Netstack({ clock: counting, seed: 2, dadTransmits: 0 });
  client.stack.addAddress(client.stack.addNic(la), parseSubnet('198.18.0.1/24')!);
  server.stack.addAddress(server.stack.addNic(lb), parseSubnet('198.18.0.2/24')!);
  return { clock, counting, client, server };
}
