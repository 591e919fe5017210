/**
 * Classic BPF socket filters for the AF_PACKET endpoint (lib/packet.ts), built as instruction arrays so that they
 * can be read and tested without a socket: the size split between the ring of MTU-sized slots and the ring of
 * 64 KB slots, the ring for bare SYNs, and, for a PACKET_FANOUT member, the split between the flow-hashed frames and the frames every
 * member of the group needs to see: neighbour discovery (ARP, NDP) and ICMP errors.
 *
 * Why these get a socket of their own: the kernel's flow hash of an ARP frame, or of an ICMP message (which has
 * no ports), sends it to one member, chosen by its addresses: a shard that asked for a neighbour's address would
 * never hear the answer, and an error about one shard's connection (fragmentation needed, unreachable) would
 * reach another. A socket outside the group, filtered to these frames alone, gives each shard a copy.
 *
 * Also the program of a PACKET_FANOUT_CBPF group (steerProgram), which picks the shard by local port instead of
 * the kernel's flow hash, so that a shard can open connections: their replies come back to it.
 */

/** One classic BPF instruction (struct sock_filter). */
export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

// Opcodes (linux/bpf_common.h).
const LD_W_LEN = 0x80; // BPF_LD | BPF_W | BPF_LEN: A = frame length
const LD_H_ABS = 0x28; // BPF_LD | BPF_H | BPF_ABS: A = 16 bits at k (big-endian)
const LD_B_ABS = 0x30; // BPF_LD | BPF_B | BPF_ABS: A = byte at k
const JEQ = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JGE = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET = 0x06; // BPF_RET | BPF_K
const LDX_MSH = 0xb1; // BPF_LDX | BPF_B | BPF_MSH: X = 4 * (byte at k & 0xf), an IPv4 header's length
const LD_B_IND = 0x50; // BPF_LD | BPF_B | BPF_IND: A = byte at X + k
const ADD_K = 0x04; // BPF_ALU | BPF_ADD | BPF_K: A += k
const TAX = 0x07; // BPF_MISC | BPF_TAX: X = A
const TXA = 0x87; // BPF_MISC | BPF_TXA: A = X
const JGE_X = 0x3d; // BPF_JMP | BPF_JGE | BPF_X: A >= X
const LD_W_ABS = 0x20; // BPF_LD | BPF_W | BPF_ABS: A = 32 bits at k (big-endian)
const LD_H_IND = 0x48; // BPF_LD | BPF_H | BPF_IND: A = 16 bits at X + k
const LD_MEM = 0x60; // BPF_LD | BPF_MEM: A = M[k]
const ST = 0x02; // BPF_ST: M[k] = A
const XOR_X = 0xac; // BPF_ALU | BPF_XOR | BPF_X: A ^= X
const MUL_K = 0x24; // BPF_ALU | BPF_MUL | BPF_K: A *= k (32 bits)
const RSH_K = 0x74; // BPF_ALU | BPF_RSH | BPF_K: A >>= k
const MOD_K = 0x94; // BPF_ALU | BPF_MOD | BPF_K: A %= k
const RET_A = 0x16; // BPF_RET | BPF_A: return A
const JA = 0x05; // BPF_JMP | BPF_JA: pc += k

/** The whole frame (the return value of an accepting filter: bytes to keep). */
const ACCEPT_BYTES = 0x40000;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;
const ETHERTYPE_IPV6 = 0x86dd;
const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_ICMPV6 = 58;
const IPPROTO_UDP = 17;
// Offsets from the Ethernet header: IPv4 flags and fragment offset, IPv6 next header, the ICMPv6 type of a
// message with no extension header (NDP's never have one: RFC 4861 §6.1 wants hop limit 255 and nothing between).
const IPV4_FRAG = 14 + 6;
const IPV4_PROTO = 14 + 9;
const IPV6_NEXT = 14 + 6;
const ICMPV6_TYPE = 14 + 40;
// Router solicitation (133) … redirect (137), RFC 4861 §4.
const NDP_FIRST = 133;
const NDP_LAST = 137;
// ICMPv6 errors: destination unreachable (1) … parameter problem (4), RFC 4443 §2.1.
const ICMPV6_ERROR_LAST = 4;
// ICMPv4 errors (RFC 792): destination unreachable, source quench, time exceeded, parameter problem.
const ICMPV4_ERRORS = [3, 4, 11, 12];

