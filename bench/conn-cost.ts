/**
 * What one new connection per request costs the serving process, measured so that machine load changes it little:
 * wrk with `Connection: close` at CONNS concurrent connections against `tsvisor serve --service http` and against
 * node:http on the kernel (bench/peers/servers.ts), each on a veth pair of its own, and per request: the serving
 * process's CPU time (utime + stime from /proc, so the kernel's softirq work done on its behalf is partly in it
 * for both), and for tsvisor its counters (frames each way, send calls, ring wake-ups and busy polls, segments).
 * Run as root: `node --import tsx bench/conn-cost.ts [CONNS...] [--seconds N] [--keepalive] [--pcap DIR]` (default
 * 8 32, 3 s each); with `--keepalive`, wrk keeps its connections alive (its default, the bench's http-keepalive row)
 * instead; with --pcap, tcpdump on the client's end of each veth writes DIR/SYSTEM-CONNS.pcap (headers only) during
 * the run, for the packet timestamps of each connection's stages (its own CPU then weighs on the figures).
 * Namespaces $TSVISOR_COST_NS-{k,t}-{a,b} (default tsv-cost), addresses $TSVISOR_COST_NET.{0,64}/26 (default
 * 198.18.130): both are removed at the end, also on failure or Ctrl-C. Each system gets 3 s of unmeasured load first
 * (as the bench), and the client namespaces the whole port range with TIME-WAIT reuse (as the bench's).
 */
import { readFileSync } from 'node:fs';
import { createVethPair } from '../lib/testnet.ts';
import { parseWrk } from './clients.ts';
import { cleanup, nodeProgram, nsRunAsync, onCleanup, runAsync, startDaemon, tsvisorCommand } from './proc.ts';

const args = process.argv.slice(2);
const sIdx = args.indexOf('--seconds');
const seconds = sIdx >= 0 ? Number(args[sIdx + 1]) : 3;
const pIdx = args.indexOf('--pcap');
const pcapDir = pIdx >= 0 ? args[pIdx + 1] : undefined;
// Numbers other than --seconds' value (without --seconds, the first argument is a concurrency too).
const concurrency = args.filter((a, i) => /^\d+$/.test(a) && (sIdx < 0 || i !== sIdx + 1)).map(Number);
const keepAlive = args.includes('--keepalive');
if (concurrency.length === 0) concurrency.push(8, 32);
const NS = process.env.TSVISOR_COST_NS || 'tsv-cost';
const NET = process.env.TSVISOR_COST_NET || '198.18.130';
if (!/^198\.1[89]\.\d{1,3}$/.test(NET)) throw new Error('TSVISOR_COST_NET must be the first three bytes of an address in 198.18.0.0/15');

/** utime + stime of a process, µs. */
function cpuMicros(pid: number): number {
  const [user, system] = cpuSplit(pid);
  return user + system;
}

/** utime and stime of a process (user space, and the kernel: its system calls and softirq work charged to it), µs. */
function cpuSplit(pid: number): [number, number] {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return [(Number(f[11]) * 1e6) / 100, (Number(f[12]) * 1e6) / 100]; // fields 14 and 15, in clock ticks of 1/100 s
}

