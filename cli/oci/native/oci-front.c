/*
 * oci-front: the OCI runtime's executable, in front of the Node entry. An engine makes at least four runtime calls
 * per container (create, start, delete, delete --force), each a fresh process; a Node start-up costs tens of ms on
 * a quiet machine and several times that on a loaded one. This front answers the common cases of those calls
 * itself and hands everything else, unchanged, to `node CLI ARGS...` (TSVISOR_NODE and TSVISOR_CLI are fixed when
 * it is built: cli/oci/front.ts). It answers:
 *
 *   create [--bundle B] [--pid-file F] [--console-socket S] ID
 *       takes the container's lock, writes create.json, starts the container's Sentry (`node CLI __oci-sandbox ROOT
 *       ID`, detached, with the container's stdio as fds 4-6 and the report pipe as fd 3, as cli/oci/commands.ts
 *       does), waits for its "created" and writes the pid file; the Sentry checks the bundle and reports what is
 *       wrong with it
 *       or, when a warm Sentry waits under ROOT/.warm (cli/oci/warm.ts), hands the container to it: forks the
 *       keeper (the pid file's process: the engine's shim reaps only its descendants, so the keeper stands in for
 *       the Sentry and exits with the status it sends), sends the Sentry one JSON line naming the fds it is to take
 *       (pidfd_getfd), and waits for its "created"; a warm Sentry that is dead, of another build or answers "cold"
 *       costs only the fall-back to a cold start. Each create then starts the next warm Sentry, unless one waits
 *       (TSVISOR_OCI_WARM=0 turns all this off; TSVISOR_OCI_WARM_IDLE_MS is an unclaimed one's lifetime)
 *   start ID      a created container whose Sentry lives: {"op":"start"} over its control socket
 *   delete [--force] ID
 *       a container that is gone (--force: exit 0), or a stopped one whose config.json names no poststop hook
 *       (its folder and control socket are removed)
 *
 * Any other command, flag or state (a running container to delete, a Sentry that is gone at start, --debug, a
 * usage mistake) goes to the Node entry, which answers it as before; the lock is close-on-exec, so the hand-over
 * releases it. Errors are one line on stderr and the last line of the --log file, in its format, as the Node entry
 * writes them (the runc shim shows that line's msg).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TSVISOR_NODE
#error "build with -DTSVISOR_NODE=\"/path/to/node\" -DTSVISOR_CLI=\"/path/to/bin.js\" (cli/oci/front.ts does)"
#endif

#define DEFAULT_ROOT "/run/tsvisor/oci"
#define SANDBOX_COMMAND "__oci-sandbox"
#define WARM_COMMAND "__oci-warm"
#define START_TIMEOUT_MS 120000
#define WARM_IDLE_MS "120000"
#define WARM_NICE 10
#define PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int g_argc;
static char **g_argv;
static const char *g_log;
static int g_log_text;

/* ---- the hand-over and errors ---------------------------------------------------------------------------- */

/* Runs the Node entry with our arguments, unchanged. */
static void fallback(void) {
  char **args = calloc((size_t)g_argc + 2, sizeof *args);
  if (!args) _exit(1);
  args[0] = TSVISOR_NODE;
  args[1] = TSVISOR_CLI;
  for (int i = 1; i < g_argc; i++) args[i + 1] = g_argv[i];
  execv(TSVISOR_NODE, args);
  dprintf(2, "tsvisor: cannot run %s: %s\n", TSVISOR_NODE, strerror(errno));
  _exit(1);
}

/* Appends `s` to `out` as a JSON string's body (quotes, backslashes and control characters escaped). */
static void json_escape(FILE *out, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
    else if (*p == '\n') fputs("\\n", out);
    else if (*p == '\t') fputs("\\t", out);
    else if (*p == '\r') fputs("\\r", out);
    else if (*p < 0x20) fprintf(out, "\\u%04x", *p);
    else fputc(*p, out);
  }
}

/* The time as JavaScript's toISOString() writes it. */
static void iso_time(char *buf, size_t n) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* An error: stderr, the --log file's last line, exit status 1. */
static void fail(const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  dprintf(2, "tsvisor: %s\n", msg);
  if (g_log) {
    FILE *f = fopen(g_log, "a");
    if (f) {
      char t[40];
      iso_time(t, sizeof t);
      if (g_log_text) {
        fprintf(f, "time=\"%s\" level=error msg=\"", t);
        json_escape(f, msg);
        fputs("\"\n", f);
      } else {
        fputs("{\"level\":\"error\",\"msg\":\"", f);
        json_escape(f, msg);
        fprintf(f, "\",\"time\":\"%s\"}\n", t);
      }
      fclose(f);
    }
  }
  exit(1);
}

/* ---- paths, files, processes ----------------------------------------------------------------------------- */

