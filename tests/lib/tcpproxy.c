/* tcpproxy.c — see tcpproxy.h. One thread, poll(2), non-blocking sockets,
 * one buffer per direction per connection: a direction is read only when
 * its buffer is empty, so a slow side never makes the proxy grow. */
#include "tcpproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { PAIRS_MAX = 64, BUF_BYTES = 65536, NEEDLE_MAX = 64 };

typedef struct dir_buf {
  size_t len, off;
  char data[BUF_BYTES];
} dir_buf;

typedef struct pair {
  int c, s; /* client and server sockets; -1 when the slot is free */
  dir_buf c2s, s2c;
  /* After the marker: server messages are parsed and dropped until 'Z'. */
  int cutting;
  unsigned char hdr[5];
  int hdr_n;
  uint32_t remain;
  char tail[NEEDLE_MAX];
  size_t tail_n;
  /* Client messages: the first (startup) has no type byte. */
  int c_started, c_hdr_n, needle_hit;
  unsigned char c_hdr[5];
  uint32_t c_remain;
} pair;

struct th_proxy {
  int lfd, port, wake[2];
  pthread_t thread;
  char up_host[256];
  int up_port;
  pthread_mutex_t mu;
  char needle[NEEDLE_MAX];
  int armed;
  char then_needle[NEEDLE_MAX]; /* armed the moment `needle` starts a cut ("" none) */
  uint32_t min_bind; /* cut only when the Bind after the marker is this big */
  atomic_int stall, stop, cut_all_req, cuts, accepted;
  pair pairs[PAIRS_MAX];
  char scan[NEEDLE_MAX + BUF_BYTES];
};

static void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void pair_close(pair *p) {
  if (p->c >= 0) close(p->c);
  if (p->s >= 0) close(p->s);
  p->c = p->s = -1;
  p->c2s.len = p->c2s.off = p->s2c.len = p->s2c.off = 0;
  p->cutting = 0;
  p->hdr_n = 0;
  p->remain = 0;
  p->tail_n = 0;
  p->c_started = p->c_hdr_n = p->needle_hit = 0;
  p->c_remain = 0;
}

static int upstream_connect(th_proxy *px) {
  int fd;
  if (px->up_host[0] == '/') {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char tail[24];
    int tl = snprintf(tail, sizeof tail, "/.s.PGSQL.%d", px->up_port);
    size_t hl = strlen(px->up_host);
    if (tl < 0 || hl + (size_t)tl >= sizeof a.sun_path) return -1;
    memcpy(a.sun_path, px->up_host, hl);
    memcpy(a.sun_path + hl, tail, (size_t)tl + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
      close(fd);
      return -1;
    }
  } else {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)px->up_port)};
    if (inet_pton(AF_INET, px->up_host, &a.sin_addr) != 1) return -1;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
      close(fd);
      return -1;
    }
  }
  nonblock(fd);
  return fd;
}

/* Writes what it can; -1 when the peer is gone. */
static int flush_buf(int fd, dir_buf *b) {
  while (b->off < b->len) {
    ssize_t n = send(fd, b->data + b->off, b->len - b->off, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    b->off += (size_t)n;
  }
  b->len = b->off = 0;
  return 0;
}

/* Looks for the armed marker in what the client just sent. */
static void watch_needle(th_proxy *px, pair *p, const char *data, size_t n) {
  pthread_mutex_lock(&px->mu);
  if (px->armed && !p->cutting) {
    size_t nl = strlen(px->needle);
    char *scan = px->scan;
    memcpy(scan, p->tail, p->tail_n);
    memcpy(scan + p->tail_n, data, n);
    size_t total = p->tail_n + n;
    if (memmem(scan, total, px->needle, nl)) p->needle_hit = 1;
    size_t keep = nl > 1 ? nl - 1 : 0;
    if (keep > total) keep = total;
    memcpy(p->tail, scan + total - keep, keep);
    p->tail_n = keep;
  }
  pthread_mutex_unlock(&px->mu);
}

static void start_cutting(th_proxy *px, pair *p) {
  px->armed = 0;
  if (px->then_needle[0]) { /* the next cut is armed before anything else can pass */
    memcpy(px->needle, px->then_needle, sizeof px->needle);
    px->then_needle[0] = 0;
    px->min_bind = 0;
    px->armed = 1;
  }
  p->cutting = 1;
  p->hdr_n = 0;
  p->remain = 0;
}

/* Follows client message boundaries: after a marker, the statement's Bind
 * message decides (its size is the size of the batch's parameters). */
static void track_client(th_proxy *px, pair *p, const unsigned char *d, size_t n) {
  pthread_mutex_lock(&px->mu);
  if (p->needle_hit && px->armed && px->min_bind == 0) {
    start_cutting(px, p);
    p->needle_hit = 0;
  }
  size_t i = 0;
  while (i < n) {
    if (p->c_remain > 0) {
      size_t k = n - i < p->c_remain ? n - i : p->c_remain;
      i += k;
      p->c_remain -= (uint32_t)k;
      continue;
    }
    int need = p->c_started ? 5 : 4;
    p->c_hdr[p->c_hdr_n++] = d[i++];
    if (p->c_hdr_n < need) continue;
    const unsigned char *l = p->c_hdr + need - 4;
    uint32_t len = (uint32_t)l[0] << 24 | (uint32_t)l[1] << 16 | (uint32_t)l[2] << 8 | l[3];
    p->c_remain = len >= 4 ? len - 4 : 0;
    p->c_hdr_n = 0;
    if (!p->c_started) {
      p->c_started = 1;
      continue;
    }
    if (p->c_hdr[0] == 'B' && p->needle_hit) {
      p->needle_hit = 0;
      if (px->armed && !p->cutting && len >= px->min_bind) start_cutting(px, p);
    }
  }
  pthread_mutex_unlock(&px->mu);
}

/* Parses and drops server bytes after the marker; 1 once ReadyForQuery ends. */
static int drop_until_ready(pair *p, const unsigned char *d, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (p->hdr_n < 5) {
      p->hdr[p->hdr_n++] = d[i++];
      if (p->hdr_n == 5) {
        uint32_t len = (uint32_t)p->hdr[1] << 24 | (uint32_t)p->hdr[2] << 16 |
                       (uint32_t)p->hdr[3] << 8 | p->hdr[4];
        p->remain = len >= 4 ? len - 4 : 0;
      } else {
        continue;
      }
    } else {
      size_t k = n - i < p->remain ? n - i : p->remain;
      i += k;
      p->remain -= (uint32_t)k;
    }
    if (p->hdr_n == 5 && p->remain == 0) {
      if (p->hdr[0] == 'Z') return 1;
      p->hdr_n = 0;
    }
  }
  return 0;
}

