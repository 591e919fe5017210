/**
 * Frames per second through AfPacketEndpoint, next to the kernel's own rate for the same traffic, in one run.
 *
 *   node --import tsx bench/link-rate.ts [--seconds 5] [--size 60] [--flood ring|packet|udp] [--busy-poll 50]
 *                                        [--rps] [--pin] [--nice -10]
 *
 * Two namespaces joined by a veth (offloads off, as the endpoint needs without PACKET_VNET_HDR). A flooder process
 * in B sends UDP to A. By default (`ring`) it sends prebuilt frames from a PACKET_TX_RING with PACKET_QDISC_BYPASS,
 * the cheapest way for a Linux peer to put frames on a veth; `packet` sends them with sendmmsg through an
 * AfPacketEndpoint, `udp` through a kernel UDP socket (which cannot send much faster than the kernel receives, so
 * it would measure itself). On a veth the flooder's CPU also runs A's receive softirq (veth xmit → netif_rx →
 * tpacket_rcv or udp_rcv) unless `--rps` moves that to CPU 1. The same flood is measured by
 *   1. a kernel UDP receiver in A counting with recvmmsg (the kernel's own receive rate),
 *   2. AfPacketEndpoint on A's interface, taken over from the kernel, counting frames in its dispatcher;
 * then AfPacketEndpoint sends UDP frames to a kernel UDP receiver in B (send rate, and what arrived), and B pings
 * A answered by A's kernel and through the endpoint (with and without busy polling): a lone request's latency.
 * Scheduling options apply to both receivers alike: `--pin` puts floods on CPU 0 and receivers on CPU 1, `--nice`
 * gives the bench's own session (autogroup) that nice value, for runs on a machine shared with other work; the
 * flooder's lines say how much of the time it had a CPU, which is what limits the figures on a busy machine.
 * Children are this same file with --role flood|rflood|pflood|sink, started inside a namespace (`ip netns exec`).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { C, check, mapMemory, sockaddrIn, setIntOption, sys } from '../lib/libc.ts';
import { MmsgBatch } from '../lib/mmsg.ts';
import { AfPacketEndpoint } from '../lib/packet.ts';
import { takeOver } from '../lib/takeover.ts';
import { createVethPair, nsRun, run } from '../lib/testnet.ts';
import type { LinkDispatcher } from '../netstack/link/endpoint.ts';
import { echoReply, ip4, ipv4, mac, parseEchoRequest, pseudoSum4, udp } from '../test/lib/frames.ts';
import { GsoType } from '../lib/vnet.ts';

const A_IP = '198.18.60.1';
const B_IP = '198.18.60.2';
const PORT = 9000;
// The receiver stalls STALL_MS every STALL_EVERY_MS so its ring fills and the drain can be timed; the ring
// (16384 slots) holds a stall's worth of frames at up to 1M frames/s, so the stalls cost no drops.
const STALL_MS = 15;
const STALL_EVERY_MS = 1000;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : def;
}

const seconds = Number(arg('seconds', '5'));
const frameSize = Number(arg('size', '60')); // Ethernet frame without FCS
const payload = Math.max(0, frameSize - 42);
const floodKind = arg('flood', 'ring');
const pin = process.argv.includes('--pin');
const rps = process.argv.includes('--rps');
const niceness = Number(arg('nice', '0'));

/** This thread's time on a CPU and waiting for one, in µs (/proc/thread-self/schedstat), to tell contention apart. */
function schedstat(): { runUs: number; waitUs: number } {
  const [run, wait] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
  return { runUs: run! / 1000, waitUs: wait! / 1000 };
}

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
async function blast(
  ep: AfPacketEndpoint,
  frame: Uint8Array,
  secs: number,
  write: () => boolean = () => ep.writeFrame(frame),
  perFlush = 256,
): Promise<{ sent: number; refused: number; seconds: number }> {
  const before = ep.counters.txFrames;
  const t0 = performance.now();
  let refused = 0;
  while (performance.now() - t0 < secs * 1000) {
    for (let r = 0; r < 16; r++) {
      for (let i = 0; i < perFlush; i++) if (!write()) refused++;
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
  const s0 = schedstat();
  const r = await blast(ep, frame, seconds);
  const s1 = schedstat();
  ep.close();
  const failed = r.refused + ep.counters.txDropped;
  process.stdout.write(JSON.stringify({ sent: r.sent, failed, seconds: r.seconds, cpuUs: s1.runUs - s0.runUs, waitUs: s1.waitUs - s0.waitUs }) + '\n');
}

/**
 * Child: floods A from a PACKET_TX_RING with PACKET_QDISC_BYPASS: every slot holds the same prebuilt frame, so a
 * round is flipping slot statuses to SEND_REQUEST and one send() that transmits them all, no copy from JS and no
 * per-frame system call: the cheapest way for a Linux peer to put frames on the veth.
 */
function ringFlood(): void {
  const TP_STATUS_SEND_REQUEST = 1;
  const TP_STATUS_WRONG_FORMAT = 4;
  const slotSize = 2048;
  const blockSize = 1 << 16;
  const slots = Number(arg('ring', '1024'));
  const batchMax = Number(arg('batch', '256'));
  const fd = check(sys.socket(C.AF_PACKET, C.SOCK_RAW | C.SOCK_CLOEXEC, 0), 'socket', 'AF_PACKET');
  const ifindex = sys.ifNameToIndex(arg('dev', ''));
  if (ifindex === 0) throw new Error(`no interface ${arg('dev', '')}`);
  setIntOption(fd, C.SOL_PACKET, C.PACKET_VERSION, C.TPACKET_V2, 'PACKET_VERSION');
  setIntOption(fd, C.SOL_PACKET, C.PACKET_QDISC_BYPASS, 1, 'PACKET_QDISC_BYPASS');
  setIntOption(fd, C.SOL_SOCKET, C.SO_SNDBUFFORCE, 16 << 20, 'SO_SNDBUFFORCE');
  // With a virtio_net_hdr whose hdr_len covers the whole frame, tpacket_snd copies the frame into the skb's
  // linear part instead of attaching ring pages as zero-copy frags, which every tap (A's packet socket) would
  // otherwise have to copy out into a freshly allocated page.
  const vnet = !process.argv.includes('--no-vnet');
  if (vnet) setIntOption(fd, C.SOL_PACKET, C.PACKET_VNET_HDR, 1, 'PACKET_VNET_HDR');
  const hdr = vnet ? 10 : 0;
  const blocks = Math.ceil((slots * slotSize) / blockSize);
  const req = new Uint32Array([blockSize, blocks, slotSize, slots]);
  check(sys.setsockopt(fd, C.SOL_PACKET, C.PACKET_TX_RING, req, 16), 'setsockopt', 'PACKET_TX_RING');
  const ring = mapMemory(blockSize * blocks, fd);
  // Bound to IPv4 only so that skb->protocol is right; nothing comes back to B during the flood.
  const sa = new Uint8Array(20);
  const sv = new DataView(sa.buffer);
  sv.setUint16(0, C.AF_PACKET, true);
  sv.setUint16(2, 0x0800, false);
  sv.setInt32(4, ifindex, true);
  check(sys.bind(fd, sa, sa.length), 'bind');
  const frame = udp(mac(arg('srcmac', '')), mac(arg('dstmac', '')), ip4(B_IP), ip4(A_IP), 4000, PORT, new Uint8Array(payload));
  const v = ring.view;
  // Frame data starts at TPACKET2_HDRLEN - sizeof(sockaddr_ll) = 32 bytes into a slot.
  for (let i = 0; i < slots; i++) {
    if (vnet) v.setUint16(i * slotSize + 32 + 2, frame.length, true); // hdr_len
    ring.bytes.set(frame, i * slotSize + 32 + hdr);
    v.setUint32(i * slotSize + 4, frame.length + hdr, true);
  }
  let sent = 0;
  let failed = 0;
  let head = 0;
  const s0 = schedstat();
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    for (let k = 0; k < 16; k++) {
      let n = 0;
      while (n < batchMax) {
        const st = v.getUint32(head * slotSize, true);
        if (st === TP_STATUS_WRONG_FORMAT) failed++;
        else if (st !== 0) break; // still owned by the kernel
        v.setUint32(head * slotSize, TP_STATUS_SEND_REQUEST, true);
        head = head + 1 === slots ? 0 : head + 1;
        n++;
      }
      if (n === 0) continue;
      // Every slot marked goes out in this call or, after ENOBUFS, in the next one.
      if (sys.send(fd, null, 0, C.MSG_DONTWAIT) < 0) failed++;
      sent += n;
    }
  }
  const elapsed = (performance.now() - start) / 1000;
  const s1 = schedstat();
  ring.free();
  sys.close(fd);
  process.stdout.write(JSON.stringify({ sent, failed, seconds: elapsed, cpuUs: s1.runUs - s0.runUs, waitUs: s1.waitUs - s0.waitUs }) + '\n');
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
  // With --pin, floods run on CPU 0 (which then also runs the veth's receive softirq) and receivers on CPU 1.
  const cpu = role.endsWith('flood') ? '0' : '1';
  const prefix = pin ? ['taskset', '-c', cpu] : [];
  const argv = [...prefix, 'ip', 'netns', 'exec', netns, process.execPath, '--import', 'tsx', self, '--role', role, '--seconds', String(seconds), '--size', String(frameSize), ...extra];
  const p = spawn(argv[0]!, argv.slice(1),
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

const floodCpu = (f: Record<string, number>) =>
  f.cpuUs === undefined ? '' : `, flooder CPU ${(f.cpuUs / Math.max(1, f.sent!)).toFixed(2)} µs/frame, ${((f.cpuUs / 1e6 / f.seconds!) * 100).toFixed(0)}% on a CPU, ${((f.waitUs! / 1e6 / f.seconds!) * 100).toFixed(0)}% waiting for one`;
const FLOODS: Record<string, string> = {
  ring: 'PACKET_TX_RING + QDISC_BYPASS of prebuilt UDP frames',
  packet: 'AfPacketEndpoint sendmmsg of prebuilt UDP frames',
  udp: 'kernel UDP socket, sendmmsg',
};
const rate = (n: number, s: number) => (s > 0 ? Math.round(n / s) : 0);
const fmt = (n: number) => n.toLocaleString('en-US').padStart(11);

async function main(): Promise<void> {
  if (pin) run(['taskset', '-a', '-p', '-c', '1', String(process.pid)]);
  if (niceness !== 0) writeFileSync('/proc/self/autogroup', String(niceness));
  const net = createVethPair({ prefix: 'tsv-speed-bench', addrA: `${A_IP}/24`, addrB: `${B_IP}/24` });
  const cleanup = () => net.destroy();
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));
  try {
    console.log(
      `link-rate: ${frameSize}-byte frames (UDP payload ${payload}), ${seconds} s per phase, veth ${net.nsA} ↔ ${net.nsB}, ` +
        `offloads off, flood: ${FLOODS[floodKind] ?? floodKind}`,
    );
    const opts = [rps && 'RPS to CPU 1', pin && 'floods on CPU 0, receivers on CPU 1', niceness !== 0 && `autogroup nice ${niceness}`];
    console.log(
      `machine: ${os.cpus().length} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ` +
        `scheduling: ${opts.filter(Boolean).join(', ') || 'as the kernel pleases'}`,
    );

    // With --rps, A's receive softirq runs on CPU 1 (the receivers' CPU with --pin) instead of inline on the
    // flooder's CPU, for both receivers alike: the flooder's CPU then only sends.
    if (rps) nsRun(net.nsA, ['sh', '-c', `echo 2 > /sys/class/net/${net.devA}/queues/rx-0/rps_cpus`]);

    // 0. Round trip of a lone request with the kernel answering.
    console.log(`ping B → A, A's kernel answers          ${await pingRtt(net.nsB, A_IP)}`);

    // 1. The kernel's own receive rate.
    const ksink = child(net.nsA, 'sink');
    await ksink.ready;
    const startFlood = () =>
      floodKind === 'udp'
        ? child(net.nsB, 'flood', ['--dst', A_IP])
        : floodKind === 'ring'
        ? child(net.nsB, 'rflood', ['--dev', net.devB, '--srcmac', net.macB, '--dstmac', net.macA])
        : child(net.nsB, 'pflood', ['--netns', net.nsB, '--dev', net.devB, '--srcmac', net.macB, '--dstmac', net.macA]);
    const f1 = startFlood();
    const [k, kf] = await Promise.all([ksink.result, f1.result]);
    console.log(`kernel UDP receive, recvmmsg          ${fmt(rate(k.received!, k.seconds!))} frames/s   (flood sent ${fmt(rate(kf.sent!, kf.seconds!))}/s${floodCpu(kf)})`);

    // 2. AfPacketEndpoint receive, with the interface taken from the kernel as in real use.
    run(['ip', '-n', net.nsB, 'neigh', 'replace', A_IP, 'lladdr', net.macA, 'dev', net.devB]);
    const taken = takeOver(net.nsA, net.devA);
    const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, ringFrames: 16384, busyPollUs: Number(arg('busy-poll', '50')) });
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
      const until = performance.now() + STALL_MS;
      while (performance.now() < until);
    }, STALL_EVERY_MS);
    const ef = await f2.result;
    clearInterval(stall);
    await new Promise((r) => setTimeout(r, 50));
    const cpu = process.cpuUsage(cpu0);
    ep.refreshCounters();
    const rxSecs = (last - first) / 1000;
    console.log(
      `AfPacketEndpoint receive, TPACKET_V2  ${fmt(rate(frames, rxSecs))} frames/s   (flood sent ${fmt(rate(ef.sent!, ef.seconds!))}/s${floodCpu(ef)}; ` +
        `ring drops ${ep.counters.rxDropped} of ${ef.sent}, ${(frames / Math.max(1, ep.rxPoll.wakeups)).toFixed(1)} frames per wake-up, ${(frames / Math.max(1, batches)).toFixed(1)} per batch)`,
    );
    console.log(
      `  receive path alone, draining a full ring: ${fmt(rate(bestDrain.frames, bestDrain.ms / 1000))} frames/s ` +
        `(${bestDrain.frames} frames in ${bestDrain.ms.toFixed(2)} ms); process CPU ${((cpu.user + cpu.system) / Math.max(1, frames)).toFixed(2)} µs/frame ` +
        `(user ${(cpu.user / 1e6).toFixed(2)} s, sys ${(cpu.system / 1e6).toFixed(2)} s, incl. ${((seconds * 1000) / STALL_EVERY_MS) * STALL_MS | 0} ms of deliberate stalls)`,
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
    // 4. Round trip of a lone request answered through the endpoint, with and without busy polling: fresh
    // endpoints alike but for that option, twice in alternating order so neither profits from going second.
    ep.close();
    const bp = Number(arg('busy-poll', '50'));
    for (const busyPollUs of [0, bp, bp, 0]) {
      const e = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, busyPollUs });
      e.attach(echoResponder(e, ip4(A_IP)));
      const label = busyPollUs > 0 ? `busy-poll ${busyPollUs} µs` : 'no busy-poll  ';
      console.log(`ping B → A, through the endpoint, ${label} ${await pingRtt(net.nsB, A_IP)}`);
      e.close();
    }

    // 5. Offloads (PACKET_VNET_HDR): MTU-sized UDP datagrams one frame each, then 64 KB UDP_L4 super-frames
    // that A's kernel cuts into the same datagrams (in software here: this veth has its offloads off).
    const epo = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, offloads: true, sendQueue: 64 });
    const seg = 1500 - 28;
    const one = udp(mac(net.macA), mac(net.macB), ip4(A_IP), ip4(B_IP), 4000, PORT, new Uint8Array(seg));
    const { frame: superFrame, opts: gso } = udpSuperFrame(mac(net.macA), mac(net.macB), seg, 44);
    for (const [label, write, perFlush] of [
      ['writeFrame, one datagram per frame ', () => epo.writeFrame(one), 64],
      ['writeGso, 44 datagrams per frame   ', () => epo.writeGso(superFrame, gso), 16],
    ] as const) {
      const sinkB = child(net.nsB, 'sink');
      await sinkB.ready;
      const before = epo.counters.txFrames;
      const r = await blast(epo, one, seconds + 0.5, write, perFlush);
      const got = await sinkB.result;
      const gbps = (rate(got.received!, got.seconds!) * seg * 8) / 1e9;
      console.log(
        `offloads, ${label} ${fmt(rate(epo.counters.txFrames - before, r.seconds))} frames/s   (kernel UDP receiver in B got ` +
          `${fmt(rate(got.received!, got.seconds!))} datagrams/s of ${seg} bytes, ${gbps.toFixed(2)} Gbit/s)`,
      );
    }
    epo.close();
    taken.restore();
  } finally {
    cleanup();
  }
}

