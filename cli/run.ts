/**
 * `tsvisor run`: start an unmodified program as a Linux process whose socket calls the netstack serves. This file
 * holds the arguments and the orchestration: arguments → checks → namespaces (with the janitor) → netstack on the
 * link → policy → launch → Sentry → wait → drain → clean-up. The pieces live in sentry/ (sandbox, seccomp,
 * platform, syscalls).
 */
import { accessSync, appendFileSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { constants as osConstants, release } from 'node:os';
import { delimiter, join } from 'node:path';
import { isNetnsPath, netnsExists, netnsFile } from '../lib/netns.ts';
import { type Address, type Subnet, parseAddress, parseSubnet } from '../netstack/addr.ts';
import { type ImpairSpec, parseImpairSpec } from '../netstack/link/impair.ts';
import { bwrapArgs } from '../sentry/sandbox/bwrap.ts';
import { Janitor } from '../sentry/sandbox/janitor.ts';
import { ExecError, LaunchError, exitStatus, launch } from '../sentry/sandbox/launch.ts';
import { HelperBuildError, helperPath } from '../sentry/sandbox/native/build.ts';
import { buildPolicy } from '../sentry/seccomp/policy.ts';
import type { Rootfs } from '../sentry/fs/rootfs.ts';
import { RootfsError, checkRootfs, isFileInRootfs } from '../sentry/fs/rootfs-check.ts';
import { newRunId, removeCommands } from '../sentry/sandbox/netns.ts';
import { type PublishSpec, parsePublish } from '../sentry/sandbox/publish.ts';
import { parseArgs, UsageError } from './args.ts';
import { CliError } from './main.ts';
import type { RunNetwork } from './run-network.ts';
import { type RunModules, loadModules, serveListener } from './sentry-modules.ts';
import { unwind } from '../lib/undo.ts';

/** The three network modes, as runsc names them. */
export type NetworkMode = 'sandbox' | 'host' | 'none';

/** A bind mount from the host into the sandbox. */
export interface Bind {
  readonly src: string;
  readonly dst: string;
  readonly ro: boolean;
}

/** Everything `run` was asked for. */
export interface RunOptions {
  network: NetworkMode;
  /** Take over this interface in this namespace (name or path) instead of making a veth. */
  netns?: string;
  dev?: string;
  /** Addresses instead of the taken interface's own (--netns only). */
  addresses: Subnet[];
  gateways: Address[];
  dns: Address[];
  publish: PublishSpec[];
  binds: Bind[];
  env: Record<string, string>;
  cwd?: string;
  allowRaw: boolean;
  strace: boolean;
  debug: boolean;
  debugLog?: string;
  pcapLog?: string;
  /**
   * The program's root: DIR served by a Gofer through FUSE (sentry/fs/rootfs.ts), read-only with `--ro`; with
   * `--overlay` under a writable layer in memory that goes with the run.
   */
  rootfs?: { dir: string; ro: boolean; overlay: boolean };
  /** Impairments (loss, delay, ...) of the sandbox's link, between the netstack and the veth. */
  impair?: ImpairSpec;
  /**
   * The link netns (--netns) is removed when the run ends (the OCI runtime made it): the taken interface's
   * configuration is not given back, only its takeover record dropped.
   */
  netnsGoes?: boolean;
  /** How long data the program wrote before exiting may take to be delivered, in ms. */
  drainMs: number;
  argv: string[];
}

const USAGE_LINE = 'tsvisor run [options] -- PROGRAM [ARGS...]';

/** Parses `run`'s arguments; every mistake is a UsageError naming it. */
export function parseRunArgs(argv: string[]): RunOptions {
  const dashes = argv.indexOf('--');
  const own = dashes < 0 ? argv : argv.slice(0, dashes);
  const { options: o, positional } = parseArgs(own, {
    network: { value: true },
    netns: { value: true },
    dev: { value: true },
    addr: { value: true, repeat: true },
    gateway: { value: true, repeat: true },
    dns: { value: true, repeat: true },
    publish: { value: true, repeat: true },
    'ro-bind': { value: true, repeat: true },
    bind: { value: true, repeat: true },
    env: { value: true, repeat: true },
    cwd: { value: true },
    'allow-raw': {},
    // runsc's name for it.
    'net-raw': {},
    strace: {},
    debug: {},
    'debug-log': { value: true },
    'pcap-log': { value: true },
    impair: { value: true },
    platform: { value: true },
    'drain-timeout': { value: true },
    rootfs: { value: true },
    ro: {},
    overlay: {},
  }, dashes < 0 ? Infinity : 0);
  const program = dashes < 0 ? positional : argv.slice(dashes + 1);
  if (program.length === 0) throw new UsageError(`run: no PROGRAM given (${USAGE_LINE})`);

  const platform = (o.platform as string | undefined) ?? 'unotify';
  if (platform === 'ptrace' || platform === 'kvm') {
    throw new UsageError(`--platform=${platform} is not available: ` +
      (platform === 'kvm' ? 'there is no /dev/kvm here' : 'ptrace is not implemented') + '; use --platform=unotify');
  }
  if (platform !== 'unotify') throw new UsageError(`--platform: unknown platform '${platform}' (known: unotify)`);

  const network = (o.network as string | undefined) ?? 'sandbox';
  if (network !== 'sandbox' && network !== 'host' && network !== 'none') {
    throw new UsageError(`--network: unknown mode '${network}' (known: sandbox, host, none)`);
  }
  const only = (flag: string, why: string) => {
    if (o[flag] !== undefined) throw new UsageError(`--${flag} ${why}`);
  };
  if (network !== 'sandbox') {
    for (const f of ['netns', 'dev', 'addr', 'gateway', 'publish', 'pcap-log', 'impair']) only(f, `needs --network=sandbox`);
    if (network === 'host') only('dns', 'needs --network=sandbox or none (host mode uses the host\'s resolv.conf)');
    if (network === 'host') only('allow-raw', 'has no meaning with --network=host (nothing is trapped)');
    if (network === 'host') only('net-raw', 'has no meaning with --network=host (nothing is trapped)');
  }
  if ((o.netns === undefined) !== (o.dev === undefined)) {
    throw new UsageError(o.netns === undefined ? '--dev needs --netns' : '--netns needs --dev (the interface to take over)');
  }
  if (o.netns === undefined) {
    only('addr', 'needs --netns (without it, run picks the addresses of its own veth)');
    only('gateway', 'needs --netns (without it, the gateway is the caller\'s end of run\'s own veth)');
  }
  const netns = o.netns as string | undefined;
  if (netns !== undefined && !isNetnsPath(netns) && (!/^[A-Za-z0-9_.-]+$/.test(netns) || netns === '.' || netns === '..')) {
    throw new UsageError(`--netns: '${netns}' is neither a namespace name nor an absolute path`);
  }

  const list = (name: string) => (o[name] as string[] | undefined) ?? [];
  const addresses = list('addr').map((text) => {
    const s = parseSubnet(text);
    if (!s) throw new UsageError(`--addr: '${text}' is not an address with a prefix length (e.g. 198.18.0.2/24)`);
    return s;
  });
  const ip = (flag: string) => (text: string) => {
    const a = parseAddress(text);
    if (!a) throw new UsageError(`--${flag}: '${text}' is not an IP address`);
    return a;
  };
  const gateways = list('gateway').map(ip('gateway'));
  const dns = list('dns').map(ip('dns'));
  const publish = list('publish').map((text) => {
    const p = parsePublish(text);
    if (typeof p === 'string') throw new UsageError(`--publish: ${p}`);
    return p;
  });
  const bind = (ro: boolean) => (text: string): Bind => {
    const i = text.indexOf(':');
    const src = i < 0 ? text : text.slice(0, i);
    const dst = i < 0 ? text : text.slice(i + 1);
    const flag = ro ? '--ro-bind' : '--bind';
    if (!src.startsWith('/') || !dst.startsWith('/')) throw new UsageError(`${flag}: '${text}' needs absolute paths (SRC[:DST])`);
    return { src, dst, ro };
  };
  const binds = [...list('ro-bind').map(bind(true)), ...list('bind').map(bind(false))];
  const env: Record<string, string> = {};
  for (const kv of list('env')) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`--env: '${kv}' is not K=V`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const rootfs = o.rootfs as string | undefined;
  if (rootfs !== undefined && !rootfs.startsWith('/')) throw new UsageError(`--rootfs: '${rootfs}' is not an absolute path`);
  if (o.ro !== undefined && rootfs === undefined) throw new UsageError('--ro needs --rootfs');
  if (o.overlay !== undefined && rootfs === undefined) throw new UsageError('--overlay needs --rootfs');
  if (o.overlay !== undefined && o.ro !== undefined) throw new UsageError('--ro and --overlay exclude each other (with --overlay DIR is never written anyway)');
  const cwd = o.cwd as string | undefined;
  if (cwd !== undefined && !cwd.startsWith('/')) throw new UsageError(`--cwd: '${cwd}' is not an absolute path`);
  let impair: ImpairSpec | undefined;
  if (o.impair !== undefined) {
    const r = parseImpairSpec(o.impair as string);
    if (typeof r === 'string') throw new UsageError(`--impair: ${r}`);
    impair = r;
  }
  const drain = (o['drain-timeout'] as string | undefined) ?? '5';
  if (!/^\d+(\.\d+)?$/.test(drain)) throw new UsageError(`--drain-timeout: '${drain}' is not a number of seconds`);

  return {
    network,
    netns,
    dev: o.dev as string | undefined,
    addresses,
    gateways,
    dns,
    publish,
    binds,
    env,
    cwd,
    rootfs: rootfs === undefined ? undefined : { dir: rootfs, ro: Boolean(o.ro), overlay: Boolean(o.overlay) },
    allowRaw: Boolean(o['allow-raw'] ?? o['net-raw']),
    strace: Boolean(o.strace),
    debug: Boolean(o.debug),
    debugLog: o['debug-log'] as string | undefined,
    pcapLog: o['pcap-log'] as string | undefined,
    impair,
    drainMs: Math.round(Number(drain) * 1000),
    argv: program,
  };
}

/** Whether an executable named `name` is on PATH. */
function onPath(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}

/** The kernel's version as [major, minor]. */
function kernelVersion(): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release());
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/**
 * The set-up failures that can be told before anything is made, each a one-line CliError naming the cause and
 * the fix: not root, kernel < 5.19, bwrap missing, the netns or interface missing, a bind source missing.
 */
