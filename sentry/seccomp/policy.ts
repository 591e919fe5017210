/**
 * The sandbox's seccomp policy per network mode, compiled to classic BPF (issue 9, "The seccomp policy").
 *
 * Every mode first kills a call made under another ABI: a non-x86-64 `arch` (an `int 0x80` from a 64-bit
 * program reaches i386 socketcall, which no rule below would see) or an x32 number (bit 30 set). `nr == -1` is
 * let through, as libseccomp does: it is how a tracer skips a call, and the kernel answers it with ENOSYS.
 *
 * `sandbox` (and `none`, which differs only in the netstack behind it): INET sockets and every call that can take
 * one as an argument and name an address are sent to the Sentry; AF_UNIX and AF_NETLINK stay with the kernel
 * (they live in the app netns, which has no way out); io_uring is ENOSYS because its socket opcodes would bypass
 * every rule here; raw sockets are EPERM unless `allowRaw` (then the Sentry decides); other families, among them
 * AF_VSOCK (not namespaced: a way to the hypervisor), AF_XDP and AF_ALG, are EAFNOSUPPORT.
 *
 * `host`: only the ABI kill; with `strace`, the same calls are sent to the Sentry, which CONTINUEs them.
 *
 * seccomp() and prctl(PR_SET_SECCOMP) are left allowed on purpose: programs (browsers, ssh, sandboxing tools)
 * install filters of their own, and a stacked filter cannot weaken this one. Its ALLOW or TRACE ranks below our
 * USER_NOTIF, its KILL/TRAP/ERRNO only denies the program's own calls, and a second listener is refused with
 * EBUSY (one listener per filter chain), so the program cannot take our notifications.
 */
import { Assembler, DATA, type Insn, encode } from './bpf.ts';
import { SYS, type SyscallName, X32_SYSCALL_BIT } from './sysno.ts';

/** How the sandbox reaches a network: the netstack (`sandbox`), the caller's netns (`host`), or loopback only. */
export type NetworkMode = 'sandbox' | 'host' | 'none';

/** Options of a policy. */
export interface PolicyOptions {
  mode: NetworkMode;
  /** Send AF_PACKET and raw INET sockets to the Sentry instead of refusing them (EPERM). */
  allowRaw?: boolean;
  /** In host mode, trap the socket calls too so that they can be printed (and CONTINUEd). */
  strace?: boolean;
}

/** `AUDIT_ARCH_X86_64` (linux/audit.h): EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE. */
export const AUDIT_ARCH_X86_64 = 0xc000003e;
/** `AUDIT_ARCH_I386`: what `int 0x80` reports. */
export const AUDIT_ARCH_I386 = 0x40000003;

/** Filter return values (linux/seccomp.h), highest precedence first; ERRNO carries the errno in its low 16 bits. */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

/** The action part of a filter's return value. */
export const SECCOMP_RET_ACTION_FULL = 0xffff0000;
/** The data part (an errno for ERRNO). */
export const SECCOMP_RET_DATA = 0x0000ffff;

/** Errno values the policy answers with. */
const EPERM = 1;
const EAFNOSUPPORT = 97;
const ENOSYS = 38;

/** Address families and socket types the socket() rule tells apart (linux/socket.h, linux/net.h). */
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const AF_PACKET = 17;
const SOCK_TYPE_MASK = 0xf;
const SOCK_RAW = 3;

/** Calls sent to the Sentry whatever their arguments: they take a socket and may name an address or option. */
export const NOTIFY_CALLS: readonly SyscallName[] = [
  'bind', 'listen', 'connect', 'accept', 'accept4', 'getsockname', 'getpeername', 'getsockopt', 'setsockopt',
  // msg_name is behind a pointer BPF cannot follow.
  'sendmsg', 'recvmsg', 'sendmmsg', 'recvmmsg',
];

/** Calls sent to the Sentry only when their address argument (args[4]) is not NULL. */
export const NOTIFY_IF_ADDRESS: readonly SyscallName[] = ['sendto', 'recvfrom'];

/** Calls refused with ENOSYS in the sandboxed modes. */
export const ENOSYS_CALLS: readonly SyscallName[] = ['io_uring_setup', 'io_uring_enter', 'io_uring_register'];

/** An ERRNO action. */
export function errnoAction(errno: number): number {
  return (SECCOMP_RET.ERRNO | (errno & SECCOMP_RET_DATA)) >>> 0;
}

/** Where the compiled program goes for each outcome; the rule bodies jump to these. */
const L = { allow: 'allow', notify: 'notify', kill: 'kill', enosys: 'enosys', eperm: 'eperm', eafnosupport: 'eafnosupport' };

