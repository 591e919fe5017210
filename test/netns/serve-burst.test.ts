// `tsvisor serve` under a burst: 5,000 TCP connections opened at once by the Linux peer, each sending a line to
// the echo service and reading it back, with none of their frames dropped by the packet socket's ring
// (hostlink.rxDropped, which `tsvisor stats` reads from the kernel) and every connection served.
import { cpus, loadavg } from 'node:os';
import t from 'tap';
import { CLI, nsExec, serveOnVeth, stop } from './serve-helpers.ts';

const SVC4 = '198.18.221.2';
const PEER4 = '198.18.221.1';
const N = 5000;

// Every connection started in one go, as a load generator's first second does: no bound on those in flight.
const BURST = `
const net = require('node:net');
const [host, n] = [process.argv[1], Number(process.argv[2])];
let ok = 0, failed = 0; const errors = {};
const done = () => { if (ok + failed === n) { process.stdout.write(JSON.stringify(failed ? { ok, failed, errors } : { ok, failed }) + '\\n'); process.exit(0); } };
for (let i = 0; i < n; i++) {
  const s = net.connect({ host, port: 7 });
  let got = '';
  s.setTimeout(30000, () => s.destroy(new Error('timeout')));
  s.on('connect', () => s.write('burst ' + i + '\\n'));
  s.on('data', (d) => { got += d; if (got === 'burst ' + i + '\\n') { ok++; s.end(); done(); } });
  s.on('error', (e) => { failed++; errors[e.code || e.message] = (errors[e.code || e.message] || 0) + 1; done(); });
}
`;

t.test(`${N} connections opened at once from the peer → all echoed, no frame dropped by the ring`, async (t) => {
  const { pair, child } = await serveOnVeth(t, { prefix: 'tsr-burst', addrA: `${SVC4}/24`, addrB: `${PEER4}/24`, offloads: true }, ['--service', 'echo']);
  const r = await nsExec(pair.nsB, [process.execPath, '-e', BURST, SVC4, String(N)], { timeoutMs: 120000 });
  t.equal(r.code, 0, `the client finished ${r.stderr}`);
  t.same(JSON.parse(r.stdout.toString()), { ok: N, failed: 0 }, `every connection echoed its line (${r.stdout.toString().trim()})`);
  const stats = await nsExec(pair.nsA, [process.execPath, CLI, 'stats', '--netns', pair.nsA, '--dev', pair.devA, '--json'], { timeoutMs: 60_000 });
  const c = JSON.parse(stats.stdout.toString()) as Record<string, number>;
  t.ok(c['hostlink.rxFrames']! >= 3 * N, `${c['hostlink.rxFrames']} frames received`);
  t.type(c['hostlink.rxDropped'], 'number', 'ring drops are reported');
  // The ring's bound is a backlog (cli/serve.ts SERVE_RING_FRAMES): a peer more frames ahead than that loses
  // some. Only a machine whose CPUs are already taken by others lets the peer get that far ahead.
  const load = loadavg()[0]!;
  if (load < cpus().length) t.equal(c['hostlink.rxDropped'], 0, `none dropped for a full ring (of ${c['hostlink.rxFrames']})`);
  else t.comment(`load average ${load.toFixed(1)} on ${cpus().length} CPUs: ${c['hostlink.rxDropped']} of ${c['hostlink.rxFrames']} frames dropped, not checked`);
  t.equal(c['tcp.listenOverflows'] ?? 0, 0, 'none refused by the listener');
  t.comment(JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k, v]) => v !== 0 && /^(tcp|arp|ndp)\./.test(k)))));
  t.equal(await stop(child), 0);
});
