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
 * Surviving any death of the taker: before the first change, what was found (addresses, routes, MTU and the
 * sysctl changed) is written to a record under TAKEOVER_DIR named after the namespace's inode and the interface's
 * index, and the record stays flock()ed for as long as the interface is taken: a second taker is refused with
 * the holder's pid, and a taker that finds an unlocked record knows its writer died without restoring (kill -9,
 * a crash), so it restores the record first. `restore()` gives everything back and only then removes the record.
 * The namespace is held by an open handle throughout, so a restore reaches the namespace that was taken even when
 * its name now belongs to another one; a record also carries the namespace's cookie, which, unlike inode
 * numbers, the kernel never reuses, so a record of a deleted namespace is never applied to a new one.
 *
 * The config leaves out the kernel's EUI-64 link-local address (fe80::/64 from the MAC): the stack derives the
 * very same one from the MAC itself (RFC 4862 §5.3, RFC 4291 appendix A). Any other link-local address (manual,
 * or stable-privacy) is kept in the config so that the stack keeps answering on it.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import {
  type Address,
  type Subnet,
  addressEqual,
  isV4,
  linkLocalFromMac,
  parseAddress,
  parseMac,
  parseSubnet,
} from '../netstack/addr.ts';
import { run } from './exec.ts';
import { C, errno, errnoName, sys } from './libc.ts';
import { deleteIpv4Addresses } from './netlink.ts';
import { NetnsHandle } from './netns.ts';

/** Where takeover records live (one file per taken interface, locked while taken). */
export const TAKEOVER_DIR = '/run/tsvisor/takeover';
/** The smallest MTU with which a link may carry IPv6 (RFC 8200 §5); Linux drops IPv6 from a link below it. */
export const IPV6_MIN_MTU = 1280;

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
  /** The interface's MTU while taken (the requested one, when `mtu` was given). */
  readonly mtu: number;
  /** IPv4 and IPv6 addresses with prefix lengths, in the kernel's order (the first IPv4 one is primary). */
  readonly addresses: Subnet[];
  /** Routes of the main table through the interface, IPv4 then IPv6. */
  readonly routes: TakenRoute[];
}

/** Options of `takeOver`. */
export interface TakeoverOptions {
  /** Set the interface's MTU to this while taken; set after the record is written, restored with the rest. */
  mtu?: number;
  /** Who takes the interface ('serve', 'run'), written in the record and named to a refused second taker. */
  owner?: string;
  /** The directory of records (TAKEOVER_DIR by default). */
  dir?: string;
}

/** An interface taken from the kernel, and the way back. */
export interface Takeover {
  /** What the interface had, as the stack should use it. */
  readonly config: InterfaceConfig;
  /** The namespace, held open until `restore()` (by the caller, when the caller passed it in). */
  readonly netns: NetnsHandle;
  /** The interface's index in its namespace. */
  readonly ifindex: number;
  /** The record file, locked while taken. */
  readonly recordPath: string;
  /** Things the user should hear: a dead taker's leftovers restored first, IPv6 left out below 1280. */
  readonly notes: string[];
  /** Gives the kernel back its MTU, IPv6 setting, addresses and routes, then drops the record; idempotent. */
  restore(): void;
  /**
   * Drops the record and lets the interface go without giving anything back, for a namespace that is removed
   * with its taker (the OCI runtime's own): its configuration would be restored only to be destroyed. Idempotent;
   * `restored` is true after it.
   */
  discard(): void;
  /** Whether `restore()` has run. */
  readonly restored: boolean;
}

/** The interface is taken by a live tsvisor: the message names its pid. */
export class TakeoverBusy extends Error {
  /** The holder's pid (0 when its record could not be read). */
  readonly pid: number;
  /** The holder's command, when known. */
  readonly owner: string;

