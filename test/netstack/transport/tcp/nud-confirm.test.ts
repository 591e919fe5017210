// TCP's forward-progress confirmation of its next hop (RFC 4861 §7.3.1): ACKs of new data keep the neighbour
// entry REACHABLE with no ARP request or neighbour solicitation, for IPv4 and IPv6, between two real Stacks on a
// virtual clock; without ACKs the entry still ages and probes.
import t from 'tap';
import { type Address, parseAddress, parseSubnet } from '../../../../netstack/addr.ts';
import { VirtualClock } from '../../../../netstack/clock.ts';
import { Err } from '../../../../netstack/errors.ts';
import { ChannelEndpoint } from '../../../../netstack/link/channel.ts';
import type { LinkDispatcher, LinkEndpoint } from '../../../../netstack/link/endpoint.ts';
import { SnifferEndpoint } from '../../../../netstack/link/sniffer.ts';
import type { NeighborState } from '../../../../netstack/network/neighbor.ts';
import { Stack } from '../../../../netstack/stack.ts';
import { PortManager } from '../../../../netstack/transport/ports.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { TcpProtocol } from '../../../../netstack/transport/tcp/protocol.ts';
import { ARP_REQUEST, ArpPacket } from '../../../../netstack/wire/arp.ts';
import { ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetPacket } from '../../../../netstack/wire/ethernet.ts';
import { Icmpv6Packet } from '../../../../netstack/wire/icmpv6.ts';
import { Ipv6Packet } from '../../../../netstack/wire/ipv6.ts';
import { NDP_NEIGHBOR_SOLICIT } from '../../../../netstack/wire/ndp.ts';

/** Longest ReachableTime (1.5 × BaseReachableTime, RFC 4861 §6.3.2) with the default 30 s. */
const MAX_REACHABLE_MS = 45_000;

/** A link that drops every frame delivered to its stack while `cut` is set (a peer gone silent). */
class CuttableLink implements LinkEndpoint {
  cut = false;
  private dispatcher: LinkDispatcher | null = null;
  private readonly tap: LinkDispatcher = {
    deliverFrame: (frame, flags) => {
      if (!this.cut) this.dispatcher?.deliverFrame(frame, flags);
    },
    deliverBatchEnd: () => this.dispatcher?.deliverBatchEnd?.(),
  };

  constructor(private readonly inner: LinkEndpoint) {}

  get mtu(): number {
    return this.inner.mtu;
  }

  get macAddress(): Uint8Array {
    return this.inner.macAddress;
  }

  attach(dispatcher: LinkDispatcher | null): void {
    this.dispatcher = dispatcher;
    this.inner.attach(dispatcher ? this.tap : null);
  }

  writeFrame(frame: Uint8Array): boolean {
    return this.inner.writeFrame(frame);
  }

  flush(): void {
    this.inner.flush();
  }

  close(): void {
    this.inner.close();
  }
}

/** Whether `frame` is an ARP request or an IPv6 neighbour solicitation. */
function isSolicitation(frame: Uint8Array): boolean {
  const eth = EthernetPacket.check(frame);
  if (typeof eth === 'string') return false;
  if (eth.etherType === ETHERTYPE_ARP) {
    const arp = ArpPacket.check(eth.payload);
    return typeof arp !== 'string' && arp.operation === ARP_REQUEST;
  }
  if (eth.etherType !== ETHERTYPE_IPV6) return false;
  const ip = Ipv6Packet.check(eth.payload);
  if (typeof ip === 'string' || ip.nextHeader !== 58) return false;
  const icmp = Icmpv6Packet.check(ip.payload);
  return typeof icmp !== 'string' && icmp.type === NDP_NEIGHBOR_SOLICIT;
}

/** Client stack a and server stack b on one channel; solicitations each sends are counted. */
function setup(family: 4 | 6) {
  const clock = new VirtualClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, mtu: 1500, latencyMs: 1 });
  const solicits = { a: 0, b: 0 };
  const counter = (side: 'a' | 'b') => ({ write: (_: number, f: Uint8Array) => void (isSolicitation(f) && solicits[side]++) });
  const linkB = new CuttableLink(lb);
  const a = new Stack({ clock, seed: 11, dadTransmits: 0 });
  const b = new Stack({ clock, seed: 22, dadTransmits: 0 });
  const na = a.addNic(new SnifferEndpoint(la, { clock, out: counter('a'), direction: 'out' }));
  const nb = b.addNic(new SnifferEndpoint(linkB, { clock, out: counter('b'), direction: 'out' }));
  for (const [s, n, x] of [[a, na, 1], [b, nb, 2]] as const) {
    s.addAddress(n, parseSubnet(family === 4 ? `198.18.0.${x}/24` : `fd74:7376::${x}/64`)!);
  }
  const ta = new TcpProtocol(a, new PortManager(a));
  const tb = new TcpProtocol(b, new PortManager(b));
  a.registerTransport(ta);
  b.registerTransport(tb);
  const addrA = parseAddress(family === 4 ? '198.18.0.1' : 'fd74:7376::1')!;
  const addrB = parseAddress(family === 4 ? '198.18.0.2' : 'fd74:7376::2')!;
  const stateOf = (s: Stack, nic: number, peer: Address): NeighborState | undefined =>
    s.neighbors(nic, family).find((e) => e.address.every((v, i) => v === peer[i]))?.state;

  const server = tb.newEndpoint(family);
  if (server.bind({ address: new Uint8Array(family === 4 ? 4 : 16), port: 5001 }) || server.listen(4)) throw new Error('listen');
  const client = ta.newEndpoint(family);
  if (client.connect({ address: addrB, port: 5001 }) !== Err.ConnectStarted) throw new Error('connect');
  let child: TcpEndpoint | null = null;
  for (let i = 0; i < 1000 && !child; i++) {
    clock.advance(1);
    const r = server.accept();
    if (!('errno' in r)) child = r.endpoint as TcpEndpoint;
  }
  if (!child) throw new Error('never accepted');
  return {
    clock,
    client,
    child,
    linkB,
    solicits,
    /** a's entry for b. */
    stateAB: () => stateOf(a, na, addrB),
    /** b's entry for a. */
    stateBA: () => stateOf(b, nb, addrA),
  };
}

