/* test_price.c — a price raise never charges a buyer more than they agreed
 * to: above the unit price they last paid (or confirmed) for an item, BUY
 * asks for a fresh CONFIRM naming the new price, and BUY ... max=<price>
 * refuses a higher price. Through the public API against the real
 * PostgreSQL, also across a restart (the agreed prices are rebuilt from
 * the ledger's purchases). `tally check` runs at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define OPER TALLY_ROLE_OPER

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;
static th_reply r;
static char last_code[8]; /* of the last CONFIRM question */

#define sql(...) th_sql_i64f(dsn, __VA_ARGS__)

static int run(const char *account, const char *text) {
  int rc = th_cmd(eng, account, text, 0, &r);
  if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "%s: %s -> %s %s\n", account, text, tally_err_name(rc), r.text);
  const char *code = strstr(r.text, "CONFIRM ");
  if (rc == TALLY_ECONSENT && code) snprintf(last_code, sizeof last_code, "%.6s", code + 8);
  return rc;
}

/* bob's purchases of sku and what they cost him in all. */
static int64_t bought(const char *sku) {
  return sql("SELECT count(*) FROM transfers t JOIN items i ON i.id = t.item_id JOIN accounts a ON a.id = t.account_id"
             " WHERE t.kind = 1 AND i.sku = '%s' AND a.name = 'user:bob'", sku);
}
static int64_t paid(const char *sku) {
  return sql("SELECT coalesce(sum(t.amount_minor), 0) FROM transfers t JOIN items i ON i.id = t.item_id"
             " JOIN accounts a ON a.id = t.account_id WHERE t.kind = 1 AND i.sku = '%s' AND a.name = 'user:bob'", sku);
}

/* CONFIRM with the code of the last question. */
static int confirm_last(const char *account) {
  assert_true(last_code[0] != 0);
  char text[32];
  snprintf(text, sizeof text, "CONFIRM %s", last_code);
  last_code[0] = 0;
  return run(account, text);
}

/* alice sells tee at 1.00; bob has 100.00, consented and bought one. */
static void setup(const char *name) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  eng = th_engine(&cfg);
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE alice creator", OPER, &r), TALLY_OK);
  assert_int_equal(run("alice", "ITEM ADD tee 1 Tour tee"), TALLY_OK);
  assert_int_equal(th_buyer(eng, "bob", "100", "tee"), TALLY_OK);
  assert_int_equal(paid("tee"), 100);
}

static void restart(void) {
  th_engine_free(eng);
  eng = th_engine(&cfg);
}

static void finish(void) {
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

static void test_raise_asks_again(void **state) {
  (void)state;
  setup("priceraise");
  assert_int_equal(run("alice", "ITEM SET tee price 5"), TALLY_OK);
  /* Not charged: a fresh CONFIRM that names the new price. */
  assert_int_equal(run("bob", "BUY tee"), TALLY_ECONSENT);
  assert_non_null(strstr(r.text, "5.00"));
  assert_non_null(strstr(r.text, "1.00"));
  assert_int_equal(bought("tee"), 1);
  assert_int_equal(confirm_last("bob"), TALLY_OK);
  assert_true(r.receipt != 0);
  assert_int_equal(paid("tee"), 100 + 500);
  /* Agreed to 5.00 now: the same price needs no CONFIRM, a lower one neither. */
  assert_int_equal(run("bob", "BUY tee"), TALLY_OK);
  assert_int_equal(paid("tee"), 100 + 500 + 500);
  assert_int_equal(run("alice", "ITEM SET tee price 3"), TALLY_OK);
  assert_int_equal(run("bob", "BUY tee"), TALLY_OK);
  /* ...and after buying at 3.00, 4.00 is a raise again. */
  assert_int_equal(run("alice", "ITEM SET tee price 4"), TALLY_OK);
  assert_int_equal(run("bob", "BUY tee 2"), TALLY_ECONSENT);
  assert_non_null(strstr(r.text, "4.00"));
  assert_non_null(strstr(r.text, "8.00")); /* the total of 2 */
  assert_int_equal(bought("tee"), 4);
  /* A raise between the question and the CONFIRM is refused. */
  assert_int_equal(run("alice", "ITEM SET tee price 9"), TALLY_OK);
  assert_int_equal(confirm_last("bob"), TALLY_EPRICE_CHANGED);
  assert_int_equal(bought("tee"), 4);
  finish();
}

static void test_max_bounds_the_price(void **state) {
  (void)state;
  setup("pricemax");
  assert_int_equal(run("alice", "ITEM SET tee price 5"), TALLY_OK);
  assert_int_equal(run("bob", "BUY tee max=2"), TALLY_EOVER_MAX);
  assert_non_null(strstr(r.text, "price of tee is now 5.00"));
  assert_non_null(strstr(r.text, "above your max=2.00"));
  assert_int_equal(bought("tee"), 1);
  /* max= at or above the price is the buyer's consent to it. */
  assert_int_equal(run("bob", "BUY tee 2 max=5"), TALLY_OK);
  assert_int_equal(paid("tee"), 100 + 1000);
  /* Options in either order; each once; a bad max= names itself. */
  assert_int_equal(run("bob", "BUY tee max=abc"), TALLY_EBAD_AMOUNT);
  assert_int_equal(run("bob", "BUY tee max=5 max=6"), TALLY_EBAD_SYNTAX);
  assert_int_equal(run("bob", "BUY tee max=5 2"), TALLY_EBAD_SYNTAX);
  assert_int_equal(run("bob", "BUY tee max=9 ref=nope"), TALLY_EBAD_REF);
  /* An item never bought: the first consent covers it, max= still binds. */
  assert_int_equal(run("alice", "ITEM ADD cap 7 Cap"), TALLY_OK);
  assert_int_equal(run("bob", "BUY cap max=6.99"), TALLY_EOVER_MAX);
  assert_int_equal(run("bob", "BUY cap"), TALLY_OK);
  assert_int_equal(paid("cap"), 700);
  finish();
}

static void test_agreed_price_survives_restart(void **state) {
  (void)state;
  setup("pricerestart");
  assert_int_equal(run("alice", "ITEM SET tee price 5"), TALLY_OK);
  restart();
  /* bob last paid 1.00 (from the ledger): 5.00 asks again. */
  assert_int_equal(run("bob", "BUY tee"), TALLY_ECONSENT);
  assert_non_null(strstr(r.text, "5.00"));
  assert_int_equal(run("bob", "BUY tee max=2"), TALLY_EOVER_MAX);
  assert_non_null(strstr(r.text, "5.00"));
  assert_int_equal(bought("tee"), 1);
  assert_int_equal(run("bob", "BUY tee"), TALLY_ECONSENT);
  assert_int_equal(confirm_last("bob"), TALLY_OK);
  assert_int_equal(paid("tee"), 600);
  restart();
  /* Now the ledger says 5.00: no question at 5.00, one at 6.00. */
  assert_int_equal(run("bob", "BUY tee"), TALLY_OK);
  assert_int_equal(paid("tee"), 1100);
  assert_int_equal(run("alice", "ITEM SET tee price 6"), TALLY_OK);
  assert_int_equal(run("bob", "BUY tee"), TALLY_ECONSENT);
  assert_non_null(strstr(r.text, "6.00"));
  assert_int_equal(bought("tee"), 3);
  finish();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_raise_asks_again),
      cmocka_unit_test(test_max_bounds_the_price),
      cmocka_unit_test(test_agreed_price_survives_restart),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
