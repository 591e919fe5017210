// `tsvisor run --network=sandbox` end to end: unmodified Linux programs inside whose socket calls the netstack
// serves, against Linux peers in the caller's namespace (a namespace of the test's own, which holds the caller's
// end of the veth that run makes). curl over IPv4 and IPv6, by /etc/hosts name and by a DNS name answered by a UDP
// responder on a host one hop beyond the peer; python3 -m http.server inside reached from the peer (100 sequential and 20 parallel
// curls) and through --publish; nc both ways with sha256, the data the program wrote before exiting delivered
// (drain); --pcap-log complete on exit.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { run } from '../../lib/testnet.ts';
import { HANG_MS } from '../lib/wait.ts';
import { CLI, callerNs, collect, leftovers, logId, spawnIn, tsvisorRun, waitFor } from './run-helpers.ts';

const ns = callerNs(t, 'rs');
const dir = mkdtempSync(join(tmpdir(), 'tsb-rs-'));
// The program is uid 65534 on the host: the bound directory must be open to it.
chmodSync(dir, 0o755);
const body = randomBytes(2 << 20);
writeFileSync(join(dir, 'file'), body);
const sha = createHash('sha256').update(body).digest('hex');
const peers: ChildProcess[] = [];
t.teardown(() => {
  for (const p of peers) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A Linux program in the caller's (the peer's) namespace, or in `where`, killed at the end. */
function peer(argv: string[], where = ns): ChildProcess {
  const c = spawnIn(where, argv, { stdio: 'pipe' });
  peers.push(c);
  return c;
}

// The DNS server, on a host of its own one hop beyond the peer, which routes for the sandbox: no other address of
// the caller's netns than its veth end is open to the sandbox (run's guard table drops the rest), so a resolver on
// the peer's lo would be out of reach, as a host's 127.0.0.53 is.
const far = callerNs(t, 'rs-far');
const DNS = '198.18.63.53';
// A DNS responder: answers A queries for *.tsb.test with its own address (where an http.server of its host also
// answers), an empty answer for other types (AAAA), NXDOMAIN for other names.
const RESPONDER = `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('${DNS}', 53)); print('ready', flush=True)
while True:
    q, a = s.recvfrom(512)
    tid = struct.unpack('!H', q[:2])[0]; i = 12; labels = []
    while q[i]: labels.append(q[i+1:i+1+q[i]].decode()); i += 1 + q[i]
    qtype = struct.unpack('!H', q[i+1:i+3])[0]; question = q[12:i+5]; ours = '.'.join(labels).endswith('tsb.test')
    ok = ours and qtype == 1
    hdr = struct.pack('!HHHHHH', tid, 0x8180 if ours else 0x8183, 1, 1 if ok else 0, 0, 0)
    ans = (bytes([0xc0, 0x0c]) + struct.pack('!HHIH', 1, 1, 60, 4) + socket.inet_aton('${DNS}')) if ok else b''
    s.sendto(hdr + question + ans, a)
`;

t.before(async () => {
  run(['ip', '-n', ns, '-batch', '-'], [
    `link add tsb-rs-far type veth peer name eth0 netns ${far}`, 'addr add 198.18.63.1/24 dev tsb-rs-far', 'link set tsb-rs-far up', ''].join('\n'));
  run(['ip', '-n', far, '-batch', '-'], [`addr add ${DNS}/24 dev eth0`, 'link set eth0 up', 'route add default via 198.18.63.1', ''].join('\n'));
  run(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  const http = peer(['python3', '-m', 'http.server', '--bind', '::', '--directory', dir, '8080']);
  const farHttp = peer(['python3', '-m', 'http.server', '--bind', DNS, '--directory', dir, '8080'], far);
  const dns = peer(['python3', '-c', RESPONDER], far);
  let ready = '';
  dns.stdout!.on('data', (d) => (ready += d));
  http.stderr!.on('data', () => {});
  farHttp.stderr!.on('data', () => {});
  const listening = (where: string) => run(['ip', 'netns', 'exec', where, 'ss', '-Hltn', 'sport = :8080']).includes('8080');
  if (!(await waitFor(() => ready.includes('ready') && listening(ns) && listening(far), HANG_MS))) throw new Error('peer servers did not start');
});

t.test('curl inside → peer by /etc/hosts name over IPv4 and IPv6, by numeric IPv6, and by a DNS name; sha256 of the body', async (t) => {
  const log = join(dir, 'curl.log');
  const script = [
    'set -e',
    'gw6=$(ip -6 route show default | cut -d" " -f3)',
    'curl -4 -sS -m 20 http://host.tsvisor.internal:8080/file | sha256sum',
    'curl -6 -sS -m 20 http://host.tsvisor.internal:8080/file | sha256sum',
    'curl -sS -m 20 "http://[$gw6]:8080/file" | sha256sum',
  ].join('\n');
  const r = await tsvisorRun(ns, ['--debug-log', log, '--dns', DNS, '--', '/bin/sh', '-c', script]);
  t.equal(r.code, 0, r.stderr);
  const sums = r.stdout.trim().split('\n').map((l) => l.split(' ')[0]);
  t.same(sums, [sha, sha, sha], 'IPv4 name, IPv6 name, IPv6 address');
  t.same(leftovers(logId(log)!, ns), [], 'nothing left');
  t.end();
});

t.test('curl inside → a DNS name answered by a UDP responder one hop beyond the peer (--dns)', async (t) => {
  const r = await tsvisorRun(ns, ['--dns', DNS, '--', '/bin/sh', '-c', 'curl -sS -m 20 http://peer.tsb.test:8080/file | sha256sum']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.split(' ')[0], sha);
  t.end();
});

t.test('wget inside → peer by /etc/hosts name over IPv4 and IPv6, and by a DNS name (--dns); sha256 of the body', async (t) => {
  const script = [
    'set -e',
    'wget -4 -q -T 20 -O - http://host.tsvisor.internal:8080/file | sha256sum',
    'wget -6 -q -T 20 -O - http://host.tsvisor.internal:8080/file | sha256sum',
    'wget -q -T 20 -O - http://peer.tsb.test:8080/file | sha256sum',
  ].join('\n');
  const r = await tsvisorRun(ns, ['--dns', DNS, '--', '/bin/sh', '-c', script]);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n').map((l) => l.split(' ')[0]), [sha, sha, sha], 'IPv4 name, IPv6 name, DNS name');
  t.end();
});

// The peer's side of the half-close and reset checks: on 9013 it reads to end of file and only then answers with
// the sha256 of what it read; on 9014 it waits for one byte and closes with SO_LINGER {1, 0}, which sends a RST.
const HALF_AND_RST = `
import hashlib, socket, struct, threading
def half():
    l = socket.create_server(('0.0.0.0', 9013))
    c, _ = l.accept(); h = hashlib.sha256()
    while True:
        b = c.recv(65536)
        if not b: break
        h.update(b)
    c.sendall((h.hexdigest() + '\\n').encode()); c.close()
def rst():
    l = socket.create_server(('0.0.0.0', 9014))
    c, _ = l.accept(); c.recv(1)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)); c.close()
threading.Thread(target=half).start(); threading.Thread(target=rst).start()
print('ready', flush=True)
`;

t.test('nc: half-close (-N) → the peer answers after the program\'s FIN and the program reads it; UDP both ways; a peer RST → ECONNRESET inside', async (t) => {
  const data = randomBytes(1 << 20);
  writeFileSync(join(dir, 'half.bin'), data);
  const dsha = createHash('sha256').update(data).digest('hex');
  const servers = peer(['python3', '-c', HALF_AND_RST]);
  let ready = '';
  servers.stdout!.on('data', (d) => (ready += d));
  await waitFor(() => ready.includes('ready'), HANG_MS);
  const half = await tsvisorRun(ns, ['--bind', `${dir}:/mnt`, '--', '/bin/sh', '-c', 'nc -N host.tsvisor.internal 9013 < /mnt/half.bin']);
  t.equal(half.code, 0, half.stderr);
  t.equal(half.stdout.trim(), dsha, 'the peer read every byte up to the FIN, and its answer came back after it');

  const reset = await tsvisorRun(ns, ['--', 'python3', '-c', `
import errno, socket
s = socket.create_connection(('host.tsvisor.internal', 9014)); s.sendall(b'x')
try:
    print('read', s.recv(10))
except OSError as e:
    print(errno.errorcode[e.errno])
`]);
  t.equal(reset.code, 0, reset.stderr);
  t.equal(reset.stdout, 'ECONNRESET\n', 'the peer\'s RST reads as ECONNRESET');

  // UDP out: nc -u inside sends one datagram to nc -u -l on the peer (IPv4 both: a datagram has no fallback to
  // the next address of the name, as TCP's connect has).
  const sink = peer(['nc', '-4', '-u', '-l', '-W', '1', '9011']);
  let got = '';
  sink.stdout!.on('data', (d) => (got += d));
  await waitFor(() => run(['ip', 'netns', 'exec', ns, 'ss', '-Hlun', 'sport = :9011']).includes('9011'), HANG_MS);
  const out = await tsvisorRun(ns, ['--', '/bin/sh', '-c', 'echo datagram-out | nc -4 -u -w 1 host.tsvisor.internal 9011']);
  t.equal(out.code, 0, out.stderr);
  t.ok(await waitFor(() => got.includes('\n'), HANG_MS), 'the peer got a datagram');
  t.equal(got, 'datagram-out\n');

  // UDP in: nc -u -l inside takes one datagram from the peer, which sends until the program has one.
  const srv = await startRun(['--', 'nc', '-4', '-u', '-l', '-W', '1', '9012']);
  let done = false;
  const status = new Promise<number | null>((res) => srv.child.once('close', (code) => ((done = true), res(code))));
  for (let i = 0; i < 200 && !done; i++) {
    await collect(spawnIn(ns, ['/bin/sh', '-c', `echo datagram-in | nc -u -w 0 ${srv.sandbox} 9012`]));
    await new Promise((res) => setTimeout(res, 50));
  }
  if (!done) srv.child.kill('SIGKILL');
  t.equal(await status, 0, srv.out());
  t.equal(srv.out(), 'datagram-in\n', 'the program got the peer\'s datagram');
  t.end();
});

/** Starts `tsvisor run ARGS` in the caller namespace; resolves once its log says the program runs. */
async function startRun(args: string[]): Promise<{ child: ChildProcess; log: string; sandbox: string; out: () => string }> {
  const log = join(dir, `run-${Math.random().toString(36).slice(2)}.log`);
  const child = spawnIn(ns, [process.execPath, CLI, 'run', '--debug-log', log, ...args]);
  peers.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const read = () => {
    try {
      return readFileSync(log, 'utf8');
    } catch {
      return '';
    }
  };
  if (!(await waitFor(() => read().includes('timing ready='), HANG_MS))) throw new Error(`run did not start: ${out}`);
  const sandbox = /↔ \S+ \((198\.18\.\d+\.\d+)\/30/.exec(read())![1]!;
  return { child, log, sandbox, out: () => out };
}

/** curl from the peer; resolves to its stdout (the HTTP status with -w). */
async function curlFromPeer(url: string): Promise<string> {
  const r = await collect(spawnIn(ns, ['curl', '-sS', '-m', '20', '-o', '/dev/null', '-w', '%{http_code}', url]));
  return r.stdout;
}

t.test('python3 -m http.server inside → 100 sequential and 20 parallel curls from the peer, and through --publish', async (t) => {
  const srv = await startRun(['--publish', '18080:8000', '--bind', `${dir}:/srv`, '--cwd', '/srv', '--', 'python3', '-m', 'http.server', '8000']);
  const base = `http://${srv.sandbox}:8000`;
  let up = false;
  for (let i = 0; i < 100 && !up; i++) {
    up = (await curlFromPeer(`${base}/file`)) === '200';
    if (!up) await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(up, 'the server inside answers');
  let ok = 0;
  for (let i = 0; i < 100; i++) if ((await curlFromPeer(`${base}/file`)) === '200') ok++;
  t.equal(ok, 100, '100 sequential');
  const parallel = await Promise.all(Array.from({ length: 20 }, () => collect(spawnIn(ns, ['/bin/sh', '-c', `curl -sS -m 30 ${base}/file | sha256sum`]))));
  t.equal(parallel.filter((r) => r.stdout.startsWith(sha)).length, 20, '20 parallel, every body intact');
  const published = await collect(spawnIn(ns, ['/bin/sh', '-c', 'curl -sS -m 20 http://127.0.0.1:18080/file | sha256sum']));
  t.equal(published.stdout.split(' ')[0], sha, 'through --publish 18080:8000');
  srv.child.kill('SIGINT');
  const r = await collect(srv.child);
  t.equal(r.code, 0, 'SIGINT forwarded: http.server catches KeyboardInterrupt and exits 0');
  t.end();
});

t.test('nc both ways → 10 MB with sha256; what the program wrote before exiting is delivered (drain)', async (t) => {
  const data = randomBytes(10 << 20);
  writeFileSync(join(dir, 'nc.bin'), data);
  const dsha = createHash('sha256').update(data).digest('hex');
  // Out: nc inside sends the file to nc -l on the peer and exits at once (-N: shutdown after EOF).
  const sink = peer(['/bin/sh', '-c', 'nc -l 9001 | sha256sum']);
  let sinkOut = '';
  sink.stdout!.on('data', (d) => (sinkOut += d));
  await waitFor(() => run(['ip', 'netns', 'exec', ns, 'ss', '-Hltn', 'sport = :9001']).includes('9001'), HANG_MS);
  const out = await tsvisorRun(ns, ['--bind', `${dir}:/mnt`, '--', '/bin/sh', '-c', 'nc -N host.tsvisor.internal 9001 < /mnt/nc.bin']);
  t.equal(out.code, 0, out.stderr);
  t.ok(await waitFor(() => sinkOut.includes(' '), HANG_MS), 'peer got EOF');
  t.equal(sinkOut.split(' ')[0], dsha, 'peer received every byte');

  // In: nc -l inside, the peer sends the file.
  const srv = await startRun(['--', '/bin/sh', '-c', 'nc -l 9002 | sha256sum']);
  // Refused until nc inside listens; once it has taken a connection it listens no more, so the tries stop there.
  let sent = false;
  let last = '';
  for (let i = 0; i < 100 && !sent && srv.child.exitCode === null; i++) {
    const r = await collect(spawnIn(ns, ['/bin/sh', '-c', `nc -N ${srv.sandbox} 9002 < ${join(dir, 'nc.bin')}`]));
    sent = r.code === 0;
    last = `try ${i + 1}: ${r.code ?? r.signal} ${r.stderr.trim()}`;
    if (!sent) await new Promise((res) => setTimeout(res, 100));
  }
  // nc -N ends at the program's FIN: the program's close must reach the peer before run takes the link down.
  t.ok(sent, `peer connected, sent and saw the program's FIN (${last})`);
  const r = await collect(srv.child);
  t.equal(r.code, 0, r.stderr);
  t.equal(srv.out().split(' ')[0], dsha, 'the program received every byte');
  t.end();
});

t.test('--pcap-log → a complete capture of the sandbox link on exit', async (t) => {
  const pcap = join(dir, 'link.pcap');
  const r = await tsvisorRun(ns, ['--pcap-log', pcap, '--', 'curl', '-sS', '-m', '20', '-o', '/dev/null', 'http://host.tsvisor.internal:8080/file']);
  t.equal(r.code, 0, r.stderr);
  const fin = run(['tshark', '-r', pcap, '-Y', 'tcp.flags.fin == 1', '-T', 'fields', '-e', 'tcp.srcport']).trim().split('\n').filter(Boolean);
  t.ok(fin.length >= 2, `both FINs captured (${fin.length})`);
  const data = run(['tshark', '-r', pcap, '-Y', 'tcp.len > 0', '-T', 'fields', '-e', 'tcp.len']).trim().split('\n');
  t.ok(data.reduce((a, b) => a + Number(b), 0) > 2 << 20, 'the whole transfer is in it');
  t.end();
});

t.test('iperf3 inside as server (TCP, -R, -u) and as client (TCP, -R) against the peer', async (t) => {
  const srv = await startRun(['--', 'iperf3', '-s', '-p', '5301']);
  const client = async (args: string[]) => {
    let last = '';
    for (let i = 0; i < 40; i++) {
      const r = await collect(spawnIn(ns, ['iperf3', '-c', srv.sandbox, '-p', '5301', '-t', '1', '-J', ...args]), 60000);
      // iperf3 can print an error document (the server still busy with the previous test) and exit 0.
      let j: { error?: string; end?: { sum_received?: { bytes: number }; sum?: { bytes: number; lost_percent: number } } } | undefined;
      try {
        j = JSON.parse(r.stdout) as typeof j;
      } catch {
        j = undefined;
      }
      if (r.code === 0 && j && !j.error && (j.end?.sum_received || j.end?.sum)) return j as Required<typeof j>;
      last = j?.error ?? r.stderr;
      await new Promise((res) => setTimeout(res, 250));
    }
    throw new Error(`iperf3 ${args.join(' ')} never succeeded: ${last}`);
  };
  t.ok((await client([])).end.sum_received!.bytes > 1 << 20, 'TCP peer → program');
  t.ok((await client(['-R'])).end.sum_received!.bytes > 1 << 20, 'TCP program → peer (-R)');
  const udp = await client(['-u', '-b', '50M']);
  t.ok(udp.end.sum!.bytes > 1 << 20, `UDP peer → program (${udp.end.sum!.lost_percent.toFixed(1)}% lost)`);
  srv.child.kill('SIGTERM');
  await collect(srv.child);

  const server = peer(['iperf3', '-s', '-p', '5302']);
  server.stdout!.on('data', () => {});
  await waitFor(() => run(['ip', 'netns', 'exec', ns, 'ss', '-Hltn', 'sport = :5302']).includes('5302'), HANG_MS);
  for (const extra of [[], ['-R']]) {
    const r = await tsvisorRun(ns, ['--', 'iperf3', '-c', 'host.tsvisor.internal', '-4', '-p', '5302', '-t', '1', '-J', ...extra]);
    t.equal(r.code, 0, r.stderr);
    t.ok((JSON.parse(r.stdout) as { end: { sum_received: { bytes: number } } }).end.sum_received.bytes > 1 << 20, `client inside ${extra.join(' ')}`);
  }
  t.end();
});

t.test('--strace → one line per trapped call on stderr; --debug-log DIR/ → a log file per run named by its id', async (t) => {
  const logs = join(dir, 'logs/');
  const r = await tsvisorRun(ns, ['--strace', '--debug-log', logs, '--', 'curl', '-4', '-sS', '-m', '20', '-o', '/dev/null', 'http://host.tsvisor.internal:8080/file']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /^\[\d+\] socket\(AF_INET, .*\) = \d+ <[\d.]+ (µs|ms)>$/m, 'socket served by the Sentry');
  t.match(r.stderr, /^\[\d+\] connect\(\d+, \{AF_INET, 198\.18\.\d+\.1:8080\}, 16\) = (0|-EINPROGRESS) <[\d.]+ (µs|ms)>$/m, 'connect with its address');
  const files = readdirSync(logs);
  t.equal(files.length, 1);
  t.match(files[0], /^tsvisor-run-[0-9a-f]{6}\.log$/);
  t.match(readFileSync(join(logs, files[0]!), 'utf8'), /timing ready=/);
  t.end();
});
