// config.json's cgroupsPath read as runc reads it (cli/oci/cgroups.ts): plain absolute and relative paths, the
// systemd driver's slice:prefix:name with systemd's slice expansion, and the refusals; and which containers a CRI
// pod's annotations (containerd's, CRI-O's) make one of a pod (cli/oci/pod.ts).
import t from 'tap';
import { cgroupPath, expandSlice } from '../../../cli/oci/cgroups.ts';
import { isPodSandbox, podSandboxId } from '../../../cli/oci/pod.ts';
import type { Spec } from '../../../cli/oci/spec.ts';

t.test('cgroupsPath → a path in each hierarchy', async (t) => {
  const table: [string | undefined, { path: string; relative: boolean } | undefined][] = [
    [undefined, undefined],
    ['', undefined],
    ['/docker/abc', { path: '/docker/abc', relative: false }],
    ['//kubepods///pod1/./c1/', { path: '/kubepods/pod1/c1', relative: false }],
    ['tsv/c1', { path: '/tsv/c1', relative: true }],
    ['system.slice:docker:abc', { path: '/system.slice/docker-abc.scope', relative: false }],
    ['kubepods-besteffort-pod12.slice:cri-containerd:abc', { path: '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope', relative: false }],
    [':tsv:x', { path: '/system.slice/tsv-x.scope', relative: false }],
    ['-.slice:tsv:x', { path: '/tsv-x.scope', relative: false }],
    ['user.slice::x', { path: '/user.slice/x.scope', relative: false }],
    ['machine.slice:p:vm-1.slice', { path: '/machine.slice/vm-1.slice', relative: false }],
  ];
  for (const [input, want] of table) t.same(cgroupPath(input), want, `${JSON.stringify(input)} → ${want?.path}`);
});

t.test('systemd slice expansion and the paths refused', async (t) => {
  t.equal(expandSlice('a-b-c.slice'), '/a.slice/a-b.slice/a-b-c.slice');
  t.equal(expandSlice('-.slice'), '/');
  for (const bad of ['a--b.slice', '-a.slice', 'a-.slice', 'a/b.slice', 'notaslice']) {
    t.throws(() => expandSlice(bad), { message: /cgroupsPath/ }, `slice ${bad}`);
  }
  for (const bad of ['/a/../b', '../escape', 'sys.slice:p:', 'nota-slice:p:x', 'system.slice:p:a/b']) {
    t.throws(() => cgroupPath(bad), { message: /cgroupsPath/ }, `cgroupsPath ${bad}`);
  }
});

t.test('CRI annotations: a pod\'s sandbox, its containers, and the rest', async (t) => {
  const spec = (annotations?: Record<string, string>): Spec => ({ ociVersion: '1.0.2', annotations });
  t.equal(podSandboxId(spec({ 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'pod1' }), 'c1'), 'pod1', 'containerd');
  t.equal(podSandboxId(spec({ 'io.kubernetes.cri-o.ContainerType': 'container', 'io.kubernetes.cri-o.SandboxID': 'pod2' }), 'c2'), 'pod2', 'CRI-O');
  t.equal(podSandboxId(spec({ 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-id': 'pod1' }), 'pod1'), undefined, 'the sandbox is no pod\'s container');
  t.equal(podSandboxId(spec({ 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'c3' }), 'c3'), undefined, 'a container is not its own pod');
  t.equal(podSandboxId(spec({ 'io.kubernetes.cri.container-type': 'container' }), 'c4'), undefined, 'no sandbox id');
  t.equal(podSandboxId(spec(), 'c5'), undefined, 'no annotations');
  t.ok(isPodSandbox(spec({ 'io.kubernetes.cri.container-type': 'sandbox' })));
  t.ok(isPodSandbox(spec({ 'io.kubernetes.cri-o.ContainerType': 'sandbox' })));
  t.notOk(isPodSandbox(spec({ 'io.kubernetes.cri.container-type': 'container' })));
});