  constructor(message: string, pid: number, owner: string) {
    super(message);
    this.name = 'TakeoverBusy';
    this.pid = pid;
    this.owner = owner;
  }
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

/** What a takeover found, as written to its record before the first change. */
export interface TakeoverRecord {
  version: 1;
  /** The taker's pid and command. */
  pid: number;
  owner: string;
  /** When it was taken (ISO 8601). */
  since: string;
  /** The namespace as the taker named it, its inode and its cookie. */
  netns: string;
  netnsInode: number;
  netnsCookie: string;
  dev: string;
  ifindex: number;
  mac: string;
  mtu: number;
  /** `ip -j addr` entries of the interface. */
  addresses: IpAddrInfo[];
  /** `ip -j route` entries of the main table through the interface. */
  routes: IpRoute[];
  /** Sysctls the takeover changes, with their values before. */
  sysctls: { disable_ipv6?: string };
}

const FOREVER = 4294967295;
const ADDR_FLAGS = ['nodad', 'noprefixroute', 'home', 'mngtmpaddr', 'optimistic', 'autojoin'];

/** The sysctl file of a per-interface IPv6 setting (resolved in the calling thread's namespace). */
function ipv6Sysctl(dev: string, key: string): string {
  return `/proc/sys/net/ipv6/conf/${dev}/${key}`;
}

/** The interface as the kernel has it now, read inside the namespace. */
interface Found {
  ifindex: number;
  mac: string;
  mtu: number;
  addresses: IpAddrInfo[];
  routes: IpRoute[];
  disableIpv6?: string;
}

function readInterface(ns: NetnsHandle, dev: string): Found {
  return ns.enter(() => {
    let links: { ifindex: number; address: string; mtu: number; link_type: string; addr_info: IpAddrInfo[] }[];
    let allRoutes: (IpRoute & { table?: string })[];
    // One `ip` for both: its batch prints one JSON array a line; routes of every table and family, the main one's kept.
    if (sys.ifNameToIndex(dev) === 0) throw new Error(`no interface '${dev}' in network namespace '${ns.label}'`);
    try {
      const [a, r] = run(['ip', '-j', '-batch', '-'], `addr show dev ${dev}\nroute show dev ${dev} table all\n`).trim().split('\n');
      links = JSON.parse(a!);
      allRoutes = JSON.parse(r!);
    } catch {
      links = [];
      allRoutes = [];
    }
    const link = links[0];
    if (!link) throw new Error(`no interface '${dev}' in network namespace '${ns.label}'`);
    // The stack speaks Ethernet; taking `lo` would also take 127.0.0.1 and ::1 from every program in the namespace.
    if (link.link_type !== 'ether') {
      throw new Error(`interface '${dev}' in '${ns.label}' is a ${link.link_type} interface, not Ethernet: give a veth or other Ethernet interface`);
    }
    const main = allRoutes.filter((r) => r.table === undefined || r.table === 'main').map(({ table: _, ...r }) => r);
    const routes: IpRoute[] = [...main.filter((r) => !isV6Route(r)), ...main.filter(isV6Route)];
    const sysctl = ipv6Sysctl(dev, 'disable_ipv6');
    const disableIpv6 = existsSync(sysctl) ? readFileSync(sysctl, 'utf8').trim() : undefined;
    return {
      ifindex: link.ifindex,
      mac: link.address,
      mtu: link.mtu,
      addresses: link.addr_info.filter((a) => a.family === 'inet' || a.family === 'inet6'),
      routes: routes.filter((r) => r.type === undefined || r.type === 'unicast'),
      disableIpv6,
    };
  });
}

/** Whether a route of `ip -j route show table all` is IPv6's: its addresses, or the preference only IPv6's have. */
function isV6Route(r: IpRoute): boolean {
  return r.dst.includes(':') || (r.gateway ?? '').includes(':') || r.pref !== undefined;
}

/** The record file of interface `ifindex` in namespace `ns`. */
export function recordPath(ns: NetnsHandle, ifindex: number, dir = TAKEOVER_DIR): string {
  return `${dir}/${ns.inode}-${ifindex}.json`;
}

function readRecord(path: string): TakeoverRecord | null {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as TakeoverRecord;
    return r && r.version === 1 ? r : null;
  } catch {
    return null;
  }
}