/* `p` made absolute against the working directory and normalised (Node's path.resolve); malloc'd. */
static char *resolve_path(const char *p) {
  char cwd[4096];
  size_t n = strlen(p) + sizeof cwd + 2;
  char *joined = malloc(n), *out = malloc(n);
  if (!joined || !out) fail("out of memory");
  if (p[0] == '/') snprintf(joined, n, "%s", p);
  else {
    if (!getcwd(cwd, sizeof cwd)) fail("cannot read the working directory: %s", strerror(errno));
    snprintf(joined, n, "%s/%s", cwd, p);
  }
  size_t len = 0;
  for (char *seg = strtok(joined, "/"); seg; seg = strtok(NULL, "/")) {
    if (strcmp(seg, ".") == 0) continue;
    if (strcmp(seg, "..") == 0) {
      while (len > 0 && out[len - 1] != '/') len--;
      if (len > 0) len--;
      continue;
    }
    out[len++] = '/';
    size_t sl = strlen(seg);
    memcpy(out + len, seg, sl);
    len += sl;
  }
  if (len == 0) out[len++] = '/';
  out[len] = 0;
  free(joined);
  return out;
}

/* A whole file, NUL-terminated and malloc'd; NULL when it cannot be read. */
static char *read_file(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 8192, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) break;
    if (len + 1 >= cap) {
      char *b = realloc(buf, cap *= 2);
      if (!b) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = b;
    }
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(fd);
  if (buf) buf[len] = 0;
  return buf;
}

/* Whether `pid` is alive (not a zombie) and, when `start` is given, started then (field 22 of its stat). */
static int alive(long pid, const char *start) {
  if (pid <= 0) return 0;
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  char *stat = read_file(path);
  if (!stat) return 0;
  char *p = strrchr(stat, ')');
  int ok = 0;
  if (p && p[1] == ' ') {
    p += 2;
    ok = *p != 'Z' && *p != 'X';
    if (ok && start) {
      /* Fields after the command: state is the first, the start time the 20th. */
      for (int f = 0; f < 19 && p; f++) {
        p = strchr(p, ' ');
        if (p) p++;
      }
      size_t sl = strlen(start);
      ok = p && strncmp(p, start, sl) == 0 && (p[sl] == ' ' || p[sl] == 0 || p[sl] == '\n');
    }
  }
  free(stat);
  return ok;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)type;
  (void)ftw;
  remove(path);
  return 0;
}

/* rm -rf `dir`. */
static void remove_tree(const char *dir) {
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Whether directory `dir` holds a directory (a cgroup with child cgroups). */
static int has_subdir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  int found = 0;
  while (!found && (e = readdir(d))) found = e->d_type == DT_DIR && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return found;
}

/*
 * rmdir of the cgroup directories the container's Sentry made (DIR/cgroups, deepest first: cli/oci/cgroups.ts);
 * one whose last task has just exited is busy a moment longer; one holding another container's cgroup stays.
 */
static void remove_cgroups(const char *dir) {
  char path[4300];
  snprintf(path, sizeof path, "%s/cgroups", dir);
  char *list = read_file(path);
  if (!list) return;
  for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
    for (int tries = 0; rmdir(line) < 0 && errno == EBUSY && tries < 50 && !has_subdir(line); tries++) {
      struct timespec ts = {0, 10 * 1000000};
      nanosleep(&ts, NULL);
    }
  }
  free(list);
}

/* mkdir -p with `mode` for what it makes. */
static void make_dirs(const char *path, mode_t mode) {
  char *p = strdup(path);
  if (!p) fail("out of memory");
  for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
    *s = 0;
    mkdir(p, mode);
    *s = '/';
  }
  if (mkdir(p, mode) < 0 && errno != EEXIST) fail("cannot make %s: %s", p, strerror(errno));
  free(p);
}

/* Takes the container's lock (cli/oci/state.ts: flock of DIR/lock); close-on-exec, so a hand-over lets it go. */
static int lock_container(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/lock", dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_CREAT, 0600);
  if (fd < 0) fail("cannot open the lock of container %s: %s", strrchr(dir, '/') + 1, strerror(errno));
  while (flock(fd, LOCK_EX) < 0) {
    if (errno != EINTR) fail("cannot lock container %s: %s", strrchr(dir, '/') + 1, strerror(errno));
  }
  return fd;
}

/* ---- state.json: the few top-level fields this front needs ------------------------------------------------ */

