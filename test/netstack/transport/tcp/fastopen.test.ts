// TCP Fast Open (RFC 7413) against a scripted peer on the virtual clock, with Linux's tcp_fastopen bits: the
// server's cookie (Linux's SipHash of the addresses, cross-checked with the packetdrill runner's own BigInt
// SipHash, which matched run_all.py's TFO_COOKIE values), data in the SYN taken into a child before the
// handshake completes, and the fallbacks.
import t from 'tap';
import { Err } from '../../../../netstack/errors.ts';
import * as seq from '../../../../netstack/seqnum.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { fastOpenCookie, parseFastOpenKeys } from '../../../../netstack/transport/tcp/fastopen.ts';
import { tcpInfo } from '../../../../netstack/transport/tcp/options.ts';
import { State } from '../../../../netstack/transport/tcp/state.ts';
import { EventOut } from '../../../../netstack/waiter.ts';
import { TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN, emitTcpOptions, parseTcpOptions } from '../../../../netstack/wire/tcp.ts';
import { fastOpenCookie as referenceCookie } from '../../../packetdrill/upstream.ts';
import { Harness, LOCAL, REMOTE, pattern } from './helper.ts';

const KEY = 'a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4';
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
/** The cookie for the peer (198.18.0.2) connecting to the stack (198.18.0.1) under KEY. */
const COOKIE = unhex(referenceCookie(KEY, '198.18.0.2', '198.18.0.1'));
const SYN_OPTS = { mss: 1460, sackPermitted: true };
const TCPI_OPT_SYN_DATA = 32;

/** A stack with defaults.sh's Fast Open settings (0x70403: client, server, every listener) and a listener. */
function server(fastOpen = 0x70403, qlen?: number): { h: Harness; l: TcpEndpoint } {
  const h = new Harness({ fastOpen, fastOpenKey: KEY });
  const l = h.listen(4);
  if (qlen !== undefined) l.setOption('TCP_FASTOPEN', qlen);
  return { h, l };
}

t.test('cookie: SipHash-2-4 of client then server address under the key, as Linux (and the runner) compute', async (t) => {
  const [key] = parseFastOpenKeys(KEY);
  t.equal(hex(fastOpenCookie(key!, REMOTE, LOCAL)), hex(COOKIE));
  t.equal(hex(COOKIE), 'b7c8184f0bc975d4', 'the value the runner maps run_all.py TFO_COOKIE to for these addresses');
  t.not(hex(fastOpenCookie(key!, LOCAL, REMOTE)), hex(COOKIE), 'the direction matters');
});

t.test('wire: kind 34 padded with NOP NOP, kind 254 with ExID 0xF989, both parsed back', async (t) => {
  const b = new Uint8Array(40);
  let n = emitTcpOptions({ fastOpen: { cookie: unhex('0102030405060708'), exp: false } }, b, 0);
  t.same([...b.subarray(0, n)], [34, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1]);
  t.same(parseTcpOptions(b.subarray(0, n)), { fastOpen: { cookie: unhex('0102030405060708'), exp: false } });
  n = emitTcpOptions({ fastOpen: { cookie: new Uint8Array(0), exp: true } }, b, 0);
  t.same([...b.subarray(0, n)], [254, 4, 0xf9, 0x89]);
  t.same(parseTcpOptions(b.subarray(0, n)), { fastOpen: { cookie: new Uint8Array(0), exp: true } });
  n = emitTcpOptions({ fastOpen: { cookie: new Uint8Array(0), exp: false } }, b, 0);
  t.same([...b.subarray(0, n)], [34, 2, 1, 1]);
  t.same(parseTcpOptions(new Uint8Array([254, 4, 0x12, 0x34])), { unknown: [{ kind: 254, data: new Uint8Array([0x12, 0x34]) }] }, 'other ExIDs stay unknown');
});

t.test('LISTEN rcv SYN with a cookie request → SYN-ACK carries the cookie in the form asked; no data taken', async (t) => {
  for (const exp of [false, true]) {
    const { h, l } = server();
    h.send({ flags: TCP_SYN, options: { ...SYN_OPTS, fastOpen: { cookie: new Uint8Array(0), exp } }, payload: pattern(10) });
    const sa = h.expect({ flags: TCP_SYN | TCP_ACK, ack: h.peerNxt + 1 });
    t.same(sa.options.fastOpen, { cookie: COOKIE, exp }, `exp=${exp}`);
    t.equal(l.accept(), Err.WouldBlock, 'no child before the handshake completes');
  }
});