// A bare SYN (SYN without ACK or RST) by its TCP flags byte: 14 + 13 past the IP header. The shortest frame that can
// hold one is an Ethernet header, 20 bytes of IPv4 and 20 of TCP; IPv6 needs 40 + 20 (and no extension header).
const TCP_FLAGS = 14 + 13;
const TCP_SYN = 0x02;
const TCP_ACK_RST = 0x10 | 0x04;
const MIN_SYN_FRAME = 14 + 20 + 20;
const MIN_SYN6_FRAME = 14 + 40 + 20;

/** Which frames a filter takes. */
export interface FilterSpec {
  /** Only frames of at most `maxFrame` bytes (`'small'`), only larger ones (`'large'`), or any size. */
  size?: { maxFrame: number; take: 'small' | 'large' };
  /** Leave out what sharedFilter takes (a fanout member: those reach it through its socket for shared frames). */
  noShared?: boolean;
  /** Leave out IPv4 fragments (the group of large frames reassembles them, PACKET_FANOUT_FLAG_DEFRAG). */
  noIpv4Fragments?: boolean;
  /** Leave out what synFilter(`noBareSyns`) takes (they reach the endpoint through its ring for SYNs). */
  noBareSyns?: number;
}

/** A tiny assembler: instructions with symbolic jump targets, resolved to the relative offsets BPF wants. */
class Program {
  private readonly insns: { code: number; k: number; jt?: string; jf?: string; to?: string }[] = [];
  private readonly labels = new Map<string, number>();

  op(code: number, k = 0, jt?: string, jf?: string): this {
    this.insns.push({ code, k, jt, jf });
    return this;
  }

  /** An unconditional jump (BPF_JA: a 32-bit offset in k) to `label`. */
  ja(label: string): this {
    this.insns.push({ code: JA, k: 0, to: label });
    return this;
  }

  /** How many instructions the program has so far. */
  get length(): number {
    return this.insns.length;
  }

  label(name: string): this {
    this.labels.set(name, this.insns.length);
    return this;
  }

  build(): BpfInsn[] {
    return this.insns.map((i, pc) => {
      const rel = (name: string | undefined) => {
        if (name === undefined) return 0;
        const at = this.labels.get(name);
        if (at === undefined || at <= pc || at - pc - 1 > 255) throw new Error(`bad BPF jump to ${name}`);
        return at - pc - 1;
      };
      if (i.to !== undefined) {
        const at = this.labels.get(i.to);
        if (at === undefined || at <= pc) throw new Error(`bad BPF jump to ${i.to}`);
        return { code: i.code, jt: 0, jf: 0, k: at - pc - 1 };
      }
      return { code: i.code, jt: rel(i.jt), jf: rel(i.jf), k: i.k };
    });
  }
}

/**
 * The filter for one packet socket of the endpoint; with nothing asked, one that takes every frame. A load past
 * the end of a frame makes a classic BPF program return 0, so only frames long enough for the headers tested
 * reach those tests (an IPv6 frame is at least 54 bytes, an ICMPv6 one 58).
 */
export function frameFilter(spec: FilterSpec): BpfInsn[] {
  const p = new Program();
  if (spec.size) {
    p.op(LD_W_LEN).op(JGT, spec.size.maxFrame, spec.size.take === 'large' ? 'next' : 'drop', spec.size.take === 'large' ? 'drop' : 'next');
    p.label('next');
  }
  if (spec.noBareSyns !== undefined) {
    bareSyn(p, spec.noBareSyns, 'drop', 'notSyn');
    p.label('notSyn');
  }
  if (spec.noShared || spec.noIpv4Fragments) {
    p.op(LD_H_ABS, 12);
    if (spec.noShared) p.op(JEQ, ETHERTYPE_ARP, 'drop');
    p.op(JEQ, ETHERTYPE_IPV4, 'v4', 'notV4');
    p.label('v4');
    if (spec.noIpv4Fragments) p.op(LD_H_ABS, IPV4_FRAG).op(JSET, 0x3fff, 'drop', spec.noShared ? undefined : 'accept');
    if (spec.noShared) sharedIpv4(p, 'drop', 'accept');
    p.label('notV4');
    if (spec.noShared) sharedIpv6(p, 'drop', 'accept');
  }
  return p.label('accept').op(RET, ACCEPT_BYTES).label('drop').op(RET, 0).build();
}

