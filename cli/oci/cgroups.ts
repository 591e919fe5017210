/**
 * config.json's `linux.cgroupsPath` and `linux.resources`, through the cgroup file systems (no systemd, no cgroup
 * library): the container's cgroup is made in every mounted hierarchy (on this machine kind the v1 controllers
 * one by one, name=systemd, and the v2 "unified" one of the hybrid layout), the limits that the hierarchies offer
 * are written, and the Sentry moves itself (and on a warm start its keeper) in before it launches the program,
 * which inherits it: the Sentry counts against the container's limits, as runsc's sandbox does against its pod's.
 * The directories made are listed, deepest first, in the container folder's `cgroups` file; `delete` removes
 * them (cli/oci/commands.ts, and the runtime's front, which answers most deletes).
 *
 * cgroupsPath is read as runc reads it: `slice:prefix:name` (the systemd driver's form) names the unit
 * `prefix-name.scope` (or `name` when it is a slice) under the slice, expanded as systemd does (`a-b.slice` →
 * `/a.slice/a-b.slice`; none: `system.slice`), and is
 * made as that path in the cgroup file systems, systemd or not; an absolute path is taken from each hierarchy's
 * root; a relative one from the caller's cgroup; none gives no cgroup of its own (the caller's, as before).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from '../errors.ts';
import type { Resources } from './spec.ts';

/** One mounted cgroup hierarchy. */
export interface CgroupMount {
  /** The mount point. */
  point: string;
  /** The path inside the hierarchy that the mount shows at its point. */
  root: string;
  v2: boolean;
  /** The super options: controllers and name= for v1. */
  options: string[];
}

/** The cgroup mounts of this mount namespace: v1 ones with their options (controllers, name=), and the v2 one. */
export function cgroupMounts(): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const [type, , superOptions] = line.slice(dash + 3).split(' ');
    if (type !== 'cgroup' && type !== 'cgroup2') continue;
    const f = line.slice(0, dash).split(' ');
    const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    out.push({ root: unescape(f[3]!), point: unescape(f[4]!), v2: type === 'cgroup2', options: (superOptions ?? '').split(',') });
  }
  return out;
}

/**
 * Where cgroup `path` (a path inside the hierarchy, as /proc/PID/cgroup gives it) is under `mount`, which shows
 * the hierarchy from its root; undefined when the path lies outside what the mount shows.
 */
export function dirInMount(mount: CgroupMount, path: string): string | undefined {
  const root = mount.root === '/' ? '' : mount.root;
  if (root && !(path + '/').startsWith(root + '/')) return undefined;
  return join(mount.point, path.slice(root.length));
}

/** The controllers (and name=) of a v1 mount, or '' for the v2 one: the key of /proc/PID/cgroup's lines. */
function hierarchyKey(m: CgroupMount): string {
  if (m.v2) return '';
  return m.options.filter((o) => !['rw', 'ro', 'relatime', 'nosuid', 'nodev', 'noexec', 'clone_children', 'noprefix', 'xattr'].includes(o) && !o.startsWith('release_agent=') && !o.startsWith('cpuset_v2_mode')).sort().join(',');
}

/** The path of every hierarchy of /proc/PID/cgroup, by the sorted controller list ('' for v2). */
function cgroupsOf(pid: number | 'self'): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) out.set(m[1]!.split(',').sort().join(','), m[2]!);
  }
  return out;
}

/** systemd's slice expansion: `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`, `-.slice` → `/`. */
export function expandSlice(slice: string): string {
  if (!slice.endsWith('.slice') || slice.includes('/')) throw new CliError(`cgroupsPath: '${slice}' is not a systemd slice name`);
  if (slice === '-.slice') return '/';
  const name = slice.slice(0, -'.slice'.length);
  if (name.startsWith('-') || name.endsWith('-') || name.includes('--')) throw new CliError(`cgroupsPath: invalid slice name '${slice}'`);
  let path = '';
  let prefix = '';
  for (const part of name.split('-')) {
    prefix = prefix ? `${prefix}-${part}` : part;
    path += `/${prefix}.slice`;
  }
  return path;
}

/**
 * The container's cgroup as a path inside each hierarchy: absolute (from the hierarchy's root), or relative (to
 * the caller's cgroup there). Undefined for no cgroupsPath.
 */
export function cgroupPath(cgroupsPath: string | undefined): { path: string; relative: boolean } | undefined {
  if (cgroupsPath === undefined || cgroupsPath === '') return undefined;
  const parts = cgroupsPath.split(':');
  if (!cgroupsPath.startsWith('/') && parts.length === 3) {
    const [slice, prefix, name] = parts as [string, string, string];
    if (!name) throw new CliError(`cgroupsPath '${cgroupsPath}': slice:prefix:name needs a name`);
    // runc's unit name: a slice by its own name, else a scope; put under the expanded parent slice.
    const unit = name.endsWith('.slice') ? name : `${prefix ? `${prefix}-` : ''}${name}.scope`;
    if (unit.includes('/')) throw new CliError(`cgroupsPath '${cgroupsPath}': a unit name holds no '/'`);
    const parent = expandSlice(slice || 'system.slice');
    return { path: `${parent === '/' ? '' : parent}/${unit}`, relative: false };
  }
  const clean = cgroupsPath.split('/').filter((p) => p && p !== '.');
  if (clean.includes('..')) throw new CliError(`cgroupsPath '${cgroupsPath}' must not hold '..'`);
  return { path: '/' + clean.join('/'), relative: !cgroupsPath.startsWith('/') };
}

