/* test_tallyd.c — tallyd as chat servers see it: a real daemon (the
 * sanitizer build) on a temp unix socket and a TLS port, against the test
 * PostgreSQL, driven by the frame client of tests/lib/frame_client.c. The
 * shop (an item, funded buyers who gave consent) is set up in process with
 * the harness first, then tallyd serves the same ledger. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame_client.h"
#include "harness.h"

static char dsn[512];
static char key_path[512];
static fc_daemon D; /* the main daemon: unix + TLS without client certificates */
static uint64_t req = 1000;

static const uint32_t OPER = TALLY_ROLE_ADMIN | TALLY_ROLE_GRANT;

static int64_t transfers(void) { return th_sql_i64(dsn, "SELECT count(*) FROM transfers"); }

static int group_setup(void **state) {
  (void)state;
  th_fresh_db("tallyd", dsn, sizeof dsn);
  tally_config cfg;
  th_config(&cfg, dsn);
  cfg.network = FC_NETWORK;
  snprintf(key_path, sizeof key_path, "%s", cfg.signing_key_path);
  tally_engine *e = th_engine(&cfg);
  th_reply r;
  if (th_cmd(e, "admin", "TALLY ROLE alice creator", OPER, &r) != TALLY_OK) return -1;
  if (th_cmd(e, "alice", "ITEM ADD tee 5 100000 Tour tee", 0, &r) != TALLY_OK) return -1;
  const char *buyers[] = {"bob", "carol", "dave", "erin"};
  for (int i = 0; i < 4; i++)
    if (th_buyer(e, buyers[i], "100000", "tee") != TALLY_OK) return -1;
  th_engine_free(e);
  return fc_daemon_start(&D, "main", dsn, key_path, "hello_timeout = 2000", 1, 0, NULL);
}

/* One engine writes a ledger at a time (its lock): the tests that start
 * their own tallyd stop the main one first (SIGTERM: it must exit 0). */
static fc_daemon E; /* a test's own daemon, stopped by the next test if it failed */

