// Receive control messages: which the options ask for, their bytes and order, and put_cmsg's layout into a
// program's buffer (CMSG_ALIGN 8, cmsg_len, MSG_CTRUNC, msg_controllen).
import t from 'tap';
import { parseAddress } from '../../../netstack/addr.ts';
import { LINUX as L } from '../../../sentry/socket/abi.ts';
import { type Cmsg, type DatagramControl, Want, layOut, receiveControl, sendControl } from '../../../sentry/socket/cmsg.ts';

const ip = (s: string) => parseAddress(s)!;
/** One message at `at` of a laid-out buffer: cmsg_len, level, type and its data. */
function cmsgAt(b: Uint8Array, at: number): { len: number; level: number; type: number; data: number[] } {
  const v = new DataView(b.buffer, b.byteOffset + at);
  const len = Number(v.getBigUint64(0, true));
  return { len, level: v.getInt32(8, true), type: v.getInt32(12, true), data: [...b.subarray(at + 16, at + len)] };
}

const v4: DatagramControl = { localAddress: ip('198.18.0.2'), nicId: 2, specDst: ip('198.18.0.2'), tos: 0x28, ttl: 37, arrival: 1500.25 };
const ctx4 = { domain: L.AF_INET, port: 0x1234, wallTime: (ms: number) => 1_700_000_000_000 + ms };

t.test('IPv4: timestamp first, then IP_PKTINFO, IP_TTL, IP_TOS (one byte), IP_ORIGDSTADDR', async (t) => {
  const all = Want.STAMP | Want.STAMP_NS | Want.PKTINFO | Want.TTL | Want.TOS | Want.ORIGDST;
  const m = receiveControl(all, ctx4, v4);
  t.same(m.map((x) => [x.level, x.type, x.data.length]), [
    [L.SOL_SOCKET, L.SCM_TIMESTAMPNS, 16], [L.SOL_IP, L.IP_PKTINFO, 12], [L.SOL_IP, L.IP_TTL, 4],
    [L.SOL_IP, L.IP_TOS, 1], [L.SOL_IP, L.IP_ORIGDSTADDR, 16],
  ]);
  const ts = new DataView(m[0]!.data.buffer);
  t.equal(ts.getBigInt64(0, true), 1_700_000_001n, 'tv_sec');
  t.equal(ts.getBigInt64(8, true), 500_250_000n, 'tv_nsec');
  t.same([...m[1]!.data], [2, 0, 0, 0, 198, 18, 0, 2, 198, 18, 0, 2], 'ifindex, spec_dst, addr');
  t.same([...m[2]!.data], [37, 0, 0, 0]);
  t.same([...m[3]!.data], [0x28]);
  t.same([...m[4]!.data], [2, 0, 0x12, 0x34, 198, 18, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0], 'sockaddr_in of the destination');
  t.same(receiveControl(0, ctx4, v4), [], 'nothing asked, nothing given');
});

t.test('SO_TIMESTAMP in µs; the _NEW variants take their own cmsg types', async (t) => {
  const us = receiveControl(Want.STAMP, ctx4, v4)[0]!;
  t.equal(us.type, L.SCM_TIMESTAMP);
  t.equal(new DataView(us.data.buffer).getBigInt64(8, true), 500_250n, 'tv_usec');
  t.equal(receiveControl(Want.STAMP | Want.STAMP_NEW, ctx4, v4)[0]!.type, L.SCM_TIMESTAMP_NEW);
  t.equal(receiveControl(Want.STAMP | Want.STAMP_NEW | Want.STAMP_NS, ctx4, v4)[0]!.type, L.SCM_TIMESTAMPNS_NEW);
});

t.test('IPv6: IPV6_PKTINFO, IPV6_HOPLIMIT, IPV6_TCLASS (ints), RFC 2292 twins, IPV6_ORIGDSTADDR; IP_* ask for nothing', async (t) => {
  const d: DatagramControl = { localAddress: ip('fd74:7376::2'), nicId: 3, specDst: ip('fd74:7376::2'), tos: 0xb8, ttl: 255, arrival: 0 };
  const w = Want.PKTINFO6 | Want.HOPLIMIT6 | Want.TCLASS6 | Want.ORIGDST6 | Want.PKTINFO2292 | Want.HOPLIMIT2292 | Want.TTL;
  const m = receiveControl(w, { ...ctx4, domain: L.AF_INET6 }, d);
  t.same(m.map((x) => [x.level, x.type, x.data.length]), [
    [L.SOL_IPV6, L.IPV6_PKTINFO, 20], [L.SOL_IPV6, L.IPV6_HOPLIMIT, 4], [L.SOL_IPV6, L.IPV6_TCLASS, 4],
    [L.SOL_IPV6, L.IPV6_2292PKTINFO, 20], [L.SOL_IPV6, L.IPV6_2292HOPLIMIT, 4], [L.SOL_IPV6, L.IPV6_ORIGDSTADDR, 28],
  ]);
  t.same([...m[0]!.data], [...ip('fd74:7376::2'), 3, 0, 0, 0]);
  t.same([...m[1]!.data], [255, 0, 0, 0]);
  t.same([...m[2]!.data], [0xb8, 0, 0, 0]);
});

t.test('IPv4 datagram on an IPv6 socket: IPV6_PKTINFO v4-mapped, then the IP_* messages only', async (t) => {
  const d: DatagramControl = { ...v4, localAddress: ip('::ffff:198.18.0.2') };
  const m = receiveControl(Want.PKTINFO6 | Want.HOPLIMIT6 | Want.TTL, { ...ctx4, domain: L.AF_INET6 }, d);
  t.same(m.map((x) => x.type), [L.IPV6_PKTINFO, L.IP_TTL]);
  t.same([...m[0]!.data.subarray(0, 16)], [...ip('::ffff:198.18.0.2')]);
});