/** A container's cgroup, made: its directory in each hierarchy. */
export class ContainerCgroup {
  private constructor(
    /** The container's directory in each hierarchy, with its mount. */
    readonly dirs: { dir: string; mount: CgroupMount; key: string }[],
    /** The directories this made, deepest first (the ones `delete` removes). */
    readonly made: string[],
    private readonly before: Map<string, string>,
  ) {}

  /**
   * Makes the cgroup `cgroupsPath` names in every hierarchy (undefined: none asked) and writes `resources` into
   * it; `log` hears what the machine's hierarchies do not offer. Throws CliError, having removed what it made.
   */
  static make(cgroupsPath: string | undefined, resources: Resources | undefined, log: (l: string) => void): ContainerCgroup | undefined {
    const want = cgroupPath(cgroupsPath);
    if (!want) {
      if (resources && Object.keys(resources).some((k) => k !== 'devices')) log('linux.resources without linux.cgroupsPath: not applied');
      return undefined;
    }
    const own = cgroupsOf('self');
    const seen = new Set<string>();
    const dirs: ContainerCgroup['dirs'] = [];
    const made: string[] = [];
    const cg = new ContainerCgroup(dirs, made, own);
    try {
      for (const mount of cgroupMounts()) {
        const key = hierarchyKey(mount);
        // A hierarchy mounted twice (or a v1 one this process is not in) is made once, or not at all.
        if (seen.has(key) || !own.has(key)) continue;
        seen.add(key);
        const full = want.relative ? join(own.get(key)!, want.path) : want.path;
        const dir = dirInMount(mount, full);
        if (dir === undefined) {
          log(`cgroup ${full} is outside the ${key || 'unified'} mount at ${mount.point}: not made there`);
          continue;
        }
        cg.mkdirs(mount, dir);
        dirs.push({ dir, mount, key });
      }
      cg.apply(resources ?? {}, log);
    } catch (e) {
      cg.remove();
      throw e instanceof CliError ? e : new CliError(`cgroupsPath ${cgroupsPath}: ${(e as Error).message}`);
    }
    return cg;
  }

  /** mkdir -p, noting each level made; a new cpuset level gets its parent's cpus and mems (else it takes no task). */
  private mkdirs(mount: CgroupMount, dir: string): void {
    const levels: string[] = [];
    for (let d = dir; d.length > mount.point.length && !existsSync(d); d = join(d, '..')) levels.unshift(d);
    for (const d of levels) {
      mkdirSync(d);
      this.made.unshift(d);
      if (!mount.v2 && mount.options.includes('cpuset')) {
        for (const f of ['cpuset.cpus', 'cpuset.mems']) {
          if (readFileSync(join(d, f), 'utf8').trim() === '') writeFileSync(join(d, f), readFileSync(join(d, '..', f), 'utf8').trim());
        }
      }
    }
  }

  /** The container's directory in the hierarchy holding controller `c` (v1), or the v2 one when it offers `c`. */
  private dirFor(c: string): ContainerCgroup['dirs'][number] | undefined {
    const v1 = this.dirs.find((d) => !d.mount.v2 && d.mount.options.includes(c));
    if (v1) return v1;
    const v2 = this.dirs.find((d) => d.mount.v2);
    if (!v2) return undefined;
    try {
      return readFileSync(join(v2.dir, 'cgroup.controllers'), 'utf8').split(/\s+/).includes(c) ? v2 : undefined;
    } catch {
      return undefined;
    }
  }

