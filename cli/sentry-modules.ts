/**
 * What a run's Sentry needs beyond its launch, shared by `tsvisor run` and the OCI runtime's Sentry: the modules
 * loaded by network mode (the netstack and the syscall layer are most of the CLI's code, loaded only when used)
 * and the Sentry put on a launched program's listener. Apart from run.ts so that the OCI Sentry loads neither
 * `run`'s argument parsing nor its root file system (the Gofer and FUSE).
 */
import { sys } from '../lib/libc.ts';
import { netnsFile } from '../lib/netns.ts';
import { NotifyListener } from '../sentry/platform/unotify/listener.ts';
import { Targets } from '../sentry/platform/unotify/target.ts';
import type { Sentry } from '../sentry/syscalls/dispatch.ts';
import type { NetworkMode } from './run.ts';
import type { RunNetwork } from './run-network.ts';

/** The modules a run loads beyond parsing, by what it does. */
export interface RunModules {
  /** Namespaces, netstack and --publish (sandbox and none modes). */
  network?: typeof import('./run-network.ts');
  /** The Sentry (every mode but host without --strace). */
  sentry?: typeof import('../sentry/syscalls/dispatch.ts');
  /** A netstack for host mode's --strace Sentry, which serves nothing but wants one. */
  netstack?: typeof import('../netstack/netstack.ts');
  clock?: typeof import('../lib/clock.ts');
}

/** Loads what this run needs (in parallel: tsx compiles each module on first load). */
export async function loadModules(o: { network: NetworkMode; strace: boolean }): Promise<RunModules> {
  const host = o.network === 'host';
  const [network, sentry, netstack, clock] = await Promise.all([
    host ? undefined : import('./run-network.ts'),
    host && !o.strace ? undefined : import('../sentry/syscalls/dispatch.ts'),
    host && o.strace ? import('../netstack/netstack.ts') : undefined,
    host && o.strace ? import('../lib/clock.ts') : undefined,
  ]);
  return { network, sentry, netstack, clock };
}

/**
 * The Sentry on a launched program's listener (none in host mode without --strace, whose policy traps nothing:
 * the listener is closed). Also the OCI runtime's, for its init and for every `exec`'d program (same netstack).
 */
export function serveListener(
  sandbox: { pid: number; listenerFd: number },
  o: { network: NetworkMode; strace: boolean },
  net: RunNetwork,
  modules: RunModules,
  log: (l: string) => void,
): Sentry | undefined {
  let stack = net.netstack;
  if (sandbox.listenerFd < 0) return undefined;
  if (o.network === 'host' && !o.strace) {
    // Host mode's policy traps nothing (it only kills foreign arches): no Sentry, no listener to keep.
    sys.close(sandbox.listenerFd);
    return undefined;
  }
  // Host mode with --strace CONTINUEs every call; the Sentry wants a stack all the same (it serves nothing).
  stack ??= new modules.netstack!.Netstack({ clock: new modules.clock!.NodeClock() });
  const sentry = new modules.sentry!.Sentry({
    listener: new NotifyListener(sandbox.listenerFd),
    targets: new Targets(sandbox.pid),
    stack,
    appNetns: net.appNetns === undefined ? undefined : netnsFile(net.appNetns),
    mode: o.network,
    strace: o.strace ? (line) => process.stderr.write(line + '\n') : undefined,
    log,
  });
  sentry.start();
  return sentry;
}

