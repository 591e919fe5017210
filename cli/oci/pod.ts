/**
 * Pods: several OCI containers sharing one sandbox, as Kubernetes runs them (one pod = its "sandbox" container,
 * the pause program, plus the pod's containers). The engine's CRI plugin says which is which in annotations
 * (containerd: `io.kubernetes.cri.container-type` = sandbox | container and `io.kubernetes.cri.sandbox-id`;
 * CRI-O: `io.kubernetes.cri-o.ContainerType` and `io.kubernetes.cri-o.SandboxID`), and names the sandbox's
 * namespaces by the path /proc/<sandbox pid>/ns/net. The sandbox container's Sentry owns the pod's interface and
 * its netstack; one interface has one stack, so a pod container cannot take it over too. Instead, as runsc runs
 * every container of a pod in the pod's one sandbox, a pod container's program is launched (its own root, mounts,
 * env, cwd, user, pid namespace) in the network namespace of the pod's program and its seccomp listener is handed
 * to the pod's Sentry over its control socket, as `exec` hands an exec'd program's: one netstack serves the pod.
 * The container keeps its own Sentry process for its OCI life cycle (gate, state, kill, exit status, delete).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from '../errors.ts';
import { type Spec, loadSpec } from './spec.ts';
import { type ContainerState, ContainerDir, alive, listContainers, live } from './state.ts';

/** The annotations that make a container one of a pod's, by engine: [container type, sandbox id]. */
const POD_ANNOTATIONS: readonly [string, string][] = [
  ['io.kubernetes.cri.container-type', 'io.kubernetes.cri.sandbox-id'],
  ['io.kubernetes.cri-o.ContainerType', 'io.kubernetes.cri-o.SandboxID'],
];

/** The id of the pod sandbox whose stack `spec`'s container is to share; undefined for a sandbox or a lone container. */
export function podSandboxId(spec: Spec, id: string): string | undefined {
  const a = spec.annotations ?? {};
  for (const [type, sandbox] of POD_ANNOTATIONS) {
    if (a[type] === 'container' && a[sandbox] && a[sandbox] !== id) return a[sandbox];
  }
  return undefined;
}

/** Whether `spec`'s container is a pod's sandbox (the pause container), whose Sentry serves the whole pod. */
export function isPodSandbox(spec: Spec): boolean {
  const a = spec.annotations ?? {};
  return POD_ANNOTATIONS.some(([type]) => a[type] === 'sandbox');
}

/**
 * The container of ours under `root` that owns network namespace `path` (Docker's and podman's `--network
 * container:X` give /proc/<X's pid>/ns/net; a CRI without pod annotations names the pod's the same way): its
 * Sentry serves that namespace's interface, so the new container is one of its pod. The host's namespace is
 * nobody's. Undefined when no live container of ours owns it.
 */
export function netnsOwner(root: string, path: string, self: string, hostIno: number): string | undefined {
  let ino: number;
  try {
    ino = statSync(path).ino;
  } catch {
    return undefined;
  }
  if (ino === hostIno) return undefined;
  const byPid = /^\/proc\/(\d+)\/ns\/net$/.exec(path);
  for (const dir of listContainers(root)) {
    if (dir.id === self) continue;
    const raw = dir.readRaw();
    if (!raw || live(raw).status === 'stopped' || !raw.initPid) continue;
    if (byPid && (Number(byPid[1]) === raw.pid || Number(byPid[1]) === raw.sentryPid)) return raw.pod ?? dir.id;
    try {
      if (raw.netns && statSync(raw.netns).ino === ino) return raw.pod ?? dir.id;
    } catch {
      // its namespace is gone
    }
  }
  return undefined;
}

/** A running pod sandbox, as its containers need it. */
export interface Pod {
  id: string;
  /** Its Sentry's control socket: listeners are handed to it there. */
  control: string;
  /** The pod's network mode (the policy of its containers' programs follows it). */
  network: 'sandbox' | 'host' | 'none';
  /** The network namespace of the pod's program: where its containers' programs run. */
  netns: string;
  /** The namespace file whose interface the pod's Sentry took over (none: host mode): its containers' pids live there. */
  linkNetns?: string;
  /** The hostname the pod's program sees. */
  hostname?: string;
  /** Whether the pod's Sentry is still there (a container goes with its pod). */
  alive(): boolean;
}

/** The pod sandbox `podId` under `root`; throws CliError when it is not a running tsvisor sandbox there. */
export function findPod(root: string, podId: string): Pod {
  const dir = new ContainerDir(root, podId);
  const raw = dir.readRaw();
  if (!raw) throw new CliError(`pod sandbox ${podId} is not a tsvisor container under ${root}: a pod's containers need their sandbox's runtime`);
  const s: ContainerState = dir.read();
  if (s.status !== 'running' && s.status !== 'created' && s.status !== 'paused') throw new CliError(`pod sandbox ${podId} is ${s.status}`);
  if (!s.initPid || !alive(s.initPid)) throw new CliError(`pod sandbox ${podId} has no running program`);
  let hostname: string | undefined;
  try {
    hostname = loadSpec(s.bundle).hostname;
  } catch {
    hostname = undefined;
  }
  return {
    id: podId,
    control: s.control,
    network: s.network ?? 'sandbox',
    netns: join('/proc', String(s.initPid), 'ns/net'),
    linkNetns: s.netns,
    hostname,
    alive: () => alive(s.pid, s.sentryStart) && alive(s.initPid),
  };
}

/**
 * The namespaces config.json asks a pod container to share with its sandbox (paths under /proc/<pod's pid>) that
 * tsvisor gives it its own of: the container's program has a user namespace of its own (bwrap's), which owns none
 * of the pod program's, so it cannot mount a /proc for the pod's pid namespace nor an mqueue for its IPC one. The
 * network is the pod's; the hostname is the pod's, in a UTS namespace of the container's own.
 */
export function unsharedWithPod(spec: Spec): string[] {
  return (spec.linux?.namespaces ?? []).filter((n) => n.path && (n.type === 'pid' || n.type === 'ipc')).map((n) => n.type);
}
