import { fstatSync, readlinkSync } from 'node:fs';
import t from 'tap';
import { sys } from '../../../lib/libc.ts';
import { NotifyListener, type Notification } from '../../../sentry/platform/unotify/listener.ts';
import { type Target, Targets, tgidOf } from '../../../sentry/platform/unotify/target.ts';
import { bwrapArgs } from '../../../sentry/sandbox/bwrap.ts';
import { exitStatus, launch } from '../../../sentry/sandbox/launch.ts';
import { buildPolicy } from '../../../sentry/seccomp/policy.ts';
import { SYS } from '../../../sentry/seccomp/sysno.ts';

const PY = '/usr/bin/python3';

/** Runs a Python program under the sandbox policy; `answer` sees each notification with its Target. */
async function withProgram(
  code: string,
  answer: (n: Notification, target: Target, l: NotifyListener, targets: Targets) => void,
  o: { bwrap?: boolean } = {},
): Promise<{ status: number; stdout: string; stderr: string; targets: Targets }> {
  const sb = await launch({
    argv: [PY, '-S', '-c', code],
    filter: buildPolicy({ mode: 'sandbox' }),
    bwrap: o.bwrap ? bwrapArgs({ binds: [] }) : [],
    env: { PATH: '/usr/bin:/bin' },
    stdio: 'pipe',
  });
  const targets = new Targets(sb.pid);
  const l = new NotifyListener(sb.listenerFd);
  l.on('notification', (n) => answer(n, targets.forTid(n.tid), l, targets));
  l.start();
  let stdout = '';
  let stderr = '';
  sb.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  sb.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const r = await sb.wait();
  l.close();
  return { status: exitStatus(r), stdout, stderr, targets };
}

const sunPath = (b: Uint8Array) => Buffer.from(b.subarray(2, b.indexOf(0, 2) < 0 ? b.length : b.indexOf(0, 2))).toString();

t.test('read: connect()\'s sockaddr from target memory, across an exec (the mem file is reopened)', async (t) => {
  const paths: string[] = [];
  const tgids = new Set<number>();
  const seenTargets = new Set<Target>();
  const code = [
    'import os, socket, sys',
    'def tryconnect(p):',
    '  s = socket.socket(socket.AF_UNIX)',
    '  try: s.connect(p)',
    '  except OSError as e: print("errno", e.errno, flush=True)',
    'tryconnect("/tsa/before-exec")',
    `os.execv(${JSON.stringify(PY)}, [${JSON.stringify(PY)}, "-S", "-c", "import socket\\ns = socket.socket(socket.AF_UNIX)\\ntry: s.connect('/tsa/after-exec')\\nexcept OSError as e: print('errno', e.errno)"])`,
  ].join('\n');
  const r = await withProgram(code, (n, target, l) => {
    if (n.nr !== SYS.connect) return l.continue(n.id);
    const sa = target.read(Number(n.args[1]), Number(n.args[2]));
    if (sa && sa[0] === 1 && sunPath(sa).startsWith('/tsa/')) {
      paths.push(sunPath(sa));
      tgids.add(target.tgid);
      seenTargets.add(target);
      t.ok(l.idValid(n.id), 'the call still waits after the read');
      l.respond(n.id, 0, 111 /* ECONNREFUSED */);
    } else l.continue(n.id);
  });
  t.equal(r.status, 0, r.stderr);
  t.same(paths, ['/tsa/before-exec', '/tsa/after-exec']);
  t.equal(tgids.size, 1, 'same process before and after exec');
  t.equal(seenTargets.size, 1, 'one cached Target');
  t.match(r.stdout, /errno 111\nerrno 111/);
});

t.test('write + getFd: getsockname answered with our sockaddr; the dup is the program\'s socket', async (t) => {
  let inodeOk = false;
  const code = 'import os, socket\nos.dup2(os.open("/dev/null", os.O_RDONLY), 50)\ns = socket.socket(socket.AF_UNIX)\nprint("name", s.getsockname(), flush=True)';
  const r = await withProgram(code, (n, target, l) => {
    if (n.nr !== SYS.getsockname) return l.continue(n.id);
    const fd = Number(n.args[0]);
    const dup = target.getFd(fd);
    t.ok(dup >= 0, 'pidfd_getfd');
    inodeOk = readlinkSync(`/proc/${target.tgid}/fd/${fd}`) === `socket:[${fstatSync(dup).ino}]`;
    t.equal(target.socketInode(fd), fstatSync(dup).ino, "socketInode: the socket's inode, without a dup");
    sys.close(dup);
    t.equal(target.getFd(999), -9, 'a closed fd → -EBADF');
    t.equal(target.socketInode(999), -9, 'socketInode of a closed fd → -EBADF');
    t.equal(target.socketInode(50), null, 'socketInode of an open fd that is no socket (/dev/null) → null');
    const sa = new Uint8Array(2 + 12);
    sa[0] = 1;
    sa.set(Buffer.from('/tsa/written'), 2);
    const addrlenPtr = Number(n.args[2]);
    const cap = target.read(addrlenPtr, 4);
    t.ok(cap && new DataView(cap.buffer).getUint32(0, true) >= sa.length, 'addrlen read');
    t.ok(target.write(Number(n.args[1]), sa), 'sockaddr written');
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, sa.length, true);
    t.ok(target.write(addrlenPtr, len), 'addrlen written');
    t.equal(target.read(0x10, 8), null, 'unmapped → null (EFAULT)');
    t.equal(target.write(0x10, new Uint8Array(8)), false, 'unmapped → false');
    t.equal(target.read(2 ** 47 - 4, 8), null, 'beyond user space → null');
    l.respond(n.id, 0);
  });
  t.equal(r.status, 0, r.stderr);
  t.ok(inodeOk, 'the dup has the inode /proc shows for the program\'s fd');
  t.match(r.stdout, /name \/tsa\/written/);
});

