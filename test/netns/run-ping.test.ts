// busybox ping inside `tsvisor run --allow-raw`: its raw ICMP and ICMPv6 sockets are the netstack's (netstack/
// transport/raw), and the Linux peer on the other end of a veth of the test's own answers. Without the flag the
// seccomp policy still refuses raw sockets, as runsc does without --net-raw.
import t from 'tap';
import { createVethPair } from '../../lib/testnet.ts';
import { tsvisorRun } from './run-helpers.ts';

const pair = createVethPair({
  prefix: 'tpe', addrA: '198.18.185.1/24', addrB: '198.18.185.2/24', addr6A: 'fd74:7376:185::1/64', addr6B: 'fd74:7376:185::2/64',
});
t.teardown(() => pair.destroy());

const take = ['--netns', pair.nsA, '--dev', pair.devA];

t.test('--allow-raw: busybox ping -c 2 to the Linux peer → 2 replies with a TTL, exit 0', async (t) => {
  const r = await tsvisorRun(undefined, [...take, '--allow-raw', '--', 'busybox', 'ping', '-c', '2', '-i', '0.2', '198.18.185.2']);
  t.equal(r.code, 0, r.stderr + r.stdout);
  t.match(r.stdout, /2 packets transmitted, 2 packets received, 0% packet loss/);
  t.match(r.stdout, /bytes from 198\.18\.185\.2: seq=1 ttl=64 time=/, 'the TTL comes from the IP header a raw read includes');
});

t.test('--allow-raw: busybox ping -6 -c 2 → 2 replies, exit 0', async (t) => {
  const r = await tsvisorRun(undefined, [...take, '--allow-raw', '--', 'busybox', 'ping', '-6', '-c', '2', '-i', '0.2', 'fd74:7376:185::2']);
  t.equal(r.code, 0, r.stderr + r.stdout);
  t.match(r.stdout, /2 packets transmitted, 2 packets received, 0% packet loss/);
  t.match(r.stdout, /bytes from fd74:7376:185::2: seq=1/);
});

t.test('--allow-raw: a ping nobody answers → 100% loss, exit 1 (replies are not made up)', async (t) => {
  const r = await tsvisorRun(undefined, [...take, '--allow-raw', '--', 'busybox', 'ping', '-c', '1', '-W', '1', '198.18.185.77']);
  t.equal(r.code, 1, r.stderr + r.stdout);
  t.match(r.stdout, /1 packets transmitted, 0 packets received, 100% packet loss/);
});

t.test('without --allow-raw: the raw socket is refused (EPERM), as runsc without --net-raw', async (t) => {
  const r = await tsvisorRun(undefined, [...take, '--', 'busybox', 'ping', '-c', '1', '198.18.185.2']);
  t.equal(r.code, 1, r.stderr + r.stdout);
  t.match(r.stderr, /permission denied/);
});
