/*
 * The Sentry's trapped-call cost (tsvisor bench --only sentry), run natively, under `tsvisor run --network=host`
 * and under `--network=sandbox`. Each test times single calls with CLOCK_MONOTONIC and prints one JSON line
 * {"test":..,"median_ns":..,"p99_ns":..,"n":..}. getppid (never trapped) is timed in batches of 1000, since one
 * call is shorter than the clock read around it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *test, double *v, int n) {
  qsort(v, n, sizeof *v, cmp);
  printf("{\"test\":\"%s\",\"median_ns\":%.1f,\"p99_ns\":%.1f,\"n\":%d}\n", test, v[n / 2], v[(int)(n * 0.99)], n);
  fflush(stdout);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  double *v = calloc(n, sizeof *v);

  for (int i = 0; i < n; i++) {
    double t0 = now_ns();
    for (int k = 0; k < 1000; k++) getppid();
    v[i] = (now_ns() - t0) / 1000;
  }
  report("getppid", v, n);

  /* connect on AF_UNIX to a path that does not exist: trapped, not ours, CONTINUEd; the kernel says ENOENT. */
  int u = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  strcpy(sun.sun_path, "/nonexistent/tsvisor-bench.sock");
  for (int i = 0; i < n; i++) {
    double t0 = now_ns();
    connect(u, (struct sockaddr *)&sun, sizeof sun);
    v[i] = now_ns() - t0;
  }
  report("connect-unix-continue", v, n);
  close(u);

  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) { perror("socket"); return 1; }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  for (int i = 0; i < n; i++) {
    double t0 = now_ns();
    getsockname(s, (struct sockaddr *)&a, &len);
    v[i] = now_ns() - t0;
  }
  report("getsockname", v, n);
  int one = 1;
  for (int i = 0; i < n; i++) {
    double t0 = now_ns();
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    v[i] = now_ns() - t0;
  }
  report("setsockopt-nodelay", v, n);
  close(s);

  /* connect + accept + close on the sandbox's own loopback. */
  int l = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in la = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(l, (struct sockaddr *)&la, sizeof la) < 0 || listen(l, 128) < 0) { perror("listen"); return 1; }
  len = sizeof la;
  getsockname(l, (struct sockaddr *)&la, &len);
  int cycles = n / 4 > 0 ? n / 4 : 1;
  for (int i = 0; i < cycles; i++) {
    double t0 = now_ns();
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&la, sizeof la) < 0) { perror("connect"); return 1; }
    int x = accept(l, NULL, NULL);
    if (x < 0) { perror("accept"); return 1; }
    close(c);
    close(x);
    v[i] = now_ns() - t0;
  }
  report("connect-accept-close", v, cycles);
  return 0;
}
