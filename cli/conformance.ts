/**
 * `tsvisor conformance [--dut tsvisor|linux|sandbox|both|LIST] [--json FILE] [--tolerance-ms N] [--filter GLOB]
 * [--profile strict|freebsd] [--netns-prefix NAME] PATH...`: runs packetdrill scripts against the chosen DUTs and reports; exit status
 * 0 only when every script passed on every DUT that ran it.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { UsageError, intOption, parseArgs } from './args.ts';
import type { Profile } from '../test/packetdrill/interpreter.ts';
import { type DutFactory, type ResultRow, formatReport, jsonReport, runAll } from '../test/packetdrill/runner.ts';

/** Namespace prefix of the Linux DUT's namespaces unless --netns-prefix names another. */
const NETNS_PREFIX = 'tsv-pd';

/**
 * The DUT factories for `--dut`: tsvisor, linux, sandbox (tsvisor's stack serving a real program under the
 * seccomp filter), both (linux and tsvisor), or a comma-separated list of them.
 */
export async function dutFactories(which: string, netnsPrefix = NETNS_PREFIX): Promise<DutFactory[]> {
  const names = new Set(which.split(',').flatMap((w) => (w === 'both' ? ['linux', 'tsvisor'] : [w])));
  const bad = [...names].filter((n) => !['linux', 'tsvisor', 'sandbox'].includes(n));
  if (!which || bad.length) throw new UsageError(`--dut: '${bad[0] ?? which}' is not tsvisor, linux, sandbox or both`);
  const out: DutFactory[] = [];
  if (names.has('linux')) {
    const { createLinuxDut } = await import('../test/packetdrill/dut-linux.ts');
    out.push({ name: 'linux', create: (cfg) => createLinuxDut(netnsPrefix, cfg) });
  }
  if (names.has('tsvisor')) {
    const { createTsvisorDut } = await import('../test/packetdrill/dut-tsvisor.ts');
    out.push({ name: 'tsvisor', create: async (cfg) => createTsvisorDut(cfg) });
  }
  if (names.has('sandbox')) {
    const { createSandboxDut } = await import('../test/packetdrill/dut-sandbox.ts');
    out.push({ name: 'sandbox', create: (cfg) => createSandboxDut(cfg) });
  }
  return out;
}

/** Where the command writes: the report (stdout) and progress lines (stderr). */
export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

const STDIO: CommandIo = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) };

/** Runs the command; resolves to the exit status. */
export async function conformanceCommand(argv: string[], io: CommandIo = STDIO): Promise<number> {
  const { options, positional } = parseArgs(
    argv,
    { dut: { value: true }, json: { value: true }, 'tolerance-ms': { value: true }, filter: { value: true }, profile: { value: true }, 'netns-prefix': { value: true }, quiet: {} },
    Infinity,
  );
  if (!positional.length) throw new UsageError('conformance: give at least one script or folder');
  for (const p of positional) if (!existsSync(p)) throw new UsageError(`conformance: no such file or folder '${p}'`);
  const profile = options.profile as string | undefined;
  if (profile !== undefined && !['strict', 'gvisor', 'freebsd'].includes(profile)) throw new UsageError(`--profile: '${profile}' is not strict, gvisor or freebsd`);
  const prefix = (options['netns-prefix'] as string | undefined) ?? NETNS_PREFIX;
  if (!/^[A-Za-z0-9_-]{1,16}$/.test(prefix)) throw new UsageError(`--netns-prefix: '${prefix}' is not 1-16 letters, digits, - or _`);
  const duts = await dutFactories((options.dut as string | undefined) ?? 'tsvisor', prefix);
  const tol = options['tolerance-ms'] as string | undefined;
  const quiet = options.quiet === true;
  const rows: ResultRow[] = await runAll(positional, {
    duts,
    toleranceMs: tol === undefined ? undefined : intOption('tolerance-ms', tol, 0, 60_000),
    filter: options.filter as string | undefined,
    profile: profile as Profile | undefined,
    onResult: (r) => {
      if (!quiet) io.err(`${r.verdict.padEnd(7)} ${r.dut.padEnd(7)} ${r.script}${r.line ? `:${r.line}` : ''} (${r.ms} ms)\n`);
    },
  });
  io.out(formatReport(rows));
  if (options.json) writeFileSync(options.json as string, jsonReport(rows));
  return rows.length > 0 && rows.every((r) => r.verdict === 'pass') ? 0 : 1;
}
