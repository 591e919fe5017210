/**
 * The runtime's state under --root: one folder per container holding `state.json` (written atomically: a
 * temporary file renamed over it) and a lock file that every command holds with flock while it reads and
 * changes the container, so that two calls at once see one another's result. A container whose Sentry is gone
 * (crashed, killed, or a `create` that died half-way) is stopped, whatever its file says.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from '../errors.ts';


/** Where control sockets live: a short path, since --root plus a 64-character id may exceed sun_path's 107 bytes. */
const SOCKET_DIR = '/run/tsvisor/oci-sock';

/** A container's status, as `state` reports it. */
export type Status = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

/** state.json: runc's state fields, then tsvisor's own. */
export interface ContainerState {
  ociVersion: string;
  id: string;
  status: Status;
  /** The process the engine's shim waits for: the Sentry, or on a warm start its keeper (cli/oci/warm.ts). */
  pid: number;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations?: Record<string, string>;
  /** The start time of `pid` (/proc/PID/stat field 22), so that a reused pid is not taken for it. */
  sentryStart?: string;
  /** On a warm start, the Sentry itself (`pid` is its keeper), and its start time. */
  sentryPid?: number;
  sentryPidStart?: string;
  /** The program's host pid (its pid namespace's first process). */
  initPid?: number;
  /** The Sentry's control socket. */
  control: string;
  /** sandbox, host or none: what the program's network became. */
  network?: 'sandbox' | 'host' | 'none';
  /** The id that names the container's namespaces (tsv-<runId>, tsv-<runId>-app). */
  runId?: string;
  /**
   * The network namespace file the container's pid lives in and whose interface its Sentry (or its pod's) took
   * over: a container given this namespace shares that Sentry's stack (cli/oci/pod.ts).
   */
  netns?: string;
  /** A pod's container: the id of the pod sandbox whose Sentry serves its program (cli/oci/pod.ts). */
  pod?: string;
  /** The program's exit status once stopped (code, or 128+signal). */
  exitStatus?: number;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/;

/** Checks a container id: runc's characters, no path separators. */
export function checkId(id: string | undefined): string {
  if (id === undefined) throw new CliError('no container id given');
  if (!ID.test(id)) throw new CliError(`invalid container id '${id}'`);
  return id;
}

/** The start time of process `pid` (field 22 of /proc/PID/stat), or undefined when there is none. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command (field 2) may hold spaces and parentheses: count from its closing one.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether process `pid` is alive (not a zombie) and, when `start` is given, the same process as then. */
export function alive(pid: number | undefined, start?: string): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return false;
    return start === undefined || rest[19] === start;
  } catch {
    return false;
  }
}

/** One container's folder. */
export class ContainerDir {
  readonly dir: string;
  private lockFd = -1;

  constructor(
    readonly root: string,
    readonly id: string,
  ) {
    this.dir = join(root, checkId(id));
  }

  /** Whether the container exists (its folder has a state file). */
  exists(): boolean {
    return existsSync(join(this.dir, 'state.json'));
  }

  /** The control socket's path for this container. */
  controlPath(): string {
    const h = createHash('sha256').update(this.dir).digest('hex').slice(0, 24);
    mkdirSync(SOCKET_DIR, { recursive: true, mode: 0o700 });
    return join(SOCKET_DIR, `${h}.sock`);
  }

  /**
   * Takes the container's lock (blocking), making the folder when `create` asks. libc (koffi) is loaded here, not
   * with this module: `state` takes no lock, nor does `delete --force` of a container that is gone.
   */
  async lock(create = false): Promise<void> {
    if (create) mkdirSync(this.dir, { recursive: true, mode: 0o711 });
    else if (!existsSync(this.dir)) return;
    const { C, errno, errnoName, sys } = await import('../../lib/libc.ts');
    const fd = sys.open(join(this.dir, 'lock'), C.O_RDONLY | C.O_CLOEXEC | 0o100 /* O_CREAT */, 0o600);
    if (fd < 0) throw new CliError(`cannot open the lock of container ${this.id}: ${errnoName(errno())}`);
    for (;;) {
      if (sys.flock(fd, 2 /* LOCK_EX */) === 0) break;
      if (errnoName(errno()) !== 'EINTR') {
        sys.close(fd);
        throw new CliError(`cannot lock container ${this.id}: ${errnoName(errno())}`);
      }
    }
    this.lockFd = fd;
  }

  /** Lets the lock go (also implied by the process's exit). */
  unlock(): void {
    // Closing the descriptor drops the flock: Node's closeSync does it without libc.
    if (this.lockFd >= 0) closeSync(this.lockFd);
    this.lockFd = -1;
  }

  /** The state file as written, or undefined when there is none. */
  readRaw(): ContainerState | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dir, 'state.json'), 'utf8')) as ContainerState;
    } catch {
      return undefined;
    }
  }

  /** The state with its status as it is now: stopped when the Sentry is gone. Throws CliError for no container. */
  read(): ContainerState {
    const s = this.readRaw();
    if (!s) throw new CliError(`container ${this.id} does not exist`);
    return live(s);
  }

  /** Writes the state atomically. */
  write(s: ContainerState): void {
    const tmp = join(this.dir, `.state.${process.pid}.tmp`);
    writeFileSync(tmp, JSON.stringify(s));
    renameSync(tmp, join(this.dir, 'state.json'));
  }

  /** Removes the folder and the control socket. */
  remove(): void {
    const s = this.readRaw();
    if (s?.control) rmSync(s.control, { force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `s` with the status it has now: a Sentry that is gone means stopped. */
export function live(s: ContainerState): ContainerState {
  if (s.status !== 'stopped' && !alive(s.pid, s.sentryStart)) return { ...s, status: 'stopped' };
  return s;
}

/** Every container under `root`, by id. */
export function listContainers(root: string): ContainerDir[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  return names.filter((n) => ID.test(n)).map((n) => new ContainerDir(root, n)).filter((c) => c.exists());
}

/** runc's state JSON (what `state` prints and hooks read on stdin): its fields only. */
export function publicState(s: ContainerState): Record<string, unknown> {
  return {
    ociVersion: s.ociVersion,
    id: s.id,
    pid: s.status === 'stopped' ? 0 : s.pid,
    status: s.status,
    bundle: s.bundle,
    rootfs: s.rootfs,
    created: s.created,
    owner: s.owner,
    ...(s.annotations ? { annotations: s.annotations } : {}),
  };
}
