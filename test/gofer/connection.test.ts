// The connection's own bounds (gofer/server/connection.ts), driven with raw frames on a socket, since the client
// reads every reply: a frame larger than the negotiated msize closes the connection; a client that never reads its
// replies stops the server reading its requests once msize × maxTags bytes of replies wait.
import { connect, type Socket } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { bytes, decode, encode, frameSize, isDecodeError } from '../../gofer/p9/codec.ts';
import type { Message } from '../../gofer/p9/messages.ts';
import { scratch, startServer } from './helpers.ts';

/** A raw connection: frames written as given, replies decoded and counted as they come (while not paused). */
async function raw(path: string) {
  const sock: Socket = connect({ path });
  await new Promise<void>((res, rej) => {
    sock.once('connect', res);
    sock.once('error', rej);
  });
  sock.on('error', () => {});
  const replies: Message[] = [];
  let received = 0;
  let buf: Buffer = Buffer.alloc(0);
  let waiter: (() => void) | undefined;
  sock.on('data', (c: Buffer) => {
    received += c.length;
    buf = buf.length ? Buffer.concat([buf, c]) : c;
    while (buf.length >= 4 && buf.length >= frameSize(buf)) {
      const m = decode(buf.subarray(0, frameSize(buf)));
      buf = buf.subarray(frameSize(buf));
      if (!isDecodeError(m)) replies.push(m);
    }
    waiter?.();
  });
  const closed = new Promise<void>((res) => sock.once('close', () => res()));
  /** Resolves once `n` replies have come (or rejects after `ms`). */
  const until = (n: number, ms = 20000) =>
    new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`${replies.length} of ${n} replies after ${ms} ms`)), ms);
      waiter = () => {
        if (replies.length >= n) {
          clearTimeout(timer);
          waiter = undefined;
          res();
        }
      };
      waiter();
    });
  /** Sends `m` (a message or a frame) and waits for its reply. */
  const call = async (m: Message | Uint8Array): Promise<Message> => {
    sock.write(m instanceof Uint8Array ? m : encode(m));
    await until(replies.length + 1);
    return replies[replies.length - 1]!;
  };
  return { sock, replies, until, call, closed, received: () => received };
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a frame larger than the negotiated msize → the connection closes; one of exactly msize is answered', async (t) => {
  const s = scratch(t);
  const server = await startServer(t, s, { maxMsize: 1 << 20 });
  const c = await raw(s.sock);
  const v = await c.call({ type: 'Tversion', tag: 0xffff, msize: 8192, version: bytes('9P2000.L') });
  t.same([v.type, (v as Message<'Rversion'>).msize], ['Rversion', 8192], 'msize 8192 agreed (the server would take up to 1 MiB)');
  t.equal((await c.call({ type: 'Tattach', tag: 1, fid: 1, afid: 0xffffffff, uname: bytes(''), aname: bytes(''), nUname: 0 })).type, 'Rattach');
  // A Twrite to fid 1 (the root directory: refused) framed at exactly msize, then at msize + 1.
  const write = (size: number) => encode({ type: 'Twrite', tag: 2, fid: 1, offset: 0n, data: new Uint8Array(size - 23) });
  t.equal(write(8192).length, 8192);
  t.equal((await c.call(write(8192))).type, 'Rlerror', 'a frame of exactly msize is read and answered');
  t.equal(server.stats.framingErrors, 0);
  c.sock.write(write(8193));
  const closedInTime = await Promise.race([c.closed.then(() => true), settle(5000).then(() => false)]);
  t.ok(closedInTime, 'a frame of msize + 1 closes the connection');
  t.equal(server.stats.framingErrors, 1, 'counted as a framing error');
  t.equal(c.replies.length, 3, 'and is not answered');
});

t.test('a client that never reads its replies → the server stops reading its requests (replies waiting ≤ msize × maxTags), and serves the rest once it reads', async (t) => {
  const s = scratch(t);
  const msize = 16384;
  writeFileSync(join(s.root, 'big'), Buffer.alloc(msize, 7));
  const server = await startServer(t, s, { maxTags: 4 });
  const c = await raw(s.sock);
  await c.call({ type: 'Tversion', tag: 0xffff, msize, version: bytes('9P2000.L') });
  await c.call({ type: 'Tattach', tag: 1, fid: 1, afid: 0xffffffff, uname: bytes(''), aname: bytes(''), nUname: 0 });
  t.equal((await c.call({ type: 'Twalk', tag: 1, fid: 1, newfid: 2, wnames: [bytes('big')] })).type, 'Rwalk');
  t.equal((await c.call({ type: 'Tlopen', tag: 1, fid: 2, flags: 0 })).type, 'Rlopen');
  // 4,000 reads of a whole msize each (64 MB of replies), each with a tag of its own; the client stops reading first.
  c.sock.pause();
  const N = 4000;
  const before = server.stats.requests;
  const frames = Array.from({ length: N }, (_, i) => encode({ type: 'Tread', tag: 10 + i, fid: 2, offset: 0n, count: msize - 11 }));
  c.sock.write(Buffer.concat(frames));
  await settle(1500);
  const served = server.stats.requests - before;
  // Replies held: msize × maxTags (64 KiB) in the server, plus what the kernel's socket buffers take (a few hundred
  // KiB): some tens of reads; without the bound the server reads and answers all 4,000 into its memory.
  t.ok(served > 0 && served < 200, `the server read ${served} of ${N} requests while the client read nothing`);
  await settle(1000);
  t.equal(server.stats.requests - before, served, 'and no more as time passes');
  c.sock.resume();
  await c.until(4 + N, 60000);
  t.equal(server.stats.requests - before, N, 'once the client reads, every request is served');
  const reads = c.replies.slice(4);
  t.ok(reads.every((m) => m.type === 'Rread' && m.data.length === msize - 11), 'each a whole Rread');
  t.same(new Set(reads.map((m) => m.tag)).size, N, 'one reply to each tag');
});
