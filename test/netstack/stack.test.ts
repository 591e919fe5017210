import t from 'tap';
import { formatSubnet, linkLocalFromMac } from '../../netstack/addr.ts';
import { VirtualClock } from '../../netstack/clock.ts';
import { Err, isError } from '../../netstack/errors.ts';
import { Stack } from '../../netstack/stack.ts';
import { PROTO_UDP, type Route } from '../../netstack/transport/protocol.ts';
import { ArpPacket } from '../../netstack/wire/arp.ts';
import { Ipv4Packet } from '../../netstack/wire/ipv4.ts';
import { MAC_A, MAC_X, arpRequestFrame, eth4, ipv4, udp } from './network/frames.ts';
import { A4, A6, X4, Recorder, TestLink, hex, ip, net, pattern, route, single } from './network/helpers.ts';

function sendUdp(r: Route, data = pattern(8)) {
  const seg = udp(1000, 2000, data);
  const buf = new Uint8Array(r.headroom + seg.length);
  buf.set(seg, r.headroom);
  return r.send(PROTO_UDP, buf, r.headroom);
}

t.test('new NIC → EUI-64 link-local address, on-link routes for every subnet', (t) => {
  const { s, nic } = single();
  t.same(s.nics().map((n) => [n.id, n.name, hex(n.mac), n.mtu]), [[nic, 'nic1', hex(MAC_A), 1500]]);
  t.same(
    s.addresses(nic).map((a) => `${formatSubnet(a.subnet)} ${a.state}`),
    ['198.18.0.1/24 preferred', 'fe80::ff:fe00:1/64 preferred', 'fd74:7376::1/64 preferred'],
  );
  t.same(s.routes().map((r) => formatSubnet(r.destination)).sort(), ['198.18.0.0/24', 'fd74:7376::/64', 'fe80::/64']);
  t.equal(s.isLocalAddress(linkLocalFromMac(MAC_A)), true);
  t.end();
});

t.test('routes: longest prefix wins, then lowest metric; packets go to the gateway’s MAC', (t) => {
  const { s, nic, link } = single();
  const gw1 = ip('198.18.0.251');
  const gw2 = ip('198.18.0.252');
  const gw3 = ip('198.18.0.253');
  t.equal(s.addRoute({ destination: net('198.19.0.0/16'), gateway: gw1, nicId: nic, metric: 10 }), undefined);
  t.equal(s.addRoute({ destination: net('198.19.0.0/16'), gateway: gw2, nicId: nic, metric: 5 }), undefined);
  t.equal(s.addRoute({ destination: net('198.19.1.0/24'), gateway: gw3, nicId: nic }), undefined);
  t.equal(s.addRoute({ destination: net('198.19.1.0/24'), gateway: gw3, nicId: nic }), Err.AddressInUse, 'duplicate');
  const r = route(s, ip('198.19.2.2'));
  t.same(r.localAddress, A4);
  sendUdp(r);
  const arp = new ArpPacket(link.take()[0]!.subarray(14));
  t.same(arp.targetProtocolAddress, gw2, 'metric 5 beats 10');
  sendUdp(route(s, ip('198.19.1.9')));
  t.same(new ArpPacket(link.take()[0]!.subarray(14)).targetProtocolAddress, gw3, '/24 beats /16');
  t.equal(s.removeRoute(net('198.19.1.0/24')), true);
  sendUdp(route(s, ip('198.19.1.9')));
  t.equal(link.take().length, 0, 'queued behind the pending resolution of gw2');
  t.same(s.neighbors(nic, 4).map((n) => hex(n.address)).sort(), [hex(gw2), hex(gw3)]);
  t.equal(s.findRoute(ip('198.20.0.1')), Err.NetworkUnreachable, 'no default route');
  t.equal(s.findRoute(X4, ip('198.18.0.7')), Err.AddressNotAvailable, 'local address not ours');
  t.equal(s.findRoute(X4, A6), Err.AddressNotAvailable, 'family mismatch');
  t.end();
});

t.test('address removed → no longer local, on-link route gone', (t) => {
  const { s, nic } = single();
  t.equal(s.removeAddress(nic, A4), undefined);
  t.equal(s.isLocalAddress(A4), false);
  t.equal(s.findRoute(X4), Err.NetworkUnreachable);
  t.equal(s.removeAddress(nic, A4), Err.AddressNotAvailable);
  t.equal(s.addAddress(nic, net('224.0.0.9/32')), Err.InvalidArgument, 'multicast refused');
  t.end();
});

