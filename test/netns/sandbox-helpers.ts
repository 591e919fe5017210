// Helpers of the tests that run real programs in `tsvisor run --network=sandbox` (run-programs, run-apps,
// run-signals, run-security): a caller namespace of the test's own (prefix tsd) that holds the caller's end of the
// veth `run` makes and the Linux peers, a long-running `tsvisor run` whose addresses come from its debug log, C
// programs compiled into a directory the sandbox sees, and peers that are killed at the end.
import { type ChildProcess, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { deleteNetns, run } from '../../lib/testnet.ts';
import { HANG_MS } from '../lib/wait.ts';
import { CLI, type RunResult, collect, logId, spawnIn, waitFor } from './run-helpers.ts';

/** Where the sandbox sees the test's directory (bound read-only). */
export const INSIDE = '/mnt';

/** A test's namespace, scratch directory and processes, all removed in `t`'s teardown. */
export interface Bench {
  /** The caller namespace `tsd-<name>`: `run` is started here, so its veth's caller end and the peers live here. */
  ns: string;
  /** A scratch directory on the host, readable by the sandbox's unprivileged identity; bound at INSIDE. */
  dir: string;
  /** The `--ro-bind` arguments that show `dir` at INSIDE. */
  bind: string[];
  /** Spawns a Linux program in `ns`, killed at the end; its standard error is read (a full pipe would stop it). */
  peer(argv: string[]): ChildProcess;
  /** What each peer is doing now: pid, its state letter from /proc (R, S, T...) or 'gone', and its stderr so far. */
  peerStates(): string;
  /** Writes `text` to `dir/name` (mode 0644) and returns its path inside the sandbox. */
  file(name: string, text: string): string;
  /** Compiles C `source` into `dir/name` with `cc flags`; returns its path inside the sandbox. */
  cc(name: string, source: string, flags?: string[]): string;
}

/** The state letter of `pid` in /proc/PID/stat (after the command's closing parenthesis), or 'gone'. */
function procState(pid: number | undefined): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return 'gone';
  }
}

/** Makes a Bench: namespace `tsd-<name>` with lo up, a scratch directory, teardown of both and of every peer. */
export function bench(t: Test, name: string): Bench {
  const ns = `tsd-${name}`;
  deleteNetns(ns);
  run(['ip', 'netns', 'add', ns]);
  run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  const dir = mkdtempSync(join(tmpdir(), `tsd-${name}-`));
  // The program runs as an unprivileged host identity: the directory must be searchable by it.
  chmodSync(dir, 0o755);
  const peers: ChildProcess[] = [];
  const stderrs = new Map<ChildProcess, string>();
  t.teardown(() => {
    for (const p of peers) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    deleteNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    ns,
    dir,
    bind: ['--ro-bind', `${dir}:${INSIDE}`],
    peer(argv) {
      const c = spawnIn(ns, argv);
      peers.push(c);
      stderrs.set(c, '');
      c.stderr!.on('data', (d) => stderrs.set(c, stderrs.get(c)! + d));
      return c;
    },
    peerStates() {
      return peers.map((p) => `pid ${p.pid} ${procState(p.pid)} ${JSON.stringify(stderrs.get(p)!.slice(-300))}`).join('; ');
    },
    file(fname, text) {
      writeFileSync(join(dir, fname), text, { mode: 0o644 });
      return `${INSIDE}/${fname}`;
    },
    cc(fname, source, flags = []) {
      writeFileSync(join(dir, `${fname}.c`), source);
      execFileSync('cc', ['-O1', '-o', join(dir, fname), join(dir, `${fname}.c`), ...flags], { stdio: 'pipe' });
      return `${INSIDE}/${fname}`;
    },
  };
}

/** A `tsvisor run` in progress. */
export interface Running {
  child: ChildProcess;
  id: string;
  log: string;
  /** The sandbox's own addresses and the caller's end of its veth (the program's gateway), IPv4 and IPv6. */
  sandbox4: string;
  sandbox6: string;
  gw4: string;
  gw6: string;
  stdout(): string;
  stderr(): string;
  /** Resolves when `tsvisor run` has exited. */
  done: Promise<RunResult>;
}

/** Reads a file that may not exist yet. */
export function readOr(path: string, or = ''): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return or;
  }
}

/**
 * Starts `tsvisor run --debug-log ... ARGS` in `b.ns` and resolves once the program runs (its log says ready);
 * `nodeArgs` go to the node that runs tsvisor.
 */
export async function start(b: Bench, args: string[], opts: { timeoutMs?: number; prefix?: string[]; nodeArgs?: string[] } = {}): Promise<Running> {
  const log = join(b.dir, `run-${Math.random().toString(36).slice(2)}.log`);
  const child = b.peer([...(opts.prefix ?? []), process.execPath, ...(opts.nodeArgs ?? []), CLI, 'run', '--debug-log', log, ...args]);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const done = collect(child, opts.timeoutMs ?? 10 * HANG_MS);
  let exited = false;
  void done.then(() => (exited = true));
  await waitFor(() => exited || /timing ready=/.test(readOr(log)), HANG_MS);
  const text = readOr(log);
  if (!/timing ready=/.test(text)) throw new Error(`run did not start: ${err}`);
  const m = /\((198\.18\.\d+\.\d+)\/30 (fd74:[0-9a-f:]+)\/64\) ↔ \S+ \((198\.18\.\d+\.\d+)\/30 (fd74:[0-9a-f:]+)\/64\)/.exec(text);
  return {
    child,
    id: logId(log)!,
    log,
    gw4: m?.[1] ?? '',
    gw6: m?.[2] ?? '',
    sandbox4: m?.[3] ?? '',
    sandbox6: m?.[4] ?? '',
    stdout: () => out,
    stderr: () => err,
    done,
  };
}

/**
 * A command prefix that starts tsvisor without tap's instrumentation: tap's hooks put NODE_OPTIONS into the
 * environment of whatever the test spawns, a tsvisor with them passes it to the node program it starts, and that
 * node then fails writing under .tap/ on the sandbox's read-only root.
 */
export const UNTAPPED = ['env', '-u', 'NODE_OPTIONS'];

/** Pids of processes whose command line contains `marker` (the program inside, seen from the host). */
export function pidsWith(marker: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const cmd = readOr(`/proc/${e}/cmdline`);
    if (cmd.includes(marker) && !cmd.includes('tsvisor.js') && !cmd.includes('cli/bin.js')) pids.push(Number(e));
  }
  return pids;
}

/** Waits for `ss` in `ns` to show a listener on `port` (tcp or udp). */
export async function listening(ns: string, port: number, proto: 'tcp' | 'udp' = 'tcp'): Promise<boolean> {
  return waitFor(() => run(['ip', 'netns', 'exec', ns, 'ss', proto === 'tcp' ? '-Hltn' : '-Hlun', `sport = :${port}`]).includes(`:${port}`), HANG_MS);
}

/**
 * A Python TCP listener for peers: accepts on HOST:PORT and prints one line per connection,
 * "accept LOCALADDR PEERADDR", flushing; it reads until EOF and closes, or echoes with `echo`.
 */
export const PY_ACCEPTOR = `
import socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(1024); print('ready', flush=True)
def serve(c):
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
    except OSError: pass
    c.close()
while True:
    c, a = s.accept()
    print('accept', c.getsockname()[0], a[0], flush=True)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;