/* Skips one JSON value at `p`; returns what follows it, or NULL when the text is not JSON as we write it. */
static const char *skip_value(const char *p) {
  if (*p == '"') {
    for (p++; *p && *p != '"'; p++)
      if (*p == '\\' && p[1]) p++;
    return *p ? p + 1 : NULL;
  }
  if (*p == '{' || *p == '[') {
    int depth = 0;
    for (; *p; p++) {
      if (*p == '"') {
        p = skip_value(p);
        if (!p) return NULL;
        p--;
      } else if (*p == '{' || *p == '[') depth++;
      else if ((*p == '}' || *p == ']') && --depth == 0) return p + 1;
    }
    return NULL;
  }
  while (*p && *p != ',' && *p != '}') p++;
  return p;
}

/*
 * The value of top-level key `key` of the object `json` (JSON.stringify's output: no spaces), copied to `out`:
 * 1 for a number's or literal's text or a string's body without escapes, 2 for a string's body holding escapes
 * (as written; json_unescape), 0 when it does not fit, -1 when the key is absent or the text is not such JSON.
 */
static int field(const char *json, const char *key, char *out, size_t n) {
  const char *p = json;
  if (*p++ != '{') return -1;
  size_t kl = strlen(key);
  while (*p == '"') {
    const char *k = p + 1;
    const char *v = skip_value(p);
    if (!v || *v != ':') return -1;
    v++;
    const char *end = skip_value(v);
    if (!end) return -1;
    if ((size_t)(v - 1 - k - 1) == kl && strncmp(k, key, kl) == 0) {
      int str = *v == '"';
      const char *b = str ? v + 1 : v;
      size_t len = (size_t)((str ? end - 1 : end) - b);
      if (len >= n) return 0;
      memcpy(out, b, len);
      out[len] = 0;
      return str && memchr(b, '\\', len) ? 2 : 1;
    }
    p = end;
    if (*p == ',') p++;
  }
  return -1;
}

/* Decodes a JSON string's body in place (\uXXXX to UTF-8; surrogate pairs are left as two code points). */
static void json_unescape(char *s) {
  char *w = s;
  for (char *r = s; *r; r++) {
    if (*r != '\\' || !r[1]) {
      *w++ = *r;
      continue;
    }
    char c = *++r;
    if (c == 'n') *w++ = '\n';
    else if (c == 't') *w++ = '\t';
    else if (c == 'r') *w++ = '\r';
    else if (c == 'b') *w++ = '\b';
    else if (c == 'f') *w++ = '\f';
    else if (c == 'u' && strlen(r) >= 5) {
      char hex[5] = {r[1], r[2], r[3], r[4], 0};
      unsigned u = (unsigned)strtoul(hex, NULL, 16);
      r += 4;
      if (u < 0x80) *w++ = (char)u;
      else if (u < 0x800) {
        *w++ = (char)(0xc0 | (u >> 6));
        *w++ = (char)(0x80 | (u & 0x3f));
      } else {
        *w++ = (char)(0xe0 | (u >> 12));
        *w++ = (char)(0x80 | ((u >> 6) & 0x3f));
        *w++ = (char)(0x80 | (u & 0x3f));
      }
    } else *w++ = c;
  }
  *w = 0;
}

/* A container's state as this front needs it. */
struct state {
  char status[32];
  long pid;
  char start[32];
  /* On a warm start, the Sentry itself (pid is its keeper). */
  long sentry_pid;
  char sentry_start[32];
  char control[256];
  char bundle[4096];
};

/* Reads DIR/state.json: 1, 0 when there is none, -1 when it holds what this front does not handle. */
static int read_state(const char *dir, struct state *s) {
  char path[4200], num[32];
  snprintf(path, sizeof path, "%s/state.json", dir);
  char *json = read_file(path);
  if (!json) return 0;
  memset(s, 0, sizeof *s);
  int ok = field(json, "status", s->status, sizeof s->status) == 1 && field(json, "pid", num, sizeof num) == 1 &&
           field(json, "control", s->control, sizeof s->control) == 1 && field(json, "bundle", s->bundle, sizeof s->bundle) == 1;
  if (ok) s->pid = strtol(num, NULL, 10);
  int st = field(json, "sentryStart", s->start, sizeof s->start);
  if (st == 0) ok = 0;
  if (field(json, "sentryPid", num, sizeof num) == 1) s->sentry_pid = strtol(num, NULL, 10);
  if (field(json, "sentryPidStart", s->sentry_start, sizeof s->sentry_start) == 0) ok = 0;
  free(json);
  return ok ? 1 : -1;
}

/* The status as it is now: a container whose Sentry is gone is stopped (cli/oci/state.ts: live). */
static const char *live_status(const struct state *s) {
  if (strcmp(s->status, "stopped") != 0 && !alive(s->pid, s->start[0] ? s->start : NULL)) return "stopped";
  return s->status;
}

/* ---- the commands ---------------------------------------------------------------------------------------- */

static int valid_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > 128) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || !strchr("_.+-", c))) return 0;
  }
  return 1;
}

