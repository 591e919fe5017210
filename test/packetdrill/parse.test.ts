import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseScript } from './parse.ts';
import { ParseError } from './script.ts';
import { upstreamDefinitions } from './upstream.ts';

// The gVisor, FreeBSD and upstream packetdrill (google/, with run_all.py's -D definitions) corpora.
const CORPUS = join(import.meta.dirname, '../../../shared/conformance');
const CORPORA = ['gvisor', 'freebsd', 'google'].map((d) => join(CORPUS, d));
const definitions = (o: Readonly<Record<string, string>>) => (o.ip_version === 'ipv6' ? upstreamDefinitions(6, 'fd74:7376::2', 'fd74:7376::1') : upstreamDefinitions(4, '198.18.0.2', '198.18.0.1'));

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.pkt') ? [p] : [];
  });
}

t.test('every corpus script and team script parses', async (t) => {
  const files = [...CORPORA.flatMap(walk), ...walk('test/conformance')];
  t.ok(files.length >= 382 + 138 + 5, `found ${files.length} scripts`);
  let failures = 0;
  for (const f of files) {
    try {
      const s = parseScript(readFileSync(f, 'utf8'), f, { definitions });
      if (s.events.length === 0) throw new Error(`${f}: no events`);
    } catch (e) {
      failures++;
      t.fail((e as Error).message);
    }
  }
  t.equal(failures, 0);
});

t.test('packet lines → fields', async (t) => {
  const s = parseScript(
    [
      '--ip_version=ipv6',
      '--tolerance_usecs=25000',
      '0 < S 0:0(0) win 32792 <mss 1460,sackOK,nop,nop,nop,wscale 7>',
      '+0.1 > S. 0:0(0) ack 1 <...>',
      '+.35~+2.35 > [ect0] F. 1:1(0) ack 5 win 257 <nop,nop,TS val 100 ecr 7,sack 1:2 3:4>',
      '*  > S.     ...(0)     ack 65537 win 65535',
      '+ 0.00 < icmp unreachable frag_needed mtu 1234 [1:1(0)]',
      '+0 < udp (20)',
    ].join('\n'),
    'x.pkt',
  );
  t.same(s.options, { ip_version: 'ipv6', tolerance_usecs: '25000' });
  t.equal(s.events.length, 6);
  const [a, b, c, d, e, f] = s.events;
  t.same(a!.time, { kind: 'abs', ms: 0 });
  t.match(a!.action, { type: 'packet', direction: 'in', packet: { proto: 'tcp', flags: 'S', seq: 0, end: 0, len: 0, win: 32792 } });
  t.same((a!.action as { packet: { options: unknown } }).packet.options, [
    { kind: 'mss', value: 1460 }, { kind: 'sackOK' }, { kind: 'nop' }, { kind: 'nop' }, { kind: 'nop' }, { kind: 'wscale', value: 7 },
  ]);
  t.match(b!.action, { direction: 'out', packet: { flags: 'S.', ack: 1, options: 'any', win: undefined } });
  t.same(c!.time, { kind: 'rel', ms: 350, end: { kind: 'rel', ms: 2350, blocking: false } });
  t.match(c!.action, { ip: { ecn: 2 }, packet: { flags: 'F.', seq: 1, ack: 5, win: 257 } });
  t.same((c!.action as { packet: { options: unknown } }).packet.options, [
    { kind: 'nop' }, { kind: 'nop' }, { kind: 'TS', val: 100, ecr: 7 }, { kind: 'sack', blocks: [[1, 2], [3, 4]] },
  ]);
  t.equal(d!.time.kind, 'any');
  t.match(d!.action, { packet: { seq: null, len: 0, ack: 65537 } });
  t.match(e!.action, { packet: { proto: 'icmp', type: 'unreachable', code: 'frag_needed', mtu: 1234, echoed: { proto: 'tcp', seq: 1, end: 1, len: 0 } } });
  t.match(f!.action, { packet: { proto: 'udp', len: 20 } });
});

