/**
 * A classic-BPF interpreter over `struct seccomp_data`, with the kernel's load-time checks for seccomp programs
 * (seccomp_check_filter and bpf_check_classic): the instructions seccomp accepts, word loads aligned inside the
 * 64 bytes, jumps in range, no constant division by zero, scratch memory written before it is read, a return at
 * the end. Tests run a policy through it for every call number instead of trusting the assembler's output.
 */
import { BPF, DATA, type Insn } from './bpf.ts';

/** The input a seccomp filter sees for one system call. */
export interface SeccompData {
  nr: number;
  arch: number;
  ip?: bigint;
  /** Up to six arguments; missing ones are 0. */
  args?: readonly (bigint | number)[];
}

/** Encodes a `struct seccomp_data` (64 bytes, little-endian). */
export function encodeSeccompData(d: SeccompData): Uint8Array {
  const out = new Uint8Array(DATA.size);
  const v = new DataView(out.buffer);
  v.setInt32(DATA.nr, d.nr | 0, true);
  v.setUint32(DATA.arch, d.arch >>> 0, true);
  v.setBigUint64(DATA.ip, BigInt.asUintN(64, d.ip ?? 0n), true);
  for (let i = 0; i < 6; i++) v.setBigUint64(DATA.argLo(i), BigInt.asUintN(64, BigInt(d.args?.[i] ?? 0)), true);
  return out;
}

const SCRATCH = 16;

const ALU_OPS = new Set<number>([BPF.ADD, BPF.SUB, BPF.MUL, BPF.DIV, BPF.AND, BPF.OR, BPF.XOR, BPF.LSH, BPF.RSH]);
const JMP_OPS = new Set<number>([BPF.JEQ, BPF.JGT, BPF.JGE, BPF.JSET]);

/** Checks a program as the kernel does when seccomp loads it; throws naming the first bad instruction. */
export function check(prog: readonly Insn[]): void {
  if (prog.length === 0 || prog.length > 4096) throw new Error(`bpf: ${prog.length} instructions (1..4096 allowed)`);
  prog.forEach((i, n) => {
    const bad = (why: string) => new Error(`bpf: instruction ${n} (code 0x${i.code.toString(16)}): ${why}`);
    const cls = i.code & 0x07;
    const op = i.code & 0xf0;
    switch (cls) {
      case BPF.LD:
      case BPF.LDX:
        if (i.code === (BPF.LD | BPF.W | BPF.ABS)) {
          if (i.k >= DATA.size || i.k % 4 !== 0) throw bad(`load at ${i.k} is not an aligned word of seccomp_data`);
        } else if (i.code === (cls | BPF.W | BPF.LEN) || i.code === (cls | BPF.IMM)) {
          // LEN reads as the constant 64, IMM loads k.
        } else if (i.code === (cls | BPF.MEM)) {
          if (i.k >= SCRATCH) throw bad(`scratch slot ${i.k} out of range`);
        } else throw bad('load mode seccomp does not allow');
        break;
      case BPF.ST:
      case BPF.STX:
        if (i.code !== cls) throw bad('bad store');
        if (i.k >= SCRATCH) throw bad(`scratch slot ${i.k} out of range`);
        break;
      case BPF.ALU:
        if (i.code === (BPF.ALU | BPF.NEG)) break;
        if (!ALU_OPS.has(op) || (i.code & ~0xf8) !== BPF.ALU) throw bad('ALU operation seccomp does not allow');
        if (op === BPF.DIV && (i.code & BPF.X) === 0 && i.k === 0) throw bad('division by constant zero');
        break;
      case BPF.JMP:
        if (op === BPF.JA) {
          if (i.code !== (BPF.JMP | BPF.JA)) throw bad('bad jump');
          if (n + 1 + i.k >= prog.length) throw bad('jump past the end');
        } else {
          if (!JMP_OPS.has(op) || (i.code & ~0xf8) !== BPF.JMP) throw bad('jump seccomp does not allow');
          if (n + 1 + i.jt >= prog.length || n + 1 + i.jf >= prog.length) throw bad('jump past the end');
        }
        break;
      case BPF.RET:
        if (i.code !== (BPF.RET | BPF.K) && i.code !== (BPF.RET | BPF.A)) throw bad('bad return');
        break;
      case BPF.MISC:
        if (i.code !== (BPF.MISC | BPF.TAX) && i.code !== (BPF.MISC | BPF.TXA)) throw bad('bad misc');
        break;
    }
  });
  const last = prog[prog.length - 1]!;
  if ((last.code & 0x07) !== BPF.RET) throw new Error('bpf: the last instruction is not a return');
}

