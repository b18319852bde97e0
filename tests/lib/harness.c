/* harness.c — see harness.h. Tests are plain processes; everything here
 * blocks, which is fine outside the engine. */
#include "harness.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

static uint64_t req_seq;

/* A test that aborts (an assert, a sanitizer) loses a fully buffered
 * stdout, and with it the TAP lines that say how far it got. */
__attribute__((constructor)) static void th_stdout_line_buffered(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

static void die(const char *what) {
  fprintf(stderr, "harness: %s\n", what);
  abort();
}

int64_t th_sql_i64(const char *dsn, const char *sql) {
  PGconn *c = PQconnectdb(dsn);
  if (PQstatus(c) != CONNECTION_OK) die(PQerrorMessage(c));
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) die(PQresultErrorMessage(r));
  int64_t v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
  PQclear(r);
  PQfinish(c);
  return v;
}

static void forget_effects(void);

/* A fresh database is a new test: what earlier tests' engines announced is
 * forgotten, so th_announced and th_effect_find see only this test's. */
void th_fresh_db(const char *name, char *dsn, size_t dsn_len) {
  forget_effects();
  const char *base = getenv("TALLY_TEST_DSN");
  if (!base) die("TALLY_TEST_DSN is not set (run through make test)");
  char db[64], sql[160];
  snprintf(db, sizeof db, "th_%s_%d", name, (int)getpid());
  PGconn *c = PQconnectdb(base);
  if (PQstatus(c) != CONNECTION_OK) die(PQerrorMessage(c));
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db);
  PQclear(PQexec(c, sql));
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) die(PQresultErrorMessage(r));
  PQclear(r);
  PQfinish(c);
  snprintf(dsn, dsn_len, "%s dbname=%s", base, db);
}

const char *th_libfaketime(void) {
  static const char *const paths[] = {"/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                                      "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
                                      "/usr/lib/faketime/libfaketime.so.1"};
  const char *env = getenv("TALLY_LIBFAKETIME");
  if (env) return access(env, R_OK) == 0 ? env : NULL;
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    if (access(paths[i], R_OK) == 0) return paths[i];
  return NULL;
}

void th_config(tally_config *cfg, const char *dsn) {
  static char key[512];
  const char *tmp = getenv("TALLY_TMP");
  snprintf(key, sizeof key, "%s/test-signing-%d.pem", tmp ? tmp : "/tmp", (int)getpid());
  tally_config_init(cfg);
  cfg->dsn = dsn;
  cfg->signing_key_path = key;
  cfg->rate_account_per_min = 0;
  cfg->rate_channel_per_min = 0;
  /* Tests fund their buyers in one grant each; test_operator.c tests the cap. */
  cfg->grant_max_major = 0;
}

/* The last announcements, for th_announced. */
enum { TH_ANNOUNCE_KEEP = 128 };
static char announced[TH_ANNOUNCE_KEEP][TALLY_TEXT_BYTES_MAX + 1];
static char announced_net[TH_ANNOUNCE_KEEP][TALLY_NAME_BYTES_MAX + 1]; /* each one's network */
static th_effect announced_effect[TH_ANNOUNCE_KEEP]; /* the same, with msg and args */
static unsigned announced_next, effects_next;

int th_effect_find(const char *needle, th_effect *out) {
  for (unsigned k = 0; k < TH_ANNOUNCE_KEEP; k++) {
    const th_effect *f = &announced_effect[(effects_next - 1 - k) % TH_ANNOUNCE_KEEP];
    if (f->kind && strstr(f->text, needle)) {
      *out = *f;
      return 1;
    }
  }
  return 0;
}

static void keep_effect(const tally_effect *eff) {
  th_effect *f = &announced_effect[effects_next++ % TH_ANNOUNCE_KEEP];
  f->kind = eff->kind;
  f->msg = eff->msg;
  snprintf(f->text, sizeof f->text, "%s", eff->text);
  snprintf(f->args, sizeof f->args, "%s", eff->args ? eff->args : "");
}

static char rostered[TALLY_NAME_BYTES_MAX + 1];
static char topic[TALLY_TEXT_BYTES_MAX + 1];
static int topics_set;

const char *th_topic(int *changes) {
  if (changes) *changes = topics_set;
  return topic;
}

int th_rostered(const char *channel) { return strcmp(rostered, channel) == 0; }

static char told[TH_ANNOUNCE_KEEP][TALLY_TEXT_BYTES_MAX + 2 * TALLY_NAME_BYTES_MAX + 8];
static unsigned told_next;

static void forget_effects(void) {
  memset(announced, 0, sizeof announced);
  memset(announced_net, 0, sizeof announced_net);
  memset(announced_effect, 0, sizeof announced_effect);
  announced_next = effects_next = 0;
  memset(told, 0, sizeof told);
  told_next = 0;
  rostered[0] = 0;
  topic[0] = 0;
  topics_set = 0;
}

