/* remote.c — remote mode (remote.h): a thread that keeps one link to tallyd,
 * does the HELLO handshake, forwards the host's frames and hands tallyd's
 * effects to the host, exactly once.
 *
 * The host thread touches only the engine's `in` ring (submit), its `out`
 * ring and eventfd (drain), and the `ready` atomic. Everything else here
 * belongs to the remote thread, which polls two fds: the socket, and its
 * own eventfd that submit and stop poke. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "map.h"
#include "remote.h"
#include "remote_link.h"
#include "tally/frames.h"

_Static_assert((int)TALLY__INSTANCE_BYTES_MAX == (int)TALLY_FRAME_INSTANCE_BYTES_MAX, "config.h mirrors frames.h");
_Static_assert((int)TALLY__ADAPTER_BYTES_MAX == (int)TALLY_FRAME_ADAPTER_BYTES_MAX, "config.h mirrors frames.h");

typedef enum {
  REMOTE_DOWN = 0,  /* waiting for the next connect attempt */
  REMOTE_LINKING,   /* connect() and TLS */
  REMOTE_CHALLENGE, /* waiting for HELLO_SERVER's challenge */
  REMOTE_VERDICT,   /* HELLO sent, waiting for the verdict */
  REMOTE_READY,     /* welcomed: frames flow */
} remote_state;

/* A command sent and not answered yet: kept to resend after a reconnect. */
typedef struct remote_pending {
  uint64_t req_id; /* 0 = free slot */
  uint64_t said_ms;
  uint32_t len;
  uint8_t frame[TALLY__REMOTE_PENDING_FRAME_BYTES];
} remote_pending;

struct tally__remote {
  tally__engine *e;
  pthread_t thread;
  bool started;
  int wake_fd;
  atomic_int ready;
  /* 1 while a poke of wake_fd is on its way and not yet seen by the thread:
   * a rush of submits costs one write(2) and one wake-up, not one per frame
   * (uv_async_send coalesces the same way in process). */
  atomic_int wake_armed;
  /* 1 while an effect waits for room in the host's ring: the host's drain
   * pokes wake_fd when it made room (else the stash waits for a timeout). */
  atomic_int stash_waiting;

  /* remote thread only */
  SSL_CTX *tls;
  tally__link link;
  remote_state state;
  uint64_t next_try_ms, backoff_ms, deadline_ms, resend_at_ms, ack_due_ms;
  uint64_t received, acked;
  bool resend_due;
  bool delivered; /* effects pushed into `out` since the host was last poked */
  char server[TALLY_FRAME_INSTANCE_BYTES_MAX + 1];
  char said[TALLY_ERRBUF_BYTES]; /* the last STATUS told, to say each change once */
  tally_stream_reader *reader;
  tally_frame_decoder *dec;
  tally__decoder cdec;
  uint8_t *wbuf, *rbuf;
  size_t wlen, woff;
  size_t rpos, rlen;                     /* bytes of rbuf not fed to the reader yet */
  uint8_t stash[TALLY_FRAME_BYTES_MAX]; /* an effect waiting for room in `out` */
  size_t stash_len;
  uint64_t stash_seq;
  remote_pending *pending;
  uint32_t pending_max, pending_count;
  uint32_t *pending_free; /* a stack of free slots: the hot ones are reused, so memory
                            touched stays what is in flight at once */
  tally__map pending_by_req;
};

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void poke(int fd) {
  uint64_t one = 1;
  ssize_t n = write(fd, &one, sizeof one);
  (void)n; /* a full counter is still readable: the wake-up is not lost */
}

/* ---- effects made here (STATUS, unknown outcome) -------------------------- */
static bool push_effect(tally__engine *e, const tally_effect *eff) {
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len;
  if (tally__effect_encode(eff, buf, sizeof buf, &len) != TALLY_OK) return false;
  if (tally__ring_push(&e->out, buf, len) != TALLY_OK) return false;
  atomic_fetch_add_explicit(&e->n_effects_out, 1, memory_order_relaxed);
  poke(e->efd);
  return true;
}

