/**
 * Starts a program in the sandbox (issue 9, "Launch chain"): Node spawns the helper, which joins the app netns,
 * sets NO_NEW_PRIVS, installs the filter with a listener and reports the listener's fd number; we take the
 * listener with pidfd_getfd, set SYNC_WAKE_UP and ack; the helper execs bwrap (which builds the namespaces and
 * mounts, then runs the helper's second stage) or the program directly. The helper runs first because its pid is
 * the one we spawned and because bwrap cannot hand a listener back.
 *
 * Exec failures come back through the report pipe as execvp's errno, so that `launch` rejects with the shell's
 * 127 (not found) or 126 (not executable) and a message naming the program. The window between the ack and the
 * program's exec runs bwrap and the helper under the filter with nobody answering yet: neither makes a trapped
 * call (bwrap without --unshare-net opens no socket), so `launch` can wait for the exec before it returns.
 */
import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { onLines } from '../../lib/lines.ts';
import { errnoName, sys } from '../../lib/libc.ts';
import { pidfdGetfd, pidfdOpen } from '../../lib/pidfd.ts';
import { notifSetFlags } from '../../lib/seccomp.ts';
import { SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP } from '../seccomp/notify.ts';
import { releaseFiles } from './bwrap.ts';
import { helperPath } from './native/build.ts';

/** What to run and how. */
export interface LaunchOptions {
  /** PROGRAM and its arguments; PROGRAM is looked up in env.PATH inside the sandbox. */
  argv: string[];
  /** The policy as sock_filter bytes (buildPolicy); empty for no filter and no listener. */
  filter: Uint8Array;
  /** A netns file to join (the app netns); absent: stay in the caller's. */
  appNetns?: string;
  /** `bwrapArgs(...)`, or [] to exec the program directly. */
  bwrap: string[];
  /** The program's whole environment. */
  env: Record<string, string>;
  /**
   * The host identity the sandbox runs as (default: ours, root). bwrap maps it to uid 0 inside either way; an
   * unprivileged one (65534:65534) takes away root's owner rights on host files such as /etc/shadow (0640 root).
   */
  user?: { uid: number; gid: number };
  /** The working directory when there is no bwrap (with bwrap, bwrapArgs' cwd). */
  cwd?: string;
  /**
   * Where the sandbox sees the helper (default: its host path). A root that is not the host's (`--rootfs`) has no
   * such path, and bwrap must create nothing in it: a path under the sandbox's own `/dev` then.
   */
  helperAt?: string;
  /** The program's stdin, stdout and stderr: inherited (default), piped to us, ignored, or these three fds. */
  stdio?: 'inherit' | 'pipe' | 'ignore' | [number, number, number];
  /**
   * Hold the program at its exec until `Sandbox.start()` (the OCI runtime's create/start split): `launch`
   * resolves once bwrap has built the sandbox and stage 2 waits, with the program's pid known.
   */
  gate?: boolean;
  /** A second seccomp filter (the engine's profile), installed by stage 2 right before the program's exec. */
  filter2?: Uint8Array;
  /** A console socket: a new pty's master goes there, its slave is the program's stdio and terminal. */
  consoleSocket?: string;
  /** Resource limits [resource number, soft, hard], clamped to what this process may set. */
  rlimits?: [number, bigint, bigint][];
  /** bwrap was given --as-pid-1: the program is its monitor's child, not its pid-namespace init's. */
  asPid1?: boolean;
  /**
   * With bwrap: the user namespace's uid_map and gid_map, written by us (root) while bwrap waits for them
   * (`--info-fd`, `--userns-block-fd`), where bwrap, unprivileged, could map only its own identity. Lines of
   * "INSIDE HOST COUNT".
   */
  idMap?: { uid: string; gid: string };
}

/** A running sandbox. */
export interface Sandbox {
  /** The helper's pid: bwrap's monitor, or the program itself without bwrap. */
  pid: number;
  /** Our listener fd (the caller owns it), or -1 when no filter was asked. */
  listenerFd: number;
  /** With stdio 'pipe': the program's stdin, stdout, stderr. */
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  /** Settles when the helper's pid exits: the program's code, or the signal that killed it. */
  wait(): Promise<{ code: number | null; signal: string | null }>;
  /** With `gate`: lets the program exec; resolves once it has, rejects with ExecError when it cannot. */
  start(): Promise<void>;
  /** The program's host pid (stage 2's before the gate opens), once known. */
  programPid(): number | undefined;
  /**
   * Sends `sig` to the program (inside bwrap: to the program's host pid, SIGINT and SIGQUIT to its process group);
   * SIGKILL kills the whole sandbox.
   */
  kill(sig: NodeJS.Signals | number): void;
}