/** Reads everything `ep` holds; the number of bytes. */
function drain(ep: TcpEndpoint): number {
  let n = 0;
  for (;;) {
    const r = ep.read();
    if ('errno' in r || r.data.length === 0) return n;
    n += r.data.length;
  }
}

for (const family of [4, 6] as const) {
  const probe = family === 4 ? 'ARP request' : 'NS';

  t.test(`IPv${family} REACHABLE + data ACKed every second for 5 × max ReachableTime → still REACHABLE, no ${probe}`, (t) => {
    const env = setup(family);
    const { clock, client, child, solicits } = env;
    t.equal(env.stateAB(), 'reachable', 'resolved by the handshake');
    // b learned a from its request (STALE) and went to DELAY sending the SYN-ACK; the handshake's ACK confirms it.
    t.equal(env.stateBA(), 'delay', "the server's entry: DELAY after its SYN-ACK");
    const before = { ...solicits };
    const states = new Set<string>();
    let echoed = 0;
    for (let s = 0; s < (5 * MAX_REACHABLE_MS) / 1000; s++) {
      // Request/response: both sides send data the other acknowledges.
      t.equal(client.write(new Uint8Array(100).fill(s & 0xff)), 100);
      clock.advance(500);
      const got = drain(child);
      if (got > 0) child.write(new Uint8Array(got));
      clock.advance(500);
      echoed += drain(client);
      if (s >= 5) states.add(`${env.stateAB()}/${env.stateBA()}`);
      else t.equal(env.stateAB(), 'reachable');
    }
    t.equal(echoed, 100 * ((5 * MAX_REACHABLE_MS) / 1000), 'every request answered');
    t.same([...states], ['reachable/reachable'], 'both entries REACHABLE at every second after the first DELAY');
    t.same(solicits, before, `no ${probe} from either side`);

    // Progress stops: the last confirmation ages and the entry goes STALE, with nothing sent and no probe.
    clock.advance(MAX_REACHABLE_MS + 1000);
    t.equal(env.stateAB(), 'stale', 'STALE once the confirmations stop');
    t.same(solicits, before, 'aging to STALE sends nothing');
    t.end();
  });

  t.test(`IPv${family} STALE + data the peer never ACKs → DELAY → PROBE (${probe}s) → FAILED`, (t) => {
    const env = setup(family);
    const { clock, client, linkB, solicits } = env;
    clock.advance(MAX_REACHABLE_MS + 1000);
    t.equal(env.stateAB(), 'stale', 'idle connection: STALE');
    const before = solicits.a;
    linkB.cut = true;
    t.equal(client.write(new Uint8Array(100)), 100);
    clock.advance(1);
    t.equal(env.stateAB(), 'delay', 'sending on STALE → DELAY');
    clock.advance(5000);
    t.equal(env.stateAB(), 'probe', 'no ACK within DELAY_FIRST_PROBE_TIME → PROBE');
    t.equal(solicits.a - before, 1, `first unicast ${probe}`);
    clock.advance(3000);
    t.equal(env.stateAB(), 'failed', 'MAX_UNICAST_SOLICIT unanswered → FAILED');
    t.equal(solicits.a - before, 3, `three ${probe}s`);
    t.end();
  });

  t.test(`IPv${family} STALE + data ACKed within DELAY → REACHABLE without a probe`, (t) => {
    const env = setup(family);
    const { clock, client, solicits } = env;
    clock.advance(MAX_REACHABLE_MS + 1000);
    t.equal(env.stateAB(), 'stale');
    const before = solicits.a;
    t.equal(client.write(new Uint8Array(100)), 100);
    clock.advance(1);
    t.equal(env.stateAB(), 'delay', 'sending on STALE → DELAY');
    clock.advance(5000);
    t.equal(env.stateAB(), 'reachable', 'the ACK confirmed it: DELAY → REACHABLE at the timer');
    t.equal(solicits.a, before, `no ${probe}`);
    t.end();
  });
}
