/**
 * The services `tsvisor serve --service NAME[:PORT]` knows, by name. A name may run over several transports
 * (echo over UDP and TCP); each transport's instance is one RunningService.
 */
import { NetError } from '../../netstack/errors.ts';
import { httpService } from './http.ts';
import { iperf3Service } from './iperf3.ts';
import type { ShardPeers, SocketFactory } from './service.ts';
import { tcpSockperf, udpSockperf } from './sockperf.ts';
import { tcpChargen, tcpDiscard, tcpEcho } from './tcp.ts';
import { udpChargen, udpDiscard, udpEcho } from './udp.ts';

/** One service instance on one transport. */
export interface RunningService {
  readonly name: string;
  readonly proto: 'udp' | 'tcp';
  readonly port: number;
  readonly stats: Readonly<Record<string, number>>;
  close(): void;
}

type Starter = (sockets: SocketFactory, port: number, shard: ShardExtras) => { port: number; stats: object; close(): void } | NetError;

/** What a service on one shard of `serve --threads N` gets besides its sockets. */
export interface ShardExtras {
  /** The same service on the other shards (absent with one thread). */
  peers?: ShardPeers;
}

interface Definition {
  readonly defaultPort: number;
  readonly udp?: Starter;
  readonly tcp?: Starter;
}

const DEFINITIONS: Record<string, Definition> = {
  echo: { defaultPort: 7, udp: udpEcho, tcp: tcpEcho },
  discard: { defaultPort: 9, udp: udpDiscard, tcp: tcpDiscard },
  chargen: { defaultPort: 19, udp: udpChargen, tcp: tcpChargen },
  http: { defaultPort: 80, tcp: httpService },
  iperf3: { defaultPort: 5201, tcp: (sockets, port, shard) => iperf3Service(sockets, port, { peers: shard.peers }) },
  sockperf: { defaultPort: 11111, udp: udpSockperf, tcp: tcpSockperf },
};

/** Names of every known service. */
export const SERVICE_NAMES: readonly string[] = Object.keys(DEFINITIONS);

/** The port service `name` listens on: `port` if given, else its default. */
export function servicePort(name: string, port?: number): number {
  const def = DEFINITIONS[name];
  if (!def) throw new Error(`unknown service ${name}`);
  return port ?? def.defaultPort;
}

/** Starts service `name` on every transport it supports; on failure nothing stays open. */
export function startService(name: string, sockets: SocketFactory, port?: number, shard: ShardExtras = {}): RunningService[] | NetError {
  const def = DEFINITIONS[name];
  if (!def) throw new Error(`unknown service ${name}`);
  const p = port ?? def.defaultPort;
  const out: RunningService[] = [];
  for (const proto of ['udp', 'tcp'] as const) {
    const start = def[proto];
    if (!start) continue;
    const s = start(sockets, p, shard);
    if (s instanceof NetError) {
      for (const o of out) o.close();
      return s;
    }
    out.push({ name, proto, port: p, stats: s.stats as Record<string, number>, close: () => s.close() });
  }
  return out;
}
