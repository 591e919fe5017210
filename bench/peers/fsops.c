/*
 * The file-system figures of `tsvisor bench --only gofer`, run the same way on the host and inside
 * `tsvisor run --rootfs` (built static, so a busybox root can run it). Each prints "<nanoseconds> <amount>":
 *   fsops seqread FILE          read(2) of FILE in 1 MiB pieces to its end; amount = bytes
 *   fsops randread FILE COUNT   COUNT pread(2)s of 4 KiB at pseudo-random 4 KiB-aligned offsets; amount = reads
 *   fsops smallread DIR COUNT   open(2), read(2) to the end and close(2) of DIR/dK/fI for I < COUNT, K = I / 1000
 *                               (the files of a few hundred bytes to 4 KiB); amount = files
 *   fsops time PROGRAM ARGS...  runs PROGRAM (its stdout to /dev/null) to its end; amount = its exit status
 *                               (non-zero also exits 1)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static char buf[1 << 20];

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "seqread") == 0) {
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return perror(argv[2]), 1;
    long long t0 = now(), total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
    if (n < 0) return perror("read"), 1;
    printf("%lld %lld\n", now() - t0, total);
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "randread") == 0) {
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return perror(argv[2]), 1;
    off_t pages = lseek(fd, 0, SEEK_END) / 4096;
    long count = atol(argv[3]);
    if (pages <= 0 || count <= 0) return fprintf(stderr, "randread: empty file or count\n"), 1;
    uint64_t x = 88172645463325252ULL; /* xorshift64: the same offsets on every run */
    long long t0 = now();
    for (long i = 0; i < count; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      if (pread(fd, buf, 4096, (off_t)(x % (uint64_t)pages) * 4096) != 4096) return perror("pread"), 1;
    }
    printf("%lld %ld\n", now() - t0, count);
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "smallread") == 0) {
    long count = atol(argv[3]);
    if (count <= 0) return fprintf(stderr, "smallread: no count\n"), 1;
    char path[4096];
    long long t0 = now();
    for (long i = 0; i < count; i++) {
      snprintf(path, sizeof path, "%s/d%ld/f%ld", argv[2], i / 1000, i % 1000);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) return perror(path), 1;
      ssize_t n, got = 0;
      while ((n = read(fd, buf, sizeof buf)) > 0) got += n;
      if (n < 0 || got == 0) return fprintf(stderr, "smallread: %s: %s\n", path, n < 0 ? strerror(errno) : "empty"), 1;
      close(fd);
    }
    printf("%lld %ld\n", now() - t0, count);
    return 0;
  }
  if (argc >= 3 && strcmp(argv[1], "time") == 0) {
    long long t0 = now();
    pid_t pid = fork();
    if (pid < 0) return perror("fork"), 1;
    if (pid == 0) {
      int null = open("/dev/null", O_WRONLY);
      if (null >= 0) dup2(null, 1);
      execv(argv[2], argv + 2);
      perror(argv[2]);
      _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) return perror("waitpid"), 1;
    long long t = now() - t0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("%lld %d\n", t, code);
    return code != 0;
  }
  fprintf(stderr, "usage: fsops seqread FILE | randread FILE COUNT | smallread DIR COUNT | time PROGRAM ARGS...\n");
  return 2;
}
