// The OCI runtime's networks, no engine: a netns given by path whose eth0 the netstack takes over (podman's and
// Docker's --network host/container: way), a netns the runtime makes into which a prestart hook plugs a veth
// (Docker 20.10's bridge way, hooks reading the state on stdin), none (loopback only), and the engine's seccomp
// profile honoured on top of the Sentry's traps. Namespaces toa-*, addresses 198.18.200.0/24.
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { run } from '../../lib/testnet.ts';
import { deleteNetns } from '../../lib/testnet.ts';
import { CLI } from './run-helpers.ts';
import { type Bundle, cleanUp, create, lastLogMessage, leftNamespaces, makeBundle, oci, rawState, waitFor, waitStatus } from './oci-helpers.ts';

/** A namespace of the test's own, removed at teardown. */
function ns(t: Test, name: string): string {
  deleteNetns(name);
  run(['ip', 'netns', 'add', name]);
  run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  t.teardown(() => deleteNetns(name));
  return name;
}

/** busybox httpd serving `text` at ADDR:8080 inside namespace `name`, killed at teardown. */
async function httpd(t: Test, name: string, addr: string, dir: string, text: string): Promise<void> {
  writeFileSync(join(dir, 'index.html'), text);
  const p = spawn('ip', ['netns', 'exec', name, 'busybox', 'httpd', '-f', '-p', `${addr}:8080`, '-h', dir], { stdio: 'ignore' });
  t.teardown(() => p.kill('SIGKILL'));
  // Listening once a connection from inside the namespace gets an answer.
  await waitFor(() => {
    try {
      return run(['ip', 'netns', 'exec', name, 'busybox', 'wget', '-q', '-O', '-', `http://${addr}:8080/`]) === text;
    } catch {
      return false;
    }
  }, 10000);
}

/** A container netns holding `eth0` (198.18.200.2/24) and a peer netns at the veth's other end (198.18.200.1/24). */
function containerAndPeer(t: Test): { ctr: string; peer: string } {
  const ctr = ns(t, 'toa-ctr');
  const peer = ns(t, 'toa-peer');
  run(['ip', '-n', ctr, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'toa-p', 'netns', peer]);
  run(['ip', '-n', ctr, 'addr', 'add', '198.18.200.2/24', 'dev', 'eth0']);
  run(['ip', '-n', ctr, 'link', 'set', 'eth0', 'up']);
  run(['ip', '-n', peer, 'addr', 'add', '198.18.200.1/24', 'dev', 'toa-p']);
  run(['ip', '-n', peer, 'link', 'set', 'toa-p', 'up']);
  return { ctr, peer };
}

t.test('network namespace by path: the netstack takes over its eth0, the program reaches a Linux peer; prestart sees the state', async (t) => {
  const { ctr, peer } = containerAndPeer(t);
  const b = makeBundle(t);
  t.teardown(() => cleanUp(b));
  await httpd(t, peer, '198.18.200.1', b.dir, 'hello from the peer\n');
  const hookOut = join(b.dir, 'prestart.json');
  b.config.process.args = ['sh', '-c', 'wget -q -O - http://198.18.200.1:8080/ && cat /proc/net/dev | grep -o "eth0"'];
  b.config.linux.namespaces = b.config.linux.namespaces.map((n: any) => (n.type === 'network' ? { type: 'network', path: `/var/run/netns/${ctr}` } : n));
  // The hook reads /proc/<pid>/ns/net while it runs, as a CNI-like hook does: once created, the Sentry's main thread
  // steps into the program's namespace now and then to make socketpairs there, so a later read may see that one.
  const hookNs = join(b.dir, 'prestart.ns');
  const record = `cat > ${hookOut}; readlink /proc/$(sed -n 's/.*"pid":\\([0-9]*\\).*/\\1/p' ${hookOut})/ns/net > ${hookNs}`;
  b.config.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', record] }] };
  b.write();
  const c = await create(b, 'np');
  t.equal(c.call.code, 0, c.call.stderr);
  const hook = JSON.parse(readFileSync(hookOut, 'utf8'));
  t.equal(hook.id, 'np');
  t.equal(hook.status, 'creating');
  t.equal(hook.bundle, b.dir);
  t.equal(readFileSync(hookNs, 'utf8').trim(), `net:[${statSync(`/var/run/netns/${ctr}`).ino}]`,
    "the hook's pid lives in the container's network namespace");
  t.equal(rawState(b, 'np')?.network, 'sandbox');
  const kernelAddrs = run(['ip', '-n', ctr, '-4', 'addr', 'show', 'dev', 'eth0']);
  t.notMatch(kernelAddrs, /198\.18\.200\.2/, "the kernel's eth0 gave its address to the netstack");
  t.equal((await oci(b, ['start', 'np'])).code, 0);
  const out = await c.output;
  t.equal(out.stdout, 'hello from the peer\neth0\n', out.stderr);
  t.ok(await waitStatus(b, 'np', 'stopped'));
  t.equal(rawState(b, 'np')?.exitStatus, 0);
  const rid = rawState(b, 'np')?.runId;
  t.equal((await oci(b, ['delete', 'np'])).code, 0);
  t.same(leftNamespaces(rid), []);
  t.match(run(['ip', '-n', ctr, '-4', 'addr', 'show', 'dev', 'eth0']), /198\.18\.200\.2/, 'eth0 is given back');
});

