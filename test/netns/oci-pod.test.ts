// A pod without an engine (cli/oci/pod.ts): a sandbox container whose netstack takes over eth0 of a netns given by
// path, and containers annotated as the CRI's (io.kubernetes.cri.container-type = container, sandbox-id = the
// pod) that name the pod's namespaces by /proc/<pod pid>/ns/...: each keeps its own root, life cycle and exit
// status while the pod's one netstack serves it — a Linux peer reaches a container's server at the pod's address,
// the containers reach one another over the pod's loopback, exec in one is served there too. A container goes
// with its pod; one naming a pod that is not there is refused. Namespaces tpa-pod*, addresses 198.18.150.0/24.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { deleteNetns, run } from '../../lib/testnet.ts';
import { alive } from '../../cli/oci/state.ts';
import { type Bundle, cleanUp, create, lastLogMessage, makeBundle, oci, rawState, waitFor, waitStatus } from './oci-helpers.ts';

const POD_NS = 'tpa-pod';
const PEER_NS = 'tpa-pod-peer';
const POD = `tpa-pod-${process.pid}`;
const PAGE = 'hello from a pod container\n';

/** The pod's namespace holding eth0 (198.18.150.2/24) and a peer namespace at the veth's other end (.1). */
function podNetwork(t: Test): void {
  for (const n of [POD_NS, PEER_NS]) {
    deleteNetns(n);
    run(['ip', 'netns', 'add', n]);
    run(['ip', '-n', n, 'link', 'set', 'lo', 'up']);
  }
  t.teardown(() => {
    deleteNetns(POD_NS);
    deleteNetns(PEER_NS);
  });
  run(['ip', '-n', POD_NS, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'tpa-pod-p', 'netns', PEER_NS]);
  run(['ip', '-n', POD_NS, 'addr', 'add', '198.18.150.2/24', 'dev', 'eth0']);
  run(['ip', '-n', POD_NS, 'link', 'set', 'eth0', 'up']);
  run(['ip', '-n', PEER_NS, 'addr', 'add', '198.18.150.1/24', 'dev', 'tpa-pod-p']);
  run(['ip', '-n', PEER_NS, 'link', 'set', 'tpa-pod-p', 'up']);
}