export function preflight(o: RunOptions): void {
  if (process.getuid?.() !== 0) {
    throw new CliError('tsvisor run must run as root (it makes network namespaces and a seccomp listener): run it with sudo');
  }
  const [major, minor] = kernelVersion();
  if (major < 5 || (major === 5 && minor < 19)) {
    throw new CliError(`kernel ${release()} is older than 5.19, which seccomp user notification with WAIT_KILLABLE_RECV needs: use a newer kernel`);
  }
  if (!onPath('bwrap')) throw new CliError('bwrap not found on PATH: install bubblewrap (apt-get install bubblewrap)');
  if (o.netns !== undefined) {
    if (!netnsExists(o.netns)) {
      throw new CliError(isNetnsPath(o.netns) ? `network namespace file '${o.netns}' does not exist: check --netns`
        : `network namespace '${o.netns}' does not exist (${netnsFile(o.netns)}): create it (ip netns add ${o.netns}) or fix --netns`);
    }
  }
  for (const b of o.binds) {
    if (!existsSync(b.src)) throw new CliError(`${b.ro ? '--ro-bind' : '--bind'}: '${b.src}' does not exist`);
  }
  if (o.rootfs) {
    try {
      checkRootfs(o.rootfs.dir);
    } catch (e) {
      if (e instanceof RootfsError) throw new CliError(e.message);
      throw e;
    }
  }
  if (o.cwd !== undefined && o.binds.length === 0 && !o.rootfs) {
    try {
      if (!statSync(o.cwd).isDirectory()) throw new Error();
    } catch {
      throw new CliError(`--cwd: '${o.cwd}' is not a directory`);
    }
  }
}

