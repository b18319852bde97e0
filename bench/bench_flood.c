/* bench_flood.c — the flood row of `make bench`; prints one JSON object.
 *
 * Legitimate buyers keep buying while thousands of commands per second come
 * from flooding accounts spread over many channels, each flooder sending
 * ten times its rate limit. The engine runs with its production limits
 * (rate_account 60/min, rate_channel 600/min: token buckets on the monotonic
 * clock, command.c). Both phases run in the same process against the same
 * database:
 *   base   legitimate buyers only, paced (open loop): LEGIT buyers, each one
 *          buy a second, in private (no channel), as /quote BUY does;
 *   flood  the same, plus FLOODERS accounts in CHANNELS channels sending
 *          FLOOD_PER_S commands a second in all (BUY and WALLET).
 * They alternate in rounds (base-flood, flood-base, ...: 4 pairs of 3 s,
 * quick 2 pairs of 2 s) and each condition's latencies are pooled, so that
 * other load on a shared machine hits both alike.
 *
 *   flood_legit_p50_us, flood_legit_p99_us        legitimate buys under flood
 *   flood_base_p50_us, flood_base_p99_us          the same without flood
 *   flood_p99_ratio                               under flood / without
 *   flood_legit_refused                           legitimate buys not bought
 *   flood_sent, flood_per_s                       flood commands submitted
 *   flood_rate_limited                            of those, "too many requests"
 *   flood_busy                                    refused by the full queue
 *   flood_rss_mb_before, flood_rss_mb_after       this process's RSS (the
 *                                                 engine's pools live in it)
 *
 * Usage: bench_flood --dsn DSN [--quick] */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/bench_util.h"
#include "tally.h"

enum { LEGIT = 200, FLOODERS = 2000, CHANNELS = 100, FLOOD_PER_S = 20000, SLOTS = 1 << 20 };
enum { PHASE_BASE = 1, PHASE_FLOOD = 2 };

typedef struct req {
  double sent;
  int buyer; /* -1 for a flood command */
} req;

typedef struct bench {
  tally_engine *e;
  uint64_t seq;
  req *reqs; /* by req_id % SLOTS */
  int ready, answered, legit_ok, legit_refused, last_refusal;
  long flood_sent, flood_answered, flood_limited, flood_busy;
  double *lat_us;
  int lat_n, lat_cap;
  char (*codes)[8]; /* consent codes by legitimate buyer */
} bench;

static void on_effect(void *ud, const tally_effect *eff) {
  bench *b = ud;
  if (eff->kind == TALLY_EFFECT_STATUS && eff->code == TALLY_OK) b->ready = 1;
  if (eff->kind != TALLY_EFFECT_REPLY || eff->code == TALLY_EPENDING || eff->req_id == 0) return;
  b->answered++;
  const req *q = &b->reqs[eff->req_id % SLOTS];
  if (q->buyer < 0) {
    b->flood_answered++;
    b->flood_limited += eff->code == TALLY_ERATE_LIMITED;
    return;
  }
  if (eff->code == TALLY_ECONSENT) {
    const char *c = strstr(eff->text, "CONFIRM ");
    if (c) memcpy(b->codes[q->buyer], c + 8, 6);
  }
  if (eff->code == TALLY_OK && eff->receipt_id) {
    b->legit_ok++;
    if (b->lat_n < b->lat_cap) b->lat_us[b->lat_n++] = (bench_now_s() - q->sent) * 1e6;
  } else if (eff->code != TALLY_OK && eff->code != TALLY_ECONSENT) {
    b->legit_refused++;
    b->last_refusal = eff->code;
  }
}

/* Submits; a full queue is a refusal like any other (counted, not retried). */
static int submit(bench *b, const char *account, const char *channel, const char *text, uint32_t roles, int buyer) {
  char msg[48];
  uint64_t id = ++b->seq;
  snprintf(msg, sizeof msg, "flood-%d-%llu", (int)getpid(), (unsigned long long)id);
  b->reqs[id % SLOTS] = (req){bench_now_s(), buyer};
  tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = id, .origin = "bench",
                     .account = account, .nick = account, .channel = channel, .msg_id = msg, .text = text,
                     .roles = roles};
  return tally_engine_submit_command(b->e, &c);
}

static void pump(bench *b, int timeout_ms) {
  struct pollfd p = {tally_engine_fd(b->e), POLLIN, 0};
  poll(&p, 1, timeout_ms);
  tally_engine_drain(b->e, on_effect, b, 1u << 20);
}

static void wait_answers(bench *b, int want, double timeout_s) {
  double end = bench_now_s() + timeout_s;
  while (b->answered < want && bench_now_s() < end) pump(b, 5);
}

