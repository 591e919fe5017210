/** A small C program the platform tests run under the filter, compiled once per test process. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int per_thread;

static void *trapped_calls(void *arg) {
  long bad = 0;
  for (int i = 0; i < per_thread; i++) if (getsockname(-1, NULL, NULL) != -1 || errno != EBADF) bad++;
  return (void *)bad;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  setvbuf(stdout, NULL, _IONBF, 0);
  if (!strcmp(mode, "x32")) {
    printf("x32\n");
    long r = syscall(0x40000000 | SYS_getpid);
    printf("survived %ld\n", r);
  } else if (!strcmp(mode, "int80")) {
    printf("int80\n");
    long r, args[3] = {2, 1, 0};
    /* i386 socketcall(SYS_SOCKET, {AF_INET, SOCK_STREAM, 0}) */
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(102), "b"(1), "c"(args) : "memory");
    printf("survived %ld\n", r);
  } else if (!strcmp(mode, "io_uring")) {
    char params[120] = {0};
    long r = syscall(SYS_io_uring_setup, 1, params);
    printf("io_uring_setup %ld errno %d\n", r, r < 0 ? errno : 0);
  } else if (!strcmp(mode, "loop")) {
    /* Trapped getsockname on fd -1, n times: the Sentry answers each. */
    int n = atoi(argv[2]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int bad = 0;
    for (int i = 0; i < n; i++) if (getsockname(-1, NULL, NULL) != -1 || errno != EBADF) bad++;
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("loop %d bad %d ns_per_call %.0f\n", n, bad, ns / n);
  } else if (!strcmp(mode, "threads")) {
    /* T threads each making N trapped calls at once. */
    int t = atoi(argv[2]);
    per_thread = atoi(argv[3]);
    pthread_t th[64];
    long bad = 0;
    for (int i = 0; i < t && i < 64; i++) pthread_create(&th[i], NULL, trapped_calls, NULL);
    for (int i = 0; i < t && i < 64; i++) {
      void *r;
      pthread_join(th[i], &r);
      bad += (long)r;
    }
    printf("threads %d calls %d bad %ld\n", t, t * per_thread, bad);
  } else if (!strcmp(mode, "getppid")) {
    int n = atoi(argv[2]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("getppid ns_per_call %.1f\n", ns / n);
  } else {
    fprintf(stderr, "probe: unknown mode %s\n", mode);
    return 2;
  }
  return 0;
}
`;

let built: { path: string; dir: string } | undefined;

/** The compiled probe's path (under a temporary directory removed at exit). */
export function probe(): string {
  if (built) return built.path;
  const dir = mkdtempSync(join(tmpdir(), 'tsa-probe-'));
  writeFileSync(join(dir, 'probe.c'), SOURCE);
  execFileSync('cc', ['-O2', '-pthread', '-o', join(dir, 'probe'), join(dir, 'probe.c')]);
  built = { path: join(dir, 'probe'), dir };
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return built.path;
}
