/**
 * The network namespaces of one `tsvisor run`, all named after the run's id:
 * - `tsv-<id>`, the *link* netns: holds the interface the netstack owns. Either a fresh netns with one end of a
 *   veth pair whose other end (`tsv-<id>`, addressed) stays in the caller's netns, or an alias (a bind mount under
 *   /var/run/netns) of a namespace the user named by path, so that iproute2 can name it too;
 * - `tsv-<id>-app`, the *app* netns the program runs in: `lo`, plus a `dummy` `eth0` (an `ifb` where the kernel
 *   has no dummy driver) carrying the sandbox's addresses and default routes so that getifaddrs, AI_ADDRCONFIG
 *   and SIOCGIFCONF look as they would on the sandbox's link. Both drop whatever is sent to them: nothing here
 *   leads anywhere, and the program's INET sockets are the netstack's anyway.
 * Every namespace is made by the Sentry (the initial user namespace owns it), so the program, root only inside
 * its own user namespace, cannot reconfigure it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { run } from '../../lib/exec.ts';
import { sys } from '../../lib/libc.ts';
import { NETNS_DIR, addNetns, delNetns, inNetns, linkUpHere, isNetnsPath, netnsExists, netnsPath } from '../../lib/netns.ts';
import { type Address, type Subnet, formatAddress, formatSubnet, isV4, parseAddress, parseSubnet } from '../../netstack/addr.ts';
import { guardExists, guardTable, removeGuardCommand } from './veth-guard.ts';

/** A fresh run id: 6 hex digits, short enough that `tsv-<id>` fits an interface name (15 characters). */
export function newRunId(): string {
  return randomBytes(3).toString('hex');
}

/** The names a run's id gives: link netns, app netns, and the caller's end of the veth. */
export function runNames(id: string): { link: string; app: string; peerDev: string } {
  if (!/^[0-9a-z]{1,10}$/.test(id)) throw new Error(`bad run id "${id}"`);
  return { link: `tsv-${id}`, app: `tsv-${id}-app`, peerDev: `tsv-${id}` };
}

/** The interface name the netstack owns inside a link netns we made, and the dummy's inside the app netns. */
export const SANDBOX_DEV = 'eth0';

/** A veth made for one run: the netstack's end in the link netns, the peer's in the caller's netns. */
export interface SandboxVeth {
  /** The link netns (named). */
  readonly netns: string;
  /** The netstack's end, inside `netns`. */
  readonly dev: string;
  /** The caller's end, in the caller's netns. */
  readonly peerDev: string;
  /** The sandbox's addresses: the second of a 198.18.x.0/30 and fd74:7376:x::2/64. */
  readonly addresses: Subnet[];
  /** The caller's end's addresses, the first of each; also the sandbox's gateways. */
  readonly peerAddresses: Subnet[];
}

/** The third octet x of every 198.18.x.0/30 the caller's netns already uses, in an address or a route. */
function usedSlots(): Set<number> {
  const used = new Set<number>();
  // Table "all" holds the main table's routes and the local table's, which name every local address.
  const routes = JSON.parse(run(['ip', '-j', '-4', 'route', 'show', 'table', 'all'])) as { dst: string }[];
  for (const r of routes) {
    const m = /^198\.18\.(\d+)\./.exec(r.dst);
    if (m) used.add(Number(m[1]));
  }
  return used;
}

/** Runs iproute2 commands (each an argv without `ip`) in one process, stopping at the first that fails. */
export function ipBatch(commands: readonly (readonly string[])[], netns?: string): void {
  if (commands.length === 0) return;
  run(['ip', ...(netns ? ['-n', netns] : []), '-batch', '-'], commands.map((c) => c.join(' ')).join('\n') + '\n');
}

/**
 * Makes the link netns `tsv-<id>` and a veth into it from the caller's netns: no NAT, the caller reaches the
 * sandbox by its address. DAD is off on the caller's end (`nodad`): nobody else is on this wire. The kernel's
 * IPv6 is off on the netstack's end (before it goes up), so that it neither answers NDP nor sends MLD there.
 * Four iproute2 processes in all (each costs a few milliseconds of start-up), batched where the order allows.
 */
