import { spawn } from 'node:child_process';
import t from 'tap';
import { AfPacketEndpoint } from '../../lib/packet.ts';
import { createVethPair, nsRun } from '../../lib/testnet.ts';
import { GsoType, completeChecksum } from '../../lib/vnet.ts';
import { RX_CSUM_VERIFIED } from '../../netstack/link/endpoint.ts';
import { parseAddress } from '../../netstack/addr.ts';
import { arp, checksums6Ok, checksumsOk, ip4, mac, parseArp, tcp4, tcp6, udp } from '../lib/frames.ts';
import { HANG_MS, waitFor, waitListening, within } from '../lib/wait.ts';

// Pair 1 keeps the veth's offloads on (TSO/GSO/GRO, checksum offload), as PACKET_VNET_HDR allows.
const A_IP = '198.18.71.1';
const B_IP = '198.18.71.2';
const on = createVethPair({ prefix: 'tsv-speed-vn', addrA: `${A_IP}/24`, addrB: `${B_IP}/24`, offloads: true });
// Pair 2 has them off, so a super-frame sent on A is cut into segments and checksummed by A's kernel in
// software (no TSO, no tx checksum offload), and B's side does not merge them again (no GRO).
const A2_IP = '198.18.72.1';
const B2_IP = '198.18.72.2';
const A2_IP6 = 'fd74:7376:72::1';
const B2_IP6 = 'fd74:7376:72::2';
const off = createVethPair({
  prefix: 'tsv-speed-vs',
  addrA: `${A2_IP}/24`,
  addrB: `${B2_IP}/24`,
  addr6A: `${A2_IP6}/64`,
  addr6B: `${B2_IP6}/64`,
});
t.teardown(() => {
  on.destroy();
  off.destroy();
});

const MSS = 1448;
const PAYLOAD = 64000;

/** A 64000-byte TCP segment from A to B with a partial checksum, and the writeGso options for it. */
function superSegment(srcMac: Uint8Array, dstMac: Uint8Array, src: string, dst: string) {
  const data = new Uint8Array(PAYLOAD).map((_, i) => (i * 31 + (i >> 8)) & 0xff);
  const frame = tcp4(srcMac, dstMac, ip4(src), ip4(dst), [40000, 9], 1_000_000, 0, 0x18, data, true);
  const opts = { gsoType: GsoType.TCPV4, gsoSize: MSS, hdrLen: 14 + 20 + 20, csumStart: 34, csumOffset: 16 };
  return { data, frame, opts };
}

/** Where two byte arrays first differ, or -1 when equal (tap's deep compare is slow on 64 KB arrays). */
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const isOurTcp = (f: Uint8Array) => f.length >= 54 && f[12] === 8 && f[13] === 0 && f[23] === 6 && f[34] === 0x9c && f[35] === 0x40;

t.test('open with offloads → capabilities say GSO up to 64 KB and tx checksum offload', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: on.nsA, dev: on.devA, offloads: true });
  const plain = await AfPacketEndpoint.open({ netns: on.nsA, dev: on.devA });
  t.teardown(() => {
    a.close();
    plain.close();
  });
  t.same(a.capabilities, { gso: true, maxGsoSize: 65535 + 40 + 18, rxChecksumOffload: false, txChecksumOffload: true });
  t.same(plain.capabilities, { gso: false, maxGsoSize: 0, rxChecksumOffload: false, txChecksumOffload: false });
  t.throws(() => plain.writeGso(new Uint8Array(60), { gsoType: GsoType.NONE, gsoSize: 0, hdrLen: 14 }), /offloads: true/);
});

t.test('offloads on, plain frames → ARP with B\'s kernel and UDP to B\'s endpoint work as without', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: on.nsA, dev: on.devA, offloads: true });
  const b = await AfPacketEndpoint.open({ netns: on.nsB, dev: on.devB, offloads: true });
  t.teardown(() => {
    a.close();
    b.close();
  });
  const atA: Uint8Array[] = [];
  const atB: Uint8Array[] = [];
  a.attach({ deliverFrame: (f) => void atA.push(f.slice()) });
  b.attach({ deliverFrame: (f) => void atB.push(f.slice()) });
  a.writeFrame(arp(1, a.macAddress, ip4('198.18.71.99'), new Uint8Array(6), ip4(B_IP)));
  const dgram = udp(a.macAddress, b.macAddress, ip4(A_IP), ip4(B_IP), 4000, 4001, new Uint8Array(100).fill(7));
  a.writeFrame(dgram);
  await waitFor(() => atA.some((f) => parseArp(f)?.op === 2), HANG_MS, 'ARP reply from B');
  await waitFor(() => atB.some((f) => f.length === dgram.length && f[23] === 17), HANG_MS, 'UDP at B');
  t.same(atB.find((f) => f.length === dgram.length && f[23] === 17), dgram, 'UDP frame arrives byte for byte');
  t.equal(a.counters.txFrames, 2);
  t.equal(a.counters.txBytes, 42 + dgram.length, 'txBytes count frames, not the virtio_net_hdr');
  t.equal(a.writeFrame(new Uint8Array(1500 + 18 + 1)), false, 'writeFrame still refuses more than the MTU');
});

