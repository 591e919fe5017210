// ECN (RFC 3168) as Linux's tcp_ecn modes run it (ecn.ts): the handshake, ECT(0) on new data only, CE answered
// with ECE until CWR, ECE answered with one window reduction and CWR, the SYN fallback.
import t from 'tap';
import * as seq from '../../../../netstack/seqnum.ts';
import { EcnState, ECN_CE, ECN_ECT0, ECN_NOT_ECT } from '../../../../netstack/transport/tcp/ecn.ts';
import { Err } from '../../../../netstack/errors.ts';
import { TCP_ACK, TCP_CWR, TCP_ECE, TCP_PSH, TCP_SYN } from '../../../../netstack/wire/tcp.ts';
import { Harness, REMOTE, pattern } from './helper.ts';

const A = TCP_ACK;
const PEER = { mss: 1000, sackPermitted: true, wscale: 7 };

/** An active open under tcp_ecn = `mode`, answered by a SYN-ACK with `synAckFlags` (ECE agrees). */
function client(mode: number, synAckFlags = TCP_SYN | A | TCP_ECE): { h: Harness; ep: ReturnType<Harness['connect']>; syn: number } {
  const h = new Harness({ ecn: mode });
  const ep = h.tcp.newEndpoint(4);
  if (ep.connect({ address: REMOTE, port: 80 }) !== Err.ConnectStarted) throw new Error('connect');
  const syn = h.next();
  h.iss = syn.seq;
  h.localPort = syn.srcPort;
  h.peerPort = 80;
  h.send({ flags: synAckFlags, ack: seq.add(h.iss, 1), options: PEER });
  h.peerNxt = seq.add(h.peerNxt, 1);
  h.expect({ flags: A });
  return { h, ep, syn: syn.flags };
}

t.test('tcp_ecn=1 SYN → ECE|CWR, Not-ECT; SYN-ACK with ECE → new data ECT(0), pure ACKs Not-ECT', async (t) => {
  const { h, ep, syn } = client(1);
  t.equal(syn, TCP_SYN | TCP_ECE | TCP_CWR);
  t.equal(ep.ecn.ok, true);
  ep.setOption('TCP_NODELAY', 1);
  ep.write(pattern(500));
  h.expect({ flags: A | TCP_PSH, len: 500, ecn: ECN_ECT0 });
  h.send({ flags: A | TCP_PSH, ack: seq.add(h.iss, 501), payload: pattern(100) });
  h.advance(200);
  h.expect({ flags: A, len: 0, ecn: ECN_NOT_ECT });
});

t.test('tcp_ecn=1, SYN-ACK without ECE, or with ECE and CWR → no ECN: data Not-ECT', async (t) => {
  for (const f of [TCP_SYN | A, TCP_SYN | A | TCP_ECE | TCP_CWR]) {
    const { h, ep } = client(1, f);
    t.equal(ep.ecn.ok, false);
    ep.write(pattern(500));
    h.expect({ flags: A | TCP_PSH, len: 500, ecn: ECN_NOT_ECT });
  }
});

t.test('tcp_ecn=2 (Linux default) and 0 → the SYN asks for nothing', async (t) => {
  for (const mode of [0, 2]) t.equal(client(mode, TCP_SYN | A).syn, TCP_SYN, `tcp_ecn=${mode}`);
});

t.test('tcp_ecn=1 SYN lost → the retransmitted SYN asks no more (tcp_ecn_fallback)', async (t) => {
  const h = new Harness({ ecn: 1 });
  const ep = h.tcp.newEndpoint(4);
  ep.connect({ address: REMOTE, port: 80 });
  h.expect({ flags: TCP_SYN | TCP_ECE | TCP_CWR });
  h.advance(1000);
  h.expect({ flags: TCP_SYN });
});

/** A passive open of a SYN with `flags`, arriving with IP ECN codepoint `ecn`; returns the SYN-ACK's flags. */
function server(mode: number, flags: number, ecn = ECN_NOT_ECT): { h: Harness; synAck: number; ep: ReturnType<Harness['connect']> } {
  const h = new Harness({ ecn: mode });
  const l = h.listen();
  h.send({ flags, options: PEER, ecn });
  const sa = h.next();
  h.iss = sa.seq;
  h.peerNxt = seq.add(h.peerNxt, 1);
  h.send({ flags: A, ack: seq.add(h.iss, 1) });
  const a = l.accept();
  if ('errno' in a) throw new Error('accept');
  return { h, synAck: sa.flags, ep: a.endpoint as ReturnType<Harness['connect']> };
}