/** PROGRAM could not be run: `status` is the shell's 127 (not found) or 126 (found, not executable). */
export class ExecError extends Error {
  constructor(
    readonly program: string,
    readonly errno: number,
    readonly status: 126 | 127,
  ) {
    super(`${program}: ${errno === 2 ? 'command not found' : sys.strerror(errno)}`);
    this.name = 'ExecError';
  }
}

/** The sandbox could not be set up (exit status 1): the message names the step and the cause. */
export class LaunchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LaunchError';
  }
}

/** The exit status a shell would report: the code, or 128 + the signal's number. */
export function exitStatus(r: { code: number | null; signal: string | null }): number {
  if (r.code !== null) return r.code;
  const n = r.signal ? (osConstants.signals as Record<string, number>)[r.signal] : undefined;
  return 128 + (n ?? 0);
}

const REPORT_FD = 3;
const ACK_FD = 4;
const FILTER_FD = 5;
const GATE_FD = 6;
const FILTER2_FD = 7;
const INFO_FD = 8;
const USERNS_BLOCK_FD = 9;

/** Starts `o.argv` in the sandbox; resolves once the program has been exec'd. */
export async function launch(o: LaunchOptions): Promise<Sandbox> {
  if (o.argv.length === 0) throw new LaunchError('no program to run');
  const helper = helperPath();
  const withFilter = o.filter.length > 0;
  const idMap = o.bwrap.length > 0 ? o.idMap : undefined;
  const bwrap = idMap ? [o.bwrap[0]!, '--info-fd', String(INFO_FD), '--userns-block-fd', String(USERNS_BLOCK_FD), ...o.bwrap.slice(1)] : o.bwrap;
  const passOn = [
    ...(o.gate ? ['--gate', String(GATE_FD)] : []),
    ...(o.filter2 ? ['--filter2', String(FILTER2_FD)] : []),
  ];
  const stage1 = [
    ...(o.appNetns ? ['--netns', o.appNetns] : []),
    ...(o.user ? ['--user', `${o.user.uid}:${o.user.gid}`] : []),
    ...(withFilter ? ['--filter', String(FILTER_FD)] : []),
    ...(o.consoleSocket ? ['--console-socket', o.consoleSocket] : []),
    ...(o.rlimits ?? []).flatMap(([r, soft, hard]) => ['--rlimit', `${r}:${soft}:${hard}`]),
    ...(idMap ? ['--keep-fd', String(INFO_FD), '--keep-fd', String(USERNS_BLOCK_FD)] : []),
    ...passOn,
  ];
  const stage2 = [...passOn, ...(o.consoleSocket ? ['--tty'] : [])];
  const args =
    o.bwrap.length > 0
      ? // The helper's path is bound at itself in case it sits under a tmpfs bwrap mounts (/tmp, /run).
        [...stage1, '--keep-report', '--', ...bwrap, '--ro-bind', helper, o.helperAt ?? helper, '--', o.helperAt ?? helper, '--stage2', ...stage2, '--', ...o.argv]
      : [...stage1, '--', ...o.argv];
  const io = o.stdio ?? 'inherit';
  const stdio: StdioOptions = [...(Array.isArray(io) ? io : [io, io, io]), 'pipe', 'pipe', withFilter ? 'pipe' : 'ignore',
    o.gate ? 'pipe' : 'ignore', o.filter2 ? 'pipe' : 'ignore', ...(idMap ? ['pipe', 'pipe'] as const : [])];
  const child = spawn(helper, args, { stdio, env: o.env, cwd: o.bwrap.length > 0 ? undefined : o.cwd });
  let spawnError: Error | undefined;
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    // Spawning itself failed (e.g. a cache directory mounted noexec): there will be no 'exit'.
    child.once('error', (e) => {
      spawnError = new LaunchError(`cannot run the sandbox helper ${helper}: ${e.message}`);
      resolve({ code: 1, signal: null });
    });
  });
  if (withFilter) {
    const filter = pipes(child)[FILTER_FD] as Writable;
    // A helper that fails before reading the filter resets this pipe; its report says why.
    filter.on('error', () => {});
    filter.end(Buffer.from(o.filter));
  }
  if (o.filter2) {
    const f2 = pipes(child)[FILTER2_FD] as Writable;
    f2.on('error', () => {});
    f2.end(Buffer.from(o.filter2));
  }
  let listenerFd = -1;
  let execDone: Promise<void> = Promise.resolve();
  // bwrap waits for its id maps before it goes on to the sandbox, so that they are written while the handshake
  // waits for stage 2; a failure to write them fails the launch.
  const mapped = idMap ? writeIdMaps(child, idMap) : undefined;
  mapped?.catch(() => {}); // judged in the race below; a helper that failed earlier leaves it rejecting unseen
  try {
    await Promise.race([
      handshake(child, o, (fd) => (listenerFd = fd), exit, (p) => (execDone = p)),
      ...(mapped ? [mapped.then(() => new Promise<void>(() => {}))] : []),
      // Only a failed spawn ends the wait here; a normal exit is judged by the report pipe's messages.
      exit.then(() => (spawnError ? Promise.reject(spawnError) : new Promise<void>(() => {}))),
    ]);
  } catch (err) {
    if (listenerFd >= 0) sys.close(listenerFd);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exit;
    throw err;
  } finally {
    releaseFiles(o.bwrap);
  }
  const gate = o.gate ? (pipes(child)[GATE_FD] as Writable) : undefined;
  gate?.on('error', () => {});
  return sandbox(child, listenerFd, o.bwrap.length > 0, exit, gate, execDone, o.asPid1 ?? false);
}

