/* test_ledger.c — what goes into a batch, and what the ledger keeps,
 * against a real PostgreSQL (issue 9):
 *   3  a text cut inside a UTF-8 character, and any op PostgreSQL refuses
 *      for its data, never fails the other ops of its group commit;
 *   8  grant requests committed out of id order are all applied once;
 *   10 `tally grant` uses the ledger's currency decimals;
 *   16 a key replayed after it left memory keeps `tally check` whole;
 *   17 the batch that gets id 7999001 commits (writer 0's lock is elsewhere).
 * `tally check` runs after each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <unistd.h>

#include "harness.h"
#include "test_fault.h"
#include "load.h"

static th_fault_fx F;

static int teardown(void **state) {
  (void)state;
  th_fault_fx_free(&F);
  return 0;
}

enum { BUYERS = 60 };

static void setup_shop(const char *name, int buyers) {
  th_fresh_db(name, F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.e = th_engine(&F.cfg);
  th_load_init(&F.L, F.e, 4000);
  assert_int_equal(th_load_shop(&F.L, buyers, 100000, 1000), 0);
}

static void finish(void) {
  th_load_stop_engine(&F.L);
  tally_engine_free(F.e);
  F.e = NULL;
  th_load_free(&F.L);
  assert_int_equal(th_tally_check(F.dsn), 0);
}

/* Every buyer buys a tee at once, and b0 also sends `tip`: returns the
 * request index of the tip. */
static int herd_with_tip(const char *tip) {
  char who[16];
  int tip_req = -1;
  for (int i = 0; i < BUYERS; i++) {
    snprintf(who, sizeof who, "b%d", i);
    th_load_send(&F.L, who, "BUY tee", NULL, 0);
    if (i == BUYERS / 2) tip_req = th_load_send(&F.L, "b0", tip, NULL, 0);
  }
  assert_int_equal(th_load_wait(&F.L, 30000), 0);
  return tip_req;
}

static int count_ok_except(int skip) {
  int ok = 0;
  for (int i = 0; i < F.L.n; i++) {
    if (i == skip) continue;
    if (F.L.reqs[i].final_code != TALLY_OK)
      fprintf(stderr, "request %d: %s: %s\n", i, tally_err_name(F.L.reqs[i].final_code), F.L.reqs[i].text);
    ok += F.L.reqs[i].final_code == TALLY_OK;
  }
  return ok;
}

/* 3a: TIP's message is clipped to the op's note (255 bytes); 150 "é" are
 * 300 bytes, so a byte cut falls inside the 128th. */
static void test_tip_message_clipped_whole_characters(void **state) {
  (void)state;
  setup_shop("utf8clip", BUYERS);
  char tip[400] = "TIP alice 1 ";
  for (int i = 0; i < 150; i++) strcat(tip, "\xc3\xa9");
  int tip_req = herd_with_tip(tip);
  assert_int_equal(count_ok_except(tip_req), BUYERS);
  assert_int_equal(F.L.reqs[tip_req].final_code, TALLY_OK);
  /* The tipper was charged, and the message kept whole characters. */
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 2"), 1);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 1"), BUYERS * 2);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT octet_length(memo) FROM transfers WHERE kind = 2"), 254);
  finish();
}

static int64_t balance_of(const char *name) {
  return th_sql_i64f(F.dsn,
                     "SELECT coalesce(sum(e.amount_minor), 0) FROM entries e JOIN accounts a"
                     " ON a.id = e.account_id WHERE a.name = 'user:%s'", name);
}

/* 10: on a 0-decimal deployment `tally grant bob 5` grants 5, not 500; the
 * flag that overrode the ledger is gone; an engine with other decimals
 * refuses to start, saying why. */
