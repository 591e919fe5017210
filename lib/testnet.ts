/**
 * Test networks: two fresh network namespaces joined by a veth pair, built with iproute2 and removed again.
 * Every netns test of the team uses this, so it refuses addresses outside the ranges reserved for our tests
 * (198.18.0.0/15 and fd74:7376::/32) and only ever deletes the namespaces it was asked to create.
 */
import { nsRun, run } from './exec.ts';
import { netnsExists } from './netns.ts';

export { nsRun, run };

/** Options for `createVethPair`. */
export interface VethPairOptions {
  /** Namespace name prefix: the namespaces are `${prefix}-a` and `${prefix}-b`. */
  prefix: string;
  /** IPv4 address with prefix length for side A (e.g. "198.18.1.1/24"). */
  addrA?: string;
  /** IPv4 address with prefix length for side B. */
  addrB?: string;
  /** IPv6 address with prefix length for side A (added with nodad, so it is usable at once). */
  addr6A?: string;
  /** IPv6 address with prefix length for side B (nodad). */
  addr6B?: string;
  /** Interface name in A (default "veth-a"). */
  devA?: string;
  /** Interface name in B (default "veth-b"). */
  devB?: string;
  /** MTU of both ends (default: the kernel's 1500). */
  mtu?: number;
  /**
   * Keep TSO/GSO/GRO and checksum offload on (default false: off on both ends, unless the environment has
   * TSVISOR_TEST_OFFLOADS=1, for running the serve tests on veths as containers have them). A packet socket
   * without PACKET_VNET_HDR sees offloaded frames larger than the MTU and with unfinished checksums, so tests of
   * such host links turn them off and the kernel segments and checksums in software.
   */
  offloads?: boolean;
  /** Keep the kernel's IPv6 on interfaces without an IPv6 address (default false: disabled, so no NDP/MLD noise). */
  ipv6?: boolean;
}

/** A namespace pair joined by a veth; `destroy()` removes both namespaces (and so the veth). */
export interface VethPair {
  /** Namespace A's name. */
  readonly nsA: string;
  /** Namespace B's name. */
  readonly nsB: string;
  /** The veth end inside A. */
  readonly devA: string;
  /** The veth end inside B. */
  readonly devB: string;
  /** A's MAC as "aa:bb:cc:dd:ee:ff". */
  readonly macA: string;
  /** B's MAC. */
  readonly macB: string;
  /** Removes both namespaces; idempotent, never throws for what is already gone. */
  destroy(): void;
}

/** Throws unless `cidr` lies in 198.18.0.0/15 or fd74:7376::/32 (the only addresses our tests may use). */
export function assertTestAddress(cidr: string): void {
  const addr = cidr.split('/')[0]!.toLowerCase();
  const v4 = /^198\.(18|19)\.\d{1,3}\.\d{1,3}$/.test(addr);
  const v6 = /^fd74:7376(:|$)/.test(addr);
  if (!v4 && !v6) throw new Error(`address ${cidr} is outside the test ranges 198.18.0.0/15 and fd74:7376::/32`);
}

/** Removes a named namespace if it exists (and with it every interface inside). */
export function deleteNetns(name: string): void {
  if (!netnsExists(name)) return;
  try {
    run(['ip', 'netns', 'del', name]);
  } catch (err) {
    if (netnsExists(name)) throw err;
  }
}

/** Creates namespaces `${prefix}-a` and `${prefix}-b` joined by a veth, addressed and up, loopback up. */
export function createVethPair(opts: VethPairOptions): VethPair {
  if (!/^[A-Za-z0-9_.-]+$/.test(opts.prefix)) throw new Error(`bad namespace prefix "${opts.prefix}"`);
  for (const a of [opts.addrA, opts.addrB, opts.addr6A, opts.addr6B]) if (a !== undefined) assertTestAddress(a);
  const nsA = `${opts.prefix}-a`;
  const nsB = `${opts.prefix}-b`;
  const devA = opts.devA ?? 'veth-a';
  const devB = opts.devB ?? 'veth-b';
  // Leftovers of a crashed earlier run carry our own prefix, so they are ours to remove.
  deleteNetns(nsA);
  deleteNetns(nsB);
  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    deleteNetns(nsA);
    deleteNetns(nsB);
  };
  try {
    run(['ip', 'netns', 'add', nsA]);
    run(['ip', 'netns', 'add', nsB]);
    run(['ip', '-n', nsA, 'link', 'add', devA, 'type', 'veth', 'peer', 'name', devB, 'netns', nsB]);
    const sides: [string, string, string | undefined, string | undefined][] = [
      [nsA, devA, opts.addrA, opts.addr6A],
      [nsB, devB, opts.addrB, opts.addr6B],
    ];
    for (const [ns, dev, v4, v6] of sides) {
      run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      if (opts.mtu !== undefined) run(['ip', '-n', ns, 'link', 'set', dev, 'mtu', String(opts.mtu)]);
      if (!(opts.offloads ?? process.env.TSVISOR_TEST_OFFLOADS === '1')) {
        nsRun(ns, ['ethtool', '-K', dev, 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
      }
      if (v6 === undefined && !opts.ipv6) nsRun(ns, ['sysctl', '-qw', `net.ipv6.conf.${dev}.disable_ipv6=1`]);
      if (v4 !== undefined) run(['ip', '-n', ns, 'addr', 'add', v4, 'dev', dev]);
      if (v6 !== undefined) run(['ip', '-n', ns, 'addr', 'add', v6, 'dev', dev, 'nodad']);
      run(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    }
    const mac = (ns: string, dev: string) =>
      (JSON.parse(run(['ip', '-n', ns, '-j', 'link', 'show', 'dev', dev])) as { address: string }[])[0]!.address;
    return { nsA, nsB, devA, devB, macA: mac(nsA, devA), macB: mac(nsB, devB), destroy };
  } catch (err) {
    destroy();
    throw err;
  }
}
