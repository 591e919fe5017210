/**
 * A 9P fuzzer for one connection: valid requests built from a small vocabulary of fids and names (so they reach
 * deep into the handlers), mutated ones (flipped bytes, cut or extended bodies, a random type), and random
 * bodies, sent in batches with unique tags. Every frame keeps a consistent size field, so a server must answer
 * each request (or suppress it for a Tflush) and keep the connection open; a batch that is not fully answered
 * within the deadline is a hang.
 */
import { connect, type Socket } from 'node:net';
import { bytes, decode, encode, frameSize, isDecodeError } from '../../gofer/p9/codec.ts';
import { MESSAGES, type FieldKind, type Message, type MessageName } from '../../gofer/p9/messages.ts';

/** What a run saw. */
export interface FuzzReport {
  sent: number;
  replies: number;
  rlerrors: number;
  flushed: number;
  closed: boolean;
  /** Replies whose tag matched no request of the batch (must stay 0). */
  strayReplies: number;
  undecodable: number;
  /** Replies by type. */
  byType: Map<string, number>;
  /** Replies holding a piece of one of the `secrets` (must stay 0), by reply type. */
  leaks: Map<string, number>;
}

/** Every 8-byte piece of each secret (the whole of a shorter one): a read at any offset shows at least one. */
function pieces(secrets: readonly Uint8Array[]): Buffer[] {
  const out: Buffer[] = [];
  for (const s of secrets) {
    if (s.length <= 8) out.push(Buffer.from(s));
    else for (let i = 0; i + 8 <= s.length; i++) out.push(Buffer.from(s.subarray(i, i + 8)));
  }
  return out;
}

/** A seeded xorshift generator. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

const NAMES = ['a', 'd', 'l', 'abs', 'up', '..', '.', 'new', 'x', 'y', 'd/a', '', 'dev', 'fifo', '../canary', '/etc', 'canary', 'outside', 'secret'];

/**
 * Sends `count` fuzzed requests on one connection to `path`, after a Tversion asking for `version` (the
 * 9P2000.L.tsvisor dialect reaches its own messages; the descriptors its replies carry are dropped by the kernel,
 * as this socket takes none); resolves with what came back. Every reply is scanned for pieces of `secrets`
 * (the contents of files outside the root): a read of one shows there even where the file's times do not.
 */
