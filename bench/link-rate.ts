/**
 * Frames per second through AfPacketEndpoint, next to the kernel's own rate for the same traffic, in one run.
 *
 *   node --import tsx bench/link-rate.ts [--seconds 5] [--size 60] [--flood packet|udp]
 *
 * Two namespaces joined by a veth (offloads off, as the endpoint needs without PACKET_VNET_HDR). A flooder process
 * in B sends UDP to A: by default prebuilt UDP frames through an AF_PACKET socket with sendmmsg (on our VMs a kernel
 * UDP socket cannot send much faster than the kernel receives, so it would measure itself), or with `--flood udp`
 * through a kernel UDP socket with sendmmsg. The same flood is measured by
 *   1. a kernel UDP receiver in A counting with recvmmsg (the kernel's own receive rate),
 *   2. AfPacketEndpoint on A's interface, taken over from the kernel, counting frames in its dispatcher;
 * then AfPacketEndpoint sends UDP frames to a kernel UDP receiver in B (send rate, and what arrived).
 * Children are this same file with --role flood|sink, started inside a namespace with `ip netns exec`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { C, check, sockaddrIn, setIntOption, sys } from '../lib/libc.ts';
import { MmsgBatch } from '../lib/mmsg.ts';
import { AfPacketEndpoint } from '../lib/packet.ts';
import { takeOver } from '../lib/takeover.ts';
import { createVethPair, run } from '../lib/testnet.ts';
import { ip4, mac, udp } from '../test/lib/frames.ts';

const A_IP = '198.18.60.1';
const B_IP = '198.18.60.2';
const PORT = 9000;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : def;
}

const seconds = Number(arg('seconds', '5'));
const frameSize = Number(arg('size', '60')); // Ethernet frame without FCS
const payload = Math.max(0, frameSize - 42);
const floodKind = arg('flood', 'packet'); // packet: AF_PACKET sendmmsg of prebuilt frames; udp: kernel UDP socket

/** Child: sends UDP datagrams to --dst:PORT with sendmmsg for --seconds, then prints {sent, seconds}. */
function flood(): void {
  const fd = check(sys.socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_CLOEXEC, 0), 'socket');
  setIntOption(fd, C.SOL_SOCKET, C.SO_SNDBUFFORCE, 4 << 20, 'SO_SNDBUFFORCE');
  check(sys.connect(fd, sockaddrIn(ip4(arg('dst', A_IP)), PORT), 16), 'connect');
  const batch = new MmsgBatch(64, Math.max(payload, 1));
  for (let i = 0; i < 64; i++) batch.setLength(i, payload);
  let sent = 0;
  let failed = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    for (let k = 0; k < 16; k++) {
      const n = batch.send(fd, 0, 64);
      if (n > 0) sent += n;
      else failed++;
    }
  }
  const elapsed = (performance.now() - start) / 1000;
  process.stdout.write(JSON.stringify({ sent, failed, seconds: elapsed }) + '\n');
}

/** Sends `frame` through `ep` as fast as the kernel takes it for `secs` seconds; returns frames sent and refused. */
async function blast(ep: AfPacketEndpoint, frame: Uint8Array, secs: number): Promise<{ sent: number; refused: number; seconds: number }> {
  const before = ep.counters.txFrames;
  const t0 = performance.now();
  let refused = 0;
  while (performance.now() - t0 < secs * 1000) {
    for (let r = 0; r < 16; r++) {
      for (let i = 0; i < 256; i++) if (!ep.writeFrame(frame)) refused++;
      ep.flush();
    }
    await new Promise((r) => setImmediate(r)); // lets a writable wake-up resume a blocked queue
  }
  return { sent: ep.counters.txFrames - before, refused, seconds: (performance.now() - t0) / 1000 };
}

