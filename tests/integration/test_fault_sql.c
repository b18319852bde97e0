/* test_fault_sql.c — errors injected inside PostgreSQL by a test-only
 * statement trigger on transfers (every batch statement inserts into it):
 *   F10 serialization failures (40001) and deadlocks (40P01): a few are
 *       retried with the same keys and end in receipts; endless ones end in
 *       "could not be recorded; you were not charged", with nothing charged;
 *   F4  (the part that can be injected) a non-retryable error such as
 *       disk full (53100): a clear refusal, nothing charged, and buying works
 *       again once the error stops; a live drop pauses meanwhile and resumes
 *       with the time it had left.
 * See docs/RELIABILITY.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "load.h"

static th_fault_fx F;

static int teardown(void **state) {
  (void)state;
  th_fault_fx_free(&F);
  return 0;
}

enum { BUYERS = 20 };

static void setup_shop(const char *name) {
  th_fresh_db(name, F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.pending_timeout_ms = 1000;
  F.e = th_engine(&F.cfg);
  th_load_init(&F.L, F.e, 1000);
  assert_int_equal(th_load_shop(&F.L, BUYERS, 100000, 1000), 0);
}

/* The trigger raises `sqlstate` for the first `times` batch statements
 * (a sequence counts them: it is not rolled back with them); times < 0
 * means always. */
static void inject(const char *sqlstate, int times) {
  char sql[1024];
  snprintf(sql, sizeof sql,
           "SET client_min_messages = warning; CREATE SEQUENCE IF NOT EXISTS th_fail;"
           " CREATE OR REPLACE FUNCTION th_fail() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN"
           " IF %d < 0 OR nextval('th_fail') <= %d THEN"
           " RAISE EXCEPTION 'injected by test_fault_sql' USING ERRCODE = '%s'; END IF;"
           " RETURN NULL; END$$;"
           " DROP TRIGGER IF EXISTS th_fail ON transfers;"
           " CREATE TRIGGER th_fail AFTER INSERT ON transfers FOR EACH STATEMENT EXECUTE FUNCTION th_fail();"
           " SELECT setval('th_fail', 1, false)",
           times, times, sqlstate);
  assert_int_equal(th_sql_exec(F.dsn, sql), 0);
}

static void heal(void) { assert_int_equal(th_sql_exec(F.dsn, "DROP TRIGGER IF EXISTS th_fail ON transfers"), 0); }

/* One buy per buyer, all at once; returns how many ended with `code`. */
static int round_of_buys(int code) {
  int first = F.L.n;
  char who[16];
  for (int i = 0; i < BUYERS; i++) {
    snprintf(who, sizeof who, "b%d", i);
    th_load_send(&F.L, who, "BUY tee", NULL, 0);
  }
  assert_int_equal(th_load_wait(&F.L, 20000), 0);
  int n = 0;
  for (int i = first; i < F.L.n; i++) {
    if (F.L.reqs[i].final_code != code)
      fprintf(stderr, "request %d: %s: %s\n", i, tally_err_name(F.L.reqs[i].final_code), F.L.reqs[i].text);
    n += F.L.reqs[i].final_code == code;
  }
  return n;
}

static void finish(const char *tag, int receipts) {
  th_load_stop_engine(&F.L);
  th_ledger_report r;
  assert_int_equal(th_load_check(&F.L, F.dsn, "tee", &r, tag), 0);
  assert_int_equal(r.receipts, receipts);
  assert_int_equal(r.ledger_rows, receipts);
  tally_engine_free(F.e);
  F.e = NULL;
  th_load_free(&F.L);
  assert_int_equal(th_tally_check(F.dsn), 0);
}

static void test_f10_serialization_failures(void **state) {
  (void)state;
  setup_shop("f10");
  tally_stats before = {0}, after = {0};
  tally_engine_stats(F.e, &before);
  /* A few: retried with the same keys, everybody gets a receipt. */
  inject("40001", 3);
  assert_int_equal(round_of_buys(TALLY_OK), BUYERS);
  tally_engine_stats(F.e, &after);
  assert_true(after.batch_retries - before.batch_retries >= 3);
  inject("40P01", 2);
  assert_int_equal(round_of_buys(TALLY_OK), BUYERS);
  /* Endless: bounded retries, then a clear error and no charge. */
  inject("40001", -1);
  assert_int_equal(round_of_buys(TALLY_EFAILED), BUYERS);
  heal();
  assert_int_equal(round_of_buys(TALLY_OK), BUYERS);
  finish("f10", 3 * BUYERS);
}

static void test_f4_statement_refused(void **state) {
  (void)state;
  setup_shop("f4");
  inject("53100", -1); /* disk_full */
  assert_int_equal(round_of_buys(TALLY_EFAILED), BUYERS);
  /* Refused buys released their holds: the wallet is whole. */
  th_reply r;
  assert_int_equal(th_cmd(F.e, "b0", "WALLET", 0, &r), TALLY_OK);
  assert_int_equal(th_wallet_available(r.text, 2), 100000 - 100);
  heal();
  assert_int_equal(round_of_buys(TALLY_OK), BUYERS);
  finish("f4", BUYERS);
}

/* F4 with a live drop: while the ledger refuses writes the drop pauses (its
 * window does not run out), buys are refused clearly, and the first buy
 * that commits again resumes it with the time it had left. */
static void test_f4_drops_pause(void **state) {
  (void)state;
  setup_shop("f4drop");
  th_reply r;
  assert_int_equal(th_cmd_in(F.e, "host", "#live", "DROP CREATE rush 100 1 for=3s", TALLY_ROLE_CHANOP, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(F.e, "b0", "#live", "BUY rush", 0, &r), TALLY_OK);
  inject("53100", -1); /* disk_full */
  assert_int_equal(th_cmd_in(F.e, "b1", "#live", "BUY rush", 0, &r), TALLY_EFAILED);
  assert_true(th_announced("Drop rush is paused"));
  th_settle(F.e, 4000); /* longer than its whole window */
  assert_false(th_announced("Drop rush closed"));
  assert_int_equal(th_cmd_in(F.e, "b2", "#live", "BUY rush", 0, &r), TALLY_EFAILED); /* still live, not closed */
  heal();
  assert_int_equal(th_cmd_in(F.e, "b3", "#live", "BUY rush", 0, &r), TALLY_OK);
  th_settle(F.e, 100);
  assert_true(th_announced("Drop rush resumes"));
  assert_int_equal(th_cmd_in(F.e, "b4", "#live", "BUY rush", 0, &r), TALLY_OK);
  for (int waited = 0; waited < 10000 && !th_announced("Drop rush closed"); waited += 250)
    th_settle(F.e, 250); /* the time it had left runs out */
  assert_true(th_announced("Drop rush closed: 3 of 100 sold"));
  finish("f4drop", 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_f10_serialization_failures, teardown),
      cmocka_unit_test_teardown(test_f4_statement_refused, teardown),
      cmocka_unit_test_teardown(test_f4_drops_pause, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
