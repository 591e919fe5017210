// TCP_INFO's busy and window-limited time as Linux's tcp_chrono_* keep them (chrono.ts): the stopwatch alone, and a
// connection whose peer's window holds a write back (upstream tcp_info/tcp-info-rwnd-limited).
import t from 'tap';
import * as seq from '../../../../netstack/seqnum.ts';
import { Chrono, ChronoStats } from '../../../../netstack/transport/tcp/chrono.ts';
import { TCP_ACK, TCP_PSH } from '../../../../netstack/wire/tcp.ts';
import { Harness, pattern } from './helper.ts';

t.test('ChronoStats: the more telling kind takes the stopwatch; a stop falls back to busy, or stops when nothing is queued', async (t) => {
  const c = new ChronoStats();
  c.start(Chrono.Busy, 0);
  c.start(Chrono.RwndLimited, 10);
  c.start(Chrono.Busy, 20); // less telling: ignored
  t.equal(c.time(Chrono.RwndLimited, 30), 20, 'running since 10');
  c.stop(Chrono.RwndLimited, 50, false);
  t.equal(c.time(Chrono.RwndLimited, 100), 40);
  t.equal(c.time(Chrono.Busy, 100), 10 + 50, 'busy before, and again since 50');
  c.stop(Chrono.Busy, 100, true);
  t.equal(c.time(Chrono.Busy, 500), 60, 'stopped: nothing queued');
});

t.test('ESTABLISHED peer window 0 → TCP_INFO counts window-limited time until it opens, and busy time until all is acknowledged', async (t) => {
  const h = new Harness();
  const ep = h.connect({ mss: 1000 });
  const snd = h.iss + 1;
  ep.setOption('TCP_NODELAY', 1);
  h.send({ flags: TCP_ACK, ack: snd, window: 0 });
  ep.write(pattern(1000));
  h.advance(100);
  let info = ep.getOption('TCP_INFO') as Record<string, number>;
  t.equal(info.tcpi_rwnd_limited, 100_000, '100 ms held by the window (µs)');
  h.send({ flags: TCP_ACK, ack: snd, window: 2000 });
  h.expect({ flags: TCP_ACK | TCP_PSH, seq: snd, len: 1000 });
  h.advance(30);
  h.send({ flags: TCP_ACK, ack: seq.add(snd, 1000), window: 2000 });
  h.advance(70);
  info = ep.getOption('TCP_INFO') as Record<string, number>;
  t.equal(info.tcpi_rwnd_limited, 100_000, 'no more once the window opened');
  t.equal(info.tcpi_busy_time, 130_000, 'window-limited 100 ms + in flight 30 ms; idle since');
  t.equal(info.tcpi_sndbuf_limited, 0);
});
