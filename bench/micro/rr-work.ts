/**
 * Counts the work one request/response exchange costs the serving stack, which machine load does not change:
 * frames each way, clock reads, timers scheduled and cancelled, ticks and microtasks queued (both stacks and
 * node:http), and (with `--http`) the same through node:http on tsvisor/net. Two stacks over an in-memory channel on a virtual clock; the client sends a 100-byte request, the
 * server answers 500 bytes, 0.05 ms apart (a veth's round trip), on `CONNS` connections taking turns.
 * Run: `node --import tsx bench/micro/rr-work.ts [--http] [--deferred] [--conns N] [EXCHANGES]`.
 */
import http from 'node:http';
import { PerformanceObserver } from 'node:perf_hooks';
import { HelpRequested, UsageError, intOption, parseArgs } from '../../cli/args.ts';
import { parseAddress } from '../../netstack/addr.ts';
import { bindNet } from '../../netstack/adapter/net.ts';
import { Err, NetError } from '../../netstack/errors.ts';
import type { Endpoint } from '../../netstack/socket.ts';
import { countedStacks } from './counted.ts';

const USAGE = 'usage: node --import tsx bench/micro/rr-work.ts [--http] [--deferred] [--conns N] [EXCHANGES]\n';

/** The command line, checked before any work: --help prints the usage; a mistake is one line and status 2. */
function options(): { httpMode: boolean; countDeferred: boolean; conns: number; exchanges: number } {
  try {
    const { options: o, positional } = parseArgs(process.argv.slice(2), { http: {}, deferred: {}, conns: { value: true } }, 1);
    const count = positional[0];
    if (count !== undefined && !/^\d+$/.test(count)) throw new UsageError(`EXCHANGES: '${count}' is not a whole number`);
    return {
      httpMode: o.http === true,
      countDeferred: o.deferred === true,
      // Connections taking turns: each round delivers one request from every one at once.
      conns: o.conns === undefined ? 32 : intOption('conns', o.conns as string, 1, 100_000),
      exchanges: count === undefined ? 200000 : Number(count),
    };
  } catch (e) {
    if (e instanceof HelpRequested) {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    process.stderr.write(`bench/micro/rr-work.ts: ${(e as Error).message} (--help lists the options)\n`);
    process.exit(2);
  }
}
const { httpMode, countDeferred, conns: CONNS, exchanges } = options();
/** Counts process.nextTick and queueMicrotask calls (the deferred steps an exchange costs); `--deferred` only, as counting costs CPU. */
const deferred = { ticks: 0, microtasks: 0 };
if (countDeferred) {
  const realNextTick = process.nextTick;
  const realQueueMicrotask = globalThis.queueMicrotask;
  process.nextTick = ((fn: (...a: unknown[]) => void, ...a: unknown[]) => {
    deferred.ticks++;
    realNextTick(fn, ...a);
  }) as typeof process.nextTick;
  globalThis.queueMicrotask = (fn) => {
    deferred.microtasks++;
    realQueueMicrotask(fn);
  };
}

const REQUEST = new Uint8Array(100).fill(0x61);
const RESPONSE = new Uint8Array(500).fill(0x62);

const { clock, counting, client, server } = countedStacks();

/** Lets microtasks and immediates (the adapter's and node:http's) run, then moves the virtual clock on. */
async function tick(ms: number): Promise<void> {
  await new Promise((r) => setImmediate(r));
  clock.advance(ms);
}

function connectAll(): Endpoint[] {
  const eps: Endpoint[] = [];
  for (let i = 0; i < CONNS; i++) {
    const c = client.socket(4, 'stream') as Endpoint;
    if (c.connect({ address: parseAddress('198.18.0.2')!, port: 80 }) !== Err.ConnectStarted) throw new Error('connect');
    eps.push(c);
  }
  return eps;
}

async function run(): Promise<void> {
  let serverEps: Endpoint[] = [];
  let closeServer = () => {};
  if (httpMode) {
    const net = bindNet(server);
    const web = http.createServer({ requestTimeout: 0 }, (req, res) => {
      req.resume();
      res.writeHead(200, ['content-type', 'text/plain', 'content-length', String(RESPONSE.length)]);
      res.end(Buffer.from(RESPONSE));
    });
    const srv = net.createServer({ noDelay: true }, (s) => web.emit('connection', s)).listen(80);
    closeServer = () => {
      srv.close();
      web.close();
    };
  } else {
    const l = server.socket(4, 'stream') as Endpoint;
    l.bind({ address: new Uint8Array(4), port: 80 });
    l.listen(64);
    const accept = () => {
      for (let r = l.accept(); !(r instanceof NetError); r = l.accept()) serverEps.push(r.endpoint);
    };
    closeServer = () => l.close();
    (globalThis as { acceptAll?: () => void }).acceptAll = accept;
  }
  const eps = connectAll();
  for (let i = 0; i < 20; i++) {
    await tick(1);
    (globalThis as { acceptAll?: () => void }).acceptAll?.();
  }
  const req = httpMode ? new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: wrk\r\n\r\n') : REQUEST;
  const answer = (ep: Endpoint) => {
    const r = ep.read();
    if (!(r instanceof NetError) && r.data.length > 0) ep.write(RESPONSE);
  };
  const drain = (ep: Endpoint) => {
    let n = 0;
    for (let r = ep.read(); !(r instanceof NetError) && r.data.length > 0; r = ep.read()) n += r.data.length;
    return n;
  };
  // Every connection sends its request, then every one is answered, then every answer read: a batch per round, as
  // the link delivers a burst of requests from many connections.
  const exchange = async (count: number) => {
    for (let i = 0; i < count; i += CONNS) {
      for (const c of eps) c.write(req);
      await tick(0.025);
      if (!httpMode) for (const ep of serverEps) answer(ep);
      await tick(0.025);
      for (const c of eps) if (drain(c) === 0) throw new Error(`round ${i / CONNS}: no response`);
    }
  };
  await exchange(20000);
  let gcs = 0;
  const gcWatch = new PerformanceObserver((list) => (gcs += list.getEntries().length));
  gcWatch.observe({ entryTypes: ['gc'] });
  const s0 = { ...server.counters() };
  const c0 = { nows: counting.nows, schedules: counting.schedules, cancels: counting.cancels };
  const d0 = { ...deferred };
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await exchange(exchanges);
  const cpu = process.cpuUsage(cpu0);
  const ms = performance.now() - t0;
  const d1 = { ...deferred };
  await new Promise((r) => setImmediate(r));
  gcWatch.disconnect();
  const s1 = server.counters();
  const per = (k: string) => ((s1[k]! - s0[k]!) / exchanges).toFixed(3);
  process.stdout.write(
    `${httpMode ? 'node:http on tsvisor/net' : 'endpoint API'}, ${exchanges} exchanges on ${CONNS} connections, per exchange (server stack):\n` +
      `  segments in ${per('tcp.segmentsReceived')}, out ${per('tcp.segmentsSent')}\n` +
      `  clock reads ${((counting.nows - c0.nows) / exchanges).toFixed(2)}, timers scheduled ${((counting.schedules - c0.schedules) / exchanges).toFixed(2)}, cancelled ${((counting.cancels - c0.cancels) / exchanges).toFixed(2)}\n` +
      (countDeferred
        ? `  ticks ${((d1.ticks - d0.ticks) / exchanges).toFixed(2)}, microtasks ${((d1.microtasks - d0.microtasks) / exchanges).toFixed(2)} (both stacks and the loop)\n`
        : '') +
      `  garbage collections per 10,000 exchanges ${((gcs * 10000) / exchanges).toFixed(1)}\n` +
      `  CPU ${((cpu.user + cpu.system) / exchanges).toFixed(2)} µs per exchange (both stacks, client and server, and the loop; ` +
      `wall ${((ms * 1000) / exchanges).toFixed(2)} µs)\n`,
  );
  for (const e of [...eps, ...serverEps]) e.close();
  closeServer();
  await tick(100);
}

await run();
process.exit(0);
