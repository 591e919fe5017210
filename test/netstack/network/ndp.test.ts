import t from 'tap';
import { IPV6_ANY, linkLocalFromMac, multicastMac, solicitedNodeAddress } from '../../../netstack/addr.ts';
import { isError } from '../../../netstack/errors.ts';
import { PROTO_UDP } from '../../../netstack/transport/protocol.ts';
import { MAC_A, MAC_B, MAC_X, eth6, icmp6, ipv6, ndp, udp } from './frames.ts';
import { A6, B6, X6, Recorder, echoRequest, hex, ip, net, pair, pattern, route, single } from './helpers.ts';

const ALL_NODES = ip('ff02::1');

function nsFrame(src: Uint8Array, srcMac: Uint8Array, target: Uint8Array, sll?: Uint8Array, hopLimit = 255): Uint8Array {
  const sn = solicitedNodeAddress(target);
  const r = sll ? { kind: 'neighbor-solicit' as const, target, sourceLinkLayer: sll } : { kind: 'neighbor-solicit' as const, target };
  return eth6(multicastMac(sn), srcMac, ipv6(src, sn, 58, ndp(src, sn, r), hopLimit));
}

t.test('unknown IPv6 neighbour → NS to its solicited-node group; solicited NA (S=1, O=1) → REACHABLE', (t) => {
  const p = pair();
  const r = route(p.a, B6);
  r.send(58, echoRequest(r, 1, 1, pattern(8)), r.headroom);
  const sn = solicitedNodeAddress(B6);
  t.equal(p.fromA.length, 1);
  t.equal(
    hex(p.fromA[0]!),
    hex(eth6(multicastMac(sn), MAC_A, ipv6(A6, sn, 58, ndp(A6, sn, { kind: 'neighbor-solicit', target: B6, sourceLinkLayer: MAC_A }), 255))),
    'NS from the prompting packet’s source, with SLLA, hop limit 255',
  );
  p.clock.advance(1);
  t.equal(
    hex(p.fromB[0]!),
    hex(eth6(MAC_A, MAC_B, ipv6(B6, A6, 58, ndp(B6, A6, { kind: 'neighbor-advert', router: false, solicited: true, override: true, target: B6, targetLinkLayer: MAC_B }), 255))),
    'NA unicast with S and O set and TLLA',
  );
  const e = p.a.neighbors(p.nicA, 6).find((n) => hex(n.address) === hex(B6))!;
  t.equal(e.state, 'reachable');
  t.same(e.mac, MAC_B);
  t.equal(p.fromA.length, 2, 'queued echo request sent');
  t.end();
});

t.test('NS from a neighbour for our address → NA and a STALE entry from its SLLA; wrong hop limit → dropped', (t) => {
  const { s, link } = single();
  link.deliver(nsFrame(X6, MAC_X, A6, MAC_X, 64));
  t.equal(link.take().length, 0);
  t.equal(s.stats.snapshot()['ndp.badHopLimit'], 1, 'RFC 4861 §7.1.1: hop limit must be 255');
  link.deliver(nsFrame(X6, MAC_X, A6, MAC_X));
  const out = link.take();
  t.equal(out.length, 1);
  t.equal(
    hex(out[0]!),
    hex(eth6(MAC_X, MAC_A, ipv6(A6, X6, 58, ndp(A6, X6, { kind: 'neighbor-advert', router: false, solicited: true, override: true, target: A6, targetLinkLayer: MAC_A }), 255))),
  );
  t.equal(s.neighbors(1, 6).find((n) => hex(n.address) === hex(X6))!.state, 'delay', 'STALE from the SLLA, then DELAY once the NA used it');
  link.deliver(nsFrame(X6, MAC_X, ip('fd74:7376::42'), MAC_X));
  t.equal(link.take().length, 0, 'not our target: no answer');
  t.end();
});

t.test('DAD probe from :: for our assigned address → NA to all-nodes with S=0, O=1', (t) => {
  const { link } = single();
  link.deliver(nsFrame(IPV6_ANY, MAC_X, A6));
  const out = link.take();
  t.equal(out.length, 1);
  t.equal(
    hex(out[0]!),
    hex(eth6(multicastMac(ALL_NODES), MAC_A, ipv6(A6, ALL_NODES, 58, ndp(A6, ALL_NODES, { kind: 'neighbor-advert', router: false, solicited: false, override: true, target: A6, targetLinkLayer: MAC_A }), 255))),
  );
  t.end();
});