/* `delete [--force] ID`. */
static int cmd_delete(const char *root, int force, const char *id) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/%s", root, id);
  struct stat st;
  if (stat(dir, &st) < 0) {
    if (force) return 0;
    fallback();
  }
  int lock = lock_container(dir);
  struct state s;
  int r = read_state(dir, &s);
  if (r == 0 && force) return 0;
  if (r != 1 || strcmp(live_status(&s), "stopped") != 0 || alive(s.pid, s.start[0] ? s.start : NULL) ||
      alive(s.sentry_pid, s.sentry_start[0] ? s.sentry_start : NULL))
    fallback();
  /* poststop hooks are run by the Node entry: any mention of them in config.json hands the call over. */
  char cfg[4200];
  snprintf(cfg, sizeof cfg, "%s/config.json", s.bundle);
  char *spec = read_file(cfg);
  if (spec && strstr(spec, "\"poststop\"")) fallback();
  free(spec);
  unlink(s.control);
  remove_cgroups(dir);
  remove_tree(dir);
  close(lock);
  return 0;
}

/* `start ID`: {"op":"start"} over the Sentry's control socket, answered by one JSON line. */
static int cmd_start(const char *root, const char *id) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/%s", root, id);
  struct stat st;
  if (stat(dir, &st) < 0) fallback();
  int lock = lock_container(dir);
  struct state s;
  if (read_state(dir, &s) != 1 || strcmp(live_status(&s), "created") != 0) fallback();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (fd < 0 || strlen(s.control) >= sizeof a.sun_path) fallback();
  strcpy(a.sun_path, s.control);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) fallback();
  static const char req[] = "{\"op\":\"start\"}\n";
  if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) fail("cannot reach the container's Sentry: %s", strerror(errno));
  char reply[8192];
  size_t len = 0;
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    long left = START_TIMEOUT_MS - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (left <= 0 || (poll(&p, 1, (int)left) == 0)) fail("the container's Sentry did not answer");
    ssize_t r = read(fd, reply + len, sizeof reply - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("cannot reach the container's Sentry: %s", strerror(errno));
    if (r == 0 || (len += (size_t)r) >= sizeof reply - 1) break;
  }
  reply[len] = 0;
  close(fd);
  close(lock);
  char *nl = strchr(reply, '\n');
  if (nl) *nl = 0;
  if (strcmp(reply, "{\"ok\":true}") == 0) return 0;
  char msg[4096];
  int f = field(reply, "error", msg, sizeof msg);
  if (f == 2) json_unescape(msg);
  if (f > 0) fail("%s", msg);
  if (f == 0) fail("the container's Sentry refused to start it (its log says why)");
  fail("the container's Sentry exited while answering");
  return 1;
}

/* Writes `s` to `f` as a JSON string, with its quotes. */
static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  json_escape(f, s);
  fputc('"', f);
}

/* Moves `fd` to a number of at least 10, close-on-exec (out of the way of the child's 0-6). */
static int high(int fd) {
  int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  if (h < 0) _exit(127);
  return h;
}

/* Reads one line from `fd` into `line` (without its newline); "" at an end without one. */
static void read_line(int fd, char *line, size_t n) {
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, line + len, n - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
    if (memchr(line, '\n', len) || len >= n - 1) break;
  }
  line[len] = 0;
  char *nl = strchr(line, '\n');
  if (nl) *nl = 0;
}

/* Resets what a child of ours must not inherit: the signal mask and handlers. */
static void default_signals(void) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
}

/* ---- warm Sentries (cli/oci/warm.ts) ---------------------------------------------------------------------- */

/* Whether creates use and start warm Sentries. */
static int warm_enabled(void) {
  const char *v = getenv("TSVISOR_OCI_WARM");
  return !v || strcmp(v, "0") != 0;
}

static unsigned long long fnv(unsigned long long h, const void *p, size_t n) {
  for (const unsigned char *b = p; n--; b++) h = (h ^ *b) * 0x100000001b3ULL;
  return h;
}

static unsigned long long fnv_stat(unsigned long long h, const char *path) {
  struct stat st;
  if (stat(path, &st) < 0) return fnv(h, path, strlen(path));
  h = fnv(h, &st.st_ino, sizeof st.st_ino);
  h = fnv(h, &st.st_size, sizeof st.st_size);
  return fnv(h, &st.st_mtim, sizeof st.st_mtim);
}

/*
 * The build a warm Sentry must be of to serve: this front and the entry it runs, as files (a reinstall or a
 * rebuild, `npm run build` making dist/ anew, gives new inodes and times). 16 hex digits.
 */
static void warm_tag(char out[17]) {
  unsigned long long h = 0xcbf29ce484222325ULL;
  h = fnv_stat(h, "/proc/self/exe");
  h = fnv_stat(h, TSVISOR_CLI);
  h = fnv(h, TSVISOR_NODE, strlen(TSVISOR_NODE));
  snprintf(out, 17, "%016llx", h);
}

