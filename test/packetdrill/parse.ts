/**
 * A parser for packetdrill's script language (google/packetdrill, gtests/net/packetdrill: lexer.l and parser.y
 * describe it): `--option=value` lines, `#ifdef` blocks, and timed events — packets (`<` inbound, `>` outbound),
 * system calls with expected results, shell commands in backticks and `%{ }%` python blocks.
 * Every event of the corpora fits on one line (python blocks may span lines), so the parser works line by line
 * and reports the first thing it cannot read as `file:line: what was expected`.
 */
import {
  type Expr,
  type IcmpPacketSpec,
  type IpInfo,
  type PacketAction,
  ParseError,
  type Script,
  type ScriptEvent,
  type StructField,
  type SyscallAction,
  type TcpOptionSpec,
  type TcpPacketSpec,
  type TimeSpec,
} from './script.ts';

/** Options of `parseScript`. */
export interface ParseOptions {
  /** Symbols defined for `#ifdef` (default: STANDARD, the behaviour the RFCs ask for). */
  defines?: readonly string[];
  /**
   * Values of packetdrill's `-D NAME=VALUE` definitions: a bare word NAME anywhere in an event stands for VALUE,
   * as upstream's lexer substitutes it (run_all.py passes TFO_COOKIE, CMSG_LEVEL_IP, ... this way).
   */
  definitions?: Readonly<Record<string, string>> | ((options: Readonly<Record<string, string>>) => Readonly<Record<string, string>>);
}

/** Parses the text of a script; throws ParseError naming the file and line of the first problem. */
export function parseScript(text: string, path: string, opts: ParseOptions = {}): Script {
  const defines = new Set(opts.defines ?? ['STANDARD']);
  const lines = stripComments(text).split('\n');
  const options: Record<string, string> = {};
  const events: ScriptEvent[] = [];
  const ifdefSkipped: { line: number; symbol: string }[] = [];
  let init: Script['init'];
  let cleanup: Script['cleanup'];
  // Fixed at the first event, once the option lines (which may say --ip_version or --define) are read.
  let definitions: Readonly<Record<string, string>> | undefined;
  // Each level: whether its lines are active, and the symbol (for the skipped report).
  const stack: { active: boolean; taken: boolean; symbol: string }[] = [];
  const active = () => stack.every((s) => s.active);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i]!;
    const fail = (msg: string): never => {
      throw new ParseError(path, lineNo, msg);
    };
    const pre = /^\s*#\s*(ifdef|ifndef|else|endif|if)\b\s*(\S*)/.exec(line);
    if (pre) {
      const [, dir, sym] = pre;
      if (dir === 'ifdef' || dir === 'ifndef') {
        if (!sym) fail(`expected a symbol after #${dir}`);
        const on = defines.has(sym!) === (dir === 'ifdef');
        stack.push({ active: on, taken: on, symbol: sym! });
      } else if (dir === 'else') {
        const top = stack[stack.length - 1] ?? fail('#else without #ifdef');
        top.active = !top.taken;
        top.taken = true;
      } else if (dir === 'endif') {
        if (!stack.pop()) fail('#endif without #ifdef');
      } else fail('#if expressions are not supported (use #ifdef)');
      continue;
    }
    // packetdrill's lexer reads tokens, not lines: an event continues over the next lines while a backtick
    // command, a %{ }% block or a bracket is still open (multi-line recvmsg msghdrs, defaults.sh plus a sysctl).
    for (let j = i; open(line) !== undefined; ) {
      j++;
      if (j >= lines.length) fail(`unterminated ${open(line)} (the script ends inside it)`);
      line += '\n' + lines[j]!;
      i = j;
    }
    if (!active()) {
      if (line.trim() !== '') ifdefSkipped.push({ line: lineNo, symbol: stack.find((s) => !s.active)!.symbol });
      continue;
    }
    const content = line.trim();
    if (content === '') continue;
    if (content.startsWith('--')) {
      if (events.length || init) fail('option lines "--name=value" must come before the first event');
      const m = /^--([A-Za-z0-9_-]+)(?:[= ]\s*(.*))?$/.exec(content) ?? fail(`expected an option line "--name=value"`);
      options[m[1]!] = (m[2] ?? '').trim();
      continue;
    }
    if (content.startsWith('`')) {
      // Without a time, a command opens the script (run before time 0) or closes it (run at the end, passed or
      // failed), as packetdrill's init_command and cleanup_command.
      const command = untimedCommand(content, fail);
      if (!events.length && !init) init = { line: lineNo, command };
      else if (!cleanup) cleanup = { line: lineNo, command };
      else fail('a command without a time may only open or close the script');
      continue;
    }
    if (cleanup) throw new ParseError(path, cleanup.line, 'a command without a time may only open or close the script');
    definitions ??= definitionsFor(options, opts.definitions, fail);
    events.push(parseEvent(substitute(content, definitions), lineNo, path));
  }
  if (stack.length) throw new ParseError(path, lines.length, `#ifdef ${stack[stack.length - 1]!.symbol} without #endif`);
  return { path, options, events, ifdefSkipped, init, cleanup };
}

