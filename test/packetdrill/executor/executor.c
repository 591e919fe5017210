/*
 * pd-executor: makes the system calls of a packetdrill script inside tsvisor's sandbox, for the conformance
 * runner's sandbox DUT (test/packetdrill/dut-sandbox.ts). It knows nothing about sockets: each request is one raw
 * syscall(2) with six arguments, any of which may point into buffers sent with the request, and buffers may hold
 * pointers to each other (iovecs in a msghdr); the answer carries the result (or -errno) and every buffer's bytes
 * after the call. So every call a script makes is the program's own call, crossing the seccomp trap (socket,
 * bind, connect, ...) or running natively on the socketpair the Sentry gave it (read, poll, epoll_wait, ...).
 *
 *   pd-executor REQUEST-FIFO RESPONSE-FIFO
 *
 * Requests are served concurrently, each on a thread of a pool that grows when every thread is busy: a script's
 * blocking call (accept, read, poll) must not hold up the calls the script makes while it waits, as packetdrill
 * runs each blocking call on its own thread. The FIFOs, not sockets, carry the protocol, so that it never itself
 * meets the filter. All integers are little-endian (x86-64):
 *
 *   request:  u32 size (of what follows), u32 id, i32 nr, u32 nbuf, u32 nreloc, u32 zero,
 *             6 × { i64 value, u32 buf (0xffffffff: value is the argument; else: the argument is buffer buf's
 *             address + value), u32 zero },
 *             nbuf × { u32 len, u32 zero }, nreloc × { u32 buf, u32 off, u32 target, u32 zero } (writes the
 *             address of buffer target at byte off of buffer buf), then the buffers' bytes back to back.
 *   response: u32 size, u32 id, i64 result (-errno on failure), then every buffer's bytes after the call.
 *
 * End of file on the request FIFO ends the process (exit 0); a malformed request ends it with status 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NONE 0xffffffffu
#define MAX_BUFS 64
#define MAX_BYTES (16u << 20)

struct arg {
  int64_t value;
  uint32_t buf;
  uint32_t zero;
};

struct reloc {
  uint32_t buf, off, target, zero;
};

struct request {
  struct request *next;
  uint32_t id;
  int32_t nr;
  uint32_t nbuf, nreloc;
  struct arg args[6];
  uint32_t len[MAX_BUFS];
  unsigned char *buf[MAX_BUFS];
  struct reloc *relocs;
};

static int in_fd, out_fd;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static struct request *queue_head, *queue_tail;
/* Workers waiting for work, and requests queued: every queued request has a waiting worker of its own. */
static int idle, queued;

static void die(const char *what) {
  fprintf(stderr, "pd-executor: %s\n", what);
  exit(2);
}

