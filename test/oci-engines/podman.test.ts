// podman driving tsvisor (issue 14): CONTAINERS_CONF with the limits, runtime and network this machine kind needs
// (research note) and `tsvisor` in [engine.runtimes]; `podman --runtime tsvisor run` of an imported busybox-static
// image: exit codes, a missing program, stdin, logs, the bridge both ways, --network none, exec, stop, kill.
// TSVISOR_OCI_TEST_RUNTIME=runc puts runc behind the same name, which proves the harness itself.
import { once } from 'node:events';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import {
  PODMAN_CGROUP, PODMAN_GATEWAY, RUNTIME, busyboxRootfs, podmanImport, setupPodman, verbsFor, waitFor,
} from '../../bench/oci-engines.ts';

const p = await setupPodman(t, RUNTIME);
const images = join(p.scratch.dir, 'images');
mkdirSync(images);
await podmanImport(p, busyboxRootfs(join(images, 'busybox')), 'tob-busybox', ['CMD ["/bin/sh"]']);

/** `podman --runtime tsvisor run ARGS` in the test's own cgroup parent. */
function run(args: string[]) {
  return p.podman(['--runtime', 'tsvisor', 'run', '--cgroup-parent', `/${PODMAN_CGROUP}`, ...args]);
}
async function inspect(id: string, format: string): Promise<string> {
  return (await p.podman(['inspect', '-f', format, id])).stdout.trim();
}

const host = createServer((req, res) => res.end(`host saw ${req.method} ${req.url}\n`));
host.listen(0, PODMAN_GATEWAY);
await once(host, 'listening');
t.teardown(() => {
  host.closeAllConnections();
  host.close();
});
const hostPort = (host.address() as AddressInfo).port;

t.test('run --rm: output and exit code, through the runtime named tsvisor', async (t) => {
  const r = await run(['--rm', '--name', 'tob-p1', 'tob-busybox', 'sh', '-c', 'echo hi; exit 3']);
  t.equal(r.stdout, 'hi\n', r.stderr);
  t.equal(r.code, 3);
  const missing = await run(['--rm', 'tob-busybox', '/no/such/program']);
  t.equal(missing.code, 127, 'podman maps "not found" to 127');
  t.match(missing.stderr, /no\/such\/program/);
  t.match(readFileSync(p.calls, 'utf8'), /^\d+ create .*--bundle/m, 'podman called the runtime named tsvisor');
});

t.test('-i: stdin reaches the program', async (t) => {
  const r = await p.podman(['--runtime', 'tsvisor', 'run', '--cgroup-parent', `/${PODMAN_CGROUP}`, '--rm', '-i', 'tob-busybox',
    'sh', '-c', 'read a; read b; echo "got $a $b"'], { input: 'one\ntwo\n' });
  t.equal(r.stdout, 'got one two\n', r.stderr);
  t.equal(r.code, 0);
});

// The network is a CNI bridge without the portmap plugin (which would add iptables rules to the machine), so
// published ports (-p) are not part of it: the host reaches the container at its address on the bridge.
t.test('the bridge network: the container reaches the host on the gateway address, the host the container', async (t) => {
  const r = await run(['--rm', 'tob-busybox', 'wget', '-q', '-O', '-', `http://${PODMAN_GATEWAY}:${hostPort}/podman`]);
  t.equal(r.stdout, 'host saw GET /podman\n', r.stderr);
  const web = await run(['-d', '--name', 'tob-web', 'tob-busybox', 'httpd', '-f', '-p', '80', '-h', '/www']);
  if (!t.equal(web.code, 0, web.stderr)) return;
  const id = web.stdout.trim();
  t.teardown(() => p.podman(['rm', '-f', '-t', '0', id]));
  t.ok(verbsFor(p.calls, id).includes('create'), 'podman created it through the runtime named tsvisor');
  const ip = await inspect(id, '{{(index .NetworkSettings.Networks "tob-net").IPAddress}}');
  t.match(ip, /^198\.18\.211\.\d+$/, 'the container has an address of the private network');
  let body = '';
  await waitFor(async () => {
    body = await fetch(`http://${ip}/`).then((res) => res.text(), () => '');
    return body !== '';
  }, 30000);
  t.equal(body, 'hello from a tob container\n', 'the container reached directly on the bridge');
});

t.test('--network none: loopback only', async (t) => {
  const r = await run(['--rm', '--network', 'none', 'tob-busybox', 'sh', '-c',
    'httpd -p 127.0.0.1:80 -h /www && wget -q -O - http://127.0.0.1/ && ' +
    `(wget -q -O - http://${PODMAN_GATEWAY}:${hostPort}/none && echo reached || echo unreachable)`]);
  t.equal(r.stdout, 'hello from a tob container\nunreachable\n', r.stderr);
});

t.test('exec, logs, stop (TERM caught), kill', async (t) => {
  const r = await run(['-d', 'tob-busybox', 'sh', '-c', 'trap "echo got TERM; exit 0" TERM; echo ready; while :; do sleep 0.1; done']);
  if (!t.equal(r.code, 0, r.stderr)) return;
  const id = r.stdout.trim();
  t.teardown(() => p.podman(['rm', '-f', '-t', '0', id]));
  t.ok(await waitFor(async () => (await p.podman(['logs', id])).stdout.includes('ready'), 30000), 'logs show it started');
  const e = await p.podman(['exec', id, 'sh', '-c', 'echo $((6*7)); exit 4']);
  t.equal(e.stdout, '42\n', e.stderr);
  t.equal(e.code, 4);
  t.ok(verbsFor(p.calls, id).includes('exec'), 'exec went through the runtime');
  await p.podman(['stop', '-t', '20', id]);
  t.equal(await inspect(id, '{{.State.ExitCode}}'), '0');
  t.match((await p.podman(['logs', id])).stdout, /got TERM/);
  const s = await run(['-d', 'tob-busybox', 'sleep', '1000']);
  const sid = s.stdout.trim();
  t.teardown(() => p.podman(['rm', '-f', '-t', '0', sid]));
  await p.podman(['kill', sid]);
  t.ok(await waitFor(async () => (await inspect(sid, '{{.State.Status}}')) === 'exited', 30000), 'killed');
  t.equal(await inspect(sid, '{{.State.ExitCode}}'), '137');
});
