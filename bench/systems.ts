/**
 * The systems under test, each built as its own topology of namespaces and veth pairs in 198.18.0.0/15, with the
 * services serving inside a namespace and the stock clients run from a client namespace outside it:
 *
 * - kernel: client ns ⇄ veth (offloads on) ⇄ server ns; iperf3 -s, sockperf server, node:http and a hold server
 *   run on the Linux stack in the server ns.
 * - tsvisor: the same veth pair with offloads on (serve's packet socket takes TSO/GRO super-frames through
 *   PACKET_VNET_HDR), and `tsvisor serve` as a child process owning the server end, with its iperf3, sockperf, http
 *   and discard services. TSVISOR_BENCH_NO_OFFLOADS=1 turns offloads off on the veth and in serve, to compare.
 * - pasta / slirp4netns: the client ns has a veth (to a peer ns of ours, its default route) whose address is the
 *   "host" address; pasta or slirp4netns runs in the client ns, creates a tap in a guest ns where the same kernel
 *   servers as for `kernel` run, and forwards the client ns's ports to the guest. The client connects to its own
 *   veth address, so connections are not from loopback (no splice: the traffic takes the tap path), and nothing
 *   leaves the bench's namespaces. pasta runs with `--runas 0` as root.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { createVethPair, deleteNetns, run } from '../lib/testnet.ts';
import { SERVICE_NAMES } from '../cli/services/registry.ts';
import type { FloodPath } from './synflood.ts';
import { haveTool, nodeProgram, nsRunAsync, onCleanup, startDaemon, tsvisorCommand, waitUntil, type Daemon } from './proc.ts';

/** Names of the systems, in report order (kernel first: the others' ratios refer to it). */
export const SYSTEMS = ['kernel', 'tsvisor', 'pasta', 'slirp4netns'] as const;
/** A system's name. */
export type SystemName = (typeof SYSTEMS)[number];

/** Services a test needs on the serving side. */
export type ServiceKind = 'iperf3' | 'sockperf' | 'http' | 'hold' | 'echo';

/** What a memory probe measured, in bytes. */
export interface MemorySample {
  bytes: number;
  /** How it was measured, for the report. */
  what: string;
}

/** A system built and serving. */
export interface SystemInstance {
  readonly name: SystemName;
  /** Namespace the clients run in. */
  readonly clientNs: string;
  /** Address the clients connect to. */
  readonly host: string;
  /** Services that are serving; a test whose service is missing is skipped with `missing[kind]`. */
  readonly missing: Partial<Record<ServiceKind, string>>;
  /** Memory charged to serving connections now (RSS of the serving process, or kernel slab). */
  memory(): MemorySample;
  /** How many kernel sockets the measurement counts per connection (2 for kernel: both ends are kernel sockets). */
  readonly memoryDivisor: number;
  /**
   * Where the syn-flood row floods from (the client's end of the serving veth), for systems whose serving side
   * owns that veth and routes FLOOD_NET back through the client namespace; absent otherwise.
   */
  readonly flood?: FloodPath;
  /**
   * Seconds of unmeasured load before http-rps and http-keepalive (default: run.ts's WARM_UP_SECONDS, 3): a
   * sharded serve's shards are V8 isolates of their own, each compiling its new-connection path from its share of
   * the connections (measured on 2 cores at 8 concurrent: after 1 s two shards served about a quarter of one
   * thread's rate, after 5 s as much).
   */
  readonly warmUpSeconds?: number;
  /** Stops the services and removes the topology. */
  stop(): Promise<void>;
}

/** Debian packages of the tools the bench runs, for skip reasons. */
export const PACKAGE_OF: Record<string, string> = {
  pasta: 'passt',
  slirp4netns: 'slirp4netns',
  sockperf: 'sockperf',
  iperf3: 'iperf3',
  wrk: 'wrk',
  cc: 'gcc',
  ip: 'iproute2',
  ethtool: 'ethtool',
};