t.test('writeGso 64 KB TCP segment, veth offloads off → B sees MSS-sized segments with valid checksums', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: off.nsA, dev: off.devA, offloads: true });
  const b = await AfPacketEndpoint.open({ netns: off.nsB, dev: off.devB });
  t.teardown(() => {
    a.close();
    b.close();
  });
  const segs: Uint8Array[] = [];
  b.attach({ deliverFrame: (f) => void (isOurTcp(f) && segs.push(f.slice())) });
  const { data, frame, opts } = superSegment(a.macAddress, b.macAddress, A2_IP, B2_IP);
  t.equal(a.writeGso(frame, opts), true);
  const want = Math.ceil(PAYLOAD / MSS);
  await waitFor(() => segs.length >= want, HANG_MS, `${want} segments`);
  t.equal(segs.length, want, `${want} segments`);
  t.ok(segs.every((f) => f.length <= 1514), 'none longer than the MTU allows');
  t.ok(segs.every(checksumsOk), 'every IP and TCP checksum verifies');
  const seqs = segs.map((f) => new DataView(f.buffer, f.byteOffset).getUint32(38));
  t.same(seqs, Array.from({ length: want }, (_, i) => 1_000_000 + i * MSS), 'sequence numbers one MSS apart');
  const joined = new Uint8Array(segs.reduce((n, f) => n + f.length - 54, 0));
  let at = 0;
  for (const f of segs) {
    joined.set(f.subarray(54), at);
    at += f.length - 54;
  }
  t.equal(firstDiff(joined, data), -1, 'payload reassembles to what was sent');
  t.equal(a.vnetCounters.txGsoFrames, 1);
  t.equal(a.counters.txBytes, frame.length);
});

t.test('writeGso 64 KB TCP/IPv6 segment, veth offloads off → B sees MSS-sized segments with valid checksums', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: off.nsA, dev: off.devA, offloads: true });
  const b = await AfPacketEndpoint.open({ netns: off.nsB, dev: off.devB });
  t.teardown(() => {
    a.close();
    b.close();
  });
  const segs: Uint8Array[] = [];
  const isOurs6 = (f: Uint8Array) => f.length >= 74 && f[12] === 0x86 && f[13] === 0xdd && f[20] === 6 && f[54] === 0x9c && f[55] === 0x40;
  b.attach({ deliverFrame: (f) => void (isOurs6(f) && segs.push(f.slice())) });
  const mss = 1428; // 1500 - 40 - 20 - 12 of timestamps a real sender would carry; any size ≤ MTU works
  const data = new Uint8Array(PAYLOAD).map((_, i) => (i * 17) & 0xff);
  const frame = tcp6(a.macAddress, b.macAddress, parseAddress(A2_IP6)!, parseAddress(B2_IP6)!, [40000, 9], 5_000, data, true);
  t.equal(a.writeGso(frame, { gsoType: GsoType.TCPV6, gsoSize: mss, hdrLen: 74, csumStart: 54, csumOffset: 16 }), true);
  const want = Math.ceil(PAYLOAD / mss);
  await waitFor(() => segs.length >= want, HANG_MS, `${want} segments`);
  t.equal(segs.length, want, `${want} segments`);
  t.ok(segs.every((f) => f.length <= 1514), 'none longer than the MTU allows');
  t.ok(segs.every(checksums6Ok), 'every TCP checksum verifies');
  const joined = new Uint8Array(PAYLOAD);
  let at = 0;
  for (const f of segs) {
    joined.set(f.subarray(74), at);
    at += f.length - 74;
  }
  t.equal(at, PAYLOAD);
  t.equal(firstDiff(joined, data), -1, 'payload reassembles to what was sent');
});

