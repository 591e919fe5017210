/**
 * The whole netstack in one object: the network layer (`Stack`) with every transport registered on it
 * (UDP, ICMP echo sockets, TCP) sharing one port manager, and `socket()` as Linux's inet_create maps
 * (family, type, protocol) to a transport endpoint. The CLI, the Sentry and the Node adapter start here.
 */
import { Err, type NetError } from './errors.ts';
import type { Endpoint, Family, SocketType } from './socket.ts';
import { Stack, type StackOptions } from './stack.ts';
import { SysctlTable } from './sysctl.ts';
import { PortManager } from './transport/ports.ts';
import { PROTO_TCP } from './transport/protocol.ts';
import { RawProtocol } from './transport/raw/protocol.ts';
import { TcpProtocol } from './transport/tcp/protocol.ts';
import { type DatagramTransports, installDatagramTransports, newDatagramEndpoint } from './transport/udp/index.ts';

/** Options of a Netstack: the Stack's, plus TCP's configuration. */
export interface NetstackOptions extends StackOptions {
  tcp?: ConstructorParameters<typeof TcpProtocol>[2];
  /** The ephemeral port range, inclusive (Linux's net.ipv4.ip_local_port_range; 32768–60999 by default). */
  ephemeralPorts?: { low: number; high: number };
  /**
   * The stack is shard `index` of `of` on one link whose frames are steered by local port (lib/packet-filter.ts
   * steerProgram): its ephemeral ports (and ICMP echo identifiers) come only from residue class `index` mod `of`.
   */
  ephemeralShare?: { of: number; index: number };
}

/** A stack with all its transports. */
export class Netstack {
  readonly stack: Stack;
  readonly ports: PortManager;
  readonly datagram: DatagramTransports;
  readonly tcp: TcpProtocol;
  /** Raw ICMP/ICMPv6 sockets, offered every packet of their protocol the stack receives. */
  readonly raw: RawProtocol;
  /** The stack's settings by Linux's sysctl names (`net.ipv4.tcp_sack`, ...). */
  readonly sysctl: SysctlTable;
  private readonly closing = new AbortController();

  constructor(opts: NetstackOptions) {
    this.stack = new Stack(opts);
    this.ports = new PortManager(this.stack, opts.ephemeralPorts);
    if (opts.ephemeralShare) this.ports.setEphemeralShare(opts.ephemeralShare.of, opts.ephemeralShare.index);
    this.datagram = installDatagramTransports(this.stack, this.ports);
    this.tcp = new TcpProtocol(this.stack, this.ports, opts.tcp);
    this.stack.registerTransport(this.tcp);
    this.raw = new RawProtocol(this.stack);
    this.stack.setRawDispatcher(this.raw);
    this.sysctl = new SysctlTable(this.tcp.config, (fields) => this.tcp.configure(fields), this.ports);
  }

  /**
   * socket(family, type, protocol): stream gives TCP (protocol 0 or 6), dgram gives UDP or a ping socket, raw a
   * raw ICMP (IPv4) or ICMPv6 (IPv6) socket; anything else Err.UnknownProtocol (EPROTONOSUPPORT) as Linux answers.
   * Whether the caller may have a raw socket (CAP_NET_RAW) is the Sentry's to decide, not the stack's.
   */
  socket(family: Family, type: SocketType, protocol = 0): Endpoint | NetError {
    if (type === 'stream') {
      if (protocol !== 0 && protocol !== PROTO_TCP) return Err.UnknownProtocol;
      return this.tcp.newEndpoint(family);
    }
    if (type === 'dgram') return newDatagramEndpoint(this.datagram, family, protocol);
    if (type === 'raw') return this.raw.newEndpoint(family, protocol);
    return Err.NotSupported;
  }

  /** Every counter of the stack and its transports, as "group.field" → value. */
  counters(): Record<string, number> {
    return this.stack.stats.snapshot();
  }

  /** Aborted by close(): the Node adapter's sockets on this stack then stop holding the event loop. */
  get closed(): AbortSignal {
    return this.closing.signal;
  }

  /** Stops every timer; the links are the caller's to close. */
  close(): void {
    this.stack.close();
    this.closing.abort();
  }
}