static void pump_pair(th_proxy *px, pair *p, short cev, short sev) {
  if ((cev & (POLLIN | POLLHUP | POLLERR)) && p->c2s.len == 0) {
    ssize_t n = recv(p->c, p->c2s.data, BUF_BYTES, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      pair_close(p);
      return;
    }
    if (n > 0) {
      watch_needle(px, p, p->c2s.data, (size_t)n);
      track_client(px, p, (const unsigned char *)p->c2s.data, (size_t)n);
      p->c2s.len = (size_t)n;
      p->c2s.off = 0;
    }
  }
  if (p->c2s.len && flush_buf(p->s, &p->c2s) < 0) {
    pair_close(p);
    return;
  }
  if ((sev & (POLLIN | POLLHUP | POLLERR)) && p->s2c.len == 0) {
    ssize_t n = recv(p->s, p->s2c.data, BUF_BYTES, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      pair_close(p);
      return;
    }
    if (n > 0 && p->cutting) {
      if (drop_until_ready(p, (unsigned char *)p->s2c.data, (size_t)n)) {
        pair_close(p);
        atomic_fetch_add(&px->cuts, 1);
      }
      return;
    }
    if (n > 0) {
      p->s2c.len = (size_t)n;
      p->s2c.off = 0;
    }
  }
  if (p->s2c.len && flush_buf(p->c, &p->s2c) < 0) pair_close(p);
}

static void *proxy_main(void *arg) {
  th_proxy *px = arg;
  struct pollfd fds[2 + 2 * PAIRS_MAX];
  int owner[2 + 2 * PAIRS_MAX];
  while (!atomic_load(&px->stop)) {
    if (atomic_load(&px->cut_all_req)) {
      for (int i = 0; i < PAIRS_MAX; i++)
        if (px->pairs[i].c >= 0) pair_close(&px->pairs[i]);
      atomic_store(&px->cut_all_req, 0);
    }
    int stalled = atomic_load(&px->stall);
    int n = 0;
    fds[n++] = (struct pollfd){px->wake[0], POLLIN, 0};
    fds[n++] = (struct pollfd){px->lfd, POLLIN, 0};
    for (int i = 0; i < PAIRS_MAX && !stalled; i++) {
      pair *p = &px->pairs[i];
      if (p->c < 0) continue;
      short ce = (short)((p->c2s.len == 0 ? POLLIN : 0) | (p->s2c.len ? POLLOUT : 0));
      short se = (short)((p->s2c.len == 0 ? POLLIN : 0) | (p->c2s.len ? POLLOUT : 0));
      owner[n] = i;
      fds[n++] = (struct pollfd){p->c, ce, 0};
      owner[n] = i;
      fds[n++] = (struct pollfd){p->s, se, 0};
    }
    if (poll(fds, (nfds_t)n, 50) < 0) continue;
    if (fds[0].revents) {
      char junk[64];
      while (read(px->wake[0], junk, sizeof junk) > 0) {
      }
    }
    if (fds[1].revents & POLLIN) {
      int c = accept4(px->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c >= 0) {
        int s = upstream_connect(px);
        pair *slot = NULL;
        for (int i = 0; i < PAIRS_MAX && !slot; i++)
          if (px->pairs[i].c < 0) slot = &px->pairs[i];
        if (s < 0 || !slot) {
          close(c);
          if (s >= 0) close(s);
        } else {
          slot->c = c;
          slot->s = s;
          atomic_fetch_add(&px->accepted, 1);
        }
      }
    }
    if (stalled || atomic_load(&px->stall) || atomic_load(&px->cut_all_req)) continue;
    for (int k = 2; k + 1 < n; k += 2) {
      pair *p = &px->pairs[owner[k]];
      if (p->c < 0) continue; /* closed earlier in this round */
      if (fds[k].revents || fds[k + 1].revents) pump_pair(px, p, fds[k].revents, fds[k + 1].revents);
    }
  }
  for (int i = 0; i < PAIRS_MAX; i++)
    if (px->pairs[i].c >= 0) pair_close(&px->pairs[i]);
  return NULL;
}

