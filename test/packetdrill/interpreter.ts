/**
 * Runs a parsed packetdrill script against one DUT, playing the remote host as packetdrill does: script
 * sequence numbers are relative to the two ISNs (the DUT's learnt from its SYN or SYN-ACK, the remote's
 * being the script's own numbers), outbound TS val mapped to script space, inbound TS ecr mapped back,
 * addresses and ports filled in, checksums computed. The first mismatch ends the script as a failure.
 */
import { addressEqual } from '../../netstack/addr.ts';
import { Calls } from './calls.ts';
import type { Dut } from './dut.ts';
import { fragmentFrame } from './fragments.ts';
import {
  type Decoded,
  buildIcmpErrorFrame,
  buildTcpFrame,
  buildTcpSegment,
  buildUdpFrame,
  decodeFrame,
  flagLetters,
  flagsOf,
  formatDecoded,
  formatTcpOptions,
  icmpNumbers,
} from './packets.ts';
import type { PacketAction, Script, ScriptEvent, SyscallAction, TcpOptionSpec, TcpPacketSpec } from './script.ts';
import { Mismatch, ScriptError } from './verdict.ts';

/**
 * A named set of tolerances for scripts written against another harness or stack: `strict` is packetdrill's own
 * comparison; `gvisor` is strict with gVisor's harness default of --tolerance_usecs=100000 when a script sets
 * none; `freebsd` also compares SYN options as a set, accepts the DUT's own window and buffer sizes.
 */
export type Profile = 'strict' | 'gvisor' | 'freebsd';

/** The outcome of one script on one DUT. */
export interface RunResult {
  verdict: 'pass' | 'fail' | 'error' | 'skipped';
  /** Line of the first mismatch or error. */
  line?: number;
  detail: string;
  /** Lines not executed (shell lines the DUT does not know, python blocks, #ifdef'd out), with why. */
  skipped: { line: number; text: string; why: string }[];
  /** Differences the profile forgave, so that no leniency is hidden. */
  leniency: string[];
  profile: Profile;
}

/** Interpreter options. */
export interface RunOptions {
  /** Overrides the script's tolerance (ms). */
  toleranceMs?: number;
  profile?: Profile;
}

/** Script settings from its option lines. */
export function scriptConfig(script: Script): { ipVersion: 4 | 6; mtu: number; toleranceMs: number; unknown: string[] } {
  const o = script.options;
  const ipv = o.ip_version ?? 'ipv4';
  const ipVersion = ipv === 'ipv6' ? 6 : 4;
  const known = new Set(['ip_version', 'tolerance_usecs', 'mtu', 'bind_port', 'connect_port']);
  return {
    ipVersion,
    mtu: o.mtu ? Number(o.mtu) : 1500,
    toleranceMs: o.tolerance_usecs ? Number(o.tolerance_usecs) / 1000 : 4,
    unknown: Object.keys(o).filter((k) => !known.has(k)),
  };
}


const REMOTE_PORT_BASE = 40000;

/** Runs `script` on `dut`; never throws for what the script or the DUT does. */
export async function runScript(script: Script, dut: Dut, opts: RunOptions = {}): Promise<RunResult> {
  const it = new Interpreter(script, dut, opts);
  return it.run();
}

interface Pending {
  ev: ScriptEvent;
  call: SyscallAction;
  promise: Promise<number>;
  done?: { value: number; time: number };
  expectEnd: number;
  finish: (r: number) => void;
}

class Interpreter {
  private readonly cfg: ReturnType<typeof scriptConfig>;
  private readonly tol: number;
  private readonly profile: Profile;
  private readonly result: RunResult;
  private readonly calls: Calls;
  private lastTime = 0;
  private relBase = 0;
  private line = 0;
  private mode: 'none' | 'listen' | 'passive' | 'active' = 'none';
  private connections = 0;
  private remotePort = REMOTE_PORT_BASE;
  private dutPort = 8080;
  private readonly bindPort: number;
  private readonly connectPort: number;
  private localIsn: { live: number; script: number } | undefined;
  private tsMap = new Map<number, number>();
  private firstTs: { script: number; live: number } | undefined;
  private pending: Pending | undefined;
  /** Fragments of the frame being compared, for messages. */
  private fragments = 1;