/** Reads the helper's report lines, takes the listener, acks, and waits for the program's exec. */
function handshake(
  child: ChildProcess,
  o: LaunchOptions,
  gotListener: (fd: number) => void,
  exit: Promise<{ code: number | null; signal: string | null }>,
  gated: (execDone: Promise<void>) => void,
): Promise<void> {
  const report = pipes(child)[REPORT_FD] as Readable;
  const ack = pipes(child)[ACK_FD] as Writable;
  ack.on('error', () => {});
  const viaBwrap = o.bwrap.length > 0;
  const program = o.argv[0]!;
  return new Promise<void>((resolve, reject) => {
    let listened = false;
    let stage2 = false;
    let settled = false;
    // With a gate, launch resolves at "stage2" and this settles the program's exec (start) afterwards.
    let afterGate: { resolve: () => void; reject: (e: Error) => void } | undefined;
    const done = (err?: Error) => {
      if (afterGate) {
        const g = afterGate;
        afterGate = undefined;
        report.destroy();
        if (err) g.reject(err);
        else g.resolve();
        return;
      }
      if (settled) return;
      settled = true;
      ack.destroy();
      if (err) reject(err);
      else resolve();
      if (settled && !o.gate) report.destroy();
      else if (err) report.destroy();
    };
    const line = (l: string) => {
      const [tag, value, errnoStr] = l.split(' ');
      if (tag === 'listener') {
        const n = Number(value);
        if (n >= 0) {
          const fd = takeListener(Number(errnoStr ?? child.pid), n);
          if (typeof fd === 'string') return done(new LaunchError(fd));
          gotListener(fd);
        }
        listened = true;
        ack.write(Buffer.of(1));
      } else if (tag === 'error') {
        done(new LaunchError(setupMessage(value!, Number(errnoStr), o)));
      } else if (tag === 'stage2') {
        stage2 = true;
        if (o.gate && !settled) {
          done();
          const p = new Promise<void>((res, rej) => (afterGate = { resolve: res, reject: rej }));
          p.catch(() => {});
          gated(p);
        }
      } else if (tag === 'exec1' && viaBwrap) {
        const e = Number(value);
        done(new LaunchError(`cannot run ${o.bwrap[0]}: ${errnoName(e)} (install bubblewrap)`));
      } else if (tag === 'exec1' || tag === 'exec2') {
        const e = Number(value);
        done(new ExecError(program, e, e === 2 ? 127 : 126));
      }
    };
    onLines(report, line);
    report.on('error', () => {});
    // End-of-file: the last exec closed the pipe (success), or everything holding it exited.
    report.on('end', () => {
      // Gated: end-of-file is the program's exec (start() checks that the sandbox had not exited instead).
      if (afterGate) return done();
      if (settled) return;
      if (listened && (!viaBwrap || stage2)) return done();
      void exit.then((r) =>
        done(
          new LaunchError(
            listened
              ? `${o.bwrap[0]} could not set up the sandbox (exit status ${exitStatus(r)}; its message is above)`
              : `the sandbox helper exited during set-up (status ${exitStatus(r)})`,
          ),
        ),
      );
    });
  });
}

