import { readlinkSync, statSync } from 'node:fs';
import t from 'tap';
import { NetnsError, inNetns, netnsExists } from '../../lib/netns.ts';
import { assertTestAddress, createVethPair, nsRun } from '../../lib/testnet.ts';

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
  t.equal(e.message, 'network namespace "tsv-lib-missing" does not exist (/var/run/netns/tsv-lib-missing)');
  t.throws(() => inNetns('../etc', () => 1), /invalid network namespace name "..\/etc"/);
  t.end();
});

t.test('createVethPair → both ends addressed and reachable; destroy → gone, idempotent', (t) => {
  const net = createVethPair({ prefix: 'tsv-lib-ns', addrA: '198.18.50.1/24', addrB: '198.18.50.2/24', mtu: 9000 });
  t.ok(netnsExists(net.nsA) && netnsExists(net.nsB));
  t.match(nsRun(net.nsA, ['ping', '-c', '1', '-W', '1', '198.18.50.2']), /1 received/);
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