/* Parses `ready-TAG-PID.sock`: 1 with the tag and pid, else 0. */
static int ready_name(const char *name, char tag[17], long *pid) {
  if (strncmp(name, "ready-", 6) != 0) return 0;
  const char *t = name + 6, *dash = strchr(t, '-');
  if (!dash || dash - t != 16) return 0;
  memcpy(tag, t, 16);
  tag[16] = 0;
  char *end;
  *pid = strtol(dash + 1, &end, 10);
  return *pid > 0 && strcmp(end, ".sock") == 0;
}

/* Stops warm Sentry `pid` of another build (checked by its command line: a reused pid is left alone). */
static void stop_stale(long pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char cmd[8192];
  ssize_t n = read(fd, cmd, sizeof cmd - 1);
  close(fd);
  if (n <= 0) return;
  for (ssize_t i = 0; i < n; i++)
    if (!cmd[i]) cmd[i] = ' ';
  cmd[n] = 0;
  if (strstr(cmd, " " WARM_COMMAND " ")) kill((pid_t)pid, SIGTERM);
}

/*
 * Claims a warm Sentry of build `tag` under `root`: renames its socket (one claimer wins), connects and unlinks
 * it. Returns the connected socket and the Sentry's pid, or -1 when there is none; others' are stopped.
 */
static int claim_warm(const char *root, const char *tag, long *sentry) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/.warm", root);
  DIR *d = opendir(dir);
  if (!d) return -1;
  int fd = -1;
  for (struct dirent *e; fd < 0 && (e = readdir(d));) {
    char t[17], from[4500], to[4500];
    long pid;
    if (!ready_name(e->d_name, t, &pid)) continue;
    snprintf(from, sizeof from, "%s/%s", dir, e->d_name);
    if (strcmp(t, tag) != 0) {
      stop_stale(pid);
      unlink(from);
      continue;
    }
    snprintf(to, sizeof to, "%s/claimed-%d.sock", dir, (int)getpid());
    if (rename(from, to) < 0) continue; /* another create's */
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (s >= 0 && strlen(to) < sizeof a.sun_path) {
      strcpy(a.sun_path, to);
      struct ucred cred;
      socklen_t cl = sizeof cred;
      if (connect(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 &&
          cred.pid == pid) {
        fd = s;
        *sentry = pid;
      }
    }
    if (fd < 0 && s >= 0) close(s);
    unlink(to);
  }
  closedir(d);
  return fd;
}

/* Whether a warm Sentry of build `tag` waits under `root`. */
static int warm_waiting(const char *root, const char *tag) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/.warm", root);
  DIR *d = opendir(dir);
  if (!d) return 0;
  int found = 0;
  for (struct dirent *e; !found && (e = readdir(d));) {
    char t[17];
    long pid;
    found = ready_name(e->d_name, t, &pid) && strcmp(t, tag) == 0 && alive(pid, NULL);
  }
  closedir(d);
  return found;
}

/*
 * Starts the next warm Sentry under `root`, unless one waits: detached (a session of its own), with a clean
 * environment and / for working directory (it takes its caller's at hand-over), fd 0 /dev/null, 1-2 ROOT/.warm/log.
 */
static void spawn_warm(const char *root, const char *tag) {
  if (warm_waiting(root, tag)) return;
  char dir[4200], log_path[4300];
  snprintf(dir, sizeof dir, "%s/.warm", root);
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) return;
  snprintf(log_path, sizeof log_path, "%s/log", dir);
  const char *idle = getenv("TSVISOR_OCI_WARM_IDLE_MS");
  if (!idle || strspn(idle, "0123456789") != strlen(idle) || !*idle) idle = WARM_IDLE_MS;
  pid_t pid = fork();
  if (pid != 0) return;
  setsid();
  int null = open("/dev/null", O_RDONLY);
  int lg = open(log_path, O_WRONLY | O_APPEND | O_CREAT, 0600);
  if (null < 0 || lg < 0 || dup2(null, 0) < 0 || dup2(lg, 1) < 0 || dup2(lg, 2) < 0) _exit(127);
  syscall(SYS_close_range, 3, ~0U, 0);
  default_signals();
  if (chdir("/") < 0) _exit(127);
  /* Loading in the background yields to the containers running meanwhile; the caller's niceness comes back with
   * the container (cli/oci/warm.ts). */
  if (setpriority(PRIO_PROCESS, 0, getpriority(PRIO_PROCESS, 0) + WARM_NICE) < 0) { /* best effort */ }
  char *const args[] = {TSVISOR_NODE, TSVISOR_CLI, WARM_COMMAND, (char *)root, (char *)tag, (char *)idle, NULL};
  char *const env[] = {PATH_ENV, NULL};
  execve(TSVISOR_NODE, args, env);
  _exit(127);
}

