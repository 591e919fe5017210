/**
 * The parts of the machine the bench's figures depend on beyond the code: how many CPUs, which kernel, and how an
 * idle CPU waits. The last matters on virtual machines: with cpuidle's haltpoll driver and `guest_halt_poll_ns` 0
 * (this project's CI machines) an idle vCPU halts at once, so every wake-up of an idle CPU is an inter-processor
 * interrupt through the hypervisor. Paths that hand work between two processes on two CPUs (a sandboxed program and
 * the Sentry's FUSE server, a client and a server one request at a time) pay it on every hand-over, the kernel's
 * own paths much less; bench/README.md has the figures. Both reports print this line so that a figure read later
 * says on what kind of machine it was taken.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, release } from 'node:os';
import { join } from 'node:path';

/** What `readMachine` found; the cpuidle fields are absent where the kernel has no such files. */
export interface Machine {
  cpus: number;
  kernel: string;
  /** The cpuidle driver (haltpoll, intel_idle, acpi_idle, ...). */
  cpuidle?: string;
  /** haltpoll's `guest_halt_poll_ns`: how long an idle vCPU polls before it halts. */
  haltPollNs?: number;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Reads the machine's CPUs and kernel, and its cpuidle driver and halt-poll time from `sys` (a sysfs root). */
export function readMachine(sys = '/sys'): Machine {
  const m: Machine = { cpus: availableParallelism(), kernel: release() };
  const driver = readText(join(sys, 'devices/system/cpu/cpuidle/current_driver'));
  if (driver && driver !== 'none') m.cpuidle = driver;
  const poll = readText(join(sys, 'module/haltpoll/parameters/guest_halt_poll_ns'));
  if (m.cpuidle === 'haltpoll' && poll !== undefined && /^\d+$/.test(poll)) m.haltPollNs = Number(poll);
  return m;
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
  return line;
}
