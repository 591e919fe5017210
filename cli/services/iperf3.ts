/**
 * The `iperf3` service: the server half of iperf3's test protocol, so the stock `iperf3 -c` client measures the
 * netstack over TCP and UDP (`-u`), in either direction (`-R`) or both at once (`--bidir`). One control connection per test carries single state bytes and length-prefixed JSON; every
 * connection (control and data) opens with the client's 37-byte cookie, which is how data streams are matched to
 * their test. Flow, server side: cookie → PARAM_EXCHANGE, client parameters → CREATE_STREAMS, N data streams →
 * TEST_START, TEST_RUNNING, … TEST_END from the client → EXCHANGE_RESULTS, client results, our results →
 * DISPLAY_RESULTS, … IPERF_DONE. Stream ids follow iperf3's numbering (1, 3, 4, 5, …), which the client checks.
 * A --bidir test has twice -P streams: iperf3's server takes the first half as streams it receives on and the
 * second half as streams it sends on. UDP streams carry no cookie: they open with the connect datagram of
 * iperf3-udp.ts on the same port number, and belong to the one test that is waiting for its streams. SCTP tests
 * get SERVER_ERROR with i_errno 13 ("not implemented").
 */
import { IPV6_ANY, formatAddress } from '../../netstack/addr.ts';
import { coalesced } from '../../netstack/adapter/common.ts';
import { Err, NetError } from '../../netstack/errors.ts';
import type { Endpoint, SocketAddress } from '../../netstack/socket.ts';
import { EventErr, EventHUp, EventIn, EventOut, EventRdHUp } from '../../netstack/waiter.ts';
import { UDP_CONNECT_REPLY, UdpReceiver, UdpSender } from './iperf3-udp.ts';
import { bindDatagram, serveDatagrams, type Service, type ShardPeers, type SocketFactory } from './service.ts';

/** Length of the cookie every connection starts with (36 characters and a NUL). */
export const COOKIE_SIZE = 37;

/** The control-channel state bytes (iperf3's iperf_api.h); negative ones travel as a signed byte. */
export const State = {
  TEST_START: 1,
  TEST_RUNNING: 2,
  TEST_END: 4,
  PARAM_EXCHANGE: 9,
  CREATE_STREAMS: 10,
  SERVER_TERMINATE: 11,
  CLIENT_TERMINATE: 12,
  EXCHANGE_RESULTS: 13,
  DISPLAY_RESULTS: 14,
  IPERF_DONE: 16,
  ACCESS_DENIED: -1,
  SERVER_ERROR: -2,
} as const;

/** The test parameters the client sends (the subset this server uses). */
export interface Iperf3Params {
  /** Number of data streams (-P); a --bidir test has twice as many. */
  parallel: number;
  /** -R: the server sends. */
  reverse: boolean;
  /** Block size of each write (-l), or each datagram's size for UDP. */
  len: number;
  /** -u: UDP data streams. */
  udp: boolean;
  /** --bidir: both ends send. */
  bidirectional: boolean;
  /** -b, bits per second per stream; 0 for unlimited (UDP senders pace to it). */
  bandwidth: number;
  /** --pacing-timer, microseconds between a UDP sender's bursts. */
  pacingTimer: number;
  /** --udp-counters-64bit: 8-byte packet counts in UDP datagrams. */
  counters64: boolean;
}

/** The largest UDP payload in an IPv4 datagram. */
const MAX_UDP_LEN = 65507;

/** Parses the client's parameter JSON; a string names why it is refused. */
export function parseParams(json: string): Iperf3Params | string {
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return 'parameters are not JSON';
  }
  if (typeof p !== 'object' || p === null) return 'parameters are not an object';
  if (p.sctp) return 'SCTP tests are not served';
  const udp = Boolean(p.udp);
  const parallel = p.parallel === undefined ? 1 : Number(p.parallel);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 128) return `bad parallel ${String(p.parallel)}`;
  const len = p.len === undefined ? (udp ? 1460 : 131072) : Number(p.len);
  if (!Number.isInteger(len) || len < 1 || len > (udp ? MAX_UDP_LEN : 1 << 24)) return `bad len ${String(p.len)}`;
  const bandwidth = p.bandwidth === undefined ? 0 : Number(p.bandwidth);
  if (!Number.isFinite(bandwidth) || bandwidth < 0) return `bad bandwidth ${String(p.bandwidth)}`;
  const pacingTimer = p.pacing_timer === undefined ? 1000 : Number(p.pacing_timer);
  if (!Number.isFinite(pacingTimer) || pacingTimer < 0) return `bad pacing_timer ${String(p.pacing_timer)}`;
  return {
    parallel,
    reverse: Boolean(p.reverse),
    len,
    udp,
    bidirectional: Boolean(p.bidirectional),
    bandwidth,
    pacingTimer,
    // iperf3 sends the key only when the option is on.
    counters64: p.udp_counters_64bit !== undefined,
  };
}

