import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { stackOnLink } from '../../cli/stack-on-link.ts';
import { collectChild } from '../../lib/exec.ts';
import { AfPacketEndpoint } from '../../lib/packet.ts';
import { parseSubnet } from '../../netstack/addr.ts';
import { bindNet } from '../../netstack/adapter/net.ts';
import { createVethPair, nsRun, run } from '../../lib/testnet.ts';
import { GsoType } from '../../lib/vnet.ts';
import { ip4, mac, tcp4, udp } from '../lib/frames.ts';
import { HANG_MS, waitFor, waitListening } from '../lib/wait.ts';
import { PY_ACCEPTOR } from './sandbox-helpers.ts';

// Two endpoints on one interface in one PACKET_FANOUT_HASH group, as two shards of `serve --threads 2`; the
// kernel of B sends them UDP flows from many ports, fragmented datagrams and ARP.
const A_IP = '198.18.140.1';
const B_IP = '198.18.140.2';
const STACK_IP = '198.18.140.99'; // a static neighbour in B: no one answers ARP for it

const net = createVethPair({ prefix: 'tsh-lib', addrA: `${A_IP}/24`, addrB: `${B_IP}/24` });
t.teardown(() => net.destroy());

interface Seen {
  /** Source port → payload lengths of the UDP datagrams to STACK_IP this endpoint got. */
  flows: Map<number, number[]>;
  arp: number;
  /** ICMP errors to STACK_IP (port unreachable). */
  icmpErrors: number;
}

function recorder(ep: AfPacketEndpoint): Seen {
  const seen: Seen = { flows: new Map(), arp: 0, icmpErrors: 0 };
  ep.attach({
    deliverFrame(f) {
      const type = (f[12]! << 8) | f[13]!;
      if (type === 0x0806) seen.arp++;
      if (type === 0x0800 && f[23] === 1 && f[34] === 3 && f.subarray(30, 34).join('.') === STACK_IP) seen.icmpErrors++;
      if (type !== 0x0800 || f[23] !== 17 || f.subarray(30, 34).join('.') !== STACK_IP) return;
      if ((((f[20]! << 8) | f[21]!) & 0x3fff) !== 0) throw new Error('an IPv4 fragment reached a member');
      const ihl = (f[14]! & 0x0f) * 4;
      const sport = (f[14 + ihl]! << 8) | f[15 + ihl]!;
      const len = ((f[18 + ihl]! << 8) | f[19 + ihl]!) - 8;
      seen.flows.set(sport, [...(seen.flows.get(sport) ?? []), len]);
    },
  });
  return seen;
}

// 32 flows from B, each three small datagrams and one of 3000 bytes (fragmented by B's kernel at MTU 1500).
const SENDER = `
import socket
for i in range(32):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('${B_IP}', 41000 + i))
    for n in (100, 200, 300, 3000):
        s.sendto(bytes(n), ('${STACK_IP}', 9))
    s.close()
`;

t.test('two members of one group → each flow whole on one member, flows on both, reassembled, ARP to both', async (t) => {
  const group = (process.pid * 2) & 0xfffe;
  // One after the other: the kernel picks members by position, the same in both groups.
  const a = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, superFrames: true, fanout: { group } });
  t.teardown(() => a.close());
  const b = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, superFrames: true, fanout: { group } });
  t.teardown(() => b.close());
  const seenA = recorder(a);
  const seenB = recorder(b);

  run(['ip', '-n', net.nsB, 'neigh', 'replace', STACK_IP, 'lladdr', net.macA, 'dev', net.devB, 'nud', 'permanent']);
  nsRun(net.nsB, ['python3', '-c', SENDER]);
  const count = () => [...seenA.flows.values(), ...seenB.flows.values()].reduce((n, l) => n + l.length, 0);
  await waitFor(() => count() === 128, HANG_MS, 'all 128 datagrams');

  for (const [port, lens] of [...seenA.flows, ...seenB.flows]) {
    t.ok(!(seenA.flows.has(port) && seenB.flows.has(port)), `flow ${port} on one member only`);
    t.same([...lens].sort((x, y) => x - y), [100, 200, 300, 3000], `flow ${port}: its datagrams, the large one reassembled`);
  }
  t.equal(seenA.flows.size + seenB.flows.size, 32);
  t.ok(seenA.flows.size > 0 && seenB.flows.size > 0, `flows on both members (${seenA.flows.size} / ${seenB.flows.size})`);

  // B's kernel asks for A's address (as a peer does for a stack's): the request reaches both members.
  run(['ip', '-n', net.nsB, 'neigh', 'flush', 'dev', net.devB]);
  nsRun(net.nsB, ['ping', '-c', '1', '-W', '2', A_IP]);
  await waitFor(() => seenA.arp > 0 && seenB.arp > 0, HANG_MS, 'ARP on both members');
  t.equal(seenA.arp, seenB.arp, 'each ARP frame once on each member');

  // An ICMP error about one member's flow: B's kernel answers a datagram to a closed port with port unreachable,
  // which the hash of its addresses would give to one member only.
  run(['ip', '-n', net.nsB, 'neigh', 'replace', STACK_IP, 'lladdr', net.macA, 'dev', net.devB, 'nud', 'permanent']);
  a.writeFrame(udp(a.macAddress, mac(net.macB), ip4(STACK_IP), ip4(B_IP), 40999, 9, new Uint8Array(20)));
  await waitFor(() => seenA.icmpErrors > 0 && seenB.icmpErrors > 0, HANG_MS, 'the ICMP error on both members');
  t.equal(seenA.icmpErrors, 1);
  t.equal(seenB.icmpErrors, 1);
});

