// The 4-tuple table (demux.ts) against a Map of the same entries under random additions and removals, IPv4 and
// IPv6, through growth, backward-shift deletion and shrinking; and what it lets go of.
import t from 'tap';
import { TupleTable, tupleHash } from '../../../../netstack/transport/tcp/demux.ts';
import { rng } from '../../wire/frames.ts';

interface E {
  localAddr: Uint8Array;
  localPort: number;
  remoteAddr: Uint8Array;
  remotePort: number;
  id: number;
}

const LOCAL4 = Uint8Array.of(198, 18, 0, 2);
const LOCAL6 = Uint8Array.of(0xfd, 0x74, 0x73, 0x76, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2);

/** A deterministic generator in [0, 1) (the wire tests' xorshift32), so a failure replays. */
function unitRng(seed: number): () => number {
  const next = rng(seed);
  return () => next() / 0x1_0000_0000;
}

function entry(rand: () => number, id: number, v6: boolean): E {
  const remoteAddr = v6 ? LOCAL6.slice() : Uint8Array.of(198, 18, 1, Math.floor(rand() * 4));
  if (v6) remoteAddr[15] = Math.floor(rand() * 4);
  // Few addresses and ports, so that tuples repeat and probe runs are long.
  return { localAddr: v6 ? LOCAL6 : LOCAL4, localPort: 80 + Math.floor(rand() * 2), remoteAddr, remotePort: 1024 + Math.floor(rand() * 300), id };
}

const keyOf = (e: E) => `${e.localAddr.join('.')}|${e.localPort}|${e.remoteAddr.join('.')}|${e.remotePort}`;

for (const v6 of [false, true]) {
  t.test(`${v6 ? 'IPv6' : 'IPv4'}: random set/delete/get → the same answers as a Map`, async (t) => {
    const rand = unitRng(v6 ? 7 : 3);
    const table = new TupleTable<E>(0x1234567);
    const ref = new Map<string, E>();
    let mismatches = 0;
    for (let i = 0; i < 20000; i++) {
      const e = entry(rand, i, v6);
      const k = keyOf(e);
      const op = rand();
      // Grow to a few hundred entries, then drain, so that the table both grows and shrinks.
      const adding = i < 10000 ? op < 0.7 : op < 0.3;
      if (adding) {
        table.set(e);
        ref.set(k, e);
      } else {
        const old = ref.get(k);
        if (old) {
          if (!table.delete(old)) mismatches++;
          ref.delete(k);
        } else if (table.delete(e)) mismatches++;
      }
      const probe = entry(rand, -1, v6);
      if (table.get(probe.localAddr, probe.localPort, probe.remoteAddr, probe.remotePort) !== ref.get(keyOf(probe))) mismatches++;
      if (table.size !== ref.size) mismatches++;
    }
    t.equal(mismatches, 0, 'every answer as the Map gave it');
    for (const e of ref.values()) {
      t.equal(table.get(e.localAddr, e.localPort, e.remoteAddr, e.remotePort), e);
    }
    for (const e of [...ref.values()]) t.ok(table.delete(e));
    t.equal(table.size, 0, 'empty at the end');
  });
}

t.test('delete removes only that very entry; set under a taken tuple replaces it', async (t) => {
  const table = new TupleTable<E>(1);
  const a: E = { localAddr: LOCAL4, localPort: 80, remoteAddr: Uint8Array.of(198, 18, 0, 1), remotePort: 5000, id: 1 };
  const b: E = { ...a, remoteAddr: a.remoteAddr.slice(), id: 2 };
  table.set(a);
  t.notOk(table.delete(b), 'another entry with the same tuple is not removed');
  t.equal(table.get(LOCAL4, 80, a.remoteAddr, 5000), a);
  table.set(b);
  t.equal(table.size, 1);
  t.equal(table.get(LOCAL4, 80, a.remoteAddr, 5000), b, 'replaced');
  t.notOk(table.delete(a));
  t.ok(table.delete(b));
  t.equal(table.get(LOCAL4, 80, a.remoteAddr, 5000), undefined);
});

t.test('the hash is keyed: another seed files the same tuples elsewhere', async (t) => {
  const r = Uint8Array.of(198, 18, 0, 1);
  let same = 0;
  for (let p = 1024; p < 1124; p++) if ((tupleHash(1, LOCAL4, 80, r, p) & 1023) === (tupleHash(2, LOCAL4, 80, r, p) & 1023)) same++;
  t.ok(same < 10, `${same} of 100 in the same slot under two seeds`);
  // The IPv4 tuple and an IPv6 one ending in the same bytes differ.
  const r6 = LOCAL6.slice();
  r6.set(r, 12);
  t.not(tupleHash(1, LOCAL4, 80, r, 1024), tupleHash(1, LOCAL6, 80, r6, 1024));
});
