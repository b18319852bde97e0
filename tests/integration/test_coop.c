/* test_coop.c — co-op and referral purchases whose legs are rebuilt from
 * the ledger at start-up, against the real PostgreSQL: a co-creator who
 * buys the item they share, a co-creator's referral code, a referral
 * purchase without a fee leg. Each refunds across a restart (th_engine_free
 * + th_engine on the same DSN) and must end with everyone back where they
 * were; `tally check` runs after each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define OPER TALLY_ROLE_OPER

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;
static void (*tune)(tally_config *cfg); /* a test's own limits, applied by setup */

#define sql(...) th_sql_i64f(dsn, __VA_ARGS__)

static int run(const char *account, const char *text, th_reply *r) {
  th_reply tmp;
  if (!r) r = &tmp;
  int rc = th_cmd(eng, account, text, 0, r);
  if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "%s: %s -> %s %s\n", account, text, tally_err_name(rc), r->text);
  return rc;
}

/* Creators alice and bob (bob also buys, with 100 credits and consent),
 * a buyer carol, fee_bps as given. */
static void setup(const char *name, uint32_t fee_bps) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.fee_bps = fee_bps;
  if (tune) tune(&cfg);
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE alice creator", OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE bob creator", OPER, &r), TALLY_OK);
  assert_int_equal(run("alice", "ITEM ADD pin 1 Pin", NULL), TALLY_OK);
  assert_int_equal(th_buyer(eng, "bob", "100", "pin"), TALLY_OK);
  assert_int_equal(th_buyer(eng, "carol", "100", "pin"), TALLY_OK);
}

static void restart(void) {
  th_engine_free(eng);
  eng = th_engine(&cfg);
}

