// `tsvisor run --network=sandbox` and signals (issue 9, test 8), with real programs parked in a blocking accept:
// SIGUSR1 (forwarded by tsvisor) runs the handler and accept fails with EINTR, or restarts with SA_RESTART and
// then accepts the peer's connection; SIGUSR1 during a blocking connect gives EINTR while the handshake goes on;
// SIGKILL of a process parked in accept, thirty times over, leaves no endpoint
// (the port binds again, connecting is refused), no socketpair and no parked call (the Sentry's fds do not grow);
// Ctrl-C reaches a program parked in accept and its own exit status is passed through.
import { readdirSync } from 'node:fs';
import t from 'tap';
import { HANG_MS } from '../lib/wait.ts';
import { collect, waitFor } from './run-helpers.ts';
import { PY_ACCEPTOR, UNTAPPED, bench, listening, start } from './sandbox-helpers.ts';

const b = bench(t, 'sig');

const ACCEPT_C = `
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static void on_usr1(int s) { (void)s; handled++; }

int main(int argc, char **argv) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = argc > 1 && !strcmp(argv[1], "restart") ? SA_RESTART : 0;
  sigaction(SIGUSR1, &sa, 0);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9400) };
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 8) < 0) { perror("listen"); return 1; }
  printf("accepting\\n");
  fflush(stdout);
  int c = accept(l, 0, 0);
  printf("accept %s handled %d\\n", c >= 0 ? "ok" : strerror(errno), (int)handled);
  return c >= 0 ? 0 : 3;
}
`;
const accept = b.cc('accept', ACCEPT_C);

/** Waits for `--strace` to show a parked accept (its `<unfinished ...>` line). */
const parked = (err: () => string) => waitFor(() => /\] accept4?\(.*<unfinished \.\.\.>/.test(err()), HANG_MS);

t.test('SIGUSR1 while parked in accept, no SA_RESTART → the handler runs, accept fails with EINTR', async (t) => {
  const run = await start(b, ['--strace', ...b.bind, '--', accept]);
  t.ok(await parked(run.stderr), 'accept is parked');
  run.child.kill('SIGUSR1');
  const r = await run.done;
  t.equal(r.code, 3, r.stderr);
  t.equal(r.stdout, 'accepting\naccept Interrupted system call handled 1\n');
  t.match(r.stderr, /<\.\.\. accept resumed> = \? ERESTARTSYS/, 'strace shows the call ended for the signal');
  t.end();
});

t.test('SIGUSR1 while parked in accept with SA_RESTART → the handler runs, accept restarts and takes the peer\'s connection', async (t) => {
  const run = await start(b, ['--strace', ...b.bind, '--', accept, 'restart']);
  t.ok(await parked(run.stderr), 'accept is parked');
  run.child.kill('SIGUSR1');
  // The restarted accept parks again: a second <unfinished> line.
  t.ok(await waitFor(() => (run.stderr().match(/<unfinished \.\.\.>/g) ?? []).length >= 2, HANG_MS), 'accept parked again after the handler');
  const c = await collect(b.peer(['python3', '-c', `import socket; socket.create_connection(('${run.sandbox4}', 9400), timeout=30).close()`]), HANG_MS);
  t.equal(c.code, 0, c.stderr);
  const r = await run.done;
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'accepting\naccept ok handled 1\n');
  t.end();
});

/** The number of open fds of process `pid`. */
function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

t.test('SIGKILL while parked in accept, 30 times → the port binds again, connect is refused, the Sentry\'s fds do not grow', async (t) => {
  const ROUNDS = 30;
  const run = await start(b, [...b.bind, '--', 'python3', b.file('kill.py', `
import os, signal, socket, sys, time, errno
for i in range(${ROUNDS}):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        l = socket.create_server(('0.0.0.0', 9500)); os.write(w, b'x')
        l.accept()
        os._exit(1)
    os.read(r, 1); os.close(r); os.close(w)
    # Parked: the child sits in accept4 (288) or accept (43), trapped.
    while open('/proc/%d/syscall' % pid).read().split()[0] not in ('288', '43'): time.sleep(0.005)
    time.sleep(0.02)
    os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
    # The child's listener is gone from the netstack once the Sentry has seen its pair closed: bind succeeds.
    for attempt in range(2000):
        try:
            l = socket.create_server(('0.0.0.0', 9500), reuse_port=False); break
        except OSError as e:
            if e.errno != errno.EADDRINUSE: raise
            time.sleep(0.005)
    print('round', i, 'bind attempts', attempt + 1, flush=True)
    # The test counts the Sentry's fds now, with this listener open, and then writes ack-<i> beside this script.
    while not os.path.exists(os.path.join(os.path.dirname(sys.argv[0]), 'ack-%d' % i)): time.sleep(0.005)
    l.close()
c = socket.socket()
print('connect', errno.errorcode.get(c.connect_ex(('127.0.0.1', 9500)), 0), flush=True)
`)]);
  const counts: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const ok = await waitFor(() => run.stdout().includes(`round ${i} `), HANG_MS);
    if (!ok) break;
    counts.push(fdCount(run.child.pid!));
    b.file(`ack-${i}`, '');
  }
  const r = await run.done;
  t.equal(r.code, 0, r.stderr);
  t.equal(counts.length, ROUNDS, 'every round ended with the port free again');
  t.match(r.stdout, /^connect ECONNREFUSED$/m, 'nobody listens after the last kill');
  // The Sentry keeps 4 to 8 spare stream pairs made ahead (its pool): up to 8 fds come and go with it. One fd
  // left per kill would be 30.
  const grown = counts[counts.length - 1]! - counts[0]!;
  t.ok(grown <= 8, `the Sentry's fds: ${counts[0]} after round 1, ${counts[counts.length - 1]} after round ${ROUNDS} (no socketpair or dup left per kill)`);
  t.end();
});

