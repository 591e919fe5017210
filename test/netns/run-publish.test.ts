// The --publish forwarder (sentry/sandbox/publish.ts) against a real netstack: a child Node process inside a
// namespace of the test's own runs a netstack (loopback plus an address on a channel link) with TCP and UDP echo
// servers on it and the Publisher in front; Linux clients (socat) in the same namespace reach them
// through the published host ports. The netstack side sees the sandbox's own address as the peer.
import t from 'tap';
import { parsePublish } from '../../sentry/sandbox/publish.ts';
import { HANG_MS } from '../lib/wait.ts';
import { CLI, callerNs, collect, spawnIn, waitFor } from './run-helpers.ts';

t.test('parsePublish → HOSTIP (v4, [v6]), ports and protocol; mistakes named', (t) => {
  t.same(parsePublish('8080:80'), { hostIp: undefined, hostPort: 8080, port: 80, proto: 'tcp' });
  t.same(parsePublish('198.18.0.1:53:5353/udp'), { hostIp: '198.18.0.1', hostPort: 53, port: 5353, proto: 'udp' });
  t.same(parsePublish('[fd74:7376::1]:443:8443/tcp'), { hostIp: 'fd74:7376::1', hostPort: 443, port: 8443, proto: 'tcp' });
  t.equal(parsePublish('80'), "'80' is not [HOSTIP:]HOSTPORT:PORT[/udp]");
  t.equal(parsePublish('0:80'), "port 0 in '0:80' is outside 1..65535");
  t.equal(parsePublish('1.2.3:80:80'), "'1.2.3' in '1.2.3:80:80' is not an IP address");
  t.equal(parsePublish('fd74::1:80:80'), "'fd74::1:80:80' is not [HOSTIP:]HOSTPORT:PORT[/udp]");
  t.end();
});

const CHILD = `
const { Netstack } = await import('./netstack/netstack.ts');
const { NodeClock } = await import('./lib/clock.ts');
const { LoopbackEndpoint } = await import('./netstack/link/loopback.ts');
const { parseSubnet } = await import('./netstack/addr.ts');
const { bindNet } = await import('./netstack/adapter/net.ts');
const { bindDgram } = await import('./netstack/adapter/dgram.ts');
const { Publisher, parsePublish } = await import('./sentry/sandbox/publish.ts');
const clock = new NodeClock();
const ns = new Netstack({ clock });
// The sandbox's address on a NIC of its own (a loopback-style link stands in for the veth: nothing leaves).
const nic = ns.stack.addNic(new LoopbackEndpoint({ clock, macAddress: Uint8Array.of(2, 0, 0, 0, 0, 1) }), { name: 'eth0' });
ns.stack.addAddress(nic, parseSubnet('198.18.62.2/30'));
const net = bindNet(ns);
net.createServer({ allowHalfOpen: true }, (s) => {
  const peer = s.remoteAddress;
  let got = Buffer.alloc(0);
  s.on('data', (d) => (got = Buffer.concat([got, d])));
  s.on('end', () => s.end('peer=' + peer + ' len=' + got.length + ' ' + got.toString('hex').slice(0, 16) + '\\n'));
}).listen(80, '0.0.0.0');
const u = bindDgram(ns).createSocket('udp4');
u.on('message', (m, r) => u.send(Buffer.concat([Buffer.from('echo ' + r.address + ' '), m]), r.port, r.address));
u.bind(5353);
const pub = await Publisher.start(ns, ['18080:80', '127.0.0.1:15353:5353/udp'].map(parsePublish), [parseSubnet('198.18.62.2/30').address]);
console.log('ready');
process.on('SIGTERM', () => { pub.close(); console.log(JSON.stringify(pub.stats)); process.exit(0); });
`;

t.test('TCP and UDP published ports → forwarded into the netstack, peer is the sandbox address, half-close kept', async (t) => {
  const ns = callerNs(t, 'rp');
  const child = spawnIn(ns, [process.execPath, '--import', 'tsx', '--input-type=module', '-e', CHILD]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  t.ok(await waitFor(() => out.includes('ready'), 30000), `publisher ready ${err}`);

  // 200 KB up with a half-close: the server answers only after our FIN, so the FIN crossed the forwarder.
  const tcp = await collect(spawnIn(ns, ['/bin/sh', '-c', `yes ab | tr -d '\\n' | head -c 200000 | socat -t 5 - TCP:127.0.0.1:18080,shut-down`]));
  t.match(tcp.stdout, /^peer=198\.18\.62\.2 len=200000 6162616261626162\n$/, 'all bytes, then the answer after FIN; the peer is the sandbox address');

  const v6 = await collect(spawnIn(ns, ['/bin/sh', '-c', `printf xyz | socat -t 5 - TCP6:[::1]:18080,shut-down`]));
  t.match(v6.stdout, /^peer=198\.18\.62\.2 len=3 78797a\n$/, 'the wildcard listener takes IPv6 too');

  const udp = await collect(spawnIn(ns, ['/bin/sh', '-c', 'printf hello | socat -t 2 - UDP:127.0.0.1:15353']));
  t.equal(udp.stdout, 'echo 198.18.62.2 hello', 'UDP forwarded both ways');

  child.kill('SIGTERM');
  const done = await collect(child);
  const stats = JSON.parse(done.stdout.trim().split('\n').pop()!);
  t.ok(stats.tcpConnections >= 2 && stats.udpFlows === 1 && stats.udpDatagrams === 1, JSON.stringify(stats));
  t.end();
});

t.test('tsvisor run: the program exits while the peer still holds its published connection → tsvisor exits with it', async (t) => {
  // The forwarder's socket on the netstack and the peer's connection stay open: neither may keep tsvisor alive
  // once the program is gone (what it wrote was delivered, so the drain has nothing to wait for).
  const ns = callerNs(t, 't9c-pub');
  let out = '';
  const run = spawnIn(ns, [process.execPath, CLI, 'run', '--publish', '18082:8000', '--', 'python3', '-c', `
import socket, sys
l = socket.create_server(('0.0.0.0', 8000)); print('up', flush=True)
c, _ = l.accept(); c.sendall(b'hi\\n'); sys.exit(7)
`]);
  run.stdout!.on('data', (d) => (out += d));
  const ran = collect(run, HANG_MS);
  t.ok(await waitFor(() => out.includes('up'), HANG_MS), 'the program listens');
  const peer = spawnIn(ns, ['python3', '-c', `
import socket, time
s = socket.create_connection(('127.0.0.1', 18082)); print(s.recv(10).decode(), end='', flush=True); time.sleep(600)
`]);
  t.teardown(() => peer.kill('SIGKILL'));
  let got = '';
  peer.stdout!.on('data', (d) => (got += d));
  const r = await ran;
  t.equal(r.code, 7, `the program's status passed through ${r.stderr}`);
  t.equal(peer.exitCode, null, 'the peer still held its connection when tsvisor exited');
  t.ok(await waitFor(() => got === 'hi\n', HANG_MS), 'what the program wrote reached the peer');
  t.end();
});
