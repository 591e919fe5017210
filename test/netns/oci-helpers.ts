// Helpers of the OCI runtime tests (test/netns/oci-*.test.ts): a busybox-static bundle in a temporary folder, the
// runtime driven as an engine's shim drives it (the front, or `node cli/tsvisor.js`, with `--root R --log L
// --log-format json CMD`), and the check that a container left nothing behind.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tap, { type Test } from 'tap';
import { frontPath } from '../../cli/oci/front.ts';
import { stopWarm } from '../../cli/oci/warm.ts';
import { CLI, ROOT, waitFor } from './run-helpers.ts';

/**
 * The runtime's executable and its first arguments: the front (cli/oci/native/oci-front.c) with the sources' CLI
 * behind it, as engines run it; with TSVISOR_OCI_TEST_ENTRY=node, the Node entry alone (`node cli/tsvisor.js`).
 */
export const RUNTIME: readonly string[] = process.env.TSVISOR_OCI_TEST_ENTRY === 'node' ? [process.execPath, CLI] : [frontPath({ cli: CLI })];

/** A bundle: its folder, its rootfs, and the runtime's --root and --log for it. */
export interface Bundle {
  dir: string;
  rootfs: string;
  root: string;
  log: string;
  /** config.json as written by `tsvisor spec`, edited by the test before `write()`. */
  config: Record<string, any>;
  write(): void;
}

const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));

/**
 * One --root for every bundle of a test file, as an engine has one: after a file's first create, its creates are
 * handed to the warm Sentry the one before left (cli/oci/warm.ts), which the end of the file stops.
 */
let sharedRoot: string | undefined;
function fileRoot(): string {
  if (sharedRoot) return sharedRoot;
  const root = mkdtempSync(join(tmpdir(), 'toa-root-'));
  sharedRoot = root;
  tap.teardown(async () => {
    await stopWarm(root);
    rmSync(root, { recursive: true, force: true });
  });
  return root;
}

/** config.json as `tsvisor spec` wrote it for this file's first bundle. */
let specText: string | undefined;

/** A fresh bundle with a busybox-static rootfs and `tsvisor spec`'s config (terminal off); removed at teardown. */
export function makeBundle(t: Test, edit?: (config: Record<string, any>) => void): Bundle {
  if (!BUSYBOX) throw new Error('busybox-static is not installed (.ci/install installs it)');
  const dir = mkdtempSync(join(tmpdir(), 'toa-bundle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, 'bin/busybox'));
  chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  execFileSync('chroot', [rootfs, '/bin/busybox', '--install', '-s', '/bin']);
  // `tsvisor spec` writes the same config.json every time: the file's first bundle gets it from spec, the rest a
  // copy (a Node start per bundle saved).
  if (specText === undefined) {
    execFileSync(process.execPath, [CLI, 'spec', '--bundle', dir], { cwd: ROOT });
    specText = readFileSync(join(dir, 'config.json'), 'utf8');
  } else writeFileSync(join(dir, 'config.json'), specText);
  const b: Bundle = {
    dir,
    rootfs,
    root: fileRoot(),
    log: join(dir, 'log.json'),
    config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    write: () => writeFileSync(join(dir, 'config.json'), JSON.stringify(b.config, null, 1)),
  };
  b.config.process.terminal = false;
  edit?.(b.config);
  b.write();
  return b;
}

/** What a runtime call did. */
export interface Call {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The runtime's arguments after its executable, with the shim's global flags. */
function argv(b: Bundle, args: string[]): string[] {
  return [...RUNTIME.slice(1), '--root', b.root, '--log', b.log, '--log-format', 'json', ...args];
}

/** Runs one runtime command to its end. */
export function oci(b: Bundle, args: string[], timeoutMs = 60000): Promise<Call> {
  const child = spawn(RUNTIME[0]!, argv(b, args), { cwd: b.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  return collect(child, timeoutMs);
}

function collect(child: ChildProcess, timeoutMs: number): Promise<Call> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.on('exit', (code) => {
      clearTimeout(timer);
      // Output still in the pipe comes with 'close'; a container holding the pipe keeps it open: do not wait.
      setImmediate(() => resolve({ code, stdout, stderr }));
    });
  });
}

/** A `create` whose container's stdout and stderr are the pipes the test reads, as a shim's are. */
export interface Created {
  call: Call;
  /** Everything the container wrote, once every holder of the pipes closed them. */
  output: Promise<{ stdout: string; stderr: string }>;
  /** What the container has written to stdout so far. */
  stdoutSoFar(): string;
}

/** `create --bundle B --pid-file B/pid ID`. */
export async function create(b: Bundle, id: string, extra: string[] = [], globals: string[] = []): Promise<Created> {
  const child = spawn(RUNTIME[0]!, argv(b, [...globals, 'create', '--bundle', b.dir, '--pid-file', join(b.dir, `${id}.pid`), ...extra, id]), {
    cwd: b.dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const output = new Promise<{ stdout: string; stderr: string }>((resolve) => child.on('close', () => resolve({ stdout, stderr })));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { call: { code, stdout, stderr }, output, stdoutSoFar: () => stdout };
}

/** `state ID` as an object (undefined when the call fails). */
export async function state(b: Bundle, id: string): Promise<Record<string, any> | undefined> {
  const r = await oci(b, ['state', id]);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

/** The runtime's own record of a container (state.json, with tsvisor's fields). */
export function rawState(b: Bundle, id: string): Record<string, any> | undefined {
  try {
    return JSON.parse(readFileSync(join(b.root, id, 'state.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** Waits until `state ID` says `status`. */
export async function waitStatus(b: Bundle, id: string, status: string, ms = 30000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if ((await state(b, id))?.status === status) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** The last `msg` of the --log JSON file. */
export function lastLogMessage(b: Bundle): string | undefined {
  if (!existsSync(b.log)) return undefined;
  const lines = readFileSync(b.log, 'utf8').trim().split('\n').filter(Boolean);
  return lines.length ? (JSON.parse(lines[lines.length - 1]!) as { msg: string }).msg : undefined;
}

/** The network namespaces of run id `rid` that exist now. */
export function leftNamespaces(rid: string | undefined): string[] {
  if (!rid) return [];
  try {
    return readdirSync('/var/run/netns').filter((n) => n === `tsv-${rid}` || n === `tsv-${rid}-app`);
  } catch {
    return [];
  }
}

/** Deletes every container under the bundle's --root, killing what runs (teardown). */
export async function cleanUp(b: Bundle): Promise<void> {
  if (!existsSync(b.root)) return;
  for (const id of readdirSync(b.root)) if (!id.startsWith('.')) await oci(b, ['delete', '--force', id]);
}

export { waitFor };