/** The id iperf3 gives the k-th stream of a test (k from 0): 1, then 3, 4, 5, … (its numbering skips 2). */
export function streamId(k: number): number {
  return k === 0 ? 1 : k + 2;
}

/** One stream's figures for the results exchange. */
export interface StreamResult {
  id: number;
  bytes: number;
  /** Seconds from the test's start to the stream's last activity. */
  seconds: number;
  /** UDP: jitter in seconds (receiver), datagrams lost (receiver), datagrams sent or the highest count seen. */
  jitter?: number;
  errors?: number;
  packets?: number;
}

/**
 * The server's results JSON as the client's get_results expects it (every key it requires is present);
 * `serverSends` when the server sent on some stream (-R or --bidir).
 */
export function resultsJson(serverSends: boolean, streams: readonly StreamResult[]): string {
  return JSON.stringify({
    cpu_util_total: 0,
    cpu_util_user: 0,
    cpu_util_system: 0,
    // A sending server says whether it counted retransmits (we do not); a receive-only one says -1, as iperf3's.
    sender_has_retransmits: serverSends ? 0 : -1,
    streams: streams.map((s) => ({
      id: s.id,
      bytes: s.bytes,
      retransmits: -1,
      jitter: s.jitter ?? 0,
      errors: s.errors ?? 0,
      packets: s.packets ?? 0,
      start_time: 0,
      end_time: s.seconds,
    })),
  });
}

/** A JSON message framed as on iperf3's control channel: 4-byte big-endian length, then the text. */
export function frameJson(text: string): Uint8Array {
  const body = new TextEncoder().encode(text);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

/** Counts of what the iperf3 service has done. */
export interface Iperf3Stats {
  /** Tests that reached TEST_START. */
  tests: number;
  /** Tests that ended with IPERF_DONE. */
  completed: number;
  /** Connections refused (busy server, unknown cookie, unsupported test). */
  refused: number;
  /** Data bytes received / sent on data streams. */
  bytesIn: number;
  bytesOut: number;
  /** UDP data datagrams received / sent. */
  datagramsIn: number;
  datagramsOut: number;
  /** Datagrams from an address that is no stream of the running test. */
  datagramsIgnored: number;
}

/** Options of the service (tests inject the clock). */
export interface Iperf3Options {
  /** Milliseconds, monotonic (default performance.now). */
  now?: () => number;
  /** Milliseconds since the epoch, for UDP send times (default performance.timeOrigin + performance.now()). */
  wallNow?: () => number;
  /**
   * The iperf3 services of the other shards of `serve --threads N`: a test's data streams reach whichever shard
   * the kernel's flow hash picks, so a shard that gets a connection with a cookie it does not know asks the
   * others whether it is a stream of their test, and then serves the stream for the test's shard (see
   * PeerMessage). A UDP stream's connect datagram carries no cookie: a shard that gets one asks the others
   * whether their test waits for a UDP stream.
   */
  peers?: ShardPeers;
}

/** What the iperf3 services of two shards tell each other about a test's streams. */
type PeerMessage =
  /** A connection with this cookie arrived on the sender's shard: is it a stream of your test? */
  | { t: 'who'; cookie: string; key: number }
  /** A UDP stream's connect datagram arrived on the sender's shard: does your test wait for a UDP stream? */
  | { t: 'udpWho'; key: number }
  /**
   * Yes: serve it as stream `id` of my test `cookie`, sending blocks (datagrams) of `len` bytes from 'start' when
   * `sender`; `udp` for a UDP stream, with the test's counter width, rate and pacing.
   */
  | { t: 'mine'; key: number; cookie: string; id: number; sender: boolean; len: number; udp?: { counters64: boolean; bandwidth: number; pacingTimer: number } }
  /** It is my test's, but the test takes no more streams: refuse it. */
  | { t: 'refuse'; key: number }
  | { t: 'notMine'; key: number }
  /**
   * The test started (all its streams are in) / the client ended it / the client sent its results, so send yours
   * ('result') / it is over.
   */
  | { t: 'start' | 'end' | 'report' | 'close'; cookie: string }
  /** After 'report': the bytes a stream served for the test received or sent so far. */
  | { t: 'result'; cookie: string; key: number; bytes: number; jitter?: number; errors?: number; packets?: number };

const CHUNK = 262144;
// How received test data is read: counted and dropped, as iperf3's server does, but not copied anywhere first
// (MSG_TRUNC): at tens of Gbit/s a copy per byte is a sixth of the serving thread.
const SINK_READ = { into: new Uint8Array(CHUNK), discard: true };
const BACKLOG = 1024;
// Test data is written from one block per stream that never changes: the stack may queue it uncopied.
const KEEP = { keep: true };
/** Datagrams a UDP sender sends per pacing tick at most (with -b 0, every tick sends this many). */
const UDP_BURST = 64;

/** A connection with buffered input and queued output, run by a step function on readiness. */
class Conn {
  private input: Uint8Array[] = [];
  private inputBytes = 0;
  private output: Uint8Array[] = [];
  eof = false;
  failed = false;
  closed = false;
  private unsubscribe: () => void = () => {};

  constructor(
    readonly ep: Endpoint,
    step: (c: Conn) => void,
    private readonly onClose: (c: Conn) => void,
  ) {
    const run = coalesced(() => {
      if (!this.closed) step(this);
    });
    this.unsubscribe = ep.waiter.subscribe(EventIn | EventOut | EventErr | EventHUp | EventRdHUp, run);
    run();
  }

  /** Reads everything available into the input buffer (control traffic is small). */
  fill(): void {
    while (!this.eof && !this.failed) {
      const r = this.ep.read({ maxBytes: CHUNK });
      if (r === Err.WouldBlock) return;
      if (r instanceof NetError) this.failed = true;
      else if (r.data.length === 0) this.eof = true;
      else this.pushInput(r.data);
    }
  }

  pushInput(data: Uint8Array): void {
    if (data.length === 0) return;
    this.input.push(data);
    this.inputBytes += data.length;
  }

  /** Puts bytes back in front of the buffered input. */
  pushFront(data: Uint8Array): void {
    this.input.unshift(data);
    this.inputBytes += data.length;
  }

  get buffered(): number {
    return this.inputBytes;
  }

  /** Removes and returns exactly `n` buffered bytes, or null when fewer are buffered. */
  take(n: number): Uint8Array | null {
    if (this.inputBytes < n) return null;
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const head = this.input[0]!;
      const k = Math.min(head.length, n - off);
      out.set(head.subarray(0, k), off);
      off += k;
      if (k === head.length) this.input.shift();
      else this.input[0] = head.subarray(k);
    }
    this.inputBytes -= n;
    return out;
  }

  /** Removes and returns whatever is buffered. */
  takeAll(): Uint8Array[] {
    const all = this.input;
    this.input = [];
    this.inputBytes = 0;
    return all;
  }

  send(data: Uint8Array): void {
    this.output.push(data);
    this.flush();
  }

  /** Writes queued output; true when all of it went out. */
  flush(): boolean {
    while (this.output.length && !this.failed) {
      const head = this.output[0]!;
      const n = this.ep.write(head);
      if (n === Err.WouldBlock) return false;
      if (n instanceof NetError) {
        this.failed = true;
        return false;
      }
      if (n < head.length) {
        this.output[0] = head.subarray(n);
        return false;
      }
      this.output.shift();
    }
    return this.output.length === 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.ep.close();
    this.onClose(this);
  }
}

