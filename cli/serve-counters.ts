/** The counters `tsvisor stats` shows for one stack of `serve` (the whole serve, or one shard of it). */
import { AfPacketEndpoint } from '../lib/packet.ts';
import { TapEndpoint } from '../lib/tap.ts';
import type { LinkEndpoint } from '../netstack/link/endpoint.ts';
import type { ImpairEndpoint } from '../netstack/link/impair.ts';
import type { Netstack } from '../netstack/netstack.ts';
import type { RunningService } from './services/registry.ts';

/** Counters of the stack, its host link, the impairment wrapper and the services, by dotted name. */
export function servedCounters(
  netstack: Netstack,
  host: LinkEndpoint,
  impair: ImpairEndpoint | undefined,
  services: readonly RunningService[],
): Record<string, number> {
  const out: Record<string, number> = { ...netstack.counters() };
  // The kernel's ring-full drops are read from the socket only when asked for (or when it flags a loss).
  const hostCounters = host instanceof AfPacketEndpoint ? host.refreshCounters() : (host as { counters?: Record<string, number> }).counters;
  if (hostCounters) for (const [k, v] of Object.entries(hostCounters)) out[`hostlink.${k}`] = v;
  if (host instanceof AfPacketEndpoint) for (const [k, v] of Object.entries(host.rxPoll)) out[`hostlink.rxPoll.${k}`] = v;
  if (host instanceof AfPacketEndpoint) for (const [k, v] of Object.entries(host.txThread)) out[`hostlink.txThread.${k}`] = v;
  if (host instanceof AfPacketEndpoint || host instanceof TapEndpoint) {
    for (const [k, v] of Object.entries(host.txGather)) out[`hostlink.txGather.${k}`] = v;
  }
  const vnet = host instanceof AfPacketEndpoint && host.capabilities.gso ? host.vnetCounters : undefined;
  if (vnet) for (const [k, v] of Object.entries(vnet)) out[`vnet.${k}`] = v;
  if (impair) for (const [k, v] of Object.entries(impair.counters)) out[`impair.${k}`] = v;
  for (const s of services) for (const [k, v] of Object.entries(s.stats)) out[`service.${s.name}.${s.proto}.${k}`] = v;
  return out;
}
