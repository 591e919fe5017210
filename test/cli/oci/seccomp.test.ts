// The engine's seccomp profile compiled to BPF (cli/oci/seccomp.ts), run through the BPF interpreter on every
// operator with 64-bit values, first-match order, the default action with its errno, unknown names and arches.
import t from 'tap';
import { compileSeccomp } from '../../../cli/oci/seccomp.ts';
import type { Seccomp } from '../../../cli/oci/spec.ts';
import { check, run } from '../../../sentry/seccomp/interp.ts';
import { decode } from '../../../sentry/seccomp/bpf.ts';
import { AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, SECCOMP_RET } from '../../../sentry/seccomp/policy.ts';
import { SYS } from '../../../sentry/seccomp/sysno.ts';

const ALLOW = SECCOMP_RET.ALLOW;
const errno = (e: number) => SECCOMP_RET.ERRNO | e;

function compile(p: Seccomp): (nr: number, args?: (number | bigint)[], arch?: number) => number {
  const logs: string[] = [];
  const prog = decode(compileSeccomp(p, (l) => logs.push(l)));
  check(prog);
  return (nr, args = [], arch = AUDIT_ARCH_X86_64) => run(prog, { nr, arch, args });
}

t.test('names → action, the rest → the default action with defaultErrnoRet; foreign arches are left to the Sentry', async (t) => {
  const f = compile({
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 38,
    syscalls: [
      { names: ['read', 'write', 'no_such_call'], action: 'SCMP_ACT_ALLOW' },
      { names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
      { names: ['ptrace'], action: 'SCMP_ACT_KILL_PROCESS' },
    ],
  });
  t.equal(f(SYS.read), ALLOW);
  t.equal(f(SYS.write), ALLOW);
  t.equal(f(SYS.mkdir), errno(13));
  t.equal(f(SYS.ptrace), SECCOMP_RET.KILL_PROCESS);
  t.equal(f(SYS.socket), errno(38), 'not named: the default, with defaultErrnoRet');
  t.equal(f(SYS.socket, [], AUDIT_ARCH_I386), ALLOW, 'i386: the Sentry\'s own filter kills it');
  const eperm = compile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [] });
  t.equal(eperm(SYS.read), errno(1), 'ERRNO without errnoRet is EPERM');
});

t.test('argument operators on 64-bit values; first match wins; a miss goes on to the next rule', async (t) => {
  const big = 0x1_0000_0005n;
  const f = compile({
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [
      { names: ['personality'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
      { names: ['personality'], action: 'SCMP_ACT_ERRNO', errnoRet: 2, args: [{ index: 0, value: 0x20008, op: 'SCMP_CMP_NE' }] },
      { names: ['setpriority'], action: 'SCMP_ACT_ERRNO', errnoRet: 3, args: [{ index: 1, value: Number(big), op: 'SCMP_CMP_GT' }] },
      { names: ['setpriority'], action: 'SCMP_ACT_ERRNO', errnoRet: 4, args: [{ index: 1, value: Number(big), op: 'SCMP_CMP_GE' }] },
      { names: ['getpriority'], action: 'SCMP_ACT_ERRNO', errnoRet: 5, args: [{ index: 2, value: Number(big), op: 'SCMP_CMP_LT' }] },
      { names: ['getpriority'], action: 'SCMP_ACT_ERRNO', errnoRet: 6, args: [{ index: 2, value: Number(big), op: 'SCMP_CMP_LE' }] },
      { names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: 7, args: [{ index: 0, value: 0x10000000, valueTwo: 0x10000000, op: 'SCMP_CMP_MASKED_EQ' }] },
      { names: ['kill'], action: 'SCMP_ACT_ERRNO', errnoRet: 8, args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }, { index: 1, value: 9, op: 'SCMP_CMP_EQ' }] },
    ],
  });
  t.equal(f(SYS.personality, [8]), errno(1), 'EQ');
  t.equal(f(SYS.personality, [0x20008]), ALLOW, 'EQ misses, NE misses: the default');
  t.equal(f(SYS.personality, [0]), errno(2), 'EQ misses, NE holds');
  t.equal(f(SYS.personality, [8n | (1n << 32n)]), errno(2), 'the high word counts: not 8');
  t.equal(f(SYS.setpriority, [0, big + 1n]), errno(3), 'GT');
  t.equal(f(SYS.setpriority, [0, big]), errno(4), 'GT misses, GE holds');
  t.equal(f(SYS.setpriority, [0, big - 1n]), ALLOW);
  t.equal(f(SYS.setpriority, [0, 0x2_0000_0000n]), errno(3), 'GT by the high word');
  t.equal(f(SYS.setpriority, [0, 0xffff_ffffn]), ALLOW, 'a larger low word with a smaller high word is less');
  t.equal(f(SYS.getpriority, [0, 0, big - 1n]), errno(5), 'LT');
  t.equal(f(SYS.getpriority, [0, 0, big]), errno(6), 'LT misses, LE holds');
  t.equal(f(SYS.getpriority, [0, 0, big + 1n]), ALLOW);
  t.equal(f(SYS.clone, [0x10000011]), errno(7), 'MASKED_EQ');
  t.equal(f(SYS.clone, [0x00000011]), ALLOW);
  t.equal(f(SYS.kill, [1, 9]), errno(8), 'two conditions: both hold');
  t.equal(f(SYS.kill, [1, 15]), ALLOW, 'one misses');
});

t.test('a large profile assembles within the kernel\'s limits; a bad action or operator is one line', async (t) => {
  const names = Object.keys(SYS);
  const f = compile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names, action: 'SCMP_ACT_ALLOW' }] });
  t.equal(f(SYS.openat), ALLOW);
  t.throws(() => compileSeccomp({ defaultAction: 'SCMP_ACT_BOGUS' }, () => {}), /unknown action 'SCMP_ACT_BOGUS'/);
  t.throws(() => compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_SOON' }] }] }, () => {}),
    /unknown operator/);
});