type Phase = 'params' | 'streams' | 'running' | 'results' | 'display' | 'over';

interface DataStream {
  result: StreamResult;
  /** The server sends on this stream (-R, or the second half of a --bidir test's streams). */
  sender: boolean;
  /** TCP: the connection, and where the next write starts inside the block (sending streams). */
  conn?: Conn;
  offset: number;
  /** A stream another shard serves for this test (see PeerMessage). */
  remote?: { shard: number; key: number };
  /** UDP: the peer's address key, and the receiving or sending end. */
  peerKey?: string;
  udpIn?: UdpReceiver;
  udpOut?: UdpSender;
}

/** One test: its control connection, its data streams and where it is in the protocol. */
class Test {
  phase: Phase = 'params';
  params: Iperf3Params | null = null;
  readonly streams: DataStream[] = [];
  startedAt = 0;
  private block: Uint8Array = new Uint8Array(0);
  private pacer: ReturnType<typeof setInterval> | null = null;
  // The client's results came; the figures of streams other shards serve still to come.
  private clientResultsIn = false;
  private awaitingResults = 0;

  constructor(
    readonly cookie: string,
    readonly control: Conn,
    private readonly stats: Iperf3Stats,
    private readonly now: () => number,
    private readonly wallNow: () => number,
    private readonly onOver: (t: Test) => void,
    private readonly peers?: ShardPeers,
  ) {
    control.send(stateByte(State.PARAM_EXCHANGE));
  }

  /** How many data streams the test has: -P, twice for --bidir. */
  get expected(): number {
    return this.params ? this.params.parallel * (this.params.bidirectional ? 2 : 1) : 0;
  }

  /** Whether the server sends on the k-th stream (k from 0): -R, or the second half of a --bidir test's. */
  private sendsOn(k: number): boolean {
    const p = this.params!;
    return p.bidirectional ? k >= p.parallel : p.reverse;
  }

  /** Whether a UDP connect datagram would open a stream now. */
  get wantsUdpStream(): boolean {
    return this.phase === 'streams' && !!this.params?.udp && this.streams.length < this.expected;
  }

