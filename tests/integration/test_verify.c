/* test_verify.c — VERIFY <receipt> in chat against the real PostgreSQL:
 * what `tally verify` checks (the leaf from the stored transfer, its Merkle
 * proof, the batch's signature with the engine's key), details only to the
 * receipt's owner, a tampered batch or transfer reported NOT VALID, and a
 * VERIFY flood bounded by its own queue ("busy") while buys are answered.
 * `tally check` runs after each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "harness.h"

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;

/* Runs statements as the test cluster's superuser; session_replication_role
 * = replica switches off the triggers that keep the ledger append-only, so
 * a test can play an attacker who edits rows behind the engine's back. */
static void sql_tamper(const char *fmt, ...) {
  char q[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q, sizeof q, fmt, ap);
  va_end(ap);
  PGconn *c = PQconnectdb(dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *r = PQexec(c, "SET session_replication_role = replica");
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  r = PQexec(c, q);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) fprintf(stderr, "%s: %s\n", q, PQresultErrorMessage(r));
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  assert_string_equal(PQcmdTuples(r), "1");
  PQclear(r);
  PQfinish(c);
}

/* alice sells tee at 5.00; bob bought one (returns its receipt). */
static uint64_t setup(const char *name) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE alice creator", TALLY_ROLE_OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD tee 5 100000 Tee", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "admin", "TALLY GRANT bob 50", TALLY_ROLE_OPER | TALLY_ROLE_GRANT, &r), TALLY_OK);
  assert_int_equal(th_buy_confirmed(eng, "bob", "tee", &r), TALLY_OK);
  assert_true(r.receipt > 0);
  return r.receipt;
}

static void finish(void) {
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* Does the reply say needle? Prints the reply when not, for the log. */
static bool says(const th_reply *r, const char *needle) {
  if (strstr(r->text, needle)) return true;
  fprintf(stderr, "reply \"%s\" lacks \"%s\"\n", r->text, needle);
  return false;
}

static int verify(const char *account, uint64_t receipt, th_reply *r) {
  char text[64];
  snprintf(text, sizeof text, "VERIFY %llu", (unsigned long long)receipt);
  int rc = th_cmd(eng, account, text, 0, r);
  if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "%s: %s -> %s %s\n", account, text, tally_err_name(rc), r->text);
  return rc;
}

/* Anyone learns "VALID, in batch N"; only the buyer what was bought, for
 * how much, and what was refunded. A tip shows its details to both ends. */
static void test_verify_details_only_to_the_owner(void **state) {
  (void)state;
  uint64_t id = setup("verifyowner");
  th_reply r;
  const char *strangers[] = {"carol", ""}; /* another account, and nobody logged in */
  for (int i = 0; i < 2; i++) {
    assert_int_equal(verify(strangers[i], id, &r), TALLY_OK);
    assert_null(strstr(r.text, "tee"));
    assert_null(strstr(r.text, "5.00"));
    assert_null(strstr(r.text, "refund"));
    assert_null(strstr(r.text, "bob"));
    assert_true(says(&r, "VALID, in batch"));
  }
  assert_int_equal(verify("bob", id, &r), TALLY_OK);
  assert_true(says(&r, "VALID, in batch"));
  assert_true(says(&r, "your purchase of 1x tee (serial 1) for 5.00 credits"));
  assert_true(says(&r, "0.00 credits refunded"));
  char text[64];
  snprintf(text, sizeof text, "REFUND %llu 1", (unsigned long long)id);
  assert_int_equal(th_cmd(eng, "bob", text, 0, &r), TALLY_OK);
  assert_int_equal(verify("bob", id, &r), TALLY_OK);
  assert_true(says(&r, "1.00 credits refunded"));
  assert_int_equal(th_cmd(eng, "bob", "TIP alice 2", 0, &r), TALLY_OK);
  uint64_t tip = r.receipt;
  assert_int_equal(verify("alice", tip, &r), TALLY_OK);
  assert_true(says(&r, "a tip of 2.00 credits to you from bob"));
  assert_int_equal(verify("bob", tip, &r), TALLY_OK);
  assert_true(says(&r, "your tip of 2.00 credits to alice"));
  assert_int_equal(verify("carol", tip, &r), TALLY_OK);
  assert_null(strstr(r.text, "2.00"));
  assert_int_equal(verify("carol", 987654321, &r), TALLY_EUNKNOWN_RECEIPT);
  finish();
}

/* VERIFY recomputes from the ledger: a batch signature or a transfer
 * edited behind the engine's back is NOT VALID, and says why. */
