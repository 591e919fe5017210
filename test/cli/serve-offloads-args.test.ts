import t from 'tap';
import { parseServeArgs } from '../../cli/serve.ts';

t.test('serve arguments → offloads on by default, off with --no-offloads', (t) => {
  t.equal(parseServeArgs(['--netns', 'n', '--dev', 'd']).offloads, true);
  t.equal(parseServeArgs(['--netns', 'n', '--dev', 'd', '--no-offloads']).offloads, false);
  t.end();
});

t.test('serve arguments → bulk sends on a thread of their own by default, all on the serving thread with --no-send-thread', (t) => {
  t.equal(parseServeArgs(['--netns', 'n', '--dev', 'd']).sendThread, true);
  t.equal(parseServeArgs(['--netns', 'n', '--dev', 'd', '--send-thread']).sendThread, true);
  t.equal(parseServeArgs(['--netns', 'n', '--dev', 'd', '--no-send-thread']).sendThread, false);
  t.throws(() => parseServeArgs(['--netns', 'n', '--dev', 'd', '--send-thread', '--no-send-thread']), /--send-thread and --no-send-thread contradict/);
  t.end();
});

t.test('serve --sysctl KEY=VALUE → settings in order; a bad key or value is a one-line usage error', (t) => {
  const o = parseServeArgs(['--netns', 'n', '--dev', 'd', '--sysctl', 'net.ipv4.tcp_sack=0', '--sysctl=net/ipv4/tcp_rmem=4096 65536 1048576']);
  t.same(o.sysctls, [
    { key: 'net.ipv4.tcp_sack', value: '0' },
    { key: 'net.ipv4.tcp_rmem', value: '4096 65536 1048576' },
  ]);
  t.same(parseServeArgs(['--netns', 'n', '--dev', 'd']).sysctls, []);
  const bad = (arg: string, re: RegExp) => t.throws(() => parseServeArgs(['--netns', 'n', '--dev', 'd', '--sysctl', arg]), re);
  bad('net.ipv4.tcp_bogus=1', /^--sysctl: unknown setting net\.ipv4\.tcp_bogus$/);
  bad('net.ipv4.tcp_sack=2', /^--sysctl: net\.ipv4\.tcp_sack: "2" is not an integer in \[0, 1\]$/);
  bad('tcp_sack', /is not KEY=VALUE/);
  t.end();
});