t.test('writeGso 64 KB TCP segment, offloads on → B\'s endpoint gets it whole, partial checksum, flagged RX_CSUM_VERIFIED', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: on.nsA, dev: on.devA, offloads: true });
  const b = await AfPacketEndpoint.open({ netns: on.nsB, dev: on.devB, offloads: true });
  t.teardown(() => {
    a.close();
    b.close();
  });
  const got: Uint8Array[] = [];
  const flags: (number | undefined)[] = [];
  b.attach({ deliverFrame: (f, fl) => void (isOurTcp(f) && got.push(f.slice()) && flags.push(fl)) });
  const { frame, opts } = superSegment(a.macAddress, b.macAddress, A_IP, B_IP);
  const expected = tcp4(a.macAddress, b.macAddress, ip4(A_IP), ip4(B_IP), [40000, 9], 1_000_000, 0, 0x18, frame.subarray(54));
  const partial = frame.slice();
  t.equal(a.writeGso(frame, opts), true);
  await waitFor(() => got.length >= 1, HANG_MS, 'the super-frame at B').catch(() => {});
  b.refreshCounters();
  const why = JSON.stringify({ a: a.counters, b: b.counters, bv: b.vnetCounters });
  t.equal(got.length, 1, `one frame: the veth passes the super-frame on whole (${why})`);
  t.equal(got[0]!.length, 54 + PAYLOAD);
  t.equal(flags[0], RX_CSUM_VERIFIED, 'flagged: the checksum needs no check');
  t.equal(firstDiff(got[0]!, partial), -1, 'identical to what was sent, checksum field still partial (nothing summed in JS)');
  const completed = got[0]!.slice();
  completeChecksum(completed, 34, 16);
  t.equal(firstDiff(completed, expected), -1, 'completing the partial sum gives the full checksum');
  t.equal(b.vnetCounters.rxGsoFrames, 1);
  t.equal(b.vnetCounters.rxCsumVerified, 1);
});

t.test('writeGso with bad fields → refused and counted, nothing sent', async (t) => {
  const a = await AfPacketEndpoint.open({ netns: on.nsA, dev: on.devA, offloads: true });
  t.teardown(() => a.close());
  const { frame, opts } = superSegment(a.macAddress, mac(on.macB), A_IP, B_IP);
  const bad = [
    { ...opts, gsoType: GsoType.UDP }, // UFO: refused by current kernels
    { ...opts, gsoSize: 0 },
    { ...opts, hdrLen: frame.length + 1 },
    { ...opts, csumStart: 34, csumOffset: 60 }, // field past the headers
    { gsoType: GsoType.NONE, gsoSize: 0, hdrLen: 54 }, // not segmented, yet larger than the MTU
  ];
  for (const o of bad) t.equal(a.writeGso(frame, o), false, JSON.stringify(o));
  t.equal(a.writeGso(new Uint8Array(65535 + 40 + 18 + 1), opts), false, 'larger than maxGsoSize');
  t.equal(a.vnetCounters.txGsoRefused, bad.length + 1);
  a.flush();
  t.equal(a.counters.txFrames, 0);
});

t.test('kernel TCP stream B → A with TSO on → A\'s endpoint sees super-frames, every checksum valid or partial and flagged', async (t) => {
  // The endpoint only watches: the kernel's TCP does not wait for it, so a stream larger than its ring would be
  // partly dropped whenever other load keeps this process from reading. 1 MB is about 120 data frames and as
  // many ACKs; the ring holds 512, so even a reader that wakes only after the whole transfer sees all of it.
  const a = await AfPacketEndpoint.open({ netns: on.nsA, dev: on.devA, offloads: true, ringFrames: 512 });
  t.teardown(() => a.close());
  let frames = 0;
  let big = 0;
  let bad = 0;
  let flagged = 0;
  let isn = -1;
  let bytes = 0; // highest stream offset seen: retransmissions (a loaded machine makes some) do not count twice
  a.attach({
    deliverFrame(f, fl) {
      if (f[23] !== 6 || f[36] !== 0x13 || f[37] !== 0x89) return; // TCP to port 5001
      frames++;
      if (f.length > 1514) big++;
      // A flagged frame's checksum may be partial (NEEDS_CSUM) or full (DATA_VALID): one of the two must hold.
      const flaggedOk = (fl ?? 0) & RX_CSUM_VERIFIED && (flagged++, true);
      if (!checksumsOk(f)) {
        const done = f.slice();
        if (!flaggedOk || !completeChecksum(done, 14 + (f[14]! & 0x0f) * 4, 16) || !checksumsOk(done)) bad++;
      }
      const seq = new DataView(f.buffer, f.byteOffset).getUint32(38);
      if (f[47]! & 0x02) isn = seq; // SYN
      const len = ((f[16]! << 8) | f[17]!) - 20 - (f[46]! >> 4) * 4;
      if (isn >= 0 && len > 0) bytes = Math.max(bytes, (seq + len - isn - 1) >>> 0);
    },
  });
  const procs: ReturnType<typeof spawn>[] = [];
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
  const server = spawn('ip', ['netns', 'exec', on.nsA, 'socat', '-u', 'TCP-LISTEN:5001,reuseaddr', 'OPEN:/dev/null'], { stdio: 'ignore' });
  procs.push(server);
  await waitListening(on.nsA, 5001);
  const total = 1 << 20;
  const client = spawn('ip', ['netns', 'exec', on.nsB, 'sh', '-c', `head -c ${total} /dev/zero | socat -u - TCP:${A_IP}:5001`], {
    stdio: 'ignore',
  });
  procs.push(client);
  const code = await new Promise<number | null>((r) => client.on('exit', r));
  t.equal(code, 0, 'client sent everything');
  await waitFor(() => bytes >= total, HANG_MS, 'all payload seen').catch((e: Error) => {
    a.refreshCounters();
    throw new Error(`${e.message}: ${bytes} of ${total} bytes in ${frames} frames; ${JSON.stringify({ link: a.counters, vnet: a.vnetCounters })}`);
  });
  t.equal(bytes, total, 'the whole stream seen');
  t.ok(big > 0, `super-frames larger than the MTU delivered (${big} of ${frames})`);
  t.equal(bad, 0, 'no frame with a bad checksum');
  t.ok(a.vnetCounters.rxGsoFrames > 0 && a.vnetCounters.rxCsumVerified > 0, JSON.stringify(a.vnetCounters));
  t.ok(flagged > 0, `frames flagged RX_CSUM_VERIFIED (${flagged} of ${frames})`);
  t.equal(a.counters.rxTruncated, 0);
});