export function createVeth(id: string, mtu?: number): SandboxVeth {
  const names = runNames(id);
  // Two runs starting together in one netns may pick the same free slot: whoever then sees another interface
  // holding its /30 gives it up and picks again (both may; random picks make a second clash unlikely).
  for (let attempt = 0; ; attempt++) {
    const used = usedSlots();
    const free: number[] = [];
    for (let x = 0; x < 256; x++) if (!used.has(x)) free.push(x);
    if (free.length === 0) throw new Error('every 198.18.x.0/30 (x = 0..255) is in use in this network namespace');
    const x = free[Math.floor(Math.random() * free.length)]!;
    const peerAddresses = [parseSubnet(`198.18.${x}.1/30`)!, parseSubnet(`fd74:7376:0:${x.toString(16)}::1/64`)!];
    const addresses = [parseSubnet(`198.18.${x}.2/30`)!, parseSubnet(`fd74:7376:0:${x.toString(16)}::2/64`)!];
    ipBatch([
      ...(attempt === 0 ? [
        ['netns', 'add', names.link],
        ['link', 'add', names.peerDev, ...(mtu ? ['mtu', String(mtu)] : []), 'type', 'veth', 'peer', 'name', SANDBOX_DEV, 'netns', names.link],
      ] : [['addr', 'flush', 'dev', names.peerDev]]),
      ['addr', 'add', formatSubnet(peerAddresses[0]!), 'dev', names.peerDev],
      ['addr', 'add', formatSubnet(peerAddresses[1]!), 'dev', names.peerDev, 'nodad'],
      ['link', 'set', names.peerDev, 'up'],
    ]);
    const holders = JSON.parse(run(['ip', '-j', '-4', 'addr', 'show', 'to', `198.18.${x}.0/30`])) as { ifname: string }[];
    if (holders.some((h) => h.ifname !== names.peerDev) && attempt < 5) continue;
    inNetns(names.link, () => sysctl(`net/ipv6/conf/${SANDBOX_DEV}/disable_ipv6`, '1'));
    ipBatch([['link', 'set', SANDBOX_DEV, 'up']], names.link);
    return { netns: names.link, dev: SANDBOX_DEV, peerDev: names.peerDev, addresses, peerAddresses };
  }
}

/** Writes a sysctl of the calling thread's netns (inside inNetns: the namespace's own). */
function sysctl(key: string, value: string): void {
  writeFileSync(`/proc/sys/${key}`, value);
}

/**
 * The name iproute2 knows a link netns by: a NAME as it is, a PATH bind-mounted as `tsv-<id>` (removed with
 * `ip netns del`, which unmounts it and leaves the namespace itself to its other holders).
 */
export function nameNetns(id: string, ref: string): string {
  if (!isNetnsPath(ref)) return ref;
  const name = runNames(id).link;
  run(['mkdir', '-p', NETNS_DIR]);
  run(['touch', netnsPath(name)]);
  try {
    run(['mount', '--bind', ref, netnsPath(name)]);
  } catch (e) {
    run(['rm', '-f', netnsPath(name)]);
    throw e;
  }
  return name;
}

/** The app netns: `lo` up, and a dummy (or ifb) `eth0` with `addresses`, up, with default routes via `gateways`. */
export function createAppNetns(id: string, o: { addresses: Subnet[]; gateways: Address[]; mtu?: number }): string {
  const name = runNames(id).app;
  addNetns(name);
  if (o.addresses.length === 0) {
    // Loopback only (network none): no `ip` at all.
    inNetns(name, () => linkUpHere('lo'));
    return name;
  }
  const cmds = (kind: string) => {
    const c: string[][] = [['link', 'set', 'lo', 'up']];
    if (o.addresses.length === 0) return c;
    c.push(['link', 'add', SANDBOX_DEV, ...(o.mtu ? ['mtu', String(o.mtu)] : []), 'type', kind]);
    for (const a of o.addresses) c.push(['addr', 'add', formatSubnet(a), 'dev', SANDBOX_DEV, ...(isV4(a.address) ? [] : ['nodad'])]);
    c.push(['link', 'set', SANDBOX_DEV, 'up']);
    for (const g of o.gateways) c.push(['route', 'replace', 'default', 'via', formatAddress(g), 'dev', SANDBOX_DEV, 'onlink']);
    return c;
  };
  // Kernels built without CONFIG_DUMMY (this project's VMs among them) still have IFB, which, fed by no tc
  // redirect, drops everything sent to it just as a dummy does, and looks like an Ethernet interface. A driver
  // built in or loaded shows in /sys/module (both have parameters): the one there is tried first, the other after.
  const first = !existsSync('/sys/module/dummy') && existsSync('/sys/module/ifb') ? 'ifb' : 'dummy';
  try {
    ipBatch(cmds(first), name);
  } catch (e) {
    if (!/Unknown device type/.test((e as Error).message)) throw e;
    ipBatch(cmds(first === 'ifb' ? 'dummy' : 'ifb'), name);
  }
  return name;
}

