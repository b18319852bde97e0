/* bench_engine.c — the engine's side of `make bench`; prints one JSON object.
 *
 *   decide_per_s   in-memory buy decisions (decide + commit in memory), one core
 *   durable_*      buys end to end (submitted -> receipt after COMMIT) with C
 *                  buyers each keeping one buy in flight, C in {1, 64, 4096}
 *   herd_*         100,000 distinct buyers submit one BUY each for a 100-unit
 *                  item at once: sold, answered, ms until the last answer
 *
 * Usage: bench_engine --dsn DSN [--quick] [--remote ADDRESS --secret SECRET [--stalled]]
 *
 * --stalled (remote only) measures just one thing: 64 buyers' p99 with no
 * other chat server, then with a second connection ("stalled") that floods
 * SHOP commands and never reads an answer, so tallyd's queue for it fills:
 * stall_free_* and stall_* (issue 11: a stalled server must not slow the
 * others).
 *
 * With --remote the same calls go to a tallyd at ADDRESS (libtally's remote
 * mode: unix:/path or tls:host:port, TLS CA in $BENCH_REMOTE_CA) instead of
 * an engine in this process; the tallyd must serve DSN's database with the
 * settings below (bench/run.sh starts it so). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/bench_util.h"
#include "tally.h"
#include "tally/bench.h"

enum { HERD_BUYERS = 100000, HERD_STOCK = 100, DECIDE_ROUNDS = 2000000, CONC_MAX = 4096 };

/* ---- decide_per_s ------------------------------------------------------------ */
/* Through tally/bench.h: the loop lives in core, so this file needs no
 * private header; it times the loop alone, as it did here before. */
static double bench_decide(void) {
  double dt = 0;
  if (tally_bench_decide(DECIDE_ROUNDS, &dt) != TALLY_OK || dt <= 0) return 0;
  return DECIDE_ROUNDS / dt;
}

/* ---- engine plumbing -------------------------------------------------------------- */
typedef struct run {
  tally_engine *e;
  uint64_t seq;
  int answered, ok, sold_out, consent, other, last_other;
  double *sent_at;  /* by req id slot */
  double *lat_us;
  int lat_n, lat_cap;
  char (*codes)[8]; /* consent codes by buyer */
  int *buyer_of;    /* req slot -> buyer */
  int slots;
} run;

/* Remote mode: 1 while the link to tallyd is not up yet (a WALLET probe is
 * answered "unavailable" by libtally itself until then). */
static int wait_linked(run *r) {
  tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = ++r->seq, .origin = "bench",
                     .account = "probe", .nick = "p", .channel = "", .msg_id = "", .text = "SHOP"};
  return tally_engine_submit_command(r->e, &c) == TALLY_EUNAVAILABLE;
}

static void submit(run *r, int buyer, const char *text, uint32_t roles) {
  char account[32], msg[48];
  uint64_t req = ++r->seq;
  snprintf(account, sizeof account, "b%d", buyer);
  snprintf(msg, sizeof msg, "bench-%llu", (unsigned long long)req);
  tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = req,
                     .origin = "bench", .account = roles ? "admin" : account, .nick = "b",
                     .channel = "", .msg_id = msg, .text = text, .roles = roles};
  r->sent_at[req % r->slots] = bench_now_s();
  r->buyer_of[req % r->slots] = buyer;
  while (tally_engine_submit_command(r->e, &c) == TALLY_EBUSY) usleep(50);
}

static void on_effect(void *ud, const tally_effect *eff) {
  run *r = ud;
  if (eff->kind != TALLY_EFFECT_REPLY || eff->code == TALLY_EPENDING) return;
  r->answered++;
  int slot = (int)(eff->req_id % r->slots);
  if (eff->code == TALLY_OK && eff->receipt_id) {
    r->ok++;
    if (r->lat_n < r->lat_cap) r->lat_us[r->lat_n++] = (bench_now_s() - r->sent_at[slot]) * 1e6;
  } else if (eff->code == TALLY_ESOLD_OUT) r->sold_out++;
  else if (eff->code == TALLY_ECONSENT) {
    r->consent++;
    const char *c = strstr(eff->text, "CONFIRM ");
    if (c) memcpy(r->codes[r->buyer_of[slot]], c + 8, 6);
  } else if (eff->code == TALLY_OK) r->ok++;
  else {
    r->other++;
    r->last_other = (int)eff->code;
  }
}