/** Child: floods A with prebuilt UDP frames through an AfPacketEndpoint on B's interface (no UDP send path). */
async function packetFlood(): Promise<void> {
  const ep = await AfPacketEndpoint.open({ netns: arg('netns', ''), dev: arg('dev', ''), sendQueue: 1024 });
  const frame = udp(mac(arg('srcmac', '')), mac(arg('dstmac', '')), ip4(B_IP), ip4(A_IP), 4000, PORT, new Uint8Array(payload));
  const r = await blast(ep, frame, seconds);
  ep.close();
  process.stdout.write(JSON.stringify({ sent: r.sent, failed: r.refused + ep.counters.txDropped, seconds: r.seconds }) + '\n');
}

/** Child: counts UDP datagrams on PORT with recvmmsg, from the first one for --seconds, then prints the count. */
function sink(): void {
  const fd = check(sys.socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_CLOEXEC, 0), 'socket');
  setIntOption(fd, C.SOL_SOCKET, C.SO_RCVBUFFORCE, 8 << 20, 'SO_RCVBUFFORCE');
  check(sys.bind(fd, sockaddrIn(new Uint8Array(4), PORT), 16), 'bind');
  // SO_RCVTIMEO 100 ms (struct timeval), so the loop can stop when the flood stops.
  const tv = new Uint8Array(16);
  new DataView(tv.buffer).setBigInt64(8, 100_000n, true);
  check(sys.setsockopt(fd, C.SOL_SOCKET, 20, tv, 16), 'setsockopt', 'SO_RCVTIMEO');
  process.stdout.write('ready\n');
  const batch = new MmsgBatch(256, 2048);
  const MSG_WAITFORONE = 0x10000;
  let got = 0;
  let start = 0;
  const idleLimit = performance.now() + 15000;
  for (;;) {
    const n = batch.recv(fd, MSG_WAITFORONE);
    const now = performance.now();
    if (n > 0) {
      if (start === 0) start = now;
      got += n;
    } else if (start === 0 && now > idleLimit) break;
    if (start !== 0 && now - start >= seconds * 1000) break;
  }
  const elapsed = start === 0 ? 0 : (performance.now() - start) / 1000;
  process.stdout.write(JSON.stringify({ received: got, seconds: elapsed }) + '\n');
}

interface Child {
  ready: Promise<void>;
  result: Promise<Record<string, number>>;
  pid: number | undefined;
}

/** Starts this file with a role inside a namespace; resolves with the JSON line it prints last. */
function child(netns: string, role: string, extra: string[] = []): Child {
  const self = fileURLToPath(import.meta.url);
  const p = spawn(
    'ip',
    ['netns', 'exec', netns, process.execPath, '--import', 'tsx', self, '--role', role, '--seconds', String(seconds), '--size', String(frameSize), ...extra],
    { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  let onReady: () => void = () => {};
  const ready = new Promise<void>((r) => (onReady = r));
  p.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('ready\n')) onReady();
  });
  const result = new Promise<Record<string, number>>((resolve, reject) => {
    p.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !last.startsWith('{')) reject(new Error(`${role} in ${netns} exited ${code}: ${out}`));
      else resolve(JSON.parse(last));
    });
  });
  if (role.endsWith('flood')) onReady();
  return { ready, result, pid: p.pid };
}

const rate = (n: number, s: number) => (s > 0 ? Math.round(n / s) : 0);
const fmt = (n: number) => n.toLocaleString('en-US').padStart(11);

