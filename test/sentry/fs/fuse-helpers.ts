/** Shared set-up of the FUSE tests: a confined `tsvisor gofer` serving a scratch root, mounted through FuseServer. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { Client } from '../../../gofer/client/client.ts';
import { mountFuse, unmountFuse } from '../../../sentry/fs/fuse/mount.ts';
import { FuseServer } from '../../../sentry/fs/fuse/server.ts';

import { CLI } from '../../cli-under-test.ts';
const execFileP = promisify(execFile);

/** A mounted root. */
export interface Mounted {
  dir: string;
  root: string;
  mnt: string;
  gofer: ChildProcess;
  client: Client;
  server: FuseServer;
  /** Set once the server saw the connection end, with its reason. */
  closed: { why?: string };
}

/**
 * Runs a shell command asynchronously and gives its status and output. This process serves the mount, so nothing
 * in it may touch the mount synchronously: not even spawn's `cwd` (libuv waits for the child's exec while the
 * child's chdir waits for us), hence `cd` inside the command.
 */
export async function sh(cmd: string): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await execFileP('sh', ['-c', cmd], { timeout: 120000, maxBuffer: 64 << 20 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

/** Starts a confined gofer on `root` and waits for its socket. */
export async function startGofer(root: string, sock: string, ro = false): Promise<ChildProcess> {
  const g = spawn(process.execPath, [CLI, 'gofer', '--root', root, '--listen', `unix:${sock}`, ...(ro ? ['--ro'] : [])], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let i = 0; i < 600 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
  if (!existsSync(sock)) throw new Error('gofer did not start');
  return g;
}

/** Makes /tmp/tgr-*: `root/` (filled by `fill`), `mnt/`, and mounts root there through a gofer. */
export async function mountScratch(t: Test, fill: (root: string) => void, o: { ro?: boolean; passthrough?: boolean; maxNodes?: number; validity?: { entry: number; attr: number }; owner?: number; writeBehind?: boolean; createAhead?: boolean; uring?: boolean; spinUs?: number; replyPollUs?: number; holdMs?: number } = {}): Promise<Mounted> {
  const dir = mkdtempSync('/tmp/tgr-');
  const root = join(dir, 'root');
  const mnt = join(dir, 'mnt');
  mkdirSync(root);
  mkdirSync(mnt);
  fill(root);
  const gofer = await startGofer(root, join(dir, 'gofer.sock'), o.ro);
  // With passthrough, the gofer donates each opened file's descriptor and the kernel reads and writes it directly.
  let client: Client;
  let rootFid: number;
  try {
    client = await Client.connect(join(dir, 'gofer.sock'), 1 << 20, { donation: o.passthrough ?? false, holdMs: o.holdMs });
    rootFid = client.allocFid();
    await client.attach(rootFid, o.owner ?? 0);
  } catch (e) {
    // No teardown is registered yet: a gofer left running would hold this test file open until tap's timeout.
    gofer.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const fd = mountFuse(mnt, { readOnly: o.ro });
  const closed: { why?: string } = {};
  const server = new FuseServer(fd, client, rootFid, { passthrough: o.passthrough ?? false, maxNodes: o.maxNodes, validity: o.validity, owner: o.owner, writeBehind: o.writeBehind, createAhead: o.createAhead, uring: o.uring, spinUs: o.spinUs, replyPollUs: o.replyPollUs, onClose: (why) => (closed.why = why) });
  server.start();
  t.teardown(async () => {
    if (!client.closed) await server.settle();
    unmountFuse(mnt);
    server.close();
    client.close();
    if (gofer.exitCode === null && gofer.signalCode === null) {
      const gone = new Promise((r) => gofer.once('exit', r));
      gofer.kill('SIGTERM');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, root, mnt, gofer, client, server, closed };
}

/**
 * The serving process at the bottom of the Gofer's command started as `pid` (node under bwraps): the one to stop
 * (SIGSTOP) when a test needs the Gofer to answer nothing for a while.
 */
export function goferServer(pid: number): number {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch {
      // gone meanwhile
    }
  }
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...(kids.get(all[i]!) ?? []));
  return all.filter((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'node').at(-1)!;
}
