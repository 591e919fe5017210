/**
 * A TCP test harness: one TcpProtocol on a fake network layer whose routes capture every segment sent, and a
 * scripted peer. A test sends a segment as the peer, expects the next segment (matching only the fields it
 * names), expects nothing within a time, and advances the VirtualClock.
 */
import { parseAddress, parseSubnet, type Address } from '../../../../netstack/addr.ts';
import { VirtualClock } from '../../../../netstack/clock.ts';
import { Err, type NetError } from '../../../../netstack/errors.ts';
import { ChannelEndpoint } from '../../../../netstack/link/channel.ts';
import { joinGather } from '../../../../netstack/link/endpoint.ts';
import { Netstack } from '../../../../netstack/netstack.ts';
import { Rng } from '../../../../netstack/rand.ts';
import { Stats } from '../../../../netstack/stats.ts';
import { PortManager } from '../../../../netstack/transport/ports.ts';
import {
  type NetworkLayer,
  type PacketInfo,
  type Route,
  type SendOptions,
  type TransportProtocol,
  PROTO_TCP,
} from '../../../../netstack/transport/protocol.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { type TcpConfig, TcpProtocol } from '../../../../netstack/transport/tcp/protocol.ts';
import * as seq from '../../../../netstack/seqnum.ts';
import {
  TCP_ACK,
  TCP_CWR,
  TCP_ECE,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TcpPacket,
  type TcpOptions,
  type TcpRepr,
  emitTcp,
  fillTcpChecksum,
  parseTcp,
  tcpHeaderLength,
} from '../../../../netstack/wire/tcp.ts';
import { foldChecksum, pseudoHeaderSum } from '../../../../netstack/wire/checksum.ts';

/** Our address (the stack under test). */
export const LOCAL = parseAddress('198.18.0.1')!;
/** The scripted peer's address. */
export const REMOTE = parseAddress('198.18.0.2')!;
/** The peer's port. */
export const PEER_PORT = 40000;
/** The port the stack listens on in passive tests. */
export const LISTEN_PORT = 8080;

/** A captured outgoing segment. */
export interface Sent {
  src: Address;
  dst: Address;
  repr: TcpRepr;
  /** The IP ECN codepoint it left with (RFC 3168 §5). */
  ecn: number;
  /** The whole TOS / traffic-class byte it left with. */
  tos: number;
  /** The TTL it was given, undefined for the route's default. */
  ttl?: number;
}

/** A NetworkLayer that records what TCP sends instead of sending it. */
export class CaptureNet implements NetworkLayer {
  readonly clock = new VirtualClock(1_000_000);
  readonly stats = new Stats();
  readonly secret = new Uint8Array(16).fill(7);
  readonly sent: Sent[] = [];
  mtu = 1500;
  /** When > 0, routes offer TSO up to this super-segment size and cut what sendGso gets as a link would. */
  gsoMax = 0;
  /** The super-segments sendGso received (copies) that the link cuts into more than one segment. */
  readonly gsoSent: { segment: Uint8Array; headerLength: number; gsoSize: number }[] = [];
  /** Single segments sendGso received: data sent with a partial checksum for the link to complete. */
  partialSent = 0;
  /** With gsoMax, routes take payloads as gather views (Route.gathers), joined here as a link sends them. */
  gather = false;
  /** The views of each gather payload sendGso received, as given. */
  readonly gathered: Uint8Array[][] = [];
  private readonly rng = new Rng(42);

  registerTransport(_p: TransportProtocol): void {}

