/**
 * The legitimate client of the syn-flood row: `count` connections to an echo service, `parallel` at a time, each
 * sending its own pseudo-random bytes and succeeding only when exactly those bytes come back, followed by the
 * server's FIN, within `timeoutMs` of starting to connect. Takes node:net's `connect` (or tsvisor/net's, for the
 * in-memory test), so the same code counts in the bench and in its test.
 */
import type { Duplex } from 'node:stream';

/** What the check needs of node:net's connect. */
export type Connect = (opts: { host: string; port: number }) => Duplex & { setNoDelay?(on?: boolean): unknown };

/** Settings of one check. */
export interface EchoCheckOptions {
  host: string;
  port: number;
  /** Connections in all. */
  count: number;
  /** Connections open at once. */
  parallel: number;
  /** A connection that has not finished this long after it started fails ("timeout"). */
  timeoutMs: number;
  /** Seeds the payloads (sizes 1..4096 bytes). */
  seed?: number;
  /**
   * The check as a whole ends this long after it started (default: never): connections still open fail as
   * "timeout", those not yet started as "not started", so a server that stopped answering cannot hold it for
   * count / parallel × timeoutMs.
   */
  deadlineMs?: number;
}

/** The outcome: every connection is counted once, as ok or under the reason it failed. */
export interface EchoCheckResult {
  ok: number;
  failed: number;
  /** Failures by reason: an error code (ECONNRESET, ECONNREFUSED…), "timeout", "mismatch" or "short". */
  reasons: Record<string, number>;
  /** Milliseconds from connect() to the last echoed byte, over the successful connections. */
  p50_ms: number;
  max_ms: number;
}

/** Payload of connection `i`: 1..4096 bytes from a small LCG, different for every connection. */
export function payloadFor(seed: number, i: number): Buffer {
  let x = (seed * 2654435761 + i * 40503 + 1) >>> 0;
  const next = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
  const b = Buffer.allocUnsafe(1 + (next() % 4096));
  for (let k = 0; k < b.length; k++) b[k] = next() >>> 24;
  return b;
}

/** Runs the check; resolves once every connection has settled. */
export function echoCheck(connect: Connect, o: EchoCheckOptions): Promise<EchoCheckResult> {
  const seed = o.seed ?? 1;
  const reasons: Record<string, number> = {};
  const times: number[] = [];
  let started = 0;
  let settled = 0;
  const open = new Set<(reason: string) => void>();
  let deadline: ReturnType<typeof setTimeout> | undefined;
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(deadline);
      times.sort((a, b) => a - b);
      const ok = times.length;
      resolve({
        ok,
        failed: o.count - ok,
        reasons,
        p50_ms: ok ? round(times[Math.floor(ok / 2)]!) : 0,
        max_ms: ok ? round(times[ok - 1]!) : 0,
      });
    };
    const one = (i: number) => {
      const want = payloadFor(seed, i);
      const t0 = performance.now();
      const got: Buffer[] = [];
      let have = 0;
      let done = false;
      const s = connect({ host: o.host, port: o.port });
      const settle = (reason: string | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        open.delete(settle);
        if (reason === null) times.push(performance.now() - t0);
        else reasons[reason] = (reasons[reason] ?? 0) + 1;
        s.destroy();
        settled++;
        if (settled === o.count) finish();
        else if (started < o.count) one(started++);
      };
      const timer = setTimeout(() => settle('timeout'), o.timeoutMs);
      open.add(settle);
      s.on('connect', () => s.end(want));
      s.on('data', (d: Buffer) => {
        have += d.length;
        if (have > want.length) settle('mismatch');
        else got.push(d);
      });
      s.on('end', () => {
        if (have < want.length) settle('short');
        else settle(Buffer.concat(got).equals(want) ? null : 'mismatch');
      });
      s.on('error', (e: Error & { code?: string }) => settle(e.code ?? 'error'));
    };
    if (o.count <= 0) {
      finish();
      return;
    }
    if (o.deadlineMs !== undefined) {
      deadline = setTimeout(() => {
        const left = o.count - started;
        started = o.count;
        if (left > 0) reasons['not started'] = left;
        settled += left;
        if (open.size === 0) finish();
        for (const settle of [...open]) settle('timeout');
      }, o.deadlineMs);
    }
    while (started < Math.min(o.parallel, o.count)) one(started++);
  });
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