static void test_grant_uses_ledger_decimals(void **state) {
  (void)state;
  th_fresh_db("decimals", F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.currency_decimals = 0;
  F.e = th_engine(&F.cfg);
  assert_int_equal(th_tally_run2(F.dsn, "grant", "bob", "5"), 0); /* waits until applied */
  assert_int_equal(balance_of("bob"), 5);
  /* Not an amount in this currency: refused, nothing requested. */
  assert_int_not_equal(th_tally_run2(F.dsn, "grant", "bob", "5.5"), 0);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM grant_requests"), 1);
  /* --decimals no longer exists (it used to win over the ledger). */
  assert_int_equal(th_tally_run2(F.dsn, "grant", "--decimals=2", "bob"), 2);
  th_engine_free(F.e);
  F.e = NULL;
  F.cfg.currency_decimals = 2;
  char why[TALLY_TEXT_BYTES_MAX + 1];
  assert_int_equal(th_engine_refused(&F.cfg, why, sizeof why, 10000), TALLY_ECONFIG);
  assert_non_null(strstr(why, "decimals"));
  assert_int_equal(th_sql_i64(F.dsn, "SELECT decimals FROM ledger_currency"), 0);
  /* The refused engine took no lease: the right one starts and sees bob's 5. */
  int64_t epoch = th_sql_i64(F.dsn, "SELECT epoch FROM engine_lease");
  F.cfg.currency_decimals = 0;
  F.e = th_engine(&F.cfg);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT epoch FROM engine_lease"), epoch + 1);
  th_reply r;
  assert_int_equal(th_cmd(F.e, "bob", "WALLET", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "5 credits available"));
  th_engine_free(F.e);
  F.e = NULL;
  assert_int_equal(th_tally_check(F.dsn), 0);
}

static PGconn *sql_conn(void) {
  PGconn *c = PQconnectdb(F.dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  return c;
}

static void sql_ok(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
  assert_true(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
  PQclear(r);
}

static int64_t grant_transfers(int64_t request) {
  return th_sql_i64f(F.dsn, "SELECT count(*) FROM transfers WHERE idem_key = 'grant-request:%lld'", (long long)request);
}

/* 3b: one op whose data PostgreSQL refuses (a test trigger raises 22021,
 * invalid byte sequence, for the tip whose memo is "poison") in one group
 * commit with 60 buys: the 60 commit, the tip alone is refused, saying
 * why, and the tipper is not charged. */
static void test_refused_op_fails_alone(void **state) {
  (void)state;
  setup_shop("isolate", BUYERS);
  assert_int_equal(th_sql_exec(F.dsn,
                               "CREATE FUNCTION th_poison() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN"
                               " IF NEW.memo = 'poison' THEN RAISE EXCEPTION 'injected by test_ledger'"
                               " USING ERRCODE = '22021'; END IF; RETURN NEW; END$$;"
                               " CREATE TRIGGER th_poison BEFORE INSERT ON transfers FOR EACH ROW"
                               " EXECUTE FUNCTION th_poison()"), 0);
  int64_t tips_before = th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 2");
  int tip_req = herd_with_tip("TIP alice 1 poison");
  assert_int_equal(count_ok_except(tip_req), BUYERS);
  assert_int_equal(F.L.reqs[tip_req].final_code, TALLY_EFAILED);
  assert_non_null(strstr(F.L.reqs[tip_req].text, "refused this request's data"));
  assert_non_null(strstr(F.L.reqs[tip_req].text, "not charged"));
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 2"), tips_before);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 1"), BUYERS * 2);
  /* b0 paid one tee and one pin, and nothing for the refused tip. */
  th_reply r;
  assert_int_equal(th_cmd(F.e, "b0", "WALLET", 0, &r), TALLY_OK);
  assert_int_equal(th_wallet_available(r.text, 2), 100000 - 200);
  /* The same tip without the poison goes through afterwards. */
  assert_int_equal(th_cmd(F.e, "b0", "TIP alice 1 thanks", 0, &r), TALLY_OK);
  assert_int_equal(th_sql_exec(F.dsn, "DROP TRIGGER th_poison ON transfers"), 0);
  finish();
}

/* sql/012: PostgreSQL itself refuses a transfer whose legs do not sum to
 * zero. With the planted bug that sends every purchase's fee leg one unit
 * short (a test build's TALLY__FAULT_BATCH_FEE), each purchase is refused
 * alone ("not charged", nothing stored) and the tip among them commits;
 * without the bug the same buys go through. */
static void test_unbalanced_legs_refused(void **state) {
  (void)state;
#ifndef TALLY_TEST_FAULTS
  skip(); /* only a test build can plant the bug */
#else
  setup_shop("unbalanced", BUYERS);
  int64_t tips_before = th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 2");
  int64_t buys_before = th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 1");
  tally__test_fault_set(TALLY__FAULT_BATCH_FEE);
  int tip_req = herd_with_tip("TIP alice 1 thanks");
  tally__test_fault_set(TALLY__FAULT_NONE);
  assert_int_equal(F.L.reqs[tip_req].final_code, TALLY_OK);
  for (int i = 0; i < F.L.n; i++) {
    if (i == tip_req || F.L.reqs[i].final_code == TALLY_EFAILED) continue;
    fprintf(stderr, "request %d: %s: %s\n", i, tally_err_name(F.L.reqs[i].final_code), F.L.reqs[i].text);
    fail();
  }
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 1"), buys_before);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 2"), tips_before + 1);
  th_reply r;
  assert_int_equal(th_cmd(F.e, "b1", "BUY tee", 0, &r), TALLY_OK);
  finish();
