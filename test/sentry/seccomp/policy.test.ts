import t from 'tap';
import { decode } from '../../../sentry/seccomp/bpf.ts';
import { check, run } from '../../../sentry/seccomp/interp.ts';
import {
  AUDIT_ARCH_I386,
  AUDIT_ARCH_X86_64,
  type PolicyOptions,
  SECCOMP_RET,
  buildPolicy,
  policyProgram,
} from '../../../sentry/seccomp/policy.ts';
import { SYSCALL_LIMIT, syscallName } from '../../../sentry/seccomp/sysno.ts';

// The decision table, written out here independently of policy.ts.
const ALLOW = 0x7fff0000;
const NOTIFY = 0x7fc00000;
const KILL = 0x80000000;
const ERRNO = (e: number) => 0x00050000 | e;
const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;
const NOTIFY_NAMES = new Set([
  'bind', 'listen', 'connect', 'accept', 'accept4', 'getsockname', 'getpeername', 'getsockopt', 'setsockopt',
  'sendmsg', 'recvmsg', 'sendmmsg', 'recvmmsg',
]);
const ADDRESS_NAMES = new Set(['sendto', 'recvfrom']);
const IO_URING = new Set(['io_uring_setup', 'io_uring_enter', 'io_uring_register']);

function expected(o: PolicyOptions, arch: number, nr: number, args: bigint[]): number {
  if (arch !== 0xc000003e) return KILL;
  if ((nr & 0x40000000) !== 0 && nr !== -1) return KILL;
  const name = syscallName(nr);
  const trapsSockets = o.mode !== 'host' || o.strace === true;
  if (o.mode !== 'host' && IO_URING.has(name)) return ERRNO(ENOSYS);
  if (!trapsSockets) return ALLOW;
  if (NOTIFY_NAMES.has(name)) return NOTIFY;
  if (ADDRESS_NAMES.has(name)) return BigInt.asUintN(64, args[4] ?? 0n) !== 0n ? NOTIFY : ALLOW;
  if (name !== 'socket') return ALLOW;
  const domain = Number(BigInt.asUintN(32, args[0] ?? 0n));
  const type = Number(BigInt.asUintN(32, args[1] ?? 0n)) & 0xf;
  const inet = domain === 2 || domain === 10;
  if (o.mode === 'host') return inet ? NOTIFY : ALLOW;
  const raw = o.allowRaw ? NOTIFY : ERRNO(EPERM);
  if (inet) return type === 3 ? raw : NOTIFY;
  if (domain === 1 || domain === 16) return ALLOW;
  if (domain === 17) return raw;
  return ERRNO(EAFNOSUPPORT);
}

const MODES: PolicyOptions[] = [
  { mode: 'sandbox' },
  { mode: 'sandbox', allowRaw: true },
  { mode: 'sandbox', strace: true },
  { mode: 'none' },
  { mode: 'none', allowRaw: true },
  { mode: 'host' },
  { mode: 'host', strace: true },
  { mode: 'host', allowRaw: true, strace: true },
];

const label = (o: PolicyOptions) => `${o.mode}${o.allowRaw ? '+raw' : ''}${o.strace ? '+strace' : ''}`;

// Argument patterns every call is tried with: zeros, an address in args[4] (low word, high word), garbage.
const ARG_PATTERNS: bigint[][] = [
  [0n, 0n, 0n, 0n, 0n, 0n],
  [3n, 0x7ffd0000n, 16n, 0n, 0x7ffd1000n, 16n],
  [3n, 0n, 0n, 0n, 1n << 32n, 0n],
  [0xffffffffffffffffn, 0xffffffffffffffffn, 0xffffffffffffffffn, 0n, 0n, 0n],
];

for (const o of MODES) {
  t.test(`${label(o)}: every call number 0..${SYSCALL_LIMIT + 8} → the issue's table`, (t) => {
    const prog = policyProgram(o);
    check(prog);
    let mismatches = 0;
    for (let nr = 0; nr < SYSCALL_LIMIT + 8; nr++) {
      for (const args of ARG_PATTERNS) {
        const got = run(prog, { nr, arch: AUDIT_ARCH_X86_64, args });
        const want = expected(o, AUDIT_ARCH_X86_64, nr, args);
        if (got !== want && mismatches++ < 10) t.fail(`${syscallName(nr)}(${args.join(',')}) → 0x${got.toString(16)}, want 0x${want.toString(16)}`);
      }
    }
    t.equal(mismatches, 0, 'no mismatch');
    t.end();
  });

  t.test(`${label(o)}: other ABIs → KILL_PROCESS`, (t) => {
    const prog = policyProgram(o);
    for (const nr of [0, 41, 102 /* i386 socketcall */, 359 /* i386 socket */]) {
      t.equal(run(prog, { nr, arch: AUDIT_ARCH_I386 }), KILL, `i386 ${nr}`);
      t.equal(run(prog, { nr, arch: 0xc00000b7 /* aarch64 */ }), KILL, `aarch64 ${nr}`);
    }
    for (const nr of [0x40000000, 0x40000000 + 41, 0x40000000 + 512 /* x32 recvmsg */, 0x7fffffff, 0xc0000000 | 0]) {
      t.equal(run(prog, { nr: nr | 0, arch: AUDIT_ARCH_X86_64 }), KILL, `x32 0x${(nr >>> 0).toString(16)}`);
    }
    t.equal(run(prog, { nr: -1, arch: AUDIT_ARCH_X86_64 }), ALLOW, 'nr -1 (a tracer skipping a call) → the kernel ENOSYS');
    t.equal(run(prog, { nr: 0x3fffffff, arch: AUDIT_ARCH_X86_64 }), ALLOW, 'unknown number without the x32 bit → the kernel ENOSYS');
    t.end();
  });

  t.test(`${label(o)}: socket() over every domain, type and flag`, (t) => {
    const prog = policyProgram(o);
    let mismatches = 0;
    for (let domain = 0; domain < 48; domain++) {
      for (let type = 0; type < 16; type++) {
        for (const flags of [0, 0o4000, 0o2000000, 0o2004000]) {
          for (const proto of [0n, 1n, 6n, 17n, 58n, 255n, 0xdead00000001n]) {
            // High words of int arguments are garbage the kernel ignores; the filter must ignore them too.
            const args = [BigInt(domain) | (0xabcdn << 32n), BigInt(type | flags) | (1n << 40n), proto];
            const got = run(prog, { nr: 41, arch: AUDIT_ARCH_X86_64, args });
            const want = expected(o, AUDIT_ARCH_X86_64, 41, args);
            if (got !== want && mismatches++ < 10) t.fail(`socket(${domain}, ${type | flags}, ${proto}) → 0x${got.toString(16)}, want 0x${want.toString(16)}`);
          }
        }
      }
    }
    t.equal(mismatches, 0, 'no mismatch');
    t.end();
  });
}

