/**
 * One shard of `tsvisor serve --threads N`, run in a worker thread (cli/serve-shards.ts starts it): its own packet
 * socket on the interface as a member of the serve's PACKET_FANOUT_HASH group, its own netstack with the
 * interface's addresses and routes, and its own instance of every service, listening on the same ports as the
 * other shards' (together they are what an SO_REUSEPORT group is to Linux). The kernel's flow hash picks the
 * shard of each connection, so a connection lives and dies on one shard. The main thread keeps the interface's
 * takeover and the stats socket; this thread never changes the interface.
 *
 * What a shard does not own alone: neighbours (every shard sees every ARP and NDP frame and keeps its own cache,
 * answering requests itself, so no frame waits on another thread), ICMP errors (every shard gets a copy; the one
 * with the connection acts on it), and state a service keeps across connections (ShardPeers: iperf3's tests).
 * Connections a shard would open itself are not sharded: their replies would arrive wherever the kernel's hash
 * sends them, which this shard cannot choose, so serve's services only accept connections and answer datagrams.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AfPacketEndpoint } from '../lib/packet.ts';
import { NetnsHandle } from '../lib/netns.ts';
import type { Address, Subnet } from '../netstack/addr.ts';
import type { ImpairSpec } from '../netstack/link/impair.ts';
import { NetError } from '../netstack/errors.ts';
import { servedCounters } from './serve-counters.ts';
import { startService, type RunningService } from './services/registry.ts';
import type { ShardPeers } from './services/service.ts';
import { stackOnLink } from './stack-on-link.ts';
import { unwind } from '../lib/undo.ts';

/** What a shard is told when it starts (structured-cloned into the worker). */
export interface ShardConfig {
  index: number;
  count: number;
  /** The main thread's open fd of the namespace file (fds are process-wide). */
  netnsFd: number;
  dev: string;
  offloads: boolean;
  ringFrames: number;
  /** The fanout group of MTU-sized frames; super-frames use group + 1. */
  group: number;
  addresses: Subnet[];
  routes: { destination: Subnet; gateway?: Address }[];
  gateways: Address[];
  sysctls: { key: string; value: string }[];
  services: { name: string; port?: number }[];
  /** This shard's impairment (the serve's spec, its seed offset by the shard's index). */
  impair?: ImpairSpec;
  /** This shard's capture file. */
  pcap?: string;
}

/** Messages from the main thread. */
export type ToShard =
  | { t: 'open' }
  | { t: 'start' }
  | { t: 'counters'; id: number }
  | { t: 'stop' }
  | { t: 'bus'; service: string; from: number; msg: unknown };

/** Messages to the main thread. */
export type FromShard =
  | { t: 'opened' }
  | { t: 'ready' }
  | { t: 'error'; message: string }
  | { t: 'say'; line: string }
  | { t: 'counters'; id: number; counters: Record<string, number> }
  | { t: 'stopped' }
  | { t: 'bus'; service: string; to: number | 'others'; msg: unknown };

const port = parentPort!;
const cfg = workerData as ShardConfig;
const post = (m: FromShard) => port.postMessage(m);
const undo: (() => void)[] = [];
const unwindAll = () => unwind(undo, (e) => post({ t: 'say', line: `shard ${cfg.index}: while stopping: ${e.message}` }));
let counters: () => Record<string, number> = () => ({});
const busListeners = new Map<string, (from: number, msg: unknown) => void>();
let opened: AfPacketEndpoint | null = null;

/** The other shards, as the services see them; messages travel through the main thread. */
function peersFor(service: string): ShardPeers {
  return {
    self: cfg.index,
    count: cfg.count,
    send: (to, msg) => post({ t: 'bus', service, to, msg }),
    listen: (fn) => void busListeners.set(service, fn),
  };
}

/** Opens this shard's packet socket (the main thread opens the shards one after another: see fanout). */
async function open(): Promise<AfPacketEndpoint> {
  // A handle of our own on the main thread's namespace file: entered by this thread alone.
  const netns = NetnsHandle.open(`/proc/${process.pid}/fd/${cfg.netnsFd}`);
  try {
    return await AfPacketEndpoint.open({
      netns, dev: cfg.dev, offloads: cfg.offloads, superFrames: true, ringFrames: cfg.ringFrames, fanout: { group: cfg.group },
      // No busy polling: a shard that spins after a burst takes the core another shard (or, on a small machine,
      // the peer) needs; measured on 2 cores, 8 concurrent new connections went from about 1,000 to 3,000 per
      // second and 4 streams did not lose (cli/serve-shards.ts, bench/README.md).
      busyPollUs: 0,
    });
  } finally {
    netns.close();
  }
}

/** Builds the stack and the services on the opened endpoint. */
async function start(packet: AfPacketEndpoint): Promise<void> {
  const { netstack, impair } = await stackOnLink(packet, {
    name: cfg.dev, addresses: cfg.addresses, routes: cfg.routes, gateways: cfg.gateways, impair: cfg.impair, pcap: cfg.pcap,
  }, undo);
  for (const { key, value } of cfg.sysctls) {
    const r = netstack.sysctl.set(key, value);
    if ('error' in r) throw new Error(`--sysctl: ${r.error}`);
    if (!r.applied && cfg.index === 0) post({ t: 'say', line: `--sysctl ${key}=${r.value}: ${r.why}` });
  }
  const services: RunningService[] = [];
  undo.push(() => {
    for (const s of services) s.close();
  });
  for (const s of cfg.services) {
    const r = startService(s.name, (f, ty, p) => netstack.socket(f, ty, p), s.port, { peers: peersFor(s.name) });
    if (r instanceof NetError) throw new Error(`cannot start service ${s.name}: ${r}`);
    services.push(...r);
  }
  counters = () => servedCounters(netstack, packet, impair, services);
}

port.on('message', (m: ToShard) => {
  switch (m.t) {
    case 'open':
      open().then((packet) => {
        opened = packet;
        undo.push(() => packet.close());
        post({ t: 'opened' });
      }).catch((e: Error) => {
        unwindAll();
        post({ t: 'error', message: e.message });
      });
      return;
    case 'start':
      // Only once every shard joined the group: before, the kernel hashed flows over fewer members, and a
      // connection begun then would move to another shard in the middle of its handshake.
      start(opened!).then(() => post({ t: 'ready' })).catch((e: Error) => {
        unwindAll();
        post({ t: 'error', message: e.message });
      });
      return;
    case 'counters':
      post({ t: 'counters', id: m.id, counters: counters() });
      return;
    case 'bus':
      busListeners.get(m.service)?.(m.from, m.msg);
      return;
    case 'stop':
      unwindAll();
      post({ t: 'stopped' });
      // Ends this thread only; whatever a closed stack left scheduled has nothing left to do.
      process.exit(0);
  }
});