/**
 * Jumps to `syn` for a bare SYN of at most `maxFrame` bytes that is a whole IPv4 datagram or an IPv6 packet with TCP
 * straight after its header, else to `other`. Every load is guarded by a length test first: a load past a frame's
 * end would end the program with 0, dropping a short frame from the ring of the filter that should take it.
 */
function bareSyn(p: Program, maxFrame: number, syn: string, other: string): void {
  p.op(LD_W_LEN).op(JGT, maxFrame, other).op(JGE, MIN_SYN_FRAME, 'synLong', other);
  p.label('synLong').op(LD_H_ABS, 12).op(JEQ, ETHERTYPE_IPV4, 'syn4', 'syn6');
  p.label('syn4').op(LD_B_ABS, IPV4_PROTO).op(JEQ, IPPROTO_TCP, 'syn4Tcp', other);
  p.label('syn4Tcp').op(LD_H_ABS, IPV4_FRAG).op(JSET, 0x3fff, other);
  // The flags byte lies past the IPv4 options: the frame must hold 14 + header length + 14 bytes.
  p.op(LDX_MSH, 14).op(TXA).op(ADD_K, TCP_FLAGS + 1).op(TAX).op(LD_W_LEN).op(JGE_X, 0, 'syn4Flags', other);
  p.label('syn4Flags').op(LDX_MSH, 14).op(LD_B_IND, TCP_FLAGS).op(JSET, TCP_ACK_RST, other).op(JSET, TCP_SYN, syn, other);
  p.label('syn6').op(JEQ, ETHERTYPE_IPV6, 'syn6Len', other);
  p.label('syn6Len').op(LD_W_LEN).op(JGE, MIN_SYN6_FRAME, 'syn6Next', other);
  p.label('syn6Next').op(LD_B_ABS, IPV6_NEXT).op(JEQ, IPPROTO_TCP, 'syn6Flags', other);
  p.label('syn6Flags').op(LD_B_ABS, 14 + 40 + 13).op(JSET, TCP_ACK_RST, other).op(JSET, TCP_SYN, syn, other);
}

/**
 * The filter of the endpoint's ring for SYNs: bare SYNs (no ACK, no RST) of at most `maxFrame` bytes, IPv4 ones not
 * fragments, IPv6 ones with no extension header. A SYN flood fills this ring alone, and the endpoint drains it after
 * the others, so the segments of connections already made (and the ACKs completing handshakes) are neither dropped
 * in a full ring nor kept waiting behind a backlog of SYNs.
 */
export function synFilter(maxFrame: number): BpfInsn[] {
  const p = new Program();
  bareSyn(p, maxFrame, 'accept', 'drop');
  return p.label('accept').op(RET, ACCEPT_BYTES).label('drop').op(RET, 0).build();
}

/**
 * Jumps to `shared` for an IPv4 ICMP error (not a later fragment, whose ICMP header is elsewhere), else to
 * `other`; A holds anything on entry.
 */
function sharedIpv4(p: Program, shared: string, other: string): void {
  p.op(LD_B_ABS, IPV4_PROTO).op(JEQ, IPPROTO_ICMP, 'icmp4', other);
  p.label('icmp4').op(LD_H_ABS, IPV4_FRAG).op(JSET, 0x1fff, other);
  p.op(LDX_MSH, 14).op(LD_B_IND, 14);
  ICMPV4_ERRORS.forEach((type, i) => p.op(JEQ, type, shared, i === ICMPV4_ERRORS.length - 1 ? other : undefined));
}

/** With the ethertype in A: jumps to `shared` for an NDP message or an ICMPv6 error, else to `other`. */
function sharedIpv6(p: Program, shared: string, other: string): void {
  p.op(JEQ, ETHERTYPE_IPV6, 'v6', other);
  p.label('v6').op(LD_B_ABS, IPV6_NEXT).op(JEQ, IPPROTO_ICMPV6, 'icmp6', other);
  p.label('icmp6').op(LD_B_ABS, ICMPV6_TYPE).op(JGT, ICMPV6_ERROR_LAST, 'info6', shared);
  p.label('info6').op(JGE, NDP_FIRST, 'ndpHigh', other);
  p.label('ndpHigh').op(JGT, NDP_LAST, other, shared);
}