  constructor(
    private readonly script: Script,
    private readonly dut: Dut,
    opts: RunOptions,
  ) {
    this.cfg = scriptConfig(script);
    this.profile = opts.profile ?? 'strict';
    const harnessTol = this.profile === 'gvisor' && script.options.tolerance_usecs === undefined ? 100 : undefined;
    this.tol = opts.toleranceMs ?? harnessTol ?? this.cfg.toleranceMs;
    this.bindPort = Number(script.options.bind_port ?? 8080);
    this.connectPort = Number(script.options.connect_port ?? 8080);
    this.dutPort = this.bindPort;
    this.calls = new Calls({
      dut,
      profile: this.profile,
      ipVersion: this.cfg.ipVersion,
      bindPort: this.bindPort,
      connectPort: this.connectPort,
      lenient: (w: string) => this.lenient(w),
      onListen: () => {
        this.mode = 'listen';
      },
      onConnect: () => {
        this.mode = 'active';
        this.remotePort = this.connectPort;
        this.localIsn = undefined;
      },
    });
    this.result = { verdict: 'pass', detail: '', skipped: [], leniency: [], profile: this.profile };
    for (const s of script.ifdefSkipped) this.result.skipped.push({ line: s.line, text: '', why: `#ifdef ${s.symbol} not defined` });
    for (const k of this.cfg.unknown) this.result.skipped.push({ line: 0, text: `--${k}`, why: 'option not supported by the runner' });
  }

  async run(): Promise<RunResult> {
    this.dut.start();
    try {
      for (const ev of this.script.events) {
        this.line = ev.line;
        await this.event(ev);
      }
      if (this.pending) await this.settlePending();
      const sk = this.result.skipped.filter((s) => s.line > 0).length;
      this.result.detail = sk ? `${sk} line(s) skipped` : '';
    } catch (e) {
      this.result.line = this.line;
      if (e instanceof Mismatch) {
        this.result.verdict = 'fail';
        this.result.detail = e.message;
      } else if (e instanceof ScriptError) {
        this.result.verdict = 'error';
        this.result.detail = e.message;
      } else {
        this.result.verdict = 'error';
        this.result.detail = `runner error: ${(e as Error).stack ?? e}`;
      }
    }
    return this.result;
  }

  private lenient(what: string): void {
    if (this.result.leniency.length < 20) this.result.leniency.push(`line ${this.line}: ${what}`);
  }

  /** The event's window [start, end] in script ms, and whether times are exact (for the next relative base). */
  private window(ev: ScriptEvent): { start: number; end: number; exact: boolean; any: boolean } {
    const t = ev.time;
    if (t.kind === 'any') return { start: this.dut.now(), end: Infinity, exact: false, any: true };
    const start = t.kind === 'abs' ? t.ms : this.lastTime + t.ms;
    if (!t.end || t.end.blocking) return { start, end: start, exact: true, any: false };
    const end = t.end.kind === 'abs' ? t.end.ms : this.lastTime + t.end.ms;
    return { start, end, exact: false, any: false };
  }

