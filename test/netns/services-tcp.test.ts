// The TCP services of `tsvisor serve` on a real veth with Linux's tools as clients: echo byte-exact through socat
// and nc, half-close with nc -N, chargen's pattern, 1,000 concurrent echo connections from a Node client in the
// peer namespace, and connections to a closed port refused.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createVethPair } from '../../lib/testnet.ts';
import { chargenPattern } from '../../cli/services/chargen.ts';
import { nsExec, startServe, stop } from './serve-helpers.ts';

const SVC4 = '198.18.23.2';
const PEER4 = '198.18.23.1';
const SVC6 = 'fd74:7376:23::2';
const PEER6 = 'fd74:7376:23::1';

/** A node:net client for the peer namespace: N connections open at once, each echoes a distinct message. */
const CONCURRENT_CLIENT = `
import net from 'node:net';
const [host, port, count] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const give = setTimeout(() => { console.log(JSON.stringify({ error: 'timeout', connected, done, failed })); process.exit(2); }, 240000);
let connected = 0, done = 0, failed = 0, peak = 0, open = 0;
const sockets = [];
const allConnected = new Promise((resolve) => {
  for (let i = 0; i < count; i++) {
    const s = net.connect({ host, port });
    s.setNoDelay(true);
    sockets.push(s);
    s.on('connect', () => { connected++; open++; peak = Math.max(peak, open); if (connected === count) resolve(); });
    s.on('error', (e) => { failed++; console.error(i, e.code); if (connected + failed === count) resolve(); });
  }
});
await allConnected;
const peakBeforeSend = open;
await Promise.all(sockets.map((s, i) => new Promise((resolve) => {
  if (s.destroyed) return resolve();
  const msg = Buffer.from(\`connection \${i}: \` + 'x'.repeat(i % 200) + '\\n');
  const parts = [];
  s.on('data', (d) => parts.push(d));
  s.on('end', () => { if (Buffer.concat(parts).equals(msg)) done++; else failed++; resolve(); });
  s.on('close', () => { open--; resolve(); });
  s.end(msg);
})));
clearTimeout(give);
console.log(JSON.stringify({ connected, done, failed, peakBeforeSend }));
`;