t.test('LISTEN rcv SYN with ECE|CWR → SYN-ACK with ECE alone, under tcp_ecn 1 and 2; not under 0, nor for an ECT SYN', async (t) => {
  t.equal(server(2, TCP_SYN | TCP_ECE | TCP_CWR).synAck, TCP_SYN | A | TCP_ECE);
  t.equal(server(1, TCP_SYN | TCP_ECE | TCP_CWR).synAck, TCP_SYN | A | TCP_ECE);
  t.equal(server(0, TCP_SYN | TCP_ECE | TCP_CWR).synAck, TCP_SYN | A);
  t.equal(server(2, TCP_SYN | TCP_ECE).synAck, TCP_SYN | A, 'ECE without CWR is no request');
  t.equal(server(2, TCP_SYN | TCP_ECE | TCP_CWR, ECN_ECT0).synAck, TCP_SYN | A, 'an ECT SYN is refused ECN');
});

t.test('ESTABLISHED (ECN) rcv data marked CE → ACKed at once with ECE; ECE on every segment until data with CWR', async (t) => {
  const { h, ep } = server(2, TCP_SYN | TCP_ECE | TCP_CWR);
  const s = seq.add(h.iss, 1);
  h.send({ flags: A | TCP_PSH, ack: s, payload: pattern(100), ecn: ECN_CE });
  h.expect({ flags: A | TCP_ECE, len: 0, ecn: ECN_NOT_ECT });
  h.peerNxt = seq.add(h.peerNxt, 100);
  ep.setOption('TCP_NODELAY', 1);
  ep.write(pattern(200));
  h.expect({ flags: A | TCP_PSH | TCP_ECE, len: 200, ecn: ECN_ECT0 });
  h.send({ flags: A | TCP_PSH, ack: seq.add(s, 200), payload: pattern(100), ecn: ECN_ECT0 });
  h.peerNxt = seq.add(h.peerNxt, 100);
  h.advance(200);
  h.expect({ flags: A | TCP_ECE, len: 0 });
  h.send({ flags: A | TCP_PSH | TCP_CWR, ack: seq.add(s, 200), payload: pattern(100), ecn: ECN_ECT0 });
  h.expect({ flags: A, len: 0 });
  t.equal(ep.ecn.demandCwr, false);
});

t.test('ESTABLISHED (ECN) rcv ECE → cwnd reduced once per window, CWR on the next new data only', async (t) => {
  const { h, ep } = server(2, TCP_SYN | TCP_ECE | TCP_CWR);
  const s = seq.add(h.iss, 1);
  ep.write(pattern(10000));
  while (h.pending) h.next();
  const cwnd = ep.snd.cc.cwnd;
  h.send({ flags: A | TCP_ECE, ack: seq.add(s, 1000) });
  t.ok(ep.snd.cc.cwnd < cwnd, `cwnd ${cwnd} → ${ep.snd.cc.cwnd}`);
  t.equal(h.tcp.stats.ecnReductions, 1);
  const reduced = ep.snd.cc.cwnd;
  h.send({ flags: A | TCP_ECE, ack: seq.add(s, 2000) });
  t.equal(h.tcp.stats.ecnReductions, 1, 'the same window: no second reduction');
  t.ok(ep.snd.cc.cwnd >= reduced);
  h.send({ flags: A, ack: seq.add(s, 10000) });
  t.equal(h.pending, 0, 'nothing new to send yet');
  ep.write(pattern(3000));
  const first = h.next();
  t.equal(first.flags & TCP_CWR, TCP_CWR, 'the first new data carries CWR');
  while (h.pending) t.equal(h.next().flags & TCP_CWR, 0, 'later ones do not');
  // Everything up to the reduction acknowledged: a new window, a new reduction.
  h.send({ flags: A, ack: seq.add(s, 13000) });
  h.send({ flags: A | TCP_ECE, ack: seq.add(s, 13000) });
  t.equal(h.tcp.stats.ecnReductions, 2);
});