/** A bundle of a container of pod `pod` whose Sentry's pid is `podPid`, as containerd's CRI writes one. */
function podContainer(t: Test, args: string[], pod = POD, podPid = 0, annotated = true): Bundle {
  return makeBundle(t, (cfg) => {
    cfg.process.args = args;
    delete cfg.hostname;
    if (annotated) cfg.annotations = { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': pod, 'io.kubernetes.cri.container-name': args[0] };
    cfg.linux.namespaces = [
      { type: 'pid' },
      { type: 'ipc', path: `/proc/${podPid}/ns/ipc` },
      { type: 'uts', path: `/proc/${podPid}/ns/uts` },
      { type: 'mount' },
      { type: 'network', path: `/proc/${podPid}/ns/net` },
    ];
  });
}

/** curl from the peer namespace, or '' when it fails. */
function fromPeer(url: string): string {
  try {
    return run(['ip', 'netns', 'exec', PEER_NS, 'curl', '-s', '-m', '5', url]);
  } catch {
    return '';
  }
}

t.test('a pod: its containers share the sandbox container\'s netstack, each with its own life cycle', async (t) => {
  podNetwork(t);
  const sb = makeBundle(t, (cfg) => {
    cfg.process.args = ['sleep', '600'];
    cfg.hostname = 'tpa-pod';
    cfg.annotations = { 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-id': POD };
    cfg.linux.namespaces = cfg.linux.namespaces.map((n: any) => (n.type === 'network' ? { type: 'network', path: `/var/run/netns/${POD_NS}` } : n));
  });
  t.teardown(() => cleanUp(sb));
  const made = await create(sb, POD);
  t.equal(made.call.code, 0, `the pod's sandbox: ${made.call.stderr}`);
  t.equal((await oci(sb, ['start', POD])).code, 0);
  const podPid = rawState(sb, POD)!.pid as number;

  // The web container: its own root holding the page, the pod's network.
  const web = podContainer(t, ['sh', '-c', 'echo web starting; exec httpd -f -p 8080 -h /www'], POD, podPid);
  mkdirSync(join(web.rootfs, 'www'));
  writeFileSync(join(web.rootfs, 'www/index.html'), PAGE);
  const w = await create(web, 'tpa-pod-web');
  t.equal(w.call.code, 0, `create of a pod's container (the pod's eth0 is not taken twice): ${w.call.stderr}`);
  t.equal(rawState(web, 'tpa-pod-web')?.pod, POD, 'it is recorded as the pod\'s');
  t.equal(rawState(web, 'tpa-pod-web')?.network, 'sandbox', 'with the pod\'s network mode');
  t.equal((await oci(web, ['start', 'tpa-pod-web'])).code, 0, 'start');
  let body = '';
  t.ok(await waitFor(() => (body = fromPeer('http://198.18.150.2:8080/')) !== '', 20000), 'a Linux peer reaches the container at the pod\'s address');
  t.equal(body, PAGE);

  const ex = await oci(web, ['exec', 'tpa-pod-web', 'sh', '-c', 'hostname; wget -q -O - http://127.0.0.1:8080/; exit 5']);
  t.equal(ex.stdout, `tpa-pod\n${PAGE}`, `exec: the pod's hostname, the pod's loopback (${ex.stderr})`);
  t.equal(ex.code, 5, 'exec\'s exit status');

  // A second container: the web container's port is on its loopback too (one stack), and its exit status is its own.
  const cli = podContainer(t, ['sh', '-c', 'wget -q -O - http://127.0.0.1:8080/ && wget -q -O - http://198.18.150.1:8080/ ; exit 7'], POD, podPid);
  const peerPage = 'hello from the peer\n';
  const peerDir = join(cli.dir, 'peer-www');
  mkdirSync(peerDir);
  writeFileSync(join(peerDir, 'index.html'), peerPage);
  const httpdPeer = spawn('ip', ['netns', 'exec', PEER_NS, 'busybox', 'httpd', '-f', '-p', '198.18.150.1:8080', '-h', peerDir], { stdio: 'ignore' });
  t.teardown(() => httpdPeer.kill('SIGKILL'));
  t.ok(await waitFor(() => fromPeer('http://198.18.150.1:8080/') === peerPage, 10000), 'the peer serves');
  const c2 = await create(cli, 'tpa-pod-cli');
  t.equal(c2.call.code, 0, c2.call.stderr);
  t.equal((await oci(cli, ['start', 'tpa-pod-cli'])).code, 0);
  const out = await c2.output;
  t.equal(out.stdout, PAGE + peerPage, `the pod's loopback and the peer through the pod's stack (${out.stderr})`);
  t.ok(await waitStatus(cli, 'tpa-pod-cli', 'stopped'), 'the second container stops on its own');
  t.equal(rawState(cli, 'tpa-pod-cli')?.exitStatus, 7, 'with its program\'s status');
  t.equal((await oci(cli, ['delete', 'tpa-pod-cli'])).code, 0);

  // Without the CRI's annotations, given the pod's network namespace by its pid (`--network container:X`).
  const byNs = podContainer(t, ['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/'], POD, podPid, false);
  const c3 = await create(byNs, 'tpa-pod-byns');
  t.equal(c3.call.code, 0, `a container given the pod's netns by path: ${c3.call.stderr}`);
  t.equal(rawState(byNs, 'tpa-pod-byns')?.pod, POD, 'is found to be the pod\'s');
  t.equal((await oci(byNs, ['start', 'tpa-pod-byns'])).code, 0);
  t.equal((await c3.output).stdout, PAGE, 'and shares its loopback');
  t.ok(await waitStatus(byNs, 'tpa-pod-byns', 'stopped'));
  t.equal((await oci(byNs, ['delete', 'tpa-pod-byns'])).code, 0);
  t.ok(alive(podPid), 'the pod lives on');
  t.equal(fromPeer('http://198.18.150.2:8080/'), PAGE, 'and so does the web container');

  // httpd is its pid namespace's init (as under runc), which SIGTERM does not end: the engine's SIGKILL does.
  t.equal((await oci(web, ['kill', 'tpa-pod-web', 'KILL'])).code, 0);
  t.ok(await waitStatus(web, 'tpa-pod-web', 'stopped'), 'kill stops the container');
  t.equal(rawState(web, 'tpa-pod-web')?.exitStatus, 137, 'killed by SIGKILL: 128+9');
  t.equal((await oci(web, ['delete', 'tpa-pod-web'])).code, 0);
  t.ok(alive(podPid), 'the pod still lives');

  // A container still running when its pod goes goes with it.
  const orphan = podContainer(t, ['sleep', '600'], POD, podPid);
  t.equal((await create(orphan, 'tpa-pod-orphan')).call.code, 0);
  t.equal((await oci(orphan, ['start', 'tpa-pod-orphan'])).code, 0);
  const orphanPid = rawState(orphan, 'tpa-pod-orphan')!.initPid as number;
  t.equal((await oci(sb, ['kill', POD, 'KILL'])).code, 0);
  t.ok(await waitStatus(sb, POD, 'stopped'), 'the pod stops');
  t.ok(await waitStatus(orphan, 'tpa-pod-orphan', 'stopped', 10000), 'its remaining container stops with it');
  t.notOk(alive(orphanPid), 'and its program is gone');
  for (const [b, id] of [[orphan, 'tpa-pod-orphan'], [sb, POD]] as const) t.equal((await oci(b, ['delete', id])).code, 0, `delete ${id}`);
});

t.test('a container of a pod that is not there is refused, nothing left behind', async (t) => {
  const b = podContainer(t, ['true'], 'tpa-no-such-pod', 1);
  t.teardown(() => cleanUp(b));
  const c = await create(b, 'tpa-pod-lost');
  t.not(c.call.code, 0, 'create fails');
  t.match(lastLogMessage(b) ?? '', /pod sandbox tpa-no-such-pod is not a tsvisor container/, 'the error names the pod');
  t.equal(c.call.stderr.trim().split('\n').length, 1, `one line: ${c.call.stderr}`);
  t.notOk(rawState(b, 'tpa-pod-lost'), 'no container');
});