t.test('tcp services on a veth: echo, half-close, chargen, 1,000 concurrent connections, refused ports', async (t) => {
  const pair = createVethPair({ prefix: 'tsv-node-t', addrA: `${SVC4}/24`, addrB: `${PEER4}/24`, addr6A: `${SVC6}/64`, addr6B: `${PEER6}/64` });
  const dir = mkdtempSync(join(tmpdir(), 'tsv-node-t-'));
  let child: ChildProcess | undefined;
  t.teardown(async () => {
    if (child) await stop(child);
    pair.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  child = (await startServe(['--netns', pair.nsA, '--dev', pair.devA, '--service', 'echo', '--service', 'discard', '--service', 'chargen'])).child;
  const ns = pair.nsB;

  await t.test('echo through nc: 1 MB of random bytes back exactly, IPv4 and IPv6', async (t) => {
    for (const host of [SVC4, SVC6]) {
      const data = randomBytes(1 << 20);
      // Without -N, nc never closes its side, so it would leave only on an idle timeout: end it once all is back.
      const r = await nsExec(ns, ['nc', host, '7'], { input: data, keep: 2 << 20, untilBytes: data.length });
      t.ok(r.stdout.equals(data), `${host}: ${r.stdout.length} bytes back, equal to the ${data.length} sent ${r.stderr}`);
    }
  });

  await t.test('echo through socat, which half-closes at EOF with 1 MB in flight', async (t) => {
    for (const addr of [`TCP4:${SVC4}:7`, `TCP6:[${SVC6}]:7`]) {
      const data = randomBytes(1 << 20);
      // -t: how long socat waits for the echo after its EOF; it leaves as soon as the service's FIN comes.
      const r = await nsExec(ns, ['socat', '-t', '100', '-T', '100', 'STDIO', addr], { input: data, keep: 2 << 20, timeoutMs: 150_000 });
      t.equal(r.code, 0, `socat exits 0 ${r.stderr}`);
      t.ok(r.stdout.equals(data), `${addr}: ${r.stdout.length} bytes back, equal to the ${data.length} sent`);
    }
  });

  await t.test('half-close: nc -N shuts down its sending side at EOF, the echo still arrives in full, then FIN', async (t) => {
    // Small enough to leave in one flight: a FIN arriving while more is queued hits the LAST-ACK stall above.
    const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => `line ${i}\n`).join(''));
    // nc's idle timeout (-w) is far beyond any wait under load: ending before it means the service's FIN ended it.
    const started = Date.now();
    const r = await nsExec(ns, ['nc', '-N', '-w', '100', SVC4, '7'], { input: data, timeoutMs: 150_000 });
    t.equal(r.code, 0, `nc exits 0 ${r.stderr}`);
    t.ok(r.stdout.equals(data), `all ${data.length} bytes echoed after our FIN`);
    t.ok(Date.now() - started < 100_000, 'nc ended on the service\'s FIN, not on its timeout');
    const d = await nsExec(ns, ['nc', '-N', '-w', '100', SVC4, '9'], { input: randomBytes(500_000), timeoutMs: 150_000 });
    t.equal(d.code, 0, 'discard: nc exits 0 once the service closes after our FIN');
    t.equal(d.stdoutLength, 0, 'discard sends nothing');
  });

  await t.test('chargen over TCP gives the RFC 864 pattern; over UDP a datagram of at most 512 bytes of it', async (t) => {
    const want = Buffer.from(chargenPattern(2));
    const r = await nsExec(ns, ['nc', SVC4, '19'], { keep: want.length, untilBytes: want.length });
    t.ok(r.stdoutLength >= want.length, `${r.stdoutLength} bytes`);
    t.ok(r.stdout.subarray(0, want.length).equals(want), 'two periods of the pattern, exact');
    // One datagram answers ours; socat is ended once it is out (-T, its idle timeout, only bounds a hang).
    const u = await nsExec(ns, ['socat', '-T', '100', 'STDIO', `UDP4:${SVC4}:19`], { input: 'x', untilBytes: 1, timeoutMs: 150_000 });
    t.ok(u.stdoutLength > 0 && u.stdoutLength <= 512, `one datagram of ${u.stdoutLength} bytes`);
    t.ok(u.stdout.equals(want.subarray(0, u.stdout.length)), `UDP chargen: ${u.stdout.length} bytes of the pattern`);
  });

  await t.test('1,000 concurrent connections from a node:net client in the peer namespace, every echo exact', async (t) => {
    const script = join(dir, 'concurrent.mjs');
    writeFileSync(script, CONCURRENT_CLIENT);
    const r = await nsExec(ns, [process.execPath, script, SVC4, '7', '1000'], { timeoutMs: 270_000 });
    t.equal(r.code, 0, `client exits 0 ${r.stderr.slice(0, 500)}`);
    const summary = JSON.parse(r.stdout.toString() || '{}') as Record<string, number>;
    const errors = [...r.stderr.matchAll(/^\d+ (\S+)$/gm)].map((m) => m[1]);
    t.equal(summary.connected, 1000, `all 1,000 connected (${JSON.stringify(summary)}; errors: ${[...new Set(errors)].join(' ')})`);
    t.equal(summary.peakBeforeSend, 1000, 'all 1,000 open at the same time');
    t.equal(summary.done, 1000, 'all 1,000 echoes exact');
    t.equal(summary.failed, 0);
  });

  await t.test('connections to a closed port are refused (RST)', async (t) => {
    // curl exits 7 when the connection is refused (the RST) and 28 when its -m time runs out.
    const c = await nsExec(ns, ['curl', '-sS', '-m', '100', `http://${SVC4}:81/`], { timeoutMs: 150_000 });
    t.equal(c.code, 7, `curl exits 7 (connection refused, not its timeout) ${c.stderr}`);
    const c6 = await nsExec(ns, ['curl', '-sS', '-g', '-m', '100', `http://[${SVC6}]:81/`], { timeoutMs: 150_000 });
    t.equal(c6.code, 7, 'curl exits 7 over IPv6 too');
    const s = await nsExec(ns, ['socat', '-T', '2', 'STDIO', `TCP4:${SVC4}:8`], { input: 'x' });
    t.not(s.code, 0);
    t.match(s.stderr, /Connection refused/);
  });

  const code = await stop(child);
  child = undefined;
  t.equal(code, 0, 'serve exits 0 on SIGTERM');
});
