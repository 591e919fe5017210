// The report: the --json record shape (validated, and written the way the CLI writes it), ratios to kernel paired
// by test and setting, the terminal table, the self-contained HTML with inline SVG, --only selection and the
// slab reading used for the kernel's memory figure.
import t from 'tap';
import { barChart, formatHtml, formatTable } from '../../bench/report.ts';
import { medianOfRounds, ratiosToKernel, validateReport, type BenchReport, type BenchResult } from '../../bench/results.ts';
import { selectOnly } from '../../bench/run.ts';
import { slabBytes } from '../../bench/systems.ts';

const r = (system: BenchResult['system'], test: BenchResult['test'], value: number, extra: Partial<BenchResult> = {}): BenchResult => ({
  system,
  test,
  mtu: 1500,
  direction: 'to-service',
  streams: 1,
  value,
  unit: { throughput: 'Gbit/s', 'rr-latency': 'us', 'http-rps': 'req/s', 'http-keepalive': 'req/s', 'conn-memory': 'bytes', 'syn-flood': 'SYN/s' }[test],
  ...extra,
});

const RESULTS: BenchResult[] = [
  r('kernel', 'throughput', 10),
  r('tsvisor', 'throughput', 0.5),
  r('kernel', 'throughput', 8, { direction: 'from-service' }),
  r('pasta', 'throughput', 2, { direction: 'from-service' }),
  r('kernel', 'throughput', 20, { mtu: 65520 }),
  r('tsvisor', 'throughput', 1, { mtu: 65520 }),
  r('kernel', 'rr-latency', 20, { p99: 50, udp_median: 19, udp_p99: 40 }),
  r('tsvisor', 'rr-latency', 80, { p99: 300, udp_median: 60, udp_p99: 200 }),
  r('slirp4netns', 'http-rps', 900, { connections: 32 }),
  r('kernel', 'http-keepalive', 40000, { connections: 32, p50_us: 600, p99_us: 2000 }),
  r('tsvisor', 'http-keepalive', 44000, { connections: 32, p50_us: 690, p99_us: 30000 }),
  r('kernel', 'conn-memory', 4000, { connections: 10000 }),
  r('tsvisor', 'conn-memory', 6000, { connections: 10000 }),
];

const REPORT: BenchReport = {
  results: RESULTS,
  skipped: [{ system: 'pasta', test: '*', reason: 'not installed: passt (Debian package)' }],
  notes: { kernel: 'kernel slab' },
  quick: true,
  startedAt: '2026-01-01T00:00:00.000Z',
  seconds: 42,
};

t.test('JSON shape: records validate; broken ones are named', async (t) => {
  const doc = JSON.parse(JSON.stringify(REPORT));
  t.same(validateReport(doc), []);
  t.same(Object.keys(doc.results[0]).slice(0, 7), ['system', 'test', 'mtu', 'direction', 'streams', 'value', 'unit']);
  const bad = { results: [{ ...RESULTS[0], system: 'docker' }, { ...RESULTS[0], unit: 'Mbit/s' }, { ...RESULTS[0], direction: 'up', value: -1 }] };
  t.same(validateReport(bad), ['results[0].system docker', 'results[1].unit Mbit/s', 'results[2].direction', 'results[2].value']);
  t.same(validateReport({}), ['no results array']);
});

t.test('ratios pair each result with kernel at the same test, MTU, direction and streams', async (t) => {
  const ratios = ratiosToKernel(RESULTS);
  const of = (i: number) => ratios.get(RESULTS[i]!);
  t.equal(of(1), 0.05, 'tsvisor 1500 to-service / kernel 1500 to-service');
  t.equal(of(3), 0.25, 'pasta from-service / kernel from-service');
  t.equal(of(5), 0.05, 'tsvisor 65520 / kernel 65520');
  t.equal(of(7), 4, 'latency ratio');
  t.equal(of(8), undefined, 'no kernel http figure → no ratio');
  t.equal(of(0), 1);
});

t.test('http-rps pairs by concurrency: 8 with 8, 32 with 32, each its own row', async (t) => {
  const rows = [
    r('kernel', 'http-rps', 8000, { connections: 8 }),
    r('tsvisor', 'http-rps', 4000, { connections: 8 }),
    r('kernel', 'http-rps', 4000, { connections: 32 }),
    r('tsvisor', 'http-rps', 8000, { connections: 32 }),
  ];
  const ratios = ratiosToKernel(rows);
  t.equal(ratios.get(rows[1]!), 0.5, '8 concurrent against kernel at 8');
  t.equal(ratios.get(rows[3]!), 2, '32 concurrent against kernel at 32');
  const text = formatTable({ ...REPORT, results: rows, skipped: [], notes: {} });
  t.match(text, /http-rps new conn \(8 concurrent\)\s+8000 req\/s\s+4000 req\/s \(×0\.50\)\n.*http-rps new conn \(32 concurrent\)\s+4000 req\/s\s+8000 req\/s \(×2\.00\)/);
});

