/**
 * What `serve` and `run` share once they hold a host link: a netstack on that link (optionally impaired and
 * captured to a pcap file), addressed and routed, its IPv6 addresses past DAD, and every step undone in reverse
 * order by the caller's undo list.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { NodeClock } from '../lib/clock.ts';
import { PcapFileSink } from '../lib/pcapfile.ts';
import { type Address, type Subnet, formatSubnet, isV4, parseSubnet } from '../netstack/addr.ts';
import type { Clock } from '../netstack/clock.ts';
import type { LinkEndpoint } from '../netstack/link/endpoint.ts';
import { ImpairEndpoint, type ImpairSpec } from '../netstack/link/impair.ts';
import { LoopbackEndpoint } from '../netstack/link/loopback.ts';
import { SnifferEndpoint } from '../netstack/link/sniffer.ts';
import { Netstack } from '../netstack/netstack.ts';
import { CliError } from './main.ts';

/** How the stack is put on the link. */
export interface StackOnLinkOptions {
  /** The NIC's name (the interface's). */
  name: string;
  /** Addresses of the NIC. */
  addresses: Subnet[];
  /** Routes through the NIC; on-link ones (no gateway) come with the addresses and are skipped. */
  routes?: { destination: Subnet; gateway?: Address }[];
  /** Default gateways (one per family at most). */
  gateways?: Address[];
  impair?: ImpairSpec;
  /** Record every frame of the host link, in and out, to this pcap file. */
  pcap?: string;
  /** Also give the stack a loopback NIC with 127.0.0.1/8 and ::1/128, as a program's own `lo`. */
  loopback?: boolean;
  /**
   * IPv6 DAD probes per address (default the stack's, 1). 0 on a veth we made ourselves: nobody else is on it,
   * and waiting a second for DAD would dominate a sandbox's start-up.
   */
  dadTransmits?: number;
  /** The stack is shard `index` of `of` on a link steered by local port: its share of ephemeral ports (Netstack). */
  ephemeralShare?: { of: number; index: number };
}

/** The stack and what sits between it and the host link. */
export interface StackOnLink {
  readonly netstack: Netstack;
  /** The link the stack's NIC is attached to (the host link, or the sniffer/impairment wrapping it). */
  readonly link: LinkEndpoint | undefined;
  readonly impair: ImpairEndpoint | undefined;
}

/** A clock whose times are wall-clock milliseconds, for pcap timestamps; timers are the stack clock's. */
function wallClock(clock: Clock): Clock {
  const offset = performance.timeOrigin;
  return { now: () => offset + clock.now(), schedule: (ms, fn) => clock.schedule(ms, fn) };
}

/**
 * Builds a netstack on `host` (none: loopback only, which needs `loopback`); pushes onto `undo` what takes it
 * down again. Throws CliError with one line when an address or route is refused or an IPv6 address is a duplicate.
 */
export async function stackOnLink(host: LinkEndpoint, opts: StackOnLinkOptions, undo: (() => void)[]): Promise<StackOnLink & { link: LinkEndpoint }>;
export async function stackOnLink(host: LinkEndpoint | undefined, opts: StackOnLinkOptions, undo: (() => void)[]): Promise<StackOnLink>;
export async function stackOnLink(host: LinkEndpoint | undefined, opts: StackOnLinkOptions, undo: (() => void)[]): Promise<StackOnLink> {
  const clock = new NodeClock();
  let link: LinkEndpoint | undefined = host;
  const impair = link && opts.impair ? new ImpairEndpoint(link, clock, opts.impair) : undefined;
  if (impair) link = impair;
  if (link && opts.pcap) {
    const sink = new PcapFileSink(opts.pcap);
    undo.push(() => sink.close());
    link = new SnifferEndpoint(link, { clock: wallClock(clock), out: sink.sink });
  }

  const netstack = new Netstack({
    clock,
    seed: randomInt(2 ** 31),
    secret: randomBytes(16),
    dadTransmits: opts.dadTransmits,
    ephemeralShare: opts.ephemeralShare,
  });
  // The clock goes with the stack: TCP's own timers (a connection's TIME-WAIT, retransmissions) outlive
  // Stack.close and would hold the event loop for up to a minute after the stack is gone.
  undo.push(() => {
    netstack.close();
    clock.dispose();
  });
  if (opts.loopback) {
    const lo = netstack.stack.addNic(new LoopbackEndpoint({ clock }), { name: 'lo' });
    for (const a of ['127.0.0.1/8', '::1/128']) netstack.stack.addAddress(lo, parseSubnet(a)!);
  }
  if (!link) return { netstack, link, impair };

  const nicId = netstack.stack.addNic(link, { name: opts.name });
  for (const a of opts.addresses) {
    const err = netstack.stack.addAddress(nicId, a);
    if (err) throw new CliError(`cannot add address ${formatSubnet(a)}: ${err}`);
  }
  for (const r of opts.routes ?? []) {
    if (!r.gateway) continue; // on-link routes come with the addresses
    netstack.stack.addRoute({ destination: r.destination, gateway: r.gateway, nicId });
  }
  for (const g of opts.gateways ?? []) {
    const destination = { address: new Uint8Array(g.length), prefixLength: 0 };
    const err = netstack.stack.addRoute({ destination, gateway: g, nicId });
    if (err) throw new CliError(`cannot add default route via gateway: ${err}`);
  }
  const v6 = opts.addresses.filter((a) => !isV4(a.address));
  const dad = await Promise.all(v6.map((a) => netstack.stack.whenAddressReady(a.address)));
  if (dad.includes(false)) throw new CliError('duplicate address detected on the link for one of our IPv6 addresses');
  return { netstack, link, impair };
}
