import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import { formatAddress, formatMac, formatSubnet } from '../../netstack/addr.ts';
import { AfPacketEndpoint } from '../../lib/packet.ts';
import { TakeoverBusy, takeOver } from '../../lib/takeover.ts';
import { createVethPair, run } from '../../lib/testnet.ts';
import { arp, echoReply, ip4, parseArp, parseEchoRequest } from '../lib/frames.ts';
import { HANG_MS, waitFor } from '../lib/wait.ts';

const net = createVethPair({
  prefix: 'tsv-lib-tk',
  addrA: '198.18.30.1/24',
  addrB: '198.18.30.2/24',
  addr6A: 'fd74:7376:30::1/64',
  addr6B: 'fd74:7376:30::2/64',
});
t.teardown(() => net.destroy());
run(['ip', '-n', net.nsA, 'addr', 'add', '198.18.31.1/28', 'dev', net.devA]);
run(['ip', '-n', net.nsA, 'route', 'add', 'default', 'via', '198.18.30.2']);
run(['ip', '-n', net.nsA, 'route', 'add', '198.19.0.0/16', 'via', '198.18.30.2', 'metric', '5']);
run(['ip', '-n', net.nsA, '-6', 'route', 'add', 'default', 'via', 'fd74:7376:30::2']);

/** The kernel's view of A's interface, without fields that change on their own (lifetimes, DAD state). */
function snapshot() {
  const link = JSON.parse(run(['ip', '-n', net.nsA, '-j', 'addr', 'show', 'dev', net.devA]))[0];
  const addrs = (link.addr_info as Record<string, unknown>[]).map((a) => {
    const { valid_life_time, preferred_life_time, tentative, ...rest } = a;
    return rest;
  });
  const routes4 = JSON.parse(run(['ip', '-n', net.nsA, '-4', '-j', 'route', 'show', 'table', 'all', 'dev', net.devA]));
  const routes6 = JSON.parse(run(['ip', '-n', net.nsA, '-6', '-j', 'route', 'show', 'table', 'all', 'dev', net.devA]));
  const disable6 = run(['ip', 'netns', 'exec', net.nsA, 'sysctl', '-n', `net.ipv6.conf.${net.devA}.disable_ipv6`]).trim();
  return { addrs, routes4, routes6, disable6, mtu: link.mtu, mac: link.address };
}

/**
 * Exit status of `ping -c count` from B: 0 when answered. Replies are awaited up to `waitS` seconds, generous by
 * default as a loaded machine delays them; a check that expects silence passes a short wait.
 */
function pingFromB(target: string, count = 1, waitS = 20): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn('ip', ['netns', 'exec', net.nsB, 'ping', '-c', String(count), '-i', '0.2', '-W', String(waitS), target], {
      stdio: 'ignore',
    });
    p.on('exit', (c) => resolve(c));
  });
}

t.test('take over → config read, kernel loses addresses; restore → everything back', async (t) => {
  const before = snapshot();
  t.equal(await pingFromB('198.18.30.1'), 0, 'kernel answers before takeover');
  const taken = takeOver(net.nsA, net.devA);
  let restoredByTest = false;
  t.teardown(() => {
    if (!restoredByTest) taken.restore();
  });
  const c = taken.config;
  t.equal(formatMac(c.mac), net.macA);
  t.equal(c.mtu, 1500);
  t.same(c.addresses.map(formatSubnet), ['198.18.30.1/24', '198.18.31.1/28', 'fd74:7376:30::1/64']);
  t.same(
    c.routes.map((r) => `${formatSubnet(r.destination)}${r.gateway ? ' via ' + formatAddress(r.gateway) : ''}`).sort(),
    [
      '0.0.0.0/0 via 198.18.30.2',
      '198.18.30.0/24',
      '198.18.31.0/28',
      '198.19.0.0/16 via 198.18.30.2',
      '::/0 via fd74:7376:30::2',
      'fd74:7376:30::/64',
    ],
  );

  const during = snapshot();
  t.same(during.addrs, [], 'no address left on the interface');
  t.same(during.routes4.filter((r: { table?: string }) => r.table !== 'local'), [], 'no IPv4 route left');
  t.equal(during.disable6, '1', 'IPv6 disabled on the interface');
  t.equal(await pingFromB('198.18.30.1', 1, 1), 1, 'kernel no longer answers');

  taken.restore();
  restoredByTest = true;
  t.equal(taken.restored, true);
  // Re-enabled IPv6 brings its link-local address and routes back a moment later.
  await waitFor(() => JSON.stringify(snapshot()) === JSON.stringify(before), HANG_MS, 'the interface as before').catch(() => {});
  t.same(snapshot(), before, 'addresses, routes and IPv6 setting exactly as before');
  t.doesNotThrow(() => taken.restore(), 'restore again → no-op');
  t.equal(await pingFromB('198.18.30.1'), 0, 'kernel answers again');
});