static void pump(run *r, int want, double timeout_s) {
  double end = bench_now_s() + timeout_s;
  while (r->answered < want && bench_now_s() < end) {
    struct pollfd p = {tally_engine_fd(r->e), POLLIN, 0};
    poll(&p, 1, 5);
    tally_engine_drain(r->e, on_effect, r, 1u << 20);
  }
}

static void reset(run *r) { r->answered = r->ok = r->sold_out = r->consent = r->other = r->lat_n = 0; }

/* Grants, consent and a first purchase for buyers [0, n), in waves: each
 * grant and each CONFIRM is an operation, and no more than batch_max x
 * (writers + 1) can be in flight (beyond that the engine answers "busy"). */
enum { CONSENT_CHUNK = 4096 }; /* each CONFIRM buys: stay under what can be in flight */
static void setup_buyers(run *r, int n) {
  char text[64];
  for (int from = 0; from < n; from += CONSENT_CHUNK) {
    int to = from + CONSENT_CHUNK < n ? from + CONSENT_CHUNK : n;
    reset(r);
    for (int i = from; i < to; i++) {
      snprintf(text, sizeof text, "TALLY GRANT b%d 100000", i);
      submit(r, i, text, TALLY_ROLE_OPER | TALLY_ROLE_GRANT);
    }
    pump(r, to - from, 120);
    reset(r);
    for (int i = from; i < to; i++) submit(r, i, "BUY warmup", 0);
    pump(r, to - from, 120);
    reset(r);
    for (int i = from; i < to; i++) {
      snprintf(text, sizeof text, "CONFIRM %.6s", r->codes[i]);
      submit(r, i, text, 0);
    }
    pump(r, to - from, 120);
    if (r->ok != to - from)
      fprintf(stderr, "bench_engine: consent wave %d..%d: %d bought, %d other (last %s)\n", from, to, r->ok, r->other,
              tally_err_name(r->last_other));
  }
}

typedef struct durable_result {
  double per_s, p50, p99, p999;
} durable_result;

/* per_s with the percentiles of the first n latency samples of r. */
static durable_result latencies(run *r, int n, double per_s) {
  durable_result d = {per_s, bench_quantile(r->lat_us, n, 0.5), 0, 0};
  d.p99 = bench_quantile_sorted(r->lat_us, n, 0.99);
  d.p999 = bench_quantile_sorted(r->lat_us, n, 0.999);
  return d;
}

/* C buyers, each with one buy in flight, for `seconds`. */
static durable_result bench_durable(run *r, int conc, double seconds) {
  reset(r);
  for (int i = 0; i < conc; i++) submit(r, i, "BUY tee", 0);
  double t0 = bench_now_s(), end = t0 + seconds;
  int inflight = conc;
  int next_buyer = 0;
  while (bench_now_s() < end) {
    int before = r->answered;
    struct pollfd p = {tally_engine_fd(r->e), POLLIN, 0};
    poll(&p, 1, 5);
    tally_engine_drain(r->e, on_effect, r, 1u << 20);
    for (int k = before; k < r->answered; k++) submit(r, next_buyer++ % conc, "BUY tee", 0);
  }
  double dt = bench_now_s() - t0;
  int ok = r->ok;
  int n = r->lat_n;
  pump(r, r->answered + inflight, 30); /* let the last ones land */
  return latencies(r, n, ok / dt);
}

/* Open loop: one buy every 1/rate seconds for `seconds`, whatever the
 * answers do; latency percentiles of the receipts. */
static durable_result bench_paced(run *r, double rate, double seconds) {
  reset(r);
  double t0 = bench_now_s(), interval = 1.0 / rate;
  long sent = 0;
  while (bench_now_s() - t0 < seconds) {
    long due = (long)((bench_now_s() - t0) / interval) + 1;
    for (; sent < due; sent++) submit(r, (int)(sent % HERD_BUYERS), "BUY tee", 0);
    struct pollfd p = {tally_engine_fd(r->e), POLLIN, 0};
    poll(&p, 1, 0);
    tally_engine_drain(r->e, on_effect, r, 1u << 20);
  }
  pump(r, (int)sent, 30);
  fprintf(stderr, "bench_engine: paced: sent %ld, answered %d, receipts %d, consent %d, sold out %d, other %d\n", sent,
          r->answered, r->ok, r->consent, r->sold_out, r->other);
  return latencies(r, r->lat_n, r->ok / seconds);
}

/* ---- a stalled neighbour ------------------------------------------------------ */
/* Twice its own effect ring: the answers fill the ring, then the socket,
 * then tallyd's queue for it, which then holds thousands of effects the
 * host will not take; past that it sends nothing more, so what is measured
 * is a stuck neighbour, not the engine's CPU spent on a flood. */