/**
 * Removes everything a run may have made, whatever exists of it: the app netns, the link netns (or the alias of
 * the user's), and the caller's veth end. Never throws for what is already gone. The veth's guard table is
 * `makeNetwork`'s to remove, as only it knows whether one was made (one nft process fewer at every other exit).
 */
export function removeRunNetworks(id: string): void {
  const n = runNames(id);
  // Namespaces without a process; the caller's veth end (a run's own veth only) by `ip` when it is there.
  delNetns(n.app);
  delNetns(n.link);
  if (sys.ifNameToIndex(n.peerDev) === 0) return;
  try {
    run(['ip', 'link', 'del', n.peerDev]);
  } catch {
    // already gone
  }
}

/**
 * The commands that remove a run's namespaces, veth and the veth's guard table, for the janitor (all of them: it
 * cannot know which were made, and a table that is not there costs one failed nft) and `removeRunNetworks` (the
 * `ip` ones).
 */
export function removeCommands(id: string): string[][] {
  const n = runNames(id);
  return [
    removeGuardCommand(id),
    ['ip', 'link', 'del', n.peerDev],
    ['ip', 'netns', 'del', n.app],
    ['ip', 'netns', 'del', n.link],
  ];
}

/** Whether anything of run `id` is left: a namespace, the caller's veth end or its guard table. */
export function runLeftovers(id: string): string[] {
  const n = runNames(id);
  const left: string[] = [];
  if (netnsExists(n.app)) left.push(`netns ${n.app}`);
  if (netnsExists(n.link)) left.push(`netns ${n.link}`);
  try {
    run(['ip', 'link', 'show', 'dev', n.peerDev]);
    left.push(`link ${n.peerDev}`);
  } catch {
    // gone
  }
  if (guardExists(id)) left.push(`nft table inet ${guardTable(id)}`);
  return left;
}

/**
 * /etc/resolv.conf for the sandbox: `--dns` servers when given; else the link netns's own (`/etc/netns/NAME/
 * resolv.conf` as `ip netns exec` would bind it, or the host's) without loopback servers, which inside the
 * sandbox would be the sandbox's own loopback.
 */
export function resolvConf(dns: Address[], linkNetns?: string): string {
  if (dns.length) return dns.map((a) => `nameserver ${formatAddress(a)}\n`).join('');
  let text = '';
  for (const path of [...(linkNetns && !isNetnsPath(linkNetns) ? [`/etc/netns/${linkNetns}/resolv.conf`] : []), '/etc/resolv.conf']) {
    try {
      text = readFileSync(path, 'utf8');
      break;
    } catch {
      // next
    }
  }
  const lines = text.split('\n').filter((l) => {
    const m = /^\s*nameserver\s+(\S+)/.exec(l);
    if (!m) return l.trim() !== '';
    const a = parseAddress(m[1]!);
    return a !== null && !isLoopbackAddress(a);
  });
  return lines.length ? lines.join('\n') + '\n' : '';
}

function isLoopbackAddress(a: Address): boolean {
  if (a.length === 4) return a[0] === 127;
  return a.every((b, i) => b === (i === 15 ? 1 : 0));
}

/** Name the gateway (the caller's veth end) gets in the sandbox's /etc/hosts, after podman's host.containers.internal. */
export const GATEWAY_HOSTNAME = 'host.tsvisor.internal';

/** /etc/hosts for the sandbox: localhost, the sandbox's own name on its addresses, and the gateway's name. */
export function hostsFile(addresses: Subnet[], gateways: Address[], name = hostname()): string {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  for (const a of addresses) lines.push(`${formatAddress(a.address)}\t${name}`);
  for (const g of gateways) lines.push(`${formatAddress(g)}\t${GATEWAY_HOSTNAME}`);
  return lines.join('\n') + '\n';
}
