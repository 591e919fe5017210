/**
 * The OCI runtime's commands, as runc answers them. Each takes the container's lock for what it reads and
 * changes; `create` starts the container's Sentry (cli/oci/sandbox.ts) detached and returns once it reports
 * "created", leaving it to the engine's shim, which waits on the pid file's pid.
 */
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { UsageError } from '../args.ts';
import { CliError } from '../errors.ts';
import { type Globals, type Parsed, SANDBOX_COMMAND, parseFlags } from './main.ts';
import { CAPABILITIES, defaultSpec, loadSpec } from './spec.ts';
import { type ContainerState, ContainerDir, alive, listContainers, live, publicState } from './state.ts';

const SIGNALS = osConstants.signals as Record<string, number>;

/** Runs OCI command `command`; resolves to the exit status. */
export async function runOci(g: Globals, command: string, rest: string[]): Promise<number> {
  g = { ...g, root: resolve(g.root) };
  switch (command) {
    case 'create': {
      const p = parseFlags(rest, ['bundle', 'pid-file', 'console-socket', 'preserve-fds'], ['no-pivot', 'no-new-keyring'], { b: 'bundle' });
      await create(g, p, one(p, 'create'));
      return 0;
    }
    case 'start': {
      const p = parseFlags(rest, [], []);
      await start(g, one(p, 'start'));
      return 0;
    }
    case 'state': {
      const p = parseFlags(rest, [], []);
      const c = new ContainerDir(g.root, one(p, 'state'));
      process.stdout.write(JSON.stringify(publicState(c.read()), null, 2) + '\n');
      return 0;
    }
    case 'kill': {
      const p = parseFlags(rest, [], ['all'], { a: 'all' });
      if (p.positional.length < 1 || p.positional.length > 2) throw new UsageError('usage: kill [--all] ID [SIGNAL]');
      await kill(g, p.positional[0]!, p.positional[1] ?? 'SIGTERM', Boolean(p.flags.all));
      return 0;
    }
    case 'delete': {
      const p = parseFlags(rest, [], ['force'], { f: 'force' });
      await remove(g, one(p, 'delete'), Boolean(p.flags.force));
      return 0;
    }
    case 'exec': {
      const p = parseFlags(rest, ['process', 'console-socket', 'pid-file', 'cwd', 'env', 'user', 'cap', 'preserve-fds', 'process-label', 'apparmor', 'cgroup'],
        ['detach', 'tty', 'no-new-privs', 'ignore-paused'], { p: 'process', d: 'detach', t: 'tty', e: 'env', u: 'user', c: 'cap' }, 1);
      return await (await import('./exec.ts')).exec(g, p);
    }
    case 'ps': {
      const p = parseFlags(rest, ['format'], [], { f: 'format' }, 1);
      ps(g, p.positional[0] ?? missingId('ps'), (p.flags.format as string | undefined) ?? 'table');
      return 0;
    }
    case 'pause':
    case 'resume': {
      const p = parseFlags(rest, [], []);
      await pause(g, one(p, command), command === 'pause');
      return 0;
    }
    case 'list': {
      const p = parseFlags(rest, ['format'], ['quiet'], { f: 'format', q: 'quiet' });
      list(g, (p.flags.format as string | undefined) ?? 'table', Boolean(p.flags.quiet));
      return 0;
    }
    case 'spec': {
      const p = parseFlags(rest, ['bundle'], ['rootless'], { b: 'bundle' });
      const file = join(resolve((p.flags.bundle as string | undefined) ?? '.'), 'config.json');
      if (existsSync(file)) throw new CliError(`${file} already exists: remove it first`);
      writeFileSync(file, JSON.stringify(defaultSpec(), null, 2) + '\n');
      return 0;
    }
    case 'features':
      process.stdout.write(JSON.stringify(features(), null, 2) + '\n');
      return 0;
    case 'run': {
      const p = parseFlags(rest, ['bundle', 'pid-file', 'console-socket', 'preserve-fds'], ['detach', 'no-pivot', 'no-new-keyring', 'keep'], { b: 'bundle', d: 'detach' });
      return await runContainer(g, p, one(p, 'run'));
    }
    default:
      throw new UsageError(`${command}: not supported by tsvisor's OCI runtime`);
  }
}

