// Parsing what the stock clients print: iperf3 -J (a result and an error), sockperf ping-pong --full-rtt (with its
// colour escapes), wrk (with and without socket errors). Fixtures are real outputs of iperf3 3.12, sockperf 3.7 and
// wrk 4 on this machine, trimmed.
import t from 'tap';
import { parseIperf3Json, parseSockperf, parseWrk } from '../../bench/clients.ts';

const IPERF3 = JSON.stringify({
  start: { version: 'iperf 3.12' },
  intervals: [],
  end: {
    sum_sent: { start: 0, end: 1.000108, seconds: 1.000108, bytes: 963248128, bits_per_second: 7705152867.49031, retransmits: 4, sender: true },
    sum_received: { start: 0, end: 1.01315, seconds: 1.01315, bytes: 959184896, bits_per_second: 7573882611.656714, sender: true },
    sender_tcp_congestion: 'bbr',
    receiver_tcp_congestion: 'bbr',
    cpu_utilization_percent: { host_total: 72.7701101685546, host_user: 2.828565936293273, host_system: 69.94144463136213, remote_total: 48.3960832685276 },
  },
});

const IPERF3_ERROR = `{
	"start":	{
		"connected":	[],
		"version":	"iperf 3.12",
		"system_info":	"Linux vm 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0 x86_64"
	},
	"intervals":	[],
	"end":	{
	},
	"error":	"unable to connect to server: Connection refused"
}`;

const SOCKPERF = `sockperf: \x1b[2;35m== version #3.7-no.git == \x1b[0m
sockperf[CLIENT] send on:sockperf: using recvfrom() to block on socket(s)

[ 0] IP = 127.0.0.1       PORT = 11111 # TCP
sockperf: Warmup stage (sending a few dummy messages)...
sockperf: Starting test...
sockperf: Test end (interrupted by timer)
sockperf: Test ended
sockperf: [Total Run] RunTime=1.002 sec; Warm up time=400 msec; SentMessages=40122; ReceivedMessages=40121
sockperf: ========= Printing statistics for Server No: 0
sockperf: [Valid Duration] RunTime=0.546 sec; SentMessages=20745; ReceivedMessages=20745
sockperf: \x1b[2;35m====> avg-rtt=26.276 (std-dev=135.954)\x1b[0m
sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0
sockperf: Summary: Round trip is 26.276 usec
sockperf: \x1b[2;35mTotal 20745 observations\x1b[0m; each percentile contains 207.45 observations
sockperf: ---> <MAX> observation = 9234.442
sockperf: ---> percentile 99.999 = 9234.442
sockperf: ---> percentile 99.990 = 4965.578
sockperf: ---> percentile 99.900 = 1792.394
sockperf: ---> percentile 99.000 =   61.884
sockperf: ---> percentile 90.000 =   22.700
sockperf: ---> percentile 75.000 =   21.940
sockperf: ---> percentile 50.000 =   21.098
sockperf: ---> percentile 25.000 =   20.678
sockperf: ---> <MIN> observation =   15.808
`;

const SOCKPERF_NO_REPLY = `sockperf: [Total Run] RunTime=1.000 sec; Warm up time=400 msec; SentMessages=5000; ReceivedMessages=0
sockperf: ========= Printing statistics for Server No: 0
sockperf: [Valid Duration] RunTime=0.550 sec; SentMessages=2750; ReceivedMessages=0
sockperf: Total 0 observations; each percentile contains 0.00 observations
`;

const WRK = `Running 1s test @ http://127.0.0.1:80/
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    18.85ms   15.59ms  82.20ms   66.34%
    Req/Sec   237.62    129.41   555.00     80.95%
  523 requests in 1.15s, 236.47KB read
Requests/sec:    455.02
Transfer/sec:    205.74KB
`;

const WRK_ERRORS = `Running 5s test @ http://198.18.104.1:80/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    30.10ms   10.00ms 200.00ms   90.00%
    Req/Sec   480.00     50.00   600.00     70.00%
  4810 requests in 5.00s, 2.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:    962.00
Transfer/sec:    430.00KB
`;

