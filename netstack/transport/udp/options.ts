/**
 * Socket options of datagram sockets by their Linux names (SOL_SOCKET, SOL_IP, SOL_IPV6), with Linux's ranges,
 * defaults and quirks: SO_RCVBUF/SO_SNDBUF are doubled and clamped, TTL −1 means the default, IPV6_* options
 * exist only on IPv6 sockets, anything unknown is ENOPROTOOPT.
 */
import { type Address, isMulticast } from '../../addr.ts';
import { DEFAULT_TTL, InetOptions } from '../inetopts.ts';
import { Err, type NetError } from '../../errors.ts';
import type { Family, OptionValue } from '../../socket.ts';
import type { SendOptions } from '../protocol.ts';

/** Linux's net.core.rmem_default / wmem_default and rmem_max / wmem_max. */
export const DEFAULT_BUFFER = 212992;
/** Linux's SOCK_MIN_RCVBUF on 64-bit. */
export const MIN_RCVBUF = 2304;
/** Linux's SOCK_MIN_SNDBUF on 64-bit. */
export const MIN_SNDBUF = 4608;

// Options that only record a flag for the reader of control messages.
// IP_RECVOPTS and IP_RETOPTS give a control message only for a datagram that carried IP options
// (ip_cmsg_recv_opts/_retopts); the stack keeps none, so they are flags that never give one (iputils ping sets them).
const FLAGS4 = new Set(['IP_RECVTOS', 'IP_PKTINFO', 'IP_RECVTTL', 'IP_RECVORIGDSTADDR', 'IP_RECVERR', 'IP_RECVOPTS', 'IP_RETOPTS']);
const FLAGS6 = new Set([
  'IPV6_RECVPKTINFO', 'IPV6_RECVTCLASS', 'IPV6_RECVHOPLIMIT', 'IPV6_RECVORIGDSTADDR', 'IPV6_RECVERR',
  // RFC 2292's names, which older programs (busybox ping) still use: their own flags and cmsg types in Linux.
  'IPV6_2292PKTINFO', 'IPV6_2292HOPLIMIT',
]);
const STAMPS = new Set(['SO_TIMESTAMP', 'SO_TIMESTAMPNS', 'SO_TIMESTAMP_NEW', 'SO_TIMESTAMPNS_NEW']);

/**
 * Which receive timestamp a socket asked for, as Linux's SOCK_RCVTSTAMP / SOCK_RCVTSTAMPNS / SOCK_TSTAMP_NEW
 * flags say: microseconds (SO_TIMESTAMP*) or nanoseconds (SO_TIMESTAMPNS*), in the old or the _NEW cmsg type.
 */
export interface ReceiveStamp {
  readonly ns: boolean;
  readonly new: boolean;
}

/** The option state of one datagram socket. */
export class DatagramOptions {
  reuseAddr = false;
  reusePort = false;
  broadcast = false;
  rcvbuf = DEFAULT_BUFFER;
  sndbuf = DEFAULT_BUFFER;
  /** SO_BINDTODEVICE as a NIC id; 0 for none. */
  boundNic = 0;
  v6only = false;
  private ttl = -1;
  private tos = 0;
  private mcastTtl = 1;
  /** IP_MULTICAST_LOOP and IPV6_MULTICAST_LOOP: this host's members of a group get our datagrams to it too. */
  private mcastLoop = true;
  private mcastLoop6 = true;
  private hops = -1;
  private mcastHops = 1;
  private tclass = 0;
  private readonly flags = new Set<string>();
  private stamp: ReceiveStamp | undefined;
  /**
   * IP_MTU_DISCOVER and IPV6_MTU_DISCOVER as set (IP_PMTUDISC_WANT by default), kept for getsockopt: datagrams leave
   * fragmentable whatever they say (see sendOptions).
   */
  private pmtudisc = 1;
  private pmtudisc6 = 1;
  /** Options kept for every inet socket (inetopts.ts), asked after this socket's own. */
  private readonly inet = new InetOptions();

  constructor(
    readonly family: Family,
    readonly protocol: number,
  ) {}

