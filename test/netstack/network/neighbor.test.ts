import t from 'tap';
import { VirtualClock } from '../../../netstack/clock.ts';
import { NeighborCache, type NeighborState } from '../../../netstack/network/neighbor.ts';
import { Rng } from '../../../netstack/rand.ts';
import { ip } from './helpers.ts';

const T = ip('198.18.0.9');
const M1 = new Uint8Array([2, 0, 0, 0, 0, 0x11]);
const M2 = new Uint8Array([2, 0, 0, 0, 0, 0x22]);

function setup() {
  const clock = new VirtualClock();
  const log = { solicits: [] as (string | undefined)[], sent: [] as Uint8Array[], unreachable: 0, counts: {} as Record<string, number> };
  const c = new NeighborCache(clock, new Rng(1), {
    solicit: (_t, mac) => log.solicits.push(mac ? 'unicast' : 'multicast'),
    transmit: (f) => log.sent.push(f),
    unreachable: (_t, frames) => (log.unreachable += frames.length),
    count: (k) => (log.counts[k] = (log.counts[k] ?? 0) + 1),
  });
  const frame = () => new Uint8Array(20);
  const into: Record<NeighborState | 'none', () => void> = {
    none: () => {},
    incomplete: () => c.send(T, frame()),
    reachable: () => {
      c.send(T, frame());
      c.advertise(T, M1, true, true);
    },
    stale: () => c.learn(T, M1, true),
    delay: () => {
      c.learn(T, M1, true);
      c.send(T, frame());
    },
    probe: () => {
      c.learn(T, M1, true);
      c.send(T, frame());
      clock.advance(5000);
    },
    failed: () => {
      c.send(T, frame());
      clock.advance(3000);
    },
  };
  return { clock, c, log, into };
}

// RFC 4861 appendix C / §7.2.5: [from state, NA mac, S, O] → [state, mac].
const adverts: [NeighborState | 'none', Uint8Array | undefined, boolean, boolean, NeighborState | 'none', Uint8Array | undefined][] = [
  ['none', M1, true, true, 'none', undefined],
  ['incomplete', undefined, true, true, 'incomplete', undefined],
  ['incomplete', M2, true, false, 'reachable', M2],
  // STALE, then DELAY at once: the queued frame is sent on the STALE entry (§7.3.3).
  ['incomplete', M2, false, false, 'delay', M2],
  ['reachable', M1, true, false, 'reachable', M1],
  ['reachable', M2, false, false, 'stale', M1],
  ['reachable', M2, false, true, 'stale', M2],
  ['reachable', M2, true, true, 'reachable', M2],
  ['stale', M1, true, false, 'reachable', M1],
  ['stale', M2, false, false, 'stale', M1],
  ['stale', M2, true, false, 'stale', M1],
  ['delay', M1, true, false, 'reachable', M1],
  ['probe', M2, true, true, 'reachable', M2],
  ['probe', undefined, true, false, 'reachable', M1],
];
for (const [from, mac, s, o, to, want] of adverts) {
  t.test(`${from} + NA(S=${+s}, O=${+o}, ${mac ? (mac === M1 ? 'same' : 'new') : 'no'} TLLA) → ${to}`, (t) => {
    const { c, into } = setup();
    into[from]();
    c.advertise(T, mac, s, o);
    const e = c.get(T);
    t.equal(e?.state ?? 'none', to);
    if (want) t.same(e!.mac, want);
    t.end();
  });
}

const learns: [NeighborState | 'none', Uint8Array, boolean, NeighborState | 'none', Uint8Array | undefined][] = [
  ['none', M1, true, 'stale', M1],
  ['none', M1, false, 'none', undefined],
  ['incomplete', M2, false, 'delay', M2],
  ['reachable', M1, false, 'reachable', M1],
  ['reachable', M2, false, 'stale', M2],
  ['failed', M2, false, 'stale', M2],
];
for (const [from, mac, create, to, want] of learns) {
  t.test(`${from} + unsolicited ${mac === M1 ? 'same' : 'new'} LLA${create ? ' (addressed to us)' : ''} → ${to}`, (t) => {
    const { c, into, log } = setup();
    into[from]();
    c.learn(T, mac, create);
    const e = c.get(T);
    t.equal(e?.state ?? 'none', to);
    if (want) t.same(e!.mac, want);
    if (from === 'incomplete') t.equal(log.sent.length, 1, 'queued frame sent');
    t.end();
  });
}