/* Tells the host (it logs STATUS effects) what became of the link; the same
 * sentence twice in a row only once, so a long outage is one line. */
static void say_status(tally__remote *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say_status(tally__remote *r, int code, const char *fmt, ...) {
  char text[TALLY_ERRBUF_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (!strcmp(text, r->said)) return;
  snprintf(r->said, sizeof r->said, "%s", text);
  tally_effect eff = {.size = sizeof eff, .version = TALLY_EFFECT_VERSION, .kind = TALLY_EFFECT_STATUS,
                      .code = code, .origin = "", .channel = "", .text = text, .network = r->e->cfg.network,
                      .args = ""};
  (void)push_effect(r->e, &eff);
}

/* ---- commands awaiting an answer ------------------------------------------ */
static uint32_t pending_find(const tally__remote *r, uint64_t req_id) {
  uint32_t v = tally__map_find(&r->pending_by_req, tally__hash_u64(req_id), NULL, NULL);
  /* Hash collisions between req ids: probe the slot itself. */
  if (v != TALLY__MAP_NONE && r->pending[v].req_id != req_id) v = TALLY__MAP_NONE;
  return v;
}

static void pending_drop(tally__remote *r, uint32_t i) {
  assert(i < r->pending_max && r->pending[i].req_id);
  bool gone = tally__map_del(&r->pending_by_req, tally__hash_u64(r->pending[i].req_id), i);
  assert(gone);
  (void)gone;
  r->pending[i].req_id = 0;
  r->pending_count--;
  r->pending_free[r->pending_max - r->pending_count - 1] = i;
}

/* Remembers a command frame about to be sent. A host that reuses a req_id
 * still unanswered, or has more unanswered than fit, is not resent after a
 * reconnect (it is still sent now). */
static void pending_add(tally__remote *r, const uint8_t *frame, size_t len) {
  struct {
    uint64_t req_id;
  } cmd;
  if (tally__command_peek_req_id(frame, len, &cmd.req_id) != TALLY_OK || cmd.req_id == 0) return;
  if (pending_find(r, cmd.req_id) != TALLY__MAP_NONE || r->pending_count >= r->pending_max) return;
  if (len > TALLY__REMOTE_PENDING_FRAME_BYTES) return;
  /* The free stack holds pending_max - pending_count slots, the top last. */
  uint32_t i = r->pending_free[r->pending_max - r->pending_count - 1];
  assert(i < r->pending_max && r->pending[i].req_id == 0);
  if (tally__map_put(&r->pending_by_req, tally__hash_u64(cmd.req_id), i) != TALLY_OK) return;
  r->pending[i].req_id = cmd.req_id;
  r->pending[i].said_ms = mono_ms();
  r->pending[i].len = (uint32_t)len;
  memcpy(r->pending[i].frame, frame, len);
  r->pending_count++;
}

/* The user of a command whose outcome the link took away. */
static void tell_unknown(tally__remote *r, uint32_t i) {
  tally__command_frame cmd;
  if (tally__command_frame_decode(&r->cdec, r->pending[i].frame, r->pending[i].len, &cmd) == TALLY_OK) {
    char text[TALLY_TEXT_BYTES_MAX + 1];
    snprintf(text, sizeof text, "%s (%.64s)", tally_strerror(TALLY_EUNKNOWN_OUTCOME), cmd.text);
    tally_effect eff = {.size = sizeof eff, .version = TALLY_EFFECT_VERSION, .kind = TALLY_EFFECT_REPLY,
                        .code = TALLY_EUNKNOWN_OUTCOME, .req_id = cmd.req_id, .origin = cmd.origin,
                        .channel = cmd.channel, .text = text,
                        .network = cmd.network[0] ? cmd.network : r->e->cfg.network, .args = ""};
    (void)push_effect(r->e, &eff);
  }
  pending_drop(r, i);
}

/* Commands said longer ago than command_max_age_ms are never resent. While
 * the link is down their users are told the outcome is unknown; on a live
 * link they were delivered and their answer is tallyd's to give (some
 * commands answer in the room only), so they are just forgotten. */
static void pending_expire(tally__remote *r, uint64_t now) {
  uint64_t max_age = r->e->cfg.command_max_age_ms;
  for (uint32_t i = 0; r->pending_count && i < r->pending_max; i++) {
    if (!r->pending[i].req_id || now - r->pending[i].said_ms <= max_age) continue;
    if (r->state == REMOTE_READY && !r->resend_due) pending_drop(r, i);
    else tell_unknown(r, i);
  }
}

static int by_said(const void *a, const void *b, void *ud) {
  const remote_pending *p = ud;
  uint64_t x = p[*(const uint32_t *)a].said_ms, y = p[*(const uint32_t *)b].said_ms;
  return x < y ? -1 : x > y;
}

static bool queue_frame(tally__remote *r, const uint8_t *frame, size_t len);

/* After a welcome: what tallyd had not answered goes again, oldest first,
 * with its idempotency key, so the engine gives it its first answer. */
static void pending_resend(tally__remote *r) {
  pending_expire(r, mono_ms());
  uint32_t *order = calloc(r->pending_count ? r->pending_count : 1, sizeof *order);
  if (!order) return; /* they age out and are told "unknown" */
  uint32_t n = 0;
  for (uint32_t i = 0; i < r->pending_max; i++)
    if (r->pending[i].req_id) order[n++] = i;
  qsort_r(order, n, sizeof *order, by_said, r->pending);
  uint32_t sent = 0;
  for (uint32_t k = 0; k < n; k++)
    if (queue_frame(r, r->pending[order[k]].frame, r->pending[order[k]].len)) sent++;
  free(order);
  if (sent) say_status(r, TALLY_OK, "tally: resent %u unanswered command(s) to tallyd", sent);
}

/* ---- the socket ------------------------------------------------------------ */
static bool queue_frame(tally__remote *r, const uint8_t *frame, size_t len) {
  if (r->woff > 0 && r->wlen + TALLY_STREAM_PREFIX_BYTES + len > TALLY__REMOTE_WBUF_BYTES) {
    memmove(r->wbuf, r->wbuf + r->woff, r->wlen - r->woff);
    r->wlen -= r->woff;
    r->woff = 0;
  }
  size_t used;
  if (tally_stream_wrap(frame, len, r->wbuf + r->wlen, TALLY__REMOTE_WBUF_BYTES - r->wlen, &used) != TALLY_OK)
    return false;
  r->wlen += used;
  return true;
}

static void link_down(tally__remote *r, const char *why) {
  bool was_ready = r->state == REMOTE_READY;
  atomic_store(&r->ready, 0);
  tally__link_close(&r->link);
  r->state = REMOTE_DOWN;
  r->wlen = r->woff = 0;
  tally_stream_reader_init(r->reader);
  uint64_t now = mono_ms();
  r->backoff_ms = was_ready ? TALLY__REMOTE_BACKOFF_MIN_MS
                            : (r->backoff_ms ? r->backoff_ms * 2 : TALLY__REMOTE_BACKOFF_MIN_MS);
  if (r->backoff_ms > TALLY__REMOTE_BACKOFF_MAX_MS) r->backoff_ms = TALLY__REMOTE_BACKOFF_MAX_MS;
  /* Jitter, so the servers of a network do not reconnect in step. */
  r->next_try_ms = now + r->backoff_ms / 2 + (uint64_t)(rand() % (int)(r->backoff_ms / 2 + 1));
  say_status(r, TALLY_EUNAVAILABLE, "tally: no link to tallyd at %s: %s; retrying", r->e->cfg.address, why);
}

static void link_start(tally__remote *r) {
  char err[TALLY_ERRBUF_BYTES] = "";
  r->deadline_ms = mono_ms() + TALLY__REMOTE_HANDSHAKE_MS;
  if (tally__link_open(&r->link, r->e->cfg.address, r->tls, err, sizeof err) != TALLY_OK) {
    link_down(r, err);
    return;
  }
  r->state = r->link.phase == TALLY__LINK_OPEN ? REMOTE_CHALLENGE : REMOTE_LINKING;
}

static void send_hello(tally__remote *r, const tally_frame_hello_server *hs) {
  const tally_config *cfg = &r->e->cfg;
  char err[TALLY_ERRBUF_BYTES];
  uint64_t chosen;
  if (tally_hello_negotiate(TALLY_WIRE_VERSION_MIN, TALLY_WIRE_VERSION_MAX, hs->wire_min, hs->wire_max, &chosen,
                            err, sizeof err) != TALLY_OK) {
    link_down(r, err);
    return;
  }
  /* A tallyd that is not the one we knew (a new server id) numbers our
   * effects afresh. */
  if (strcmp(hs->server, r->server)) {
    snprintf(r->server, sizeof r->server, "%s", hs->server);
    r->received = r->acked = 0;
  }
  tally_frame_hello h;
  memset(&h, 0, sizeof h);
  h.wire_min = TALLY_WIRE_VERSION_MIN;
  h.wire_max = TALLY_WIRE_VERSION_MAX;
  snprintf(h.network, sizeof h.network, "%s", cfg->network);
  snprintf(h.adapter, sizeof h.adapter, "%s", cfg->adapter && cfg->adapter[0] ? cfg->adapter : "libtally");
  snprintf(h.instance, sizeof h.instance, "%s", cfg->instance);
  h.caps = cfg->caps;
  h.acked = r->received;
  if (tally_hello_answer((const uint8_t *)cfg->secret, strlen(cfg->secret), hs->challenge, h.answer) != TALLY_OK) {
    link_down(r, "tallyd's challenge is malformed");
    return;
  }
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len;
  if (tally_frame_hello_encode(&h, buf, sizeof buf, &len) != TALLY_OK || !queue_frame(r, buf, len)) {
    link_down(r, "cannot encode HELLO");
    return;
  }
  r->acked = r->received;
  r->state = REMOTE_VERDICT;
}

static void on_verdict(tally__remote *r, const tally_frame_hello_server *hs) {
  if (hs->code != TALLY_OK) {
    char why[TALLY_ERRBUF_BYTES];
    snprintf(why, sizeof why, "refused (%s): %.160s", tally_err_name((int)hs->code), hs->text);
    link_down(r, why);
    return;
  }
  r->state = REMOTE_READY;
  r->backoff_ms = 0;
  r->resend_due = r->pending_count > 0;
  r->resend_at_ms = mono_ms() + TALLY__REMOTE_RESEND_GRACE_MS;
  atomic_store(&r->ready, 1);
  say_status(r, TALLY_OK, "tally: linked to tallyd %s at %s as %s/%s", r->server, r->e->cfg.address,
             r->e->cfg.network, r->e->cfg.instance);
}

/* An effect from tallyd into the host's ring; false while the ring is full
 * (the frame waits in the stash and the socket is not read meanwhile, which
 * is the back-pressure tallyd sees). */
static bool deliver(tally__remote *r, const uint8_t *frame, size_t len, uint64_t seq) {
  if (tally__ring_push(&r->e->out, frame, len) != TALLY_OK) return false;
  atomic_fetch_add_explicit(&r->e->n_effects_out, 1, memory_order_relaxed);
  r->delivered = true; /* the host is poked once per read (read_link), not per effect */
  if (seq > r->received) r->received = seq;
  if (r->ack_due_ms == 0) r->ack_due_ms = mono_ms() + TALLY__REMOTE_ACK_MS;
  return true;
}

static void on_effect(tally__remote *r, const uint8_t *frame, size_t len) {
  /* Only the head is read here; the host's drain decodes (and checks) the
   * whole frame, which it does anyway. */
  tally__effect_head f;
  if (tally__effect_peek(frame, len, &f) != TALLY_OK) {
    link_down(r, "tallyd sent a malformed effect frame");
    return;
  }
  if (f.seq != 0 && f.seq <= r->received) return; /* resent, and we had it: never twice */
  if (f.kind == TALLY_EFFECT_REPLY && f.req_id && f.code != TALLY_EPENDING) {
    uint32_t i = pending_find(r, f.req_id);
    if (i != TALLY__MAP_NONE) pending_drop(r, i);
  }
  /* The first status after a welcome follows tallyd's resent answers. */
  if (f.kind == TALLY_EFFECT_STATUS && r->resend_due) r->resend_at_ms = 0;
  if (!deliver(r, frame, len, f.seq)) {
    memcpy(r->stash, frame, len);
    r->stash_len = len;
    r->stash_seq = f.seq;
    atomic_store_explicit(&r->stash_waiting, 1, memory_order_release); /* the host's drain wakes us */
  }
}

static void on_frame(tally__remote *r, const uint8_t *frame, size_t len) {
  uint64_t type;
  if (tally_frame_type(frame, len, &type) != TALLY_OK) {
    link_down(r, "tallyd sent bytes that are not a frame");
    return;
  }
  if (r->state == REMOTE_READY && type == TALLY_FRAME_TYPE_EFFECT) {
    on_effect(r, frame, len);
    return;
  }
  if ((r->state == REMOTE_CHALLENGE || r->state == REMOTE_VERDICT) && type == TALLY_FRAME_TYPE_HELLO_SERVER) {
    tally_frame_hello_server hs;
    if (tally_frame_hello_server_decode(r->dec, frame, len, &hs) != TALLY_OK) {
      link_down(r, "tallyd sent a malformed HELLO_SERVER");
      return;
    }
    if (r->state == REMOTE_CHALLENGE) send_hello(r, &hs);
    else on_verdict(r, &hs);
    return;
  }
  link_down(r, "tallyd sent a frame out of turn");
}

/* Hands the stashed effect to the host once its ring has room. */
static bool stash_flush(tally__remote *r) {
  if (r->stash_len == 0) return true;
  if (!deliver(r, r->stash, r->stash_len, r->stash_seq)) return false;
  r->stash_len = 0;
  atomic_store_explicit(&r->stash_waiting, 0, memory_order_relaxed);
  return true;
}

/* Feeds what is left of the last read to the stream reader, frame by frame,
 * stopping while an effect waits for room in the host's ring. */
static void feed_rbuf(tally__remote *r) {
  while (r->rpos < r->rlen && r->state >= REMOTE_CHALLENGE) {
    if (!stash_flush(r)) return;
    size_t used, flen;
    const uint8_t *f;
    int rc = tally_stream_feed(r->reader, r->rbuf + r->rpos, r->rlen - r->rpos, &used, &f, &flen);
    r->rpos += used;
    if (rc < 0) {
      link_down(r, "tallyd sent a frame of impossible length");
      return;
    }
    if (rc == 1) on_frame(r, f, flen);
  }
}

static void poke_host(tally__remote *r) {
  if (!r->delivered) return;
  r->delivered = false;
  poke(r->e->efd);
}

static void read_link_rounds(tally__remote *r) {
  char err[TALLY_ERRBUF_BYTES] = "";
  /* Bounded per wake-up, so writes and the host's frames get their turn. */
  for (int rounds = 0; rounds < 16 && r->state >= REMOTE_CHALLENGE; rounds++) {
    feed_rbuf(r);
    poke_host(r);
    if (r->rpos < r->rlen || r->stash_len || r->state < REMOTE_CHALLENGE) return;
    ssize_t n = tally__link_read(&r->link, r->rbuf, TALLY__REMOTE_RBUF_BYTES, err, sizeof err);
    if (n < 0) {
      link_down(r, err);
      return;
    }
    if (n == 0) return;
    r->rpos = 0;
    r->rlen = (size_t)n;
  }
}

/* One poke for all the effects one read(2) delivered: the host drains the
 * ring whole, so a wake-up per read keeps it busy while the next is fed,
 * at a syscall per read rather than per effect. */
static void read_link(tally__remote *r) {
  read_link_rounds(r);
  poke_host(r);
}

static void write_link(tally__remote *r) {
  char err[TALLY_ERRBUF_BYTES] = "";
  while (r->woff < r->wlen && r->state >= REMOTE_CHALLENGE) {
    ssize_t n = tally__link_write(&r->link, r->wbuf + r->woff, r->wlen - r->woff, err, sizeof err);
    if (n < 0) {
      link_down(r, err);
      return;
    }
    if (n == 0) return;
    r->woff += (size_t)n;
  }
  if (r->woff == r->wlen) r->woff = r->wlen = 0;
}

/* The host's frames, as far as the write buffer has room. */
static void pump_in(tally__remote *r) {
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  while (TALLY__REMOTE_WBUF_BYTES - r->wlen + r->woff >= TALLY_FRAME_BYTES_MAX + TALLY_STREAM_PREFIX_BYTES) {
    size_t len = tally__ring_pop(&r->e->in, buf);
    if (len == 0) return;
    uint64_t type = 0;
    if (tally_frame_type(buf, len, &type) == TALLY_OK && type == TALLY_FRAME_TYPE_COMMAND) pending_add(r, buf, len);
    bool ok = queue_frame(r, buf, len);
    assert(ok); /* room was checked above */
    (void)ok;
  }
}

static void maybe_ack(tally__remote *r, uint64_t now) {
  if (r->received <= r->acked) return;
  if (r->received - r->acked < TALLY__REMOTE_ACK_EVERY && now < r->ack_due_ms) return;
  tally_frame_ack a = {.seq = r->received};
  uint8_t buf[64];
  size_t len;
  if (tally_frame_ack_encode(&a, buf, sizeof buf, &len) == TALLY_OK && queue_frame(r, buf, len)) {
    r->acked = r->received;
    r->ack_due_ms = 0;
  }
}

/* ---- the thread ------------------------------------------------------------ */
static int poll_timeout(const tally__remote *r, uint64_t now) {
  uint64_t next = now + 1000; /* pending commands age out by the second */
  if (r->state == REMOTE_DOWN && r->next_try_ms < next) next = r->next_try_ms;
  if (r->state != REMOTE_DOWN && r->state != REMOTE_READY && r->deadline_ms < next) next = r->deadline_ms;
  if (r->ack_due_ms && r->ack_due_ms < next) next = r->ack_due_ms;
  if (r->resend_due && r->resend_at_ms < next) next = r->resend_at_ms;
  if (r->stash_len && now + 5 < next) next = now + 5; /* the host drains: look again soon */
  if (r->link.phase == TALLY__LINK_RESOLVING && now + TALLY__LINK_RESOLVE_POLL_MS < next)
    next = now + TALLY__LINK_RESOLVE_POLL_MS;
  /* Decrypted bytes waiting inside TLS never make the socket readable:
   * read them now (unless the host's ring is what holds us back). */
  if (r->state >= REMOTE_CHALLENGE && !r->stash_len && (tally__link_buffered(&r->link) || r->rpos < r->rlen))
    next = now; /* and bytes read but not fed yet (a wake-up's bounded rounds ended) */
  return next <= now ? 0 : (int)(next - now);
}

static void step(tally__remote *r, short revents) {
  char err[TALLY_ERRBUF_BYTES] = "";
  if (revents & (POLLERR | POLLHUP | POLLNVAL) && r->state == REMOTE_LINKING) revents |= POLLOUT;
  if (r->state == REMOTE_LINKING) {
    if (tally__link_step(&r->link, err, sizeof err) != TALLY_OK) {
      link_down(r, err);
      return;
    }
    if (r->link.phase == TALLY__LINK_OPEN) r->state = REMOTE_CHALLENGE;
  }
  if (r->state >= REMOTE_CHALLENGE) {
    read_link(r);
    if (r->state == REMOTE_READY) {
      if (r->resend_due && mono_ms() >= r->resend_at_ms) {
        r->resend_due = false;
        pending_resend(r);
      }
      pump_in(r);
      maybe_ack(r, mono_ms());
    }
    write_link(r);
  }
}

static void *remote_thread(void *arg) {
  tally__remote *r = arg;
  tally__engine *e = r->e;
  uint64_t next_sweep = 0;
  while (!atomic_load(&e->stopping)) {
    uint64_t now = mono_ms();
    if (r->state == REMOTE_DOWN && now >= r->next_try_ms) link_start(r);
    if (r->state != REMOTE_DOWN && r->state != REMOTE_READY && now > r->deadline_ms)
      link_down(r, "tallyd did not complete the handshake in time");
    if (now >= next_sweep) {
      next_sweep = now + 1000;
      pending_expire(r, now);
    }
    struct pollfd p[2] = {{.fd = r->wake_fd, .events = POLLIN}, {.fd = r->link.fd, .events = 0}};
    nfds_t n = 1;
    if (r->state != REMOTE_DOWN) {
      p[1].events = tally__link_events(&r->link, r->woff < r->wlen || (r->state == REMOTE_READY && tally__ring_count(&e->in)));
      /* A full host ring: do not read; the stash is retried by timeout. */
      if (r->stash_len || r->rpos < r->rlen) p[1].events &= (short)~POLLIN;
      n = 2;
    }
    int rc = poll(p, n, poll_timeout(r, now));
    if (rc < 0 && errno != EINTR) break;
    if (p[0].revents & POLLIN) {
      uint64_t c;
      ssize_t k = read(r->wake_fd, &c, sizeof c);
      (void)k;
    }
    /* Disarmed before the ring is read (step → pump_in): a frame pushed
     * after this point pokes again; one pushed before it is popped below.
     * The fence pairs with submit's (a store-then-load handshake). */
    atomic_store_explicit(&r->wake_armed, 0, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (r->state != REMOTE_DOWN) step(r, n == 2 ? p[1].revents : 0);
  }
  /* Stopping: what is queued for tallyd is tried once more without
   * waiting; the link closes and tallyd keeps what it has not delivered. */
  if (r->state == REMOTE_READY) {
    pump_in(r);
    maybe_ack(r, UINT64_MAX);
    write_link(r);
  }
  tally__link_close(&r->link);
  atomic_store(&r->ready, 0);
  return NULL;
}

/* ---- host-facing ------------------------------------------------------------ */
int tally__remote_new(tally__engine *e, char *err, size_t err_len) {
  assert(e && !e->remote);
  tally__remote *r = calloc(1, sizeof *r);
  if (!r) return TALLY_ENOMEM;
  e->remote = r;
  r->e = e;
  r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  tally__link_init(&r->link);
  r->pending_max = e->cfg.queue_depth < TALLY__REMOTE_PENDING_MAX ? e->cfg.queue_depth : TALLY__REMOTE_PENDING_MAX;
  r->reader = malloc(sizeof *r->reader);
  r->wbuf = malloc(TALLY__REMOTE_WBUF_BYTES);
  r->rbuf = malloc(TALLY__REMOTE_RBUF_BYTES);
  r->pending = calloc(r->pending_max, sizeof *r->pending);
  r->pending_free = calloc(r->pending_max, sizeof *r->pending_free);
  for (uint32_t i = 0; r->pending_free && i < r->pending_max; i++) r->pending_free[i] = r->pending_max - 1 - i;
  if (r->wake_fd < 0 || !r->reader || !r->wbuf || !r->rbuf || !r->pending || !r->pending_free ||
      tally__map_init(&r->pending_by_req, r->pending_max) != TALLY_OK || tally_frame_decoder_new(&r->dec) != TALLY_OK ||
      tally__decoder_init(&r->cdec) != TALLY_OK)
    return TALLY_ENOMEM;
  tally_stream_reader_init(r->reader);
  return tally__link_tls_new(&e->cfg, &r->tls, err, err_len);
}

int tally__remote_start(tally__engine *e) {
  tally__remote *r = e->remote;
  assert(r);
  if (r->started) return TALLY_ESTATE;
  if (pthread_create(&r->thread, NULL, remote_thread, r) != 0) return TALLY_ENOMEM;
  r->started = e->thread_started = true;
  return TALLY_OK;
}

int tally__remote_submit(tally__engine *e, const uint8_t *frame, size_t len) {
  tally__remote *r = e->remote;
  if (!atomic_load_explicit(&r->ready, memory_order_acquire)) return TALLY_EUNAVAILABLE;
  int rc = tally__ring_push(&e->in, frame, len);
  if (rc == TALLY_EBUSY) {
    atomic_fetch_add_explicit(&e->n_busy, 1, memory_order_relaxed);
    return rc;
  }
  if (rc == TALLY_OK) {
    atomic_fetch_add_explicit(&e->n_events_in, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst); /* the push is seen before the flag is read */
    if (!atomic_exchange_explicit(&r->wake_armed, 1, memory_order_relaxed)) poke(r->wake_fd);
  }
  return rc;
}

void tally__remote_drained(tally__engine *e) {
  tally__remote *r = e->remote;
  if (atomic_exchange_explicit(&r->stash_waiting, 0, memory_order_acq_rel)) poke(r->wake_fd);
}

int tally__remote_submit_presence(tally__engine *e, const tally_presence *p) {
  tally_frame_presence f;
  memset(&f, 0, sizeof f);
  const char *net = p->network && p->network[0] ? p->network : "";
  if (strlen(net) >= sizeof f.network || strlen(p->account) >= sizeof f.account ||
      strlen(p->channel) >= sizeof f.room)
    return TALLY_ETOOBIG;
  memcpy(f.network, net, strlen(net) + 1);
  memcpy(f.account, p->account, strlen(p->account) + 1);
  memcpy(f.room, p->channel, strlen(p->channel) + 1);
  f.present = p->present ? 1 : 0;
  f.local = 1; /* adapters report their own server's users (issue 11) */
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len;
  int rc = tally_frame_presence_encode(&f, buf, sizeof buf, &len);
  return rc ? rc : tally__remote_submit(e, buf, len);
}

void tally__remote_stop(tally__engine *e) {
  tally__remote *r = e->remote;
  if (!r || !r->started) return;
  atomic_store(&e->stopping, 1);
  poke(r->wake_fd);
  pthread_join(r->thread, NULL);
  r->started = e->thread_started = false;
}

void tally__remote_free(tally__engine *e) {
  tally__remote *r = e->remote;
  if (!r) return;
  tally__remote_stop(e);
  tally__link_close(&r->link);
  tally__link_tls_free(r->tls);
  if (r->wake_fd >= 0) close(r->wake_fd);
  tally_frame_decoder_free(r->dec);
  if (r->cdec.zone.chunk_list.head) tally__decoder_free(&r->cdec);
  if (r->pending_by_req.slots) tally__map_free(&r->pending_by_req);
  free(r->pending);
  free(r->pending_free);
  free(r->reader);
  free(r->wbuf);
  free(r->rbuf);
  free(r);
  e->remote = NULL;
}
