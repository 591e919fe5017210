/**
 * The Sentry of one OCI container: the process `create` starts detached, which the engine's shim adopts and
 * waits for (its pid is the pid file's). It is `tsvisor run`'s Sentry with config.json for arguments:
 * it enters the container's network namespace (given by path, or made here), runs the prestart and createRuntime
 * hooks, takes over the interface the hooks or the engine put there (or runs with loopback only when there is
 * none), launches the program through the helper and bwrap held at its exec (the gate), reports "created" to
 * `create`, and then serves: `start` opens the gate over the control socket, `exec` hands it the listener of a
 * second program. When the program exits, the Sentry records its status, cleans up and exits with that status
 * (the code, or 128+N for signal N), so that the shim reports what the program did.
 *
 * Started cold (`create` runs `node CLI __oci-sandbox ROOT ID`), its fds are: 0 /dev/null, 1 and 2 its log (the
 * state folder's sentry.log), 3 the report pipe to `create`, 4, 5 and 6 the container's stdin, stdout and stderr.
 * A warm Sentry (cli/oci/warm.ts) is handed the same things over a socket and runs the same code with `SandboxIo`.
 */
import { closeSync, existsSync, lstatSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { type Server, Socket, createServer } from 'node:net';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { C, errnoName, errno, sys } from '../../lib/libc.ts';
import { NetnsHandle, addNetns, delNetns, interfacesHere, netnsFile } from '../../lib/netns.ts';
import { Janitor } from '../../sentry/sandbox/janitor.ts';
import type { Sandbox } from '../../sentry/sandbox/launch.ts';
import { helperPath } from '../../sentry/sandbox/native/build.ts';
import { newRunId, removeCommands, runNames } from '../../sentry/sandbox/netns.ts';
import type { Sentry } from '../../sentry/syscalls/dispatch.ts';
import { CliError } from '../errors.ts';
import type { RunNetwork } from '../run-network.ts';
import type { NetworkMode, RunOptions } from '../run.ts';
import { CGROUPS_FILE, ContainerCgroup } from './cgroups.ts';
import { runHooks } from './hooks.ts';
import { type Pod, findPod, isPodSandbox, netnsOwner, podSandboxId, unsharedWithPod } from './pod.ts';
import { RLIMITS, type Spec, allowedCaps, envRecord, grantsNetRaw, loadSpec } from './spec.ts';
import { ContainerDir, type ContainerState, publicState, startTime } from './state.ts';

/** What `create` hands the Sentry (the state folder's create.json). */
export interface CreateOptions {
  bundle: string;
  consoleSocket?: string;
  /** Global --network: forces host or none; sandbox (default) follows config.json. */
  network?: NetworkMode;
  strace: boolean;
  pcapLog?: string;
  /** Global --net-raw (grantsNetRaw); absent from the native front's create.json, which leaves that flag to us. */
  netRaw?: boolean;
  /** The inode of the netns `create` ran in: a config.json path naming it means host mode. */
  hostNetnsIno: number;
}

const REPORT_FD = 3;

/**
 * A root container's user namespace maps ids 0-65535 to the same host ids, as runc runs it without one: the
 * image's files owned by its users (nginx's 101, `nobody`) are theirs inside, and a server can chown and setuid to
 * them. bwrap, run as root, would map only 0.
 */
const ROOT_ID_MAP = { uid: '0 0 65536\n', gid: '0 0 65536\n' };

/** How a Sentry talks to `create` and which fds it was given: a cold one's fixed fds, or a warm one's hand-over. */
export interface SandboxIo {
  /** One line to `create` ("created", or "error MESSAGE"). */
  report(line: string): void;
  /** No more lines. */
  endReport(): void;
  /** The container's stdin, stdout and stderr (closed once the program has them). */
  stdio: [number, number, number];
  /**
   * On a warm start, the keeper: the front's child that the engine waits for in the Sentry's place (only a
   * descendant of the engine's shim can be reaped by it), and the Sentry's end of a socket to it.
   */
  keeper?: { pid: number; fd: number };
  /** performance.now() when the container came: timing marks count from it (a cold Sentry's Node start, 0). */
  origin?: number;
}

/** A cold Sentry's: fd 3 the report pipe, 4-6 the container's stdio. */
function coldIo(): SandboxIo {
  return {
    report: (line) => writeSync(REPORT_FD, line + '\n'),
    endReport: () => closeSync(REPORT_FD),
    stdio: [4, 5, 6],
  };
}

/** The Sentry's main: resolves to the program's exit status (the process's own). */
export async function ociSandboxMain(argv: string[], io: SandboxIo = coldIo()): Promise<number> {
  const [root, id] = argv;
  if (!root || !id) throw new CliError('usage: tsvisor __oci-sandbox ROOT ID');
  const c = new ContainerDir(root, id);
  const opts = JSON.parse(readFileSync(join(c.dir, 'create.json'), 'utf8')) as CreateOptions;
  const log = (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`);
  // Start-up marks, ms since this Node started or a warm one was handed the container (bench/oci-calls.ts reads
  // them): where a container's create goes.
  const origin = io.origin ?? 0;
  const mark = (what: string) => log(`timing at-${what}=${(performance.now() - origin).toFixed(1)}`);
  if (io.keeper) log('timing warm=1');
  mark('main');
  const undo: (() => void)[] = [];
  let janitor: Janitor | undefined;
  const unwind = () => {
    while (undo.length) {
      const t0 = performance.now();
      const step = undo.pop()!;
      try {
        step();
      } catch (e) {
        log(`while cleaning up: ${(e as Error).message}`);
      }
      // The exit waits for these: the slow ones are named (bench/oci-calls.ts shows them).
      const ms = performance.now() - t0;
      if (ms >= 2) log(`timing undo-${undo.length}=${ms.toFixed(1)}`);
    }
    janitor?.done();
  };
  let report = true;
  const say = (line: string) => {
    if (!report) return;
    try {
      io.report(line);
    } catch {
      // create is gone: nobody to tell
    }
  };
  let container: Container;
  try {
    container = await setUp(c, opts, io, log, mark, undo, (j) => (janitor = j));
  } catch (e) {
    // ExecError and LaunchError by name: launch.ts is loaded later than this module (loadLater).
    const msg = e instanceof CliError || ['ExecError', 'LaunchError'].includes((e as Error).name) ? (e as Error).message : String((e as Error).stack ?? e);
    log(`create failed: ${msg}`);
    say(`error ${msg.split('\n')[0]}`);
    unwind();
    return 1;
  }
  say('created');
  mark('created');
  const keeper = io.keeper && new KeeperLink(io.keeper.fd, container.netns, () => {
    log('the keeper is gone: the program is killed');
    container.kill();
  });
  report = false;
  io.endReport();
  const status = await container.wait();
  mark('exited');
  log(`program exited: status ${status}`);
  const s = c.readRaw();
  if (s) c.write({ ...s, status: 'stopped', exitStatus: status });
  // The keeper exits with it once this process has gone (its end of the socket closes), as a cold Sentry would.
  keeper?.exited(status);
  await container.finish();
  mark('finished');
  unwind();
  mark('unwound');
  return status;
}

/** A created container, served. */
interface Container {
  /** The file of the network namespace the hooks saw this process in (none: the runtime's own). */
  netns?: string;
  wait(): Promise<number>;
  kill(): void;
  finish(): Promise<void>;
}

/** Joins the calling thread (Node's main thread: every child it spawns starts there) to a netns file. */
function enterNetns(path: string): void {
  const fd = sys.open(path, C.O_RDONLY | C.O_CLOEXEC, 0);
  if (fd < 0) throw new CliError(`cannot open network namespace ${path}: ${errnoName(errno())}`);
  const r = sys.setns(fd, C.CLONE_NEWNET);
  const e = errno();
  sys.close(fd);
  if (r < 0) throw new CliError(`cannot enter network namespace ${path}: ${errnoName(e)}`);
}

/** The interface the netstack takes over in the current netns: eth0, else the only other non-loopback one. */
function findInterface(): string | undefined {
  const candidates = interfacesHere().filter((l) => !l.loopback);
  return candidates.find((l) => l.name === 'eth0')?.name ?? candidates[0]?.name;
}

/**
 * A PROGRAM not found in the root fails `create`, as runc's does (the engine reports it before start). lstat:
 * busybox's links are absolute, meaningful only inside the root.
 */
function checkProgram(spec: Spec, env: Record<string, string>): void {
  const prog = spec.process!.args[0]!;
  const root = spec.root!.path;
  const exists = (p: string) => lstatSync(join(root, p), { throwIfNoEntry: false }) !== undefined;
  if (prog.includes('/')) {
    // runc's wording: Docker maps "no such file or directory" to exit status 127.
    const path = prog.startsWith('/') ? prog : join(spec.process!.cwd, prog);
    if (!exists(path)) throw new CliError(`exec: "${prog}": stat ${path}: no such file or directory`);
    return;
  }
  for (const dir of (env.PATH ?? '').split(':')) if (dir && exists(join(dir, prog))) return;
  throw new CliError(`exec: "${prog}": executable file not found in $PATH`);
}

/** Throws CliError when uid:gid cannot search every directory on the way to `path` (what bwrap will need). */
function checkReachable(path: string, uid: number, gid: number): void {
  const parts = path.split('/').filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const dir = '/' + parts.slice(0, i).join('/');
    const st = statSync(dir, { throwIfNoEntry: false });
    if (!st) continue;
    const bits = st.uid === uid ? (st.mode >> 6) & 7 : st.gid === gid ? (st.mode >> 3) & 7 : st.mode & 7;
    if ((bits & 1) === 0) {
      throw new CliError(`process.user ${uid}:${gid} cannot search ${dir} on the way to root.path ${path} (mode ${(st.mode & 0o777).toString(8)}): ` +
        'tsvisor sets the sandbox up as the program\'s own host identity');
    }
  }
}

async function setUp(c: ContainerDir, opts: CreateOptions, io: SandboxIo, log: (l: string) => void, mark: (what: string) => void,
  undo: (() => void)[], setJanitor: (j: Janitor) => void): Promise<Container> {
  const STDIO = io.stdio;
  const spec = loadSpec(opts.bundle);
  const proc = spec.process!;
  // create's checks of the bundle, here so that the runtime's front (oci-front.c) need not read config.json.
  if (!existsSync(spec.root!.path)) throw new CliError(`root.path ${spec.root!.path} does not exist`);
  if (proc.terminal && !opts.consoleSocket) throw new CliError('process.terminal is true: --console-socket is needed');
  const env = envRecord(proc.env);
  checkProgram(spec, env);
  helperPath();
  mark('checked');
  const rid = newRunId();
  const names = runNames(rid);
  // A pod's container shares its sandbox's stack: its program runs in the pod program's network namespace and the
  // pod's Sentry serves it (cli/oci/pod.ts); the namespace paths config.json gives are the pod's.
  // So does one given the network namespace of another container of ours (`--network container:X`): X's Sentry
  // owns its interface.
  const netEntry = spec.linux?.namespaces?.find((n) => n.type === 'network');
  const annotatedPod = podSandboxId(spec, c.id);
  const podId = annotatedPod ?? (netEntry?.path ? netnsOwner(c.root, netEntry.path, c.id, opts.hostNetnsIno) : undefined);
  const pod = podId === undefined ? undefined : findPod(c.root, podId);
  const base: ContainerState = {
    ociVersion: spec.ociVersion,
    id: c.id,
    status: 'creating',
    pid: process.pid,
    bundle: opts.bundle,
    rootfs: spec.root!.path,
    created: new Date().toISOString(),
    owner: '',
    annotations: spec.annotations,
    sentryStart: startTime(process.pid),
    control: c.controlPath(),
    runId: rid,
    ...(pod ? { pod: pod.id } : {}),
  };
  c.write(base);

  // Started before the Sentry moves into the container's cgroup: the janitor outlives the Sentry by a moment, which
  // must not keep that cgroup busy when the engine deletes it.
  setJanitor(Janitor.start(removeCommands(rid)));

  // linux.cgroupsPath: the Sentry (and a warm start's keeper, the pid the engine reads the cgroup through) moves in
  // before anything else starts, so that the helper, bwrap and the program are born there. Removed by `delete`,
  // or here when create fails.
  // (A CRI pod's: one joined by `--network container:X` has no pod cgroup above its own.)
  const inPod = isPodSandbox(spec) || annotatedPod !== undefined;
  const cgroup = ContainerCgroup.make(spec.linux?.cgroupsPath, spec.linux?.resources, log);
  let keepCgroup = false;
  if (cgroup) {
    writeFileSync(join(c.dir, CGROUPS_FILE), cgroup.made.map((d) => d + '\n').join(''));
    undo.push(() => {
      if (keepCgroup) return;
      cgroup.leave();
      cgroup.remove();
    });
    cgroup.join(process.pid);
    // The keeper is the pid the engine's shim reads the container's cgroup through (stats, OOM events): it stays.
    if (io.keeper) cgroup.join(io.keeper.pid);
    log(`cgroup ${spec.linux!.cgroupsPath}: ${cgroup.dirs.length} hierarchies, ${cgroup.made.length} directories made`);
    mark('cgroup');
  }

  // The network: config.json's namespace, or one of our own; the host's when the spec shares it. A global
  // --network=host (runsc's) keeps the container's namespace with the kernel's stack in it, as runsc's does.
  let mode: NetworkMode = opts.network ?? 'sandbox';
  let linkRef: string | undefined;
  let hostNs = !netEntry && !pod;
  if (pod) mode = pod.network;
  else if (netEntry?.path) {
    let ino: number;
    try {
      ino = statSync(netEntry.path).ino;
    } catch {
      throw new CliError(`network namespace ${netEntry.path} of config.json does not exist`);
    }
    if (ino === opts.hostNetnsIno) hostNs = true;
    else linkRef = netEntry.path;
  }
  if (hostNs) mode = 'host';
  // The rest of this process's code (the network's, the launch's, the Sentry's) loads while the namespace is made
  // and the hooks run as child processes: sandbox and none, the one mode not known yet, load the same modules.
  const later = pod ? loadLater('host', false) : loadLater(mode, opts.strace);
  later.catch(() => {});
  if (!hostNs && !pod && linkRef === undefined) {
    addNetns(names.link);
    // Ours to remove when the container ends, whatever mode it got (the janitor covers only a dead Sentry; the
    // network's own undo removes it only when the netstack took an interface over in it).
    undo.push(() => {
      delNetns(names.link);
    });
    linkRef = names.link;
  }
  // Hooks see our pid: /proc/PID/ns/net must be the namespace whose interface the netstack will own. They run
  // in the runtime's own namespace all the same, as runc's do (a CNI-like hook makes its veth's host end there).
  const home = NetnsHandle.open('/proc/self/ns/net');
  undo.push(() => home.close());
  const inHome = <T>(fn: () => T): T => home.enter(fn);
  if (linkRef !== undefined) enterNetns(netnsFile(linkRef));
  // A pod's container lives where the pod's Sentry does: /proc/PID/ns/net is the pod's, as under runc.
  else if (pod?.linkNetns) enterNetns(pod.linkNetns);
  mark('netns');
  log(`container ${c.id}: run id ${rid}, network ${mode}${linkRef ? ` (${linkRef})` : ''}`);

  const hookState = (status: string) => ({ ...publicState({ ...base, status: status as ContainerState['status'] }) });
  for (const kind of ['prestart', 'createRuntime'] as const) {
    const err = await runHooks(spec.hooks, kind, hookState('creating'), inHome);
    if (err) throw new CliError(err);
  }
  mark('hooks');

  let dev: string | undefined;
  if (mode === 'sandbox' && !pod) {
    dev = findInterface();
    if (dev === undefined) mode = 'none';
  }
  const L = await later;
  const modules = L.modules;
  mark('modules');
  const runOpts: RunOptions = {
    network: mode, netns: mode === 'sandbox' ? linkRef : undefined, dev, addresses: [], gateways: [], dns: [], publish: [],
    binds: [], env: {}, allowRaw: grantsNetRaw(proc, opts.netRaw), strace: opts.strace, debug: false, pcapLog: opts.pcapLog, drainMs: 2000,
    argv: proc.args,
    // A namespace of ours goes with the container: the interface a hook plugged in is the engine's to remove (Docker
    // deletes its veth), so giving it its addresses back would only cost the exit (and `docker run`) a few `ip` runs.
    netnsGoes: linkRef === names.link,
  };
  const net: RunNetwork = pod
    ? { appNetns: pod.netns, addresses: [], gateways: [], files: [], describe: `the network of pod ${pod.id}, served by its Sentry` }
    : modules.network
    ? await modules.network.makeNetwork(runOpts, rid, undo, log)
    : { appNetns: linkRef, addresses: [], gateways: [], files: [], describe: `the kernel's network${linkRef ? ` of ${linkRef}` : ''}` };
  log(net.describe);
  mark('network');

  const filter = L.buildPolicy({ mode, allowRaw: grantsNetRaw(proc, opts.netRaw), strace: opts.strace });
  const filter2 = spec.linux?.seccomp ? L.compileSeccomp(spec.linux.seccomp, log) : undefined;
  const uid = proc.user.uid;
  const gid = proc.user.gid;
  // bwrap runs as the program's host identity: a root it cannot reach is a clear error, not bwrap's EACCES.
  if (uid !== 0) checkReachable(spec.root!.path, uid, gid);
  const bwrap = L.bwrapArgs({
    binds: [],
    filesystem: L.filesystemArgs(spec, log),
    cwd: proc.cwd,
    shareNet: true,
    ids: { uid, gid },
    capAdd: uid === 0 ? allowedCaps(proc) : [],
    hostname: spec.hostname ?? pod?.hostname,
    asPid1: true,
  });
  if (pod) {
    const own = unsharedWithPod(spec);
    if (own.length) log(`the pod's ${own.join(' and ')} namespaces are not joined: the container has its own (cli/oci/pod.ts)`);
  }
  const rlimits = (proc.rlimits ?? []).map((r): [number, bigint, bigint] => [RLIMITS[r.type]!, BigInt(r.soft), BigInt(r.hard)]);
  mark('policy');
  let sandbox: Sandbox;
  try {
    sandbox = await L.launch({
      argv: proc.args,
      filter,
      filter2,
      appNetns: net.appNetns === undefined ? undefined : netnsFile(net.appNetns),
      bwrap,
      env,
      user: uid === 0 ? undefined : { uid, gid },
      idMap: uid === 0 ? ROOT_ID_MAP : undefined,
      helperAt: '/dev/.tsvisor-helper',
      stdio: STDIO,
      gate: true,
      consoleSocket: opts.consoleSocket,
      rlimits,
      asPid1: true,
    });
  } catch (e) {
    if (e instanceof L.LaunchError) throw new CliError(e.message);
    throw e;
  }
  for (const fd of STDIO) closeSync(fd);
  // A pod's Sentries belong to the pod (runsc puts its sandbox in the pod's cgroup too): the container's limits are
  // its program's, the pod's stack and each container's life-cycle process are the pod's overhead.
  if (cgroup && inPod && cgroup.joinParent(process.pid)) log('the Sentry lives in the pod\'s cgroup, the parent of the container\'s');
  mark('launched');
  const exited = sandbox.wait();
  const sentries: Sentry[] = [];
  if (pod) await handToPod(pod, sandbox, c.id, log);
  const init = pod ? undefined : L.serveListener(sandbox, { network: mode, strace: opts.strace }, net, modules, log);
  if (init) sentries.push(init);
  // A pod's container goes with its pod: its Sentry served the program's sockets.
  const podWatch = pod && setInterval(() => {
    if (pod.alive()) return;
    log(`pod ${pod.id} is gone: the program is killed`);
    sandbox.kill('SIGKILL');
  }, 500);
  podWatch?.unref();
  const initPid = sandbox.programPid();
  // Hooks saw this process (it is in the container's network namespace); the engine waits for the keeper.
  const waited = io.keeper ? { pid: io.keeper.pid, sentryStart: startTime(io.keeper.pid), sentryPid: process.pid, sentryPidStart: base.sentryStart } : {};
  const netnsHere = pod ? pod.linkNetns : linkRef === undefined ? undefined : netnsFile(linkRef);
  const created: ContainerState = { ...base, ...waited, status: 'created', initPid, network: mode, ...(netnsHere ? { netns: netnsHere } : {}) };

  c.write(created);
  log(`created: helper ${sandbox.pid}, program ${initPid}`);
  const err = await runHooks(spec.hooks, 'createContainer', hookState('creating'), inHome);
  if (err) {
    sandbox.kill('SIGKILL');
    throw new CliError(err);
  }

  // Signals sent to the Sentry itself go to the program, as `tsvisor run` forwards them.
  const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
  const forward = (sig: NodeJS.Signals) => sandbox.kill(sig);
  for (const s of FORWARDED) process.on(s, forward);

  const ctl = await control(created.control, async (req) => {
    const cur = c.readRaw() ?? created;
    if (req.op === 'start') {
      mark('start');
      if (cur.status !== 'created') return { error: `container ${c.id} is ${cur.status}, not created` };
      const e1 = await runHooks(spec.hooks, 'startContainer', hookState('created'), inHome);
      if (e1) {
        sandbox.kill('SIGKILL');
        return { error: e1 };
      }
      try {
        await sandbox.start();
      } catch (e) {
        return { error: (e as Error).message };
      }
      const running: ContainerState = { ...(c.readRaw() ?? created), status: 'running' };
      c.write(running);
      mark('running');
      const e2 = await runHooks(spec.hooks, 'poststart', publicState(running), inHome);
      if (e2) {
        sandbox.kill('SIGKILL');
        return { error: e2 };
      }
      return { ok: true };
    }
    if (req.op === 'exec' && pod) {
      // The exec'd program joins ours in the pod's network namespace: the pod's Sentry serves it too.
      const { request } = await import('./commands.ts');
      return await request(pod.control, req);
    }
    if (req.op === 'exec') {
      // `owner` holds the listener when it is not the program itself (a pod container's Sentry hands its program's).
      const fd = L.takeListener(Number(req.owner ?? req.pid), Number(req.fd));
      if (typeof fd === 'string') return { error: fd };
      const s = L.serveListener({ pid: Number(req.pid), listenerFd: fd }, { network: mode, strace: opts.strace }, net, modules, log);
      if (s) sentries.push(s);
      log(`exec: pid ${req.pid}${req.container ? ` of container ${String(req.container)}` : ''}${s ? ', served' : ''}`);
      return { ok: true, network: mode };
    }
    return { error: `unknown request ${String(req.op)}` };
  });
  undo.push(() => ctl.server.close());

  keepCgroup = true;
  return {
    netns: netnsHere,
    wait: async () => L.exitStatus(await exited),
    kill: () => sandbox.kill('SIGKILL'),
    finish: async () => {
      // The program is gone: what the Sentry starts from now on (the short-lived child that holds the packet sockets
      // while the kernel releases them) must not keep the container's cgroup busy when the engine deletes it.
      cgroup?.leave();
      for (const s of FORWARDED) process.off(s, forward);
      if (podWatch) clearInterval(podWatch);
      // A start (its poststart hooks) or an exec still being answered.
      await Promise.race([ctl.idle(), new Promise((r) => setTimeout(r, 30000).unref())]);
      for (const s of sentries) await s.drain(runOpts.drainMs);
      for (const s of sentries) s.close();
    },
  };
}

/**
 * Hands a pod container's program to its pod's Sentry: the listener (ours, taken from the helper by launch) is
 * taken by the pod's Sentry from this process, and served with the pod's netstack. Until then the program is held
 * at its gate, and neither bwrap nor the helper makes a trapped call: nothing waits unanswered.
 */
async function handToPod(pod: Pod, sandbox: Sandbox, id: string, log: (l: string) => void): Promise<void> {
  if (sandbox.listenerFd < 0) return;
  const { request } = await import('./commands.ts');
  let r: Record<string, unknown>;
  try {
    r = await request(pod.control, { op: 'exec', pid: sandbox.pid, owner: process.pid, fd: sandbox.listenerFd, container: id });
  } catch (e) {
    r = { error: (e as Error).message };
  } finally {
    sys.close(sandbox.listenerFd);
  }
  if (r.error) {
    sandbox.kill('SIGKILL');
    throw new CliError(`pod ${pod.id}'s Sentry did not take the container's program: ${String(r.error)}`);
  }
  log(`served by pod ${pod.id}'s Sentry`);
}

/**
 * The Sentry's end of its keeper's socket: `gone` is called when the keeper's end closes (the engine saw the
 * container exit: someone killed the pid it waits for), so that the program does not outlive it; `exited` tells
 * the keeper the status it is to exit with once this process has gone.
 */
class KeeperLink {
  private readonly sock: Socket;
  private closed = false;

  constructor(fd: number, netns: string | undefined, gone: () => void) {
    this.sock = new Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
    // The keeper joins it: /proc/KEEPER/ns/net is the container's, as a cold Sentry's own is.
    if (netns) this.sock.write(`netns ${netns}\n`);
    this.sock.on('data', () => {});
    this.sock.on('error', () => {});
    this.sock.once('end', () => {
      this.closed = true;
      gone();
    });
    this.sock.unref();
  }

  exited(status: number): void {
    if (!this.closed) this.sock.write(`exit ${status}\n`);
  }
}

/**
 * Loads what a container's set-up needs, and builds and closes a netstack in memory once (its first one costs
 * several times the next: lazy set-up and compilation): a warm Sentry (cli/oci/warm.ts) does it before it is
 * handed a container.
 */
export async function preload(): Promise<void> {
  helperPath();
  await loadLater('sandbox', false);
  const { stackOnLink } = await import('../stack-on-link.ts');
  const undo: (() => void)[] = [];
  try {
    await stackOnLink(undefined, { name: 'lo', addresses: [], loopback: true }, undo);
  } finally {
    while (undo.length) undo.pop()!();
  }
}

/**
 * What set-up needs once the hooks have run, most of this process's code: loaded while the namespace is made and
 * the hooks run, not before this module's first line (the hooks wait for nothing of it).
 */
async function loadLater(network: NetworkMode, strace: boolean) {
  const [serve, bwrap, launch, policy, seccomp, mounts] = await Promise.all([
    import('../sentry-modules.ts'),
    import('../../sentry/sandbox/bwrap.ts'),
    import('../../sentry/sandbox/launch.ts'),
    import('../../sentry/seccomp/policy.ts'),
    import('./seccomp.ts'),
    import('./mounts.ts'),
  ]);
  const modules = await serve.loadModules({ network, strace });
  return {
    modules,
    serveListener: serve.serveListener,
    bwrapArgs: bwrap.bwrapArgs,
    launch: launch.launch,
    LaunchError: launch.LaunchError,
    exitStatus: launch.exitStatus,
    takeListener: launch.takeListener,
    buildPolicy: policy.buildPolicy,
    compileSeccomp: seccomp.compileSeccomp,
    filesystemArgs: mounts.filesystemArgs,
  };
}

/** A request to the Sentry's control socket: one JSON line, answered by one. */
export interface ControlRequest {
  op: string;
  [k: string]: unknown;
}

/** A served control socket: `idle()` settles once no request is being answered (the Sentry exits after it). */
interface Control {
  server: Server;
  idle(): Promise<void>;
}

/** Serves the control socket at `path` (mode 0600). */
function control(path: string, handle: (r: ControlRequest) => Promise<Record<string, unknown>>): Promise<Control> {
  // A socket left by a Sentry that crashed with this path.
  rmSync(path, { force: true });
  let busy = 0;
  let waiters: (() => void)[] = [];
  const finished = () => {
    if (--busy > 0) return;
    for (const w of waiters) w();
    waiters = [];
  };
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => {});
    sock.on('data', (d: string) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i < 0) return;
      const line = buf.slice(0, i);
      buf = '';
      let req: ControlRequest;
      try {
        req = JSON.parse(line) as ControlRequest;
      } catch {
        sock.end(JSON.stringify({ error: 'bad request' }) + '\n');
        return;
      }
      busy++;
      // The answer is flushed before the Sentry may exit: a program that ends at once must not cost start its reply.
      const reply = (r: Record<string, unknown>) => sock.end(JSON.stringify(r) + '\n', finished);
      void handle(req).then(reply, (e: Error) => reply({ error: e.message }));
    });
  });
  server.unref();
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path, readableAll: false, writableAll: false }, () =>
      resolve({
        server,
        idle: () => (busy === 0 ? Promise.resolve() : new Promise<void>((r) => waiters.push(r))),
      }));
  });
}

/** The exit statuses of signals, for messages. */
export const SIGNALS = osConstants.signals as Record<string, number>;