export async function fuzzConnection(path: string, count: number, seed = 1, msize = 8192, version = '9P2000.L', secrets: readonly Uint8Array[] = []): Promise<FuzzReport> {
  const needles = pieces(secrets);
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(xs: readonly T[]) => xs[int(xs.length)]!;
  const sock: Socket = connect({ path });
  await new Promise<void>((res, rej) => {
    sock.once('connect', res);
    sock.once('error', rej);
  });
  const report: FuzzReport = { sent: 0, replies: 0, rlerrors: 0, flushed: 0, closed: false, strayReplies: 0, undecodable: 0, byType: new Map(), leaks: new Map() };
  let onReply: ((m: Message) => void) | undefined;
  let chunks: Buffer = Buffer.alloc(0);
  sock.on('data', (c: Buffer) => {
    chunks = chunks.length ? Buffer.concat([chunks, c]) : c;
    while (chunks.length >= 4) {
      const size = frameSize(chunks);
      if (chunks.length < size) break;
      const frame = chunks.subarray(0, size);
      const m = decode(frame);
      chunks = chunks.subarray(size);
      if (needles.some((n) => frame.indexOf(n, 7) >= 0)) {
        const type = isDecodeError(m) ? `type ${frame[4]}` : m.type;
        report.leaks.set(type, (report.leaks.get(type) ?? 0) + 1);
      }
      if (isDecodeError(m)) report.undecodable++;
      else onReply?.(m);
    }
  });
  let hangingUp = false;
  const closed = new Promise<void>((res) =>
    sock.once('close', () => {
      if (!hangingUp) report.closed = true;
      res();
    }),
  );
  sock.on('error', () => {});

  const fid = () => (r() < 0.9 ? int(12) : int(0x100000000));
  const u64 = () => (r() < 0.8 ? BigInt(int(70000)) : (BigInt(int(0x100000000)) << 32n) | BigInt(int(0x100000000)));
  const name = () => (r() < 0.85 ? bytes(pick(NAMES)) : Uint8Array.from({ length: int(20) }, () => int(256)));
  const value = (field: string, kind: FieldKind): unknown => {
    switch (kind) {
      case 'u8':
        return int(4);
      case 'u16':
        return int(80);
      case 'u32':
        if (/fid$/.test(field) || field === 'afid') return field === 'afid' ? 0xffffffff : fid();
        if (field === 'count') return int(10000);
        if (field === 'flags' || field === 'mode') return r() < 0.7 ? pick([0, 1, 2, 0o100, 0o1000, 0o200000, 0o100644, 0o10644, 0o20644, 0x200]) : int(0x100000000);
        return int(r() < 0.8 ? 70000 : 0x100000000);
      case 'u64':
        return u64();
      case 'str':
        return name();
      case 'qid':
        return { type: int(256), version: int(1000), path: u64() };
      case 'qids':
        return [];
      case 'strs':
        return Array.from({ length: int(5) }, name);
      case 'data':
        return Uint8Array.from({ length: int(300) }, () => int(256));
    }
  };
  const tNames = (Object.keys(MESSAGES) as MessageName[]).filter((n) => n[0] === 'T' && n !== 'Tversion');
  const build = (tag: number): Uint8Array => {
    const type = pick(tNames);
    const m: Record<string, unknown> = { type, tag };
    for (const [f, k] of MESSAGES[type][1] as readonly (readonly [string, FieldKind])[]) m[f] = value(f, k);
    let frame = encode(m as unknown as Message);
    const mode = r();
    if (mode < 0.35) return aimFlush(frame, tag); // valid
    frame = frame.slice();
    if (mode < 0.55) {
      for (let i = int(4) + 1; i > 0 && frame.length > 7; i--) frame[7 + int(frame.length - 7)] = int(256);
    } else if (mode < 0.7) {
      frame = frame.slice(0, 7 + int(frame.length - 6));
    } else if (mode < 0.8) {
      const extra = Uint8Array.from({ length: 1 + int(40) }, () => int(256));
      const f2 = new Uint8Array(frame.length + extra.length);
      f2.set(frame);
      f2.set(extra, frame.length);
      frame = f2;
    } else if (mode < 0.9) {
      let t = int(256);
      if (t === 100) t = 101; // never a Tversion: it would reset the session the batch accounting relies on
      frame[4] = t;
    } else {
      frame = Uint8Array.from({ length: 7 + int(120) }, () => int(256));
      if (frame[4] === 100) frame[4] = 101;
    }
    if (frame[4] === 108 && frame.length === 7) frame = Uint8Array.from([...frame, int(64), 0]); // aim some flushes
    if (frame.length > msize) frame = frame.slice(0, msize);
    new DataView(frame.buffer, frame.byteOffset).setUint32(0, frame.length, true);
    frame[5] = tag & 0xff;
    frame[6] = tag >> 8;
    return aimFlush(frame, tag);
  };
  // A Tflush may only name a request sent before it (or none of the batch): then, once its Rflush is in, the
  // request it named has either been answered already or never will be, and the tag can be reused safely.
  const aimFlush = (frame: Uint8Array, tag: number): Uint8Array => {
    if (frame[4] !== 108 || frame.length !== 9) return frame;
    const old = frame[7]! | (frame[8]! << 8);
    if (old >= tag && old < 64) {
      const to = tag > 0 && r() < 0.8 ? int(tag) : 64 + int(1000);
      frame[7] = to & 0xff;
      frame[8] = to >> 8;
    }
    return frame;
  };

  // Negotiate and attach fid 1 to the root, then fuzz.
  const exchange = (frames: Uint8Array[], tags: number[]) =>
    new Promise<void>((res, rej) => {
      const pending = new Set(tags);
      const flushOf = new Map<number, number>();
      frames.forEach((f, i) => {
        if (f[4] === 108 && f.length === 9) flushOf.set(tags[i]!, f[7]! | (f[8]! << 8));
      });
      const timer = setTimeout(() => rej(new Error(`no answer for tags ${[...pending].slice(0, 8)} after 20 s`)), 20000);
      const done = () => {
        clearTimeout(timer);
        onReply = undefined;
        res();
      };
      onReply = (m) => {
        report.replies++;
        report.byType.set(m.type, (report.byType.get(m.type) ?? 0) + 1);
        if (!pending.delete(m.tag)) report.strayReplies++;
        if (m.type === 'Rlerror') report.rlerrors++;
        if (m.type === 'Rflush') {
          const old = flushOf.get(m.tag);
          if (old !== undefined && pending.delete(old)) report.flushed++;
        }
        if (pending.size === 0) done();
      };
      closed.then(() => {
        clearTimeout(timer);
        res();
      });
      for (const f of frames) sock.write(f);
      report.sent += frames.length;
    });
  await exchange([encode({ type: 'Tversion', tag: 0xffff, msize, version: bytes(version) })], [0xffff]);
  const attach = (tag: number) =>
    encode({ type: 'Tattach', tag, fid: 1, afid: 0xffffffff, uname: bytes(''), aname: bytes(''), nUname: 0 });
  await exchange([attach(0)], [0]);
  // A walk from the root to one or two names, an open and a read from offset 0 (after a clunk of the new fid and an
  // attach of fid 1, either of which the fuzzing may have taken): random requests seldom line these up, and this is
  // the path that would carry a file outside the root.
  const readChain = (): Uint8Array[] => {
    const newfid = 2 + int(10);
    const wnames = Array.from({ length: 1 + int(2) }, () => bytes(pick(NAMES)));
    return [
      encode({ type: 'Tclunk', tag: 0, fid: newfid }),
      attach(1),
      encode({ type: 'Twalk', tag: 2, fid: 1, newfid, wnames }),
      encode({ type: 'Tlopen', tag: 3, fid: newfid, flags: 0 }),
      encode({ type: 'Tread', tag: 4, fid: newfid, offset: 0n, count: 4096 }),
    ];
  };
  const BATCH = 64;
  while (report.sent < count && !report.closed) {
    const frames: Uint8Array[] = r() < 0.25 ? readChain() : [];
    const tags: number[] = frames.map((_, i) => i);
    for (let i = frames.length; i < BATCH; i++) {
      tags.push(i);
      frames.push(i === 0 && r() < 0.2 ? attach(0) : build(i));
    }
    await exchange(frames, tags);
  }
  hangingUp = true;
  sock.destroy();
  await closed;
  return report;
}