  private async event(ev: ScriptEvent): Promise<void> {
    const a = ev.action;
    this.relBase = this.lastTime;
    const w = this.window(ev);
    if (a.type === 'packet' && a.direction === 'out') {
      const actual = await this.expectPacket(a, w);
      this.lastTime = w.exact ? w.start : actual;
      return;
    }
    if (a.type === 'syscall' && this.pending) await this.settlePending();
    await this.dut.waitUntil(w.start);
    this.lastTime = w.exact ? w.start : this.dut.now();
    if (a.type === 'packet') this.inject(a);
    else if (a.type === 'syscall') await this.syscall(ev, a);
    else if (a.type === 'shell') {
      const o = this.dut.shell(a.command);
      if (o.status === 'skipped') this.result.skipped.push({ line: ev.line, text: `\`${a.command}\``, why: o.note });
      else if (o.failed) throw new Mismatch(`shell command \`${a.command}\` failed: ${o.note}`);
    } else {
      const why = this.calls.code(a.code);
      if (why) this.result.skipped.push({ line: ev.line, text: `%{ ${a.code} }%`, why });
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Packets

  private localOffset(): number {
    return this.localIsn ? (this.localIsn.live - this.localIsn.script) >>> 0 : 0;
  }

  /** Sends a frame as the script line asks: whole, or as `[frag N]` fragments. */
  private send(frame: Uint8Array, frag: number | undefined): void {
    for (const f of frag ? fragmentFrame(frame, frag) : [frame]) this.dut.inject(f);
  }

  private inject(a: PacketAction): void {
    const ep = this.dut.endpoints;
    const p = a.packet;
    const ip = { ecn: typeof a.ip.ecn === 'number' ? a.ip.ecn : a.ip.ecn === 'ect01' ? 2 : undefined, tos: a.ip.tos, ttl: a.ip.ttl };
    if (p.proto === 'tcp') {
      const flags = flagsOf(p.flags);
      if (flags & 0x02 && !(flags & 0x10) && this.mode === 'listen') {
        // A new connection to the listener: packetdrill gives each its own remote port and fresh state.
        this.remotePort = REMOTE_PORT_BASE + ++this.connections;
        this.mode = 'passive';
        this.localIsn = undefined;
        this.tsMap.clear();
        this.firstTs = undefined;
      }
      if (p.seq === null) throw new ScriptError('an inbound packet needs a sequence number, not "..."');
      if (p.options === 'any') throw new ScriptError('an inbound packet cannot have <...> options');
      const off = this.localOffset();
      const options = (p.options ?? []).map((o): TcpOptionSpec => {
        if (o.kind === 'TS' && flags & 0x10) return { kind: 'TS', val: o.val, ecr: this.liveEcr(o.ecr) };
        if (o.kind === 'sack') return { kind: 'sack', blocks: o.blocks.map(([l, r]) => [(l + off) >>> 0, (r + off) >>> 0] as [number, number]) };
        return o;
      });
      const frame = buildTcpFrame(
        ep,
        {
          srcPort: this.remotePort,
          dstPort: this.dutPort,
          seq: p.seq,
          ack: flags & 0x10 ? ((p.ack ?? 0) + off) >>> 0 : (p.ack ?? 0),
          flags,
          win: p.win ?? 65535,
          urg: p.urg,
          options,
          payload: new Uint8Array(p.len),
        },
        ip,
      );
      this.send(frame, a.ip.frag);
    } else if (p.proto === 'udp') {
      this.send(buildUdpFrame(ep, this.remotePort, this.dutPort, new Uint8Array(p.len), ip), a.ip.frag);
    } else {
      const v4 = ep.dutIp.length === 4;
      const n = icmpNumbers(v4, p.type, p.code);
      if (typeof n === 'string') throw new ScriptError(n);
      let proto = 6;
      let quoted: Uint8Array;
      const e = p.echoed;
      if (!e || e.proto === 'tcp') {
        proto = 6;
        const seq = ((e?.seq ?? 0) + this.localOffset()) >>> 0;
        quoted = buildTcpSegment({ srcPort: this.dutPort, dstPort: this.remotePort, seq, ack: 0, flags: 0x02, win: 0, options: [], payload: new Uint8Array(0) }, ep.dutIp, ep.remoteIp);
      } else {
        proto = 17;
        quoted = new Uint8Array(8);
        const v = new DataView(quoted.buffer);
        v.setUint16(0, this.dutPort);
        v.setUint16(2, this.remotePort);
        v.setUint16(4, 8 + e.len);
      }
      this.send(buildIcmpErrorFrame(ep, n.type, n.code, proto, quoted, p.mtu ?? 0), a.ip.frag);
    }
  }

  private liveEcr(scriptEcr: number): number {
    const exact = this.tsMap.get(scriptEcr);
    if (exact !== undefined) return exact;
    if (this.firstTs) return (scriptEcr - this.firstTs.script + this.firstTs.live) >>> 0;
    return scriptEcr;
  }

  private async expectPacket(a: PacketAction, w: { start: number; end: number; any: boolean }): Promise<number> {
    const deadline = w.any ? this.dut.now() + 120_000 : w.end + this.tol;
    for (;;) {
      const got = await this.dut.nextFrame(deadline);
      if (!got) throw new Mismatch(`expected packet not sent by ${this.fmtTime(deadline)}: ${this.fmtSpec(a)}`);
      const d = decodeFrame(got.frame);
      if (!d) continue;
      if (!addressEqual(d.dst, this.dut.endpoints.remoteIp)) continue;
      this.fragments = got.fragments ?? 1;
      this.comparePacket(a, d);
      if (!w.any && got.time < w.start - this.tol) {
        throw new Mismatch(`packet sent too early at ${this.fmtTime(got.time)} (expected ${this.fmtTime(w.start)}±${this.tol}ms): ${this.fmtActual(d)}`);
      }
      return got.time;
    }
  }

  private fmtTime(ms: number): string {
    return `${(ms / 1000).toFixed(3)}s`;
  }

  private fmtSpec(a: PacketAction): string {
    const p = a.packet;
    if (p.proto === 'tcp') {
      const seq = p.seq === null ? `...(${p.len})` : `${p.seq}:${p.end}(${p.len})`;
      let s = `${p.flags} ${seq}`;
      if (p.ack !== undefined) s += ` ack ${p.ack}`;
      if (p.win !== undefined) s += ` win ${p.win}`;
      if (p.options === 'any') s += ' <...>';
      else if (p.options) s += ' ' + formatTcpOptions(p.options);
      return s;
    }
    if (p.proto === 'udp') return `udp (${p.len})`;
    return `icmp ${p.type} ${p.code ?? ''}`;
  }

  private fmtActual(d: Decoded): string {
    const withAck = !!(d.tcp && d.tcp.flags & 0x10);
    const frags = this.fragments > 1 ? ` (reassembled from ${this.fragments} fragments)` : '';
    return formatDecoded(this.toScriptTs(d), this.localOffset(), 0, withAck) + frags;
  }

  /** A copy of d with its TS val in script space, for printing. */
  private toScriptTs(d: Decoded): Decoded {
    if (!d.tcp || !this.firstTs) return d;
    const f = this.firstTs;
    const options = d.tcp.options.map((o) => (o.kind === 'TS' ? { ...o, val: (f.script + (o.val - f.live)) >>> 0 } : o));
    return { ...d, tcp: { ...d.tcp, options } };
  }

  private comparePacket(a: PacketAction, d: Decoded): void {
    const p = a.packet;
    const fail = (what: string): never => {
      throw new Mismatch(`${what}\n  expected: ${this.fmtSpec(a)}\n  actual:   ${this.fmtActual(d)}`);
    };
    if (a.ip.ecn !== undefined) {
      const ecn = d.tos & 3;
      const ok = a.ip.ecn === 'ect01' ? ecn === 1 || ecn === 2 : ecn === a.ip.ecn;
      if (!ok) fail(`ip ecn: expected ${a.ip.ecn}, actual ${ecn}`);
    }
    if (a.ip.tos !== undefined && d.tos !== a.ip.tos) fail(`ip tos: expected ${a.ip.tos}, actual ${d.tos}`);
    if (a.ip.ttl !== undefined && d.ttl !== a.ip.ttl) fail(`ip ttl: expected ${a.ip.ttl}, actual ${d.ttl}`);
    if (!d.ipChecksumOk) fail('bad IPv4 header checksum');
    if (p.proto === 'udp') {
      if (!d.udp) fail('expected a UDP datagram');
      if (d.udp!.payload.length !== p.len) fail(`udp length: expected ${p.len}, actual ${d.udp!.payload.length}`);
      this.dutPort = d.udp!.srcPort;
      return;
    }
    if (p.proto === 'icmp') {
      if (!d.icmp) fail('expected an ICMP message');
      const n = icmpNumbers(d.v === 4, p.type, p.code);
      if (typeof n === 'string') throw new ScriptError(n);
      if (d.icmp!.type !== n.type || d.icmp!.code !== n.code) fail(`icmp type/code: expected ${n.type}/${n.code}, actual ${d.icmp!.type}/${d.icmp!.code}`);
      return;
    }
    const t = d.tcp ?? fail('expected a TCP segment');
    const flags = flagsOf(p.flags);
    // Learn the DUT's ISN from its SYN (active open) or SYN-ACK (passive open), as packetdrill does.
    if (t.flags & 0x02) {
      if (!(t.flags & 0x10) && this.mode === 'active') this.dutPort = t.srcPort;
      this.localIsn = { live: t.seq, script: p.seq ?? 0 };
    }
    if (t.flags !== flags) fail(`tcp flags: expected ${p.flags}, actual ${flagLetters(t.flags)}`);
    const seq = (t.seq - this.localOffset()) >>> 0;
    if (p.seq !== null && seq !== p.seq) fail(`tcp seq: expected ${p.seq}, actual ${seq}`);
    if (t.payload.length !== p.len) fail(`tcp payload length: expected ${p.len}, actual ${t.payload.length}`);
    const ack = t.ack; // the remote's ISN is the script's own numbering
    if (ack !== (p.ack ?? 0)) fail(`tcp ack: expected ${p.ack ?? 0}, actual ${ack}`);
    if (p.win !== undefined && t.win !== p.win) {
      if (this.profile === 'freebsd') this.lenient(`window ${t.win} accepted for ${p.win}`);
      else fail(`tcp window: expected ${p.win}, actual ${t.win}`);
    }
    if (t.urg !== (p.urg ?? 0)) fail(`tcp urgent pointer: expected ${p.urg ?? 0}, actual ${t.urg}`);
    if (t.payload.some((b) => b !== 0)) fail('tcp payload differs from the zeros the script wrote');
    this.compareOptions(p, t.options, fail);
    this.dutPort = t.srcPort;
  }

  private compareOptions(p: TcpPacketSpec, actual: TcpOptionSpec[], fail: (w: string) => never): void {
    const expected = p.options;
    const ts = actual.find((o) => o.kind === 'TS') as { val: number } | undefined;
    const ets = Array.isArray(expected) ? (expected.find((o) => o.kind === 'TS') as { val: number } | undefined) : undefined;
    if (ts && ets) {
      this.tsMap.set(ets.val, ts.val);
      this.firstTs ??= { script: ets.val, live: ts.val };
    }
    if (expected === 'any') return;
    const exp = expected ?? [];
    const key = (o: TcpOptionSpec): string => {
      switch (o.kind) {
        case 'mss':
        case 'wscale':
          return `${o.kind} ${o.value}`;
        case 'sack':
          // The DUT's SACK blocks name the remote's bytes, whose numbering is the script's own.
          return `sack ${o.blocks.map(([l, r]) => `${l}:${r}`).join(' ')}`;
        case 'TS':
          return 'TS'; // TS val follows the DUT's clock; packetdrill checks it only with a tick rate
        case 'raw':
          return `opt${o.code}:${[...o.data].join('.')}`;
        default:
          return o.kind;
      }
    };
    const a = actual.map(key);
    const e = exp.map(key);
    if (a.join(',') === e.join(',')) return;
    if (this.profile === 'freebsd') {
      // The window scale follows the receive buffer, which the profile lets differ: compare its presence only.
      const strip = (xs: string[]) => xs.filter((x) => x !== 'nop' && x !== 'eol').map((x) => (x.startsWith('wscale') ? 'wscale' : x)).sort().join(',');
      if (strip(a) === strip(e)) {
        this.lenient(`options compared as a set, wscale by presence: ${formatTcpOptions(actual)} for ${formatTcpOptions(exp)}`);
        return;
      }
    }
    const f = this.firstTs;
    const shown = f ? actual.map((o) => (o.kind === 'TS' ? { ...o, val: (f.script + (o.val - f.live)) >>> 0 } : o)) : actual;
    fail(`tcp options: expected ${formatTcpOptions(exp)}, actual ${formatTcpOptions(shown)}`);
  }

  // ------------------------------------------------------------------------------------------------
  // System calls (argument evaluation lives in calls.ts; blocking and timing here)

  private async syscall(ev: ScriptEvent, c: SyscallAction): Promise<void> {
    // "a...b": the call starts at a and returns at b (b relative to the same base as a).
    const blockingEnd = ev.time.end?.blocking ? (ev.time.end.kind === 'abs' ? ev.time.end.ms : this.relBase + ev.time.end.ms) : undefined;
    const start = this.dut.now();
    const { value, check } = this.calls.invoke(c);
    if (typeof value === 'number') {
      if (blockingEnd !== undefined && Math.abs(start - blockingEnd) > this.tol) {
        throw new Mismatch(`${c.name}() returned at once, expected it to block until ${this.fmtTime(blockingEnd)}`);
      }
      this.calls.verifyResult(c, value, check);
      return;
    }
    const p: Pending = {
      ev,
      call: c,
      promise: value,
      expectEnd: blockingEnd ?? start,
      finish: (r) => this.calls.verifyResult(c, r, check),
    };
    value.then((v) => (p.done = { value: v, time: this.dut.now() }));
    if (blockingEnd !== undefined) {
      this.pending = p;
      return;
    }
    const settled = await this.dut.waitFor(value, start + this.tol);
    if (!settled) throw new Mismatch(`${c.name}() blocked; the script expects it to return at once (write a blocking range "a...b" if it should block)`);
    await Promise.resolve();
    this.calls.verifyResult(c, await value, check);
  }

  private async settlePending(): Promise<void> {
    const p = this.pending!;
    this.pending = undefined;
    const savedLine = this.line;
    this.line = p.ev.line;
    const settled = await this.dut.waitFor(p.promise, p.expectEnd + this.tol);
    if (!settled) throw new Mismatch(`${p.call.name}() still blocked at ${this.fmtTime(this.dut.now())}, expected it to return at ${this.fmtTime(p.expectEnd)}`);
    const v = await p.promise;
    const t = p.done?.time ?? this.dut.now();
    if (t < p.expectEnd - this.tol) throw new Mismatch(`${p.call.name}() returned at ${this.fmtTime(t)}, expected ${this.fmtTime(p.expectEnd)}±${this.tol}ms`);
    p.finish(v);
    this.line = savedLine;
  }

}
