// `tsvisor serve` on a real veth with Linux as the peer: ping, ping -6, fragmented pings, UDP echo with exact
// payloads, the kernel silent for the taken-over addresses while we serve and answering again after, the pcap
// readable by tshark, and `tsvisor stats` reading a running stack.
import t from 'tap';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createVethPair, run } from '../../lib/testnet.ts';
import { HANG_MS } from '../lib/wait.ts';
import { CLI, nsExec, startServe, stop } from './serve-helpers.ts';

const SVC4 = '198.18.3.2';
const PEER4 = '198.18.3.1';
const SVC6 = 'fd74:7376:3::2';
const PEER6 = 'fd74:7376:3::1';

function sh(argv: string[], input?: Buffer | string, timeout = HANG_MS): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = execFile(argv[0]!, argv.slice(1), { timeout, encoding: 'latin1', maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    if (input !== undefined) c.stdin!.end(input);
  });
}

function kernelAddresses(ns: string, dev: string): string[] {
  const info = JSON.parse(run(['ip', '-n', ns, '-j', 'addr', 'show', 'dev', dev])) as { addr_info: { local: string }[] }[];
  return info[0]!.addr_info.map((a) => a.local);
}

t.test('serve on a veth: ping, UDP echo, takeover and restore, pcap, stats', async (t) => {
  // Offloads on, as a container's veth has them: serve's packet socket takes super-frames (PACKET_VNET_HDR).
  const pair = createVethPair({
    prefix: 'tsv-serve',
    addrA: `${SVC4}/24`,
    addrB: `${PEER4}/24`,
    addr6A: `${SVC6}/64`,
    addr6B: `${PEER6}/64`,
    offloads: true,
  });
  const dir = mkdtempSync(join(tmpdir(), 'tsv-serve-'));
  let child: ChildProcess | undefined;
  t.teardown(async () => {
    if (child) await stop(child);
    pair.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const pcap = join(dir, 'serve.pcap');
  const served = await startServe(['--netns', pair.nsA, '--dev', pair.devA, '--service', 'echo', '--service', 'discard', '--pcap', pcap]);
  child = served.child;

  const taken = kernelAddresses(pair.nsA, pair.devA);
  t.notOk(taken.includes(SVC4), 'the kernel no longer holds the IPv4 address');
  t.notOk(taken.includes(SVC6), 'the kernel no longer holds the IPv6 address');

  const pings: [string, string[]][] = [
    ['ping', ['-c', '5', '-i', '0.2', SVC4]],
    ['ping -6', ['-6', '-c', '5', '-i', '0.2', SVC6]],
    ['ping -s 8000', ['-c', '3', '-i', '0.2', '-s', '8000', SVC4]],
    ['ping -6 -s 8000', ['-6', '-c', '3', '-i', '0.2', '-s', '8000', SVC6]],
  ];
  for (const [name, args] of pings) {
    // -W: how long ping waits for the last answer; generous, as a busy machine delays them.
    const r = await sh(['ip', 'netns', 'exec', pair.nsB, 'ping', '-n', '-W', '20', ...args]);
    t.equal(r.code, 0, `${name}: exit 0`);
    t.match(r.stdout, / 0% packet loss/, `${name}: no loss`);
    t.notMatch(r.stdout, /DUP!/, `${name}: one answer per request (the kernel is silent)`);
  }

  for (const [family, target] of [['UDP4', SVC4], ['UDP6', `[${SVC6}]`]] as const) {
    for (const size of [1, 100, 1472, 4000]) {
      // socat's STDIO sends what it reads as one datagram (up to its 8 KiB buffer); it is ended once the echo is
      // back, its own timeouts (-T, -t) only bound a hang.
      const payload = randomBytes(size).toString('hex').slice(0, size);
      const r = await nsExec(pair.nsB, ['socat', '-T', '100', '-t', '100', 'STDIO', `${family}:${target}:7`], { input: payload, untilBytes: size });
      t.equal(r.stdout.toString('latin1'), payload, `${family} echo of ${size} bytes returns the same bytes`);
    }
  }
  const hi = 'netcat says hi\n';
  const nc = await nsExec(pair.nsB, ['nc', '-u', SVC4, '7'], { input: hi, untilBytes: hi.length });
  t.equal(nc.stdout.toString('latin1'), hi, 'nc -u echo returns the same bytes');

  const stats = await sh([process.execPath, CLI, 'stats', '--netns', pair.nsA, '--dev', pair.devA, '--json']);
  t.equal(stats.code, 0, 'stats exits 0');
  const counters = JSON.parse(stats.stdout) as Record<string, number>;
  t.equal(counters['icmpv4.rxEchoRequests'], counters['icmpv4.txEchoReplies'], 'every IPv4 echo request answered once');
  t.ok(counters['icmpv4.txEchoReplies']! >= 8, 'IPv4 echo replies counted');
  t.ok(counters['frag.reassembled']! >= 6, 'fragmented requests reassembled');
  t.ok(counters['udp.received']! >= 9, 'UDP datagrams counted');

  const code = await stop(child);
  child = undefined;
  t.equal(code, 0, 'serve exits 0 on SIGTERM');
  const back = kernelAddresses(pair.nsA, pair.devA);
  t.ok(back.includes(SVC4) && back.includes(SVC6), 'the kernel has its addresses back');
  const after = await sh(['ip', 'netns', 'exec', pair.nsB, 'ping', '-n', '-c', '1', '-W', '20', SVC4]);
  t.equal(after.code, 0, 'the kernel answers ping again after serve exits');

  const frames = await sh(['tshark', '-r', pcap, '-T', 'fields', '-e', 'frame.number']);
  t.equal(frames.code, 0, 'tshark reads the pcap');
  t.ok(frames.stdout.trim().split('\n').length > 40, 'the pcap holds the exchange');
  const malformed = await sh(['tshark', '-r', pcap, '-Y', '_ws.malformed || _ws.expert.severity == error']);
  t.equal(malformed.stdout.trim(), '', 'tshark finds no malformed frames');
});

t.test('serve with impairment still answers every ping', async (t) => {
  const pair = createVethPair({ prefix: 'tsv-servi', addrA: `${SVC4}/24`, addrB: `${PEER4}/24` });
  let child: ChildProcess | undefined;
  t.teardown(async () => {
    if (child) await stop(child);
    pair.destroy();
  });
  child = (await startServe(['--netns', pair.nsA, '--dev', pair.devA, '--impair', 'delay=5ms,seed=3'])).child;
  const r = await sh(['ip', 'netns', 'exec', pair.nsB, 'ping', '-n', '-c', '3', '-i', '0.2', '-W', '20', SVC4]);
  t.match(r.stdout, / 0% packet loss/, 'no loss through a delaying link');
  const rtt = Number(/= [\d.]+\/([\d.]+)\//.exec(r.stdout)?.[1]);
  t.ok(rtt >= 5, `round trip ${rtt} ms includes the 5 ms delay`);
});

t.test('serve reports a missing namespace or interface in one line', async (t) => {
  const r = await sh([process.execPath, CLI, 'serve', '--netns', 'tsv-no-such-ns', '--dev', 'eth0']);
  t.equal(r.code, 1);
  t.match(r.stderr, /^tsvisor: .*tsv-no-such-ns.*\n$/);
  const pair = createVethPair({ prefix: 'tsv-servx', addrA: `${SVC4}/24`, addrB: `${PEER4}/24` });
  t.teardown(() => pair.destroy());
  const r2 = await sh([process.execPath, CLI, 'serve', '--netns', pair.nsA, '--dev', 'nosuchdev0']);
  t.equal(r2.code, 1);
  t.match(r2.stderr, /^tsvisor: .*nosuchdev0.*\n$/);
});
