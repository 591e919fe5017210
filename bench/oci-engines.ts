// The engines harness that the OCI bench (bench/oci.ts) and the engine tests (test/oci-engines/) share: a private
// dockerd, containerd and podman set up with
// tsvisor (or runc) as their OCI runtime, the images they run (busybox-static; python3 + curl) made from local
// files, and the teardown that stops each daemon by its pid and removes everything it made. Names start with
// `tob`; addresses come from 198.18.0.0/15 only (docker 198.18.210.0/24, podman 198.18.211.0/24, containerd's
// CRI 198.18.216.0/24, docker's address pool 198.18.212.0/22), so no container traffic uses 172.17/16 or 10.88/16.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, closeSync, copyFileSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, realpathSync, rmdirSync, rmSync,
  statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { type ChildResult, collectChild } from '../lib/exec.ts';
import { assertTestAddress } from '../lib/testnet.ts';

export const ROOT = join(import.meta.dirname, '..');

/** Where cleanups are registered: a tap Test, or the bench's own list; they run newest first. */
export interface Teardowns {
  teardown(fn: () => unknown): void;
}
/**
 * The CLI the engine tests run: from sources, or with TSVISOR_TEST_CLI=dist the compiled dist/cli/bin.js, as the
 * other tests (test/cli-under-test.ts; the bench always uses dist/cli/bin.js); TSVISOR_OCI_TEST_CLI names another
 * launcher, e.g. a work tree's cli/tsvisor.js, to try the engines on it.
 */
export const CLI =
  process.env.TSVISOR_OCI_TEST_CLI ?? join(ROOT, process.env.TSVISOR_TEST_CLI === 'dist' ? 'dist/cli/bin.js' : 'cli/tsvisor.js');

/** What a finished command did. */
export type Result = ChildResult;

/** Options of `exec`. */
export interface ExecOptions {
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Killed (SIGKILL) after this long; default 120 s. */
  timeoutMs?: number;
  cwd?: string;
}

/** Runs `argv` to its end without blocking the event loop; never throws for a non-zero exit. */
export function exec(argv: readonly string[], opts: ExecOptions = {}): Promise<Result> {
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    cwd: opts.cwd ?? ROOT,
  });
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  return collect(child, opts.timeoutMs ?? 120000);
}

/** Collects a child's output and exit. */
export function collect(child: ChildProcess, timeoutMs = 120000): Promise<Result> {
  return collectChild(child, timeoutMs);
}

