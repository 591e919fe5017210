/**
 * The benchmark run: for each system, build its topology (once per MTU), run the selected tests with the stock
 * clients, tear it down, and collect one record per figure. A system or test that cannot run is recorded as
 * skipped with its reason; nothing here throws past a single test.
 */
import { availableParallelism } from 'node:os';
import { runIperf3, runSockperf, runWrk } from './clients.ts';
import { busyCpuSeconds, readCpuTimes, readMachine, syscallNs } from './machine.ts';
import { haveTool, nodeProgram, sleep, startDaemon } from './proc.ts';
import { TESTS, UNITS, medianOfRounds, micros, type BenchReport, type BenchResult, type Direction, type Skipped, type TestName } from './results.ts';
import { highestPassing, synFloodSteps } from './synflood.ts';
import { PACKAGE_OF, SYSTEMS, slabBytes, startSystem, unavailable, type SystemInstance, type SystemName } from './systems.ts';

/** What to run. */
export interface BenchOptions {
  /** Short runs and fewer settings, finishing within 90 seconds. */
  quick: boolean;
  /** Names of systems and/or tests to restrict the run to (empty: everything). */
  only: string[];
  /** Progress lines. */
  log: (line: string) => void;
  /** `tsvisor serve --threads` of the tsvisor system (default 1). */
  threads?: number;
  /** Throughput stream counts to run instead of the plan's. */
  streams?: number[];
  /** http-keepalive's kept-alive connection counts instead of the plan's (8 quick; 10, wrk's default, and 32 in full). */
  connections?: number[];
  /** Times each system runs the whole sequence, the systems taking turns (default 1); figures are medians. */
  rounds?: number;
  /** The clients' congestion control in the to-service throughput rows (iperf3 -C); default the machine's. */
  congestion?: string;
}

/** UDP round trip next to TCP's, for the side-by-side UDP echo comparison. */
export interface UdpLatency {
  system: SystemName;
  p50: number;
  p99: number;
}

/** Durations and sizes of one run. */
interface Plan {
  seconds: number;
  mtus: number[];
  streams: number[];
  /**
   * Kept-alive connections of http-keepalive, one row each: wrk's own default (10) is what a user runs first, 32
   * keeps the serving side busy; the quick run measures 8 alone.
   */
  keepAliveConnections: number[];
  /**
   * Concurrent clients of http-rps: at 8 a connection's latency (handshake, accept, close) dominates, at 32 the
   * serving side's CPU per connection does; both are measured, in the quick run too.
   */
  newConnConcurrency: number[];
  idleConnections: number;
}

function plan(quick: boolean): Plan {
  return quick
    ? { seconds: 1, mtus: [1500], streams: [1], keepAliveConnections: [8], newConnConcurrency: [8, 32], idleConnections: 1000 }
    : { seconds: 5, mtus: [1500, 65520], streams: [1, 4], keepAliveConnections: [10, 32], newConnConcurrency: [8, 32], idleConnections: 10000 };
}

/** Splits --only names into systems and tests; throws for a name that is neither. */
export function selectOnly(only: readonly string[]): { systems: SystemName[]; tests: TestName[] } {
  const sys = only.filter((n) => (SYSTEMS as readonly string[]).includes(n)) as SystemName[];
  const tests = only.filter((n) => (TESTS as readonly string[]).includes(n)) as TestName[];
  const unknown = only.filter((n) => !(SYSTEMS as readonly string[]).includes(n) && !(TESTS as readonly string[]).includes(n));
  if (unknown.length) {
    throw new Error(`--only: unknown name ${unknown.join(', ')} (systems: ${SYSTEMS.join(', ')}; tests: ${TESTS.join(', ')})`);
  }
  return { systems: sys.length ? sys : [...SYSTEMS], tests: tests.length ? tests : [...TESTS] };
}

/** One step of the run: a test at one setting. */
interface Step {
  test: TestName;
  /** The client program it runs (its absence skips the step). */
  tool: string;
  mtu: number;
  label: string;
  /** Why this system cannot take the step (it is then skipped with the reason), or null. */
  unsupported?: (s: SystemInstance) => string | null;
  run: (s: SystemInstance) => Promise<BenchResult | null>;
}

