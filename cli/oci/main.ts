/**
 * `tsvisor` as an OCI runtime: runc's commands and global flags, so that containerd-shim-runc-v2 (Docker,
 * containerd) and conmon (podman) can drive it. Global flags come before the command, as the shims put them;
 * runsc's own (--network, --strace, --debug-log, --pcap-log, --platform) are accepted there too, which is where
 * Docker's `runtimeArgs` land. An error is one line on stderr and the last `{"level":"error","msg":...}` line
 * of the --log file, where the runc shim reads the message it shows; the exit status is 1 (2 for usage).
 */
import { appendFileSync } from 'node:fs';
import { UsageError } from '../args.ts';
import { CliError } from '../errors.ts';

/** The default --root, as runc's /run/runc. */
export const DEFAULT_ROOT = '/run/tsvisor/oci';

/** The OCI runtime's commands (`run` is OCI's only with global flags or OCI flags; see isOciRun). */
export const OCI_COMMANDS = new Set(['create', 'start', 'state', 'kill', 'delete', 'exec', 'ps', 'pause', 'resume', 'features', 'spec', 'list', 'events', 'update']);

/** Global flags. */
export interface Globals {
  root: string;
  log?: string;
  logFormat: 'json' | 'text';
  debug: boolean;
  network?: 'sandbox' | 'host' | 'none';
  strace: boolean;
  debugLog?: string;
  pcapLog?: string;
  /** runsc's --net-raw: false refuses raw sockets to every container; unset or true follows CAP_NET_RAW (grantsNetRaw). */
  netRaw?: boolean;
}

/** A command's parsed flags and positionals. */
export interface Parsed {
  flags: Record<string, string | boolean>;
  positional: string[];
}

/**
 * Parses runc-style flags: `--name value`, `--name=value`, `-name value` (Go's flag syntax takes one dash too),
 * booleans without a value; `valued` names the flags that take one, `aliases` maps short names. Stops at `--`
 * and, when `stopAtPositional`, at the first positional (the rest are the program's).
 */
export function parseFlags(argv: string[], valued: readonly string[], booleans: readonly string[], aliases: Record<string, string> = {}, stopAt = Infinity): Parsed {
  const flags: Record<string, string | boolean> = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (positional.length >= stopAt) {
      positional.push(...argv.slice(i));
      break;
    }
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    let name = eq < 0 ? body : body.slice(0, eq);
    name = aliases[name] ?? name;
    if (valued.includes(name)) {
      const v = eq >= 0 ? body.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new UsageError(`flag --${name} needs a value`);
      flags[name] = v;
    } else if (booleans.includes(name)) {
      flags[name] = eq < 0 ? true : body.slice(eq + 1) !== 'false';
    } else {
      throw new UsageError(`unknown flag ${arg}`);
    }
  }
  return { flags, positional };
}

const GLOBAL_VALUED = ['root', 'log', 'log-format', 'network', 'debug-log', 'pcap-log', 'platform', 'rootless', 'criu'];
const GLOBAL_BOOL = ['debug', 'systemd-cgroup', 'strace', 'no-new-keyring', 'net-raw'];

/** Whether `tsvisor run ARGS` is OCI's `run` (a bundle flag) rather than tsvisor's own. */
export function isOciRun(rest: string[]): boolean {
  // Only before `--`: what follows is tsvisor run's PROGRAM and its own flags.
  const dashes = rest.indexOf('--');
  const own = dashes < 0 ? rest : rest.slice(0, dashes);
  return own.some((a) => /^--?(bundle|b|pid-file|detach|d|console-socket|no-pivot|keep)(=|$)/.test(a));
}

/**
 * Whether `argv` (the command line after the script) is the OCI runtime's: the Sentry's own entry, a runc command,
 * OCI's `run`, or global flags first (the shims put `--root`, `--log` before the command).
 */
