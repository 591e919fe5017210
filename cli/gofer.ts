/**
 * `tsvisor gofer --root DIR --listen unix:PATH [--ro] [--uid-map IN:OUT:COUNT]...`: serves DIR over 9P2000.L.
 *
 * By default the command confines the server before it serves: it binds the listening socket itself, then starts
 * the server under bubblewrap with its own mount namespace (DIR, plus read-only the node binary, its libraries and
 * this program's files: nothing else of the host), empty network, pid, ipc, uts and cgroup namespaces, only the
 * capabilities file ownership needs, and hands it the socket as descriptor 3. Once serving, the server installs
 * its seccomp allowlist (gofer/seccomp.ts) on all its threads. `--no-confine` serves in this process instead
 * (what the confined child runs; also for hosts without bubblewrap).
 */
import { spawn } from 'node:child_process';
import koffi from 'koffi';
import { createRequire } from 'node:module';
import { existsSync, lstatSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Assembler, DATA, encode } from '../sentry/seccomp/bpf.ts';
import { AUDIT_ARCH_X86_64, errnoAction, SECCOMP_RET } from '../sentry/seccomp/policy.ts';
import { SYS, type SyscallName } from '../sentry/seccomp/sysno.ts';
import { GOFER_ALLOWLIST, GOFER_CAPABILITIES, GOFER_IOCTLS } from '../gofer/seccomp.ts';
import { GoferServer, GoferSetupError } from '../gofer/server/server.ts';
import { IdMap } from '../gofer/server/idmap.ts';
import { listenUnix, SysError, sys } from '../lib/libc.ts';
import { installFilterAllThreads } from '../lib/seccomp.ts';
import { intOption, parseArgs, UsageError } from './args.ts';
import { CliError } from './main.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** A checkout runs the sources through tsx; an installed package its compiled entry point. */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const ENTRY = resolve(REPO, FROM_SOURCE ? 'cli/tsvisor.js' : 'cli/bin.js');
/** Where the confined server sees the exported directory. */
const INNER_ROOT = '/gofer-root';

/**
 * The gofer's seccomp program: the allowlist, ioctl for the requests of GOFER_IOCTLS only (the low 32 bits of the
 * request: the kernel takes it as an unsigned int), EPERM for every other call, death for a foreign ABI.
 */
export function goferFilter(): Uint8Array {
  const a = new Assembler();
  a.ldAbs(DATA.arch);
  a.jeq(AUDIT_ARCH_X86_64, null, 'kill');
  a.ldAbs(DATA.nr);
  a.jge(0x40000000, 'kill'); // x32 numbers
  a.jeq(SYS.ioctl, 'ioctl');
  for (const name of GOFER_ALLOWLIST) a.jeq(SYS[name as SyscallName], 'allow');
  a.ret(errnoAction(1));
  a.label('ioctl').ldAbs(DATA.argLo(1));
  for (const req of Object.values(GOFER_IOCTLS)) a.jeq(req, 'allow');
  a.ret(errnoAction(1));
  a.label('allow').ret(SECCOMP_RET.ALLOW);
  a.label('kill').ret(SECCOMP_RET.KILL_PROCESS);
  return encode(a.assemble());
}

/** The `gofer` command. */
export async function goferCommand(argv: string[]): Promise<number> {
  largeBlocksFromHeap();
  const { options } = parseArgs(argv, {
    root: { value: true, required: true },
    listen: { value: true, required: true },
    ro: {},
    'uid-map': { value: true, repeat: true },
    'no-confine': {},
    seccomp: {},
    'exit-with-stdin': {},
    'poll-us': { value: true },
    stats: {},
  });
  const root = options.root as string;
  const listen = options.listen as string;
  const readOnly = options.ro === true;
  let ids: IdMap;
  try {
    ids = new IdMap(((options['uid-map'] as string[] | undefined) ?? []).map((r) => IdMap.parseRange(r)));
  } catch (e) {
    throw new UsageError(`--uid-map: ${(e as Error).message}`);
  }
  let where: string | { fd: number };
  if (listen.startsWith('unix:') && listen.length > 5) where = listen.slice(5);
  else if (/^fd:\d+$/.test(listen)) where = { fd: Number(listen.slice(3)) };
  else throw new UsageError(`--listen: '${listen}' is not unix:PATH or fd:N`);

  let st;
  try {
    st = statSync(root);
  } catch {
    throw new CliError(`--root ${root}: no such directory`);
  }
  if (!st.isDirectory()) throw new CliError(`--root ${root}: not a directory`);
  if (typeof where === 'string' && pathTaken(where)) throw new CliError(`--listen ${where}: in use (a file exists there)`);

  const withStdin = options['exit-with-stdin'] === true;
  // At most a second: the loop serves nothing else while it polls.
  const pollUs = options['poll-us'] === undefined ? undefined : intOption('poll-us', options['poll-us'] as string, 0, 1_000_000);
  const stats = options.stats === true;
  if (options['no-confine'] === true) return serveHere(root, where, readOnly, ids, options.seccomp === true, withStdin, pollUs, stats);
  if (typeof where !== 'string') throw new UsageError('--listen fd:N needs --no-confine');
  return launchConfined(root, where, readOnly, argv, withStdin);
}

