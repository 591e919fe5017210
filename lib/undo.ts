/**
 * Undo steps, the newest first: what serve, run, a serve shard and the bench push as they make things, run once
 * when they stop or fail.
 */

/**
 * Runs and removes every step of `undo`, last pushed first; a step that throws is handed to `report` and the
 * others still run (one failure to restore must not leave the rest unrestored).
 */
export function unwind(undo: (() => void)[], report: (e: Error) => void): void {
  while (undo.length) {
    try {
      undo.pop()!();
    } catch (e) {
      report(e instanceof Error ? e : new Error(String(e)));
    }
  }
}
