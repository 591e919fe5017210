// `tsvisor serve --tap`: the TAP it creates carries checksum and segmentation offloads (IFF_VNET_HDR with
// TUNSETOFFLOAD) unless `--no-offloads` says otherwise. curl in the TAP's namespace downloads and uploads 32 MB
// through the http service byte-exact over IPv4 and IPv6; with offloads the kernel's TSO super-frames arrive whole
// and the stack's go out whole, their payload written from where it lies; without them every frame fits the MTU.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { deleteNetns, run } from '../../lib/testnet.ts';
import { bytesDigest, nsExec, randomFile, serveStats, startServe, stop } from './serve-helpers.ts';

const SIZE = 32 * 1024 * 1024;
const NS = 'tsvN-st';
const DEV = 'tsvtap0';
const SVC4 = '198.18.89.2';
const PEER4 = '198.18.89.1';
const SVC6 = 'fd74:7376:89::2';
const PEER6 = 'fd74:7376:89::1';

for (const offloads of [true, false]) {
  const name = offloads
    ? 'serve --tap (offloads) → curl 32 MB down and up byte-exact, super-frames both ways'
    : 'serve --tap --no-offloads → curl 32 MB down and up byte-exact, no frame above the MTU';
  t.test(name, async (t) => {
    deleteNetns(NS);
    run(['ip', 'netns', 'add', NS]);
    const dir = mkdtempSync(join(tmpdir(), `${NS}-`));
    let child: ChildProcess | undefined;
    t.teardown(async () => {
      if (child) await stop(child);
      deleteNetns(NS);
      rmSync(dir, { recursive: true, force: true });
    });
    const args = ['--tap', '--netns', NS, '--dev', DEV, '--addr', `${SVC4}/24`, '--addr', `${SVC6}/64`, '--service', 'http'];
    child = (await startServe(offloads ? args : [...args, '--no-offloads'])).child;
    // The kernel's side of the TAP: the peer's addresses, the stack's neighbour over it.
    run(['ip', '-n', NS, 'addr', 'add', `${PEER4}/24`, 'dev', DEV]);
    run(['ip', '-n', NS, 'addr', 'add', `${PEER6}/64`, 'dev', DEV, 'nodad']);
    const features = run(['ip', 'netns', 'exec', NS, 'ethtool', '-k', DEV]);
    t.match(features, offloads ? /tcp-segmentation-offload: on/ : /tcp-segmentation-offload: off/, `the TAP's TSO is ${offloads ? 'on' : 'off'}`);

    const upload = await randomFile(dir, SIZE);
    const want = bytesDigest(SIZE);
    for (const [family, host] of [['IPv4', SVC4], ['IPv6', `[${SVC6}]`]] as const) {
      const down = await nsExec(NS, ['curl', '-sS', '--fail', '-g', '-m', '120', `http://${host}/bytes/${SIZE}`], { keep: 0, timeoutMs: 130_000 });
      t.equal(down.code, 0, `${family} download: curl exits 0 ${down.stderr}`);
      t.equal(down.stdoutLength, SIZE, `${family} download: ${SIZE} bytes`);
      t.equal(down.stdoutSha, want, `${family} download: SHA-256 of byte i = i mod 256`);
      const up = await nsExec(NS, ['curl', '-sS', '--fail', '-g', '-m', '120', '-H', 'Expect:', '--data-binary', `@${upload.path}`, `http://${host}/sha256`], { timeoutMs: 130_000 });
      t.equal(up.code, 0, `${family} upload: curl exits 0 ${up.stderr}`);
      t.equal(up.stdout.toString(), `${upload.sha}\n`, `${family} upload: hashed right`);
    }

    const c = await serveStats(NS, DEV);
    const shown = JSON.stringify(Object.fromEntries(Object.entries(c).filter(([k]) => /GsoFrames|tooBig|hostlink\.(rx|tx)(Frames|Bytes|Truncated|Oversize)/.test(k))));
    if (offloads) {
      t.ok((c['link.rxGsoFrames'] ?? 0) > 0, `the kernel's TSO super-frames taken whole (${shown})`);
      t.ok((c['link.txGsoFrames'] ?? 0) > 0, `super-frames sent for the TAP to cut (${shown})`);
      t.ok(c['hostlink.rxBytes']! / c['hostlink.rxFrames']! > 1514, `received frames average above the MTU (${shown})`);
      // The downloads' payload is written from the send queue where it lies, behind the headers (writev).
      const gathered = c['hostlink.txGather.bytes'] ?? 0;
      t.ok(gathered > SIZE, `over ${SIZE} payload bytes gathered, not copied (${gathered}, joined ${c['hostlink.txGather.joined']})`);
    } else {
      t.equal(c['link.rxGsoFrames'] ?? 0, 0, `no super-frame received (${shown})`);
      t.equal(c['link.txGsoFrames'] ?? 0, 0, 'no super-frame sent');
      t.equal(c['hostlink.txGather.frames'] ?? 0, 0, 'no frame gathered (the stack completes its checksums)');
    }
    t.equal(c['link.tooBig'] ?? 0, 0, 'no frame dropped as too big');
    t.equal(c['hostlink.rxTruncated'] ?? 0, 0, 'no frame cut short by the read buffer');

    const code = await stop(child);
    child = undefined;
    t.equal(code, 0, 'serve exits 0 on SIGTERM');
  });
}
