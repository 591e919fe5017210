import t from 'tap';
import { congestionOption, parseBenchArgs } from '../../cli/bench.ts';
import { parseServeArgs, shardPcap } from '../../cli/serve.ts';
import { sumCounters } from '../../cli/serve-shards.ts';

const base = ['--netns', 'n', '--dev', 'd'];

t.test('serve --threads → 1 by default (the single-thread path), N when given, bounded', (t) => {
  t.equal(parseServeArgs(base).threads, 1);
  t.equal(parseServeArgs([...base, '--threads', '2']).threads, 2);
  t.throws(() => parseServeArgs([...base, '--threads', '0']), /^--threads: 0 is outside 1\.\.16$/);
  t.throws(() => parseServeArgs([...base, '--threads', 'two']), /^--threads: 'two' is not a whole number$/);
  t.end();
});

t.test('serve --threads N > 1 with --tap → usage error naming both; --pcap and --impair are taken', (t) => {
  t.throws(() => parseServeArgs([...base, '--threads', '2', '--tap', '--addr', '198.18.140.1/24']), /^--threads 2 does not go with --tap yet/);
  t.equal(parseServeArgs([...base, '--threads', '2', '--pcap', 'x.pcap']).pcap, 'x.pcap');
  t.match(parseServeArgs([...base, '--threads', '2', '--impair', 'delay=5ms,seed=3']).impair, { seed: 3 });
  t.end();
});

t.test('--pcap FILE with shards → one file per shard, the index before the extension', (t) => {
  t.equal(shardPcap('/tmp/run.pcap', 0), '/tmp/run.shard0.pcap');
  t.equal(shardPcap('out/x.y/cap', 1), 'out/x.y/cap.shard1');
  t.equal(shardPcap('.pcap', 2), '.pcap.shard2');
  t.end();
});

t.test('bench --threads, --streams and --connections → passed on; defaults 1 and the plan\'s', (t) => {
  const d = parseBenchArgs([]);
  t.equal(d.threads, 1);
  t.equal(d.streams, undefined);
  t.equal(d.connections, undefined);
  t.same(parseBenchArgs(['--quick', '--connections', '10']).connections, [10]);
  t.same(parseBenchArgs(['--connections', '10,32']).connections, [10, 32]);
  t.throws(() => parseBenchArgs(['--connections', '0']), /^--connections: 0 is outside 1\.\.1024$/);
  const o = parseBenchArgs(['--threads', '2', '--streams', '1,4', '--only', 'kernel,tsvisor,throughput']);
  t.equal(o.threads, 2);
  t.same(o.streams, [1, 4]);
  t.throws(() => parseBenchArgs(['--streams', '1,x']), /^--streams: 'x' is not a whole number$/);
  t.equal(d.rounds, 1);
  t.equal(parseBenchArgs(['--rounds', '3']).rounds, 3);
  t.throws(() => parseBenchArgs(['--rounds', '0']), /^--rounds: /);
  t.equal(d.congestion, undefined);
  t.equal(congestionOption('cubic', ['reno', 'bbr', 'cubic']), 'cubic');
  t.throws(() => congestionOption('vegas', ['reno', 'bbr', 'cubic']), /^--congestion: 'vegas' is not available here \(reno, bbr, cubic\)$/);
  t.throws(() => parseBenchArgs(['--congestion', 'cu bic']), /^--congestion: 'cu bic' is not a congestion control's name$/);
  t.equal(parseBenchArgs(['--congestion', 'reno']).congestion, 'reno', 'reno: always built in');
  t.end();
});

t.test('counters of shards → summed by name, and each shard\'s non-zero ones under shard.<i>.', (t) => {
  const sum = sumCounters([
    { 'tcp.passiveOpens': 3, 'hostlink.rxFrames': 10, 'tcp.resets': 0 },
    { 'tcp.passiveOpens': 4, 'hostlink.rxFrames': 0, 'udp.received': 2 },
  ]);
  t.same(sum, {
    'tcp.passiveOpens': 7,
    'hostlink.rxFrames': 10,
    'tcp.resets': 0,
    'udp.received': 2,
    'shard.0.tcp.passiveOpens': 3,
    'shard.0.hostlink.rxFrames': 10,
    'shard.1.tcp.passiveOpens': 4,
    'shard.1.udp.received': 2,
  });
  t.same(sumCounters([]), {});
  t.end();
});