#endif
}

/* Waits (pumping the engine) until request's transfer exists. */
static void await_grant(int64_t request) {
  for (int i = 0; i < 100 && grant_transfers(request) == 0; i++) th_settle(F.e, 100);
}

/* 8: request 1 takes its id first but commits after request 2, and the
 * engine polls in between: both are applied, once each. */
static void test_grant_requests_out_of_order(void **state) {
  (void)state;
  th_fresh_db("grantorder", F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.e = th_engine(&F.cfg);
  PGconn *slow = sql_conn(), *fast = sql_conn();
  sql_ok(slow, "BEGIN");
  sql_ok(slow, "INSERT INTO grant_requests (account, amount_minor, actor, created_ms) VALUES ('alice', 300, 't', 0)");
  sql_ok(fast, "INSERT INTO grant_requests (account, amount_minor, actor, created_ms) VALUES ('bob', 500, 't', 0)");
  int64_t first = th_sql_i64(F.dsn, "SELECT min(id) FROM grant_requests"); /* only bob's is visible */
  await_grant(first);
  assert_int_equal(grant_transfers(first), 1);
  th_settle(F.e, 2500); /* more polls with the lower id still uncommitted */
  sql_ok(slow, "COMMIT");
  await_grant(first - 1);
  assert_int_equal(grant_transfers(first - 1), 1);
  th_settle(F.e, 2500); /* and later polls apply neither again */
  assert_int_equal(grant_transfers(first - 1), 1);
  assert_int_equal(grant_transfers(first), 1);
  assert_int_equal(balance_of("alice"), 300);
  assert_int_equal(balance_of("bob"), 500);
  PQfinish(slow);
  PQfinish(fast);
  /* After a restart, neither is applied again. */
  th_engine_free(F.e);
  F.e = th_engine(&F.cfg);
  th_settle(F.e, 2500);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 4"), 2);
  th_engine_free(F.e);
  F.e = NULL;
  assert_int_equal(th_tally_check(F.dsn), 0);
}

/* Restarts the engine on F's ledger, with a fresh load. */
static void restart(void) {
  th_load_stop_engine(&F.L);
  tally_engine_free(F.e);
  th_load_free(&F.L);
  F.e = th_engine(&F.cfg);
  th_load_init(&F.L, F.e, 4000);
}

/* 17: writer 0 holds its session lock for the life of the engine; the
 * batch that gets id 7999001 (the old lock key) commits on writer 1. */
static void test_batch_7999001_commits(void **state) {
  (void)state;
  setup_shop("lock7999001", 2);
  /* Ids continue from the ledger's largest: the next are 7998998 (the
   * tip), 7998999 (its batch), 7999000 (the buy), 7999001 (its batch). */
  assert_int_equal(th_sql_exec(F.dsn, "INSERT INTO accounts (id, name, kind, created_ms)"
                                      " VALUES (7998997, 'user:pad', 1, 0)"), 0);
  /* The tip's batch sleeps on writer 0, so the buy's goes to writer 1. */
  assert_int_equal(th_sql_exec(F.dsn,
                               "CREATE FUNCTION th_slow() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN"
                               " IF NEW.memo = 'slow' THEN PERFORM pg_sleep(1.5); END IF; RETURN NULL; END$$;"
                               " CREATE TRIGGER th_slow AFTER INSERT ON transfers FOR EACH ROW"
                               " EXECUTE FUNCTION th_slow()"), 0);
  restart();
  int tip = th_load_send(&F.L, "b0", "TIP alice 1 slow", NULL, 0);
  th_load_pump(&F.L, 300);
  int buy = th_load_send(&F.L, "b1", "BUY tee", NULL, 0);
  assert_int_equal(th_load_wait(&F.L, 20000), 0);
  assert_int_equal(F.L.reqs[tip].final_code, TALLY_OK);
  if (F.L.reqs[buy].final_code != TALLY_OK) fprintf(stderr, "buy: %s\n", F.L.reqs[buy].text);
  assert_int_equal(F.L.reqs[buy].final_code, TALLY_OK);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM batches WHERE id = 7999001"), 1);
  assert_int_equal(th_sql_i64f(F.dsn, "SELECT batch_id FROM transfers WHERE id = %llu",
                               (unsigned long long)F.L.reqs[buy].receipt), 7999001);
  assert_int_equal(th_sql_exec(F.dsn, "DROP TRIGGER th_slow ON transfers"), 0);
  finish();
}

/* Sends one buy of `sku` from each of `buyers` buyers, `rounds` times, in
 * waves of one round; every answer must be a receipt. */
static void buy_rounds(const char *sku, int buyers, int rounds) {
  char who[16], text[32];
  snprintf(text, sizeof text, "BUY %s", sku);
  for (int r = 0; r < rounds; r++) {
    int first = F.L.n;
    for (int i = 0; i < buyers; i++) {
      snprintf(who, sizeof who, "b%d", i);
      th_load_send(&F.L, who, text, NULL, 0);
    }
    assert_int_equal(th_load_wait(&F.L, 30000), 0);
    for (int i = first; i < F.L.n; i++) assert_int_equal(F.L.reqs[i].final_code, TALLY_OK);
  }
}

/* `tally check`'s output lines that contain needle. */
static int check_lines(const char *needle) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' --dsn '%s' check", getenv("TALLY_CLI"), F.dsn);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char line[1024];
  int n = 0;
  while (fgets(line, sizeof line, p)) n += strstr(line, needle) != NULL;
  pclose(p);
  return n;
}

