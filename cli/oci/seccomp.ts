/**
 * config.json's `linux.seccomp` (the engine's profile: Docker's allows ~350 calls and returns EPERM for the
 * rest) compiled with the Sentry's BPF assembler into a second filter that the helper installs, without a
 * listener, right before the program's exec. Seccomp runs every filter and takes the highest-precedence answer,
 * so a call the profile refuses is refused, a call it allows still reaches the Sentry's NOTIFY traps, and bwrap
 * (which the profile would stop) has run before. Rules are tried in order, the first match wins; a call x86-64
 * does not know is skipped; arguments compare as 64-bit values (two 32-bit words). SCMP_ACT_NOTIFY has no
 * listener to go to here and is refused with ENOSYS.
 */
import { Assembler, DATA, encode } from '../../sentry/seccomp/bpf.ts';
import { AUDIT_ARCH_X86_64, SECCOMP_RET } from '../../sentry/seccomp/policy.ts';
import { syscallNumber } from '../../sentry/seccomp/sysno.ts';
import { CliError } from '../errors.ts';
import type { Seccomp, SeccompRule } from './spec.ts';

const EPERM = 1;
const ENOSYS = 38;

/** The filter return value of an OCI action. */
function action(name: string, errnoRet: number | undefined, profile: Seccomp, log: (l: string) => void): number {
  const errno = (errnoRet ?? profile.defaultErrnoRet ?? EPERM) & 0xffff;
  switch (name) {
    case 'SCMP_ACT_ALLOW':
      return SECCOMP_RET.ALLOW;
    case 'SCMP_ACT_ERRNO':
      return SECCOMP_RET.ERRNO | errno;
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return SECCOMP_RET.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return SECCOMP_RET.KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return SECCOMP_RET.TRAP;
    case 'SCMP_ACT_LOG':
      return SECCOMP_RET.LOG;
    case 'SCMP_ACT_TRACE':
      // No tracer attached: the kernel would answer ENOSYS itself.
      return SECCOMP_RET.ERRNO | ENOSYS;
    case 'SCMP_ACT_NOTIFY':
      log('seccomp: SCMP_ACT_NOTIFY has no listener here: those calls get ENOSYS');
      return SECCOMP_RET.ERRNO | ENOSYS;
    default:
      throw new CliError(`config.json: linux.seccomp: unknown action '${name}'`);
  }
}

/** Splits a JSON number into the 32-bit words of its 64-bit value. */
function words(v: number): [number, number] {
  const b = BigInt.asUintN(64, BigInt(Math.trunc(v)));
  return [Number(b >> 32n), Number(b & 0xffffffffn)];
}

/**
 * Emits the checks of one argument condition; falls through when it holds and jumps to `miss` when it does not.
 * A holds the low word of the argument afterwards (callers reload nr).
 */
function condition(a: Assembler, c: NonNullable<SeccompRule['args']>[number], miss: string, tag: string): void {
  const [vh, vl] = words(c.value);
  const hi = DATA.argHi(c.index);
  const lo = DATA.argLo(c.index);
  const hit = `${tag}-hit`;
  switch (c.op) {
    case 'SCMP_CMP_EQ':
      a.ldAbs(hi).jeq(vh, null, miss).ldAbs(lo).jeq(vl, null, miss);
      return;
    case 'SCMP_CMP_NE':
      a.ldAbs(hi).jeq(vh, null, hit).ldAbs(lo).jeq(vl, miss, null).label(hit);
      return;
    case 'SCMP_CMP_MASKED_EQ': {
      const [mh, ml] = [vh, vl];
      const [eh, el] = words(c.valueTwo ?? 0);
      a.ldAbs(hi).and(mh).jeq(eh, null, miss).ldAbs(lo).and(ml).jeq(el, null, miss);
      return;
    }
    case 'SCMP_CMP_GT':
    case 'SCMP_CMP_GE':
    case 'SCMP_CMP_LT':
    case 'SCMP_CMP_LE': {
      // GT/GE hold when hi > vh, or hi == vh and lo > (>=) vl; LT and LE are their negations.
      const greater = c.op === 'SCMP_CMP_GT' || c.op === 'SCMP_CMP_LE';
      const positive = c.op === 'SCMP_CMP_GT' || c.op === 'SCMP_CMP_GE';
      const yes = positive ? hit : miss;
      const no = positive ? miss : hit;
      a.ldAbs(hi).jgt(vh, yes, null).jeq(vh, null, no).ldAbs(lo);
      if (greater) a.jgt(vl, yes, no);
      else a.jge(vl, yes, no);
      a.label(hit);
      return;
    }
    default:
      throw new CliError(`config.json: linux.seccomp: unknown operator '${c.op}'`);
  }
}

/** Compiles the profile to `struct sock_filter` bytes. */
export function compileSeccomp(profile: Seccomp, log: (l: string) => void): Uint8Array {
  if (profile.architectures && profile.architectures.length && !profile.architectures.includes('SCMP_ARCH_X86_64')) {
    log('seccomp: the profile does not name SCMP_ARCH_X86_64: its default action applies to every call');
  }
  const a = new Assembler();
  // Foreign architectures and x32 are the Sentry's filter's business (it kills them): allow here.
  a.ldAbs(DATA.arch).jeq(AUDIT_ARCH_X86_64, 'x86-64', null).ret(SECCOMP_RET.ALLOW).label('x86-64');
  a.ldAbs(DATA.nr);
  let n = 0;
  let unknown = 0;
  for (const rule of profile.syscalls ?? []) {
    const ret = action(rule.action, rule.errnoRet, profile, log);
    for (const name of rule.names ?? []) {
      const nr = syscallNumber(name);
      if (nr === undefined) {
        unknown++;
        continue;
      }
      const tag = `r${n++}`;
      const miss = `${tag}-miss`;
      if (!rule.args?.length) {
        a.jeq(nr, null, miss).ret(ret).label(miss);
        continue;
      }
      a.jeq(nr, null, miss);
      rule.args.forEach((c, i) => condition(a, c, `${tag}-argmiss`, `${tag}-${i}`));
      a.ret(ret).label(`${tag}-argmiss`).ldAbs(DATA.nr).label(miss);
    }
  }
  a.ret(action(profile.defaultAction, undefined, profile, log));
  if (unknown) log(`seccomp: ${unknown} call names unknown on x86-64 skipped`);
  return encode(a.assemble());
}