static int read_all(void *p, size_t n) {
  unsigned char *b = p;
  while (n > 0) {
    ssize_t r = read(in_fd, b, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    b += r;
    n -= (size_t)r;
  }
  return 0;
}

static void write_all(const void *p, size_t n) {
  const unsigned char *b = p;
  while (n > 0) {
    ssize_t r = write(out_fd, b, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("cannot write a response");
    b += r;
    n -= (size_t)r;
  }
}

static void serve(struct request *q) {
  long a[6];
  for (int i = 0; i < 6; i++) {
    a[i] = q->args[i].buf == NONE ? (long)q->args[i].value : (long)(q->buf[q->args[i].buf] + q->args[i].value);
  }
  for (uint32_t i = 0; i < q->nreloc; i++) {
    struct reloc *r = &q->relocs[i];
    uintptr_t addr = (uintptr_t)q->buf[r->target];
    memcpy(q->buf[r->buf] + r->off, &addr, sizeof addr);
  }
  errno = 0;
  long r = syscall(q->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
  int64_t result = r == -1 && errno ? -(int64_t)errno : (int64_t)r;
  /* Pointers written by relocations go back as zeros: the runner never needs our addresses. */
  for (uint32_t i = 0; i < q->nreloc; i++) memset(q->buf[q->relocs[i].buf] + q->relocs[i].off, 0, sizeof(uintptr_t));
  uint32_t size = 4 + 8;
  for (uint32_t i = 0; i < q->nbuf; i++) size += q->len[i];
  pthread_mutex_lock(&out_lock);
  write_all(&size, 4);
  write_all(&q->id, 4);
  write_all(&result, 8);
  for (uint32_t i = 0; i < q->nbuf; i++) write_all(q->buf[i], q->len[i]);
  pthread_mutex_unlock(&out_lock);
  for (uint32_t i = 0; i < q->nbuf; i++) free(q->buf[i]);
  free(q->relocs);
  free(q);
}

static void *worker(void *unused) {
  (void)unused;
  for (;;) {
    pthread_mutex_lock(&lock);
    while (!queue_head) pthread_cond_wait(&work, &lock);
    struct request *q = queue_head;
    queue_head = q->next;
    if (!queue_head) queue_tail = NULL;
    idle--;
    queued--;
    pthread_mutex_unlock(&lock);
    serve(q);
    pthread_mutex_lock(&lock);
    idle++;
    pthread_mutex_unlock(&lock);
  }
  return NULL;
}

static struct request *read_request(void) {
  uint32_t size;
  if (read_all(&size, 4) < 0) return NULL;
  if (size < 20 + 6 * 16 || size > MAX_BYTES) die("bad request size");
  struct request *q = calloc(1, sizeof *q);
  if (!q) die("out of memory");
  uint32_t zero;
  if (read_all(&q->id, 4) || read_all(&q->nr, 4) || read_all(&q->nbuf, 4) || read_all(&q->nreloc, 4) || read_all(&zero, 4) ||
      read_all(q->args, sizeof q->args))
    die("truncated request");
  if (q->nbuf > MAX_BUFS || q->nreloc > MAX_BUFS) die("too many buffers");
  for (uint32_t i = 0; i < q->nbuf; i++) {
    uint32_t pair[2];
    if (read_all(pair, 8)) die("truncated request");
    if (pair[0] > MAX_BYTES) die("buffer too large");
    q->len[i] = pair[0];
  }
  q->relocs = calloc(q->nreloc + 1, sizeof *q->relocs);
  if (!q->relocs) die("out of memory");
  if (q->nreloc && read_all(q->relocs, q->nreloc * sizeof *q->relocs)) die("truncated request");
  for (uint32_t i = 0; i < q->nreloc; i++) {
    struct reloc *r = &q->relocs[i];
    if (r->buf >= q->nbuf || r->target >= q->nbuf || (uint64_t)r->off + sizeof(uintptr_t) > q->len[r->buf]) die("bad relocation");
  }
  for (int i = 0; i < 6; i++) {
    if (q->args[i].buf != NONE && q->args[i].buf >= q->nbuf) die("bad buffer argument");
  }
  for (uint32_t i = 0; i < q->nbuf; i++) {
    /* At least one byte, so that a zero-length buffer still has an address of its own. */
    q->buf[i] = malloc(q->len[i] ? q->len[i] : 1);
    if (!q->buf[i]) die("out of memory");
    if (q->len[i] && read_all(q->buf[i], q->len[i])) die("truncated request");
  }
  return q;
}

int main(int argc, char **argv) {
  if (argc != 3) die("usage: pd-executor REQUEST-FIFO RESPONSE-FIFO");
  /* A write on a socket the peer has closed gives EPIPE, as under packetdrill, not a fatal SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);
  in_fd = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (in_fd < 0) die("cannot open the request FIFO");
  out_fd = open(argv[2], O_WRONLY | O_CLOEXEC);
  if (out_fd < 0) die("cannot open the response FIFO");
  /* Hello: a response with id 0, so the runner knows the FIFOs are open at both ends. */
  uint32_t hello[4] = {12, 0, 0, 0};
  write_all(hello, sizeof hello);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (;;) {
    struct request *q = read_request();
    if (!q) return 0;
    pthread_mutex_lock(&lock);
    if (queue_tail) queue_tail->next = q;
    else queue_head = q;
    queue_tail = q;
    queued++;
    int spawn = idle < queued;
    if (spawn) idle++;
    pthread_cond_signal(&work);
    pthread_mutex_unlock(&lock);
    if (spawn) {
      pthread_t t;
      if (pthread_create(&t, &attr, worker, NULL) != 0) die("cannot start a thread");
    }
  }
}
