// `tsvisor serve --threads 2` on a real veth with Linux as the peer: many concurrent TCP connections (HTTP and
// echo, exact bytes) all served and spread over both shards by the kernel's flow hash, ping and ping -6 after the
// peer forgot our MAC (ARP and NDP reach every shard), UDP echo from many ports, an iperf3 test whose streams land
// on both shards (TCP and UDP), a ping larger than the MTU, counters summed over the shards, and the interface
// given back with nothing left behind; killed with SIGKILL, the record restores as with one thread.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createVethPair, run } from '../../lib/testnet.ts';
import { CLI, nsExec, startServe, stop } from './serve-helpers.ts';

const SVC4 = '198.18.140.1';
const PEER4 = '198.18.140.2';
const SVC6 = 'fd74:7376:140::1';
const PEER6 = 'fd74:7376:140::2';

// The peer's client: CONNS connections, CONCURRENT at a time, half HTTP GETs (a 200 with its body, read to the
// server's close), half echo (4 KB of pseudo-random bytes, exactly those back); then UDP echo from 32 ports.
// Prints one JSON line of counts.
const CLIENT = `
import asyncio, json, os, socket
CONNS, CONCURRENT = 400, 64
ok = {'http': 0, 'echo': 0, 'udp': 0}
bad = []
async def one(i, sem):
    async with sem:
        try:
            if i % 2 == 0:
                r, w = await asyncio.wait_for(asyncio.open_connection('${SVC4}', 80), 10)
                w.write(b'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')
                data = await asyncio.wait_for(r.read(), 10)
                if data.startswith(b'HTTP/1.1 200'): ok['http'] += 1
                else: bad.append('http %r' % data[:40])
            else:
                msg = os.urandom(4096)
                r, w = await asyncio.wait_for(asyncio.open_connection('${SVC4}', 7), 10)
                w.write(msg)
                await w.drain()
                w.write_eof()
                data = await asyncio.wait_for(r.read(), 10)
                if data == msg: ok['echo'] += 1
                else: bad.append('echo %d bytes' % len(data))
            w.close()
        except Exception as e:
            bad.append(repr(e))
async def main():
    sem = asyncio.Semaphore(CONCURRENT)
    await asyncio.gather(*(one(i, sem) for i in range(CONNS)))
asyncio.run(main())
for i in range(32):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    msg = os.urandom(100 + i)
    s.sendto(msg, ('${SVC4}', 7))
    try:
        if s.recvfrom(2048)[0] == msg: ok['udp'] += 1
        else: bad.append('udp mismatch')
    except Exception as e:
        bad.append('udp ' + repr(e))
    s.close()
print(json.dumps({'ok': ok, 'bad': bad[:5], 'badCount': len(bad)}))
`;

/** The counters of the serve on ns/dev, as `tsvisor stats --json` prints them. */
function stats(ns: string, dev: string): Record<string, number> {
  return JSON.parse(run([process.execPath, CLI, 'stats', '--netns', ns, '--dev', dev, '--json'])) as Record<string, number>;
}