/** Polls `pred` every 50 ms until it holds or `ms` have passed. */
export async function waitFor(pred: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True while `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** Pids of the processes whose command line contains `needle` (the shims a daemon leaves running when it stops). */
export function pidsWith(needle: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    if (cmdline(Number(p)).includes(needle)) out.push(Number(p));
  }
  return out;
}

/** Sends SIGTERM to `pid`, then SIGKILL after `graceMs`; resolves once it is gone. */
export async function stopPid(pid: number, graceMs = 10000): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitFor(() => !alive(pid), graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
  await waitFor(() => !alive(pid), 5000);
}

/** Mount points at or under any of `dirs`, deepest first. */
export function mountsUnder(dirs: readonly string[]): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((p): p is string => !!p && dirs.some((d) => p === d || p.startsWith(d + '/')));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Unmounts (lazily) everything mounted under `dirs`; what a killed daemon leaves (overlay roots, shm, netns). */
export function unmountUnder(dirs: readonly string[]): void {
  for (const p of mountsUnder(dirs)) {
    try {
      execFileSync('umount', ['-l', p], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}

/**
 * Removes the cgroups named `names` (each a top-level group, e.g. the `tob-docker` given as cgroup parent) in every
 * hierarchy, deepest first; the engines make them and leave them behind, empty, when their containers are gone.
 */
export function removeCgroups(names: readonly string[]): void {
  let hierarchies: string[] = [];
  try {
    hierarchies = readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h));
  } catch {
    return;
  }
  const remove = (dir: string): void => {
    let entries: string[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
    } catch {
      return;
    }
    for (const sub of entries) remove(sub);
    try {
      rmdirSync(dir);
    } catch {
      // still has processes, or already gone
    }
  };
  for (const h of hierarchies) for (const n of names) if (existsSync(join(h, n))) remove(join(h, n));
}

/**
 * Notes which of `paths` exist now and, in `t`'s teardown, removes those that did not: what an engine makes in
 * fixed places of the machine (runc's shim always uses /run/containerd; CNI caches results in /var/lib/cni).
 * Call it before starting the engine, so that its teardown runs after the engine's (tap runs them newest first).
 */
export function removeIfCreated(t: Teardowns, paths: readonly string[], onlyIfEmpty: readonly string[] = []): void {
  const had = new Set([...paths, ...onlyIfEmpty].filter((p) => existsSync(p)));
  t.teardown(() => {
    for (const p of paths) if (!had.has(p)) rmSync(p, { recursive: true, force: true });
    for (const p of onlyIfEmpty) {
      if (had.has(p)) continue;
      try {
        rmdirSync(p);
      } catch {
        // gone, or holding someone else's state
      }
    }
  });
}

/** A directory pair of the test's own, fixed by name so that a later run finds what a killed run left. */
export interface Scratch {
  /** Under /var/tmp: data roots, images, configuration. */
  dir: string;
  /** Under /run: sockets, pid files, exec roots (a short path: unix socket names are limited to 107 bytes). */
  run: string;
}

/**
 * Takes `/var/tmp/tob-NAME` and `/run/tob-NAME` for this test process. A directory still owned by a live test
 * process (another run of the same test, e.g. the lead's CI beside a developer's run) is waited for; one whose owner
 * is gone is a killed run's leftover: `cleanup` (which stops what its pid files name) runs first, then both are
 * emptied.
 */
export async function claimScratch(t: Teardowns, name: string, cleanup: (s: Scratch) => Promise<void>): Promise<Scratch> {
  const s = { dir: `/var/tmp/tob-${name}`, run: `/run/tob-${name}` };
  const ownerFile = join(s.run, 'owner');
  const owner = () => {
    try {
      return Number(readFileSync(ownerFile, 'utf8'));
    } catch {
      return 0;
    }
  };
  const ownerAlive = () => {
    const o = owner();
    return o > 0 && o !== process.pid && alive(o) && cmdline(o).includes('node');
  };
  if (ownerAlive() && !(await waitFor(() => !ownerAlive(), 20 * 60000))) {
    throw new Error(`tob-${name} is in use by test pid ${owner()}`);
  }
  await cleanup(s);
  unmountUnder([s.dir, s.run]);
  rmSync(s.dir, { recursive: true, force: true });
  rmSync(s.run, { recursive: true, force: true });
  mkdirSync(s.dir, { recursive: true });
  mkdirSync(s.run, { recursive: true });
  writeFileSync(ownerFile, String(process.pid));
  t.teardown(async () => {
    await cleanup(s);
    unmountUnder([s.dir, s.run]);
    rmSync(s.dir, { recursive: true, force: true });
    rmSync(s.run, { recursive: true, force: true });
  });
  return s;
}

/** Reads a pid file; 0 when there is none. */
function pidFile(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

/** A Linux bridge `name` holding `cidr` (its gateway address), up; an old one of that name is replaced. */
export function makeBridge(name: string, cidr: string): void {
  assertTestAddress(cidr);
  deleteLink(name);
  execFileSync('ip', ['link', 'add', name, 'type', 'bridge']);
  execFileSync('ip', ['addr', 'add', cidr, 'dev', name]);
  execFileSync('ip', ['link', 'set', name, 'up']);
}

export function deleteLink(name: string): void {
  try {
    execFileSync('ip', ['link', 'del', name], { stdio: 'ignore' });
  } catch {
    // not there
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The runtime and the images

/** Which OCI runtime an engine is given. */
export type Runtime = 'tsvisor' | 'runc';

/** The runtime under test: tsvisor, or runc with TSVISOR_OCI_TEST_RUNTIME=runc (the harness checked on its own). */
export const RUNTIME: Runtime = process.env.TSVISOR_OCI_TEST_RUNTIME === 'runc' ? 'runc' : 'tsvisor';

/**
 * tap options for a test that tsvisor cannot pass yet: `todo` naming exactly what is missing (tap then reports it
 * without running it); nothing under runc, whose run must pass, nor with TSVISOR_OCI_TEST_TODO=run, which runs
 * the pending tests to see how far tsvisor has come.
 */
export function pending(what: string | undefined): { todo?: string } {
  return RUNTIME === 'tsvisor' && what && process.env.TSVISOR_OCI_TEST_TODO !== 'run' ? { todo: what } : {};
}

/**
 * Writes `dir/NAME`, the executable an engine is told the runtime is: a shell script that first notes its
 * arguments in `calls`, after the time in ns, so a test can show which runtime the engine really called and the
 * bench where the time goes, then runs the runtime: runc, or tsvisor's front as users install it (`tsvisor
 * install-runtime`: a C program answering create/start/delete, with `cli` behind it for the rest). A build whose
 * CLI has no install-runtime (an older one, through TSVISOR_OCI_BENCH_CLI) runs as `node CLI`.
 */
export function runtimeWrapper(dir: string, runtime: Runtime, calls: string, cli = CLI): string {
  const file = join(dir, `${runtime}-runtime`);
  let target = `'${runcPath()}'`;
  if (runtime === 'tsvisor') {
    const front = join(dir, 'tsvisor-front');
    try {
      execFileSync(process.execPath, [cli, 'install-runtime', front], { stdio: ['ignore', 'ignore', 'pipe'] });
      target = `'${front}'`;
    } catch (e) {
      process.stderr.write(`(${cli} install-runtime failed: ${String((e as { stderr?: Buffer }).stderr ?? e).trim().split('\n')[0]}; running node ${cli})\n`);
      target = `'${process.execPath}' '${cli}'`;
    }
  }
  writeFileSync(file, `#!/bin/sh\necho "$(date +%s%N) $*" >> '${calls}'\nexec ${target} "$@"\n`);
  chmodSync(file, 0o755);
  return file;
}

