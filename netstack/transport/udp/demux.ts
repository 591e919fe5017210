/**
 * Demultiplexing of received datagrams to bound sockets, shared by UDP and ICMP echo sockets: the most specific
 * match wins (connected 4-tuple, then bound address, then wildcard), as Linux's compute_score ranks them;
 * SO_REUSEPORT groups spread flows by a keyed hash; broadcasts and multicasts go to every match.
 */
import { type Address, addressEqual, isUnspecified } from '../../addr.ts';
import { keyedHash32 } from '../../hash.ts';

/** What the demuxer needs to know about a bound socket. */
export interface DemuxEntry {
  readonly family: 4 | 6;
  /** The bound port (UDP) or echo identifier (ICMP); nonzero while in a table. */
  readonly localPort: number;
  /** Bound address in unmapped form: 4 bytes for IPv4 (mapped too), 16 for IPv6; all-zero = wildcard. */
  readonly bindAddr: Address;
  /** IPV6_V6ONLY: a 16-byte wildcard then excludes IPv4. */
  readonly v6only: boolean;
  /** SO_BINDTODEVICE; 0 for any NIC. */
  readonly boundNic: number;
  /** The connected peer (unmapped), or null. */
  readonly peer: { readonly address: Address; readonly port: number } | null;
  readonly reusePort: boolean;
}

/** The addressing of one received datagram: its source, destination and arrival NIC. */
export interface FlowKey {
  readonly src: Address;
  readonly srcPort: number;
  readonly dst: Address;
  readonly dstPort: number;
  readonly nicId: number;
}

/** Bound sockets by local port. */
export class DemuxTable<E extends DemuxEntry> {
  private readonly byPort = new Map<number, E[]>();

  /** `matchPeer` is false for ICMP echo sockets: Linux's ping_lookup ignores the connected peer. */
  constructor(
    private readonly secret: Uint8Array,
    private readonly matchPeer: boolean,
  ) {}

  /** Adds a socket under its current localPort; newer sockets win score ties, as in Linux's hash chains. */
  add(e: E): void {
    const list = this.byPort.get(e.localPort);
    if (list) list.push(e);
    else this.byPort.set(e.localPort, [e]);
  }

  /** Removes a socket filed under `port`. */
  remove(e: E, port: number): void {
    const list = this.byPort.get(port);
    if (!list) return;
    const i = list.indexOf(e);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byPort.delete(port);
  }

  /** Every socket bound to a port (for tests and diagnostics). */
  bound(port: number): readonly E[] {
    return this.byPort.get(port) ?? [];
  }

  /** The one socket a unicast datagram goes to, or null. */
  lookup(k: FlowKey): E | null {
    const list = this.byPort.get(k.dstPort);
    if (!list) return null;
    let best: E | null = null;
    let bestScore = -1;
    let group: E[] | null = null;
    for (const e of list) {
      const s = this.score(e, k);
      if (s < 0) continue;
      if (s > bestScore) {
        bestScore = s;
        best = e;
        group = this.groupable(e) ? [e] : null;
      } else if (s === bestScore) {
        best = e;
        if (group && this.groupable(e) && addressEqual(e.bindAddr, group[0]!.bindAddr)) group.push(e);
        else group = this.groupable(e) ? [e] : null;
      }
    }
    if (group && group.length > 1) {
      // Linux's reuseport_select_sock: a flow hash keeps one flow on one socket.
      const h = keyedHash32(this.secret, 3, k.src, k.dst, ((k.srcPort << 16) | k.dstPort) >>> 0);
      return group[h % group.length]!;
    }
    return best;
  }

  /** Every socket a broadcast or multicast datagram goes to (RFC 1122 §4.1.3.5 lets every listener have it). */
  lookupAll(k: FlowKey): E[] {
    const list = this.byPort.get(k.dstPort);
    if (!list) return [];
    return list.filter((e) => this.score(e, k) >= 0);
  }

  /** Connected sockets leave their reuseport group's flow spreading, as in Linux. */
  private groupable(e: E): boolean {
    return e.reusePort && (e.peer === null || !this.matchPeer);
  }

  /** Linux compute_score: -1 for no match, higher for more specific matches. */
  private score(e: E, k: FlowKey): number {
    const v4 = k.dst.length === 4;
    let s: number;
    if (v4) {
      if (e.family === 4) s = 2;
      else if (e.bindAddr.length === 4 || !e.v6only) s = 1;
      else return -1;
    } else {
      if (e.family !== 6 || e.bindAddr.length !== 16) return -1;
      s = 2;
    }
    if (!isUnspecified(e.bindAddr)) {
      if (e.bindAddr.length !== k.dst.length || !addressEqual(e.bindAddr, k.dst)) return -1;
      s += 4;
    }
    if (e.peer && this.matchPeer) {
      if (!addressEqual(e.peer.address, k.src)) return -1;
      s += 4;
      if (e.peer.port !== 0) {
        if (e.peer.port !== k.srcPort) return -1;
        s += 4;
      }
    }
    // nicId 0 means "unknown" (ICMP errors): a device-bound socket still matches.
    if (e.boundNic !== 0 && k.nicId !== 0) {
      if (e.boundNic !== k.nicId) return -1;
      s += 4;
    }
    return s;
  }
}
