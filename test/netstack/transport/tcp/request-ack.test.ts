// A server's first request on a new connection: its ACK waits for the end of the event-loop turn (a 0 ms clock
// timer), so a reply written in the meantime carries it instead of a bare ACK of its own; without a reply the ACK
// still goes at the turn's end; and reading the request sends no window update of its own (the SYN-ACK offered
// at most 64 KB unscaled, less than the buffer, which made every first read look like an opened window).
import t from 'tap';
import * as seq from '../../../../netstack/seqnum.ts';
import type { PacketInfo } from '../../../../netstack/transport/protocol.ts';
import { TCP_ACK, TCP_PSH, type TcpRepr, emitTcp, tcpHeaderLength } from '../../../../netstack/wire/tcp.ts';
import { Harness, LOCAL, REMOTE } from './helper.ts';

const REQUEST = new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

/** Delivers a request from the peer without running the timers due (the application's turn comes first). */
function deliverRequest(h: Harness, synAckTs: number): void {
  const repr: TcpRepr = {
    srcPort: h.peerPort,
    dstPort: h.localPort,
    seq: h.peerNxt,
    ack: seq.add(h.iss, 1),
    flags: TCP_ACK | TCP_PSH,
    window: h.peerWindow,
    urgentPointer: 0,
    options: { tsVal: 200, tsEcr: synAckTs },
    payload: REQUEST,
  };
  const buf = new Uint8Array(tcpHeaderLength(repr) + REQUEST.length);
  emitTcp(repr, buf, 0, REMOTE, LOCAL);
  const info: PacketInfo = { nicId: 1, src: REMOTE, dst: LOCAL, ttl: 64, tos: 0, broadcast: false };
  h.tcp.deliver(info, buf);
  h.peerNxt = seq.add(h.peerNxt, REQUEST.length);
}

function accepted() {
  const h = new Harness();
  const ep = h.accept(h.listen());
  return { h, ep };
}

t.test('ESTABLISHED rcv first request, reply within the turn → one segment: the reply carries the ACK', async (t) => {
  const { h, ep } = accepted();
  deliverRequest(h, 0);
  t.equal(h.pending, 0, 'nothing sent while the segment is processed');
  const r = ep.read();
  t.ok(!('errno' in r) && r.data.length === REQUEST.length, 'the application reads the request');
  t.equal(h.pending, 0, 'reading it sends no window update');
  ep.write(new TextEncoder().encode('HTTP/1.1 200 OK\r\n\r\n'));
  const reply = h.expect({ flags: TCP_ACK | TCP_PSH, ack: h.peerNxt });
  t.ok(reply.window > 0xffff >> 7, `the reply offers the full window (field ${reply.window})`);
  h.clock.runDue();
  h.expectNone();
});

t.test('ESTABLISHED rcv first request, no reply → the ACK goes at the end of the turn', async (t) => {
  const { h } = accepted();
  deliverRequest(h, 0);
  t.equal(h.pending, 0);
  h.clock.runDue();
  h.expect({ flags: TCP_ACK, ack: h.peerNxt, len: 0 });
  h.expectNone(1000);
});
