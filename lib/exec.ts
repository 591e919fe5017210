/** Running host tools (iproute2, ethtool, sysctl) synchronously, with errors that say what failed. */
import { type ChildProcess, execFileSync } from 'node:child_process';

/** Runs a command and returns its stdout; on failure the error carries the command line and its stderr. */
export function run(argv: readonly string[], input?: string): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${argv.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

/** Runs a command inside a named network namespace (`ip netns exec`). */
export function nsRun(netns: string, argv: readonly string[]): string {
  return run(['ip', 'netns', 'exec', netns, ...argv]);
}

/** What a spawned child printed and how it ended. */
export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** How long output may stay open after the process exited before collectChild stops waiting for it. */
const EXIT_GRACE_MS = 5000;

/**
 * Collects a spawned child's output and exit without blocking the event loop: SIGKILL after `timeoutMs`, and a
 * spawn failure ends up in `stderr` (with a null code) instead of an unhandled 'error' event.
 */
export function collectChild(child: ChildProcess, timeoutMs: number): Promise<ChildResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  let lingers: NodeJS.Timeout | undefined;
  return new Promise((resolve) => {
    const done = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      clearTimeout(lingers);
      resolve({ code, signal, stdout, stderr });
    };
    child.on('error', (err) => {
      stderr += String(err);
    });
    child.on('close', done);
    // A process the child left behind can hold its output open for ever: 'close' then never comes. Once the
    // child itself exited, what it wrote is in within a few seconds; the rest is the leftover's, and the caller
    // hears of it as output it did not expect rather than as a hang.
    const exited = (code: number | null, signal: NodeJS.Signals | null) => {
      lingers = setTimeout(() => {
        stderr += `\n(the output stayed open ${EXIT_GRACE_MS} ms after the process exited: a process it started holds it)`;
        child.stdout?.destroy();
        child.stderr?.destroy();
        done(code, signal);
      }, EXIT_GRACE_MS);
    };
    // A child that ended before the call: its 'exit' (and maybe 'close') came already and will not come again.
    if (child.exitCode !== null || child.signalCode !== null) {
      const open = [child.stdout, child.stderr].some((s) => s && !s.destroyed && !s.readableEnded);
      if (open) exited(child.exitCode, child.signalCode);
      else done(child.exitCode, child.signalCode);
    } else child.once('exit', exited);
  });
}
