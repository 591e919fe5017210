/**
 * Runs a parsed packetdrill script against one DUT, playing the remote host as packetdrill does: script
 * sequence numbers are relative to the two ISNs (the DUT's learnt from its SYN or SYN-ACK, the remote's
 * being the script's own numbers), outbound TS val mapped to script space, inbound TS ecr mapped back,
 * addresses and ports filled in, checksums computed. The first mismatch ends the script as a failure.
 */
import { addressEqual, parseAddress } from '../../netstack/addr.ts';
import { ERRNO_NAMES } from '../../netstack/errors.ts';
import { LINUX as L, encodeSockaddr, linuxConstant } from '../socket/abi.ts';
import type { EpollEvent, MsgHdr, PollFd } from '../socket/api.ts';
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
import type { Expr, PacketAction, Script, ScriptEvent, SyscallAction, TcpOptionSpec, TcpPacketSpec } from './script.ts';

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

class Mismatch extends Error {}
class ScriptError extends Error {}

const REMOTE_PORT_BASE = 40000;
/** Where script fds that no call returned are sent (beyond any fd limit). */
const UNMAPPED_FD_BASE = 0x3fff0000;

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
  private readonly fdMap = new Map<number, number>();
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
  /** The live fd of the socket under test (the last one socket() or accept() returned), for python asserts. */
  private underTest: number | undefined;
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
    } else this.code(ev, a.code);
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

  /**
   * A `%{ }%` block: python is not run, but lines of the form `assert tcpi_FIELD OP VALUE` are checked against
   * TCP_INFO of the socket under test (FreeBSD's TCPI_* state names mapped to Linux's numbering, which
   * struct tcp_info uses on both DUTs); anything else is reported as a skipped line.
   */
  private code(ev: ScriptEvent, code: string): void {
    const lines = code.split(/\n|;/).map((l) => l.trim()).filter((l) => l !== '');
    const asserts = lines.map((l) => /^assert\s+(tcpi_\w+)\s*(==|!=|<=|>=|<|>)\s*(\w+)$/.exec(l));
    if (!asserts.length || asserts.some((m) => !m) || this.underTest === undefined) {
      this.result.skipped.push({ line: ev.line, text: `%{ ${code} }%`, why: 'python blocks are not run (only "assert tcpi_x OP value" is understood)' });
      return;
    }
    const buf = new Uint8Array(256);
    const len = new Uint32Array([buf.length]);
    const r = this.dut.sys.getsockopt(this.underTest, L.IPPROTO_TCP, L.TCP_INFO, buf, len);
    if (r < 0) throw new Mismatch(`%{ ${code} }%: getsockopt(TCP_INFO) = -1 ${errnoName(-r)}`);
    for (const m of asserts) {
      const [, field, op, valueText] = m!;
      const off = STRUCT_FIELDS[field!];
      if (!off) throw new ScriptError(`unknown tcp_info field ${field}`);
      const got = off[1] === 1 ? buf[off[0]]! : new DataView(buf.buffer).getUint32(off[0], true);
      const want = /^\d+$/.test(valueText!) ? Number(valueText) : (TCPI_STATE_NAMES[valueText!] ?? linuxConstant(valueText!));
      if (want === undefined) throw new ScriptError(`unknown value ${valueText} in %{ ${code} }%`);
      const ok = { '==': got === want, '!=': got !== want, '<=': got <= want, '>=': got >= want, '<': got < want, '>': got > want }[op!];
      if (!ok) throw new Mismatch(`%{ assert ${field} ${op} ${valueText} }%: ${field} is ${got}${field === 'tcpi_state' ? ` (${stateName(got)})` : ''}, expected ${op} ${want}`);
    }
  }

  // ------------------------------------------------------------------------------------------------
  // System calls

  private liveFd(e: Expr | undefined): number {
    const v = this.int(e);
    // A number the script never got from a call must not reach one of the runner's own fds (Linux DUT):
    // it becomes an fd no process has, so both DUTs answer EBADF.
    return this.fdMap.get(v) ?? (v >= 0 ? UNMAPPED_FD_BASE + v : v);
  }

  private int(e: Expr | undefined): number {
    if (!e) throw new ScriptError('missing argument');
    switch (e.t) {
      case 'int':
        return e.v;
      case 'ident': {
        const v = linuxConstant(e.name);
        if (v === undefined) throw new ScriptError(`unknown constant ${e.name}`);
        return v;
      }
      case 'or':
        return e.items.reduce((acc, x) => acc | this.int(x), 0);
      case 'list':
        if (e.items.length === 1) return this.int(e.items[0]);
        break;
      case 'call':
        if ((e.name === 'htons' || e.name === 'htonl' || e.name === 'ntohs') && e.args.length === 1) return this.int(e.args[0]);
        break;
    }
    throw new ScriptError(`expected an integer argument, found ${describeExpr(e)}`);
  }

  private family(): number {
    return this.cfg.ipVersion === 6 ? L.AF_INET6 : L.AF_INET;
  }

  /** A sockaddr from `...` (the DUT's or the remote's default) or a `{sa_family=..., sin_port=..., sin_addr=...}`. */
  private sockaddr(e: Expr | undefined, side: 'local' | 'remote'): Uint8Array {
    const ep = this.dut.endpoints;
    if (!e || e.t === 'ellipsis') {
      return side === 'local'
        ? encodeSockaddr({ family: this.family(), address: ep.dutIp, port: this.bindPort })
        : encodeSockaddr({ family: this.family(), address: ep.remoteIp, port: this.connectPort });
    }
    if (e.t === 'struct') {
      let family = this.family();
      let port = side === 'local' ? this.bindPort : this.connectPort;
      let address: Uint8Array = side === 'local' ? ep.dutIp : ep.remoteIp;
      for (const f of e.fields) {
        if (f.name === 'sa_family' || f.name === 'sin_family' || f.name === 'sin6_family') family = this.int(f.value);
        else if (f.name === 'sin_port' || f.name === 'sin6_port') port = this.int(f.value);
        else if (f.name === 'sin_addr' || f.name === 'sin6_addr') address = this.address(f.value, side);
      }
      return encodeSockaddr({ family, address, port });
    }
    throw new ScriptError(`expected a socket address ("..." or {sa_family=..., ...}), found ${describeExpr(e)}`);
  }

  private address(e: Expr, side: 'local' | 'remote'): Uint8Array {
    const ep = this.dut.endpoints;
    const text = e.t === 'call' && e.args[0]?.t === 'str' ? e.args[0].v : e.t === 'str' ? e.v : undefined;
    if (text === undefined) return side === 'local' ? ep.dutIp : ep.remoteIp;
    // packetdrill's default addresses stand for the two ends; ours replace them.
    if (text === '192.168.0.1' || text === 'fd3d:fa7b:d17d::1') return ep.dutIp;
    if (text === '192.0.2.1' || text === 'fd3d:0a0b:17d6::1') return ep.remoteIp;
    if (text === '0.0.0.0' || text === 'INADDR_ANY') return new Uint8Array(4);
    if (text === '::' || text === 'in6addr_any') return new Uint8Array(16);
    return parseAddress(text) ?? (() => { throw new ScriptError(`bad address "${text}"`); })();
  }

  private buffer(e: Expr | undefined, len: number): Uint8Array {
    if (e?.t === 'str') {
      const b = new TextEncoder().encode(e.v);
      const out = new Uint8Array(len);
      out.set(b.subarray(0, len));
      return out;
    }
    return new Uint8Array(len);
  }

  private iovecs(e: Expr | undefined): Uint8Array[] {
    if (!e || e.t === 'ellipsis') return [];
    if (e.t !== 'list') throw new ScriptError(`expected an iovec array [{iov_base=..., iov_len=N}], found ${describeExpr(e)}`);
    return e.items.map((it) => {
      if (it.t !== 'struct') throw new ScriptError('expected {iov_base=..., iov_len=N}');
      const len = it.fields.find((f) => f.name === 'iov_len');
      const base = it.fields.find((f) => f.name === 'iov_base');
      return this.buffer(base?.value, this.int(len?.value));
    });
  }

  private msghdr(e: Expr | undefined, send: boolean): MsgHdr {
    if (!e || e.t !== 'struct') throw new ScriptError('expected a msghdr {msg_name(...)=..., msg_iov(N)=[...], msg_flags=0}');
    const field = (n: string) => e.fields.find((f) => f.name === n)?.value;
    const name = field('msg_name');
    return {
      name: name ? (send ? this.sockaddr(name, 'remote') : new Uint8Array(28)) : null,
      namelen: 0,
      iov: this.iovecs(field('msg_iov')),
      flags: 0,
    };
  }

  /** Evaluates an option value argument into bytes. */
  private optval(e: Expr | undefined, len: number | undefined): Uint8Array {
    if (!e) throw new ScriptError('missing option value');
    if (e.t === 'str') return new TextEncoder().encode(e.v);
    if (e.t === 'struct') {
      const get = (n: string) => {
        const f = e.fields.find((x) => x.name === n);
        return f ? this.int(f.value) : 0;
      };
      const b = new Uint8Array(e.fields.some((f) => f.name === 'tv_sec') ? 16 : 8);
      const v = new DataView(b.buffer);
      if (b.length === 16) {
        v.setBigInt64(0, BigInt(get('tv_sec')), true);
        v.setBigInt64(8, BigInt(get('tv_usec')), true);
      } else {
        v.setInt32(0, get('l_onoff'), true);
        v.setInt32(4, get('l_linger'), true);
      }
      return b;
    }
    const b = new Uint8Array(len ?? 4);
    if (b.length >= 4) new DataView(b.buffer).setInt32(0, this.int(e), true);
    else if (b.length >= 1) b[0] = this.int(e);
    return b;
  }

  private async syscall(ev: ScriptEvent, c: SyscallAction): Promise<void> {
    // "a...b": the call starts at a and returns at b (b relative to the same base as a).
    const blockingEnd = ev.time.end?.blocking ? (ev.time.end.kind === 'abs' ? ev.time.end.ms : this.relBase + ev.time.end.ms) : undefined;
    const start = this.dut.now();
    const { value, check } = this.invoke(c);
    if (typeof value === 'number') {
      if (blockingEnd !== undefined && Math.abs(start - blockingEnd) > this.tol) {
        throw new Mismatch(`${c.name}() returned at once, expected it to block until ${this.fmtTime(blockingEnd)}`);
      }
      this.verifyResult(c, value, check);
      return;
    }
    const p: Pending = {
      ev,
      call: c,
      promise: value,
      expectEnd: blockingEnd ?? start,
      finish: (r) => this.verifyResult(c, r, check),
    };
    value.then((v) => (p.done = { value: v, time: this.dut.now() }));
    if (blockingEnd !== undefined) {
      this.pending = p;
      return;
    }
    const settled = await this.dut.waitFor(value, start + this.tol);
    if (!settled) throw new Mismatch(`${c.name}() blocked; the script expects it to return at once (write a blocking range "a...b" if it should block)`);
    await Promise.resolve();
    this.verifyResult(c, await value, check);
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

  private verifyResult(c: SyscallAction, r: number, check: ((r: number) => void) | undefined): void {
    const errName = (n: number) => errnoName(-n);
    if (c.result !== undefined) {
      if (c.result < 0) {
        if (r >= 0) throw new Mismatch(`${c.name}() = ${r}, expected -1 ${c.errno}`);
        const want = linuxConstant(c.errno!);
        if (want === undefined) throw new ScriptError(`unknown errno ${c.errno}`);
        if (-r !== want) throw new Mismatch(`${c.name}() = -1 ${errName(r)}, expected -1 ${c.errno}`);
      } else if (r < 0) {
        throw new Mismatch(`${c.name}() = -1 ${errName(r)}, expected ${c.result}`);
      } else if (!FD_RETURNING.has(c.name) && r !== c.result) {
        if (c.name === 'fcntl' && this.profile === 'freebsd' && (r & ~L.O_NONBLOCK) === (c.result & ~L.O_NONBLOCK)) this.lenient(`fcntl() = ${r} accepted for ${c.result}`);
        else throw new Mismatch(`${c.name}() = ${r}, expected ${c.result}`);
      }
      if (FD_RETURNING.has(c.name) && r >= 0) this.fdMap.set(c.result, r);
      if ((c.name === 'socket' || c.name.startsWith('accept')) && r >= 0) this.underTest = r;
    }
    if (r >= 0) check?.(r);
  }

  /** Starts a call; `check` verifies its output arguments once it succeeded. */
  private invoke(c: SyscallAction): { value: number | Promise<number>; check?: (r: number) => void } {
    const s = this.dut.sys;
    const a = c.args;
    const fd = () => this.liveFd(a[0]);
    switch (c.name) {
      case 'socket': {
        const domain = a[0]?.t === 'ellipsis' ? this.family() : this.int(a[0]);
        return { value: s.socket(domain, this.int(a[1]), this.int(a[2])) };
      }
      case 'bind':
        return { value: s.bind(fd(), this.sockaddr(a[1], 'local')) };
      case 'listen': {
        const r = s.listen(fd(), this.int(a[1]));
        if (r === 0) this.mode = 'listen';
        return { value: r };
      }
      case 'connect': {
        this.mode = 'active';
        this.remotePort = this.connectPort;
        this.localIsn = undefined;
        return { value: s.connect(fd(), this.sockaddr(a[1], 'remote')) };
      }
      case 'accept':
      case 'accept4': {
        const flags = c.name === 'accept4' ? this.int(a[3]) : 0;
        return { value: s.accept4(fd(), new Uint8Array(28), new Uint32Array([28]), flags) };
      }
      case 'read':
        return { value: s.read(fd(), new Uint8Array(this.int(a[2]))) };
      case 'write':
        return { value: s.write(fd(), this.buffer(a[1], this.int(a[2]))) };
      case 'recv':
        return { value: s.recvfrom(fd(), new Uint8Array(this.int(a[2])), this.int(a[3]), null, null) };
      case 'send':
        return { value: s.sendto(fd(), this.buffer(a[1], this.int(a[2])), this.int(a[3]), null) };
      case 'recvfrom':
        return { value: s.recvfrom(fd(), new Uint8Array(this.int(a[2])), this.int(a[3]), new Uint8Array(28), new Uint32Array([28])) };
      case 'sendto': {
        const to = a[4] === undefined ? null : this.sockaddr(a[4], 'remote');
        return { value: s.sendto(fd(), this.buffer(a[1], this.int(a[2])), this.int(a[3]), to) };
      }
      case 'readv':
        return { value: s.readv(fd(), this.iovecs(a[1])) };
      case 'writev':
        return { value: s.writev(fd(), this.iovecs(a[1])) };
      case 'sendmsg':
        return { value: s.sendmsg(fd(), this.msghdr(a[1], true), this.int(a[2])) };
      case 'recvmsg': {
        const m = this.msghdr(a[1], false);
        const want = a[1]?.t === 'struct' ? a[1].fields.find((f) => f.name === 'msg_flags')?.value : undefined;
        return {
          value: s.recvmsg(fd(), m, this.int(a[2])),
          check: () => {
            if (want && want.t !== 'ellipsis' && m.flags !== this.int(want)) throw new Mismatch(`recvmsg() msg_flags = ${m.flags}, expected ${this.int(want)}`);
          },
        };
      }
      case 'shutdown':
        return { value: s.shutdown(fd(), this.int(a[1])) };
      case 'close': {
        const live = fd();
        const r = s.close(live);
        if (r === 0) this.fdMap.delete(this.int(a[0]));
        return { value: r };
      }
      case 'getsockname':
      case 'getpeername': {
        const buf = new Uint8Array(28);
        const len = new Uint32Array([28]);
        return { value: c.name === 'getsockname' ? s.getsockname(fd(), buf, len) : s.getpeername(fd(), buf, len) };
      }
      case 'getsockopt':
        return this.getsockopt(c);
      case 'setsockopt': {
        const len = a[4] && a[4].t !== 'ellipsis' ? this.int(a[4]) : undefined;
        return { value: s.setsockopt(fd(), this.int(a[1]), this.int(a[2]), this.optval(a[3], len)) };
      }
      case 'fcntl':
        return { value: s.fcntl(fd(), this.int(a[1]), a[2] ? this.int(a[2]) : 0) };
      case 'ioctl': {
        const arg = new Int32Array([a[2] && a[2].t === 'list' && a[2].items[0]?.t !== 'ellipsis' ? this.int(a[2]) : 0]);
        const req = this.int(a[1]);
        const expectOut = req !== L.FIONBIO && a[2]?.t === 'list' && a[2].items[0] && a[2].items[0].t !== 'ellipsis' ? this.int(a[2]) : undefined;
        return {
          value: s.ioctl(fd(), req, arg),
          check: () => {
            if (expectOut !== undefined && arg[0] !== expectOut) throw new Mismatch(`ioctl() wrote ${arg[0]}, expected ${expectOut}`);
          },
        };
      }
      case 'poll':
        return this.poll(c);
      case 'epoll_create':
      case 'epoll_create1':
        return { value: s.epollCreate(c.name === 'epoll_create1' ? this.int(a[0]) : 0) };
      case 'epoll_ctl': {
        const evs = a[3]?.t === 'struct' ? this.epollEvent(a[3]) : null;
        return { value: s.epollCtl(this.liveFd(a[0]), this.int(a[1]), this.liveFd(a[2]), evs) };
      }
      case 'epoll_wait': {
        const out: EpollEvent[] = [];
        const want = a[1]?.t === 'struct' ? this.epollEvent(a[1]) : undefined;
        return {
          value: s.epollWait(this.liveFd(a[0]), out, this.int(a[2]), this.int(a[3])),
          check: (r) => {
            if (want && r > 0 && (out[0]!.events !== want.events || out[0]!.data !== want.data)) {
              throw new Mismatch(`epoll_wait() event {events=${out[0]!.events}, data=${out[0]!.data}}, expected {events=${want.events}, data=${want.data}}`);
            }
          },
        };
      }
      default:
        throw new ScriptError(`system call ${c.name}() is not supported by the runner`);
    }
  }

  private epollEvent(e: Expr & { t: 'struct' }): EpollEvent {
    const ev = e.fields.find((f) => f.name === 'events');
    const data = e.fields.find((f) => f.name === 'fd' || f.name === 'u64' || f.name === 'u32' || f.name === 'ptr');
    const fdLike = data?.name === 'fd';
    return { events: ev ? this.int(ev.value) : 0, data: data ? (fdLike ? this.liveFd(data.value) : this.int(data.value)) : 0 };
  }

  private poll(c: SyscallAction): { value: number | Promise<number>; check: (r: number) => void } {
    const list = c.args[0];
    if (list?.t !== 'list') throw new ScriptError('expected poll([{fd=..., events=..., revents=...}], n, timeout)');
    const want: (number | undefined)[] = [];
    const fds: PollFd[] = list.items.map((it) => {
      if (it.t !== 'struct') throw new ScriptError('expected {fd=..., events=..., revents=...}');
      const g = (n: string) => it.fields.find((f) => f.name === n)?.value;
      const rev = g('revents');
      want.push(rev && rev.t !== 'ellipsis' ? this.int(rev) : undefined);
      return { fd: this.liveFd(g('fd')), events: this.int(g('events')), revents: 0 };
    });
    return {
      value: this.dut.sys.poll(fds, this.int(c.args[2])),
      check: () => {
        fds.forEach((f, i) => {
          if (want[i] !== undefined && f.revents !== want[i]) throw new Mismatch(`poll() revents = 0x${f.revents.toString(16)}, expected 0x${want[i]!.toString(16)}`);
        });
      },
    };
  }

  private getsockopt(c: SyscallAction): { value: number; check: (r: number) => void } {
    const a = c.args;
    const level = this.int(a[1]);
    const name = this.int(a[2]);
    const valExpr = a[3];
    const lenExpr = a[4];
    const wantLen = lenExpr && lenExpr.t === 'list' && lenExpr.items[0]?.t === 'int' ? lenExpr.items[0].v : undefined;
    const buf = new Uint8Array(Math.max(wantLen ?? 4, valExpr?.t === 'struct' ? 256 : 4));
    const len = new Uint32Array([wantLen ?? buf.length]);
    const r = this.dut.sys.getsockopt(this.liveFd(a[0]), level, name, buf, len);
    return {
      value: r,
      check: () => {
        if (!valExpr || valExpr.t === 'ellipsis') return;
        const v = new DataView(buf.buffer);
        if (valExpr.t === 'list' && valExpr.items[0]?.t !== 'ellipsis') {
          const want = this.int(valExpr);
          const got = len[0]! >= 4 ? v.getInt32(0, true) : buf[0]!;
          if (got !== want) {
            const isBuf = level === L.SOL_SOCKET && (name === L.SO_RCVBUF || name === L.SO_SNDBUF);
            if (this.profile === 'freebsd' && isBuf) this.lenient(`getsockopt buffer size ${got} accepted for ${want}`);
            else throw new Mismatch(`getsockopt() value = ${name === L.SO_ERROR ? errnoName(got) || got : got}, expected ${describeExpr(valExpr)}`);
          }
        } else if (valExpr.t === 'struct') {
          for (const f of valExpr.fields) {
            if (f.value.t === 'ellipsis' || !f.name) continue;
            const off = STRUCT_FIELDS[f.name];
            if (off === undefined) throw new ScriptError(`getsockopt: unknown field ${f.name}`);
            const got = off[1] === 1 ? buf[off[0]]! : v.getUint32(off[0], true);
            if (got !== this.int(f.value)) throw new Mismatch(`getsockopt() ${f.name} = ${got}, expected ${describeExpr(f.value)}`);
          }
        }
        if (wantLen !== undefined && len[0] !== wantLen) throw new Mismatch(`getsockopt() optlen = ${len[0]}, expected ${wantLen}`);
      },
    };
  }
}

