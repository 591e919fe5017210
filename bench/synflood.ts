/**
 * The syn-flood row: the highest SYN flood rate at which every legitimate connection still succeeds. The flood
 * (bench/peers/synflood.c, built here with cc) runs in the client namespace and writes spoofed SYNs from the
 * system's flood net straight onto the client's end of the veth, addressed to the serving side's echo port; the
 * serving side routes its answers to that net back through the client namespace, which does not forward them. While it
 * runs, bench/peers/echo-client.ts makes `legit` connections to the same port, each checked for its exact bytes
 * within LEGIT_TIMEOUT_MS. Rates rise step by step until one loses a legitimate connection or the sender cannot
 * keep up with the rate asked; the figure is the highest rate the sender achieved at a step where every
 * legitimate connection succeeded.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../lib/testnet.ts';
import type { EchoCheckResult } from './echo-check.ts';
import { nodeProgram, nsRunAsync, onCleanup, sleep, startDaemon } from './proc.ts';

/** The echo service's port, where both the flood and the legitimate clients go. */
export const ECHO_PORT = 7;
/** A legitimate connection fails if it has not got its bytes back this long after it started connecting. */
export const LEGIT_TIMEOUT_MS = 3000;
/** The longest a flood step may run, whatever happens to the client (the sender also stops at its count). */
const FLOOD_MAX_SECONDS = 30;
/** The legitimate client's connections all end within this (those left count as failed). */
const LEGIT_DEADLINE_MS = 15_000;

/** Where to flood a system from: the client namespace's device and the MAC addresses on either end. */
export interface FloodPath {
  /** The client namespace's end of the veth. */
  dev: string;
  /** Its MAC address (the flood's source MAC). */
  mac: string;
  /** The serving end's MAC address (the flood's destination). */
  serverMac: string;
  /** The spoofed sources (a /16 to /30 off the veth's subnet, routed back through the client namespace). */
  net: string;
}

/** One rate tried. */
export interface FloodStep {
  /** The rate asked for, SYN/s. */
  rate: number;
  /** The rate the sender achieved over its run (frames the device took per second). */
  achieved: number;
  sent: number;
  seconds: number;
  legit: EchoCheckResult;
  /** Every legitimate connection succeeded. */
  pass: boolean;
}

/**
 * The rates a run tries, lowest first. Above 200,000 the full run rises by 50,000 (session 30; by 100,000 before):
 * the figure is the last step passed, so a coarse grid rounded a system that passes 290,000 down to 200,000, and
 * the ratio to the kernel's moved by whole steps.
 */
export function floodRates(quick: boolean): number[] {
  const low = [25_000, 50_000, 75_000, 100_000, 150_000, 200_000];
  return quick ? low : [...low, 250_000, 300_000, 350_000, 400_000];
}

/** Whether a step passed: legitimate connections were made and none was lost. */
export function stepPassed(legit: EchoCheckResult): boolean {
  return legit.failed === 0 && legit.ok > 0;
}

/**
 * Whether the search goes on after `s`: it passed, and the sender kept within 10% of the rate asked (a sender
 * that could not go faster, because it runs the receiving kernel's work in its own send calls, shows the limit).
 */
export function keepRising(s: FloodStep): boolean {
  return s.pass && s.achieved >= 0.9 * s.rate;
}

/** The figure of a run: the highest rate achieved at a passing step before the first failing one (0 if none). */
export function highestPassing(steps: readonly FloodStep[]): number {
  let best = 0;
  for (const s of steps) {
    if (!s.pass) break;
    best = Math.max(best, Math.round(s.achieved));
  }
  return best;
}

/** Parses the sender's JSON line. */
export function parseFlood(text: string): { sent: number; seconds: number; rate: number; errors: number } {
  const line = text.split('\n').find((l) => l.startsWith('{"sent"'));
  if (!line) throw new Error(`the flood sender printed no result: ${text.trim().slice(-300)}`);
  return JSON.parse(line) as { sent: number; seconds: number; rate: number; errors: number };
}

const SOURCE = join(dirname(fileURLToPath(import.meta.url)), 'peers', 'synflood.c');
let built: string | null = null;

/** Builds the sender once per run, into a directory removed at cleanup. */
function sender(): string {
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), 'tsv-bench-synflood-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'synflood');
  try {
    run([process.env.CC ?? 'cc', '-O2', '-o', bin, SOURCE]);
  } catch (e) {
    throw new Error(`cannot build ${SOURCE}: ${(e as Error).message.split('\n')[0]}`);
  }
  return (built = bin);
}

/** Floods `host`'s echo port from `clientNs` at rising rates; returns every step tried. */
export async function synFloodSteps(
  clientNs: string,
  host: string,
  path: FloodPath,
  o: { quick: boolean; log?: (line: string) => void },
): Promise<FloodStep[]> {
  const bin = sender();
  const legitCount = o.quick ? 100 : 400;
  const steps: FloodStep[] = [];
  let seed = 1;
  for (const rate of floodRates(o.quick)) {
    const flood = startDaemon([
      'ip', 'netns', 'exec', clientNs,
      bin, path.dev, path.serverMac, path.mac, host, String(ECHO_PORT), path.net,
      String(rate), String(rate * FLOOD_MAX_SECONDS), String(FLOOD_MAX_SECONDS), String(seed++),
    ]);
    let legit: EchoCheckResult;
    try {
      // Long enough for the flood to fill the SYN queue (4096 at the lowest rate: 0.16 s), so cookies answer it.
      await sleep(300);
      if (flood.child.exitCode !== null) throw new Error(`the flood sender stopped: ${flood.output().trim().slice(-300)}`);
      const client = await nsRunAsync(
        clientNs,
        [
          ...nodeProgram('bench/peers/echo-client.ts'),
          host, String(ECHO_PORT), String(legitCount), '8', String(LEGIT_TIMEOUT_MS), String(seed), String(LEGIT_DEADLINE_MS),
        ],
        (FLOOD_MAX_SECONDS - 2) * 1000,
      );
      if (client.timedOut) throw new Error(`the legitimate client did not finish within ${FLOOD_MAX_SECONDS - 2} s`);
      const line = client.stdout.split('\n').find((l) => l.startsWith('{'));
      if (!line) throw new Error(`the legitimate client printed no result: ${(client.stdout + client.stderr).trim().slice(-300)}`);
      legit = JSON.parse(line) as EchoCheckResult;
    } finally {
      await flood.stop();
    }
    const f = parseFlood(flood.output());
    const step: FloodStep = { rate, achieved: Math.round(f.rate), sent: f.sent, seconds: f.seconds, legit, pass: stepPassed(legit) };
    steps.push(step);
    o.log?.(
      `  syn-flood ${rate} SYN/s: sent ${f.sent} in ${f.seconds} s (${step.achieved}/s); legitimate ${legit.ok} ok, ` +
        `${legit.failed} failed${legit.failed ? ` ${JSON.stringify(legit.reasons)}` : ''}, p50 ${legit.p50_ms} ms, max ${legit.max_ms} ms`,
    );
    if (!keepRising(step)) break;
    // Let the last step's answers drain before the next.
    await sleep(500);
  }
  return steps;
}