/**
 * Seconds of unmeasured load before the http rows, the same on every system (a system may ask for more:
 * SystemInstance.warmUpSeconds). Each serving process is a V8 isolate that keeps tiering its request path up for
 * seconds: one-second samples from a fresh start (2 cores, load 6–8) read, new connections at 8 concurrent,
 * tsvisor 1.9k, 5.5k, 6.7k, 9.9k, 8.1k req/s and the kernel's node:http 16.2k, 18.2k, 19.0k, 18.4k, 18.4k;
 * keep-alive at 32, tsvisor 61k, 72k, 86k, 83k, 80k and the kernel 42k, 57k, 68k, 69k, 64k. One second left
 * tsvisor at the rate of its second second while the kernel was at its plateau; after three both are at theirs.
 */
const WARM_UP_SECONDS = 3;

function record(s: SystemInstance, test: TestName, mtu: number, direction: Direction, streams: number, value: number, extra: Record<string, unknown> = {}): BenchResult {
  return { system: s.name, test, mtu, direction, streams, value, unit: UNITS[test], ...extra };
}

/** The congestion control iperf3 is told to give the sending sockets, by direction (undefined: nothing said). */
interface Congestion {
  to?: string;
  from?: string;
}

function stepsFor(tests: TestName[], p: Plan, udp: UdpLatency[], notes: Record<string, string>, log: (line: string) => void, congestion: Congestion = {}): Step[] {
  const steps: Step[] = [];
  for (const mtu of p.mtus) {
    if (!tests.includes('throughput')) break;
    for (const streams of p.streams) {
      for (const direction of ['to-service', 'from-service'] as const) {
        steps.push({
          test: 'throughput',
          tool: 'iperf3',
          mtu,
          label: `throughput mtu ${mtu}, ${streams} stream${streams > 1 ? 's' : ''}, ${direction}`,
          async run(s) {
            const reverse = direction === 'from-service';
            const cpuBefore = readCpuTimes();
            const t0 = performance.now();
            const r = await runIperf3(s.clientNs, s.host, { seconds: p.seconds, streams, reverse, congestion: reverse ? congestion.from : congestion.to });
            const cpuAfter = readCpuTimes();
            const extra: Record<string, unknown> = { sender_gbps: roundTo(r.senderGbps, 3) };
            if (r.retransmits !== undefined) extra.retransmits = r.retransmits;
            if (r.congestion !== undefined) extra.sender_congestion = r.congestion;
            // What the bytes cost: the iperf3 client's own CPU (one thread: near 100 % it is the bound, whatever
            // serves), and every CPU of the machine per GB received, client and serving side together.
            if (r.clientCpu !== undefined) extra.client_cpu_pct = roundTo(r.clientCpu, 1);
            const busy = cpuBefore && cpuAfter ? busyCpuSeconds(cpuBefore, cpuAfter, availableParallelism(), (performance.now() - t0) / 1000) : undefined;
            if (busy !== undefined && r.bytes) extra.cpu_s_per_gb = roundTo(busy / (r.bytes / 1e9), 3);
            return record(s, 'throughput', mtu, direction, streams, roundTo(r.gbps, 3), extra);
          },
        });
      }
    }
  }
  if (tests.includes('rr-latency')) {
    steps.push({
      test: 'rr-latency',
      tool: 'sockperf',
      mtu: 1500,
      label: 'rr-latency 64 B, TCP and UDP',
      async run(s) {
        let udpError = '';
        const u = await runSockperf(s.clientNs, s.host, { seconds: p.seconds, tcp: false }).catch((e: Error) => {
          udpError = e.message;
          return null;
        });
        if (u) udp.push({ system: s.name, p50: u.p50, p99: u.p99 });
        const t = await runSockperf(s.clientNs, s.host, { seconds: p.seconds, tcp: true });
        const extra: Record<string, unknown> = { p99: t.p99, mean: t.mean, observations: t.observations };
        if (u) Object.assign(extra, { udp_median: u.p50, udp_p99: u.p99 });
        else extra.udp_error = udpError;
        return record(s, 'rr-latency', 1500, 'to-service', 1, t.p50, extra);
      },
    });
  }
  if (tests.includes('http-rps')) {
    // Systems whose new-connection path has run before the first measured second (WARM_UP_SECONDS).
    const warm = new Set<SystemInstance>();
    for (const connections of p.newConnConcurrency) {
      steps.push({
        test: 'http-rps',
        tool: 'wrk',
        mtu: 1500,
        label: `http-rps, new connection per request, ${connections} concurrent`,
        async run(s) {
          if (!warm.has(s)) {
            warm.add(s);
            await runWrk(s.clientNs, s.host, { seconds: s.warmUpSeconds ?? WARM_UP_SECONDS, connections });
          }
          const r = await runWrk(s.clientNs, s.host, { seconds: p.seconds, connections });
          return record(s, 'http-rps', 1500, 'to-service', 1, Math.round(r.rps), { connections, requests: r.requests, errors: r.errors });
        },
      });
    }
  }
  if (tests.includes('http-keepalive')) {
    for (const connections of p.keepAliveConnections) {
      steps.push({
        test: 'http-keepalive',
        tool: 'wrk',
        mtu: 1500,
        label: `http-keepalive, ${connections} kept-alive connections`,
        async run(s) {
          // The same unmeasured seconds on every system first (WARM_UP_SECONDS).
          await runWrk(s.clientNs, s.host, { seconds: s.warmUpSeconds ?? WARM_UP_SECONDS, connections, keepAlive: true });
          const r = await runWrk(s.clientNs, s.host, { seconds: p.seconds, connections, keepAlive: true });
          const l = r.latency!;
          return record(s, 'http-keepalive', 1500, 'to-service', 1, Math.round(r.rps), {
            connections,
            requests: r.requests,
            errors: r.errors,
            p50_us: l.p50,
            p75_us: l.p75,
            p90_us: l.p90,
            p99_us: l.p99,
          });
        },
      });
    }
  }
  if (tests.includes('conn-memory')) {
    steps.push({
      test: 'conn-memory',
      tool: 'node',
      mtu: 1500,
      label: `conn-memory, ${p.idleConnections} idle connections`,
      async run(s) {
        const r = await idleConnectionMemory(s, p.idleConnections);
        notes[s.name] = r.what;
        return record(s, 'conn-memory', 1500, 'to-service', 1, Math.round(r.perConnection), {
          connections: r.opened,
          failed: r.failed,
          measured: r.what,
          // Every kernel socket of the run (client ends, and for pasta/slirp4netns their host and guest sockets).
          kernel_slab_per_connection: r.slab,
        });
      },
    });
  }
  if (tests.includes('syn-flood')) {
    steps.push({
      test: 'syn-flood',
      tool: 'cc',
      mtu: 1500,
      label: 'syn-flood, highest rate with every legitimate connection ok',
      unsupported: (s) => (s.flood ? null : 'no veth of its own to flood: it serves through a userspace forwarder'),
      async run(s) {
        const steps = await synFloodSteps(s.clientNs, s.host, s.flood!, { quick: p.seconds <= 1, log });
        const last = steps[steps.length - 1]!;
        return record(s, 'syn-flood', 1500, 'to-service', 1, highestPassing(steps), {
          legit: last.legit.ok + last.legit.failed,
          steps: steps.map((x) => ({ rate: x.rate, achieved: x.achieved, ok: x.legit.ok, failed: x.legit.failed, reasons: x.legit.reasons, p50_ms: x.legit.p50_ms, max_ms: x.legit.max_ms })),
          // The step that ended the search: a failure, or the highest rate tried.
          stopped_at: !last.pass
            ? `${last.rate} SYN/s: ${last.legit.failed} failed ${JSON.stringify(last.legit.reasons)}, sender at ${last.achieved}/s`
            : last.achieved < 0.9 * last.rate
              ? `sender at ${last.achieved}/s of ${last.rate} asked`
              : `highest rate tried (${last.rate})`,
        });
      },
    });
  }
  return steps;
}