  /** Runs the control channel's protocol as far as the buffered input allows. */
  stepControl(): void {
    const c = this.control;
    c.fill();
    for (;;) {
      if (this.phase === 'params') {
        const json = takeJson(c);
        if (json === null) break;
        const p = parseParams(json);
        if (typeof p === 'string') {
          this.stats.refused++;
          c.send(serverError(IE_UNIMP));
          return this.end();
        }
        this.params = p;
        this.block = new Uint8Array(p.len);
        this.phase = 'streams';
        c.send(stateByte(State.CREATE_STREAMS));
      } else if (this.phase === 'running' || this.phase === 'streams') {
        const b = c.take(1);
        if (!b) break;
        const s = (b[0]! << 24) >> 24;
        if (s === State.TEST_END && this.phase === 'running') {
          const elapsed = (this.now() - this.startedAt) / 1000;
          this.phase = 'results';
          // As iperf3's server does, the data streams close at TEST_END (a reverse stream after its last whole
          // block): the client's late reads then end on EOF instead of waiting on an idle stream.
          this.stopPacer();
          for (const d of this.streams) {
            d.result.seconds = elapsed;
            if (d.offset === 0) d.conn?.close();
          }
          this.tellRemotes('end');
          c.send(stateByte(State.EXCHANGE_RESULTS));
        } else return this.end(); // CLIENT_TERMINATE, or a byte out of turn
      } else if (this.phase === 'results') {
        if (!this.clientResultsIn) {
          // A JSON length's first byte is 0 (messages are far below 16 MiB); anything else is a state byte,
          // CLIENT_TERMINATE when the client is interrupted.
          const first = c.take(1);
          if (!first) break;
          c.pushFront(first);
          if (first[0] !== 0) return this.end();
          if (takeJson(c) === null) break;
          // Our figures are taken now, the other shards' too: a reverse stream still sending the rest of its
          // cut block counts it, wherever it is served.
          this.clientResultsIn = true;
          this.awaitingResults = this.streams.filter((d) => d.remote).length;
          this.tellRemotes('report');
        }
        if (this.awaitingResults > 0) break; // remoteResult() steps us again
        c.send(frameJson(resultsJson(this.params!.reverse || this.params!.bidirectional, this.streams.map((d) => this.resultOf(d)))));
        c.send(stateByte(State.DISPLAY_RESULTS));
        this.phase = 'display';
      } else if (this.phase === 'display') {
        const b = c.take(1);
        if (!b) break;
        if (b[0] === State.IPERF_DONE) this.stats.completed++;
        return this.end();
      } else return;
    }
    c.flush();
    if (c.eof || c.failed) this.end();
  }

  /** Attaches a TCP data stream whose cookie matched; starts the test when the last one arrives. */
  addStream(conn: Conn): boolean {
    if (this.phase !== 'streams' || !this.params || this.params.udp || this.streams.length >= this.expected) return false;
    const d = this.newStream();
    d.conn = conn;
    this.streams.push(d);
    if (!d.sender) for (const chunk of conn.takeAll()) this.count(d, chunk.length); // data that came with the cookie
    this.startIfComplete(d);
    return true;
  }

  /**
   * Attaches a TCP data stream that shard `shard` serves for this test (its connection `key`); `announce` tells
   * that shard the stream's id and direction before a complete test tells it to start. False when the test
   * takes no more streams.
   */
  addRemoteStream(shard: number, key: number, announce: (d: DataStream) => void, udp = false): boolean {
    if (this.phase !== 'streams' || !this.params || this.params.udp !== udp || this.streams.length >= this.expected) return false;
    const d = this.newStream();
    d.remote = { shard, key };
    this.streams.push(d);
    announce(d);
    this.startIfComplete(d);
    return true;
  }

  /** The figures of a stream another shard served, after TEST_END; the results go out once all are in. */
  remoteResult(shard: number, key: number, r: { bytes: number; jitter?: number; errors?: number; packets?: number }): void {
    const d = this.streams.find((s) => s.remote?.shard === shard && s.remote.key === key);
    if (!d || this.phase !== 'results') return;
    d.result = { ...d.result, bytes: r.bytes, jitter: r.jitter, errors: r.errors, packets: r.packets };
    this.awaitingResults--;
    this.stepControl();
  }

  /** Tells every shard that serves a stream of this test that it started, ended or is over. */
  private tellRemotes(t: 'start' | 'end' | 'report' | 'close'): void {
    const shards = new Set(this.streams.flatMap((d) => (d.remote ? [d.remote.shard] : [])));
    for (const shard of shards) this.peers?.send(shard, { t, cookie: this.cookie } satisfies PeerMessage);
  }

  /** Attaches a UDP data stream from `peer` (whose connect datagram the caller answered) on `ep`. */
  addUdpStream(ep: Endpoint, peer: SocketAddress, peerKey: string): void {
    const p = this.params!;
    const d = this.newStream();
    d.peerKey = peerKey;
    if (d.sender) d.udpOut = new UdpSender(ep, peer, p.len, p.counters64, p.bandwidth);
    else d.udpIn = new UdpReceiver(p.counters64);
    this.streams.push(d);
    this.startIfComplete(d);
  }

  /** The stream of UDP peer `peerKey`, if it is one of this test's. */
  udpStream(peerKey: string): DataStream | undefined {
    return this.streams.find((d) => d.peerKey === peerKey);
  }