/** The Sentry's own log: lines to --debug-log (a file, or DIR/ for one file per run) and, with --debug, stderr. */
export class RunLog {
  private readonly file?: string;
  private readonly toStderr: boolean;

  constructor(o: { debugLog?: string; debug: boolean }, id: string) {
    this.toStderr = o.debug && o.debugLog === undefined;
    if (o.debugLog !== undefined) {
      if (o.debugLog.endsWith('/')) {
        mkdirSync(o.debugLog, { recursive: true });
        this.file = join(o.debugLog, `tsvisor-run-${id}.log`);
      } else {
        this.file = o.debugLog;
      }
      appendFileSync(this.file, '');
    }
  }

  /** Whether lines go anywhere (so callers can skip building them). */
  get enabled(): boolean {
    return this.file !== undefined || this.toStderr;
  }

  /** Writes one line, stamped with the milliseconds since the process started. */
  readonly line = (text: string): void => {
    if (!this.enabled) return;
    const l = `${performance.now().toFixed(1).padStart(8)} ${text}\n`;
    if (this.file !== undefined) appendFileSync(this.file, l);
    if (this.toStderr) process.stderr.write(`tsvisor: ${l}`);
  };
}

const HOST_NETWORK: RunNetwork = { addresses: [], gateways: [], files: [], describe: 'host network (no traps but the arch kill)' };

