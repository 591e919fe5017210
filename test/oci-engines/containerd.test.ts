// containerd driving tsvisor (issue 14): a private containerd, `ctr run --runc-binary` with the runc shim, and
// its CRI plugin with a `tsvisor` runtime handler (runc shim, BinaryName = tsvisor) driven over the gRPC socket
// with the calls kubelet makes for a pod of RuntimeClass tsvisor. TSVISOR_OCI_TEST_RUNTIME=runc puts runc behind
// the same names, which proves the harness itself.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { criClient } from './cri.ts';
import {
  CRI_GATEWAY, RUNTIME, busyboxRootfs, must, ociArchive, pauseBinary, startContainerd, verbsFor, waitFor,
} from '../../bench/oci-engines.ts';

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

t.test('CRI: a pod with runtime_handler tsvisor, as kubelet runs it for RuntimeClass tsvisor', async (t) => {
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
      // kubelet's: the pod's network and IPC, a pid namespace of the container's own (no shareProcessNamespace).
      linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    },
    sandbox_config: podConfig,
  });
  await cri.runtime.StartContainer!({ container_id: ctr });
  t.ok(verbsFor(c.calls, ctr).includes('start'), 'the container was started by the tsvisor handler');
  const cs = await cri.runtime.ContainerStatus!({ container_id: ctr });
  t.equal(cs.status.state, 'CONTAINER_RUNNING');

  // cgroups (cgroup_parent + the container's id, cgroupfs form): each program in its container's, the pod's Sentry
  // in the pod's (runsc's layout: the pause container's cpu.shares of 2 is not the pod's stack's).
  if (RUNTIME === 'tsvisor') {
    const runtimeState = (id: string) => JSON.parse(readFileSync(`/run/containerd/runc/k8s.io/${id}/state.json`, 'utf8'));
    const memoryCgroup = (pid: number) => /^\d+:memory:(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1];
    const podState = runtimeState(pod);
    t.equal(memoryCgroup(podState.sentryPid ?? podState.pid), '/tob-kubepods/tob-pod-uid-1', 'the pod\'s Sentry is in the pod\'s cgroup');
    t.equal(memoryCgroup(podState.initPid), `/tob-kubepods/tob-pod-uid-1/${pod}`, 'pause is in its container\'s cgroup');
    t.equal(readFileSync(`/sys/fs/cgroup/cpu/tob-kubepods/tob-pod-uid-1/${pod}/cpu.shares`, 'utf8').trim(), '2', 'with kubelet\'s cpu.shares');
    const webState = runtimeState(ctr);
    t.equal(memoryCgroup(webState.initPid), `/tob-kubepods/tob-pod-uid-1/${ctr}`, 'the web program is in its container\'s cgroup');
    t.equal(memoryCgroup(webState.sentryPid ?? webState.pid), '/tob-kubepods/tob-pod-uid-1', 'its life-cycle process in the pod\'s');
    if (webState.sentryPid) t.equal(memoryCgroup(webState.pid), `/tob-kubepods/tob-pod-uid-1/${ctr}`, 'its keeper (the shim\'s pid) in its container\'s');
  }

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
  // (busybox's ping wants a raw socket, which the Sentry refuses: HTTP to a server of the test's on that address.)
  const host = createServer((req, res) => res.end(`host saw ${req.url}\n`));
  await new Promise<void>((r) => host.listen(0, CRI_GATEWAY, r));
  t.teardown(() => host.close());
  const hostPort = (host.address() as AddressInfo).port;
  const out = await cri.runtime.ExecSync!({ container_id: ctr, cmd: ['wget', '-q', '-O', '-', `http://${CRI_GATEWAY}:${hostPort}/from-pod`], timeout: 30 });
  t.equal(Buffer.from(out.stdout).toString(), 'host saw /from-pod\n', Buffer.from(out.stderr).toString());

  // A second container of the pod shares its stack: the web container's port on 127.0.0.1 is its own loopback's.
  const { container_id: side } = await cri.runtime.CreateContainer!({
    pod_sandbox_id: pod,
    config: {
      metadata: { name: 'side', attempt: 0 },
      image: { image: 'tob.local/busybox:1' },
      command: ['sleep', '3600'],
      log_path: 'side.log',
      linux: { security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
    },
    sandbox_config: podConfig,
  });
  await cri.runtime.StartContainer!({ container_id: side });
  const local = await cri.runtime.ExecSync!({ container_id: side, cmd: ['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/'], timeout: 30 });
  t.equal(Buffer.from(local.stdout).toString(), 'hello from a tob container\n', `the pod's loopback: ${Buffer.from(local.stderr).toString()}`);
  const ps = await cri.runtime.ExecSync!({ container_id: side, cmd: ['sh', '-c', 'ps -o comm | grep -c httpd'], timeout: 30 });
  t.equal(Buffer.from(ps.stdout).toString(), '0\n', 'the web container\'s processes are not in its pid namespace (pid: CONTAINER)');
  await cri.runtime.StopContainer!({ container_id: side, timeout: 2 });
  t.equal((await cri.runtime.ContainerStatus!({ container_id: side })).status.state, 'CONTAINER_EXITED');
  await cri.runtime.RemoveContainer!({ container_id: side });

  // httpd is pid 1 of its pid namespace with no TERM handler: TERM does nothing, KILL after the grace period ends
  // it, so the grace period is waited out whole (2 s, as for the side container, not 10).
  await cri.runtime.StopContainer!({ container_id: ctr, timeout: 2 });
  const stopped = await cri.runtime.ContainerStatus!({ container_id: ctr });
  t.equal(stopped.status.state, 'CONTAINER_EXITED');
  await cri.runtime.RemoveContainer!({ container_id: ctr });
  await cri.runtime.StopPodSandbox!({ pod_sandbox_id: pod });
  await cri.runtime.RemovePodSandbox!({ pod_sandbox_id: pod });
  const left = await cri.runtime.ListPodSandbox!({});
  t.same(left.items, [], 'no sandbox is left');
  if (RUNTIME === 'tsvisor') t.notOk(existsSync('/sys/fs/cgroup/memory/tob-kubepods'), 'the pod\'s cgroups are removed with it');
  t.match(readFileSync(join(logs, 'web.log'), 'utf8'), / stdout F web starting\n/, 'the container\'s output is in its CRI log');
});