t.test('a member sends a TCP super-frame → it goes out and comes back into no member\'s ring (the group of large frames ignores outgoing frames)', async (t) => {
  // A veth with offloads, so that the member can send the 64 KB frames a shard sends from a service.
  const big = createVethPair({ prefix: 'tsh-lio', addrA: '198.18.141.1/24', addrB: '198.18.141.2/24', offloads: true });
  const from = '198.18.141.99'; // the members' own address: a static neighbour in B
  t.teardown(() => big.destroy());
  const group = ((process.pid * 2) & 0xfffe) ^ 0x200;
  const open = () => AfPacketEndpoint.open({ netns: big.nsA, dev: big.devA, offloads: true, superFrames: true, fanout: { group } });
  const a = await open();
  t.teardown(() => a.close());
  const b = await open();
  t.teardown(() => b.close());
  // Frames from the member's own address reaching a member, and B's kernel's answer (a RST: nobody listens there).
  let own = 0;
  let resets = 0;
  const count = (f: Uint8Array) => {
    if (f[12] !== 0x08 || f[13] !== 0x00 || f[23] !== 6) return;
    if (f.subarray(26, 30).join('.') === from) own++;
    else if (f.subarray(30, 34).join('.') === from && f[47]! & 0x04) resets++;
  };
  a.attach({ deliverFrame: count });
  b.attach({ deliverFrame: count });
  run(['ip', '-n', big.nsB, 'neigh', 'replace', from, 'lladdr', big.macA, 'dev', big.devB, 'nud', 'permanent']);
  const data = new Uint8Array(30000).fill(7);
  const frame = tcp4(a.macAddress, mac(big.macB), ip4(from), ip4('198.18.141.2'), [40000, 9], 1000, 0, 0x10, data, true);
  t.equal(a.writeGso(frame, { gsoType: GsoType.TCPV4, gsoSize: 1448, hdrLen: 54, csumStart: 34, csumOffset: 16 }), true);
  await waitFor(() => resets > 0, HANG_MS, 'B\'s RST');
  // The kernel hands a sent frame to its taps before the veth delivers it: a copy would have come before the RST.
  t.equal(own, 0, 'the frame a member sent reached no member');
});

t.test('a member of a group on another interface → error naming the option', async (t) => {
  const group = ((process.pid * 2) & 0xfffe) ^ 0x100;
  const a = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, fanout: { group } });
  t.teardown(() => a.close());
  await t.rejects(AfPacketEndpoint.open({ netns: net.nsA, dev: 'lo', fanout: { group } }), /PACKET_FANOUT/);
});

