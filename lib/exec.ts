/** Running host tools (iproute2, ethtool, sysctl) synchronously, with errors that say what failed. */
import { execFileSync } from 'node:child_process';

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