static volatile pid_t g_keeper_sentry;

static void keeper_forward(int sig) {
  if (g_keeper_sentry > 0) kill(g_keeper_sentry, sig);
}

/*
 * The keeper (the front's child, the engine's waited-for process on a warm start): forwards the signals a Sentry
 * forwards to its program, joins the container's network namespace when the Sentry names it (`netns PATH`: an
 * engine may take /proc/PID/ns/net of the pid it was given, as Docker's --network container:ID does), and exits
 * with the status the Sentry sends (`exit N`) once the Sentry has gone (its end of `sock` closes); 137 when it
 * went without one, as a cold Sentry killed by SIGKILL would show.
 */
static void keeper(int sock, pid_t sentry) {
  setsid();
  int null = open("/dev/null", O_RDWR);
  int s = fcntl(sock, F_DUPFD, 3);
  if (null < 0 || s < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 || dup2(s, 3) < 0) _exit(127);
  syscall(SYS_close_range, 4, ~0U, 0);
  default_signals();
  g_keeper_sentry = sentry;
  /* The Sentry's end closes while it exits, a moment before it has: see it gone before the engine sees us go. */
  int sentry_fd = (int)syscall(SYS_pidfd_open, sentry, 0);
  struct sigaction sa = {.sa_handler = keeper_forward, .sa_flags = SA_RESTART};
  sigemptyset(&sa.sa_mask);
  int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++) sigaction(forwarded[i], &sa, NULL);
  char buf[4200];
  size_t len = 0;
  int status = -1;
  for (;;) {
    ssize_t r = read(3, buf + len, sizeof buf - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
    buf[len] = 0;
    for (char *nl; (nl = strchr(buf, '\n'));) {
      *nl = 0;
      if (strncmp(buf, "exit ", 5) == 0) status = atoi(buf + 5);
      else if (strncmp(buf, "netns ", 6) == 0) {
        int ns = open(buf + 6, O_RDONLY | O_CLOEXEC);
        if (ns >= 0) {
          if (setns(ns, CLONE_NEWNET) < 0) { /* the engine sees the runtime's namespace, as before */ }
          close(ns);
        }
      }
      len -= (size_t)(nl + 1 - buf);
      memmove(buf, nl + 1, len + 1);
    }
    if (len >= sizeof buf - 1) len = 0;
  }
  if (sentry_fd >= 0) {
    struct pollfd p = {.fd = sentry_fd, .events = POLLIN};
    while (poll(&p, 1, 5000) < 0 && errno == EINTR) continue;
  }
  _exit(status >= 0 && status <= 255 ? status : 137);
}

/* Waits up to `ms` for the other end of `fd` to close (the warm Sentry's exit). */
static void wait_closed(int fd, int ms) {
  char buf[512];
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
  }
}

/*
 * Hands container `id` to a warm Sentry, if one of build `tag` waits: the keeper's pid once it reported "created",
 * 0 to start cold instead (none, a dead one, "cold"), and fail()s with the Sentry's error otherwise.
 */
static pid_t warm_create(const char *root, const char *dir, const char *id, const char *bundle, int log_fd, const char *tag) {
  long sentry;
  int conn = claim_warm(root, tag, &sentry);
  if (conn < 0) return 0;
  int ks[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ks) < 0) {
    close(conn);
    return 0;
  }
  pid_t kp = fork();
  if (kp < 0) {
    close(conn);
    close(ks[0]);
    close(ks[1]);
    return 0;
  }
  if (kp == 0) keeper(ks[1], (pid_t)sentry);
  close(ks[1]);
  char *req = NULL;
  size_t req_len = 0;
  FILE *f = open_memstream(&req, &req_len);
  if (!f) fail("out of memory");
  fputs("{\"id\":", f);
  json_string(f, id);
  fputs(",\"bundle\":", f);
  json_string(f, bundle);
  fprintf(f, ",\"log\":%d,\"stdio\":[0,1,2],\"keeper\":%d,\"keeperPid\":%d}\n", log_fd, ks[0], (int)kp);
  fclose(f);
  char line[4096] = "";
  if (write(conn, req, req_len) == (ssize_t)req_len) read_line(conn, line, sizeof line);
  free(req);
  if (strcmp(line, "created") == 0) {
    close(conn);
    close(ks[0]);
    return kp;
  }
  if (strncmp(line, "error ", 6) == 0) wait_closed(conn, 10000);
  close(conn);
  close(ks[0]);
  kill(kp, SIGKILL);
  waitpid(kp, NULL, 0);
  if (strncmp(line, "error ", 6) != 0) return 0; /* "cold", or gone without a word */
  struct state s;
  if (read_state(dir, &s) == 1) unlink(s.control);
  remove_tree(dir);
  fail("%s", line + 6);
  return 0;
}