/** Signals forwarded to the program; a second SIGINT within this many ms kills the sandbox. */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
const SECOND_SIGINT_MS = 2000;

/** What the launch step gives back: the running program, and the Sentry serving it. */
export interface Started {
  kill(sig: NodeJS.Signals | number): void;
  wait(): Promise<{ code: number | null; signal: string | null }>;
  /** Lets data the program wrote reach its peers, within `ms`; then stops serving. */
  drain(ms: number): Promise<void>;
  close(): void;
}

/**
 * The host identity the program runs as (uid 0 inside its user namespace): `nobody`, so that root-owned host
 * files such as /etc/shadow are not readable through the read-only root, and a `--bind` directory the program
 * writes must be writable by it.
 */
export const SANDBOX_USER = { uid: 65534, gid: 65534 } as const;

/**
 * The host ids that uids and gids 1-65535 inside stand for: from 0x70000001 on, above the ranges systemd hands to
 * containers (up to 0x6FFFFFFF) and below the ones it reserves (0x80000000 on), owned by nobody on the host. So a
 * server that gives its workers to another user (nginx's `user nobody`, sshd, PostgreSQL) can chown and setuid
 * to it, and what that user makes in a `--bind` directory belongs to base + uid on the host.
 */
export const SANDBOX_ID_BASE = 0x70000000;

/** A map of the sandbox's user namespace: 0 is `host` (SANDBOX_USER's id), 1-65535 go above SANDBOX_ID_BASE. */
const sandboxIdMap = (host: number): string => `0 ${host} 1\n1 ${SANDBOX_ID_BASE + 1} 65535\n`;

/** uid_map and gid_map of the sandbox's user namespace. */
export const SANDBOX_ID_MAP = { uid: sandboxIdMap(SANDBOX_USER.uid), gid: sandboxIdMap(SANDBOX_USER.gid) };

/**
 * The capabilities root keeps inside its user namespace (so only over the sandbox's own ids and namespaces):
 * Docker's default set, without CAP_NET_RAW (raw sockets are `--allow-raw`'s and the Sentry's).
 */
export const SANDBOX_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_MKNOD', 'CAP_AUDIT_WRITE', 'CAP_SETFCAP',
];

/**
 * The launch: the seccomp policy (sentry/seccomp/policy.ts), the helper → bwrap → program chain
 * (sentry/sandbox/launch.ts, bwrap.ts), and the Sentry on the listener it hands back.
 */
async function startProgram(o: RunOptions, net: RunNetwork, modules: RunModules, log: (l: string) => void, rootfs?: Rootfs): Promise<Started> {
  const filter = buildPolicy({ mode: o.network, allowRaw: o.allowRaw, strace: o.strace });
  // In a root of its own, a generated file (resolv.conf, hosts) is bound only over a file DIR has: bwrap must create nothing there.
  const files = rootfs ? net.files.filter((f) => isFileInRootfs(o.rootfs!.dir, f.path)) : net.files;
  const root = rootfs ? { path: rootfs.mount, ro: rootfs.readOnly } : undefined;
  const bwrap = bwrapArgs({ binds: o.binds, files, cwd: o.cwd ?? (rootfs ? '/' : undefined), shareNet: true, root, capAdd: SANDBOX_CAPS });
  let sandbox;
  try {
    sandbox = await launch({
      argv: o.argv,
      filter,
      appNetns: net.appNetns === undefined ? undefined : netnsFile(net.appNetns),
      bwrap,
      env: { ...(process.env as Record<string, string>), ...o.env },
      user: SANDBOX_USER,
      idMap: SANDBOX_ID_MAP,
      helperAt: rootfs ? '/dev/.tsvisor-helper' : undefined,
    });
  } catch (e) {
    if (e instanceof LaunchError) throw new CliError(e.message);
    throw e;
  }
  log(`launched: pid ${sandbox.pid}, listener fd ${sandbox.listenerFd}`);
  const sentry = serveListener(sandbox, o, net, modules, log);
  return {
    kill: (sig) => sandbox.kill(sig),
    wait: () => sandbox.wait(),
    drain: async (ms) => {
      if (!sentry || !net.netstack) return;
      const t0 = performance.now();
      await sentry.drain(ms);
      log(`drain: ${(performance.now() - t0).toFixed(1)} ms (--drain-timeout ${ms} ms)`);
    },
    close: () => sentry?.close(),
  };
}

