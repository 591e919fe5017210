/**
 * Test helpers for the network layer: two stacks joined by an in-memory channel, a capturing transport, and
 * echo-request builders made with the wire library.
 */
import { type Address, parseAddress, parseSubnet } from '../../../netstack/addr.ts';
import { VirtualClock } from '../../../netstack/clock.ts';
import { isError } from '../../../netstack/errors.ts';
import { ChannelEndpoint } from '../../../netstack/link/channel.ts';
import type { LinkEndpoint } from '../../../netstack/link/endpoint.ts';
import { Stack, type StackOptions } from '../../../netstack/stack.ts';
import type { ControlMessage, DeliverResult, PacketInfo, Route, TransportProtocol } from '../../../netstack/transport/protocol.ts';
import { emitIcmpv4, fillIcmpv4Checksum } from '../../../netstack/wire/icmpv4.ts';
import { emitIcmpv6, fillIcmpv6Checksum } from '../../../netstack/wire/icmpv6.ts';

export const A4 = ip('198.18.0.1');
export const B4 = ip('198.18.0.2');
export const A6 = ip('fd74:7376::1');
export const B6 = ip('fd74:7376::2');

/** Parses an address or throws (tests only). */
export function ip(text: string): Address {
  const a = parseAddress(text);
  if (!a) throw new Error(`bad address ${text}`);
  return a;
}

/** Parses a subnet or throws (tests only). */
export function net(text: string) {
  const s = parseSubnet(text);
  if (!s) throw new Error(`bad subnet ${text}`);
  return s;
}

/** A transport that records what it is given and answers with a fixed result. */
export class Recorder implements TransportProtocol {
  readonly packets: { info: PacketInfo; segment: Uint8Array }[] = [];
  readonly controls: { msg: ControlMessage; local: Address; remote: Address; quoted: Uint8Array }[] = [];
  result: DeliverResult = 'delivered';
  constructor(readonly protocolNumber: number) {}
  deliver(info: PacketInfo, segment: Uint8Array): DeliverResult {
    this.packets.push({ info, segment: segment.slice() });
    return this.result;
  }
  deliverControl(msg: ControlMessage, local: Address, remote: Address, quoted: Uint8Array): void {
    this.controls.push({ msg, local, remote, quoted: quoted.slice() });
  }
}

export interface Pair {
  clock: VirtualClock;
  a: Stack;
  b: Stack;
  la: LinkEndpoint & ChannelEndpoint;
  lb: LinkEndpoint & ChannelEndpoint;
  nicA: number;
  nicB: number;
  /** Frames written by A and B, in order. */
  fromA: Uint8Array[];
  fromB: Uint8Array[];
}

/** Two stacks on one channel, A = .1 / ::1, B = .2 / ::2 (fd74:7376::/64), DAD settled unless `settle` is false. */
export function pair(opts: Partial<StackOptions> & { settle?: boolean; mtu?: number; addresses?: boolean } = {}): Pair {
  const clock = new VirtualClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, mtu: opts.mtu });
  const a = new Stack({ ...opts, clock, seed: 1 });
  const b = new Stack({ ...opts, clock, seed: 2 });
  const nicA = a.addNic(la);
  const nicB = b.addNic(lb);
  const fromA: Uint8Array[] = [];
  const fromB: Uint8Array[] = [];
  la.onWrite = (f) => fromA.push(f.slice());
  lb.onWrite = (f) => fromB.push(f.slice());
  if (opts.addresses !== false) {
    a.addAddress(nicA, net('198.18.0.1/24'));
    b.addAddress(nicB, net('198.18.0.2/24'));
    a.addAddress(nicA, net('fd74:7376::1/64'));
    b.addAddress(nicB, net('fd74:7376::2/64'));
  }
  if (opts.settle !== false) clock.advance(5000);
  fromA.length = 0;
  fromB.length = 0;
  return { clock, a, b, la, lb, nicA, nicB, fromA, fromB };
}

/** A route or throws (tests only). */
export function route(s: Stack, remote: Address, local?: Address): Route {
  const r = s.findRoute(remote, local);
  if (isError(r)) throw new Error(`no route: ${r}`);
  return r;
}

/** An ICMP echo request (v4 or v6 by the route's family) with headroom, ready for route.send. */
export function echoRequest(r: Route, id: number, seq: number, data: Uint8Array): Uint8Array {
  const buf = new Uint8Array(r.headroom + 8 + data.length);
  buf.set(data, r.headroom + 8);
  const h = buf.subarray(r.headroom, r.headroom + 8);
  const body = buf.subarray(r.headroom + 8);
  if (r.remoteAddress.length === 4) {
    emitIcmpv4({ kind: 'echo-request', identifier: id, sequence: seq, data: body }, buf, r.headroom);
    fillIcmpv4Checksum(h, body);
  } else {
    emitIcmpv6({ kind: 'echo-request', identifier: id, sequence: seq, data: body }, buf, r.headroom);
    fillIcmpv6Checksum(h, body, r.localAddress, r.remoteAddress);
  }
  return buf;
}

/** `n` bytes of a recognisable pattern. */
export function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** Hex of bytes, for readable failures. */
export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** A link that records written frames and lets a test deliver frames synchronously. */
export class TestLink implements LinkEndpoint {
  readonly written: Uint8Array[] = [];
  dispatcher: import('../../../netstack/link/endpoint.ts').LinkDispatcher | null = null;
  keep = true;
  writes = 0;
  /** Offloads the link claims (set before addNic); none by default. */
  capabilities: import('../../../netstack/link/endpoint.ts').LinkCapabilities | undefined;
  constructor(
    readonly macAddress: Uint8Array,
    readonly mtu = 1500,
  ) {}
  attach(d: import('../../../netstack/link/endpoint.ts').LinkDispatcher | null): void {
    this.dispatcher = d;
  }
  writeFrame(frame: Uint8Array): boolean {
    this.writes++;
    if (this.keep) this.written.push(frame.slice());
    return true;
  }
  flush(): void {}
  close(): void {}
  /** Delivers one frame as a batch of one. */
  deliver(frame: Uint8Array): void {
    this.dispatcher?.deliverFrame(frame);
    this.dispatcher?.deliverBatchEnd?.();
  }
  /** Returns and forgets the written frames. */
  take(): Uint8Array[] {
    return this.written.splice(0);
  }
}

export const X4 = ip('198.18.0.99');
export const X6 = ip('fd74:7376::99');

/** One stack (A: 198.18.0.1/24, fd74:7376::1/64, MAC 02:00:00:00:00:01) on a TestLink, DAD settled. */
export function single(opts: Partial<StackOptions> = {}) {
  const clock = new VirtualClock();
  const link = new TestLink(new Uint8Array([2, 0, 0, 0, 0, 1]));
  const s = new Stack({ clock, seed: 1, ...opts });
  const nic = s.addNic(link);
  s.addAddress(nic, net('198.18.0.1/24'));
  s.addAddress(nic, net('fd74:7376::1/64'));
  clock.advance(5000);
  link.take();
  return { clock, link, s, nic };
}

/** Checks the frame accounting invariant: every received frame was delivered or counted in one drop counter. */
export function accounting(s: Stack): { received: number; delivered: number; drops: number; dropped: number } {
  const snap = s.stats.snapshot();
  let drops = 0;
  for (const k of s.dropCounters()) drops += snap[k] ?? 0;
  return { received: snap['rx.received']!, delivered: snap['rx.delivered']!, drops, dropped: snap['rx.dropped']! };
}
