// write(data, { keep: true }): a stream queues the caller's array itself, not a copy of it.
import t from 'tap';
import { tcpPair } from '../../../../bench/micro/pair.ts';
import { NetError } from '../../../../netstack/errors.ts';
import { pattern } from './helper.ts';

/** Writes `data` from the client with `keep`, changes its last byte once written, and returns what the server read. */
function sendThenChange(keep: boolean): { data: Uint8Array; got: Uint8Array } {
  const p = tcpPair();
  const data = pattern(200_000);
  let sent = 0;
  const got = new Uint8Array(data.length);
  let read = 0;
  for (let i = 0; i < 5000 && read < data.length; i++) {
    if (sent < data.length) {
      const w = p.client.write(data.subarray(sent), { keep });
      if (typeof w === 'number') sent += w;
      // Written, most of it not yet sent (the initial window is far smaller): the caller breaks its promise.
      if (sent === data.length) data[data.length - 1] ^= 0xff;
    }
    p.clock.advance(1);
    for (;;) {
      const r = p.server.read({ into: got.subarray(read) });
      if (r instanceof NetError || r.data.length === 0) break;
      read += r.data.length;
    }
  }
  return { data, got };
}

t.test('write with keep → the bytes sent are the array\'s own, as they are when sent; without keep, a copy made at write()', (t) => {
  const kept = sendThenChange(true);
  t.same(Buffer.from(kept.got), Buffer.from(kept.data), 'the server read the array as it was when sent, its change included');
  const copied = sendThenChange(false);
  t.equal(copied.got.length, copied.data.length);
  t.same(Buffer.from(copied.got.subarray(0, -1)), Buffer.from(copied.data.subarray(0, -1)));
  t.equal(copied.got[copied.got.length - 1], copied.data[copied.data.length - 1]! ^ 0xff, 'the copy kept the byte as written');
  t.end();
});