/** FreeBSD's TCPI_* / TCPS_* state names as Linux's tcp_info numbers them (include/net/tcp_states.h). */
const TCPI_STATE_NAMES: Record<string, number> = {
  TCPI_ESTABLISHED: 1, TCPI_SYN_SENT: 2, TCPI_SYN_RECEIVED: 3, TCPI_FIN_WAIT_1: 4, TCPI_FIN_WAIT_2: 5,
  TCPI_TIME_WAIT: 6, TCPI_CLOSED: 7, TCPI_CLOSE_WAIT: 8, TCPI_LAST_ACK: 9, TCPI_LISTEN: 10, TCPI_CLOSING: 11,
};

function stateName(n: number): string {
  return Object.entries(L).find(([k, v]) => v === n && k.startsWith('TCP_') && /^TCP_[A-Z_0-9]+$/.test(k) && n <= 11 && ['TCP_ESTABLISHED', 'TCP_SYN_SENT', 'TCP_SYN_RECV', 'TCP_FIN_WAIT1', 'TCP_FIN_WAIT2', 'TCP_TIME_WAIT', 'TCP_CLOSE', 'TCP_CLOSE_WAIT', 'TCP_LAST_ACK', 'TCP_LISTEN', 'TCP_CLOSING'].includes(k))?.[0] ?? String(n);
}