/* 16: a key replayed after it left memory (keys_max 1024) gets its first
 * answer, the ops batched with it commit, and every batch still verifies. */
static void test_replay_after_key_left_memory(void **state) {
  (void)state;
  th_fresh_db("replay", F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.keys_max = 1024;
  F.cfg.batch_max = 128;
  F.e = th_engine(&F.cfg);
  th_load_init(&F.L, F.e, 8000);
  assert_int_equal(th_load_shop(&F.L, 40, 100000, 1000), 0);
  int first = th_load_send(&F.L, "b0", "BUY tee", "replayed-msg", 0);
  assert_int_equal(th_load_wait(&F.L, 10000), 0);
  assert_int_equal(F.L.reqs[first].final_code, TALLY_OK);
  uint64_t receipt = F.L.reqs[first].receipt;
  buy_rounds("pin", 40, 30); /* 1200 newer keys push it out of memory */
  /* The replay, in one group commit with five other buys. */
  int base = F.L.n;
  int replay = th_load_send(&F.L, "b0", "BUY tee", "replayed-msg", 0);
  char who[16];
  for (int i = 1; i <= 5; i++) {
    snprintf(who, sizeof who, "b%d", i);
    th_load_send(&F.L, who, "BUY tee", NULL, 0);
  }
  assert_int_equal(th_load_wait(&F.L, 20000), 0);
  assert_int_equal(F.L.reqs[replay].final_code, TALLY_OK);
  assert_int_equal(F.L.reqs[replay].receipt, receipt);
  for (int i = base + 1; i < F.L.n; i++) assert_int_equal(F.L.reqs[i].final_code, TALLY_OK);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE idem_key = 'replayed-msg'"), 1);
  finish();
}

/* 16: `tally check` names every bad batch, not only the first. */
static void test_check_reports_every_bad_batch(void **state) {
  (void)state;
  setup_shop("badbatches", 4);
  buy_rounds("tee", 4, 3);
  th_load_stop_engine(&F.L);
  tally_engine_free(F.e);
  F.e = NULL;
  assert_int_equal(check_lines("BREACH"), 0);
  /* Two batches signed over other roots (flipped bytes of their root). */
  assert_int_equal(th_sql_exec(F.dsn,
                               "ALTER TABLE batches DISABLE TRIGGER batches_append_only;"
                               " UPDATE batches SET merkle_root = decode(repeat('00', 32), 'hex') WHERE id IN"
                               " (SELECT id FROM batches WHERE leaf_count > 0 ORDER BY id LIMIT 2);"
                               " ALTER TABLE batches ENABLE TRIGGER batches_append_only"), 0);
  assert_int_equal(check_lines("BREACH I7 batch"), 2);
  assert_int_equal(th_tally_check(F.dsn), 1);
  th_load_free(&F.L);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_tip_message_clipped_whole_characters, teardown),
      cmocka_unit_test_teardown(test_refused_op_fails_alone, teardown),
      cmocka_unit_test_teardown(test_unbalanced_legs_refused, teardown),
      cmocka_unit_test_teardown(test_grant_uses_ledger_decimals, teardown),
      cmocka_unit_test_teardown(test_grant_requests_out_of_order, teardown),
      cmocka_unit_test_teardown(test_batch_7999001_commits, teardown),
      cmocka_unit_test_teardown(test_replay_after_key_left_memory, teardown),
      cmocka_unit_test_teardown(test_check_reports_every_bad_batch, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