t.test('EcnState.dataArrived: CE starts a demand once, CWR ends it, ECT is seen', async (t) => {
  const e = new EcnState();
  e.ok = true;
  t.equal(e.dataArrived(ECN_ECT0, false), false);
  t.equal(e.seen, true);
  t.equal(e.dataArrived(ECN_CE, false), true, 'the first CE: ACK now');
  t.equal(e.dataArrived(ECN_CE, false), false, 'already demanding');
  t.equal(e.demandCwr, true);
  t.equal(e.dataArrived(ECN_ECT0, true), true, 'CWR: ACK now');
  t.equal(e.demandCwr, false);
});

t.test('IP_TOS on a TCP socket → every segment carries its bits; the ECN bits stay TCP\'s (do_ip_setsockopt on a stream socket)', async (t) => {
  const { h, ep } = client(1);
  // The application's ECN bits are dropped: 0x2f keeps 0x2c.
  t.equal(ep.setOption('IP_TOS', 0x2f), undefined);
  t.equal(ep.getOption('IP_TOS'), 0x2c);
  ep.setOption('TCP_NODELAY', 1);
  h.net.sent.length = 0;
  ep.write(pattern(500));
  t.same(h.net.sent.map((s) => s.tos), [0x2c | ECN_ECT0], 'new data: the DSCP bits and ECT(0)');
  h.net.sent.length = 0;
  h.send({ flags: A | TCP_PSH, ack: seq.add(h.iss, 501), payload: pattern(100) });
  h.advance(200);
  t.same(h.net.sent.map((s) => s.tos), [0x2c], 'a pure ACK: the DSCP bits, Not-ECT');
  t.equal(ep.setOption('IP_MTU_DISCOVER', 0), undefined, 'IP_PMTUDISC_DONT is accepted');
  t.equal(ep.getOption('IP_MTU_DISCOVER'), 0);
  t.equal(ep.setOption('IP_MTU_DISCOVER', 6), Err.InvalidArgument);
});

t.test('IP_TTL on a TCP socket → every segment leaves with it, the SYN too; -1 gives the default back; 0 and 256 are EINVAL', async (t) => {
  const h = new Harness({ ecn: 0 });
  const ep = h.tcp.newEndpoint(4);
  t.equal(ep.getOption('IP_TTL'), 64, 'the default, as Linux reads it');
  t.equal(ep.setOption('IP_TTL', 33), undefined);
  t.equal(ep.getOption('IP_TTL'), 33);
  t.equal(ep.setOption('IP_TTL', 0), Err.InvalidArgument);
  t.equal(ep.setOption('IP_TTL', 256), Err.InvalidArgument);
  t.equal(ep.setOption('IP_TOS', 0x20), undefined);
  if (ep.connect({ address: REMOTE, port: 80 }) !== Err.ConnectStarted) throw new Error('connect');
  const first = h.net.sent[0]!;
  t.same([first.ttl, first.tos], [33, 0x20], 'the SYN: TTL and TOS both');
  const syn = h.next();
  h.iss = syn.seq;
  h.localPort = syn.srcPort;
  h.peerPort = 80;
  h.send({ flags: TCP_SYN | A, ack: seq.add(h.iss, 1), options: PEER });
  h.peerNxt = seq.add(h.peerNxt, 1);
  h.expect({ flags: A });
  ep.setOption('TCP_NODELAY', 1);
  h.net.sent.length = 0;
  ep.write(pattern(500));
  t.same(h.net.sent.map((s) => s.ttl), [33], 'data');
  t.equal(ep.setOption('IP_TTL', -1), undefined);
  t.equal(ep.getOption('IP_TTL'), 64);
  h.net.sent.length = 0;
  ep.write(pattern(10));
  h.advance(300);
  t.ok(h.net.sent.length > 0 && h.net.sent.every((s) => s.ttl === undefined), 'the route\'s default again');
  t.equal(ep.getOption('IPV6_UNICAST_HOPS'), Err.ProtocolNotAvailable, 'an IPv6 option on an IPv4 socket');
});
