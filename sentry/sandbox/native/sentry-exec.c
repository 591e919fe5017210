/*
 * sentry-exec: installs tsvisor's seccomp filter with a listener, hands the listener to the Sentry, then execs.
 *
 *   sentry-exec [--netns PATH] [--user UID:GID] [--filter FD] [--keep-report] -- ARGV...
 *       stage 1, spawned by the Sentry
 *   sentry-exec --stage2 -- PROGRAM ARGS...
 *       stage 2, run by bwrap in the sandbox
 *
 * fd 3 is the report pipe to the Sentry, one line per message:
 *   "listener N"      the filter's listener is fd N here (-1: no filter); take it with pidfd_getfd
 *   "error STEP E"    set-up step STEP failed with errno E (exit status 1)
 *   "exec1 E"         stage 1 could not exec ARGV[0] (exit 127 for ENOENT, else 126)
 *   "stage2"          bwrap has built the sandbox and run stage 2
 *   "exec2 E"         stage 2 could not exec PROGRAM
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
#include <sys/prctl.h>
#include <sys/syscall.h>
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

/* Closes every fd from 4 up: nothing the Sentry's own process happened to leave inheritable reaches the program. */
static void close_from_4(void) {
  if (syscall(SYS_close_range, 4U, ~0U, 0U) == 0) return;
  for (int fd = 4; fd < 65536; fd++) close(fd);
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
  const char *netns = NULL, *user = NULL;
  int filter_fd = -1, keep_report = 0, stage2 = 0, i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (!strcmp(argv[i], "--netns") && i + 1 < argc) netns = argv[++i];
    else if (!strcmp(argv[i], "--user") && i + 1 < argc) user = argv[++i];
    else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter_fd = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--keep-report")) keep_report = 1;
    else if (!strcmp(argv[i], "--stage2")) stage2 = 1;
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

  if (stage2) {
    if (fcntl(REPORT, F_SETFD, FD_CLOEXEC) < 0) _exit(126);
    close_from_4();
    dprintf(REPORT, "stage2\n");
    run(rest, "exec2");
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
    if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) fail("user", errno);
  }
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
  dprintf(REPORT, "listener %d\n", listener);

  char ack;
  ssize_t n;
  do n = read(ACK, &ack, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) fail("ack", n < 0 ? errno : EPIPE);
  close_from_4(); /* the ack pipe, the listener, and strays */
  if (!keep_report && fcntl(REPORT, F_SETFD, FD_CLOEXEC) < 0) fail("cloexec", errno);
  run(rest, "exec1");
  return 126;
}
