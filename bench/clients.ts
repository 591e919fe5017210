/**
 * The stock Linux clients the benchmark drives (iperf3, sockperf, wrk): their command lines and the parsing of
 * what they print. Parsers are pure and throw a ParseError naming what was missing, so a client that failed is
 * reported with its own words rather than as a zero.
 */
import { nsRunAsync } from './proc.ts';

/** A client's output that does not hold the figure asked for. */
export class ParseError extends Error {
  override name = 'ParseError';
}

/** Bulk throughput as iperf3's receiver counted it. */
export interface ThroughputResult {
  /** Gbit/s at the receiver (sum over streams). */
  gbps: number;
  /** Gbit/s at the sender. */
  senderGbps: number;
  /** Retransmits reported by the sender, when it counts them. */
  retransmits?: number;
  /** The sending sockets' congestion control, when iperf3 names it (end.sender_tcp_congestion). */
  congestion?: string;
  /** Bytes the receiver counted (end.sum_received.bytes), when iperf3 gives them. */
  bytes?: number;
  /**
   * The iperf3 client process's CPU time over the test as a percentage of the test's wall time
   * (end.cpu_utilization_percent.host_total): near 100 with one thread, the client is the bound.
   */
  clientCpu?: number;
}

/** Parses `iperf3 -J` output (client side). */
export function parseIperf3Json(text: string): ThroughputResult {
  let j: {
    error?: string;
    end?: {
      sum_received?: { bits_per_second?: number; bytes?: number };
      sum_sent?: { bits_per_second?: number; retransmits?: number };
      sender_tcp_congestion?: string;
      cpu_utilization_percent?: { host_total?: number };
    };
  };
  try {
    j = JSON.parse(text) as typeof j;
  } catch {
    throw new ParseError(`iperf3 printed no JSON: ${text.trim().slice(0, 200)}`);
  }
  if (j.error) throw new ParseError(`iperf3: ${j.error}`);
  const rx = j.end?.sum_received?.bits_per_second;
  const tx = j.end?.sum_sent?.bits_per_second;
  if (typeof rx !== 'number') throw new ParseError('iperf3 JSON has no end.sum_received.bits_per_second');
  const out: ThroughputResult = { gbps: rx / 1e9, senderGbps: typeof tx === 'number' ? tx / 1e9 : rx / 1e9 };
  if (typeof j.end?.sum_sent?.retransmits === 'number') out.retransmits = j.end.sum_sent.retransmits;
  if (typeof j.end?.sender_tcp_congestion === 'string') out.congestion = j.end.sender_tcp_congestion;
  if (typeof j.end?.sum_received?.bytes === 'number') out.bytes = j.end.sum_received.bytes;
  if (typeof j.end?.cpu_utilization_percent?.host_total === 'number') out.clientCpu = j.end.cpu_utilization_percent.host_total;
  return out;
}

/** Request/response latency as `sockperf ping-pong --full-rtt` reports it. */
export interface LatencyResult {
  /** Median round trip, µs. */
  p50: number;
  /** 99th percentile round trip, µs. */
  p99: number;
  /** Mean round trip, µs. */
  mean: number;
  /** Round trips observed in the valid (post-warm-up) duration. */
  observations: number;
}

/** Parses the text output of `sockperf ping-pong --full-rtt` (colour escapes allowed). */
export function parseSockperf(text: string): LatencyResult {
  const clean = text.replace(/\x1b\[[0-9;]*m/g, '');
  const num = (re: RegExp, what: string): number => {
    const m = re.exec(clean);
    if (!m) throw new ParseError(`sockperf output has no ${what}: ${clean.trim().split('\n').slice(-3).join(' | ').slice(0, 300)}`);
    return Number(m[1]);
  };
  const observations = num(/Total (\d+) observations/, 'observation count');
  if (observations === 0) throw new ParseError('sockperf observed no replies');
  return {
    p50: num(/percentile 50\.000 =\s*([\d.]+)/, 'median'),
    p99: num(/percentile 99\.000 =\s*([\d.]+)/, '99th percentile'),
    mean: num(/(?:Round trip|Latency) is ([\d.]+) usec/, 'summary'),
    observations,
  };
}

/** HTTP requests per second as wrk reports them. */
export interface HttpResult {
  rps: number;
  /** Requests completed. */
  requests: number;
  /** Socket errors (connect + read + write + timeout) and non-2xx/3xx responses. */
  errors: number;
  /** Latency percentiles in µs (wrk --latency's distribution: 50, 75, 90, 99), when wrk printed them. */
  latency?: { p50: number; p75: number; p90: number; p99: number };
}

/** wrk's duration text ("118.00us", "1.71ms", "2.00s") in µs. */
function wrkMicros(value: string, unit: string): number {
  const scale: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, m: 60e6 };
  return Number(value) * scale[unit]!;
}

