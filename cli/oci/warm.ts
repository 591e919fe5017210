/**
 * A warm Sentry: a Node process that the runtime's front (cli/oci/native/oci-front.c) starts ahead of need, one
 * per --root, which loads the Sentry's code and waits on `ROOT/.warm/ready-TAG-PID.sock`. `create` claims it
 * (renames the socket, so that two creates never get one Sentry), and hands it the container in one JSON line:
 * the container's id and bundle, and the numbers of the front's fds to take (pidfd_getfd): the log, the
 * container's stdio and the keeper's socket. The keeper is the front's child: only a descendant of the engine's
 * shim can be reaped by it, so the engine waits for the keeper, which exits with the status the Sentry sends it.
 *
 * Before it serves, the warm Sentry becomes what a cold one would have been, started by that front: its
 * environment, working directory, umask, resource limits, oom_score_adj and cgroups (the engine reads the
 * container's cgroup through the pid it is given; tsvisor puts the container where its caller runs, as a cold
 * Sentry is) are the caller's; a caller in other namespaces than its own gets "cold" and starts a Sentry of its
 * own. Then it runs cli/oci/sandbox.ts's main, reporting on the socket. A warm Sentry nobody claims exits after
 * its idle lifetime; one of another build (its TAG) is stopped by the front and never served.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { type Socket, createServer } from 'node:net';
import { join } from 'node:path';
import { errnoName, sys } from '../../lib/libc.ts';
import { pidfdGetfd, pidfdOpen } from '../../lib/pidfd.ts';
import { CliError } from '../errors.ts';
import { cgroupMounts, dirInMount } from './cgroups.ts';
import { alive } from './state.ts';

/** The folder of a root's warm Sentries. */
export function warmDir(root: string): string {
  return join(root, '.warm');
}

/** What `create` hands a warm Sentry. */
interface HandOver {
  id: string;
  bundle: string;
  /** fd numbers in the front: the container's log, stdin, stdout, stderr, and the Sentry's end of the keeper's socket. */
  log: number;
  stdio: [number, number, number];
  keeper: number;
  keeperPid: number;
}

const NAMESPACES = ['net', 'mnt', 'pid', 'user', 'uts', 'ipc', 'cgroup'];

/** The warm Sentry's main (`__oci-warm ROOT TAG IDLE_MS`): resolves to the exit status of the container it served. */
export async function ociWarmMain(argv: string[]): Promise<number> {
  const [root, tag, idleText] = argv;
  const idleMs = Number(idleText);
  if (!root || !tag || !/^[0-9a-f]+$/.test(tag) || !(idleMs > 0)) throw new CliError('usage: tsvisor __oci-warm ROOT TAG IDLE_MS');
  const dir = warmDir(root);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `ready-${tag}-${process.pid}.sock`);
  const loaded = import('./sandbox.ts').then(async (m) => {
    await m.preload();
    return m;
  });
  // Reported when a container is handed over; until then a failed load only costs the first claimer a cold start.
  loaded.catch(() => {});
  const sock = await new Promise<Socket | undefined>((resolve, reject) => {
    const server = createServer({ allowHalfOpen: true });
    const idle = setTimeout(() => {
      server.close();
      rmSync(path, { force: true });
      resolve(undefined);
    }, idleMs);
    server.once('connection', (s) => {
      // One container per warm Sentry: the front unlinks the (renamed) path, later connections are refused.
      clearTimeout(idle);
      server.close();
      resolve(s);
    });
    server.once('error', reject);
    rmSync(path, { force: true });
    server.listen({ path, readableAll: false, writableAll: false });
  });
  if (!sock) return 0;
  const origin = performance.now();
  const req = await readLine(sock);
  const send = (line: string) => sock.write(line + '\n');
  let h: HandOver;
  let peer: number;
  let fds: number[];
  let sandbox: typeof import('./sandbox.ts');
  try {
    h = JSON.parse(req ?? '') as HandOver;
    peer = peerPid(sock);
    const other = NAMESPACES.find((ns) => readlinkSync(`/proc/${peer}/ns/${ns}`) !== readlinkSync(`/proc/self/ns/${ns}`));
    if (other) throw new Cold(`the caller is in another ${other} namespace`);
    joinCgroups(peer);
    fds = takeFds(peer, [h.log, ...h.stdio, h.keeper]);
    sandbox = await loaded;
  } catch (e) {
    // Nothing of the container was touched: the front starts a Sentry of its own (which says what is wrong, if
    // anything is: a code that does not load here does not load there either).
    send(`cold ${(e as Error).message.split('\n')[0]}`);
    sock.end();
    return 1;
  }
  const [log, stdin, stdout, stderr, keeper] = fds as [number, number, number, number, number];
  // The container's log becomes this process's stdout and stderr, as a cold Sentry's are.
  sys.dup2(log, 1);
  sys.dup2(log, 2);
  sys.close(log);
  becomeCaller(peer, h.bundle);
  return await sandbox.ociSandboxMain([root, h.id], {
    report: send,
    endReport: () => sock.end(),
    stdio: [stdin, stdout, stderr],
    keeper: { pid: h.keeperPid, fd: keeper },
    origin,
  });
}

/** A reason to start cold instead. */
class Cold extends Error {}

/** The first line a socket sends, or undefined at its end without one. */
function readLine(sock: Socket): Promise<string | undefined> {
  return new Promise((resolve) => {
    let buf = '';
    sock.setEncoding('utf8');
    const done = (v: string | undefined) => {
      sock.removeAllListeners('data');
      resolve(v);
    };
    sock.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) done(buf.slice(0, i));
    });
    sock.on('error', () => done(undefined));
    sock.on('end', () => done(undefined));
  });
}

