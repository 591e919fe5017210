// The syn-flood row's two peers on a real veth, against the kernel: bench/peers/synflood.c (built with cc) sends
// exactly the SYNs it reports, each a well-formed SYN to the echo port from the spoofed net, which the server's
// kernel answers (SYN cookies once its small backlog is full) through the client namespace, which drops the
// answers; it refuses addresses outside 198.18.0.0/15 and sends nothing then. bench/peers/echo-client.ts counts
// every legitimate connection to a kernel echo server as ok, and every one to a closed port as refused.
// Namespaces ncr-bsf-a/-b, 198.18.130.0/25 on the veth, flood sources 198.18.130.128/25; all removed, also on failure.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFlood } from '../../bench/synflood.ts';
import { createVethPair, run } from '../../lib/testnet.ts';
import { HANG_MS } from '../lib/wait.ts';

const TOP = join(dirname(fileURLToPath(import.meta.url)), '../..');
const CLIENT = '198.18.130.1';
const SERVER = '198.18.130.2';
const FLOOD = '198.18.130.128/25';
const COUNT = 3000;

/** Runs argv in `ns` to its end (bounded), collecting its output. */
function nsRun(ns: string, argv: string[], timeoutMs = HANG_MS): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** Named counters of /proc/net/snmp and /proc/net/netstat in `ns` ("Tcp.InErrs", "TcpExt.SyncookiesSent"…). */
async function counters(ns: string): Promise<Record<string, number>> {
  const r = await nsRun(ns, ['cat', '/proc/net/snmp', '/proc/net/netstat']);
  const out: Record<string, number> = {};
  const lines = r.out.trim().split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i]!.split(/\s+/);
    const values = lines[i + 1]!.split(/\s+/);
    const group = names[0]!.replace(/:$/, '');
    for (let k = 1; k < names.length; k++) out[`${group}.${names[k]}`] = Number(values[k]);
  }
  return out;
}

t.test('the flood sender and the legitimate client against the kernel', async (t) => {
  const pair = createVethPair({ prefix: 'ncr-bsf', addrA: `${CLIENT}/25`, addrB: `${SERVER}/25` });
  const dir = mkdtempSync(join(tmpdir(), 'ncr-bsf-'));
  const owned: ReturnType<typeof spawn>[] = [];
  t.teardown(() => {
    for (const c of owned) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    pair.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const bin = join(dir, 'synflood');
  run(['cc', '-O2', '-o', bin, join(TOP, 'bench/peers/synflood.c')]);
  run(['ip', '-n', pair.nsB, 'route', 'add', FLOOD, 'via', CLIENT]);
  // The kernel's echo server and a small backlog, so that cookies answer most of the flood.
  const server = spawn('ip', ['netns', 'exec', pair.nsB, 'python3', '-c', [
    'import socket, threading',
    's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 7)); s.listen(16)',
    'def echo(c):',
    '    while True:',
    '        d = c.recv(65536)',
    '        if not d: break',
    '        c.sendall(d)',
    '    c.close()',
    'print("ready", flush=True)',
    'while True:',
    '    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()',
  ].join('\n')], { stdio: ['ignore', 'pipe', 'pipe'] });
  owned.push(server);
  await new Promise<void>((resolve, reject) => {
    server.stdout!.on('data', (d) => String(d).includes('ready') && resolve());
    server.on('exit', (code) => reject(new Error(`echo server exited ${code}`)));
  });

  const refused = await nsRun(pair.nsA, [bin, pair.devA, pair.macB, pair.macA, '192.0.2.1', '7', FLOOD, '1000', '10', '1', '1']);
  t.equal(refused.code, 2, 'a destination outside 198.18.0.0/15 is refused');
  t.match(refused.out, /outside 198\.18\.0\.0\/15 refused/);
  const outside = await nsRun(pair.nsA, [bin, pair.devA, pair.macB, pair.macA, SERVER, '7', '10.0.0.0/24', '1000', '10', '1', '1']);
  t.equal(outside.code, 2, 'so is a source net outside it');

  const before = await counters(pair.nsB);
  const clientBefore = await counters(pair.nsA);
  const flood = await nsRun(pair.nsA, [bin, pair.devA, pair.macB, pair.macA, SERVER, '7', FLOOD, '3000', String(COUNT), '20', '5']);
  t.equal(flood.code, 0, `flood: ${flood.out.trim()}`);
  const f = parseFlood(flood.out);
  t.equal(f.sent, COUNT, 'stopped at its count');
  t.equal(f.errors, 0);
  t.ok(f.seconds > 0.5, `paced: ${COUNT} at 3000/s took ${f.seconds} s`);
  // Let the server's answers settle.
  await new Promise((r) => setTimeout(r, 500));
  const after = await counters(pair.nsB);
  const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  t.ok(d('Tcp.InSegs') >= COUNT, `the server's kernel took ${d('Tcp.InSegs')} segments`);
  t.equal(d('Tcp.InErrs') + d('Tcp.InCsumErrors'), 0, 'every SYN well formed, checksums right');
  t.ok(d('TcpExt.SyncookiesSent') > COUNT / 2, `cookies answered the flood (${d('TcpExt.SyncookiesSent')})`);
  t.ok(d('Tcp.OutSegs') >= COUNT, `the server answered every SYN (${d('Tcp.OutSegs')} segments out)`);
  const clientAfter = await counters(pair.nsA);
  t.ok((clientAfter['Ip.InAddrErrors'] ?? 0) - (clientBefore['Ip.InAddrErrors'] ?? 0) >= COUNT, 'the client namespace dropped the answers (no forwarding)');
  t.equal((clientAfter['Icmp.OutMsgs'] ?? 0) - (clientBefore['Icmp.OutMsgs'] ?? 0), 0, 'and sent no ICMP for them');

  const client = join(TOP, 'bench/peers/echo-client.ts');
  const ok = await nsRun(pair.nsA, [process.execPath, '--import', 'tsx', client, SERVER, '7', '60', '8', '5000', '3']);
  t.equal(ok.code, 0, ok.out);
  t.match(JSON.parse(ok.out), { ok: 60, failed: 0, reasons: {} }, 'every legitimate connection echoed exactly');
  const closed = await nsRun(pair.nsA, [process.execPath, '--import', 'tsx', client, SERVER, '8', '10', '4', '5000']);
  t.match(JSON.parse(closed.out), { ok: 0, failed: 10, reasons: { ECONNREFUSED: 10 } }, 'a closed port: every one refused');
});