static pid_t cold_create(const char *root, const char *dir, const char *id, const char *bundle, int log_fd, const char *log_path);

/* `create`: the container's lock, create.json, the Sentry, its report, the pid file. */
static int cmd_create(const char *root, const char *bundle_arg, const char *pid_file, const char *console, const char *network,
                      int strace, const char *pcap_log, const char *debug_log, const char *id) {
  char *bundle = resolve_path(bundle_arg ? bundle_arg : ".");
  char dir[4200], path[4300];
  make_dirs(root, 0700);
  snprintf(dir, sizeof dir, "%s/%s", root, id);
  if (mkdir(dir, 0711) < 0 && errno != EEXIST) fail("cannot make %s: %s", dir, strerror(errno));
  int lock = lock_container(dir);
  snprintf(path, sizeof path, "%s/state.json", dir);
  if (access(path, F_OK) == 0) fail("container with id exists: %s", id);
  struct stat ns;
  if (stat("/proc/self/ns/net", &ns) < 0) fail("cannot stat /proc/self/ns/net: %s", strerror(errno));
  snprintf(path, sizeof path, "%s/create.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) fail("cannot write %s: %s", path, strerror(errno));
  fputs("{\"bundle\":", f);
  json_string(f, bundle);
  if (console) {
    fputs(",\"consoleSocket\":", f);
    json_string(f, resolve_path(console));
  }
  if (network) {
    fputs(",\"network\":", f);
    json_string(f, network);
  }
  fprintf(f, ",\"strace\":%s", strace ? "true" : "false");
  if (pcap_log) {
    fputs(",\"pcapLog\":", f);
    json_string(f, pcap_log);
  }
  fprintf(f, ",\"hostNetnsIno\":%llu}", (unsigned long long)ns.st_ino);
  if (fclose(f) != 0) fail("cannot write %s: %s", path, strerror(errno));

  char log_path[4300];
  size_t dl = debug_log ? strlen(debug_log) : 0;
  if (dl > 0 && debug_log[dl - 1] == '/') {
    make_dirs(debug_log, 0777);
    snprintf(log_path, sizeof log_path, "%stsvisor-%s.log", debug_log, id);
  } else if (dl > 0) snprintf(log_path, sizeof log_path, "%s", debug_log);
  else snprintf(log_path, sizeof log_path, "%s/sentry.log", dir);
  int log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (log_fd < 0) {
    remove_tree(dir);
    fail("cannot open %s: %s", log_path, strerror(errno));
  }
  char tag[17];
  warm_tag(tag);
  int warm = warm_enabled();
  pid_t pid = warm ? warm_create(root, dir, id, bundle, log_fd, tag) : 0;
  if (pid == 0) pid = cold_create(root, dir, id, bundle, log_fd, log_path);
  close(log_fd);
  if (warm) spawn_warm(root, tag);
  if (pid_file) {
    char *pf = resolve_path(pid_file);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%.*s/.%d.pid.tmp", (int)(strrchr(pf, '/') - pf), pf, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || dprintf(fd, "%d", (int)pid) < 0 || close(fd) < 0 || rename(tmp, pf) < 0) {
      kill(pid, SIGKILL);
      fail("cannot write the pid file %s: %s", pf, strerror(errno));
    }
  }
  close(lock);
  return 0;
}

/* Starts the container's Sentry cold (a new Node) and waits for its report: its pid, or fail()s with its error. */
static pid_t cold_create(const char *root, const char *dir, const char *id, const char *bundle, int log_fd, const char *log_path) {
  int report[2];
  if (pipe2(report, O_CLOEXEC) < 0) fail("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) fail("fork: %s", strerror(errno));
  if (pid == 0) {
    /* The Sentry: a session of its own (detached); 0 /dev/null, 1-2 its log, 3 the report, 4-6 the container's stdio. */
    setsid();
    int in = high(0), out = high(1), err = high(2), lg = high(log_fd), rp = high(report[1]);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(lg, 1) < 0 || dup2(lg, 2) < 0 || dup2(rp, 3) < 0 || dup2(in, 4) < 0 ||
        dup2(out, 5) < 0 || dup2(err, 6) < 0)
      _exit(127);
    syscall(SYS_close_range, 7, ~0U, 0);
    default_signals();
    /* A bundle that is not there is the Sentry's to report (it cannot read config.json), as every other fault. */
    if (chdir(bundle) < 0 && chdir("/") < 0) _exit(127);
    execl(TSVISOR_NODE, TSVISOR_NODE, TSVISOR_CLI, SANDBOX_COMMAND, root, id, (char *)NULL);
    dprintf(3, "error cannot run %s: %s\n", TSVISOR_NODE, strerror(errno));
    _exit(127);
  }
  close(report[1]);
  char line[4096];
  read_line(report[0], line, sizeof line);
  close(report[0]);
  if (strcmp(line, "created") != 0) {
    if (waitpid(pid, NULL, WNOHANG) == 0) kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    struct state s;
    if (read_state(dir, &s) == 1) unlink(s.control);
    remove_tree(dir);
    if (strncmp(line, "error ", 6) == 0) fail("%s", line + 6);
    fail("the sandbox exited during create (its log: %s)", log_path);
  }
  return pid;
}

