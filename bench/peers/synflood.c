/*
 * A bounded SYN flood for the bench's syn-flood row (tsvisor bench --only syn-flood), run in the client namespace:
 * IPv4 SYNs with an MSS option, from random sources in SRC_NET (a /16 to /30, off the veth's subnet so that the
 * server routes its SYN-ACKs to the client namespace, which does not forward and drops them) and random ports,
 * written to an AF_PACKET socket on IFACE with sendmmsg, paced to RATE per second. It stops after COUNT SYNs,
 * after SECONDS, or at SIGINT/SIGTERM, whichever comes first, and prints one JSON line
 * {"sent":N,"seconds":S,"rate":R,"errors":E} (rate counts the frames the device took: sent − errors). Every address must lie in 198.18.0.0/15 (the test network), or it
 * refuses to start: it cannot send anywhere else.
 *
 *   synflood IFACE DST_MAC SRC_MAC DST_IP DPORT SRC_NET RATE COUNT SECONDS SEED
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_LEN (14 + 20 + 24)
#define BATCH 64

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t rng_state;
/* xorshift64*: fast, and seeded so that a run can be repeated. */
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1DULL;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int parse_mac(const char *s, uint8_t *mac) {
  unsigned v[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) {
    if (v[i] > 255) return -1;
    mac[i] = (uint8_t)v[i];
  }
  return 0;
}

/* Whether a host-order address lies in 198.18.0.0/15. */
static int in_test_net(uint32_t a) { return (a & 0xfffe0000u) == 0xc6120000u; }

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s) {
  for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t)p[i] << 8 | p[i + 1];
  if (n & 1) s += (uint32_t)p[n - 1] << 8;
  return s;
}

static uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

static void die(const char *what) {
  fprintf(stderr, "synflood: %s: %s\n", what, strerror(errno));
  exit(1);
}

