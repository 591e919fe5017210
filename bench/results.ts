/**
 * The benchmark's result records and the JSON document `tsvisor bench --json` writes:
 * `{"results":[{"system","test","mtu","direction","streams","value","unit", ...extra}], "skipped":[...], ...}`.
 */
import type { Machine } from './machine.ts';
import type { SystemName } from './systems.ts';

/** The tests, in report order. */
export const TESTS = ['throughput', 'rr-latency', 'http-rps', 'http-keepalive', 'conn-memory', 'syn-flood'] as const;
/** A test's name. */
export type TestName = (typeof TESTS)[number];

/** Which way the payload flows, seen from the client. */
export type Direction = 'to-service' | 'from-service';

/** The unit of each test's value. */
export const UNITS: Record<TestName, string> = {
  throughput: 'Gbit/s',
  'rr-latency': 'us',
  'http-rps': 'req/s',
  'http-keepalive': 'req/s',
  'conn-memory': 'bytes',
  'syn-flood': 'SYN/s',
};

/** Whether a larger value is better (ratios are shown either way, this only orders the reading). */
export const HIGHER_IS_BETTER: Record<TestName, boolean> = {
  throughput: true,
  'rr-latency': false,
  'http-rps': true,
  'http-keepalive': true,
  'conn-memory': false,
  'syn-flood': true,
};

/**
 * One measured figure; extra keys carry secondary figures (rr-latency: p99, udp_median, udp_p99; http-keepalive:
 * p50_us, p75_us, p90_us, p99_us from wrk's latency distribution).
 */
export interface BenchResult {
  system: SystemName;
  test: TestName;
  mtu: number;
  direction: Direction;
  streams: number;
  value: number;
  unit: string;
  [extra: string]: unknown;
}

/** A system or test that could not run, with the reason. */
export interface Skipped {
  system: SystemName;
  test: TestName | '*';
  mtu?: number;
  reason: string;
}

/** The whole document. */
export interface BenchReport {
  results: BenchResult[];
  skipped: Skipped[];
  /** How each conn-memory figure was measured, by system. */
  notes: Record<string, string>;
  quick: boolean;
  /** How many times each system ran the whole sequence (`--rounds`); each figure is then the median run's. */
  rounds?: number;
  startedAt: string;
  seconds: number;
  /** CPUs, kernel and how idle CPUs wait (bench/machine.ts); absent in reports written before it was recorded. */
  machine?: Machine;
  /** The clients' congestion control in the to-service throughput rows when `--congestion` set it. */
  congestion?: string;
}

/** A latency in µs as text, in ms from 10 ms up. */
export function micros(v: unknown): string {
  if (typeof v !== 'number') return '—';
  return v >= 10000 ? `${(v / 1000).toFixed(1)} ms` : `${v.toFixed(0)} µs`;
}

/** The key that pairs a result with kernel's result of the same test and setting (concurrency included). */
export function pairKey(r: Pick<BenchResult, 'test' | 'mtu' | 'direction' | 'streams'> & { connections?: unknown }): string {
  const conns = typeof r.connections === 'number' ? r.connections : '';
  return `${r.test}|${r.mtu}|${r.direction}|${r.streams}|${conns}`;
}

/**
 * One record per system and setting out of several rounds' (`bench --rounds N`): the run whose value is the median
 * (for an even count the lower of the two middle ones), so its secondary figures (p99, latency percentiles) are that
 * run's own, with `rounds` listing every run's value in the order they ran. Systems take turns within each round,
 * so a load that comes and goes over the minutes of a run falls on both sides of a ratio instead of one.
 */
export function medianOfRounds(results: readonly BenchResult[]): BenchResult[] {
  const bySetting = new Map<string, BenchResult[]>();
  for (const r of results) {
    const k = `${r.system}|${pairKey(r)}`;
    const runs = bySetting.get(k);
    if (runs) runs.push(r);
    else bySetting.set(k, [r]);
  }
  return [...bySetting.values()].map((runs) => {
    if (runs.length === 1) return runs[0]!;
    const sorted = [...runs].sort((a, b) => a.value - b.value);
    return { ...sorted[(sorted.length - 1) >> 1]!, rounds: runs.map((r) => r.value) };
  });
}

/** Each result's ratio to kernel's value of the same test and setting (undefined when kernel has none). */
export function ratiosToKernel(results: readonly BenchResult[]): Map<BenchResult, number> {
  const kernel = new Map<string, number>();
  for (const r of results) if (r.system === 'kernel') kernel.set(pairKey(r), r.value);
  const out = new Map<BenchResult, number>();
  for (const r of results) {
    const k = kernel.get(pairKey(r));
    if (k !== undefined && k !== 0) out.set(r, r.value / k);
  }
  return out;
}

/** Checks the shape of a parsed --json document; returns the problems found (empty when it is well formed). */
export function validateReport(doc: unknown): string[] {
  const problems: string[] = [];
  const d = doc as { results?: unknown };
  if (typeof doc !== 'object' || doc === null || !Array.isArray(d.results)) return ['no results array'];
  const systems = ['kernel', 'tsvisor', 'pasta', 'slirp4netns'];
  (d.results as Record<string, unknown>[]).forEach((r, i) => {
    const where = `results[${i}]`;
    if (!systems.includes(r.system as string)) problems.push(`${where}.system ${String(r.system)}`);
    if (!(TESTS as readonly string[]).includes(r.test as string)) problems.push(`${where}.test ${String(r.test)}`);
    else if (r.unit !== UNITS[r.test as TestName]) problems.push(`${where}.unit ${String(r.unit)}`);
    if (!Number.isInteger(r.mtu)) problems.push(`${where}.mtu`);
    if (r.direction !== 'to-service' && r.direction !== 'from-service') problems.push(`${where}.direction`);
    if (!Number.isInteger(r.streams) || (r.streams as number) < 1) problems.push(`${where}.streams`);
    if (typeof r.value !== 'number' || !Number.isFinite(r.value) || r.value < 0) problems.push(`${where}.value`);
  });
  return problems;
}
