/**
 * `tsvisor serve`: attach the netstack to an interface inside a network namespace, take its configuration over
 * from the kernel, run services on it, and give everything back on SIGINT, SIGTERM, SIGHUP or SIGQUIT. Killed
 * outright (SIGKILL, a crash), it leaves the takeover's record behind, and the next `serve` or `tsvisor restore`
 * on the interface gives the kernel its configuration back from it (lib/takeover.ts).
 */
import { AfPacketEndpoint } from '../lib/packet.ts';
import { run } from '../lib/exec.ts';
import { NetnsHandle, inNetns, netnsExists } from '../lib/netns.ts';
import { IPV6_MIN_MTU, takeOver, type Takeover } from '../lib/takeover.ts';
import { TapEndpoint } from '../lib/tap.ts';
import { type Address, type Subnet, formatSubnet, isV4, parseAddress, parseSubnet } from '../netstack/addr.ts';
import { NetError } from '../netstack/errors.ts';
import type { LinkEndpoint } from '../netstack/link/endpoint.ts';
import { type ImpairSpec, parseImpairSpec } from '../netstack/link/impair.ts';
import type { Netstack } from '../netstack/netstack.ts';
import { SysctlTable } from '../netstack/sysctl.ts';
import { DEFAULT_TCP_CONFIG } from '../netstack/transport/tcp/protocol.ts';
import { servicePort, startService, SERVICE_NAMES, type RunningService } from './services/registry.ts';
import { intOption, parseArgs, UsageError } from './args.ts';
import { CliError } from './main.ts';
import { servedCounters } from './serve-counters.ts';
import type { ShardConfig } from './serve-shard.ts';
import { stackOnLink } from './stack-on-link.ts';
import { type Shards, startShards } from './serve-shards.ts';
import { StatsServer, statsSocketPath } from './stats.ts';
import { unwind } from '../lib/undo.ts';

/**
 * Receive ring slots for MTU-sized frames (about 26 MB of kernel memory at MTU 1500): the backlog of small frames
 * a peer can get ahead of the stack before the kernel drops them (counted in hostlink.rxDropped). 5,000
 * connections opened at once from a veth peer make about 30,000 frames; on a quiet 2-core machine the stack keeps
 * within this, on one loaded several times over it may not, and TCP then recovers by retransmitting.
 */
const SERVE_RING_FRAMES = 16384;

/** What `serve` runs. */
export interface ServeOptions {
  netns: string;
  dev: string;
  /** Addresses to use instead of the interface's own. */
  addresses?: Subnet[];
  /** Default gateways (one per family at most). */
  gateways?: Address[];
  /** Set the interface's MTU to this for the duration (restored on exit). */
  mtu?: number;
  /** Record every frame in and out to this pcap file. */
  pcap?: string;
  impair?: ImpairSpec;
  services: { name: string; port?: number }[];
  /** Create a TAP device named `dev` in the namespace instead of attaching to an existing interface. */
  tap?: boolean;
  /** Serve counters on a unix socket for `tsvisor stats` (default true). */
  statsSocket?: boolean;
  /**
   * Open the packet socket with PACKET_VNET_HDR so the interface keeps TSO/GSO/GRO and checksum offload (default
   * true; `--no-offloads` turns it off, for an interface whose offloads are off or to compare).
   */
  offloads?: boolean;
  /** Settings by Linux's sysctl names (`--sysctl net.ipv4.tcp_sack=0`, as `docker run --sysctl`), in order. */
  sysctls?: { key: string; value: string }[];
  /**
   * Netstack shards, each on a worker thread of its own (cli/serve-shard.ts), among which the kernel spreads the
   * flows (default 1: the stack on the main thread, no worker).
   */
  threads?: number;
  /**
   * Make the packet socket's large sends on a thread of their own (AfPacketOptions.sendThread): bulk batches (16
   * frames and 256 KB or more) go to it, so the peer's receive that a veth runs inside each send leaves the serving
   * thread. The thread starts with the first such batch, so a serve that only answers requests never has one. On
   * the command line it is on unless `--no-send-thread` (parseServeArgs); left out here, off. The shards of
   * `--threads` never have one.
   */
  sendThread?: boolean;
}

/** The most shards `--threads` takes (a fanout group holds far more; this bounds kernel ring memory). */
const MAX_THREADS = 16;

/** A running `serve`: the stack, its link and services, and how to stop it. */
export interface Served {
  /** The stack and its link; undefined with --threads above 1 (each shard has its own, in its worker). */
  readonly netstack: Netstack | undefined;
  readonly link: LinkEndpoint | undefined;
  readonly addresses: Subnet[];
  readonly services: RunningService[];
  /** Counters of the stack, the host link, the impairment wrapper and the services (summed over shards). */
  counters(): Record<string, number> | Promise<Record<string, number>>;
  /** Stops services, closes the link and gives the interface back to the kernel; idempotent. */
  stop(): Promise<void>;
}