t.test('Ctrl-C reaches a program parked in accept; its own exit status passes through', async (t) => {
  const run = await start(b, ['--strace', '--', 'python3', '-c', `
import socket, sys
l = socket.create_server(('0.0.0.0', 9600))
try:
    l.accept()
except KeyboardInterrupt:
    print('interrupted', flush=True); sys.exit(42)
`]);
  t.ok(await parked(run.stderr), 'accept is parked');
  run.child.kill('SIGINT');
  const r = await run.done;
  t.equal(r.code, 42, r.stderr);
  t.equal(r.stdout, 'interrupted\n');
  t.end();
});

// The Sentry answers socket() and accept() with ADDFD|SEND, one ioctl that installs the fd and answers the call; it
// waits for the program to install it, and the kernel marks the call answered first. A signal to the Sentry's thread
// in that wait withdrew the fd and left the call answered 0 (Linux 6.18, 11–20 of 300 socket() calls under a
// profiler's SIGPROF every 100 µs), so the program got fd 0, its stdin, for a socket. The signals come from node's
// own profiler here, sampling the Sentry's thread every 100 µs.
const SOCKETS_C = `
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
  int n = atoi(argv[1]), bad = 0;
  for (int i = 0; i < n; i++) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct stat st;
    if (s < 3 || fstat(s, &st) < 0 || !S_ISSOCK(st.st_mode)) bad++;
    if (s > 2) close(s);
  }
  printf("%d of %d not sockets\\n", bad, n);
  return bad != 0;
}
`;

t.test('socket() 300 times while the Sentry\'s thread takes a signal every 100 µs → every answer is a socket', async (t) => {
  const prog = b.cc('sockets', SOCKETS_C);
  const profiling = ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', `${b.dir}/prof`];
  const run = await start(b, [...b.bind, '--', prog, '300'], { prefix: UNTAPPED, nodeArgs: profiling });
  const r = await run.done;
  t.equal(r.stdout, '0 of 300 not sockets\n', r.stderr);
  t.equal(r.code, 0, 'the program exits 0');
  t.end();
});

const CONNECT_C = `
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static void on_usr1(int s) { (void)s; handled++; }

int main(int argc, char **argv) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, 0);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
  inet_pton(AF_INET, argv[1], &a.sin_addr);
  printf("connecting\\n");
  fflush(stdout);
  int r = connect(s, (struct sockaddr *)&a, sizeof a);
  printf("connect %s handled %d\\n", r == 0 ? "ok" : strerror(errno), (int)handled);
  struct pollfd p = { .fd = s, .events = POLLOUT };
  poll(&p, 1, 30000);
  int err = -1;
  socklen_t len = sizeof err;
  getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
  printf("writable %d SO_ERROR %d\\n", !!(p.revents & POLLOUT), err);
  /* As Linux's __inet_stream_connect: the first call after the handshake completes returns 0, the next EISCONN. */
  for (int i = 0; i < 2; i++) {
    r = connect(s, (struct sockaddr *)&a, sizeof a);
    printf("again %s\\n", r == 0 ? "ok" : strerror(errno));
  }
  char buf[4] = "sig";
  write(s, buf, 3);
  memset(buf, 0, sizeof buf);
  printf("echo %zd %s\\n", read(s, buf, 3), buf);
  return 0;
}
`;

t.test('SIGUSR1 during a blocking connect (link delayed 300 ms) → EINTR; the handshake goes on: writable, SO_ERROR 0, connect 0 then EISCONN, data flows', async (t) => {
  const connect = b.cc('connect', CONNECT_C);
  b.peer(['python3', '-c', PY_ACCEPTOR, '0.0.0.0', '7601']);
  t.ok(await listening(b.ns, 7601));
  const run = await start(b, ['--strace', '--impair', 'delay=300ms', ...b.bind, '--', '/bin/sh', '-c',
    `exec ${connect} $(getent ahostsv4 host.tsvisor.internal | head -n1 | cut -d" " -f1) 7601`]);
  t.ok(await waitFor(() => /\] connect\(.*<unfinished \.\.\.>/.test(run.stderr()), HANG_MS), 'connect is parked');
  run.child.kill('SIGUSR1');
  const r = await run.done;
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'connecting\nconnect Interrupted system call handled 1\nwritable 1 SO_ERROR 0\nagain ok\nagain Transport endpoint is already connected\necho 3 sig\n');
  t.end();
});
