import t from 'tap';
import { Assembler, BPF, DATA, type Insn, decode, disassemble, encode } from '../../../sentry/seccomp/bpf.ts';
import { check, encodeSeccompData, run } from '../../../sentry/seccomp/interp.ts';

t.test('labels → forward offsets; sock_filter bytes are code u16, jt, jf, k u32 little-endian', (t) => {
  const a = new Assembler();
  a.ldAbs(DATA.nr).jeq(41, 'yes', 'no').label('no').ret(1).label('yes').ret(2);
  const prog = a.assemble();
  t.same(prog[1], { code: 0x15, jt: 1, jf: 0, k: 41 });
  const bytes = encode(prog);
  t.same([...bytes.subarray(8, 16)], [0x15, 0x00, 1, 0, 41, 0, 0, 0]);
  t.same([...bytes.subarray(0, 8)], [0x20, 0, 0, 0, 0, 0, 0, 0], 'ld [0]');
  t.same(decode(bytes), prog, 'round trip');
  t.equal(run(prog, { nr: 41, arch: 0 }), 2);
  t.equal(run(prog, { nr: 42, arch: 0 }), 1);
  t.match(disassemble(prog), /1: jeq #0x29, 3, 2/);
  t.end();
});

t.test('bad labels → errors naming the label', (t) => {
  t.throws(() => new Assembler().jeq(1, 'nowhere').ret(0).assemble(), /label "nowhere" is never defined/);
  t.throws(() => new Assembler().label('x').label('x'), /defined twice/);
  t.throws(() => new Assembler().label('back').ldImm(0).jeq(0, 'back').ret(0).assemble(), /behind the jump/);
  const far = new Assembler().jeq(0, 'far');
  for (let i = 0; i < 256; i++) far.ldImm(i);
  far.label('far').ret(0);
  t.throws(() => far.assemble(), /256 instructions from the jump at 0, beyond 255/);
  const ja = new Assembler().ja('far');
  for (let i = 0; i < 300; i++) ja.ldImm(i);
  ja.label('far').ret(7);
  t.equal(run(ja.assemble(), { nr: 0, arch: 0 }), 7, 'ja reaches past 255');
  t.throws(() => decode(new Uint8Array(12)), /whole number/);
  t.end();
});

t.test('interpreter: loads, ALU, jumps, scratch memory', (t) => {
  const I = (code: number, k = 0, jt = 0, jf = 0): Insn => ({ code, jt, jf, k });
  const data = encodeSeccompData({ nr: 7, arch: 0xc000003e, ip: 0x1122334455667788n, args: [0xaaaabbbbccccddddn, 5] });
  const v = new DataView(data.buffer);
  t.equal(v.getUint32(8, true), 0x55667788, 'ip low word at 8');
  t.equal(v.getUint32(20, true), 0xaaaabbbb, 'args[0] high word at 20');
  const prog = [
    I(BPF.LD | BPF.W | BPF.ABS, DATA.argLo(1)), // A = 5
    I(BPF.ST, 3), // M[3] = 5
    I(BPF.ALU | BPF.MUL | BPF.K, 3), // 15
    I(BPF.MISC | BPF.TAX), // X = 15
    I(BPF.LD | BPF.MEM, 3), // A = 5
    I(BPF.ALU | BPF.ADD | BPF.X), // 20
    I(BPF.ALU | BPF.LSH | BPF.K, 28), // 0x40000000
    I(BPF.ALU | BPF.SUB | BPF.K, 0x40000001), // 0xffffffff
    I(BPF.JMP | BPF.JGT | BPF.K, 0xfffffffe, 0, 1),
    I(BPF.RET | BPF.A),
    I(BPF.RET | BPF.K, 0),
  ];
  check(prog);
  t.equal(run(prog, data), 0xffffffff);
  t.equal(run([I(BPF.LD | BPF.IMM, 9), I(BPF.MISC | BPF.TAX), I(BPF.LD | BPF.IMM, 100), I(BPF.ALU | BPF.DIV | BPF.X), I(BPF.RET | BPF.A)], data), 11);
  t.equal(run([I(BPF.LDX | BPF.IMM, 0), I(BPF.ALU | BPF.DIV | BPF.X), I(BPF.RET | BPF.K, 5)], data), 0, 'division by X=0 ends with 0');
  t.equal(run([I(BPF.LD | BPF.W | BPF.LEN), I(BPF.RET | BPF.A)], data), 64);
  t.throws(() => run([I(BPF.LD | BPF.MEM, 2), I(BPF.RET | BPF.A)], data), /scratch slot 2 before any store/);
  t.end();
});

t.test('check() refuses what seccomp refuses', (t) => {
  const I = (code: number, k = 0, jt = 0, jf = 0): Insn => ({ code, jt, jf, k });
  const R = I(BPF.RET | BPF.K);
  t.throws(() => check([I(BPF.LD | BPF.W | BPF.ABS, 2), R]), /aligned word/);
  t.throws(() => check([I(BPF.LD | BPF.W | BPF.ABS, 64), R]), /aligned word/);
  t.throws(() => check([I(BPF.LD | BPF.B | BPF.ABS, 0), R]), /load mode/);
  t.throws(() => check([I(BPF.JMP | BPF.JEQ | BPF.K, 0, 5, 0), R]), /past the end/);
  t.throws(() => check([I(BPF.ALU | BPF.DIV | BPF.K, 0), R]), /constant zero/);
  t.throws(() => check([I(BPF.ALU | BPF.MOD | BPF.K, 3), R]), /ALU operation/);
  t.throws(() => check([I(BPF.ST, 16), R]), /slot 16/);
  t.throws(() => check([I(BPF.LD | BPF.IMM, 0)]), /not a return/);
  t.throws(() => check([]), /0 instructions/);
  t.end();
});
