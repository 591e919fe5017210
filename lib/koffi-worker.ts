/**
 * The exit guard every Worker that loads koffi needs. The process must not end while such a Worker is starting:
 * its exit terminates the Worker then, koffi's module start-up throws into the terminating isolate, and Node
 * aborts the whole process (FATAL ERROR napi_throw; 8 of 60 exits 0–8 ms into the load, 0 of 60 with this wait).
 */
import type { Worker } from 'node:worker_threads';

/** How long the exit waits for a start-up (it takes tens of ms; a Worker that never ends it is let go). */
const START_MS = 10_000;

/** Start-ups not over: each Worker's shared words and the index it sets to 1 once its start-up is over. */
const booting = new Map<Int32Array, number>();
let guarded = false;

/** At exit, waits (at most START_MS in all) for every Worker still starting. */
function waitBooting(): void {
  const deadline = Date.now() + START_MS;
  for (const [ctl, at] of booting) {
    while (Atomics.load(ctl, at) === 0 && Date.now() < deadline) Atomics.wait(ctl, at, 0, 50);
  }
}

/**
 * Keeps the process's exit from ending `worker` before it sets `ctl[at]` to 1 (once its start-up is over,
 * whatever its outcome); the Worker's first message, error or exit also ends the hold.
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