/* Replies nobody asked for (req_id 0: LINK's other side, a highlight's
 * refund...), as "<network> <origin>: <text>", for th_told. */

int th_told(const char *network, const char *origin, const char *needle, char *out, size_t out_len) {
  char head[2 * TALLY_NAME_BYTES_MAX + 8];
  snprintf(head, sizeof head, "%s %s: ", network, origin);
  for (unsigned k = 0; k < TH_ANNOUNCE_KEEP; k++) {
    const char *t = told[(told_next - 1 - k) % TH_ANNOUNCE_KEEP];
    if (strncmp(t, head, strlen(head)) == 0 && strstr(t + strlen(head), needle)) {
      if (out) snprintf(out, out_len, "%s", t + strlen(head));
      return 1;
    }
  }
  return 0;
}

static void note_announce(const tally_effect *eff) {
  if (eff->kind == TALLY_EFFECT_REPLY && eff->req_id == 0) {
    snprintf(told[told_next++ % TH_ANNOUNCE_KEEP], sizeof told[0], "%s %s: %s", eff->network ? eff->network : "",
             eff->origin ? eff->origin : "", eff->text);
    return;
  }
  if (eff->kind == TALLY_EFFECT_ROSTER) snprintf(rostered, sizeof rostered, "%s", eff->channel);
  if (eff->kind == TALLY_EFFECT_TOPIC) {
    snprintf(topic, sizeof topic, "%s", eff->text);
    topics_set++;
    keep_effect(eff);
    return;
  }
  if (eff->kind != TALLY_EFFECT_ANNOUNCE && eff->kind != TALLY_EFFECT_MODERATORS && eff->kind != TALLY_EFFECT_ROOM)
    return;
  /* "@": as IRC's STATUSMSG target; "=": a room's settings (ROOM SET). */
  const char *to = eff->kind == TALLY_EFFECT_MODERATORS ? "@" : eff->kind == TALLY_EFFECT_ROOM ? "=" : "";
  if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "  [%s%s] %s\n", to, eff->channel, eff->text);
  snprintf(announced_net[announced_next % TH_ANNOUNCE_KEEP], sizeof announced_net[0], "%s",
           eff->network ? eff->network : "(null)");
  keep_effect(eff);
  snprintf(announced[announced_next++ % TH_ANNOUNCE_KEEP], sizeof announced[0], "%s%s: %s", to, eff->channel,
           eff->text);
}

int th_announced(const char *needle) { return th_announced_in(NULL, needle); }

int th_announced_in(const char *network, const char *needle) {
  for (unsigned i = 0; i < TH_ANNOUNCE_KEEP; i++)
    if (strstr(announced[i], needle) && (!network || strcmp(announced_net[i], network) == 0)) return 1;
  return 0;
}

typedef struct waiter {
  uint64_t req_id;
  th_reply *out;
  int done, ready;
} waiter;

static void on_effect(void *ud, const tally_effect *eff) {
  waiter *w = ud;
  note_announce(eff);
  if (eff->kind == TALLY_EFFECT_STATUS && eff->code == TALLY_OK) w->ready = 1;
  if (eff->kind != TALLY_EFFECT_REPLY || eff->req_id != w->req_id || eff->code == TALLY_EPENDING) return;
  if (w->done) return; /* keep the first final reply (SHOP sends several lines) */
  w->out->code = eff->code;
  w->out->receipt = eff->receipt_id;
  w->out->hint = eff->hint;
  snprintf(w->out->network, sizeof w->out->network, "%s", eff->network ? eff->network : "(null)");
  w->out->msg = eff->msg;
  snprintf(w->out->args, sizeof w->out->args, "%s", eff->args ? eff->args : "");
  snprintf(w->out->text, sizeof w->out->text, "%s", eff->text);
  w->done = 1;
}

static void pump(tally_engine *e, waiter *w, int timeout_ms, int *flag) {
  for (int waited = 0; !*flag && waited < timeout_ms; waited += 10) {
    struct pollfd p = {tally_engine_fd(e), POLLIN, 0};
    poll(&p, 1, 10);
    tally_engine_drain(e, on_effect, w, 1000);
  }
  /* Drain what else this command said (extra SHOP lines) so it is not
   * mistaken for the next command's answer. */
  usleep(2000);
  tally_engine_drain(e, on_effect, w, 1000);
}

