/**
 * The sandbox's root file system through the Gofer (issue 12): a confined `tsvisor gofer` serves DIR over 9P, this
 * process is its client and shows it to the kernel through FUSE at a private mount point, and bubblewrap binds that
 * mount at the program's `/` (with `/proc`, `/dev` and `/tmp` the sandbox's own on top).
 *
 * This process serves the mount on its main loop, so it must never touch the mount synchronously; everything here
 * looks at DIR itself, never at the mount.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../../gofer/client/client.ts';
import { mountFuse, unmountFuse } from './fuse/mount.ts';
import { FuseServer } from './fuse/server.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** A checkout runs the sources through tsx; an installed package its compiled entry point. */
const ENTRY = resolve(REPO, import.meta.url.endsWith('.ts') ? 'cli/tsvisor.js' : 'cli/bin.js');

/** The directories of DIR the sandbox mounts its own file systems on. */
export const ROOTFS_MOUNT_POINTS = ['/proc', '/dev', '/tmp'] as const;

/** A problem with DIR, told before anything is started: one line naming it. */
export class RootfsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RootfsError';
  }
}

/**
 * Checks DIR: it must be a directory holding (real, not symlinked) `proc`, `dev` and `tmp` directories, since
 * bubblewrap mounts on them and must never create anything in DIR nor follow a link out of it.
 */
export function checkRootfs(dir: string): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    throw new RootfsError(`--rootfs: '${dir}' does not exist`);
  }
  if (!st.isDirectory()) throw new RootfsError(`--rootfs: '${dir}' is not a directory`);
  for (const p of ROOTFS_MOUNT_POINTS) {
    let ok = false;
    try {
      ok = lstatSync(join(dir, p)).isDirectory();
    } catch {
      // missing
    }
    if (!ok) {
      throw new RootfsError(`--rootfs: '${dir}' has no ${p} directory (the sandbox mounts its own there): mkdir ${join(dir, p)}`);
    }
  }
}

/** Whether `path` inside DIR is a regular file (not through the mount; a symlinked parent in DIR answers false). */
export function isFileInRootfs(dir: string, path: string): boolean {
  let at = dir;
  const parts = path.split('/').filter((p) => p !== '');
  for (let i = 0; i < parts.length; i++) {
    at = join(at, parts[i]!);
    try {
      const st = lstatSync(at);
      if (i < parts.length - 1 ? !st.isDirectory() : !st.isFile()) return false;
    } catch {
      return false;
    }
  }
  return parts.length > 0;
}

/** A served root. */
export interface Rootfs {
  /** The FUSE mount point (the host's view of the sandbox's root). */
  readonly mount: string;
  readonly readOnly: boolean;
  /** Unmounts (lazily), stops the server, sends the Gofer SIGTERM, removes the mount point; idempotent. */
  close(): void;
}

/** Starts the Gofer on `dir`, mounts it through FUSE and serves it; `close()` undoes all of it. */
export async function serveRootfs(dir: string, o: { readOnly: boolean; log?: (l: string) => void }): Promise<Rootfs> {
  const log = o.log ?? (() => {});
  const work = mkdtempSync(join(tmpdir(), 'tsvisor-rootfs-'));
  // Searchable (not listable) by others: bwrap runs as run's unprivileged host identity and binds the mount from here.
  chmodSync(work, 0o711);
  const sock = join(work, 'gofer.sock');
  const mount = join(work, 'root');
  mkdirSync(mount);
  let gofer: ChildProcess | undefined;
  let client: Client | undefined;
  let server: FuseServer | undefined;
  let mounted = false;
  let goferExit = '';
  const close = () => {
    if (mounted) unmountFuse(mount);
    mounted = false;
    server?.close();
    client?.close();
    // The Gofer removes its socket and exits on SIGTERM; nothing waits for it (run is about to exit).
    if (gofer && gofer.exitCode === null && gofer.signalCode === null) gofer.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  };
  try {
    gofer = spawn(process.execPath, [ENTRY, 'gofer', '--root', dir, '--listen', `unix:${sock}`, ...(o.readOnly ? ['--ro'] : [])], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    gofer.once('exit', (code, sig) => {
      goferExit = sig ?? `status ${code}`;
      log(`rootfs: the gofer exited (${goferExit})`);
    });
    for (let i = 0; i < 1200 && !existsSync(sock) && goferExit === ''; i++) await new Promise((r) => setTimeout(r, 50));
    if (!existsSync(sock)) throw new RootfsError(`--rootfs: the gofer did not start${goferExit ? ` (${goferExit})` : ''}`);
    // The tsvisor dialect: opened files come with their host descriptor, for FUSE passthrough.
    client = await Client.connect(sock, 1 << 20, { donation: true });
    const rootFid = client.allocFid();
    await client.attach(rootFid, 0);
    const fd = mountFuse(mount, { readOnly: o.readOnly, source: `tsvisor:${dir}` });
    mounted = true;
    server = new FuseServer(fd, client, rootFid, { onClose: (why) => log(`rootfs: FUSE connection ended (${why})`) });
    server.start();
    log(`rootfs: ${dir} served by gofer pid ${gofer.pid}, mounted at ${mount}${o.readOnly ? ' read-only' : ''}`);
  } catch (e) {
    close();
    throw e;
  }
  return { mount, readOnly: o.readOnly, close };
}