/** Throws the usage error of a command given no container id. */
export function missingId(cmd: string): never {
  throw new UsageError(`${cmd}: no container id given`);
}

function one(p: Parsed, cmd: string): string {
  if (p.positional.length === 0) missingId(cmd);
  if (p.positional.length > 1) throw new UsageError(`${cmd}: unexpected argument '${p.positional[1]}'`);
  return p.positional[0]!;
}

/** Writes a pid file atomically, as runc does (no newline). */
export function writePidFile(path: string, pid: number): void {
  const tmp = join(dirname(path), `.${process.pid}.pid.tmp`);
  writeFileSync(tmp, String(pid));
  renameSync(tmp, path);
}

/** `create`: starts the Sentry detached (it checks the bundle), waits for "created", writes the pid file. */
async function create(g: Globals, p: Parsed, id: string): Promise<number> {
  // The bundle is the Sentry's to check (loadSpec, checkBundle): it reports what is wrong as the front's do too.
  const bundle = resolve((p.flags.bundle as string | undefined) ?? '.');
  const consoleSocket = p.flags['console-socket'] as string | undefined;
  mkdirSync(g.root, { recursive: true, mode: 0o700 });
  const c = new ContainerDir(g.root, id);
  await c.lock(true);
  if (c.readRaw()) throw new CliError(`container with id exists: ${id}`);
  writeFileSync(join(c.dir, 'create.json'), JSON.stringify({
    bundle,
    consoleSocket: consoleSocket ? resolve(consoleSocket) : undefined,
    network: g.network,
    strace: g.strace,
    pcapLog: g.pcapLog,
    netRaw: g.netRaw,
    hostNetnsIno: statSync('/proc/self/ns/net').ino,
  }));
  const logPath = g.debugLog ? (g.debugLog.endsWith('/') ? join(g.debugLog, `tsvisor-${id}.log`) : g.debugLog) : join(c.dir, 'sentry.log');
  if (g.debugLog?.endsWith('/')) mkdirSync(g.debugLog, { recursive: true });
  const logFd = openSync(logPath, 'a');
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, SANDBOX_COMMAND, g.root, id], {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'pipe', 0, 1, 2],
    // A bundle that is not there is the Sentry's to report (it cannot read config.json).
    cwd: existsSync(bundle) ? bundle : '/',
  });
  const report = child.stdio[3] as Readable;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const result = await new Promise<string>((resolveLine) => {
    let buf = '';
    report.setEncoding('utf8');
    report.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) resolveLine(buf.slice(0, i));
    });
    report.on('error', () => {});
    report.on('end', () => resolveLine(buf || 'error the sandbox exited during create'));
  });
  if (result !== 'created') {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    const why = result.replace(/^error /, '');
    c.remove();
    c.unlock();
    throw new CliError(why === 'the sandbox exited during create' ? `${why} (its log: ${logPath})` : why);
  }
  report.destroy();
  child.unref();
  const pidFile = p.flags['pid-file'] as string | undefined;
  if (pidFile) writePidFile(resolve(pidFile), child.pid!);
  c.unlock();
  return child.pid!;
}

/** One request to a Sentry's control socket, answered by one JSON line. */
export function request(path: string, req: Record<string, unknown>, timeoutMs = 120000): Promise<Record<string, unknown>> {
  return new Promise((resolveReply, reject) => {
    const sock = createConnection({ path });
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new CliError('the container\'s Sentry did not answer'));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d: string) => (buf += d));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(new CliError(`cannot reach the container's Sentry: ${e.message}`));
    });
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        resolveReply(JSON.parse(buf) as Record<string, unknown>);
      } catch {
        reject(new CliError('the container\'s Sentry exited while answering'));
      }
    });
  });
}

/** `start`: opens the gate of a created container. */
async function start(g: Globals, id: string): Promise<void> {
  const c = new ContainerDir(g.root, id);
  await c.lock();
  const s = c.read();
  if (s.status === 'stopped') throw new CliError('cannot start a container that has stopped');
  if (s.status !== 'created') throw new CliError(`cannot start an already ${s.status} container`);
  try {
    const r = await request(s.control, { op: 'start' });
    if (r.error) throw new CliError(String(r.error));
  } finally {
    c.unlock();
  }
}