tally_engine *th_engine(const tally_config *cfg) {
  tally_engine *e;
  char err[TALLY_ERRBUF_BYTES] = "";
  if (tally_engine_new(cfg, &e, err, sizeof err) != TALLY_OK) die(err);
  if (tally_engine_start(e) != TALLY_OK) die("start");
  th_reply r;
  waiter w = {.req_id = UINT64_MAX, .out = &r};
  pump(e, &w, 20000, &w.ready);
  if (!w.ready) die("engine did not become ready");
  return e;
}

typedef struct refusal {
  int code, seen, ready;
  char *text;
  size_t len;
} refusal;

static void on_status(void *ud, const tally_effect *eff) {
  refusal *f = ud;
  if (eff->kind != TALLY_EFFECT_STATUS) return;
  if (eff->code == TALLY_OK) f->ready = 1;
  else if (!f->seen) {
    f->seen = 1;
    f->code = eff->code;
    snprintf(f->text, f->len, "%s", eff->text);
  }
}

int th_engine_refused(const tally_config *cfg, char *text, size_t text_len, int timeout_ms) {
  tally_engine *e;
  char err[TALLY_ERRBUF_BYTES] = "";
  if (tally_engine_new(cfg, &e, err, sizeof err) != TALLY_OK) die(err);
  if (tally_engine_start(e) != TALLY_OK) die("start");
  refusal f = {.code = TALLY_OK, .text = text, .len = text_len};
  text[0] = 0;
  for (int waited = 0; !f.seen && !f.ready && waited < timeout_ms; waited += 10) {
    struct pollfd p = {tally_engine_fd(e), POLLIN, 0};
    poll(&p, 1, 10);
    tally_engine_drain(e, on_status, &f, 1000);
  }
  th_engine_free(e);
  return f.ready ? TALLY_OK : f.code;
}

/* The bound on what a stopped engine can still hold: its effect ring. */
enum { TH_DRAIN_AFTER_STOP_MAX = 1 << 20 };

/* As tally.h tells a host: stop, then drain, so what the engine said just
 * before it stopped ("Quiz over", a pending notice) reaches th_announced
 * instead of being freed unread. */
void th_engine_free(tally_engine *e) {
  tally_engine_stop(e);
  th_reply r;
  waiter w = {.req_id = UINT64_MAX, .out = &r};
  for (int n = 0, got; n < TH_DRAIN_AFTER_STOP_MAX && (got = tally_engine_drain(e, on_effect, &w, 1000)) > 0;)
    n += got;
  tally_engine_free(e);
}

uint64_t th_send(tally_engine *e, const char *account, const char *text, const char *msg_id) {
  char id[64];
  uint64_t req = ++req_seq;
  if (!msg_id) {
    snprintf(id, sizeof id, "t%d-%llu", (int)getpid(), (unsigned long long)req);
    msg_id = id;
  }
  tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = req,
                     .origin = "tester", .account = account, .nick = "tester", .channel = "",
                     .msg_id = msg_id, .text = text, .roles = 0};
  int rc;
  while ((rc = tally_engine_submit_command(e, &c)) == TALLY_EBUSY) usleep(100);
  if (rc) die(tally_strerror(rc));
  return req;
}

uint64_t th_send_in(tally_engine *e, const char *account, const char *channel, const char *text) {
  char id[64];
  uint64_t req = ++req_seq;
  snprintf(id, sizeof id, "s%d-%llu", (int)getpid(), (unsigned long long)req);
  tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = req,
                     .origin = account, .account = account, .nick = account, .channel = channel,
                     .msg_id = id, .text = text, .roles = 0};
  int rc;
  while ((rc = tally_engine_submit_command(e, &c)) == TALLY_EBUSY) usleep(100);
  if (rc) die(tally_strerror(rc));
  return req;
}

static int cmd_wait_net(tally_engine *e, const char *network, const char *origin, const char *account,
                        const char *channel, const char *text, const char *msg_id, uint32_t roles, th_reply *out);

/* Sends one command and waits for its final reply. */
static int cmd_wait(tally_engine *e, const char *account, const char *channel, const char *text,
                    const char *msg_id, uint32_t roles, th_reply *out) {
  return cmd_wait_net(e, NULL, "tester", account, channel, text, msg_id, roles, out);
}

int th_cmd_net(tally_engine *e, const char *network, const char *account, const char *channel,
               const char *text, const char *msg_id, uint32_t roles, th_reply *out) {
  return cmd_wait_net(e, network, account, account, channel, text, msg_id, roles, out);
}

