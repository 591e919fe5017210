/**
 * The network layer's counter groups. Every received frame (and every looped-back packet) is counted once in
 * `rx.received` and ends in exactly one of `rx.delivered` (a handler took it) or a named drop counter, which
 * also adds to `rx.dropped`; `rx.looped` counts the looped-back part of `rx.received`. Receive handlers return a `Verdict` so this accounting lives in one place.
 */
import type { Stats } from '../stats.ts';

/** What a receive handler did with a frame: undefined when it was taken, else the drop counter "group.name". */
export type Verdict = string | undefined;

/** Creates (or finds) every counter group of the network layer. */
export function createCounters(stats: Stats) {
  return {
    rx: stats.group('rx', { received: 0, delivered: 0, dropped: 0, looped: 0 }),
    link: stats.group('link', { rxFrames: 0, txFrames: 0, txErrors: 0, rxGsoFrames: 0, txGsoFrames: 0 }),
    arp: stats.group('arp', {
      rxRequests: 0,
      rxReplies: 0,
      txRequests: 0,
      txReplies: 0,
      txGratuitous: 0,
      conflicts: 0,
      queueDrops: 0,
      resolutionFailures: 0,
      tableFull: 0,
      stateChanges: 0,
    }),
    ipv4: stats.group('ipv4', {
      rxPackets: 0,
      delivered: 0,
      txPackets: 0,
      txFragments: 0,
      txNoRoute: 0,
      txTooBig: 0,
      loopback: 0,
    }),
    ipv6: stats.group('ipv6', {
      rxPackets: 0,
      delivered: 0,
      txPackets: 0,
      txFragments: 0,
      txNoRoute: 0,
      txTooBig: 0,
      loopback: 0,
    }),
    icmpv4: stats.group('icmpv4', {
      rxEchoRequests: 0,
      rxEchoReplies: 0,
      rxErrors: 0,
      txEchoReplies: 0,
      txErrors: 0,
      rateLimited: 0,
    }),
    icmpv6: stats.group('icmpv6', {
      rxEchoRequests: 0,
      rxEchoReplies: 0,
      rxErrors: 0,
      txEchoReplies: 0,
      txErrors: 0,
      rateLimited: 0,
    }),
    ndp: stats.group('ndp', {
      rxSolicits: 0,
      rxAdverts: 0,
      txSolicits: 0,
      txAdverts: 0,
      dadProbes: 0,
      dadSucceeded: 0,
      dadFailed: 0,
      queueDrops: 0,
      resolutionFailures: 0,
      tableFull: 0,
      stateChanges: 0,
    }),
    frag: stats.group('frag', {
      v4Fragments: 0,
      v6Fragments: 0,
      reassembled: 0,
      timeouts: 0,
      evicted: 0,
      atomic: 0,
    }),
  };
}

/** The network layer's counter groups. */
export type Counters = ReturnType<typeof createCounters>;

/** A kebab-case drop reason as a counter name: "too-many-fragments" → "tooManyFragments". */
export function counterName(reason: string): string {
  return reason.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase());
}
