/**
 * `tsvisor bench [--quick] [--json FILE] [--html FILE] [--only NAME[,NAME]...]`: builds its own namespaces and
 * veth pairs, measures kernel, tsvisor, pasta and slirp4netns with the stock clients, prints a table with each
 * figure's ratio to kernel, and removes everything it made, also on Ctrl-C and on failure. `--only sentry` (alone
 * or beside other names) adds the Sentry's rows: `tsvisor run` start-up per network mode. `--only gofer` likewise
 * adds the Gofer's: programs inside `tsvisor run --rootfs` against the host, and the 9P layer against diod.
 */
import { writeFileSync } from 'node:fs';
import { cleanup } from '../bench/proc.ts';
import { formatHtml, formatTable } from '../bench/report.ts';
import { availableCongestion } from '../bench/machine.ts';
import { runBench, selectOnly } from '../bench/run.ts';
import { formatSentryTable, runSentryBench, type SentryReport } from '../bench/sentry.ts';
import { formatGoferTable, runGoferBench, type GoferReport } from '../bench/gofer.ts';
import { intOption, parseArgs, UsageError } from './args.ts';

/** Parsed `bench` arguments. */
export interface BenchArgs {
  quick: boolean;
  json?: string;
  html?: string;
  only: string[];
  /** Run the Sentry's rows (`--only sentry`). */
  sentry: boolean;
  /** Run the Gofer's rows (`--only gofer`). */
  gofer: boolean;
  /** `tsvisor serve --threads` for the tsvisor system (default 1). */
  threads: number;
  /** Throughput stream counts instead of the plan's (`--streams 1,4`). */
  streams?: number[];
  /** http-keepalive's kept-alive connection counts instead of the plan's (`--connections 10`, wrk's own default). */
  connections?: number[];
  /** Times each system runs the whole sequence, in turns; each figure is the median run's (`--rounds 3`). */
  rounds: number;
  /** The congestion control of the clients' sockets in the to-service throughput rows (`--congestion cubic`). */
  congestion?: string;
}

/** Parses `bench`'s arguments; every mistake is a UsageError naming it. */
export function parseBenchArgs(argv: string[]): BenchArgs {
  const { options: o } = parseArgs(argv, {
    quick: {}, json: { value: true }, html: { value: true }, only: { value: true, repeat: true }, threads: { value: true }, streams: { value: true },
    rounds: { value: true }, connections: { value: true }, congestion: { value: true },
  });
  const threads = o.threads === undefined ? 1 : intOption('threads', o.threads as string, 1, 16);
  const rounds = o.rounds === undefined ? 1 : intOption('rounds', o.rounds as string, 1, 20);
  const streams = o.streams === undefined ? undefined : (o.streams as string).split(',').map((s) => intOption('streams', s.trim(), 1, 128));
  const connections = o.connections === undefined ? undefined : (o.connections as string).split(',').map((s) => intOption('connections', s.trim(), 1, 1024));
  const names = ((o.only as string[] | undefined) ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  const sentry = names.includes('sentry');
  const gofer = names.includes('gofer');
  const only = names.filter((n) => n !== 'sentry' && n !== 'gofer');
  try {
    selectOnly(only);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const congestion = o.congestion === undefined ? undefined : congestionOption(o.congestion as string);
  return { quick: Boolean(o.quick), json: o.json as string | undefined, html: o.html as string | undefined, only, sentry, gofer, threads, streams, connections, rounds, congestion };
}

/** `--congestion NAME`: one the kernel offers here (tcp_available_congestion_control), else a UsageError listing them. */
export function congestionOption(name: string, available = availableCongestion()): string {
  if (!/^[a-z0-9_]{1,15}$/.test(name)) throw new UsageError(`--congestion: '${name}' is not a congestion control's name`);
  if (available !== undefined && !available.includes(name)) {
    throw new UsageError(`--congestion: '${name}' is not available here (${available.join(', ')})`);
  }
  return name;
}

/** The `bench` command; resolves to the exit status (0 also when some systems were skipped). */
export async function benchCommand(argv: string[]): Promise<number> {
  const args = parseBenchArgs(argv);
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\ntsvisor bench: ${sig}, removing namespaces and processes\n`);
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', cleanup);
  try {
    const log = (l: string) => process.stderr.write(l + '\n');
    // `--only sentry` and/or `gofer` alone run only their rows; with other names, those as well.
    const extrasOnly = (args.sentry || args.gofer) && args.only.length === 0;
    const report = extrasOnly
      ? undefined
      : await runBench({ quick: args.quick, only: args.only, log, threads: args.threads, streams: args.streams, connections: args.connections, rounds: args.rounds, congestion: args.congestion });
    let sentry: SentryReport | undefined;
    if (args.sentry) sentry = await runSentryBench({ quick: args.quick, log });
    let gofer: GoferReport | undefined;
    if (args.gofer) gofer = await runGoferBench({ quick: args.quick, log });
    if (report) process.stdout.write('\n' + formatTable(report, report.udpLatency));
    if (sentry) process.stdout.write('\n' + formatSentryTable(sentry));
    if (gofer) process.stdout.write('\n' + formatGoferTable(gofer));
    if (args.json) {
      const { udpLatency, ...rest } = report ?? { udpLatency: undefined };
      writeFileSync(args.json, JSON.stringify({ ...rest, ...(report ? { udp_latency: udpLatency } : {}), ...(sentry ? { sentry } : {}), ...(gofer ? { gofer } : {}) }, null, 2) + '\n');
    }
    if (args.html) {
      const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');
      const section =
        (sentry ? `<h2>Sentry</h2>\n<pre>${esc(formatSentryTable(sentry))}</pre>\n` : '') +
        (gofer ? `<h2>Gofer</h2>\n<pre>${esc(formatGoferTable(gofer))}</pre>\n` : '');
      const html = report ? formatHtml(report, report.udpLatency) : '<!doctype html>\n<meta charset="utf-8">\n<title>tsvisor bench</title>\n<body>\n</body>\n';
      writeFileSync(args.html, html.replace('</body>', `${section}</body>`));
    }
    return 0;
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