/** Round trip of `count` pings from namespace `ns` to `ip`, 10 ms apart: "min/avg/max µs". */
async function pingRtt(ns: string, ip: string, count = 200): Promise<string> {
  // Asynchronous: the endpoint answering runs on this very event loop.
  const p = spawn('ip', ['netns', 'exec', ns, 'ping', '-q', '-c', String(count), '-i', '0.01', '-W', '1', ip], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => p.on('exit', r));
  const m = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\//.exec(out);
  const lost = /(\d+)% packet loss/.exec(out)?.[1] ?? '?';
  if (!m) return `no reply (${lost}% lost)`;
  const us = (ms: string) => Math.round(Number(ms) * 1000);
  return `${us(m[1]!)}/${us(m[2]!)}/${us(m[3]!)} µs min/avg/max, ${lost}% lost`;
}

/** A dispatcher that answers ICMP echo requests to `ip` through `ep`, as a stack would. */
function echoResponder(ep: AfPacketEndpoint, ip: Uint8Array): LinkDispatcher {
  return {
    deliverFrame(f) {
      const req = parseEchoRequest(f);
      if (req !== null && req.dst.every((b, i) => b === ip[i])) ep.writeFrame(echoReply(f, ep.macAddress)!);
    },
  };
}

/** A UDP super-frame of `count` datagrams of `seg` bytes from A to B's PORT, partial checksum, with its gso fields. */
function udpSuperFrame(src: Uint8Array, dst: Uint8Array, seg: number, count: number) {
  const len = 8 + seg * count;
  const u = new Uint8Array(len);
  const v = new DataView(u.buffer);
  v.setUint16(0, 4000);
  v.setUint16(2, PORT);
  v.setUint16(4, len); // the whole super-datagram's length, which segmentation rewrites per datagram
  v.setUint16(6, pseudoSum4(ip4(A_IP), ip4(B_IP), 17, len));
  const frame = ipv4(src, dst, ip4(A_IP), ip4(B_IP), 17, u);
  return { frame, opts: { gsoType: GsoType.UDP_L4, gsoSize: seg, hdrLen: 42, csumStart: 34, csumOffset: 6 } };
}

/**
 * With --nice, runs main again in a session of its own: the scheduler shares CPU time between sessions
 * (autogroups) before processes, so the nice value of the bench's own autogroup is what gives its flooder
 * and receivers (all in that session) more CPU than other sessions' work on a shared machine.
 */
async function inOwnSession(): Promise<void> {
  const argv = [process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2), '--role', 'main'];
  const p = spawn('setsid', ['-w', ...argv], { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => p.kill(sig));
  process.exitCode = await new Promise<number>((r) => p.on('exit', (code) => r(code ?? 1)));
}

const role = arg('role', niceness !== 0 ? 'session' : 'main');
if (role === 'flood') flood();
else if (role === 'pflood') await packetFlood();
else if (role === 'rflood') ringFlood();
else if (role === 'sink') sink();
else if (role === 'session') await inOwnSession();
else await main();
