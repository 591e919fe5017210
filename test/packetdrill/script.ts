/**
 * The parsed form of a packetdrill script: option lines, then events, each with a time and one action
 * (a packet to inject or expect, a system call, a shell command or a python block). Times are milliseconds.
 */

/** When an event happens, as packetdrill writes it. */
export interface TimeSpec {
  /** `abs`: "0.1"; `rel`: "+0.1" (after the previous event); `any`: "*" (whenever). */
  readonly kind: 'abs' | 'rel' | 'any';
  /** The start in ms (relative for `rel`). */
  readonly ms: number;
  /** "a~b": the event may happen anywhere in [a, b]; "a...b": a blocking call starting at a and returning at b. */
  readonly end?: { readonly kind: 'abs' | 'rel'; readonly ms: number; readonly blocking: boolean };
}

/** A TCP option of a packet line. */
export type TcpOptionSpec =
  | { readonly kind: 'mss'; readonly value: number }
  | { readonly kind: 'wscale'; readonly value: number }
  | { readonly kind: 'sackOK' }
  | { readonly kind: 'sack'; readonly blocks: readonly (readonly [number, number])[] }
  | { readonly kind: 'TS'; readonly val: number; readonly ecr: number }
  | { readonly kind: 'nop' }
  | { readonly kind: 'eol' }
  | { readonly kind: 'raw'; readonly code: number; readonly data: Uint8Array }
  /** An option the runner reads but cannot build or compare (AccECN's `ECN e0b ...`). */
  | { readonly kind: 'unsupported'; readonly text: string };

/** IP-level decorations of a packet line: `[ect0]`, `[ce]`, `(tos 0x10)`, `(ttl 64)`, `(flowlabel 0x1)`. */
export interface IpInfo {
  /** ECN codepoint 0–3 (not-ECT, ECT(1), ECT(0), CE), or 'ect01' for "either ECT". */
  readonly ecn?: number | 'ect01';
  readonly tos?: number;
  readonly ttl?: number;
  /** `(flowlabel N)`: the IPv6 flow label (outbound: checked as packetdrill does, by its first value). */
  readonly flowlabel?: number;
  /** `[frag N]` (runner extension, inbound only): send as IP fragments of N payload bytes. */
  readonly frag?: number;
}

/** A TCP packet line. */
export interface TcpPacketSpec {
  readonly proto: 'tcp';
  /** Flag letters as written: S F R P . E W U A (A and . both mean ACK). */
  readonly flags: string;
  /** Relative sequence start; null for "...". */
  readonly seq: number | null;
  readonly end: number | null;
  readonly len: number;
  readonly ack?: number;
  /** Advertised window; undefined: not checked (outbound) or a default (inbound). */
  readonly win?: number;
  readonly urg?: number;
  /** The options; 'any' for `<...>`; undefined when the line has none. */
  readonly options?: readonly TcpOptionSpec[] | 'any';
}

/** A UDP packet line: `udp (LEN)`. */
export interface UdpPacketSpec {
  readonly proto: 'udp';
  readonly len: number;
}

/** An ICMP packet line: `icmp TYPE [CODE] [mtu N] [seq:end(len)]`. */
export interface IcmpPacketSpec {
  readonly proto: 'icmp';
  readonly type: string;
  readonly code?: string;
  readonly mtu?: number;
  /** The TCP segment (or UDP datagram) the error quotes. */
  readonly echoed?: { readonly proto: 'tcp'; readonly seq: number; readonly end: number; readonly len: number } | { readonly proto: 'udp'; readonly len: number };
}

/** A packet line the runner reads but cannot build or check (GRE, MPLS, an outer IP header): reported per script. */
export interface UnsupportedPacketSpec {
  readonly proto: 'unsupported';
  /** What the runner lacks, for the report. */
  readonly what: string;
  readonly text: string;
}

/** A packet event: `<` injected from the remote host, `>` expected from the DUT. */
export interface PacketAction {
  readonly type: 'packet';
  readonly direction: 'in' | 'out';
  readonly ip: IpInfo;
  readonly packet: TcpPacketSpec | UdpPacketSpec | IcmpPacketSpec | UnsupportedPacketSpec;
}

/** An expression in a system call's arguments or result. */
export type Expr =
  | { readonly t: 'int'; readonly v: number }
  | { readonly t: 'ellipsis' }
  | { readonly t: 'ident'; readonly name: string }
  | { readonly t: 'str'; readonly v: string }
  | { readonly t: 'or'; readonly items: readonly Expr[] }
  | { readonly t: 'list'; readonly items: readonly Expr[] }
  | { readonly t: 'struct'; readonly fields: readonly StructField[] }
  | { readonly t: 'call'; readonly name: string; readonly args: readonly Expr[] };

/** One `name=value` (or bare value) inside `{...}`; `name(N)=...` carries N as count. */
export interface StructField {
  readonly name?: string;
  readonly count?: number;
  readonly value: Expr;
}

/** A system call event: `name(args) = result [ERRNO (text)]`. */
export interface SyscallAction {
  readonly type: 'syscall';
  readonly name: string;
  readonly args: readonly Expr[];
  /** Expected return value; undefined for `= ...` (anything). */
  readonly result?: number;
  /** Expected errno name when result is -1 (undefined: any errno, as a bare "-1" says). */
  readonly errno?: string;
  /** The text in parentheses after the result, kept for messages. */
  readonly note?: string;
}

/** A shell command in backticks. */
export interface ShellAction {
  readonly type: 'shell';
  readonly command: string;
}

/** A `%{ ... }%` python block. */
export interface CodeAction {
  readonly type: 'code';
  readonly code: string;
}

/** One timed line of a script. */
export interface ScriptEvent {
  /** 1-based line number in the file. */
  readonly line: number;
  readonly time: TimeSpec;
  readonly action: PacketAction | SyscallAction | ShellAction | CodeAction;
}

/** A parsed script. */
export interface Script {
  readonly path: string;
  /** `--name=value` option lines (value '' for a bare flag). */
  readonly options: Readonly<Record<string, string>>;
  readonly events: readonly ScriptEvent[];
  /** The command before the first event without a time (packetdrill's init command: runs before time 0). */
  readonly init?: { readonly line: number; readonly command: string };
  /** The command after the last event without a time (packetdrill's cleanup command: runs at the end, always). */
  readonly cleanup?: { readonly line: number; readonly command: string };
  /** Lines removed by `#ifdef` blocks, with the symbol, so a report can show them. */
  readonly ifdefSkipped: readonly { readonly line: number; readonly symbol: string }[];
}

/** A script that does not parse: `file:line: message`. */
export class ParseError extends Error {
  constructor(
    readonly path: string,
    readonly line: number,
    readonly detail: string,
  ) {
    super(`${path}:${line}: ${detail}`);
    this.name = 'ParseError';
  }
}
