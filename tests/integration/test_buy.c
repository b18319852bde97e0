/* test_buy.c — the hot buy path through the public API against a real
 * PostgreSQL: consent, buys, refusals, idempotency, refunds, caps, a herd
 * on the last units, and a restart. `tally check` runs after each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

typedef struct fx {
  char dsn[512];
  tally_config cfg;
  tally_engine *e;
} fx;

static fx F;

static void expect(int code, const char *account, const char *text) {
  th_reply r;
  int rc = th_cmd(F.e, account, text, TALLY_ROLE_OPER | TALLY_ROLE_GRANT, &r);
  if (rc != code) fprintf(stderr, "%s -> %s (%s), wanted %s\n", text, tally_err_name(rc), r.text, tally_err_name(code));
  assert_int_equal(rc, code);
}

/* A shop: alice sells "tee" (5.00, stock given) and bob has 20.00. */
static void shop(const char *test, int stock, int64_t cap_minor) {
  th_fresh_db(test, F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.daily_cap_minor = cap_minor;
  F.e = th_engine(&F.cfg);
  expect(TALLY_OK, "admin", "TALLY ROLE alice creator");
  char add[64];
  snprintf(add, sizeof add, "ITEM ADD tee 5 %d Tour tee", stock);
  expect(TALLY_OK, "alice", add);
  expect(TALLY_OK, "admin", "TALLY GRANT bob 20");
}

static void done(void) {
  th_engine_free(F.e);
  assert_int_equal(th_tally_check(F.dsn), 0);
}

static void test_consent_then_buy(void **state) {
  (void)state;
  shop("consent", 3, 0);
  th_reply r;
  assert_int_equal(th_cmd(F.e, "bob", "BUY tee", 0, &r), TALLY_ECONSENT);
  assert_non_null(strstr(r.text, "5.00 credits"));
  assert_int_equal(th_cmd(F.e, "bob", "CONFIRM ZZZZZZ", 0, &r), TALLY_EBAD_CODE);
  assert_int_equal(th_buy_confirmed(F.e, "bob", "tee", &r), TALLY_OK);
  assert_true(r.receipt > 0);
  assert_non_null(strstr(r.text, "receipt"));
  /* Committed before acknowledged: the receipt is in the ledger now. */
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM transfers WHERE id = %llu", (unsigned long long)r.receipt);
  assert_int_equal(th_sql_i64(F.dsn, sql), 1);
  /* Consent is asked once. */
  assert_int_equal(th_cmd(F.e, "bob", "BUY tee", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(F.e, "bob", "WALLET", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "10.00 credits available"));
  done();
}

static void test_confirm_survives_a_refusal(void **state) {
  (void)state;
  shop("confirm", 3, 0);
  th_reply r;
  assert_int_equal(th_cmd(F.e, "carol", "BUY tee", 0, &r), TALLY_ECONSENT);
  const char *at = strstr(r.text, "CONFIRM ");
  assert_non_null(at);
  char confirm[32];
  snprintf(confirm, sizeof confirm, "CONFIRM %.6s", at + 8);
  /* No credits yet: refused, but the code stays valid and nothing is charged. */
  assert_int_equal(th_cmd(F.e, "carol", confirm, 0, &r), TALLY_ENO_FUNDS);
  expect(TALLY_OK, "admin", "TALLY GRANT carol 10");
  assert_int_equal(th_cmd(F.e, "carol", confirm, 0, &r), TALLY_OK);
  assert_true(r.receipt > 0);
  /* Used: the same code does not buy twice. */
  assert_int_equal(th_cmd(F.e, "carol", confirm, 0, &r), TALLY_EBAD_CODE);
  done();
}

static void test_confirm_at_the_price_shown(void **state) {
  (void)state;
  shop("price", 3, 0);
  th_reply r;
  assert_int_equal(th_cmd(F.e, "bob", "BUY tee", 0, &r), TALLY_ECONSENT);
  assert_non_null(strstr(r.text, "5.00 credits"));
  char confirm[32];
  snprintf(confirm, sizeof confirm, "CONFIRM %.6s", strstr(r.text, "CONFIRM ") + 8);
  expect(TALLY_OK, "alice", "ITEM SET tee price 9");
  /* The buyer agreed to 5.00, not 9.00: refused, nothing charged. */
  assert_int_equal(th_cmd(F.e, "bob", confirm, 0, &r), TALLY_EPRICE_CHANGED);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 1"), 0);
  done();
}

static void test_refusals(void **state) {
  (void)state;
  shop("refusals", 1, 0);
  th_reply r;
  assert_int_equal(th_buy_confirmed(F.e, "bob", "tee", &r), TALLY_OK);
  expect(TALLY_ESOLD_OUT, "bob", "BUY tee");
  expect(TALLY_EUNKNOWN_ITEM, "bob", "BUY nothing");
  expect(TALLY_EBAD_QTY, "bob", "BUY tee 0");
  expect(TALLY_EBAD_QTY, "bob", "BUY tee -1");
  expect(TALLY_EBAD_QTY, "bob", "BUY tee 99999999999999999999999");
  expect(TALLY_EBAD_SYNTAX, "bob", "BUY");
  expect(TALLY_EUNKNOWN_CMD, "bob", "FROB");
  expect(TALLY_EBAD_UTF8, "bob", "BUY \xc3\x28");
  expect(TALLY_EBAD_SYNTAX, "bob", "BUY tee\x01");
  expect(TALLY_EBAD_AMOUNT, "bob", "TIP alice -5");
  expect(TALLY_EBAD_AMOUNT, "bob", "TIP alice 1e3");
  expect(TALLY_EBAD_AMOUNT, "bob", "TIP alice 0");
  expect(TALLY_EBAD_AMOUNT, "bob", "TIP alice 1.234");
  expect(TALLY_EOVERFLOW, "bob", "TIP alice 999999999999999999");
  expect(TALLY_ENO_FUNDS, "bob", "TIP alice 1000");
  expect(TALLY_EUNKNOWN_ACCOUNT, "bob", "TIP nobody 1");
  expect(TALLY_ESELF, "bob", "TIP bob 1");
  assert_int_equal(th_cmd(F.e, "", "BUY tee", 0, &r), TALLY_ENOT_LOGGED_IN);
  assert_int_equal(th_cmd(F.e, "bob", "ITEM ADD x 1 Thing", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd(F.e, "bob", "TALLY GRANT bob 5", 0, &r), TALLY_ENO_PERMISSION);
  done();
}

static void test_idempotent_retry(void **state) {
  (void)state;
  shop("idem", 10, 0);
  th_reply r1, r2;
  assert_int_equal(th_buy_confirmed(F.e, "bob", "tee", &r1), TALLY_OK);
  assert_int_equal(th_cmd_key(F.e, "bob", "BUY tee", "same-msg", 0, &r1), TALLY_OK);
  assert_int_equal(th_cmd_key(F.e, "bob", "BUY tee", "same-msg", 0, &r2), TALLY_OK);
  assert_int_equal(r1.receipt, r2.receipt);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE idem_key = 'same-msg'"), 1);
  assert_int_equal(th_cmd_key(F.e, "bob", "BUY tee 2", "same-msg", 0, &r2), TALLY_EKEY_MISMATCH);
  /* After a restart the key is still known. */
  th_engine_free(F.e);
  F.e = th_engine(&F.cfg);
  assert_int_equal(th_cmd_key(F.e, "bob", "BUY tee", "same-msg", 0, &r2), TALLY_OK);
  assert_int_equal(r1.receipt, r2.receipt);
  assert_int_equal(th_cmd_key(F.e, "bob", "BUY tee 3", "same-msg", 0, &r2), TALLY_EKEY_MISMATCH);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 1"), 2);
  done();
}

static void test_replay_after_sold_out(void **state) {
  (void)state;
  shop("replay", 2, 0);
  th_reply r1, r2;
  assert_int_equal(th_buy_confirmed(F.e, "bob", "tee", &r1), TALLY_OK);
  assert_int_equal(th_cmd_key(F.e, "bob", "BUY tee", "last-unit", 0, &r1), TALLY_OK);
  assert_int_equal(th_cmd(F.e, "bob", "BUY tee", 0, &r2), TALLY_ESOLD_OUT);
  /* A retried delivery of the command that got the last unit gets its
   * receipt, not "sold out" (I3: a replay returns the first answer). */
  assert_int_equal(th_cmd_key(F.e, "bob", "BUY tee", "last-unit", 0, &r2), TALLY_OK);
  assert_int_equal(r1.receipt, r2.receipt);
  done();
}

static void test_refunds(void **state) {
  (void)state;
  shop("refunds", 10, 0);
  th_reply buy, r;
  char text[64];
  assert_int_equal(th_buy_confirmed(F.e, "bob", "tee", &buy), TALLY_OK);
  snprintf(text, sizeof text, "REFUND %llu 2", (unsigned long long)buy.receipt);
  assert_int_equal(th_cmd(F.e, "bob", text, 0, &r), TALLY_OK);
  snprintf(text, sizeof text, "REFUND %llu 3.01", (unsigned long long)buy.receipt);
  assert_int_equal(th_cmd(F.e, "bob", text, 0, &r), TALLY_EREFUND_EXCEEDS);
  snprintf(text, sizeof text, "REFUND %llu", (unsigned long long)buy.receipt);
  assert_int_equal(th_cmd(F.e, "alice", text, 0, &r), TALLY_ENOT_YOURS);
  assert_int_equal(th_cmd(F.e, "bob", text, 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(F.e, "bob", text, 0, &r), TALLY_EREFUND_EXCEEDS);
  assert_int_equal(th_cmd(F.e, "bob", "REFUND 999999", 0, &r), TALLY_EUNKNOWN_RECEIPT);
  /* Whole purchase back, fee included; the platform keeps nothing. */
  assert_int_equal(th_sql_i64(F.dsn, "SELECT sum(amount_minor) FROM entries WHERE account_id = 1"), 0);
  assert_int_equal(th_cmd(F.e, "bob", "WALLET", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "20.00 credits available"));
  done();
}

static void test_daily_cap(void **state) {
  (void)state;
  shop("cap", 10, 1200);
  th_reply r;
  assert_int_equal(th_buy_confirmed(F.e, "bob", "tee", &r), TALLY_OK);
  assert_int_equal(th_cmd(F.e, "bob", "BUY tee", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(F.e, "bob", "BUY tee", 0, &r), TALLY_EOVER_CAP);
  done();
}

/* Channel buckets: a busy channel is limited; when the table of channels
 * is full, a new channel takes an idle bucket, and with none idle it is
 * refused (a global limit), never waved through. */
static void test_channel_rate_limits(void **state) {
  (void)state;
  th_fresh_db("chanrate", F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.rate_channel_per_min = 1; /* a burst of 5, then one a minute (the test takes less) */
  F.e = th_engine(&F.cfg);
  th_reply r;
  for (int i = 0; i < 5; i++) assert_int_equal(th_cmd_in(F.e, "bob", "#busy", "WALLET", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(F.e, "bob", "#busy", "WALLET", 0, &r), TALLY_ERATE_LIMITED);
  assert_int_equal(th_cmd_in(F.e, "bob", "", "WALLET", 0, &r), TALLY_OK); /* private lines: no channel bucket */
  char channel[32];
  for (int i = 1; i < 4096; i++) { /* fills the table of 4096 channels */
    snprintf(channel, sizeof channel, "#c%d", i);
    assert_int_equal(th_cmd_in(F.e, "bob", channel, "WALLET", 0, &r), TALLY_OK);
  }
  assert_int_equal(th_cmd_in(F.e, "bob", "#busy", "WALLET", 0, &r), TALLY_ERATE_LIMITED);
  assert_int_equal(th_cmd_in(F.e, "bob", "#one-too-many", "WALLET", 0, &r), TALLY_ERATE_LIMITED);
  done();
}

/* The global bucket: all senders together. */
static void test_global_rate_limit(void **state) {
  (void)state;
  th_fresh_db("globalrate", F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.rate_global_per_min = 1; /* a burst of 5, then one a minute */
  F.e = th_engine(&F.cfg);
  th_reply r;
  const char *who[] = {"a1", "a2", "a3", "a4", "a5", "a6"};
  for (int i = 0; i < 5; i++) assert_int_equal(th_cmd_in(F.e, who[i], "", "WALLET", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(F.e, who[5], "#other", "WALLET", 0, &r), TALLY_ERATE_LIMITED);
  done();
}

typedef struct herd_count {
  int ok, sold_out, other;
} herd_count;

static void count_reply(void *ud, uint64_t req, const th_reply *r) {
  (void)req;
  herd_count *h = ud;
  if (r->code == TALLY_OK) h->ok++;
  else if (r->code == TALLY_ESOLD_OUT) h->sold_out++;
  else h->other++;
}

static void test_herd_last_units(void **state) {
  (void)state;
  shop("herd", 5, 0);
  enum { BUYERS = 300 };
  char who[32], text[64];
  th_reply r;
  for (int i = 0; i < BUYERS; i++) {
    snprintf(who, sizeof who, "b%d", i);
    snprintf(text, sizeof text, "TALLY GRANT %s 10", who);
    expect(TALLY_OK, "admin", text);
    /* Consent first, on another item, so the herd below is pure buying. */
    if (i == 0) expect(TALLY_OK, "alice", "ITEM ADD pin 1 Pin");
    assert_int_equal(th_buy_confirmed(F.e, who, "pin", &r), TALLY_OK);
  }
  for (int i = 0; i < BUYERS; i++) {
    snprintf(who, sizeof who, "b%d", i);
    th_send(F.e, who, "BUY tee", NULL);
  }
  herd_count h = {0};
  assert_int_equal(th_collect(F.e, BUYERS, 20000, count_reply, &h), BUYERS);
  assert_int_equal(h.ok, 5);
  assert_int_equal(h.sold_out, BUYERS - 5);
  assert_int_equal(h.other, 0);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT sum(qty) FROM transfers t JOIN items i ON i.id = t.item_id"
                                     " WHERE i.sku = 'tee' AND t.kind = 1"), 5);
  done();
}

static void test_restart_rebuilds_state(void **state) {
  (void)state;
  shop("restart", 4, 0);
  th_reply buy, r;
  assert_int_equal(th_buy_confirmed(F.e, "bob", "tee", &buy), TALLY_OK);
  assert_int_equal(th_cmd(F.e, "bob", "BUY tee 2", 0, &r), TALLY_OK);
  th_engine_free(F.e);
  F.e = th_engine(&F.cfg);
  /* stock = initial - committed; balance = sum of entries; consent kept. */
  assert_int_equal(th_cmd(F.e, "bob", "BUY tee 2", 0, &r), TALLY_ESOLD_OUT);
  assert_int_equal(th_cmd(F.e, "bob", "BUY tee", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(F.e, "bob", "WALLET", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "0.00 credits available"));
  char text[64];
  snprintf(text, sizeof text, "REFUND %llu", (unsigned long long)buy.receipt);
  assert_int_equal(th_cmd(F.e, "bob", text, 0, &r), TALLY_OK);
  done();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_consent_then_buy), cmocka_unit_test(test_confirm_survives_a_refusal),
      cmocka_unit_test(test_confirm_at_the_price_shown),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_idempotent_retry), cmocka_unit_test(test_replay_after_sold_out),
      cmocka_unit_test(test_refunds),
      cmocka_unit_test(test_daily_cap),        cmocka_unit_test(test_channel_rate_limits),
      cmocka_unit_test(test_global_rate_limit),        cmocka_unit_test(test_herd_last_units),
      cmocka_unit_test(test_restart_rebuilds_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
