// Bulk TCP between two Netstacks in memory over an ImpairEndpoint (5% loss, 5% reordering, 1% duplication in
// both directions, 1 ms channel, VirtualClock): 64 MB each way at the same time on one connection, checked
// byte-exact with SHA-256, for NewReno ("reno") and CUBIC (chosen by TCP_CONGESTION on the client and the
// listener), three seeds each, all six at full size; then twelve smaller runs of odd, unequal sizes over more
// seeds, a third of them choosing the algorithm by the stacks' default (TcpConfig.congestion) instead. Every
// run must end with a FIN read each way after exactly every byte, both ends CLOSED by the FIN path (no
// connection aborted by RST or timeout), no connection left, and both stacks' memory account back at 0.
// Two reduced tests at the end pin down the bugs the bulk runs found.
//
// Measured on the 2-core machine while other jobs ran (load 2–8): one 64 MB-each-way run takes 2–4 s wall
// (29–39 s virtual), the small runs 0.01–0.4 s each; `npx tap` of the whole file 25–30 s, start included.
// For a soak, TSV_BULK_SEEDS=n adds n seeds per algorithm to the small runs (200 took ≈2 min) and
// TSV_BULK_BIG_SEEDS=n runs n seeds per algorithm at 64 MB (3 by default).
//
// Bugs these runs found (fixed in output.ts/endpoint.ts since; the two reduced tests at the end keep them fixed):
// reno seed 2 deadlocked at 61 MB (bare ACKs carried the RTO-rewound SND.NXT), and a window update left
// TIME-WAIT after the peer had closed, drawing a RST.
import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import { parseAddress, parseSubnet } from '../../../../netstack/addr.ts';
import { VirtualClock } from '../../../../netstack/clock.ts';
import { Err } from '../../../../netstack/errors.ts';
import { ChannelEndpoint } from '../../../../netstack/link/channel.ts';
import { ImpairEndpoint, parseImpairSpec } from '../../../../netstack/link/impair.ts';
import { Netstack } from '../../../../netstack/netstack.ts';
import { ShutdownWrite } from '../../../../netstack/socket.ts';
import type { TcpEndpoint } from '../../../../netstack/transport/tcp/endpoint.ts';
import { State, stateName } from '../../../../netstack/transport/tcp/state.ts';
import { TCP_ACK } from '../../../../netstack/wire/tcp.ts';
import { Harness, pattern } from './helper.ts';

const MB = 1024 * 1024;
const IMPAIR = 'loss=0.05,reorder=0.05,dup=0.01';

/**
 * Two Netstacks joined by a 1 ms channel whose A side impairs both directions per `spec`; `cc` is both stacks'
 * default congestion control when given (TcpConfig.congestion, the net.ipv4.tcp_congestion_control sysctl).
 */
function impairedPair(spec: string, cc?: string) {
  const parsed = parseImpairSpec(spec);
  if (typeof parsed === 'string') throw new Error(parsed);
  const clock = new VirtualClock();
  const [la, lb] = ChannelEndpoint.pair({ clock, mtu: 1500, latencyMs: 1 });
  const impair = new ImpairEndpoint(la, clock, parsed);
  const tcp = cc ? { congestion: cc } : undefined;
  const a = new Netstack({ clock, seed: 101 + parsed.seed, dadTransmits: 0, tcp });
  const b = new Netstack({ clock, seed: 202 + parsed.seed, dadTransmits: 0, tcp });
  a.stack.addAddress(a.stack.addNic(impair), parseSubnet('198.18.0.1/24')!);
  b.stack.addAddress(b.stack.addNic(lb), parseSubnet('198.18.0.2/24')!);
  return { clock, a, b, impair };
}
type Pair = ReturnType<typeof impairedPair>;

