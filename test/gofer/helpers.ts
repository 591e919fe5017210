/** Shared set-up of the Gofer tests: a scratch tree with the exported root and a canary beside it. */
import { closeSync, fsyncSync, mkdtempSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import koffi from 'koffi';
import { join } from 'node:path';
import type { Test } from 'tap';
import { Client } from '../../gofer/client/client.ts';
import { GoferServer, type GoferOptions } from '../../gofer/server/server.ts';

/** A scratch directory: `root/` is exported, `canary` and `outside/` sit next to it and must never change. */
export interface Scratch {
  readonly dir: string;
  readonly root: string;
  readonly canary: string;
  readonly sock: string;
  /** Whether the canary file and the outside directory are exactly as created. */
  canaryIntact(): boolean;
}

/** The canary's content: no reply of the gofer may hold any of it. */
export const CANARY = 'canary: nothing may read, write or link me through the gofer\n';
const fadvise = koffi
  .load('libc.so.6')
  .func('int posix_fadvise(int fd, int64_t off, int64_t len, int advice)') as (fd: number, off: number, len: number, advice: number) => number;

/**
 * Writes `path` back and drops its pages from the page cache (POSIX_FADV_DONTNEED), so that the next read of it
 * must come from the disk: the Gofer's Tread then takes libuv's thread pool instead of answering at once.
 */
export function dropCached(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
    const r = fadvise(fd, 0, 0, 4);
    if (r !== 0) throw new Error(`posix_fadvise(${path}): error ${r}`);
  } finally {
    closeSync(fd);
  }
}

/** The content of `outside/secret`. */
export const SECRET = 'secret\n';

/** Makes a scratch tree under /tmp/tgf-*, removed when the test ends. */
export function scratch(t: Test): Scratch {
  const dir = mkdtempSync('/tmp/tgf-');
  const root = join(dir, 'root');
  mkdirSync(root);
  const canary = join(dir, 'canary');
  writeFileSync(canary, CANARY, { mode: 0o644 });
  mkdirSync(join(dir, 'outside'));
  writeFileSync(join(dir, 'outside', 'secret'), SECRET);
  const before = statSync(canary);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return {
    dir,
    root,
    canary,
    sock: join(dir, 'gofer.sock'),
    canaryIntact() {
      const st = statSync(canary);
      return (
        readFileSync(canary, 'utf8') === CANARY &&
        st.nlink === 1 &&
        st.mode === before.mode &&
        st.uid === before.uid &&
        st.mtimeMs === before.mtimeMs &&
        readFileSync(join(dir, 'outside', 'secret'), 'utf8') === SECRET
      );
    },
  };
}

/** Starts an in-process server on the scratch socket; stopped when the test ends. */
export async function startServer(t: Test, s: Scratch, opts: Partial<GoferOptions> = {}): Promise<GoferServer> {
  const server = new GoferServer({ root: s.root, ...opts });
  await server.listen(s.sock);
  t.teardown(async () => {
    await server.close();
    server.dispose();
  });
  return server;
}

/** Connects a client to the scratch socket; closed when the test ends. */
export async function connectClient(t: Test, s: Scratch, msize?: number): Promise<Client> {
  const c = await Client.connect(s.sock, msize);
  t.teardown(() => c.close());
  return c;
}

/**
 * A fresh server on `s` and a client attached to its root as `uid` (the set-up most server tests start from); both
 * closed when the test ends.
 */
export async function attachedClient(
  t: Test,
  s: Scratch,
  o: { server?: Partial<GoferOptions>; msize?: number; uid?: number } = {},
): Promise<{ c: Client; root: number; server: GoferServer }> {
  const server = await startServer(t, s, o.server);
  const c = await connectClient(t, s, o.msize);
  const root = c.allocFid();
  await c.attach(root, o.uid);
  return { c, root, server };
}

/** The errno code a promise rejects with ("ENOENT"), or "resolved". */
export async function errCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}