enum { STALL_COMMANDS = 8192, STALL_QUEUE = 4096 };

/* A second chat server on the same tallyd that sends and never reads: its
 * engine's effect ring is never drained, so its link stops reading and
 * tallyd's queue for it fills up. Returns the commands it got in. */
static int staller_start(const tally_config *base, tally_engine **out) {
  tally_config cfg = *base;
  char err[TALLY_ERRBUF_BYTES] = "";
  cfg.queue_depth = STALL_QUEUE;
  if (tally_config_set(&cfg, "instance", "stalled", err, sizeof err) || tally_engine_new(&cfg, out, err, sizeof err) ||
      tally_engine_start(*out)) {
    fprintf(stderr, "bench_engine: staller: %s\n", err);
    return -1;
  }
  for (int i = 0; i < 100; i++) { /* linked within 10 s */
    tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = 1, .origin = "stall",
                       .account = "staller", .nick = "s", .channel = "", .msg_id = "", .text = "SHOP"};
    if (tally_engine_submit_command(*out, &c) != TALLY_EUNAVAILABLE) break;
    usleep(100000);
  }
  int sent = 0;
  for (int i = 0; i < STALL_COMMANDS; i++) {
    char account[32];
    snprintf(account, sizeof account, "s%d", i % 512);
    tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = (uint64_t)i + 2,
                       .origin = "stall", .account = account, .nick = "s", .channel = "", .msg_id = "", .text = "SHOP"};
    if (tally_engine_submit_command(*out, &c) == TALLY_OK) sent++;
    else usleep(200); /* its ring is full: the link is writing what it can */
  }
  return sent;
}

static int bench_stalled(run *r, const tally_config *cfg, double seconds) {
  setup_buyers(r, 64);
  durable_result free_run = bench_durable(r, 64, seconds);
  tally_engine *st = NULL;
  int sent = staller_start(cfg, &st);
  if (sent < 0) return 1;
  sleep(1); /* its answers pile up in tallyd */
  durable_result stall_run = bench_durable(r, 64, seconds);
  printf("{\"stall_free_per_s\": %.0f, \"stall_free_p99_us\": %.0f, \"stall_per_s\": %.0f, \"stall_p99_us\": %.0f,"
         " \"staller_sent\": %d}\n",
         free_run.per_s, free_run.p99, stall_run.per_s, stall_run.p99, sent);
  tally_engine_stop_within(st, 500);
  tally_engine_free(st);
  return 0;
}