static void finish(void) {
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

static int64_t balance(const char *account) {
  return sql("SELECT coalesce(sum(e.amount_minor), 0) FROM entries e JOIN accounts a ON a.id = e.account_id"
             " WHERE a.name = '%s'", account);
}

/* What transfer id credited or debited account (sum of its legs). */
static int64_t leg(uint64_t id, const char *account) {
  return sql("SELECT coalesce(sum(l.m), 0) FROM transfers t, unnest(t.leg_accounts, t.leg_amounts) l(a, m)"
             " JOIN accounts a ON a.id = l.a WHERE t.id = %llu AND a.name = '%s'",
             (unsigned long long)id, account);
}

static int refund(const char *account, uint64_t receipt, const char *amount) {
  char text[64];
  snprintf(text, sizeof text, "REFUND %llu%s%s", (unsigned long long)receipt, amount ? " " : "", amount ? amount : "");
  return run(account, text, NULL);
}

/* Issue 9 #1. A co-creator may buy the item they share (the choice: they
 * pay the price like anyone, and their share comes back to them as on any
 * sale; only the item's primary creator is refused). The refund then
 * credits and debits the buyer in one transfer; the loader used to add the
 * two together as "what the buyer's share returned", a negative number,
 * and the next refund after a restart aborted in split.c. */
static void test_cocreator_buys_and_refunds_across_restarts(void **state) {
  (void)state;
  setup("coopself", 250);
  th_reply r;
  assert_int_equal(run("alice", "ITEM ADD duo 1 Duo", NULL), TALLY_OK);
  assert_int_equal(run("alice", "ITEM SET duo split alice:5000,bob:5000", NULL), TALLY_OK);
  int64_t a0 = balance("user:alice"), b0 = balance("user:bob"), f0 = balance("sys:fees");
  assert_int_equal(run("bob", "BUY duo", &r), TALLY_OK);
  uint64_t receipt = r.receipt;
  /* 100 units, fee 2 (2.5 %), 98 split 49/49. */
  assert_int_equal(leg(receipt, "user:bob"), -100 + 49);
  assert_int_equal(leg(receipt, "user:alice"), 49);
  assert_int_equal(leg(receipt, "sys:fees"), 2);
  assert_int_equal(refund("bob", receipt, "0.01"), TALLY_OK);
  restart();
  assert_int_equal(refund("bob", receipt, "0.01"), TALLY_OK);
  restart(); /* twice: a record rebuilt after two refunds */
  assert_int_equal(refund("bob", receipt, "0.50"), TALLY_OK);
  restart();
  assert_int_equal(refund("bob", receipt, NULL), TALLY_OK);
  assert_int_equal(refund("bob", receipt, "0.01"), TALLY_EREFUND_EXCEEDS);
  /* Every unit back where it was. */
  assert_int_equal(balance("user:alice"), a0);
  assert_int_equal(balance("user:bob"), b0);
  assert_int_equal(balance("sys:fees"), f0);
  finish();
}

/* Issue 9 #5. A referral code's affiliate is paid out of its issuing
 * creator's takings only ("of your takings"): on a co-op item, bob's code
 * used to cut the affiliate's share before the split, so alice paid half
 * of it. A refund takes back what each payee was credited, in proportion,
 * also after a restart. */
static void test_cocreator_referral_comes_out_of_their_part(void **state) {
  (void)state;
  setup("coopref", 250);
  th_reply r;
  assert_int_equal(th_buyer(eng, "gus", "1", "pin"), TALLY_OK);
  assert_int_equal(run("alice", "ITEM ADD duo 10 Duo", NULL), TALLY_OK);
  assert_int_equal(run("alice", "ITEM SET duo split alice:5000,bob:5000", NULL), TALLY_OK);
  assert_int_equal(run("bob", "REFCODE ADD pal gus 1000", NULL), TALLY_OK);
  int64_t a0 = balance("user:alice"), b0 = balance("user:bob"), c0 = balance("user:carol");
  int64_t g0 = balance("user:gus"), f0 = balance("sys:fees");
  assert_int_equal(run("carol", "BUY duo ref=pal", &r), TALLY_OK);
  uint64_t receipt = r.receipt;
  /* 1000 units, fee 25, 975 split 488 (alice, first on the tie) / 487 (bob);
   * gus takes 10 % of bob's 487 = 48, bob keeps 439, alice's 488 is hers. */
  assert_int_equal(leg(receipt, "user:alice"), 488);
  assert_int_equal(leg(receipt, "user:gus"), 48);
  assert_int_equal(leg(receipt, "user:bob"), 439);
  assert_int_equal(leg(receipt, "sys:fees"), 25);
  /* alice's own code on the same item takes from alice's part only. */
  assert_int_equal(run("alice", "REFCODE ADD ally gus 2000", NULL), TALLY_OK);
  assert_int_equal(run("carol", "BUY duo ref=ally", &r), TALLY_OK);
  assert_int_equal(leg(r.receipt, "user:alice"), 488 - 97);
  assert_int_equal(leg(r.receipt, "user:gus"), 97);
  assert_int_equal(leg(r.receipt, "user:bob"), 487);
  assert_int_equal(refund("carol", r.receipt, NULL), TALLY_OK);
  /* Refunds in parts across restarts return every share exactly. */
  assert_int_equal(refund("carol", receipt, "3.33"), TALLY_OK);
  restart();
  assert_int_equal(refund("carol", receipt, "0.01"), TALLY_OK);
  restart();
  assert_int_equal(refund("carol", receipt, NULL), TALLY_OK);
  assert_int_equal(balance("user:alice"), a0);
  assert_int_equal(balance("user:bob"), b0);
  assert_int_equal(balance("user:carol"), c0);
  assert_int_equal(balance("user:gus"), g0);
  assert_int_equal(balance("sys:fees"), f0);
  finish();
}

/* Issue 9 #6. A referral purchase without a fee leg has three legs, like a
 * plain one: start-up guessed "plain" from the count, and the refund after
 * a restart took the affiliate's share from the creator as well (gus kept
 * his, alice paid it). The purchase's kind of legs is stored with it now. */
static void referral_without_fee_leg(const char *db, uint32_t fee_bps, const char *price, int64_t units) {
  setup(db, fee_bps);
  th_reply r;
  assert_int_equal(th_buyer(eng, "gus", "1", "pin"), TALLY_OK);
  char text[64];
  snprintf(text, sizeof text, "ITEM ADD mug %s Mug", price);
  assert_int_equal(run("alice", text, NULL), TALLY_OK);
  assert_int_equal(run("alice", "REFCODE ADD pal gus 1000", NULL), TALLY_OK);
  int64_t a0 = balance("user:alice"), c0 = balance("user:carol"), g0 = balance("user:gus");
  assert_int_equal(run("carol", "BUY mug ref=pal", &r), TALLY_OK);
  uint64_t receipt = r.receipt;
  int64_t share = units / 10;
  assert_int_equal(sql("SELECT cardinality(leg_accounts) FROM transfers WHERE id = %llu", (unsigned long long)receipt), 3);
  assert_int_equal(leg(receipt, "user:gus"), share);
  assert_int_equal(leg(receipt, "user:alice"), units - share);
  assert_int_equal(sql("SELECT count(*) FROM coop_purchases WHERE transfer_id = %llu", (unsigned long long)receipt), 1);
  restart();
  assert_int_equal(refund("carol", receipt, "0.01"), TALLY_OK);
  restart();
  assert_int_equal(refund("carol", receipt, NULL), TALLY_OK);
  assert_int_equal(balance("user:alice"), a0);
  assert_int_equal(balance("user:carol"), c0);
  assert_int_equal(balance("user:gus"), g0);
  /* A plain purchase has no such row. */
  assert_int_equal(run("carol", "BUY mug", &r), TALLY_OK);
  assert_int_equal(sql("SELECT count(*) FROM coop_purchases WHERE transfer_id = %llu", (unsigned long long)r.receipt), 0);
  finish();
}

static void test_referral_without_fee_refunds_the_affiliate_after_restart(void **state) {
  (void)state;
  referral_without_fee_leg("coopnofee", 0, "10", 1000);
}

static void test_referral_whose_fee_rounds_to_zero_refunds_the_affiliate(void **state) {
  (void)state;
  referral_without_fee_leg("coopfee0", 250, "0.39", 39); /* 39 x 2.5 % < 1: no fee leg */
}

/* Ledgers written before sql/007 have no coop_purchases rows: their
 * purchases (ids up to the mark) are still told by their item's split or
 * their leg count. Simulated by taking the rows away and moving the mark. */
static void test_ledger_from_before_the_marker_still_loads(void **state) {
  (void)state;
  setup("coopold", 250);
  th_reply r;
  assert_int_equal(th_buyer(eng, "gus", "1", "pin"), TALLY_OK);
  assert_int_equal(run("alice", "ITEM ADD duo 10 Duo", NULL), TALLY_OK);
  assert_int_equal(run("alice", "ITEM SET duo split alice:5000,bob:5000", NULL), TALLY_OK);
  assert_int_equal(run("alice", "ITEM ADD mug 10 Mug", NULL), TALLY_OK);
  assert_int_equal(run("alice", "REFCODE ADD pal gus 1000", NULL), TALLY_OK);
  int64_t a0 = balance("user:alice"), b0 = balance("user:bob"), g0 = balance("user:gus");
  assert_int_equal(run("carol", "BUY duo", &r), TALLY_OK);
  uint64_t duo = r.receipt;
  assert_int_equal(run("carol", "BUY mug ref=pal", &r), TALLY_OK);
  uint64_t mug = r.receipt;
  th_engine_free(eng);
  assert_int_equal(sql("ALTER TABLE coop_purchases DISABLE TRIGGER coop_purchases_append_only;"
                       " DELETE FROM coop_purchases; ALTER TABLE coop_purchases ENABLE TRIGGER coop_purchases_append_only;"
                       " ALTER TABLE ledger_marks DISABLE TRIGGER ledger_marks_append_only;"
                       " UPDATE ledger_marks SET value = (SELECT max(id) FROM transfers);"
                       " ALTER TABLE ledger_marks ENABLE TRIGGER ledger_marks_append_only;"
                       " SELECT count(*) FROM coop_purchases"), 0);
  eng = th_engine(&cfg);
  assert_int_equal(refund("carol", duo, "1"), TALLY_OK);
  assert_int_equal(refund("carol", mug, NULL), TALLY_OK);
  restart();
  assert_int_equal(refund("carol", duo, NULL), TALLY_OK);
  assert_int_equal(balance("user:alice"), a0);
  assert_int_equal(balance("user:bob"), b0);
  assert_int_equal(balance("user:gus"), g0);
  finish();
}


/* The co-op ring keeps the shares of the newest coop_purchases_max co-op
 * purchases. One older than that but still refundable must be refused
 * after a restart, never refunded as a plain purchase (the primary creator
 * would then pay back every co-creator's share). */
static void small_coop_ring(tally_config *c) {
  c->batch_max = 16;
  c->writers = 1;
  c->coop_purchases_max = 64;
}

static void test_coop_purchase_past_the_ring_is_not_refunded_as_plain(void **state) {
  (void)state;
  tune = small_coop_ring;
  setup("cooppast", 250);
  tune = NULL;
  th_reply r;
  assert_int_equal(run("alice", "ITEM ADD duo 0.10 Duo", NULL), TALLY_OK);
  assert_int_equal(run("alice", "ITEM SET duo split alice:5000,bob:5000", NULL), TALLY_OK);
  uint64_t first = 0, last = 0;
  for (int i = 0; i < 70; i++) {
    assert_int_equal(run("carol", "BUY duo", &r), TALLY_OK);
    if (!first) first = r.receipt;
    last = r.receipt;
  }
  restart();
  int64_t alice0 = balance("user:alice"), bob0 = balance("user:bob");
  /* The oldest: its shares are no longer kept. */
  assert_int_equal(refund("carol", first, NULL), TALLY_EREFUND_WINDOW);
  assert_int_equal(balance("user:alice"), alice0);
  /* The newest: refunded from every payee in proportion. */
  assert_int_equal(refund("carol", last, NULL), TALLY_OK);
  assert_true(leg(last, "user:alice") > 0 && leg(last, "user:bob") > 0);
  assert_int_equal(balance("user:alice") - alice0, -leg(last, "user:alice"));
  assert_int_equal(balance("user:bob") - bob0, -leg(last, "user:bob"));
  finish();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cocreator_buys_and_refunds_across_restarts),
      cmocka_unit_test(test_cocreator_referral_comes_out_of_their_part),
      cmocka_unit_test(test_referral_without_fee_refunds_the_affiliate_after_restart),
      cmocka_unit_test(test_referral_whose_fee_rounds_to_zero_refunds_the_affiliate),
      cmocka_unit_test(test_ledger_from_before_the_marker_still_loads),
      cmocka_unit_test(test_coop_purchase_past_the_ring_is_not_refunded_as_plain),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
