// Helpers of the `tsvisor run` tests (test/netns/run-*.test.ts): a caller namespace of the test's own (prefix tsb)
// so that the veth `run` makes lands there and not in the machine's netns, `tsvisor run` started inside it, and
// the check that a run left nothing behind.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { type ChildResult, collectChild } from '../../lib/exec.ts';
import { netnsExists } from '../../lib/netns.ts';
import { deleteNetns, run } from '../../lib/testnet.ts';
import { CLI } from '../cli-under-test.ts';

export { CLI };
export const ROOT = join(import.meta.dirname, '../..');

/** A fresh namespace `tsb-<name>` with lo up, removed (with everything in it) in `t`'s teardown. */
export function callerNs(t: Test, name: string): string {
  const ns = `tsb-${name}`;
  deleteNetns(ns);
  run(['ip', 'netns', 'add', ns]);
  run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  t.teardown(() => deleteNetns(ns));
  return ns;
}

/** What a finished `tsvisor run` did. */
export type RunResult = ChildResult;

/** Spawns `argv` with the process's netns switched to `ns` (nsenter execs in place: the pid is the program's). */
export function spawnIn(ns: string | undefined, argv: string[], opts: { env?: NodeJS.ProcessEnv; stdio?: 'pipe' | 'ignore' } = {}): ChildProcess {
  const full = ns ? ['nsenter', `--net=/var/run/netns/${ns}`, ...argv] : argv;
  return spawn(full[0]!, full.slice(1), { stdio: ['ignore', opts.stdio ?? 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: ROOT });
}

/** Runs `tsvisor run ARGS` inside `ns` (or the test's own netns) to the end; killed after `timeoutMs`. */
export function tsvisorRun(ns: string | undefined, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; prefix?: string[] } = {}): Promise<RunResult> {
  const child = spawnIn(ns, [...(opts.prefix ?? []), process.execPath, CLI, 'run', ...args], { env: opts.env });
  return collect(child, opts.timeoutMs ?? 60000);
}

/** Collects a child's output and exit. */
export function collect(child: ChildProcess, timeoutMs = 60000): Promise<RunResult> {
  return collectChild(child, timeoutMs);
}

/** The run id a `--debug-log FILE` names ("run <id>: ..."), or undefined when the run never got one. */
export function logId(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  return /\brun ([0-9a-f]+):/.exec(readFileSync(file, 'utf8'))?.[1];
}

/** What is left of run `id`: its namespaces, the caller's veth end and its nft guard table in `caller`, mounts naming it. */
export function leftovers(id: string, caller?: string): string[] {
  const left: string[] = [];
  for (const ns of [`tsv-${id}`, `tsv-${id}-app`]) if (netnsExists(ns)) left.push(`netns ${ns}`);
  try {
    run(['ip', ...(caller ? ['-n', caller] : []), 'link', 'show', 'dev', `tsv-${id}`]);
    left.push(`link tsv-${id}`);
  } catch {
    // gone
  }
  try {
    run([...(caller ? ['ip', 'netns', 'exec', caller] : []), 'nft', 'list', 'table', 'inet', `tsvisor-${id}`]);
    left.push(`nft table inet tsvisor-${id}`);
  } catch {
    // gone
  }
  // A named netns is itself a mount; anything else mounted under the run's name is a leftover.
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const point = line.split(' ')[4];
    if (!point?.includes(`tsv-${id}`)) continue;
    if (left.includes(`netns ${point.split('/').pop()}`)) continue;
    left.push(`mount ${point}`);
  }
  return left;
}

/** Polls `cond` every 20 ms until it holds or `ms` pass; resolves to whether it held. */
export async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (cond()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The SHA-256 (hex) of what curl fetches from `url` inside namespace `ns`, asked up to 150 times 100 ms apart until
 * it is `sha` (a sandboxed server may still be starting); the last answer either way.
 */
export async function fetchedSha256(ns: string, url: string, sha: string): Promise<string> {
  let got = '';
  for (let i = 0; i < 150 && got !== sha; i++) {
    const r = await collect(spawnIn(ns, ['/bin/sh', '-c', `curl -sS -m 20 ${url} | sha256sum`]));
    got = r.stdout.split(' ')[0]!;
    if (got !== sha) await new Promise((r) => setTimeout(r, 100));
  }
  return got;
}