const SERVICE_OF: Record<TestName, 'iperf3' | 'sockperf' | 'http' | 'hold' | 'echo'> = {
  throughput: 'iperf3',
  'rr-latency': 'sockperf',
  'http-rps': 'http',
  'http-keepalive': 'http',
  'conn-memory': 'hold',
  'syn-flood': 'echo',
};

/** Opens `n` idle connections to the hold service and charges the memory they added to each one. */
async function idleConnectionMemory(
  s: SystemInstance,
  n: number,
): Promise<{ perConnection: number; opened: number; failed: number; what: string; slab: number }> {
  await sleep(500);
  const before = s.memory();
  const slabBefore = slabBytes();
  const client = startDaemon(['ip', 'netns', 'exec', s.clientNs, ...nodeProgram('bench/peers/conn-client.ts'), s.host, '9', String(n)]);
  try {
    await client.waitFor(/open \d+ failed \d+/, 60000);
    const m = /open (\d+) failed (\d+)/.exec(client.output())!;
    const opened = Number(m[1]);
    const failed = Number(m[2]);
    if (opened === 0) throw new Error(`no connection opened (${failed} failed)`);
    await sleep(1000); // let the serving side finish accepting and settle
    const after = s.memory();
    const slab = Math.round((slabBytes() - slabBefore) / opened);
    const what = `${after.what}: (after − before) / ${s.memoryDivisor > 1 ? `(${s.memoryDivisor} × connections)` : 'connections'}`;
    return { perConnection: Math.max(0, after.bytes - before.bytes) / (opened * s.memoryDivisor), opened, failed, what, slab };
  } finally {
    await client.stop();
  }
}

