import type { Test } from 'tap';
import { UnixStream } from '../../lib/unixstream.ts';

/**
 * Turns UnixStream's yield cut off for the rest of `t`, for tests of what polling takes: on a machine busy with other
 * work any poll's `sched_yield` may run another process, and the cut would then stop every poll at once (the cut has
 * its own tests in test/lib/unixstream.test.ts).
 */
export function noYieldCut(t: Pick<Test, 'teardown'>): void {
  const was = UnixStream.yieldCutNs;
  UnixStream.yieldCutNs = 0n;
  t.teardown(() => {
    UnixStream.yieldCutNs = was;
  });
}
