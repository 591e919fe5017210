/*
 * sentry-exec: installs tsvisor's seccomp filter with a listener, hands the listener to the Sentry, then execs.
 *
 *   sentry-exec [--netns PATH] [--user UID:GID] [--filter FD] [--keep-report] [--gate FD] [--filter2 FD]
 *               [--console-socket PATH] [--rlimit RES:SOFT:HARD]... [--keep-fd FD]... -- ARGV...
 *       stage 1, spawned by the Sentry
 *   sentry-exec --stage2 [--gate FD] [--filter2 FD] [--tty] -- PROGRAM ARGS...
 *       stage 2, run by bwrap in the sandbox
 *   sentry-exec --join PID [--user UID:GID] [--caps HEX] [--cwd DIR] [--filter FD] [--filter2 FD]
 *               [--console-socket PATH] [--rlimit ...] -- PROGRAM ARGS...
 *       a second program in PID's sandbox (the OCI runtime's exec): joins PID's user, ipc, uts, net, cgroup, pid
 *       and mount namespaces, forks (a pid namespace takes effect for children), and the child goes on as stage 1
 *       does without bwrap; the parent forwards signals and exits with the child's status (128+N for signal N)
 *
 * OCI additions: --gate FD (stage 2 waits for one byte on FD before its exec: the runtime's `start`),
 * --filter2 FD (a second seccomp filter, the engine's profile, installed without a listener right before the
 * program's exec, so that bwrap runs under the Sentry's filter only), --console-socket PATH (a new pty whose
 * master goes to PATH with SCM_RIGHTS and whose slave becomes fds 0-2; --tty in stage 2 makes it the controlling
 * terminal), --rlimit (clamped to the hard limit this process has: raising it needs CAP_SYS_RESOURCE).
 * --keep-fd FD (at most two) leaves FD open across stage 1's exec: bwrap's --info-fd and --userns-block-fd, over
 * which the Sentry writes the user namespace's id maps.
 *
 * fd 3 is the report pipe to the Sentry, one line per message:
 *   "listener N"      the filter's listener is fd N here (-1: no filter); take it with pidfd_getfd
 *   "error STEP E"    set-up step STEP failed with errno E (exit status 1)
 *   "exec1 E"         stage 1 could not exec ARGV[0] (exit 127 for ENOENT, else 126)
 *   "stage2"          bwrap has built the sandbox and run stage 2
 *   "exec2 E"         stage 2 could not exec PROGRAM
 * "child PID"     (--join) the host pid of the forked child, whose "listener" line names its namespace's pid
 * fd 4 carries the Sentry's one-byte ack that it holds the listener. The report pipe is close-on-exec at the last
 * exec, so end-of-file after "listener" (no bwrap) or after "stage2" means the program is running. Stage 1 keeps
 * it open across the exec of bwrap (--keep-report) so that stage 2 can report; bwrap's own processes close it.
 * The listener is closed before exec: a program holding it could answer its own trapped calls. Stage 1 also asks
 * for SIGKILL when its parent (the Sentry) dies, so that a dead Sentry never leaves a program running.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define REPORT 3
#define ACK 4
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#define MAX_INSNS 4096

static void fail(const char *step, int err) {
  dprintf(REPORT, "error %s %d\n", step, err);
  _exit(1);
}

static int read_filter(int fd, struct sock_filter *buf);

/* fds that close_from_4 keeps (the gate and the second filter, passed on to stage 2; --keep-fd's, for bwrap). */
#define NKEEP 4
static int keep[NKEEP] = {-1, -1, -1, -1};

static void close_range_(unsigned lo, unsigned hi) {
  if (lo > hi) return;
  if (syscall(SYS_close_range, lo, hi, 0U) == 0) return;
  for (unsigned fd = lo; fd <= hi && fd < 65536; fd++) close((int)fd);
}

/* Closes every fd from 4 up but the kept ones: nothing the Sentry's own process left inheritable reaches the program. */
static void close_from_4(void) {
  unsigned lo = 4;
  int k[NKEEP];
  for (int i = 0; i < NKEEP; i++) k[i] = keep[i];
  for (int i = 1; i < NKEEP; i++) /* ascending */
    for (int j = i; j > 0 && k[j - 1] > k[j]; j--) {
      int t = k[j];
      k[j] = k[j - 1];
      k[j - 1] = t;
    }
  for (int i = 0; i < NKEEP; i++) {
    if (k[i] < (int)lo) continue;
    close_range_(lo, (unsigned)k[i] - 1);
    lo = (unsigned)k[i] + 1;
  }
  close_range_(lo, ~0U);
}

