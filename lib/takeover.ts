/**
 * Interface takeover, as runsc does for a sandbox's network namespace: read the interface's MAC, MTU, addresses
 * and routes, take the addresses away from the kernel so that only our stack answers for them, and give
 * everything back on `restore()`.
 *
 * What the kernel loses while taken:
 * - its IPv4 addresses on the interface (`ip -4 addr flush`), which also removes its routes through it;
 * - its IPv6 on the interface (`disable_ipv6=1`), which drops every IPv6 address and route there and stops
 *   it from sending and answering NDP, router solicitations and MLD, which deleting addresses alone would not.
 * The interface stays up with its MAC: the stack uses the same MAC, and frames it receives are also seen by
 * the kernel, which drops them as not addressed to it (forwarding must be off in the namespace, as it is by
 * default). Only the main routing table is read and restored.
 *
 * The config leaves out the kernel's EUI-64 link-local address (fe80::/64 from the MAC): the stack derives the
 * very same one from the MAC itself (RFC 4862 §5.3, RFC 4291 appendix A). Any other link-local address (manual,
 * or stable-privacy) is kept in the config so that the stack keeps answering on it.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import {
  type Address,
  type Subnet,
  addressEqual,
  linkLocalFromMac,
  parseAddress,
  parseMac,
  parseSubnet,
} from '../netstack/addr.ts';
import { NetnsError, inNetns, netnsExists, netnsPath } from './netns.ts';
import { run } from './exec.ts';

/** A route through the taken interface: on-link when it has no gateway. */
export interface TakenRoute {
  /** Destination subnet (0.0.0.0/0 or ::/0 for a default route). */
  readonly destination: Subnet;
  /** Next hop, absent for on-link routes. */
  readonly gateway?: Address;
}

/** The interface's configuration as the stack needs it. */
export interface InterfaceConfig {
  /** The interface's MAC. */
  readonly mac: Uint8Array;
  /** The interface's MTU. */
  readonly mtu: number;
  /** IPv4 and IPv6 addresses with prefix lengths, in the kernel's order (the first IPv4 one is primary). */
  readonly addresses: Subnet[];
  /** Routes of the main table through the interface, IPv4 then IPv6. */
  readonly routes: TakenRoute[];
}

/** An interface taken from the kernel, and the way back. */
export interface Takeover {
  /** What the interface had. */
  readonly config: InterfaceConfig;
  /** Gives the kernel back its addresses, IPv6 setting and routes; idempotent. */
  restore(): void;
  /** Whether `restore()` has run. */
  readonly restored: boolean;
}

interface IpAddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  address?: string;
  broadcast?: string;
  scope?: string;
  label?: string;
  valid_life_time?: number;
  preferred_life_time?: number;
  [flag: string]: unknown;
}

interface IpRoute {
  dst: string;
  gateway?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  pref?: string;
  type?: string;
  flags?: string[];
}

const FOREVER = 4294967295;
const ADDR_FLAGS = ['nodad', 'noprefixroute', 'home', 'mngtmpaddr', 'optimistic', 'autojoin'];

/** The sysctl file of a per-interface IPv6 setting (resolved in the calling thread's namespace). */
function ipv6Sysctl(dev: string, key: string): string {
  return `/proc/sys/net/ipv6/conf/${dev}/${key}`;
}