export function isOciCall(argv: readonly string[]): boolean {
  const [command, ...rest] = argv;
  if (command === undefined) return false;
  return command === SANDBOX_COMMAND || command === WARM_COMMAND || OCI_COMMANDS.has(command) || (command === 'run' && isOciRun(rest)) ||
    (command.startsWith('-') && !['--help', '-h', '--version'].includes(command));
}

/** The hidden command `create` starts the container's Sentry with (cli/oci/sandbox.ts). */
export const SANDBOX_COMMAND = '__oci-sandbox';

/** The hidden command the front starts a warm Sentry with (cli/oci/warm.ts). */
export const WARM_COMMAND = '__oci-warm';

/** Runs an OCI call (isOciCall); resolves to the exit status. */
export async function ociEntry(argv: string[]): Promise<number> {
  if (argv[0] === SANDBOX_COMMAND) return await (await import('./sandbox.ts')).ociSandboxMain(argv.slice(1));
  if (argv[0] === WARM_COMMAND) return await (await import('./warm.ts')).ociWarmMain(argv.slice(1));
  return await ociMain(argv);
}

/** The OCI entry: global flags, then the command. */
export async function ociMain(argv: string[]): Promise<number> {
  let g: Globals = { root: DEFAULT_ROOT, logFormat: 'json', debug: false, strace: false };
  try {
    let cmdAt = -1;
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (!a.startsWith('-')) {
        cmdAt = i;
        break;
      }
      if (!a.includes('=') && GLOBAL_VALUED.includes(a.replace(/^--?/, ''))) i++;
    }
    const globalArgs = cmdAt < 0 ? argv : argv.slice(0, cmdAt);
    const { flags } = parseFlags(globalArgs, GLOBAL_VALUED, GLOBAL_BOOL);
    g = {
      root: (flags.root as string | undefined) ?? DEFAULT_ROOT,
      log: flags.log as string | undefined,
      logFormat: flags['log-format'] === 'text' ? 'text' : 'json',
      debug: Boolean(flags.debug),
      strace: Boolean(flags.strace),
      debugLog: flags['debug-log'] as string | undefined,
      pcapLog: flags['pcap-log'] as string | undefined,
      netRaw: flags['net-raw'] === undefined ? undefined : Boolean(flags['net-raw']),
    };
    const net = flags.network as string | undefined;
    if (net !== undefined) {
      if (net !== 'sandbox' && net !== 'host' && net !== 'none') throw new UsageError(`--network: unknown mode '${net}' (known: sandbox, host, none)`);
      g.network = net;
    }
    const platform = flags.platform as string | undefined;
    if (platform !== undefined && platform !== 'unotify') throw new UsageError(`--platform=${platform} is not available (known: unotify)`);
    if (cmdAt < 0) throw new UsageError('no command given (create, start, state, kill, delete, exec, ps, pause, resume, run, list, spec, features)');
    const command = argv[cmdAt]!;
    const rest = argv.slice(cmdAt + 1);
    const { runOci } = await import('./commands.ts');
    debug(g, `${command} ${rest.join(' ')}`);
    return await runOci(g, command, rest);
  } catch (e) {
    if (e instanceof UsageError || e instanceof CliError) {
      logError(g, e.message);
      return e instanceof UsageError ? 2 : 1;
    }
    logError(g, String((e as Error).stack ?? e));
    return 1;
  }
}

/** One line of the --log file. */
function logLine(g: Globals, level: string, msg: string): void {
  if (!g.log) return;
  const time = new Date().toISOString();
  const line = g.logFormat === 'json' ? JSON.stringify({ level, msg, time }) : `time="${time}" level=${level} msg=${JSON.stringify(msg)}`;
  try {
    appendFileSync(g.log, line + '\n');
  } catch {
    // a log we cannot write must not hide the error itself (it still goes to stderr)
  }
}

/** With --debug: a debug line in the --log file. */
export function debug(g: Globals, msg: string): void {
  if (g.debug) logLine(g, 'debug', msg);
}

/** An error: stderr and the --log file's last line. */
export function logError(g: Globals, msg: string): void {
  process.stderr.write(`tsvisor: ${msg}\n`);
  logLine(g, 'error', msg);
}
