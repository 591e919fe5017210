/**
 * Port reservations shared by every transport (UDP, TCP, ICMP echo identifiers): Linux's bind-conflict rules
 * and RFC 6056 ephemeral port selection. One `PortManager` per stack; each protocol number has its own space.
 */
import { type Address, addressEqual, addressKey, isUnspecified } from '../addr.ts';
import { Err, type NetError } from '../errors.ts';
import { keyedHash32 } from '../hash.ts';
import type { NetworkLayer } from './protocol.ts';

/** A request to reserve a local port (bind, autobind or connect-time selection). */
export interface PortRequest {
  /** IANA protocol number: each protocol has its own port space. */
  readonly protocol: number;
  /** The local address; unspecified (0.0.0.0 or ::) means every local address. */
  readonly address: Address;
  /** The port; 0 picks an ephemeral port. */
  readonly port: number;
  /** The socket's family; an IPv6 socket bound to :: also covers IPv4 unless v6only. */
  readonly family: 4 | 6;
  /** IPV6_V6ONLY. */
  readonly v6only?: boolean;
  /** SO_REUSEADDR. */
  readonly reuseAddr?: boolean;
  /** SO_REUSEPORT. */
  readonly reusePort?: boolean;
  /** TCP only: a listening socket, whose SO_REUSEADDR does not let others share its port (Linux). */
  readonly listening?: boolean;
  /** SO_BINDTODEVICE: sockets bound to different NICs never conflict; 0 or undefined for none. */
  readonly nicId?: number;
  /** The peer for connect-time selection: reservations with different peers share a port (4-tuple unique). */
  readonly remote?: { readonly address: Address; readonly port: number };
  /** Identifies the reservation for release(); the reservation itself when undefined. */
  readonly owner?: object;
  /**
   * Connect-time selection: a reservation on the same 4-tuple whose owner this accepts does not clash (TCP's
   * TIME-WAIT that the new connection may take over, tcp_tw_reuse).
   */
  readonly mayTake?: (owner: object) => boolean;
}

/** Linux's default net.ipv4.ip_local_port_range. */
export const EPHEMERAL_LOW = 32768;
/** Linux's default net.ipv4.ip_local_port_range upper end. */
export const EPHEMERAL_HIGH = 60999;

/** The IPv4 and IPv6 parts of the address space a reservation covers: null none, '' any, else an address key. */
interface Coverage {
  v4: string | null;
  v6: string | null;
}

/**
 * One reservation. Its coverage and peer key are worked out when a bind or connect on the same port first compares
 * with it: an accepted connection's (one per connection, held until it is closed) is usually never compared, and the
 * two strings and the object cost each idle connection ~100 B of heap.
 */
class Reservation {
  private coverMemo: Coverage | null = null;
  private remoteKeyMemo: string | null | undefined = undefined;

  constructor(
    readonly req: PortRequest,
    readonly owner: object,
  ) {}

  get cover(): Coverage {
    return (this.coverMemo ??= coverage(this.req));
  }

  get remoteKey(): string | null {
    if (this.remoteKeyMemo === undefined) this.remoteKeyMemo = remoteKeyOf(this.req);
    return this.remoteKeyMemo;
  }
}

/**
 * The reservations on one port, by owner: a listener's port holds every accepted connection (TIME-WAIT
 * included, tens of thousands under a web load), so releasing one must not walk the others.
 */
type PortSlot = Map<object, Reservation>;

const TCP = 6;
// RFC 6056 §3.3.4 leaves the table size open; a few thousand slots keep unrelated peers apart.
const TABLE_LENGTH = 4096;

