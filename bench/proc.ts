/**
 * Child processes of the benchmark: every process it starts is tracked by pid and ended by pid (SIGTERM, then
 * SIGKILL), and every undo step (namespaces, sockets) is recorded, so that `cleanup()` leaves nothing behind after
 * a normal end, a failure or Ctrl-C.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unwind } from '../lib/undo.ts';

/** The outcome of a finished command. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** True when the command was ended for running past its time limit. */
  timedOut: boolean;
}

const children = new Set<ChildProcess>();
const undo: (() => void)[] = [];

/** Records an undo step, run in reverse order by cleanup(). */
export function onCleanup(fn: () => void): void {
  undo.push(fn);
}

/** Runs a command to its end without blocking the event loop; never rejects. */
export function runAsync(argv: readonly string[], timeoutMs = 60000, input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 1 << 26 },
      (err, stdout, stderr) => {
        children.delete(child);
        const e = err as (Error & { code?: unknown; killed?: boolean }) | null;
        const code = !e ? 0 : typeof e.code === 'number' ? e.code : 1;
        resolve({ code, stdout, stderr, timedOut: Boolean(e?.killed) });
      },
    );
    children.add(child);
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Runs `argv` inside network namespace `ns`. */
export function nsRunAsync(ns: string, argv: readonly string[], timeoutMs = 60000): Promise<RunResult> {
  return runAsync(['ip', 'netns', 'exec', ns, ...argv], timeoutMs);
}

/** A long-running child with its output collected. */
export interface Daemon {
  readonly child: ChildProcess;
  readonly pid: number;
  output(): string;
  /** Resolves once `pattern` appears in its stdout or stderr; rejects when it exits first or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<void>;
  /** Ends it by pid (SIGTERM, SIGKILL after `graceMs`) and waits for its exit. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a long-running child, tracked for cleanup. */
export function startDaemon(argv: readonly string[], env?: NodeJS.ProcessEnv): Daemon {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  children.add(child);
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString('utf8');
    if (out.length > 1 << 20) out = out.slice(-(1 << 19));
    for (const l of [...listeners]) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      children.delete(child);
      for (const l of [...listeners]) l();
      resolve();
    });
    child.once('error', () => {
      children.delete(child);
      resolve();
    });
  });
  return {
    child,
    pid: child.pid ?? -1,
    output: () => out,
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(out)) done(null);
          else if (child.exitCode !== null || child.signalCode !== null) {
            done(new Error(`${argv[0]} exited before it was ready: ${out.trim().slice(-400)}`));
          }
        };
        const timer = setTimeout(() => done(new Error(`${argv.join(' ')} not ready in ${timeoutMs} ms: ${out.trim().slice(-400)}`)), timeoutMs);
        const done = (err: Error | null) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (err) reject(err);
          else resolve();
        };
        listeners.add(check);
        check();
      });
    },
    async stop(graceMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Ends every tracked child (by pid) and runs every undo step; safe to call more than once. */
export function cleanup(): void {
  for (const c of [...children]) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
  unwind(undo, (e) => process.stderr.write(`bench: cleanup: ${e.message}\n`));
}

/** Whether an executable is on PATH. */
export function haveTool(name: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => d && existsSync(`${d}/${name}`));
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it is true or `timeoutMs` passes; resolves to the last answer. */
export async function waitUntil(probe: () => Promise<boolean> | boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (performance.now() > end) return false;
    await sleep(stepMs);
  }
}

/** Whether this module runs from its TypeScript source (a checkout, through tsx) rather than the compiled build. */
const FROM_SOURCE = import.meta.url.endsWith('.ts');

/**
 * The argv that runs our program `source` (a path relative to the package's top folder, as in the checkout:
 * "bench/peers/servers.ts") with this Node: the source through tsx in a checkout, the compiled file under dist/
 * in an installed package, where there is no tsx.
 */
export function nodeProgram(source: string): string[] {
  const top = fileURLToPath(new URL('..', import.meta.url));
  if (FROM_SOURCE) return [process.execPath, '--import', 'tsx', join(top, source)];
  return [process.execPath, join(top, source.replace(/\.ts$/, '.js'))];
}

/**
 * The argv that runs the `tsvisor` command: cli/tsvisor.js (the sources through tsx) in a checkout, the
 * compiled entry point in an installed package.
 */
export function tsvisorCommand(): string[] {
  const top = fileURLToPath(new URL('..', import.meta.url));
  return [process.execPath, join(top, FROM_SOURCE ? 'cli/tsvisor.js' : 'cli/bin.js')];
}
