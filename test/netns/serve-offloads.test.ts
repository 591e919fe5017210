// `tsvisor serve` with offloads (the default) on a veth that keeps TSO/GSO/GRO and checksum offload, as a real
// container's veth does: curl downloads and uploads through the http service byte-exact over IPv4 and IPv6, the
// packet socket receives GRO'd super-frames and sends TSO super-frames (vnet counters), and `--no-offloads`
// still works on a veth whose offloads are off.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createVethPair } from '../../lib/testnet.ts';
import { bytesDigest, nsExec, randomFile, serveOnVeth, serveStats, startServe, stop } from './serve-helpers.ts';

const SIZE = 32 * 1024 * 1024;
const SVC4 = '198.18.88.2';
const PEER4 = '198.18.88.1';
const SVC6 = 'fd74:7376:88::2';
const PEER6 = 'fd74:7376:88::1';

for (const offloads of [true, false]) {
  const name = offloads
    ? 'serve with offloads on a veth with TSO/GRO → curl 32 MB down and up byte-exact, super-frames both ways'
    : 'serve --no-offloads on a veth without offloads → curl 32 MB down and up byte-exact, no super-frames';
  t.test(name, async (t) => {
    const veth = {
      prefix: offloads ? 'tsvN-so' : 'tsvN-sn',
      addrA: `${SVC4}/24`,
      addrB: `${PEER4}/24`,
      addr6A: `${SVC6}/64`,
      addr6B: `${PEER6}/64`,
      offloads,
    };
    const { pair, dir, child } = await serveOnVeth(t, veth, offloads ? ['--service', 'http'] : ['--service', 'http', '--no-offloads']);
    const upload = await randomFile(dir, SIZE);
    const want = bytesDigest(SIZE);

    for (const [family, host] of [['IPv4', SVC4], ['IPv6', `[${SVC6}]`]] as const) {
      const started = Date.now();
      const down = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-g', '-m', '120', `http://${host}/bytes/${SIZE}`], { keep: 0, timeoutMs: 130_000 });
      t.equal(down.code, 0, `${family} download: curl exits 0 ${down.stderr}`);
      t.equal(down.stdoutLength, SIZE, `${family} download: ${SIZE} bytes in ${Date.now() - started} ms`);
      t.equal(down.stdoutSha, want, `${family} download: SHA-256 of byte i = i mod 256`);
      const t2 = Date.now();
      const up = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-g', '-m', '120', '-H', 'Expect:', '--data-binary', `@${upload.path}`, `http://${host}/sha256`], { timeoutMs: 130_000 });
      t.equal(up.code, 0, `${family} upload: curl exits 0 ${up.stderr}`);
      t.equal(up.stdout.toString(), `${upload.sha}\n`, `${family} upload: hashed right (${Date.now() - t2} ms)`);
    }

    const c = await serveStats(pair.nsA, pair.devA);
    const shown = JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => /^vnet\.|GsoFrames|tooBig/.test(k))));
    if (offloads) {
      t.ok((c['vnet.rxGsoFrames'] ?? 0) > 0, `GRO'd super-frames received (${shown})`);
      t.ok((c['vnet.txGsoFrames'] ?? 0) > 0, `TSO super-frames sent (${shown})`);
      t.ok((c['vnet.rxCsumVerified'] ?? 0) > 0, 'frames taken with the kernel\'s checksum verdict');
      t.equal(c['link.txGsoFrames'], c['vnet.txGsoFrames'], 'the stack and the packet socket agree');
      t.ok((c['hostlink.txGather.bytes'] ?? 0) >= SIZE, `the downloads' payload pointed at in the send queue, not copied (${c['hostlink.txGather.frames']} frames)`);
    } else {
      t.equal(c['vnet.rxGsoFrames'], undefined, 'no vnet counters without offloads');
      t.equal(c['link.txGsoFrames'] ?? 0, 0);
      t.equal(c['link.rxGsoFrames'] ?? 0, 0);
      t.equal(c['hostlink.txGather.frames'], 0, 'no gather without offloads');
    }
    t.equal(c['link.tooBig'] ?? 0, 0, 'no frame dropped as too big');

    const code = await stop(child);
    t.equal(code, 0, 'serve exits 0 on SIGTERM');
  });
}

