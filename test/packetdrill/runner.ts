/**
 * The conformance runner: finds `.pkt` scripts, parses them, runs each on every chosen DUT with a deadline,
 * and reports per script and DUT (pass / fail / error / skipped with the first mismatch), a summary table per
 * folder, and the differential list between the DUTs.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Dut, DutConfig, DutName } from './dut.ts';
import { type Profile, type RunResult, runScript, scriptConfig } from './interpreter.ts';
import { DUT_V4, DUT_V6, REMOTE_V4, REMOTE_V6 } from './addresses.ts';
import { parseScript } from './parse.ts';
import { upstreamDefinitions } from './upstream.ts';
import { ParseError, type Script } from './script.ts';

/** A DUT's name and how to build one per script. */
export interface DutFactory {
  readonly name: DutName;
  create(cfg: DutConfig): Promise<Dut>;
}

/** One line of the results. */
export interface ResultRow {
  script: string;
  dut: DutName;
  verdict: RunResult['verdict'];
  line?: number;
  detail: string;
  profile: Profile;
  leniency: string[];
  skippedLines: { line: number; text: string; why: string }[];
  ms: number;
}

/** Runner options. */
export interface RunnerOptions {
  duts: DutFactory[];
  toleranceMs?: number;
  filter?: string;
  /** Forces a profile; otherwise chosen per script (freebsd for the FreeBSD corpus and its sysctl dialect). */
  profile?: Profile;
  /** Called after each result (progress output). */
  onResult?: (r: ResultRow) => void;
}

/** upstream run_all.py's `-D` definitions, for the IP version a script asks for and the runner's addresses. */
function scriptDefinitions(options: Readonly<Record<string, string>>): Record<string, string> {
  const v6 = options.ip_version === 'ipv6';
  return upstreamDefinitions(v6 ? 6 : 4, v6 ? REMOTE_V6 : REMOTE_V4, v6 ? DUT_V6 : DUT_V4);
}

/** Every `.pkt` file under the given paths (files as given, folders recursively, sorted). */
export function findScripts(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string, given: boolean) => {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const e of readdirSync(p).sort()) walk(join(p, e), false);
    } else if (given || p.endsWith('.pkt')) out.push(p);
  };
  for (const p of paths) walk(p, true);
  return out;
}

/** A glob (`*`, `?`, `**`, `{a,b}`) as a RegExp matched against the whole path or its file name. */
export function globMatcher(glob: string): (path: string) => boolean {
  const re = new RegExp(
    '^' +
      glob
        .replace(/[.+^$()|[\]\\]/g, '\\$&')
        .replace(/\{([^{}]*)\}/g, (_, alts: string) => `(${alts.split(',').join('|')})`)
        .replace(/\*\*/g, '\u0000')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')
        .replace(/\u0000/g, '.*') +
      '$',
  );
  return (p) => re.test(p) || re.test(p.split('/').pop()!);
}

/** The profile a script is run under unless one is forced. */
export function chooseProfile(path: string, script: Script): Profile {
  if (path.includes('/freebsd/')) return 'freebsd';
  if (path.includes('/gvisor/')) return 'gvisor';
  if (script.events.some((e) => e.action.type === 'shell' && /sysctl\s+-w\s+net\.inet\./.test(e.action.command))) return 'freebsd';
  return 'strict';
}

/** Whether a script is one of upstream packetdrill's own (google/gtests), run as its harness runs them. */
export function upstreamHarness(file: string): boolean {
  return /\/google\//.test(file);
}

/**
 * Options upstream packetdrill's harness (run_all.py) gives its own scripts (under google/) besides their own
 * lines: a script named *v6.pkt runs over IPv6 (*v4.pkt and the rest over IPv4, the first of run_all's variants),
 * and an IPv6 run gets --mtu=1520. The script's own lines win; what was added is listed with the result.
 */
export function harnessOptions(file: string, options: Readonly<Record<string, string>>): { options: Record<string, string>; added: string[] } {
  const out = { ...options };
  const added: string[] = [];
  if (!upstreamHarness(file)) return { options: out, added };
  if (out.ip_version === undefined && /v6\.pkt$/.test(file)) {
    out.ip_version = 'ipv6';
    added.push('--ip_version=ipv6');
  }
  if (out.ip_version === 'ipv6' && out.mtu === undefined) {
    out.mtu = '1520';
    added.push('--mtu=1520');
  }
  return { options: out, added };
}

