// IPv4 identification of TCP's replies that belong to no connection: a RST to a closed port and a SYN cookie's
// SYN-ACK leave with DF and identification 0, as Linux sends them (ip_build_and_send_pkt, the control socket),
// while a connection's own segments draw consecutive identifications from the path's counter.
import t from 'tap';
import { VirtualClock } from '../../../../netstack/clock.ts';
import { Netstack } from '../../../../netstack/netstack.ts';
import type { Endpoint } from '../../../../netstack/socket.ts';
import { Ipv4Packet } from '../../../../netstack/wire/ipv4.ts';
import { emitTcp, TCP_ACK, TCP_RST, TCP_SYN, TcpPacket } from '../../../../netstack/wire/tcp.ts';
import { arpRequestFrame, eth4, ipv4, MAC_X } from '../../network/frames.ts';
import { net, TestLink, X4 } from '../../network/helpers.ts';

const A4 = net('198.18.0.1/24').address;

/** A Netstack at 198.18.0.1/24 on a TestLink, with X (198.18.0.99) in its neighbour cache. */
function setup() {
  const clock = new VirtualClock();
  const link = new TestLink(new Uint8Array([2, 0, 0, 0, 0, 1]));
  const n = new Netstack({ clock, seed: 3, dadTransmits: 0 });
  const nic = n.stack.addNic(link);
  n.stack.addAddress(nic, net('198.18.0.1/24'));
  clock.advance(100);
  link.deliver(arpRequestFrame(MAC_X, X4, A4));
  link.take();
  return { clock, link, n };
}

/** A TCP segment from X:sport to A:dport as an Ethernet frame. */
function segment(sport: number, dport: number, flags: number, seq: number, ack = 0): Uint8Array {
  const tcp = new Uint8Array(24);
  emitTcp({ srcPort: sport, dstPort: dport, seq, ack, flags, window: 65535, urgentPointer: 0, options: { mss: 1460 }, payload: new Uint8Array(0) }, tcp, 0, X4, A4);
  return eth4(new Uint8Array([2, 0, 0, 0, 0, 1]), MAC_X, ipv4({ src: X4, dst: A4, protocol: 6, identification: 1, dontFragment: true }, tcp));
}

/** The IPv4 identification, DF bit and TCP flags of a written frame. */
function fields(frame: Uint8Array): { id: number; df: boolean; flags: number } {
  const ip = new Ipv4Packet(frame.subarray(14));
  return { id: ip.identification, df: ip.dontFragment, flags: new TcpPacket(frame.subarray(34)).flags };
}

t.test("RST to a closed port, cookie SYN-ACKs → DF, identification 0; a connection's segments → consecutive ids", async (t) => {
  const { link, n, clock } = setup();
  link.deliver(segment(40000, 9, TCP_SYN, 1000));
  const [rst] = link.take();
  t.same(fields(rst!), { id: 0, df: true, flags: TCP_RST | TCP_ACK }, 'RST for a closed port');

  const l = n.socket(4, 'stream') as Endpoint;
  l.bind({ address: new Uint8Array(4), port: 7 });
  l.listen(1);
  link.deliver(segment(40001, 7, TCP_SYN, 2000));
  const [queued] = link.take();
  t.equal(fields(queued!).flags, TCP_SYN | TCP_ACK, 'the first SYN takes the queue');
  const cookies = [];
  for (let i = 0; i < 3; i++) {
    link.deliver(segment(40010 + i, 7, TCP_SYN, 3000 + i));
    cookies.push(...link.take().map(fields));
  }
  t.same(cookies, Array(3).fill({ id: 0, df: true, flags: TCP_SYN | TCP_ACK }), 'cookie SYN-ACKs with the queue full');
  t.equal(n.counters()['tcp.syncookiesSent'], 3);

  // The queued connection completes; its SYN-ACK and its data draw from the path's counter, one apart.
  const synAck = new TcpPacket(queued!.subarray(34));
  link.deliver(segment(40001, 7, TCP_ACK, 2001, (synAck.seqNumber + 1) >>> 0));
  const a = l.accept();
  if (!('endpoint' in a)) throw new Error(`accept: ${String(a)}`);
  a.endpoint.write(new Uint8Array(10));
  clock.advance(1);
  const data = link.take().map(fields);
  t.equal(data.length, 1, 'one data segment');
  t.not(fields(queued!).id, 0, "the queued SYN-ACK's id is the counter's");
  t.equal(data[0]!.id, (fields(queued!).id + 1) & 0xffff, 'the data segment takes the next id');
});
