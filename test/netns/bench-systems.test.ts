// The bench's kernel system gives its client namespace what the http-rps rows need: every port, and TIME-WAIT
// ports reusable (a client that closes first otherwise runs out of ports after some 30,000 connections and the
// row measures its port search), and removes its namespaces when stopped.
import t from 'tap';
import { run } from '../../lib/testnet.ts';

process.env.TSVISOR_BENCH_NS = 'tpb-sys';
process.env.TSVISOR_BENCH_NET = '198.18.160';
const { startSystem } = await import('../../bench/systems.ts');
const { cleanup } = await import('../../bench/proc.ts');
t.teardown(() => cleanup());

const sysctl = (ns: string, key: string) => run(['ip', 'netns', 'exec', ns, 'sysctl', '-n', key]).trim().replace(/\s+/g, ' ');

t.test('kernel system: client namespace reuses TIME-WAIT ports, with the whole range', async (t) => {
  const s = await startSystem('kernel', 1500);
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await s.stop();
  });
  t.equal(sysctl(s.clientNs, 'net.ipv4.tcp_tw_reuse'), '1');
  t.equal(sysctl(s.clientNs, 'net.ipv4.ip_local_port_range'), '1024 65535');
  await s.stop();
  stopped = true;
  t.notOk(run(['ip', 'netns', 'list']).includes(s.clientNs), 'client namespace removed');
});