/** Our copy of listener fd `n` of process `pid`, with SYNC_WAKE_UP set; or a message saying what failed. */
export function takeListener(pid: number, n: number): number | string {
  const pidfd = pidfdOpen(pid);
  if (pidfd < 0) return `pidfd_open(${pid}) failed: ${errnoName(-pidfd)} (kernel 5.3+ needed)`;
  const fd = pidfdGetfd(pidfd, n);
  sys.close(pidfd);
  if (fd < 0) return `pidfd_getfd of the seccomp listener failed: ${errnoName(-fd)} (kernel 5.6+ and root needed)`;
  // SYNC_WAKE_UP (6.6+) halves the round trip; older kernels work without it.
  notifSetFlags(fd, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
  return fd;
}

function setupMessage(step: string, errno: number, o: LaunchOptions): string {
  const e = `${errnoName(errno)} (${sys.strerror(errno)})`;
  switch (step) {
    case 'open-netns':
    case 'setns':
      return `cannot join the network namespace ${o.appNetns}: ${e}`;
    case 'user':
      return `cannot switch to uid:gid ${o.user?.uid}:${o.user?.gid}: ${e}`;
    case 'seccomp':
      return errno === 22
        ? `installing the seccomp filter failed: ${e} (a listener with WAIT_KILLABLE_RECV needs Linux 5.19 or later)`
        : errno === 16
          ? `installing the seccomp filter failed: ${e} (already inside a sandbox with a seccomp listener)`
          : `installing the seccomp filter failed: ${e}`;
    default:
      return `sandbox helper step ${step} failed: ${e}`;
  }
}

function sandbox(
  child: ChildProcess,
  listenerFd: number,
  viaBwrap: boolean,
  exit: Promise<{ code: number | null; signal: string | null }>,
  gate: Writable | undefined,
  execDone: Promise<void>,
  asPid1: boolean,
): Sandbox {
  const pid = child.pid!;
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  let programPid: number | undefined;
  // bwrap's monitor (pid) → its pid-namespace init → the program: the program is the init's first child.
  const findProgram = (): number | undefined => {
    if (!viaBwrap) return pid;
    if (programPid !== undefined) return programPid;
    const init = children(pid)[0];
    const prog = asPid1 ? init : init === undefined ? undefined : children(init)[0];
    if (prog !== undefined) programPid = prog;
    return prog;
  };
  return {
    pid,
    listenerFd,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    wait: () => exit,
    programPid: () => findProgram(),
    async start() {
      if (!gate) return;
      if (exited()) throw new LaunchError('the sandbox has exited: the program cannot start');
      gate.end(Buffer.of(1));
      await execDone;
      if (exited() && child.exitCode === 1) throw new LaunchError('the sandbox exited before the program started');
    },
    kill(sig) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const num = typeof sig === 'number' ? sig : (osConstants.signals as Record<string, number>)[sig];
      if (num === undefined) throw new Error(`unknown signal ${String(sig)}`);
      // SIGKILL of bwrap's monitor takes the whole sandbox down (--die-with-parent); other signals would be
      // swallowed by bwrap, so they go to the program itself. SIGINT and SIGQUIT go to its process group, as a
      // terminal's Ctrl-C and Ctrl-\ would (bwrap's --new-session made the program a group leader).
      const target = num === osConstants.signals.SIGKILL ? pid : findProgram();
      if (target === undefined) return;
      const group = viaBwrap && (num === osConstants.signals.SIGINT || num === osConstants.signals.SIGQUIT);
      for (const to of group ? [-target, target] : [target]) {
        try {
          process.kill(to, num);
          return;
        } catch {
          // no such group (the program left it), or already gone
        }
      }
    },
  };
}

/**
 * Reads bwrap's child pid from its info fd (JSON with "child-pid"), writes that process's uid_map and gid_map, and
 * releases bwrap through its block fd. Rejects with a LaunchError when a map is refused; when the helper or bwrap
 * ends first it just resolves, and the handshake reports why.
 */
function writeIdMaps(child: ChildProcess, map: { uid: string; gid: string }): Promise<void> {
  const info = pipes(child)[INFO_FD] as Readable;
  const block = pipes(child)[USERNS_BLOCK_FD] as Writable;
  block.on('error', () => {});
  return new Promise<void>((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('latin1');
      const m = /"child-pid"\s*:\s*(\d+)/.exec(text);
      if (!m) return;
      info.off('data', onData);
      info.off('end', onEnd);
      info.resume(); // anything more bwrap writes there is not ours to keep
      try {
        writeFileSync(`/proc/${m[1]}/uid_map`, map.uid);
        writeFileSync(`/proc/${m[1]}/gid_map`, map.gid);
      } catch (e) {
        block.destroy();
        return reject(new LaunchError(`cannot map the sandbox's user ids: ${(e as Error).message}`));
      }
      block.end('1', () => resolve());
    };
    const onEnd = () => resolve();
    info.on('data', onData);
    info.once('end', onEnd);
    info.on('error', () => {});
  });
}

/** The child's stdio streams by fd number (Node types them as a tuple of three). */
function pipes(child: ChildProcess): (Readable | Writable | null)[] {
  return child.stdio as unknown as (Readable | Writable | null)[];
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