  /** Accounts a datagram that arrived on a receiving UDP stream (only while the test runs, as iperf3). */
  udpData(d: DataStream, data: Uint8Array): void {
    if (!d.udpIn || this.phase !== 'running') return;
    d.udpIn.receive(data, this.now());
    this.stats.bytesIn += data.length;
    this.stats.datagramsIn++;
  }

  private newStream(): DataStream {
    const k = this.streams.length;
    return { result: { id: streamId(k), bytes: 0, seconds: 0 }, sender: this.sendsOn(k), offset: 0 };
  }

  /** Starts the test once every stream is in; `last` is the one just added (its caller steps it). */
  private startIfComplete(last: DataStream): void {
    if (this.streams.length !== this.expected) return;
    this.phase = 'running';
    this.startedAt = this.now();
    this.stats.tests++;
    this.control.send(stateByte(State.TEST_START));
    this.control.send(stateByte(State.TEST_RUNNING));
    this.tellRemotes('start');
    // A stream added earlier has nothing to wake it before the client's data, so start the senders here.
    for (const s of this.streams) if (s !== last && s.sender && s.conn) this.stepStream(s);
    if (this.streams.some((s) => s.udpOut)) {
      const p = this.params!;
      this.pacer = setInterval(() => this.pumpUdp(), Math.max(1, p.pacingTimer / 1000));
      this.pumpUdp();
    }
  }

  /** One pacing tick of every UDP sender. */
  private pumpUdp(): void {
    if (this.phase !== 'running') return this.stopPacer();
    const now = this.now();
    const wall = this.wallNow();
    for (const d of this.streams) {
      const out = d.udpOut;
      if (!out) continue;
      const before = out.bytes;
      const r = out.pump(now, wall, UDP_BURST);
      if (r instanceof NetError) continue; // e.g. no route for a moment: iperf3 too goes on sending
      this.stats.datagramsOut += r;
      this.stats.bytesOut += out.bytes - before;
    }
  }

  private stopPacer(): void {
    if (this.pacer) clearInterval(this.pacer);
    this.pacer = null;
  }

  /** A stream's figures for the results exchange. */
  private resultOf(d: DataStream): StreamResult {
    if (d.udpIn) return { ...d.result, bytes: d.udpIn.bytes, jitter: d.udpIn.jitter, errors: d.udpIn.lost, packets: d.udpIn.packets };
    if (d.udpOut) return { ...d.result, bytes: d.udpOut.bytes, packets: d.udpOut.packets };
    return d.result;
  }

  private count(d: DataStream, n: number): void {
    d.result.bytes += n;
    this.stats.bytesIn += n;
  }

  /**
   * Moves data on one stream: sinks what the client sends, or sends blocks while the test runs (-R). Only whole
   * blocks are sent: the client reads each block to its end with a blocking read, so a block cut short at
   * TEST_END would hang it.
   */
  stepStream(d: DataStream): void {
    const c = d.conn;
    if (!c) return;
    const running = this.phase === 'running';
    const sending = d.sender && this.phase !== 'over' && (running || d.offset > 0);
    for (;;) {
      const r = c.ep.read(SINK_READ);
      if (r === Err.WouldBlock) break;
      if (r instanceof NetError || r.data.length === 0) return c.close();
      if (!d.sender && (this.phase === 'running' || this.phase === 'streams')) this.count(d, r.data.length);
    }
    if (!sending) return;
    for (;;) {
      const n = c.ep.write(this.block.subarray(d.offset), KEEP);
      // A full send buffer may answer 0 rather than WouldBlock; either way, wait for EventOut.
      if (n === Err.WouldBlock || n === 0) return;
      if (n instanceof NetError) return c.close();
      d.result.bytes += n;
      this.stats.bytesOut += n;
      d.offset = (d.offset + n) % this.block.length;
      if (d.offset === 0 && this.phase !== 'running') return c.close();
    }
  }

  streamOf(conn: Conn): DataStream | undefined {
    return this.streams.find((d) => d.conn === conn);
  }

  /** Closes everything of the test. */
  end(): void {
    if (this.phase === 'over') return;
    this.phase = 'over';
    this.tellRemotes('close');
    this.stopPacer();
    this.control.flush();
    this.control.close();
    for (const d of this.streams) d.conn?.close();
    this.onOver(this);
  }
}

/** A TCP data stream this shard serves for a test whose control connection another shard has. */
interface ServedStream {
  conn: Conn;
  /** The key the test's shard knows the stream by (this shard's, from its question). */
  key: number;
  cookie: string;
  /** The test's shard. */
  owner: number;
  sender: boolean;
  block: Uint8Array;
  offset: number;
  /** Started: the test's streams are all in. Ended: the client sent TEST_END. */
  running: boolean;
  ended: boolean;
  bytes: number;
}