/**
 * Opens and locks the record file at `path` (creating it); throws TakeoverBusy naming the holder when another
 * process has it locked. Returns the locked fd.
 */
function lockRecord(path: string, what: string): number {
  mkdirSync(path.slice(0, path.lastIndexOf('/')), { recursive: true, mode: 0o700 });
  for (;;) {
    const fd = openSync(path, 'a+', 0o600);
    if (sys.flock(fd, C.LOCK_EX | C.LOCK_NB) < 0) {
      const e = errno();
      closeSync(fd);
      if (e !== C.EWOULDBLOCK) throw new Error(`cannot lock ${path}: ${errnoName(e)}`);
      const r = readRecord(path);
      throw new TakeoverBusy(
        r ? `${what} is already taken by ${taker(r)}; one stack per interface`
          : `${what} is already taken by another tsvisor; one stack per interface`,
        r?.pid ?? 0,
        r?.owner ?? '',
      );
    }
    // The last holder removes the record after restoring: if it did so between our open and our lock, the file we
    // hold is no longer the one at `path`, and the next taker would lock a fresh one beside us.
    let current;
    try {
      current = statSync(path);
    } catch {
      current = undefined;
    }
    const held = fstatSync(fd);
    if (current && current.ino === held.ino && current.dev === held.dev) return fd;
    closeSync(fd);
  }
}

/** "tsvisor serve (pid 123)", for messages. */
function taker(r: TakeoverRecord): string {
  return `tsvisor${r.owner ? ` ${r.owner}` : ''} (pid ${r.pid})`;
}

function writeRecord(fd: number, r: TakeoverRecord): void {
  ftruncateSync(fd, 0);
  writeSync(fd, JSON.stringify(r, null, 1) + '\n', 0);
  fsyncSync(fd);
}

/**
 * Puts back what `r` recorded in namespace `ns`: MTU first (IPv6 needs at least 1280 to come back), then the IPv6
 * setting (re-enabling it brings back the kernel's own link-local, and addresses need it enabled), then addresses
 * and routes. Best effort: every step is tried; the failures are thrown together at the end. Returns false when
 * the interface is gone (nothing to restore).
 */
function applyRecord(ns: NetnsHandle, r: TakeoverRecord): boolean {
  return ns.enter(() => {
    // By index: the interface may have been renamed meanwhile.
    const links = JSON.parse(run(['ip', '-j', 'link', 'show'])) as { ifindex: number; ifname: string; address: string; mtu: number }[];
    const link = links.find((l) => l.ifindex === r.ifindex);
    if (!link || link.address !== r.mac) return false;
    const dev = link.ifname;
    const failures: string[] = [];
    const step = (fn: () => void) => {
      try {
        fn();
      } catch (e) {
        failures.push((e as Error).message.split('\n')[0]!);
      }
    };
    if (link.mtu !== r.mtu) step(() => run(['ip', 'link', 'set', 'dev', dev, 'mtu', String(r.mtu)]));
    const sysctl = ipv6Sysctl(dev, 'disable_ipv6');
    if (r.sysctls.disable_ipv6 !== undefined && existsSync(sysctl)) step(() => writeFileSync(sysctl, r.sysctls.disable_ipv6!));
    for (const a of r.addresses) {
      if (a.family === 'inet6' && r.sysctls.disable_ipv6 !== '0') continue;
      step(() => run(['ip', 'addr', 'replace', ...addrArgs(a), 'dev', dev]));
    }
    for (const rt of r.routes) {
      // Kernel routes come back with their addresses (and IPv6's with the setting).
      if (rt.protocol === 'kernel') continue;
      const fam = rt.dst.includes(':') || (rt.gateway ?? '').includes(':') ? '-6' : '-4';
      step(() => run(['ip', fam, 'route', 'replace', ...routeArgs(rt), 'dev', dev]));
    }
    if (failures.length) throw new Error(`restoring '${r.dev}' in '${r.netns}' failed: ${failures.join('; ')}`);
    return true;
  });
}