/* Waits for the one byte of the gate (the OCI runtime's `start`); end-of-file means the runtime gave up. */
static void wait_gate(int fd) {
  char b;
  ssize_t n;
  do n = read(fd, &b, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) _exit(1);
  close(fd);
}

/* Installs the engine's seccomp profile (compiled by the runtime) read from fd: no listener, after everything else. */
static void install_filter2(int fd) {
  static struct sock_filter insns2[MAX_INSNS];
  struct sock_fprog prog = {.len = (unsigned short)read_filter(fd, insns2), .filter = insns2};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) fail("seccomp2", errno);
}

/* A new pty: the master goes to the console socket at path (SCM_RIGHTS), the slave becomes fds 0, 1 and 2. */
static void console(const char *path) {
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) fail("pty", errno);
  char *name = ptsname(m);
  if (!name) fail("pty", errno);
  int sl = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (sl < 0) fail("pty", errno);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) fail("console-socket", ENAMETOOLONG);
  strcpy(sa.sun_path, path);
  if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) fail("console-socket", errno);
  char cbuf[CMSG_SPACE(sizeof(int))];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec iov = {.iov_base = name, .iov_len = strlen(name)};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &m, sizeof(int));
  if (sendmsg(s, &msg, 0) < 0) fail("console-socket", errno);
  close(s);
  close(m);
  for (int fd = 0; fd < 3; fd++)
    if (dup2(sl, fd) < 0) fail("pty", errno);
  close(sl);
}

/* setrlimit, with both limits clamped to the hard limit we have: raising it needs CAP_SYS_RESOURCE, absent here. */
static void set_rlimit(const char *spec) {
  int res;
  unsigned long long soft, hard;
  if (sscanf(spec, "%d:%llu:%llu", &res, &soft, &hard) != 3) fail("rlimit", EINVAL);
  struct rlimit cur, want;
  if (getrlimit(res, &cur) < 0) fail("rlimit", errno);
  want.rlim_max = hard < cur.rlim_max ? hard : cur.rlim_max;
  want.rlim_cur = soft < want.rlim_max ? soft : want.rlim_max;
  if (setrlimit(res, &want) < 0) fail("rlimit", errno);
}

/* Keeps only the capabilities in mask (bounding, effective, permitted, inheritable): an exec as root in the sandbox. */
static void set_caps(unsigned long long mask) {
  for (int c = 0; c <= 63; c++) {
    if (mask & (1ULL << c)) continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) fail("caps", errno);
  }
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  for (int i = 0; i < 2; i++) {
    unsigned v = (unsigned)(mask >> (32 * i));
    d[i].effective = d[i].permitted = d[i].inheritable = v;
  }
  if (syscall(SYS_capset, &h, d) < 0) fail("caps", errno);
}

static int sig_child = -1;
static void forward(int sig) {
  if (sig_child > 0) kill(sig_child, sig);
}

/*
 * Joins the namespaces of pid while still root of the initial user namespace, which has every capability in
 * them all (bwrap run by an unprivileged identity nests a second user namespace: the program's owns none of
 * the others), the mount namespace last but one (it changes the root; every namespace file is opened before),
 * and the program's user namespace last; then forks; the parent stays to forward signals and
 * returns the child's status as its own exit status; the child returns and goes on.
 */