function definitionsFor(options: Readonly<Record<string, string>>, given: ParseOptions['definitions'], fail: (msg: string) => never): Readonly<Record<string, string>> {
  const out = { ...(typeof given === 'function' ? given(options) : given) };
  const d = options.define;
  if (d !== undefined) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(d) ?? fail(`expected --define=NAME=VALUE, found "--define=${d}"`);
    out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return out;
}

/** What is still open at the end of `text` (a backtick command, a python block, a bracket), or undefined. */
function open(text: string): string | undefined {
  let depth = 0;
  let tick = false;
  let str = false;
  let code = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (code) {
      if (c === '}' && text[i + 1] === '%') code = false;
      continue;
    }
    if (tick) {
      if (c === '\\') i++;
      else if (c === '`') tick = false;
      continue;
    }
    if (str) {
      if (c === '\\') i++;
      else if (c === '"') str = false;
      continue;
    }
    if (c === '`') tick = true;
    else if (c === '"') str = true;
    else if (c === '%' && text[i + 1] === '{') code = true;
    else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
  }
  if (code) return '%{ python block (expected }%)';
  if (tick) return 'shell command (expected a closing backtick)';
  if (str) return 'string (expected a closing ")';
  return depth > 0 ? 'bracket' : undefined;
}

function untimedCommand(content: string, fail: (msg: string) => never): string {
  const end = content.indexOf('`', 1);
  if (end < 0) fail('unterminated shell command (expected a closing backtick)');
  if (content.slice(end + 1).trim() !== '') fail(`unexpected text after the shell command: "${clip(content.slice(end + 1))}"`);
  return content.slice(1, end);
}