t.test('writeGso 64 KB-class TCP segment into a kernel TCP connection in B → socket reads every byte in order', async (t) => {
  // The test plays a TCP peer by hand from an address A's kernel does not own (so A's kernel stays out of it),
  // completes the handshake with B's kernel, then sends the data as one super-frame and closes with FIN.
  const STACK_IP = '198.18.71.50';
  const a = await AfPacketEndpoint.open({ netns: on.nsA, dev: on.devA, offloads: true });
  t.teardown(() => a.close());
  nsRun(on.nsB, ['ip', 'neigh', 'replace', STACK_IP, 'lladdr', on.macA, 'dev', on.devB]);
  const received: Buffer[] = [];
  const server = spawn('ip', ['netns', 'exec', on.nsB, 'socat', '-u', 'TCP-LISTEN:5002,reuseaddr', 'STDOUT'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  t.teardown(() => {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  });
  server.stdout.on('data', (d: Buffer) => received.push(d));
  const exited = new Promise<number | null>((r) => server.on('exit', r));
  let synAck: { seq: number; window: number } | null = null;
  a.attach({
    deliverFrame(f) {
      // SYN-ACK from port 5002 to our port 40001
      if (f[23] === 6 && f[34] === 0x13 && f[35] === 0x8a && f[36] === 0x9c && f[37] === 0x41 && f[47] === 0x12) {
        const v = new DataView(f.buffer, f.byteOffset);
        synAck = { seq: v.getUint32(38), window: v.getUint16(48) };
      }
    },
  });
  const src = ip4(STACK_IP);
  const dst = ip4(B_IP);
  const bMac = mac(on.macB);
  const ports: [number, number] = [40001, 5002];
  const isn = 7_000_000;
  await waitListening(on.nsB, 5002);
  a.writeFrame(tcp4(a.macAddress, bMac, src, dst, ports, isn, 0, 0x02, new Uint8Array(0)));
  await waitFor(() => synAck !== null, HANG_MS, 'SYN-ACK from B');
  const irs = synAck!.seq;
  // Without window scaling in our SYN, B's window is at most 65535: the data must fit in it.
  const size = Math.min(60000, synAck!.window);
  t.ok(size >= 30000, `B's window takes a super-frame (${synAck!.window})`);
  a.writeFrame(tcp4(a.macAddress, bMac, src, dst, ports, isn + 1, irs + 1, 0x10, new Uint8Array(0)));
  const data = new Uint8Array(size).map((_, i) => (i * 7 + (i >> 9)) & 0xff);
  const frame = tcp4(a.macAddress, bMac, src, dst, ports, isn + 1, irs + 1, 0x18, data, true);
  t.equal(a.writeGso(frame, { gsoType: GsoType.TCPV4, gsoSize: MSS, hdrLen: 54, csumStart: 34, csumOffset: 16 }), true);
  a.writeFrame(tcp4(a.macAddress, bMac, src, dst, ports, isn + 1 + size, irs + 1, 0x11, new Uint8Array(0)));
  const code = await within(exited, HANG_MS, 'socat to exit on the FIN');
  t.equal(code, 0, 'socat saw the FIN and exited');
  const got = new Uint8Array(Buffer.concat(received));
  t.equal(got.length, size, `${size} bytes read from the socket`);
  t.equal(firstDiff(got, data), -1, 'byte for byte, in order');
  t.equal(a.vnetCounters.txGsoFrames, 1);
});