/** The pid of the process at the other end of a unix socket (SO_PEERCRED). */
function peerPid(sock: Socket): number {
  const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
  const cred = new Int32Array(3);
  const len = new Uint32Array([12]);
  if (sys.getsockopt(fd, 1 /* SOL_SOCKET */, 17 /* SO_PEERCRED */, cred, len) < 0) throw new Cold('cannot read the caller\'s credentials');
  return cred[0]!;
}

/** Our own copies of the caller's fds `fds` (pidfd_getfd: close-on-exec). */
function takeFds(peer: number, fds: number[]): number[] {
  const pidfd = pidfdOpen(peer);
  if (pidfd < 0) throw new Cold(`cannot open the caller ${peer}: ${errnoName(-pidfd)}`);
  try {
    return fds.map((fd) => {
      const mine = pidfdGetfd(pidfd, fd);
      if (mine < 0) throw new Cold(`cannot take fd ${fd} of the caller ${peer}: ${errnoName(-mine)}`);
      return mine;
    });
  } finally {
    sys.close(pidfd);
  }
}

/**
 * Moves this process into the caller's cgroups, hierarchy by hierarchy (cgroup.procs moves every thread): a
 * cold Sentry starts in them, and the program it launches later inherits them. Throws Cold when it cannot.
 */
export function joinCgroups(peer: number): void {
  const mine = readFileSync('/proc/self/cgroup', 'utf8');
  const theirs = readFileSync(`/proc/${peer}/cgroup`, 'utf8');
  if (mine === theirs) return;
  const have = new Set(mine.split('\n'));
  const mounts = cgroupMounts();
  for (const line of theirs.split('\n')) {
    if (!line || have.has(line)) continue;
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) throw new Cold(`cannot read the caller's cgroup line '${line}'`);
    const [, , controllers, path] = m;
    const mount = controllers === ''
      ? mounts.find((x) => x.v2)
      : mounts.find((x) => !x.v2 && controllers!.split(',').every((c) => x.options.includes(c)));
    if (!mount) throw new Cold(`no mount of the cgroup hierarchy '${controllers || 'unified'}'`);
    // The mount shows the hierarchy from its root: a path outside it is not reachable from here.
    const dir = dirInMount(mount, path!);
    if (dir === undefined) throw new Cold(`cgroup ${path} is outside the mount at ${mount.point}`);
    try {
      writeFileSync(join(dir, 'cgroup.procs'), String(process.pid));
    } catch (e) {
      throw new Cold(`cannot join cgroup ${path} (${controllers || 'unified'}): ${(e as Error).message}`);
    }
  }
}

/**
 * The caller's environment, working directory (the bundle, as a cold Sentry's; / when there is none), umask,
 * resource limits and oom_score_adj: nothing of whoever started this process earlier reaches the container.
 */
function becomeCaller(peer: number, bundle: string): void {
  const env = readFileSync(`/proc/${peer}/environ`, 'latin1').split('\0').filter((kv) => kv.includes('='));
  for (const k of Object.keys(process.env)) delete process.env[k];
  for (const kv of env) {
    const i = kv.indexOf('=');
    process.env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  process.chdir(existsSync(bundle) ? bundle : '/');
  const umask = /^Umask:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${peer}/status`, 'latin1'));
  if (umask) process.umask(parseInt(umask[1]!, 8));
  try {
    writeFileSync('/proc/self/oom_score_adj', readFileSync(`/proc/${peer}/oom_score_adj`, 'latin1').trim());
  } catch (e) {
    process.stderr.write(`${new Date().toISOString()} warm Sentry: oom_score_adj not copied: ${(e as Error).message}\n`);
  }
  // Niceness is per thread on Linux: every thread of ours gets the caller's (the front started this one nicer).
  const nice = Number(readFileSync(`/proc/${peer}/stat`, 'latin1').split(') ')[1]!.split(' ')[16]);
  for (const tid of readdirSync('/proc/self/task')) {
    if (sys.setpriority(0 /* PRIO_PROCESS */, Number(tid), nice) < 0) {
      process.stderr.write(`${new Date().toISOString()} warm Sentry: niceness ${nice} not taken for thread ${tid}\n`);
    }
  }
  const limit = new BigUint64Array(2);
  // RLIMIT_CPU .. RLIMIT_RTTIME; a hard limit above ours cannot be raised without CAP_SYS_RESOURCE: said in the log.
  for (let r = 0; r <= 15; r++) {
    if (sys.prlimit(peer, r, null, limit) < 0 || sys.prlimit(0, r, limit, null) === 0) continue;
    process.stderr.write(`${new Date().toISOString()} warm Sentry: resource limit ${r} of the caller not taken (${limit[0]}/${limit[1]})\n`);
  }
}

/** Stops the warm Sentries waiting under `root` (teardown of tests and benchmarks); resolves once they are gone. */
export async function stopWarm(root: string): Promise<void> {
  const dir = warmDir(root);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const pids: number[] = [];
  for (const n of names) {
    const m = /^ready-[0-9a-f]{16}-(\d+)\.sock$/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    try {
      // A reused pid is left alone.
      if (readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').includes('__oci-warm')) {
        process.kill(pid, 'SIGTERM');
        pids.push(pid);
      }
    } catch {
      // gone
    }
    rmSync(join(dir, n), { force: true });
  }
  const until = Date.now() + 10000;
  while (pids.some((p) => alive(p)) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
}
