/**
 * The sandbox's root file system through the Gofer (issue 12): a confined `tsvisor gofer` serves DIR over 9P, this
 * process is its client and shows it to the kernel through FUSE at a private mount point, and bubblewrap binds that
 * mount at the program's `/` (with `/proc`, `/dev` and `/tmp` the sandbox's own on top).
 *
 * This process serves the mount on its main loop, so it must never touch the mount synchronously; everything here
 * looks at DIR itself, never at the mount.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../../gofer/client/client.ts';
import { MS, mountFs, mountFuse, unmountFuse } from './fuse/mount.ts';
import { FuseServer } from './fuse/server.ts';
import { Janitor } from '../sandbox/janitor.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** A checkout runs the sources through tsx; an installed package its compiled entry point. */
const ENTRY = resolve(REPO, import.meta.url.endsWith('.ts') ? 'cli/tsvisor.js' : 'cli/bin.js');

/** How long run's exit waits for the Gofer to answer the SETATTRs written behind (see Rootfs.settle). */
const SETTLE_MS = 10000;

import { RootfsError } from './rootfs-check.ts';

export { ROOTFS_MOUNT_POINTS, RootfsError, checkRootfs, isFileInRootfs } from './rootfs-check.ts';

/** A served root. */
export interface Rootfs {
  /** The sandbox's root as the host sees it: the FUSE mount point, or with an overlay the overlay's. */
  readonly mount: string;
  readonly readOnly: boolean;
  /**
   * Waits until the Gofer has done every SETATTR the server answered ahead of it (write-behind): awaited once the
   * program is gone and before `close`, which would drop those still held.
   */
  settle(): Promise<void>;
  /** Unmounts (lazily), stops the server, sends the Gofer SIGTERM, removes the mount point; idempotent. */
  close(): void;
}

/**
 * Starts the Gofer on `dir`, mounts it through FUSE and serves it; `close()` undoes all of it. With `overlay`, the
 * Gofer and the FUSE mount are read-only and the root is an overlayfs of them under an upper layer on a tmpfs of
 * this run's (memory): the program's writes land there and vanish with the run, and DIR is never written.
 */
