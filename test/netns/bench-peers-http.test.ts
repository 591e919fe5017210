// The bench's http rows compare the same Node server on two stacks: the kernel side's node:http
// (bench/peers/servers.ts) answers every request with the very bytes `tsvisor serve --service http` does, but for
// the Date header. Its own page once answered keep-alive requests chunked where tsvisor's sent a length (issue 15).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { HANG_MS } from '../lib/wait.ts';
import { nsExec, serveOnVeth } from './serve-helpers.ts';

const SVC4 = '198.18.217.2';
const PEER4 = '198.18.217.1';
const SERVERS = join(import.meta.dirname, '../../bench/peers/servers.ts');

t.test('bench kernel peers and serve --service http → the same responses, Date aside', async (t) => {
  const { pair } = await serveOnVeth(t, { prefix: 'tsr-bp', addrA: `${SVC4}/24`, addrB: `${PEER4}/24` }, ['--service', 'http']);
  // The kernel side runs in the peer namespace, on the peer's own address.
  t.equal((await nsExec(pair.nsB, ['ip', 'link', 'set', 'lo', 'up'])).code, 0, 'lo up in the peer namespace');
  const kernel = spawn('ip', ['netns', 'exec', pair.nsB, process.execPath, '--import', 'tsx', SERVERS], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        if (kernel.exitCode !== null || kernel.signalCode !== null) return resolve();
        kernel.once('exit', () => resolve());
        kernel.kill('SIGTERM');
      }),
  );
  let out = '';
  kernel.stdout.on('data', (b: Buffer) => (out += b.toString()));
  kernel.stderr.on('data', (b: Buffer) => (out += b.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kernel peers not ready: ${out}`)), HANG_MS);
    kernel.stdout.on('data', () => {
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    kernel.once('exit', (code) => reject(new Error(`kernel peers exited ${code}: ${out}`)));
  });
  // Two requests on one kept-alive connection each (wrk's case), and a POST, a large body, a 404.
  const cases: string[][] = [
    ['/', '/'],
    ['/bytes/10', '/bytes/100000'],
    ['-X', 'POST', '--data-binary', 'hello', '/sha256'],
    ['/nope'],
  ];
  for (const args of cases) {
    const at = (host: string) => args.map((a) => (a.startsWith('/') ? `http://${host}${a}` : a));
    const kernelSide = await nsExec(pair.nsB, ['curl', '-sS', '-i', '-m', '30', ...at(PEER4)], { timeoutMs: 40_000 });
    const tsvisorSide = await nsExec(pair.nsB, ['curl', '-sS', '-i', '-m', '30', ...at(SVC4)], { timeoutMs: 40_000 });
    t.equal(kernelSide.code, 0, `curl to the kernel side exits 0 ${kernelSide.stderr}`);
    t.equal(tsvisorSide.code, 0, `curl to tsvisor exits 0 ${tsvisorSide.stderr}`);
    const noDate = (s: string) => s.replace(/^date: .*\r\n/gim, '');
    const k = noDate(kernelSide.stdout.toString('latin1'));
    t.match(k, /^HTTP\/1\.1 (200|404) /, `${args.join(' ')}: an HTTP/1.1 response`);
    t.notMatch(k, /transfer-encoding: chunked/i, `${args.join(' ')}: sent with a length, as tsvisor's`);
    t.equal(noDate(tsvisorSide.stdout.toString('latin1')), k, `${args.join(' ')}: the same bytes from both`);
  }
});