t.test('terminal table', async (t) => {
  const text = formatTable(REPORT, [
    { system: 'kernel', p50: 19, p99: 40 },
    { system: 'tsvisor', p50: 60, p99: 200 },
  ]);
  const lines = text.split('\n');
  t.match(lines[0], /^\s+kernel\s+tsvisor\s+pasta\s+slirp4netns$/, 'one column per system that has figures, kernel first');
  t.match(text, /throughput MTU 1500 1×stream to-service\s+10\.00 Gbit\/s\s+0\.50 Gbit\/s \(×0\.050\)/);
  t.match(text, /throughput MTU 65520 1×stream to-service\s+20\.00 Gbit\/s\s+1\.00 Gbit\/s \(×0\.050\)/);
  t.match(text, /rr-latency TCP 64 B median\s+20\.0 µs\s+80\.0 µs \(×4\.00\)/);
  t.match(text, /UDP echo round trip median\s+19\.0 µs\s+60\.0 µs/);
  t.match(text, /http-rps new conn \(32 concurrent\)\s+—\s+—\s+—\s+900 req\/s$/m, 'a missing kernel figure shows no ratio');
  t.match(text, /http-rps keep-alive \(32 conns\)\s+40000 req\/s\s+44000 req\/s \(×1\.10\)/);
  t.match(text, /http-rps keep-alive \(32 conns\) latency p50\s+600 µs\s+690 µs \(×1\.15\)/, 'keep-alive p50 with its ratio');
  t.match(text, /http-rps keep-alive \(32 conns\) latency p99\s+2000 µs\s+30\.0 ms \(×15\.00\)/, 'keep-alive p99, in ms from 10 ms');
  t.match(text, /skipped: pasta: not installed: passt/);
  const order = ['throughput MTU 1500 1×stream to-service', 'throughput MTU 1500 1×stream from-service', 'throughput MTU 65520', 'rr-latency', 'http-rps new', 'http-rps keep-alive (', 'conn-memory'];
  const at = order.map((s) => text.indexOf(s));
  t.same([...at].sort((a, b) => a - b), at, 'rows in test order');
});