t.test('layOut: CMSG_ALIGN 8 between messages, msg_controllen the sum of CMSG_SPACEs', async (t) => {
  const msgs: Cmsg[] = [
    { level: L.SOL_IP, type: L.IP_TOS, data: new Uint8Array([7]) },
    { level: L.SOL_IP, type: L.IP_TTL, data: new Uint8Array([9, 0, 0, 0]) },
  ];
  const b = new Uint8Array(64).fill(0xee);
  t.same(layOut(b, msgs), { used: 48, truncated: false });
  t.same(cmsgAt(b, 0), { len: 17, level: L.SOL_IP, type: L.IP_TOS, data: [7] });
  t.same(cmsgAt(b, 24), { len: 20, level: L.SOL_IP, type: L.IP_TTL, data: [9, 0, 0, 0] });
  t.equal(b[48], 0xee, 'nothing written past msg_controllen');
});

t.test('layOut: short buffer → the message that does not fit is cut (cmsg_len says so), later ones dropped, MSG_CTRUNC', async (t) => {
  const msgs: Cmsg[] = [
    { level: L.SOL_IP, type: L.IP_TTL, data: new Uint8Array([1, 0, 0, 0]) },
    { level: L.SOL_IP, type: L.IP_PKTINFO, data: new Uint8Array(12).fill(5) },
    { level: L.SOL_IP, type: L.IP_TOS, data: new Uint8Array([3]) },
  ];
  const b = new Uint8Array(44);
  t.same(layOut(b, msgs), { used: 44, truncated: true });
  t.same(cmsgAt(b, 24), { len: 20, level: L.SOL_IP, type: L.IP_PKTINFO, data: [5, 5, 5, 5] });
  t.same(layOut(new Uint8Array(15), msgs), { used: 0, truncated: true }, 'less than a header: nothing');
  t.same(layOut(new Uint8Array(0), msgs), { used: 0, truncated: true }, 'no buffer');
  t.same(layOut(new Uint8Array(24), msgs.slice(0, 1)), { used: 24, truncated: false }, 'exactly CMSG_SPACE');
  t.same(layOut(new Uint8Array(20), msgs.slice(0, 1)), { used: 20, truncated: false }, 'CMSG_LEN without the padding fits');
});

/** One cmsg as a program lays it out: header, data, padding to 8. */
function cm(level: number, type: number, data: number[], len = 16 + data.length): number[] {
  const b = new Uint8Array((16 + data.length + 7) & ~7);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(len), true);
  v.setInt32(8, level, true);
  v.setInt32(12, type, true);
  b.set(data, 16);
  return [...b];
}
const i32 = (x: number) => [...new Uint8Array(new Int32Array([x]).buffer)];

t.test('sendControl: IP_TTL, IP_TOS (int or byte), IP_PKTINFO to IPv4; the IPv6 ones to IPv6; each level only for its destination', async (t) => {
  const v4 = new Uint8Array([...cm(L.SOL_IP, L.IP_TTL, i32(33)), ...cm(L.SOL_IP, L.IP_TOS, [0x48]), ...cm(L.SOL_IP, L.IP_PKTINFO, [...i32(2), 198, 18, 0, 1, 0, 0, 0, 0])]);
  t.same(sendControl(v4, true), { ttl: 33, tos: 0x48, nicId: 2, source: new Uint8Array([198, 18, 0, 1]) });
  t.same(sendControl(v4, false), {}, 'SOL_IP messages to an IPv6 destination: none applies');
  const v6 = new Uint8Array([...cm(L.SOL_IPV6, L.IPV6_HOPLIMIT, i32(-1)), ...cm(L.SOL_IPV6, L.IPV6_TCLASS, i32(0xb8))]);
  t.same(sendControl(v6, false), { tos: 0xb8 }, 'hop limit -1: the socket\'s');
  t.equal(sendControl(new Uint8Array(cm(L.SOL_SOCKET, 1, i32(0))), true), undefined, 'no IP-level message at all');
});

t.test('sendControl: malformed → EINVAL as ip_cmsg_send (range, length, a cmsg_len beyond the buffer)', async (t) => {
  t.equal(sendControl(new Uint8Array(cm(L.SOL_IP, L.IP_TTL, i32(0))), true), -22, 'TTL 0');
  t.equal(sendControl(new Uint8Array(cm(L.SOL_IP, L.IP_TTL, i32(256))), true), -22, 'TTL 256');
  t.equal(sendControl(new Uint8Array(cm(L.SOL_IP, L.IP_TTL, [5])), true), -22, 'TTL as a byte');
  t.equal(sendControl(new Uint8Array(cm(L.SOL_IP, L.IP_TOS, [1, 2])), true), -22, 'TOS of two bytes');
  t.equal(sendControl(new Uint8Array(cm(L.SOL_IPV6, L.IPV6_HOPLIMIT, i32(-2))), false), -22, 'hop limit -2');
  t.equal(sendControl(new Uint8Array(cm(L.SOL_IP, L.IP_TTL, i32(9), 64)), true), -22, 'cmsg_len past the end');
  t.equal(sendControl(new Uint8Array(cm(L.SOL_IP, L.IP_TTL, i32(9), 8)), true), -22, 'cmsg_len under a header');
});
