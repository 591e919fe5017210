// ping in an OCI container (no engine): raw sockets follow the process's CAP_NET_RAW, as `docker run busybox ping`
// expects (Docker's default capability set has it), and the global --net-raw=false refuses them whatever the
// capabilities, as runsc does by default (cli/oci/spec.ts grantsNetRaw). Namespaces tpe-*, 198.18.185.0/24.
import t, { type Test } from 'tap';
import { deleteNetns, run } from '../../lib/testnet.ts';
import { cleanUp, create, makeBundle, oci, rawState, waitStatus } from './oci-helpers.ts';

function ns(t: Test, name: string): string {
  deleteNetns(name);
  run(['ip', 'netns', 'add', name]);
  run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  t.teardown(() => deleteNetns(name));
  return name;
}

/** A container netns holding eth0 (198.18.185.2/24) whose veth peer (198.18.185.1/24) is a Linux netns. */
function containerAndPeer(t: Test): string {
  const ctr = ns(t, 'tpe-ctr');
  const peer = ns(t, 'tpe-peer');
  run(['ip', '-n', ctr, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'tpe-p', 'netns', peer]);
  run(['ip', '-n', ctr, 'addr', 'add', '198.18.185.2/24', 'dev', 'eth0']);
  run(['ip', '-n', ctr, 'link', 'set', 'eth0', 'up']);
  run(['ip', '-n', peer, 'addr', 'add', '198.18.185.1/24', 'dev', 'tpe-p']);
  run(['ip', '-n', peer, 'link', 'set', 'tpe-p', 'up']);
  return ctr;
}

const DOCKER_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

/** Runs `ping -c 2 -i 0.2 198.18.185.1` in a container with `caps`; its exit status and output. */
async function ping(t: Test, id: string, caps: string[], globals: string[] = []) {
  const ctr = containerAndPeer(t);
  const b = makeBundle(t);
  t.teardown(() => cleanUp(b));
  b.config.process.args = ['ping', '-c', '2', '-i', '0.2', '198.18.185.1'];
  b.config.process.capabilities = { bounding: caps, effective: caps, permitted: caps };
  b.config.linux.namespaces = b.config.linux.namespaces.map((n: any) => (n.type === 'network' ? { type: 'network', path: `/var/run/netns/${ctr}` } : n));
  b.write();
  const c = await create(b, id, [], globals);
  t.equal(c.call.code, 0, c.call.stderr);
  t.equal((await oci(b, ['start', id])).code, 0);
  const out = await c.output;
  t.ok(await waitStatus(b, id, 'stopped'));
  const status = rawState(b, id)?.exitStatus;
  t.equal((await oci(b, ['delete', id])).code, 0);
  return { status, ...out };
}

t.test("Docker's default capabilities (CAP_NET_RAW) → busybox ping reaches the Linux peer", async (t) => {
  const r = await ping(t, 'pr', DOCKER_CAPS);
  t.equal(r.status, 0, r.stdout + r.stderr);
  t.match(r.stdout, /2 packets transmitted, 2 packets received, 0% packet loss/);
});

t.test('CAP_NET_RAW dropped (tsvisor spec\'s default set) → raw socket refused, EPERM', async (t) => {
  const r = await ping(t, 'pd', ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']);
  t.equal(r.status, 1);
  t.match(r.stderr, /permission denied/);
});

t.test('global --net-raw=false → refused even with CAP_NET_RAW', async (t) => {
  const r = await ping(t, 'pf', DOCKER_CAPS, ['--net-raw=false']);
  t.equal(r.status, 1);
  t.match(r.stderr, /permission denied/);
});
