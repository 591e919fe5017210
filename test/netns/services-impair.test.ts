// The http service of `tsvisor serve` through a lossy, reordering link (--impair loss=0.02,reorder=0.02): curl
// moves 40 MB down and 40 MB up over IPv4 and IPv6, and TCP repairs every loss: the digests are exact.
import t from 'tap';
import { bytesDigest, nsExec, randomFile, serveOnVeth, stop } from './serve-helpers.ts';

const SIZE = 40 * 1024 * 1024;
const SVC4 = '198.18.22.2';
const PEER4 = '198.18.22.1';
const SVC6 = 'fd74:7376:22::2';
const PEER6 = 'fd74:7376:22::1';

t.test('http service through 2% loss and 2% reordering: curl downloads and uploads 40 MB over IPv4 and IPv6', async (t) => {
  const veth = { prefix: 'tsv-node-hi', addrA: `${SVC4}/24`, addrB: `${PEER4}/24`, addr6A: `${SVC6}/64`, addr6B: `${PEER6}/64` };
  const { pair, dir, child } = await serveOnVeth(t, veth, ['--service', 'http', '--impair', 'loss=0.02,reorder=0.02,seed=7']);
  const upload = await randomFile(dir, SIZE);
  const want = bytesDigest(SIZE);

  for (const [family, host] of [['IPv4', SVC4], ['IPv6', `[${SVC6}]`]] as const) {
    const started = Date.now();
    const down = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-g', '-m', '240', `http://${host}/bytes/${SIZE}`], { keep: 0, timeoutMs: 250000 });
    const downMs = Date.now() - started;
    t.equal(down.code, 0, `${family} download: curl exits 0 ${down.stderr}`);
    t.equal(down.stdoutLength, SIZE, `${family} download: ${SIZE} bytes in ${downMs} ms`);
    t.equal(down.stdoutSha, want, `${family} download: SHA-256 of byte i = i mod 256`);

    const t2 = Date.now();
    const up = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-g', '-m', '240', '-H', 'Expect:', '--data-binary', `@${upload.path}`, `http://${host}/sha256`], { timeoutMs: 250000 });
    t.equal(up.code, 0, `${family} upload: curl exits 0 ${up.stderr}`);
    t.equal(up.stdout.toString(), `${upload.sha}\n`, `${family} upload: the service hashed the 40 MB right (${Date.now() - t2} ms)`);
  }

  const code = await stop(child);
  t.equal(code, 0, 'serve exits 0 on SIGTERM');
});