/* ---- flags ----------------------------------------------------------------------------------------------- */

/* Whether `arg` is flag `name` (one or two dashes, Go's syntax); sets *value to what follows '=' (or NULL). */
static int is_flag(const char *arg, const char *name, const char **value) {
  if (arg[0] != '-') return 0;
  arg += arg[1] == '-' ? 2 : 1;
  size_t n = strlen(name);
  if (strncmp(arg, name, n) != 0 || (arg[n] != 0 && arg[n] != '=')) return 0;
  *value = arg[n] == '=' ? arg + n + 1 : NULL;
  return 1;
}

/* A valued flag's value: after '=' or the next argument; a missing one hands over (Node reports it). */
static const char *take_value(const char *eq, int *i) {
  if (eq) return eq;
  if (*i + 1 >= g_argc) fallback();
  return g_argv[++*i];
}

int main(int argc, char **argv) {
  g_argc = argc;
  g_argv = argv;
  /* A Sentry that dies while we write to it is an error to report (or a cold start), not our death by SIGPIPE;
   * our children get the default back (default_signals). */
  signal(SIGPIPE, SIG_IGN);
  const char *root = DEFAULT_ROOT, *network = NULL, *pcap_log = NULL, *debug_log = NULL, *v;
  int strace = 0, i = 1;
  /* Global flags (cli/oci/main.ts), then the command. */
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    if (is_flag(a, "root", &v)) root = take_value(v, &i);
    else if (is_flag(a, "log", &v)) g_log = take_value(v, &i);
    else if (is_flag(a, "log-format", &v)) g_log_text = strcmp(take_value(v, &i), "text") == 0;
    else if (is_flag(a, "network", &v)) {
      network = take_value(v, &i);
      if (strcmp(network, "sandbox") && strcmp(network, "host") && strcmp(network, "none")) fallback();
    } else if (is_flag(a, "platform", &v)) {
      if (strcmp(take_value(v, &i), "unotify")) fallback();
    } else if (is_flag(a, "debug-log", &v)) debug_log = take_value(v, &i);
    else if (is_flag(a, "pcap-log", &v)) pcap_log = take_value(v, &i);
    else if (is_flag(a, "rootless", &v) || is_flag(a, "criu", &v)) take_value(v, &i);
    else if (is_flag(a, "strace", &v)) strace = !v || strcmp(v, "false");
    else if (is_flag(a, "systemd-cgroup", &v) || is_flag(a, "no-new-keyring", &v)) continue;
    else fallback(); /* --debug (its lines are the Node entry's), --help, anything unknown */
  }
  if (i >= argc) fallback();
  const char *cmd = argv[i++];
  char *abs_root = resolve_path(root);
  if (strcmp(cmd, "start") == 0) {
    if (i != argc - 1 || argv[i][0] == '-' || !valid_id(argv[i])) fallback();
    return cmd_start(abs_root, argv[i]);
  }
  if (strcmp(cmd, "delete") == 0) {
    int force = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
      if (is_flag(argv[i], "force", &v) || is_flag(argv[i], "f", &v)) force = !v || strcmp(v, "false");
      else fallback();
    }
    if (i != argc - 1 || !valid_id(argv[i])) fallback();
    return cmd_delete(abs_root, force, argv[i]);
  }
  if (strcmp(cmd, "create") == 0) {
    const char *bundle = NULL, *pid_file = NULL, *console = NULL, *id = NULL;
    for (; i < argc; i++) {
      const char *a = argv[i];
      if (a[0] != '-') {
        if (id) fallback();
        id = a;
      } else if (is_flag(a, "bundle", &v) || is_flag(a, "b", &v)) bundle = take_value(v, &i);
      else if (is_flag(a, "pid-file", &v)) pid_file = take_value(v, &i);
      else if (is_flag(a, "console-socket", &v)) console = take_value(v, &i);
      else if (is_flag(a, "no-pivot", &v) || is_flag(a, "no-new-keyring", &v)) continue;
      else fallback(); /* --preserve-fds and anything else */
    }
    if (!id || !valid_id(id)) fallback();
    return cmd_create(abs_root, bundle, pid_file, console, network, strace, pcap_log, debug_log, id);
  }
  fallback();
  return 1;
}