t.test('stale entry unused for the GC time → forgotten; table full of busy entries → refused and counted', (t) => {
  const { c, clock } = setup();
  c.learn(T, M1, true);
  clock.advance(60_000);
  t.equal(c.get(T), undefined);
  const clock2 = new VirtualClock();
  let refused = 0;
  const small = new NeighborCache(
    clock2,
    new Rng(1),
    { solicit: () => {}, transmit: () => {}, unreachable: (_t, f) => (refused += f.length), count: () => {} },
    { maxEntries: 2 },
  );
  small.learn(ip('198.18.0.1'), M1, true);
  small.learn(ip('198.18.0.2'), M1, true);
  small.send(ip('198.18.0.3'), new Uint8Array(20));
  t.equal(small.size, 2, 'a STALE entry was evicted to make room');
  t.equal(small.get(ip('198.18.0.1')), undefined, 'the least recently used one');
  t.equal(refused, 0);
  small.send(ip('198.18.0.2'), new Uint8Array(20));
  small.send(ip('198.18.0.4'), new Uint8Array(20));
  t.equal(small.size, 2);
  t.equal(refused, 1, 'only busy entries left: refused');
  t.end();
});

t.test('frames sent from a resolved entry get its MAC written into bytes 0..6', (t) => {
  const { c, log, into } = setup();
  into.reachable();
  c.send(T, new Uint8Array(20));
  t.same(log.sent.map((f) => f.subarray(0, 6)), [M1, M1]);
  t.same(log.solicits, ['multicast']);
  t.end();
});

// RFC 4861 §7.3.1 forward-progress confirmation: a stamp the REACHABLE and DELAY timers read (Linux's
// neigh->confirmed), never a state change of its own.
t.test('REACHABLE + a confirmation every 10 s → REACHABLE for 200 s with no probe; confirmations stop → STALE', (t) => {
  const { c, clock, log, into } = setup();
  into.reachable();
  const ref = c.ref(T)!;
  for (let s = 0; s < 20; s++) {
    clock.advance(10_000);
    t.ok(c.confirmRef(ref, clock.now()));
    t.equal(c.get(T)!.state, 'reachable');
  }
  t.same(log.solicits, ['multicast'], 'only the first resolution');
  clock.advance(45_000);
  t.equal(c.get(T)!.state, 'stale', 'the last confirmation aged');
  t.end();
});

t.test('REACHABLE without confirmation → STALE within 1.5 × BaseReachableTime', (t) => {
  const { c, clock, into } = setup();
  into.reachable();
  clock.advance(45_000);
  t.equal(c.get(T)!.state, 'stale');
  t.end();
});

t.test('DELAY + confirmation → REACHABLE at the DELAY timer, no probe; DELAY without one → PROBE', (t) => {
  const a = setup();
  a.into.delay();
  a.clock.advance(2000);
  a.c.confirm(T);
  a.clock.advance(3000);
  t.equal(a.c.get(T)!.state, 'reachable');
  t.same(a.log.solicits, []);
  const b = setup();
  b.into.delay();
  b.clock.advance(5000);
  t.equal(b.c.get(T)!.state, 'probe');
  t.same(b.log.solicits, ['unicast']);
  t.end();
});

t.test('INCOMPLETE or FAILED + confirmation → unchanged, and the stamp does not outlive resolution', (t) => {
  const a = setup();
  a.into.incomplete();
  a.c.confirm(T);
  t.equal(a.c.get(T)!.state, 'incomplete');
  a.clock.advance(3000);
  t.equal(a.c.get(T)!.state, 'failed', 'resolution still fails');
  a.c.confirm(T);
  a.clock.advance(1000);
  t.equal(a.c.get(T)!.state, 'failed');
  t.equal(a.c.get(T)!.mac, undefined);
  // Confirmed while INCOMPLETE, then learned (STALE) and used (DELAY): the early stamp must not skip the probe.
  const b = setup();
  b.into.incomplete();
  b.clock.advance(500);
  b.c.confirm(T);
  b.c.learn(T, M1, true);
  t.equal(b.c.get(T)!.state, 'delay', 'the queued frame went out on the STALE entry');
  b.clock.advance(5000);
  t.equal(b.c.get(T)!.state, 'probe');
  t.end();
});

t.test('a confirmation of the old link address does not vouch for a new one', (t) => {
  const { c, clock, into } = setup();
  into.stale();
  c.send(T, new Uint8Array(20));
  c.confirm(T);
  c.learn(T, M2, true);
  c.send(T, new Uint8Array(20));
  t.equal(c.get(T)!.state, 'delay');
  clock.advance(5000);
  t.equal(c.get(T)!.state, 'probe');
  t.end();
});

t.test('a handle to a forgotten entry → confirmRef false; a new entry needs a new handle', (t) => {
  const { c, clock, into } = setup();
  into.reachable();
  const ref = c.ref(T)!;
  c.remove(T);
  t.equal(c.confirmRef(ref, clock.now()), false);
  into.reachable();
  t.not(c.ref(T), ref);
  t.ok(c.confirmRef(c.ref(T)!, clock.now()));
  t.end();
});

t.test('PROBE + confirmation between probes → REACHABLE, no further probe (RFC 4861 appendix C)', (t) => {
  const { c, clock, log, into } = setup();
  into.probe();
  t.same(log.solicits, ['unicast']);
  clock.advance(500);
  c.confirm(T);
  clock.advance(500);
  t.equal(c.get(T)!.state, 'reachable');
  clock.advance(10_000);
  t.same(log.solicits, ['unicast'], 'no probe after the confirmation');
  t.end();
});
