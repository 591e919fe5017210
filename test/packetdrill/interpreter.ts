/**
 * Runs a parsed packetdrill script against one DUT, playing the remote host as packetdrill does: script
 * sequence numbers are relative to the two ISNs (the DUT's learnt from its SYN or SYN-ACK, the remote's
 * being the script's own numbers), outbound TS val mapped to script space, inbound TS ecr mapped back,
 * addresses and ports filled in, checksums computed. The first mismatch ends the script as a failure.
 */
import { dirname } from 'node:path';
import { addressEqual, formatAddress } from '../../netstack/addr.ts';
import { UPSTREAM_ADDRESSES } from './addresses.ts';
import { Calls, cString } from './calls.ts';
import { CodeBlocks } from './code.ts';
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
import { type ScriptConfig, scriptConfig as optionsConfig } from './options.ts';
import { DEFAULT_TFO_KEY, fastOpenCookie } from './upstream.ts';
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

/** Script settings from its option lines (see options.ts). */
export function scriptConfig(script: Script): ScriptConfig {
  return optionsConfig(script.options);
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
  /** Its timing tolerance (ms). */
  tol: number;
  finish: (r: number) => void;
}

class Interpreter {
  private readonly cfg: ScriptConfig;
  private readonly tol: number;
  private readonly profile: Profile;
  private readonly result: RunResult;
  private readonly calls: Calls;
  private readonly code: CodeBlocks;
  /** When the previous event was done (live script ms): relative times count from it. */
  private lastTime = 0;
  /** The previous event's script start time, and whether it was an inbound packet. */
  private lastStart = 0;
  private lastInbound = false;
  /** The base the current event's relative times count from. */
  private relBase = 0;
  private line = 0;
  private mode: 'none' | 'listen' | 'passive' | 'active' = 'none';
  private connections = 0;
  private remotePort = REMOTE_PORT_BASE;
  private dutPort = 8080;
  private readonly bindPort: number;
  private readonly connectPort: number;
  private localIsn: { live: number; script: number } | undefined;
  /** The sequence number of the remote's SYN or SYN-ACK (script and live are the same). */
  private remoteIsn = 0;
  private remoteIsnKnown = false;
  private tsMap = new Map<number, number>();
  private firstTs: { script: number; live: number } | undefined;
  private pending: Pending | undefined;
  /** The timing tolerance of the event being run (ms). */
  private evTol = 0;
  /** The script time of the event being run (ms). */
  private evStart = 0;
  /** Fast Open cookies for the script's addresses → the same keys' cookies for the runner's (see ourCookie). */
  private readonly cookies: Map<string, string>;
  private readonly cookieNoted = new Set<string>();
  /** The ports of the socket under test (the DUT's, the remote's); undefined while an active open awaits its SYN. */
  private tuple: { dut: number; remote: number } | undefined;
  /** Script flow labels and the live ones they stand for. */
  private readonly flowLabels = new Map<number, number>();
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
    this.bindPort = this.cfg.bindPort;
    this.connectPort = this.cfg.connectPort;
    this.dutPort = this.bindPort;
    this.calls = new Calls({
      dut,
      profile: this.profile,
      ipVersion: this.cfg.ipVersion,
      bindPort: this.bindPort,
      connectPort: this.connectPort,
      lenient: (w: string) => this.lenient(w),
      toleranceMs: () => this.evTol,
      onListen: () => {
        this.mode = 'listen';
      },
      onConnect: () => {
        this.tuple = undefined;
        this.mode = 'active';
        this.remotePort = this.connectPort;
        this.localIsn = undefined;
        this.remoteIsn = 0;
        this.remoteIsnKnown = false;
      },
    });
    this.result = { verdict: 'pass', detail: '', skipped: [], leniency: [], profile: this.profile };
    this.code = new CodeBlocks(script.path);
    this.cookies = cookieMap(script, this.cfg.ipVersion, dut.endpoints);
    for (const s of script.ifdefSkipped) this.result.skipped.push({ line: s.line, text: '', why: `#ifdef ${s.symbol} not defined` });
    for (const n of this.cfg.notes) this.result.skipped.push({ line: 0, text: n.text, why: `accepted, no effect here: ${n.why}` });
  }

  async run(): Promise<RunResult> {
    const unsupported = this.unsupported();
    if (unsupported.length) {
      this.result.verdict = 'error';
      this.result.line = unsupported[0]!.line || undefined;
      this.result.detail = `unsupported by the runner: ${unsupported.map((u) => (u.line ? `line ${u.line}: ` : '') + u.what).join('; ')}`;
      return this.result;
    }
    let initRan = false;
    try {
      // packetdrill runs the init command before time 0, and the cleanup command at the end whatever happened.
      if (this.script.init) {
        this.line = this.script.init.line;
        await this.command(this.script.init.line, this.script.init.command);
        initRan = true;
      }
      this.dut.start();
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
    const cleanup = this.script.cleanup;
    if (cleanup && initRan) {
      try {
        await this.command(cleanup.line, cleanup.command);
      } catch (e) {
        if (this.result.verdict === 'pass') {
          this.result.verdict = e instanceof Mismatch ? 'fail' : 'error';
          this.result.line = cleanup.line;
          this.result.detail = (e as Error).message;
        }
      }
    }
    // As packetdrill: the python blocks run once the events are done, each with the snapshot of its own time.
    if (this.result.verdict === 'pass') {
      const failed = this.code.run();
      if (failed) {
        this.result.verdict = 'fail';
        this.result.line = failed.line;
        this.result.detail = failed.message;
      }
    }
    return this.result;
  }

  /** What in the script the runner cannot run: options, encapsulations, option kinds (line 0: an option). */
  private unsupported(): { line: number; what: string }[] {
    const out = this.cfg.unsupported.map((what) => ({ line: 0, what }));
    for (const ev of this.script.events) {
      const a = ev.action;
      if (a.type !== 'packet') continue;
      if (a.packet.proto === 'unsupported') out.push({ line: ev.line, what: a.packet.what });
      else if (a.packet.proto === 'tcp' && Array.isArray(a.packet.options)) {
        for (const o of a.packet.options) if (o.kind === 'unsupported') out.push({ line: ev.line, what: `TCP option "${o.text}" (AccECN)` });
      }
      if (a.ip.flowlabel !== undefined && a.direction === 'in') out.push({ line: ev.line, what: 'an inbound (flowlabel N)' });
    }
    return out;
  }

  /** Runs a shell command on the DUT as packetdrill does: in the script's folder, PACKETDRILL_PID set. */
  private async command(line: number, command: string): Promise<void> {
    const dialect = this.profile === 'freebsd' ? 'freebsd' : 'linux';
    const o = await this.dut.shell(command, { cwd: dirname(this.script.path), env: { PACKETDRILL_PID: String(process.pid) }, dialect });
    const text = `\`${command.length > 200 ? command.slice(0, 200) + '…' : command}\``;
    if (o.status === 'skipped') this.result.skipped.push({ line, text, why: o.note });
    for (const p of o.parts ?? []) this.result.skipped.push({ line, text: p.text, why: p.why });
    if (o.failed) throw new Mismatch(`shell command ${text} failed: ${o.note}`);
  }

  private lenient(what: string): void {
    if (this.result.leniency.length < 20) this.result.leniency.push(`line ${this.line}: ${what}`);
  }

  /**
   * The event's window [start, end] in script ms. As packetdrill's adjust_relative_event_times, a relative time
   * counts from when the previous event was done (live), so the runner's own delays do not pile up; only an
   * inbound packet after an inbound packet counts from that packet's script time, as upstream anchors them.
   */
  private window(ev: ScriptEvent): { start: number; end: number; any: boolean } {
    const t = ev.time;
    if (t.kind === 'any') return { start: this.dut.now(), end: Infinity, any: true };
    const inbound = ev.action.type === 'packet' && ev.action.direction === 'in';
    const base = inbound && this.lastInbound ? this.lastStart : this.lastTime;
    this.relBase = base;
    const start = t.kind === 'abs' ? t.ms : base + t.ms;
    if (!t.end || t.end.blocking) return { start, end: start, any: false };
    const end = t.end.kind === 'abs' ? t.end.ms : base + t.end.ms;
    return { start, end, any: false };
  }

  private async event(ev: ScriptEvent): Promise<void> {
    const a = ev.action;
    const w = this.window(ev);
    // packetdrill's verify_time: the tolerance grows to --tolerance_percent of the time since the last event.
    this.evTol = Math.max(this.tol, w.any ? 0 : (this.cfg.tolerancePercent / 100) * (w.start - this.lastStart));
    this.evStart = w.any ? this.dut.now() : w.start;
    this.lastStart = w.start;
    this.lastInbound = a.type === 'packet' && a.direction === 'in';
    try {
      await this.perform(ev, w);
    } finally {
      this.lastTime = Math.max(this.dut.now(), w.any ? 0 : w.start);
    }
  }

  private async perform(ev: ScriptEvent, w: { start: number; end: number; any: boolean }): Promise<void> {
    const a = ev.action;
    if (a.type === 'packet' && a.direction === 'out') {
      await this.expectPacket(a, w);
      return;
    }
    if (a.type === 'syscall' && this.pending) await this.settlePending();
    await this.dut.waitUntil(w.start);
    if (a.type === 'packet') this.inject(a);
    else if (a.type === 'syscall') await this.syscall(ev, a);
    else if (a.type === 'shell') await this.command(ev.line, a.command);
    else if (!CodeBlocks.available()) this.result.skipped.push({ line: ev.line, text: `%{ ${a.code} }%`, why: 'no python3 to run it with' });
    else {
      const info = this.calls.tcpInfo();
      if (typeof info === 'string') throw new ScriptError(`%{ }%: ${info}`);
      this.code.add(ev.line, a.code, info);
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Packets

  /**
   * Live minus script sequence numbers of the DUT's side, as packetdrill's local_seq_script_to_live_offset: in a
   * SYN the script's ISN maps to the live one; elsewhere script numbers count from the live ISN.
   */
  private localOffset(syn = false): number {
    if (!this.localIsn) return 0;
    return (syn ? this.localIsn.live - this.localIsn.script : this.localIsn.live) >>> 0;
  }

  /** The same for the remote's side: script numbers outside SYNs count from the remote's ISN (the script's own). */
  private remoteOffset(syn = false): number {
    return syn ? 0 : this.remoteIsn;
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
        this.tuple = { dut: this.dutPort, remote: this.remotePort };
        this.mode = 'passive';
        this.localIsn = undefined;
        this.remoteIsn = 0;
        this.remoteIsnKnown = false;
        this.tsMap.clear();
        this.firstTs = undefined;
      }
      if (p.seq === null) throw new ScriptError('an inbound packet needs a sequence number, not "..."');
      if (p.options === 'any') throw new ScriptError('an inbound packet cannot have <...> options');
      const syn = (flags & 0x02) !== 0;
      // As packetdrill: the remote's ISN is that of the SYN opening a passive connection or of the first SYN-ACK
      // answering the DUT's SYN; a later SYN (to a synchronised connection) changes nothing.
      if (syn && !this.remoteIsnKnown) {
        this.remoteIsn = p.seq;
        this.remoteIsnKnown = true;
      }
      const off = this.localOffset(syn);
      const options = (p.options ?? []).map((o): TcpOptionSpec => {
        if (o.kind === 'TS' && flags & 0x10) return { kind: 'TS', val: o.val, ecr: this.liveEcr(o.ecr) };
        if (o.kind === 'sack') return { kind: 'sack', blocks: o.blocks.map(([l, r]) => [(l + off) >>> 0, (r + off) >>> 0] as [number, number]) };
        return this.ourCookie(o);
      });
      const frame = buildTcpFrame(
        ep,
        {
          srcPort: this.remotePort,
          dstPort: this.dutPort,
          seq: (p.seq + this.remoteOffset(syn)) >>> 0,
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
    } else if (p.proto === 'unsupported') {
      throw new ScriptError(`unsupported by the runner: ${p.what}`);
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
    const tol = this.evTol;
    const deadline = w.any ? this.dut.now() + 120_000 : w.end + tol;
    // As packetdrill's sniffer: wait 2 s past the window, so a late packet is reported as late, not as missing.
    const patience = w.any ? deadline : deadline + 2000;
    for (;;) {
      const got = await this.dut.nextFrame(patience);
      if (!got) throw new Mismatch(`expected packet not sent by ${this.fmtTime(deadline)}: ${this.fmtSpec(a)}`);
      let d = decodeFrame(got.frame);
      if (!d) continue;
      if (!addressEqual(d.dst, this.dut.endpoints.remoteIp)) continue;
      if (d.tcp && !this.ofSocketUnderTest(d.tcp)) continue;
      this.fragments = got.fragments ?? 1;
      const p = a.packet;
      if (p.proto === 'tcp' && d.tcp && !this.cfg.strictSegments && d.tcp.payload.length > 0 && d.tcp.payload.length < p.len) {
        d = await this.aggregate(d, p.len, patience);
      }
      this.nonFatal('packet', () => {
        this.comparePacket(a, d!);
        if (!w.any && got.time < w.start - tol) {
          throw new Mismatch(`packet sent too early at ${this.fmtTime(got.time)} (expected ${this.fmtTime(w.start)}±${tol}ms): ${this.fmtActual(d!)}`);
        }
        if (!w.any && got.time > deadline) {
          throw new Mismatch(`packet sent too late at ${this.fmtTime(got.time)} (expected ${this.fmtTime(w.start)}${w.end > w.start ? `~${this.fmtTime(w.end)}` : ''}±${tol}ms): ${this.fmtActual(d!)}`);
        }
      });
      return got.time;
    }
  }

  /**
   * As packetdrill's sniffer: only the socket under test's segments (or the SYN of the one being connected) are
   * compared; those of other, earlier sockets (a closed socket's FIN) pass by unchecked.
   */
  private ofSocketUnderTest(t: NonNullable<Decoded['tcp']>): boolean {
    if (!this.tuple) {
      if (this.mode !== 'active') return true;
      if ((t.flags & 0x12) !== 0x02) return false;
      this.tuple = { dut: t.srcPort, remote: t.dstPort };
      return true;
    }
    return t.srcPort === this.tuple.dut && t.dstPort === this.tuple.remote;
  }

  /**
   * As packetdrill without --strict_segments: the DUT's consecutive segments of one connection stand for the
   * one the script expects (a TSO/GSO packet split on the wire) until their payloads add up to its length; all
   * but the last have the first one's length, and PSH and FIN come from the last, as segmentation sets them.
   */
  private async aggregate(first: Decoded, want: number, deadline: number): Promise<Decoded> {
    const t0 = first.tcp!;
    const parts = [t0.payload];
    let flags = t0.flags;
    let total = t0.payload.length;
    while (total < want) {
      const got = await this.dut.nextFrame(deadline);
      if (!got) break;
      const d = decodeFrame(got.frame);
      const t = d?.tcp;
      if (!d || !t || !addressEqual(d.dst, this.dut.endpoints.remoteIp)) continue;
      const mismatch =
        t.srcPort !== t0.srcPort || t.dstPort !== t0.dstPort || t.seq !== ((t0.seq + total) >>> 0) || t.ack !== t0.ack ||
        (t.flags & ~0x09) !== (t0.flags & ~0x09) || (total + t.payload.length < want && t.payload.length !== t0.payload.length);
      if (mismatch) {
        throw new Mismatch(`segment ${parts.length + 1} does not continue the ${total} bytes before it as one TSO packet would\n  expected: ${want} bytes in all\n  actual:   ${this.fmtActual(d)}`);
      }
      parts.push(t.payload);
      flags = (flags & ~0x09) | (t.flags & 0x09);
      total += t.payload.length;
    }
    if (parts.length === 1) return first;
    const payload = new Uint8Array(total);
    let off = 0;
    for (const b of parts) {
      payload.set(b, off);
      off += b.length;
    }
    this.lenient(`${parts.length} segments matched as one packet of ${total} bytes (packetdrill aggregates without --strict_segments)`);
    return { ...first, tcp: { ...t0, flags, payload } };
  }

  /** Runs `check`; with --non_fatal for this kind, a mismatch is reported and the script goes on. */
  private nonFatal(kind: 'packet' | 'syscall', check: () => void): void {
    try {
      check();
    } catch (e) {
      if (!(e instanceof Mismatch) || !this.cfg.nonFatal.has(kind)) throw e;
      this.result.leniency.push(`line ${this.line}: non-fatal ${kind} mismatch (--non_fatal): ${e.message.split('\n')[0]}`);
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
    if (p.proto === 'unsupported') return p.text;
    return `icmp ${p.type} ${p.code ?? ''}`;
  }

  private fmtActual(d: Decoded): string {
    const withAck = !!(d.tcp && d.tcp.flags & 0x10);
    const frags = this.fragments > 1 ? ` (reassembled from ${this.fragments} fragments)` : '';
    const syn = !!(d.tcp && d.tcp.flags & 0x02);
    return formatDecoded(this.toScriptTs(d), this.localOffset(syn), this.remoteOffset(syn), withAck) + frags;
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
    if (a.ip.flowlabel && d.v === 6) {
      // As packetdrill: the first flow label seen stands for the script's; later ones must keep the mapping.
      if (!d.flowLabel) fail('ip flowlabel: unmarked in the live packet');
      const seen = this.flowLabels.get(a.ip.flowlabel);
      if (seen === undefined) {
        if ([...this.flowLabels.values()].includes(d.flowLabel)) fail(`ip flowlabel: expected a new label for ${a.ip.flowlabel}, actual ${d.flowLabel} (already seen)`);
        this.flowLabels.set(a.ip.flowlabel, d.flowLabel);
      } else if (seen !== d.flowLabel) fail(`ip flowlabel: expected the label seen for ${a.ip.flowlabel} (${seen}), actual ${d.flowLabel}`);
    }
    if (!d.ipChecksumOk) fail('bad IPv4 header checksum');
    if (p.proto === 'udp') {
      if (!d.udp) fail('expected a UDP datagram');
      if (d.udp!.payload.length !== p.len) fail(`udp length: expected ${p.len}, actual ${d.udp!.payload.length}`);
      this.dutPort = d.udp!.srcPort;
      return;
    }
    if (p.proto === 'unsupported') throw new ScriptError(`unsupported by the runner: ${p.what}`);
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
    const syn = (t.flags & 0x02) !== 0;
    const seq = (t.seq - this.localOffset(syn)) >>> 0;
    if (p.seq !== null && seq !== p.seq) fail(`tcp seq: expected ${p.seq}, actual ${seq}`);
    if (t.payload.length !== p.len) fail(`tcp payload length: expected ${p.len}, actual ${t.payload.length}`);
    const ack = (t.ack - (t.flags & 0x10 ? this.remoteOffset(syn) : 0)) >>> 0;
    if (ack !== (p.ack ?? 0)) fail(`tcp ack: expected ${p.ack ?? 0}, actual ${ack}`);
    if (p.win !== undefined && t.win !== p.win) {
      if (this.profile === 'freebsd') this.lenient(`window ${t.win} accepted for ${p.win}`);
      else fail(`tcp window: expected ${p.win}, actual ${t.win}`);
    }
    if (t.urg !== (p.urg ?? 0)) fail(`tcp urgent pointer: expected ${p.urg ?? 0}, actual ${t.urg}`);
    if (t.payload.some((b) => b !== 0)) fail('tcp payload differs from the zeros the script wrote');
    // The DUT's SACK blocks name the remote's bytes: script numbers count from the remote's ISN.
    const roff = this.remoteOffset(syn);
    const actual = t.options.map((o): TcpOptionSpec => (o.kind === 'sack' ? { kind: 'sack', blocks: o.blocks.map(([l, r]) => [(l - roff) >>> 0, (r - roff) >>> 0] as [number, number]) } : o));
    this.compareOptions(p, actual, fail);
    this.dutPort = t.srcPort;
  }

  /**
   * A Fast Open cookie the script wrote for its own addresses (upstream's, or --local_ip/--remote_ip) under a key
   * it uses, turned into the one Linux gives for the runner's addresses under the same key: the runner cannot use
   * the script's addresses, so it carries the address-derived value over with them (listed in the leniency).
   */
  private ourCookie(o: TcpOptionSpec): TcpOptionSpec {
    if (o.kind !== 'raw' || (o.code !== 34 && o.code !== 254)) return o;
    const exp = o.code === 254;
    const hex = [...o.data.subarray(exp ? 2 : 0)].map((b) => b.toString(16).padStart(2, '0')).join('');
    const ours = this.cookies.get(hex);
    if (ours === undefined) return o;
    if (!this.cookieNoted.has(hex)) {
      this.cookieNoted.add(hex);
      this.lenient(`Fast Open cookie ${hex} (the script's addresses) stands for ${ours} (the runner's)`);
    }
    const bytes = ours.match(/../g)!.map((x) => parseInt(x, 16));
    return { kind: 'raw', code: o.code, data: new Uint8Array(exp ? [0xf9, 0x89, ...bytes] : bytes) };
  }

  private compareOptions(p: TcpPacketSpec, actual: TcpOptionSpec[], fail: (w: string) => never): void {
    const expected = Array.isArray(p.options) ? p.options.map((o) => this.ourCookie(o)) : p.options;
    const ts = actual.find((o) => o.kind === 'TS') as { val: number } | undefined;
    const ets = Array.isArray(expected) ? (expected.find((o) => o.kind === 'TS') as { val: number } | undefined) : undefined;
    if (ts && ets) {
      this.tsMap.set(ets.val, ts.val);
      this.firstTs ??= { script: ets.val, live: ts.val };
      const tick = this.cfg.tsTickUs;
      if (tick) {
        // --tcp_ts_tick_usecs: the TS val, in script space, within the tolerance (which grows with the time since
        // the start, not the last event) at the given clock rate (run_packet.c, verify_outbound_tcp_option).
        const tol = Math.max(this.tol, (this.cfg.tolerancePercent / 100) * this.evStart);
        const mine = (this.firstTs.script + (ts.val - this.firstTs.live)) >>> 0;
        const off = Math.abs((mine - ets.val) | 0);
        if ((off * tick) / 1000 > tol) fail(`tcp TS val: expected ${ets.val}, actual ${mine} (${tick} µs a tick, tolerance ${tol} ms)`);
      }
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
      if (blockingEnd !== undefined && Math.abs(start - blockingEnd) > this.evTol) {
        throw new Mismatch(`${c.name}() returned at once, expected it to block until ${this.fmtTime(blockingEnd)}`);
      }
      this.nonFatal('syscall', () => this.calls.verifyResult(c, value, check));
      return;
    }
    const expectEnd = blockingEnd ?? start;
    const p: Pending = {
      ev,
      call: c,
      promise: value,
      expectEnd,
      tol: Math.max(this.evTol, (this.cfg.tolerancePercent / 100) * (expectEnd - start)),
      finish: (r) => this.nonFatal('syscall', () => this.calls.verifyResult(c, r, check)),
    };
    value.then((v) => (p.done = { value: v, time: this.dut.now() }));
    if (blockingEnd !== undefined) {
      this.pending = p;
      return;
    }
    const settled = await this.dut.waitFor(value, start + this.evTol);
    if (!settled) throw new Mismatch(`${c.name}() blocked; the script expects it to return at once (write a blocking range "a...b" if it should block)`);
    await Promise.resolve();
    const r = await value;
    this.nonFatal('syscall', () => this.calls.verifyResult(c, r, check));
  }

  private async settlePending(): Promise<void> {
    const p = this.pending!;
    this.pending = undefined;
    const savedLine = this.line;
    this.line = p.ev.line;
    const settled = await this.dut.waitFor(p.promise, p.expectEnd + p.tol);
    if (!settled) throw new Mismatch(`${p.call.name}() still blocked at ${this.fmtTime(this.dut.now())}, expected it to return at ${this.fmtTime(p.expectEnd)}`);
    const v = await p.promise;
    const t = p.done?.time ?? this.dut.now();
    if (t < p.expectEnd - p.tol) throw new Mismatch(`${p.call.name}() returned at ${this.fmtTime(t)}, expected ${this.fmtTime(p.expectEnd)}±${p.tol}ms`);
    p.finish(v);
    this.line = savedLine;
  }

}


/** For every Fast Open key a script can be running under, its cookie for the script's addresses → for ours. */
function cookieMap(script: Script, v: 4 | 6, ep: { dutIp: Uint8Array; remoteIp: Uint8Array }): Map<string, string> {
  const text = [script.init?.command ?? '', ...script.events.map((e) => (e.action.type === 'shell' ? e.action.command : ''))].join('\n');
  const keys = new Set([DEFAULT_TFO_KEY, ...[...text.matchAll(/tcp_fastopen_key=([0-9a-fA-F-]+)/g)].map((m) => m[1]!)]);
  // A key set on a listener with setsockopt(TCP_FASTOPEN_KEY, 16 bytes): four words in the CPU's (little-endian) order.
  for (const e of script.events) {
    const a = e.action;
    if (a.type !== 'syscall' || a.name !== 'setsockopt' || a.args[2]?.t !== 'ident' || a.args[2].name !== 'TCP_FASTOPEN_KEY' || a.args[3]?.t !== 'str') continue;
    const b = cString(a.args[3].v);
    if (b.length !== 16) continue;
    const v = new DataView(b.buffer);
    keys.add([0, 4, 8, 12].map((o) => v.getUint32(o, true).toString(16).padStart(8, '0')).join('-'));
  }
  const local = script.options.local_ip ?? UPSTREAM_ADDRESSES[v].local;
  const remote = script.options.remote_ip ?? UPSTREAM_ADDRESSES[v].remote;
  const out = new Map<string, string>();
  for (const k of keys) {
    try {
      out.set(fastOpenCookie(k, remote, local), fastOpenCookie(k, formatAddress(ep.remoteIp), formatAddress(ep.dutIp)));
    } catch {
      // an address or key the script gets wrong is the script's to fail on
    }
  }
  return out;
}