/** Replaces the bare words defined with `-D NAME=VALUE` outside strings, backticks and python blocks. */
function substitute(content: string, defs: Readonly<Record<string, string>> | undefined): string {
  if (!defs || !Object.keys(defs).length) return content;
  return content.replace(/(`[^`]*`|"(?:\\.|[^"])*"|%\{[\s\S]*?\}%)|\b([A-Za-z_][A-Za-z0-9_]*)\b/g, (m, quoted: string | undefined, word: string | undefined) =>
    quoted !== undefined ? m : Object.hasOwn(defs, word!) ? defs[word!]! : m,
  );
}

/**
 * Blanks out `//` and C comments (keeping line breaks, so line numbers stay), but not inside strings, backtick
 * commands and %{ }% python blocks, as packetdrill's lexer does.
 */
function stripComments(text: string): string {
  let out = '';
  let i = 0;
  const blank = (s: string) => s.replace(/[^\n]/g, ' ');
  while (i < text.length) {
    const c = text[i]!;
    const two = text.slice(i, i + 2);
    let end: number;
    if (two === '//') {
      end = text.indexOf('\n', i);
      if (end < 0) end = text.length;
      out += blank(text.slice(i, end));
    } else if (two === '/*') {
      end = text.indexOf('*/', i + 2);
      end = end < 0 ? text.length : end + 2;
      out += blank(text.slice(i, end));
    } else if (two === '%{') {
      end = text.indexOf('}%', i + 2);
      end = end < 0 ? text.length : end + 2;
      out += text.slice(i, end);
    } else if (c === '`' || c === '"') {
      end = i + 1;
      while (end < text.length && text[end] !== c) end += text[end] === '\\' ? 2 : 1;
      end = Math.min(end + 1, text.length);
      out += text.slice(i, end);
    } else {
      end = i + 1;
      out += c;
    }
    i = end;
  }
  return out;
}

const NUM = String.raw`(?:\d+(?:\.\d*)?|\.\d+)`;
const TIME_RE = new RegExp(String.raw`^(\*|(?:\+\s*)?${NUM})(?:\s*(~|\.\.\.)\s*((?:\+\s*)?${NUM}))?(?=\s|$)`);

/** Parses one event line (time and action). */
export function parseEvent(content: string, line: number, path: string): ScriptEvent {
  const fail = (msg: string): never => {
    throw new ParseError(path, line, msg);
  };
  const m = TIME_RE.exec(content) ?? fail(`expected a time ("0.1", "+0.1", "*", "a~b" or "a...b") at "${clip(content)}"`);
  const time = parseTime(m[1]!, m[2], m[3]);
  const rest = content.slice(m[0].length).trim();
  if (rest === '') fail('expected an action after the time');
  const c = rest[0]!;
  if (c === '<' || c === '>') return { line, time, action: parsePacket(rest, fail) };
  if (c === '`') {
    const end = rest.indexOf('`', 1);
    if (end < 0) fail('unterminated shell command (expected a closing backtick)');
    if (rest.slice(end + 1).trim() !== '') fail(`unexpected text after the shell command: "${clip(rest.slice(end + 1))}"`);
    return { line, time, action: { type: 'shell', command: rest.slice(1, end) } };
  }
  if (rest.startsWith('%{')) {
    const end = rest.lastIndexOf('}%');
    return { line, time, action: { type: 'code', code: rest.slice(2, end).trim() } };
  }
  if (/^[A-Za-z_]\w*\s*\(/.test(rest)) return { line, time, action: parseSyscall(rest, fail) };
  return fail(`expected a packet ("<" or ">"), a system call, a \`shell command\` or %{ python }% at "${clip(rest)}"`);
}

function clip(s: string): string {
  s = s.trim();
  return s.length > 40 ? s.slice(0, 40) + '…' : s;
}

function parseTime(start: string, sep: string | undefined, end: string | undefined): TimeSpec {
  const one = (s: string) => ({ kind: s.startsWith('+') ? ('rel' as const) : ('abs' as const), ms: Number(s.replace(/^\+\s*/, '')) * 1000 });
  if (start === '*') return { kind: 'any', ms: 0 };
  const s = one(start);
  if (!sep) return s;
  const e = one(end!);
  // A blocking call's end is written without "+" and, after a relative start, counts from the same base
  // (run.c, adjust_relative_event_times).
  if (sep === '...' && s.kind === 'rel') return { ...s, end: { kind: 'rel', ms: e.ms, blocking: true } };
  return { ...s, end: { ...e, blocking: sep === '...' } };
}

// ---------------------------------------------------------------------------------------------------------
// Packets

class Cursor {
  constructor(
    public s: string,
    readonly fail: (msg: string) => never,
  ) {}
  skip(): void {
    this.s = this.s.replace(/^\s+/, '');
  }
  /** Consumes a match of `re` (anchored) and returns it, or undefined. */
  take(re: RegExp): RegExpExecArray | undefined {
    this.skip();
    const m = re.exec(this.s);
    if (!m || m.index !== 0) return undefined;
    this.s = this.s.slice(m[0].length);
    return m;
  }
  need(re: RegExp, what: string): RegExpExecArray {
    return this.take(re) ?? this.fail(`expected ${what} at "${clip(this.s) || 'end of line'}"`);
  }
  get done(): boolean {
    return this.s.trim() === '';
  }
}

function parsePacket(text: string, fail: (msg: string) => never): PacketAction {
  const c = new Cursor(text.slice(1), fail);
  const direction = text[0] === '<' ? ('in' as const) : ('out' as const);
  let ip: IpInfo = {};
  let echoedFirst: IcmpPacketSpec['echoed'];
  // `[ect0]`, `(tos 0x..)`, `(ttl N)`, `(flowlabel 0x..)`, in brackets or parentheses; in the old ICMP syntax
  // `[seq:end(len)]` comes before "icmp".
  const IP_INFO = /^\[([^\]]*)\]|^\(([^)]*)\)/;
  for (let m = c.take(IP_INFO); m; m = c.take(IP_INFO)) {
    const inner = (m[1] ?? m[2]!).trim();
    const echoed = parseEchoed(inner);
    if (echoed) echoedFirst = echoed;
    else ip = { ...ip, ...parseIpInfo(inner, fail) };
  }
  // Encapsulations (an outer IP header, GRE, MPLS) are read but not built: the packet says so and the runner
  // reports the script as unsupported, where a parse error would hide what the script is about.
  const encap = c.take(/^(ipv4|ipv6)\b[^:]*:|^(gre|GREv0)\b[^:]*:|^mpls\b(?:\s*\([^)]*\))*\s*:|^encap\s+psp\b\s*spi\s+\S+/);
  if (encap) {
    const what = encap[0].split(/[\s(:]/)[0]!;
    return { type: 'packet', direction, ip, packet: { proto: 'unsupported', what: `${what} encapsulation`, text: text.slice(1).trim() } };
  }
  if (c.take(/^udp\b/)) {
    const m = c.need(/^\(\s*(\d+)\s*\)/, 'the UDP payload length "(N)"');
    if (!c.done) fail(`unexpected text after the UDP packet: "${clip(c.s)}"`);
    return { type: 'packet', direction, ip, packet: { proto: 'udp', len: Number(m[1]) } };
  }
  if (c.take(/^icmp\b/)) {
    const type = c.need(/^[a-z_0-9]+/, 'an ICMP type')[0];
    const code = c.take(/^(?!mtu\b)[a-z_][a-z_0-9]*/)?.[0];
    const mtu = c.take(/^mtu\s+(\d+)/);
    let echoed = echoedFirst;
    const e = c.take(/^\[([^\]]*)\]/);
    if (e) echoed = parseEchoed(e[1]!.trim()) ?? fail(`expected the quoted segment "[seq:end(len)]" or "[udp (len)]"`);
    if (!c.done) fail(`unexpected text after the ICMP packet: "${clip(c.s)}"`);
    const packet: IcmpPacketSpec = { proto: 'icmp', type, code, mtu: mtu ? Number(mtu[1]) : undefined, echoed };
    return { type: 'packet', direction, ip, packet };
  }
  const ports = c.take(/^(\d+)\s*>\s*(\d+)(?=\s)/);
  if (ports) return { type: 'packet', direction, ip, packet: { proto: 'unsupported', what: 'explicit ports "SRC > DST"', text: text.slice(1).trim() } };
  let flags = c.need(/^(?:[SFRPEWUA]*\.?\d*|-)(?=\s)/, 'TCP flags (S, F, R, P, ., E, W, U, or - for none) or "udp"/"icmp"')[0];
  if (flags === '-') flags = '';
  else if (/\d/.test(flags)) return { type: 'packet', direction, ip, packet: { proto: 'unsupported', what: `AccECN ACE field "${flags}"`, text: text.slice(1).trim() } };
  let seq: number | null = null;
  let end: number | null = null;
  let len: number;
  const sq = c.take(/^(\d+):(\d+)\((\d+)\)/);
  if (sq) {
    seq = Number(sq[1]);
    end = Number(sq[2]);
    len = Number(sq[3]);
    if (!inU32(seq) || !inU32(end)) fail('sequence numbers must fit in 32 bits');
    if (((end - seq) >>> 0) !== len) fail(`sequence range ${seq}:${end} does not match the length (${len})`);
  } else {
    len = Number(c.need(/^\.\.\.\((\d+)\)/, 'a sequence range "start:end(len)"')[1]);
  }
  let ack: number | undefined;
  let win: number | undefined;
  let urg: number | undefined;
  let options: TcpPacketSpec['options'];
  for (;;) {
    if (c.done) break;
    let m: RegExpExecArray | undefined;
    if ((m = c.take(/^ack\s+(\d+)/))) ack = Number(m[1]);
    else if ((m = c.take(/^win\s+(\d+)/))) win = Number(m[1]);
    else if ((m = c.take(/^urg\s+(\d+)/))) urg = Number(m[1]);
    else if ((m = c.take(/^<([^>]*)>/))) options = parseTcpOptions(m[1]!, fail);
    else fail(`expected "ack N", "win N", "urg N" or "<options>" at "${clip(c.s)}"`);
  }
  if (ack !== undefined && !inU32(ack)) fail('ack must fit in 32 bits');
  if (win !== undefined && win > 0xffff) fail('win must fit in 16 bits');
  return { type: 'packet', direction, ip, packet: { proto: 'tcp', flags, seq, end, len, ack, win, urg, options } };
}

