/**
 * `tsvisor demo`: builds two namespaces joined by a veth, serves the netstack on one end, drives it from the
 * other with Linux's own tools, then runs unmodified programs inside `tsvisor run` (curl to a Linux server, and a
 * python3 server that Linux reaches), prints a short report with the pcap path, and removes everything it made.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVethPair, type VethPair } from '../lib/testnet.ts';
import { formatAddress } from '../netstack/addr.ts';
import { parseArgs } from './args.ts';
import { CliError } from './main.ts';
import { startServe, type Served } from './serve.ts';

const SERVICE_V4 = '198.18.0.2';
const CLIENT_V4 = '198.18.0.1';
const SERVICE_V6 = 'fd74:7376::2';
const CLIENT_V6 = 'fd74:7376::1';

/** One step of the demo and what came of it. */
interface Check {
  readonly title: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** Runs a command without blocking the event loop (the stack answers on it); resolves with its output. */
function runAsync(argv: string[], input?: string | Buffer, timeoutMs = 15000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, encoding: 'latin1', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

async function ping(ns: string, title: string, args: string[], target: string): Promise<Check> {
  const r = await runAsync(['ip', 'netns', 'exec', ns, 'ping', '-n', '-W', '2', ...args, target]);
  const loss = /(\d+(?:\.\d+)?)% packet loss/.exec(r.stdout)?.[1];
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout)?.[1];
  const ok = r.code === 0 && loss === '0';
  return { title, ok, detail: ok ? `0% loss, average round trip ${rtt} ms` : `${loss ?? '?'}% loss ${r.stderr.trim()}`.trim() };
}

async function socatEcho(ns: string, title: string, socatAddress: string, payload: string): Promise<Check> {
  const r = await runAsync(['ip', 'netns', 'exec', ns, 'socat', '-T', '2', '-t', '2', 'STDIO', socatAddress], payload);
  const ok = r.stdout === payload;
  return {
    title,
    ok,
    detail: ok ? `${payload.length} bytes sent, the same ${payload.length} bytes came back` : `got ${JSON.stringify(r.stdout.slice(0, 60))} ${r.stderr.trim()}`,
  };
}

async function httpFetch(ns: string, title: string, url: string, size: number): Promise<Check> {
  const r = await runAsync(['ip', 'netns', 'exec', ns, 'curl', '-sS', '--max-time', '20', url], undefined, 30000);
  const body = Buffer.from(r.stdout, 'latin1');
  const expected = Buffer.alloc(size);
  for (let i = 0; i < size; i++) expected[i] = i % 256;
  const ok = r.code === 0 && body.equals(expected);
  return { title, ok, detail: ok ? `${size} bytes, byte i = i mod 256 throughout` : `curl exit ${r.code}, ${body.length} bytes ${r.stderr.trim()}` };
}

async function httpUpload(ns: string, title: string, url: string, size: number): Promise<Check> {
  const data = randomBytes(size);
  const want = createHash('sha256').update(data).digest('hex');
  const r = await runAsync(['ip', 'netns', 'exec', ns, 'curl', '-sS', '--max-time', '20', '--data-binary', '@-', url], data, 30000);
  const got = r.stdout.trim();
  const ok = r.code === 0 && got === want;
  return { title, ok, detail: ok ? `${size} bytes up, SHA-256 ${want.slice(0, 16)}… matches` : `curl exit ${r.code}, got ${JSON.stringify(got.slice(0, 64))} ${r.stderr.trim()}` };
}

/** `tsvisor run ARGS` started from namespace `ns` (so the veth it makes has its caller end there). */
function tsvisorRun(ns: string, args: string[]): ChildProcess {
  return spawn('nsenter', [`--net=/var/run/netns/${ns}`, process.execPath, process.argv[1]!, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function finished(child: ChildProcess, timeoutMs = 30000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(timer);
    resolve({ code, stdout, stderr });
  }));
}

/** curl inside `tsvisor run` fetches a file from a Linux server in `ns` (the sandbox's gateway); sha256 compared. */
async function sandboxCurl(ns: string, dir: string): Promise<Check> {
  const data = randomBytes(1 << 20);
  writeFileSync(join(dir, 'file'), data);
  const want = createHash('sha256').update(data).digest('hex');
  const server = spawn('ip', ['netns', 'exec', ns, 'python3', '-m', 'http.server', '--bind', '::', '--directory', dir, '8000'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 600));
    const r = await finished(tsvisorRun(ns, ['--', '/bin/sh', '-c', 'curl -sS --retry 5 --retry-connrefused --max-time 20 http://host.tsvisor.internal:8000/file | sha256sum']));
    const got = r.stdout.split(' ')[0] ?? '';
    const ok = r.code === 0 && got === want;
    return { title: 'tsvisor run -- curl http://host.tsvisor.internal:8000/file', ok, detail: ok ? `1 MB through the netstack, SHA-256 ${want.slice(0, 16)}… matches` : `exit ${r.code}, ${r.stderr.trim().split('\n').pop()}` };
  } finally {
    server.kill('SIGKILL');
  }
}