/** The wall-clock budget of one script: its nominal length plus slack, so nothing hangs. */
function deadlineMs(script: Script, tolMs: number): number {
  let t = 0;
  let last = 0;
  for (const e of script.events) {
    const end = e.time.end ? (e.time.end.kind === 'abs' ? e.time.end.ms : last + e.time.end.ms) : 0;
    const start = e.time.kind === 'abs' ? e.time.ms : e.time.kind === 'rel' ? last + e.time.ms : last;
    last = start;
    t = Math.max(t, start, end);
  }
  return t + Math.max(10 * tolMs, 1000) + 15_000;
}

/** Runs every script on every DUT. */
export async function runAll(paths: string[], opts: RunnerOptions): Promise<ResultRow[]> {
  let files = findScripts(paths);
  if (opts.filter) {
    const m = globMatcher(opts.filter);
    files = files.filter(m);
  }
  const rows: ResultRow[] = [];
  for (const file of files) {
    let script: Script | undefined;
    let parseError: string | undefined;
    let added: string[] = [];
    try {
      const parsed = parseScript(readFileSync(file, 'utf8'), file, { definitions: (o) => scriptDefinitions(harnessOptions(file, o).options) });
      const h = harnessOptions(file, parsed.options);
      script = { ...parsed, options: h.options };
      added = h.added;
    } catch (e) {
      parseError = e instanceof ParseError ? e.message : String(e);
    }
    for (const f of opts.duts) {
      const t0 = performance.now();
      let row: ResultRow;
      if (!script) {
        row = { script: file, dut: f.name, verdict: 'error', detail: `parse error: ${parseError}`, profile: 'strict', leniency: [], skippedLines: [], ms: 0 };
      } else {
        row = await runOne(file, script, f, opts, added);
      }
      row.ms = Math.round(performance.now() - t0);
      rows.push(row);
      opts.onResult?.(row);
    }
  }
  return rows;
}

/**
 * runAll, then each script that did not pass once more on its own: a real-time run on a loaded host can miss its
 * tolerance (a late wake-up), a divergence fails both times. `rows` holds each script's last run, in order;
 * `retried` the first runs that failed.
 */
export async function runAllRetryingFailures(paths: string[], opts: RunnerOptions): Promise<{ rows: ResultRow[]; retried: ResultRow[] }> {
  const first = await runAll(paths, opts);
  const retried = first.filter((r) => r.verdict !== 'pass');
  if (retried.length === 0) return { rows: first, retried };
  const again = await runAll(retried.map((r) => r.script), opts);
  const last = new Map(again.map((r) => [`${r.script}\0${r.dut}`, r]));
  return { rows: first.map((r) => last.get(`${r.script}\0${r.dut}`) ?? r), retried };
}

async function runOne(file: string, script: Script, f: DutFactory, opts: RunnerOptions, harness: readonly string[]): Promise<ResultRow> {
  const profile = opts.profile ?? chooseProfile(file, script);
  const cfg = scriptConfig(script);
  const base = { script: file, dut: f.name, profile, leniency: [] as string[], skippedLines: [] as ResultRow['skippedLines'], ms: 0 };
  let dut: Dut;
  try {
    dut = await f.create({ ipVersion: cfg.ipVersion, mtu: cfg.mtu, mss: cfg.mss, tso: upstreamHarness(file), scriptRemote: script.options.remote_ip });
  } catch (e) {
    return { ...base, verdict: 'error', detail: `DUT setup failed: ${(e as Error).message}` };
  }
  const budget = deadlineMs(script, opts.toleranceMs ?? cfg.toleranceMs) + (script.init || script.cleanup ? 10_000 : 0);
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<RunResult>((resolve) => {
      timer = setTimeout(() => {
        dut.abort();
        resolve({ verdict: 'error', detail: `deadline: the script did not finish within ${Math.round(budget / 1000)} s`, skipped: [], leniency: [], profile });
      }, budget);
    });
    const r = await Promise.race([runScript(script, dut, { toleranceMs: opts.toleranceMs, profile }), timeout]);
    const notes = harness.map((h) => ({ line: 0, text: h, why: 'as upstream packetdrill\'s run_all.py passes it' }));
    return { ...base, verdict: r.verdict, line: r.line, detail: r.detail, leniency: r.leniency, skippedLines: [...notes, ...r.skipped] };
  } finally {
    clearTimeout(timer);
    await dut.close();
  }
}

