/**
 * OCI hooks: each program runs with the container's state JSON on stdin, its own args (args[0] is its argv[0])
 * and env, and is killed at its timeout. A failure of any but poststop fails the step that ran it.
 */
import { spawn } from 'node:child_process';
import type { Hook, Hooks } from './spec.ts';

/** Spawns synchronously inside some context (the Sentry: the runtime's own network namespace). */
export type SpawnIn = <T>(fn: () => T) => T;

/** Runs one hook; resolves to an error message, or undefined when it succeeded. */
export function runHook(h: Hook, state: Record<string, unknown>, spawnIn: SpawnIn = (fn) => fn()): Promise<string | undefined> {
  return new Promise((resolve) => {
    const env: Record<string, string> = {};
    for (const kv of h.env ?? []) {
      const i = kv.indexOf('=');
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    let child;
    try {
      child = spawnIn(() => spawn(h.path, (h.args ?? [h.path]).slice(1), {
        argv0: h.args?.[0] ?? h.path,
        env,
        stdio: ['pipe', 'ignore', 'pipe'],
      }));
    } catch (e) {
      return resolve(`${h.path}: ${(e as Error).message}`);
    }
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    child.stdin!.on('error', () => {});
    child.stdin!.end(JSON.stringify(state));
    const timer = h.timeout && h.timeout > 0 ? setTimeout(() => child.kill('SIGKILL'), h.timeout * 1000) : undefined;
    let timedOut = false;
    if (timer) timer.unref();
    child.once('error', (e) => {
      if (timer) clearTimeout(timer);
      resolve(`${h.path}: ${e.message}`);
    });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      timedOut = signal === 'SIGKILL' && h.timeout !== undefined;
      if (code === 0) return resolve(undefined);
      const why = timedOut ? `timed out after ${h.timeout} s` : code !== null ? `exit status ${code}` : `signal ${signal}`;
      resolve(`${h.path} failed (${why})${stderr.trim() ? `: ${stderr.trim().split('\n').pop()}` : ''}`);
    });
  });
}

/** Runs the hooks of `kind` in order; the first failure's message, or undefined. */
export async function runHooks(hooks: Hooks | undefined, kind: keyof Hooks, state: Record<string, unknown>, spawnIn?: SpawnIn): Promise<string | undefined> {
  for (const h of hooks?.[kind] ?? []) {
    const err = await runHook(h, state, spawnIn);
    if (err) return `${kind} hook ${err}`;
  }
  return undefined;
}