/**
 * Calls `stop` once standard input reaches its end: the parent that started this gofer with a pipe there (`tsvisor
 * run --rootfs`) ended, however it ended (a SIGKILL'd run cannot send SIGTERM, and its gofer would serve on).
 */
function onStdinEnd(stop: () => void): void {
  process.stdin.on('data', () => {});
  process.stdin.once('end', stop);
  process.stdin.once('error', stop);
}

function pathTaken(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

const libc = koffi.load('libc.so.6');
const getrlimit = libc.func('int getrlimit(int resource, _Out_ uint64_t *lim)') as (r: number, out: BigUint64Array) => number;
const setrlimit = libc.func('int setrlimit(int resource, const uint64_t *lim)') as (r: number, lim: BigUint64Array) => number;
const RLIMIT_NOFILE = 7;
const mallopt = libc.func('int mallopt(int param, int value)') as (param: number, value: number) => number;
// mallopt's parameters.
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;

/**
 * Rread frames of up to msize (1 MiB) are fresh Buffers, and malloc serves blocks that large from an mmap of their own
 * by default: each read then faulted in its frame's pages as it copied the file in (a 1 MiB read of a cached file
 * took 320–1,200 µs into a fresh frame against 200 into a used one). Served from the heap, and the heap trimmed only
 * above 32 MiB of free memory at its top, the blocks are reused warm (206–232 µs); the Gofer may keep that much freed
 * memory in return.
 */
function largeBlocksFromHeap(): void {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
}

/**
 * Raises this process's descriptor limit to the kernel's maximum (fs.nr_open), soft and hard, for the confined
 * server to inherit; as root (CAP_SYS_RESOURCE) that works, otherwise the limit stays as it was.
 */
function raiseFileLimit(): void {
  let max = 1 << 20;
  try {
    max = Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim()) || max;
  } catch {
    // keep the default
  }
  setrlimit(RLIMIT_NOFILE, new BigUint64Array([BigInt(max), BigInt(max)]));
}

/** Fids a connection may hold: the descriptor limit (Node raises the soft limit to the hard one), less a reserve. */
function fidBudget(): number {
  const lim = new BigUint64Array(2);
  if (getrlimit(RLIMIT_NOFILE, lim) !== 0) return 4096;
  return Math.max(4096, Math.min(Number(lim[0]) - 512, 1 << 20));
}

async function serveHere(
  root: string,
  where: string | { fd: number },
  readOnly: boolean,
  uids: IdMap,
  seccomp: boolean,
  withStdin: boolean,
  pollUs: number | undefined,
  stats: boolean,
): Promise<number> {
  // The client applies the caller's umask (9P2000.L sends the mode Linux's v9fs and our FUSE server computed with it),
  // so the server must not apply its own on top: with the launching shell's 022, `umask 0; touch f` in a sandbox
  // made a 0644 file, and a mkdir of 0777 a 0755 directory.
  process.umask(0);
  let server: GoferServer;
  try {
    // A FUSE client (tsvisor run --rootfs) holds a fid for every inode the kernel caches, so the cap on fids
    // follows the descriptor limit (each fid is an O_PATH descriptor) rather than a fixed 4096.
    // Polling for the next request pays here, with the client in another process (see Connection.send).
    // --stats, a debugging aid as the FUSE server's TSVISOR_FUSE_STATS (`run --rootfs` passes it on with that): the
    // counts so far at each connection's end, since the confined server dies with bubblewrap rather than exiting.
    const onConnectionEnd = stats ? () => process.stderr.write(`tsvisor gofer stats: ${JSON.stringify(server.stats)}\n`) : undefined;
    server = new GoferServer({ root, readOnly, uids, maxFids: fidBudget(), pollUs: pollUs ?? 400, onConnectionEnd });
    await server.listen(where);
  } catch (e) {
    if (e instanceof GoferSetupError) throw new CliError(e.message);
    throw e;
  }
  const ownsPath = typeof where === 'string';
  // Framing errors close that client's connection; the server itself carries on and says so once per client.
  let reported = 0;
  const timer = setInterval(() => {
    const n = server.stats.framingErrors;
    if (n > reported) process.stderr.write(`tsvisor gofer: closed ${n - reported} connection(s) that sent an impossible frame size\n`);
    reported = n;
  }, 1000);
  timer.unref();
  if (seccomp) {
    const r = installFilterAllThreads(goferFilter());
    if (r !== 0) throw new CliError(`seccomp: ${r < 0 ? new SysError('seccomp', -r).message : `thread ${r} not synchronised`}`);
  }
  await new Promise<void>((done) => {
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
    if (withStdin) onStdinEnd(done);
  });
  if (withStdin) process.stdin.destroy();
  await server.close();
  if (ownsPath) rmSync(where as string, { force: true });
  return 0;
}