  findRoute(remote: Address, local?: Address): Route | NetError {
    if (remote.length !== 4) return Err.NetworkUnreachable;
    if (local && !this.isLocalAddress(local) && local.some((b) => b !== 0)) return Err.AddressNotAvailable;
    const net = this;
    const route: Route = {
      nicId: 1,
      localAddress: LOCAL,
      remoteAddress: remote,
      headroom: 34,
      maxPayload: () => net.mtu - 20,
      send(_protocol: number, packet: Uint8Array, offset: number, opts?: SendOptions): NetError | undefined {
        const seg = packet.slice(offset);
        if (net.gsoMax > 0 && seg.length > net.mtu - 20) throw new Error(`TCP sent ${seg.length} bytes on a ${net.mtu - 20}-byte path`);
        const pkt = TcpPacket.check(seg);
        if (typeof pkt === 'string') throw new Error(`TCP sent a malformed segment: ${pkt}`);
        const repr = parseTcp(pkt, LOCAL, remote);
        if (typeof repr === 'string') throw new Error(`TCP sent a bad segment: ${repr}`);
        net.sent.push({ src: LOCAL, dst: remote, repr, ecn: (opts?.tos ?? 0) & 3, tos: opts?.tos ?? 0, ttl: opts?.ttl });
        return undefined;
      },
    };
    if (this.gsoMax > 0) {
      route.gsoMaxSegment = () => net.gsoMax;
      route.gathers = () => net.gather;
      route.sendGso = (_protocol, packet, offset, hl, gsoSize, opts, payload) => {
        let sup: Uint8Array = packet.slice(offset);
        if (payload !== undefined) {
          if (sup.length !== hl) throw new Error(`a gathered segment's packet holds ${sup.length - hl} payload bytes`);
          net.gathered.push(payload.pieces.slice(0, payload.count));
          sup = joinGather(sup, payload);
        }
        if (sup.length > net.gsoMax) throw new Error(`super-segment of ${sup.length} > ${net.gsoMax}`);
        if (sup.length - hl > gsoSize) net.gsoSent.push({ segment: sup, headerLength: hl, gsoSize });
        else net.partialSent++;
        // The contract's partial checksum: the pseudo-header over the whole length, folded, not complemented.
        const partial = (sup[16]! << 8) | sup[17]!;
        const want = foldChecksum(pseudoHeaderSum(LOCAL, remote, 6, sup.length));
        if (partial !== want) throw new Error(`partial checksum ${partial} ≠ ${want}`);
        // Cut as Linux's tcp_gso_segment: sequence advanced per copy, FIN/PSH only on the last.
        const flags = sup[13]!;
        const start = ((sup[4]! << 24) | (sup[5]! << 16) | (sup[6]! << 8) | sup[7]!) >>> 0;
        for (let at = hl; at < sup.length; at += gsoSize) {
          const n = Math.min(gsoSize, sup.length - at);
          const seg = new Uint8Array(hl + n);
          seg.set(sup.subarray(0, hl));
          seg.set(sup.subarray(at, at + n), hl);
          const s = (start + at - hl) >>> 0;
          seg[4] = s >>> 24;
          seg[5] = (s >>> 16) & 0xff;
          seg[6] = (s >>> 8) & 0xff;
          seg[7] = s & 0xff;
          if (at + n < sup.length) seg[13] = flags & ~(TCP_FIN | TCP_PSH);
          seg[16] = 0;
          seg[17] = 0;
          fillTcpChecksum(seg, LOCAL, remote);
          route.send(PROTO_TCP, seg, 0, opts);
        }
        return undefined;
      };
    }
    return route;
  }

  isLocalAddress(a: Address): boolean {
    return a.length === 4 && a[0] === LOCAL[0] && a[1] === LOCAL[1] && a[2] === LOCAL[2] && a[3] === LOCAL[3];
  }

  random32(): number {
    return this.rng.next32();
  }
}

/** What `expect` can match; unnamed fields are not checked. */
export interface Match {
  flags?: number;
  seq?: number;
  ack?: number;
  window?: number;
  len?: number;
  payload?: Uint8Array;
  options?: Partial<TcpOptions>;
  /** The IP ECN codepoint (RFC 3168 §5: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE). */
  ecn?: number;
}

/** Flag names for messages. */
export function flagNames(f: number): string {
  const n: string[] = [];
  if (f & TCP_SYN) n.push('SYN');
  if (f & TCP_FIN) n.push('FIN');
  if (f & TCP_RST) n.push('RST');
  if (f & TCP_PSH) n.push('PSH');
  if (f & TCP_ACK) n.push('ACK');
  if (f & TCP_ECE) n.push('ECE');
  if (f & TCP_CWR) n.push('CWR');
  return n.join('|') || 'none';
}

/** Describes a segment for failure messages. */
export function describe(r: TcpRepr): string {
  return `${flagNames(r.flags)} seq=${r.seq} ack=${r.ack} win=${r.window} len=${r.payload.length} opts=${JSON.stringify(r.options)}`;
}

/** A segment the peer sends. */
export interface PeerSegment {
  flags: number;
  seq?: number;
  ack?: number;
  window?: number;
  payload?: Uint8Array;
  options?: TcpOptions;
  srcPort?: number;
  dstPort?: number;
  /** Delivered as from a frame the link flagged RX_MORE (more of its batch follows). */
  more?: boolean;
  /** The IP ECN codepoint it arrives with (RFC 3168 §5). */
  ecn?: number;
}