/** python3 -m http.server inside `tsvisor run`, fetched by Linux curl from `ns` at the sandbox's address. */
async function sandboxServer(ns: string, dir: string): Promise<Check> {
  const log = join(dir, 'run.log');
  const run = tsvisorRun(ns, ['--debug-log', log, '--ro-bind', `${dir}:/srv`, '--cwd', '/srv', '--', 'python3', '-m', 'http.server', '8000']);
  const done = finished(run, 60000);
  try {
    let address: string | undefined;
    for (let i = 0; i < 300 && !address; i++) {
      await new Promise((r) => setTimeout(r, 100));
      address = existsSync(log) ? /↔ \S+ \((198\.18\.\d+\.\d+)\/30/.exec(readFileSync(log, 'utf8'))?.[1] : undefined;
    }
    if (!address) return { title: 'tsvisor run -- python3 -m http.server', ok: false, detail: 'the sandbox did not start' };
    const title = `tsvisor run -- python3 -m http.server; Linux curl http://${address}:8000/file`;
    const want = createHash('sha256').update(readFileSync(join(dir, 'file'))).digest('hex');
    const r = await runAsync(['ip', 'netns', 'exec', ns, 'curl', '-sS', '--retry', '10', '--retry-connrefused', '--max-time', '20', `http://${address}:8000/file`], undefined, 60000);
    const got = createHash('sha256').update(Buffer.from(r.stdout, 'latin1')).digest('hex');
    const ok = r.code === 0 && got === want;
    if (ok) return { title, ok, detail: 'the program inside accepted and served 1 MB, SHA-256 matches' };
    run.kill('SIGTERM');
    const inside = (await done).stderr.trim().split('\n').slice(-3).join(' | ');
    return { title, ok, detail: `curl exit ${r.code} ${r.stderr.trim().split('\n').pop()}; inside: ${inside}` };
  } finally {
    run.kill('SIGTERM');
    await done;
  }
}

function requireTools(): void {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  const missing = ['ip', 'ping', 'socat', 'ethtool', 'curl'].filter((t) => !dirs.some((d) => existsSync(join(d, t))));
  if (missing.length) throw new CliError(`missing tools: ${missing.join(', ')} (run 'bash .ci/install' as root first)`);
}

/** The `demo` command. */
export async function demoCommand(argv: string[]): Promise<number> {
  parseArgs(argv, {});
  if (process.getuid?.() !== 0) throw new CliError('the demo creates network namespaces and needs root');
  requireTools();
  const prefix = `tsv-demo-${process.pid}`;
  const pcap = join(mkdtempSync(join(tmpdir(), 'tsvisor-demo-')), 'demo.pcap');
  let pair: VethPair | undefined;
  let served: Served | undefined;
  const cleanup = async () => {
    await served?.stop();
    pair?.destroy();
  };
  const onSignal = () => {
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const checks: Check[] = [];
  try {
    out(`tsvisor demo: namespaces ${prefix}-a (netstack) and ${prefix}-b (Linux) joined by a veth`);
    pair = createVethPair({
      prefix,
      addrA: `${SERVICE_V4}/24`,
      addrB: `${CLIENT_V4}/24`,
      addr6A: `${SERVICE_V6}/64`,
      addr6B: `${CLIENT_V6}/64`,
    });
    served = await startServe({
      netns: pair.nsA,
      dev: pair.devA,
      pcap,
      services: [{ name: 'echo' }, { name: 'discard' }, { name: 'http' }],
      statsSocket: false,
    });
    out(`netstack took over ${pair.devA}: ${served.addresses.map((a) => `${formatAddress(a.address)}/${a.prefixLength}`).join(', ')}; services echo, discard, http`);
    const ns = pair.nsB;
    const steps: (() => Promise<Check>)[] = [
      () => ping(ns, `ping ${SERVICE_V4}`, ['-c', '3', '-i', '0.2'], SERVICE_V4),
      () => ping(ns, `ping -6 ${SERVICE_V6}`, ['-6', '-c', '3', '-i', '0.2'], SERVICE_V6),
      () => ping(ns, `ping -s 8000 ${SERVICE_V4} (fragmented both ways)`, ['-c', '2', '-i', '0.2', '-s', '8000'], SERVICE_V4),
      () => ping(ns, `ping -6 -s 8000 ${SERVICE_V6} (fragmented both ways)`, ['-6', '-c', '2', '-i', '0.2', '-s', '8000'], SERVICE_V6),
      () => socatEcho(ns, `UDP echo ${SERVICE_V4}:7`, `UDP4:${SERVICE_V4}:7`, 'hello from Linux to tsvisor\n'),
      () => socatEcho(ns, `UDP echo [${SERVICE_V6}]:7`, `UDP6:[${SERVICE_V6}]:7`, 'hello over IPv6\n'),
      () => socatEcho(ns, `TCP echo ${SERVICE_V4}:7`, `TCP4:${SERVICE_V4}:7`, 'hello over TCP\n'),
      () => httpFetch(ns, `HTTP GET http://${SERVICE_V4}/bytes/1000000`, `http://${SERVICE_V4}/bytes/1000000`, 1000000),
      () => httpFetch(ns, `HTTP GET http://[${SERVICE_V6}]/bytes/1000000`, `http://[${SERVICE_V6}]/bytes/1000000`, 1000000),
      () => httpUpload(ns, `HTTP POST http://${SERVICE_V4}/sha256`, `http://${SERVICE_V4}/sha256`, 4000000),
    ];
    for (const step of steps) {
      const c = await step();
      checks.push(c);
      out(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.title}: ${c.detail}`);
    }
    out(`tsvisor run: unmodified programs in a sandbox whose sockets the netstack serves (caller: ${ns})`);
    const files = mkdtempSync(join(tmpdir(), 'tsvisor-demo-run-'));
    // mkdtemp makes it 0700, and the sandbox's root (without capabilities) could not enter it once bound in.
    chmodSync(files, 0o755);
    for (const step of [() => sandboxCurl(ns, files), () => sandboxServer(ns, files)]) {
      const c = await step();
      checks.push(c);
      out(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.title}: ${c.detail}`);
    }
    rmSync(files, { recursive: true, force: true });
    const counters = await served.counters();
    const interesting = ['link.rxFrames', 'link.txFrames', 'rx.dropped', 'frag.reassembled', 'ipv4.txFragments', 'ipv6.txFragments', 'icmpv4.txEchoReplies', 'icmpv6.txEchoReplies', 'udp.received', 'udp.sent', 'tcp.segmentsReceived', 'tcp.segmentsSent', 'tcp.retransmits'];
    const shown = interesting.filter((k) => counters[k] !== undefined).map((k) => `${k}=${counters[k]}`);
    if (shown.length) out(`counters: ${shown.join(' ')}`);
  } finally {
    await cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  const failed = checks.filter((c) => !c.ok).length;
  out(`pcap: ${pcap} (tshark -r ${pcap})`);
  out(`${checks.length - failed} passed, ${failed} failed; namespaces removed`);
  return failed === 0 ? 0 : 1;
}

function out(line: string): void {
  process.stdout.write(line + '\n');
}


