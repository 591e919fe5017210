/**
 * The parts of the machine the bench's figures depend on beyond the code: how many CPUs, which kernel, and how an
 * idle CPU waits. The last matters on virtual machines: with cpuidle's haltpoll driver and `guest_halt_poll_ns` 0
 * (this project's CI machines) an idle vCPU halts at once, so every wake-up of an idle CPU is an inter-processor
 * interrupt through the hypervisor. Paths that hand work between two processes on two CPUs (a sandboxed program and
 * the Sentry's FUSE server, a client and a server one request at a time) pay it on every hand-over, the kernel's
 * own paths much less; bench/README.md has the figures. Both reports print this line so that a figure read later
 * says on what kind of machine it was taken. It also gives the price of one system call, measured as the report
 * is made: on session 19's machine (a guest whose kernel runs outside the CPU's kernel mode, `pvm_*` functions in
 * its profiles) a null call took 1.3–1.8 µs, and every path that enters the kernel per packet or per wake-up pays it.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';

/** What `readMachine` found; the cpuidle fields are absent where the kernel has no such files. */
export interface Machine {
  cpus: number;
  kernel: string;
  /** The cpuidle driver (haltpoll, intel_idle, acpi_idle, ...). */
  cpuidle?: string;
  /** haltpoll's `guest_halt_poll_ns`: how long an idle vCPU polls before it halts. */
  haltPollNs?: number;
  /** Nanoseconds one system call costs (syscallNs), when measured. */
  syscallNs?: number;
  /**
   * The TCP congestion control new sockets get (net.ipv4.tcp_congestion_control; a namespace made after boot starts
   * with the host's), so the stock clients' unless the bench was told otherwise. It decides how a bulk sender paces
   * itself, and with it the to-service throughput rows (bench/README.md, "The clients' congestion control").
   */
  congestion?: string;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Reads the machine's CPUs and kernel, its cpuidle driver and halt-poll time from `sys` (a sysfs root), and its
 * default TCP congestion control from `proc`.
 */
export function readMachine(sys = '/sys', proc = '/proc'): Machine {
  const m: Machine = { cpus: availableParallelism(), kernel: release() };
  const congestion = readText(join(proc, 'sys/net/ipv4/tcp_congestion_control'));
  if (congestion) m.congestion = congestion;
  const driver = readText(join(sys, 'devices/system/cpu/cpuidle/current_driver'));
  if (driver && driver !== 'none') m.cpuidle = driver;
  const poll = readText(join(sys, 'module/haltpoll/parameters/guest_halt_poll_ns'));
  if (m.cpuidle === 'haltpoll' && poll !== undefined && /^\d+$/.test(poll)) m.haltPollNs = Number(poll);
  return m;
}

/** The congestion controls the kernel offers here (tcp_available_congestion_control), or undefined if unreadable. */
export function availableCongestion(proc = '/proc'): string[] | undefined {
  return readText(join(proc, 'sys/net/ipv4/tcp_available_congestion_control'))?.split(/\s+/).filter(Boolean);
}

/**
 * Nanoseconds of one system call: getppid (which glibc passes to the kernel every time) against abs (no kernel
 * entry) through the same koffi call, the median of 7 rounds of 20,000 each, so that koffi's own cost cancels.
 */
export function syscallNs(): number {
  const libc = koffi.load('libc.so.6');
  const getppid = libc.func('int getppid()') as () => number;
  const abs = libc.func('int abs(int)') as (n: number) => number;
  const N = 20_000;
  const round = (f: () => unknown): number => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) f();
    return Number(process.hrtime.bigint() - t0) / N;
  };
  const diffs: number[] = [];
  for (let r = 0; r < 7; r++) diffs.push(round(getppid) - round(() => abs(-r)));
  diffs.sort((a, b) => a - b);
  return Math.max(0, Math.round(diffs[3]!));
}

/** One line for the reports: `machine: 2 CPUs, Linux 6.1; cpuidle haltpoll, ...`. */
export function describeMachine(m: Machine): string {
  let line = `machine: ${m.cpus} CPU${m.cpus === 1 ? '' : 's'}, Linux ${m.kernel}`;
  if (m.cpuidle) line += `; cpuidle ${m.cpuidle}`;
  if (m.haltPollNs === 0) {
    line += ', guest_halt_poll_ns 0: idle vCPUs halt at once, so each wake-up of an idle CPU is an interrupt through the hypervisor (bench/README.md)';
  } else if (m.haltPollNs !== undefined) {
    line += `, idle vCPUs poll ${Math.round(m.haltPollNs / 1000)} µs before they halt`;
  }
  if (m.syscallNs !== undefined) {
    line += `; a system call ${m.syscallNs >= 1000 ? `${(m.syscallNs / 1000).toFixed(1)} µs` : `${m.syscallNs} ns`}`;
  }
  if (m.congestion) line += `; TCP congestion control ${m.congestion}`;
  return line;
}

/** The machine's CPU time so far, all CPUs together, from /proc/stat's `cpu` line (in the kernel's ticks). */
export interface CpuTimes {
  /** Ticks spent running anything: user, nice, system, irq, softirq, steal. */
  busy: number;
  /** Ticks of every kind, idle and iowait included. */
  total: number;
}

/** Reads the machine's CPU time from `proc`'s stat file; undefined where it cannot be read. */
export function readCpuTimes(proc = '/proc'): CpuTimes | undefined {
  const line = readText(join(proc, 'stat'))?.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  // user nice system idle iowait irq softirq steal (guest and guest_nice are already inside user and nice).
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 8 || f.some((n) => !Number.isFinite(n))) return undefined;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/**
 * CPU-seconds the whole machine spent between two readings `seconds` apart on `cpus` CPUs: the busy share of the
 * ticks that passed times the CPU time there was (no tick length needed). Undefined when no tick passed.
 */
export function busyCpuSeconds(before: CpuTimes, after: CpuTimes, cpus: number, seconds: number): number | undefined {
  const total = after.total - before.total;
  if (total <= 0) return undefined;
  return ((after.busy - before.busy) / total) * cpus * seconds;
}
