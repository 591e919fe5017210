/**
 * The janitor: a shell spawned at the start of a run, in a session of its own, blocked reading a pipe whose only
 * writer is the Sentry. If the Sentry ends without saying `done` (a crash, `kill -9`), the read sees EOF and the
 * shell deletes the run's namespaces and veth, so a dead Sentry leaves nothing behind. A session of its own keeps
 * it out of the terminal's process group (Ctrl-C) and out of a `kill -9 -PGID` of the Sentry's group.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Writable } from 'node:stream';

/** The part of a POSIX shell word that needs no quoting. */
const PLAIN = /^[A-Za-z0-9_./:=@%+-]+$/;

function shellQuote(word: string): string {
  return PLAIN.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The shell program: wait on stdin; unless the Sentry said `done`, run every command (errors ignored). */
export function janitorScript(commands: readonly (readonly string[])[]): string {
  const body = commands.map((c) => c.map(shellQuote).join(' ') + ' >/dev/null 2>&1').join('\n');
  return `trap '' INT HUP QUIT\nread -r word\n[ "$word" = done ] && exit 0\n${body}\nexit 0\n`;
}

/** A running janitor. */
export class Janitor {
  private readonly child: ChildProcess;
  private readonly pipe: Writable;
  private finished = false;

  private constructor(child: ChildProcess) {
    this.child = child;
    this.pipe = child.stdin!;
    // The pipe and the child must not keep the Sentry's event loop alive: the janitor outlives it by design.
    this.pipe.on('error', () => {});
    (this.pipe as unknown as { unref?: () => void }).unref?.();
    child.unref();
  }

  /** Spawns the janitor for `commands` (each an argv); it runs them when the Sentry dies without calling done(). */
  static start(commands: readonly (readonly string[])[]): Janitor {
    const child = spawn('/bin/sh', ['-c', janitorScript(commands)], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    return new Janitor(child);
  }

  /** The janitor's pid (for tests). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The Sentry cleaned up itself: the janitor exits without doing anything. Idempotent. */
  done(): void {
    if (this.finished) return;
    this.finished = true;
    this.pipe.end('done\n');
  }

  /** The Sentry will not clean up: the janitor runs its commands now (the same as the Sentry dying). Idempotent. */
  abandon(): void {
    if (this.finished) return;
    this.finished = true;
    this.pipe.end();
  }
}