/** A UDP data stream this shard serves for a test whose control connection another shard has. */
interface ServedUdp {
  key: number;
  cookie: string;
  owner: number;
  ended: boolean;
  udpIn?: UdpReceiver;
  udpOut?: UdpSender;
  pacingMs: number;
  pacer: ReturnType<typeof setInterval> | null;
}

/** How long a shard waits for the others to say whose a cookie is before taking it for a new test's. */
const ASK_MS = 2000;

/** iperf3's i_errno for "not implemented yet", sent with SERVER_ERROR for tests this server does not run. */
export const IE_UNIMP = 13;

/** SERVER_ERROR followed by the two 4-byte big-endian ints the client reads after it: i_errno and errno. */
export function serverError(iErrno: number, errno = 0): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = State.SERVER_ERROR & 0xff;
  const v = new DataView(out.buffer);
  v.setInt32(1, iErrno);
  v.setInt32(5, errno);
  return out;
}

function stateByte(s: number): Uint8Array {
  return Uint8Array.of(s & 0xff);
}

/** Takes one length-prefixed JSON message from `c`, or null when it has not fully arrived. */
function takeJson(c: Conn): string | null {
  if (c.buffered < 4) return null;
  const head = c.take(4)!;
  const len = new DataView(head.buffer, head.byteOffset).getUint32(0);
  if (c.buffered < len) {
    c.pushFront(head);
    return null;
  }
  return new TextDecoder().decode(c.take(len)!);
}