export function runcPath(): string {
  for (const p of ['/usr/sbin/runc', '/usr/bin/runc']) if (existsSync(p)) return p;
  throw new Error('runc is not installed (.ci/install installs it)');
}

/** `dir` made a busybox-static root: bin/busybox with a link per applet, etc/passwd and group, tmp, proc, dev. */
export function busyboxRootfs(dir: string): string {
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'dev', 'sys', 'root', 'www']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  const busybox = realpathSync('/bin/busybox');
  copyFileSync(busybox, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  for (const applet of execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n')) {
    if (applet && applet !== 'busybox' && !existsSync(join(dir, 'bin', applet))) symlinkSync('busybox', join(dir, 'bin', applet));
  }
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(join(dir, 'www/index.html'), 'hello from a tob container\n');
  return dir;
}

/** Copies `file` (following links) to the same path under `root`. */
function copyIn(root: string, file: string): void {
  const dst = join(root, file);
  if (existsSync(dst)) return;
  mkdirSync(dirname(dst), { recursive: true });
  copyFileSync(realpathSync(file), dst);
  chmodSync(dst, statSync(file).mode & 0o7777);
}

/**
 * `dir` made a busybox root that also holds the host's python3 and curl with the libraries ldd names and the
 * standard library less its tests and tools (about 25 MB): enough for `python3 -m http.server` and `curl`.
 */