async function launchConfined(root: string, path: string, readOnly: boolean, argv: string[], withStdin: boolean): Promise<number> {
  const args = bwrapArgs(realpathSync(root), readOnly);
  raiseFileLimit();
  let fd: number;
  try {
    fd = listenUnix(path);
  } catch (e) {
    throw new CliError(`--listen ${path}: ${(e as Error).message}`);
  }
  const passOn = stripOptions(argv, ['root', 'listen']).filter((a) => a !== '--exit-with-stdin');
  const child = spawn(
    'bwrap',
    [...args, '--', process.execPath, ENTRY, 'gofer', '--root', INNER_ROOT, '--listen', 'fd:3', '--no-confine', '--seccomp', ...passOn],
    // A clean environment: nothing of the caller's (proxies, NODE_OPTIONS, extra CA files) reaches the server.
    { stdio: ['ignore', 'inherit', 'inherit', fd], env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' } },
  );
  sys.close(fd);
  const stop = () => child.kill('SIGTERM');
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (withStdin) onStdinEnd(stop);
  const code = await new Promise<number>((done) => {
    child.once('error', (e) => {
      process.stderr.write(`tsvisor: gofer: cannot start bwrap: ${e.message} (install bubblewrap, or use --no-confine)\n`);
      done(1);
    });
    child.once('exit', (c, sig) => done(c ?? (sig === 'SIGTERM' || sig === 'SIGINT' ? 0 : 1)));
  });
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  if (withStdin) process.stdin.destroy();
  rmSync(path, { force: true });
  return code;
}

/** argv without the named value options. */
function stripOptions(argv: string[], names: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.startsWith('--') ? a.slice(2).split('=')[0]! : '';
    if (names.includes(name)) {
      if (!a.includes('=')) i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

/** bubblewrap's arguments for the confined server. */
export function bwrapArgs(root: string, readOnly: boolean): string[] {
  const a = [
    '--unshare-ipc',
    '--unshare-pid',
    '--unshare-net',
    '--unshare-uts',
    '--unshare-cgroup',
    '--die-with-parent',
    '--new-session',
    '--cap-drop',
    'ALL',
  ];
  for (const cap of GOFER_CAPABILITIES) a.push('--cap-add', cap);
  // The program and what it loads, read-only: the node binary and the C library (under /usr on a merged-/usr
  // Debian), the dynamic loader's cache, this checkout and its node_modules (possibly a symlink elsewhere).
  a.push('--ro-bind', '/usr', '/usr');
  for (const top of ['/lib', '/lib64', '/bin', '/sbin']) {
    if (!existsSync(top)) continue;
    if (lstatSync(top).isSymbolicLink()) a.push('--symlink', realpathSync(top).replace(/^\//, ''), top);
    else a.push('--ro-bind', top, top);
  }
  if (existsSync('/etc/ld.so.cache')) a.push('--ro-bind', '/etc/ld.so.cache', '/etc/ld.so.cache');
  const node = dirname(realpathSync(process.execPath));
  if (!node.startsWith('/usr/')) a.push('--ro-bind', node, node);
  a.push('--ro-bind', REPO, REPO);
  // koffi (a native module) wherever it was installed: beside the checkout, or in the installing project.
  let koffi = realpathSync(dirname(createRequire(import.meta.url).resolve('koffi')));
  while (basename(koffi) !== 'koffi' && koffi !== '/') koffi = dirname(koffi);
  const modules = existsSync(resolve(REPO, 'node_modules')) ? realpathSync(resolve(REPO, 'node_modules')) : dirname(koffi);
  if (!modules.startsWith(REPO + '/')) a.push('--ro-bind', modules, modules);
  if (!koffi.startsWith(modules + '/') && !koffi.startsWith(REPO + '/')) a.push('--ro-bind', koffi, koffi);
  // /proc: the server reopens its own O_PATH descriptors through /proc/self/fd; a fresh one, of its own pid
  // namespace. /tmp: tsx's compile cache.
  a.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp');
  a.push(readOnly ? '--ro-bind' : '--bind', root, INNER_ROOT, '--chdir', '/');
  return a;
}
