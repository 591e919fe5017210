import t from 'tap';
import { goferFilter } from '../../cli/gofer.ts';
import { GOFER_ALLOWLIST, GOFER_IOCTLS } from '../../gofer/seccomp.ts';
import { decode } from '../../sentry/seccomp/bpf.ts';
import { check, run } from '../../sentry/seccomp/interp.ts';
import { AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, errnoAction, SECCOMP_RET } from '../../sentry/seccomp/policy.ts';
import { SYS, SYSCALL_LIMIT, syscallName, type SyscallName } from '../../sentry/seccomp/sysno.ts';

t.test('the gofer filter, run through the interpreter for every call number → only the allowlist passes', async (t) => {
  const prog = decode(goferFilter());
  check(prog);
  const allowed = new Set(GOFER_ALLOWLIST.map((n) => SYS[n as SyscallName]));
  allowed.add(SYS.ioctl); // with the request checked below; run() passes request 0 here
  let passed = 0;
  for (let nr = 0; nr < SYSCALL_LIMIT; nr++) {
    const r = run(prog, { nr, arch: AUDIT_ARCH_X86_64 });
    const want = allowed.has(nr) && nr !== SYS.ioctl ? SECCOMP_RET.ALLOW : errnoAction(1);
    if (r !== want) t.fail(`${syscallName(nr)}: got 0x${r.toString(16)}`);
    else passed++;
  }
  t.equal(passed, SYSCALL_LIMIT, 'every call number decided as the list says');
  for (const denied of ['socket', 'connect', 'bind', 'execve', 'ptrace', 'mount', 'pivot_root', 'unshare', 'setns', 'open_by_handle_at', 'name_to_handle_at', 'io_uring_setup', 'chroot'] as SyscallName[]) {
    t.equal(run(prog, { nr: SYS[denied], arch: AUDIT_ARCH_X86_64 }), errnoAction(1), `${denied} → EPERM`);
  }
  for (const [name, req] of Object.entries(GOFER_IOCTLS)) {
    t.equal(run(prog, { nr: SYS.ioctl, arch: AUDIT_ARCH_X86_64, args: [3, req] }), SECCOMP_RET.ALLOW, `ioctl ${name} → allowed`);
  }
  for (const [name, req] of [['TIOCSTI', 0x5412], ['TIOCSETD', 0x5423], ['FIONREAD', 0x541b], ['SIOCGIFCONF', 0x8912]] as const) {
    t.equal(run(prog, { nr: SYS.ioctl, arch: AUDIT_ARCH_X86_64, args: [0, req] }), errnoAction(1), `ioctl ${name} → EPERM`);
  }
  t.equal(run(prog, { nr: SYS.read, arch: AUDIT_ARCH_I386 }), SECCOMP_RET.KILL_PROCESS, 'i386 ABI → killed');
  t.equal(run(prog, { nr: SYS.read | 0x40000000, arch: AUDIT_ARCH_X86_64 }), SECCOMP_RET.KILL_PROCESS, 'x32 → killed');
});
