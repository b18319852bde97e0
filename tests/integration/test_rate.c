/* test_rate.c — rate limits with the DEFAULT rate config, as a real channel
 * meets them: a drop rush of many buyers in one channel is answered as by
 * command (sold or sold out, never "too many requests"), while a flood by a
 * few accounts is still held back, and does not use up the channel's bucket
 * for everyone else. `tally check` runs after each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define CH "#live"
#define HOST TALLY_ROLE_CHANOP

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;

/* th_config turns the per-account and per-channel limits off for the other
 * tests; these run with what a deployment gets by default. */
static void setup(const char *name, const char *stock) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  tally_config defaults;
  tally_config_init(&defaults);
  cfg.rate_account_per_min = defaults.rate_account_per_min;
  cfg.rate_channel_per_min = defaults.rate_channel_per_min;
  cfg.rate_global_per_min = defaults.rate_global_per_min;
  cfg.welcome_grant_minor = 1000; /* every new account can pay for one unit */
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE host creator", TALLY_ROLE_OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "EVENT START 30 Rush", HOST, &r), TALLY_OK);
  char text[64];
  snprintf(text, sizeof text, "DROP CREATE rush %s 1", stock);
  assert_int_equal(th_cmd_in(eng, "host", CH, text, HOST, &r), TALLY_OK);
  assert_true(th_announced("Type: BUY rush"));
}

static void finish(void) {
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

enum { BUYERS = 1000, UNITS = 100 };

typedef struct rush {
  uint64_t first_req;
  int count[4]; /* ok, sold out, too many requests, other */
  int asked;    /* consent asked (the first purchase of a new account) */
  char code[BUYERS][8];
} rush;

static void on_reply(void *ud, uint64_t req, const th_reply *r) {
  rush *h = ud;
  int k = r->code == TALLY_OK ? 0 : r->code == TALLY_ESOLD_OUT ? 1 : r->code == TALLY_ERATE_LIMITED ? 2 : 3;
  const char *code = strstr(r->text, "CONFIRM ");
  if (r->code == TALLY_ECONSENT) {
    if (code && req >= h->first_req && req < h->first_req + BUYERS)
      snprintf(h->code[req - h->first_req], sizeof h->code[0], "%.6s", code + 8);
    h->asked++;
    return;
  }
  if (k == 3 && getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "other: %s %s\n", tally_err_name(r->code), r->text);
  h->count[k]++;
}

static void wait_welcome_grants(int n) {
  for (int i = 0; i < 500; i++) {
    if (th_sql_i64(dsn, "SELECT count(*) FROM transfers WHERE idem_key LIKE 'welcome:%'") >= n) break;
    th_settle(eng, 20);
  }
  th_settle(eng, 100); /* credits land when the engine hears the commit */
}

/* 1,000 new buyers type the LIVE NOW line's `!buy rush` in #live at once,
 * then each types the CONFIRM code it was given, in #live too: exactly 100
 * sold, 900 sold out, none refused as a flood. */
static void test_channel_rush_is_answered(void **state) {
  (void)state;
  setup("rush", "100");
  static rush h;
  memset(&h, 0, sizeof h);
  char who[32], text[64];
  for (int i = 0; i < BUYERS; i++) {
    snprintf(who, sizeof who, "b%d", i);
    uint64_t req = th_send_in(eng, who, CH, "BUY rush");
    if (i == 0) h.first_req = req;
  }
  assert_int_equal(th_collect(eng, BUYERS, 60000, on_reply, &h), BUYERS);
  assert_int_equal(h.count[2], 0);
  assert_int_equal(h.asked, BUYERS);
  wait_welcome_grants(BUYERS);
  for (int i = 0; i < BUYERS; i++) {
    snprintf(who, sizeof who, "b%d", i);
    snprintf(text, sizeof text, "CONFIRM %s", h.code[i]);
    th_send_in(eng, who, CH, text);
  }
  assert_int_equal(th_collect(eng, BUYERS, 60000, on_reply, &h), BUYERS);
  assert_int_equal(h.count[2], 0);
  assert_int_equal(h.count[3], 0);
  assert_int_equal(h.count[0], UNITS);
  assert_int_equal(h.count[1], BUYERS - UNITS);
  assert_int_equal(th_sql_i64(dsn, "SELECT coalesce(sum(qty), 0) FROM transfers t JOIN items i ON i.id = t.item_id"
                                   " WHERE i.sku = 'rush' AND t.kind = 1"),
                   UNITS);
  /* Now consented, a second wave by the same buyers is pure buying. */
  for (int i = 0; i < BUYERS; i++) {
    snprintf(who, sizeof who, "b%d", i);
    th_send_in(eng, who, CH, "BUY rush");
  }
  memset(h.count, 0, sizeof h.count);
  assert_int_equal(th_collect(eng, BUYERS, 60000, on_reply, &h), BUYERS);
  assert_int_equal(h.count[2], 0);
  finish();
}

enum { FLOODERS = 3, FLOOD_LINES = 100 };

/* Three accounts each send 100 lines at once: each is held back by its own
 * bucket (a burst of 20 at 60 a minute), whether the lines buy a live drop
 * or not; the channel's bucket is not used up by them, so another buyer's
 * `!shop` in the same channel is still answered. */
static void test_flood_by_a_few_accounts_is_held_back(void **state) {
  (void)state;
  setup("flood", "100000");
  static rush h;
  memset(&h, 0, sizeof h);
  char who[32];
  const char *lines[] = {"BUY rush", "WALLET"}; /* one reply line each */
  for (int l = 0; l < 2; l++) {
    memset(h.count, 0, sizeof h.count);
    h.asked = 0;
    for (int n = 0; n < FLOOD_LINES; n++)
      for (int i = 0; i < FLOODERS; i++) {
        snprintf(who, sizeof who, "flood%d", i);
        th_send_in(eng, who, CH, lines[l]);
      }
    assert_int_equal(th_collect(eng, FLOODERS * FLOOD_LINES, 30000, on_reply, &h), FLOODERS * FLOOD_LINES);
    /* The test's lines arrive within a few seconds: a burst of 20 each plus
     * a little refill, never near 100. */
    assert_true(h.count[2] >= FLOODERS * (FLOOD_LINES - 30));
    th_reply r;
    assert_int_equal(th_cmd_in(eng, "bystander", CH, "SHOP", 0, &r), TALLY_OK);
  }
  finish();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_channel_rush_is_answered),
      cmocka_unit_test(test_flood_by_a_few_accounts_is_held_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
