/* test_reward_unlocks.c — rewards that are not discounts, against the real
 * PostgreSQL (issue 14, sql/020): `REWARD ADD x free=<sku>` gives one free
 * unit (a kind 6 transfer of amount 0 with two zero legs, stock taken,
 * signed receipt naming the reward, never refunded), `access=<sku>` opens
 * an attendees-only drop to a winner who did not attend. Used once, only by
 * the account that earned it, kept when the item is sold out, the same
 * after a restart; `tally check` at the end. */
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
#define VIP "#vip"
#define HOST TALLY_ROLE_CHANOP
#define OPER TALLY_ROLE_OPER

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;

#define sql(...) th_sql_i64f(dsn, __VA_ARGS__)

static int64_t balance(const char *account) {
  return sql("SELECT coalesce(sum(e.amount_minor), 0) FROM entries e JOIN accounts a ON a.id = e.account_id"
             " WHERE a.name = 'user:%s'", account);
}

static int64_t uses_of(const char *account) {
  return sql("SELECT count(*) FROM reward_uses u JOIN reward_grants g ON g.id = u.grant_id JOIN accounts a"
             " ON a.id = g.account_id WHERE u.kind = 1 AND a.name = 'user:%s'", account);
}

static void wait_announced(const char *needle, int ms) {
  for (int waited = 0; waited < ms && !th_announced(needle); waited += 100) th_settle(eng, 100);
  assert_true(th_announced(needle));
}

static void start(const char *name) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.reward_min_account_age_s = 0; /* every account here is new */
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE alice creator", OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD pin 1 Pin", 0, &r), TALLY_OK);
  const char *buyers[] = {"bob", "carol", "dave", "erin"};
  for (int i = 0; i < 4; i++) assert_int_equal(th_buyer(eng, buyers[i], "100", "pin"), TALLY_OK);
}

