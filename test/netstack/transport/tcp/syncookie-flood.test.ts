// LISTEN under a SYN flood: once the SYN queue is full every SYN is answered by a cookie SYN-ACK that leaves
// nothing behind (no connection, no timer), counted; and a legitimate client's ACK of its cookie still completes.
import t from 'tap';
import * as seq from '../../../../netstack/seqnum.ts';
import { TCP_ACK, TCP_SYN } from '../../../../netstack/wire/tcp.ts';
import { Harness } from './helper.ts';

t.test('LISTEN, SYN queue full, rcv 500 SYNs → 500 cookie SYN-ACKs, no state, no timer', async (t) => {
  const h = new Harness();
  const l = h.listen(1);
  h.peerPort = 30000;
  h.send({ flags: TCP_SYN, options: { mss: 1460 } });
  h.expect({ flags: TCP_SYN | TCP_ACK });
  t.equal(h.tcp.connectionCount, 1, 'the queue holds one');
  const clock = h.net.clock;
  const schedule = clock.schedule.bind(clock);
  let timers = 0;
  clock.schedule = (ms, fn) => (timers++, schedule(ms, fn));
  for (let i = 1; i <= 500; i++) {
    h.peerPort = 30000 + i;
    h.send({ flags: TCP_SYN, seq: 7_000_000 + i * 7919, options: { mss: 1460, tsVal: 1000 + i, sackPermitted: true, wscale: 7 } });
    const sa = h.expect({ flags: TCP_SYN | TCP_ACK, ack: 7_000_000 + i * 7919 + 1 });
    if (i === 500) t.ok(sa.options.tsVal !== undefined && sa.options.wscale !== undefined, 'options kept in the cookie timestamp');
  }
  t.equal(timers, 0, 'no timer for any of them');
  t.equal(h.tcp.connectionCount, 1, 'no state for any of them');
  t.equal(h.tcp.stats.syncookiesSent, 500);
  t.equal(h.tcp.stats.listenDrops, 0);
  clock.schedule = schedule;

  // The last one completes: its ACK carries the cookie back.
  h.peerPort = 31000;
  const isn = 9_000_000;
  h.send({ flags: TCP_SYN, seq: isn, options: { mss: 1460, tsVal: 5000, sackPermitted: true, wscale: 7 } });
  const sa = h.expect({ flags: TCP_SYN | TCP_ACK, ack: isn + 1 });
  h.send({ flags: TCP_ACK, seq: isn + 1, ack: seq.add(sa.seq, 1), options: { tsVal: 5001, tsEcr: sa.options.tsVal! } });
  const a = l.accept();
  t.notOk('errno' in a, 'accepted');
  t.equal(h.tcp.stats.syncookiesRecv, 1);
});