  /** IP_FREEBIND (or IPV6_FREEBIND): a bind to an address no interface holds is allowed. */
  get freebind(): boolean {
    return this.inet.freebind;
  }

  /** Whether a flag option (IP_PKTINFO, IPV6_RECVPKTINFO, ...) is on. */
  flag(name: string): boolean {
    return this.flags.has(name);
  }

  /** The receive timestamp asked for with SO_TIMESTAMP and its kin, or undefined for none. */
  get receiveStamp(): ReceiveStamp | undefined {
    return this.stamp;
  }

  /** getsockopt; `takeError` serves SO_ERROR. */
  get(name: string, takeError: () => NetError | undefined): OptionValue | NetError {
    switch (name) {
      case 'SO_REUSEADDR':
        return +this.reuseAddr;
      case 'SO_REUSEPORT':
        return +this.reusePort;
      case 'SO_BROADCAST':
        return +this.broadcast;
      case 'SO_RCVBUF':
        return this.rcvbuf;
      case 'SO_SNDBUF':
        return this.sndbuf;
      case 'SO_TYPE':
        return 2; // SOCK_DGRAM
      case 'SO_PROTOCOL':
        return this.protocol;
      case 'SO_DOMAIN':
        return this.family === 4 ? 2 : 10; // AF_INET, AF_INET6
      case 'SO_ERROR':
        return takeError()?.errno ?? 0;
      case 'SO_BINDTODEVICE':
        return this.boundNic;
      case 'IP_TTL':
        return this.ttl < 0 ? DEFAULT_TTL : this.ttl;
      case 'IP_TOS':
        return this.tos;
      case 'IP_MULTICAST_TTL':
        return this.mcastTtl;
      case 'IP_MULTICAST_LOOP':
        return +this.mcastLoop;
    }
    if (STAMPS.has(name)) return +this.stampIs(name);
    if (FLAGS4.has(name)) return +this.flags.has(name);
    if (name === 'IP_MTU_DISCOVER') return this.pmtudisc;
    if (name === 'IPV6_MTU_DISCOVER' && this.family === 6) return this.pmtudisc6;
    const kept = this.inet.get(name, this.family);
    if (kept !== undefined) return kept;
    if (this.family !== 6) return Err.ProtocolNotAvailable;
    switch (name) {
      case 'IPV6_V6ONLY':
        return +this.v6only;
      case 'IPV6_UNICAST_HOPS':
        return this.hops < 0 ? DEFAULT_TTL : this.hops;
      case 'IPV6_MULTICAST_HOPS':
        return this.mcastHops;
      case 'IPV6_MULTICAST_LOOP':
        return +this.mcastLoop6;
      case 'IPV6_TCLASS':
        return this.tclass;
    }
    if (FLAGS6.has(name)) return +this.flags.has(name);
    return Err.ProtocolNotAvailable;
  }