/** The `run` command; resolves to the program's exit status. */
export async function runCommand(argv: string[]): Promise<number> {
  const o = parseRunArgs(argv);
  preflight(o);
  // The helper is built (once, cached) before anything is made: a missing compiler is a set-up failure.
  try {
    helperPath();
  } catch (e) {
    if (e instanceof HelperBuildError) throw new CliError(e.message);
    throw e;
  }
  // The rest of the code this run needs loads now, so that "cli" in the timings is all of the CLI's load and the
  // set-up after it is work: the netstack and the Sentry (none of it in host mode without --strace).
  const modules = await loadModules(o);
  const cliLoaded = performance.now();
  const id = newRunId();
  const log = new RunLog(o, id);
  log.line(`run ${id}: network=${o.network} argv=${JSON.stringify(o.argv)}`);
  log.line(`timing cli=${cliLoaded.toFixed(1)}`);

  const janitor = o.network === 'host' ? undefined : Janitor.start(removeCommands(id));
  const undo: (() => void)[] = [];
  const unwindAll = () => {
    unwind(undo, (e) => process.stderr.write(`tsvisor: while cleaning up: ${e.message}\n`));
    janitor?.done();
  };
  // Until the program runs, a signal means: undo what is made and leave.
  const early = (sig: NodeJS.Signals) => {
    unwindAll();
    process.exit(128 + ((osConstants.signals as Record<string, number>)[sig] ?? 0));
  };
  for (const s of FORWARDED) process.on(s, early);
  let started: Started | undefined;
  let rootfs: Rootfs | undefined;
  let net: RunNetwork | undefined;
  try {
    // Host mode loads none of the netstack: its modules are most of the CLI's load time.
    net = modules.network ? await modules.network.makeNetwork(o, id, undo, log.line) : HOST_NETWORK;
    log.line(net.describe);
    // The Gofer's client and the FUSE server load only for a root to serve (a sixth of the CLI's code otherwise).
    rootfs = o.rootfs
      ? await (await import('../sentry/fs/rootfs.ts')).serveRootfs(o.rootfs.dir, { readOnly: o.rootfs.ro, overlay: o.rootfs.overlay, owner: SANDBOX_USER.uid, log: log.line })
      : undefined;
    const served = rootfs;
    if (served) undo.push(() => served.close());
    const t0 = performance.now();
    started = await startProgram(o, net, modules, log.line, rootfs);
    log.line(`timing launch=${(performance.now() - t0).toFixed(1)}`);
    log.line(`timing ready=${performance.now().toFixed(1)}`);
  } catch (e) {
    for (const s of FORWARDED) process.off(s, early);
    unwindAll();
    if (e instanceof CliError || e instanceof UsageError) throw e;
    // The launch reports a program that cannot be found or executed as 127 / 126, with a message naming it.
    if (e instanceof ExecError) {
      process.stderr.write(`tsvisor: ${e.message}\n`);
      return e.status;
    }
    throw new CliError((e as Error).message);
  }
  for (const s of FORWARDED) process.off(s, early);

  let lastInt = -Infinity;
  const forward = (sig: NodeJS.Signals) => {
    if (sig === 'SIGINT') {
      const now = performance.now();
      if (now - lastInt < SECOND_SIGINT_MS) {
        log.line('second SIGINT within 2 s: killing the sandbox');
        started!.kill('SIGKILL');
        return;
      }
      lastInt = now;
    }
    log.line(`forwarding ${sig}`);
    started!.kill(sig);
  };
  for (const s of FORWARDED) process.on(s, forward);
  try {
    const result = await started.wait();
    log.line(`program exited: ${result.code !== null ? `status ${result.code}` : `signal ${result.signal}`}`);
    await started.drain(o.drainMs);
    // Where packets went (and where some were dropped: udp.receiveBufferErrors, tcp.*Drop...), for the log.
    if (log.enabled) {
      const nonZero = (c: object) => Object.entries(c).filter(([, v]) => v !== 0).map(([k, v]) => `${k}=${String(v)}`).join(' ');
      const counters = net?.netstack?.counters();
      if (counters) log.line(`netstack counters: ${nonZero(counters)}`);
      // The kernel's side of the link: frames it dropped before the netstack saw them (a full receive ring).
      const link = net?.hostLink?.refreshCounters();
      if (link) log.line(`link counters: ${nonZero(link)}`);
    }
    // SETATTRs the FUSE server answered ahead of the Gofer (write-behind) reach DIR before it is unmounted.
    await rootfs?.settle();
    return exitStatus(result);
  } finally {
    for (const s of FORWARDED) process.off(s, forward);
    started.close();
    unwindAll();
  }
}
