/**
 * The OCI runtime's `exec`: a second program joins a running container's sandbox (`sentry-exec --join`) and its
 * seccomp listener is handed to the container's Sentry over the control socket. Loaded only by `exec`, so that
 * the lifecycle calls an engine makes per container load none of it.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { errnoName } from '../../lib/libc.ts';
import { UsageError } from '../args.ts';
import { CliError } from '../errors.ts';
import { missingId, request, writePidFile } from './commands.ts';
import type { Globals, Parsed } from './main.ts';
import { type Process, RLIMITS, allowedCaps, capMask, checkProcess, envRecord, grantsNetRaw, loadSpec } from './spec.ts';
import { ContainerDir, alive } from './state.ts';

const SIGNALS = osConstants.signals as Record<string, number>;

/** `exec`: a second program in the container's sandbox, served by its Sentry. */
export async function exec(g: Globals, p: Parsed): Promise<number> {
  const [id, ...args] = p.positional;
  if (!id) missingId('exec');
  const c = new ContainerDir(g.root, id);
  const s = c.read();
  if (s.status !== 'running' && s.status !== 'created') throw new CliError(`cannot exec in a ${s.status} container`);
  if (!s.initPid || !alive(s.initPid)) throw new CliError(`container ${id} has no running program to join`);
  let proc: Process;
  if (p.flags.process) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(p.flags.process as string, 'utf8'));
    } catch (e) {
      throw new CliError(`--process ${p.flags.process as string}: ${(e as Error).message}`);
    }
    proc = checkProcess(json, 'process file');
  } else {
    if (args.length === 0) throw new UsageError('exec: no command given (ID COMMAND [ARGS...] or --process FILE)');
    const user = ((p.flags.user as string | undefined) ?? '0:0').split(':').map(Number);
    proc = checkProcess({
      args,
      env: p.flags.env ? [p.flags.env as string] : [],
      cwd: (p.flags.cwd as string | undefined) ?? '/',
      user: { uid: user[0] ?? 0, gid: user[1] ?? 0 },
      terminal: Boolean(p.flags.tty),
    });
  }
  const consoleSocket = p.flags['console-socket'] as string | undefined;
  if (proc.terminal && !consoleSocket) throw new CliError('process.terminal is true: --console-socket is needed');
  let spec;
  try {
    spec = loadSpec(s.bundle);
  } catch {
    spec = undefined;
  }
  const [{ buildPolicy }, { helperPath }, { compileSeccomp }] = await Promise.all([
    import('../../sentry/seccomp/policy.ts'),
    import('../../sentry/sandbox/native/build.ts'),
    import('./seccomp.ts'),
  ]);
  const mode = s.network ?? 'sandbox';
  const withCaps = { ...proc, capabilities: proc.capabilities ?? spec?.process?.capabilities };
  const filter = buildPolicy({ mode, allowRaw: grantsNetRaw(withCaps, g.netRaw), strace: g.strace });
  const filter2 = spec?.linux?.seccomp ? compileSeccomp(spec.linux.seccomp, () => {}) : undefined;
  const { uid, gid } = proc.user;
  const caps = capMask(allowedCaps(withCaps));
  const helperArgs = [
    '--join', String(s.initPid),
    ...(uid !== 0 || gid !== 0 ? ['--user', `${uid}:${gid}`] : []),
    ...(uid === 0 ? ['--caps', caps.toString(16)] : []),
    '--cwd', proc.cwd,
    '--filter', '5',
    ...(filter2 ? ['--filter2', '6'] : []),
    ...(consoleSocket ? ['--console-socket', resolve(consoleSocket)] : []),
    ...(proc.rlimits ?? []).flatMap((r) => ['--rlimit', `${RLIMITS[r.type]}:${r.soft}:${r.hard}`]),
    '--', ...proc.args,
  ];
  const child = spawn(helperPath(), helperArgs, {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe', 'pipe', 'pipe', filter2 ? 'pipe' : 'ignore'],
    env: envRecord(proc.env),
    detached: Boolean(p.flags.detach),
  });
  const exit = new Promise<{ code: number | null; signal: string | null }>((r) => child.once('exit', (code, sig) => r({ code, signal: sig })));
  const pipes = child.stdio as unknown as (Readable | Writable)[];
  (pipes[5] as Writable).on('error', () => {});
  (pipes[5] as Writable).end(Buffer.from(filter));
  if (filter2) {
    (pipes[6] as Writable).on('error', () => {});
    (pipes[6] as Writable).end(Buffer.from(filter2));
  }
  const ack = pipes[4] as Writable;
  ack.on('error', () => {});
  const report = pipes[3] as Readable;
  report.setEncoding('utf8');
  const outcome = await new Promise<string | undefined>((done) => {
    let buf = '';
    // The child's host pid ("child") and its listener's fd number ("listener") may come in either order.
    let hostPid: number | undefined;
    let listenerFd: number | undefined;
    const handOver = () => {
      if (hostPid === undefined || listenerFd === undefined) return;
      void request(s.control, { op: 'exec', pid: hostPid, fd: listenerFd }).then(
        (r) => (r.error ? done(String(r.error)) : ack.write(Buffer.of(1))),
        (e: Error) => done(e.message),
      );
    };
    report.on('error', () => {});
    report.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const [tag, a, b] = buf.slice(0, i).split(' ');
        buf = buf.slice(i + 1);
        if (tag === 'child') {
          hostPid = Number(a);
          handOver();
        } else if (tag === 'listener') {
          listenerFd = Number(a);
          handOver();
        } else if (tag === 'error') {
          done(`exec failed at ${a}: ${errnoName(Number(b))}`);
        } else if (tag === 'exec1') {
          done(`exec: "${proc.args[0]}": ${Number(a) === 2 ? 'executable file not found in $PATH' : errnoName(Number(a))}`);
        }
      }
    });
    report.on('end', () => done(undefined));
  });
  report.destroy();
  ack.destroy();
  if (outcome !== undefined) {
    if (child.exitCode === null) child.kill('SIGKILL');
    throw new CliError(outcome);
  }
  const pidFile = p.flags['pid-file'] as string | undefined;
  if (pidFile) writePidFile(resolve(pidFile), child.pid!);
  if (p.flags.detach) {
    child.unref();
    return 0;
  }
  const r = await exit;
  return r.code ?? 128 + (SIGNALS[r.signal ?? ''] ?? 0);
}