  /** Writes the limits the hierarchies offer (v1 file names where v1 holds the controller, else v2's). */
  private apply(r: Resources, log: (l: string) => void): void {
    const where = new Map(['memory', 'pids', 'cpu', 'cpuset'].map((c) => [c, this.dirFor(c)]));
    const write = (controller: string, v1File: string, v2File: string, value: string | number | undefined) => {
      if (value === undefined) return;
      const at = where.get(controller);
      if (!at) {
        log(`linux.resources: no ${controller} controller here, ${v1File} not applied`);
        return;
      }
      const file = join(at.dir, at.mount.v2 ? v2File : v1File);
      try {
        writeFileSync(file, String(value));
      } catch (e) {
        throw new CliError(`cannot write ${value} to ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    };
    const max = (n: number | undefined, v2: boolean) => (n === undefined ? undefined : n < 0 || (v2 && n === 0) ? (v2 ? 'max' : -1) : n);
    const v2Mem = where.get('memory')?.mount.v2 ?? false;
    write('memory', 'memory.limit_in_bytes', 'memory.max', max(r.memory?.limit, v2Mem));
    write('memory', 'memory.soft_limit_in_bytes', 'memory.low', max(r.memory?.reservation, v2Mem));
    if (r.memory?.swap !== undefined) {
      const mem = where.get('memory');
      if (mem && (v2Mem || existsSync(join(mem.dir, 'memory.memsw.limit_in_bytes')))) {
        // v1's memsw is memory plus swap; v2's swap.max is swap alone.
        const swap = v2Mem && r.memory.swap > 0 && r.memory.limit !== undefined && r.memory.limit > 0 ? r.memory.swap - r.memory.limit : r.memory.swap;
        write('memory', 'memory.memsw.limit_in_bytes', 'memory.swap.max', max(swap, v2Mem));
      } else log('linux.resources: the kernel keeps no swap accounting here, memory.swap not applied');
    }
    if (r.pids?.limit !== undefined) write('pids', 'pids.max', 'pids.max', r.pids.limit <= 0 ? 'max' : r.pids.limit);
    const cpu = r.cpu ?? {};
    const v2Cpu = where.get('cpu')?.mount.v2 ?? false;
    if (v2Cpu) {
      // runc's conversion of shares (2..262144) to weight (1..10000).
      if (cpu.shares) write('cpu', 'cpu.shares', 'cpu.weight', Math.round(1 + ((Math.max(2, Math.min(262144, cpu.shares)) - 2) * 9999) / 262142));
      if (cpu.quota !== undefined || cpu.period !== undefined) write('cpu', '', 'cpu.max', `${cpu.quota !== undefined && cpu.quota > 0 ? cpu.quota : 'max'} ${cpu.period ?? 100000}`);
    } else {
      if (cpu.shares) write('cpu', 'cpu.shares', '', cpu.shares);
      // The period first: a quota is checked against the period in place.
      write('cpu', 'cpu.cfs_period_us', '', cpu.period);
      write('cpu', 'cpu.cfs_quota_us', '', cpu.quota);
    }
    if (cpu.cpus) write('cpuset', 'cpuset.cpus', 'cpuset.cpus', cpu.cpus);
    if (cpu.mems) write('cpuset', 'cpuset.mems', 'cpuset.mems', cpu.mems);
  }

  /** Moves process `pid` (all its threads) into the container's cgroup in every hierarchy. */
  join(pid: number): void {
    for (const d of this.dirs) {
      try {
        writeFileSync(join(d.dir, 'cgroup.procs'), String(pid));
      } catch (e) {
        throw new CliError(`cannot move process ${pid} into cgroup ${d.dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
  }

  /**
   * Moves process `pid` into the parent of the container's cgroup (the pod's, for a pod's sandbox: its Sentry serves
   * every container of the pod, and the pause container's own limits, such as kubelet's cpu.shares of 2, are not
   * the pod's). False when the parent is a hierarchy's root: then nothing moves.
   */
  joinParent(pid: number): boolean {
    if (this.dirs.some((d) => join(d.dir, '..') === d.mount.point)) return false;
    for (const d of this.dirs) {
      try {
        writeFileSync(join(d.dir, '..', 'cgroup.procs'), String(pid));
      } catch (e) {
        throw new CliError(`cannot move process ${pid} into cgroup ${join(d.dir, '..')}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    return true;
  }

  /** Moves this process back where it was (a create that failed leaves its cgroup removable). */
  leave(): void {
    for (const d of this.dirs) {
      const was = this.before.get(d.key);
      const dir = was === undefined ? undefined : dirInMount(d.mount, was);
      if (dir === undefined) continue;
      try {
        writeFileSync(join(dir, 'cgroup.procs'), String(process.pid));
      } catch {
        // its old cgroup is gone: the removal below fails and says so
      }
    }
  }

  /** Removes the directories made (those still holding a process stay). */
  remove(): void {
    removeCgroupDirs(this.made);
  }
}

/** rmdir of each of `dirs` in order (deepest first); gone already is fine; one still busy is retried briefly, then left. */
export function removeCgroupDirs(dirs: readonly string[]): void {
  for (const d of dirs) {
    for (let tries = 0; ; tries++) {
      try {
        rmdirSync(d);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        // A task that has just exited leaves its cgroup a moment later; a parent another container uses stays.
        if (code === 'EBUSY' && tries < 50 && !hasChildren(d)) {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
          continue;
        }
        break;
      }
    }
  }
}

function hasChildren(dir: string): boolean {
  try {
    return readdirSync(dir, { withFileTypes: true }).some((e) => e.isDirectory());
  } catch {
    return false;
  }
}

/** The file in a container's folder that lists its cgroup directories, deepest first. */
export const CGROUPS_FILE = 'cgroups';

/** Removes the cgroup directories listed in `dir`'s cgroups file, if any. */
export function removeContainerCgroups(dir: string): void {
  let text: string;
  try {
    text = readFileSync(join(dir, CGROUPS_FILE), 'utf8');
  } catch {
    return;
  }
  removeCgroupDirs(text.split('\n').filter(Boolean));
}