/** Reads the interface, takes its addresses (and IPv6) from the kernel, and returns its config and `restore()`. */
export function takeOver(netns: string, dev: string): Takeover {
  if (!netnsExists(netns)) throw new NetnsError(netns, `network namespace "${netns}" does not exist (${netnsPath(netns)})`);
  let links: { address: string; mtu: number; addr_info: IpAddrInfo[] }[];
  try {
    links = JSON.parse(run(['ip', '-n', netns, '-j', 'addr', 'show', 'dev', dev]));
  } catch {
    throw new Error(`no interface "${dev}" in network namespace "${netns}"`);
  }
  const link = links[0];
  if (!link) throw new Error(`no interface "${dev}" in network namespace "${netns}"`);
  const mac = parseMac(link.address);
  if (!mac) throw new Error(`interface "${dev}" in "${netns}" has no Ethernet MAC (${link.address})`);
  const ownLinkLocal = linkLocalFromMac(mac);

  const addrInfo = link.addr_info.filter((a) => a.family === 'inet' || a.family === 'inet6');
  const addresses: Subnet[] = [];
  for (const family of ['inet', 'inet6']) {
    for (const a of addrInfo) {
      if (a.family !== family) continue;
      const address = parseAddress(a.local);
      if (!address) continue;
      if (a.scope === 'link' && address.length === 16 && addressEqual(address, ownLinkLocal)) continue;
      addresses.push({ address, prefixLength: a.prefixlen });
    }
  }

  const routesRaw: IpRoute[] = [
    ...(JSON.parse(run(['ip', '-n', netns, '-4', '-j', 'route', 'show', 'dev', dev])) as IpRoute[]),
    ...(JSON.parse(run(['ip', '-n', netns, '-6', '-j', 'route', 'show', 'dev', dev])) as IpRoute[]),
  ];
  const routes: TakenRoute[] = [];
  for (const r of routesRaw) {
    if (r.type !== undefined && r.type !== 'unicast') continue;
    const v6 = r.dst.includes(':') || (r.gateway ?? '').includes(':');
    const destination = r.dst === 'default' ? parseSubnet(v6 ? '::/0' : '0.0.0.0/0') : parseSubnet(r.dst);
    if (!destination) continue;
    // The kernel's fe80::/64 comes with its link-local address; the stack has its own.
    if (destination.address.length === 16 && destination.address[0] === 0xfe && (destination.address[1]! & 0xc0) === 0x80) continue;
    const gateway = r.gateway !== undefined ? parseAddress(r.gateway) ?? undefined : undefined;
    routes.push(gateway ? { destination, gateway } : { destination });
  }

  const sysctlPath = ipv6Sysctl(dev, 'disable_ipv6');
  const hadIpv6 = inNetns(netns, () => existsSync(sysctlPath));
  const ipv6Before = hadIpv6 ? inNetns(netns, () => readFileSync(sysctlPath, 'utf8').trim()) : '1';

  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    // IPv6 first: re-enabling it brings back the kernel's own link-local, and addresses need it enabled.
    if (hadIpv6) inNetns(netns, () => writeFileSync(sysctlPath, ipv6Before));
    for (const a of addrInfo) {
      if (a.family === 'inet6' && ipv6Before !== '0') continue;
      run(['ip', '-n', netns, 'addr', 'replace', ...addrArgs(a), 'dev', dev]);
    }
    for (const r of routesRaw) {
      if (r.protocol === 'kernel' || (r.type !== undefined && r.type !== 'unicast')) continue;
      const fam = r.dst.includes(':') || (r.gateway ?? '').includes(':') ? '-6' : '-4';
      run(['ip', '-n', netns, fam, 'route', 'replace', ...routeArgs(r), 'dev', dev]);
    }
  };

  try {
    run(['ip', '-n', netns, '-4', 'addr', 'flush', 'dev', dev]);
    if (hadIpv6) inNetns(netns, () => writeFileSync(sysctlPath, '1'));
  } catch (err) {
    restore();
    throw err;
  }
  return {
    config: { mac, mtu: link.mtu, addresses, routes },
    restore,
    get restored() {
      return restored;
    },
  };
}

/** `ip addr` arguments recreating one address as it was. */
function addrArgs(a: IpAddrInfo): string[] {
  const out = [`${a.local}/${a.prefixlen}`];
  if (a.address !== undefined && a.address !== a.local) out.push('peer', a.address);
  if (a.broadcast !== undefined) out.push('broadcast', a.broadcast);
  if (a.label !== undefined) out.push('label', a.label);
  if (a.scope !== undefined && a.scope !== 'global') out.push('scope', a.scope);
  for (const f of ADDR_FLAGS) if (a[f] === true) out.push(f);
  if (a.valid_life_time !== undefined && a.valid_life_time !== FOREVER) {
    out.push('valid_lft', String(a.valid_life_time), 'preferred_lft', String(a.preferred_life_time ?? a.valid_life_time));
  }
  return out;
}

/** `ip route` arguments recreating one route as it was. */
function routeArgs(r: IpRoute): string[] {
  const out = [r.dst];
  if (r.gateway !== undefined) out.push('via', r.gateway);
  if (r.protocol !== undefined) out.push('proto', r.protocol);
  if (r.scope !== undefined) out.push('scope', r.scope);
  if (r.prefsrc !== undefined) out.push('src', r.prefsrc);
  if (r.metric !== undefined) out.push('metric', String(r.metric));
  if (r.pref !== undefined) out.push('pref', r.pref);
  if (r.flags?.includes('onlink')) out.push('onlink');
  return out;
}
