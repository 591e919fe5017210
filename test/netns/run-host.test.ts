// `tsvisor run --network=host`: passthrough to the caller's netns. curl (IPv4 and IPv6, body's sha256) and
// iperf3 inside (client and server, TCP and UDP, both ways) reach Linux peers in a namespace across a veth the
// test makes; --strace shows the socket calls as continued.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { createVethPair, nsRun } from '../../lib/testnet.ts';
import { HANG_MS } from '../lib/wait.ts';
import { CLI, collect, spawnIn, tsvisorRun, waitFor } from './run-helpers.ts';

const pair = createVethPair({
  prefix: 'tsb-rh', addrA: '198.18.61.1/24', addrB: '198.18.61.2/24', addr6A: 'fd74:7376:61::1/64', addr6B: 'fd74:7376:61::2/64', offloads: true,
});
const dir = mkdtempSync(join(tmpdir(), 'tsb-rh-'));
const body = randomBytes(3 << 20);
writeFileSync(join(dir, 'file'), body);
const sha = createHash('sha256').update(body).digest('hex');
const servers: ChildProcess[] = [];
t.teardown(() => {
  for (const s of servers) s.kill('SIGKILL');
  pair.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function serve(argv: string[]): ChildProcess {
  const c = spawn('ip', ['netns', 'exec', pair.nsB, ...argv], { stdio: 'ignore', cwd: dir });
  servers.push(c);
  return c;
}

const listening = (port: number) => () => {
  try {
    return nsRun(pair.nsB, ['ss', '-Hltn', `sport = :${port}`]).includes(String(port));
  } catch {
    return false;
  }
};

t.before(async () => {
  serve(['python3', '-m', 'http.server', '--bind', '::', '8080']);
  serve(['iperf3', '-s', '-p', '5201']);
  if (!(await waitFor(listening(8080), HANG_MS)) || !(await waitFor(listening(5201), HANG_MS))) throw new Error('peer servers did not start');
});

t.test('curl over IPv4 and IPv6 from inside → the body\'s sha256 matches', async (t) => {
  for (const url of ['http://198.18.61.2:8080/file', 'http://[fd74:7376:61::2]:8080/file']) {
    const r = await tsvisorRun(pair.nsA, ['--network=host', '--', '/bin/sh', '-c', `curl -sS --max-time 20 ${url} | sha256sum`]);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout.split(' ')[0], sha, url);
  }
  t.end();
});

/**
 * iperf3 clients inside one run, one after another (a run per client cost a sandbox start each), to the peer's
 * iperf3 -s; a client that meets the server still ending the previous test is retried (that answer alone).
 * Resolves to each client's exit status and JSON document, in order.
 */
async function iperfClients(t: Test, argsList: string[][]): Promise<{ status: string | undefined; doc: string }[]> {
  const script = argsList.map((a) => `i=0; while :; do iperf3 -c 198.18.61.2 -p 5201 -t 1 -J ${a.join(' ')} > /tmp/iperf.json; st=$?; ` +
    `grep -q "server is busy" /tmp/iperf.json && [ $i -lt 50 ] || break; i=$((i+1)); sleep 0.1; done; cat /tmp/iperf.json; echo "@@@ $st"`).join('; ');
  const r = await tsvisorRun(pair.nsA, ['--network=host', '--', '/bin/sh', '-c', script]);
  t.equal(r.code, 0, r.stderr);
  const parts = r.stdout.split(/^@@@ (\d+)\n/m);
  return argsList.map((_, k) => ({ status: parts[2 * k + 1], doc: parts[2 * k] ?? '' }));
}

t.test('iperf3 client inside → a TCP stream to the peer, both directions', async (t) => {
  const runs = await iperfClients(t, [[], ['-R']]);
  for (const [k, reverse] of [false, true].entries()) {
    t.equal(runs[k]!.status, '0', `${reverse ? 'from' : 'to'} the peer: iperf3 exits 0`);
    const j = JSON.parse(runs[k]!.doc) as { end: { sum_received: { bytes: number; bits_per_second: number } } };
    t.ok(j.end.sum_received.bytes > 1 << 20, `${reverse ? 'from' : 'to'} the peer: ${(j.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gbit/s`);
  }
  t.end();
});

t.test('iperf3 client inside with -u → UDP to and from the peer', async (t) => {
  const runs = await iperfClients(t, [['-u', '-b', '50M'], ['-u', '-b', '50M', '-R']]);
  for (const [k, reverse] of [false, true].entries()) {
    t.equal(runs[k]!.status, '0', `UDP ${reverse ? 'from' : 'to'} the peer: iperf3 exits 0`);
    const j = JSON.parse(runs[k]!.doc) as { end: { sum: { bytes: number; lost_percent: number } } };
    t.ok(j.end.sum.bytes > 1 << 20, `UDP ${reverse ? 'from' : 'to'} the peer: ${j.end.sum.bytes} bytes (${j.end.sum.lost_percent.toFixed(1)}% lost)`);
  }
  t.end();
});

t.test('iperf3 -s inside → the peer\'s client, TCP both ways and UDP', async (t) => {
  for (const [i, extra] of [[], ['-R'], ['-u', '-b', '50M']].entries()) {
    const port = 5310 + i;
    // One test each (-1): the server inside exits after it, and its status is the run's.
    const srv = spawnIn(pair.nsA, [process.execPath, CLI, 'run', '--network=host', '--', 'iperf3', '-s', '-1', '-p', String(port)]);
    const done = collect(srv, HANG_MS);
    const up = () => {
      try {
        return nsRun(pair.nsA, ['ss', '-Hltn', `sport = :${port}`]).includes(String(port));
      } catch {
        return false;
      }
    };
    t.ok(await waitFor(up, HANG_MS), `the server inside listens on ${port}`);
    const c = await collect(spawn('ip', ['netns', 'exec', pair.nsB, 'iperf3', '-c', '198.18.61.1', '-p', String(port), '-t', '1', '-J', ...extra]), HANG_MS);
    t.equal(c.code, 0, c.stderr);
    const j = JSON.parse(c.stdout) as { end: { sum_received?: { bytes: number }; sum?: { bytes: number } } };
    const bytes = (extra.includes('-u') ? j.end.sum?.bytes : j.end.sum_received?.bytes) ?? 0;
    t.ok(bytes > 1 << 20, `${extra.join(' ') || 'TCP'}: ${bytes} bytes`);
    const r = await done;
    t.equal(r.code, 0, r.stderr);
  }
  t.end();
});

t.test('--strace in host mode → socket calls shown as continued, the transfer still works', async (t) => {
  const r = await tsvisorRun(pair.nsA, ['--network=host', '--strace', '--', 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', 'http://198.18.61.2:8080/file']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '200');
  t.match(r.stderr, /^\[\d+\] connect\(.*= \? \(continued\)/m);
  t.end();
});