  /** setsockopt; `bound` says whether the socket has a port (IPV6_V6ONLY is then fixed). */
  set(name: string, value: OptionValue, bound: boolean): NetError | undefined {
    const v = typeof value === 'boolean' ? +value : value;
    if (typeof v !== 'number' || !Number.isInteger(v)) return Err.InvalidArgument;
    const ranged = (lo: number, hi: number, set: (x: number) => void) => {
      if (v < lo || v > hi) return Err.InvalidArgument;
      set(v);
      return undefined;
    };
    // sock_setsockopt: clamp to rmem_max/wmem_max (negative counts as huge), then double for bookkeeping.
    const buffer = (min: number) => Math.max(min, 2 * (v < 0 ? DEFAULT_BUFFER : Math.min(v, DEFAULT_BUFFER)));
    switch (name) {
      case 'SO_REUSEADDR':
        this.reuseAddr = v !== 0;
        return undefined;
      case 'SO_REUSEPORT':
        this.reusePort = v !== 0;
        return undefined;
      case 'SO_BROADCAST':
        this.broadcast = v !== 0;
        return undefined;
      case 'SO_RCVBUF':
        this.rcvbuf = buffer(MIN_RCVBUF);
        return undefined;
      case 'SO_SNDBUF':
        this.sndbuf = buffer(MIN_SNDBUF);
        return undefined;
      case 'SO_BINDTODEVICE':
        return ranged(0, 0x7fffffff, (x) => (this.boundNic = x));
      case 'IP_TTL':
        return v === -1 ? ((this.ttl = -1), undefined) : ranged(1, 255, (x) => (this.ttl = x));
      case 'IP_TOS':
        this.tos = v & 0xff;
        return undefined;
      case 'IP_MULTICAST_TTL':
        return ranged(-1, 255, (x) => (this.mcastTtl = x < 0 ? 1 : x));
      case 'IP_MULTICAST_LOOP':
        this.mcastLoop = v !== 0;
        return undefined;
    }
    if (STAMPS.has(name)) {
      // sock_set_timestamp: each of the four turns the stamp on in its own unit and cmsg type; off is off for all.
      this.stamp = v !== 0 ? { ns: name.startsWith('SO_TIMESTAMPNS'), new: name.endsWith('_NEW') } : undefined;
      return undefined;
    }
    if (FLAGS4.has(name)) return this.setFlag(name, v);
    // IP_PMTUDISC_DONT … IP_PMTUDISC_OMIT.
    if (name === 'IP_MTU_DISCOVER') return ranged(0, 5, (x) => (this.pmtudisc = x));
    if (name === 'IPV6_MTU_DISCOVER' && this.family === 6) return ranged(0, 5, (x) => (this.pmtudisc6 = x));
    const kept = this.inet.set(name, value, this.family);
    if (kept !== 'unknown') return kept;
    if (this.family !== 6) return Err.ProtocolNotAvailable;
    switch (name) {
      case 'IPV6_V6ONLY':
        if (bound) return Err.InvalidArgument;
        this.v6only = v !== 0;
        return undefined;
      case 'IPV6_UNICAST_HOPS':
        return ranged(-1, 255, (x) => (this.hops = x));
      case 'IPV6_MULTICAST_HOPS':
        return ranged(-1, 255, (x) => (this.mcastHops = x < 0 ? 1 : x));
      case 'IPV6_MULTICAST_LOOP':
        // Linux's do_ipv6_setsockopt: a boolean, only 0 or 1.
        return ranged(0, 1, (x) => (this.mcastLoop6 = x === 1));
      case 'IPV6_TCLASS':
        return ranged(-1, 255, (x) => (this.tclass = x < 0 ? 0 : x));
    }
    if (FLAGS6.has(name)) return this.setFlag(name, v);
    // SO_TYPE, SO_PROTOCOL, SO_DOMAIN and SO_ERROR are read-only: Linux answers ENOPROTOOPT.
    return Err.ProtocolNotAvailable;
  }

  /** TTL/hop limit and TOS/traffic class for a packet to `dst`; IPv4 fragmentation stays allowed. */
  sendOptions(dst: Address): SendOptions {
    const v4 = dst.length === 4;
    const mc = isMulticast(dst);
    const ttl = v4 ? (mc ? this.mcastTtl : this.ttl) : mc ? this.mcastHops : this.hops;
    const o: SendOptions = { ttl: ttl < 0 ? undefined : ttl, tos: v4 ? this.tos : this.tclass, dontFragment: false };
    if (mc && !(v4 ? this.mcastLoop : this.mcastLoop6)) o.multicastLoop = false;
    return o;
  }

  /**
   * What sock_getsockopt answers for one of the four: on in the unit and cmsg type last chosen, and
   * SO_TIMESTAMP_NEW also after SO_TIMESTAMPNS_NEW (it tests SOCK_RCVTSTAMP, which both set, and SOCK_TSTAMP_NEW).
   */
  private stampIs(name: string): boolean {
    const s = this.stamp;
    if (!s || s.new !== name.endsWith('_NEW')) return false;
    return name === 'SO_TIMESTAMP_NEW' || s.ns === name.startsWith('SO_TIMESTAMPNS');
  }

  private setFlag(name: string, v: number): undefined {
    if (v !== 0) this.flags.add(name);
    else this.flags.delete(name);
    return undefined;
  }
}
