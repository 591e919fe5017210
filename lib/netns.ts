/**
 * Running code inside a network namespace, named (`ip netns add NAME`, i.e. /var/run/netns/NAME) or given by a
 * path to a namespace file (`/proc/PID/ns/net`, or a bind-mounted one such as Docker makes).
 * A socket's namespace is fixed when it is created, and setns() moves only the calling thread, so the main
 * thread steps in, runs a synchronous function that creates fds, and steps straight back: no JS can run in
 * between, and the fds stay usable process-wide afterwards. libuv's pool threads are other threads and are
 * not affected.
 */
import { existsSync, fstatSync, readFileSync, rmSync } from 'node:fs';
import { run } from './exec.ts';
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
    throw new NetnsError(name, `invalid network namespace name '${name}'`);
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
 * An open network namespace: an fd of its namespace file, held so that everything done to "this namespace" later
 * (a restore on exit above all) reaches the very namespace it was opened as, even if the name was deleted and
 * given to a new namespace meanwhile. Its identity is the file's inode (what `ip netns identify` and
 * /proc/PID/ns/net show) and the kernel's namespace cookie, which unlike inode numbers is never reused.
 */
export class NetnsHandle {
  /** The name or path it was opened by, for messages. */
  readonly label: string;
  /** The open namespace file. */
  readonly fd: number;
  /** The namespace's inode number (nsfs). */
  readonly inode: number;
  /** SO_NETNS_COOKIE of a socket made inside: unique for the life of the machine (Linux ≥ 5.14), or '' before. */
  readonly cookie: string;
  private closed = false;

  private constructor(label: string, fd: number, inode: number, cookie: string) {
    this.label = label;
    this.fd = fd;
    this.inode = inode;
    this.cookie = cookie;
  }

  /** Opens the namespace named `ref` (or the namespace file at absolute path `ref`); throws NetnsError naming it. */
  static open(ref: string): NetnsHandle {
    const path = netnsFile(ref);
    const fd = sys.open(path, C.O_RDONLY | C.O_CLOEXEC, 0);
    if (fd < 0) {
      const e = errno();
      if (e === C.ENOENT) {
        throw new NetnsError(ref, isNetnsPath(ref) ? `network namespace file '${ref}' does not exist`
          : `network namespace '${ref}' does not exist (${path})`);
      }
      throw new NetnsError(ref, `cannot open network namespace '${ref}' (${path}): ${errnoName(e)}`);
    }
    try {
      return new NetnsHandle(ref, fd, fstatSync(fd).ino, enterFd(fd, ref, readNetnsCookie));
    } catch (e) {
      sys.close(fd);
      throw e;
    }
  }

  /**
   * Runs `fn` synchronously with the calling thread inside this namespace and returns its result; the thread is
   * back in its own namespace when this returns or throws. Programs spawned synchronously by `fn` start inside.
   */
  enter<T>(fn: () => T): T {
    if (this.closed) throw new Error(`network namespace handle of '${this.label}' used after close`);
    return enterFd(this.fd, this.label, fn);
  }

