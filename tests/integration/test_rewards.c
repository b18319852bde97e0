/* test_rewards.c — rewards bound to an account, against the real
 * PostgreSQL (issue 14): earned through a quiz, applied once at the
 * winner's next BUY (the creator receives less, the legs still sum to
 * zero), never for another account, kept with `noreward`, given back by a
 * full refund, refused once expired; every step a ledger row, and `tally
 * check` at the end. */
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
#define OPER TALLY_ROLE_OPER

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;

#define sql(...) th_sql_i64f(dsn, __VA_ARGS__)

static int64_t balance(const char *account) {
  return sql("SELECT coalesce(sum(e.amount_minor), 0) FROM entries e JOIN accounts a ON a.id = e.account_id"
             " WHERE a.name = 'user:%s'", account);
}

static void wait_announced(const char *needle, int ms) {
  for (int waited = 0; waited < ms && !th_announced(needle); waited += 100) th_settle(eng, 100);
  assert_true(th_announced(needle));
}

/* alice sells tee (10.00) and pin (1.00) and hosts an event in #live that
 * bob and carol attend; bob wins her reward `q10` in a quiz. */
static void setup_winner(const char *reward_opts) {
  th_reply r;
  char line[256];
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE alice creator", OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD tee 10 Tee", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD pin 1 Pin", 0, &r), TALLY_OK);
  assert_int_equal(th_buyer(eng, "bob", "100", "pin"), TALLY_OK);
  assert_int_equal(th_buyer(eng, "carol", "100", "pin"), TALLY_OK);
  snprintf(line, sizeof line, "REWARD ADD q10 %s", reward_opts);
  assert_int_equal(th_cmd(eng, "alice", line, 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Reward q10 saved"));
  /* Not a creator: no rewards of one's own. Another creator's item: refused. */
  assert_int_equal(th_cmd(eng, "bob", "REWARD ADD mine discount=5%", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd(eng, "alice", "REWARD ADD q10 discount=5%", 0, &r), TALLY_EEXISTS);
  assert_int_equal(th_cmd(eng, "alice", "REWARD ADD bad discount=150%", 0, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd_in(eng, "alice", CH, "EVENT START 30 Show", HOST, &r), TALLY_OK);
  th_presence(eng, "bob", CH, 1);
  th_presence(eng, "carol", CH, 1);
  th_settle(eng, 300);
  assert_int_equal(th_cmd_in(eng, "alice", CH, "QUIZ START 5 Capital of the Netherlands? | Amsterdam winners=1 reward=q10 min-players=2",
                             HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): Capital of the Netherlands?", 3000);
  assert_int_equal(th_cmd(eng, "bob", "ANSWER amsterdan", 0, &r), TALLY_OK); /* a typo: one edit in 9 */
  assert_non_null(strstr(r.text, "Right!"));
  assert_int_equal(th_cmd(eng, "bob", "ANSWER Amsterdam", 0, &r), TALLY_EANSWERED);
  assert_int_equal(th_cmd(eng, "carol", "ANSWER Rotterdam", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Not right"));
  wait_announced("Quiz over: the answer was Amsterdam. 2 answered; the winner: bob", 10000);
  assert_int_equal(sql("SELECT count(*) FROM reward_grants g JOIN accounts a ON a.id = g.account_id"
                       " WHERE a.name = 'user:bob'"), 1);
  assert_int_equal(sql("SELECT count(*) FROM reward_grants"), 1);
}

static void test_reward_applied_once_for_its_account_and_given_back(void **state) {
  (void)state;
  th_fresh_db("rewards", dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.reward_min_account_age_s = 0; /* every account here is new */
  eng = th_engine(&cfg);
  setup_winner("discount=10% cap=5 for=10m sku=all");
  th_reply r;
  assert_int_equal(th_cmd(eng, "bob", "REWARDS", 0, &r), TALLY_OK);
  if (!strstr(r.text, "q10 from alice: 10% (cap 5.00 credits) off every item")) fprintf(stderr, "# REWARDS: %s\n", r.text);
  assert_non_null(strstr(r.text, "q10 from alice: 10% (cap 5.00 credits) off every item"));
  assert_int_equal(th_cmd(eng, "carol", "REWARDS", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "no earned rewards"));
  /* carol buys at the full price: bob's reward is not hers. */
  int64_t alice0 = balance("alice");
  assert_int_equal(th_cmd(eng, "carol", "BUY tee", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "for 10.00"));
  /* bob's next BUY takes 10 % off, out of alice's part. */
  int64_t bob0 = balance("bob");
  assert_int_equal(th_cmd(eng, "bob", "BUY tee", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "for 9.00"));
  uint64_t used_on = r.receipt;
  assert_int_equal(balance("bob"), bob0 - 900);
  assert_int_equal(sql("SELECT amount_minor FROM transfers WHERE id = %llu", (unsigned long long)used_on), 900);
  assert_int_equal(sql("SELECT count(*) FROM reward_uses WHERE kind = 1 AND transfer_id = %llu AND discount_minor = 100",
                       (unsigned long long)used_on), 1);
  assert_int_equal(sql("SELECT sum(amount_minor) FROM entries WHERE transfer_id = %llu", (unsigned long long)used_on), 0);
  /* The signed receipt's leaf names the reward (the grant): VERIFY
   * recomputes it from the ledger's rows, so a wrong one would not verify. */
  char verify[64];
  snprintf(verify, sizeof verify, "VERIFY %llu", (unsigned long long)used_on);
  th_settle(eng, 300);
  assert_int_equal(th_cmd(eng, "bob", verify, 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "VALID, in batch"));
  assert_null(strstr(r.text, "NOT VALID"));
  assert_true(sql("SELECT count(*) FROM reward_uses u JOIN reward_grants g ON g.id = u.grant_id"
                  " WHERE u.transfer_id = %llu", (unsigned long long)used_on) == 1);
  /* alice got carol's 10.00 and bob's 9.00, each less its fee. */
  assert_true(balance("alice") - alice0 <= 1000 + 900);
  assert_int_equal(sql("SELECT count(*) FROM entries e JOIN accounts a ON a.id = e.account_id WHERE e.transfer_id = %llu"
                       " AND a.name = 'user:alice' AND e.amount_minor <= 900", (unsigned long long)used_on), 1);
  /* Used once: the next BUY is at the full price. */
  assert_int_equal(th_cmd(eng, "bob", "BUY tee", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "for 10.00"));
  /* A full refund of the discounted purchase gives it back. */
  char line[64];
  snprintf(line, sizeof line, "REFUND %llu", (unsigned long long)used_on);
  assert_int_equal(th_cmd(eng, "bob", line, 0, &r), TALLY_OK);
  th_settle(eng, 200);
  assert_int_equal(sql("SELECT count(*) FROM reward_uses WHERE kind = 3"), 1);
  assert_int_equal(th_cmd(eng, "bob", "REWARDS", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "q10 from alice"));
  /* noreward keeps it; then it applies again, also after a restart. */
  assert_int_equal(th_cmd(eng, "bob", "BUY tee noreward", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "for 10.00"));
  th_engine_free(eng);
  eng = th_engine(&cfg);
  assert_int_equal(th_cmd(eng, "bob", "BUY tee", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "for 9.00"));
  assert_int_equal(sql("SELECT count(*) FROM reward_uses WHERE kind = 1"), 2);
  th_engine_free(eng);
  assert_int_equal(sql("SELECT count(*) FROM transfers t WHERE (SELECT sum(amount_minor) FROM entries e"
                       " WHERE e.transfer_id = t.id) <> 0"), 0);
  assert_int_equal(th_tally_check(dsn), 0);
}

static void test_expired_reward_is_refused_and_recorded(void **state) {
  (void)state;
  th_fresh_db("rewardexp", dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.reward_min_account_age_s = 0;
  eng = th_engine(&cfg);
  setup_winner("discount=2.50 for=8s sku=tee");
  th_reply r;
  /* pin is not the reward's item: full price, the reward stays. */
  assert_int_equal(th_cmd(eng, "bob", "BUY pin", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "for 1.00"));
  /* Past its lifetime it applies to nothing, and its expiry is a ledger row. */
  for (int waited = 0; waited < 15000 && sql("SELECT count(*) FROM reward_uses WHERE kind = 2") == 0; waited += 250)
    th_settle(eng, 250);
  assert_int_equal(sql("SELECT count(*) FROM reward_uses WHERE kind = 2"), 1);
  assert_int_equal(th_cmd(eng, "bob", "BUY tee", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "for 10.00"));
  assert_int_equal(sql("SELECT count(*) FROM reward_uses WHERE kind = 1"), 0);
  assert_int_equal(th_cmd(eng, "bob", "REWARDS", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "no earned rewards"));
  /* REWARD DEL: listed no more, the name stays taken. */
  assert_int_equal(th_cmd(eng, "alice", "REWARD DEL q10", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "REWARD LIST", 0, &r), TALLY_OK);
  assert_null(strstr(r.text, "q10"));
  assert_int_equal(th_cmd(eng, "alice", "REWARD DEL q10", 0, &r), TALLY_EUNKNOWN_REWARD);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
  /* tally check sees a use the engine would never write: bob's grant on
   * carol's purchase (R1), after it expired (R2). */
  assert_int_equal(sql("INSERT INTO reward_uses (grant_id, kind, transfer_id, discount_minor, created_ms, batch_id)"
                       " SELECT g.id, 1, t.id, 100, 0, 0 FROM reward_grants g, transfers t JOIN accounts a"
                       " ON a.id = t.account_id WHERE a.name = 'user:carol' AND t.kind = 1 LIMIT 1 RETURNING 1"), 1);
  assert_int_not_equal(th_tally_check(dsn), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reward_applied_once_for_its_account_and_given_back),
      cmocka_unit_test(test_expired_reward_is_refused_and_recorded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