/** The harness: a TcpProtocol and the scripted peer's view of one connection. */
export class Harness {
  readonly net = new CaptureNet();
  readonly ports: PortManager;
  readonly tcp: TcpProtocol;
  /** The peer's next sequence number. */
  peerNxt = 1_000_000;
  /** The stack's ISN as seen by the peer, and its next expected sequence number from the stack. */
  iss = 0;
  /** The stack's local port of the connection under test. */
  localPort = 0;
  /** The peer's port of the connection under test. */
  peerPort = PEER_PORT;
  /** The window the peer advertises by default (unscaled field). */
  peerWindow = 65535;

  /** `range` narrows the ephemeral ports (PortManager's), e.g. to one port, so that a test knows the next one. */
  constructor(config?: Partial<TcpConfig>, range?: { low: number; high: number }) {
    this.ports = new PortManager(this.net, range);
    this.tcp = new TcpProtocol(this.net, this.ports, config);
  }

  /** The clock. */
  get clock(): VirtualClock {
    return this.net.clock;
  }

  /** Delivers a segment from the peer and runs timers due now. */
  send(s: PeerSegment): void {
    const repr: TcpRepr = {
      srcPort: s.srcPort ?? this.peerPort,
      dstPort: s.dstPort ?? this.localPort,
      seq: s.seq ?? this.peerNxt,
      ack: s.ack ?? 0,
      flags: s.flags,
      window: s.window ?? this.peerWindow,
      urgentPointer: 0,
      options: s.options ?? {},
      payload: s.payload ?? new Uint8Array(0),
    };
    const buf = new Uint8Array(tcpHeaderLength(repr) + repr.payload.length);
    emitTcp(repr, buf, 0, REMOTE, LOCAL);
    const info: PacketInfo = { nicId: 1, src: REMOTE, dst: LOCAL, ttl: 64, tos: s.ecn ?? 0, broadcast: false, more: s.more };
    this.tcp.deliver(info, buf);
    this.clock.runDue();
  }

  /** Removes and returns the next segment the stack sent, or throws when there is none. */
  next(): TcpRepr {
    const s = this.net.sent.shift();
    if (!s) throw new Error('expected a segment, none was sent');
    return s.repr;
  }

  /** Whether segments are waiting to be checked. */
  get pending(): number {
    return this.net.sent.length;
  }

  /** Drops every captured segment. */
  clearSent(): void {
    this.net.sent.length = 0;
  }

  /**
   * Takes the next sent segment and returns a list of mismatches against `m` (empty when it matches); flags
   * must match exactly when given.
   */
  check(m: Match): { repr: TcpRepr | undefined; errors: string[] } {
    const s = this.net.sent.shift();
    if (!s) return { repr: undefined, errors: ['no segment was sent'] };
    const r = s.repr;
    const e: string[] = [];
    if (m.flags !== undefined && r.flags !== m.flags) e.push(`flags ${flagNames(r.flags)} ≠ ${flagNames(m.flags)}`);
    if (m.seq !== undefined && r.seq !== m.seq >>> 0) e.push(`seq ${r.seq} ≠ ${m.seq >>> 0}`);
    if (m.ack !== undefined && r.ack !== m.ack >>> 0) e.push(`ack ${r.ack} ≠ ${m.ack >>> 0}`);
    if (m.window !== undefined && r.window !== m.window) e.push(`window ${r.window} ≠ ${m.window}`);
    if (m.len !== undefined && r.payload.length !== m.len) e.push(`len ${r.payload.length} ≠ ${m.len}`);
    if (m.ecn !== undefined && s.ecn !== m.ecn) e.push(`ecn ${s.ecn} ≠ ${m.ecn}`);
    if (m.payload !== undefined && Buffer.compare(Buffer.from(r.payload), Buffer.from(m.payload)) !== 0) {
      e.push('payload differs');
    }
    for (const [k, v] of Object.entries(m.options ?? {})) {
      const got = (r.options as Record<string, unknown>)[k];
      if (JSON.stringify(got) !== JSON.stringify(v)) e.push(`option ${k} ${JSON.stringify(got)} ≠ ${JSON.stringify(v)}`);
    }
    if (e.length) e.push(`got: ${describe(r)}`);
    return { repr: r, errors: e };
  }