async function main(): Promise<void> {
  const net = createVethPair({ prefix: 'tsv-lib-bench', addrA: `${A_IP}/24`, addrB: `${B_IP}/24` });
  const cleanup = () => net.destroy();
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
  try {
    console.log(
      `link-rate: ${frameSize}-byte frames (UDP payload ${payload}), ${seconds} s per phase, veth ${net.nsA} ↔ ${net.nsB}, ` +
        `offloads off, flood: ${floodKind === 'udp' ? 'kernel UDP socket, sendmmsg' : 'AF_PACKET sendmmsg of prebuilt UDP frames'}`,
    );

    // 1. The kernel's own receive rate.
    const ksink = child(net.nsA, 'sink');
    await ksink.ready;
    const startFlood = () =>
      floodKind === 'udp'
        ? child(net.nsB, 'flood', ['--dst', A_IP])
        : child(net.nsB, 'pflood', ['--netns', net.nsB, '--dev', net.devB, '--srcmac', net.macB, '--dstmac', net.macA]);
    const f1 = startFlood();
    const [k, kf] = await Promise.all([ksink.result, f1.result]);
    console.log(`kernel UDP receive, recvmmsg          ${fmt(rate(k.received!, k.seconds!))} frames/s   (flood sent ${fmt(rate(kf.sent!, kf.seconds!))}/s)`);

    // 2. AfPacketEndpoint receive, with the interface taken from the kernel as in real use.
    run(['ip', '-n', net.nsB, 'neigh', 'replace', A_IP, 'lladdr', net.macA, 'dev', net.devB]);
    const taken = takeOver(net.nsA, net.devA);
    const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, ringFrames: 8192 });
    let frames = 0;
    let batches = 0;
    let first = 0;
    let last = 0;
    // The flood is limited by the flooder's CPU, which also runs A's receive softirq; to see what the endpoint
    // itself could take, the main thread stalls now and then so the ring fills, and the drain of that backlog is
    // timed: frames per second of the receive path (ring walk + view + dispatcher call) with the CPU to itself.
    let inBatch = 0;
    let batchStart = 0;
    let bestDrain = { frames: 0, ms: 0 };
    ep.attach({
      deliverFrame(f) {
        if (inBatch++ === 0) batchStart = performance.now();
        if (f.length === frameSize) frames++;
      },
      deliverBatchEnd() {
        batches++;
        const now = performance.now();
        if (first === 0) first = now;
        last = now;
        if (inBatch > bestDrain.frames) bestDrain = { frames: inBatch, ms: now - batchStart };
        inBatch = 0;
      },
    });
    const cpu0 = process.cpuUsage();
    const f2 = startFlood();
    const stall = setInterval(() => {
      const until = performance.now() + 40;
      while (performance.now() < until);
    }, 700);
    const ef = await f2.result;
    clearInterval(stall);
    await new Promise((r) => setTimeout(r, 50));
    const cpu = process.cpuUsage(cpu0);
    ep.refreshCounters();
    const rxSecs = (last - first) / 1000;
    console.log(
      `AfPacketEndpoint receive, TPACKET_V2  ${fmt(rate(frames, rxSecs))} frames/s   (flood sent ${fmt(rate(ef.sent!, ef.seconds!))}/s; ` +
        `ring drops ${ep.counters.rxDropped} of ${ef.sent}, ${(frames / Math.max(1, batches)).toFixed(1)} frames per wake-up)`,
    );
    console.log(
      `  receive path alone, draining a full ring: ${fmt(rate(bestDrain.frames, bestDrain.ms / 1000))} frames/s ` +
        `(${bestDrain.frames} frames in ${bestDrain.ms.toFixed(2)} ms); process CPU ${((cpu.user + cpu.system) / Math.max(1, frames)).toFixed(2)} µs/frame ` +
        `(user ${(cpu.user / 1e6).toFixed(2)} s, sys ${(cpu.system / 1e6).toFixed(2)} s, incl. ${seconds * 1000 / 700 * 40 | 0} ms of deliberate stalls)`,
    );

    // 3. AfPacketEndpoint send to a kernel UDP receiver in B.
    const bsink = child(net.nsB, 'sink');
    await bsink.ready;
    const frame = udp(mac(net.macA), mac(net.macB), ip4(A_IP), ip4(B_IP), 4000, PORT, new Uint8Array(payload));
    const { sent, refused, seconds: txSecs } = await blast(ep, frame, seconds + 0.5);
    const b = await bsink.result;
    console.log(
      `AfPacketEndpoint send, sendmmsg        ${fmt(rate(sent, txSecs))} frames/s   (kernel UDP receiver in B got ${fmt(rate(b.received!, b.seconds!))}/s; ` +
        `queue-full refusals ${refused}, blocked ${ep.counters.txBlocked}, dropped ${ep.counters.txDropped})`,
    );
    ep.close();
    taken.restore();
  } finally {
    cleanup();
  }
}

const role = arg('role', 'main');
if (role === 'flood') flood();
else if (role === 'pflood') await packetFlood();
else if (role === 'sink') sink();
else await main();
