/**
 * Classic BPF socket filters for the AF_PACKET endpoint (lib/packet.ts), built as instruction arrays so that they
 * can be read and tested without a socket: the size split between the ring of MTU-sized slots and the ring of
 * 64 KB slots, and, for a PACKET_FANOUT member, the split between the flow-hashed frames and the neighbour
 * discovery frames (ARP, NDP) that every member of the group needs to see.
 *
 * Why neighbour frames get a socket of their own: the kernel's flow hash of an ARP frame (or of an NDP message,
 * which has no ports) sends all of them to one member, so a shard that asked for a neighbour's address would
 * never hear the answer. A socket outside the group, filtered to these frames alone, gives each shard a copy.
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

/** The whole frame (the return value of an accepting filter: bytes to keep). */
const ACCEPT_BYTES = 0x40000;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;
const ETHERTYPE_IPV6 = 0x86dd;
const IPPROTO_ICMPV6 = 58;
// Offsets from the Ethernet header: IPv4 flags and fragment offset, IPv6 next header, the ICMPv6 type of a
// message with no extension header (NDP's never have one: RFC 4861 §6.1 wants hop limit 255 and nothing between).
const IPV4_FRAG = 14 + 6;
const IPV6_NEXT = 14 + 6;
const ICMPV6_TYPE = 14 + 40;
// Router solicitation (133) … redirect (137), RFC 4861 §4.
const NDP_FIRST = 133;
const NDP_LAST = 137;

/** Which frames a filter takes. */
export interface FilterSpec {
  /** Only frames of at most `maxFrame` bytes (`'small'`), only larger ones (`'large'`), or any size. */
  size?: { maxFrame: number; take: 'small' | 'large' };
  /** Leave out ARP and NDP frames (a fanout member: they reach it through its neighbour socket). */
  noNeighbour?: boolean;
  /** Leave out IPv4 fragments (the group of large frames reassembles them, PACKET_FANOUT_FLAG_DEFRAG). */
  noIpv4Fragments?: boolean;
}

/** A tiny assembler: instructions with symbolic jump targets, resolved to the relative offsets BPF wants. */
class Program {
  private readonly insns: { code: number; k: number; jt?: string; jf?: string }[] = [];
  private readonly labels = new Map<string, number>();

  op(code: number, k = 0, jt?: string, jf?: string): this {
    this.insns.push({ code, k, jt, jf });
    return this;
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
  if (spec.noNeighbour || spec.noIpv4Fragments) {
    p.op(LD_H_ABS, 12);
    if (spec.noNeighbour) p.op(JEQ, ETHERTYPE_ARP, 'drop');
    if (spec.noIpv4Fragments) {
      p.op(JEQ, ETHERTYPE_IPV4, 'v4', 'notV4');
      p.label('v4').op(LD_H_ABS, IPV4_FRAG).op(JSET, 0x3fff, 'drop', 'accept');
      p.label('notV4');
    }
    if (spec.noNeighbour) {
      p.op(JEQ, ETHERTYPE_IPV6, 'v6', 'accept');
      p.label('v6').op(LD_B_ABS, IPV6_NEXT).op(JEQ, IPPROTO_ICMPV6, 'icmp6', 'accept');
      p.label('icmp6').op(LD_B_ABS, ICMPV6_TYPE).op(JGE, NDP_FIRST, 'ndpHigh', 'accept');
      p.label('ndpHigh').op(JGT, NDP_LAST, 'accept', 'drop');
    }
  }
  return p.label('accept').op(RET, ACCEPT_BYTES).label('drop').op(RET, 0).build();
}

/** The filter of a fanout member's neighbour socket: ARP and NDP frames only. */
export function neighbourFilter(): BpfInsn[] {
  const p = new Program();
  p.op(LD_H_ABS, 12).op(JEQ, ETHERTYPE_ARP, 'accept', 'ip6');
  p.label('ip6').op(JEQ, ETHERTYPE_IPV6, 'v6', 'drop');
  p.label('v6').op(LD_B_ABS, IPV6_NEXT).op(JEQ, IPPROTO_ICMPV6, 'icmp6', 'drop');
  p.label('icmp6').op(LD_B_ABS, ICMPV6_TYPE).op(JGE, NDP_FIRST, 'ndpHigh', 'drop');
  p.label('ndpHigh').op(JGT, NDP_LAST, 'drop', 'accept');
  return p.label('accept').op(RET, ACCEPT_BYTES).label('drop').op(RET, 0).build();
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
 * Runs a program built here over `frame` as the kernel would (only the opcodes above): the bytes kept, 0 for a
 * dropped frame. For tests, and to explain a filter's verdict on a captured frame.
 */
export function runFilter(prog: readonly BpfInsn[], frame: Uint8Array): number {
  let a = 0;
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