/** Calls whose result is a new fd (compared as "some fd", then mapped). */
const FD_RETURNING = new Set(['socket', 'accept', 'accept4', 'epoll_create', 'epoll_create1']);

/** Offsets and sizes of struct linger and struct tcp_info fields a script may check. */
const STRUCT_FIELDS: Record<string, [number, number]> = {
  l_onoff: [0, 4], l_linger: [4, 4],
  tcpi_state: [0, 1], tcpi_ca_state: [1, 1], tcpi_retransmits: [2, 1], tcpi_probes: [3, 1], tcpi_backoff: [4, 1],
  tcpi_options: [5, 1], tcpi_rto: [8, 4], tcpi_ato: [12, 4], tcpi_snd_mss: [16, 4], tcpi_rcv_mss: [20, 4],
  tcpi_unacked: [24, 4], tcpi_sacked: [28, 4], tcpi_lost: [32, 4], tcpi_retrans: [36, 4], tcpi_fackets: [40, 4],
  tcpi_pmtu: [60, 4], tcpi_rcv_ssthresh: [64, 4], tcpi_rtt: [68, 4], tcpi_rttvar: [72, 4], tcpi_snd_ssthresh: [76, 4],
  tcpi_snd_cwnd: [80, 4], tcpi_advmss: [84, 4], tcpi_reordering: [88, 4], tcpi_rcv_rtt: [92, 4], tcpi_rcv_space: [96, 4],
  tcpi_total_retrans: [100, 4],
};

function errnoName(e: number): string {
  return e === 0 ? '0' : (ERRNO_NAMES[e] ?? `errno ${e}`);
}

function describeExpr(e: Expr): string {
  switch (e.t) {
    case 'int':
      return String(e.v);
    case 'ellipsis':
      return '...';
    case 'ident':
      return e.name;
    case 'str':
      return `"${e.v}"`;
    case 'or':
      return e.items.map(describeExpr).join('|');
    case 'list':
      return `[${e.items.map(describeExpr).join(', ')}]`;
    case 'struct':
      return `{${e.fields.map((f) => (f.name ? `${f.name}=` : '') + describeExpr(f.value)).join(', ')}}`;
    case 'call':
      return `${e.name}(${e.args.map(describeExpr).join(', ')})`;
  }
}
