// `tsvisor run --netns NAME|PATH --dev IFACE`: the netstack takes over an existing interface (as `serve` does)
// instead of making a veth; the program inside reaches a Linux peer on that link, and on exit the interface has its
// addresses back and the alias a PATH needed is gone.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createVethPair, nsRun, run } from '../../lib/testnet.ts';
import { HANG_MS } from '../lib/wait.ts';
import { leftovers, logId, tsvisorRun, waitFor } from './run-helpers.ts';

const pair = createVethPair({
  prefix: 'tsb-rt', addrA: '198.18.64.1/24', addrB: '198.18.64.2/24', addr6A: 'fd74:7376:64::1/64', addr6B: 'fd74:7376:64::2/64', offloads: true,
});
const dir = mkdtempSync(join(tmpdir(), 'tsb-rt-'));
const body = randomBytes(1 << 20);
writeFileSync(join(dir, 'file'), body);
const sha = createHash('sha256').update(body).digest('hex');
let server: ChildProcess | undefined;
t.teardown(() => {
  server?.kill('SIGKILL');
  pair.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const addrs = () => (JSON.parse(run(['ip', '-n', pair.nsA, '-j', 'addr', 'show', 'dev', pair.devA]))[0].addr_info as { local: string; scope: string }[])
  .filter((a) => a.scope === 'global').map((a) => a.local).sort();

t.before(async () => {
  server = spawn('ip', ['netns', 'exec', pair.nsB, 'python3', '-m', 'http.server', '--bind', '::', '--directory', dir, '8080'], { stdio: 'ignore' });
  const up = await waitFor(() => nsRun(pair.nsB, ['ss', '-Hltn', 'sport = :8080']).includes('8080'), HANG_MS);
  if (!up) throw new Error('peer server did not start');
});

for (const ref of ['name', 'path'] as const) {
  t.test(`--netns by ${ref} → curl over the taken interface (IPv4, IPv6); addresses given back, nothing left`, async (t) => {
    const before = addrs();
    t.same(before, ['198.18.64.1', 'fd74:7376:64::1']);
    const log = join(dir, `${ref}.log`);
    const netns = ref === 'name' ? pair.nsA : `/var/run/netns/${pair.nsA}`;
    const r = await tsvisorRun(undefined, ['--netns', netns, '--dev', pair.devA, '--debug-log', log, '--', '/bin/sh', '-c',
      'ip -br addr show eth0; curl -sS -m 20 http://198.18.64.2:8080/file | sha256sum; curl -sS -m 20 "http://[fd74:7376:64::2]:8080/file" | sha256sum']);
    t.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    t.match(lines[0], /^eth0\s+\S+\s+198\.18\.64\.1\/24 fd74:7376:64::1\/64/, 'the app netns carries the taken addresses');
    t.same(lines.slice(1).map((l) => l.split(' ')[0]), [sha, sha]);
    t.same(addrs(), before, 'the kernel has its addresses back');
    t.same(leftovers(logId(log)!), [], 'no alias, no app netns');
    t.end();
  });
}
