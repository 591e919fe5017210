import t from 'tap';
import { PROTO_ICMP, PROTO_ICMPV6 } from '../../../netstack/transport/protocol.ts';
import { verifies, pseudoHeaderSum, sum16, finishChecksum } from '../../../netstack/wire/checksum.ts';
import { A4, A6, B4, B6, Recorder, echoRequest, pair, pattern, route } from './helpers.ts';

for (const family of [4, 6] as const) {
  for (const size of [56, 8000]) {
    t.test(`IPv${family} echo request of ${size} bytes → echo reply with the same id, seq and data`, (t) => {
      const p = pair();
      const rec = new Recorder(family === 4 ? PROTO_ICMP : PROTO_ICMPV6);
      p.a.registerTransport(rec);
      const r = route(p.a, family === 4 ? B4 : B6);
      const data = pattern(size, 7);
      t.equal(r.send(rec.protocolNumber, echoRequest(r, 0x1234, 0x0042, data), r.headroom), undefined);
      p.clock.advance(10);
      t.equal(rec.packets.length, 1, 'one reply delivered to the ping transport');
      const reply = rec.packets[0]!;
      const m = reply.segment;
      t.equal(m[0], family === 4 ? 0 : 129, 'type echo reply');
      t.equal(m[1], 0, 'code 0');
      t.equal((m[4]! << 8) | m[5]!, 0x1234, 'identifier');
      t.equal((m[6]! << 8) | m[7]!, 0x0042, 'sequence');
      t.same(m.subarray(8), data, 'data byte-exact');
      if (family === 4) t.ok(verifies(m), 'ICMP checksum');
      else t.equal(finishChecksum(sum16(m, pseudoHeaderSum(B6, A6, 58, m.length))), 0, 'ICMPv6 checksum');
      t.same(reply.info.src, family === 4 ? B4 : B6);
      t.same(reply.info.dst, family === 4 ? A4 : A6);
      t.equal(reply.info.broadcast, false);
      if (size > 1500) t.ok(p.b.stats.snapshot()[`frag.reassembled`]! >= 1, 'B reassembled the request');
      t.end();
    });
  }
}