/**
 * The filter of a fanout member's socket for shared frames, which every member gets a copy of: ARP, NDP (ICMPv6
 * types 133 to 137 without an extension header, as RFC 4861 sends them) and ICMP errors of either version.
 */
export function sharedFilter(): BpfInsn[] {
  const p = new Program();
  p.op(LD_H_ABS, 12).op(JEQ, ETHERTYPE_ARP, 'accept');
  p.op(JEQ, ETHERTYPE_IPV4, 'v4', 'notV4');
  p.label('v4');
  sharedIpv4(p, 'accept', 'drop');
  p.label('notV4');
  sharedIpv6(p, 'accept', 'drop');
  return p.label('accept').op(RET, ACCEPT_BYTES).label('drop').op(RET, 0).build();
}

/**
 * How a PACKET_FANOUT_CBPF group picks the member (shard) for a frame: by the port that names the socket the
 * frame is for. A port every shard serves (`replicated`: its listeners, as `serve --threads` runs its services,
 * or UDP sockets on every shard) has no owner, and the remote's address and port pick the shard, so that a
 * connection's segments all reach the shard that accepted it. A port pinned to a shard is that shard's (a socket
 * bound to it by number). Any other local port is one shard's: the shard `port % shards`, which is why a shard
 * that opens a connection takes its ephemeral port from its own residue class (netstack
 * PortManager.setEphemeralShare): the replies then come back to it, wherever the kernel's flow hash would have
 * sent them. ICMP echo replies go by their identifier the same way (a shard's ping sockets);
 * anything else (ARP, other ICMP, later fragments, IPv6 with extension headers) to shard 0. Frames every shard
 * needs (ARP, NDP, ICMP errors) reach each one through its socket outside the group, whatever this says.
 */
export interface SteerSpec {
  shards: number;
  /** Local ports that every shard serves, per protocol. */
  replicated: { tcp: readonly number[]; udp: readonly number[] };
  /**
   * Local ports that belong to a shard other than their residue's, as [port, shard], per protocol: a socket bound
   * to a port by number stays on the shard that made it, and the port is pinned there.
   */
  pinned?: { tcp?: readonly (readonly [number, number])[]; udp?: readonly (readonly [number, number])[] };
}

/**
 * The longest list of replicated (or of pinned) ports per protocol: the program tests each list for IPv4 and for
 * IPv6, at one instruction a replicated port and two a pinned one, within the kernel's 4096 (BPF_MAXINSNS).
 */
export const MAX_REPLICATED_PORTS = 200;

// A multiplier that spreads the remote's address and port over the high bits (2^32 / golden ratio, Knuth's).
const SPREAD = 0x9e3779b1;
// Offsets in an IPv6 packet (the program sees frames from the network header on, not the Ethernet header).
const V6_NEXT = 6;
const V6_SRC = 8;
const V6_L4 = 40;

/**
 * The classic BPF program of a PACKET_FANOUT_CBPF group that steers frames as SteerSpec says. The kernel runs
 * a fanout program on the frame from its network header on (not its Ethernet header, which socket filters see)
 * and takes its result modulo the members; members are numbered by the order they joined, so shard i must be the
 * i-th to join every group of the endpoint. A load past a frame's end makes the program return 0 (shard 0).
 */