/** Applies and removes the record held at `fd`/`path` if there is one; returns what it restored, for the user. */
function restoreLeftover(ns: NetnsHandle, dev: string, path: string): string | null {
  const r = readRecord(path);
  if (r === null) return null;
  const who = taker(r);
  if (r.netnsCookie !== ns.cookie) {
    // Same inode number, another namespace: the recorded one is gone, and so is what the record describes.
    return `dropped a record of ${who} for a namespace that no longer exists (its inode number was reused)`;
  }
  const applied = applyRecord(ns, r);
  if (!applied) return `dropped a record of ${who}: its interface '${r.dev}' is gone`;
  const v4 = r.addresses.filter((a) => a.family === 'inet').length;
  const v6 = r.addresses.filter((a) => a.family === 'inet6').length;
  return `restored '${dev}' in '${ns.label}' as it was before ${who}, which exited without restoring: ` +
    `${v4} IPv4 and ${v6} IPv6 addresses, ${r.routes.length} routes, MTU ${r.mtu}`;
}

/** Opens `ns` unless it is a handle already; `owned` says whether the caller of this helper must close it. */
function openNetns(ns: string | NetnsHandle): { handle: NetnsHandle; owned: boolean } {
  return ns instanceof NetnsHandle ? { handle: ns, owned: false } : { handle: NetnsHandle.open(ns), owned: true };
}

/**
 * Reads the interface, records it, takes its addresses (and IPv6) from the kernel, and returns its config and
 * `restore()`. `ns` is a namespace name, a path to a namespace file, or an open handle (then the caller closes
 * it, after `restore()`). Throws TakeoverBusy when a live tsvisor has the interface, NetnsError for a missing
 * namespace, and an Error naming a missing interface; nothing is changed then.
 */
export function takeOver(ns: string | NetnsHandle, dev: string, opts: TakeoverOptions = {}): Takeover {
  const { handle, owned } = openNetns(ns);
  let fd = -1;
  let path = '';
  // Once restore() exists it owns the lock and the handle.
  let restoreOwns = false;
  try {
    let found = readInterface(handle, dev);
    path = recordPath(handle, found.ifindex, opts.dir);
    fd = lockRecord(path, `interface '${dev}' in '${handle.label}'`);
    const notes: string[] = [];
    const leftover = restoreLeftover(handle, dev, path);
    if (leftover) {
      notes.push(leftover);
      found = readInterface(handle, dev);
    }
    const mac = parseMac(found.mac);
    if (!mac) throw new Error(`interface '${dev}' in '${handle.label}' has no Ethernet MAC (${found.mac})`);
    const record: TakeoverRecord = {
      version: 1,
      pid: process.pid,
      owner: opts.owner ?? '',
      since: new Date().toISOString(),
      netns: handle.label,
      netnsInode: handle.inode,
      netnsCookie: handle.cookie,
      dev,
      ifindex: found.ifindex,
      mac: found.mac,
      mtu: found.mtu,
      addresses: found.addresses,
      routes: found.routes,
      sysctls: found.disableIpv6 === undefined ? {} : { disable_ipv6: found.disableIpv6 },
    };
    // Written, and on disk, before anything changes: a taker killed at any later point leaves it behind.
    writeRecord(fd, record);

    const mtu = opts.mtu ?? found.mtu;
    let config = configOf(found, mac, mtu);
    if (mtu < IPV6_MIN_MTU && config.addresses.some((a) => !isV4(a.address))) {
      notes.push(`MTU ${mtu} is below IPv6's minimum of ${IPV6_MIN_MTU}: serving IPv4 only; IPv6 comes back on exit`);
      config = { ...config, addresses: config.addresses.filter((a) => isV4(a.address)), routes: config.routes.filter((r) => isV4(r.destination.address)) };
    }

    const lockFd = fd;
    restoreOwns = true;
    let restored = false;
    const release = (giveBack: boolean) => {
      if (restored) return;
      restored = true;
      try {
        if (giveBack) applyRecord(handle, record);
        // Only once everything is back: a taker killed before this line leaves the record for the next one.
        unlinkSync(path);
      } finally {
        closeSync(lockFd);
        if (owned) handle.close();
      }
    };
    const restore = () => release(true);
    try {
      handle.enter(() => {
        if (mtu !== found.mtu) run(['ip', 'link', 'set', 'dev', dev, 'mtu', String(mtu)]);
        deleteIpv4Addresses(found.ifindex, found.addresses.filter((a) => a.family === 'inet'));
        // Below 1280 the kernel has already dropped IPv6 from the interface, sysctl directory and all.
        const sysctl = ipv6Sysctl(dev, 'disable_ipv6');
        if (existsSync(sysctl)) writeFileSync(sysctl, '1');
      });
    } catch (err) {
      restore();
      throw err;
    }
    return {
      config,
      netns: handle,
      ifindex: found.ifindex,
      recordPath: path,
      notes,
      restore,
      discard: () => release(false),
      get restored() {
        return restored;
      },
    };
  } catch (err) {
    if (!restoreOwns) {
      if (fd >= 0) closeSync(fd);
      if (owned) handle.close();
    }
    throw err;
  }
}

