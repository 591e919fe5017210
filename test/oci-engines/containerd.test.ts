// containerd driving tsvisor (issue 14): a private containerd, `ctr run --runc-binary` with the runc shim, and
// its CRI plugin with a `tsvisor` runtime handler (runc shim, BinaryName = tsvisor) driven over the gRPC socket
// with the calls kubelet makes for a pod of RuntimeClass tsvisor. TSVISOR_OCI_TEST_RUNTIME=runc puts runc behind
// the same names, which proves the harness itself.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { criClient } from './cri.ts';
import {
  CRI_GATEWAY, RUNTIME, busyboxRootfs, must, ociArchive, pauseBinary, pending, startContainerd, verbsFor, waitFor,
} from '../../bench/oci-engines.ts';

const POD_NETNS = 'a container joining its pod\'s network namespace: create fails, "interface eth0 ... is already taken by tsvisor run" (the pause container\'s Sentry owns it; a pod\'s containers must share one stack)';
const c = await startContainerd(t, RUNTIME);
const images = join(c.scratch.dir, 'images');
mkdirSync(images);
const busybox = busyboxRootfs(join(images, 'busybox'));
ociArchive(busybox, join(images, 'busybox.tar'), 'tob.local/busybox:1', { cmd: ['/bin/sh'] });
const pauseRoot = join(images, 'pause');
mkdirSync(pauseRoot);
pauseBinary(pauseRoot);
ociArchive(pauseRoot, join(images, 'pause.tar'), 'tob.local/pause:1', { entrypoint: ['/pause'] });
for (const ns of ['tob', 'k8s.io']) {
  await must(['ctr', '--address', c.address, '-n', ns, 'image', 'import', join(images, 'busybox.tar')]);
}
await must(['ctr', '--address', c.address, '-n', 'k8s.io', 'image', 'import', join(images, 'pause.tar')]);

t.test('ctr run --runc-binary: output, exit code, loopback in its own namespace', async (t) => {
  const r = await c.ctr(['-n', 'tob', 'run', '--rm', '--runc-binary', c.runtimePath, 'tob.local/busybox:1', 'tob-ctr-1',
    'sh', '-c', 'httpd -p 127.0.0.1:80 -h /www && wget -q -O - http://127.0.0.1/; exit 3']);
  t.equal(r.stdout, 'hello from a tob container\n', r.stderr);
  t.equal(r.code, 3);
  const verbs = verbsFor(c.calls, 'tob-ctr-1');
  t.ok(verbs.includes('create') && verbs.includes('start'), `runtime calls: ${verbs.join(', ')}`);
  const missing = await c.ctr(['-n', 'tob', 'run', '--rm', '--runc-binary', c.runtimePath, 'tob.local/busybox:1', 'tob-ctr-2', '/no/such/program']);
  t.not(missing.code, 0, 'a missing program fails the run');
  t.match(missing.stderr, /no\/such\/program/, 'and the error names it');
});

t.test('CRI: a pod with runtime_handler tsvisor, as kubelet runs it for RuntimeClass tsvisor', pending(POD_NETNS), async (t) => {
  const cri = criClient(c.address);
  t.teardown(() => cri.close());
  const version = await cri.runtime.Version!({ version: 'v1' });
  t.equal(version.runtime_name, 'containerd');
  const image = await cri.image.ImageStatus!({ image: { image: 'tob.local/busybox:1' } });
  t.ok(image.image?.id, 'the imported image is known to the CRI plugin');

  const logs = join(c.scratch.dir, 'pod-logs');
  mkdirSync(logs);
  const podConfig = {
    metadata: { name: 'tob-pod', uid: 'tob-pod-uid-1', namespace: 'default', attempt: 0 },
    hostname: 'tob-pod',
    log_directory: logs,
    linux: { cgroup_parent: '/tob-kubepods/tob-pod-uid-1', security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
  const { pod_sandbox_id: pod } = await cri.runtime.RunPodSandbox!({ config: podConfig, runtime_handler: 'tsvisor' });
  t.ok(pod, 'RunPodSandbox gave a sandbox id');
  t.teardown(async () => {
    await cri.runtime.StopPodSandbox!({ pod_sandbox_id: pod }).catch(() => undefined);
    await cri.runtime.RemovePodSandbox!({ pod_sandbox_id: pod }).catch(() => undefined);
  });
  t.ok(verbsFor(c.calls, pod).includes('create'), 'the sandbox (pause) was created by the tsvisor handler');
  const status = await cri.runtime.PodSandboxStatus!({ pod_sandbox_id: pod });
  t.equal(status.status.state, 'SANDBOX_READY');
  const podIp = status.status.network?.ip as string;
  t.match(podIp, /^198\.18\.216\.\d+$/, 'the pod got an address of the CNI bridge');

  const { container_id: ctr } = await cri.runtime.CreateContainer!({
    pod_sandbox_id: pod,
    config: {
      metadata: { name: 'web', attempt: 0 },
      image: { image: 'tob.local/busybox:1' },
      command: ['sh', '-c', 'echo web starting; exec httpd -f -p 8080 -h /www'],
      log_path: 'web.log',
      linux: {},
    },
    sandbox_config: podConfig,
  });
  await cri.runtime.StartContainer!({ container_id: ctr });
  t.ok(verbsFor(c.calls, ctr).includes('start'), 'the container was started by the tsvisor handler');
  const cs = await cri.runtime.ContainerStatus!({ container_id: ctr });
  t.equal(cs.status.state, 'CONTAINER_RUNNING');

  const forty2 = await cri.runtime.ExecSync!({ container_id: ctr, cmd: ['sh', '-c', 'echo $((6*7)); hostname'], timeout: 30 });
  t.equal(Buffer.from(forty2.stdout).toString(), '42\ntob-pod\n', Buffer.from(forty2.stderr).toString());
  t.equal(forty2.exit_code, 0);
  const three = await cri.runtime.ExecSync!({ container_id: ctr, cmd: ['sh', '-c', 'exit 3'], timeout: 30 });
  t.equal(three.exit_code, 3);

  // The pod's web server from the host, through the CNI bridge; and the pod reaching the host's bridge address.
  let body = '';
  await waitFor(async () => {
    body = await fetch(`http://${podIp}:8080/`).then((res) => res.text(), () => '');
    return body !== '';
  }, 30000);
  t.equal(body, 'hello from a tob container\n');
  const out = await cri.runtime.ExecSync!({ container_id: ctr, cmd: ['sh', '-c', `ping -c 1 -W 5 ${CRI_GATEWAY} >/dev/null && echo gateway-answers`], timeout: 30 });
  t.equal(Buffer.from(out.stdout).toString(), 'gateway-answers\n', Buffer.from(out.stderr).toString());

  await cri.runtime.StopContainer!({ container_id: ctr, timeout: 10 });
  const stopped = await cri.runtime.ContainerStatus!({ container_id: ctr });
  t.equal(stopped.status.state, 'CONTAINER_EXITED');
  await cri.runtime.RemoveContainer!({ container_id: ctr });
  await cri.runtime.StopPodSandbox!({ pod_sandbox_id: pod });
  await cri.runtime.RemovePodSandbox!({ pod_sandbox_id: pod });
  const left = await cri.runtime.ListPodSandbox!({});
  t.same(left.items, [], 'no sandbox is left');
  t.match(readFileSync(join(logs, 'web.log'), 'utf8'), / stdout F web starting\n/, 'the container\'s output is in its CRI log');
});