t.test('address added → tentative, DAD NS from ::, unused as source; 1 s without answer → preferred', async (t) => {
  const { s, link, clock, nic } = single();
  const a = ip('fd74:7376::5');
  s.addAddress(nic, net('fd74:7376::5/64'));
  const sn = solicitedNodeAddress(a);
  t.same(link.take().map(hex), [hex(eth6(multicastMac(sn), MAC_A, ipv6(IPV6_ANY, sn, 58, ndp(IPV6_ANY, sn, { kind: 'neighbor-solicit', target: a }), 255)))]);
  t.equal(s.addresses(nic).find((x) => hex(x.subnet.address) === hex(a))!.state, 'tentative');
  t.equal(s.isLocalAddress(a), false, 'tentative is not assigned');
  t.equal(s.findRoute(X6, a), (await import('../../../netstack/errors.ts')).Err.AddressNotAvailable, 'not usable as a source');
  let ready: boolean | undefined;
  void s.whenAddressReady(a).then((ok) => (ready = ok));
  clock.advance(999);
  await Promise.resolve();
  t.equal(ready, undefined, 'still tentative at 999 ms');
  clock.advance(1);
  await Promise.resolve();
  t.equal(ready, true);
  t.equal(s.isLocalAddress(a), true);
  t.equal(s.stats.snapshot()['ndp.dadSucceeded'], 3, 'link-local and fd74:7376::1 earlier, now this one');
  t.end();
});

t.test('dadTransmits 3 → three probes 1 s apart, ready after 3 s; dadTransmits 0 → ready at once', async (t) => {
  const { s, link, clock, nic } = single({ dadTransmits: 3 });
  const a = ip('fd74:7376::6');
  s.addAddress(nic, net('fd74:7376::6/64'));
  t.equal(link.take().length, 1);
  clock.advance(1000);
  t.equal(link.take().length, 1);
  clock.advance(1000);
  t.equal(link.take().length, 1);
  t.equal(s.isLocalAddress(a), false);
  clock.advance(1000);
  t.equal(link.take().length, 0);
  t.equal(await s.whenAddressReady(a), true);
  const z = single({ dadTransmits: 0 });
  z.s.addAddress(z.nic, net('fd74:7376::7/64'));
  t.equal(z.s.isLocalAddress(ip('fd74:7376::7')), true);
  t.end();
});

t.test('tentative address: NS for it from a resolving node is ignored; packets to it are dropped', (t) => {
  const { s, link, nic } = single();
  const a = ip('fd74:7376::5');
  s.addAddress(nic, net('fd74:7376::5/64'));
  link.take();
  link.deliver(nsFrame(X6, MAC_X, a, MAC_X));
  t.equal(link.take().length, 0, 'RFC 4862 §5.4.3: no answer');
  t.equal(s.stats.snapshot()['ndp.tentativeTarget'], 1);
  const rec = new Recorder(PROTO_UDP);
  s.registerTransport(rec);
  link.deliver(eth6(MAC_A, MAC_X, ipv6(X6, a, 17, udp(1, 2, pattern(4)))));
  t.equal(rec.packets.length, 0);
  t.equal(s.stats.snapshot()['ipv6.tentativeDestination'], 1);
  t.end();
});

t.test('address in use by a neighbour → its NA answers our DAD probe → duplicate, whenAddressReady false', async (t) => {
  const p = pair();
  p.a.addAddress(p.nicA, net('fd74:7376::2/64'));
  const ready = p.a.whenAddressReady(B6);
  p.clock.advance(2000);
  t.equal(await ready, false);
  t.equal(p.a.addresses(p.nicA).find((x) => hex(x.subnet.address) === hex(B6))!.state, 'duplicate');
  t.equal(p.a.stats.snapshot()['ndp.dadFailed'], 1);
  t.equal(p.a.isLocalAddress(B6), false);
  t.equal(p.b.isLocalAddress(B6), true, 'the defender keeps it');
  t.end();
});

t.test('two nodes probing the same tentative address → both see the other’s probe → both duplicate', async (t) => {
  const p = pair();
  const x = ip('fd74:7376::9');
  p.a.addAddress(p.nicA, net('fd74:7376::9/64'));
  p.b.addAddress(p.nicB, net('fd74:7376::9/64'));
  const ra = p.a.whenAddressReady(x);
  const rb = p.b.whenAddressReady(x);
  p.clock.advance(2000);
  t.same([await ra, await rb], [false, false]);
  t.end();
});

t.test('every NIC gets its EUI-64 link-local address (RFC 4291 appendix A) and answers on it', (t) => {
  const p = pair();
  const llA = linkLocalFromMac(MAC_A);
  const llB = linkLocalFromMac(MAC_B);
  t.equal(p.a.isLocalAddress(llA), true);
  const rec = new Recorder(58);
  p.a.registerTransport(rec);
  const r = p.a.findRoute(llB);
  if (isError(r)) throw new Error(String(r));
  t.same(r.localAddress, llA, 'link-local source for a link-local destination');
  r.send(58, echoRequest(r, 9, 9, pattern(4)), r.headroom);
  p.clock.advance(10);
  t.equal(rec.packets.length, 1);
  t.end();
});

t.test('echo request to all-nodes → answered from a unicast address (Linux echo_ignore_multicast=0)', (t) => {
  const { link } = single();
  link.deliver(eth6(multicastMac(ALL_NODES), MAC_X, ipv6(X6, ALL_NODES, 58, icmp6(X6, ALL_NODES, 128, 0, 0x00070001, pattern(4)))));
  // The reply first needs X resolved: an NS goes out.
  const out = link.take();
  t.equal(out.length, 1);
  t.equal(out[0]![14 + 40], 135, 'NS for X while the reply waits');
  t.end();
});