int main(int argc, char **argv) {
  const char *dsn;
  int quick;
  const char *remote = NULL, *secret = NULL;
  /* --remote and --secret are this program's; the rest is the usual. */
  char *rest[16];
  int nrest = 0;
  int stalled = 0;
  for (int i = 0; i < argc && nrest < 16; i++) {
    if (!strcmp(argv[i], "--stalled")) stalled = 1;
    else if (i + 1 < argc && !strcmp(argv[i], "--remote")) remote = argv[++i];
    else if (i + 1 < argc && !strcmp(argv[i], "--secret")) secret = argv[++i];
    else rest[nrest++] = argv[i];
  }
  argc = nrest;
  argv = rest;
  if (bench_parse_dsn_quick(argc, argv, "bench_engine", &dsn, &quick)) return 2;
  if (!remote != !secret) {
    fprintf(stderr, "bench_engine: --remote and --secret go together\n");
    return 2;
  }
  double decide = bench_decide();

  tally_config cfg;
  tally_config_init(&cfg);
  char key[256];
  snprintf(key, sizeof key, "/tmp/tally-bench-%d.pem", (int)getpid());
  cfg.dsn = dsn;
  cfg.signing_key_path = key;
  cfg.queue_depth = 1u << 17;
  cfg.batch_max = 8192;
  cfg.rate_account_per_min = 0;
  cfg.rate_channel_per_min = 0;
  cfg.pending_timeout_ms = 600000;
  cfg.grant_max_major = 0; /* buyers get 100000 each */
  /* keys_max and purchases_max stay at their production defaults. */
  char err[TALLY_ERRBUF_BYTES] = "";
  if (remote) {
    const char *ca = getenv("BENCH_REMOTE_CA");
    if (tally_config_set(&cfg, "mode", "remote", err, sizeof err) ||
        tally_config_set(&cfg, "address", remote, err, sizeof err) ||
        tally_config_set(&cfg, "secret", secret, err, sizeof err) ||
        tally_config_set(&cfg, "instance", "bench", err, sizeof err) ||
        (ca && tally_config_set(&cfg, "remote_ca", ca, err, sizeof err))) {
      fprintf(stderr, "bench_engine: %s\n", err);
      return 2;
    }
  }
  run r = {.slots = 1 << 20, .lat_cap = 1 << 22};
  r.sent_at = calloc((size_t)r.slots, sizeof *r.sent_at);
  r.buyer_of = calloc((size_t)r.slots, sizeof *r.buyer_of);
  r.lat_us = calloc((size_t)r.lat_cap, sizeof *r.lat_us);
  r.codes = calloc(HERD_BUYERS, sizeof *r.codes);
  if (tally_engine_new(&cfg, &r.e, err, sizeof err) || tally_engine_start(r.e)) {
    fprintf(stderr, "bench_engine: %s\n", err);
    return 1;
  }
  /* Wait for ready, then a shop: alice sells tee (unlimited), warmup, drop. */
  sleep(1);
  while (remote && wait_linked(&r)) usleep(100000);
  reset(&r);
  submit(&r, 0, "TALLY ROLE alice creator", TALLY_ROLE_OPER);
  pump(&r, 1, 30);
  const char *items[] = {"ITEM ADD tee 1 Tee", "ITEM ADD warmup 1 Warmup", "ITEM ADD drop 1 100 Drop"};
  reset(&r);
  for (int i = 0; i < 3; i++) {
    uint64_t req = ++r.seq;
    tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = req,
                       .origin = "bench", .account = "alice", .nick = "a", .channel = "",
                       .msg_id = items[i], .text = items[i], .roles = 0};
    tally_engine_submit_command(r.e, &c);
  }
  pump(&r, 3, 30);
  if (stalled) {
    if (!remote) {
      fprintf(stderr, "bench_engine: --stalled needs --remote\n");
      return 2;
    }
    int rc = bench_stalled(&r, &cfg, quick ? 4 : 12);
    tally_engine_stop(r.e);
    tally_engine_free(r.e);
    unlink(key);
    return rc;
  }
  double t_setup = bench_now_s();
  setup_buyers(&r, HERD_BUYERS);
  t_setup = bench_now_s() - t_setup;

  double seconds = quick ? 4 : 12;
  int concs[] = {1, 64, CONC_MAX};
  durable_result best = {0}, res[3];
  for (int i = 0; i < 3; i++) {
    res[i] = bench_durable(&r, concs[i], concs[i] == 1 ? seconds / 2 : seconds);
    if (res[i].per_s > best.per_s) best = res[i];
  }
  /* 10% of the peak rate, paced: the latency a buyer sees on a busy day. */
  durable_result paced = bench_paced(&r, best.per_s * 0.10, seconds);
  if (r.other) fprintf(stderr, "bench_engine: paced phase: %d refusals, last %s\n", r.other, tally_err_name(r.last_other));
  /* The herd: every buyer once, all at once. */
  reset(&r);
  double h0 = bench_now_s();
  for (int i = 0; i < HERD_BUYERS; i++) submit(&r, i, "BUY drop", 0);
  pump(&r, HERD_BUYERS, 120);
  double herd_ms = (bench_now_s() - h0) * 1000;
  int herd_sold = r.ok, herd_answered = r.answered;

  printf("{\"decide_per_s\": %.0f, \"durable_per_s\": %.0f, \"p50_us\": %.0f, \"p99_us\": %.0f,"
         " \"p999_us\": %.0f, \"durable_conc\": {",
         decide, best.per_s, best.p50, best.p99, best.p999);
  for (int i = 0; i < 3; i++)
    printf("%s\"%d\": {\"per_s\": %.0f, \"p50_us\": %.0f, \"p99_us\": %.0f}", i ? ", " : "", concs[i],
           res[i].per_s, res[i].p50, res[i].p99);
  printf("}, \"paced_per_s\": %.0f, \"paced_p50_us\": %.0f, \"paced_p99_us\": %.0f, \"paced_p999_us\": %.0f,",
         paced.per_s, paced.p50, paced.p99, paced.p999);
  printf(" \"herd_sold\": %d, \"herd_answered\": %d, \"herd_ms\": %.0f, \"herd_setup_s\": %.1f}\n",
         herd_sold, herd_answered, herd_ms, t_setup);
  tally_engine_stop(r.e);
  tally_engine_free(r.e);
  unlink(key);
  return 0;
}
