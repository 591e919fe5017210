/**
 * The OCI runtime spec's config.json (runtime-spec 1.x): the subset tsvisor reads, loaded and checked once so
 * that the rest of the runtime never meets a malformed bundle, and the default spec `tsvisor spec` writes.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { CliError } from '../errors.ts';

/** One hook: a program run by the runtime with the container's state on stdin. */
export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  /** Seconds. */
  timeout?: number;
}

/** The hooks the runtime runs, by the point of the life cycle. */
export interface Hooks {
  prestart?: Hook[];
  createRuntime?: Hook[];
  createContainer?: Hook[];
  startContainer?: Hook[];
  poststart?: Hook[];
  poststop?: Hook[];
}

/** A mount of config.json's `mounts`. */
export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

/** A syscall rule of `linux.seccomp`. */
export interface SeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: { index: number; value: number; valueTwo?: number; op: string }[];
}

/** `linux.seccomp`. */
export interface Seccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  syscalls?: SeccompRule[];
}

/** `process` (also the file of `exec --process`). */
export interface Process {
  terminal?: boolean;
  user: { uid: number; gid: number; additionalGids?: number[]; umask?: number };
  args: string[];
  env?: string[];
  cwd: string;
  capabilities?: { bounding?: string[]; effective?: string[]; permitted?: string[]; inheritable?: string[]; ambient?: string[] };
  rlimits?: { type: string; hard: number; soft: number }[];
  noNewPrivileges?: boolean;
}

/** `linux.resources`, as far as tsvisor applies it (cli/oci/cgroups.ts); limits in bytes, -1 for none. */
export interface Resources {
  memory?: { limit?: number; reservation?: number; swap?: number };
  pids?: { limit?: number };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  devices?: unknown[];
}

/** config.json, as far as tsvisor reads it. */
export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  mounts?: Mount[];
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: {
    namespaces?: { type: string; path?: string }[];
    seccomp?: Seccomp;
    maskedPaths?: string[];
    readonlyPaths?: string[];
    cgroupsPath?: string;
    resources?: Resources;
    sysctl?: Record<string, string>;
  };
}

const HOOK_KINDS = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;

function fail(what: string): never {
  throw new CliError(`config.json: ${what}`);
}

function strings(v: unknown, what: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) fail(`${what} must be a list of strings`);
  return v as string[];
}

/** Checks a `process` object (config.json's or exec's --process file); throws CliError naming the field. */
export function checkProcess(p: unknown, where = 'process'): Process {
  if (typeof p !== 'object' || p === null) fail(`${where} is missing`);
  const o = p as Record<string, unknown>;
  const args = strings(o.args, `${where}.args`);
  if (!args || args.length === 0) fail(`${where}.args is empty: nothing to run`);
  strings(o.env, `${where}.env`);
  const user = (o.user ?? { uid: 0, gid: 0 }) as Process['user'];
  if (!Number.isInteger(user.uid) || !Number.isInteger(user.gid) || user.uid < 0 || user.gid < 0) fail(`${where}.user needs uid and gid`);
  const cwd = (o.cwd ?? '/') as string;
  if (typeof cwd !== 'string' || !cwd.startsWith('/')) fail(`${where}.cwd '${String(cwd)}' is not an absolute path`);
  for (const r of (o.rlimits ?? []) as Process['rlimits'] & object) {
    if (typeof r.type !== 'string' || !(r.type in RLIMITS)) fail(`${where}.rlimits: unknown type '${String(r.type)}'`);
  }
  return { ...(o as unknown as Process), user, cwd, args };
}

