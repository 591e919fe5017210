// The Sentry bench's pure parts: the timing lines of a run's --debug-log and the text table.
import t from 'tap';
import { floorChecks, formatSentryTable, parseTiming } from '../../bench/sentry.ts';

t.test('parseTiming → the parts a run logs, as numbers; other lines ignored', (t) => {
  const log = [
    '   301.2 run ab12cd: network=sandbox argv=["/bin/true"]',
    '   301.5 timing cli=300.9',
    '   340.0 timing netns=38.1',
    '   372.2 timing netstack=31.7',
    '   372.4 veth tsv-ab12cd (198.18.7.1/30) ↔ tsv-ab12cd/eth0 (198.18.7.2/30)',
    '   390.3 timing launch=17.6',
    '   390.4 timing ready=390.4',
  ].join('\n');
  t.same(parseTiming(log), { cli: 300.9, netns: 38.1, netstack: 31.7, launch: 17.6, ready: 390.4 });
  t.same(parseTiming('nothing here'), {});
  t.end();
});

t.test('formatSentryTable → one row per mode with its parts and ratios, calls during iperf3 apart, floors and skipped rows listed', (t) => {
  const text = formatSentryTable({
    startup: [
      { mode: 'native', runs: 20, median: 2, p90: 3, parts: {}, ratioNative: 1 },
      { mode: 'sandbox', runs: 20, median: 420.5, p90: 500, parts: { cli: 280, netns: 40, netstack: 30, launch: 18, ready: 380 }, setup: 100, ratioHost: 1.2, ratioNative: 210.25 },
    ],
    calls: [
      { test: 'getsockname', mode: 'sandbox', median: 14.5, p99: 40, ratioNative: 90.6 },
      { test: 'getsockname', mode: 'sandbox', load: 'iperf3', median: 61.25, p99: 900, ratioNative: 120.1 },
    ],
    throughput: [{ system: 'sandbox', streams: 1, direction: 'to', gbps: 5.25, ratioHost: 0.4, ratioServe: 0.6 }],
    skipped: [{ mode: 'none', reason: 'exit status 1: no bwrap' }],
    floors: { sandbox: 'end to end ≤ 400 ms' },
  });
  t.match(text, /^sandbox\s+20\s+420\.5\s+500\.0\s+280\.0\s+40\.0\s+30\.0\s+18\.0\s+100\.0\s+1\.20\s+210\.25$/m);
  t.match(text, /^native\s+20\s+2\.0\s+3\.0\s+-/m);
  t.match(text, /^getsockname\s+sandbox\s+14\.50\s+40\.00\s+90\.6$/m);
  // The loaded figures come in a table of their own, after the quiet one and with no floor.
  const during = text.indexOf('during iperf3');
  t.ok(during > text.indexOf('14.50'), 'a table of its own after the quiet rows');
  t.match(text.slice(during), /^getsockname\s+sandbox\s+61\.25\s+900\.00\s+120\.1$/m);
  t.notMatch(text.slice(0, during), /61\.25/, 'not among the quiet rows');
  t.match(text, /^sandbox\s+1\s+to\s+5\.25\s+0\.40\s+0\.60$/m);
  t.match(text, /^floor sandbox: end to end ≤ 400 ms$/m);
  t.match(text, /^skipped none: exit status 1: no bwrap$/m);
  t.end();
});

t.test('floorChecks → each floor of issue 9 the run measured, with its verdict; the table prints them', (t) => {
  const r = {
    startup: [
      { mode: 'none' as const, runs: 5, median: 571.2, p90: 600, parts: { launch: 38 }, setup: 80.9 },
      { mode: 'sandbox' as const, runs: 5, median: 390, p90: 420, parts: { launch: 46 }, setup: 222 },
    ],
    calls: [
      { test: 'getppid', mode: 'native' as const, median: 0.98, p99: 1 },
      { test: 'getppid', mode: 'sandbox' as const, median: 1.16, p99: 3 },
      { test: 'getsockname', mode: 'sandbox' as const, median: 80, p99: 400 },
      { test: 'getsockname', mode: 'sandbox' as const, load: 'iperf3' as const, median: 20, p99: 40 },
      { test: 'connect-accept-close', mode: 'sandbox' as const, median: 450, p99: 900 },
    ],
    throughput: [
      { system: 'sandbox' as const, streams: 1, direction: 'from' as const, gbps: 8.9, ratioHost: 0.5, ratioServe: 0.28 },
      { system: 'sandbox' as const, streams: 4, direction: 'from' as const, gbps: 8, ratioHost: 0.1, ratioServe: 0.1 },
    ],
  };
  const byWhat = Object.fromEntries(floorChecks(r).map((f) => [f.what, f.met]));
  t.same(byWhat, {
    'none start-up end to end': false,
    'none set-up': true,
    'none launch': true,
    'sandbox start-up end to end': true,
    'sandbox set-up': true,
    'sandbox launch': false,
    getsockname: false,
    'connect+accept+close': true,
    'getppid over native': false,
    'iperf3 from ×host': true,
    'iperf3 from ×serve': false,
  }, 'the loaded getsockname and the four-stream row are not judged; figures the run lacks are left out');
  const text = formatSentryTable({ ...r, skipped: [], floors: {} });
  t.match(text, /^floor check: none start-up end to end 571\.2 ms \(≤ 250\): BELOW$/m);
  t.match(text, /^floor check: iperf3 from ×host 0\.5× \(≥ 0\.3\): met$/m);
  t.end();
});