/** Why a system cannot run on this machine, or null when it can (a missing client only skips its tests). */
export function unavailable(name: SystemName): string | null {
  const need: Record<SystemName, string[]> = {
    kernel: ['ip', 'ethtool'],
    tsvisor: ['ip', 'ethtool'],
    pasta: ['ip', 'ethtool', 'pasta'],
    slirp4netns: ['ip', 'ethtool', 'slirp4netns'],
  };
  const missing = need[name].filter((t) => !haveTool(t));
  if (missing.length) return `not installed: ${missing.map((t) => PACKAGE_OF[t] ?? t).join(', ')} (Debian package)`;
  return null;
}


/** The kernel-side servers in `ns`: iperf3, sockperf TCP and UDP (when installed), node:http, hold and echo. */
async function kernelServers(ns: string): Promise<Daemon[]> {
  const exec = ['ip', 'netns', 'exec', ns];
  const ds = [startDaemon([...exec, ...nodeProgram('bench/peers/servers.ts')])];
  let expect = 3;
  if (haveTool('iperf3')) {
    ds.push(startDaemon([...exec, 'iperf3', '-s', '-p', '5201']));
    expect += 1;
  }
  if (haveTool('sockperf')) {
    ds.push(startDaemon([...exec, 'sockperf', 'server', '--tcp', '-p', '11111']));
    ds.push(startDaemon([...exec, 'sockperf', 'server', '-p', '11111']));
    expect += 2;
  }
  const ok = await waitUntil(async () => (await listening(ns)).size >= expect, 15000, 100);
  if (!ok) {
    await Promise.all(ds.map((d) => d.stop()));
    throw new Error(`kernel servers in ${ns} did not start: ${ds.map((d) => d.output().trim().slice(-200)).join(' | ')}`);
  }
  return ds;
}

/** The "proto:port" sockets listening in `ns` among the ones the bench uses. */
async function listening(ns: string): Promise<Set<string>> {
  const r = await nsRunAsync(ns, ['ss', '-Hlntu'], 5000);
  const found = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^(tcp|udp)\s+\S+\s+\d+\s+\d+\s+\S+:(\d+)\s/.exec(line);
    if (m && ['5201', '11111', '80', '9', '7'].includes(m[2]!)) found.add(`${m[1]}:${m[2]}`);
  }
  return found;
}

/** Resident set size of a process, bytes. */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Bytes in use in every slab cache (active objects × object size), from /proc/slabinfo. */
export function slabBytes(text = readFileSync('/proc/slabinfo', 'utf8')): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.startsWith('slabinfo')) continue;
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const active = Number(f[1]);
    const size = Number(f[3]);
    if (Number.isFinite(active) && Number.isFinite(size)) total += active * size;
  }
  return total;
}

/**
 * Names of the bench's namespaces start with this (TSVISOR_BENCH_NS, default "tsv-bench"), so that two benches
 * (two engineers on one machine) do not take each other's namespaces.
 */
const NS_BASE = process.env.TSVISOR_BENCH_NS || 'tsv-bench';

function vethSystem(prefix: string, subnet: string, mtu: number, offloads: boolean) {
  const pair = createVethPair({ prefix, addrA: `${subnet}.1/24`, addrB: `${subnet}.2/24`, mtu, offloads });
  onCleanup(() => pair.destroy());
  return pair;
}

/**
 * TSVISOR_BENCH_NET ("A.B.C", a /24 of 198.18.0.0/15) puts the kernel and tsvisor systems in /28s of that one
 * network (kernel .1/.2, tsvisor .17/.18), for an engineer given a /24 of their own on a shared machine; pasta
 * and slirp4netns keep their fixed networks.
 */
const BENCH_NET = process.env.TSVISOR_BENCH_NET;
if (BENCH_NET !== undefined && !/^198\.(18|19)\.\d{1,3}$/.test(BENCH_NET)) {
  throw new Error(`TSVISOR_BENCH_NET must be the first three octets of a /24 in 198.18.0.0/15 (e.g. 198.18.150), not '${BENCH_NET}'`);
}

