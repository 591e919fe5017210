/**
 * The processes behind notifications: a notification names a thread (TID); its process (TGID) gives the pidfd
 * for pidfd_getfd, the `/proc/<tgid>/mem` file for reading and writing arguments, and the exit watch that cancels
 * parked calls. Memory writes are safe because WAIT_KILLABLE_RECV keeps the calling thread in the kernel until it
 * is answered or killed; another thread of the target can still race them, which only changes what the program
 * tells our own stack.
 */
import { setMaxListeners } from 'node:events';
import { closeSync, existsSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { type FdWatch, sys, watchFd } from '../../../lib/libc.ts';
import { existsAt, pidfdGetfd, pidfdOpen, socketInodeAt } from '../../../lib/pidfd.ts';
import { inode, pollNow } from '../../../lib/unix.ts';

const ENOENT = 2;
const ESRCH = 3;
const EBADF = 9;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;
const POLLIN = 0x1;

/** How long a non-leader TID seen as a task of its process is taken for one without looking again. */
const TID_RECHECK_MS = 100;
/** TID → TGID entries kept before the map starts over. */
const MAX_CACHED_TIDS = 4096;

/** The TGID of thread `tid` from `/proc/<tid>/status`, or undefined when the thread is gone. */
export function tgidOf(tid: number): number | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${tid}/status`, 'latin1');
  } catch {
    return undefined;
  }
  const m = /^Tgid:\s*(\d+)/m.exec(status);
  return m ? Number(m[1]) : undefined;
}

/** The sandbox's processes, cached by TGID, with the TID → TGID map cached until the process exits. */
export class Targets {
  private readonly byTgid = new Map<number, Target>();
  private readonly tgidByTid = new Map<number, number>();
  /** When each cached non-leader TID was last seen to be a task of its process (ms, the monotonic clock). */
  private readonly tidChecked = new Map<number, number>();

  /** `rootPid` is the process the sandbox was launched as (the helper's pid). */
  constructor(readonly rootPid: number) {}

  /**
   * The process of thread `tid`, opened on first sight. A thread already gone (killed while its call waited)
   * gives a Target that has exited: getFd answers -ESRCH, read null, write false.
   */
  forTid(tid: number): Target {
    let tgid = this.tgidByTid.get(tid);
    // A cached non-leader TID may have exited and been reused by another process (pid_max can be 32768): it is
    // still ours only while it is a task of that process. A leader's TID is its live process's own pid. Checked
    // again at most every TID_RECHECK_MS: a reuse within that needs the kernel to hand out every other pid first.
    if (tgid !== undefined && tgid !== tid) {
      const now = performance.now();
      if (now - (this.tidChecked.get(tid) ?? -Infinity) >= TID_RECHECK_MS) {
        if (this.byTgid.get(tgid)?.hasTask(tid) ?? existsSync(`/proc/${tgid}/task/${tid}`)) this.tidChecked.set(tid, now);
        else {
          tgid = undefined;
          this.tidChecked.delete(tid);
        }
      }
    }
    if (tgid === undefined) {
      tgid = tgidOf(tid);
      if (tgid === undefined) return Target.gone(tid);
      // Threads that come and go (a thread per connection) must not grow the map without bound.
      if (this.tgidByTid.size >= MAX_CACHED_TIDS) {
        this.tgidByTid.clear();
        this.tidChecked.clear();
      }
      this.tgidByTid.set(tid, tgid);
    }
    let t = this.byTgid.get(tgid);
    if (!t || t.exitSignal.aborted) {
      t = new Target(tgid);
      this.byTgid.set(tgid, t);
      const opened = t;
      void opened.exited.then(() => {
        if (this.byTgid.get(tgid!) === opened) this.byTgid.delete(tgid!);
        // A TID may be reused by another process once its own is gone.
        for (const [k, v] of this.tgidByTid) if (v === tgid) (this.tgidByTid.delete(k), this.tidChecked.delete(k));
      });
    }
    return t;
  }

  /** Processes currently known. */
  get size(): number {
    return this.byTgid.size;
  }

  /** Closes every pidfd and memory file. */
  close(): void {
    for (const t of this.byTgid.values()) t.close();
    this.byTgid.clear();
    this.tgidByTid.clear();
    this.tidChecked.clear();
  }
}

/** One process of the sandbox. */
export class Target {
  /** A pidfd for the process (ours; closed when it exits or on close()). */
  readonly pidfd: number;
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;
  /** Aborted once the process has exited: parked calls of this process end on it. */
  readonly exitSignal: AbortSignal;
  private readonly controller = new AbortController();
  private watch: FdWatch | undefined;
  private mem = -1;
  /** `/proc/<tgid>` opened once: names under it resolve in this process even if its pid is reused later. */
  private procDir = -1;
  private resolveExited!: () => void;

  /** A Target for a process that is already gone. */
  static gone(tgid: number): Target {
    return new Target(tgid, true);
  }

  constructor(
    readonly tgid: number,
    gone = false,
  ) {
    const fd = gone ? -ESRCH : pidfdOpen(tgid);
    this.exitSignal = this.controller.signal;
    // Every call the process has parked listens here (16 threads in accept are 16): no leak, so no warning.
    setMaxListeners(0, this.exitSignal);
    this.exited = new Promise((r) => (this.resolveExited = r));
    if (fd < 0) {
      this.pidfd = -1;
      if (fd === -ESRCH) this.markExited();
      else throw new Error(`pidfd_open(${tgid}) failed: errno ${-fd}`);
      return;
    }
    this.pidfd = fd;
    // `/proc/<tgid>` names this process only while it has not exited: opened, then checked against the pidfd
    // (readable once the process has exited), it cannot be a later holder of the pid.
    const dir = sys.open(`/proc/${tgid}`, O_DIRECTORY | O_CLOEXEC, 0);
    if (dir >= 0) {
      if (pollNow(fd, POLLIN) === 0) this.procDir = dir;
      else sys.close(dir);
    }
    // A pidfd becomes readable when the process exits (its zombie state, before it is reaped).
    this.watch = watchFd(fd, (readable, _w, status) => {
      if (readable || status < 0) this.markExited();
    });
    this.watch.unref();
  }

  /**
   * Whether thread `tid` is one of this process's (its `task/<tid>` under the process's own /proc directory), or
   * undefined when that directory is not open.
   */
  hasTask(tid: number): boolean | undefined {
    if (this.procDir < 0) return undefined;
    return existsAt(this.procDir, `task/${tid}`);
  }

  /** Our duplicate of the target's fd `fd` (the caller closes it), or `-errno` (-EBADF: not open; -ESRCH: exited). */
  getFd(fd: number): number {
    if (this.exitSignal.aborted) return -ESRCH;
    return pidfdGetfd(this.pidfd, fd);
  }

  /**
   * The inode of the socket at the target's fd `fd`, without taking a duplicate: null when that fd is open but
   * not a socket, `-errno` otherwise (-EBADF: not open; -ESRCH: exited). A duplicate, when needed, comes from
   * `getFd`, and may then be another file should the program have replaced the fd meanwhile.
   */
  socketInode(fd: number): number | bigint | null {
    if (this.exitSignal.aborted) return -ESRCH;
    if (this.procDir >= 0) {
      const ino = socketInodeAt(this.procDir, fd);
      if (ino === null || typeof ino === 'bigint' || ino >= 0) return ino;
      // A fd that is not open has no link.
      if (ino === -ENOENT) return -EBADF;
    }
    // The directory could not be opened (out of descriptors, say) or answered otherwise: through a duplicate.
    const dup = this.getFd(fd);
    if (dup < 0) return dup;
    const ino = inode(dup);
    sys.close(dup);
    return typeof ino === 'number' && ino < 0 ? -ESRCH : ino;
  }

  /** `len` bytes at `addr` of the target's memory, or null when any of them is unmapped (EFAULT). */
  read(addr: number, len: number): Uint8Array | null {
    if (len === 0) return new Uint8Array(0);
    if (!validRange(addr, len)) return null;
    const out = new Uint8Array(len);
    // A memory file opened before an exec reads nothing afterwards: reopen once on an empty read.
    for (let attempt = 0; attempt < 2; attempt++) {
      const fd = this.memFd(attempt > 0);
      if (fd < 0) return null;
      let n: number;
      try {
        n = readSync(fd, out, 0, len, addr);
      } catch {
        return null; // EIO: unmapped
      }
      if (n === len) return out;
      if (n > 0) return null; // ran into an unmapped page
    }
    return null;
  }

  /** Writes `data` at `addr` of the target's memory; false when any byte is unmapped (EFAULT). */
  write(addr: number, data: Uint8Array): boolean {
    if (data.length === 0) return true;
    if (!validRange(addr, data.length)) return false;
    for (let attempt = 0; attempt < 2; attempt++) {
      const fd = this.memFd(attempt > 0);
      if (fd < 0) return false;
      let n: number;
      try {
        n = writeSync(fd, data, 0, data.length, addr);
      } catch {
        return false;
      }
      if (n === data.length) return true;
      if (n > 0) return false;
    }
    return false;
  }

  /** Closes the pidfd and the memory file; `exited` settles. */
  close(): void {
    this.markExited();
  }

  private memFd(reopen: boolean): number {
    if (reopen && this.mem >= 0) {
      closeSync(this.mem);
      this.mem = -1;
    }
    if (this.mem < 0 && !this.exitSignal.aborted) {
      try {
        this.mem = openSync(`/proc/${this.tgid}/mem`, 'r+');
      } catch {
        return -1;
      }
    }
    return this.mem;
  }

  private markExited(): void {
    if (this.exitSignal.aborted) return;
    this.watch?.close();
    this.watch = undefined;
    if (this.pidfd >= 0) sys.close(this.pidfd);
    if (this.procDir >= 0) sys.close(this.procDir);
    this.procDir = -1;
    if (this.mem >= 0) closeSync(this.mem);
    this.mem = -1;
    this.controller.abort();
    this.resolveExited();
  }
}

/** x86-64 user addresses lie below 2^47; anything else (or a wrapping range) is EFAULT without asking the kernel. */
function validRange(addr: number, len: number): boolean {
  return Number.isSafeInteger(addr) && addr >= 0 && len > 0 && addr + len <= 2 ** 47;
}
