/**
 * bubblewrap's argv for the sandbox (issue 9, "Launch chain"): new user, pid, ipc, uts and cgroup namespaces, no
 * capabilities but `capAdd`'s, a new session, death with its parent; the host's `/` read-only with fresh tmpfs over the places
 * where path-named unix sockets live (`/tmp`, `/run`, `/var/run`, `/dev/shm`), a private `/proc` (so that
 * `/proc/1/root/...` is the sandbox's own) and a minimal `/dev`; then the user's binds and the generated files.
 * The network namespace is not bwrap's business: the helper has already joined the app netns.
 */
import { chmodSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A bind mount from the host into the sandbox. */
export interface Bind {
  src: string;
  dst: string;
  /** Read-only (`--ro-bind`) rather than writable (`--bind`). */
  ro: boolean;
}

/** A file generated for the sandbox (resolv.conf, hosts). */
export interface GeneratedFile {
  /** Where the sandbox sees it, e.g. `/etc/resolv.conf`. */
  path: string;
  content: string;
}

/** What bwrapArgs builds from. */
export interface BwrapOptions {
  binds: Bind[];
  files?: GeneratedFile[];
  /** The program's working directory inside the sandbox. */
  cwd?: string;
  /** Keep the caller's netns (bwrap's default here; `false` adds `--unshare-net` for a loopback-only sandbox). */
  shareNet?: boolean;
  /** The bwrap binary (default: `bwrap` on PATH). */
  bwrap?: string;
  /**
   * The program's root instead of the host's `/` read-only (`tsvisor run --rootfs`): a mount point bound at `/`,
   * with `/proc`, `/dev` and `/tmp` the sandbox's own; it must hold those three directories (sentry/fs/rootfs.ts
   * checks), as bwrap must create nothing in it.
   */
  root?: { path: string; ro: boolean };
  /**
   * The whole filesystem part of the argv, built by the caller (the OCI runtime translates config.json's root,
   * mounts, masked and read-only paths); replaces the host-root or `root` layout and `binds`.
   */
  filesystem?: string[];
  /** The program's uid and gid inside its user namespace (default 0:0). */
  ids?: { uid: number; gid: number };
  /** Capabilities kept (bwrap's names, CAP_NET_BIND_SERVICE...) after dropping all. */
  capAdd?: string[];
  /** The sandbox's hostname (its own UTS namespace). */
  hostname?: string;
  /** The program is pid 1 of its pid namespace (no bwrap reaper there), as a container's is under runc. */
  asPid1?: boolean;
}

/** Directories of generated files, by the argv that binds them, until `releaseFiles` deletes them. */
const generated = new Set<string>();

/**
 * A fresh tmpfs at `dir` that every user may create in, as Linux's `/tmp` and `/dev/shm` are (mode 1777, root's):
 * bwrap's tmpfs is 0755, where a program's non-root user (nginx's workers, PostgreSQL, anything that drops root)
 * could make no temporary file, POSIX shared memory or unix socket.
 */
const STICKY_TMPFS = (dir: string) => ['--perms', '1777', '--tmpfs', dir];

/**
 * `[bwrap, ...options]`, without the `--` and the command (launch adds those). Generated files are written to a
 * private temporary directory and bound read-only; `releaseFiles(argv)` deletes it once bwrap has mounted them
 * (a bind mount keeps its file alive after the unlink), and process exit deletes any left.
 */
export function bwrapArgs(o: BwrapOptions): string[] {
  const a = [o.bwrap ?? 'bwrap'];
  // uid and gid 0 inside whatever host identity the helper runs bwrap as (launch's `user`).
  a.push('--unshare-user', '--uid', String(o.ids?.uid ?? 0), '--gid', String(o.ids?.gid ?? 0));
  a.push('--unshare-pid', ...(o.asPid1 ? ['--as-pid-1'] : []), '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try');
  if (o.shareNet === false) a.push('--unshare-net');
  a.push('--die-with-parent', '--new-session', '--cap-drop', 'ALL');
  for (const c of o.capAdd ?? []) a.push('--cap-add', c);
  if (o.hostname !== undefined) a.push('--hostname', o.hostname);
  if (o.filesystem) {
    a.push(...o.filesystem);
  } else if (o.root) {
    a.push(o.root.ro ? '--ro-bind' : '--bind', o.root.path, '/', '--proc', '/proc', '--dev', '/dev');
    a.push(...STICKY_TMPFS('/tmp'), ...STICKY_TMPFS('/dev/shm'));
  } else {
    a.push('--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev');
    // A symlink (Debian's /var/run → /run) is covered by its target's tmpfs; bwrap cannot mount over one.
    for (const dir of ['/tmp', '/run', '/var/run', '/dev/shm']) {
      if (dir.startsWith('/dev/') || isRealDir(dir)) a.push(...(dir === '/tmp' || dir === '/dev/shm' ? STICKY_TMPFS(dir) : ['--tmpfs', dir]));
    }
  }
  for (const b of o.filesystem ? [] : o.binds) {
    if (!b.src.startsWith('/') || !b.dst.startsWith('/')) throw new Error(`bind ${b.src}:${b.dst}: paths must be absolute`);
    a.push(b.ro ? '--ro-bind' : '--bind', b.src, b.dst);
  }
  if (o.files?.length) {
    const dir = mkdtempSync(join(tmpdir(), 'tsvisor-files-'));
    // Searchable (not listable) by others: bwrap may run as launch's unprivileged host identity.
    chmodSync(dir, 0o711);
    generated.add(dir);
    o.files.forEach((f, i) => {
      if (!f.path.startsWith('/')) throw new Error(`generated file ${f.path}: path must be absolute`);
      const src = join(dir, String(i));
      writeFileSync(src, f.content, { mode: 0o644 });
      a.push('--ro-bind', src, f.path);
    });
  }
  if (o.cwd) a.push('--chdir', o.cwd);
  return a;
}

function isRealDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Deletes the generated-file directories that `argv` binds (after bwrap has mounted them, or on failure). */
export function releaseFiles(argv: readonly string[]): void {
  for (const dir of generated) {
    if (!argv.some((s) => s.startsWith(`${dir}/`))) continue;
    rmSync(dir, { recursive: true, force: true });
    generated.delete(dir);
  }
}

process.once('exit', () => {
  for (const dir of generated) rmSync(dir, { recursive: true, force: true });
});
