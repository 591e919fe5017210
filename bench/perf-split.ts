/**
 * Splits a serving thread's CPU per request by whose code ran, from `perf record -g` samples: the kernel, tsvisor's
 * own JavaScript (the stack, netstack/, and its host side, lib/), Node's JavaScript (node:http, streams, events,
 * timers), the application's (the http service's listener, the same on both sides), and the native code with no
 * JavaScript caller (V8's collector, libuv, Node's C++ stream glue). Each user-space sample counts for
 * the first JavaScript function on its stack, so the builtins, ICs and C++ calls a function makes are its own:
 * the same split for serve and for the kernel's node:http server (bench/peers/servers.ts) says which side's code a
 * difference in CPU per request is in. Load changes how long a request takes, much less where its samples fall.
 *
 *     node --perf-basic-prof dist/cli/bin.js serve ...     (or the kernel's server), under wrk
 *     perf record -F 4999 -g -t PID -o out/perf.data -- sleep 4
 *     perf script -i out/perf.data -F ip,sym,dso > out/perf.txt
 *     node --import tsx bench/perf-split.ts out/perf.txt --hz 4999 --requests N [--top 30]
 *
 * N is the requests served while perf recorded (wrk's rate times the seconds); without it the figures are shares
 * of all samples.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HelpRequested, UsageError, intOption, parseArgs } from '../cli/args.ts';

const USAGE = 'usage: node --import tsx bench/perf-split.ts PERF_SCRIPT_OUTPUT [--hz HZ] [--requests N] [--top N]\n';

/** Where a sample's time is counted. */
export type Part = 'kernel' | 'tsvisor JS' | 'Node JS' | 'application and other JS' | 'native, no JS caller';

/** One stack frame of `perf script -F ip,sym,dso`: the symbol and the object it is in. */
export interface Frame {
  sym: string;
  dso: string;
}

function options(): { file: string; hz: number; requests: number; top: number } {
  try {
    const { options: o, positional } = parseArgs(process.argv.slice(2), { hz: { value: true }, requests: { value: true }, top: { value: true } }, 1);
    if (positional[0] === undefined) throw new UsageError('PERF_SCRIPT_OUTPUT is missing');
    return {
      file: positional[0],
      hz: o.hz === undefined ? 4999 : intOption('hz', o.hz as string, 1, 1_000_000),
      requests: o.requests === undefined ? 0 : intOption('requests', o.requests as string, 1, Number.MAX_SAFE_INTEGER),
      top: o.top === undefined ? 25 : intOption('top', o.top as string, 0, 10_000),
    };
  } catch (e) {
    if (e instanceof HelpRequested) {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    process.stderr.write(`bench/perf-split.ts: ${(e as Error).message} (--help lists the options)\n`);
    process.exit(2);
  }
}

/** The samples of `perf script -F ip,sym,dso` output: blank-line separated stacks, leaf first. */
export function perfSamples(text: string): Frame[][] {
  const out: Frame[][] = [];
  let cur: Frame[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '') {
      if (cur.length > 0) out.push(cur);
      cur = [];
      continue;
    }
    // "ADDRESS SYMBOL (DSO)"; the symbol may hold spaces and parentheses of its own.
    const open = t.lastIndexOf(' (');
    const head = open >= 0 ? t.slice(0, open) : t;
    const space = head.indexOf(' ');
    cur.push({ sym: space >= 0 ? head.slice(space + 1) : '[unknown]', dso: open >= 0 ? t.slice(open + 2, -1) : '' });
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** A JavaScript frame's function and file, without the checkout's path (`JS:*onAck file:///x/dist/netstack/...`). */
function jsName(sym: string): string {
  return sym.replace(/^JS:[*~^+]?/, '').replace(/file:\/\/\/\S*?\/(?:dist\/)?(netstack|lib|cli|bench)\//, '$1/');
}

/** Which part a sample counts for, and its first JavaScript function when it has one. */
export function classify(stack: Frame[]): { part: Part; js: string | undefined } {
  const leaf = stack[0]!;
  const first = stack.find((f) => f.sym.startsWith('JS:'));
  const js = first === undefined ? undefined : jsName(first.sym);
  if (leaf.dso.startsWith('[kernel')) return { part: 'kernel', js };
  if (first === undefined) return { part: 'native, no JS caller', js };
  if (/ file:\/\/\/\S*\/(netstack|lib)\//.test(first.sym)) return { part: 'tsvisor JS', js };
  return { part: / node:/.test(first.sym) ? 'Node JS' : 'application and other JS', js };
}

/** Samples per part, and per tsvisor function (the first JavaScript function of its samples). */
export function split(stacks: Frame[][]): { parts: Map<Part, number>; ours: Map<string, number> } {
  const parts = new Map<Part, number>();
  const ours = new Map<string, number>();
  for (const s of stacks) {
    const { part, js } = classify(s);
    parts.set(part, (parts.get(part) ?? 0) + 1);
    if (part === 'tsvisor JS') ours.set(js!, (ours.get(js!) ?? 0) + 1);
  }
  return { parts, ours };
}

function main(): void {
  const { file, hz, requests, top } = options();
  const all = perfSamples(readFileSync(file, 'utf8'));
  const { parts, ours } = split(all);
  // A sample count as µs per request, or as a share of all samples without --requests.
  const fmt = (n: number) => (requests > 0 ? `${((n / hz / requests) * 1e6).toFixed(2).padStart(7)} µs` : `${((100 * n) / all.length).toFixed(1).padStart(6)} %`);
  process.stdout.write(`${all.length} samples${requests > 0 ? `, ${requests} requests, per request:` : ':'}\n`);
  for (const [part, n] of [...parts].sort((a, b) => b[1] - a[1])) process.stdout.write(`${fmt(n)}  ${part}\n`);
  process.stdout.write(`${fmt(all.length)}  all\n`);
  if (top > 0 && ours.size > 0) {
    process.stdout.write('tsvisor functions (samples of the builtins and native calls they make included):\n');
    for (const [name, n] of [...ours].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${fmt(n)}  ${name}\n`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