t.test('LISTEN rcv SYN+data with a valid cookie → child accepted before the 3WHS, SYN-ACK acks the data', async (t) => {
  const { h, l } = server();
  const data = pattern(10);
  h.send({ flags: TCP_SYN, options: { ...SYN_OPTS, fastOpen: { cookie: COOKIE, exp: true } }, payload: data });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK, ack: seq.add(h.peerNxt, 11) });
  t.equal(sa.options.fastOpen, undefined, 'a valid cookie is not sent back');
  h.iss = sa.seq;
  const a = l.accept();
  if ('errno' in a) throw new Error(`accept: ${a.kind}`);
  const c = a.endpoint as TcpEndpoint;
  t.equal(c.state, State.SynReceived);
  t.ok(tcpInfo(c).tcpi_options! & TCPI_OPT_SYN_DATA, 'TCPI_OPT_SYN_DATA');
  t.equal(tcpInfo(c).tcpi_delivered, 0);
  const r = c.read();
  t.same('errno' in r ? r : r.data, data, 'the SYN data is readable at once');
  // The child sends before its SYN-ACK is acknowledged (Linux's passive Fast Open).
  t.equal(c.write(pattern(100)), 100);
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: seq.add(h.iss, 1), ack: seq.add(h.peerNxt, 11), len: 100 });
  h.expectNone(0);
  h.peerNxt = seq.add(h.peerNxt, 11);
  h.send({ flags: TCP_ACK, ack: seq.add(h.iss, 101) });
  t.equal(c.state, State.Established);
  t.equal(c.outQueue(), 0, 'the ACK covering SYN-ACK and data emptied the send buffer');
  t.equal(tcpInfo(c).tcpi_delivered, 2, 'SYN-ACK + one data segment');
  t.equal(l.listener!.fastOpenPending, 0, 'the child left the Fast Open queue');
});

t.test('LISTEN rcv SYN+data with a wrong cookie → plain handshake, SYN-ACK acks the SYN only and gives the cookie', async (t) => {
  const { h, l } = server();
  h.send({ flags: TCP_SYN, options: { ...SYN_OPTS, fastOpen: { cookie: unhex('aaaaaaaaaaaaaaaa'), exp: false } }, payload: pattern(10) });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK, ack: seq.add(h.peerNxt, 1) });
  t.same(sa.options.fastOpen, { cookie: COOKIE, exp: false });
  t.equal(l.accept(), Err.WouldBlock);
  h.peerNxt = seq.add(h.peerNxt, 1);
  h.send({ flags: TCP_ACK, ack: seq.add(sa.seq, 1) });
  const a = l.accept();
  if ('errno' in a) throw new Error(`accept: ${a.kind}`);
  const c = a.endpoint as TcpEndpoint;
  t.equal(c.inQueue(), 0, 'the SYN data was not taken');
  t.notOk(tcpInfo(c).tcpi_options! & TCPI_OPT_SYN_DATA);
});

t.test('LISTEN rcv SYN+data without cookie: 0x200 takes it, 0x2 alone does not, no queue does not', async (t) => {
  for (const [bits, qlen, taken] of [[0x202, 2, true], [0x2, 2, false], [0x202, undefined, false]] as const) {
    const { h, l } = server(bits, qlen);
    h.send({ flags: TCP_SYN, options: SYN_OPTS, payload: pattern(1000) });
    h.expect({ flags: TCP_SYN | TCP_ACK, ack: seq.add(h.peerNxt, taken ? 1001 : 1), options: { fastOpen: undefined } });
    const a = l.accept();
    t.equal('errno' in a ? 0 : a.endpoint.inQueue(), taken ? 1000 : 0, `tcp_fastopen=${bits.toString(16)} TCP_FASTOPEN=${qlen}`);
  }
});