t.test('a steered group → a datagram to the shard its local port names, replicated ports by remote, reassembled; new steering at once', async (t) => {
  const group = ((process.pid * 2) & 0xfffe) ^ 0x300;
  const steer = { shards: 2, replicated: { tcp: [], udp: [9] } };
  const a = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, superFrames: true, fanout: { group, steer } });
  t.teardown(() => a.close());
  const b = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, superFrames: true, fanout: { group, steer } });
  t.teardown(() => b.close());
  // Destination port → [member, payload length] of each datagram to STACK_IP.
  const got: { port: number; sport: number; member: number; len: number }[] = [];
  const stack6 = Uint8Array.from([0xfd, 0x74, 0x73, 0x76, 0x01, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99]);
  const record = (member: number) => (f: Uint8Array) => {
    if (f[12] === 0x86 && f[13] === 0xdd && f[20] === 17 && f.subarray(38, 54).every((b, i) => b === stack6[i])) {
      got.push({ port: (f[56]! << 8) | f[57]!, sport: (f[54]! << 8) | f[55]!, member, len: ((f[58]! << 8) | f[59]!) - 8 });
      return;
    }
    if (f[12] !== 0x08 || f[13] !== 0x00 || f[23] !== 17 || f.subarray(30, 34).join('.') !== STACK_IP) return;
    const ihl = (f[14]! & 0x0f) * 4;
    const sport = (f[14 + ihl]! << 8) | f[15 + ihl]!;
    const port = (f[16 + ihl]! << 8) | f[17 + ihl]!;
    got.push({ port, sport, member, len: ((f[18 + ihl]! << 8) | f[19 + ihl]!) - 8 });
  };
  a.attach({ deliverFrame: record(0) });
  b.attach({ deliverFrame: record(1) });
  run(['ip', '-n', net.nsB, 'neigh', 'replace', STACK_IP, 'lladdr', net.macA, 'dev', net.devB, 'nud', 'permanent']);
  // To ports 7000..7015 from one source port (one shard's own ports), and to port 9 from 16 source ports.
  const send = (lines: string) => nsRun(net.nsB, ['python3', '-c', `import socket\n${lines}`]);
  send(`s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('${B_IP}', 42000))
for p in range(7000, 7016):
    s.sendto(bytes(100), ('${STACK_IP}', p))
s.sendto(bytes(3000), ('${STACK_IP}', 7001))
for i in range(16):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(('${B_IP}', 42100 + 2 * i))
    u.sendto(bytes(200), ('${STACK_IP}', 9))
    u.sendto(bytes(300), ('${STACK_IP}', 9))
    u.close()`);
  await waitFor(() => got.length === 16 + 1 + 32, HANG_MS, 'all 49 datagrams');
  for (const d of got.filter((d) => d.port !== 9)) t.equal(d.member, d.port % 2, `to port ${d.port} (${d.len} B) → member ${d.port % 2}`);
  t.ok(got.some((d) => d.port === 7001 && d.len === 3000), 'the fragmented datagram, reassembled');
  const bySource = new Map<number, Set<number>>();
  for (const d of got.filter((d) => d.port === 9)) bySource.set(d.sport, (bySource.get(d.sport) ?? new Set()).add(d.member));
  t.ok([...bySource.values()].every((m) => m.size === 1), 'each remote on one member');
  const members = new Set([...bySource.values()].map((m) => [...m][0]));
  t.same([...members].sort(), [0, 1], 'remotes on both members');

  // Port 9 no longer replicated but pinned to member 0 (its residue would say 1), as soon as the program is replaced.
  got.length = 0;
  a.setSteering({ shards: 2, replicated: { tcp: [], udp: [] }, pinned: { udp: [[9, 0]] } });
  send(`for i in range(8):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(('${B_IP}', 42200 + 2 * i))
    u.sendto(bytes(200), ('${STACK_IP}', 9))
    u.close()`);
  await waitFor(() => got.length === 8, HANG_MS, '8 datagrams');
  t.same([...new Set(got.map((d) => d.member))], [0], 'all to member 0');

  // IPv6 under the same program: residues, and the pin.
  got.length = 0;
  const v6 = (on: boolean) => nsRun(net.nsB, ['sysctl', '-qw', `net.ipv6.conf.${net.devB}.disable_ipv6=${on ? 0 : 1}`]);
  v6(true);
  t.teardown(() => v6(false));
  run(['ip', '-n', net.nsB, 'addr', 'add', 'fd74:7376:140::2/64', 'dev', net.devB, 'nodad']);
  run(['ip', '-n', net.nsB, 'neigh', 'replace', 'fd74:7376:140::99', 'lladdr', net.macA, 'dev', net.devB, 'nud', 'permanent']);
  send(`s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(('fd74:7376:140::2', 42300))
for p in (7000, 7001, 7002, 7003, 9):
    s.sendto(bytes(100), ('fd74:7376:140::99', p))`);
  await waitFor(() => got.length === 5, HANG_MS, '5 IPv6 datagrams');
  for (const d of got) t.equal(d.member, d.port === 9 ? 0 : d.port % 2, `IPv6 to port ${d.port} → member ${d.port === 9 ? 0 : d.port % 2}`);
  t.throws(() => a.setSteering({ shards: 0, replicated: { tcp: [], udp: [] } }), /shards must be/);
});