/** Whether a 16-byte address is IPv4-mapped (::ffff:a.b.c.d, RFC 4291 §2.5.5.2). */
export function isV4Mapped(a: Address): boolean {
  if (a.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

/** The IPv4 address inside an IPv4-mapped one, or the address itself when it is not mapped. */
export function unmapV4(a: Address): Address {
  return isV4Mapped(a) ? a.subarray(12, 16) : a;
}

/** The IPv4-mapped IPv6 form ::ffff:a.b.c.d of an IPv4 address (RFC 4291 §2.5.5.2). */
export function mapV4(a: Address): Address {
  if (a.length === 16) return a;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(a, 12);
  return out;
}

function coverage(r: PortRequest): Coverage {
  const a = unmapV4(r.address);
  if (a.length === 4) return { v4: isUnspecified(a) ? '' : addressKey(a), v6: null };
  if (!isUnspecified(a)) return { v4: null, v6: addressKey(a) };
  // A dual-stack wildcard also owns the IPv4 wildcard.
  return { v4: r.family === 6 && r.v6only ? null : '', v6: '' };
}

function partOverlap(a: string | null, b: string | null): boolean {
  return a !== null && b !== null && (a === '' || b === '' || a === b);
}

function remoteKeyOf(r: PortRequest): string | null {
  return r.remote ? `${addressKey(unmapV4(r.remote.address))}/${r.remote.port}` : null;
}

/** Tracks which local ports each protocol has in use and picks ephemeral ones. */
export class PortManager {
  private readonly spaces = new Map<number, Map<number, PortSlot>>();
  private readonly perturb: Uint32Array;
  private low = EPHEMERAL_LOW;
  private high = EPHEMERAL_HIGH;
  // This stack's share of the ephemeral ports: those ≡ shareIndex (mod shareOf); all of them when shareOf is 1.
  private shareOf = 1;
  private shareIndex = 0;

  /** `range` overrides the ephemeral range (inclusive), e.g. to test exhaustion. */
  constructor(
    private readonly net: NetworkLayer,
    range?: { low: number; high: number },
  ) {
    if (range) this.setEphemeralRange(range.low, range.high);
    // RFC 6056 §3.3.4: the table starts at random values so that the first port per bucket is unpredictable.
    this.perturb = new Uint32Array(TABLE_LENGTH);
    for (let i = 0; i < TABLE_LENGTH; i++) this.perturb[i] = net.random32() & 0xffff;
  }

  /** The ephemeral ports, inclusive (net.ipv4.ip_local_port_range). */
  get ephemeralRange(): { low: number; high: number } {
    return { low: this.low, high: this.high };
  }

  /** Sets the ephemeral ports (net.ipv4.ip_local_port_range); ports reserved already stay as they are. */
  setEphemeralRange(low: number, high: number): void {
    if (!(Number.isInteger(low) && Number.isInteger(high) && low >= 1 && low <= high && high <= 65535)) throw new RangeError('bad port range');
    this.low = low;
    this.high = high;
  }

  /**
   * Takes ephemeral ports only from residue class `index` modulo `of`: the stack is shard `index` of `of`, whose
   * link steers each frame to the shard its local port names (lib/packet-filter.ts steerProgram), so a connection
   * this shard opens gets its replies here. Ports asked for by number are not restricted.
   */
  setEphemeralShare(of: number, index: number): void {
    if (!(Number.isInteger(of) && Number.isInteger(index) && of >= 1 && of <= 256 && index >= 0 && index < of)) {
      throw new RangeError(`bad ephemeral share ${index} of ${of}`);
    }
    this.shareOf = of;
    this.shareIndex = index;
  }

  /** This stack's share of the ephemeral ports (setEphemeralShare). */
  get ephemeralShare(): { of: number; index: number } {
    return { of: this.shareOf, index: this.shareIndex };
  }

  /**
   * Reserves the requested port, or an ephemeral one when port is 0 (RFC 6056 §3.3.4 when the remote is known,
   * a random start otherwise); returns the port, Err.AddressInUse or Err.NoPortAvailable.
   */
  reserve(r: PortRequest): number | NetError {
    if (!Number.isInteger(r.port) || r.port < 0 || r.port > 65535) return Err.InvalidArgument;
    if (r.port !== 0) {
      if (this.conflict(r.protocol, r.port, r, false)) return Err.AddressInUse;
      this.add(r, r.port);
      return r.port;
    }
    const port = this.pickEphemeral(r);
    if (port === 0) return Err.NoPortAvailable;
    this.add(r, port);
    return port;
  }

  /**
   * Adds a reservation on the (nonzero) port of an existing one without checking for conflicts: an accepted
   * connection shares its listener's port and holds it until it is closed (Linux's __inet_inherit_port).
   */
  inherit(r: PortRequest): void {
    if (!(Number.isInteger(r.port) && r.port > 0 && r.port <= 65535)) throw new RangeError('inherit needs a port');
    this.add(r, r.port);
  }

  /** Releases the reservation of `owner` (any one when undefined) on protocol/port with this exact local address. */
  release(protocol: number, address: Address, port: number, owner?: object): void {
    const space = this.spaces.get(protocol);
    const slot = space?.get(port);
    if (!space || !slot) return;
    // Local addresses are compared as bytes: a key string for them cost every connection one more (issue 13).
    let found: object | undefined;
    const direct = owner === undefined ? undefined : slot.get(owner);
    if (direct && addressEqual(direct.req.address, address)) {
      found = owner;
    } else {
      // Rare: no owner given, or one owner holding several reservations on this port (see add()).
      for (const [k, e] of slot) {
        if ((owner === undefined || e.owner === owner) && addressEqual(e.req.address, address)) {
          found = k;
          break;
        }
      }
    }
    if (found === undefined) return;
    slot.delete(found);
    if (slot.size === 0) space.delete(port);
  }

  /**
   * Hands `from`'s reservation on protocol/port with this exact local address to `to` (a connection's port
   * passing to its compact TIME-WAIT): what release() then inherit() of the same request with `flags` would
   * leave, without building the reservation's keys again. Returns false, changing nothing, when `from` holds
   * none or it was made with other options.
   */
  transfer(protocol: number, address: Address, port: number, from: object, to: object, flags: { v6only: boolean; reuseAddr: boolean; reusePort: boolean }): boolean {
    const slot = this.spaces.get(protocol)?.get(port);
    const e = slot?.get(from);
    if (!slot || !e || e.owner !== from || !addressEqual(e.req.address, address) || slot.has(to)) return false;
    const r = e.req;
    if (!!r.v6only !== flags.v6only || !!r.reuseAddr !== flags.reuseAddr || !!r.reusePort !== flags.reusePort) return false;
    slot.delete(from);
    // The request names its owner too: `from` must not stay reachable through it.
    slot.set(to, new Reservation({ ...e.req, owner: to }, to));
    return true;
  }

  /** Whether reserving `r` (with its nonzero port) would succeed now. */
  isAvailable(r: PortRequest): boolean {
    return r.port > 0 && r.port <= 65535 && !this.conflict(r.protocol, r.port, r, false);
  }

  /** Number of reservations of a protocol on a port, for tests and diagnostics. */
  count(protocol: number, port: number): number {
    return this.spaces.get(protocol)?.get(port)?.size ?? 0;
  }

  private add(r: PortRequest, port: number): void {
    // Every caller passes a literal of its own: it is kept as it is unless the port was picked here.
    const req = r.port === port ? r : { ...r, port };
    const owner = r.owner ?? req;
    const res = new Reservation(req, owner);
    let space = this.spaces.get(r.protocol);
    if (!space) this.spaces.set(r.protocol, (space = new Map()));
    let slot = space.get(port);
    if (!slot) space.set(port, (slot = new Map()));
    // An owner already holding this port keys its second reservation by the reservation itself.
    slot.set(slot.has(owner) ? res : owner, res);
  }

  /**
   * Linux's bind-conflict rules (inet_csk_bind_conflict, udp_lib_lport_inuse); `fresh` ignores reuse options,
   * so that ephemeral selection hands out ports nobody else holds.
   */
  private conflict(protocol: number, port: number, r: PortRequest, fresh: boolean): boolean {
    const slot = this.spaces.get(protocol)?.get(port);
    if (!slot) return false;
    const cover = coverage(r);
    const rk = remoteKeyOf(r);
    for (const e of slot.values()) {
      if (r.owner !== undefined && e.owner === r.owner) continue;
      if (!partOverlap(cover.v4, e.cover.v4) && !partOverlap(cover.v6, e.cover.v6)) continue;
      if (r.nicId && e.req.nicId && r.nicId !== e.req.nicId) continue;
      // Two connected reservations only clash on the same 4-tuple (RFC 6056 §2.2).
      if (rk !== null && e.remoteKey !== null) {
        if (rk === e.remoteKey && !r.mayTake?.(e.owner)) return true;
        continue;
      }
      if (fresh) return true;
      if (r.reusePort && e.req.reusePort) continue;
      // Only the existing socket's listening counts: a new listener with SO_REUSEADDR may share the port with
      // bound, connected or TIME-WAIT sockets that set it too (Linux's inet_bind_conflict checks sk2's state).
      if (r.reuseAddr && e.req.reuseAddr && !(protocol === TCP && e.req.listening)) continue;
      return true;
    }
    return false;
  }

  private pickEphemeral(r: PortRequest): number {
    // Candidate i is port first + i * step: the ports of the range in this stack's residue class.
    const step = this.shareOf;
    const first = this.low + ((this.shareIndex - (this.low % step) + step) % step);
    if (first > this.high) return 0;
    const n = Math.floor((this.high - first) / step) + 1;
    if (r.remote) {
      // RFC 6056 §3.3.4 (Algorithm 4): a keyed offset per (local, remote, remote port) plus a per-bucket counter.
      const local = unmapV4(r.address);
      const remote = unmapV4(r.remote.address);
      const secret = this.net.secret;
      const offset = keyedHash32(secret, 1, r.protocol, local, remote, r.remote.port);
      const index = keyedHash32(secret, 2, r.protocol, local, remote, r.remote.port) % TABLE_LENGTH;
      const base = this.perturb[index]!;
      for (let count = 0; count < n; count++) {
        const port = first + ((offset + base + count) % n) * step;
        if (!this.conflict(r.protocol, port, r, true)) {
          this.perturb[index] = base + count + 1;
          return port;
        }
      }
      this.perturb[index] = base + n;
      return 0;
    }
    const start = this.net.random32() % n;
    for (let i = 0; i < n; i++) {
      const port = first + ((start + i) % n) * step;
      if (!this.conflict(r.protocol, port, r, true)) return port;
    }
    return 0;
  }
}
