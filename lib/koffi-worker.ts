/**
 * The exit guard every Worker that loads koffi needs. The process must not end while such a Worker is loading koffi:
 * its exit terminates the Worker then, koffi's module start-up throws into the terminating isolate, and Node
 * aborts the whole process (FATAL ERROR napi_throw; 8 of 60 exits 0–8 ms into the load, 0 of 60 with this wait).
 *
 * The guard and the Worker share one word (its boot word): BOOT_WAITING while the Worker has not begun its load,
 * BOOT_LOADING while koffi loads, BOOT_DONE once the load is over whatever its outcome, BOOT_CANCELLED when the exit
 * came first. The Worker begins its load only by turning WAITING into LOADING (`BOOT_GATE`), the exit only waits for
 * a LOADING word and turns a WAITING one into CANCELLED: a program that ends before its Sentry's Worker has even
 * booted (Node's start of a Worker is ~40 ms here, koffi's load ~8) no longer waits that start out at exit.
 */
import type { Worker } from 'node:worker_threads';

/** The Worker has not begun to load koffi. */
export const BOOT_WAITING = 0;
/** Its load is over (whatever the outcome). */
export const BOOT_DONE = 1;
/** koffi is loading in it. */
export const BOOT_LOADING = 2;
/** The process's exit came first: the Worker must not load koffi. */
export const BOOT_CANCELLED = 3;

/**
 * The condition a Worker's source puts its koffi load under, for the boot word `ctl[at]` (ctl the Worker's Int32Array
 * over the shared words): true when the Worker may load, false when the exit has claimed the word.
 */
export function bootGate(ctl: string, at: number): string {
  return `Atomics.compareExchange(${ctl}, ${at}, ${BOOT_WAITING}, ${BOOT_LOADING}) === ${BOOT_WAITING}`;
}

/** How long the exit waits for a start-up (it takes tens of ms; a Worker that never ends it is let go). */
const START_MS = 10_000;

/** Start-ups not over: each Worker's shared words and the index of its boot word. */
const booting = new Map<Int32Array, number>();
let guarded = false;

/** At exit, waits (at most START_MS in all) for every Worker loading koffi, and cancels those not yet loading. */
function waitBooting(): void {
  const deadline = Date.now() + START_MS;
  for (const [ctl, at] of booting) {
    if (Atomics.compareExchange(ctl, at, BOOT_WAITING, BOOT_CANCELLED) === BOOT_WAITING) continue;
    while (Atomics.load(ctl, at) === BOOT_LOADING && Date.now() < deadline) Atomics.wait(ctl, at, BOOT_LOADING, 50);
  }
}

/**
 * Keeps the process's exit from ending `worker` while it loads koffi (`ctl[at]` its boot word, see above); the
 * Worker's first message, error or exit also ends the hold.
 */
export function holdExitWhileBooting(ctl: Int32Array, at: number, worker: Worker): Promise<void> {
  booting.set(ctl, at);
  if (!guarded) {
    guarded = true;
    process.on('exit', waitBooting);
  }
  return new Promise((resolve) => {
    const done = () => {
      booting.delete(ctl);
      resolve();
    };
    worker.once('message', done);
    worker.once('error', done);
    worker.once('exit', done);
  });
}