export async function serveRootfs(
  dir: string,
  o: { readOnly: boolean; overlay?: boolean; owner?: number; log?: (l: string) => void },
): Promise<Rootfs> {
  const log = o.log ?? (() => {});
  const work = mkdtempSync(join(tmpdir(), 'tsvisor-rootfs-'));
  // Searchable (not listable) by others: bwrap runs as run's unprivileged host identity and binds the mount from here.
  chmodSync(work, 0o711);
  const sock = join(work, 'gofer.sock');
  const mount = join(work, 'root');
  mkdirSync(mount);
  const overlay = o.overlay === true;
  // DIR is only ever read when an overlay takes the writes.
  const lowerRo = o.readOnly || overlay;
  const upperFs = join(work, 'upper');
  const merged = join(work, 'merged');
  const stacked: string[] = [];
  let gofer: ChildProcess | undefined;
  let client: Client | undefined;
  let server: FuseServer | undefined;
  let mounted = false;
  let goferExit = '';
  // With TSVISOR_FUSE_STATS the Gofer prints its own counts too (its environment is not passed on).
  const stats = process.env.TSVISOR_FUSE_STATS !== undefined;
  // A run killed by SIGKILL cannot unmount: its janitor takes the mounts (stale once the server is gone, ENOTCONN
  // to every reader) and the folder. Innermost first; umount of what is not mounted fails harmlessly, and rm stays
  // on this file system should a mount have survived.
  const janitor = Janitor.start([
    ['umount', '-l', merged],
    ['umount', '-l', upperFs],
    ['umount', '-l', mount],
    ['rm', '-rf', '--one-file-system', work],
  ]);
  const close = () => {
    for (const m of stacked.reverse()) unmountFuse(m);
    stacked.length = 0;
    if (mounted) unmountFuse(mount);
    mounted = false;
    server?.close();
    client?.close();
    // The Gofer removes its socket and exits on SIGTERM; nothing waits for it (run is about to exit). With --stats
    // it is left to the end of its standard input at run's exit, which gives it the while to print its counts.
    if (gofer && gofer.exitCode === null && gofer.signalCode === null && !stats) gofer.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
    janitor.done();
  };
  try {
    // Its standard input is a pipe only this process holds: however run ends, even by SIGKILL, the gofer sees
    // the end of it and goes, instead of serving on with run's standard output and error held open.
    // TSVISOR_GOFER_POLL_US: how long the Gofer polls for the next request after replying (a knob for comparisons).
    const poll = process.env.TSVISOR_GOFER_POLL_US === undefined ? [] : ['--poll-us', process.env.TSVISOR_GOFER_POLL_US];
    gofer = spawn(process.execPath, [ENTRY, 'gofer', '--root', dir, '--listen', `unix:${sock}`, '--exit-with-stdin', ...(lowerRo ? ['--ro'] : []), ...poll, ...(stats ? ['--stats'] : [])], {
      stdio: ['pipe', 'inherit', 'inherit'],
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
    // Attached as the program's host user (`owner`), the Gofer makes its files as that user: no chown after each.
    await client.attach(rootFid, o.owner ?? 0);
    const fd = mountFuse(mount, { readOnly: lowerRo, source: `tsvisor:${dir}` });
    mounted = true;
    server = new FuseServer(fd, client, rootFid, {
      onClose: (why) => log(`rootfs: FUSE connection ended (${why})`),
      maxStackDepth: overlay ? 1 : undefined,
      owner: o.owner,
      // A knob for comparisons: TSVISOR_FUSE_URING=1 takes requests through io_uring where the kernel offers it
      // (slower than /dev/fuse with its polls here: sentry/fs/fuse/README.md, "Over io_uring").
      uring: process.env.TSVISOR_FUSE_URING === '1',
      // Another: TSVISOR_FUSE_SPIN_US sets how long the server polls for a lone caller's next request (0: never).
      spinUs: process.env.TSVISOR_FUSE_SPIN_US === undefined ? undefined : Number(process.env.TSVISOR_FUSE_SPIN_US),
      // And TSVISOR_FUSE_REPLY_POLL_US how long it polls the 9P socket for the Gofer's reply to a lone caller (0: never).
      replyPollUs: process.env.TSVISOR_FUSE_REPLY_POLL_US === undefined ? undefined : Number(process.env.TSVISOR_FUSE_REPLY_POLL_US),
      // TSVISOR_FUSE_CREATE_AHEAD=0: every create waits for the Gofer to make the file (no files made ahead), so a
      // refusal of DIR's is the create's own error (sentry/fs/fuse/README.md, "Files made ahead").
      createAhead: process.env.TSVISOR_FUSE_CREATE_AHEAD !== '0',
    });
    server.start();
    log(`rootfs: ${dir} served by gofer pid ${gofer.pid}, mounted at ${mount}${lowerRo ? ' read-only' : ''}`);
    if (overlay) {
      await mountOverlay(dir, mount, upperFs, merged, stacked);
      log(`rootfs: overlay at ${merged}, writes to a tmpfs at ${upperFs}`);
    }
  } catch (e) {
    close();
    throw e;
  }
  // Bounded: a Gofer that stopped answering must not hold run's exit for ever (its calls are then lost, and said so).
  const settle = async () => {
    if (!server) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), SETTLE_MS)));
    const done = await Promise.race([server.settle().then(() => true), late]);
    clearTimeout(timer);
    if (!done) log(`rootfs: ${server.pendingWrites} written-behind SETATTRs unanswered by the gofer after ${SETTLE_MS} ms; left undone`);
  };
  return { mount: overlay ? merged : mount, readOnly: o.readOnly, settle, close };
}

/**
 * Mounts a tmpfs at `upperFs` holding the upper and work directories, and an overlayfs of `lower` (the FUSE mount)
 * under it at `merged`; each mount point is pushed on `stacked` once mounted. The upper root takes DIR's own
 * owner and mode (the merged root shows the upper's). The overlay is mounted by a child process: mount(2) looks
 * at the lower layer (statfs, the root's attributes), which is a FUSE request this process must answer, so it
 * cannot wait in the call itself.
 */
async function mountOverlay(dir: string, lower: string, upperFs: string, merged: string, stacked: string[]): Promise<void> {
  mkdirSync(upperFs);
  mkdirSync(merged);
  mountFs(`tsvisor-upper:${dir}`, upperFs, 'tmpfs', MS.NOSUID | MS.NODEV, 'mode=0700');
  stacked.push(upperFs);
  const upper = join(upperFs, 'upper');
  const workDir = join(upperFs, 'work');
  mkdirSync(upper);
  mkdirSync(workDir);
  const st = statSync(dir);
  chownSync(upper, st.uid, st.gid);
  chmodSync(upper, st.mode & 0o7777);
  const opts = `lowerdir=${lower},upperdir=${upper},workdir=${workDir}`;
  await new Promise<void>((done, fail) => {
    execFile('mount', ['-t', 'overlay', '-o', `${opts}`, '-o', 'nosuid,nodev', `tsvisor-overlay:${dir}`, merged], (e, _out, err) => {
      if (e) fail(new RootfsError(`--overlay: mounting the overlay failed: ${(err || e.message).trim().split('\n')[0]}`));
      else done();
    });
  });
  stacked.push(merged);
}
