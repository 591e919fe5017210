// Shell lines of upstream's scripts as the Linux DUT runs them: the addresses they name mapped to the runner's.
import t from 'tap';
import { mapShellAddresses } from './shell.ts';

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