static int start(bench *b, tally_config *cfg) {
  char err[TALLY_ERRBUF_BYTES] = "";
  if (tally_engine_new(cfg, &b->e, err, sizeof err) || tally_engine_start(b->e)) {
    fprintf(stderr, "bench_flood: %s\n", err);
    return -1;
  }
  double end = bench_now_s() + 60;
  b->ready = 0;
  while (!b->ready && bench_now_s() < end) pump(b, 10);
  return b->ready ? 0 : -1;
}

static void stop(bench *b) {
  tally_engine_stop(b->e);
  tally_engine_drain(b->e, on_effect, b, 1u << 22);
  tally_engine_free(b->e);
  b->e = NULL;
}

/* Without rate limits: a shop, and legitimate buyers with credits and their
 * consent given (a first purchase). */
static int setup(bench *b, tally_config *cfg) {
  uint32_t limits_a = cfg->rate_account_per_min, limits_c = cfg->rate_channel_per_min;
  cfg->rate_account_per_min = cfg->rate_channel_per_min = 0;
  if (start(b, cfg)) return -1;
  char text[64], who[32];
  b->answered = 0;
  submit(b, "admin", "", "TALLY ROLE alice creator", TALLY_ROLE_OPER, 0);
  wait_answers(b, 1, 30);
  submit(b, "alice", "", "ITEM ADD tee 1 Tee", 0, 0);
  submit(b, "alice", "", "ITEM ADD warmup 1 Warmup", 0, 0);
  wait_answers(b, 3, 30);
  for (int i = 0; i < LEGIT; i++) {
    snprintf(text, sizeof text, "TALLY GRANT u%d 100000", i);
    submit(b, "admin", "", text, TALLY_ROLE_OPER | TALLY_ROLE_GRANT, i);
  }
  wait_answers(b, 3 + LEGIT, 60);
  for (int i = 0; i < LEGIT; i++) {
    snprintf(who, sizeof who, "u%d", i);
    submit(b, who, "", "BUY warmup", 0, i);
  }
  wait_answers(b, 3 + 2 * LEGIT, 60);
  b->legit_ok = 0;
  for (int i = 0; i < LEGIT; i++) {
    snprintf(who, sizeof who, "u%d", i);
    snprintf(text, sizeof text, "CONFIRM %.6s", b->codes[i]);
    submit(b, who, "", text, 0, i);
  }
  wait_answers(b, 3 + 3 * LEGIT, 60);
  int ok = b->legit_ok;
  stop(b);
  cfg->rate_account_per_min = limits_a;
  cfg->rate_channel_per_min = limits_c;
  if (ok != LEGIT) fprintf(stderr, "bench_flood: setup: %d of %d buyers ready\n", ok, LEGIT);
  return ok == LEGIT ? 0 : -1;
}

static double rss_mb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %lf", &kb) == 1) break;
  if (f) fclose(f);
  return kb / 1024;
}

typedef struct phase {
  double *lat_us; /* receipts' latencies, pooled over the rounds */
  int lat_n, lat_cap;
  double p50, p99, seconds;
  int legit_sent, legit_refused;
} phase;

/* One round, open loop: each legitimate buyer one buy a second, in turn;
 * with flood, FLOOD_PER_S flood commands a second spread over the
 * flooders. Latencies are added to ph. */
static void run_round(bench *b, int flood, double seconds, phase *ph) {
  b->lat_n = b->legit_ok = b->legit_refused = 0;
  double t0 = bench_now_s();
  long legit = 0, fl = 0;
  char who[32], chan[32];
  while (bench_now_s() - t0 < seconds) {
    double t = bench_now_s() - t0;
    for (long due = (long)(t * LEGIT) + 1; legit < due; legit++) {
      snprintf(who, sizeof who, "u%ld", legit % LEGIT);
      if (submit(b, who, "", "BUY tee", 0, (int)(legit % LEGIT)) != TALLY_OK) b->legit_refused++;
    }
    for (long due = flood ? (long)(t * FLOOD_PER_S) + 1 : 0; fl < due; fl++) {
      snprintf(who, sizeof who, "f%ld", fl % FLOODERS);
      snprintf(chan, sizeof chan, "#flood%ld", fl % CHANNELS);
      b->flood_sent++;
      if (submit(b, who, chan, fl % 2 ? "WALLET" : "BUY tee", 0, -1) != TALLY_OK) b->flood_busy++;
    }
    pump(b, 0);
  }
  ph->seconds += bench_now_s() - t0;
  /* Let the last legitimate buys land (and the flood's answers drain). */
  double end = bench_now_s() + 30;
  while ((b->legit_ok + b->legit_refused < legit || b->flood_answered + b->flood_busy < b->flood_sent) &&
         bench_now_s() < end)
    pump(b, 5);
  ph->legit_sent += (int)legit;
  ph->legit_refused += b->legit_refused;
  for (int i = 0; i < b->lat_n && ph->lat_n < ph->lat_cap; i++) ph->lat_us[ph->lat_n++] = b->lat_us[i];
}