export function pythonRootfs(dir: string): string {
  withHostPrograms(busyboxRootfs(dir), ['/usr/bin/python3', '/usr/bin/curl']);
  // Python's extension modules (lib-dynload) link against libraries of their own.
  const stdlib = execFileSync('/usr/bin/python3', ['-c', 'import sysconfig; print(sysconfig.get_path("stdlib"))'], { encoding: 'utf8' }).trim();
  cpSync(stdlib, join(dir, stdlib), {
    recursive: true,
    filter: (p) => !/\/(test|tests|idlelib|tkinter|turtledemo|ensurepip|lib2to3|distutils|dist-packages|__pycache__|pydoc_data|config-[^/]*|_test\w*\.so|_tkinter\S*)(\/|$)/.test(p),
  });
  for (const so of readdirSync(join(stdlib, 'lib-dynload'))) {
    for (const line of execFileSync('ldd', [join(stdlib, 'lib-dynload', so)], { encoding: 'utf8' }).split('\n')) {
      const lib = /(\/\S+) \(0x/.exec(line)?.[1];
      if (lib) copyIn(dir, lib);
    }
  }
  writeFileSync(join(dir, 'etc/hosts'), '127.0.0.1 localhost\n');
  return dir;
}

/** Copies the host's `programs` into the root `dir` at their own paths, with the libraries ldd names for them. */
export function withHostPrograms(dir: string, programs: readonly string[]): string {
  for (const bin of programs) {
    copyIn(dir, bin);
    for (const line of execFileSync('ldd', [bin], { encoding: 'utf8' }).split('\n')) {
      const lib = /(\/\S+) \(0x/.exec(line)?.[1];
      if (lib) copyIn(dir, lib);
    }
  }
  return dir;
}

/** Compiles a static `pause` into `dir/pause`: the pod sandbox's program (kubelet's pause image, made here). */
export function pauseBinary(dir: string): string {
  const src = join(dir, 'pause.c');
  writeFileSync(src, [
    '#include <signal.h>',
    '#include <stdlib.h>',
    '#include <unistd.h>',
    'static void quit(int sig) { (void)sig; _exit(0); }',
    'int main(void) {',
    '  signal(SIGINT, quit);',
    '  signal(SIGTERM, quit);',
    '  for (;;) pause();',
    '}',
    '',
  ].join('\n'));
  const out = join(dir, 'pause');
  execFileSync('gcc', ['-static', '-O2', '-o', out, src]);
  return out;
}

/** What an image's config says to run. */
export interface ImageConfig {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
}

/**
 * Writes `file`, an OCI image layout archive of `rootfs` named `ref` (one uncompressed layer), which both
 * `ctr image import` and `podman load` read; there is no registry on this machine.
 */
export function ociArchive(rootfs: string, file: string, ref: string, config: ImageConfig): void {
  const work = `${file}.d`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'blobs/sha256'), { recursive: true });
  const blob = (data: Buffer): { digest: string; size: number } => {
    const hex = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(work, 'blobs/sha256', hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layer = blob(execFileSync('tar', ['-C', rootfs, '--numeric-owner', '-c', '.'], { maxBuffer: 1 << 30 }));
  const cfg = blob(Buffer.from(JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: {
      Env: config.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      ...(config.entrypoint ? { Entrypoint: config.entrypoint } : {}),
      ...(config.cmd ? { Cmd: config.cmd } : {}),
      ...(config.workingDir ? { WorkingDir: config.workingDir } : {}),
    },
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  })));
  const manifest = blob(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
  })));
  writeFileSync(join(work, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(work, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...manifest,
      platform: { architecture: 'amd64', os: 'linux' },
      annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': ref },
    }],
  }));
  execFileSync('tar', ['-C', work, '-cf', file, '.']);
  rmSync(work, { recursive: true, force: true });
}