/* The last `key=` value in dsn, up to a space. */
static int dsn_value(const char *dsn, const char *key, char *out, size_t n) {
  const char *hit = NULL;
  size_t kl = strlen(key);
  for (const char *s = dsn; (s = strstr(s, key)) != NULL; s += kl)
    if ((s == dsn || s[-1] == ' ') && s[kl] == '=') hit = s + kl + 1;
  if (!hit) return -1;
  size_t len = strcspn(hit, " ");
  if (len >= n) return -1;
  memcpy(out, hit, len);
  out[len] = 0;
  return 0;
}

th_proxy *th_proxy_start(const char *upstream_dsn) {
  th_proxy *px = calloc(1, sizeof *px);
  if (!px) return NULL;
  char port[16] = "5432";
  if (dsn_value(upstream_dsn, "host", px->up_host, sizeof px->up_host) != 0) {
    free(px);
    return NULL;
  }
  dsn_value(upstream_dsn, "port", port, sizeof port);
  px->up_port = atoi(port);
  for (int i = 0; i < PAIRS_MAX; i++) px->pairs[i].c = px->pairs[i].s = -1;
  pthread_mutex_init(&px->mu, NULL);
  px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  if (px->lfd < 0 || bind(px->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(px->lfd, 64) != 0 ||
      getsockname(px->lfd, (struct sockaddr *)&a, &al) != 0 || pipe2(px->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    if (px->lfd >= 0) close(px->lfd);
    free(px);
    return NULL;
  }
  px->port = ntohs(a.sin_port);
  if (pthread_create(&px->thread, NULL, proxy_main, px) != 0) {
    close(px->lfd);
    close(px->wake[0]);
    close(px->wake[1]);
    free(px);
    return NULL;
  }
  return px;
}

int th_proxy_port(const th_proxy *px) { return px->port; }

void th_proxy_dsn(const th_proxy *px, const char *dsn, char *out, size_t out_len) {
  snprintf(out, out_len, "%s host=127.0.0.1 port=%d sslmode=disable gssencmode=disable", dsn, px->port);
}

static void wake(th_proxy *px) {
  char one = 1;
  ssize_t n = write(px->wake[1], &one, 1);
  (void)n;
}

void th_proxy_stall(th_proxy *px, int on) {
  atomic_store(&px->stall, on ? 1 : 0);
  wake(px);
}

void th_proxy_cut_all(th_proxy *px) {
  atomic_store(&px->cut_all_req, 1);
  wake(px);
  for (int i = 0; i < 2000 && atomic_load(&px->cut_all_req); i++) usleep(1000);
}

void th_proxy_cut_after(th_proxy *px, const char *needle) { th_proxy_cut_after_big(px, needle, 0); }

void th_proxy_cut_after_then(th_proxy *px, const char *needle, const char *then) {
  th_proxy_cut_after_big(px, needle, 0);
  pthread_mutex_lock(&px->mu);
  snprintf(px->then_needle, sizeof px->then_needle, "%s", then);
  pthread_mutex_unlock(&px->mu);
}

void th_proxy_cut_after_big(th_proxy *px, const char *needle, size_t min_bind_bytes) {
  pthread_mutex_lock(&px->mu);
  px->then_needle[0] = 0;
  px->armed = needle != NULL;
  px->min_bind = (uint32_t)min_bind_bytes;
  snprintf(px->needle, sizeof px->needle, "%s", needle ? needle : "");
  pthread_mutex_unlock(&px->mu);
  wake(px);
}

int th_proxy_cuts(const th_proxy *px) { return atomic_load(&((th_proxy *)px)->cuts); }
int th_proxy_accepted(const th_proxy *px) { return atomic_load(&((th_proxy *)px)->accepted); }

void th_proxy_stop(th_proxy *px) {
  if (!px) return;
  atomic_store(&px->stop, 1);
  wake(px);
  pthread_join(px->thread, NULL);
  close(px->lfd);
  close(px->wake[0]);
  close(px->wake[1]);
  pthread_mutex_destroy(&px->mu);
  free(px);
}
