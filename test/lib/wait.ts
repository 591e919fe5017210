/**
 * Waiting in tests for something a real process or the host does. A test waits for the event it needs, never
 * for a fixed time, and its bound is one only a hang reaches: on a loaded two-core machine a step that takes
 * milliseconds when idle can take seconds, and a red run from load alone stops good work from landing.
 */
import { execFileSync } from 'node:child_process';

/** How long a test waits for an event before calling it a hang. */
export const HANG_MS = 60_000;

/** Polls `cond` until it holds; throws naming `what` after `ms` (a hang bound, not a speed requirement). */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Waits until a socket of `proto` listens on `port` in namespace `netns` (a server just spawned is ready). */
export async function waitListening(netns: string, port: number, proto: 'tcp' | 'udp' = 'tcp'): Promise<void> {
  const flags = proto === 'tcp' ? '-Hltn' : '-Hlun';
  const listening = () => {
    const out = execFileSync('ip', ['netns', 'exec', netns, 'ss', flags, `sport = :${port}`], { encoding: 'utf8' });
    return out.trim().length > 0;
  };
  const end = Date.now() + HANG_MS;
  while (!listening()) {
    if (Date.now() > end) throw new Error(`timed out after ${HANG_MS} ms waiting for a ${proto} listener on port ${port} in ${netns}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `p`'s outcome, or a rejection naming `what` when it has not settled after `ms`; the timer never outlives it. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, bound]).finally(() => clearTimeout(timer));
}