export function steerProgram(spec: SteerSpec): BpfInsn[] {
  const n = spec.shards;
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new RangeError(`shards must be 1..256, not ${n}`);
  const pins = { tcp: spec.pinned?.tcp ?? [], udp: spec.pinned?.udp ?? [] };
  for (const proto of ['tcp', 'udp'] as const) {
    const list = spec.replicated[proto];
    if (list.length > MAX_REPLICATED_PORTS) throw new RangeError(`at most ${MAX_REPLICATED_PORTS} replicated ${proto} ports, not ${list.length}`);
    if (pins[proto].length > MAX_REPLICATED_PORTS) throw new RangeError(`at most ${MAX_REPLICATED_PORTS} pinned ${proto} ports, not ${pins[proto].length}`);
    for (const port of [...list, ...pins[proto].map(([port]) => port)]) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`bad ${proto} port ${port}`);
    }
    for (const [port, shard] of pins[proto]) {
      if (!Number.isInteger(shard) || shard < 0 || shard >= n) throw new RangeError(`${proto} port ${port} pinned to shard ${shard} of ${n}`);
    }
  }
  const p = new Program();
  // Conditional jumps reach 255 instructions and the port lists are long: each one goes to an unconditional
  // jump (a 32-bit offset) right after its test.
  // Version nibble: 4 or 6 (ARP's first byte, its hardware type's high half, is 0).
  p.op(LD_B_ABS, 0).op(RSH_K, 4).op(JEQ, 4, 'isV4').op(JEQ, 6, 'isV6').ja('zero');
  p.label('isV4').ja('v4').label('isV6').ja('v6');

  // IPv4: a later fragment has no ports; X = header length, M[0] = the source address.
  p.label('v4').op(LD_H_ABS, 6).op(JSET, 0x1fff, 'v4Zero');
  p.op(LD_W_ABS, 12).op(ST, 0).op(LDX_MSH, 0).op(LD_B_ABS, 9);
  p.op(JEQ, IPPROTO_TCP, 'isTcp4').op(JEQ, IPPROTO_UDP, 'isUdp4').op(JEQ, IPPROTO_ICMP, 'isIcmp4');
  p.label('v4Zero').ja('zero').label('isTcp4').ja('tcp4').label('isUdp4').ja('udp4').label('isIcmp4');
  p.op(LD_B_IND, 0).op(JEQ, 0, 'echo4').ja('zero'); // echo reply
  p.label('echo4').op(LD_H_IND, 4).op(MOD_K, n).op(RET_A);
  p.label('tcp4').op(LD_H_IND, 2);
  portTests(p, spec.replicated.tcp, pins.tcp, 'remote4');
  p.label('udp4').op(LD_H_IND, 2);
  portTests(p, spec.replicated.udp, pins.udp, 'remote4');
  p.label('remote4').op(LD_H_IND, 0).op(TAX).op(LD_MEM, 0).ja('remote');

  // IPv6 without extension headers: M[0] = the four words of the source address folded by XOR.
  p.label('v6').op(LD_W_ABS, V6_SRC).op(TAX);
  for (let w = 1; w < 4; w++) p.op(LD_W_ABS, V6_SRC + 4 * w).op(XOR_X).op(TAX);
  p.op(TXA).op(ST, 0).op(LD_B_ABS, V6_NEXT);
  p.op(JEQ, IPPROTO_TCP, 'isTcp6').op(JEQ, IPPROTO_UDP, 'isUdp6').op(JEQ, IPPROTO_ICMPV6, 'isIcmp6');
  p.ja('zero').label('isTcp6').ja('tcp6').label('isUdp6').ja('udp6').label('isIcmp6');
  p.op(LD_B_ABS, V6_L4).op(JEQ, 129, 'echo6').ja('zero'); // echo reply
  p.label('echo6').op(LD_H_ABS, V6_L4 + 4).op(MOD_K, n).op(RET_A);
  p.label('tcp6').op(LD_H_ABS, V6_L4 + 2);
  portTests(p, spec.replicated.tcp, pins.tcp, 'remote6');
  p.label('udp6').op(LD_H_ABS, V6_L4 + 2);
  portTests(p, spec.replicated.udp, pins.udp, 'remote6');
  p.label('remote6').op(LD_H_ABS, V6_L4).op(TAX).op(LD_MEM, 0);

  // A = the (folded) source address, X = the source port: (address · SPREAD ^ port) · SPREAD, its high half.
  p.label('remote').op(MUL_K, SPREAD).op(XOR_X).op(MUL_K, SPREAD).op(RSH_K, 16).op(MOD_K, n).op(RET_A);
  // A holds the local (destination) port: its residue names the shard.
  p.label('own').op(MOD_K, n).op(RET_A);
  return p.label('zero').op(RET, 0).build();
}