/**
 * Runs a checked program over one seccomp_data and returns the 32-bit action it returns; `counter.steps` (when
 * given) counts the instructions executed.
 */
export function run(prog: readonly Insn[], data: Uint8Array | SeccompData, counter?: { steps: number }): number {
  const bytes = data instanceof Uint8Array ? data : encodeSeccompData(data);
  if (bytes.length !== DATA.size) throw new Error(`bpf: seccomp_data is ${DATA.size} bytes, got ${bytes.length}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const mem = new Array<number | undefined>(SCRATCH).fill(undefined);
  let a = 0;
  let x = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const i = prog[pc]!;
    if (counter) counter.steps++;
    const cls = i.code & 0x07;
    const op = i.code & 0xf0;
    const src = (i.code & BPF.X) !== 0 ? x : i.k >>> 0;
    switch (cls) {
      case BPF.LD:
      case BPF.LDX: {
        const mode = i.code & 0xe0;
        const val =
          mode === BPF.ABS ? v.getUint32(i.k, true)
          : mode === BPF.LEN ? DATA.size
          : mode === BPF.MEM ? readScratch(mem, i.k, pc)
          : i.k >>> 0;
        if (cls === BPF.LD) a = val;
        else x = val;
        break;
      }
      case BPF.ST:
        mem[i.k] = a;
        break;
      case BPF.STX:
        mem[i.k] = x;
        break;
      case BPF.ALU:
        // Classic BPF ends the program with 0 on a division by a zero X (the kernel's conversion does the same).
        if (op === BPF.DIV && src === 0) return 0;
        a = alu(op, a, src);
        break;
      case BPF.JMP:
        if (op === BPF.JA) pc += i.k;
        else pc += cmp(op, a, src) ? i.jt : i.jf;
        break;
      case BPF.RET:
        return ((i.code & 0x18) === BPF.A ? a : i.k) >>> 0;
      case BPF.MISC:
        if (i.code === (BPF.MISC | BPF.TAX)) x = a;
        else a = x;
        break;
    }
  }
  throw new Error('bpf: ran off the end of the program');
}

function readScratch(mem: (number | undefined)[], k: number, pc: number): number {
  const val = mem[k];
  if (val === undefined) throw new Error(`bpf: instruction ${pc} reads scratch slot ${k} before any store`);
  return val;
}

function alu(op: number, a: number, b: number): number {
  switch (op) {
    case BPF.ADD: return (a + b) >>> 0;
    case BPF.SUB: return (a - b) >>> 0;
    case BPF.MUL: return Math.imul(a, b) >>> 0;
    case BPF.DIV: return Math.floor(a / b) >>> 0;
    case BPF.AND: return (a & b) >>> 0;
    case BPF.OR: return (a | b) >>> 0;
    case BPF.XOR: return (a ^ b) >>> 0;
    case BPF.LSH: return b >= 32 ? 0 : (a << b) >>> 0;
    case BPF.RSH: return b >= 32 ? 0 : a >>> b;
    default: return -a >>> 0; // NEG
  }
}

function cmp(op: number, a: number, b: number): boolean {
  switch (op) {
    case BPF.JEQ: return a === b;
    case BPF.JGT: return a > b;
    case BPF.JGE: return a >= b;
    default: return (a & b) !== 0; // JSET
  }
}
