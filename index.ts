/**
 * `tsvisor`: the package's public API. Make a netstack (`createNetstack`), attach it to a link (an in-memory
 * `ChannelEndpoint` pair, an `AfPacketEndpoint` on an interface inside a network namespace, or a `TapEndpoint`),
 * give it addresses and routes (`netstack.stack.addAddress`, `addRoute`), read its counters
 * (`netstack.counters()`), and hand it to `tsvisor/net` (`bindNet`) and `tsvisor/dgram` (`bindDgram`) to serve
 * and connect with Node's own socket APIs. Everything here is re-exported from the module that owns it.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { NodeClock } from './lib/clock.ts';
import { Netstack, type NetstackOptions } from './netstack/netstack.ts';

// ---- the stack ----

export { Netstack, type NetstackOptions } from './netstack/netstack.ts';
export {
  Stack,
  type StackOptions,
  type NicOptions,
  type NicInfo,
  type AddressInfo,
  type AddRouteOptions,
} from './netstack/stack.ts';
export type { RouteEntry } from './netstack/network/route.ts';
export type { NeighborInfo } from './netstack/network/neighbor.ts';
export type { Endpoint, Family, SocketType, SocketAddress, ReadOptions, ReadResult, WriteOptions } from './netstack/socket.ts';
export { NetError, Err, isError, ERRNO, ERRNO_NAMES, type ErrorKind } from './netstack/errors.ts';

// ---- addresses ----

export {
  type Address,
  type Subnet,
  parseAddress,
  formatAddress,
  parseSubnet,
  formatSubnet,
  parseMac,
  formatMac,
  isV4,
} from './netstack/addr.ts';

// ---- time ----

export { type Clock, type Timer, VirtualClock } from './netstack/clock.ts';
export { NodeClock, type NodeClockOptions } from './lib/clock.ts';

// ---- links ----

export type { LinkEndpoint, LinkDispatcher, LinkCapabilities } from './netstack/link/endpoint.ts';
export { ChannelEndpoint, type ChannelOptions, type ChannelPairOptions } from './netstack/link/channel.ts';
export { LoopbackEndpoint, type LoopbackOptions } from './netstack/link/loopback.ts';
export { SnifferEndpoint, type SnifferOptions, type SniffDirection } from './netstack/link/sniffer.ts';
export { PcapWriter, type PacketRecorder, type PcapOptions } from './netstack/link/pcap.ts';
export { ImpairEndpoint, type ImpairSpec, type ImpairOptions, type ImpairCounters, parseImpairSpec } from './netstack/link/impair.ts';
export { AfPacketEndpoint, type AfPacketOptions, type VnetCounters } from './lib/packet.ts';
export { TapEndpoint, type TapOptions } from './lib/tap.ts';
export type { HostLinkCounters } from './lib/counters.ts';
export { PcapFileSink } from './lib/pcapfile.ts';

// ---- the host around a link ----

export { takeOver, type Takeover, type InterfaceConfig, type TakenRoute } from './lib/takeover.ts';
export { netnsExists } from './lib/netns.ts';

/** Options of `createNetstack`: a Netstack's, with the clock, seed and secret optional. */
export type CreateNetstackOptions = Partial<NetstackOptions>;

/**
 * A Netstack on Node's clock (`NodeClock`) with a random seed and secret unless given, so initial sequence
 * numbers, ephemeral ports and SYN cookies cannot be predicted (RFC 6528); `new Netstack(...)` uses seed 1 when
 * none is given, which only a reproducible test wants.
 */
export function createNetstack(opts: CreateNetstackOptions = {}): Netstack {
  return new Netstack({
    ...opts,
    clock: opts.clock ?? new NodeClock(),
    seed: opts.seed ?? randomInt(2 ** 31),
    secret: opts.secret ?? randomBytes(16),
  });
}