for (const dst of ['198.18.0.1', 'fd74:7376::1', '127.0.0.1', '::1']) {
  t.test(`packet to ourselves (${dst}) → looped back on the clock, never synchronously`, (t) => {
    const { s, clock, link } = single();
    const rec = new Recorder(PROTO_UDP);
    s.registerTransport(rec);
    const r = route(s, ip(dst));
    t.equal(sendUdp(r, pattern(3000)), undefined, 'no fragmentation towards ourselves');
    t.equal(rec.packets.length, 0, 'not yet');
    clock.runDue();
    t.equal(rec.packets.length, 1);
    t.same(rec.packets[0]!.info.src, ip(dst));
    t.same(rec.packets[0]!.info.dst, ip(dst));
    t.equal(hex(rec.packets[0]!.segment), hex(udp(1000, 2000, pattern(3000))));
    t.equal(link.take().length, 0, 'nothing on the wire');
    t.end();
  });
}

t.test('UDP to our own closed port → port unreachable comes back to the sender’s transport', (t) => {
  const { s, clock } = single();
  const rec = new Recorder(PROTO_UDP);
  rec.result = 'no-endpoint';
  s.registerTransport(rec);
  sendUdp(route(s, A4));
  clock.advance(1);
  t.equal(rec.controls.length, 1);
  t.equal(rec.controls[0]!.msg.kind, 'port-unreachable');
  t.end();
});

t.test('broadcast send → Ethernet broadcast frame and a copy to our own sockets', (t) => {
  const { s, clock, link, nic } = single();
  const rec = new Recorder(PROTO_UDP);
  s.registerTransport(rec);
  // As Linux: the limited broadcast and an IPv4 group go where a route leads; with only the subnet's route, no
  // interface asked for and no source bound, nowhere (ENETUNREACH). A default route takes them.
  t.equal(s.findRoute(ip('255.255.255.255')), Err.NetworkUnreachable);
  t.equal(s.findRoute(ip('224.1.2.3')), Err.NetworkUnreachable);
  t.notOk(isError(s.findRoute(ip('255.255.255.255'), undefined, nic)), 'an interface asked for');
  t.notOk(isError(s.findRoute(ip('ff02::1'))), 'IPv6 groups: a multicast route on each interface');
  t.equal(s.addRoute({ destination: net('0.0.0.0/0'), gateway: ip('198.18.0.254'), nicId: nic }), undefined);
  for (const dst of ['198.18.0.255', '255.255.255.255']) {
    sendUdp(route(s, ip(dst)));
    const f = link.take();
    t.equal(f.length, 1);
    t.same(f[0]!.subarray(0, 6), new Uint8Array(6).fill(0xff));
    t.same(new Ipv4Packet(f[0]!.subarray(14)).dst, ip(dst));
  }
  clock.runDue();
  t.equal(rec.packets.length, 2);
  t.ok(rec.packets.every((p) => p.info.broadcast));
  t.end();
});

t.test('multicast group joined → its frames accepted; left → dropped', (t) => {
  const { s, link, nic } = single();
  const rec = new Recorder(PROTO_UDP);
  s.registerTransport(rec);
  const g = ip('224.1.2.3');
  const frame = eth4(new Uint8Array([1, 0, 0x5e, 1, 2, 3]), MAC_X, ipv4({ src: X4, dst: g, protocol: PROTO_UDP }, udp(1, 2, pattern(2))));
  s.joinGroup(nic, g);
  link.deliver(frame);
  t.equal(rec.packets.length, 1);
  t.equal(rec.packets[0]!.info.broadcast, true);
  s.leaveGroup(nic, g);
  link.deliver(frame);
  t.equal(rec.packets.length, 1);
  t.end();
});

t.test('frames sent while handling a batch → link flushed at deliverBatchEnd', (t) => {
  const clock = new VirtualClock();
  const link = new TestLink(MAC_A);
  let flushes = 0;
  link.flush = () => void flushes++;
  const s = new Stack({ clock });
  const nic = s.addNic(link);
  s.addAddress(nic, net('198.18.0.1/24'));
  const before = flushes;
  link.dispatcher!.deliverFrame(arpRequestFrame(MAC_X, X4, A4));
  t.equal(flushes, before, 'not flushed in the middle of the batch');
  link.dispatcher!.deliverBatchEnd!();
  t.equal(flushes, before + 1);
  t.end();
});

t.test('close() → every timer cancelled, links detached, nothing sent afterwards', (t) => {
  const { s, link, clock, nic } = single();
  s.addAddress(nic, net('fd74:7376::8/64'));
  sendUdp(route(s, X4));
  link.deliver(eth4(MAC_A, MAC_X, ipv4({ src: X4, dst: A4, protocol: PROTO_UDP, identification: 3, moreFragments: true }, pattern(16))));
  t.ok(clock.nextDeadline() !== undefined);
  s.close();
  t.equal(clock.nextDeadline(), undefined);
  t.equal(link.dispatcher, null);
  link.take();
  clock.advance(100_000);
  t.equal(link.take().length, 0);
  t.end();
});

t.test('removeNic → its routes and addresses go, frames are no longer taken', (t) => {
  const { s, nic, link } = single();
  t.equal(s.removeNic(nic), true);
  t.same(s.nics(), []);
  t.same(s.routes(), []);
  t.equal(s.isLocalAddress(A4), false);
  t.equal(link.dispatcher, null);
  t.equal(s.removeNic(nic), false);
  t.end();
});

