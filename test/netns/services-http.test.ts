// The http service of `tsvisor serve` (node:http over tsvisor/net over the netstack) on a real veth, driven by
// curl from the peer namespace: 100 MB down from /bytes/N and 100 MB up to /sha256, IPv4 and IPv6, digests exact.
import t from 'tap';
import { bytesDigest, nsExec, randomFile, serveOnVeth, stop } from './serve-helpers.ts';

const SIZE = 100 * 1024 * 1024;
const SVC4 = '198.18.21.2';
const PEER4 = '198.18.21.1';
const SVC6 = 'fd74:7376:21::2';
const PEER6 = 'fd74:7376:21::1';

t.test('http service on a veth: curl downloads and uploads 100 MB over IPv4 and IPv6', async (t) => {
  const veth = { prefix: 'tsv-node-h', addrA: `${SVC4}/24`, addrB: `${PEER4}/24`, addr6A: `${SVC6}/64`, addr6B: `${PEER6}/64` };
  const { pair, dir, child } = await serveOnVeth(t, veth, ['--service', 'http']);
  const upload = await randomFile(dir, SIZE);
  const want = bytesDigest(SIZE);

  for (const [family, host] of [['IPv4', SVC4], ['IPv6', `[${SVC6}]`]] as const) {
    const started = Date.now();
    const down = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-g', '-m', '120', `http://${host}/bytes/${SIZE}`], { keep: 0, timeoutMs: 130000 });
    const downMs = Date.now() - started;
    t.equal(down.code, 0, `${family} download: curl exits 0 ${down.stderr}`);
    t.equal(down.stdoutLength, SIZE, `${family} download: ${SIZE} bytes in ${downMs} ms`);
    t.equal(down.stdoutSha, want, `${family} download: SHA-256 of byte i = i mod 256`);

    const t2 = Date.now();
    const up = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-g', '-m', '120', '-H', 'Expect:', '--data-binary', `@${upload.path}`, `http://${host}/sha256`], { timeoutMs: 130000 });
    t.equal(up.code, 0, `${family} upload: curl exits 0 ${up.stderr}`);
    t.equal(up.stdout.toString(), `${upload.sha}\n`, `${family} upload: the service hashed the 100 MB right (${Date.now() - t2} ms)`);
  }

  const page = await nsExec(pair.nsB, ['curl', '-sS', '-i', '-m', '100', `http://${SVC4}/`], { timeoutMs: 150_000 });
  t.match(page.stdout.toString(), /^HTTP\/1\.1 200 OK\r\n/);
  t.match(page.stdout.toString(), /<h1>tsvisor<\/h1>/);
  const missing = await nsExec(pair.nsB, ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '-m', '100', `http://${SVC4}/missing`], { timeoutMs: 150_000 });
  t.equal(missing.stdout.toString(), '404');
  // Keep-alive: curl fetches several URLs over one connection ("Re-using existing connection").
  const multi = await nsExec(pair.nsB, ['curl', '-sS', '-v', '-o', '/dev/null', '-o', '/dev/null', '-o', '/dev/null', '-m', '100',
    `http://${SVC4}/bytes/1000`, `http://${SVC4}/bytes/2000`, `http://${SVC4}/`], { timeoutMs: 150_000 });
  t.equal(multi.code, 0);
  t.equal((multi.stderr.match(/Connected to/g) ?? []).length, 1, 'three requests over one kept-alive connection');

  const code = await stop(child);
  t.equal(code, 0, 'serve exits 0 on SIGTERM');
});