/* A quiz in #live that the present `winners` answer right: each earns `reward`. */
static void quiz(const char *reward, const char *const *winners, int n) {
  th_reply r;
  char line[256];
  assert_int_equal(th_cmd_in(eng, "alice", CH, "EVENT START 30 Show", HOST, &r), TALLY_OK);
  for (int i = 0; i < n; i++) th_presence(eng, winners[i], CH, 1);
  th_settle(eng, 300);
  snprintf(line, sizeof line, "QUIZ START 5 Two plus two? | four winners=%d reward=%s min-players=1", n, reward);
  assert_int_equal(th_cmd_in(eng, "alice", CH, line, HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): Two plus two?", 3000);
  for (int i = 0; i < n; i++) assert_int_equal(th_cmd(eng, winners[i], "ANSWER four", 0, &r), TALLY_OK);
  wait_announced("Quiz over: the answer was four.", 10000);
  assert_int_equal(sql("SELECT count(*) FROM reward_grants"), n);
}

struct two_buys {
  int ok, told_free;
  int64_t amounts[2];
  uint64_t receipts[2];
};

static void on_buy(void *ud, uint64_t req_id, const th_reply *r) {
  (void)req_id;
  struct two_buys *b = ud;
  /* The free unit's own line (TALLY_MSG_REWARD_FREE_UNIT): the reward and the item, structured. */
  if (r->code == TALLY_OK && r->msg == TALLY_MSG_REWARD_FREE_UNIT && strstr(r->text, "Reward gift used on receipt") &&
      strstr(r->text, "your tee is free") && strstr(r->text, "never refunded"))
    b->told_free++;
  if (r->code != TALLY_OK || !r->receipt || !strstr(r->text, "Bought") || b->ok >= 2) return; /* not the reward's line */
  b->receipts[b->ok] = r->receipt;
  b->amounts[b->ok++] = sql("SELECT amount_minor FROM transfers WHERE id = %llu", (unsigned long long)r->receipt);
}

static void test_free_unit_once_signed_never_refunded(void **state) {
  (void)state;
  start("rwfree");
  th_reply r;
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD tee 10 5 Tee", 0, &r), TALLY_OK);
  /* Refusals: with a discount, another creator's item, an unknown item, two unlocks. */
  assert_int_equal(th_cmd(eng, "alice", "REWARD ADD bad free=tee discount=10%", 0, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd(eng, "alice", "REWARD ADD bad free=nope", 0, &r), TALLY_EUNKNOWN_ITEM);
  assert_int_equal(th_cmd(eng, "alice", "REWARD ADD bad free=tee access=tee", 0, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd(eng, "alice", "REWARD ADD gift free=tee for=10m", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Reward gift saved: one tee free"));
  assert_int_equal(sql("SELECT count(*) FROM reward_unlocks u JOIN reward_defs d ON d.id = u.reward_id"
                       " WHERE u.kind = 1 AND d.name = 'gift' AND d.percent_bps = 0 AND d.amount_minor = 0"), 1);
  const char *winners[] = {"bob", "carol", "erin"};
  quiz("gift", winners, 3);
  assert_int_equal(th_cmd(eng, "bob", "REWARDS", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "gift from alice: one tee free"));

  /* dave earned nothing: full price. */
  assert_int_equal(th_cmd(eng, "dave", "BUY tee", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "for 10.00"));
  /* bob's next BUY tee is free: kind 6, amount 0, two zero legs, one unit of stock. */
  int64_t bob0 = balance("bob"), alice0 = balance("alice");
  assert_int_equal(th_cmd(eng, "bob", "BUY tee", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "for 0.00"));
  uint64_t free_receipt = r.receipt;
  th_settle(eng, 300);
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE id = %llu AND kind = 6 AND amount_minor = 0 AND qty = 1"
                       " AND cardinality(leg_amounts) = 2 AND leg_amounts = ARRAY[0, 0]::bigint[]",
                       (unsigned long long)free_receipt), 1);
  assert_int_equal(sql("SELECT count(*) FROM reward_uses WHERE kind = 1 AND transfer_id = %llu AND discount_minor = 0",
                       (unsigned long long)free_receipt), 1);
  assert_int_equal(balance("bob"), bob0);
  assert_int_equal(balance("alice"), alice0);
  /* The signed receipt's leaf (kind 6, amount 0, the reward) verifies: VERIFY and `tally verify`. */
  char line[64];
  snprintf(line, sizeof line, "VERIFY %llu", (unsigned long long)free_receipt);
  assert_int_equal(th_cmd(eng, "bob", line, 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "VALID, in batch"));
  assert_null(strstr(r.text, "NOT VALID"));
  char id[24];
  snprintf(id, sizeof id, "%llu", (unsigned long long)free_receipt);
  assert_int_equal(th_tally_run(dsn, "verify", id), 0);
  /* Never refunded, and said so. */
  snprintf(line, sizeof line, "REFUND %llu", (unsigned long long)free_receipt);
  assert_int_equal(th_cmd(eng, "bob", line, 0, &r), TALLY_EREWARD_UNIT);
  assert_non_null(strstr(r.text, "never refunded"));
  /* Used once: the next BUY tee is at the full price. */
  assert_int_equal(th_cmd(eng, "bob", "BUY tee", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "for 10.00"));
  assert_int_equal(uses_of("bob"), 1);

  /* carol's two BUYs at once: one takes her free unit, the other pays. */
  th_send(eng, "carol", "BUY tee", "c1");
  th_send(eng, "carol", "BUY tee", "c2");
  struct two_buys b = {0};
  /* Three replies: the two BUYs' and the free unit's "Reward gift used on receipt ...". */
  assert_int_equal(th_collect(eng, 3, 5000, on_buy, &b), 3);
  assert_int_equal(b.ok, 2);
  assert_int_equal(b.told_free, 1);
  assert_int_equal(b.amounts[0] + b.amounts[1], 1000);
  assert_true(b.amounts[0] == 0 || b.amounts[1] == 0);
  assert_int_equal(uses_of("carol"), 1);
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 6"), 2);

  /* Sold out (5 of 5, two of them free): erin's free unit is refused
   * clearly and her reward stays hers. */
  assert_int_equal(th_cmd(eng, "erin", "BUY tee", 0, &r), TALLY_ESOLD_OUT);
  assert_int_equal(uses_of("erin"), 0);
  assert_int_equal(th_cmd(eng, "erin", "REWARDS", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "gift from alice: one tee free"));
  assert_int_equal(sql("SELECT sum(qty) FROM transfers WHERE item_id = (SELECT id FROM items WHERE sku = 'tee')"), 5);

  /* After a restart: the free units still count against the stock, the
   * free receipt still refuses a refund, erin's reward is still hers. */
  th_engine_free(eng);
  eng = th_engine(&cfg);
  assert_int_equal(th_cmd(eng, "erin", "BUY tee", 0, &r), TALLY_ESOLD_OUT);
  assert_int_equal(th_cmd(eng, "bob", line, 0, &r), TALLY_EREWARD_UNIT);
  assert_int_equal(th_cmd(eng, "erin", "REWARDS", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "gift from alice: one tee free"));
  assert_int_equal(th_cmd(eng, "bob", "RECEIPTS", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, id));
  th_engine_free(eng);
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 3"), 0);
  assert_int_equal(th_tally_check(dsn), 0);
}

static void test_access_opens_an_attendees_only_drop_once(void **state) {
  (void)state;
  start("rwaccess");
  th_reply r;
  /* An attendees-only drop in #vip, whose event bob does not attend. */
  assert_int_equal(th_cmd_in(eng, "alice", VIP, "EVENT START 30 Backstage", HOST, &r), TALLY_OK);
  th_presence(eng, "carol", VIP, 1);
  th_settle(eng, 300);
  assert_int_equal(th_cmd_in(eng, "alice", VIP, "DROP CREATE vip 5 2 attendees-only", HOST, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "REWARD ADD pass access=vip", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "access to vip without attending"));
  const char *winners[] = {"bob"};
  quiz("pass", winners, 1); /* in #live */
  assert_int_equal(th_cmd(eng, "dave", "BUY vip", 0, &r), TALLY_ENOT_ATTENDEE);
  /* bob did not attend #vip: his access reward lets him, at the full price. */
  int64_t bob0 = balance("bob");
  assert_int_equal(th_cmd(eng, "bob", "BUY vip", 0, &r), TALLY_OK);
  uint64_t receipt = r.receipt;
  assert_int_equal(balance("bob"), bob0 - 200);
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE id = %llu AND kind = 1 AND amount_minor = 200",
                       (unsigned long long)receipt), 1);
  assert_int_equal(sql("SELECT count(*) FROM reward_uses WHERE kind = 1 AND transfer_id = %llu AND discount_minor = 0",
                       (unsigned long long)receipt), 1);
  /* Once: the next one is refused like anyone's who did not attend. */
  assert_int_equal(th_cmd(eng, "bob", "BUY vip", 0, &r), TALLY_ENOT_ATTENDEE);
  /* An attendee needs no reward (and uses none). */
  assert_int_equal(th_cmd(eng, "carol", "BUY vip", 0, &r), TALLY_OK);
  assert_int_equal(uses_of("carol"), 0);
  th_settle(eng, 300);
  char line[64];
  snprintf(line, sizeof line, "VERIFY %llu", (unsigned long long)receipt);
  assert_int_equal(th_cmd(eng, "bob", line, 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "VALID, in batch"));
  assert_null(strstr(r.text, "NOT VALID"));
  th_engine_free(eng);
  eng = th_engine(&cfg);
  assert_int_equal(th_cmd(eng, "bob", "BUY vip", 0, &r), TALLY_ENOT_ATTENDEE);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
  /* tally check sees a use the engine never writes: a discount of 0 from
   * the access reward on another item's purchase (R1). */
  assert_int_equal(sql("INSERT INTO reward_uses (grant_id, kind, transfer_id, discount_minor, created_ms, batch_id)"
                       " SELECT g.id, 1, t.id, 0, 0, 0 FROM reward_grants g JOIN transfers t ON t.account_id = g.account_id"
                       " JOIN items i ON i.id = t.item_id WHERE i.sku = 'pin' LIMIT 1 RETURNING 1"), 1);
  assert_int_not_equal(th_tally_check(dsn), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_free_unit_once_signed_never_refunded),
      cmocka_unit_test(test_access_opens_an_attendees_only_drop_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
