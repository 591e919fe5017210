/**
 * Interop with the Linux kernel: our stack owns one end of a veth (through an AF_PACKET socket, the other
 * namespace runs the kernel's stack). Linux pings us and we ping Linux, in both families, with payloads large
 * enough to fragment, and the kernel's port unreachable reaches our transport. Skipped when not root.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { parseAddress, parseSubnet } from '../../netstack/addr.ts';
import { isError } from '../../netstack/errors.ts';
import { Stack } from '../../netstack/stack.ts';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP } from '../../netstack/transport/protocol.ts';
import { NodeClock } from '../../lib/clock.ts';
import { AfPacketEndpoint } from '../../lib/packet.ts';
import { createVethPair } from '../../lib/testnet.ts';
import { udp } from '../netstack/network/frames.ts';
import { Recorder, echoRequest, pattern } from '../netstack/network/helpers.ts';
import { HANG_MS } from '../lib/wait.ts';

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root for network namespaces');
  process.exit(0);
}

const US4 = '198.18.20.1';
const LINUX4 = '198.18.20.2';
const US6 = 'fd74:7376:20::1';
const LINUX6 = 'fd74:7376:20::2';

const net = createVethPair({ prefix: 'tsv-net', addrB: `${LINUX4}/24`, addr6B: `${LINUX6}/64` });
t.teardown(() => net.destroy());

/** Runs a command in namespace B without blocking the event loop (our stack must answer meanwhile). */
function inB(argv: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('ip', ['netns', 'exec', net.nsB, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

t.test('our stack on a veth answers and talks to the Linux kernel', async (t) => {
  const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA });
  const clock = new NodeClock({ unref: true });
  const s = new Stack({ clock, seed: 7 });
  t.teardown(() => {
    s.close();
    ep.close();
  });
  const nic = s.addNic(ep);
  s.addAddress(nic, parseSubnet(`${US4}/24`)!);
  s.addAddress(nic, parseSubnet(`${US6}/64`)!);
  t.equal(await s.whenAddressReady(parseAddress(US6)!), true, 'DAD passed');

  for (const [cmd, size] of [[['ping', '-c', '2', '-i', '0.2', '-W', '20'], 56], [['ping', '-c', '2', '-i', '0.2', '-W', '20'], 8000]] as const) {
    const r4 = await inB([...cmd, '-s', String(size), US4]);
    t.equal(r4.code, 0, `Linux pings us over IPv4 with ${size} bytes`);
    const r6 = await inB([...cmd, '-6', '-s', String(size), US6]);
    t.equal(r6.code, 0, `Linux pings us over IPv6 with ${size} bytes`);
    if (r4.code !== 0 || r6.code !== 0) t.comment(r4.out + r6.out);
  }

  for (const [dst, proto] of [[LINUX4, PROTO_ICMP], [LINUX6, PROTO_ICMPV6]] as const) {
    const rec = new Recorder(proto);
    s.registerTransport(rec);
    const r = s.findRoute(parseAddress(dst)!);
    if (isError(r)) throw new Error(String(r));
    const data = pattern(8000, 5);
    r.send(proto, echoRequest(r, 0x4242, 1, data), r.headroom);
    t.ok(await waitFor(() => rec.packets.length > 0, HANG_MS), `Linux answers our 8000-byte ping to ${dst}`);
    const m = rec.packets[0]?.segment;
    if (m) t.equal(Buffer.from(m.subarray(8)).equals(Buffer.from(data)), true, 'reply data byte-exact');
  }

  for (const dst of [LINUX4, LINUX6]) {
    const rec = new Recorder(PROTO_UDP);
    s.registerTransport(rec);
    const r = s.findRoute(parseAddress(dst)!);
    if (isError(r)) throw new Error(String(r));
    const seg = udp(40000, 9, pattern(32));
    // The kernel checks UDP checksums: fill it (RFC 768 / RFC 8200 §8.1) with the wire helpers.
    const { finishChecksum, pseudoHeaderSum, sum16 } = await import('../../netstack/wire/checksum.ts');
    const c = finishChecksum(sum16(seg, pseudoHeaderSum(r.localAddress, r.remoteAddress, PROTO_UDP, seg.length))) || 0xffff;
    seg[6] = c >> 8;
    seg[7] = c & 0xff;
    const buf = new Uint8Array(r.headroom + seg.length);
    buf.set(seg, r.headroom);
    r.send(PROTO_UDP, buf, r.headroom);
    t.ok(await waitFor(() => rec.controls.length > 0, HANG_MS), `Linux's port unreachable for ${dst} reaches our transport`);
    t.equal(rec.controls[0]?.msg.kind, 'port-unreachable');
  }
  const snap = s.stats.snapshot();
  t.ok(snap['frag.reassembled']! >= 4, 'we reassembled Linux’s fragments');
  t.equal(snap['ipv4.badChecksum'] ?? 0, 0);
});