t.test('sandbox: the table by name', (t) => {
  const p = policyProgram({ mode: 'sandbox' });
  const S = (nr: number, ...args: bigint[]) => run(p, { nr, arch: AUDIT_ARCH_X86_64, args });
  t.equal(S(41, 2n, 1n, 0n), NOTIFY, 'socket(AF_INET, SOCK_STREAM)');
  t.equal(S(41, 10n, 2n | 0o2004000n, 17n), NOTIFY, 'socket(AF_INET6, SOCK_DGRAM|NONBLOCK|CLOEXEC)');
  t.equal(S(41, 2n, 2n, 1n), NOTIFY, 'socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP): ping socket → netstack');
  t.equal(S(41, 10n, 2n, 58n), NOTIFY, 'socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)');
  t.equal(S(41, 2n, 3n, 1n), ERRNO(EPERM), 'socket(AF_INET, SOCK_RAW)');
  t.equal(S(41, 17n, 3n, 0x300n), ERRNO(EPERM), 'socket(AF_PACKET)');
  t.equal(S(41, 1n, 1n, 0n), ALLOW, 'socket(AF_UNIX)');
  t.equal(S(41, 16n, 3n, 0n), ALLOW, 'socket(AF_NETLINK)');
  t.equal(S(41, 40n, 1n, 0n), ERRNO(EAFNOSUPPORT), 'socket(AF_VSOCK)');
  t.equal(S(41, 44n, 3n, 0n), ERRNO(EAFNOSUPPORT), 'socket(AF_XDP)');
  t.equal(S(41, 38n, 5n, 0n), ERRNO(EAFNOSUPPORT), 'socket(AF_ALG)');
  t.equal(S(53, 2n, 1n, 0n), ALLOW, 'socketpair');
  t.equal(S(44, 3n, 0n, 5n, 0n, 0n), ALLOW, 'sendto(addr NULL)');
  t.equal(S(44, 3n, 0n, 5n, 0n, 0x7ffd00000000n), NOTIFY, 'sendto(addr with only high bits)');
  t.equal(S(45, 3n, 0n, 5n, 0n, 0x1000n), NOTIFY, 'recvfrom(addr)');
  t.equal(S(425), ERRNO(ENOSYS), 'io_uring_setup');
  for (const nr of [0, 1, 3, 7, 16, 32, 48, 56, 59, 72, 110, 202, 232, 317, 157]) t.equal(S(nr), ALLOW, syscallName(nr));
  t.end();
});

t.test('buildPolicy → the same program as sock_filter bytes', (t) => {
  for (const o of MODES) {
    const bytes = buildPolicy(o);
    t.same(decode(bytes), policyProgram(o), label(o));
    t.ok(bytes.length / 8 < 255, `${label(o)}: ${bytes.length / 8} instructions`);
  }
  t.end();
});

t.test('untrapped calls take few instructions (the binary search)', (t) => {
  const prog = policyProgram({ mode: 'sandbox' });
  const steps = (nr: number) => {
    const c = { steps: 0 };
    t.equal(run(prog, { nr, arch: AUDIT_ARCH_X86_64 }, c), ALLOW);
    return c.steps;
  };
  for (const nr of [0, 1, 110, 202, 232]) {
    const n = steps(nr);
    t.ok(n <= 16, `${syscallName(nr)} is decided within ${n} instructions`);
  }
  t.end();
});

t.test('SECCOMP_RET ranks as linux/seccomp.h', (t) => {
  t.equal(SECCOMP_RET.USER_NOTIF, NOTIFY);
  t.equal(SECCOMP_RET.ALLOW, ALLOW);
  t.equal(SECCOMP_RET.KILL_PROCESS, KILL);
  t.end();
});