/** Each system's median UDP round trip out of its rounds (the run with the median p50, as medianOfRounds). */
function medianUdp(runs: readonly UdpLatency[]): UdpLatency[] {
  return [...new Set(runs.map((u) => u.system))].map((system) => {
    const sorted = runs.filter((u) => u.system === system).sort((a, b) => a.p50 - b.p50);
    return sorted[(sorted.length - 1) >> 1]!;
  });
}

function roundTo(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** A throughput result's CPU figures for progress lines: " (client CPU 99%, machine 0.41 CPU-s/GB)", or "". */
function cpuCost(r: BenchResult): string {
  const parts: string[] = [];
  if (typeof r.client_cpu_pct === 'number') parts.push(`client CPU ${Math.round(r.client_cpu_pct)}%`);
  if (typeof r.cpu_s_per_gb === 'number') parts.push(`machine ${r.cpu_s_per_gb.toFixed(2)} CPU-s/GB`);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

/** Formats one value with its unit for progress lines. */
export function formatValue(r: BenchResult): string {
  switch (r.test) {
    case 'throughput':
      return `${r.value.toFixed(2)} Gbit/s` + cpuCost(r);
    case 'rr-latency':
      return `${r.value.toFixed(1)} µs median (p99 ${Number(r.p99).toFixed(1)})` + (r.udp_median !== undefined ? `, UDP ${Number(r.udp_median).toFixed(1)} µs (p99 ${Number(r.udp_p99).toFixed(1)})` : '');
    case 'http-rps':
      return `${Math.round(r.value)} req/s` + (r.errors ? ` (${String(r.errors)} errors)` : '');
    case 'http-keepalive':
      return `${Math.round(r.value)} req/s, latency p50 ${micros(r.p50_us)} p99 ${micros(r.p99_us)}` + (r.errors ? ` (${String(r.errors)} errors)` : '');
    case 'conn-memory':
      return `${Math.round(r.value)} bytes/connection`;
    case 'syn-flood':
      return `${Math.round(r.value)} SYN/s (${String(r.stopped_at)})`;
  }
}

/** An error's first line, at most 300 characters: what a report says of a failed step. */
function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 300);
}

/**
 * Runs `attempt`; if it fails, `between` (which restarts the system under test) and `attempt` once more. A row can
 * fail for a reason of the moment (a client that did not finish in time on a loaded machine) as well as for good;
 * the second failure is reported with both reasons, or with one when they are the same. A failing `between` ends
 * it at once, as the second failure.
 */
export async function retryOnce<T>(attempt: () => Promise<T>, between: (first: Error) => Promise<void>): Promise<T> {
  try {
    return await attempt();
  } catch (e) {
    const first = firstLine(e);
    try {
      await between(e instanceof Error ? e : new Error(first));
      return await attempt();
    } catch (e2) {
      const second = firstLine(e2);
      throw new Error(second === first ? `${first} (twice: retried once)` : `${second} (retried once; the first try: ${first})`);
    }
  }
}