t.test('two stacks on one steered link → the connections each opens get every byte back; a replicated listener serves remotes on both', async (t) => {
  const group = ((process.pid * 2) & 0xfffe) ^ 0x400;
  const steer = { shards: 2, replicated: { tcp: [8080], udp: [] } };
  const undo: (() => void)[] = [];
  t.teardown(() => undo.reverse().forEach((f) => f()));
  const stacks: import('../../netstack/netstack.ts').Netstack[] = [];
  for (const index of [0, 1]) {
    const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA, superFrames: true, fanout: { group, steer } });
    undo.push(() => ep.close());
    const { netstack } = await stackOnLink(ep, {
      name: net.devA,
      addresses: [parseSubnet(`${STACK_IP}/24`)!],
      dadTransmits: 0,
      ephemeralShare: { of: 2, index },
    }, undo);
    stacks.push(netstack);
  }
  run(['ip', '-n', net.nsB, 'neigh', 'replace', STACK_IP, 'lladdr', net.macA, 'dev', net.devB, 'nud', 'permanent']);

  // A Linux echo server in B (the sandbox tests' acceptor, which echoes), ended by its pid.
  const echo = spawn('ip', ['netns', 'exec', net.nsB, 'python3', '-c', PY_ACCEPTOR, B_IP, '7777'], { stdio: 'ignore' });
  undo.push(() => echo.kill());
  await waitListening(net.nsB, 7777);

  const roundTrip = (shard: number) => new Promise<{ port: number; ok: boolean }>((resolve, reject) => {
    const data = randomBytes(200_000);
    const chunks: Buffer[] = [];
    const s = bindNet(stacks[shard]!).connect({ host: B_IP, port: 7777 }, () => s.end(data));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('end', () => resolve({ port: s.localPort!, ok: Buffer.concat(chunks).equals(data) }));
    setTimeout(() => reject(new Error(`shard ${shard}: no echo within 20 s`)), 20_000).unref();
  });
  const results = await Promise.all([0, 1, 0, 1, 0, 1, 0, 1].map(async (shard) => ({ shard, ...(await roundTrip(shard)) })));
  for (const r of results) {
    t.ok(r.ok, `shard ${r.shard}, port ${r.port}: 200,000 bytes back exactly`);
    t.equal(r.port % 2, r.shard, `shard ${r.shard}'s port ${r.port} is of its class`);
  }

  // A listener on both stacks, port 8080, and 16 connections from B's kernel.
  const accepted = [0, 0];
  for (const [i, ns] of stacks.entries()) {
    const srv = bindNet(ns).createServer((c) => {
      accepted[i]!++;
      c.pipe(c);
    });
    srv.listen(8080, STACK_IP);
    undo.push(() => srv.close());
  }
  // Spawned, not run: our stacks serve it from this very event loop.
  const client = spawn('ip', ['netns', 'exec', net.nsB, 'python3', '-c', `
import socket
ok = 0
for i in range(16):
    c = socket.create_connection(('${STACK_IP}', 8080), timeout=10)
    m = bytes([i]) * 5000
    c.sendall(m)
    c.shutdown(socket.SHUT_WR)
    back = b''
    while True:
        d = c.recv(65536)
        if not d:
            break
        back += d
    ok += back == m
    c.close()
print(ok)
`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const { stdout, stderr } = await collectChild(client, HANG_MS);
  t.equal(stdout.trim(), '16', `all 16 echoed ${stderr.trim()}`);
  t.equal(accepted[0]! + accepted[1]!, 16);
  t.ok(accepted[0]! > 0 && accepted[1]! > 0, `accepted on both stacks (${accepted[0]} / ${accepted[1]})`);
});