/** A signal by name (TERM, SIGTERM) or number. */
export function parseSignal(text: string): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n < 1 || n > 64) throw new UsageError(`invalid signal ${text}`);
    return n;
  }
  const name = text.toUpperCase().startsWith('SIG') ? text.toUpperCase() : `SIG${text.toUpperCase()}`;
  const n = SIGNALS[name];
  if (n === undefined) throw new UsageError(`invalid signal ${text}`);
  return n;
}

/** The host pids of the sandbox's processes: every process in the program's pid namespace. */
function sandboxPids(s: ContainerState): number[] {
  if (!s.initPid || !alive(s.initPid)) return [];
  let ns: string;
  try {
    ns = readlinkSync(`/proc/${s.initPid}/ns/pid`);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/ns/pid`) === ns) pids.push(Number(e));
    } catch {
      // gone
    }
  }
  return pids.sort((a, b) => a - b);
}

function signal(pid: number, sig: number): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw new CliError(`kill ${pid}: ${(e as Error).message}`);
  }
}

/** `kill`: the signal goes to the program (with --all, to every process of the sandbox). */
async function kill(g: Globals, id: string, sigText: string, all: boolean): Promise<void> {
  const sig = parseSignal(sigText);
  const c = new ContainerDir(g.root, id);
  await c.lock();
  const s = c.read();
  if (s.status === 'stopped') throw new CliError('container not running');
  if (all) {
    for (const pid of sandboxPids(s)) signal(pid, sig);
    return;
  }
  // The program (stage 2 of the helper, held at its exec, while created); the Sentry if there is none yet.
  signal(s.initPid && alive(s.initPid) ? s.initPid : s.pid, sig);
}

async function waitGone(pid: number, start: string | undefined, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (alive(pid, start)) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** `delete`: a stopped or created container's folder goes, after its poststop hooks; --force kills a running one first. */
async function remove(g: Globals, id: string, force: boolean): Promise<void> {
  const c = new ContainerDir(g.root, id);
  await c.lock();
  const raw = c.readRaw();
  if (!raw) {
    if (force) return;
    throw new CliError(`container ${id} does not exist`);
  }
  const s = live(raw);
  if (s.status !== 'stopped') {
    // A container never started goes without --force, as runc's does (docker rm of a created container).
    if (!force && s.status !== 'created') throw new CliError(`cannot delete container ${id} that is not stopped: ${s.status}`);
    if (s.initPid && alive(s.initPid)) signal(s.initPid, SIGNALS.SIGKILL!);
    if (s.status === 'paused') for (const pid of sandboxPids(s)) signal(pid, SIGNALS.SIGKILL!);
  }
  // The Sentry cleans up after its program: give it the time, then make sure. A warm start's keeper goes with its
  // Sentry, unless it was killed: then its Sentry is still cleaning up, in this folder.
  for (const [pid, start] of [[s.pid, s.sentryStart], [s.sentryPid, s.sentryPidStart]] as const) {
    if (!pid || (await waitGone(pid, start, 10000))) continue;
    signal(pid, SIGNALS.SIGKILL!);
    await waitGone(pid, start, 5000);
  }
  let hooks;
  try {
    hooks = loadSpec(s.bundle).hooks;
  } catch {
    hooks = undefined;
  }
  if (hooks?.poststop?.length) {
    const { runHooks } = await import('./hooks.ts');
    const err = await runHooks(hooks, 'poststop', publicState({ ...s, status: 'stopped' }));
    if (err) process.stderr.write(`tsvisor: ${err}\n`);
  }
  // Loaded only for a container that has cgroups (the file is cgroups.ts's CGROUPS_FILE): the lean entry's other
  // commands never read them.
  if (existsSync(join(c.dir, 'cgroups'))) (await import('./cgroups.ts')).removeContainerCgroups(c.dir);
  c.remove();
}

/** `ps`: the sandbox's processes, as pids (json) or a ps table. */
function ps(g: Globals, id: string, format: string): void {
  const c = new ContainerDir(g.root, id);
  const s = c.read();
  const pids = s.status === 'stopped' ? [] : sandboxPids(s);
  if (format === 'json') {
    process.stdout.write(JSON.stringify(pids) + '\n');
    return;
  }
  if (format !== 'table') throw new UsageError(`ps: unknown format '${format}' (json, table)`);
  const lines = ['PID\tCMD'];
  for (const pid of pids) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean).join(' ');
    } catch {
      continue;
    }
    lines.push(`${pid}\t${cmd}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

/**
 * `pause`/`resume`: SIGSTOP/SIGCONT of every process of the sandbox (there is no cgroup of ours to freeze: the
 * machine's cgroups are v1 hybrid and the runtime makes none). The Sentry keeps running: the netstack's timers
 * and the peers' connections stay served, as a frozen runc container's kernel sockets do.
 */
async function pause(g: Globals, id: string, stop: boolean): Promise<void> {
  const c = new ContainerDir(g.root, id);
  await c.lock();
  const s = c.read();
  if (stop && s.status !== 'running') throw new CliError(`container ${id} is ${s.status}, not running`);
  if (!stop && s.status !== 'paused') throw new CliError(`container ${id} is ${s.status}, not paused`);
  const sig = stop ? SIGNALS.SIGSTOP! : SIGNALS.SIGCONT!;
  // Twice: a process forked while the first round went by is caught by the second.
  for (let round = 0; round < 2; round++) for (const pid of sandboxPids(s)) signal(pid, sig);
  c.write({ ...(c.readRaw() ?? s), status: stop ? 'paused' : 'running' });
}

/** `list`: the containers under --root. */
function list(g: Globals, format: string, quiet: boolean): void {
  const states = listContainers(g.root).map((c) => c.readRaw()).filter((s): s is ContainerState => s !== undefined).map(live);
  if (quiet) {
    process.stdout.write(states.map((s) => s.id + '\n').join(''));
    return;
  }
  if (format === 'json') {
    process.stdout.write(JSON.stringify(states.map(publicState)) + '\n');
    return;
  }
  const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'], ...states.map((s) => [s.id, String(s.status === 'stopped' ? 0 : s.pid), s.status, s.bundle, s.created, s.owner || 'root'])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  process.stdout.write(rows.map((r) => r.map((v, i) => v.padEnd(widths[i]!)).join('   ').trimEnd()).join('\n') + '\n');
}

/** `features`: what this runtime does, in runc's `features` shape. */
function features(): Record<string, unknown> {
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: '1.1.0',
    hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
    mountOptions: ['ro', 'rw', 'bind', 'rbind', 'mode'],
    linux: {
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount', 'user', 'cgroup'],
      capabilities: CAPABILITIES,
      // cgroupsPath and resources through the cgroup file systems (cli/oci/cgroups.ts); systemd is never asked.
      cgroup: { v1: true, v2: true, systemd: false, rdma: false },
      seccomp: {
        enabled: true,
        actions: ['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_TRAP', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE'],
        operators: ['SCMP_CMP_EQ', 'SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_GT', 'SCMP_CMP_GE', 'SCMP_CMP_MASKED_EQ'],
        archs: ['SCMP_ARCH_X86_64'],
      },
      apparmor: { enabled: false },
      selinux: { enabled: false },
    },
    annotations: { 'org.tsvisor.sentry': 'seccomp user notification; the netstack serves INET sockets' },
  };
}

/** `run`: create, start, wait for the program, delete; the exit status is the program's. --detach stops after start. */
async function runContainer(g: Globals, p: Parsed, id: string): Promise<number> {
  const pid = await create(g, p, id);
  try {
    await start(g, id);
  } catch (e) {
    await remove(g, id, true);
    throw e;
  }
  if (p.flags.detach) return 0;
  const c = new ContainerDir(g.root, id);
  const s = c.readRaw();
  await waitGone(pid, s?.sentryStart, 2 ** 31 - 1);
  const status = c.readRaw()?.exitStatus ?? 137;
  if (!p.flags.keep) await remove(g, id, true);
  return status;
}
