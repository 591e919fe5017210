/**
 * The main thread's side of `tsvisor serve --threads N`: starts N shard workers (cli/serve-shard.ts), opens their
 * packet sockets one after another (the kernel picks a fanout member by its position in the group, and a flow's
 * small frames and super-frames, in two groups, must reach the same shard), starts their stacks once all joined
 * (a handshake begun while fewer were members would move shards halfway), relays the messages services send
 * between shards, sums the shards' counters, and stops them. What it does not do: touch the interface. The
 * takeover and its restore stay with the main thread (cli/serve.ts), so a kill -9 leaves the same record as with
 * one thread, and the workers die with the process.
 */
import { Worker } from 'node:worker_threads';
import type { FromShard, ShardConfig, ToShard } from './serve-shard.ts';

// How long a stopping shard may take to close its sockets before it is terminated.
const STOP_GRACE_MS = 3000;
// How long a shard may take to answer for its counters.
const COUNTERS_WAIT_MS = 2000;

/** The running shards. */
export interface Shards {
  readonly count: number;
  /** The counters of every shard summed, and each shard's non-zero ones as `shard.<i>.<name>`. */
  counters(): Promise<Record<string, number>>;
  /** Stops every shard (sockets closed, services ended); resolves when they are gone. Idempotent. */
  stop(): Promise<void>;
  /** Ends the workers at once, for a process that is exiting. */
  terminate(): void;
}

/**
 * A Worker running cli/serve-shard: from the sources through tsx in a checkout (a worker does not inherit the
 * main thread's loader), the compiled file in an installed package.
 */
function shardWorker(data: ShardConfig): Worker {
  const url = new URL(import.meta.url.endsWith('.ts') ? './serve-shard.ts' : './serve-shard.js', import.meta.url);
  if (!import.meta.url.endsWith('.ts')) return new Worker(url, { workerData: data });
  const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData: data });
}

/**
 * Starts `configs.length` shards and resolves once every one is ready (stack up, addresses past DAD, services
 * listening); rejects with the first shard's error, with every shard stopped. `say` hears the shards' notes.
 */
export async function startShards(configs: ShardConfig[], say: (line: string) => void): Promise<Shards> {
  const workers = configs.map((c) => shardWorker(c));
  const send = (i: number, m: ToShard) => workers[i]!.postMessage(m);
  const waiting = new Map<number, (counters: Record<string, number>) => void>();
  let nextId = 1;
  let failed: ((e: Error) => void) | null = null;
  const stopped = workers.map(() => false);
  let done = false;
  const opened: (() => void)[] = [];
  const ready: (() => void)[] = [];

  workers.forEach((w, i) => {
    w.on('message', (m: FromShard) => {
      switch (m.t) {
        case 'opened':
          opened[i]?.();
          return;
        case 'ready':
          ready[i]?.();
          return;
        case 'error':
          failed?.(new Error(configs.length > 1 ? `shard ${i}: ${m.message}` : m.message));
          return;
        case 'say':
          say(m.line);
          return;
        case 'counters':
          waiting.get(m.id)?.(m.counters);
          return;
        case 'stopped':
          stopped[i] = true;
          return;
        case 'bus':
          for (let j = 0; j < workers.length; j++) {
            if (j === i || (m.to !== 'others' && m.to !== j) || stopped[j]) continue;
            send(j, { t: 'bus', service: m.service, from: i, msg: m.msg });
          }
          return;
      }
    });
    w.on('error', (e) => failed?.(new Error(`shard ${i}: ${e.message}`)));
    w.on('exit', () => {
      stopped[i] = true;
      if (!done) failed?.(new Error(`shard ${i} exited`));
    });
  });

  const terminate = () => {
    done = true;
    for (const w of workers) void w.terminate();
  };
  const stop = async () => {
    if (done) return;
    done = true;
    for (let i = 0; i < workers.length; i++) if (!stopped[i]) send(i, { t: 'stop' });
    const exits = workers.map((w) => new Promise<void>((resolve) => {
      w.once('exit', () => resolve());
    }));
    const grace = new Promise<void>((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref());
    await Promise.race([Promise.all(exits), grace]);
    for (const w of workers) void w.terminate();
  };

  try {
    const failure = new Promise<never>((_, reject) => (failed = reject));
    failure.catch(() => {});
    const allReady = workers.map((_, i) => new Promise<void>((resolve) => (ready[i] = resolve)));
    for (let i = 0; i < workers.length; i++) {
      const isOpen = new Promise<void>((resolve) => (opened[i] = resolve));
      send(i, { t: 'open' });
      await Promise.race([isOpen, failure]);
    }
    for (let i = 0; i < workers.length; i++) send(i, { t: 'start' });
    await Promise.race([Promise.all(allReady), failure]);
    // From here a shard that dies takes serve down with it: its flows would have nowhere to go.
    failed = (e) => {
      say(`${e.message}: stopping`);
      process.kill(process.pid, 'SIGTERM');
    };
  } catch (e) {
    await stop();
    throw e;
  }

  return {
    count: workers.length,
    async counters() {
      const per = await Promise.all(workers.map((_, i) => new Promise<Record<string, number>>((resolve) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          resolve({});
        }, COUNTERS_WAIT_MS);
        waiting.set(id, (c) => {
          clearTimeout(timer);
          waiting.delete(id);
          resolve(c);
        });
        if (stopped[i]) resolve({});
        else send(i, { t: 'counters', id });
      })));
      return sumCounters(per);
    },
    stop,
    terminate,
  };
}

/** The shards' counters summed by name, then each shard's non-zero ones as `shard.<i>.<name>`. */
export function sumCounters(per: readonly Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of per) for (const [k, v] of Object.entries(c)) out[k] = (out[k] ?? 0) + v;
  per.forEach((c, i) => {
    for (const [k, v] of Object.entries(c)) if (v !== 0) out[`shard.${i}.${k}`] = v;
  });
  return out;
}
