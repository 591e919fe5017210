/**
 * tsvisor as Docker's OCI runtime against runc, ratios from the same run (issue 14): the end-to-end start-up of
 * `docker run --rm IMAGE true` (floor 1.5x runc, goal 1.1x), and iperf3 from a container to a server on the host's
 * bridge address and back (-R) (floor 0.3x, goal 0.5x). A private dockerd of its own (bench/oci-engines.ts:
 * bridge tob-dbr0 on 198.18.210.1/24, no iptables changes) runs runc, its default, and tsvisor from the compiled
 * build (dist/, built first, as users install it); everything is removed afterwards, also on Ctrl-C. As root:
 *
 *   node --import tsx bench/oci.ts [--runs 10] [--seconds 5] [--json FILE]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { HelpRequested, intOption, parseArgs } from '../cli/args.ts';
import {
  DOCKER_GATEWAY, ROOT, RUNTIME, type Teardowns, busyboxRootfs, dockerImport, startDockerd, stopPid, timedCallsFor,
  withHostPrograms,
} from './oci-engines.ts';

const USAGE = `usage: node --import tsx bench/oci.ts [--runs N] [--seconds N] [--json FILE]
  --runs N     docker run --rm true this many times per runtime (default 10; the median is the figure)
  --seconds N  each iperf3 run's length (default 5)
  --json FILE  also write the rows as JSON
`;

/** The command line, checked before any work: --help prints the usage; a mistake is one line and status 2. */
function options(): { runs: number; seconds: number; jsonFile: string | undefined } {
  try {
    const o = parseArgs(process.argv.slice(2), { runs: { value: true }, seconds: { value: true }, json: { value: true } }).options;
    return {
      runs: o.runs === undefined ? 10 : intOption('runs', o.runs as string, 1, 1000),
      seconds: o.seconds === undefined ? 5 : intOption('seconds', o.seconds as string, 1, 600),
      jsonFile: o.json as string | undefined,
    };
  } catch (e) {
    if (e instanceof HelpRequested) {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    process.stderr.write(`bench/oci.ts: ${(e as Error).message} (--help lists the options)\n`);
    process.exit(2);
  }
}
const { runs, seconds, jsonFile } = options();

/** Cleanups, newest first, run at the end, on failure and on Ctrl-C. */
const cleanups: (() => unknown)[] = [];
const t: Teardowns = { teardown: (fn) => cleanups.push(fn) };
async function cleanUp(): Promise<void> {
  while (cleanups.length) {
    try {
      await cleanups.pop()!();
    } catch (e) {
      process.stderr.write(`oci bench: cleanup: ${(e as Error).message}\n`);
    }
  }
}
process.once('SIGINT', () => void cleanUp().then(() => process.exit(130)));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One benchmark figure for both runtimes. */
interface Row {
  name: string;
  unit: string;
  runc: number;
  tsvisor: number;
  /** tsvisor / runc for a time, runc-relative throughput for a rate. */
  ratio: number;
  floor: string;
  goal: string;
  met: 'goal' | 'floor' | 'below floor';
}

/** Median ms of each phase of `docker run --rm true`, from the runtime calls' times. */
let breakdown: { phase: string; runc: number; tsvisor: number }[] = [];

async function main(): Promise<Row[]> {
  // TSVISOR_OCI_BENCH_CLI names another compiled build's bin.js (e.g. a branch built elsewhere); else ours, rebuilt.
  const cli = process.env.TSVISOR_OCI_BENCH_CLI ?? join(ROOT, 'dist/cli/bin.js');
  if (!process.env.TSVISOR_OCI_BENCH_CLI) execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  // TSVISOR_OCI_TEST_RUNTIME=runc puts runc behind the name tsvisor: the harness checked on its own.
  const d = await startDockerd(t, { json: { tsvisor: RUNTIME, 'runc-noted': 'runc' } }, cli);
  const images = join(d.scratch.dir, 'images');
  mkdirSync(images);
  await dockerImport(d, withHostPrograms(busyboxRootfs(join(images, 'bench')), ['/usr/bin/iperf3']), 'tob-bench');
  const runtimes = ['runc', 'tsvisor'] as const;
  const rows: Row[] = [];

  // Start-up: one warm-up each, then the two interleaved so a burst of load falls on both.
  const times: Record<string, number[]> = { runc: [], tsvisor: [] };
  const once = async (rt: string): Promise<number> => {
    const start = process.hrtime.bigint();
    const r = await d.docker(['run', '--rm', `--runtime=${rt}`, 'tob-bench', 'true']);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (r.code !== 0) throw new Error(`docker run --runtime=${rt} exited ${r.code}: ${r.stderr.trim()}`);
    return ms;
  };
  for (const rt of runtimes) await once(rt);
  for (let i = 0; i < runs; i++) for (const rt of runtimes) times[rt]!.push(await once(rt));
  const [ru, ts] = [median(times.runc!), median(times.tsvisor!)];
  rows.push(judge({ name: `docker run --rm true (median of ${runs})`, unit: 'ms', runc: ru, tsvisor: ts, ratio: ts / ru }, 1.5, 1.1, 'time'));

  // Where a run's time goes, from the times the runtime wrapper notes its calls at (runc through the same wrapper,
  // as `runc-noted`, so both pay its fork of date).
  const phases = ['docker → create', 'create → start', 'start → delete', 'delete → docker returns'] as const;
  const split: Record<string, Record<string, number[]>> = {};
  for (const rt of ['runc-noted', 'tsvisor']) {
    split[rt] = Object.fromEntries(phases.map((p) => [p, [] as number[]]));
    for (let i = 0; i < Math.min(runs, 5); i++) {
      const cidfile = join(d.scratch.dir, `cid-${rt}-${i}`);
      const t0 = BigInt(Date.now()) * 1000000n;
      const r = await d.docker(['run', '--rm', `--runtime=${rt}`, '--cidfile', cidfile, 'tob-bench', 'true']);
      const t1 = BigInt(Date.now()) * 1000000n;
      if (r.code !== 0) throw new Error(`docker run --runtime=${rt} exited ${r.code}: ${r.stderr.trim()}`);
      const calls = timedCallsFor(d.calls, readFileSync(cidfile, 'utf8').trim());
      const at = (verb: string) => calls.find((c) => c.args.replace(/^(--\S+ \S+ |--debug )*/, '').startsWith(`${verb} `))?.ns;
      const marks = [t0, at('create'), at('start'), at('delete'), t1];
      if (marks.some((m) => m === undefined)) continue;
      phases.forEach((p, j) => split[rt]![p]!.push(Number(marks[j + 1]! - marks[j]!) / 1e6));
    }
  }
  breakdown = phases.map((p) => ({ phase: p, runc: median(split['runc-noted']![p]!), tsvisor: median(split.tsvisor![p]!) }));

  // iperf3: the server on the host's bridge address, the client in the container.
  const port = 5211;
  const server: ChildProcess = spawn('iperf3', ['-s', '-B', DOCKER_GATEWAY, '-p', String(port)], { stdio: 'ignore' });
  t.teardown(() => stopPid(server.pid!, 3000));
  await new Promise((r) => setTimeout(r, 500));
  for (const reverse of [false, true]) {
    const rate: Record<string, number> = {};
    for (const rt of runtimes) {
      const r = await d.docker(['run', '--rm', `--runtime=${rt}`, 'tob-bench', 'iperf3', '-c', DOCKER_GATEWAY, '-p', String(port),
        '-t', String(seconds), '-J', ...(reverse ? ['-R'] : [])], { timeoutMs: (seconds + 60) * 1000 });
      if (r.code !== 0) throw new Error(`iperf3 under ${rt} exited ${r.code}: ${r.stderr.trim() || r.stdout.slice(-400)}`);
      rate[rt] = (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
    }
    rows.push(judge({
      name: `iperf3 ${reverse ? 'host → container (-R)' : 'container → host'}, ${seconds} s`,
      unit: 'Gbit/s', runc: rate.runc!, tsvisor: rate.tsvisor!, ratio: rate.tsvisor! / rate.runc!,
    }, 0.3, 0.5, 'rate'));
  }
  return rows;
}

function judge(r: Omit<Row, 'floor' | 'goal' | 'met'>, floor: number, goal: number, kind: 'time' | 'rate'): Row {
  const better = (x: number, bound: number) => (kind === 'time' ? x <= bound : x >= bound);
  const sign = kind === 'time' ? '≤' : '≥';
  return {
    ...r,
    floor: `${sign} ${floor}×`,
    goal: `${sign} ${goal}×`,
    met: better(r.ratio, goal) ? 'goal' : better(r.ratio, floor) ? 'floor' : 'below floor',
  };
}

try {
  const rows = await main();
  const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
  process.stdout.write(`\n${'figure'.padEnd(44)} ${'runc'.padStart(9)} ${'tsvisor'.padStart(9)}  ratio  floor / goal   met\n`);
  for (const r of rows) {
    process.stdout.write(`${r.name.padEnd(44)} ${fmt(r.runc).padStart(9)} ${fmt(r.tsvisor).padStart(9)}  ${r.ratio.toFixed(2)}×  ${r.floor} / ${r.goal}  ${r.met}   (${r.unit})\n`);
  }
  if (breakdown.length) {
    process.stdout.write(`\nwhere docker run --rm true spends its time (median ms of up to 5 runs)\n`);
    for (const b of breakdown) process.stdout.write(`  ${b.phase.padEnd(26)} runc ${fmt(b.runc).padStart(7)}   tsvisor ${fmt(b.tsvisor).padStart(7)}\n`);
  }
  if (RUNTIME === 'runc') process.stdout.write('(TSVISOR_OCI_TEST_RUNTIME=runc: the tsvisor column is runc through the wrapper)\n');
  process.stdout.write(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} CPUs\n`);
  if (jsonFile) writeFileSync(jsonFile, JSON.stringify({ rows, breakdown, runs, seconds, load: loadavg() }, null, 2) + '\n');
  await cleanUp();
} catch (e) {
  process.stderr.write(`oci bench: ${(e as Error).message}\n`);
  await cleanUp();
  process.exit(1);
}