static void join(const char *pid) {
  static const struct { const char *name; int type; } ns[] = {
    {"net", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"cgroup", CLONE_NEWCGROUP},
    {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS}, {"user", CLONE_NEWUSER},
  };
  int fds[7];
  for (int i = 0; i < 7; i++) {
    char path[64], mine[64];
    snprintf(path, sizeof path, "/proc/%s/ns/%s", pid, ns[i].name);
    snprintf(mine, sizeof mine, "/proc/self/ns/%s", ns[i].name);
    struct stat a, b;
    fds[i] = -1;
    /* Joining one's own user namespace is EINVAL: skip the ones we are already in. */
    if (stat(path, &a) == 0 && stat(mine, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) continue;
    fds[i] = open(path, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0 && ns[i].type != CLONE_NEWCGROUP) fail("join-open", errno);
  }
  for (int i = 0; i < 7; i++) {
    if (fds[i] < 0) continue;
    if (setns(fds[i], ns[i].type) < 0) fail(ns[i].type == CLONE_NEWNS ? "join-mnt" : "join", errno);
    close(fds[i]);
  }
  pid_t c = fork();
  if (c < 0) fail("fork", errno);
  if (c == 0) return;
  /* The child's getpid() is its pid namespace's: the Sentry needs the host's to take its listener. */
  dprintf(REPORT, "child %d\n", (int)c);
  sig_child = c;
  close(REPORT);
  close(ACK);
  close_from_4();
  for (int fd = 0; fd < 3; fd++) close(fd);
  int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT, SIGPIPE};
  for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++) signal(sigs[i], forward);
  int st;
  while (waitpid(c, &st, 0) < 0)
    if (errno != EINTR) _exit(1);
  _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

/* execv, and a file without a #! line run by /bin/sh, as execvp does. */
static int try_exec(const char *path, char **argv) {
  execv(path, argv);
  if (errno != ENOEXEC) return errno;
  int n = 0;
  while (argv[n]) n++;
  char *sh[n + 2];
  sh[0] = "/bin/sh";
  sh[1] = (char *)path;
  for (int i = 1; i <= n; i++) sh[i + 1] = argv[i];
  execv(sh[0], sh);
  return ENOEXEC;
}

/*
 * execvp, except that a PATH directory this identity cannot search counts as not holding the program, as a shell
 * sees it: the sandbox runs as an unprivileged host uid, and a PATH such as root's (/root/... first) would turn
 * every "command not found" into EACCES. EACCES stays for a file that exists and cannot be executed.
 */
static void run(char **argv, const char *tag) {
  int err = ENOENT;
  if (strchr(argv[0], '/')) {
    err = try_exec(argv[0], argv);
  } else {
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    size_t len = strlen(argv[0]);
    for (const char *dir = path; ; ) {
      const char *end = strchrnul(dir, ':');
      size_t dlen = (size_t)(end - dir);
      char full[dlen + len + 3];
      snprintf(full, sizeof full, "%.*s%s%s", (int)dlen, dir, dlen ? "/" : "", argv[0]);
      int e = try_exec(full, argv);
      int here = e != ENOENT && e != ENOTDIR && (e != EACCES || access(full, F_OK) == 0);
      if (here && err == ENOENT) err = e;
      if (!*end) break;
      dir = end + 1;
    }
  }
  dprintf(REPORT, "%s %d\n", tag, err);
  _exit(err == ENOENT ? 127 : 126);
}