/** The iperf3 server on `port` (default 5201), one test at a time as iperf3's own server. */
export function iperf3Service(
  sockets: SocketFactory,
  port = 5201,
  opts: Iperf3Options = {},
): (Service & { stats: Iperf3Stats }) | NetError {
  const now = opts.now ?? (() => performance.now());
  const wallNow = opts.wallNow ?? (() => performance.timeOrigin + performance.now());
  const listener = sockets(6, 'stream');
  if (listener instanceof NetError) return listener;
  listener.setOption('SO_REUSEADDR', 1);
  const err = listener.bind({ address: IPV6_ANY, port }) ?? listener.listen(BACKLOG);
  if (err) {
    listener.close();
    return err;
  }
  // UDP streams arrive on the same port number, on one socket per family.
  const udp = bindDatagram(sockets, port);
  if (udp instanceof NetError) {
    listener.close();
    return udp;
  }
  const stats: Iperf3Stats = {
    tests: 0,
    completed: 0,
    refused: 0,
    bytesIn: 0,
    bytesOut: 0,
    datagramsIn: 0,
    datagramsOut: 0,
    datagramsIgnored: 0,
  };
  const conns = new Set<Conn>();
  let test: Test | null = null;
  const owner = new Map<Conn, Test>();
  const peers = opts.peers && opts.peers.count > 1 ? opts.peers : undefined;
  // Connections whose cookie the other shards are being asked about, by key (see PeerMessage).
  const asking = new Map<number, {
    conn?: Conn;
    udp?: { ep: Endpoint; from: SocketAddress; peerKey: string };
    cookie: string;
    noes: number;
    timer: ReturnType<typeof setTimeout>;
  }>();
  // UDP streams this shard serves for another shard's test, by the peer's address key; and those being asked about.
  const servedUdp = new Map<string, ServedUdp>();
  const askingUdp = new Set<string>();
  const askingKey = new Map<Conn, number>();
  // Streams this shard serves for another shard's test.
  const served = new Map<Conn, ServedStream>();
  let nextKey = 1;

  const refuse = (c: Conn) => {
    stats.refused++;
    c.send(stateByte(State.ACCESS_DENIED));
    c.close();
  };

  const step = (c: Conn) => {
    const t = owner.get(c);
    if (t) {
      if (c === t.control) t.stepControl();
      else {
        const d = t.streamOf(c);
        if (d) t.stepStream(d);
      }
      return;
    }
    const rs = served.get(c);
    if (rs) return stepServed(rs);
    if (askingKey.has(c)) return; // the answer steps it
    // A new connection: its first 37 bytes are the cookie.
    c.fill();
    const cookieBytes = c.take(COOKIE_SIZE);
    if (!cookieBytes) {
      if (c.eof || c.failed) c.close();
      return;
    }
    const cookie = new TextDecoder().decode(cookieBytes);
    if (test && test.cookie === cookie) {
      if (!test.addStream(c)) return refuse(c);
      owner.set(c, test);
      const d = test.streamOf(c)!;
      if (c.eof || c.failed) return c.close();
      return test.stepStream(d);
    }
    if (peers) return ask(c, cookie);
    startTest(c, cookie);
  };

  /** A connection whose cookie is no stream's: a new test's control connection, unless one runs. */
  const startTest = (c: Conn, cookie: string) => {
    if (test) return refuse(c); // busy, as iperf3's server is with a second client
    const fresh = new Test(cookie, c, stats, now, wallNow, (over) => {
      if (test === over) test = null;
      for (const [k, v] of owner) if (v === over) owner.delete(k);
    }, peers);
    test = fresh;
    owner.set(c, fresh);
    fresh.stepControl();
  };

  /** Asks the other shards whether `cookie` is their test's; nobody answering yes within ASK_MS means no. */
  const ask = (c: Conn, cookie: string) => {
    const key = nextKey++;
    const timer = setTimeout(() => answered(key, { t: 'notMine', key }, -1, true), ASK_MS);
    asking.set(key, { conn: c, cookie, noes: 0, timer });
    askingKey.set(c, key);
    peers!.send('others', { t: 'who', cookie, key } satisfies PeerMessage);
  };

  /** An answer to `ask`; `final` when no other answer will count. */
  const answered = (key: number, m: PeerMessage & { t: 'mine' | 'refuse' | 'notMine' }, from: number, final = false) => {
    const a = asking.get(key);
    if (!a) return;
    if (m.t === 'notMine' && !final && ++a.noes < peers!.count - 1) return;
    asking.delete(key);
    clearTimeout(a.timer);
    if (a.udp) return answeredUdp(key, a.udp, m, from);
    if (!a.conn) return;
    askingKey.delete(a.conn);
    if (a.conn.closed) return;
    if (m.t === 'refuse') return refuse(a.conn);
    if (m.t === 'notMine') return startTest(a.conn, a.cookie);
    const rs: ServedStream = {
      conn: a.conn, key, cookie: a.cookie, owner: from, sender: m.sender, block: new Uint8Array(m.len), offset: 0, running: false, ended: false, bytes: 0,
    };
    return rs;
  };

  /** An answer about a UDP connect datagram: serve the stream for the test that took it, or ignore the datagram. */
  const answeredUdp = (key: number, u: { ep: Endpoint; from: SocketAddress; peerKey: string }, m: PeerMessage, owner: number) => {
    askingUdp.delete(u.peerKey);
    if (m.t !== 'mine' || !m.udp) {
      stats.datagramsIgnored++;
      return;
    }
    if (typeof u.ep.write(UDP_CONNECT_REPLY, { to: u.from }) !== 'number') return;
    servedUdp.set(u.peerKey, {
      key, cookie: m.cookie, owner, ended: false,
      udpIn: m.sender ? undefined : new UdpReceiver(m.udp.counters64),
      udpOut: m.sender ? new UdpSender(u.ep, u.from, m.len, m.udp.counters64, m.udp.bandwidth) : undefined,
      pacingMs: Math.max(1, m.udp.pacingTimer / 1000),
      pacer: null,
    });
  };

  /** Asks the other shards whether their test waits for the UDP stream whose connect datagram came from `from`. */
  const askUdp = (ep: Endpoint, from: SocketAddress, peerKey: string) => {
    const key = nextKey++;
    const timer = setTimeout(() => answered(key, { t: 'notMine', key }, -1, true), ASK_MS);
    asking.set(key, { udp: { ep, from, peerKey }, cookie: '', noes: 0, timer });
    askingUdp.add(peerKey);
    peers!.send('others', { t: 'udpWho', key } satisfies PeerMessage);
  };

  /** One pacing tick of a UDP stream this shard sends for another shard's test. */
  const pumpServedUdp = (u: ServedUdp) => {
    const out = u.udpOut;
    if (!out || u.ended) return;
    const before = out.bytes;
    const r = out.pump(now(), wallNow(), UDP_BURST);
    if (r instanceof NetError) return;
    stats.datagramsOut += r;
    stats.bytesOut += out.bytes - before;
  };

  /** Moves data on a stream served for another shard's test, as Test.stepStream does for its own. */
  const stepServed = (rs: ServedStream) => {
    const c = rs.conn;
    if (c.closed) return;
    for (;;) {
      const r = c.ep.read(SINK_READ);
      if (r === Err.WouldBlock) break;
      if (r instanceof NetError || r.data.length === 0) return c.close();
      if (!rs.sender && !rs.ended) {
        rs.bytes += r.data.length;
        stats.bytesIn += r.data.length;
      }
    }
    if (!rs.sender || !rs.running || (rs.ended && rs.offset === 0)) return;
    for (;;) {
      const n = c.ep.write(rs.block.subarray(rs.offset), KEEP);
      if (n === Err.WouldBlock || n === 0) return;
      if (n instanceof NetError) return c.close();
      rs.bytes += n;
      stats.bytesOut += n;
      rs.offset = (rs.offset + n) % rs.block.length;
      if (rs.offset === 0 && rs.ended) return c.close();
    }
  };

  peers?.listen((from, raw) => {
    const m = raw as PeerMessage;
    switch (m.t) {
      case 'who':
      case 'udpWho': {
        const reply = (r: PeerMessage) => peers.send(from, r);
        const t = test;
        if (!t || (m.t === 'who' ? t.cookie !== m.cookie : !t.wantsUdpStream)) return reply({ t: 'notMine', key: m.key });
        const p = t.params!;
        const udp = m.t === 'udpWho' ? { counters64: p.counters64, bandwidth: p.bandwidth, pacingTimer: p.pacingTimer } : undefined;
        const ok = t.addRemoteStream(from, m.key, (d) => reply({ t: 'mine', key: m.key, cookie: t.cookie, id: d.result.id, sender: d.sender, len: p.len, udp }), Boolean(udp));
        if (!ok) reply({ t: 'refuse', key: m.key });
        return;
      }
      case 'mine':
      case 'refuse':
      case 'notMine': {
        const rs = answered(m.key, m, from);
        if (!rs) return;
        served.set(rs.conn, rs);
        if (!rs.sender) {
          for (const chunk of rs.conn.takeAll()) { // came with the cookie
            rs.bytes += chunk.length;
            stats.bytesIn += chunk.length;
          }
        }
        return stepServed(rs);
      }
      case 'start':
      case 'end':
      case 'report':
      case 'close':
        for (const [peerKey, u] of [...servedUdp]) {
          if (u.cookie !== m.cookie || u.owner !== from) continue;
          if (m.t === 'start' && u.udpOut && !u.pacer) {
            u.pacer = setInterval(() => pumpServedUdp(u), u.pacingMs);
            pumpServedUdp(u);
          }
          if (m.t === 'start') continue;
          if (m.t === 'report') {
            const r = u.udpIn
              ? { bytes: u.udpIn.bytes, jitter: u.udpIn.jitter, errors: u.udpIn.lost, packets: u.udpIn.packets }
              : { bytes: u.udpOut!.bytes, packets: u.udpOut!.packets };
            peers.send(from, { t: 'result', cookie: u.cookie, key: u.key, ...r } satisfies PeerMessage);
            continue;
          }
          u.ended = true;
          if (u.pacer) clearInterval(u.pacer);
          u.pacer = null;
          if (m.t === 'close') servedUdp.delete(peerKey);
        }
        for (const rs of [...served.values()]) {
          if (rs.cookie !== m.cookie || rs.owner !== from) continue;
          if (m.t === 'report') {
            peers.send(from, { t: 'result', cookie: rs.cookie, key: rs.key, bytes: rs.bytes } satisfies PeerMessage);
            continue;
          }
          if (m.t === 'start') rs.running = true;
          if (m.t === 'end') rs.ended = true;
          if (m.t === 'close' || (m.t === 'end' && rs.offset === 0)) rs.conn.close();
          else stepServed(rs);
          if (m.t === 'close') served.delete(rs.conn); // kept until then for its figures ('report')
        }
        return;
      case 'result':
        if (test && test.cookie === m.cookie) test.remoteResult(from, m.key, m);
        return;
    }
  });

  const accept = coalesced(() => {
    for (;;) {
      const r = listener.accept();
      if (r instanceof NetError) return;
      r.endpoint.setOption('TCP_NODELAY', 1);
      const c: Conn = new Conn(r.endpoint, step, (gone) => {
        conns.delete(gone);
        // A served stream stays until its test's shard has had its figures ('report') and is over ('close').
        const k = askingKey.get(gone);
        if (k !== undefined) {
          clearTimeout(asking.get(k)!.timer);
          asking.delete(k);
          askingKey.delete(gone);
        }
        const t = owner.get(gone);
        if (t && gone === t.control) t.end();
        // A data stream that goes away leaves its figures in the test's results.
      });
      conns.add(c);
    }
  });
  const stopAccepting = listener.waiter.subscribe(EventIn, accept);
  accept();

  /** A datagram on the UDP port: a stream's data, or the 4-byte connect datagram that opens a stream. */
  const datagram = (ep: Endpoint, data: Uint8Array, from: SocketAddress) => {
    const key = `${formatAddress(from.address)} ${from.port}`;
    const d = test?.udpStream(key);
    if (d) return test!.udpData(d, data);
    const u = servedUdp.get(key);
    if (u) {
      if (u.udpIn && !u.ended) {
        u.udpIn.receive(data, now());
        stats.bytesIn += data.length;
        stats.datagramsIn++;
      }
      return;
    }
    if (test?.wantsUdpStream && data.length === UDP_CONNECT_REPLY.length) {
      if (typeof ep.write(UDP_CONNECT_REPLY, { to: from }) === 'number') return test.addUdpStream(ep, from, key);
    }
    if (peers && data.length === UDP_CONNECT_REPLY.length) {
      if (!askingUdp.has(key)) askUdp(ep, from, key);
      return;
    }
    stats.datagramsIgnored++;
  };
  const stopUdp = udp.map((ep) => serveDatagrams(ep, (data, from) => datagram(ep, data, from)));
  return {
    name: 'iperf3',
    port,
    stats,
    close() {
      stopAccepting();
      listener.close();
      for (const stop of stopUdp) stop();
      for (const ep of udp) ep.close();
      test?.end();
      for (const a of asking.values()) clearTimeout(a.timer);
      for (const u of servedUdp.values()) if (u.pacer) clearInterval(u.pacer);
      for (const c of [...conns]) c.close();
    },
  };
}
