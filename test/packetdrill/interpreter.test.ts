import t from 'tap';
import { createTsvisorDut } from './dut-tsvisor.ts';
import { runScript } from './interpreter.ts';
import { parseScript } from './parse.ts';
import { type DutFactory, jsonReport, runAll } from './runner.ts';

const tsvisor: DutFactory = { name: 'tsvisor', create: async (cfg) => createTsvisorDut(cfg) };

async function run(text: string, ipVersion: 4 | 6 = 4) {
  const script = parseScript(text, 'inline.pkt');
  const dut = createTsvisorDut({ ipVersion, mtu: 1500 });
  try {
    return await runScript(script, dut, {});
  } finally {
    await dut.close();
  }
}

const UDP_HEAD = ['--tolerance_usecs=10000', '0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3', '+0 bind(3, ..., ...) = 0', '+0 connect(3, ..., ...) = 0'];

t.test('team scripts pass on tsvisor; the broken gVisor copy fails at its read', async (t) => {
  const rows = await runAll(['test/conformance/team', 'test/conformance/must-fail'], { duts: [tsvisor], filter: '*udp*' });
  t.ok(rows.length >= 3);
  for (const r of rows) t.equal(r.verdict, 'pass', `${r.script}: ${r.detail}`);
  const broken = await runAll(['test/conformance/must-fail/accept_ack_drop-broken.pkt'], { duts: [tsvisor] });
  t.equal(broken[0]!.verdict, 'fail');
  t.equal(broken[0]!.line, 27);
  t.match(broken[0]!.detail, 'read() = 4, expected 5');
  const json = JSON.parse(jsonReport(broken));
  t.match(json.results[0], { script: 'test/conformance/must-fail/accept_ack_drop-broken.pkt', dut: 'tsvisor', verdict: 'fail', line: 27 });
});

t.test('UDP write → expected datagram of the right length passes; a wrong length fails on that line', async (t) => {
  const ok = await run([...UDP_HEAD, '+0 write(3, ..., 10) = 10', '+0 > udp (10)'].join('\n'));
  t.equal(ok.verdict, 'pass', ok.detail);
  const bad = await run([...UDP_HEAD, '+0 write(3, ..., 10) = 10', '+0 > udp (11)'].join('\n'));
  t.equal(bad.verdict, 'fail');
  t.equal(bad.line, 6);
  t.match(bad.detail, 'udp length: expected 11, actual 10');
});

t.test('expected packet never sent → fail naming the deadline', async (t) => {
  // The tolerance is packetdrill's: --tolerance_usecs, or 12.5% (--tolerance_percent) of the 0.5 s since the last event.
  const r = await run([...UDP_HEAD, '+0.5 > udp (10)'].join('\n'));
  t.equal(r.verdict, 'fail');
  t.match(r.detail, /expected packet not sent by 0\.563s: udp \(10\)/);
  const narrow = await run(['--tolerance_percent=0', ...UDP_HEAD, '+0.5 > udp (10)'].join('\n'));
  t.match(narrow.detail, /expected packet not sent by 0\.510s: udp \(10\)/);
});

t.test('a packet sent before its window → too early', async (t) => {
  const r = await run([...UDP_HEAD, '+0 write(3, ..., 10) = 10', '+1 > udp (10)'].join('\n'));
  t.equal(r.verdict, 'fail');
  t.match(r.detail, /packet sent too early at 0\.000s \(expected 1\.000s±125ms\)/);
});

t.test('errno mismatch and unknown syscall → fail and error', async (t) => {
  const r = await run([...UDP_HEAD, '+0 read(3, ..., 10) = -1 EINPROGRESS (x)'].join('\n'));
  t.equal(r.verdict, 'fail');
  t.match(r.detail, 'read() blocked');
  const e = await run(['0 frobnicate(3) = 0'].join('\n'));
  t.equal(e.verdict, 'error');
  t.match(e.detail, 'system call frobnicate() is not supported');
});

t.test('shell lines: known sysctls map, others are reported as skipped lines', async (t) => {
  const r = await run(['0 `sysctl -q net.ipv4.tcp_sack=0`', '+0 `sockstat -4 | grep 1`', '+0 `sysctl -q net.ipv4.tcp_frto=1`', '+0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3'].join('\n'));
  t.equal(r.verdict, 'pass');
  t.same(r.skipped.map((s) => s.line), [2, 3]);
  t.match(r.skipped[0]!.why, 'not a command the tsvisor DUT can apply');
  t.match(r.skipped[1]!, { text: 'net.ipv4.tcp_frto=1', why: "tsvisor's TCP does not read it yet" });
  t.match(r.detail, '2 line(s) skipped');
  const bad = await run(['0 `sysctl -q net.ipv4.tcp_sack=7`', '+0 socket(..., SOCK_DGRAM, IPPROTO_UDP) = 3'].join('\n'));
  t.equal(bad.verdict, 'fail', 'a sysctl the table refuses fails the command, as sysctl(8) exits non-zero');
  t.match(bad.detail, 'net.ipv4.tcp_sack: "7" is not an integer in [0, 1]');
});

