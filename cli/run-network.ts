/**
 * The network of a `tsvisor run` in sandbox and none modes: its namespaces, the netstack on the link and the
 * --publish forwarders. Loaded only for those modes, so that host mode loads none of the netstack.
 */
import type { HostLinkCounters } from '../lib/counters.ts';
import { sys } from '../lib/libc.ts';
import { inNetns } from '../lib/netns.ts';
import { type Address, type Subnet, formatSubnet } from '../netstack/addr.ts';
import type { Netstack } from '../netstack/netstack.ts';
import { createAppNetns, createVeth, hostsFile, nameNetns, removeRunNetworks, resolvConf, runNames } from '../sentry/sandbox/netns.ts';
import { CliError } from './main.ts';
import type { RunOptions } from './run.ts';
import { stackOnLink } from './stack-on-link.ts';

/** The network a run's program gets, once made. */
export interface RunNetwork {
  /** The app netns (name) the program runs in; absent in host mode. */
  appNetns?: string;
  /** The netstack that serves the program's socket calls; absent in host mode. */
  netstack?: Netstack;
  /** The veth (or taken-over device) the netstack reads and writes, with its own counters (ring drops). */
  hostLink?: { refreshCounters(): HostLinkCounters };
  /** The sandbox's addresses. */
  addresses: Subnet[];
  gateways: Address[];
  /** Files to bind into the sandbox: /etc/resolv.conf and /etc/hosts. */
  files: { path: string; content: string }[];
  /** What was made where, for the log. */
  describe: string;
}

/**
 * Makes the run's namespaces, netstack and --publish forwarders; pushes their undoing onto `undo`. The janitor is already watching
 * `id`'s names, so a crash in here leaves nothing behind either.
 */
export async function makeNetwork(o: RunOptions, id: string, undo: (() => void)[], log: (l: string) => void): Promise<RunNetwork> {
  const names = runNames(id);
  undo.push(() => removeRunNetworks(id));
  if (o.network === 'none') {
    const t0 = performance.now();
    createAppNetns(id, { addresses: [], gateways: [] });
    log(`timing netns=${(performance.now() - t0).toFixed(1)}`);
    const t1 = performance.now();
    const { netstack } = await stackOnLink(undefined, { name: 'lo', addresses: [], loopback: true }, undo);
    log(`timing netstack=${(performance.now() - t1).toFixed(1)}`);
    return {
      appNetns: names.app,
      netstack,
      addresses: [],
      gateways: [],
      files: [
        { path: '/etc/resolv.conf', content: resolvConf(o.dns) },
        { path: '/etc/hosts', content: hostsFile([], []) },
      ],
      describe: `app netns ${names.app} with lo only`,
    };
  }

  // The host link's code (the packet socket, the takeover, the guard, published ports) loads only for a network
  // that needs it: a loopback-only run starts without it.
  const [{ AfPacketEndpoint }, { takeOver }, { Publisher }, { installGuard, removeGuard }] = await Promise.all([
    import('../lib/packet.ts'),
    import('../lib/takeover.ts'),
    import('../sentry/sandbox/publish.ts'),
    import('../sentry/sandbox/veth-guard.ts'),
  ]);
  const t0 = performance.now();
  let linkNetns: string;
  let dev: string;
  let addresses: Subnet[];
  let gateways: Address[];
  let routes: { destination: Subnet; gateway?: Address }[] = [];
  let ownVeth = false;
  let describe: string;
  if (o.netns === undefined) {
    const veth = createVeth(id);
    ownVeth = true;
    // Keeps the program off every address of the caller's netns but the gateway (see veth-guard.ts). Only here:
    // with --netns the caller's netns holds no veth of ours, and the user's namespace is guarded by its owner.
    undo.push(() => removeGuard(id));
    const tg = performance.now();
    try {
      installGuard(id, veth.peerDev);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    log(`timing guard=${(performance.now() - tg).toFixed(1)}`);
    linkNetns = veth.netns;
    dev = veth.dev;
    addresses = veth.addresses;
    gateways = veth.peerAddresses.map((s) => s.address);
    describe = `veth ${veth.peerDev} (${veth.peerAddresses.map(formatSubnet).join(' ')}) ↔ ${linkNetns}/${dev} ` +
      `(${addresses.map(formatSubnet).join(' ')})`;
  } else {
    linkNetns = nameNetns(id, o.netns);
    dev = o.dev!;
    if (inNetns(linkNetns, () => sys.ifNameToIndex(dev)) === 0) throw new CliError(`no interface '${dev}' in network namespace '${o.netns}': check --dev`);
    let taken;
    try {
      taken = takeOver(linkNetns, dev, { owner: 'run' });
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    undo.push(() => (o.netnsGoes ? taken.discard() : taken.restore()));
    addresses = o.addresses.length ? o.addresses : taken.config.addresses;
    routes = taken.config.routes;
    gateways = o.gateways.length ? o.gateways
      : routes.filter((r) => r.gateway && r.destination.prefixLength === 0).map((r) => r.gateway!);
    if (addresses.length === 0) throw new CliError(`interface '${dev}' in '${o.netns}' has no addresses: give --addr`);
    describe = `took over ${o.netns}/${dev} (${addresses.map(formatSubnet).join(' ')})`;
  }
  const appNetns = createAppNetns(id, { addresses, gateways });
  log(`timing netns=${(performance.now() - t0).toFixed(1)}`);

  const t1 = performance.now();
  const packet = await AfPacketEndpoint.open({ netns: linkNetns, dev, offloads: true });
  // A namespace that goes with the run goes with its sockets whenever the kernel has released them: the exit need
  // not wait for that (an OCI container's, which the engine waits for).
  undo.push(() => (o.netnsGoes ? packet.closeInBackground() : packet.close()));
  const { netstack } = await stackOnLink(packet, {
    name: dev,
    addresses,
    routes,
    gateways: o.netns === undefined || o.gateways.length ? gateways : [],
    pcap: o.pcapLog,
    impair: o.impair,
    loopback: true,
    dadTransmits: ownVeth ? 0 : undefined,
  }, undo);
  log(`timing netstack=${(performance.now() - t1).toFixed(1)}`);
  if (o.publish.length) {
    try {
      const pub = await Publisher.start(netstack, o.publish, addresses.map((a) => a.address));
      undo.push(() => pub.close());
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  }
  return {
    appNetns,
    netstack,
    hostLink: packet,
    addresses,
    gateways,
    files: [
      { path: '/etc/resolv.conf', content: resolvConf(o.dns, o.netns) },
      { path: '/etc/hosts', content: hostsFile(addresses, ownVeth ? gateways : []) },
    ],
    describe,
  };
}