int main(int argc, char **argv) {
  if (argc != 11) {
    fprintf(stderr, "usage: synflood IFACE DST_MAC SRC_MAC DST_IP DPORT SRC_NET/LEN RATE COUNT SECONDS SEED\n");
    return 2;
  }
  uint8_t dmac[6], smac[6];
  struct in_addr dst, net;
  char netbuf[64];
  snprintf(netbuf, sizeof netbuf, "%s", argv[6]);
  char *slash = strchr(netbuf, '/');
  int plen = slash ? atoi(slash + 1) : -1;
  if (slash) *slash = 0;
  long dport = atol(argv[5]);
  double rate = atof(argv[7]);
  long long count = atoll(argv[8]);
  double seconds = atof(argv[9]);
  rng_state = (uint64_t)atoll(argv[10]) * 0x9E3779B97F4A7C15ULL + 1;
  if (parse_mac(argv[2], dmac) || parse_mac(argv[3], smac)) { fprintf(stderr, "synflood: bad MAC address\n"); return 2; }
  if (!inet_aton(argv[4], &dst) || !inet_aton(netbuf, &net) || plen < 16 || plen > 30) {
    fprintf(stderr, "synflood: bad DST_IP or SRC_NET (a /16 to /30)\n");
    return 2;
  }
  uint32_t mask = plen == 0 ? 0 : 0xffffffffu << (32 - plen);
  uint32_t base = ntohl(net.s_addr) & mask;
  if (!in_test_net(ntohl(dst.s_addr)) || !in_test_net(base) || !in_test_net(base | ~mask)) {
    fprintf(stderr, "synflood: addresses outside 198.18.0.0/15 refused\n");
    return 2;
  }
  if (dport < 1 || dport > 65535 || !(rate > 0) || count < 1 || !(seconds > 0)) {
    fprintf(stderr, "synflood: bad DPORT, RATE, COUNT or SECONDS\n");
    return 2;
  }

  int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) die("socket(AF_PACKET)");
  struct sockaddr_ll ll = {0};
  ll.sll_family = AF_PACKET;
  ll.sll_ifindex = (int)if_nametoindex(argv[1]);
  if (ll.sll_ifindex == 0) die(argv[1]);
  if (bind(fd, (struct sockaddr *)&ll, sizeof ll) < 0) die("bind");
  int one = 1;
  /* No qdisc in the way (a veth has none to speak of): the flood's cost is the receivers', not ours. */
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  static uint8_t frames[BATCH][FRAME_LEN];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  uint32_t hosts = ~mask - 1; /* host parts 1 .. 2^(32-plen) - 2 */
  uint32_t daddr = dst.s_addr;
  for (int i = 0; i < BATCH; i++) {
    uint8_t *f = frames[i];
    memcpy(f, dmac, 6);
    memcpy(f + 6, smac, 6);
    f[12] = 0x08, f[13] = 0x00;
    uint8_t *ip = f + 14;
    ip[0] = 0x45, ip[1] = 0, ip[2] = 0, ip[3] = 44, ip[6] = 0x40, ip[7] = 0, ip[8] = 64, ip[9] = 6;
    memcpy(ip + 16, &daddr, 4);
    uint8_t *tcp = ip + 20;
    tcp[2] = (uint8_t)(dport >> 8), tcp[3] = (uint8_t)dport;
    tcp[8] = tcp[9] = tcp[10] = tcp[11] = 0;
    tcp[12] = 6 << 4, tcp[13] = 0x02;
    tcp[14] = 0xfa, tcp[15] = 0xf0; /* window 64240 */
    tcp[18] = tcp[19] = 0;
    tcp[20] = 2, tcp[21] = 4, tcp[22] = 0x05, tcp[23] = 0xb4; /* MSS 1460 */
    iov[i].iov_base = f;
    iov[i].iov_len = FRAME_LEN;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }

  long long sent = 0, errors = 0;
  uint16_t id = 0;
  double start = now_s(), t = start;
  while (!stop && sent < count && t - start < seconds) {
    /* How many are due by now; send them (at most a batch), or sleep until the next one is. */
    long long due = (long long)((t - start) * rate) + 1 - sent;
    if (due <= 0) {
      double wait = (sent + 1) / rate - (t - start);
      struct timespec ts = {0, (long)(wait > 0.001 ? 1000000 : wait * 1e9)};
      nanosleep(&ts, NULL);
      t = now_s();
      continue;
    }
    int n = due > BATCH ? BATCH : (int)due;
    if (n > count - sent) n = (int)(count - sent);
    for (int i = 0; i < n; i++) {
      uint8_t *ip = frames[i] + 14, *tcp = ip + 20;
      uint64_t r = rnd();
      uint32_t src = htonl(base | (1 + (uint32_t)(r % hosts)));
      uint16_t sport = (uint16_t)(1024 + (r >> 32) % 64512);
      uint32_t isn = (uint32_t)rnd();
      id++;
      ip[4] = (uint8_t)(id >> 8), ip[5] = (uint8_t)id;
      ip[10] = ip[11] = 0;
      memcpy(ip + 12, &src, 4);
      uint16_t c = fold(sum16(ip, 20, 0));
      ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
      tcp[0] = (uint8_t)(sport >> 8), tcp[1] = (uint8_t)sport;
      tcp[4] = (uint8_t)(isn >> 24), tcp[5] = (uint8_t)(isn >> 16), tcp[6] = (uint8_t)(isn >> 8), tcp[7] = (uint8_t)isn;
      tcp[16] = tcp[17] = 0;
      /* Pseudo-header: addresses, protocol, TCP length. */
      uint32_t s = sum16(ip + 12, 8, 6 + 24);
      c = fold(sum16(tcp, 24, s));
      tcp[16] = (uint8_t)(c >> 8), tcp[17] = (uint8_t)c;
    }
    int done = 0;
    while (done < n && !stop) {
      int k = sendmmsg(fd, msgs + done, (unsigned)(n - done), 0);
      if (k < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS || errno == EAGAIN) {
          /* The device queue is full: the frame is lost, as on a link at capacity. */
          errors++;
          done++;
          continue;
        }
        die("sendmmsg");
      }
      done += k;
    }
    sent += done;
    t = now_s();
  }
  double elapsed = now_s() - start;
  printf("{\"sent\":%lld,\"seconds\":%.3f,\"rate\":%.0f,\"errors\":%lld}\n", sent, elapsed, elapsed > 0 ? (sent - errors) / elapsed : 0.0, errors);
  return 0;
}
