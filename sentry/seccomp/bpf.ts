/**
 * A small classic-BPF assembler with forward labels, and the `struct sock_filter` encoding a seccomp filter is
 * loaded as (linux/filter.h, linux/bpf_common.h). Classic BPF jumps only forward; a conditional jump reaches at
 * most 255 instructions ahead and the kernel takes at most 4096 instructions, so both limits are checked here,
 * where a label names the place, rather than by the kernel's EINVAL at load time.
 */

/** Instruction classes, sizes, modes, operations and sources of linux/bpf_common.h. */
export const BPF = {
  LD: 0x00, LDX: 0x01, ST: 0x02, STX: 0x03, ALU: 0x04, JMP: 0x05, RET: 0x06, MISC: 0x07,
  W: 0x00, H: 0x08, B: 0x10,
  IMM: 0x00, ABS: 0x20, IND: 0x40, MEM: 0x60, LEN: 0x80, MSH: 0xa0,
  ADD: 0x00, SUB: 0x10, MUL: 0x20, DIV: 0x30, OR: 0x40, AND: 0x50, LSH: 0x60, RSH: 0x70, NEG: 0x80, MOD: 0x90,
  XOR: 0xa0,
  JA: 0x00, JEQ: 0x10, JGT: 0x20, JGE: 0x30, JSET: 0x40,
  K: 0x00, X: 0x08, A: 0x10,
  TAX: 0x00, TXA: 0x80,
} as const;

/** The kernel's limit on a classic program's length (BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;

/** Size of one encoded `struct sock_filter`: code u16, jt u8, jf u8, k u32. */
export const SOCK_FILTER_SIZE = 8;

/** One classic-BPF instruction. */
export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** Offsets of `struct seccomp_data` (linux/seccomp.h), the 64 bytes a seccomp filter loads from. */
export const DATA = {
  nr: 0,
  arch: 4,
  ip: 8,
  /** Low 32 bits of args[i] (x86-64 is little-endian). */
  argLo: (i: number): number => 16 + 8 * i,
  /** High 32 bits of args[i]. */
  argHi: (i: number): number => 20 + 8 * i,
  size: 64,
} as const;

/** Where a conditional jump goes: a label defined later, or `null` for the next instruction. */
export type Target = string | null;

interface Pending {
  insn: Insn;
  jt: Target;
  jf: Target;
  /** Label of an unconditional jump, whose offset lives in k. */
  ja?: string;
}

/** Builds a program instruction by instruction; `assemble()` resolves the labels into offsets. */
export class Assembler {
  private readonly code: Pending[] = [];
  private readonly labels = new Map<string, number>();

  /** The number of instructions emitted so far. */
  get length(): number {
    return this.code.length;
  }

  /** Defines `name` at the next instruction emitted. */
  label(name: string): this {
    if (this.labels.has(name)) throw new Error(`bpf: label "${name}" defined twice`);
    this.labels.set(name, this.code.length);
    return this;
  }

  /** Whether `name` has been defined. */
  has(name: string): boolean {
    return this.labels.has(name);
  }

  /** A = the 32-bit word at offset `off` of the input (seccomp_data). */
  ldAbs(off: number): this {
    return this.op(BPF.LD | BPF.W | BPF.ABS, off);
  }

  /** A = k. */
  ldImm(k: number): this {
    return this.op(BPF.LD | BPF.IMM, k);
  }

  /** A = A & k. */
  and(k: number): this {
    return this.op(BPF.ALU | BPF.AND | BPF.K, k);
  }

  /** Jump to `t` when A == k, else to `f`. */
  jeq(k: number, t: Target, f: Target = null): this {
    return this.jump(BPF.JEQ, k, t, f);
  }

  /** Jump to `t` when A > k (unsigned), else to `f`. */
  jgt(k: number, t: Target, f: Target = null): this {
    return this.jump(BPF.JGT, k, t, f);
  }

  /** Jump to `t` when A >= k (unsigned), else to `f`. */
  jge(k: number, t: Target, f: Target = null): this {
    return this.jump(BPF.JGE, k, t, f);
  }

  /** Jump to `t` when A & k != 0, else to `f`. */
  jset(k: number, t: Target, f: Target = null): this {
    return this.jump(BPF.JSET, k, t, f);
  }

  /** Unconditional jump to `label` (32-bit offset). */
  ja(label: string): this {
    this.code.push({ insn: { code: BPF.JMP | BPF.JA, jt: 0, jf: 0, k: 0 }, jt: null, jf: null, ja: label });
    return this;
  }

  /** Returns the constant `k` (for seccomp: an action and its data). */
  ret(k: number): this {
    return this.op(BPF.RET | BPF.K, k);
  }

