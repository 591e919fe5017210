/**
 * config.json's root, mounts, masked and read-only paths as bwrap arguments (the filesystem part of the
 * sandbox's argv). The root directory is bound at `/` writable and made read-only last when the spec asks, so
 * that bwrap can create the mount points it needs, as runc does. What bwrap cannot mount inside a user namespace
 * it does not own is approximated and said so: sysfs is the host's, bound read-only; cgroup mounts are skipped.
 */
import { existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import type { Spec } from './spec.ts';

/** Whether a mount's options ask for read-only. */
function readOnly(options: string[] | undefined): boolean {
  return (options ?? []).includes('ro');
}

/** The bwrap arguments for the spec's filesystem; `log` hears what was approximated or skipped. */
export function filesystemArgs(spec: Spec, log: (l: string) => void): string[] {
  const root = spec.root!.path;
  const a = ['--bind', root, '/'];
  const mounts = spec.mounts ?? [];
  const has = (dst: string) => mounts.some((m) => m.destination === dst);
  // /dev as a tmpfs (Docker, runc's default) is bwrap's --dev: the usual nodes, its own devpts and /dev/shm.
  const devAsDev = mounts.some((m) => m.destination === '/dev' && (m.type === 'tmpfs' || m.type === 'devtmpfs'));
  // Without one, the sandbox gets bwrap's all the same: the helper is bound under /dev, which must be a tmpfs.
  if (!devAsDev && !has('/dev')) a.push('--dev', '/dev');
  if (!has('/proc')) log('no /proc mount in config.json: the sandbox gets none');
  for (const m of mounts) {
    const dst = m.destination;
    const type = m.type ?? '';
    const opts = m.options ?? [];
    const bind = type === 'bind' || opts.includes('bind') || opts.includes('rbind');
    if (bind) {
      if (!m.source) {
        log(`mount ${dst}: a bind without a source, skipped`);
        continue;
      }
      a.push(readOnly(opts) ? '--ro-bind' : '--bind', m.source, dst);
    } else if (type === 'proc') {
      a.push('--proc', dst);
    } else if (dst === '/dev' && devAsDev) {
      a.push('--dev', '/dev');
    } else if (type === 'devpts') {
      // bwrap's --dev has a devpts instance of its own at /dev/pts.
      if (!devAsDev) a.push('--dev-bind', '/dev/pts', dst);
    } else if (type === 'tmpfs') {
      const mode = opts.map((o) => /^mode=([0-7]+)$/.exec(o)?.[1]).find(Boolean);
      if (mode) a.push('--perms', mode.padStart(4, '0'));
      a.push('--tmpfs', dst);
      if (readOnly(opts)) a.push('--remount-ro', dst);
    } else if (type === 'mqueue') {
      a.push('--mqueue', dst);
    } else if (type === 'sysfs') {
      // A sysfs of its own needs the network namespace's owner; the host's, read-only, is what is left.
      a.push('--ro-bind', '/sys', dst);
    } else if (type === 'cgroup' || type === 'cgroup2') {
      log(`mount ${dst} (${type}): skipped (the host's /sys holds the cgroup hierarchy read-only)`);
    } else {
      log(`mount ${dst}: type '${type}' is not supported, skipped`);
    }
  }
  for (const p of spec.linux?.maskedPaths ?? []) {
    const host = hostView(root, p);
    if (host === undefined) continue;
    if (host.dir) a.push('--tmpfs', p, '--remount-ro', p);
    else a.push('--ro-bind', '/dev/null', p);
  }
  for (const p of spec.linux?.readonlyPaths ?? []) {
    const host = hostView(root, p);
    if (host === undefined) continue;
    a.push('--ro-bind', host.path, p);
  }
  if (spec.root!.readonly) a.push('--remount-ro', '/');
  return a;
}

/**
 * Where a path of the sandbox is seen from the host, and whether it is a directory; undefined when it does not
 * exist (bwrap would have to create it). /proc and /sys paths are the host's own (the sandbox's are mounts of the
 * same kinds); the rest are the root's.
 */
function hostView(root: string, p: string): { path: string; dir: boolean } | undefined {
  const path = p.startsWith('/proc/') || p.startsWith('/sys/') ? p : join(root, p);
  if (!existsSync(path)) return undefined;
  try {
    return { path, dir: lstatSync(path).isDirectory() };
  } catch {
    return undefined;
  }
}
