// SO_TIMESTAMPING on TCP as Linux reports it (tstamp.ts; upstream timestamping/{client-only-last-byte,server}):
// a send call's last byte is marked, SCHED and SND reports when the packet holding it leaves, ACK when the peer
// acknowledges it, keys counted from where the stream stood when OPT_ID was turned on.
import t from 'tap';
import * as seq from '../../../../netstack/seqnum.ts';
import { Err } from '../../../../netstack/errors.ts';
import { EventErr } from '../../../../netstack/waiter.ts';
import {
  SCM_TSTAMP_ACK,
  SCM_TSTAMP_SCHED,
  SCM_TSTAMP_SND,
  SOF_TIMESTAMPING_OPT_ID,
  SOF_TIMESTAMPING_OPT_ID_TCP,
  SOF_TIMESTAMPING_OPT_TSONLY,
  SOF_TIMESTAMPING_SOFTWARE,
  SOF_TIMESTAMPING_TX_ACK,
  SOF_TIMESTAMPING_TX_SCHED,
  SOF_TIMESTAMPING_TX_SOFTWARE,
  SO_EE_ORIGIN_TIMESTAMPING,
} from '../../../../netstack/transport/tcp/tstamp.ts';
import { TCP_ACK } from '../../../../netstack/wire/tcp.ts';
import { Harness, pattern } from './helper.ts';

const ALL = SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_TX_ACK | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID;
const report = (info: number, data: number, timestamp: number | undefined, looped: number) => ({
  errno: 42,
  origin: SO_EE_ORIGIN_TIMESTAMPING,
  type: 0,
  code: 0,
  info,
  data,
  timestamp,
  looped,
});

function connected() {
  const h = new Harness();
  const ep = h.connect({ mss: 1000, sackPermitted: true, wscale: 7 });
  return { h, ep, snd: seq.add(h.iss, 1) };
}

const drain = (h: Harness) => {
  while (h.pending) h.next();
};

t.test('ESTABLISHED write 11000 with TX_SCHED|TX_SOFTWARE|TX_ACK → reports for byte 10999 when it leaves and when it is acknowledged', async (t) => {
  const { h, ep, snd } = connected();
  // 500 bytes before OPT_ID: keys count from where SND.UNA stood when it was turned on.
  ep.write(pattern(500));
  drain(h);
  h.send({ flags: TCP_ACK, ack: seq.add(snd, 500) });
  t.equal(ep.setOption('SO_TIMESTAMPING', ALL), undefined);
  t.equal(ep.getOption('SO_TIMESTAMPING'), ALL);
  let errs = 0;
  ep.waiter.subscribe(EventErr, () => errs++);
  h.advance(10);
  t.equal(ep.write(pattern(11000)), 11000);
  drain(h);
  t.equal(ep.takeQueuedError!(), undefined, 'the last byte is not sent yet (IW10)');
  t.equal(ep.readiness(EventErr), 0);
  h.advance(10);
  h.send({ flags: TCP_ACK, ack: seq.add(snd, 10500) });
  drain(h);
  const at = h.clock.now();
  t.ok(errs > 0 && ep.readiness(EventErr), 'POLLERR with reports queued');
  t.same(ep.takeQueuedError!(), report(SCM_TSTAMP_SCHED, 10999, at, 1000), 'SCHED when the last segment left');
  t.same(ep.takeQueuedError!(), report(SCM_TSTAMP_SND, 10999, at, 1000));
  t.equal(ep.takeQueuedError!(), undefined);
  h.advance(10);
  h.send({ flags: TCP_ACK, ack: seq.add(snd, 11499) });
  t.equal(ep.takeQueuedError!(), undefined, 'one byte short: no ACK report');
  h.send({ flags: TCP_ACK, ack: seq.add(snd, 11500) });
  t.same(ep.takeQueuedError!(), report(SCM_TSTAMP_ACK, 10999, h.clock.now(), 1000));
  t.equal(ep.readiness(EventErr), 0, 'queue read: no POLLERR');
});

t.test('ESTABLISHED two writes sharing one unsent skb → one mark, on the later call\'s last byte; TSONLY loops nothing back', async (t) => {
  const { h, ep, snd } = connected();
  t.equal(ep.setOption('SO_TIMESTAMPING', SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY), undefined);
  ep.setOption('TCP_CORK', 1);
  ep.write(pattern(100));
  ep.write(pattern(100));
  t.equal(h.pending, 0, 'corked');
  ep.setOption('TCP_CORK', 0);
  drain(h);
  t.same(ep.takeQueuedError!(), report(SCM_TSTAMP_SCHED, 199, undefined, 0), 'no SOFTWARE reporting flag: no time');
  t.equal(ep.takeQueuedError!(), undefined, 'the first call\'s mark moved to the second');
  h.send({ flags: TCP_ACK, ack: seq.add(snd, 200) });
  t.equal(ep.takeQueuedError!(), undefined, 'no TX_ACK asked');
});

t.test('SO_TIMESTAMPING → EINVAL for unknown bits, OPT_ID_TCP alone, OPT_ID before a connection', async (t) => {
  const h = new Harness();
  const ep = h.tcp.newEndpoint(4);
  t.equal(ep.setOption('SO_TIMESTAMPING', 1 << 20), Err.InvalidArgument);
  t.equal(ep.setOption('SO_TIMESTAMPING', SOF_TIMESTAMPING_OPT_ID_TCP), Err.InvalidArgument);
  t.equal(ep.setOption('SO_TIMESTAMPING', SOF_TIMESTAMPING_OPT_ID), Err.InvalidArgument, 'CLOSE: no stream to count from');
  t.equal(ep.setOption('SO_TIMESTAMPING', SOF_TIMESTAMPING_TX_SCHED), undefined, 'without OPT_ID any state');
  t.equal(ep.getOption('SO_TIMESTAMPING'), SOF_TIMESTAMPING_TX_SCHED);
});
