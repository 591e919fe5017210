// Helpers of the services' netns tests (test/netns/services-*.test.ts): `tsvisor serve` as a child process on a
// veth pair of our own, and Linux tools in the peer namespace run asynchronously (the stack answers on the event
// loop of another process, but the test's own loop must stay free for timers and teardown).
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { type VethPair, type VethPairOptions, createVethPair } from '../../lib/testnet.ts';
import { HANG_MS } from '../lib/wait.ts';
import { CLI } from '../cli-under-test.ts';

export { CLI };

/**
 * A veth pair from `opts`, a temporary folder and `tsvisor serve` on end A with `serveArgs` (after --netns/--dev),
 * all removed in `t`'s teardown, also when a step fails.
 */
export async function serveOnVeth(
  t: Test,
  opts: VethPairOptions,
  serveArgs: string[],
): Promise<{ pair: VethPair; dir: string; child: ChildProcess }> {
  const pair = createVethPair(opts);
  const dir = mkdtempSync(join(tmpdir(), `${opts.prefix}-`));
  let child: ChildProcess | undefined;
  t.teardown(async () => {
    if (child) await stop(child);
    pair.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  child = (await startServe(['--netns', pair.nsA, '--dev', pair.devA, ...serveArgs])).child;
  return { pair, dir, child };
}

/** Starts `tsvisor serve` with `args`; resolves once it printed `tsvisor: ready` (rejects after a hang bound). */
export function startServe(args: string[], timeoutMs = HANG_MS): Promise<{ child: ChildProcess; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`serve not ready in ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('tsvisor: ready\n')) {
        clearTimeout(timer);
        resolve({ child, stderr: () => err });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before ready: ${err}`));
    });
  });
}

/** SIGTERMs a child we started and waits for it (SIGKILL after a hang bound: then it resolves to null). */
export function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    const kill = setTimeout(() => child.kill('SIGKILL'), HANG_MS);
    child.once('exit', (code) => {
      clearTimeout(kill);
      resolve(code);
    });
    child.kill('SIGTERM');
  });
}

/** What a finished command did; stdout as a SHA-256 and length so that 100 MB never sit in memory. */
export interface Ran {
  code: number | null;
  stdout: Buffer;
  stdoutSha: string;
  stdoutLength: number;
  stderr: string;
}

/** Options of nsExec. */
export interface NsExecOptions {
  /** Bytes written to stdin, which is then closed (unless `untilBytes` is given: then it stays open). */
  input?: Buffer | string;
  /** Killed (SIGKILL) after this long; default a hang bound. */
  timeoutMs?: number;
  /** Stdout bytes kept in `stdout` (default 1 MiB); all of it is hashed. */
  keep?: number;
  /**
   * Ends the command (SIGTERM) once this many stdout bytes arrived: for a tool that would otherwise leave only
   * on an idle timeout (nc without -N, chargen), so the test waits for the data, not for a clock.
   */
  untilBytes?: number;
}

/**
 * Runs `argv` in namespace `ns` asynchronously, feeding `input` (bytes, or a file streamed by the tool itself);
 * keeps at most `keep` bytes of stdout but hashes all of it.
 */
export function nsExec(ns: string, argv: string[], opts: NsExecOptions = {}): Promise<Ran> {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
  const hash = createHash('sha256');
  const kept: Buffer[] = [];
  let keptLen = 0;
  let length = 0;
  let stderr = '';
  const keep = opts.keep ?? 1 << 20;
  child.stdout!.on('data', (d: Buffer) => {
    hash.update(d);
    length += d.length;
    if (keptLen < keep) {
      kept.push(d);
      keptLen += d.length;
    }
    if (opts.untilBytes !== undefined && length >= opts.untilBytes) child.kill('SIGTERM');
  });
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdin!.on('error', () => {});
  if (opts.untilBytes === undefined) child.stdin!.end(opts.input);
  else if (opts.input !== undefined) child.stdin!.write(opts.input);
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? HANG_MS);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(kept), stdoutSha: hash.digest('hex'), stdoutLength: length, stderr });
    });
  });
}

/** The counters of a serve running on `dev` in `ns`, through `tsvisor stats --json`. */
export async function serveStats(ns: string, dev: string): Promise<Record<string, number>> {
  const r = await nsExec(ns, [process.execPath, CLI, 'stats', '--netns', ns, '--dev', dev, '--json'], { timeoutMs: HANG_MS });
  if (r.code !== 0) throw new Error(`tsvisor stats failed: ${r.stderr}`);
  return JSON.parse(r.stdout.toString()) as Record<string, number>;
}

/** SHA-256 of n bytes where byte i is i mod 256 (what /bytes/N serves). */
export function bytesDigest(n: number): string {
  const chunk = Buffer.from(Uint8Array.from({ length: 65536 }, (_, i) => i & 0xff));
  const h = createHash('sha256');
  let left = n;
  while (left > 0) {
    const k = Math.min(left, chunk.length);
    h.update(k === chunk.length ? chunk : chunk.subarray(0, k));
    left -= k;
  }
  return h.digest('hex');
}

/** A file of `n` random bytes in `dir`, and its SHA-256. */
export async function randomFile(dir: string, n: number): Promise<{ path: string; sha: string }> {
  const { open } = await import('node:fs/promises');
  const { randomBytes } = await import('node:crypto');
  const path = join(dir, `upload-${n}.bin`);
  const f = await open(path, 'w');
  const h = createHash('sha256');
  try {
    for (let left = n; left > 0; ) {
      const b = randomBytes(Math.min(left, 1 << 20));
      h.update(b);
      await f.write(b);
      left -= b.length;
    }
  } finally {
    await f.close();
  }
  return { path, sha: h.digest('hex') };
}