t.test('serve with offloads and --pcap → the pcap holds super-frames both ways and tshark reads it clean', async (t) => {
  const pair = createVethPair({ prefix: 'tsvN-sp', addrA: `${SVC4}/24`, addrB: `${PEER4}/24`, offloads: true });
  const dir = mkdtempSync(join(tmpdir(), 'tsvN-sp-'));
  let child: ChildProcess | undefined;
  t.teardown(async () => {
    if (child) await stop(child);
    pair.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const pcap = join(dir, 'serve.pcap');
  const upload = await randomFile(dir, 2_000_000);
  child = (await startServe(['--netns', pair.nsA, '--dev', pair.devA, '--service', 'http', '--pcap', pcap])).child;
  const down = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-m', '100', `http://${SVC4}/bytes/2000000`], { keep: 0, timeoutMs: 130_000 });
  t.equal(down.stdoutSha, bytesDigest(2_000_000), 'download byte-exact');
  const up = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-m', '100', '-H', 'Expect:', '--data-binary', `@${upload.path}`, `http://${SVC4}/sha256`], { timeoutMs: 130_000 });
  t.equal(up.stdout.toString(), `${upload.sha}\n`, 'upload byte-exact');
  t.equal(await stop(child), 0);
  child = undefined;
  const lens = await nsExec(pair.nsB, ['tshark', '-r', pcap, '-T', 'fields', '-e', 'frame.len', '-e', 'eth.src'], { timeoutMs: 60000 });
  t.equal(lens.code, 0, `tshark reads the pcap ${lens.stderr}`);
  const rows = lens.stdout.toString().trim().split('\n').map((l) => l.split('\t'));
  const bigOut = rows.filter(([len, src]) => Number(len) > 1514 && src === pair.macA).length;
  const bigIn = rows.filter(([len, src]) => Number(len) > 1514 && src === pair.macB).length;
  t.ok(bigOut > 0, `super-frames sent in the pcap (${bigOut} of ${rows.length})`);
  t.ok(bigIn > 0, `super-frames received in the pcap (${bigIn} of ${rows.length})`);
  const malformed = await nsExec(pair.nsB, ['tshark', '-r', pcap, '-Y', '_ws.malformed || _ws.expert.severity == error'], { timeoutMs: 60000 });
  t.equal(malformed.stdout.toString().trim(), '', 'tshark finds no malformed frames');
});

t.test('serve --no-offloads against a default veth peer (TSO and checksum offload on) → curl down and up byte-exact', async (t) => {
  // The peer's kernel leaves checksums partial (CHECKSUM_PARTIAL) and may hand over TSO super-frames; without
  // the vnet header the packet socket still flags the former (TP_STATUS_CSUMNOTREADY).
  const veth = { prefix: 'tsr-nooff', addrA: `${SVC4}/24`, addrB: `${PEER4}/24`, addr6A: `${SVC6}/64`, addr6B: `${PEER6}/64`, offloads: true };
  const { pair, dir, child } = await serveOnVeth(t, veth, ['--service', 'http', '--no-offloads']);
  const size = 8 * 1024 * 1024;
  const upload = await randomFile(dir, size);
  for (const [family, host] of [['IPv4', SVC4], ['IPv6', `[${SVC6}]`]] as const) {
    const down = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-g', '-m', '60', `http://${host}/bytes/${size}`], { keep: 0, timeoutMs: 70000 });
    t.equal(down.code, 0, `${family} download: curl exits 0 ${down.stderr}`);
    t.equal(down.stdoutSha, bytesDigest(size), `${family} download byte-exact`);
    const up = await nsExec(pair.nsB, ['curl', '-sS', '--fail', '-g', '-m', '60', '-H', 'Expect:', '--data-binary', `@${upload.path}`, `http://${host}/sha256`], { timeoutMs: 70000 });
    t.equal(up.code, 0, `${family} upload: curl exits 0 ${up.stderr}`);
    t.equal(up.stdout.toString(), `${upload.sha}\n`, `${family} upload byte-exact`);
  }
  const c = await serveStats(pair.nsA, pair.devA);
  const shown = JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => /^hostlink\.|badChecksum|tooBig|GsoFrames/.test(k))));
  t.ok((c['hostlink.rxCsumNotReady'] ?? 0) > 0, `the peer's partial checksums arrived and were taken (${shown})`);
  t.equal(c['tcp.badChecksum'] ?? 0, 0, 'no segment dropped for its checksum');
  t.equal(c['hostlink.rxTruncated'] ?? 0, 0, 'no frame truncated');
  t.ok((c['link.rxGsoFrames'] ?? 0) > 0, 'the peer\'s TSO super-frames were taken whole');
  t.equal(c['hostlink.rxDropped'] ?? 0, 0, 'no frame dropped for a full ring (the peer\'s ACKs have small slots of their own)');
  t.equal(c['vnet.rxGsoFrames'], undefined, 'no vnet header in use');
  t.equal(await stop(child), 0, 'serve exits 0 on SIGTERM');
});
