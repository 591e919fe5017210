import t from 'tap';
import { VirtualClock } from '../../netstack/clock.ts';
import { Netstack } from '../../netstack/netstack.ts';

function stack(): Netstack {
  return new Netstack({ clock: new VirtualClock(0), seed: 1 });
}

t.test('settings table: Linux names, the stack\'s own values for settings with a knob, Linux defaults for the rest', async (t) => {
  const n = stack();
  t.equal(n.sysctl.get('net.ipv4.tcp_sack'), '1');
  t.equal(n.sysctl.get('net.ipv4.tcp_rmem'), `4096\t${n.tcp.config.rcvBuf}\t${n.tcp.config.maxRcvBuf}`);
  t.equal(n.sysctl.get('net.ipv4.tcp_frto'), '2');
  t.equal(n.sysctl.get('net.ipv4.tcp_notsent_lowat'), '4294967295');
  t.equal(n.sysctl.get('net.ipv4.tcp_fack'), undefined, 'removed from Linux in 4.15, so not here either');
  n.close();
});

t.test('set → TCP\'s configuration changes at once; a key without a knob is kept and says so', async (t) => {
  const n = stack();
  t.same(n.sysctl.set('net.ipv4.tcp_timestamps', '0'), { value: '0', applied: true });
  t.equal(n.tcp.config.timestamps, false);
  t.same(n.sysctl.set('net.ipv4.tcp_rmem', '4096 540000 15728640'), { value: '4096\t540000\t15728640', applied: true });
  t.equal(n.tcp.config.rcvBuf, 540000);
  t.equal(n.tcp.config.maxRcvBuf, 15728640);
  t.same(n.sysctl.set('net.ipv4.tcp_fastopen', '0x70403'), { value: '459779', applied: true });
  t.equal(n.sysctl.get('net.ipv4.tcp_fastopen'), '459779', 'hex read as strtol does, shown in decimal as /proc does');
  t.equal(n.tcp.config.fastOpen, 0x70403);
  t.same(n.sysctl.set('net.ipv4.tcp_syncookies', '2'), { value: '2', applied: true });
  t.equal(n.sysctl.get('net.ipv4.tcp_syncookies'), '2');
  t.same([n.tcp.config.synCookies, n.tcp.config.synCookiesAlways], [true, true], 'cookies for every SYN');
  t.same(n.sysctl.set('net.ipv4.tcp_syncookies', '0'), { value: '0', applied: true });
  t.same([n.tcp.config.synCookies, n.tcp.config.synCookiesAlways], [false, false]);
  t.same(n.sysctl.set('net.ipv4.tcp_syncookies', '1'), { value: '1', applied: true });
  t.same([n.tcp.config.synCookies, n.tcp.config.synCookiesAlways], [true, false], 'cookies when the SYN queue is full');
  t.same(n.sysctl.set('net.ipv4.tcp_fastopen_key', 'A1A1A1A1-b2b2b2b2-c3c3c3c3-d4d4d4d4'), { value: 'a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4', applied: true });
  t.equal(n.tcp.config.fastOpenKey, 'a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4');
  t.match(n.sysctl.set('net.ipv4.tcp_frto', '0'), { applied: false, why: /does not read it yet/ });
  t.same(n.sysctl.set('net.ipv4.tcp_dsack', '0'), { value: '0', applied: true });
  t.equal(n.tcp.config.dsack, false);
  t.same(n.sysctl.set('net.ipv4.tcp_orphan_retries', '5'), { value: '5', applied: true });
  t.equal(n.sysctl.get('net.ipv4.tcp_tw_reuse'), '2', "Linux's default: loopback only");
  t.same(n.sysctl.set('net.ipv4.tcp_tw_reuse', '1'), { value: '1', applied: true });
  t.equal(n.tcp.config.twReuse, 1);
  t.same(n.sysctl.set('net.ipv4.tcp_moderate_rcvbuf', '0'), { value: '0', applied: true });
  t.equal(n.tcp.config.moderateRcvbuf, false);
  t.equal(n.tcp.config.orphanRetries, 5);
  t.same(n.sysctl.set('net.ipv4.tcp_rfc1337', '1'), { value: '1', applied: true });
  t.equal(n.sysctl.get('net.ipv4.tcp_rfc1337'), '1');
  t.equal(n.tcp.config.rfc1337, true);
  t.same(n.sysctl.set('net.ipv4.tcp_reordering', '10'), { value: '10', applied: true });
  t.equal(n.tcp.config.reordering, 10);
  t.same(n.sysctl.set('net.ipv4.tcp_max_reordering', '20'), { value: '20', applied: true });
  t.equal(n.tcp.config.maxReordering, 20);
  n.close();
});

t.test('bad input → one-line error values, nothing changed', async (t) => {
  const n = stack();
  t.same(n.sysctl.set('net.ipv4.tcp_bogus', '1'), { error: 'unknown setting net.ipv4.tcp_bogus' });
  t.same(n.sysctl.set('net.ipv4.tcp_sack', '2'), { error: 'net.ipv4.tcp_sack: "2" is not an integer in [0, 1]' });
  t.same(n.sysctl.set('net.ipv4.tcp_syn_retries', '0'), { error: 'net.ipv4.tcp_syn_retries: "0" is not an integer in [1, 127]' });
  t.match(n.sysctl.set('net.ipv4.tcp_wmem', '4096 x 1'), { error: /not three positive integers/ });
  t.match(n.sysctl.set('net.ipv4.tcp_congestion_control', 'bbr'), { error: /not an available congestion control/ });
  t.match(n.sysctl.set('net.ipv4.tcp_fastopen_key', 'abc'), { error: /four hex words/ });
  t.equal(n.sysctl.get('net.ipv4.tcp_sack'), '1');
  t.equal(n.tcp.config.sack, true);
  n.close();
});

t.test('net.ipv4.ip_local_port_range → the ephemeral ports TCP and UDP bind to; a bad range is refused', async (t) => {
  const n = stack();
  t.teardown(() => n.close());
  t.equal(n.sysctl.get('net.ipv4.ip_local_port_range'), '32768\t60999', "Linux's default");
  t.same(n.sysctl.set('net.ipv4.ip_local_port_range', '40000 40001'), { value: '40000\t40001', applied: true });
  t.same(n.ports.ephemeralRange, { low: 40000, high: 40001 });
  const got = ['stream', 'stream', 'dgram'].map((type) => {
    const s = n.socket(4, type as 'stream' | 'dgram');
    if ('errno' in s) throw new Error('no socket');
    t.equal(s.bind({ address: new Uint8Array(4), port: 0 }), undefined);
    return (s.localAddress() as { port: number }).port;
  });
  t.same(got.slice(0, 2).sort(), [40000, 40001], 'two TCP sockets get the two ports of the range');
  t.ok(got[2] === 40000 || got[2] === 40001, 'UDP too');
  for (const bad of ['5 4', '0 10', '1 65536', '1000', 'a b']) {
    t.match(n.sysctl.set('net.ipv4.ip_local_port_range', bad), { error: /not two ports/ }, `"${bad}" refused`);
  }
  t.same(n.ports.ephemeralRange, { low: 40000, high: 40001 }, 'unchanged by the refused ones');
  const own = new Netstack({ clock: new VirtualClock(0), seed: 1, ephemeralPorts: { low: 2000, high: 3000 } });
  t.equal(own.sysctl.get('net.ipv4.ip_local_port_range'), '2000\t3000', 'a stack made with its own range shows it');
  own.close();
});
