/**
 * The guard on a run's veth in the caller's netns: an nftables table `tsvisor-<id>` (family inet) whose input
 * hook drops what arrives on the run's veth for a local address of the caller's netns other than the veth's own.
 *
 * Why: the sandbox routes to its gateway, the caller's end of the veth, and Linux's weak-host model delivers a
 * packet to any local address whatever interface it came in on, so without this the program reaches the host's
 * uplink address, docker0, other veths, every listener on 0.0.0.0 there. The gateway itself stays reachable: it is
 * the designed peer (DNS, a server of the caller's on it). Loopback addresses are already martians on a veth.
 *
 * The rule asks the kernel twice: `fib daddr type local` (the address is the caller netns's own) and
 * `fib daddr . iif type local` (it is on the interface the packet came in on). This is the veth's own addresses
 * exactly, IPv4, the fd74:7376::/64 one and its link-local alike, without listing them, so neighbour discovery
 * to the gateway (multicast solicitations, unicast ones to either address) passes. ARP is not seen by inet tables.
 * Broadcast and multicast are not local destinations and pass, as they would reach the gateway anyway.
 *
 * Only `--network=sandbox` without `--netns` makes one: with `--netns` the netstack takes over an interface in a
 * namespace the user chose and the caller's netns holds no veth of ours; host mode is the caller's netns itself,
 * and none mode has no link at all.
 */
import { execFileSync } from 'node:child_process';

/** The name of run `id`'s table (family inet) in the caller's netns. */
export function guardTable(id: string): string {
  return `tsvisor-${id}`;
}

/** The nft script that makes run `id`'s table, guarding the caller's end `peerDev` of its veth. */
export function guardRuleset(id: string, peerDev: string): string {
  return `table inet ${guardTable(id)} {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "${peerDev}" fib daddr type local fib daddr . iif type != local drop
  }
}
`;
}

/** The command that removes run `id`'s table, for the exit path and the janitor alike. */
export function removeGuardCommand(id: string): string[] {
  return ['nft', 'delete', 'table', 'inet', guardTable(id)];
}

/** Installs run `id`'s table in the calling thread's netns in one `nft -f -`; throws one line naming the cause and the fix. */
export function installGuard(id: string, peerDev: string): void {
  try {
    execFileSync('nft', ['-f', '-'], { input: guardRuleset(id, peerDev), stdio: ['pipe', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer; message: string };
    if (e.code === 'ENOENT') {
      throw new Error('nft not found on PATH: install nftables (apt-get install nftables); --network=sandbox needs it to keep the program off the caller\'s own addresses');
    }
    const why = (e.stderr?.toString() ?? '').split('\n').find((l) => l.startsWith('Error:'))?.replace(/^Error:\s*/, '') ?? e.message;
    throw new Error(`the kernel refused the nftables table ${guardTable(id)} that keeps the program off the caller's own addresses (${why.trim()}): ` +
      'it needs nf_tables with fib (modprobe nf_tables nft_fib_inet), and nft from nftables (apt-get install nftables)');
  }
}

/** Removes run `id`'s table; never throws for one already gone. */
export function removeGuard(id: string): void {
  try {
    execFileSync(removeGuardCommand(id)[0]!, removeGuardCommand(id).slice(1), { stdio: 'ignore' });
  } catch {
    // already gone, or never made
  }
}

/** Whether run `id`'s table is still in the calling thread's netns. */
export function guardExists(id: string): boolean {
  try {
    execFileSync('nft', ['list', 'table', 'inet', guardTable(id)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