/** Runs the benchmark; resolves to the report (also when every system was skipped). */
export async function runBench(opts: BenchOptions): Promise<BenchReport & { udpLatency: UdpLatency[] }> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const { systems, tests } = selectOnly(opts.only);
  const p = { ...plan(opts.quick), ...(opts.streams ? { streams: opts.streams } : {}), ...(opts.connections ? { keepAliveConnections: opts.connections } : {}) };
  const results: BenchResult[] = [];
  const skipped: Skipped[] = [];
  const udpLatency: UdpLatency[] = [];
  const notes: Record<string, string> = {};
  // --congestion is for the clients' sockets. A kernel iperf3 server keeps a test's -C for the tests after it, so
  // the from-service rows then name the machine's default, which its server had before (ours takes neither).
  const congestion: Congestion = opts.congestion ? { to: opts.congestion, from: readMachine().congestion } : {};
  const steps = stepsFor(tests, p, udpLatency, notes, opts.log, congestion);
  const rounds = opts.rounds ?? 1;
  const total = steps.length * systems.length * rounds;
  let done = 0;
  let round = 1;
  const progress = (system: string, label: string, outcome: string) => {
    done++;
    const width = String(total).length;
    const of = rounds > 1 ? ` round ${round}/${rounds}` : '';
    opts.log(`[${String(done).padStart(width)}/${total}]${of} ${system.padEnd(11)} ${label}: ${outcome}`);
  };

  // Each round runs every system once, in turn, so the kernel's figures and the others' come from the same minutes.
  for (; round <= rounds; round++) {
    for (const name of systems) {
      const why = unavailable(name);
      if (why) {
        skipped.push({ system: name, test: '*', reason: why });
        for (const st of steps) progress(name, st.label, `skipped (${why})`);
        continue;
      }
      const runnable: Step[] = [];
      for (const st of steps) {
        if (st.tool === 'node' || haveTool(st.tool)) runnable.push(st);
        else {
          const reason = `not installed: ${PACKAGE_OF[st.tool] ?? st.tool} (Debian package)`;
          skipped.push({ system: name, test: st.test, mtu: st.mtu, reason });
          progress(name, st.label, `skipped (${reason})`);
        }
      }
      for (const mtu of [...new Set(runnable.map((st) => st.mtu))]) {
        const here = runnable.filter((st) => st.mtu === mtu);
        let sys: SystemInstance;
        // Whether `sys` still needs stopping: a restart for a retry that failed to start leaves nothing running.
        let running = true;
        try {
          opts.log(`${name}: building topology (MTU ${mtu})`);
          sys = await startSystem(name, mtu, { threads: opts.threads });
        } catch (e) {
          const reason = `could not start: ${(e as Error).message}`;
          skipped.push({ system: name, test: '*', mtu, reason });
          for (const st of here) progress(name, st.label, `skipped (${reason})`);
          continue;
        }
        try {
          for (const st of here) {
            const missing = sys.missing[SERVICE_OF[st.test]] ?? st.unsupported?.(sys);
            if (missing) {
              skipped.push({ system: name, test: st.test, mtu, reason: missing });
              progress(name, st.label, `skipped (${missing})`);
              continue;
            }
            if (!running) {
              const reason = 'not run: the system did not start again after a failed row';
              skipped.push({ system: name, test: st.test, mtu, reason });
              progress(name, st.label, `skipped (${reason})`);
              continue;
            }
            try {
              // A failed row is tried once more on the system started afresh (a stuck server goes with it); a
              // figure from the second try says in `retried_after` why the first gave none.
              let firstTry: string | undefined;
              const r = await retryOnce(
                () => st.run(sys),
                async (e) => {
                  firstTry = firstLine(e);
                  opts.log(`${name}: ${st.label} failed (${firstTry}); starting ${name} again to try it once more`);
                  running = false;
                  await sys.stop();
                  sys = await startSystem(name, mtu, { threads: opts.threads });
                  running = true;
                },
              );
              // Which serve made tsvisor's figures (the single-thread one unless --threads says otherwise).
              if (r && name === 'tsvisor' && (opts.threads ?? 1) > 1) r.threads = opts.threads;
              if (r && firstTry !== undefined) r.retried_after = firstTry;
              if (r) {
                results.push(r);
                progress(name, st.label, formatValue(r));
              }
            } catch (e) {
              const reason = firstLine(e) + (rounds > 1 ? ` (round ${round})` : '');
              skipped.push({ system: name, test: st.test, mtu, reason });
              progress(name, st.label, `failed (${reason})`);
            }
          }
        } finally {
          if (running) await sys.stop();
        }
      }
    }
  }
  const once = new Map(skipped.map((x) => [`${x.system}|${x.test}|${x.mtu ?? ''}|${x.reason}`, x]));
  return {
    results: medianOfRounds(results),
    skipped: [...once.values()],
    notes,
    quick: opts.quick,
    ...(rounds > 1 ? { rounds } : {}),
    startedAt,
    seconds: roundTo((performance.now() - started) / 1000, 1),
    udpLatency: medianUdp(udpLatency),
    machine: { ...readMachine(), syscallNs: syscallNs() },
    ...(opts.congestion ? { congestion: opts.congestion } : {}),
  };
}