/** The human-readable report: failures with their first mismatch, a summary per folder and DUT, differentials. */
export function formatReport(rows: ResultRow[]): string {
  const out: string[] = [];
  for (const r of rows) {
    if (r.verdict === 'pass') continue;
    out.push(`${r.verdict.toUpperCase()} [${r.dut}${r.profile !== 'strict' ? `, profile ${r.profile}` : ''}] ${r.script}${r.line ? `:${r.line}` : ''}`);
    for (const l of r.detail.split('\n')) out.push(`    ${l}`);
  }
  const folders = new Map<string, Map<string, Record<string, number>>>();
  for (const r of rows) {
    const dir = dirname(r.script);
    const byDut = folders.get(dir) ?? new Map<string, Record<string, number>>();
    folders.set(dir, byDut);
    const c = byDut.get(r.dut) ?? { pass: 0, fail: 0, error: 0, skipped: 0, lenient: 0 };
    byDut.set(r.dut, c);
    c[r.verdict]!++;
    if (r.verdict === 'pass' && r.leniency.length) c.lenient!++;
  }
  out.push('', 'summary (pass/fail/error/skipped; lenient = passes that needed the profile\'s leniency):');
  out.push(`  ${'folder'.padEnd(60)} ${'dut'.padEnd(8)} pass  fail error  skip lenient`);
  const total: Record<string, Record<string, number>> = {};
  for (const [dir, byDut] of [...folders].sort()) {
    for (const [dut, c] of byDut) {
      out.push(`  ${dir.padEnd(60)} ${dut.padEnd(8)} ${String(c.pass).padStart(4)} ${String(c.fail).padStart(5)} ${String(c.error).padStart(5)} ${String(c.skipped).padStart(5)} ${String(c.lenient).padStart(7)}`);
      const t = (total[dut] ??= { pass: 0, fail: 0, error: 0, skipped: 0, lenient: 0 });
      for (const k of Object.keys(c)) t[k]! += c[k]!;
    }
  }
  for (const [dut, c] of Object.entries(total)) {
    out.push(`  ${'TOTAL'.padEnd(60)} ${dut.padEnd(8)} ${String(c.pass).padStart(4)} ${String(c.fail).padStart(5)} ${String(c.error).padStart(5)} ${String(c.skipped).padStart(5)} ${String(c.lenient).padStart(7)}`);
  }
  const duts = new Set(rows.map((r) => r.dut));
  if (duts.has('linux') && duts.has('tsvisor')) {
    const by = new Map<string, Partial<Record<string, ResultRow>>>();
    for (const r of rows) (by.get(r.script) ?? by.set(r.script, {}).get(r.script)!)[r.dut] = r;
    const lin: string[] = [];
    const tsv: string[] = [];
    for (const [s, m] of by) {
      if (m.linux?.verdict === 'pass' && m.tsvisor?.verdict !== 'pass') lin.push(`  ${s} (tsvisor: ${m.tsvisor?.verdict}${m.tsvisor?.line ? ` at line ${m.tsvisor.line}` : ''})`);
      if (m.tsvisor?.verdict === 'pass' && m.linux?.verdict !== 'pass') tsv.push(`  ${s} (linux: ${m.linux?.verdict}${m.linux?.line ? ` at line ${m.linux.line}` : ''})`);
    }
    out.push('', `differential: Linux passes, tsvisor does not (${lin.length}):`, ...lin);
    out.push('', `differential: tsvisor passes, Linux does not (${tsv.length}):`, ...tsv);
  }
  if (duts.has('tsvisor') && duts.has('sandbox')) {
    // The same stack in process and behind the traps: a difference is the Sentry's (or the real clock's).
    const by = new Map<string, Partial<Record<string, ResultRow>>>();
    for (const r of rows) (by.get(r.script) ?? by.set(r.script, {}).get(r.script)!)[r.dut] = r;
    const diff: string[] = [];
    for (const [s, m] of by) {
      if ((m.tsvisor?.verdict === 'pass') !== (m.sandbox?.verdict === 'pass')) {
        const w = (r: ResultRow | undefined) => `${r?.verdict}${r?.line ? ` at line ${r.line}` : ''}`;
        diff.push(`  ${s} (tsvisor: ${w(m.tsvisor)}, sandbox: ${w(m.sandbox)})`);
      }
    }
    out.push('', `differential: tsvisor and sandbox differ (${diff.length}):`, ...diff);
  }
  return out.join('\n') + '\n';
}

/** The --json document. */
export function jsonReport(rows: ResultRow[]): string {
  return (
    JSON.stringify(
      {
        results: rows.map((r) => ({
          script: r.script,
          dut: r.dut,
          verdict: r.verdict,
          line: r.line ?? null,
          detail: r.detail,
          profile: r.profile,
          leniency: r.leniency,
          skippedLines: r.skippedLines,
          ms: r.ms,
        })),
      },
      null,
      2,
    ) + '\n'
  );
}
