// `tsvisor bench --quick --only kernel,tsvisor,throughput --congestion reno --json FILE` end to end: it builds its
// namespaces, runs iperf3 against the kernel and against tsvisor's iperf3 service (the clients' sockets on reno
// where they send), writes well-formed JSON, and removes every namespace and process it made; and Ctrl-C in the
// middle of building also leaves nothing behind.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateReport } from '../../bench/results.ts';
import { deleteNetns, run } from '../../lib/testnet.ts';

import { CLI } from '../cli-under-test.ts';
// A namespace base of its own (TSVISOR_BENCH_NS overrides it), so that this test neither meets nor removes the
// namespaces of a bench someone runs at the same time.
const BASE = process.env.TSVISOR_BENCH_NS || 'tsv-bench-qt';
const OURS = ['k-a', 'k-b', 't-a', 't-b'].map((s) => `${BASE}-${s}`);

function benchNamespaces(): string[] {
  return run(['ip', 'netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => OURS.includes(n));
}

function bench(args: string[], onStderr?: (text: string, child: ReturnType<typeof spawn>) => void) {
  const child = spawn(process.execPath, [CLI, 'bench', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TSVISOR_BENCH_NS: BASE } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => {
    stderr += d;
    onStderr?.(stderr, child);
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // A hang bound: --quick takes about a minute on a quiet machine, several on a loaded one.
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  return { child, done, out: () => stdout, err: () => stderr };
}

t.teardown(() => {
  for (const ns of OURS) deleteNetns(ns);
});

t.test('quick throughput run of kernel and tsvisor writes the JSON and cleans up', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsv-bench-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bench.json');
  // reno: built into every kernel and never a machine's default, so the rows show the option took effect.
  const b = bench(['--quick', '--only', 'kernel,tsvisor,throughput', '--congestion', 'reno', '--json', file]);
  t.teardown(() => {
    if (b.child.exitCode === null) b.child.kill('SIGKILL');
  });
  const started = performance.now();
  const { code } = await b.done;
  const seconds = (performance.now() - started) / 1000;
  t.equal(code, 0, `exit status (stderr: ${b.err().slice(-500)})`);
  // How long --quick takes is the benchmark's figure to report, not a test's to assert: load alone stretches it.
  t.comment(`finished in ${seconds.toFixed(1)} s`);
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  t.same(validateReport(doc), [], 'records are well formed');
  const got = (doc.results as { system: string; test: string; direction: string; mtu: number; streams: number; value: number }[])
    .map((r) => `${r.system} ${r.test} ${r.mtu} ${r.direction} ${r.streams}`)
    .sort();
  t.same(got, [
    'kernel throughput 1500 from-service 1',
    'kernel throughput 1500 to-service 1',
    'tsvisor throughput 1500 from-service 1',
    'tsvisor throughput 1500 to-service 1',
  ]);
  for (const r of doc.results) t.ok(r.value > 0, `${r.system} ${r.direction}: ${r.value} Gbit/s`);
  // iperf3 names the sending sockets' congestion control: the clients' reno where they send, the kernel server's
  // own (the machine's default) where it sends.
  const sender = (system: string, direction: string) =>
    (doc.results as { system: string; direction: string; sender_congestion?: string }[]).find((r) => r.system === system && r.direction === direction)?.sender_congestion;
  t.equal(sender('kernel', 'to-service'), 'reno');
  t.equal(sender('tsvisor', 'to-service'), 'reno');
  t.equal(sender('kernel', 'from-service'), readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim());
  t.equal(doc.congestion, 'reno');
  // What each figure cost: the client's CPU share (iperf3's own count; one thread, so at most about one CPU) and
  // the machine's CPU-seconds per GB, a few tenths to a few seconds on any machine this runs on.
  for (const r of doc.results as { system: string; direction: string; client_cpu_pct?: number; cpu_s_per_gb?: number }[]) {
    const what = `${r.system} ${r.direction}: client ${r.client_cpu_pct}%, ${r.cpu_s_per_gb} CPU-s/GB`;
    t.ok(typeof r.client_cpu_pct === 'number' && r.client_cpu_pct > 0 && r.client_cpu_pct <= 110, what);
    t.ok(typeof r.cpu_s_per_gb === 'number' && r.cpu_s_per_gb > 0.01 && r.cpu_s_per_gb < 100, what);
  }
  t.match(b.out(), /throughput MTU 1500 1×stream to-service: CPU-s\/GB, client CPU +\d+\.\d\d, \d+% +\d+\.\d\d \(×\d+\.\d\d\), \d+%/, 'the CPU row');
  t.match(b.err(), /Gbit\/s \(client CPU \d+%, machine \d+\.\d\d CPU-s\/GB\)/, 'progress lines give the CPU');
  t.match(b.out(), /\nto-service throughput: the clients' sockets use reno \(--congestion\)\n/);
  t.same(doc.skipped, []);
  t.match(b.out(), /kernel\s+tsvisor/, 'table printed');
  t.match(b.err(), /\[1\/4\] kernel\s+throughput/, 'progress printed');
  t.same(benchNamespaces(), [], 'no namespace left');
});

t.test('SIGINT while running removes the namespaces and exits 130', async (t) => {
  let sent = false;
  const b = bench(['--quick', '--only', 'kernel,rr-latency'], (text, child) => {
    if (!sent && text.includes('building topology')) {
      sent = true;
      // Let the topology and the servers come up, then interrupt.
      setTimeout(() => child.kill('SIGINT'), 1500);
    }
  });
  t.teardown(() => {
    if (b.child.exitCode === null) b.child.kill('SIGKILL');
  });
  const { code } = await b.done;
  t.equal(code, 130, `exit status (stderr: ${b.err().slice(-300)})`);
  t.match(b.err(), /SIGINT, removing namespaces/);
  t.same(benchNamespaces(), [], 'no namespace left');
});