t.test('system call lines → expressions and expected results', async (t) => {
  const s = parseScript(
    [
      '0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3',
      '+0 fcntl(3, F_GETFL) = 0x02 (flags O_RDWR)',
      '+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)',
      '+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0}, 8) = 0',
      '0.1...0.3 read(3, ..., 100) = 7',
      '+0 poll([{fd=3, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1',
      '+0 sendmsg(3, {msg_name(...)=..., msg_iov(1)=[{iov_base=..., iov_len=10}], msg_flags=0}, 0) = 10',
      '+0 `sysctl -q net.ipv4.tcp_sack=1`',
      '+0 %{ assert tcpi_state == TCPI_SYN_RECEIVED }%',
    ].join('\n'),
    'y.pkt',
  );
  const calls = s.events.map((e) => e.action);
  t.match(calls[0], { type: 'syscall', name: 'socket', result: 3, args: [{ t: 'ellipsis' }, { t: 'ident', name: 'SOCK_STREAM' }, { t: 'ident', name: 'IPPROTO_TCP' }] });
  t.match(calls[1], { name: 'fcntl', result: 2, note: 'flags O_RDWR' });
  t.match(calls[2], { name: 'connect', result: -1, errno: 'EINPROGRESS' });
  t.match(calls[3], { args: [{}, {}, {}, { t: 'struct', fields: [{ name: 'l_onoff', value: { t: 'int', v: 1 } }, { name: 'l_linger' }] }, { t: 'int', v: 8 }] });
  t.same(s.events[4]!.time, { kind: 'abs', ms: 100, end: { kind: 'abs', ms: 300, blocking: true } });
  t.match(calls[5], { args: [{ t: 'list', items: [{ t: 'struct', fields: [{ name: 'fd' }, { name: 'events', value: { t: 'or' } }, { name: 'revents' }] }] }] });
  t.match(calls[6], { args: [{}, { t: 'struct', fields: [{ name: 'msg_name' }, { name: 'msg_iov', count: 1, value: { t: 'list' } }, { name: 'msg_flags' }] }] });
  t.same(calls[7], { type: 'shell', command: 'sysctl -q net.ipv4.tcp_sack=1' });
  t.same(calls[8], { type: 'code', code: 'assert tcpi_state == TCPI_SYN_RECEIVED' });
});

t.test('#ifdef keeps the STANDARD branch and records what it dropped', async (t) => {
  const s = parseScript(['0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3', '#ifdef FreeBSD', '+0 `tcpdrop -s TIME_WAIT`', '#else', '+0 close(3) = 0', '#endif'].join('\n'), 'z.pkt');
  t.equal(s.events.length, 2);
  t.match(s.events[1]!.action, { name: 'close' });
  t.same(s.ifdefSkipped, [{ line: 3, symbol: 'FreeBSD' }]);
});

