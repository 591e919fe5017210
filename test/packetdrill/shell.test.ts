// Shell lines of upstream's scripts as the Linux DUT runs them: the addresses they name mapped to the runner's.
import t from 'tap';
import { VirtualClock } from '../../netstack/clock.ts';
import { Netstack } from '../../netstack/netstack.ts';
import { parseAddress } from '../../netstack/addr.ts';
import { ChannelEndpoint } from '../../netstack/link/channel.ts';
import { applyShell, mapShellAddresses } from './shell.ts';

const REMOTES = ['192.0.2.1', '192.0.2.1', '2001:db8::1'];

t.test('ip route change naming the script remote through a gateway → the runner\'s remote, on-link, both listed', async (t) => {
  const r = mapShellAddresses('ip route change 192.0.2.1 via 192.168.0.2 dev tun0 advmss 600 mtu lock 640 initcwnd 11', '198.18.0.2', REMOTES);
  t.equal(r.command, 'ip route change 198.18.0.2 dev tun0 advmss 600 mtu lock 640 initcwnd 11');
  t.same(r.parts.map((p) => p.text), ['192.0.2.1', 'via 192.168.0.2']);
  const v6 = mapShellAddresses(' ip -6 route change 2001:DB8::1 via fd3d:fa7b:d17d:8888::0 dev tun0 advmss 1480 mtu lock 1520', 'fd74:7376::2', REMOTES);
  t.equal(v6.command, ' ip -6 route change fd74:7376::2 dev tun0 advmss 1480 mtu lock 1520', 'upper-case hex matches too');
});

t.test('a line naming no upstream address → unchanged; a longer address that starts the same → unchanged', async (t) => {
  const plain = '../common/defaults.sh\n sysctl -q net.ipv4.tcp_sack=1';
  t.same(mapShellAddresses(plain, '198.18.0.2', REMOTES), { command: plain, parts: [] });
  t.equal(mapShellAddresses('ping -c1 192.0.2.10', '198.18.0.2', REMOTES).command, 'ping -c1 192.0.2.10');
});

t.test('applyShell: a line ending in a backslash goes on on the next; ip tcp_metrics flush reaches the DUT', async (t) => {
  const n = new Netstack({ clock: new VirtualClock(0), seed: 1, dadTransmits: 0 });
  let flushed = 0;
  const target = { sysctl: n.sysctl, restore: new Map(), flushMetrics: () => flushed++ };
  const ctx = { cwd: '/', env: { PACKETDRILL_PID: '7' } };
  const r = applyShell('set_sysctls.py \\\n  /proc/sys/net/ipv4/tcp_fastopen=0x30403 \\\n  /proc/sys/net/ipv4/tcp_fastopen_key=a0bf63f7-ed803d81-cd641d30-cebc4a90', ctx, target);
  t.same(r.applied, ['net.ipv4.tcp_fastopen=197635', 'net.ipv4.tcp_fastopen_key=a0bf63f7-ed803d81-cd641d30-cebc4a90']);
  t.equal(n.tcp.config.fastOpenKey, 'a0bf63f7-ed803d81-cd641d30-cebc4a90');
  applyShell('ip tcp_metrics flush all > /dev/null 2>&1', ctx, target);
  t.equal(flushed, 1);
  n.close();
});

t.test('applyShell: ethtool -K tun0 tso off gso off → the DUT device\'s TSO off; other features listed as not applied', async (t) => {
  const n = new Netstack({ clock: new VirtualClock(0), seed: 1, dadTransmits: 0 });
  const calls: [string, boolean][] = [];
  const target = { sysctl: n.sysctl, restore: new Map(), setTso: (dev: string, on: boolean) => (calls.push([dev, on]), dev === 'tun0') };
  const ctx = { cwd: '/', env: {} };
  const r = applyShell('ethtool -K tun0 tso off gso off', ctx, target);
  t.same(calls, [['tun0', false]]);
  t.same(r.applied, ['tun0 tso off']);
  t.same(r.parts, []);
  const r2 = applyShell('ethtool -K tun0 gro off tso on', ctx, target);
  t.same(calls.at(-1), ['tun0', true]);
  t.same(r2.parts.map((p) => p.why), ['not applied: gro off (only the DUT device\'s tso/gso)']);
  const r3 = applyShell('ethtool -K eth9 tso off', ctx, target);
  t.same(r3.applied, [], 'another device: nothing applied');
  t.equal(r3.parts.length, 1);
  n.close();
});

t.test('Stack.setNicTso: a path out of a GSO link offers super-segments only while TSO is on', async (t) => {
  const clock = new VirtualClock(0);
  const n = new Netstack({ clock, seed: 1, dadTransmits: 0 });
  const link = new ChannelEndpoint({ clock, mtu: 1500, macAddress: new Uint8Array([2, 0, 0, 0, 0, 1]), name: 'dut', gso: true });
  const nic = n.stack.addNic(link, { name: 'dut0' });
  t.notOk(n.stack.addAddress(nic, { address: parseAddress('198.18.141.1')!, prefixLength: 24 }));
  const gso = () => {
    const p = n.stack.findPath(parseAddress('198.18.141.2')!);
    return 'gsoMaxSegment' in p ? p.gsoMaxSegment() : -1;
  };
  t.ok(gso() > 60000, 'TSO on: about 64 KB');
  t.equal(n.stack.setNicTso(nic, false), true);
  t.equal(gso(), 0, 'TSO off: none');
  n.stack.setNicTso(nic, true);
  t.ok(gso() > 60000);
  t.equal(n.stack.setNicTso(999, false), false, 'unknown NIC');
  n.close();
});
