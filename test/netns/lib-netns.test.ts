import { readlinkSync, statSync } from 'node:fs';
import t from 'tap';
import { run } from '../../lib/exec.ts';
import { NetnsError, addNetns, delNetns, inNetns, interfacesHere, linkUpHere, netnsExists } from '../../lib/netns.ts';
import { assertTestAddress, createVethPair, nsRun } from '../../lib/testnet.ts';
import { HANG_MS } from '../lib/wait.ts';

const selfNs = () => readlinkSync('/proc/thread-self/ns/net');

t.test('inNetns → fn runs inside the namespace, thread back home after return and after throw', (t) => {
  const net = createVethPair({ prefix: 'tsv-lib-ns', addrA: '198.18.50.1/24', addrB: '198.18.50.2/24' });
  t.teardown(() => net.destroy());
  const home = selfNs();
  const target = `net:[${statSync(`/var/run/netns/${net.nsA}`).ino}]`;
  t.equal(inNetns(net.nsA, selfNs), target);
  t.equal(selfNs(), home);
  t.throws(() => inNetns(net.nsA, () => {
    throw new Error('inside');
  }), /inside/);
  t.equal(selfNs(), home, 'home after a throw');
  t.throws(() => inNetns(net.nsA, () => Promise.resolve(1)), /must be synchronous/);
  t.equal(selfNs(), home, 'home after an async fn');
  t.end();
});

t.test('missing or malformed namespace → NetnsError naming it', (t) => {
  const e = t.throws(() => inNetns('tsv-lib-missing', () => 1)) as NetnsError;
  t.ok(e instanceof NetnsError);
  t.equal(e.netns, 'tsv-lib-missing');
  t.equal(e.message, "network namespace 'tsv-lib-missing' does not exist (/var/run/netns/tsv-lib-missing)");
  t.throws(() => inNetns('../etc', () => 1), /invalid network namespace name '..\/etc'/);
  t.end();
});

t.test('createVethPair → both ends addressed and reachable; destroy → gone, idempotent', (t) => {
  const net = createVethPair({ prefix: 'tsv-lib-ns', addrA: '198.18.50.1/24', addrB: '198.18.50.2/24', mtu: 9000 });
  t.ok(netnsExists(net.nsA) && netnsExists(net.nsB));
  t.match(nsRun(net.nsA, ['ping', '-c', '1', '-W', '20', '198.18.50.2']), /1 received/);
  t.match(nsRun(net.nsB, ['ip', 'link', 'show', net.devB]), /mtu 9000/);
  t.match(nsRun(net.nsB, ['ethtool', '-k', net.devB]), /tcp-segmentation-offload: off/);
  net.destroy();
  net.destroy();
  t.notOk(netnsExists(net.nsA) || netnsExists(net.nsB));
  t.end();
});

t.test('addresses outside the test ranges → refused', (t) => {
  t.throws(() => assertTestAddress('10.0.0.1/24'), /outside the test ranges/);
  t.throws(() => createVethPair({ prefix: 'tsv-lib-ns', addrA: '192.168.1.1/24' }), /outside the test ranges/);
  t.doesNotThrow(() => assertTestAddress('198.19.255.1/24'));
  t.doesNotThrow(() => assertTestAddress('fd74:7376:1::1/64'));
  t.notOk(netnsExists('tsv-lib-ns-a'), 'nothing created');
  t.end();
});

t.test('inNetns by path → /proc/PID/ns/net and a bind-mounted netns file work; a non-netns file and a missing one are named', async (t) => {
  const { spawn } = await import('node:child_process');
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { run } = await import('../../lib/exec.ts');
  const net = createVethPair({ prefix: 'tsb-path', addrA: '198.18.51.1/24', addrB: '198.18.51.2/24' });
  const dir = mkdtempSync(join(tmpdir(), 'tsb-path-'));
  const file = join(dir, 'netns');
  writeFileSync(file, '');
  const sleeper = spawn('ip', ['netns', 'exec', net.nsA, 'sleep', '30'], { stdio: 'ignore' });
  t.teardown(() => {
    sleeper.kill('SIGKILL');
    try {
      run(['umount', file]);
    } catch {
      // not mounted
    }
    rmSync(dir, { recursive: true, force: true });
    net.destroy();
  });
  const home = selfNs();
  const target = `net:[${statSync(`/var/run/netns/${net.nsA}`).ino}]`;
  // `ip netns exec` becomes `sleep` in place, so the pid is sleep's once it has switched.
  let procPath = '';
  for (const end = Date.now() + HANG_MS; Date.now() < end; ) {
    procPath = `/proc/${sleeper.pid}/ns/net`;
    if (readlinkSync(procPath) === target) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  t.equal(inNetns(procPath, selfNs), target, '/proc/PID/ns/net');
  run(['mount', '--bind', `/var/run/netns/${net.nsA}`, file]);
  t.equal(inNetns(file, selfNs), target, 'bind-mounted file');
  t.ok(netnsExists(file));
  run(['umount', file]);
  t.throws(() => inNetns(file, selfNs), /'\/.*\/netns' is not a network namespace/, 'a plain file');
  t.throws(() => inNetns(join(dir, 'missing'), selfNs), /network namespace file '.*missing' does not exist/);
  t.throws(() => inNetns('rel/path', selfNs), /invalid network namespace name 'rel\/path'/);
  t.equal(selfNs(), home, 'thread back home');
  t.end();
});

t.test('addNetns → a new namespace pinned by name, the thread back home; interfacesHere; delNetns → gone', (t) => {
  const name = `tow-add${process.pid}`;
  t.teardown(() => {
    if (netnsExists(name)) run(['ip', 'netns', 'del', name]);
  });
  const home = selfNs();
  addNetns(name);
  t.equal(selfNs(), home, 'the calling thread is back in its own namespace');
  t.ok(netnsExists(name));
  t.match(run(['ip', 'netns', 'list']), new RegExp(`^${name}\\b`, 'm'), 'iproute2 lists it');
  t.not(inNetns(name, selfNs), home, 'a namespace of its own');
  t.throws(() => addNetns(name), /cannot make/, 'a name in use is refused');
  t.same(inNetns(name, interfacesHere), [{ name: 'lo', loopback: true }], 'a new namespace has lo only');
  run(['ip', '-n', name, 'link', 'add', 'tow-v0', 'type', 'veth', 'peer', 'name', 'tow-v1']);
  t.same(inNetns(name, interfacesHere).sort((a, b) => a.name.localeCompare(b.name)),
    [{ name: 'lo', loopback: true }, { name: 'tow-v0', loopback: false }, { name: 'tow-v1', loopback: false }]);
  t.notMatch(run(['ip', '-n', name, 'link', 'show', 'lo']), /[<,]UP[,>]/, 'lo is down in a new namespace');
  inNetns(name, () => linkUpHere('lo'));
  t.match(run(['ip', '-n', name, 'link', 'show', 'lo']), /[<,]UP[,>]/, 'linkUpHere: up');
  t.throws(() => inNetns(name, () => linkUpHere('tow-none')), /SIOCGIFFLAGS tow-none/);
  t.equal(delNetns(name), true);
  t.notOk(netnsExists(name));
  t.notMatch(run(['ip', 'netns', 'list']), new RegExp(`^${name}\\b`, 'm'));
  t.equal(delNetns(name), false, 'nothing there: false');
  t.end();
});