static int main_off(void) {
  if (E.pid > 0) fc_daemon_stop(&E, SIGKILL, 10000);
  if (D.pid <= 0) return 0;
  int status = fc_daemon_stop(&D, SIGTERM, 30000);
  if (!(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    fprintf(stderr, "main tallyd did not exit 0 on SIGTERM (status %d)\n", status);
    return -1;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (main_off() != 0) return -1;
  return th_tally_check(dsn) == 0 ? 0 : -1;
}

/* A welcomed connection of instance on the main daemon's unix socket. */
static fc_conn *welcomed(const fc_daemon *d, const char *instance, uint64_t acked) {
  fc_conn *c = fc_unix(d->sock);
  assert_non_null(c);
  tally_frame_hello_server v;
  assert_int_equal(fc_hello(c, FC_NETWORK, instance, FC_SECRET, acked, 1, 1, &v), 0);
  assert_int_equal(v.wire_chosen, 1);
  return c;
}

static void buy_ok(fc_conn *c, const char *account) {
  tally_frame_effect e;
  uint64_t id = ++req;
  assert_int_equal(fc_command(c, id, account, "BUY tee", 0, NULL, NULL), 0);
  assert_int_equal(fc_reply(c, id, 20000, &e), 1);
  if (e.code != TALLY_OK) fprintf(stderr, "BUY: %s %s\n", tally_err_name((int)e.code), e.text);
  assert_int_equal(e.code, TALLY_OK);
  assert_true(e.receipt_id > 0);
  assert_string_equal(e.origin, account); /* tallyd's slot prefix is stripped */
  assert_string_equal(e.network, FC_NETWORK);
}

/* ---- the good path ---------------------------------------------------------- */
static void test_hello_and_buy(void **state) {
  (void)state;
  fc_conn *c = welcomed(&D, "irc1.good", 0);
  tally_frame_effect e;
  /* First effect: the engine's current status, seq 1. */
  assert_int_equal(fc_effect(c, 5000, &e), 1);
  assert_int_equal(e.kind, TALLY_EFFECT_STATUS);
  assert_int_equal(e.code, TALLY_OK);
  assert_int_equal(e.seq, 1);
  int64_t before = transfers();
  buy_ok(c, "bob");
  assert_int_equal(transfers(), before + 1);
  assert_int_equal(fc_last_seq(c), 2);
  assert_int_equal(fc_repeats(c), 0);
  fc_close(c);
}

static double ms_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Sequential buys, one at a time: the round trip through tallyd (printed). */
static void timed_buys(fc_conn *c, const char *what) {
  enum { BUYS = 50 };
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < BUYS; i++) buy_ok(c, "erin");
  fprintf(stderr, "# %s: %d sequential buys, %.2f ms each (ASan build)\n", what, BUYS, ms_since(&t0) / BUYS);
}

static void test_tls_buy(void **state) {
  (void)state;
  char ca[400], err[256];
  snprintf(ca, sizeof ca, "%s/ca.pem", D.dir);
  assert_true(D.tls_port > 0);
  fc_conn *c = fc_tls(D.tls_port, ca, NULL, NULL, err, sizeof err);
  if (!c) fprintf(stderr, "tls: %s\n", err);
  assert_non_null(c);
  tally_frame_hello_server v;
  assert_int_equal(fc_hello(c, FC_NETWORK, "irc2.tls", FC_SECRET, 0, 1, 1, &v), 0);
  buy_ok(c, "carol");
  timed_buys(c, "tls");
  /* Many in flight at once over TLS (records in both directions in bulk):
   * every one answered, acknowledged as they come. */
  enum { PIPELINED = 2000 };
  uint64_t first = req + 1;
  for (int i = 0; i < PIPELINED; i++) assert_int_equal(fc_command(c, ++req, "erin", "WALLET", 0, NULL, NULL), 0);
  int answered = 0;
  tally_frame_effect e;
  while (answered < PIPELINED && fc_effect(c, 20000, &e) == 1) {
    if (e.kind == TALLY_EFFECT_REPLY && e.req_id >= first && e.code != TALLY_EPENDING) answered++;
    if (e.seq % 64 == 0) assert_int_equal(fc_ack(c, e.seq), 0);
  }
  fprintf(stderr, "# tls: %d pipelined commands, %d answered\n", PIPELINED, answered);
  assert_int_equal(answered, PIPELINED);
  assert_int_equal(fc_repeats(c), 0);
  fc_close(c);
  c = welcomed(&D, "irc2.unix", 0);
  timed_buys(c, "unix");
  fc_close(c);
}

/* ---- refusals: each logged with its reason; the daemon serves on ---------------- */
static void refused(const char *instance, const char *network, const char *secret, uint64_t wmin, uint64_t wmax,
                    int code, const char *logged) {
  fc_conn *c = fc_unix(D.sock);
  assert_non_null(c);
  tally_frame_hello_server v;
  int got = fc_hello(c, network, instance, secret, 0, wmin, wmax, &v);
  if (got != code) fprintf(stderr, "%s: verdict %d (%s), wanted %d\n", instance, got, v.text, code);
  assert_int_equal(got, code);
  assert_true(v.text[0] != 0);
  assert_true(fc_closed_within(c, 5000));
  fc_close(c);
  if (!fc_daemon_logged(&D, logged, 5000)) fprintf(stderr, "not logged: %s\n", logged);
  assert_true(fc_daemon_logged(&D, logged, 0));
}

static void test_wrong_secret(void **state) {
  (void)state;
  refused("irc.wrong", FC_NETWORK, FC_SECRET2, 1, 1, TALLY_EBADSIG, "wrong secret for network \"libera\"");
  refused("irc.nosecret", FC_NETWORK, NULL, 1, 1, TALLY_EBADSIG, "wrong secret for network \"libera\" (instance \"irc.nosecret\")");
}

static void test_unknown_network(void **state) {
  (void)state;
  refused("irc.unknown", "efnet", FC_SECRET, 1, 1, TALLY_EBADSIG, "unknown network \"efnet\"");
}

static void test_no_common_version(void **state) {
  (void)state;
  refused("irc.future", FC_NETWORK, FC_SECRET, 5, 7, TALLY_EVERSION, "no version in common");
}

/* Reads the challenge of a fresh connection. */
static fc_conn *challenged(void) {
  fc_conn *c = fc_unix(D.sock);
  assert_non_null(c);
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t n;
  assert_int_equal(fc_read_frame(c, 5000, buf, &n), 1);
  return c;
}

/* The verdict sent before a close, after bytes that are no HELLO. */
static void expect_verdict(fc_conn *c, int code) {
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t n;
  assert_int_equal(fc_read_frame(c, 5000, buf, &n), 1);
  tally_frame_decoder *dec;
  assert_int_equal(tally_frame_decoder_new(&dec), TALLY_OK);
  tally_frame_hello_server v;
  assert_int_equal(tally_frame_hello_server_decode(dec, buf, n, &v), TALLY_OK);
  tally_frame_decoder_free(dec);
  assert_int_equal(v.code, code);
  assert_true(fc_closed_within(c, 5000));
}

/* A connection that says nothing is closed after hello_timeout (2 s here). */
static void test_hello_timeout(void **state) {
  (void)state;
  fc_conn *c = challenged();
  assert_true(fc_closed_within(c, 6000));
  fc_close(c);
  assert_true(fc_daemon_logged(&D, "no HELLO within 2000 ms", 1000));
}

static void test_oversize_frame(void **state) {
  (void)state;
  fc_conn *c = challenged();
  uint32_t len = TALLY_FRAME_BYTES_MAX + 1;
  uint8_t prefix[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
  assert_int_equal(fc_write(c, prefix, 4), 0);
  expect_verdict(c, TALLY_ETOOBIG);
  fc_close(c);
  assert_true(fc_daemon_logged(&D, "oversize frame", 5000));
  /* After the welcome too: closed, logged. */
  c = welcomed(&D, "irc.oversize", 0);
  assert_int_equal(fc_write(c, prefix, 4), 0);
  assert_true(fc_closed_within(c, 5000));
  fc_close(c);
  assert_true(fc_daemon_logged(&D, "irc.oversize): closed: oversize frame", 5000));
}

static void test_garbage(void **state) {
  (void)state;
  fc_conn *c = challenged();
  const uint8_t junk[] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
  assert_int_equal(fc_write(c, junk, sizeof junk), 0);
  expect_verdict(c, TALLY_EFRAME);
  fc_close(c);
  assert_true(fc_daemon_logged(&D, "garbage: not a tally frame (expected HELLO)", 5000));
  /* A well-formed frame, but not HELLO, first. */
  c = challenged();
  assert_int_equal(fc_ack(c, 1), 0);
  expect_verdict(c, TALLY_EFRAME);
  fc_close(c);
  assert_true(fc_daemon_logged(&D, "frame before HELLO (frame type 6)", 5000));
  /* Garbage after the welcome: closed, logged. */
  c = welcomed(&D, "irc.garbage", 0);
  assert_int_equal(fc_write(c, junk, sizeof junk), 0);
  assert_true(fc_closed_within(c, 5000));
  fc_close(c);
  assert_true(fc_daemon_logged(&D, "irc.garbage): closed: garbage: not a tally frame", 5000));
  /* The daemon serves on. */
  c = welcomed(&D, "irc.after-garbage", 0);
  buy_ok(c, "bob");
  fc_close(c);
}

/* A frame cut mid-way by a disconnect is never applied; sent whole later it is, once. */
static void test_cut_frame(void **state) {
  (void)state;
  fc_conn *c = welcomed(&D, "irc.cut", 0);
  uint8_t buf[TALLY_STREAM_PREFIX_BYTES + TALLY_FRAME_BYTES_MAX];
  uint64_t id = ++req;
  size_t n = fc_command_bytes(id, "dave", "BUY tee", buf, sizeof buf);
  assert_true(n > 10);
  int64_t before = transfers();
  assert_int_equal(fc_write(c, buf, n - 3), 0);
  usleep(200000);
  fc_close(c);
  assert_true(fc_daemon_logged(&D, "irc.cut): closed: disconnected with a frame cut mid-way", 5000));
  usleep(1500000);
  assert_int_equal(transfers(), before);
  /* Whole, twice (the same msg_id): one transfer. */
  c = welcomed(&D, "irc.cut", 0); /* that connection read nothing */
  tally_frame_effect e;
  for (int k = 0; k < 2; k++) {
    assert_int_equal(fc_write(c, buf, n), 0);
    assert_int_equal(fc_reply(c, id, 20000, &e), 1);
    assert_int_equal(e.code, TALLY_OK);
  }
  assert_int_equal(transfers(), before + 1);
  fc_close(c);
}

/* A connection may act only for its own network. */
static void test_foreign_network(void **state) {
  (void)state;
  fc_conn *c = welcomed(&D, "irc.foreign", 0);
  tally_frame_effect e;
  int64_t before = transfers();
  uint64_t id = ++req;
  assert_int_equal(fc_command(c, id, "bob", "BUY tee", 0, FC_NETWORK2, NULL), 0);
  assert_int_equal(fc_reply(c, id, 10000, &e), 1);
  assert_int_equal(e.code, TALLY_ENETWORK);
  assert_non_null(strstr(e.text, "network libera only"));
  assert_true(fc_daemon_logged(&D, "refused a command for network \"oftc\"", 5000));
  assert_int_equal(fc_presence(c, FC_NETWORK2, "bob", "#shop", 1), 0);
  assert_true(fc_daemon_logged(&D, "refused presence for network \"oftc\"", 5000));
  /* Its own network, named or not, is fine. */
  id = ++req;
  assert_int_equal(fc_command(c, id, "bob", "BUY tee", 0, FC_NETWORK, NULL), 0);
  assert_int_equal(fc_reply(c, id, 20000, &e), 1);
  assert_int_equal(e.code, TALLY_OK);
  assert_int_equal(transfers(), before + 1);
  fc_close(c);
}

/* Two servers of one network report the same user: the engine hears one
 * join, and the part only when the last server lost the user. */
static int count_logged(const char *needle) {
  FILE *f = fopen(D.log, "r");
  char line[2048];
  int n = 0;
  while (f && fgets(line, sizeof line, f)) n += strstr(line, needle) != NULL;
  if (f) fclose(f);
  return n;
}

static void test_presence_merge(void **state) {
  (void)state;
  fc_conn *a = welcomed(&D, "irc.pa", 0), *b = welcomed(&D, "irc.pb", 0);
  const char *join = "presence: join libera/erin in #merge", *part = "presence: part libera/erin in #merge";
  assert_int_equal(fc_presence(a, NULL, "erin", "#merge", 1), 0);
  assert_true(fc_daemon_logged(&D, join, 5000));
  assert_int_equal(fc_presence(b, NULL, "erin", "#merge", 1), 0);
  assert_int_equal(fc_presence(a, NULL, "erin", "#merge", 1), 0); /* repeated */
  assert_int_equal(fc_presence(a, NULL, "erin", "#merge", 0), 0);
  usleep(300000);
  assert_int_equal(count_logged(join), 1);
  assert_int_equal(count_logged(part), 0);
  assert_int_equal(fc_presence(b, NULL, "erin", "#merge", 0), 0);
  assert_true(fc_daemon_logged(&D, part, 5000));
  assert_int_equal(count_logged(join), 1);
  fc_close(a);
  fc_close(b);
}

/* A room's announcement is said by exactly one server of the network (the
 * lowest live slot), not by every one. */
static int announced(fc_conn *c, const char *needle, int ms, uint64_t reply_to, int *replied) {
  tally_frame_effect e;
  int n = 0;
  while (fc_effect(c, ms, &e) == 1) {
    n += e.kind == TALLY_EFFECT_ANNOUNCE && strstr(e.text, needle) && !strcmp(e.channel, "#ann");
    if (replied && e.kind == TALLY_EFFECT_REPLY && e.req_id == reply_to && e.code == TALLY_OK) (*replied)++;
  }
  return n;
}

static void test_announce_once(void **state) {
  (void)state;
  fc_conn *a = welcomed(&D, "irc.ann-a", 0), *b = welcomed(&D, "irc.ann-b", 0);
  const char *thanks = "Thank you carol for tipping alice";
  uint64_t id = ++req;
  int replied = 0;
  assert_int_equal(fc_command_in(b, id, "carol", "#ann", "TIP alice 1 for the show", 0), 0);
  int on_b = announced(b, thanks, 2000, id, &replied);
  int on_a = announced(a, thanks, 500, 0, NULL);
  fprintf(stderr, "# announcement: %d on the lower slot, %d on the other\n", on_a, on_b);
  assert_int_equal(replied, 1); /* the reply goes to the server that asked */
  assert_int_equal(on_a, 1);
  assert_int_equal(on_b, 0);
  fc_close(a);
  /* With the first gone, the other says it. */
  id = ++req;
  replied = 0;
  assert_int_equal(fc_command_in(b, id, "carol", "#ann", "TIP alice 1 encore", 0), 0);
  assert_int_equal(announced(b, thanks, 2000, id, &replied), 1);
  assert_int_equal(replied, 1);
  fc_close(b);
}

/* Reconnecting with the same instance: unacknowledged effects come again,
 * once; acknowledged ones never. */
/* Reads effects for ms: how many are final replies to id; *max_seq the
 * highest seq. Every effect must be above acked: those were delivered. */
static int replies_to(fc_conn *c, uint64_t id, uint64_t acked, int ms, uint64_t *max_seq) {
  tally_frame_effect e;
  int n = 0;
  while (fc_effect(c, ms, &e) == 1) {
    if (e.seq <= acked) fprintf(stderr, "effect seq %llu again (acked %llu): %s\n", (unsigned long long)e.seq,
                                (unsigned long long)acked, e.text);
    assert_true(e.seq > acked);
    if (e.kind == TALLY_EFFECT_REPLY && e.req_id == id && e.code != TALLY_EPENDING) n++;
    if (e.seq > *max_seq) *max_seq = e.seq;
  }
  return n;
}

static void test_reconnect_exactly_once(void **state) {
  (void)state;
  fc_conn *c = welcomed(&D, "irc.resume", 0);
  tally_frame_effect e;
  assert_int_equal(fc_effect(c, 5000, &e), 1); /* status, seq 1 */
  uint64_t acked = e.seq;
  uint64_t id = ++req;
  int64_t before = transfers();
  assert_int_equal(fc_command(c, id, "carol", "BUY tee", 0, NULL, NULL), 0);
  fc_close(c); /* gone before the answer */
  for (int i = 0; i < 100 && transfers() == before; i++) usleep(100000);
  assert_int_equal(transfers(), before + 1);
  usleep(300000);
  /* Back, having delivered seq 1: the answer comes, once. */
  c = welcomed(&D, "irc.resume", acked);
  uint64_t max_seq = 0;
  assert_int_equal(replies_to(c, id, acked, 1500, &max_seq), 1);
  assert_int_equal(fc_repeats(c), 0);
  assert_true(max_seq > acked);
  /* Acknowledged now: never again. */
  assert_int_equal(fc_ack(c, max_seq), 0);
  usleep(200000);
  fc_close(c);
  c = welcomed(&D, "irc.resume", max_seq);
  uint64_t again = 0;
  assert_int_equal(replies_to(c, id, max_seq, 1500, &again), 0);
  assert_true(again > max_seq); /* only new effects (its status) */
  fc_close(c);
  /* Back a second time with HELLO.acked alone (no ACK frame): nothing old either. */
  c = welcomed(&D, "irc.resume", again);
  uint64_t third = 0;
  assert_int_equal(replies_to(c, id, again, 1000, &third), 0);
  assert_true(third > again);
  fc_close(c);
  /* An acked above what was ever sent is refused. */
  c = fc_unix(D.sock);
  tally_frame_hello_server v;
  assert_int_equal(fc_hello(c, FC_NETWORK, "irc.resume", FC_SECRET, third + 100, 1, 1, &v), TALLY_EFRAME);
  fc_close(c);
}

/* SIGHUP rereads the secrets: the new one works at once, the old one no more. */
static void test_sighup_reload(void **state) {
  (void)state;
  char path[400];
  snprintf(path, sizeof path, "%s/oftc.secret", D.dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("oftc-rotated-secret-0123456789ab\n", f);
  fclose(f);
  kill(D.pid, SIGHUP);
  assert_true(fc_daemon_logged(&D, "SIGHUP: reloaded 2 network secrets", 5000));
  tally_frame_hello_server v;
  fc_conn *c = fc_unix(D.sock);
  assert_int_equal(fc_hello(c, FC_NETWORK2, "irc.oftc", FC_SECRET2, 0, 1, 1, &v), TALLY_EBADSIG);
  fc_close(c);
  c = fc_unix(D.sock);
  assert_int_equal(fc_hello(c, FC_NETWORK2, "irc.oftc", "oftc-rotated-secret-0123456789ab", 0, 1, 1, &v), 0);
  fc_close(c);
  /* A file that does not load changes nothing, and says so. */
  f = fopen(D.conf, "a");
  fputs("no_such_key = 1\n", f);
  fclose(f);
  kill(D.pid, SIGHUP);
  assert_true(fc_daemon_logged(&D, "nothing changed", 5000));
  c = welcomed(&D, "irc.after-hup", 0);
  buy_ok(c, "bob");
  fc_close(c);
}

/* ---- TLS with a required client certificate ---------------------------------------- */
static void test_tls_client_cert(void **state) {
  (void)state;
  assert_int_equal(main_off(), 0);
  assert_int_equal(fc_daemon_start(&E, "clientca", dsn, key_path, NULL, 1, 1, NULL), 0);
  char ca[400], cert[400], key[400], rcert[400], rkey[400], err[256];
  snprintf(ca, sizeof ca, "%s/ca.pem", E.dir);
  snprintf(cert, sizeof cert, "%s/client.pem", E.dir);
  snprintf(key, sizeof key, "%s/client.key", E.dir);
  snprintf(rcert, sizeof rcert, "%s/rogue.pem", E.dir);
  snprintf(rkey, sizeof rkey, "%s/rogue.key", E.dir);
  tally_frame_hello_server v;
  /* No certificate, then one the CA did not sign: refused (in TLS 1.3 the
   * client may finish first; then its first read fails). */
  const char *certs[2] = {NULL, rcert}, *keys[2] = {NULL, rkey};
  for (int k = 0; k < 2; k++) {
    fc_conn *c = fc_tls(E.tls_port, ca, certs[k], keys[k], err, sizeof err);
    if (c) {
      assert_int_equal(fc_hello(c, FC_NETWORK, "irc.nocert", FC_SECRET, 0, 1, 1, &v), -1000);
      fc_close(c);
    }
  }
  assert_true(fc_daemon_logged(&E, "refused: TLS", 5000));
  assert_true(fc_daemon_logged(&E, "certificate", 0));
  /* The CA's client: welcome, and a purchase. */
  fc_conn *c = fc_tls(E.tls_port, ca, cert, key, err, sizeof err);
  if (!c) fprintf(stderr, "tls: %s\n", err);
  assert_non_null(c);
  assert_int_equal(fc_hello(c, FC_NETWORK, "irc.cert", FC_SECRET, 0, 1, 1, &v), 0);
  buy_ok(c, "dave");
  fc_close(c);
  int status = fc_daemon_stop(&E, SIGTERM, 30000);
  assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- backpressure ---------------------------------------------------------------------- */
enum { STALL_EFFECTS_MAX = 96 };

static void test_stalled_connection(void **state) {
  (void)state;
  assert_int_equal(main_off(), 0);
  char abstract[64];
  snprintf(abstract, sizeof abstract, "@tally-test-notify-%d", (int)getpid());
  int nfd = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path + 1, abstract + 1, strlen(abstract) - 1);
  assert_int_equal(bind(nfd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(abstract))), 0);
  assert_int_equal(fc_daemon_start(&E, "stall", dsn, key_path,
                                   "queue_depth = 64\nbatch_max = 64\nbusy_reserve = 16\nslot_effects_max = 96", 0, 0,
                                   abstract),
                   0);
  /* The abstract NOTIFY_SOCKET got READY=1. */
  char msg[256] = {0};
  struct pollfd p = {.fd = nfd, .events = POLLIN};
  assert_int_equal(poll(&p, 1, 5000), 1);
  assert_true(recv(nfd, msg, sizeof msg - 1, 0) > 0);
  assert_non_null(strstr(msg, "READY=1"));
  close(nfd);

  fc_conn *s = welcomed(&E, "irc.stalled", 0);
  /* The stalled host writes commands as fast as its socket takes them and never reads. */
  uint8_t buf[TALLY_STREAM_PREFIX_BYTES + TALLY_FRAME_BYTES_MAX];
  int sent = 0;
  for (int i = 0; i < 4000; i++) {
    size_t n = fc_command_bytes(50000 + (uint64_t)i, "erin", "WALLET", buf, sizeof buf);
    long w = fc_write_some(s, buf, n);
    /* Its socket is full (a cut frame stays unsent), or tallyd closed it. */
    if (w < (long)n) break;
    sent++;
  }
  assert_true(sent >= STALL_EFFECTS_MAX / 2); /* it was closed or its socket filled, past its bound */
  /* Another server of the network: every command answered, and bought.
   * The engine's own queue (64 here) is shared: while the stalled host's
   * accepted commands fill it, a buy may be answered busy, as any user's
   * would be; the user retries. */
  fc_conn *f = welcomed(&E, "irc.fast", 0);
  int retries = 0;
  for (int i = 0; i < 30; i++) {
    for (int attempt = 0;; attempt++) {
      tally_frame_effect r;
      uint64_t id = ++req;
      assert_int_equal(fc_command(f, id, "bob", "BUY tee", 0, NULL, NULL), 0);
      assert_int_equal(fc_reply(f, id, 20000, &r), 1);
      if (r.code == TALLY_OK) break;
      assert_int_equal(r.code, TALLY_EBUSY);
      assert_true(attempt < 100);
      retries++;
      usleep(50000);
    }
  }
  fprintf(stderr, "# fast server: 30 buys, %d busy answers retried\n", retries);
  fc_close(f);
  /* The stalled one, reading at last: no more than its bound was kept for
   * it, its latest commands were answered busy, and once even the busy
   * reserve was used up it was closed (it sent on without reading). */
  tally_frame_effect e;
  int effects = 0, busy = 0;
  while (fc_effect(s, 1500, &e) == 1) {
    effects++;
    busy += e.kind == TALLY_EFFECT_REPLY && e.code == TALLY_EBUSY;
  }
  fprintf(stderr, "# stalled: %d commands sent, %d effects, %d busy\n", sent, effects, busy);
  assert_true(effects <= STALL_EFFECTS_MAX);
  assert_true(busy > 0);
  assert_int_equal(fc_repeats(s), 0);
  assert_true(fc_daemon_logged(&E, "irc.stalled): closed: busy reserve used up", 5000));
  assert_false(fc_daemon_logged(&E, "overflow", 0));
  uint64_t last = fc_last_seq(s);
  fc_close(s);
  /* It comes back having delivered what it read: it is sent what it had not
   * read (answers that came after the close), nothing twice, and once it
   * has acknowledged those it is served again. */
  s = welcomed(&E, "irc.stalled", last);
  int resent = 0;
  while (fc_effect(s, 1500, &e) == 1) {
    assert_true(e.seq > last);
    resent++;
  }
  assert_int_equal(fc_ack(s, fc_last_seq(s)), 0);
  fprintf(stderr, "# stalled, back: %d effects it had not read\n", resent);
  buy_ok(s, "carol");
  assert_int_equal(fc_repeats(s), 0);
  fc_close(s);
  int status = fc_daemon_stop(&E, SIGTERM, 30000);
  assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A chat server away longer than slot_linger: its effects are dropped
 * (counted in the log), its presence withdrawn, and nothing of it is sent
 * when it comes back. */
static void test_slot_expires(void **state) {
  (void)state;
  assert_int_equal(main_off(), 0);
  assert_int_equal(fc_daemon_start(&E, "linger", dsn, key_path, "slot_linger = 1", 0, 0, NULL), 0);
  fc_conn *c = welcomed(&E, "irc.gone", 0);
  assert_int_equal(fc_presence(c, NULL, "dave", "#gone", 1), 0);
  assert_true(fc_daemon_logged(&E, "presence: join libera/dave in #gone", 5000));
  uint64_t id = ++req;
  int64_t before = transfers();
  assert_int_equal(fc_command(c, id, "dave", "BUY tee", 0, NULL, NULL), 0);
  fc_close(c); /* never read: the status and the answer wait in its slot */
  for (int i = 0; i < 100 && transfers() == before; i++) usleep(100000);
  assert_int_equal(transfers(), before + 1);
  /* Its status and the answer (and a "pending" notice if the commit was slow). */
  assert_true(fc_daemon_logged(&E, "irc.gone expired (away longer than slot_linger): ", 5000));
  assert_false(fc_daemon_logged(&E, "irc.gone expired (away longer than slot_linger): 0 effects", 0));
  assert_false(fc_daemon_logged(&E, "irc.gone expired (away longer than slot_linger): 1 effects", 0));
  assert_true(fc_daemon_logged(&E, "presence: part libera/dave in #gone", 1000));
  c = welcomed(&E, "irc.gone", 0);
  uint64_t max_seq = 0;
  assert_int_equal(replies_to(c, id, 0, 1500, &max_seq), 0);
  assert_int_equal(fc_effects_seen(c), 1); /* its new status only */
  fc_close(c);
  int status = fc_daemon_stop(&E, SIGTERM, 30000);
  assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_true(fc_daemon_logged(&E, " effects dropped in all", 0));
  assert_false(fc_daemon_logged(&E, "stopped; 0 effects dropped in all", 0));
}

/* ---- SIGTERM with answers in flight, and sd_notify on a path socket --------------------- */
static void test_sigterm_answers_in_flight(void **state) {
  (void)state;
  assert_int_equal(main_off(), 0);
  char notify[100];
  const char *tmp = getenv("TALLY_TMP");
  snprintf(notify, sizeof notify, "%.60s/tallyd-notify-%d.sock", tmp ? tmp : "/tmp", (int)getpid());
  unlink(notify);
  int nfd = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", notify);
  assert_int_equal(bind(nfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(fc_daemon_start(&E, "term", dsn, key_path, NULL, 0, 0, notify), 0);
  char msg[256] = {0};
  struct pollfd p = {.fd = nfd, .events = POLLIN};
  assert_int_equal(poll(&p, 1, 5000), 1);
  assert_true(recv(nfd, msg, sizeof msg - 1, 0) > 0);
  assert_non_null(strstr(msg, "READY=1"));

  fc_conn *c = welcomed(&E, "irc.term", 0);
  enum { N = 40 };
  uint64_t ids[N];
  for (int i = 0; i < N; i++) {
    ids[i] = ++req;
    assert_int_equal(fc_command(c, ids[i], i % 2 ? "bob" : "carol", "BUY tee", 0, NULL, NULL), 0);
  }
  kill(E.pid, SIGTERM);
  /* Every command is answered (bought, or busy: tallyd was stopping), then closed. */
  int answered[N] = {0}, ok = 0;
  tally_frame_effect e;
  while (fc_effect(c, 15000, &e) == 1) {
    for (int i = 0; i < N; i++)
      if (e.kind == TALLY_EFFECT_REPLY && e.req_id == ids[i] && e.code != TALLY_EPENDING) {
        answered[i]++;
        ok += e.code == TALLY_OK;
        if (e.code != TALLY_OK) assert_true(e.code == TALLY_EBUSY || e.code == TALLY_EUNKNOWN_OUTCOME);
      }
  }
  for (int i = 0; i < N; i++) assert_int_equal(answered[i], 1);
  fprintf(stderr, "# SIGTERM: %d of %d bought, the rest answered busy\n", ok, N);
  fc_close(c);
  int status = fc_daemon_stop(&E, 0, 30000);
  assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  memset(msg, 0, sizeof msg);
  assert_int_equal(poll(&p, 1, 1000), 1);
  assert_true(recv(nfd, msg, sizeof msg - 1, 0) > 0);
  assert_non_null(strstr(msg, "STOPPING=1"));
  close(nfd);
  unlink(notify);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* A host whose HELLO lacks TALLY_CAP_INTERCEPT_COMMANDS (its room shows
 * every line): a quiz answer or a QUIZ START said in a room is refused by
 * tallyd ("answer privately"), never reaches the engine; privately it does.
 * A host that intercepts has its room ANSWER reach the engine. */
static void room_reply(fc_conn *c, const char *text, tally_frame_effect *e) {
  uint64_t id = ++req;
  assert_int_equal(fc_command_in(c, id, "bob", "#quiz", text, 0), 0);
  assert_int_equal(fc_reply(c, id, 20000, e), 1);
}

static void test_room_answers_without_intercept(void **state) {
  (void)state;
  fc_hello_caps = TALLY_CAP_PIN_TOPIC; /* like a Matrix AS or an XMPP component */
  fc_conn *c = welcomed(&D, "as.nointercept", 0);
  fc_hello_caps = TALLY_CAP_INTERCEPT_COMMANDS;
  tally_frame_effect e;
  room_reply(c, "ANSWER paris", &e);
  assert_int_equal(e.code, TALLY_EBAD_SYNTAX);
  assert_non_null(strstr(e.text, "answer privately"));
  room_reply(c, "quiz start 30 Capital? | Paris", &e);
  assert_int_equal(e.code, TALLY_EBAD_SYNTAX);
  assert_non_null(strstr(e.text, "start the quiz privately"));
  room_reply(c, "QUIZ STOP", &e); /* shows no answer: goes on to the engine */
  assert_int_equal(e.code, TALLY_ENO_PERMISSION);
  uint64_t id = ++req;
  assert_int_equal(fc_command(c, id, "bob", "ANSWER paris", 0, NULL, NULL), 0);
  assert_int_equal(fc_reply(c, id, 20000, &e), 1);
  assert_int_equal(e.code, TALLY_ENO_QUIZ); /* privately: the engine's answer */
  fc_close(c);
  c = welcomed(&D, "irc.intercepts", 0);
  room_reply(c, "ANSWER paris", &e);
  assert_int_equal(e.code, TALLY_ENO_QUIZ);
  fc_close(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hello_and_buy),
      cmocka_unit_test(test_tls_buy),
      cmocka_unit_test(test_wrong_secret),
      cmocka_unit_test(test_unknown_network),
      cmocka_unit_test(test_no_common_version),
      cmocka_unit_test(test_hello_timeout),
      cmocka_unit_test(test_oversize_frame),
      cmocka_unit_test(test_garbage),
      cmocka_unit_test(test_cut_frame),
      cmocka_unit_test(test_foreign_network),
      cmocka_unit_test(test_presence_merge),
      cmocka_unit_test(test_announce_once),
      cmocka_unit_test(test_reconnect_exactly_once),
      cmocka_unit_test(test_sighup_reload),
      cmocka_unit_test(test_room_answers_without_intercept), /* before the tests that stop the main daemon */
      cmocka_unit_test(test_tls_client_cert),
      cmocka_unit_test(test_stalled_connection),
      cmocka_unit_test(test_slot_expires),
      cmocka_unit_test(test_sigterm_answers_in_flight),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