t.test('bad lines → file:line: what was expected', async (t) => {
  const cases: [string, RegExp][] = [
    ['0 < S 0:0(0) win 100 <mss>', /^bad\.pkt:1: unknown TCP option "mss"/],
    ['0 < S 0:5(0) win 100', /^bad\.pkt:1: sequence range 0:5 does not match the length \(0\)/],
    ['\n\n0 bind(3, ..., ...)', /^bad\.pkt:3: expected "= result"/],
    ['x socket() = 3', /^bad\.pkt:1: expected a time/],
    ['0 < Q 0:0(0)', /^bad\.pkt:1: expected TCP flags/],
    ['0 connect(3, ..., ...) = -1 (no errno)x', /^bad\.pkt:1: expected "\)" closing the note/],
    ['#ifdef X\n0 close(3) = 0', /^bad\.pkt:2: #ifdef X without #endif/],
    ['0 `sysctl -q x', /^bad\.pkt:1: unterminated shell command \(expected a closing backtick\)/],
    ['0 recvmsg(3, {msg_name(...)=...,\n msg_iov(1)=[{...,0}],', /^bad\.pkt:1: unterminated bracket/],
    ['0 < [ecx] S 0:0(0) win 1', /^bad\.pkt:1: expected \[noecn\]/],
    ['0 < (flowlabel 0x100000) S 0:0(0) win 1', /^bad\.pkt:1: flowlabel out of range for 20 bits/],
    ['0 < S 0:0(0) win 1 <FO abc>', /^bad\.pkt:1: FO value "abc" is not an even number of hex digits/],
    ['0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n`a`\n`b`', /^bad\.pkt:3: a command without a time may only open or close the script/],
    ['`a`\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n--mss=1000', /^bad\.pkt:3: option lines "--name=value" must come before the first event/],
  ];
  for (const [text, re] of cases) {
    let err: unknown;
    try {
      parseScript(text, 'bad.pkt');
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof ParseError, `${JSON.stringify(text)} → ParseError`);
    t.match((err as Error | undefined)?.message, re);
  }
});

t.test('upstream packetdrill\'s language: init and cleanup commands, multi-line events, annotations, options', async (t) => {
  const s = parseScript(
    [
      '--mss=1000 // trailing comment',
      '--define=KEY=0x10',
      '`../common/defaults.sh',
      'sysctl -q net.ipv4.tcp_ecn=2    # server agrees to ECN`',
      '0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3',
      '+0 < (ttl 4) S 0:0(0) win 100 <mss 1460,FO TFO_COOKIE,nop,nop>',
      '+0 > (tos 0x2, flowlabel 0x1) S. 0:0(0) ack 1 <FOEXP,md5 0102>',
      '+0 > - 1:1(0) ack 1',
      '+0 < [ce] . 1:1(0) ack 1 win 1',
      '+0 < mpls (label 1, tc 0, [S], ttl 255): S 0:0(0) win 1',
      '+0 > . 1:1(0) ack 1 <ECN e1b 1 ceb 0 e0b 1,nop>',
      '+.002 ... 0.004 connect(4, ..., ...) = 0',
      '+0 recvmsg(4, {msg_name(...)=...,',
      '               msg_iov(1)=[{...,0}], // comment inside',
      '               msg_flags=MSG_ERRQUEUE,',
      '               msg_control=[{cmsg_level=CMSG_LEVEL_IP, cmsg_type=CMSG_TYPE_RECVERR,',
      '                             cmsg_data={ee_errno=0, ee_origin=SO_EE_ORIGIN_ZEROCOPY, ee_type=0, ee_code=0, ee_info=KEY, ee_data=1}}]}, MSG_ERRQUEUE) = -1',
      '+0 %{',
      'assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd // not a comment in python',
      '}%',
      '`/tmp/sysctl_restore_${PPID}.sh`',
    ].join('\n'),
    'up.pkt',
    { definitions: { TFO_COOKIE: '0102030405060708', CMSG_LEVEL_IP: 'SOL_IP', CMSG_TYPE_RECVERR: 'IP_RECVERR' } },
  );
  t.same(s.options, { mss: '1000', define: 'KEY=0x10' });
  t.same(s.init, { line: 3, command: '../common/defaults.sh\nsysctl -q net.ipv4.tcp_ecn=2    # server agrees to ECN' });
  t.same(s.cleanup, { line: 21, command: '/tmp/sysctl_restore_${PPID}.sh' });
  const a = s.events.map((e) => e.action) as any[];
  t.same(s.events.map((e) => e.line), [5, 6, 7, 8, 9, 10, 11, 12, 13, 18]);
  t.match(a[1], { ip: { ttl: 4 }, packet: { flags: 'S' } });
  t.same(a[1].packet.options[1], { kind: 'raw', code: 34, data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) }, 'TFO_COOKIE defined');
  t.match(a[2], { ip: { tos: 2, flowlabel: 1 } });
  t.same(a[2].packet.options, [{ kind: 'raw', code: 254, data: new Uint8Array([0xf9, 0x89]) }, { kind: 'raw', code: 19, data: new Uint8Array([1, 2]) }]);
  t.match(a[3], { packet: { flags: '' } }, '"-": no flags');
  t.match(a[4], { ip: { ecn: 3 } });
  t.match(a[5], { packet: { proto: 'unsupported', what: 'mpls encapsulation' } }, 'MPLS read, reported as unsupported');
  t.match(a[6].packet.options[0], { kind: 'unsupported', text: 'ECN e1b 1 ceb 0 e0b 1' });
  t.same(s.events[7]!.time, { kind: 'rel', ms: 2, end: { kind: 'rel', ms: 4, blocking: true } }, 'the end counts from the same base');
  t.match(a[8], { name: 'recvmsg', result: -1, errno: undefined });
  const cmsg = a[8].args[1].fields.find((f: any) => f.name === 'msg_control').value.items[0];
  t.match(cmsg.fields, [{ name: 'cmsg_level', value: { name: 'SOL_IP' } }, { name: 'cmsg_type', value: { name: 'IP_RECVERR' } }, { name: 'cmsg_data' }]);
  t.match(cmsg.fields[2].value.fields[4], { name: 'ee_info', value: { t: 'int', v: 16 } }, '--define applies');
  t.match(a[9], { type: 'code', code: 'assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd // not a comment in python' });
});