function inU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function parseEchoed(inner: string): IcmpPacketSpec['echoed'] | undefined {
  let m = /^(\d+):(\d+)\((\d+)\)$/.exec(inner);
  if (m) return { proto: 'tcp', seq: Number(m[1]), end: Number(m[2]), len: Number(m[3]) };
  m = /^udp\s*\(\s*(\d+)\s*\)$/.exec(inner);
  if (m) return { proto: 'udp', len: Number(m[1]) };
  return undefined;
}

const ECN: Record<string, number | 'ect01'> = { noecn: 0, ect1: 1, ect0: 2, ce: 3, ect01: 'ect01' };

function parseIpInfo(inner: string, fail: (msg: string) => never): IpInfo {
  let ip: IpInfo = {};
  for (const part of inner.split(',').map((p) => p.trim())) {
    let m: RegExpExecArray | null;
    if (part in ECN) ip = { ...ip, ecn: ECN[part] };
    else if ((m = /^tos\s+(0x[0-9a-fA-F]+|\d+)$/.exec(part))) ip = { ...ip, tos: Number(m[1]) };
    else if ((m = /^ttl\s+(\d+)$/.exec(part))) ip = { ...ip, ttl: Number(m[1]) };
    else if ((m = /^flowlabel\s+(0x[0-9a-fA-F]+|\d+)$/.exec(part))) ip = { ...ip, flowlabel: Number(m[1]) };
    else if ((m = /^frag\s+(\d+)$/.exec(part))) ip = { ...ip, frag: Number(m[1]) };
    else fail(`expected [noecn], [ect0], [ect1], [ect01], [ce], (tos N), (ttl N), (flowlabel N) or [frag N], found [${inner}]`);
  }
  if (ip.tos !== undefined && ip.tos > 0xff) fail('tos out of range for 8 bits');
  if (ip.ttl !== undefined && ip.ttl > 0xff) fail('ttl out of range for 8 bits');
  if (ip.flowlabel !== undefined && ip.flowlabel > 0xfffff) fail('flowlabel out of range for 20 bits');
  return ip;
}

