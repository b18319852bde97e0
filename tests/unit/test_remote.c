/* test_remote.c — libtally's remote mode (config mode=remote) against a
 * scripted tallyd: a unix socket served by this test with the public frame
 * codec, so every byte the client sends is checked and every fault (wrong
 * secret, a cut frame, a duplicate effect, a link that dies before the
 * answer) is played on purpose. The real daemon's own tests are in
 * tests/daemon/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tally.h"
#include "tally/frames.h"
#include "tally_frames_v1.h" /* the frame type numbers */

#define SECRET "a-network-secret-of-some-length"

static char sock_path[108];
static int listen_fd = -1;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void listen_on(void) {
  const char *tmp = getenv("TALLY_TMP") ? getenv("TALLY_TMP") : "/tmp";
  snprintf(sock_path, sizeof sock_path, "%s/remote-%d.sock", tmp, (int)getpid());
  unlink(sock_path);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
  listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(listen_fd >= 0);
  assert_int_equal(bind(listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(listen_fd, 8), 0);
}

static void stop_listening(void) {
  if (listen_fd >= 0) close(listen_fd);
  listen_fd = -1;
  unlink(sock_path);
}

static int accept_within(int ms) {
  struct pollfd p = {.fd = listen_fd, .events = POLLIN};
  if (poll(&p, 1, ms) != 1) return -1;
  return accept(listen_fd, NULL, NULL);
}

/* ---- the scripted tallyd's side of the wire ------------------------------- */
typedef struct peer {
  int fd;
  tally_stream_reader reader;
  tally_frame_decoder *dec;
  uint8_t frame[TALLY_FRAME_BYTES_MAX];
  size_t frame_len;
  uint8_t buf[4096];
  size_t have, pos;
} peer;

static void send_frame(peer *p, const uint8_t *frame, size_t len) {
  uint8_t out[TALLY_FRAME_BYTES_MAX + TALLY_STREAM_PREFIX_BYTES];
  size_t n;
  assert_int_equal(tally_stream_wrap(frame, len, out, sizeof out, &n), TALLY_OK);
  assert_int_equal(write(p->fd, out, n), (ssize_t)n);
}

/* The next whole frame within ms; false on timeout or close. */
static bool read_frame(peer *p, int ms) {
  uint64_t deadline = now_ms() + (uint64_t)ms;
  for (;;) {
    while (p->pos < p->have) {
      size_t used, flen;
      const uint8_t *f;
      int rc = tally_stream_feed(&p->reader, p->buf + p->pos, p->have - p->pos, &used, &f, &flen);
      p->pos += used;
      assert_true(rc >= 0);
      if (rc == 1) {
        memcpy(p->frame, f, flen);
        p->frame_len = flen;
        return true;
      }
    }
    uint64_t now = now_ms();
    if (now >= deadline) return false;
    struct pollfd pf = {.fd = p->fd, .events = POLLIN};
    if (poll(&pf, 1, (int)(deadline - now)) != 1) return false;
    ssize_t n = read(p->fd, p->buf, sizeof p->buf);
    if (n <= 0) return false;
    p->have = (size_t)n;
    p->pos = 0;
  }
}

static uint64_t frame_type(const peer *p) {
  uint64_t t = 0;
  assert_int_equal(tally_frame_type(p->frame, p->frame_len, &t), TALLY_OK);
  return t;
}

/* Reads frames until one of `type` comes (ACKs in between are skipped unless
 * asked for). */
static bool read_type(peer *p, uint64_t type, int ms) {
  uint64_t deadline = now_ms() + (uint64_t)ms;
  while (now_ms() < deadline) {
    if (!read_frame(p, (int)(deadline - now_ms()))) return false;
    if (frame_type(p) == type) return true;
  }
  return false;
}

/* Accepts one connection and plays the handshake; returns the host's HELLO
 * through *hello. verdict 0 welcomes it. */
static bool handshake(peer *p, const char *server_id, int64_t verdict, tally_frame_hello *hello) {
  memset(p, 0, sizeof *p);
  tally_stream_reader_init(&p->reader);
  assert_int_equal(tally_frame_decoder_new(&p->dec), TALLY_OK);
  p->fd = accept_within(5000);
  if (p->fd < 0) return false;
  tally_frame_hello_server hs;
  memset(&hs, 0, sizeof hs);
  hs.wire_min = hs.wire_max = 1;
  snprintf(hs.server, sizeof hs.server, "%s", server_id);
  assert_int_equal(tally_hello_challenge(hs.challenge), TALLY_OK);
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len;
  assert_int_equal(tally_frame_hello_server_encode(&hs, buf, sizeof buf, &len), TALLY_OK);
  send_frame(p, buf, len);
  assert_true(read_frame(p, 5000));
  assert_int_equal(frame_type(p), TALLY_FRAME_TYPE_HELLO);
  assert_int_equal(tally_frame_hello_decode(p->dec, p->frame, p->frame_len, hello), TALLY_OK);
  int ok = tally_hello_check((const uint8_t *)SECRET, strlen(SECRET), hs.challenge, hello->answer);
  tally_frame_hello_server v;
  memset(&v, 0, sizeof v);
  v.wire_min = v.wire_max = v.wire_chosen = 1;
  v.code = verdict ? verdict : (ok == TALLY_OK ? 0 : TALLY_EBADSIG);
  snprintf(v.server, sizeof v.server, "%s", server_id);
  snprintf(v.text, sizeof v.text, "%s", v.code ? "refused by the test" : "welcome");
  assert_int_equal(tally_frame_hello_server_encode(&v, buf, sizeof buf, &len), TALLY_OK);
  send_frame(p, buf, len);
  return v.code == 0;
}

static void peer_close(peer *p) {
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
  tally_frame_decoder_free(p->dec);
  p->dec = NULL;
}

static void send_reply(peer *p, uint64_t seq, uint64_t req_id, const char *origin, const char *text) {
  tally_frame_effect f;
  memset(&f, 0, sizeof f);
  f.kind = TALLY_EFFECT_REPLY;
  f.req_id = req_id;
  f.seq = seq;
  snprintf(f.origin, sizeof f.origin, "%s", origin);
  snprintf(f.text, sizeof f.text, "%s", text);
  snprintf(f.network, sizeof f.network, "irc");
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len;
  assert_int_equal(tally_frame_effect_encode(&f, buf, sizeof buf, &len), TALLY_OK);
  send_frame(p, buf, len);
}

/* ---- the host's side ------------------------------------------------------ */
typedef struct seen {
  int n;
  uint32_t kind[64];
  int32_t code[64];
  uint64_t req_id[64];
  char text[64][TALLY_TEXT_BYTES_MAX + 1];
} seen;

static void on_effect(void *ud, const tally_effect *eff) {
  seen *s = ud;
  if (s->n >= 64) return;
  s->kind[s->n] = eff->kind;
  s->code[s->n] = eff->code;
  s->req_id[s->n] = eff->req_id;
  snprintf(s->text[s->n], sizeof s->text[0], "%s", eff->text);
  s->n++;
}

/* Drains until an effect of kind with code (or any code when code is 1)
 * has come, or ms passed. */
static int wait_effect(tally_engine *e, seen *s, uint32_t kind, int32_t code, int ms) {
  uint64_t deadline = now_ms() + (uint64_t)ms;
  int from = 0;
  for (;;) {
    tally_engine_drain(e, on_effect, s, 64);
    for (int i = from; i < s->n; i++)
      if (s->kind[i] == kind && (code == 1 || s->code[i] == code)) return i;
    from = s->n;
    if (now_ms() >= deadline) return -1;
    struct pollfd pf = {.fd = tally_engine_fd(e), .events = POLLIN};
    poll(&pf, 1, 20);
  }
}

static tally_engine *remote_engine(const char *secret, uint32_t max_age_ms) {
  tally_config cfg;
  tally_config_init(&cfg);
  char addr[160], age[16], err[TALLY_ERRBUF_BYTES] = "";
  snprintf(addr, sizeof addr, "unix:%s", sock_path);
  snprintf(age, sizeof age, "%u", max_age_ms);
  assert_int_equal(tally_config_set(&cfg, "mode", "remote", err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_set(&cfg, "address", addr, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_set(&cfg, "secret", secret, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_set(&cfg, "instance", "irc1.example.org", err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_set(&cfg, "command_max_age", age, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_set(&cfg, "caps", "7", err, sizeof err), TALLY_OK);
  tally_engine *e = NULL;
  int rc = tally_engine_new(&cfg, &e, err, sizeof err);
  if (rc) fprintf(stderr, "# %s\n", err);
  assert_int_equal(rc, TALLY_OK);
  assert_int_equal(tally_engine_start(e), TALLY_OK);
  return e;
}

static int submit(tally_engine *e, uint64_t req_id, const char *msg_id, const char *text) {
  tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = req_id, .origin = "001AAAAAA",
                     .account = "alice", .nick = "alice", .channel = "", .msg_id = msg_id, .text = text};
  return tally_engine_submit_command(e, &c);
}

/* Submits until the link is up (the host is told "unavailable" before). */
static void submit_when_up(tally_engine *e, uint64_t req_id, const char *msg_id, const char *text) {
  uint64_t deadline = now_ms() + 5000;
  int rc;
  while ((rc = submit(e, req_id, msg_id, text)) == TALLY_EUNAVAILABLE && now_ms() < deadline) usleep(10000);
  assert_int_equal(rc, TALLY_OK);
}

/* ---- tests ---------------------------------------------------------------- */
static void test_config_needs_address_secret_instance(void **state) {
  (void)state;
  tally_config cfg;
  tally_config_init(&cfg);
  char err[TALLY_ERRBUF_BYTES] = "";
  assert_int_equal(tally_config_set(&cfg, "mode", "remote", err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_check(&cfg, err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "address"));
  assert_int_equal(tally_config_set(&cfg, "address", "unix:/run/tally/tally.sock", err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_set(&cfg, "secret", "short", err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_check(&cfg, err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "secret"));
  assert_int_equal(tally_config_set(&cfg, "secret", SECRET, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_check(&cfg, err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "instance"));
  assert_int_equal(tally_config_set(&cfg, "instance", "irc1", err, sizeof err), TALLY_OK);
  /* No dsn: remote mode does not need one. */
  assert_int_equal(tally_config_check(&cfg, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_set(&cfg, "address", "tls:nohost", err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_check(&cfg, err, sizeof err), TALLY_ECONFIG);
  assert_int_equal(tally_config_set(&cfg, "mode", "sideways", err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_check(&cfg, err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "mode"));
}

/* No tallyd: the host is told at once, never waits. */
static void test_unavailable_at_once_while_no_daemon(void **state) {
  (void)state;
  listen_on();
  stop_listening(); /* the path exists nowhere */
  tally_engine *e = remote_engine(SECRET, 30000);
  uint64_t t0 = now_ms();
  assert_int_equal(submit(e, 1, "m1", "BUY tee"), TALLY_EUNAVAILABLE);
  assert_true(now_ms() - t0 < 50);
  assert_string_equal(tally_strerror(TALLY_EUNAVAILABLE), "the shop is unavailable, try again in a moment");
  seen s = {0};
  int i = wait_effect(e, &s, TALLY_EFFECT_STATUS, TALLY_EUNAVAILABLE, 3000);
  assert_true(i >= 0);
  assert_non_null(strstr(s.text[i], "no link to tallyd"));
  tally_engine_free(e);
}

static void test_wrong_secret_is_refused_and_reported(void **state) {
  (void)state;
  listen_on();
  tally_engine *e = remote_engine("not-the-network-secret!!", 30000);
  peer p;
  tally_frame_hello h;
  assert_false(handshake(&p, "tallyd-A", 0, &h));
  seen s = {0};
  int i = wait_effect(e, &s, TALLY_EFFECT_STATUS, TALLY_EUNAVAILABLE, 3000);
  assert_true(i >= 0);
  assert_non_null(strstr(s.text[i], "EBADSIG"));
  assert_int_equal(submit(e, 1, "m1", "BUY tee"), TALLY_EUNAVAILABLE);
  peer_close(&p);
  tally_engine_free(e);
  stop_listening();
}

/* HELLO names the network and instance; commands arrive whole; a resent
 * effect (same seq) reaches the host once; ACK says what was received. */
static void test_commands_flow_and_effects_arrive_once(void **state) {
  (void)state;
  listen_on();
  tally_engine *e = remote_engine(SECRET, 30000);
  peer p;
  tally_frame_hello h;
  assert_true(handshake(&p, "tallyd-A", 0, &h));
  assert_string_equal(h.network, "irc");
  assert_string_equal(h.instance, "irc1.example.org");
  assert_int_equal(h.caps, 7);
  assert_int_equal(h.acked, 0);
  submit_when_up(e, 41, "msg-41", "BUY tee");
  assert_true(read_type(&p, TALLY_FRAME_TYPE_COMMAND, 3000));
  send_reply(&p, 1, 41, "001AAAAAA", "Bought 1x Tee");
  send_reply(&p, 1, 41, "001AAAAAA", "Bought 1x Tee"); /* a resend: must not show twice */
  send_reply(&p, 2, 0, "001AAAAAA", "second");
  seen s = {0};
  assert_true(wait_effect(e, &s, TALLY_EFFECT_REPLY, TALLY_OK, 3000) >= 0);
  usleep(200000);
  tally_engine_drain(e, on_effect, &s, 64);
  int replies = 0;
  for (int i = 0; i < s.n; i++) replies += s.kind[i] == TALLY_EFFECT_REPLY;
  assert_int_equal(replies, 2);
  /* The ACK covers both. */
  assert_true(read_type(&p, TALLY_FRAME_TYPE_ACK, 3000));
  tally_frame_ack a;
  assert_int_equal(tally_frame_ack_decode(p.dec, p.frame, p.frame_len, &a), TALLY_OK);
  assert_int_equal(a.seq, 2);
  peer_close(&p);
  tally_engine_free(e);
  stop_listening();
}

/* The link dies after a command was sent and before its answer: after the
 * reconnect the command goes again (same msg id) and its answer comes
 * once; HELLO.acked tells the daemon what had arrived. A frame cut by the
 * close is never delivered. */
static void test_unanswered_command_is_resent_after_reconnect(void **state) {
  (void)state;
  listen_on();
  tally_engine *e = remote_engine(SECRET, 30000);
  peer p;
  tally_frame_hello h;
  assert_true(handshake(&p, "tallyd-A", 0, &h));
  submit_when_up(e, 7, "msg-7", "BUY tee");
  assert_true(read_type(&p, TALLY_FRAME_TYPE_COMMAND, 3000));
  send_reply(&p, 1, 0, "001AAAAAA", "an earlier line");
  /* Half a frame, then the link breaks. */
  uint8_t half[5] = {0, 0, 0, 40, 0x9c}; /* a 40-byte frame's length and first byte */
  assert_int_equal(write(p.fd, half, sizeof half), 5);
  usleep(100000);
  peer_close(&p);
  assert_true(handshake(&p, "tallyd-A", 0, &h));
  assert_int_equal(h.acked, 1);
  assert_true(read_type(&p, TALLY_FRAME_TYPE_COMMAND, 3000));
  /* the same frame came again: */
  assert_non_null(memmem(p.frame, p.frame_len, "msg-7", 5));
  send_reply(&p, 2, 7, "001AAAAAA", "Bought 1x Tee");
  seen s = {0};
  assert_true(wait_effect(e, &s, TALLY_EFFECT_REPLY, TALLY_OK, 3000) >= 0);
  usleep(100000);
  tally_engine_drain(e, on_effect, &s, 64);
  int answers = 0, cut = 0;
  for (int i = 0; i < s.n; i++) {
    answers += s.req_id[i] == 7;
    cut += s.kind[i] != TALLY_EFFECT_STATUS && s.kind[i] != TALLY_EFFECT_REPLY;
  }
  assert_int_equal(answers, 1);
  assert_int_equal(cut, 0);
  peer_close(&p);
  tally_engine_free(e);
  stop_listening();
}

/* A link that stays down longer than command_max_age_ms: the user of the
 * unanswered command is told its outcome is unknown and where to look, and
 * it is not resent afterwards. */
static void test_old_unanswered_command_is_told_unknown(void **state) {
  (void)state;
  listen_on();
  tally_engine *e = remote_engine(SECRET, 1000);
  peer p;
  tally_frame_hello h;
  assert_true(handshake(&p, "tallyd-A", 0, &h));
  submit_when_up(e, 9, "msg-9", "BUY tee");
  assert_true(read_type(&p, TALLY_FRAME_TYPE_COMMAND, 3000));
  peer_close(&p);
  stop_listening();
  seen s = {0};
  int i = wait_effect(e, &s, TALLY_EFFECT_REPLY, TALLY_EUNKNOWN_OUTCOME, 4000);
  assert_true(i >= 0);
  assert_int_equal(s.req_id[i], 9);
  assert_non_null(strstr(s.text[i], "RECEIPTS"));
  assert_non_null(strstr(s.text[i], "BUY tee"));
  /* Back up: nothing is resent. */
  listen_on();
  assert_true(handshake(&p, "tallyd-A", 0, &h));
  assert_false(read_type(&p, TALLY_FRAME_TYPE_COMMAND, 800));
  peer_close(&p);
  tally_engine_free(e);
  stop_listening();
}

/* A tallyd that restarted (another server id) numbers effects afresh: seq 1
 * again is new, not a duplicate. */
static void test_new_daemon_numbers_afresh(void **state) {
  (void)state;
  listen_on();
  tally_engine *e = remote_engine(SECRET, 30000);
  peer p;
  tally_frame_hello h;
  assert_true(handshake(&p, "tallyd-A", 0, &h));
  submit_when_up(e, 1, "m1", "SHOP");
  assert_true(read_type(&p, TALLY_FRAME_TYPE_COMMAND, 3000));
  send_reply(&p, 1, 1, "001AAAAAA", "one");
  seen s = {0};
  assert_true(wait_effect(e, &s, TALLY_EFFECT_REPLY, TALLY_OK, 3000) >= 0);
  usleep(100000);
  peer_close(&p);
  assert_true(handshake(&p, "tallyd-B", 0, &h));
  assert_int_equal(h.acked, 0); /* new to this one */
  send_reply(&p, 1, 0, "001AAAAAA", "from the new one");
  int before = s.n;
  uint64_t deadline = now_ms() + 3000;
  bool got = false;
  while (!got && now_ms() < deadline) {
    tally_engine_drain(e, on_effect, &s, 64);
    for (int i = before; i < s.n; i++) got |= !strcmp(s.text[i], "from the new one");
    usleep(20000);
  }
  assert_true(got);
  peer_close(&p);
  tally_engine_free(e);
  stop_listening();
}

/* A rush of answers larger than one wake-up reads (16 reads of 64 KiB) is
 * handed to the host at the socket's pace: none waits for a later poll's
 * timeout. 200,000 effects, about 9.5 MB: 9.4 s before the fix (a second's
 * poll timeout every 16 reads), about 1 s after (ASan build). */
static void test_a_rush_of_answers_flows(void **state) {
  (void)state;
  listen_on();
  tally_engine *e = remote_engine(SECRET, 30000);
  peer p;
  tally_frame_hello h;
  assert_true(handshake(&p, "tallyd-A", 0, &h));
  submit_when_up(e, 1, "m1", "SHOP");
  assert_true(read_type(&p, TALLY_FRAME_TYPE_COMMAND, 3000));
  enum { RUSH = 200000 };
  uint8_t *big = malloc((size_t)RUSH * 96);
  size_t used = 0;
  for (int i = 0; i < RUSH; i++) {
    tally_frame_effect f;
    memset(&f, 0, sizeof f);
    f.kind = TALLY_EFFECT_REPLY;
    f.seq = (uint64_t)i + 1;
    snprintf(f.origin, sizeof f.origin, "001AAAAAA");
    snprintf(f.text, sizeof f.text, "answer %d", i);
    snprintf(f.network, sizeof f.network, "irc");
    uint8_t frame[TALLY_FRAME_BYTES_MAX];
    size_t len, w;
    assert_int_equal(tally_frame_effect_encode(&f, frame, sizeof frame, &len), TALLY_OK);
    assert_true(used + len + 4 <= (size_t)RUSH * 96);
    assert_int_equal(tally_stream_wrap(frame, len, big + used, (size_t)RUSH * 96 - used, &w), TALLY_OK);
    used += w;
  }
  uint64_t t0 = now_ms();
  /* The writes block while the client reads: a thread would be tidier; a
   * non-blocking loop that also drains the host side does the same. */
  int fl = fcntl(p.fd, F_GETFL);
  fcntl(p.fd, F_SETFL, fl | O_NONBLOCK);
  size_t sent = 0;
  int got = 0;
  seen s;
  while ((sent < used || got < RUSH) && now_ms() - t0 < 20000) {
    if (sent < used) {
      ssize_t n = write(p.fd, big + sent, used - sent);
      if (n > 0) sent += (size_t)n;
    }
    memset(&s, 0, sizeof s);
    got += tally_engine_drain(e, on_effect, &s, 1u << 16);
    /* STATUS effects of the link are not answers. */
    for (int i = 0; i < s.n; i++) got -= s.kind[i] == TALLY_EFFECT_STATUS;
    if (got < RUSH) usleep(200);
  }
  uint64_t took = now_ms() - t0;
  print_message("# %d answers (%zu bytes) in %llu ms\n", got, used, (unsigned long long)took);
  assert_int_equal(got, RUSH);
  assert_true(took < 4000);
  free(big);
  peer_close(&p);
  tally_engine_free(e);
  stop_listening();
}

/* A host name is looked up off the thread that stop joins: freeing the
 * engine while a lookup runs (here one that may hang for the resolver's
 * timeout, or fail at once) returns at once either way. */
static void test_stop_never_waits_for_a_lookup(void **state) {
  (void)state;
  tally_config cfg;
  tally_config_init(&cfg);
  char err[TALLY_ERRBUF_BYTES] = "";
  assert_int_equal(tally_config_set(&cfg, "mode", "remote", err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_set(&cfg, "address", "tls:tally-never.example.invalid:6790", err, sizeof err),
                   TALLY_OK);
  assert_int_equal(tally_config_set(&cfg, "secret", SECRET, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_set(&cfg, "instance", "irc1", err, sizeof err), TALLY_OK);
  tally_engine *e = NULL;
  assert_int_equal(tally_engine_new(&cfg, &e, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_engine_start(e), TALLY_OK);
  usleep(50000); /* the lookup has begun */
  assert_int_equal(submit(e, 1, "m1", "SHOP"), TALLY_EUNAVAILABLE);
  uint64_t t0 = now_ms();
  tally_engine_free(e);
  uint64_t took = now_ms() - t0;
  print_message("# stop during a lookup took %llu ms\n", (unsigned long long)took);
  assert_true(took < 200);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_needs_address_secret_instance),
      cmocka_unit_test(test_unavailable_at_once_while_no_daemon),
      cmocka_unit_test(test_wrong_secret_is_refused_and_reported),
      cmocka_unit_test(test_commands_flow_and_effects_arrive_once),
      cmocka_unit_test(test_unanswered_command_is_resent_after_reconnect),
      cmocka_unit_test(test_old_unanswered_command_is_told_unknown),
      cmocka_unit_test(test_new_daemon_numbers_afresh),
      cmocka_unit_test(test_stop_never_waits_for_a_lookup),
      cmocka_unit_test(test_a_rush_of_answers_flows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