/** Parses wrk's text output. */
export function parseWrk(text: string): HttpResult {
  const rps = /Requests\/sec:\s*([\d.]+)/.exec(text);
  const reqs = /(\d+) requests in/.exec(text);
  if (!rps || !reqs) throw new ParseError(`wrk printed no rate: ${text.trim().slice(0, 300)}`);
  let errors = 0;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  if (sock) errors += sock.slice(1).reduce((a, b) => a + Number(b), 0);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  if (non2xx) errors += Number(non2xx[1]);
  const out: HttpResult = { rps: Number(rps[1]), requests: Number(reqs[1]), errors };
  if (/Latency Distribution/.test(text)) {
    const at = (pct: number): number => {
      const m = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
      if (!m) throw new ParseError(`wrk's latency distribution has no ${pct}% line`);
      return wrkMicros(m[1]!, m[2]!);
    };
    out.latency = { p50: at(50), p75: at(75), p90: at(90), p99: at(99) };
  }
  return out;
}

/** Runs `iperf3 -c` from `ns` against host:5201. */
export async function runIperf3(
  ns: string,
  host: string,
  o: { seconds: number; streams: number; reverse: boolean; port?: number; congestion?: string },
): Promise<ThroughputResult> {
  const argv = ['iperf3', '-c', host, '-p', String(o.port ?? 5201), '-t', String(o.seconds), '-P', String(o.streams), '-J', '--connect-timeout', '3000'];
  if (o.reverse) argv.push('-R');
  // -C sets the sending sockets' congestion control: the client's, or with -R the server's (which ours ignores).
  if (o.congestion) argv.push('-C', o.congestion);
  const r = await nsRunAsync(ns, argv, (o.seconds + 20) * 1000);
  if (r.timedOut) throw new ParseError(`iperf3 did not finish within ${o.seconds + 20} s`);
  return parseIperf3Json(r.stdout || r.stderr);
}

/** Runs `sockperf ping-pong` from `ns` against host:11111 with 64-byte messages. */
export async function runSockperf(
  ns: string,
  host: string,
  o: { seconds: number; tcp: boolean; port?: number; size?: number },
): Promise<LatencyResult> {
  const argv = ['sockperf', 'ping-pong', '-i', host, '-p', String(o.port ?? 11111), '-t', String(o.seconds), '-m', String(o.size ?? 64), '--full-rtt'];
  if (o.tcp) argv.push('--tcp');
  const r = await nsRunAsync(ns, argv, (o.seconds + 20) * 1000);
  if (r.timedOut) throw new ParseError(`sockperf did not finish within ${o.seconds + 20} s`);
  return parseSockperf(r.stdout + r.stderr);
}

/**
 * Runs wrk from `ns` against http://host/: with `keepAlive` as wrk does by default (requests follow each other on
 * `connections` kept-alive connections) and with its latency distribution, otherwise with a new connection per
 * request (Connection: close).
 */
export async function runWrk(ns: string, host: string, o: { seconds: number; connections: number; port?: number; keepAlive?: boolean }): Promise<HttpResult> {
  const url = `http://${host}:${o.port ?? 80}/`;
  const argv = ['wrk', '-t', '2', '-c', String(o.connections), '-d', `${o.seconds}s`, '--timeout', '2s'];
  argv.push(...(o.keepAlive ? ['--latency'] : ['-H', 'Connection: close']), url);
  const r = await nsRunAsync(ns, argv, (o.seconds + 20) * 1000);
  if (r.timedOut) throw new ParseError(`wrk did not finish within ${o.seconds + 20} s`);
  return parseWrk(r.stdout + r.stderr);
}