t.test('SYN-RECEIVED Fast Open child rcv RST before accept → accept returns it: its data, then ECONNRESET', async (t) => {
  const { h, l } = server();
  h.send({ flags: TCP_SYN, options: { ...SYN_OPTS, fastOpen: { cookie: COOKIE, exp: false } }, payload: pattern(10) });
  h.expect({ flags: TCP_SYN | TCP_ACK });
  h.send({ flags: TCP_RST | TCP_ACK, seq: seq.add(h.peerNxt, 11) });
  const a = l.accept();
  if ('errno' in a) throw new Error(`accept: ${a.kind}`);
  const c = a.endpoint as TcpEndpoint;
  t.equal(c.state, State.Closed);
  const r = c.read();
  t.equal('errno' in r ? -1 : r.data.length, 10);
  t.equal(c.read(), Err.ConnectionReset);
  t.equal(l.listener!.fastOpenPending, 0);
});

t.test('LISTEN with a full Fast Open queue → plain handshake for the next SYN', async (t) => {
  const { h, l } = server(0x70403, 1);
  h.send({ flags: TCP_SYN, options: { ...SYN_OPTS, fastOpen: { cookie: COOKIE, exp: false } }, payload: pattern(10) });
  h.expect({ flags: TCP_SYN | TCP_ACK, ack: seq.add(h.peerNxt, 11) });
  h.send({ flags: TCP_SYN, srcPort: 40001, options: { ...SYN_OPTS, fastOpen: { cookie: COOKIE, exp: false } }, payload: pattern(10) });
  h.expect({ flags: TCP_SYN | TCP_ACK, ack: seq.add(h.peerNxt, 1) });
  t.equal(l.listener!.fastOpenPending, 1);
});

/** A client stack (tcp_fastopen as given) whose next connection goes to the scripted peer. */
function client(fastOpen = 1): Harness {
  return new Harness({ fastOpen, timestamps: false });
}
const TO = { address: REMOTE, port: 40000 };
const SERVER_COOKIE = unhex('0011223344556677');

/** Sends sendto(MSG_FASTOPEN) on a fresh socket; returns the socket, the write's result and the SYN. */
function fastOpenSend(h: Harness, data: Uint8Array) {
  const ep = h.tcp.newEndpoint(4);
  const n = ep.write(data, { to: TO, fastOpen: true });
  const syn = h.expect({ flags: TCP_SYN });
  h.iss = syn.seq;
  h.localPort = syn.srcPort;
  h.peerPort = 40000;
  return { ep, n, syn };
}

t.test('CLOSED sendto(MSG_FASTOPEN) without a cookie → SYN asks for one, no data; the SYN-ACK\'s cookie is cached', async (t) => {
  const h = client();
  const { ep, n, syn } = fastOpenSend(h, pattern(1000));
  t.equal(n, Err.ConnectStarted, 'EINPROGRESS: nothing went with the SYN');
  t.same(syn.options.fastOpen, { cookie: new Uint8Array(0), exp: false });
  t.equal(syn.payload.length, 0);
  h.send({ flags: TCP_SYN | TCP_ACK, ack: seq.add(h.iss, 1), options: { mss: 940, fastOpen: { cookie: SERVER_COOKIE, exp: false } } });
  h.expect({ flags: TCP_ACK, ack: seq.add(h.peerNxt, 1) });
  t.equal(ep.state, State.Established);
  t.equal(tcpInfo(ep).tcpi_delivered, 1);
  t.same(h.tcp.fastOpenCache.get(REMOTE), { mss: 940, cookie: { cookie: SERVER_COOKIE, exp: false } });
});

t.test('CLOSED sendto(MSG_FASTOPEN) with a cached cookie → SYN carries cookie and data (cached MSS − 40); acked → SYN_DATA', async (t) => {
  const h = client();
  h.tcp.fastOpenCache.set(REMOTE, 940, { cookie: SERVER_COOKIE, exp: false }, 0);
  const data = pattern(1900);
  const { ep, n, syn } = fastOpenSend(h, data);
  t.equal(n, 900, 'what the SYN carries is what the call reports');
  t.same(syn.options.fastOpen, { cookie: SERVER_COOKIE, exp: false });
  t.same(syn.payload, data.subarray(0, 900));
  t.equal(ep.write(data.subarray(900), { to: TO, fastOpen: true }), Err.AlreadyConnecting, 'EALREADY while the handshake runs');
  t.equal(ep.write(data.subarray(900)), Err.WouldBlock);
  h.send({ flags: TCP_SYN | TCP_ACK, ack: seq.add(h.iss, 901), options: { mss: 1460 } });
  h.expect({ flags: TCP_ACK, seq: seq.add(h.iss, 901), len: 0 });
  t.ok(tcpInfo(ep).tcpi_options! & TCPI_OPT_SYN_DATA);
  t.equal(tcpInfo(ep).tcpi_delivered, 1, 'the SYN and its data count as one, as Linux');
  t.equal(ep.outQueue(), 0);
  t.equal(ep.write(data.subarray(900)), 1000);
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: seq.add(h.iss, 901), len: 1000 });
});

