// Shell lines of upstream's scripts as the Linux DUT runs them: the addresses they name mapped to the runner's.
import t from 'tap';
import { VirtualClock } from '../../netstack/clock.ts';
import { Netstack } from '../../netstack/netstack.ts';
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