/** Parses `serve`'s arguments into options; every mistake is a UsageError naming it. */
export function parseServeArgs(argv: string[]): ServeOptions {
  const { options: o } = parseArgs(argv, {
    netns: { value: true, required: true },
    dev: { value: true, required: true },
    addr: { value: true, repeat: true },
    gateway: { value: true, repeat: true },
    mtu: { value: true },
    pcap: { value: true },
    impair: { value: true },
    service: { value: true, repeat: true },
    tap: {},
    'no-stats-socket': {},
    'no-offloads': {},
    sysctl: { value: true, repeat: true },
    threads: { value: true },
    'send-thread': {},
    'no-send-thread': {},
  });
  if (o['send-thread'] && o['no-send-thread']) throw new UsageError('--send-thread and --no-send-thread contradict each other: give one');
  // Checked against a table of the same kind the stack will have, so a bad key or value stops serve before it starts.
  const check = new SysctlTable(DEFAULT_TCP_CONFIG, () => {});
  const sysctls = ((o.sysctl as string[] | undefined) ?? []).map((text) => {
    const eq = text.indexOf('=');
    if (eq <= 0) throw new UsageError(`--sysctl: '${text}' is not KEY=VALUE (e.g. net.ipv4.tcp_sack=0)`);
    const key = text.slice(0, eq).replace(/\//g, '.');
    const r = check.set(key, text.slice(eq + 1));
    if ('error' in r) throw new UsageError(`--sysctl: ${r.error}`);
    return { key, value: text.slice(eq + 1) };
  });
  const addresses = ((o.addr as string[] | undefined) ?? []).map((text) => {
    // `ip addr add` would take a bare address as /32 (/128), a network of one that reaches nobody: say so.
    if (!text.includes('/') && parseAddress(text)) {
      throw new UsageError(`--addr: '${text}' has no prefix length: give the network's, e.g. ${text}${text.includes(':') ? '/64' : '/24'} (or /${text.includes(':') ? 128 : 32} for a single address)`);
    }
    const s = parseSubnet(text);
    if (!s) throw new UsageError(`--addr: '${text}' is not an address with a prefix length (e.g. 198.18.0.2/24)`);
    return s;
  });
  const gateways = ((o.gateway as string[] | undefined) ?? []).map((text) => {
    const a = parseAddress(text);
    if (!a) throw new UsageError(`--gateway: '${text}' is not an IP address`);
    return a;
  });
  let impair: ImpairSpec | undefined;
  if (o.impair !== undefined) {
    const r = parseImpairSpec(o.impair as string);
    if (typeof r === 'string') throw new UsageError(`--impair: ${r}`);
    impair = r;
  }
  const services = ((o.service as string[] | undefined) ?? []).map((text) => {
    const m = /^([a-z0-9-]+)(?::(\d+))?$/.exec(text);
    if (!m || !SERVICE_NAMES.includes(m[1]!)) {
      throw new UsageError(`--service: unknown service '${text}' (known: ${SERVICE_NAMES.join(', ')})`);
    }
    return { name: m[1]!, port: m[2] === undefined ? undefined : intOption('service', m[2], 1, 65535) };
  });
  if (o.tap && addresses.length === 0) throw new UsageError('--tap needs at least one --addr');
  const threads = o.threads === undefined ? 1 : intOption('threads', o.threads as string, 1, MAX_THREADS);
  if (threads > 1) {
    // A TAP device has one queue (a multi-queue TAP, one per shard, is not done yet).
    if (o.tap) throw new UsageError(`--threads ${threads} does not go with --tap yet: use --threads 1`);
  }
  return {
    netns: o.netns as string,
    dev: o.dev as string,
    addresses: addresses.length ? addresses : undefined,
    gateways,
    mtu: o.mtu === undefined ? undefined : intOption('mtu', o.mtu as string, 68, 65535),
    pcap: o.pcap as string | undefined,
    impair,
    services,
    tap: Boolean(o.tap),
    statsSocket: !o['no-stats-socket'],
    offloads: !o['no-offloads'],
    sysctls,
    threads,
    sendThread: !o['no-send-thread'],
  };
}

/**
 * Starts serving; throws CliError with a one-line message when the namespace or interface is unusable. `say`
 * hears what the user should know (a dead serve's leftovers restored first, IPv6 left out below MTU 1280).
 */
export async function startServe(opts: ServeOptions, say: (line: string) => void = () => {}): Promise<Served> {
  if (!netnsExists(opts.netns)) throw new CliError(`network namespace '${opts.netns}' does not exist`);
  const undo: (() => void)[] = [];
  const unwindAll = () => unwind(undo, (e) => process.stderr.write(`tsvisor: while restoring: ${e.message}\n`));
  try {
    let host: LinkEndpoint;
    let addresses: Subnet[];
    let routes: { destination: Subnet; gateway?: Address }[] = [];
    if (opts.tap) {
      const kind = interfaceKind(opts.netns, opts.dev);
      if (kind !== null && kind !== 'tun') {
        throw new CliError(`interface '${opts.dev}' already exists in '${opts.netns}' and is a ${kind || 'device'}, not a TAP: ` +
          'drop --tap to take it over, or give --dev a new name for the TAP to create');
      }
      const tap = await TapEndpoint.open({ netns: opts.netns, dev: opts.dev, mtu: opts.mtu, offloads: opts.offloads !== false });
      undo.push(() => tap.close());
      host = tap;
      addresses = opts.addresses!;
    } else {
      // Held for the whole run, restore included: the namespace taken is the one given back to.
      const netns = NetnsHandle.open(opts.netns);
      undo.push(() => netns.close());
      let taken: Takeover;
      try {
        // The MTU too is changed by the takeover, after it recorded the interface as it was.
        taken = takeOver(netns, opts.dev, { mtu: opts.mtu, owner: 'serve' });
      } catch (e) {
        throw new CliError((e as Error).message);
      }
      undo.push(() => taken.restore());
      for (const n of taken.notes) say(n);
      addresses = opts.addresses ?? taken.config.addresses;
      routes = taken.config.routes;
      if (opts.addresses && taken.config.mtu < IPV6_MIN_MTU && opts.addresses.some((a) => !isV4(a.address))) {
        say(`MTU ${taken.config.mtu} is below IPv6's minimum of ${IPV6_MIN_MTU}: leaving out the IPv6 --addr`);
        addresses = addresses.filter((a) => isV4(a.address));
      }
      if ((opts.threads ?? 1) > 1) {
        if (addresses.length === 0) throw new CliError(`interface '${opts.dev}' has no addresses; give --addr`);
        return await startSharded(opts, netns, addresses, routes, undo, unwindAll, say);
      }
      // Without offloads, a peer doing TSO still sends super-frames: taken whole, so TCP from any peer works.
      const packet = await AfPacketEndpoint.open({
        netns, dev: opts.dev, offloads: opts.offloads !== false, superFrames: true, ringFrames: SERVE_RING_FRAMES,
        sendThread: opts.sendThread === true ? 'on-bulk' : false,
      });
      undo.push(() => packet.close());
      host = packet;
    }
    if (addresses.length === 0) throw new CliError(`interface '${opts.dev}' has no addresses; give --addr`);

    const { netstack, link, impair } = await stackOnLink(host, {
      name: opts.dev, addresses, routes, gateways: opts.gateways, impair: opts.impair, pcap: opts.pcap,
    }, undo);

    for (const { key, value } of opts.sysctls ?? []) {
      const r = netstack.sysctl.set(key, value);
      if ('error' in r) throw new CliError(`--sysctl: ${r.error}`);
      if (!r.applied) say(`--sysctl ${key}=${r.value}: ${r.why}`);
    }

    const services: RunningService[] = [];
    undo.push(() => {
      for (const s of services) s.close();
    });
    for (const s of opts.services) {
      const r = startService(s.name, (f, t, p) => netstack.socket(f, t, p), s.port);
      if (r instanceof NetError) throw new CliError(`cannot start service ${s.name}: ${r}`);
      services.push(...r);
    }

    const counters = () => servedCounters(netstack, host, impair, services);
    if (opts.statsSocket !== false) {
      const stats = await StatsServer.listen(statsSocketPath(opts.netns, opts.dev), counters);
      undo.push(() => stats.close());
    }

    let stopped = false;
    return {
      netstack,
      link,
      addresses,
      services,
      counters,
      async stop() {
        if (stopped) return;
        stopped = true;
        unwindAll();
      },
    };
  } catch (e) {
    unwindAll();
    throw e;
  }
}

/**
 * The rest of startServe with `--threads N` above 1: N shards on worker threads, each a member of one fanout
 * group on the interface the main thread took over (and restores: the workers never change it).
 */
async function startSharded(
  opts: ServeOptions,
  netns: NetnsHandle,
  addresses: Subnet[],
  routes: { destination: Subnet; gateway?: Address }[],
  undo: (() => void)[],
  unwindAll: () => void,
  say: (line: string) => void,
): Promise<Served> {
  const n = opts.threads!;
  // Three groups per serve (MTU-sized frames, super-frames, bare SYNs), numbered from the pid: unique among the serves
  // of a namespace (fanout groups belong to a namespace), and a clash names PACKET_FANOUT in its error.
  const group = (process.pid * 4) & 0xfffc;
  const configs: ShardConfig[] = Array.from({ length: n }, (_, index) => ({
    index,
    count: n,
    netnsFd: netns.fd,
    dev: opts.dev,
    offloads: opts.offloads !== false,
    // The shards share the bursts: each ring a share of one thread's, with a floor for a shard that gets most.
    ringFrames: Math.max(4096, Math.ceil(SERVE_RING_FRAMES / n)),
    group,
    addresses,
    routes,
    gateways: opts.gateways ?? [],
    sysctls: opts.sysctls ?? [],
    services: opts.services,
    // Each shard its own impairment stream (a seed of its own) and its own capture file.
    impair: opts.impair && { ...opts.impair, seed: opts.impair.seed + index },
    pcap: opts.pcap && shardPcap(opts.pcap, index),
  }));
  if (opts.pcap) say(`--pcap with --threads ${n}: one file per shard, ${shardPcap(opts.pcap, 0)} … ${shardPcap(opts.pcap, n - 1)} (mergecap -w FILE joins them)`);
  let shards: Shards;
  try {
    shards = await startShards(configs, say);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  // On a sync unwind (an exception on the way out) the workers are ended at once; stop() ends them first, gently.
  undo.push(() => shards.terminate());
  const counters = () => shards.counters();
  if (opts.statsSocket !== false) {
    const stats = await StatsServer.listen(statsSocketPath(opts.netns, opts.dev), counters);
    undo.push(() => stats.close());
  }
  // An exit that does not wait for stop() (an uncaught exception) still gives the interface back: synchronously,
  // with the workers ended at once, as the single-thread path's stop() does.
  const onExit = () => unwindAll();
  process.once('exit', onExit);
  let stopped = false;
  return {
    netstack: undefined,
    link: undefined,
    addresses,
    // Each shard runs every service; these describe them once, for the banner.
    services: opts.services.map((s) => ({ name: s.name, proto: 'tcp', port: servicePort(s.name, s.port), stats: {}, close() {} })),
    counters,
    async stop() {
      if (stopped) return;
      stopped = true;
      await shards.stop();
      unwindAll();
      process.off('exit', onExit);
    },
  };
}

/** The capture file of shard `index` for `--pcap FILE`: FILE with `.shard<i>` before its extension. */
export function shardPcap(file: string, index: number): string {
  const dot = file.lastIndexOf('.');
  const slash = file.lastIndexOf('/');
  return dot > slash + 1 ? `${file.slice(0, dot)}.shard${index}${file.slice(dot)}` : `${file}.shard${index}`;
}

/** The kind of interface `dev` in `netns` ('veth', 'tun', … or '' for a plain device), or null when there is none. */
function interfaceKind(netns: string, dev: string): string | null {
  let info: { linkinfo?: { info_kind?: string } }[];
  try {
    info = JSON.parse(inNetns(netns, () => run(['ip', '-d', '-j', 'link', 'show', 'dev', dev])));
  } catch {
    return null;
  }
  return info[0]?.linkinfo?.info_kind ?? '';
}

/** Signals after which serve gives the interface back and exits 0 (SIGHUP: the terminal went; SIGQUIT: Ctrl-\\). */
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/** The `serve` command: runs until SIGINT, SIGTERM, SIGHUP or SIGQUIT, then restores the interface and exits 0. */
export async function serveCommand(argv: string[]): Promise<number> {
  const opts = parseServeArgs(argv);
  // Listening from the start: a signal during set-up stops serve once set-up is done, rather than killing it with
  // the interface half taken (which the record would repair, but only on the next serve).
  let resolveStop!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStop = resolve));
  for (const sig of STOP_SIGNALS) process.on(sig, resolveStop);
  let served: Served;
  try {
    served = await startServe(opts, (line) => process.stderr.write(`tsvisor: ${line}\n`));
  } catch (e) {
    for (const sig of STOP_SIGNALS) process.off(sig, resolveStop);
    if (e instanceof CliError) throw e;
    throw new CliError((e as Error).message);
  }
  // An uncaught exception still gives the interface back (the steps are synchronous).
  const onExit = () => void served.stop();
  process.once('exit', onExit);
  const list = served.addresses.map(formatSubnet).join(' ');
  const threads = (opts.threads ?? 1) > 1 ? `, ${opts.threads} threads` : '';
  process.stderr.write(`tsvisor: serving on ${opts.netns}/${opts.dev} (${list}${threads})` +
    (served.services.length ? `; services ${[...new Set(served.services.map((s) => `${s.name}:${s.port}`))].join(' ')}` : '') + '\n');
  process.stdout.write('tsvisor: ready\n');
  await stopped;
  await served.stop();
  process.off('exit', onExit);
  for (const sig of STOP_SIGNALS) process.off(sig, resolveStop);
  return 0;
}