// wrk --latency (keep-alive) against node:http on a veth, this machine.
const WRK_LATENCY = `Running 1s test @ http://198.18.216.2/
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   547.16us    1.13ms  16.33ms   89.82%
    Req/Sec    23.35k     9.02k   34.27k    70.00%
  Latency Distribution
     50%  118.00us
     75%  251.00us
     90%    1.71ms
     99%    5.40ms
  46544 requests in 1.01s, 21.79MB read
Requests/sec:  46210.04
Transfer/sec:     21.64MB
`;

t.test('iperf3 -J: receiver rate, sender rate, retransmits and the sender\'s congestion control', async (t) => {
  const r = parseIperf3Json(IPERF3);
  t.ok(Math.abs(r.gbps - 7.573882611656714) < 1e-12, `receiver ${r.gbps}`);
  t.ok(Math.abs(r.senderGbps - 7.70515286749031) < 1e-12, `sender ${r.senderGbps}`);
  t.equal(r.retransmits, 4);
  t.equal(r.congestion, 'bbr');
  const bare = JSON.parse(IPERF3);
  delete bare.end.sender_tcp_congestion;
  t.equal(parseIperf3Json(JSON.stringify(bare)).congestion, undefined, 'absent where iperf3 does not name it');
});

t.test('iperf3 -J: the bytes received and the client process\'s CPU share, absent where iperf3 gives none', async (t) => {
  const r = parseIperf3Json(IPERF3);
  t.equal(r.bytes, 959184896, 'the receiver\'s count, not the sender\'s');
  t.equal(r.clientCpu, 72.7701101685546, 'host_total: the client, not the remote server');
  const bare = JSON.parse(IPERF3);
  delete bare.end.cpu_utilization_percent;
  delete bare.end.sum_received.bytes;
  const b = parseIperf3Json(JSON.stringify(bare));
  t.equal(b.clientCpu, undefined);
  t.equal(b.bytes, undefined);
});

t.test('iperf3 -J: an error is reported in iperf3 words', async (t) => {
  t.throws(() => parseIperf3Json(IPERF3_ERROR), { name: 'ParseError', message: 'iperf3: unable to connect to server: Connection refused' });
  t.throws(() => parseIperf3Json('iperf3: error - unable to connect'), { name: 'ParseError', message: /printed no JSON/ }, 'not JSON');
  t.throws(() => parseIperf3Json('{"end":{}}'), /no end.sum_received/);
});

t.test('sockperf: median, p99, mean, observations', async (t) => {
  t.same(parseSockperf(SOCKPERF), { p50: 21.098, p99: 61.884, mean: 26.276, observations: 20745 });
  t.throws(() => parseSockperf(SOCKPERF_NO_REPLY), /observed no replies/);
  t.throws(() => parseSockperf('sockperf: unrecognized option'), /no observation count/);
});

t.test('wrk: rate, requests and errors', async (t) => {
  t.same(parseWrk(WRK), { rps: 455.02, requests: 523, errors: 0 });
  t.same(parseWrk(WRK_ERRORS), { rps: 962, requests: 4810, errors: 7 });
  t.throws(() => parseWrk('unable to connect to 198.18.0.2:80 Connection refused'), { name: 'ParseError' });
});

t.test('wrk --latency: the distribution in µs whatever unit wrk chose', async (t) => {
  t.same(parseWrk(WRK_LATENCY), { rps: 46210.04, requests: 46544, errors: 0, latency: { p50: 118, p75: 251, p90: 1710, p99: 5400 } });
  t.throws(() => parseWrk(WRK_LATENCY.replace(/ +99%.*\n/, '')), { name: 'ParseError', message: /99%/ });
  t.same(parseWrk(WRK_LATENCY.replace('5.40ms', '2.00s')).latency?.p99, 2e6);
});
