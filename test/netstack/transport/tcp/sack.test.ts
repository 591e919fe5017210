import t from 'tap';
import { Scoreboard } from '../../../../netstack/transport/tcp/sack.ts';

t.test('scoreboard merges blocks, counts SACKed bytes, finds holes', async (t) => {
  const sb = new Scoreboard();
  const una = 1000;
  t.ok(sb.update([{ left: 3000, right: 4000 }], una, 10000));
  t.ok(sb.update([{ left: 5000, right: 6000 }, { left: 3000, right: 4000 }], una, 10000));
  t.notOk(sb.update([{ left: 3000, right: 4000 }], una, 10000), 'nothing new');
  t.equal(sb.sacked, 2000);
  t.equal(sb.highest(una), 6000);
  t.same(sb.nextHole(una, una), { start: 1000, end: 3000 });
  t.same(sb.nextHole(3500, una), { start: 4000, end: 5000 });
  t.equal(sb.nextHole(6000, una), null, 'nothing above the highest SACK is a hole');
  t.equal(sb.holeBytes(una, una), 3000);
  t.ok(sb.isSacked(3000));
  t.notOk(sb.isSacked(4000));
  sb.update([{ left: 3500, right: 5500 }], una, 10000);
  t.same(sb.list(), [{ left: 3000, right: 6000 }]);
  sb.advance(3200);
  t.same(sb.list(), [{ left: 3200, right: 6000 }]);
  t.equal(sb.sacked, 2800);
  sb.advance(7000);
  t.ok(sb.empty);
  t.equal(sb.sacked, 0);
});

t.test('blocks beyond SND.MAX are ignored; D-SACK below SND.UNA or inside the second block is counted', async (t) => {
  const sb = new Scoreboard();
  sb.update([{ left: 5000, right: 20000 }], 1000, 10000);
  t.ok(sb.empty, 'beyond SND.MAX');
  sb.update([{ left: 500, right: 900 }, { left: 2000, right: 3000 }], 1000, 10000);
  t.equal(sb.dsacks, 1);
  t.same(sb.list(), [{ left: 2000, right: 3000 }]);
  sb.update([{ left: 2100, right: 2200 }, { left: 2000, right: 3000 }], 1000, 10000);
  t.equal(sb.dsacks, 2);
});