/** A rule: a label to jump to straight from the dispatch, or code that tests the arguments. */
type Rule = { to: string } | { body: (a: Assembler) => void };

/** The policy's instructions (exposed for tests and for printing with `disassemble`). */
export function policyProgram(o: PolicyOptions): Insn[] {
  const rules = new Map<number, Rule>();
  const sandboxed = o.mode !== 'host';
  if (sandboxed || o.strace) {
    for (const n of NOTIFY_CALLS) rules.set(SYS[n], { to: L.notify });
    for (const n of NOTIFY_IF_ADDRESS) rules.set(SYS[n], { body: (a) => addressArgRule(a, 4) });
    rules.set(SYS.socket, { body: (a) => socketRule(a, o) });
  }
  if (sandboxed) for (const n of ENOSYS_CALLS) rules.set(SYS[n], { to: L.enosys });

  const a = new Assembler();
  a.ldAbs(DATA.arch);
  a.jeq(AUDIT_ARCH_X86_64, null, L.kill);
  a.ldAbs(DATA.nr);
  a.jset(X32_SYSCALL_BIT, 'x32');
  dispatch(a, [...rules.keys()].sort((x, y) => x - y), rules);
  for (const [nr, r] of rules) {
    if (!('body' in r)) continue;
    a.label(`sys_${nr}`);
    r.body(a);
  }
  a.label('x32');
  a.jeq(0xffffffff, L.allow, L.kill);
  a.label(L.allow).ret(SECCOMP_RET.ALLOW);
  a.label(L.notify).ret(SECCOMP_RET.USER_NOTIF);
  a.label(L.kill).ret(SECCOMP_RET.KILL_PROCESS);
  a.label(L.enosys).ret(errnoAction(ENOSYS));
  a.label(L.eperm).ret(errnoAction(EPERM));
  a.label(L.eafnosupport).ret(errnoAction(EAFNOSUPPORT));
  return a.assemble();
}

/** The policy as the `struct sock_filter` array the helper installs. */
export function buildPolicy(o: PolicyOptions): Uint8Array {
  return encode(policyProgram(o));
}

/**
 * A binary search over the sorted call numbers with A = nr: a call that no rule names costs about log2(rules)
 * + 4 comparisons, so untrapped calls (read, write, futex) stay near native cost.
 */
function dispatch(a: Assembler, nrs: number[], rules: Map<number, Rule>): void {
  const target = (nr: number) => {
    const r = rules.get(nr)!;
    return 'to' in r ? r.to : `sys_${nr}`;
  };
  let seq = 0;
  const tree = (lo: number, hi: number): void => {
    if (hi - lo <= 4) {
      for (let i = lo; i < hi; i++) a.jeq(nrs[i]!, target(nrs[i]!), i === hi - 1 ? L.allow : null);
      if (hi === lo) a.ja(L.allow);
      return;
    }
    const mid = (lo + hi) >> 1;
    const right = `ge_${seq++}`;
    a.jge(nrs[mid]!, right);
    tree(lo, mid);
    a.label(right);
    tree(mid, hi);
  };
  tree(0, nrs.length);
}

/** NOTIFY when the 64-bit argument `i` is not zero, else ALLOW. */
function addressArgRule(a: Assembler, i: number): void {
  const hi = `arg${i}_hi_${a.length}`;
  a.ldAbs(DATA.argLo(i));
  a.jeq(0, hi, L.notify);
  a.label(hi);
  a.ldAbs(DATA.argHi(i));
  a.jeq(0, L.allow, L.notify);
}

/**
 * socket(domain, type, protocol): both are C ints, so only the low words count, as for the kernel; the type's
 * flags (SOCK_NONBLOCK, SOCK_CLOEXEC) are masked off. ICMP echo sockets (SOCK_DGRAM with IPPROTO_ICMP/ICMPV6) are
 * INET datagram sockets like any other and go to the netstack.
 */
function socketRule(a: Assembler, o: PolicyOptions): void {
  a.ldAbs(DATA.argLo(0));
  if (o.mode === 'host') {
    a.jeq(AF_INET, L.notify);
    a.jeq(AF_INET6, L.notify, L.allow);
    return;
  }
  const raw = o.allowRaw ? L.notify : L.eperm;
  a.jeq(AF_INET, 'socket_inet');
  a.jeq(AF_INET6, 'socket_inet');
  a.jeq(AF_UNIX, L.allow);
  a.jeq(AF_NETLINK, L.allow);
  a.jeq(AF_PACKET, raw, L.eafnosupport);
  a.label('socket_inet');
  a.ldAbs(DATA.argLo(1));
  a.and(SOCK_TYPE_MASK);
  a.jeq(SOCK_RAW, raw, L.notify);
}
