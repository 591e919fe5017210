// `tsvisor serve --service http` on a real veth: curl fetching several URLs over one kept-alive connection gets
// every response without the stack holding any for tcp(7)'s 200 ms cork ceiling (issue 15: Node's empty final
// buffer after the body corked every keep-alive response). Checked on the stack's counter, not on wall time.
import t from 'tap';
import { CLI, nsExec, serveOnVeth, stop } from './serve-helpers.ts';

const SVC4 = '198.18.215.2';
const PEER4 = '198.18.215.1';
const REQUESTS = 20;

t.test('serve http, curl with keep-alive → one connection, every response without a cork-ceiling wait', async (t) => {
  const { pair, child } = await serveOnVeth(t, { prefix: 'tsr-ka', addrA: `${SVC4}/24`, addrB: `${PEER4}/24` }, ['--service', 'http']);
  // Bodies of every kind node:http writes: a string page (head and body in one write), and streamed /bytes/N
  // of one and of several chunks (res.write then res.end(), whose final buffer is empty).
  const paths = Array.from({ length: REQUESTS }, (_, i) => ['/', '/bytes/10', '/bytes/100000', '/bytes/300000'][i % 4]!);
  const urls = paths.map((p) => `http://${SVC4}${p}`);
  const curl = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-m', '60', '-w', '%{time_total} %{num_connects}\\n', ...urls.flatMap((u) => ['-o', '/dev/null', u])], { timeoutMs: 70000 });
  t.equal(curl.code, 0, `curl exits 0 ${curl.stderr}`);
  const rows = curl.stdout.toString().trim().split('\n').map((l) => l.split(' ').map(Number));
  t.equal(rows.length, REQUESTS, 'one line per request');
  t.equal(rows.filter(([, connects]) => connects === 1).length, 1, 'curl connected once and reused the connection');
  const times = rows.map(([s]) => Math.round(s! * 1000));

  const stats = await nsExec(pair.nsA, [process.execPath, CLI, 'stats', '--netns', pair.nsA, '--dev', pair.devA, '--json'], { timeoutMs: 60_000 });
  t.equal(stats.code, 0, `stats exits 0 ${stats.stderr}`);
  const c = JSON.parse(stats.stdout.toString()) as Record<string, number>;
  t.equal(c['service.http.tcp.requests'], REQUESTS, 'every request answered');
  t.equal(c['service.http.tcp.connections'], 1, 'on one connection');
  t.equal(c['tcp.corkCeilingFlushes'], 0, `no response waited for the cork ceiling (times in ms: ${times.join(' ')})`);
  t.equal(await stop(child), 0, 'serve exits 0 on SIGTERM');
});