/** Reads and checks BUNDLE/config.json; root.path comes back absolute. */
export function loadSpec(bundle: string): Spec {
  const file = join(bundle, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let spec: Spec;
  try {
    spec = JSON.parse(text) as Spec;
  } catch (e) {
    throw new CliError(`${file} is not JSON: ${(e as Error).message}`);
  }
  if (typeof spec !== 'object' || spec === null) fail('not an object');
  if (typeof spec.ociVersion !== 'string') fail('ociVersion is missing');
  spec.process = checkProcess(spec.process);
  if (!spec.root || typeof spec.root.path !== 'string') fail('root.path is missing');
  if (!isAbsolute(spec.root.path)) spec.root.path = join(bundle, spec.root.path);
  for (const m of spec.mounts ?? []) {
    if (typeof m.destination !== 'string' || !m.destination.startsWith('/')) fail(`mount destination '${String(m.destination)}' is not an absolute path`);
  }
  for (const kind of HOOK_KINDS) {
    for (const h of spec.hooks?.[kind] ?? []) {
      if (typeof h.path !== 'string' || !h.path.startsWith('/')) fail(`hooks.${kind}: path '${String(h.path)}' is not absolute`);
      strings(h.args, `hooks.${kind}.args`);
      strings(h.env, `hooks.${kind}.env`);
    }
  }
  for (const ns of spec.linux?.namespaces ?? []) {
    if (typeof ns.type !== 'string') fail('linux.namespaces: an entry has no type');
  }
  return spec;
}

/** setrlimit resource numbers by the spec's names. */
export const RLIMITS: Record<string, number> = {
  RLIMIT_CPU: 0, RLIMIT_FSIZE: 1, RLIMIT_DATA: 2, RLIMIT_STACK: 3, RLIMIT_CORE: 4, RLIMIT_RSS: 5, RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7, RLIMIT_MEMLOCK: 8, RLIMIT_AS: 9, RLIMIT_LOCKS: 10, RLIMIT_SIGPENDING: 11, RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13, RLIMIT_RTPRIO: 14, RLIMIT_RTTIME: 15,
};

/** Capability numbers by name (linux/capability.h). */
export const CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** The capabilities this process may hand on (its bounding set): the machine's root may lack some (CAP_SYS_RESOURCE). */
export function boundingSet(): bigint {
  const m = /^CapBnd:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/** The program's capabilities (the spec's bounding set, else its effective one) that the machine allows, by name. */
export function allowedCaps(p: Process): string[] {
  const want = p.capabilities?.bounding ?? p.capabilities?.effective ?? [];
  const have = boundingSet();
  return want.filter((c) => {
    const n = CAPABILITIES.indexOf(c);
    return n >= 0 && (have & (1n << BigInt(n))) !== 0n;
  });
}

/**
 * Whether the program's raw sockets go to the Sentry (which serves ICMP and ICMPv6 ones from the netstack) rather
 * than failing with EPERM: as Linux decides, when it runs as root with CAP_NET_RAW in its effective set (its
 * bounding set when the spec gives no effective one) that the machine allows. Docker's default set has it, so
 * `docker run busybox ping` works as with runc. Our raw sockets never reach the host kernel and the stack writes
 * their IP headers, so the risk runsc guards against by default is smaller here; `netRaw` false (the global
 * `--net-raw=false`, runsc's default stance) turns them off for every container whatever its capabilities.
 */
export function grantsNetRaw(p: Process, netRaw: boolean | undefined): boolean {
  if (netRaw === false || p.user.uid !== 0) return false;
  const effective = p.capabilities?.effective ?? p.capabilities?.bounding ?? [];
  return effective.includes('CAP_NET_RAW') && allowedCaps(p).includes('CAP_NET_RAW');
}

/** The capability mask of `names`. */
export function capMask(names: readonly string[]): bigint {
  let m = 0n;
  for (const c of names) {
    const n = CAPABILITIES.indexOf(c);
    if (n >= 0) m |= 1n << BigInt(n);
  }
  return m;
}

/** The spec `tsvisor spec` writes: busybox-friendly, a terminal, the mounts runc's default has. */
export function defaultSpec(): Spec {
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ambient: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'tsvisor',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
        '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** A process's env list as a record, with a PATH when it has none (the helper looks PROGRAM up in it). */
export function envRecord(env: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  out.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  return out;
}