  /** Like check, but throws on mismatch (for set-up steps). */
  expect(m: Match): TcpRepr {
    const { repr, errors } = this.check(m);
    if (errors.length) throw new Error(errors.join('; '));
    return repr!;
  }

  /** Advances the clock by `ms`, firing due timers; what they send stays captured for expect(). */
  advance(ms: number): void {
    this.clock.advance(ms);
  }

  /** Throws unless nothing is sent within `ms` (the clock advances by `ms`). */
  expectNone(ms = 0): void {
    this.clock.advance(ms);
    if (this.net.sent.length) throw new Error(`expected nothing, got ${describe(this.net.sent[0]!.repr)}`);
  }

  /**
   * Opens a connection from the stack to the peer and completes the handshake; `peerOpts` are the SYN-ACK's
   * options (by default MSS 1460, SACK, timestamps, wscale 7).
   */
  connect(peerOpts: TcpOptions = { mss: 1460, sackPermitted: true, tsVal: 100, tsEcr: 0, wscale: 7 }): TcpEndpoint {
    const ep = this.tcp.newEndpoint(4);
    const r = ep.connect({ address: REMOTE, port: PEER_PORT });
    if (r !== Err.ConnectStarted) throw new Error(`connect returned ${r}`);
    const syn = this.expect({ flags: TCP_SYN });
    this.iss = syn.seq;
    this.localPort = syn.srcPort;
    const opts = { ...peerOpts };
    if (opts.tsVal !== undefined) opts.tsEcr = syn.options.tsVal;
    this.send({ flags: TCP_SYN | TCP_ACK, ack: seq.add(this.iss, 1), options: opts });
    this.peerNxt = seq.add(this.peerNxt, 1);
    this.expect({ flags: TCP_ACK, seq: this.iss + 1, ack: this.peerNxt });
    return ep;
  }

  /** Opens a listener on LISTEN_PORT. */
  listen(backlog = 8): TcpEndpoint {
    const l = this.tcp.newEndpoint(4);
    const e = l.bind({ address: new Uint8Array(4), port: LISTEN_PORT });
    if (e) throw new Error(`bind: ${e}`);
    const e2 = l.listen(backlog);
    if (e2) throw new Error(`listen: ${e2}`);
    this.localPort = LISTEN_PORT;
    return l;
  }

  /** Completes a passive open against `listener` from the peer's port `peerPort`; returns the accepted child. */
  accept(listener: TcpEndpoint, peerOpts: TcpOptions = { mss: 1460, sackPermitted: true, tsVal: 100, tsEcr: 0, wscale: 7 }): TcpEndpoint {
    this.send({ flags: TCP_SYN, options: peerOpts });
    const synAck = this.expect({ flags: TCP_SYN | TCP_ACK, ack: this.peerNxt + 1 });
    this.iss = synAck.seq;
    this.peerNxt = seq.add(this.peerNxt, 1);
    const ts = peerOpts.tsVal !== undefined ? { tsVal: peerOpts.tsVal + 1, tsEcr: synAck.options.tsVal! } : {};
    this.send({ flags: TCP_ACK, ack: seq.add(this.iss, 1), options: ts });
    const a = listener.accept();
    if ('errno' in a) throw new Error(`accept: ${a}`);
    return a.endpoint as TcpEndpoint;
  }

  /** Timestamp options echoing the stack's last TSval, for segments on a timestamped connection. */
  ts(last: TcpRepr, tsVal = 200): TcpOptions {
    return { tsVal, tsEcr: last.options.tsVal ?? 0 };
  }
}

/** Deterministic pseudo-random bytes (xorshift32 from `seed`), for transfers whose digest must catch any slip. */
export function seededBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Bytes 0..n-1 modulo 251 (a pattern that shows misplaced bytes). */
export function pattern(n: number, offset = 0): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i + offset) % 251;
  return b;
}

/**
 * Two whole stacks on a virtual clock, A at LOCAL and B at REMOTE, joined by an in-memory link of 1 ms each way:
 * for tests of what connections between two real stacks do and keep.
 */
export function netstackPair() {
  const clock = new VirtualClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, mtu: 1500, latencyMs: 1 });
  const a = new Netstack({ clock, seed: 1, dadTransmits: 0 });
  const b = new Netstack({ clock, seed: 2, dadTransmits: 0 });
  a.stack.addAddress(a.stack.addNic(la), parseSubnet('198.18.0.1/24')!);
  b.stack.addAddress(b.stack.addNic(lb), parseSubnet('198.18.0.2/24')!);
  return { clock, a, b };
}