/**
 * `tsvisor restore`: restores interface `dev` of namespace `ns` from the record a dead taker left, and says what it
 * did (null: there was no record). Throws TakeoverBusy while a live tsvisor has the interface.
 */
export function restoreInterface(ns: string | NetnsHandle, dev: string, dir?: string): string | null {
  const { handle, owned } = openNetns(ns);
  try {
    const found = readInterface(handle, dev);
    const path = recordPath(handle, found.ifindex, dir);
    if (!existsSync(path)) return null;
    const fd = lockRecord(path, `interface '${dev}' in '${handle.label}'`);
    try {
      const what = restoreLeftover(handle, dev, path);
      unlinkSync(path);
      return what;
    } finally {
      closeSync(fd);
    }
  } finally {
    if (owned) handle.close();
  }
}

/** The stack's view of what was found: the kernel's own EUI-64 link-local and fe80::/64 left out. */
function configOf(found: Found, mac: Uint8Array, mtu: number): InterfaceConfig {
  const ownLinkLocal = linkLocalFromMac(mac);
  const addresses: Subnet[] = [];
  for (const family of ['inet', 'inet6']) {
    for (const a of found.addresses) {
      if (a.family !== family) continue;
      const address = parseAddress(a.local);
      if (!address) continue;
      if (a.scope === 'link' && address.length === 16 && addressEqual(address, ownLinkLocal)) continue;
      addresses.push({ address, prefixLength: a.prefixlen });
    }
  }
  const routes: TakenRoute[] = [];
  for (const r of found.routes) {
    const v6 = r.dst.includes(':') || (r.gateway ?? '').includes(':');
    const destination = r.dst === 'default' ? parseSubnet(v6 ? '::/0' : '0.0.0.0/0') : parseSubnet(r.dst);
    if (!destination) continue;
    // The kernel's fe80::/64 comes with its link-local address; the stack has its own.
    if (destination.address.length === 16 && destination.address[0] === 0xfe && (destination.address[1]! & 0xc0) === 0x80) continue;
    const gateway = r.gateway !== undefined ? parseAddress(r.gateway) ?? undefined : undefined;
    routes.push(gateway ? { destination, gateway } : { destination });
  }
  return { mac, mtu, addresses, routes };
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