t.test('threads: a notification from a second thread maps to the same Target (host TIDs, also inside bwrap\'s pid namespace)', async (t) => {
  for (const bwrap of [false, true]) {
    const pairs: [number, number][] = [];
    const paths: string[] = [];
    const code = [
      'import socket, threading',
      'def go():',
      '  try: socket.socket(socket.AF_UNIX).connect("/tsa/thread")',
      '  except OSError: pass',
      'th = threading.Thread(target=go); th.start(); th.join()',
    ].join('\n');
    const r = await withProgram(
      code,
      (n, target, l) => {
        if (n.nr === SYS.connect) {
          pairs.push([n.tid, target.tgid]);
          const sa = target.read(Number(n.args[1]), Number(n.args[2]));
          if (sa) paths.push(sunPath(sa));
        }
        l.respond(n.id, 0, 2);
      },
      { bwrap },
    );
    t.equal(r.status, 0, r.stderr);
    const thread = pairs.find(([tid, tgid]) => tid !== tgid);
    t.ok(thread, `bwrap ${bwrap}: a connect from thread ${thread?.[0]} of process ${thread?.[1]}`);
    t.ok(thread && thread[1] > 2, 'a host pid, not the namespace\'s');
    t.ok(paths.includes('/tsa/thread'), 'its sockaddr read through the process\'s memory');
  }
});

t.test('exit: exitSignal aborts and exited resolves; a gone TID gives an exited Target', async (t) => {
  let target: Target | undefined;
  const r = await withProgram('import socket\ntry: socket.socket(socket.AF_UNIX).connect("/tsa/x")\nexcept OSError: pass', (n, tg, l) => {
    target ??= tg;
    l.respond(n.id, 0, 2);
  });
  t.equal(r.status, 0);
  await Promise.race([target!.exited, new Promise((_, rej) => setTimeout(() => rej(new Error('exited never settled')), 60_000).unref())]);
  t.ok(target!.exitSignal.aborted);
  t.equal(target!.getFd(0), -3, '-ESRCH after exit');
  t.equal(target!.socketInode(0), -3, 'socketInode: -ESRCH after exit');
  t.equal(r.targets.size, 0, 'dropped from the cache');
  t.equal(tgidOf(2 ** 22 + 1), undefined);
  const gone = r.targets.forTid(2 ** 22 + 1);
  t.ok(gone.exitSignal.aborted, 'unknown TID → an exited Target');
  t.equal(gone.read(0x1000, 4), null);
});

t.test('a call withdrawn by SIGKILL: respond and idValid say so, the listener ends at POLLHUP', async (t) => {
  const sb = await launch({
    argv: [PY, '-S', '-c', 'import socket\nsocket.socket(socket.AF_UNIX).connect("/tsa/parked")'],
    filter: buildPolicy({ mode: 'sandbox' }),
    bwrap: [],
    env: { PATH: '/usr/bin' },
    stdio: 'ignore',
  });
  const l = new NotifyListener(sb.listenerFd);
  const parked = new Promise<Notification>((res) =>
    l.on('notification', (n) => {
      if (n.nr === SYS.connect) res(n);
      else l.continue(n.id);
    }),
  );
  const ended = new Promise<void>((res) => l.on('end', res));
  l.start();
  const n = await parked;
  t.ok(l.idValid(n.id), 'valid while parked');
  sb.kill('SIGKILL');
  const r = await sb.wait();
  t.equal(r.signal, 'SIGKILL');
  t.notOk(l.idValid(n.id), 'gone after the kill');
  t.equal(l.respond(n.id, 0), false, 'respond → false (ENOENT)');
  t.equal(l.continue(n.id), false, 'continue → false');
  t.equal(l.addFd(n.id, 0, { send: true }), -2, 'addFd → -ENOENT');
  await ended;
  t.pass('end emitted once the target was reaped');
  l.close();
  l.close();
});