t.test('taken interface + AfPacketEndpoint → the endpoint answers for the taken address', async (t) => {
  const taken = takeOver(net.nsA, net.devA);
  t.teardown(() => taken.restore());
  const ep = await AfPacketEndpoint.open({ netns: net.nsA, dev: net.devA });
  t.teardown(() => ep.close());
  const ours = formatAddress(taken.config.addresses[0]!.address);
  let echoes = 0;
  ep.attach({
    deliverFrame(f) {
      const a = parseArp(f);
      if (a && a.op === 1 && a.targetIp.join('.') === ours) {
        ep.writeFrame(arp(2, taken.config.mac, ip4(ours), a.senderMac, a.senderIp));
        return;
      }
      const req = parseEchoRequest(f);
      if (req && req.dst.join('.') === ours) {
        echoes++;
        ep.writeFrame(echoReply(f, taken.config.mac)!);
      }
    },
  });
  t.equal(await pingFromB(ours, 2), 0, 'ping answered by the test stack');
  t.equal(echoes, 2);
});

t.test('missing namespace or interface → error naming it', async (t) => {
  t.throws(() => takeOver('tsv-lib-nope', 'eth0'), /network namespace 'tsv-lib-nope' does not exist/);
  t.throws(() => takeOver(net.nsA, 'nosuch0'), /no interface 'nosuch0' in network namespace 'tsv-lib-tk-a'/);
  t.same(snapshot().addrs.length, 4, 'a failed takeover touched nothing');
});

t.test('taken → a second takeOver is refused with the holder\'s pid and changes nothing; after restore it succeeds', async (t) => {
  const first = takeOver(net.nsA, net.devA, { owner: 'test' });
  t.teardown(() => first.restore());
  const during = snapshot();
  const e = t.throws(() => takeOver(net.nsA, net.devA)) as TakeoverBusy;
  t.ok(e instanceof TakeoverBusy);
  t.equal(e.pid, process.pid);
  t.match(e.message, `interface 'veth-a' in 'tsv-lib-tk-a' is already taken by tsvisor test (pid ${process.pid})`);
  t.same(snapshot(), during, 'the refused takeover touched nothing');
  first.restore();
  const again = takeOver(net.nsA, net.devA);
  t.equal(again.config.addresses.length, 3, 'taken again, with the addresses the first restore gave back');
  again.restore();
});

// Last: it leaves the interface bare, as a namespace about to be removed would be left.
t.test('discard → the record dropped and the interface let go, nothing given back', async (t) => {
  const taken = takeOver(net.nsA, net.devA);
  t.teardown(() => taken.restore());
  t.ok(existsSync(taken.recordPath), 'a record while taken');
  taken.discard();
  t.equal(taken.restored, true);
  t.notOk(existsSync(taken.recordPath), 'the record is gone');
  t.same(snapshot().addrs, [], 'no address was given back');
  t.doesNotThrow(() => taken.restore(), 'restore after discard → no-op');
  t.same(snapshot().addrs, [], 'still none');
  const again = takeOver(net.nsA, net.devA);
  t.same(again.config.addresses, [], 'the lock was let go: taken again, bare');
  again.restore();
});