t.test('HTML is self-contained with one inline SVG chart per setting', async (t) => {
  const html = formatHtml(REPORT, [{ system: 'kernel', p50: 19, p99: 40 }]);
  t.match(html, /^<!doctype html>/);
  t.notMatch(html, /<script|<link|src=|href="http/, 'no external resources or scripts');
  t.equal(html.match(/<svg /g)?.length, 8, '7 settings and the UDP chart');
  t.match(html, /×0\.05/);
  const svg = barChart('t <x>', [{ system: 'kernel', value: 2, text: '2' }, { system: 'tsvisor', value: 1, text: '1' }]);
  t.match(svg, /t &lt;x&gt;/, 'titles escaped');
  const widths = [...svg.matchAll(/<rect [^>]*width="([\d.]+)"/g)].map((m) => Number(m[1]));
  t.same(widths, [300, 150], 'bars proportional to the values');
});

t.test('--only selects systems and tests; unknown names are refused', async (t) => {
  t.same(selectOnly([]).systems, ['kernel', 'tsvisor', 'pasta', 'slirp4netns']);
  t.same(selectOnly(['kernel', 'rr-latency']), { systems: ['kernel'], tests: ['rr-latency'] });
  t.same(selectOnly(['throughput']).systems.length, 4);
  t.throws(() => selectOnly(['docker']), /unknown name docker/);
});

t.test('keep-alive at 10 and 32 connections → each row\'s latencies against the kernel\'s at the same count', async (t) => {
  const rows = [
    r('kernel', 'http-keepalive', 60000, { connections: 32, p50_us: 500, p99_us: 1000 }),
    r('tsvisor', 'http-keepalive', 66000, { connections: 32, p50_us: 450, p99_us: 3000 }),
    r('kernel', 'http-keepalive', 55000, { connections: 10, p50_us: 150, p99_us: 900 }),
    r('tsvisor', 'http-keepalive', 56000, { connections: 10, p50_us: 165, p99_us: 1800 }),
  ];
  const text = formatTable({ ...REPORT, results: rows, skipped: [], notes: {} });
  t.match(text, /http-rps keep-alive \(10 conns\)\s+55000 req\/s\s+56000 req\/s \(×1\.02\)/);
  t.match(text, /http-rps keep-alive \(32 conns\)\s+60000 req\/s\s+66000 req\/s \(×1\.10\)/);
  t.match(text, /http-rps keep-alive \(10 conns\) latency p50\s+150 µs\s+165 µs \(×1\.10\)/);
  t.match(text, /http-rps keep-alive \(10 conns\) latency p99\s+900 µs\s+1800 µs \(×2\.00\)/);
  t.match(text, /http-rps keep-alive \(32 conns\) latency p50\s+500 µs\s+450 µs \(×0\.90\)/);
  t.match(text, /http-rps keep-alive \(32 conns\) latency p99\s+1000 µs\s+3000 µs \(×3\.00\)/);
  t.ok(text.indexOf('(10 conns) latency p50') < text.indexOf('(32 conns) latency p50'), 'fewest connections first');
});

t.test('slab bytes sum active objects × object size', async (t) => {
  const text = `slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
TCPv6                 48     48   2560   12    8 : tunables    0    0    0 : slabdata      4      4      0
TCP                  100    112   2368   13    8 : tunables    0    0    0 : slabdata      8      8      0
`;
  t.equal(slabBytes(text), 48 * 2560 + 100 * 2368);
});

t.test('tsvisor results from a sharded serve → the table says with how many threads; none without', async (t) => {
  const rows = [r('kernel', 'throughput', 10, { streams: 4 }), r('tsvisor', 'throughput', 9, { streams: 4, threads: 2 })];
  t.match(formatTable({ ...REPORT, results: rows, skipped: [], notes: {} }), /\ntsvisor: serve --threads 2 \(netstack shards on worker threads\)\n/);
  t.notMatch(formatTable({ ...REPORT, results: RESULTS, skipped: [], notes: {} }), /--threads/);
});

t.test('--rounds: one record per system and setting, the median run\'s, with every run\'s value in order', async (t) => {
  const runs = [
    r('kernel', 'http-keepalive', 60000, { connections: 32, p50_us: 500 }),
    r('tsvisor', 'http-keepalive', 50000, { connections: 32, p50_us: 700 }),
    r('kernel', 'http-keepalive', 40000, { connections: 32, p50_us: 800 }),
    r('tsvisor', 'http-keepalive', 70000, { connections: 32, p50_us: 400 }),
    r('kernel', 'http-keepalive', 55000, { connections: 32, p50_us: 600 }),
    r('tsvisor', 'http-keepalive', 62000, { connections: 32, p50_us: 450 }),
    r('kernel', 'http-keepalive', 10000, { connections: 8 }),
    r('kernel', 'throughput', 20),
    r('kernel', 'throughput', 30),
  ];
  const m = medianOfRounds(runs);
  const ka = (s: string) => m.find((x) => x.system === s && x.test === 'http-keepalive' && x.connections === 32)!;
  // The median run's own secondary figures go with it.
  t.match(ka('kernel'), { value: 55000, p50_us: 600, rounds: [60000, 40000, 55000] });
  t.match(ka('tsvisor'), { value: 62000, p50_us: 450, rounds: [50000, 70000, 62000] });
  t.equal(ratiosToKernel(m).get(ka('tsvisor'))!.toFixed(3), (62000 / 55000).toFixed(3));
  // A setting run once stays as it was; an even count takes the lower middle run.
  const once = m.find((x) => x.connections === 8)!;
  t.equal(once.value, 10000);
  t.notOk('rounds' in once);
  t.match(m.find((x) => x.test === 'throughput')!, { value: 20, rounds: [20, 30] });
  t.equal(m.length, 4);
  t.match(formatTable({ ...REPORT, results: m, rounds: 3 }), /\neach figure is the median of 3 rounds/);
  t.notMatch(formatTable(REPORT), /median of/);
  t.match(formatTable({ ...REPORT, congestion: 'cubic' }), /\nto-service throughput: the clients' sockets use cubic \(--congestion\)\n/);
  t.notMatch(formatTable(REPORT), /--congestion/);
});

t.test('throughput CPU: a row per setting with CPU-seconds per GB against the kernel\'s and the client\'s CPU', async (t) => {
  const results = [
    r('kernel', 'throughput', 40, { streams: 4, cpu_s_per_gb: 0.41, client_cpu_pct: 99.6 }),
    r('tsvisor', 'throughput', 30, { streams: 4, cpu_s_per_gb: 0.54, client_cpu_pct: 100 }),
    r('pasta', 'throughput', 1, { streams: 4 }),
    r('kernel', 'throughput', 20, { direction: 'from-service' }),
    r('tsvisor', 'throughput', 30, { direction: 'from-service' }),
  ];
  const table = formatTable({ ...REPORT, results, skipped: [], notes: {} });
  const line = table.split('\n').find((l) => l.startsWith('throughput MTU 1500 4×stream to-service: CPU-s/GB, client CPU'));
  t.ok(line, table);
  t.match(line!, /0\.41, 100%\s+0\.54 \(×1\.32\), 100%\s+\?$/, 'kernel plain, tsvisor with its ratio; pasta measured nothing');
  t.notMatch(table, /from-service: CPU-s\/GB/, 'a setting without CPU figures gets no row');
});