t.test('serve --threads 2: connections spread over both shards, ping, ARP/NDP, UDP, iperf3, summed stats, restore', async (t) => {
  const pair = createVethPair({
    prefix: 'tsh-srv', addrA: `${SVC4}/24`, addrB: `${PEER4}/24`, addr6A: `${SVC6}/64`, addr6B: `${PEER6}/64`, offloads: true,
  });
  let child: Awaited<ReturnType<typeof startServe>>['child'] | undefined;
  t.teardown(async () => {
    if (child) await stop(child);
    pair.destroy();
  });
  const served = await startServe(['--netns', pair.nsA, '--dev', pair.devA, '--threads', '2', '--service', 'http', '--service', 'echo', '--service', 'iperf3']);
  child = served.child;
  t.match(served.stderr(), /2 threads/);

  const client = await nsExec(pair.nsB, ['python3', '-c', CLIENT]);
  t.equal(client.code, 0, client.stderr);
  const result = JSON.parse(client.stdout.toString()) as { ok: Record<string, number>; bad: string[]; badCount: number };
  t.same(result.ok, { http: 200, echo: 200, udp: 32 }, `every connection and datagram served (${result.bad.join('; ')})`);

  // The peer forgets our MAC: its requests (ARP, NDP) go to every shard, and each shard must resolve the peer too.
  run(['ip', '-n', pair.nsB, 'neigh', 'flush', 'dev', pair.devB]);
  const ping4 = await nsExec(pair.nsB, ['ping', '-c', '3', '-i', '0.2', '-W', '3', SVC4]);
  t.equal(ping4.code, 0, `ping: ${ping4.stdout}`);
  const ping6 = await nsExec(pair.nsB, ['ping', '-6', '-c', '3', '-i', '0.2', '-W', '3', SVC6]);
  t.equal(ping6.code, 0, `ping -6: ${ping6.stdout}`);
  // New connections after the flush: a shard that did not see the peer's ARP must still reach it.
  const again = await nsExec(pair.nsB, ['python3', '-c', CLIENT.replace('CONNS, CONCURRENT = 400, 64', 'CONNS, CONCURRENT = 40, 16')]);
  t.match(JSON.parse(again.stdout.toString()).ok, { http: 20, echo: 20, udp: 32 }, 'served after the peer re-resolved us');

  // Four iperf3 streams, rate-limited (a functional check): the streams the hash gives the other shard are
  // served for the control connection's test there.
  const iperf = await nsExec(pair.nsB, ['iperf3', '-c', SVC4, '-P', '4', '-t', '1', '-b', '20M', '-J']);
  t.equal(iperf.code, 0, iperf.stderr);
  const report = JSON.parse(iperf.stdout.toString()) as { end: { sum_received: { bytes: number } } };
  t.ok(report.end.sum_received.bytes > 0, 'iperf3 -P 4 completes with bytes received');

  // UDP iperf3: a stream's connect datagram carries no cookie; the shard it reaches asks the others.
  const iperfUdp = await nsExec(pair.nsB, ['iperf3', '-c', SVC4, '-u', '-P', '4', '-t', '1', '-b', '5M', '-J']);
  t.equal(iperfUdp.code, 0, iperfUdp.stderr);
  const udpReport = JSON.parse(iperfUdp.stdout.toString()) as { end: { sum: { packets: number; lost_packets: number } } };
  t.ok(udpReport.end.sum.packets > 0, `iperf3 -u -P 4 completes (${udpReport.end.sum.packets} datagrams, ${udpReport.end.sum.lost_packets} lost)`);
  // A datagram larger than the MTU: the kernel reassembles its fragments before the fanout hashes it.
  const big = await nsExec(pair.nsB, ['ping', '-c', '2', '-i', '0.2', '-s', '3000', '-W', '3', SVC4]);
  t.equal(big.code, 0, `ping -s 3000: ${big.stdout}`);

  const c = stats(pair.nsA, pair.devA);
  const shard = (i: number, k: string) => c[`shard.${i}.${k}`] ?? 0;
  for (const k of ['tcp.passiveOpens', 'service.http.tcp.requests', 'service.echo.tcp.connections', 'hostlink.rxFrames']) {
    t.ok(shard(0, k) > 0 && shard(1, k) > 0, `${k} on both shards (${shard(0, k)} / ${shard(1, k)})`);
    t.equal(c[k], shard(0, k) + shard(1, k), `${k} summed`);
  }
  t.equal(c['service.http.tcp.requests'], 220, 'every HTTP request counted once');
  t.equal(c['service.iperf3.tcp.completed'], 2);
  t.equal(c['service.echo.udp.datagrams'], 64, 'every UDP echo counted once');

  // SIGTERM: the shards stop, the main thread gives the interface back, the stats socket goes.
  const code = await stop(child);
  child = undefined;
  t.equal(code, 0);
  const addrs = (JSON.parse(run(['ip', '-n', pair.nsA, '-j', 'addr', 'show', 'dev', pair.devA])) as { addr_info: { local: string }[] }[])[0]!
    .addr_info.map((a) => a.local);
  t.ok(addrs.includes(SVC4) && addrs.includes(SVC6), `addresses restored (${addrs.join(' ')})`);
  t.notOk(existsSync(`/run/tsvisor/${pair.nsA}.${pair.devA}.sock`), 'stats socket removed');
  const kernel = await nsExec(pair.nsB, ['ping', '-c', '1', '-W', '3', SVC4]);
  t.equal(kernel.code, 0, 'the kernel answers again');
});

