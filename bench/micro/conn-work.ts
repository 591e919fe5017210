/**
 * What a new connection per request costs the serving stack (wrk with `Connection: close` against the http
 * service, the bench's http-rps row), which machine load does not change: the service's node:http on tsvisor/net
 * on one Netstack, clients on another, over an in-memory channel on a virtual clock. `CONNS` clients at a time
 * connect, send one request, read the response to the server's FIN and close, as wrk does; per connection it
 * counts segments each way, timers the server's clock scheduled, connections left in TIME-WAIT and heap, and
 * CPU (both stacks and node:http). Run: `node --import tsx [--expose-gc] bench/micro/conn-work.ts [CONNECTIONS] [CONNS] [--no-time-wait]` (with --expose-gc the heap figure is
 * what stays after a full collection: the connections held in TIME-WAIT).
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { httpService } from '../../cli/services/http.ts';
import { parseAddress } from '../../netstack/addr.ts';
import { Err, NetError } from '../../netstack/errors.ts';
import type { Endpoint } from '../../netstack/socket.ts';
import { countedStacks } from './counted.ts';

const numbers = process.argv.slice(2).filter((a) => /^\d+$/.test(a));
const connections = Number(numbers[0] ?? 20000);
const CONNS = Number(numbers[1] ?? 8);
const REQUEST = new TextEncoder().encode('GET / HTTP/1.1\r\nHost: 198.18.0.2\r\nUser-Agent: wrk\r\nConnection: close\r\n\r\n');
const SERVER = parseAddress('198.18.0.2')!;

const { clock, counting, client, server } = countedStacks();
// --no-time-wait: closed connections skip TIME-WAIT (tcp_max_tw_buckets 0), to see what it costs.
if (process.argv.includes('--no-time-wait')) server.tcp.configure({ maxTimeWait: 0 });
const svc = httpService((family, type) => server.socket(family, type));
if (svc instanceof NetError) throw new Error(`http service: errno ${svc.errno}`);

/** Lets microtasks and immediates (the adapter's and node:http's) run, then moves the virtual clock on. */
async function tick(ms: number): Promise<void> {
  await new Promise((r) => setImmediate(r));
  clock.advance(ms);
}

/** One round: CONNS connections opened, each sends its request, reads the whole response and closes. */
async function round(): Promise<void> {
  const eps: Endpoint[] = [];
  for (let i = 0; i < CONNS; i++) {
    const c = client.socket(4, 'stream') as Endpoint;
    if (c.connect({ address: SERVER, port: 80 }) !== Err.ConnectStarted) throw new Error('connect');
    eps.push(c);
  }
  await tick(0.025);
  for (const c of eps) if (c.write(REQUEST) !== REQUEST.length) throw new Error('request not taken');
  const done = new Set<Endpoint>();
  for (let step = 0; done.size < eps.length; step++) {
    if (step > 400) throw new Error(`${eps.length - done.size} responses unfinished after 10 ms of virtual time`);
    await tick(0.025);
    for (const c of eps) {
      if (done.has(c)) continue;
      for (let r = c.read(); !(r instanceof NetError); r = c.read()) {
        if (r.data.length === 0) {
          done.add(c);
          c.close();
          break;
        }
      }
    }
  }
}

async function run(n: number): Promise<void> {
  for (let i = 0; i < n; i += CONNS) await round();
  await tick(0.05);
}

await run(2000);
let gcs = 0;
let gcMs = 0;
const gcWatch = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcs++;
    gcMs += e.duration;
  }
});
gcWatch.observe({ entryTypes: ['gc'] });
const s0 = { ...server.counters() };
const sched0 = counting.schedules;
const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const heap0 = process.memoryUsage().heapUsed;
const tw0 = server.tcp.timeWaitCount;
const t0 = performance.now();
const cpu0 = process.cpuUsage();
await run(connections);
const cpu = process.cpuUsage(cpu0);
const ms = performance.now() - t0;
await new Promise((r) => setTimeout(r, 50));
gcWatch.disconnect();
gc?.();
const s1 = server.counters();
const per = (k: string) => ((s1[k]! - s0[k]!) / connections).toFixed(2);
process.stdout.write(
  `node:http (the http service) on tsvisor/net, ${connections} connections, ${CONNS} at a time, per connection (server stack):\n` +
    `  requests ${(svc.stats.requests / (connections + 2000)).toFixed(3)}, segments in ${per('tcp.segmentsReceived')}, out ${per('tcp.segmentsSent')}\n` +
    `  timers scheduled ${((counting.schedules - sched0) / connections).toFixed(2)}, TIME-WAIT now ${server.tcp.timeWaitCount} (+${server.tcp.timeWaitCount - tw0}), ` +
    `heap +${Math.round((process.memoryUsage().heapUsed - heap0) / connections)} B per connection${gc ? ' (after a full GC: what TIME-WAIT holds)' : ''}\n` +
    `  garbage collections per 10,000 connections ${((gcs * 10000) / connections).toFixed(1)}, ${((gcMs * 1000) / connections).toFixed(1)} µs of GC per connection\n` +
    `  CPU ${((cpu.user + cpu.system) / connections).toFixed(1)} µs per connection (both stacks and node:http; wall ${((ms * 1000) / connections).toFixed(1)} µs)\n`,
);
svc.close();
process.exit(0);
