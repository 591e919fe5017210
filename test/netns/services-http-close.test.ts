// The http service of `tsvisor serve` answering `Connection: close` (the bench's http-rps row) on a real veth: curl
// from the peer namespace gets every byte and the FIN, and a small response leaves with its FIN in one segment, as
// tcpdump on the peer's end of the veth sees it (a data segment and a bare FIN before: one frame more each way).
import { spawn } from 'node:child_process';
import t from 'tap';
import { bytesDigest, nsExec, serveOnVeth, stop } from './serve-helpers.ts';

const SVC4 = '198.19.20.130';
const PEER4 = '198.19.20.129';

t.test('http service, Connection: close: the response and the FIN in one segment, large responses byte-exact', async (t) => {
  const veth = { prefix: 'tpq-hc', addrA: `${SVC4}/26`, addrB: `${PEER4}/26` };
  const { pair, child } = await serveOnVeth(t, veth, ['--service', 'http']);
  // The service's segments that carry a FIN: their payload length.
  const dump = spawn('ip', ['netns', 'exec', pair.nsB, 'tcpdump', '-l', '-n', '-q', '-i', pair.devB, `src host ${SVC4} and tcp src port 80 and tcp[tcpflags] & tcp-fin != 0`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => dump.kill('SIGTERM'));
  let lines = '';
  dump.stdout!.on('data', (d) => (lines += d));
  await new Promise<void>((resolve, reject) => {
    let err = '';
    dump.stderr!.on('data', (d) => {
      err += d;
      if (err.includes('listening on')) resolve();
    });
    dump.on('exit', () => reject(new Error(`tcpdump: ${err}`)));
  });

  for (const n of [100, 1 << 20]) {
    const r = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-m', '30', '-H', 'Connection: close', `http://${SVC4}/bytes/${n}`], { keep: 0 });
    t.equal(r.code, 0, `curl exits 0 ${r.stderr}`);
    t.equal(r.stdoutLength, n, `${n} bytes`);
    t.equal(r.stdoutSha, bytesDigest(n), `${n} bytes: byte i is i mod 256`);
  }
  const start = Date.now();
  while (lines.split('\n').length < 3 && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 50));
  const fins = lines.trim().split('\n');
  t.equal(fins.length, 2, `one FIN per connection: ${lines}`);
  // tcpdump -q: "... IP A.80 > B.P: tcp LEN"; the 100-byte body and its head.
  const len = Number(/tcp (\d+)$/.exec(fins[0]!)?.[1]);
  t.ok(len > 100, `the small response's FIN carries the response (${len} bytes)`);
  t.equal(await stop(child), 0, 'serve exits 0 on SIGTERM');
});