/** The counters of the serve on netns/dev, through `tsvisor stats --json`. */
async function fetchStats(netns: string, dev: string): Promise<Record<string, number>> {
  const r = await runAsync([...tsvisorCommand(), 'stats', '--netns', netns, '--dev', dev, '--json'], 20000);
  if (r.code !== 0) throw new Error(`tsvisor stats: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as Record<string, number>;
}

/** Unmeasured seconds of load on each system before the first measurement (the bench's WARM_UP_SECONDS). */
const WARM_UP_SECONDS = 3;

async function wrk(ns: string, host: string, conns: number, secs = seconds) {
  const mode = keepAlive ? ['--latency'] : ['-H', 'Connection: close'];
  const r = await nsRunAsync(ns, ['wrk', '-t', '2', '-c', String(conns), '-d', `${secs}s`, '--timeout', '2s', ...mode, `http://${host}/`], (secs + 20) * 1000);
  return parseWrk(r.stdout + r.stderr);
}

async function main(): Promise<void> {
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  const k = createVethPair({ prefix: `${NS}-k`, addrA: `${NET}.1/26`, addrB: `${NET}.2/26`, offloads: true });
  onCleanup(() => k.destroy());
  const t = createVethPair({ prefix: `${NS}-t`, addrA: `${NET}.65/26`, addrB: `${NET}.66/26`, offloads: true });
  onCleanup(() => t.destroy());
  const kernel = startDaemon(['ip', 'netns', 'exec', k.nsB, ...nodeProgram('bench/peers/servers.ts')]);
  await kernel.waitFor(/ready/, 20000);
  // `ip netns exec` execs node, so the daemon's pid is the server's.
  const serve = startDaemon([...tsvisorCommand(), 'serve', '--netns', t.nsB, '--dev', t.devB, '--service', 'http']);
  await serve.waitFor(/tsvisor: ready/, 20000);
  // As the bench's client namespaces (bench/systems.ts): the whole port range and TIME-WAIT reuse, else the client
  // runs out of ports after some ten thousand connections (the kernel's 32-concurrent row fell to ~200 req/s
  // after its 8-concurrent one); and WARM_UP_SECONDS of unmeasured load on each, as the bench gives (V8 tiers
  // each server's new-connection path up over seconds).
  for (const ns of [k.nsA, t.nsA]) {
    await nsRunAsync(ns, ['sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65535'], 5000);
    await nsRunAsync(ns, ['sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1'], 5000);
  }
  await wrk(k.nsA, `${NET}.2`, concurrency[0]!, WARM_UP_SECONDS);
  await wrk(t.nsA, `${NET}.66`, concurrency[0]!, WARM_UP_SECONDS);
  const lines: string[] = [];
  for (const conns of concurrency) {
    for (const [name, ns, host, pid] of [['kernel', k.nsA, `${NET}.2`, kernel.pid], ['tsvisor', t.nsA, `${NET}.66`, serve.pid]] as const) {
      const before = name === 'tsvisor' ? await fetchStats(t.nsB, t.devB) : null;
      const cpu0 = cpuMicros(pid);
      const sys0 = cpuSplit(pid)[1];
      const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
      const dev = name === 'kernel' ? k.devA : t.devA;
      const dump = pcapDir
        ? startDaemon(['ip', 'netns', 'exec', ns, 'tcpdump', '-i', dev, '-n', '-s', '96', '-B', '16384', '-w', `${pcapDir}/${name}-${conns}.pcap`, 'tcp port 80'])
        : null;
      if (dump) await dump.waitFor(/listening on/, 10000);
      const r = await wrk(ns, host, conns);
      if (dump) await dump.stop();
      const cpu = cpuMicros(pid) - cpu0;
      const sys = cpuSplit(pid)[1] - sys0;
      let extra = '';
      if (before) {
        const after = await fetchStats(t.nsB, t.devB);
        const n = after['service.http.tcp.requests']! - before['service.http.tcp.requests']!;
        const per = (key: string) => ((after[key]! - before[key]!) / n).toFixed(2);
        extra =
          `; per request: frames in ${per('hostlink.rxFrames')}, out ${per('hostlink.txFrames')}, send calls ${per('hostlink.txCalls')}, ` +
          `wake-ups ${per('hostlink.rxPoll.wakeups')}, busy polls ${per('hostlink.rxPoll.busyPolls')}, TCP in ${per('tcp.segmentsReceived')}, out ${per('tcp.segmentsSent')}`;
      }
      lines.push(
        `${name.padEnd(7)} ${String(conns).padStart(3)} concurrent${keepAlive ? ' keep-alive' : ''}: ${Math.round(r.rps)} req/s (${r.errors} errors)` +
          `${keepAlive && r.latency ? `, p50 ${Math.round(r.latency.p50)} µs` : ''}, ` +
          `serving process CPU ${(cpu / r.requests).toFixed(1)} µs per request (of it in the kernel ${(sys / r.requests).toFixed(1)}; ` +
          `${((cpu / (seconds * 1e6)) * 100).toFixed(0)}% of a core), load ${load}${extra}`,
      );
      process.stdout.write(lines[lines.length - 1] + '\n');
    }
  }
  await serve.stop();
  await kernel.stop();
}

try {
  await main();
} finally {
  cleanup();
}