t.test('random32 and secret come from the seed', (t) => {
  const clock = new VirtualClock();
  const a = new Stack({ clock, seed: 5 });
  const b = new Stack({ clock, seed: 5 });
  t.equal(a.secret.length, 16);
  t.same(a.secret, b.secret);
  t.equal(a.random32(), b.random32());
  const c = new Stack({ clock, seed: 6 });
  t.not(hex(a.secret), hex(c.secret));
  t.ok(!isError(a.random32()));
  t.end();
});

t.test('loopback-only stack (LoopbackEndpoint NIC, 127.0.0.1/8 and ::1/128) → pings answered without ARP or NDP', async (t) => {
  const { LoopbackEndpoint } = await import('../../netstack/link/loopback.ts');
  const { echoRequest } = await import('./network/helpers.ts');
  const clock = new VirtualClock();
  const s = new Stack({ clock });
  const nic = s.addNic(new LoopbackEndpoint({ clock }));
  t.equal(s.addresses(nic).length, 0, 'no link-local address on a loopback link');
  s.addAddress(nic, net('127.0.0.1/8'));
  s.addAddress(nic, net('::1/128'));
  t.equal(s.isLocalAddress(ip('127.0.0.1')), true);
  t.equal(s.isLocalAddress(ip('127.3.4.5')), true, 'all of 127/8 is ours, as on Linux');
  for (const [proto, dst] of [[1, '127.0.0.1'], [1, '127.0.0.9'], [58, '::1']] as const) {
    const rec = new Recorder(proto);
    s.registerTransport(rec);
    const r = route(s, ip(dst), ip(dst.includes(':') ? '::1' : '127.0.0.1'));
    r.send(proto, echoRequest(r, 3, 4, pattern(100)), r.headroom);
    clock.advance(1);
    t.equal(rec.packets.length, 1, `echo reply from ${dst}`);
    t.equal(hex(rec.packets[0]!.segment.subarray(8)), hex(pattern(100)));
  }
  t.equal(s.findRoute(X4, ip('127.0.0.1')), Err.AddressNotAvailable, 'loopback source, outside destination');
  t.equal(s.stats.snapshot()['arp.txRequests'], 0);
  t.end();
});

t.test('onAddressReady → called once per address when DAD ends', (t) => {
  const { s, nic, clock } = single();
  const seen: string[] = [];
  s.onAddressReady = (id, a, ok) => seen.push(`${id} ${formatSubnet({ address: a, prefixLength: 128 })} ${ok}`);
  s.addAddress(nic, net('fd74:7376::44/64'));
  clock.advance(1000);
  t.same(seen, [`${nic} fd74:7376::44/128 true`]);
  t.end();
});

t.test('IPv4 identification → consecutive per destination, independent across destinations (RFC 6864, Linux ip_idents)', (t) => {
  const { s, link } = single();
  link.deliver(arpRequestFrame(MAC_X, X4, A4));
  const other = ip('198.18.0.98');
  link.deliver(arpRequestFrame(new Uint8Array([2, 0, 0, 0, 0, 0x98]), other, A4));
  link.take();
  const ids = (dst: Uint8Array) => {
    const r = route(s, dst);
    sendUdp(r);
    sendUdp(r);
    return link.take().map((f) => new Ipv4Packet(f.subarray(14)).identification);
  };
  const x = ids(X4);
  const y = ids(other);
  t.equal(x[1], (x[0]! + 1) & 0xffff);
  t.equal(y[1], (y[0]! + 1) & 0xffff);
  t.not(x[0], y[0], 'different counters (seeded randomly)');
  t.end();
});

t.test('a write outside a receive batch: a clock tick flushes the link, unless the link flushes itself (flushesItself)', (t) => {
  for (const selfFlushing of [false, true]) {
    const clock = new VirtualClock();
    const link = new TestLink(new Uint8Array([2, 0, 0, 0, 0, 1]));
    let flushes = 0;
    link.flush = () => void flushes++;
    if (selfFlushing) (link as { flushesItself?: boolean }).flushesItself = true;
    const s = new Stack({ clock, seed: 1 });
    const nic = s.addNic(link);
    s.addAddress(nic, net('198.18.0.1/24'));
    clock.advance(5000);
    // X's ARP request teaches the stack X's MAC, so that the send below goes out at once.
    link.deliver(arpRequestFrame(MAC_X, X4, A4));
    clock.advance(1);
    link.take();
    flushes = 0;
    t.equal(sendUdp(route(s, X4)), undefined);
    t.equal(link.take().length, 1, 'the datagram was written');
    t.equal(clock.nextDeadline() === clock.now(), !selfFlushing, selfFlushing ? 'no flush tick scheduled' : 'a flush tick is due now');
    clock.runDue();
    t.equal(flushes, selfFlushing ? 0 : 1, selfFlushing ? 'the stack leaves flushing to the link' : 'the tick flushed the link');
  }
  t.end();
});