t.test('SYN-SENT with SYN data rcv SYN-ACK of the SYN only → the data goes again at once and carries the ACK', async (t) => {
  const h = client();
  h.tcp.fastOpenCache.set(REMOTE, 0, { cookie: SERVER_COOKIE, exp: false }, 0);
  const data = pattern(700);
  const { ep, n } = fastOpenSend(h, data);
  t.equal(n, 700);
  h.send({ flags: TCP_SYN | TCP_ACK, ack: seq.add(h.iss, 1), options: { mss: 1040 } });
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: seq.add(h.iss, 1), ack: seq.add(h.peerNxt, 1), payload: data });
  h.expectNone(0);
  t.notOk(tcpInfo(ep).tcpi_options! & TCPI_OPT_SYN_DATA);
  t.equal(h.tcp.stats.fastOpenActiveFail, 1);
  h.peerNxt = seq.add(h.peerNxt, 1);
  h.send({ flags: TCP_ACK, ack: seq.add(h.iss, 701) });
  t.equal(ep.outQueue(), 0);
});

t.test('SYN-SENT with SYN data, SYN timed out → retransmitted plain (no option, no data); data after the handshake', async (t) => {
  const h = client();
  h.tcp.fastOpenCache.set(REMOTE, 0, { cookie: SERVER_COOKIE, exp: false }, 0);
  fastOpenSend(h, pattern(1000));
  h.advance(1000);
  const again = h.expect({ flags: TCP_SYN, seq: h.iss, len: 0 });
  t.equal(again.options.fastOpen, undefined);
  h.send({ flags: TCP_SYN | TCP_ACK, ack: seq.add(h.iss, 1), options: { mss: 1460 } });
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: seq.add(h.iss, 1), len: 1000 });
});

t.test('tcp_fastopen 0x5 (no cookie needed) → SYN data without any option; 0 → EOPNOTSUPP', async (t) => {
  const h = client(5);
  const { n, syn } = fastOpenSend(h, pattern(5000));
  t.equal(n, 1420, 'one MSS of 1460 less 40');
  t.equal(syn.options.fastOpen, undefined);
  const off = client(0);
  t.equal(off.tcp.newEndpoint(4).write(pattern(10), { to: TO, fastOpen: true }), Err.NotSupported);
});

t.test('no cookie from a kind-34 request → the next request is experimental (254), then back to 34 for good', async (t) => {
  const h = client();
  const forms: boolean[] = [];
  for (let i = 0; i < 3; i++) {
    const { syn } = fastOpenSend(h, pattern(10));
    forms.push(syn.options.fastOpen!.exp);
    h.send({ flags: TCP_SYN | TCP_ACK, ack: seq.add(h.iss, 1), options: { mss: 1460 } });
    h.clearSent();
  }
  t.same(forms, [false, true, false]);
});

t.test('TCP_FASTOPEN_CONNECT with a cookie → connect() returns 0, socket writable, the first write carries the SYN', async (t) => {
  const h = client();
  h.tcp.fastOpenCache.set(REMOTE, 0, { cookie: SERVER_COOKIE, exp: true }, 0);
  const ep = h.tcp.newEndpoint(4);
  t.equal(ep.setOption('TCP_FASTOPEN_CONNECT', 1), undefined);
  t.equal(ep.connect(TO), undefined);
  h.expectNone(100);
  t.ok(ep.readiness(EventOut), 'writable in SYN-SENT, as tcp_poll says');
  t.equal(ep.write(pattern(100)), 100);
  const syn = h.expect({ flags: TCP_SYN, len: 100 });
  t.same(syn.options.fastOpen, { cookie: SERVER_COOKIE, exp: true }, 'the cookie in the form it came');
});