static void test_verify_tampered_ledger_is_not_valid(void **state) {
  (void)state;
  uint64_t id = setup("verifytamper");
  th_reply r;
  assert_int_equal(verify("bob", id, &r), TALLY_OK);
  assert_true(says(&r, "VALID"));
  const char *flip = "UPDATE batches SET signature = set_byte(signature, 0, (get_byte(signature, 0) + %d) %% 256)"
                     " WHERE id = (SELECT batch_id FROM transfers WHERE id = %llu)";
  sql_tamper(flip, 1, (unsigned long long)id);
  assert_int_equal(verify("bob", id, &r), TALLY_EBADSIG);
  assert_true(says(&r, "NOT VALID"));
  assert_true(says(&r, "signature does not verify"));
  assert_int_equal(verify("carol", id, &r), TALLY_EBADSIG); /* anyone may learn it is not valid */
  sql_tamper(flip, 255, (unsigned long long)id);           /* put it back */
  assert_int_equal(verify("bob", id, &r), TALLY_OK);
  /* The amount of the signed transfer: its recomputed leaf no longer fits
   * the batch's root. */
  sql_tamper("UPDATE transfers SET amount_minor = amount_minor + 1 WHERE id = %llu", (unsigned long long)id);
  assert_int_equal(verify("bob", id, &r), TALLY_EBADSIG);
  assert_true(says(&r, "NOT VALID"));
  assert_true(says(&r, "merkle root does not match"));
  sql_tamper("UPDATE transfers SET amount_minor = amount_minor - 1 WHERE id = %llu", (unsigned long long)id);
  assert_int_equal(verify("bob", id, &r), TALLY_OK);
  finish();
}

enum { BUYERS = 200, VERIFIES_PER_BUY = 20 };

typedef struct flood {
  uint64_t first;
  uint8_t is_buy[BUYERS * (VERIFIES_PER_BUY + 1)];
  int bought, buy_other, valid, busy, verify_other;
} flood;

static void on_reply(void *ud, uint64_t req, const th_reply *r) {
  flood *f = ud;
  bool buy = req >= f->first && req - f->first < sizeof f->is_buy && f->is_buy[req - f->first];
  if (buy) {
    if (r->code == TALLY_OK) f->bought++;
    else f->buy_other++;
  } else if (r->code == TALLY_OK && strstr(r->text, "VALID, in batch")) f->valid++;
  else if (r->code == TALLY_EBUSY) f->busy++;
  else {
    if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "verify: %s %s\n", tally_err_name(r->code), r->text);
    f->verify_other++;
  }
}

/* 4,000 VERIFYs (no rate limit: only the bounded queue holds them back)
 * interleaved with 200 buys: every buy is answered and bought, every
 * VERIFY is answered VALID or "busy", never waited for. */
static void test_verify_flood_does_not_stop_buys(void **state) {
  (void)state;
  th_fresh_db("verifyflood", dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.rate_verify_per_min = 0;
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE alice creator", TALLY_ROLE_OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD tee 1 100000 Tee", 0, &r), TALLY_OK);
  char who[32], text[64];
  for (int i = 0; i < BUYERS; i++) {
    snprintf(who, sizeof who, "b%d", i);
    assert_int_equal(th_buyer(eng, who, "10", "tee"), TALLY_OK);
  }
  assert_int_equal(th_cmd(eng, "b0", "RECEIPTS", 0, &r), TALLY_OK);
  unsigned long long id = strtoull(strstr(r.text, ": ") + 2, NULL, 10);
  assert_true(id > 0);
  snprintf(text, sizeof text, "VERIFY %llu", id);
  static flood f;
  memset(&f, 0, sizeof f);
  int sent = 0;
  for (int i = 0; i < BUYERS; i++) {
    snprintf(who, sizeof who, "b%d", i);
    uint64_t req = th_send(eng, who, "BUY tee", NULL);
    if (i == 0) f.first = req;
    f.is_buy[req - f.first] = 1;
    for (int k = 0; k < VERIFIES_PER_BUY; k++) th_send(eng, k % 2 ? "carol" : "", text, NULL);
    sent += 1 + VERIFIES_PER_BUY;
  }
  assert_int_equal(th_collect(eng, sent, 60000, on_reply, &f), sent);
  assert_int_equal(f.bought, BUYERS);
  assert_int_equal(f.buy_other, 0);
  assert_int_equal(f.verify_other, 0);
  assert_true(f.valid > 0);
  assert_true(f.busy > 0); /* the queue is bounded: a flood hears "busy" */
  assert_int_equal(f.valid + f.busy, BUYERS * VERIFIES_PER_BUY);
  finish();
}

/* VERIFY has its own bucket (rate_verify, default 600 a minute: a burst of
 * 155), shared by everyone, so a flood of checks is refused before it
 * reaches the queue; buying is not in that bucket. */
static void test_verify_has_its_own_rate_limit(void **state) {
  (void)state;
  uint64_t id = setup("verifyrate");
  th_reply r;
  int limited = 0;
  for (int i = 0; i < 400 && !limited; i++) {
    int rc = verify(i % 2 ? "carol" : "dave", id, &r);
    if (rc == TALLY_ERATE_LIMITED) limited = i + 1;
    else assert_int_equal(rc, TALLY_OK);
  }
  assert_true(limited > 155);
  assert_int_equal(th_cmd(eng, "bob", "BUY tee", 0, &r), TALLY_OK);
  finish();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_verify_details_only_to_the_owner),
      cmocka_unit_test(test_verify_tampered_ledger_is_not_valid),
      cmocka_unit_test(test_verify_flood_does_not_stop_buys),
      cmocka_unit_test(test_verify_has_its_own_rate_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