static int cmd_wait_net(tally_engine *e, const char *network, const char *origin, const char *account,
                        const char *channel, const char *text, const char *msg_id, uint32_t roles, th_reply *out) {
  char id[64];
  uint64_t req = ++req_seq;
  if (!msg_id) {
    snprintf(id, sizeof id, "c%d-%llu", (int)getpid(), (unsigned long long)req);
    msg_id = id;
  }
  tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = req,
                     .origin = origin, .account = account, .nick = "tester", .channel = channel,
                     .msg_id = msg_id, .text = text, .roles = roles, .network = network};
  int rc = tally_engine_submit_command(e, &c);
  if (rc != TALLY_OK) { /* refused at the API (too long, busy): what the adapter answers */
    out->code = rc;
    out->receipt = 0;
    snprintf(out->text, sizeof out->text, "%s", tally_strerror(rc));
    return rc;
  }
  waiter w = {.req_id = req, .out = out};
  pump(e, &w, 15000, &w.done);
  if (!w.done) die("no reply within 15 s");
  return out->code;
}

int th_cmd_key(tally_engine *e, const char *account, const char *text, const char *msg_id,
               uint32_t roles, th_reply *out) {
  return cmd_wait(e, account, "", text, msg_id, roles, out);
}

int th_cmd_in(tally_engine *e, const char *account, const char *channel, const char *text, uint32_t roles,
              th_reply *out) {
  return cmd_wait(e, account, channel, text, NULL, roles, out);
}

void th_settle(tally_engine *e, int ms) {
  th_reply r;
  waiter w = {.req_id = UINT64_MAX, .out = &r};
  int never = 0;
  pump(e, &w, ms, &never);
}

int th_cmd(tally_engine *e, const char *account, const char *text, uint32_t roles, th_reply *out) {
  return cmd_wait(e, account, "", text, NULL, roles, out);
}

typedef struct collector {
  int seen;
  th_reply_fn fn;
  void *ud;
} collector;

static void on_collect(void *ud, const tally_effect *eff) {
  collector *c = ud;
  note_announce(eff);
  if (eff->kind != TALLY_EFFECT_REPLY || eff->code == TALLY_EPENDING) return;
  th_reply r = {.code = eff->code, .receipt = eff->receipt_id, .hint = eff->hint, .msg = eff->msg};
  snprintf(r.text, sizeof r.text, "%s", eff->text);
  snprintf(r.args, sizeof r.args, "%s", eff->args ? eff->args : ""); /* a second reply's structure too */
  c->seen++;
  if (c->fn) c->fn(c->ud, eff->req_id, &r);
}

int th_collect(tally_engine *e, int count, int timeout_ms, th_reply_fn fn, void *ud) {
  collector c = {0, fn, ud};
  for (int waited = 0; c.seen < count && waited < timeout_ms; waited += 5) {
    struct pollfd p = {tally_engine_fd(e), POLLIN, 0};
    poll(&p, 1, 5);
    tally_engine_drain(e, on_collect, &c, 100000);
  }
  return c.seen;
}

int th_buy_confirmed(tally_engine *e, const char *account, const char *sku, th_reply *out) {
  char text[128];
  snprintf(text, sizeof text, "BUY %s", sku);
  int rc = th_cmd(e, account, text, 0, out);
  if (rc != TALLY_ECONSENT) return rc;
  const char *code = strstr(out->text, "CONFIRM ");
  if (!code) return TALLY_EFRAME;
  char confirm[32];
  snprintf(confirm, sizeof confirm, "CONFIRM %.6s", code + 8);
  return th_cmd(e, account, confirm, 0, out);
}

void th_presence(tally_engine *e, const char *account, const char *channel, int present) {
  tally_presence p = {.size = sizeof p, .version = TALLY_PRESENCE_VERSION, .account = account,
                      .channel = channel, .present = (uint32_t)present};
  if (tally_engine_submit_presence(e, &p) != TALLY_OK) die("presence refused");
}

int64_t th_sql_i64f(const char *dsn, const char *fmt, ...) {
  char q[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  return th_sql_i64(dsn, q);
}

int th_buyer(tally_engine *e, const char *account, const char *credits, const char *sku) {
  th_reply r;
  char text[128];
  snprintf(text, sizeof text, "TALLY GRANT %s %s", account, credits);
  int rc = th_cmd(e, "admin", text, TALLY_ROLE_OPER | TALLY_ROLE_GRANT, &r);
  return rc ? rc : th_buy_confirmed(e, account, sku, &r);
}

int th_tally_check(const char *dsn) { return th_tally_run(dsn, "check", NULL); }

int th_tally_run(const char *dsn, const char *cmd, const char *arg) {
  return th_tally_run2(dsn, cmd, arg, NULL);
}

int th_tally_run2(const char *dsn, const char *cmd, const char *arg1, const char *arg2) {
  const char *cli = getenv("TALLY_CLI");
  if (!cli) die("TALLY_CLI is not set");
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", 1);
    if (!getenv("TALLY_TEST_VERBOSE")) dup2(null, 1);
    execl(cli, "tally", "--dsn", dsn, cmd, arg1, arg2, (char *)NULL);
    _exit(127);
  }
  int status;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}
