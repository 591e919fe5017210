/**
 * The Sentry's benchmark (`tsvisor bench --only sentry`): start-up of `tsvisor run -- /bin/true` in each network
 * mode, median of 20 (5 with --quick), end to end and broken into parts from the run's own `--debug-log` timing
 * lines: CLI load (process start to the run command), namespaces, netstack, launch (helper → bwrap → execve) and
 * the rest (the program, drain and clean-up). Every row is also given as a ratio to `--network=host` and to native
 * (`/bin/true` spawned directly). Runs happen inside a namespace of the bench's own, so the veth that sandbox mode
 * makes has its caller end there.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteNetns, run } from '../lib/testnet.ts';
import { onCleanup, tsvisorCommand } from './proc.ts';

/** The start-up rows, in report order. */
export const STARTUP_MODES = ['native', 'host', 'none', 'sandbox'] as const;
/** A start-up row's name. */
export type StartupMode = (typeof STARTUP_MODES)[number];

/** The parts of a run's start-up, in ms, as its debug log gives them. */
export interface StartupParts {
  /** Process start to the run command (Node, tsx, the CLI's modules). */
  cli?: number;
  netns?: number;
  netstack?: number;
  launch?: number;
  /** Process start to the program's exec. */
  ready?: number;
}

/** One start-up row: medians over `runs` runs. */
export interface StartupResult {
  mode: StartupMode;
  runs: number;
  /** Spawn to exit, median and 90th percentile, ms. */
  median: number;
  p90: number;
  /** Median of each part, ms. */
  parts: StartupParts;
  /** Set-up after the CLI has loaded: ready − cli, median, ms. */
  setup?: number;
  ratioHost?: number;
  ratioNative?: number;
}

/** The Sentry section of the report. */
export interface SentryReport {
  startup: StartupResult[];
  skipped: { mode: string; reason: string }[];
  /** Floors of issue 9, for the table. */
  floors: Record<string, string>;
}

const FLOORS: Record<string, string> = {
  none: 'end to end ≤ 250 ms; set-up ≤ 150 ms; launch ≤ 40 ms',
  sandbox: 'end to end ≤ 400 ms; set-up ≤ 300 ms; launch ≤ 40 ms',
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function p90(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(s.length * 0.9) - 1)]!;
}

/** Reads the `timing NAME=MS` lines of a run's debug log. */
export function parseTiming(log: string): StartupParts {
  const parts: StartupParts = {};
  for (const m of log.matchAll(/\btiming (cli|netns|netstack|launch|ready)=([\d.]+)/g)) {
    parts[m[1] as keyof StartupParts] = Number(m[2]);
  }
  return parts;
}

/** Spawns `argv`, resolves to its wall time in ms and exit status. */
function timed(argv: string[]): Promise<{ ms: number; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ ms: performance.now() - t0, code, stderr }));
  });
}

/** Runs the start-up rows; never throws past one row (a failing row is skipped with its reason). */
export async function runSentryBench(o: { quick: boolean; log: (line: string) => void }): Promise<SentryReport> {
  const runs = o.quick ? 5 : 20;
  const ns = `${process.env.TSVISOR_BENCH_NS || 'tsv-bench'}-sx`;
  const dir = mkdtempSync(join(tmpdir(), 'tsv-bench-sentry-'));
  deleteNetns(ns);
  run(['ip', 'netns', 'add', ns]);
  run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  const undo = () => {
    deleteNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  };
  onCleanup(undo);
  const enter = ['nsenter', `--net=/var/run/netns/${ns}`];
  const startup: StartupResult[] = [];
  const skipped: { mode: string; reason: string }[] = [];
  try {
    for (const mode of STARTUP_MODES) {
      const totals: number[] = [];
      const parts: StartupParts[] = [];
      let failure: string | undefined;
      // One unmeasured run first: the helper's build is cached and the page cache is warm, as for a user's second run.
      for (let i = -1; i < runs && !failure; i++) {
        const log = join(dir, `${mode}-${i}.log`);
        const argv = mode === 'native' ? [...enter, '/bin/true']
          : [...enter, ...tsvisorCommand(), 'run', `--network=${mode}`, '--debug-log', log, '--', '/bin/true'];
        const r = await timed(argv);
        if (r.code !== 0) {
          failure = `exit status ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''}`;
          break;
        }
        if (i < 0) continue;
        totals.push(r.ms);
        if (mode !== 'native') parts.push(parseTiming(readFileSync(log, 'utf8')));
      }
      if (failure) {
        skipped.push({ mode, reason: failure });
        o.log(`sentry start-up ${mode}: failed (${failure})`);
        continue;
      }
      const part = (k: keyof StartupParts) => {
        const xs = parts.map((p) => p[k]).filter((x): x is number => x !== undefined);
        return xs.length ? round(median(xs)) : undefined;
      };
      const row: StartupResult = { mode, runs, median: round(median(totals)), p90: round(p90(totals)), parts: {} };
      if (mode !== 'native') {
        row.parts = { cli: part('cli'), netns: part('netns'), netstack: part('netstack'), launch: part('launch'), ready: part('ready') };
        const setups = parts.filter((p) => p.ready !== undefined && p.cli !== undefined).map((p) => p.ready! - p.cli!);
        if (setups.length) row.setup = round(median(setups));
      }
      startup.push(row);
      o.log(`sentry start-up ${mode}: ${row.median} ms median (p90 ${row.p90})` + (row.setup !== undefined ? `, set-up ${row.setup} ms` : ''));
    }
  } finally {
    undo();
  }
  const host = startup.find((r) => r.mode === 'host')?.median;
  const native = startup.find((r) => r.mode === 'native')?.median;
  for (const r of startup) {
    if (host) r.ratioHost = round(r.median / host, 2);
    if (native) r.ratioNative = round(r.median / native, 2);
  }
  return { startup, skipped, floors: FLOORS };
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** The Sentry section as a text table. */
export function formatSentryTable(r: SentryReport): string {
  const cell = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(1));
  const lines = ['Sentry start-up: tsvisor run -- /bin/true, ms (median of runs; parts from --debug-log)', ''];
  const head = ['mode', 'runs', 'median', 'p90', 'cli', 'netns', 'netstack', 'launch', 'set-up', '×host', '×native'];
  const rows = r.startup.map((s) => [
    s.mode, String(s.runs), cell(s.median), cell(s.p90), cell(s.parts.cli), cell(s.parts.netns), cell(s.parts.netstack),
    cell(s.parts.launch), cell(s.setup), s.ratioHost === undefined ? '-' : s.ratioHost.toFixed(2),
    s.ratioNative === undefined ? '-' : s.ratioNative.toFixed(2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const fmt = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  lines.push(fmt(head), ...rows.map(fmt), '');
  for (const [mode, floor] of Object.entries(r.floors)) lines.push(`floor ${mode}: ${floor}`);
  for (const s of r.skipped) lines.push(`skipped ${s.mode}: ${s.reason}`);
  return lines.join('\n') + '\n';
}
