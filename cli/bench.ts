/**
 * `tsvisor bench [--quick] [--json FILE] [--html FILE] [--only NAME[,NAME]...]`: builds its own namespaces and
 * veth pairs, measures kernel, tsvisor, pasta and slirp4netns with the stock clients, prints a table with each
 * figure's ratio to kernel, and removes everything it made, also on Ctrl-C and on failure.
 */
import { writeFileSync } from 'node:fs';
import { cleanup } from '../bench/proc.ts';
import { formatHtml, formatTable } from '../bench/report.ts';
import { runBench, selectOnly } from '../bench/run.ts';
import { parseArgs, UsageError } from './args.ts';

/** Parsed `bench` arguments. */
export interface BenchArgs {
  quick: boolean;
  json?: string;
  html?: string;
  only: string[];
}

/** Parses `bench`'s arguments; every mistake is a UsageError naming it. */
export function parseBenchArgs(argv: string[]): BenchArgs {
  const { options: o } = parseArgs(argv, { quick: {}, json: { value: true }, html: { value: true }, only: { value: true, repeat: true } });
  const only = ((o.only as string[] | undefined) ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  try {
    selectOnly(only);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return { quick: Boolean(o.quick), json: o.json as string | undefined, html: o.html as string | undefined, only };
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
    const report = await runBench({ quick: args.quick, only: args.only, log: (l) => process.stderr.write(l + '\n') });
    process.stdout.write('\n' + formatTable(report, report.udpLatency));
    if (args.json) {
      const { udpLatency, ...rest } = report;
      writeFileSync(args.json, JSON.stringify({ ...rest, udp_latency: udpLatency }, null, 2) + '\n');
    }
    if (args.html) writeFileSync(args.html, formatHtml(report, report.udpLatency));
    return 0;
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