t.test("--network=host (runsc's, a global flag): the container's namespace with the kernel's stack, nothing taken over", async (t) => {
  const { ctr, peer } = containerAndPeer(t);
  const b = makeBundle(t);
  t.teardown(() => cleanUp(b));
  await httpd(t, peer, '198.18.200.1', b.dir, 'hello host mode\n');
  b.config.process.args = ['sh', '-c', 'wget -q -O - http://198.18.200.1:8080/'];
  b.config.linux.namespaces = b.config.linux.namespaces.map((n: any) => (n.type === 'network' ? { type: 'network', path: `/var/run/netns/${ctr}` } : n));
  b.write();
  const c = await create(b, 'hm', [], ['--network', 'host']);
  t.equal(c.call.code, 0, c.call.stderr);
  t.equal(rawState(b, 'hm')?.network, 'host');
  t.match(run(['ip', '-n', ctr, '-4', 'addr', 'show', 'dev', 'eth0']), /198\.18\.200\.2/, 'the kernel keeps eth0');
  t.equal((await oci(b, ['start', 'hm'])).code, 0);
  t.equal((await c.output).stdout, 'hello host mode\n');
});

t.test('no path: the runtime makes the netns, a prestart hook plugs a veth into /proc/<pid>/ns/net, the netstack takes it', async (t) => {
  const caller = ns(t, 'toa-caller');
  const b = makeBundle(t);
  t.teardown(() => cleanUp(b));
  // The runtime runs inside the caller's namespace, where the hook makes the veth's host end, as Docker's does.
  // On every address of the namespace: 198.18.200.5 comes with the hook's veth.
  writeFileSync(join(b.dir, 'index.html'), 'hello from the bridge\n');
  const server = spawn('ip', ['netns', 'exec', caller, 'busybox', 'httpd', '-f', '-p', '8080', '-h', b.dir], { stdio: 'ignore' });
  t.teardown(() => server.kill('SIGKILL'));
  const plug = [
    'pid=$(sed -n \'s/.*"pid":\\([0-9]*\\).*/\\1/p\')',
    'ip link add toa-h2 type veth peer name eth0 netns $pid',
    'ip addr add 198.18.200.5/30 dev toa-h2',
    'ip link set toa-h2 up',
    'nsenter -t $pid -n ip addr add 198.18.200.6/30 dev eth0',
    'nsenter -t $pid -n ip link set eth0 up',
    'nsenter -t $pid -n ip route add default via 198.18.200.5',
  ].join(' && ');
  b.config.process.args = ['sh', '-c', 'wget -q -O - http://198.18.200.5:8080/'];
  b.config.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', plug], timeout: 20 }] };
  b.write();
  const child = spawn('nsenter', [`--net=/var/run/netns/${caller}`, process.execPath, CLI, '--root', b.root, '--log', b.log, 'run', '--bundle', b.dir, 'br'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.on('close', r));
  t.equal(code, 0, stderr + (lastLogMessage(b) ?? ''));
  t.equal(stdout, 'hello from the bridge\n');
});

t.test('no interface in the netns: loopback only (none), served by the netstack', async (t) => {
  const b = makeBundle(t, (c) => (c.process.args = ['sh', '-c', 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "; wget -q -T 2 -O - http://198.18.200.1:8080/ || echo unreachable']));
  t.teardown(() => cleanUp(b));
  const c = await create(b, 'no');
  t.equal(c.call.code, 0, c.call.stderr);
  t.equal(rawState(b, 'no')?.network, 'none');
  t.equal((await oci(b, ['start', 'no'])).code, 0);
  const out = await c.output;
  t.equal(out.stdout, 'lo\nunreachable\n');
});

t.test("the engine's seccomp profile: a call it refuses fails with its errno, socket calls still reach the Sentry", async (t) => {
  const b = makeBundle(t, (c) => {
    // The client retries until the listener is up, then the program waits for the bytes (each bounded to 10 s).
    c.process.args = ['sh', '-c', 'mkdir /dev/shm/x 2>&1; echo mkdir=$?; touch /dev/shm/y && echo touch=ok; nc -l -p 7000 > /dev/shm/got & ' +
      'i=0; until echo hi | nc 127.0.0.1 7000 2>/dev/null || [ $i -ge 200 ]; do i=$((i+1)); sleep 0.05; done; ' +
      'i=0; until [ -s /dev/shm/got ] || [ $i -ge 200 ]; do i=$((i+1)); sleep 0.05; done; cat /dev/shm/got'];
    c.linux.seccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [
        { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 },
        { names: ['personality'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
      ],
    };
  });
  t.teardown(() => cleanUp(b));
  const c = await create(b, 'sc');
  t.equal(c.call.code, 0, c.call.stderr);
  t.equal((await oci(b, ['start', 'sc'])).code, 0);
  const out = await c.output;
  t.match(out.stdout, /Operation not permitted\nmkdir=1\ntouch=ok\nhi\n$/);
});