/* Reads the whole filter (sock_filter records) from fd until end-of-file. */
static int read_filter(int fd, struct sock_filter *buf) {
  size_t have = 0, cap = sizeof(struct sock_filter) * MAX_INSNS;
  for (;;) {
    ssize_t n = read(fd, (char *)buf + have, cap - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("read-filter", errno);
    if (n == 0) break;
    have += (size_t)n;
    if (have == cap) fail("read-filter", E2BIG);
  }
  if (have == 0 || have % sizeof(struct sock_filter) != 0) fail("read-filter", EINVAL);
  close(fd);
  return (int)(have / sizeof(struct sock_filter));
}

int main(int argc, char **argv) {
  const char *netns = NULL, *user = NULL, *console_path = NULL, *join_pid = NULL, *cwd = NULL, *caps = NULL;
  const char *rlimits[32];
  int nrlimits = 0;
  int filter_fd = -1, keep_report = 0, stage2 = 0, gate = -1, filter2 = -1, tty = 0, i = 1, nkept = 0;
  int kept_fds[2] = {-1, -1};
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (!strcmp(argv[i], "--netns") && i + 1 < argc) netns = argv[++i];
    else if (!strcmp(argv[i], "--user") && i + 1 < argc) user = argv[++i];
    else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter_fd = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--keep-report")) keep_report = 1;
    else if (!strcmp(argv[i], "--stage2")) stage2 = 1;
    else if (!strcmp(argv[i], "--gate") && i + 1 < argc) gate = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--filter2") && i + 1 < argc) filter2 = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tty")) tty = 1;
    else if (!strcmp(argv[i], "--console-socket") && i + 1 < argc) console_path = argv[++i];
    else if (!strcmp(argv[i], "--join") && i + 1 < argc) join_pid = argv[++i];
    else if (!strcmp(argv[i], "--cwd") && i + 1 < argc) cwd = argv[++i];
    else if (!strcmp(argv[i], "--caps") && i + 1 < argc) caps = argv[++i];
    else if (!strcmp(argv[i], "--rlimit") && i + 1 < argc && nrlimits < 32) rlimits[nrlimits++] = argv[++i];
    else if (!strcmp(argv[i], "--keep-fd") && i + 1 < argc && nkept < 2) kept_fds[nkept++] = atoi(argv[++i]);
    else {
      fprintf(stderr, "sentry-exec: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (i + 1 >= argc) {
    fprintf(stderr, "usage: sentry-exec [--netns PATH] [--user UID:GID] [--filter FD] [--keep-report] [--stage2] -- ARGV...\n");
    return 2;
  }
  char **rest = argv + i + 1;

  keep[0] = gate;
  keep[1] = filter2;
  keep[2] = kept_fds[0];
  keep[3] = kept_fds[1];

  if (stage2) {
    if (fcntl(REPORT, F_SETFD, FD_CLOEXEC) < 0) _exit(126);
    close_from_4();
    dprintf(REPORT, "stage2\n");
    if (gate >= 0) wait_gate(gate);
    /* bwrap's --new-session may have made its init the session's leader: a session of our own, the pty its terminal. */
    if (tty && setsid() < 0 && errno != EPERM) fail("setsid", errno);
    if (tty && ioctl(0, TIOCSCTTY, 0) < 0) fail("tty", errno);
    if (filter2 >= 0) install_filter2(filter2);
    run(rest, "exec2");
  }

  /* Before any join: the socket's path is the host's. */
  if (console_path) console(console_path);
  for (int r = 0; r < nrlimits; r++) set_rlimit(rlimits[r]);
  if (join_pid) {
    join(join_pid);
    /* the child, in the sandbox's namespaces: a session of its own, the pty as its terminal */
    if (setsid() < 0) fail("setsid", errno);
    if (console_path && ioctl(0, TIOCSCTTY, 0) < 0) fail("tty", errno);
  }

  if (netns) {
    int fd = open(netns, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open-netns", errno);
    if (setns(fd, CLONE_NEWNET) < 0) fail("setns", errno);
    close(fd);
  }
  /* An unprivileged host identity: root's owner rights on host files end here (bwrap maps it to uid 0 inside). */
  if (user) {
    unsigned uid, gid;
    if (sscanf(user, "%u:%u", &uid, &gid) != 2) fail("user", EINVAL);
    /* A user namespace made unprivileged denies setgroups: joined, the groups we had go with the uid change. */
    if (setgroups(0, NULL) < 0 && !(join_pid && errno == EPERM)) fail("user", errno);
    if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) fail("user", errno);
  }
  if (caps) set_caps(strtoull(caps, NULL, 16));
  if (cwd && chdir(cwd) < 0) fail("cwd", errno);
  /* Fail closed: the sandbox dies with the Sentry (bwrap's --die-with-parent does the same for its children).
   * After the identity change, which clears the parent-death signal. */
  pid_t parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) fail("pdeathsig", errno);
  if (getppid() != parent) _exit(1);

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("no-new-privs", errno);

  int listener = -1;
  if (filter_fd >= 0) {
    static struct sock_filter insns[MAX_INSNS];
    struct sock_fprog prog = {.len = (unsigned short)read_filter(filter_fd, insns), .filter = insns};
    listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                            SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
    if (listener < 0) fail("seccomp", errno);
  }
  dprintf(REPORT, "listener %d %d\n", listener, (int)getpid());

  char ack;
  ssize_t n;
  do n = read(ACK, &ack, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) fail("ack", n < 0 ? errno : EPIPE);
  close_from_4(); /* the ack pipe, the listener, and strays */
  if (!keep_report && fcntl(REPORT, F_SETFD, FD_CLOEXEC) < 0) fail("cloexec", errno);
  if (join_pid && filter2 >= 0) install_filter2(filter2);
  run(rest, "exec1");
  return 126;
}