  /** Appends a raw instruction (for opcodes this class has no method for). */
  raw(insn: Insn): this {
    this.code.push({ insn: { ...insn }, jt: null, jf: null });
    return this;
  }

  /** Resolves labels; throws naming the label when one is undefined, behind, or out of a jump's reach. */
  assemble(): Insn[] {
    if (this.code.length > BPF_MAXINSNS) throw new Error(`bpf: ${this.code.length} instructions, the kernel takes ${BPF_MAXINSNS}`);
    return this.code.map((p, at) => {
      const insn = { ...p.insn };
      if (p.ja !== undefined) insn.k = this.offset(p.ja, at, 0xffffffff);
      else if ((insn.code & 0x07) === BPF.JMP) {
        insn.jt = p.jt === null ? 0 : this.offset(p.jt, at, 255);
        insn.jf = p.jf === null ? 0 : this.offset(p.jf, at, 255);
      }
      return insn;
    });
  }

  private offset(label: string, at: number, max: number): number {
    const to = this.labels.get(label);
    if (to === undefined) throw new Error(`bpf: label "${label}" is never defined`);
    const off = to - at - 1;
    if (off < 0) throw new Error(`bpf: label "${label}" is behind the jump at ${at} (classic BPF jumps forward only)`);
    if (off > max) throw new Error(`bpf: label "${label}" is ${off} instructions from the jump at ${at}, beyond ${max}`);
    return off;
  }

  private op(code: number, k: number): this {
    this.code.push({ insn: { code, jt: 0, jf: 0, k: k >>> 0 }, jt: null, jf: null });
    return this;
  }

  private jump(op: number, k: number, t: Target, f: Target): this {
    this.code.push({ insn: { code: BPF.JMP | op | BPF.K, jt: 0, jf: 0, k: k >>> 0 }, jt: t, jf: f });
    return this;
  }
}

/** Encodes instructions as the `struct sock_filter` array a `struct sock_fprog` points at. */
export function encode(insns: readonly Insn[]): Uint8Array {
  const out = new Uint8Array(insns.length * SOCK_FILTER_SIZE);
  const v = new DataView(out.buffer);
  insns.forEach((i, n) => {
    const o = n * SOCK_FILTER_SIZE;
    v.setUint16(o, i.code, true);
    v.setUint8(o + 2, i.jt);
    v.setUint8(o + 3, i.jf);
    v.setUint32(o + 4, i.k >>> 0, true);
  });
  return out;
}

/** Decodes a `struct sock_filter` array; throws when the length is not a whole number of instructions. */
export function decode(bytes: Uint8Array): Insn[] {
  if (bytes.length % SOCK_FILTER_SIZE !== 0) throw new Error(`bpf: ${bytes.length} bytes is not a whole number of sock_filter`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Insn[] = [];
  for (let o = 0; o < bytes.length; o += SOCK_FILTER_SIZE) {
    out.push({ code: v.getUint16(o, true), jt: v.getUint8(o + 2), jf: v.getUint8(o + 3), k: v.getUint32(o + 4, true) });
  }
  return out;
}

const JMP_NAMES: Record<number, string> = { [BPF.JEQ]: 'jeq', [BPF.JGT]: 'jgt', [BPF.JGE]: 'jge', [BPF.JSET]: 'jset' };

/** One line per instruction, with jump targets as absolute instruction numbers (for debugging a filter). */
export function disassemble(insns: readonly Insn[]): string {
  const hex = (k: number) => `0x${(k >>> 0).toString(16)}`;
  return insns
    .map((i, n) => {
      const cls = i.code & 0x07;
      let s: string;
      if (i.code === (BPF.LD | BPF.W | BPF.ABS)) s = `ld [${i.k}]`;
      else if (i.code === (BPF.LD | BPF.IMM)) s = `ld #${hex(i.k)}`;
      else if (i.code === (BPF.ALU | BPF.AND | BPF.K)) s = `and #${hex(i.k)}`;
      else if (i.code === (BPF.RET | BPF.K)) s = `ret #${hex(i.k)}`;
      else if (i.code === (BPF.JMP | BPF.JA)) s = `ja ${n + 1 + i.k}`;
      else if (cls === BPF.JMP && (i.code & BPF.X) === 0 && JMP_NAMES[i.code & 0xf0]) {
        s = `${JMP_NAMES[i.code & 0xf0]} #${hex(i.k)}, ${n + 1 + i.jt}, ${n + 1 + i.jf}`;
      } else s = `.insn ${hex(i.code)} ${i.jt} ${i.jf} ${hex(i.k)}`;
      return `${String(n).padStart(4)}: ${s}`;
    })
    .join('\n');
}