function parseTcpOptions(inner: string, fail: (msg: string) => never): TcpOptionSpec[] | 'any' {
  if (inner.trim() === '...') return 'any';
  const out: TcpOptionSpec[] = [];
  for (const raw of inner.split(',')) {
    const o = raw.trim().replace(/\s+/g, ' ');
    let m: RegExpExecArray | null;
    if (o === 'nop') out.push({ kind: 'nop' });
    else if (o === 'eol') out.push({ kind: 'eol' });
    else if (o === 'sackOK') out.push({ kind: 'sackOK' });
    else if ((m = /^mss (\d+)$/.exec(o))) out.push({ kind: 'mss', value: Number(m[1]) });
    else if ((m = /^wscale (\d+)$/.exec(o))) out.push({ kind: 'wscale', value: Number(m[1]) });
    else if ((m = /^TS val (\d+) ecr (\d+)$/.exec(o))) out.push({ kind: 'TS', val: Number(m[1]), ecr: Number(m[2]) });
    else if ((m = /^(FO|FOEXP|md5)(?: ([0-9A-Za-z]*))?$/.exec(o))) {
      // TCP Fast Open (kind 34, RFC 7413), its experimental form (kind 254, magic 0xF989), TCP-MD5 (kind 19):
      // hex bytes as written, odd or invalid digits refused as upstream does.
      const hex = m[2] ?? '';
      if (hex.length % 2 || !/^[0-9a-fA-F]*$/.test(hex)) fail(`${m[1]} value "${hex}" is not an even number of hex digits`);
      const data = new Uint8Array(hex.length / 2).map((_, k) => parseInt(hex.slice(2 * k, 2 * k + 2), 16));
      if (m[1] === 'FO') out.push({ kind: 'raw', code: 34, data });
      else if (m[1] === 'FOEXP') out.push({ kind: 'raw', code: 254, data: new Uint8Array([0xf9, 0x89, ...data]) });
      else out.push({ kind: 'raw', code: 19, data });
    } else if (/^ECN\b/.test(o)) out.push({ kind: 'unsupported', text: o });
    else if ((m = /^sack((?: \d+:\d+)*)$/.exec(o))) {
      const blocks = m[1]!.trim() === '' ? [] : m[1]!.trim().split(' ').map((b) => b.split(':').map(Number) as [number, number]);
      out.push({ kind: 'sack', blocks });
    } else fail(`unknown TCP option "${o}" (known: mss, wscale, sackOK, sack a:b, TS val X ecr Y, FO, FOEXP, md5, nop, eol, ...)`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// System calls

type Tok = { k: 'num'; v: number } | { k: 'id'; v: string } | { k: 'str'; v: string } | { k: 'p'; v: string };

function tokenize(s: string, fail: (msg: string) => never): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const rest = s.slice(i);
    let m: RegExpExecArray | null;
    if (rest.startsWith('...')) {
      out.push({ k: 'p', v: '...' });
      i += 3;
    } else if ((m = /^(0x[0-9a-fA-F]+|\d+)/.exec(rest))) {
      out.push({ k: 'num', v: Number(m[1]) });
      i += m[0].length;
    } else if ((m = /^[A-Za-z_]\w*/.exec(rest))) {
      out.push({ k: 'id', v: m[0] });
      i += m[0].length;
    } else if (c === '"') {
      const end = s.indexOf('"', i + 1);
      if (end < 0) fail('unterminated string');
      out.push({ k: 'str', v: s.slice(i + 1, end) });
      i = end + 1;
    } else if ('()[]{},=|-'.includes(c)) {
      out.push({ k: 'p', v: c });
      i++;
    } else fail(`unexpected character "${c}" in a system call`);
  }
  return out;
}

function parseSyscall(text: string, fail: (msg: string) => never): SyscallAction {
  // The result's note "(text)" is free text: cut it off before tokenizing.
  const eq = findResultEquals(text);
  if (eq < 0) fail('expected "= result" after the system call');
  const callText = text.slice(0, eq);
  let resultText = text.slice(eq + 1).trim();
  let note: string | undefined;
  const paren = resultText.indexOf('(');
  if (paren >= 0) {
    if (!resultText.endsWith(')')) fail('expected ")" closing the note after the result');
    note = resultText.slice(paren + 1, -1).trim();
    resultText = resultText.slice(0, paren).trim();
  }
  const toks = tokenize(callText, fail);
  let p = 0;
  const peek = () => toks[p];
  const isP = (v: string) => toks[p]?.k === 'p' && toks[p]!.v === v;
  const expectP = (v: string) => {
    if (!isP(v)) fail(`expected "${v}" in the system call, found ${describe(toks[p])}`);
    p++;
  };
  const name = (toks[p++] as { v: string }).v;
  expectP('(');
  const parseExpr = (): Expr => {
    const first = parseAtom();
    if (!isP('|')) return first;
    const items = [first];
    while (isP('|')) {
      p++;
      items.push(parseAtom());
    }
    return { t: 'or', items };
  };
  const parseList = (close: string): Expr[] => {
    const items: Expr[] = [];
    if (isP(close)) {
      p++;
      return items;
    }
    for (;;) {
      items.push(parseExpr());
      if (isP(',')) {
        p++;
        continue;
      }
      expectP(close);
      return items;
    }
  };
  const parseAtom = (): Expr => {
    const t = peek() ?? fail('unexpected end of the system call');
    p++;
    if (t.k === 'num') return { t: 'int', v: t.v };
    if (t.k === 'str') return { t: 'str', v: t.v };
    if (t.k === 'id') {
      if (isP('(')) {
        p++;
        return { t: 'call', name: t.v, args: parseList(')') };
      }
      return { t: 'ident', name: t.v };
    }
    if (t.v === '-') {
      const n = peek();
      if (n?.k !== 'num') fail('expected a number after "-"');
      p++;
      return { t: 'int', v: -(n as { v: number }).v };
    }
    if (t.v === '...') return { t: 'ellipsis' };
    if (t.v === '[') return { t: 'list', items: parseList(']') };
    if (t.v === '{') {
      const fields: StructField[] = [];
      if (isP('}')) {
        p++;
        return { t: 'struct', fields };
      }
      for (;;) {
        // name=value, name(N)=value, or a bare value.
        const save = p;
        let field: StructField | undefined;
        const t0 = peek();
        if (t0?.k === 'id') {
          p++;
          let count: number | undefined;
          // name(N)= or name(...)= : an array length, or any.
          const inner = toks[p + 1];
          const countable = inner?.k === 'num' || (inner?.k === 'p' && inner.v === '...');
          if (isP('(') && countable && toks[p + 2]?.k === 'p' && toks[p + 2]!.v === ')' && toks[p + 3]?.k === 'p' && toks[p + 3]!.v === '=') {
            count = inner!.k === 'num' ? inner.v : undefined;
            p += 3;
          }
          if (isP('=')) {
            p++;
            field = { name: t0.v, count, value: parseExpr() };
          } else p = save;
        }
        fields.push(field ?? { value: parseExpr() });
        if (isP(',')) {
          p++;
          continue;
        }
        expectP('}');
        return { t: 'struct', fields };
      }
    }
    return fail(`unexpected ${describe(t)} in the system call arguments`);
  };
  const args = parseList(')');
  if (p !== toks.length) fail(`unexpected ${describe(toks[p])} after the system call`);
  let result: number | undefined;
  let errno: string | undefined;
  if (resultText !== '...') {
    const m = /^(-?(?:0x[0-9a-fA-F]+|\d+))(?:\s+([A-Z][A-Z0-9_]*))?$/.exec(resultText) ?? fail(`expected a result "N" or "-1 ERRNO", found "${clip(resultText)}"`);
    result = Number(m[1]!.replace(/^-/, '')) * (m[1]!.startsWith('-') ? -1 : 1);
    errno = m[2];
    // "-1" alone is upstream's too: the call must fail, with any errno.
  }
  return { type: 'syscall', name, args, result, errno, note };
}

/** Index of the "=" that separates the call from its result (the first one outside brackets). */
function findResultEquals(text: string): number {
  let depth = 0;
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') inStr = !inStr;
    if (inStr) continue;
    if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (c === '=' && depth === 0) return i;
  }
  return -1;
}

function describe(t: Tok | undefined): string {
  if (!t) return 'end of line';
  if (t.k === 'str') return `"${t.v}"`;
  return `"${t.v}"`;
}