  /** Closes the fd; the namespace may go away once nothing else holds it. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    sys.close(this.fd);
  }
}

const SO_NETNS_COOKIE = 71;

/** The calling thread's network namespace cookie, as decimal text ('' where the kernel has none). */
function readNetnsCookie(): string {
  const fd = sys.socket(C.AF_UNIX, C.SOCK_DGRAM | C.SOCK_CLOEXEC, 0);
  if (fd < 0) return '';
  try {
    const v = new Uint8Array(8);
    const len = new Uint32Array([8]);
    if (sys.getsockopt(fd, C.SOL_SOCKET, SO_NETNS_COOKIE, v, len) < 0) return '';
    return new DataView(v.buffer).getBigUint64(0, true).toString();
  } finally {
    sys.close(fd);
  }
}

/**
 * Runs `fn` synchronously with the calling thread inside namespace `ns` (a name, a path to a namespace file, or
 * an open handle) and returns its result; the thread is back in its own namespace when this returns or throws.
 * `fn` must not be async: its continuation would run outside the namespace.
 */
export function inNetns<T>(ns: string | NetnsHandle, fn: () => T): T {
  if (ns instanceof NetnsHandle) return ns.enter(fn);
  const h = NetnsHandle.open(ns);
  try {
    return h.enter(fn);
  } finally {
    h.close();
  }
}

function enterFd<T>(target: number, name: string, fn: () => T): T {
  const home = sys.open('/proc/thread-self/ns/net', C.O_RDONLY | C.O_CLOEXEC, 0);
  if (home < 0) throw new SysError('open', errno(), '/proc/thread-self/ns/net');
  try {
    if (sys.setns(target, C.CLONE_NEWNET) < 0) {
      const e = errno();
      // setns() says EINVAL for a file that is not a network namespace (a plain file, another namespace type).
      if (errnoName(e) === 'EINVAL') throw new NetnsError(name, `'${name}' is not a network namespace`);
      throw new NetnsError(name, `cannot enter network namespace '${name}': ${errnoName(e)}`);
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
    sys.close(home);
  }
}

/** Whether NETNS_DIR is a mount point already (iproute2 makes it one, shared, at its first `ip netns add`). */
function netnsDirMounted(): boolean {
  const dirs = new Set([NETNS_DIR, NETNS_DIR.replace(/^\/var\/run\//, '/run/')]);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const point = line.split(' ')[4];
    if (point !== undefined && dirs.has(point)) return true;
  }
  return false;
}

/**
 * `ip netns add NAME` without a process: a new network namespace, made by unshare() on the calling thread (which
 * then steps back into its own) and pinned by a bind mount at NETNS_DIR/NAME. Where NETNS_DIR is not yet the
 * mount point iproute2 makes it (shared, so that later mounts reach other mount namespaces), `ip` does it once.
 * Throws NetnsError naming the namespace.
 */
export function addNetns(name: string): void {
  const path = netnsPath(name);
  if (!netnsDirMounted()) {
    run(['ip', 'netns', 'add', name]);
    return;
  }
  const pin = sys.open(path, C.O_RDONLY | C.O_CREAT | C.O_EXCL | C.O_CLOEXEC, 0);
  if (pin < 0) throw new NetnsError(name, `cannot make ${path}: ${errnoName(errno())}`);
  sys.close(pin);
  const home = sys.open('/proc/thread-self/ns/net', C.O_RDONLY | C.O_CLOEXEC, 0);
  if (home < 0) {
    const e = errno();
    rmSync(path, { force: true });
    throw new NetnsError(name, `cannot open /proc/thread-self/ns/net: ${errnoName(e)}`);
  }
  try {
    if (sys.unshare(C.CLONE_NEWNET) < 0) {
      const e = errno();
      rmSync(path, { force: true });
      throw new NetnsError(name, `cannot make network namespace '${name}': ${errnoName(e)}`);
    }
    const r = sys.mount('/proc/thread-self/ns/net', path, 'none', C.MS_BIND, null);
    const e = errno();
    if (sys.setns(home, C.CLONE_NEWNET) < 0) {
      process.stderr.write(`fatal: ${new SysError('setns', errno(), 'returning from the new network namespace ' + name).message}\n`);
      process.abort();
    }
    if (r < 0) {
      rmSync(path, { force: true });
      throw new NetnsError(name, `cannot pin network namespace '${name}' at ${path}: ${errnoName(e)}`);
    }
  } finally {
    sys.close(home);
  }
}

const SIOCGIFFLAGS = 0x8913;
const IFF_LOOPBACK = 0x8;

/** The interfaces of the calling thread's network namespace (/proc/thread-self/net/dev), loopback ones marked. */
export function interfacesHere(): { name: string; loopback: boolean }[] {
  const names = readFileSync('/proc/thread-self/net/dev', 'utf8').split('\n').slice(2)
    .map((l) => l.slice(0, l.indexOf(':')).trim()).filter(Boolean);
  const fd = sys.socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SysError('socket', errno(), 'AF_INET, to read interface flags');
  try {
    return names.map((name) => {
      // struct ifreq: the name (16 bytes), then ifr_flags (a short).
      const req = new Uint8Array(40);
      req.set(Buffer.from(name).subarray(0, 15));
      if (sys.ioctl(fd, SIOCGIFFLAGS, req) < 0) return { name, loopback: name === 'lo' };
      return { name, loopback: (new DataView(req.buffer).getUint16(16, true) & IFF_LOOPBACK) !== 0 };
    });
  } finally {
    sys.close(fd);
  }
}

/**
 * `ip netns del NAME` without a process: unpins the namespace (lazy unmount, so that a holder elsewhere does not
 * keep the file busy) and removes its file. The namespace goes once nothing else holds it. Nothing there: false.
 */
export function delNetns(name: string): boolean {
  const path = netnsPath(name);
  if (!existsSync(path)) return false;
  sys.umount2(path, MNT_DETACH);
  rmSync(path, { force: true });
  return true;
}

const MNT_DETACH = 2;

const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 0x1;

/** `ip link set DEV up` in the calling thread's network namespace, by ioctl. Throws SysError. */
export function linkUpHere(dev: string): void {
  const fd = sys.socket(C.AF_INET, C.SOCK_DGRAM | C.SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SysError('socket', errno(), 'AF_INET, to set interface flags');
  try {
    const req = new Uint8Array(40);
    req.set(Buffer.from(dev).subarray(0, 15));
    if (sys.ioctl(fd, SIOCGIFFLAGS, req) < 0) throw new SysError('ioctl', errno(), `SIOCGIFFLAGS ${dev}`);
    const v = new DataView(req.buffer);
    v.setUint16(16, v.getUint16(16, true) | IFF_UP, true);
    if (sys.ioctl(fd, SIOCSIFFLAGS, req) < 0) throw new SysError('ioctl', errno(), `SIOCSIFFLAGS ${dev}`);
  } finally {
    sys.close(fd);
  }
}