t.test('TCP passive open on tsvisor: SYN → SYN-ACK with relative numbers, accept, tcp_info asserts', async (t) => {
  const r = await run(
    [
      '--tolerance_usecs=10000',
      '0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3',
      '+0 bind(3, ..., ...) = 0',
      '+0 listen(3, 1) = 0',
      '+0 < S 0:0(0) win 32792 <mss 1460,sackOK,nop,nop,nop,wscale 7>',
      '+0 > S. 0:0(0) ack 1 <...>',
      '+0 < . 1:1(0) ack 1 win 257',
      '+0 accept(3, ..., ...) = 4',
      '+0 getsockopt(4, SOL_SOCKET, SO_ERROR, [0], [4]) = 0',
      '+0 %{ assert tcpi_state == TCPI_ESTABLISHED }%',
      '+0 %{ assert tcpi_state == 1; assert tcpi_snd_mss >= 500 }%',
      '+0 %{ assert tcpi_state == TCPI_LISTEN }%',
    ].join('\n'),
  );
  t.equal(r.verdict, 'fail', r.detail);
  t.equal(r.line, 12, 'the first two blocks held, the third did not (python runs them at the end, as packetdrill)');
  t.match(r.detail, /tcpi_state == TCPI_LISTEN.*AssertionError/);
});

t.test('profiles: chosen per folder, leniency listed in the result; globs filter', async (t) => {
  const { chooseProfile, globMatcher } = await import('./runner.ts');
  const empty = parseScript('0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3', 'x.pkt');
  t.equal(chooseProfile('/c/gvisor/a.pkt', empty), 'gvisor');
  t.equal(chooseProfile('/c/freebsd/x/a.pkt', empty), 'freebsd');
  t.equal(chooseProfile('/c/team/a.pkt', parseScript('0 `sysctl -w net.inet.tcp.sack.enable=1`', 'y.pkt')), 'freebsd');
  t.equal(chooseProfile('/c/team/a.pkt', empty), 'strict');
  const m = globMatcher('*{keepalive,paws}*');
  t.same(['a/tcp-keepalive.pkt', 'b/tcp-paws.pkt', 'c/udp.pkt'].map(m), [true, true, false]);
  t.ok(globMatcher('**/gvisor/*.pkt')('/w/gvisor/a.pkt'));
  const rows = await runAll(['/work/shared/conformance/freebsd/state-event-engine/rcv-syn-listen'], { duts: [tsvisor], filter: '*ipv4*' });
  t.ok(rows.length >= 1);
  for (const r of rows) {
    t.equal(r.profile, 'freebsd');
    t.equal(r.verdict, 'pass', r.detail);
    t.ok(r.leniency.length > 0, 'the forgiven differences are listed');
    t.ok(r.skippedLines.some((s) => s.text.includes('net.inet.tcp.hostcache.purgenow')), 'unknown sysctls are listed as skipped');
  }
});

t.test('NULL buffer with a length on tsvisor → EFAULT from the copy-in; a length of 0 is no fault', async (t) => {
  const head = [
    '--tolerance_usecs=10000',
    '0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3',
    '+0 bind(3, ..., ...) = 0',
    '+0 listen(3, 1) = 0',
    '+0 < S 0:0(0) win 32792 <mss 1460,sackOK,nop,nop,nop,wscale 7>',
    '+0 > S. 0:0(0) ack 1 <...>',
    '+0 < . 1:1(0) ack 1 win 257',
    '+0 accept(3, ..., ...) = 4',
  ];
  const ok = await run(
    [
      ...head,
      '+0 write(4, NULL, 1000) = -1 EFAULT (Bad address)',
      '+0 send(4, NULL, 1000, 0) = -1 EFAULT (Bad address)',
      '+0 sendto(4, NULL, 1000, 0, ..., ...) = -1 EFAULT (Bad address)',
      '+0 < . 1:1001(1000) ack 1 win 257',
      '+0 read(4, NULL, 1000) = -1 EFAULT (Bad address)',
      '+0 recv(4, NULL, 1000, 0) = -1 EFAULT (Bad address)',
      '+0 recvfrom(4, NULL, 1000, 0, ..., ...) = -1 EFAULT (Bad address)',
      '+0 write(4, NULL, 0) = 0',
    ].join('\n'),
  );
  t.equal(ok.verdict, 'pass', ok.detail);
  const bad = await run([...head, '+0 write(4, NULL, 10) = 10'].join('\n'));
  t.equal(bad.verdict, 'fail');
  t.match(bad.detail, 'write() = -1 EFAULT');
});