/** Runs `argv` and throws with its stderr unless it exits 0; returns stdout. */
export async function must(argv: readonly string[], opts: ExecOptions = {}): Promise<string> {
  const r = await exec(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code ?? r.signal}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------------------------
// Docker

/** The private dockerd's network: its own bridge, not docker0, so that nothing uses 172.17/16. */
export const DOCKER_BRIDGE = 'tob-dbr0';
export const DOCKER_GATEWAY = '198.18.210.1';

/** A private dockerd and the docker client pointed at it. */
export interface Dockerd {
  pid: number;
  /** `unix:///run/tob-docker/docker.sock`. */
  host: string;
  scratch: Scratch;
  /** The file each runtime wrapper appends its arguments to. */
  calls: string;
  /** Runs `docker -H host ARGS`. */
  docker(args: readonly string[], opts?: ExecOptions): Promise<Result>;
}

/** Names of the runtimes registered with the private dockerd, and how. */
export interface DockerRuntimes {
  /** In daemon.json's "runtimes" (the README's quick start), with `runtimeArgs` when given. */
  json?: Record<string, Runtime | { runtime: Runtime; args: string[] }>;
  /** With `--add-runtime NAME=PATH`. */
  flag?: Record<string, Runtime>;
}

async function stopDockerd(s: Scratch): Promise<void> {
  const pid = pidFile(join(s.run, 'docker.pid'));
  if (pid && cmdline(pid).includes(`${s.run}/docker.sock`)) {
    // Containers first, so that the daemon's own shutdown has nothing to wait for.
    await exec(['sh', '-c', `ids=$(docker -H unix://${s.run}/docker.sock ps -aq); [ -z "$ids" ] || docker -H unix://${s.run}/docker.sock rm -f $ids`], { timeoutMs: 60000 });
    await stopPid(pid, 20000);
  }
  // dockerd's containerd, and the shims that outlive both, named by the exec root.
  for (const p of pidsWith(`${s.run}/exec`)) await stopPid(p, 5000);
  deleteLink(DOCKER_BRIDGE);
  removeCgroups(['tob-docker']);
}

/**
 * Starts a private dockerd: data and exec roots, pid file and socket of its own; its bridge `tob-dbr0`
 * (198.18.210.1/24, made here) and address pool 198.18.212.0/22; `--iptables=false --ip-forward=false` so the
 * machine's firewall and forwarding stay as they were (published ports go through docker-proxy); its containerd
 * in namespaces tob-moby/tob-plugins. tsvisor is `cli` run by node (the sources by default; the bench gives the
 * compiled dist/cli/bin.js). Stopped, and all it made removed, in `t`'s teardown.
 */
export async function startDockerd(t: Teardowns, runtimes: DockerRuntimes, cli = CLI): Promise<Dockerd> {
  // dockerd's trust key and plugin folder, and the shims' socket folder.
  removeIfCreated(t, ['/etc/docker/key.json', '/run/docker', '/run/containerd']);
  const scratch = await claimScratch(t, 'docker', stopDockerd);
  const calls = join(scratch.dir, 'calls.log');
  writeFileSync(calls, '');
  const json: Record<string, { path: string; runtimeArgs?: string[] }> = {};
  for (const [name, rt] of Object.entries(runtimes.json ?? {})) {
    json[name] = typeof rt === 'string'
      ? { path: runtimeWrapper(scratch.dir, rt, calls, cli) }
      : { path: runtimeWrapper(scratch.dir, rt.runtime, calls, cli), runtimeArgs: rt.args };
  }
  writeFileSync(join(scratch.dir, 'daemon.json'), JSON.stringify({ runtimes: json }, null, 2));
  makeBridge(DOCKER_BRIDGE, `${DOCKER_GATEWAY}/24`);
  const host = `unix://${scratch.run}/docker.sock`;
  const args = [
    '--config-file', join(scratch.dir, 'daemon.json'),
    '--data-root', join(scratch.dir, 'data'),
    '--exec-root', join(scratch.run, 'exec'),
    '--pidfile', join(scratch.run, 'docker.pid'),
    '-H', host,
    '--bridge', DOCKER_BRIDGE,
    '--iptables=false', '--ip-forward=false', '--ip-masq=false',
    '--cgroup-parent', '/tob-docker',
    '--default-address-pool', 'base=198.18.212.0/22,size=24',
    '--containerd-namespace', 'tob-moby', '--containerd-plugins-namespace', 'tob-plugins',
    '--log-level', 'warn',
  ];
  for (const [name, rt] of Object.entries(runtimes.flag ?? {})) args.push('--add-runtime', `${name}=${runtimeWrapper(scratch.dir, rt, calls, cli)}`);
  // Its log goes to a file: a pipe to this process would keep the test alive as long as the daemon.
  const logFile = join(scratch.dir, 'dockerd.log');
  const fd = openSync(logFile, 'w');
  const child = spawn('/usr/sbin/dockerd', args, { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  child.unref();
  const log = () => readFileSync(logFile, 'utf8').slice(-4000);
  const docker = (a: readonly string[], opts: ExecOptions = {}) => exec(['docker', '-H', host, ...a], opts);
  const up = await waitFor(async () => child.exitCode === null && (await docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10000 })).code === 0, 60000);
  if (!up) throw new Error(`dockerd did not come up: ${log()}`);
  return { pid: child.pid!, host, scratch, calls, docker };
}

/** `docker import` of `rootfs` as `name`, with Dockerfile-style `changes` (CMD, ENV, WORKDIR). */
export async function dockerImport(d: Dockerd, rootfs: string, name: string, changes: string[] = []): Promise<void> {
  const tar = execFileSync('tar', ['-C', rootfs, '--numeric-owner', '-c', '.'], { maxBuffer: 1 << 30 });
  const r = await d.docker(['import', ...changes.flatMap((c) => ['--change', c]), '-', name], { input: tar });
  if (r.code !== 0) throw new Error(`docker import ${name}: ${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------------------------
// containerd

/** A private containerd with its CRI plugin. */
export interface Containerd {
  pid: number;
  /** Its gRPC socket. */
  address: string;
  scratch: Scratch;
  calls: string;
  /** The runtime wrapper registered as CRI handler `tsvisor` (`BinaryName`); for `ctr run --runc-binary` too. */
  runtimePath: string;
  /** Runs `ctr --address A ARGS`. */
  ctr(args: readonly string[], opts?: ExecOptions): Promise<Result>;
}

export const CRI_BRIDGE = 'tob-cbr0';
export const CRI_GATEWAY = '198.18.216.1';

async function stopContainerd(s: Scratch): Promise<void> {
  const pid = pidFile(join(s.run, 'containerd.pid'));
  if (pid && cmdline(pid).includes(join(s.dir, 'containerd.toml'))) await stopPid(pid, 20000);
  // The runc shims outlive containerd (they are reparented to init); each names containerd's socket.
  for (const p of pidsWith(`${s.run}/containerd.sock`)) await stopPid(p, 5000);
  // The warm Sentries tsvisor's front left under the shims' runtime roots (cli/oci/warm.ts).
  for (const p of pidsWith(`__oci-warm /run/containerd/runc/`)) await stopPid(p, 5000);
  deleteLink(CRI_BRIDGE);
  // ctr's containers go under /<namespace>/, the CRI test's pods under the cgroup parent it gives.
  removeCgroups(['tob', 'tob-kubepods']);
}

/** The containerd configuration the CRI test proves (the README shows the runtime part of it). */
export function containerdConfig(s: Scratch, runtimePath: string): string {
  return `version = 2
root = "${s.dir}/root"
state = "${s.run}/state"
[grpc]
  address = "${s.run}/containerd.sock"
[ttrpc]
  address = "${s.run}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "${s.dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "tob.local/pause:1"
  stream_server_address = "127.0.0.1"
  netns_mounts_under_state_dir = true
  # root here lacks CAP_SYS_RESOURCE, which lowering a process's oom_score_adj below its parent's takes
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${s.dir}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tsvisor]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.tsvisor.options]
        BinaryName = "${runtimePath}"
`;
}

/**
 * Starts a private containerd (socket, root, state, opt under tob-containerd) whose CRI plugin has runtime
 * handler `tsvisor` = the runc shim with `BinaryName` the runtime wrapper, and a CNI bridge network `tob-cbr0`
 * (198.18.216.0/24, no masquerade, no forwarding) for pods. Stopped with its shims in `t`'s teardown.
 */
export async function startContainerd(t: Teardowns, runtime: Runtime): Promise<Containerd> {
  // The runc shim's fifo, runc-root and socket folders (it always uses /run/containerd), the CNI result cache.
  removeIfCreated(t, ['/run/containerd', '/var/lib/cni'], ['/run/containerd/runc/tob', '/run/containerd/runc/k8s.io']);
  const scratch = await claimScratch(t, 'containerd', stopContainerd);
  const calls = join(scratch.dir, 'calls.log');
  writeFileSync(calls, '');
  const runtimePath = runtimeWrapper(scratch.dir, runtime, calls);
  mkdirSync(join(scratch.dir, 'cni'));
  makeBridge(CRI_BRIDGE, `${CRI_GATEWAY}/24`);
  writeFileSync(join(scratch.dir, 'cni/10-tob.conflist'), JSON.stringify(cniConflist('tob-cri', CRI_BRIDGE, '198.18.216', join(scratch.dir, 'cni-ipam'))));
  const config = join(scratch.dir, 'containerd.toml');
  writeFileSync(config, containerdConfig(scratch, runtimePath));
  const logFile = join(scratch.dir, 'containerd.log');
  const fd = openSync(logFile, 'w');
  const child = spawn('containerd', ['--config', config, '--log-level', 'warn'], { stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  writeFileSync(join(scratch.run, 'containerd.pid'), String(child.pid));
  child.unref();
  const log = () => readFileSync(logFile, 'utf8').slice(-4000);
  const address = join(scratch.run, 'containerd.sock');
  const ctr = (a: readonly string[], opts: ExecOptions = {}) => exec(['ctr', '--address', address, ...a], opts);
  const up = await waitFor(async () => child.exitCode === null && (await ctr(['version'], { timeoutMs: 10000 })).code === 0, 60000);
  if (!up) throw new Error(`containerd did not come up: ${log()}`);
  return { pid: child.pid!, address, scratch, calls, runtimePath, ctr };
}

/** A CNI bridge network on an existing bridge that holds `${net}.1`: no gateway role, masquerade or forwarding. */
export function cniConflist(name: string, bridge: string, net: string, ipamDir: string): object {
  assertTestAddress(`${net}.0/24`);
  return {
    cniVersion: '0.4.0',
    name,
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: false,
        ipMasq: false,
        ipam: {
          type: 'host-local',
          dataDir: ipamDir,
          ranges: [[{ subnet: `${net}.0/24`, rangeStart: `${net}.10`, rangeEnd: `${net}.250`, gateway: `${net}.1` }]],
          routes: [{ dst: '198.18.0.0/15' }],
        },
      },
      { type: 'loopback' },
    ],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// podman

export const PODMAN_BRIDGE = 'tob-pbr0';
/** The cgroup parent podman is given on each run (its default, libpod_parent, is shared with every podman user). */
export const PODMAN_CGROUP = 'tob-podman';
export const PODMAN_GATEWAY = '198.18.211.1';

/** podman with its storage, run root and network of its own. */
export interface Podman {
  scratch: Scratch;
  calls: string;
  /** The CONTAINERS_CONF file. */
  conf: string;
  /** Runs `podman --root .. --runroot .. ARGS` with CONTAINERS_CONF set. */
  podman(args: readonly string[], opts?: ExecOptions): Promise<Result>;
}

/** The containers.conf that makes podman work on this machine kind (research note) with `tsvisor` registered. */
export function containersConf(s: Scratch, runtimes: Record<string, string>): string {
  return `[containers]
# root lacks CAP_SYS_RESOURCE here: podman's default nofile limit (1048576) cannot be set
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
network_config_dir = "${s.dir}/cni"
default_network = "tob-net"

[engine]
# crun refuses this machine's cgroup v1 hybrid mode
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
tmp_dir = "${s.run}/tmp"

[engine.runtimes]
${Object.entries(runtimes).map(([n, p]) => `${n} = ["${p}"]`).join('\n')}
`;
}

function podmanArgs(s: Scratch): string[] {
  return ['--root', join(s.dir, 'storage'), '--runroot', join(s.run, 'storage'), '--storage-driver', 'overlay'];
}

async function stopPodman(s: Scratch): Promise<void> {
  if (existsSync(join(s.dir, 'containers.conf'))) {
    await exec(['podman', ...podmanArgs(s), 'rm', '-af', '-t', '2'], { env: { ...process.env, CONTAINERS_CONF: join(s.dir, 'containers.conf') }, timeoutMs: 60000 });
  }
  // conmon outlives a killed test; it names the container's userdata under our storage.
  for (const p of pidsWith(join(s.run, 'storage'))) await stopPid(p, 5000);
  // conmon gives the runtime no --root: the warm Sentry tsvisor's front left waits under its default one.
  for (const p of pidsWith('__oci-warm /run/tsvisor/oci ')) await stopPid(p, 5000);
  deleteLink(PODMAN_BRIDGE);
  removeCgroups([PODMAN_CGROUP]);
}

/**
 * podman with CONTAINERS_CONF (nofile/nproc limits that the machine allows, runc, cgroupfs, file locks and
 * events), storage under tob-podman, and a CNI bridge network `tob-net` on `tob-pbr0` (198.18.211.0/24).
 */
export async function setupPodman(t: Teardowns, runtime: Runtime): Promise<Podman> {
  // The CNI result cache, podman's blob cache, and runc's default state root (podman gives runc no --root).
  removeIfCreated(t, ['/var/lib/cni', '/var/lib/containers'], ['/run/runc']);
  const scratch = await claimScratch(t, 'podman', stopPodman);
  const calls = join(scratch.dir, 'calls.log');
  writeFileSync(calls, '');
  mkdirSync(join(scratch.dir, 'cni'));
  mkdirSync(join(scratch.run, 'tmp'));
  makeBridge(PODMAN_BRIDGE, `${PODMAN_GATEWAY}/24`);
  writeFileSync(join(scratch.dir, 'cni/tob-net.conflist'), JSON.stringify(cniConflist('tob-net', PODMAN_BRIDGE, '198.18.211', join(scratch.dir, 'cni-ipam'))));
  const conf = join(scratch.dir, 'containers.conf');
  writeFileSync(conf, containersConf(scratch, { tsvisor: runtimeWrapper(scratch.dir, runtime, calls) }));
  const env = { ...process.env, CONTAINERS_CONF: conf };
  const podman = (a: readonly string[], opts: ExecOptions = {}) => exec(['podman', ...podmanArgs(scratch), ...a], { env, ...opts });
  return { scratch, calls, conf, podman };
}

/** `podman import` of `rootfs` as `name`. */
export async function podmanImport(p: Podman, rootfs: string, name: string, changes: string[] = []): Promise<void> {
  const tar = execFileSync('tar', ['-C', rootfs, '--numeric-owner', '-c', '.'], { maxBuffer: 1 << 30 });
  const r = await p.podman(['import', ...changes.flatMap((c) => ['--change', c]), '-', name], { input: tar });
  if (r.code !== 0) throw new Error(`podman import ${name}: ${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Checks shared by the engine tests

/** A runtime call noted by the wrapper: when (ns since the epoch) and its arguments. */
export interface Call {
  ns: bigint;
  args: string;
}

/** The runtime calls noted in `calls` that name container `id`, in order. */
export function timedCallsFor(calls: string, id: string): Call[] {
  return readFileSync(calls, 'utf8').split('\n').filter((l) => l.split(' ').slice(1).includes(id)).map((l) => {
    const sp = l.indexOf(' ');
    return { ns: BigInt(l.slice(0, sp)), args: l.slice(sp + 1).replace(/ --(root|log|log-format) \S+/g, '').trim() };
  });
}

/** The runtime calls noted in `calls` that name container `id` (`create ... ID`, `start ID`, ...). */
export function callsFor(calls: string, id: string): string[] {
  return timedCallsFor(calls, id).map((c) => c.args);
}

/** The first word after the global flags of each noted call for `id`: ["create", "start", "delete", ...]. */
export function verbsFor(calls: string, id: string): string[] {
  return callsFor(calls, id).map((l) => l.replace(/^(--\S+ \S+ |--debug )*/, '').split(' ')[0]!);
}
