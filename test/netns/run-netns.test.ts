// The namespaces of `tsvisor run` (sentry/sandbox/netns.ts) and its janitor (sentry/sandbox/janitor.ts), made
// by a child Node process inside a caller namespace of the test's own, so that the veth's caller end lands there.
import t from 'tap';
import { janitorScript } from '../../sentry/sandbox/janitor.ts';
import { hostsFile, resolvConf } from '../../sentry/sandbox/netns.ts';
import { parseAddress, parseSubnet } from '../../netstack/addr.ts';
import { nsRun, run } from '../../lib/testnet.ts';
import { HANG_MS } from '../lib/wait.ts';
import { callerNs, collect, leftovers, spawnIn, waitFor } from './run-helpers.ts';

/** A Node child in `ns` running `body` (an ES module body with the netns and janitor modules imported). */
function script(ns: string, body: string) {
  const src = `const n = await import('./sentry/sandbox/netns.ts');\nconst j = await import('./sentry/sandbox/janitor.ts');\n${body}`;
  return spawnIn(ns, [process.execPath, '--import', 'tsx', '--input-type=module', '-e', src]);
}

t.test('createVeth + createAppNetns → link netns with eth0, caller end addressed, app netns with lo + eth0; remove → all gone', async (t) => {
  const ns = callerNs(t, 'rn-veth');
  const r = await collect(script(ns, `
    const id = n.newRunId();
    const v = n.createVeth(id);
    n.createAppNetns(id, { addresses: v.addresses, gateways: v.peerAddresses.map((s) => s.address) });
    console.log(JSON.stringify({ id, peer: v.peerAddresses.map((s) => s.address.join('.')) }));`));
  t.equal(r.code, 0, r.stderr);
  const { id } = JSON.parse(r.stdout) as { id: string };
  t.teardown(() => {
    for (const cmd of [['ip', 'netns', 'del', `tsv-${id}-app`], ['ip', 'netns', 'del', `tsv-${id}`]]) {
      try {
        run(cmd);
      } catch {
        // gone
      }
    }
  });
  const peer = JSON.parse(run(['ip', '-n', ns, '-j', 'addr', 'show', 'dev', `tsv-${id}`]))[0];
  const v4 = peer.addr_info.find((a: { family: string }) => a.family === 'inet');
  const v6 = peer.addr_info.find((a: { family: string; scope: string }) => a.family === 'inet6' && a.scope === 'global');
  t.match(v4.local, /^198\.18\.\d+\.1$/);
  t.equal(v4.prefixlen, 30);
  t.match(v6.local, /^fd74:7376:0:[0-9a-f]+::1$/);
  t.ok(v6.nodad, 'caller end added without DAD');
  t.notOk(v6.tentative, 'not tentative');
  const x = v4.local.split('.')[2];

  const link = JSON.parse(run(['ip', '-n', `tsv-${id}`, '-j', 'addr', 'show']));
  t.same(link.map((l: { ifname: string }) => l.ifname).sort(), ['eth0', 'lo']);
  const eth = link.find((l: { ifname: string }) => l.ifname === 'eth0');
  t.same(eth.addr_info, [], 'no kernel address on the netstack\'s end (IPv6 off there)');
  t.ok(eth.flags.includes('UP'));

  const app = JSON.parse(run(['ip', '-n', `tsv-${id}-app`, '-j', 'addr', 'show']));
  t.same(app.map((l: { ifname: string }) => l.ifname).sort(), ['eth0', 'lo']);
  const appEth = app.find((l: { ifname: string }) => l.ifname === 'eth0');
  t.ok(['dummy', 'ifb'].includes(JSON.parse(run(['ip', '-n', `tsv-${id}-app`, '-d', '-j', 'link', 'show', 'eth0']))[0].linkinfo.info_kind));
  const appAddrs = appEth.addr_info.filter((a: { scope: string }) => a.scope === 'global').map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`);
  t.same(appAddrs.sort(), [`198.18.${x}.2/30`, `fd74:7376:0:${Number(x).toString(16)}::2/64`].sort());
  t.match(run(['ip', '-n', `tsv-${id}-app`, '-4', 'route', 'show', 'default']), new RegExp(`default via 198\\.18\\.${x}\\.1 dev eth0`));
  t.match(run(['ip', '-n', `tsv-${id}-app`, '-6', 'route', 'show', 'default']), /default via fd74:7376:0:[0-9a-f]+::1 dev eth0/);
  // No path anywhere: the app netns's eth0 drops what it is given, and the kernel does not answer on the link.
  t.throws(() => nsRun(`tsv-${id}-app`, ['ping', '-c', '1', '-W', '1', `198.18.${x}.1`]), 'app netns cannot reach the caller end');
  t.throws(() => nsRun(ns, ['ping', '-c', '1', '-W', '1', `198.18.${x}.2`]), 'nothing answers for the sandbox address without the netstack');

  const rm = await collect(script(ns, `n.removeRunNetworks(${JSON.stringify(id)});`));
  t.equal(rm.code, 0, rm.stderr);
  t.same(leftovers(id, ns), []);
  t.end();
});

t.test('janitor → kill -9 of its Sentry removes namespaces and veth; done() → it leaves them', async (t) => {
  const ns = callerNs(t, 'rn-jan');
  const child = script(ns, `
    const id = n.newRunId();
    const janitor = j.Janitor.start(n.removeCommands(id));
    const v = n.createVeth(id);
    n.createAppNetns(id, { addresses: v.addresses, gateways: [] });
    console.log(id + ' ' + janitor.pid);
    setInterval(() => {}, 1000);`);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  t.ok(await waitFor(() => out.includes('\n'), HANG_MS), 'child made the namespaces');
  const [id, janitorPid] = out.trim().split(' ');
  t.teardown(() => {
    child.kill('SIGKILL');
    for (const cmd of [['ip', 'netns', 'del', `tsv-${id}-app`], ['ip', 'netns', 'del', `tsv-${id}`]]) {
      try {
        run(cmd);
      } catch {
        // gone
      }
    }
  });
  t.same(leftovers(id!, ns).sort(), [`link tsv-${id}`, `netns tsv-${id}`, `netns tsv-${id}-app`].sort());
  // The janitor is in a session of its own: not in the Sentry's process group.
  const stat = (pid: string) => run(['ps', '-o', 'sid=,pgid=', '-p', pid]).trim().split(/\s+/);
  t.not(stat(janitorPid!)[1], stat(String(child.pid))[1], 'janitor in its own process group');
  child.kill('SIGKILL');
  const killedAt = Date.now();
  t.ok(await waitFor(() => leftovers(id!, ns).length === 0, HANG_MS), `gone after ${Date.now() - killedAt} ms: ${leftovers(id!, ns).join(', ')}`);

  const keep = await collect(script(ns, `
    const id = n.newRunId();
    const janitor = j.Janitor.start(n.removeCommands(id));
    n.createAppNetns(id, { addresses: [], gateways: [] });
    janitor.done();
    console.log(id);`));
  const kept = keep.stdout.trim();
  t.teardown(() => {
    try {
      run(['ip', 'netns', 'del', `tsv-${kept}-app`]);
    } catch {
      // gone
    }
  });
  await new Promise((r) => setTimeout(r, 300));
  t.same(leftovers(kept, ns), [`netns tsv-${kept}-app`], 'after done() the janitor touched nothing');
  t.end();
});

t.test('janitorScript → quotes words, ignores terminal signals, does nothing after "done"', (t) => {
  const s = janitorScript([['ip', 'netns', 'del', 'tsv-ab12cd'], ['echo', "it's"]]);
  t.match(s, /^trap '' INT HUP QUIT\n/);
  t.match(s, /ip netns del tsv-ab12cd >\/dev\/null 2>&1\n/);
  t.match(s, /echo 'it'\\''s'/);
  t.match(s, /\[ "\$word" = done \] && exit 0/);
  t.end();
});

t.test('resolvConf and hostsFile → --dns wins, loopback servers dropped, names for the sandbox and its gateway', (t) => {
  t.equal(resolvConf([parseAddress('198.18.0.1')!, parseAddress('fd74:7376::1')!]), 'nameserver 198.18.0.1\nnameserver fd74:7376::1\n');
  for (const line of resolvConf([]).split('\n')) t.notMatch(line, /^nameserver\s+(127\.|::1$)/, 'no loopback server from the host');
  const hosts = hostsFile([parseSubnet('198.18.7.2/30')!, parseSubnet('fd74:7376:0:7::2/64')!], [parseAddress('198.18.7.1')!], 'box');
  t.equal(hosts, '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n198.18.7.2\tbox\nfd74:7376:0:7::2\tbox\n198.18.7.1\thost.tsvisor.internal\n');
  t.end();
});
