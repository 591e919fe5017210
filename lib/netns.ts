/**
 * Running code inside a network namespace, named (`ip netns add NAME`, i.e. /var/run/netns/NAME) or given by a
 * path to a namespace file (`/proc/PID/ns/net`, or a bind-mounted one such as Docker makes).
 * A socket's namespace is fixed when it is created, and setns() moves only the calling thread, so the main
 * thread steps in, runs a synchronous function that creates fds, and steps straight back: no JS can run in
 * between, and the fds stay usable process-wide afterwards. libuv's pool threads are other threads and are
 * not affected.
 */
import { existsSync } from 'node:fs';
import { C, SysError, errno, errnoName, sys } from './libc.ts';

/** The directory where iproute2 pins named network namespaces. */
export const NETNS_DIR = '/var/run/netns';

/** A network namespace that could not be entered; the message names it. */
export class NetnsError extends Error {
  /** The namespace's name. */
  readonly netns: string;

  constructor(netns: string, message: string) {
    super(message);
    this.name = 'NetnsError';
    this.netns = netns;
  }
}

/** The pinned path of a named namespace; throws for names that are not plain file names. */
export function netnsPath(name: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === '.' || name === '..') {
    throw new NetnsError(name, `invalid network namespace name "${name}"`);
  }
  return `${NETNS_DIR}/${name}`;
}

/** Whether `ref` is a path to a namespace file rather than a name: it is absolute. */
export function isNetnsPath(ref: string): boolean {
  return ref.startsWith('/');
}

/** The file of a namespace given by name or by absolute path; throws for anything else (a relative path is a bad name). */
export function netnsFile(ref: string): string {
  return ref.startsWith('/') ? ref : netnsPath(ref);
}

/** Whether a network namespace exists, by name or by path (a path only says the file exists). */
export function netnsExists(ref: string): boolean {
  return existsSync(netnsFile(ref));
}

/**
 * Runs `fn` synchronously with the calling thread inside namespace `name` (a name, or a path to a namespace
 * file) and returns its result; the thread is back in its own namespace when this returns or throws. `fn` must
 * not be async: its continuation would run outside the namespace.
 */
export function inNetns<T>(name: string, fn: () => T): T {
  const path = netnsFile(name);
  const target = sys.open(path, C.O_RDONLY | C.O_CLOEXEC, 0);
  if (target < 0) {
    const e = errno();
    if (e === C.ENOENT) {
      throw new NetnsError(name, isNetnsPath(name) ? `network namespace file "${name}" does not exist`
        : `network namespace "${name}" does not exist (${path})`);
    }
    throw new NetnsError(name, `cannot open network namespace "${name}" (${path}): ${errnoName(e)}`);
  }
  const home = sys.open('/proc/thread-self/ns/net', C.O_RDONLY | C.O_CLOEXEC, 0);
  if (home < 0) {
    const e = errno();
    sys.close(target);
    throw new SysError('open', e, '/proc/thread-self/ns/net');
  }
  try {
    if (sys.setns(target, C.CLONE_NEWNET) < 0) {
      const e = errno();
      // setns() says EINVAL for a file that is not a network namespace (a plain file, another namespace type).
      if (errnoName(e) === 'EINVAL') throw new NetnsError(name, `"${name}" is not a network namespace`);
      throw new NetnsError(name, `cannot enter network namespace "${name}": ${errnoName(e)}`);
    }
    try {
      const result = fn();
      if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
        throw new Error('inNetns: fn must be synchronous (an async continuation would run outside the namespace)');
      }
      return result;
    } finally {
      if (sys.setns(home, C.CLONE_NEWNET) < 0) {
        // The main thread would keep creating sockets in the wrong namespace: nothing sensible can continue.
        const e = new SysError('setns', errno(), 'returning from network namespace ' + name);
        process.stderr.write(`fatal: ${e.message}\n`);
        process.abort();
      }
    }
  } finally {
    sys.close(target);
    sys.close(home);
  }
}