/**
 * With a destination port in A: goes on to `remote` when it is one of `replicated`, returns the shard of a pinned
 * one, else goes on to `own`. The replicated tests jump to an unconditional jump right after them, whose 32-bit
 * offset reaches past any list (a conditional jump reaches 255 instructions).
 */
function portTests(p: Program, replicated: readonly number[], pinned: readonly (readonly [number, number])[], remote: string): void {
  const id = p.length;
  replicated.forEach((port) => p.op(JEQ, port, `hit${id}`));
  p.ja(`pins${id}`).label(`hit${id}`).ja(remote).label(`pins${id}`);
  pinned.forEach(([port, shard], i) => p.op(JEQ, port, undefined, `pin${id}.${i}`).op(RET, shard).label(`pin${id}.${i}`));
  p.ja('own');
}

/** Encodes instructions as the array of struct sock_filter (8 bytes each, host byte order) a sock_fprog points to. */
export function encodeFilter(prog: readonly BpfInsn[]): Uint8Array {
  const out = new Uint8Array(prog.length * 8);
  const v = new DataView(out.buffer);
  prog.forEach((i, n) => {
    v.setUint16(n * 8, i.code, true);
    v.setUint8(n * 8 + 2, i.jt);
    v.setUint8(n * 8 + 3, i.jf);
    v.setUint32(n * 8 + 4, i.k, true);
  });
  return out;
}

/**
 * Runs a program built here over `frame` as the kernel would (only the opcodes above): for a socket filter the
 * bytes kept, 0 for a dropped frame; for a fanout program (given the frame from its network header on) the member.
 * For tests, and to explain a filter's verdict on a captured frame.
 */
export function runFilter(prog: readonly BpfInsn[], frame: Uint8Array): number {
  let a = 0;
  let x = 0;
  const mem = new Uint32Array(16);
  for (let pc = 0; pc < prog.length; pc++) {
    const i = prog[pc]!;
    switch (i.code) {
      case LD_W_LEN:
        a = frame.length;
        break;
      case LD_H_ABS:
        if (i.k + 2 > frame.length) return 0;
        a = (frame[i.k]! << 8) | frame[i.k + 1]!;
        break;
      case LD_B_ABS:
        if (i.k + 1 > frame.length) return 0;
        a = frame[i.k]!;
        break;
      case LDX_MSH:
        if (i.k + 1 > frame.length) return 0;
        x = 4 * (frame[i.k]! & 0x0f);
        break;
      case LD_B_IND:
        if (x + i.k + 1 > frame.length) return 0;
        a = frame[x + i.k]!;
        break;
      case LD_W_ABS:
        if (i.k + 4 > frame.length) return 0;
        a = ((frame[i.k]! << 24) | (frame[i.k + 1]! << 16) | (frame[i.k + 2]! << 8) | frame[i.k + 3]!) >>> 0;
        break;
      case LD_H_IND:
        if (x + i.k + 2 > frame.length) return 0;
        a = (frame[x + i.k]! << 8) | frame[x + i.k + 1]!;
        break;
      case LD_MEM:
        a = mem[i.k]!;
        break;
      case ST:
        mem[i.k] = a;
        break;
      case XOR_X:
        a = (a ^ x) >>> 0;
        break;
      case MUL_K:
        a = Math.imul(a, i.k) >>> 0;
        break;
      case RSH_K:
        a = a >>> i.k;
        break;
      case MOD_K:
        a = a % i.k;
        break;
      case JA:
        pc += i.k;
        break;
      case RET_A:
        return a;
      case ADD_K:
        a = (a + i.k) >>> 0;
        break;
      case TAX:
        x = a;
        break;
      case TXA:
        a = x;
        break;
      case JGE_X:
        pc += a >= x ? i.jt : i.jf;
        break;
      case JEQ:
      case JGT:
      case JGE:
      case JSET: {
        const taken = i.code === JEQ ? a === i.k : i.code === JGT ? a > i.k : i.code === JGE ? a >= i.k : (a & i.k) !== 0;
        pc += taken ? i.jt : i.jf;
        break;
      }
      case RET:
        return i.k;
      default:
        throw new Error(`opcode ${i.code} is not one of ours`);
    }
  }
  return 0;
}