t.test('serve --threads 2 killed with SIGKILL → the record stays, the next serve restores first and serves the addresses', async (t) => {
  const pair = createVethPair({ prefix: 'tsh-k9', addrA: `${SVC4}/24`, addrB: `${PEER4}/24` });
  const children: Awaited<ReturnType<typeof startServe>>['child'][] = [];
  t.teardown(async () => {
    for (const c of children) await stop(c);
    pair.destroy();
  });
  const args = ['--netns', pair.nsA, '--dev', pair.devA, '--threads', '2', '--service', 'echo'];
  const first = await startServe(args);
  children.push(first.child);
  const gone = new Promise((resolve) => first.child.once('exit', resolve));
  first.child.kill('SIGKILL');
  await gone;
  const addrs = () => (JSON.parse(run(['ip', '-n', pair.nsA, '-j', 'addr', 'show', 'dev', pair.devA])) as { addr_info: { local: string }[] }[])[0]!
    .addr_info.map((a) => a.local);
  t.notOk(addrs().includes(SVC4), 'killed outright, the interface is left without its address (as with one thread)');
  // The second one with a capture (a file per shard) and an impairment (a seed per shard).
  const dir = mkdtempSync(join(tmpdir(), 'tsh-k9-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const second = await startServe([...args, '--pcap', join(dir, 'cap.pcap'), '--impair', 'delay=1ms,seed=5']);
  children.push(second.child);
  t.match(second.stderr(), /one file per shard/);
  t.match(second.stderr(), new RegExp(`restored '${pair.devA}' in '${pair.nsA}' as it was before tsvisor serve \\(pid ${first.child.pid}\\)`));
  t.match(second.stderr(), new RegExp(`serving on ${pair.nsA}/${pair.devA} \\(${SVC4}/24, 2 threads\\)`));
  // One datagram and its echo (nc -u would sit out its -w idle time after the answer).
  const echo = await nsExec(pair.nsB, ['python3', '-c',
    `import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(10); s.sendto(b'sharded\\n', ('${SVC4}', 7)); print(s.recv(2048).decode(), end='')`]);
  t.equal(echo.stdout.toString(), 'sharded\n', 'the new serve answers');
  t.ok(stats(pair.nsA, pair.devA)['impair.delayed']! > 0, 'frames delayed by the shards\' impairment');
  t.equal(await stop(second.child), 0);
  t.ok(addrs().includes(SVC4), 'its SIGTERM gives the address back');
  const frames = [0, 1].map((i) => run(['tshark', '-r', join(dir, `cap.shard${i}.pcap`), '-T', 'fields', '-e', 'frame.number']).trim().split('\n').filter(Boolean).length);
  t.ok(frames[0]! + frames[1]! > 0, `the shards' captures read by tshark (${frames.join(' + ')} frames)`);
});

t.test('serve --threads with --tap → one-line refusal, nothing started', async (t) => {
  for (const extra of [['--tap', '--addr', '198.18.140.9/24']]) {
    const out = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'serve', '--netns', 'tsh-none', '--dev', 'x', '--threads', '2', ...extra], (err, _o, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr });
      });
    });
    t.not(out.code, 0, extra[0]);
    t.match(out.stderr, new RegExp(`--threads 2 does not go with ${extra[0]}`), extra[0]);
    t.equal(out.stderr.trim().split('\n').length, 1, 'one line');
  }
});