/** `n` deterministic pseudo-random bytes (xorshift32, one 32-bit word at a time). */
function payload(n: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(n / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x ^= x >>> 17;
    x = (x ^ (x << 5)) >>> 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, n);
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** One direction of the exchange: what the sender has written and what the receiver has read of it. */
class Flow {
  written = 0;
  shut = false;
  received = 0;
  /** Bytes read when the FIN (a zero-length read) was seen, or -1. */
  eofAt = -1;
  private readonly hash = createHash('sha256');
  constructor(readonly data: Uint8Array) {}

  /** Writes what the send buffer takes; shuts down writing once everything is in. */
  push(ep: TcpEndpoint): void {
    while (this.written < this.data.length) {
      const n = ep.write(this.data.subarray(this.written, Math.min(this.data.length, this.written + 256 * 1024)));
      if (typeof n !== 'number' || n === 0) break;
      this.written += n;
    }
    if (this.written === this.data.length && !this.shut) this.shut = ep.shutdown(ShutdownWrite) === undefined;
  }

  /** Reads everything available, hashing it; a zero-length read is the peer's FIN. */
  pull(ep: TcpEndpoint): void {
    while (this.eofAt < 0) {
      const r = ep.read({ maxBytes: 1 << 20 });
      if ('errno' in r) return;
      if (r.data.length === 0) this.eofAt = this.received;
      this.hash.update(r.data);
      this.received += r.data.length;
    }
  }

  get eof(): boolean {
    return this.eofAt >= 0;
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

interface Run {
  up: Flow;
  down: Flow;
  client: TcpEndpoint;
  server: TcpEndpoint;
  virtualMs: number;
  wallMs: number;
  /** Highest stack-wide buffered bytes seen on A plus B during the transfer. */
  peakMemory: number;
  /** Why the exchange stopped early: no byte moved for STALL_MS of virtual time. */
  stalled: string | null;
}

/** No progress for this long (virtual) is a stall: 60 s is past several backed-off RTOs but far below R2. */
const STALL_MS = 60_000;

/** A connection's sender and receiver, relative to the ISNs, for a stall report. */
function describe(ep: TcpEndpoint): string {
  const { snd, rcv } = ep;
  return (
    `${stateName(ep.state)} SND.UNA ${(snd.una - snd.iss) >>> 0} SND.NXT ${(snd.nxt - snd.iss) >>> 0} ` +
    `SND.MAX ${(snd.max - snd.iss) >>> 0} RCV.NXT ${(rcv.nxt - rcv.irs) >>> 0} RTOs ${snd.timeouts}`
  );
}

/**
 * Connects A → B, with TCP_CONGESTION `cc` set on the client and on the listener (whose child inherits it)
 * unless null, and sends `up` A → B and `down` B → A at the same time, each side shutting down writing when
 * done, until both have read the other's FIN.
 */
function exchange(env: Pair, cc: string | null, up: Uint8Array, down: Uint8Array): Run {
  const { clock, a, b } = env;
  const wall = performance.now();
  const listener = b.socket(4, 'stream') as TcpEndpoint;
  if (cc && listener.setOption('TCP_CONGESTION', cc) !== undefined) throw new Error('TCP_CONGESTION');
  listener.bind({ address: new Uint8Array(4), port: 5001 });
  listener.listen(8);
  const client = a.socket(4, 'stream') as TcpEndpoint;
  if (cc && client.setOption('TCP_CONGESTION', cc) !== undefined) throw new Error('TCP_CONGESTION');
  if (client.connect({ address: parseAddress('198.18.0.2')!, port: 5001 }) !== Err.ConnectStarted) {
    throw new Error('connect');
  }
  let server: TcpEndpoint | null = null;
  const fu = new Flow(up);
  const fd = new Flow(down);
  const start = clock.now();
  let peakMemory = 0;
  let stalled: string | null = null;
  let moved = -1;
  let movedAt = start;
  while (!(fu.eof && fd.eof)) {
    if (fu.received + fd.received !== moved) {
      moved = fu.received + fd.received;
      movedAt = clock.now();
    } else if (clock.now() - movedAt > STALL_MS) {
      stalled =
        `no byte delivered from ${movedAt - start} to ${clock.now() - start} ms virtual: ` +
        `up ${fu.received}/${up.length}, down ${fd.received}/${down.length}; ` +
        `client ${describe(client)}; server ${server ? describe(server) : 'not accepted'}`;
      break;
    }
    clock.advance(1);
    if (!server) {
      const r = listener.accept();
      if ('errno' in r) continue;
      server = r.endpoint as TcpEndpoint;
    }
    fu.push(client);
    fd.push(server);
    fu.pull(server);
    fd.pull(client);
    peakMemory = Math.max(peakMemory, a.tcp.memoryUsed + b.tcp.memoryUsed);
  }
  listener.close();
  return {
    up: fu,
    down: fd,
    client,
    server: server!,
    virtualMs: clock.now() - start,
    wallMs: performance.now() - wall,
    peakMemory,
    stalled,
  };
}

/**
 * Runs one exchange and asserts everything the bulk tests promise; `how` picks the algorithm by setsockopt or by
 * the stacks' default.
 */
function checkBulk(t: Test, cc: string, seed: number, upLen: number, downLen: number, how: 'setsockopt' | 'default' = 'setsockopt'): void {
  const env = impairedPair(`${IMPAIR},seed=${seed}`, how === 'default' ? cc : undefined);
  const up = payload(upLen, seed * 2 + 1);
  const down = payload(downLen, seed * 2 + 2);
  const r = exchange(env, how === 'setsockopt' ? cc : null, up, down);
  const { a, b, impair, clock } = env;
  const frames = a.tcp.stats.segmentsSent + b.tcp.stats.segmentsSent;
  t.comment(
    `${cc} seed ${seed} ${upLen}↑ ${downLen}↓: ${r.virtualMs} ms virtual, ${r.wallMs.toFixed(0)} ms wall; ` +
      `dropped ${impair.counters.dropped}, reordered ${impair.counters.reordered}, ` +
      `duplicated ${impair.counters.duplicated} of ${frames}; retransmits A ${a.tcp.stats.retransmits} ` +
      `B ${b.tcp.stats.retransmits}, RTOs A ${a.tcp.stats.timeouts} B ${b.tcp.stats.timeouts}`,
  );
  t.equal(r.stalled, null, 'the transfer never stalls');
  t.equal(r.client.getOption('TCP_CONGESTION'), cc, 'client runs the chosen congestion control');
  t.equal(r.server.getOption('TCP_CONGESTION'), cc, `accepted child runs it too (${how})`);

  t.equal(r.up.eofAt, upLen, 'A → B: FIN read after exactly every byte');
  t.equal(r.up.digest(), sha(up), 'A → B: SHA-256 matches');
  t.equal(r.down.eofAt, downLen, 'B → A: FIN read after exactly every byte');
  t.equal(r.down.digest(), sha(down), 'B → A: SHA-256 matches');
  if (r.stalled) return;

  // The impairment really happened at the rates asked for (frames entering the impaired link ≈ segments sent);
  // small runs have too few frames for a rate, only for "it happened".
  if (frames > 50_000) {
    const lossRate = impair.counters.dropped / frames;
    t.ok(lossRate > 0.045 && lossRate < 0.055, `≈5% of frames lost (${(lossRate * 100).toFixed(2)}%)`);
    // A frame is reordered only when another follows it within the impairment's delay, so the 5% asked for comes
    // out near 3% (4416 to 4529 of ~147,000 over seeds 1–3): the bound asks for most of that, not all of it.
    t.ok(impair.counters.reordered > frames * 0.025, `frames reordered (${impair.counters.reordered})`);
    t.ok(impair.counters.duplicated > frames * 0.007, `frames duplicated (${impair.counters.duplicated})`);
  } else if (frames > 1000) {
    t.ok(impair.counters.dropped > 0 && impair.counters.reordered > 0, 'frames were lost and reordered');
  }
  if (upLen > MB) t.ok(a.tcp.stats.fastRetransmits > 0, 'A repaired losses by fast retransmit');
  if (downLen > MB) t.ok(b.tcp.stats.fastRetransmits > 0, 'B repaired losses by fast retransmit');
  t.ok(r.peakMemory > 0, 'the memory account saw the buffered bytes');

  // Both FINs were sent and read; then close() and watch both ends leave by the FIN path, never by an abort.
  const paths = [[r.client.state], [r.server.state]];
  r.client.close();
  r.server.close();
  for (let ms = 0; ms < 4 * a.tcp.config.msl; ms += 10) {
    clock.advance(10);
    [r.client, r.server].forEach((ep, i) => {
      if (paths[i]!.at(-1) !== ep.state) paths[i]!.push(ep.state);
    });
  }
  const names = (p: State[]) => p.map(stateName).join(' → ');
  const cleanPath = (p: State[]) =>
    p.at(-1) === State.Closed && ([State.TimeWait, State.LastAck, State.Closing] as State[]).includes(p.at(-2) ?? State.Closed);
  t.ok(cleanPath(paths[0]!), `client closed through its FIN exchange: ${names(paths[0]!)}`);
  t.ok(cleanPath(paths[1]!), `server closed through its FIN exchange: ${names(paths[1]!)}`);
  t.equal(r.client.takeError(), undefined, 'no error on the client (no RST, no timeout)');
  t.equal(r.server.takeError(), undefined, 'no error on the server');
  // A duplicated last ACK or a retransmitted FIN may reach a side that has already closed, and it answers with
  // a RST as Linux does; what must not happen is a live connection aborting.
  // (noEndpoint also counts RSTs for no connection, which get no answer: hence ≤.)
  t.ok(a.tcp.stats.resetsSent <= a.tcp.stats.noEndpoint, 'A sent RST only for segments of no connection');
  t.ok(b.tcp.stats.resetsSent <= b.tcp.stats.noEndpoint, 'B sent RST only for segments of no connection');
  t.equal(a.tcp.connectionCount + b.tcp.connectionCount, 0, 'no connection left in either demux');
  t.equal(a.tcp.memoryUsed, 0, 'A memory account back to 0');
  t.equal(b.tcp.memoryUsed, 0, 'B memory account back to 0');
}

const bigSeeds = Number(process.env.TSV_BULK_BIG_SEEDS ?? 3);
for (const cc of ['reno', 'cubic']) {
  for (let seed = 1; seed <= bigSeeds; seed++) {
    const name = `${cc} seed ${seed}: 64 MB each way at once through ${IMPAIR} → byte-exact, FIN both ways, memory 0`;
    t.test(name, async (t) => {
      checkBulk(t, cc, seed, 64 * MB, 64 * MB);
    });
  }
}

const extraSeeds = Number(process.env.TSV_BULK_SEEDS ?? 0);
for (const cc of ['reno', 'cubic']) {
  for (let seed = 4; seed < 10 + extraSeeds; seed++) {
    // Odd sizes, unequal directions, one of them sometimes tiny, so FIN timing and the last partial segment vary.
    const upLen = ((seed * 7919) % 3) * MB + seed * 1237 + 1;
    const downLen = seed % 2 ? 17 * seed : MB + 3 * seed;
    // Every third run picks the algorithm by the stacks' default instead of setsockopt.
    const how = seed % 3 === 0 ? 'default' : 'setsockopt';
    const name = `${cc} (${how}) seed ${seed}: ${upLen} B up, ${downLen} B down through ${IMPAIR} → byte-exact, clean close`;
    t.test(name, async (t) => {
      checkBulk(t, cc, seed, upLen, downLen, how);
    });
  }
}

// The RSTs some bulk runs ended with, reduced: a window update sent after the peer's FIN reaches a peer that has
// already closed. Linux sends no window update once the receive side is shut down (tcp_cleanup_rbuf checks
// RCV_SHUTDOWN), so reading leftover data in TIME-WAIT sends nothing.
t.test('TIME-WAIT with unread data, application reads → no window update, so no RST from the closed peer', async (t) => {
  const { clock, a, b } = impairedPair('');
  const listener = b.socket(4, 'stream') as TcpEndpoint;
  listener.bind({ address: new Uint8Array(4), port: 5002 });
  listener.listen(1);
  const client = a.socket(4, 'stream') as TcpEndpoint;
  client.connect({ address: parseAddress('198.18.0.2')!, port: 5002 });
  clock.advance(10);
  const acc = listener.accept();
  if ('errno' in acc) throw new Error('not accepted');
  const server = acc.endpoint as TcpEndpoint;
  listener.close();
  t.equal(client.shutdown(ShutdownWrite), undefined, 'client FIN first');
  clock.advance(10);
  t.equal(client.state, State.FinWait2, 'client FIN-WAIT-2');
  const data = payload(32 * 1024, 5);
  t.equal(server.write(data), data.length, 'server writes 32 KB');
  server.close();
  clock.advance(10);
  t.equal(client.state, State.TimeWait, 'data + FIN arrived unread: client TIME-WAIT');
  t.equal(server.state, State.Closed, 'server LAST-ACK → CLOSED on the ACK of its FIN');
  const sent = a.tcp.stats.segmentsSent;
  const r = client.read({ maxBytes: 1 << 20 });
  t.same('errno' in r ? r : r.data, data, 'the 32 KB read byte-exact');
  const eof = client.read();
  t.equal('errno' in eof ? -1 : eof.data.length, 0, 'then end of file');
  clock.advance(10);
  t.equal(a.tcp.stats.segmentsSent - sent, 0, 'no segment from TIME-WAIT for a read');
  t.equal(b.tcp.stats.resetsSent, 0, 'so the closed peer has nothing to reset');
});

// The reno seed 2 stall (before the fix), reduced: after an RTO rewinds SND.NXT to SND.UNA (go-back-N), a bare ACK must still
// carry SEQ = SND.MAX (BSD's tcp_output; Linux never rewinds snd_nxt), because the peer has received up to there
// and drops a data-less segment whose SEQ lies below its RCV.NXT as unacceptable (RFC 9293 §3.10.7.4), ACK
// field and all. When both ends are in go-back-N at once, neither hears the other's ACKs.
t.test('ESTABLISHED after RTO, peer data arrives → bare ACK carries SEQ=SND.MAX, not the rewound SND.NXT', async (t) => {
  const h = new Harness({ congestion: 'reno' });
  const ep = h.connect();
  const first = h.iss + 1;
  const mss = ep.snd.mss;
  ep.write(pattern(4 * mss));
  for (let i = 0; i < 4; i++) h.expect({ seq: first + i * mss, len: mss });
  const max = (first + 4 * mss) >>> 0;
  t.equal(ep.snd.max, max, 'four segments sent');
  // All four are lost, and the tail loss probe too: the RTO resends the first and rewinds.
  for (let ms = 0; ms < 10_000 && ep.snd.timeouts === 0; ms += 10) h.advance(10);
  let rtx = h.next();
  while (h.pending) rtx = h.next();
  t.equal(rtx.seq, first, 'the RTO resent the first segment');
  t.equal(ep.snd.nxt, (first + mss) >>> 0, 'SND.NXT rewound behind SND.MAX');
  // The peer, which did receive them all (only its ACKs were lost), sends data of its own.
  h.send({ flags: TCP_ACK, ack: first, payload: pattern(100), options: h.ts(rtx) });
  h.advance(200);
  const ack = h.next();
  t.equal(ack.ack, (h.peerNxt + 100) >>> 0, 'the data is acknowledged');
  t.equal(ack.payload.length, 0, 'by a bare ACK (cwnd is one segment, in flight)');
  t.equal(ack.seq, max, 'whose SEQ is SND.MAX, acceptable to the peer');
});