static void percentiles(phase *ph) {
  ph->p50 = bench_quantile(ph->lat_us, ph->lat_n, 0.5);
  ph->p99 = bench_quantile_sorted(ph->lat_us, ph->lat_n, 0.99);
}

int main(int argc, char **argv) {
  const char *dsn;
  int quick;
  if (bench_parse_dsn_quick(argc, argv, "bench_flood", &dsn, &quick)) return 2;
  tally_config cfg;
  tally_config_init(&cfg); /* production defaults, rate limits included */
  char key[256];
  snprintf(key, sizeof key, "/tmp/tally-bench-flood-%d.pem", (int)getpid());
  cfg.dsn = dsn;
  cfg.signing_key_path = key;
  cfg.grant_max_major = 0; /* buyers get 100000 each */
  bench b = {.lat_cap = 1 << 20};
  b.reqs = calloc(SLOTS, sizeof *b.reqs);
  b.lat_us = calloc((size_t)b.lat_cap, sizeof *b.lat_us);
  b.codes = calloc(LEGIT, sizeof *b.codes);
  if (!b.reqs || !b.lat_us || !b.codes || setup(&b, &cfg) || start(&b, &cfg)) {
    fprintf(stderr, "bench_flood: setup failed\n");
    return 1;
  }
  /* Rounds of ROUND_S seconds without and with flood, in the order
   * base-flood, flood-base, ... so that drifting load on a shared machine
   * hits both alike; each condition's latencies are pooled. */
  int rounds = quick ? 2 : 4;
  double round_s = quick ? 2 : 3;
  phase base = {.lat_cap = 1 << 18}, fl = {.lat_cap = 1 << 18};
  base.lat_us = calloc((size_t)base.lat_cap, sizeof *base.lat_us);
  fl.lat_us = calloc((size_t)fl.lat_cap, sizeof *fl.lat_us);
  if (!base.lat_us || !fl.lat_us) return 1;
  /* A warm-up, not counted: the first seconds after a start pay for cold
   * caches and fresh connections. */
  phase warm = {.lat_us = base.lat_us, .lat_cap = 0};
  run_round(&b, 0, 2, &warm);
  double rss0 = rss_mb();
  for (int r = 0; r < rounds; r++) {
    run_round(&b, r % 2, round_s, r % 2 ? &fl : &base);
    run_round(&b, !(r % 2), round_s, r % 2 ? &base : &fl);
  }
  percentiles(&base);
  percentiles(&fl);
  double flood_s = fl.seconds;
  double rss1 = rss_mb();
  fprintf(stderr,
          "bench_flood: base %d sent, %d bought, %d refused; flood phase %d sent, %d bought, %d refused (last %s);"
          " %ld flood commands, %ld answered, %ld rate limited, %ld busy\n",
          base.legit_sent, base.lat_n, base.legit_refused, fl.legit_sent, fl.lat_n, fl.legit_refused,
          tally_err_name(b.last_refusal), b.flood_sent, b.flood_answered, b.flood_limited, b.flood_busy);
  printf("{\"flood_legit_buyers\": %d, \"flood_accounts\": %d, \"flood_channels\": %d,"
         " \"flood_base_p50_us\": %.0f, \"flood_base_p99_us\": %.0f,"
         " \"flood_legit_p50_us\": %.0f, \"flood_legit_p99_us\": %.0f, \"flood_p99_ratio\": %.2f,"
         " \"flood_legit_refused\": %d, \"flood_sent\": %ld, \"flood_per_s\": %.0f,"
         " \"flood_rate_limited\": %ld, \"flood_busy\": %ld,"
         " \"flood_rss_mb_before\": %.1f, \"flood_rss_mb_after\": %.1f}\n",
         LEGIT, FLOODERS, CHANNELS, base.p50, base.p99, fl.p50, fl.p99, base.p99 > 0 ? fl.p99 / base.p99 : 0,
         base.legit_refused + fl.legit_refused, b.flood_sent, b.flood_sent / flood_s, b.flood_limited,
         b.flood_busy, rss0, rss1);
  free(base.lat_us);
  free(fl.lat_us);
  stop(&b);
  unlink(key);
  char pub[300];
  snprintf(pub, sizeof pub, "%s.pub", key);
  unlink(pub);
  return 0;
}