/**
 * A veth system in subnet `subnet` (a /24), or in the `slot`th /28 of TSVISOR_BENCH_NET; returns it, the served
 * address and the client's (the serving side's gateway to the syn-flood row's spoofed sources).
 */
function vethSystemIn(prefix: string, subnet: string, slot: number, mtu: number, offloads: boolean) {
  const made = BENCH_NET === undefined
    ? { pair: vethSystem(prefix, subnet, mtu, offloads), host: `${subnet}.2`, client: `${subnet}.1` }
    : (() => {
        const base = slot * 16;
        const pair = createVethPair({ prefix, addrA: `${BENCH_NET}.${base + 1}/28`, addrB: `${BENCH_NET}.${base + 2}/28`, mtu, offloads });
        onCleanup(() => pair.destroy());
        return { pair, host: `${BENCH_NET}.${base + 2}`, client: `${BENCH_NET}.${base + 1}` };
      })();
  // The whole port range for the clients: the servers close first and keep every connection in TIME-WAIT for 60 s,
  // so with Linux's 28,232 ports a client reuses a 4-tuple still in TIME-WAIT after some ten thousand connections
  // (the http-rps rows make that many), and each such SYN may cost a retransmission of a second.
  run(['ip', 'netns', 'exec', made.pair.nsA, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65535']);
  clientReusesTimeWait(made.pair.nsA);
  return made;
}

/**
 * wrk often closes a `Connection: close` connection before the server's FIN arrives, so the client side holds
 * TIME-WAIT too, and once most of its ports are in it connect() spends its time searching for a free one: the
 * kernel system, the fastest, served 8,800 req/s at 8 concurrent and then 246 at 32 in the same client namespace
 * (5 s each; 32,337 client sockets in TIME-WAIT), which made the http-rps row at 32 measure the client's port
 * search of whichever system went fastest before it. tcp_tw_reuse=1 (a load generator's usual setting; Linux
 * reuses a TIME-WAIT port for a new connection once timestamps make it safe) gives every system's client the
 * same unbounded supply: 18,100 req/s at 32 in the same sequence.
 */
function clientReusesTimeWait(ns: string): void {
  run(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1']);
}

/**
 * The syn-flood row's spoofed sources: off every veth's subnet, so that the serving side sends its answers to the
 * client namespace as its gateway (which drops them), never resolving a flood address; the upper half of
 * TSVISOR_BENCH_NET when given (its /28s are the systems'), else 198.18.130.0/24.
 */
const FLOOD_NET = BENCH_NET === undefined ? '198.18.130.0/24' : `${BENCH_NET}.128/25`;

async function startKernel(mtu: number): Promise<SystemInstance> {
  const { pair, host, client } = vethSystemIn(`${NS_BASE}-k`, '198.18.100', 0, mtu, true);
  let servers: Daemon[] = [];
  try {
    // The syn-flood row's spoofed sources are answered through the client namespace, which drops the answers.
    run(['ip', '-n', pair.nsB, 'route', 'add', FLOOD_NET, 'via', client]);
    servers = await kernelServers(pair.nsB);
  } catch (e) {
    pair.destroy();
    throw e;
  }
  return {
    name: 'kernel',
    clientNs: pair.nsA,
    host,
    missing: {},
    flood: { dev: pair.devA, mac: pair.macA, serverMac: pair.macB, net: FLOOD_NET },
    memory: () => ({ bytes: slabBytes(), what: 'kernel slab (active objects × size, /proc/slabinfo), both ends / 2' }),
    memoryDivisor: 2,
    async stop() {
      await Promise.all(servers.map((d) => d.stop()));
      pair.destroy();
    },
  };
}

const TSVISOR_SERVICES: Record<ServiceKind, string> = { iperf3: 'iperf3', sockperf: 'sockperf', http: 'http', hold: 'discard', echo: 'echo' };

/** Whether the tsvisor system runs without offloads (TSVISOR_BENCH_NO_OFFLOADS=1), for a before/after comparison. */
const TSVISOR_NO_OFFLOADS = process.env.TSVISOR_BENCH_NO_OFFLOADS === '1';
/** Whether the tsvisor system keeps every send on its serving thread (TSVISOR_BENCH_SEND_THREAD=0: `--no-send-thread`). */
const TSVISOR_NO_SEND_THREAD = process.env.TSVISOR_BENCH_SEND_THREAD === '0';

async function startTsvisor(mtu: number, threads: number): Promise<SystemInstance> {
  const { pair, host, client } = vethSystemIn(`${NS_BASE}-t`, '198.18.101', 1, mtu, !TSVISOR_NO_OFFLOADS);
  const missing: Partial<Record<ServiceKind, string>> = {};
  // The gateway takes the syn-flood row's answers to FLOOD_NET back to the client namespace (see startKernel).
  const args = ['serve', '--netns', pair.nsB, '--dev', pair.devB, '--no-stats-socket', '--gateway', client];
  if (TSVISOR_NO_OFFLOADS) args.push('--no-offloads');
  if (TSVISOR_NO_SEND_THREAD) args.push('--no-send-thread');
  if (threads > 1) args.push('--threads', String(threads));
  for (const [kind, svc] of Object.entries(TSVISOR_SERVICES) as [ServiceKind, string][]) {
    if (SERVICE_NAMES.includes(svc)) args.push('--service', svc);
    else missing[kind] = `tsvisor has no '${svc}' service yet`;
  }
  const serve = startDaemon([...tsvisorCommand(), ...args]);
  try {
    await serve.waitFor(/tsvisor: ready/, 20000);
  } catch (e) {
    await serve.stop();
    pair.destroy();
    throw e;
  }
  return {
    name: 'tsvisor',
    clientNs: pair.nsA,
    host,
    missing,
    flood: { dev: pair.devA, mac: pair.macA, serverMac: pair.macB, net: FLOOD_NET },
    memory: () => ({ bytes: rssOf(serve.pid), what: 'RSS of the tsvisor serve process' }),
    warmUpSeconds: 3 + 2 * (threads - 1),
    memoryDivisor: 1,
    async stop() {
      await serve.stop();
      pair.destroy();
    },
  };
}

/** A client ns with a veth to a peer ns (its default route) and an empty guest ns for pasta/slirp4netns. */
function userspaceTopology(prefix: string, subnet: string) {
  const pair = vethSystem(prefix, subnet, 1500, true);
  run(['ip', '-n', pair.nsA, 'route', 'add', 'default', 'via', `${subnet}.2`]);
  clientReusesTimeWait(pair.nsA);
  const guest = `${prefix}-g`;
  deleteNetns(guest);
  run(['ip', 'netns', 'add', guest]);
  onCleanup(() => deleteNetns(guest));
  run(['ip', '-n', guest, 'link', 'set', 'lo', 'up']);
  return {
    pair,
    guest,
    destroy() {
      pair.destroy();
      deleteNetns(guest);
    },
  };
}

async function startPasta(mtu: number): Promise<SystemInstance> {
  const topo = userspaceTopology(`${NS_BASE}-p`, '198.18.102');
  const host = '198.18.102.1';
  let servers: Daemon[] = [];
  let pasta: Daemon | null = null;
  try {
    servers = await kernelServers(topo.guest);
    pasta = startDaemon([
      'ip', 'netns', 'exec', topo.pair.nsA,
      'pasta', '-f', '-q', '-4', '--runas', '0', '--config-net', '--netns', topo.guest, '-I', 'tap0',
      '-a', '198.18.103.2', '-n', '24', '-g', '198.18.103.1', '-m', String(mtu),
      '-t', '5201,11111,80,9', '-u', '11111', '-T', 'none', '-U', 'none',
    ]);
    const p = pasta;
    const ok = await waitUntil(async () => (await listening(topo.pair.nsA)).size >= 5 || p.child.exitCode !== null, 10000, 100);
    if (!ok || p.child.exitCode !== null) throw new Error(`pasta did not start: ${p.output().trim().slice(-300)}`);
  } catch (e) {
    await pasta?.stop();
    await Promise.all(servers.map((d) => d.stop()));
    topo.destroy();
    throw e;
  }
  const pid = pasta.pid;
  return {
    name: 'pasta',
    clientNs: topo.pair.nsA,
    host,
    missing: {},
    memory: () => ({ bytes: rssOf(pid), what: 'RSS of the pasta process' }),
    memoryDivisor: 1,
    async stop() {
      await pasta!.stop();
      await Promise.all(servers.map((d) => d.stop()));
      topo.destroy();
    },
  };
}

/** Sends one request to slirp4netns's API socket and returns its answer. */
function slirpApi(path: string, request: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.end(JSON.stringify(request));
  });
}

async function startSlirp(mtu: number): Promise<SystemInstance> {
  const topo = userspaceTopology(`${NS_BASE}-s`, '198.18.104');
  const host = '198.18.104.1';
  const api = `/tmp/tsv-bench-slirp-${process.pid}.sock`;
  onCleanup(() => run(['rm', '-f', api]));
  let servers: Daemon[] = [];
  let slirp: Daemon | null = null;
  try {
    servers = await kernelServers(topo.guest);
    run(['rm', '-f', api]);
    slirp = startDaemon([
      'ip', 'netns', 'exec', topo.pair.nsA,
      'slirp4netns', '--configure', `--mtu=${Math.min(mtu, 65520)}`, '--disable-host-loopback', '--cidr', '198.18.105.0/24',
      '--netns-type=path', '--api-socket', api, `/var/run/netns/${topo.guest}`, 'tap0',
    ]);
    const s = slirp;
    // Up once tap0 has its address and the API socket exists: slirp4netns configures the tap before it binds the
    // socket, and a forward asked for in between met ENOENT (session 19: every MTU 1500 row skipped so).
    const up = await waitUntil(async () => {
      if (s.child.exitCode !== null) return true;
      if (!existsSync(api)) return false;
      const r = await nsRunAsync(topo.guest, ['ip', '-br', 'addr', 'show', 'tap0'], 3000);
      return /198\.18\.105\./.test(r.stdout);
    }, 10000, 100);
    if (!up || s.child.exitCode !== null) throw new Error(`slirp4netns did not start: ${s.output().trim().slice(-300)}`);
    const forwards: [string, number][] = [['tcp', 5201], ['tcp', 11111], ['tcp', 80], ['tcp', 9], ['udp', 11111]];
    for (const [proto, port] of forwards) {
      const answer = await slirpApi(api, { execute: 'add_hostfwd', arguments: { proto, host_addr: host, host_port: port, guest_port: port } });
      if (!answer.includes('return')) throw new Error(`slirp4netns refused forwarding ${proto}/${port}: ${answer}`);
    }
  } catch (e) {
    await slirp?.stop();
    await Promise.all(servers.map((d) => d.stop()));
    topo.destroy();
    throw e;
  }
  const pid = slirp.pid;
  return {
    name: 'slirp4netns',
    clientNs: topo.pair.nsA,
    host,
    missing: {},
    memory: () => ({ bytes: rssOf(pid), what: 'RSS of the slirp4netns process' }),
    memoryDivisor: 1,
    async stop() {
      await slirp!.stop();
      await Promise.all(servers.map((d) => d.stop()));
      topo.destroy();
      run(['rm', '-f', api]);
    },
  };
}

/** Builds `name` with links of `mtu` and starts its services (tsvisor's serve with `threads` shards). */
export function startSystem(name: SystemName, mtu: number, opts: { threads?: number } = {}): Promise<SystemInstance> {
  switch (name) {
    case 'kernel':
      return startKernel(mtu);
    case 'tsvisor':
      return startTsvisor(mtu, opts.threads ?? 1);
    case 'pasta':
      return startPasta(mtu);
    case 'slirp4netns':
      return startSlirp(mtu);
  }
}
