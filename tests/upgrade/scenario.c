/* scenario.c — the ledger that tests/integration/test_upgrade.c upgrades.
 *
 * Not built by this release: tests/upgrade/make_fixture.sh copies it into a
 * worktree of the PREVIOUS release (as one of its integration tests), so it
 * runs on that release's engine and harness, and then dumps the database.
 * It uses only harness calls and chat commands that release has. It writes
 * $TALLY_FIXTURE_OUT: the database's DSN and the receipts and message ids
 * the upgrade test replays ("receipt LABEL ID", "msgid LABEL MSG_ID ID").
 *
 * What it covers: accounts with grants (audited), consented purchases, a
 * limited edition with serials, tips (one message held for moderators), a
 * partial refund, a co-op split item, an event with attendance, a raffle
 * drawn, creator role changes, several batches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define CH "#live"
#define OPER TALLY_ROLE_OPER
#define GRANTER (TALLY_ROLE_OPER | TALLY_ROLE_GRANT)

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;
static FILE *out;

static int in_ch(const char *account, const char *text, uint32_t roles, th_reply *r) {
  th_reply tmp;
  int rc = th_cmd_in(eng, account, CH, text, roles, r ? r : &tmp);
  if (rc != TALLY_OK) fprintf(stderr, "%s: %s -> %s %s\n", account, text, tally_err_name(rc), (r ? r : &tmp)->text);
  return rc;
}

static void ok(const char *account, const char *text, uint32_t roles, th_reply *r) {
  th_reply tmp;
  int rc = th_cmd(eng, account, text, roles, r ? r : &tmp);
  if (rc != TALLY_OK) fprintf(stderr, "%s: %s -> %s %s\n", account, text, tally_err_name(rc), (r ? r : &tmp)->text);
  assert_int_equal(rc, TALLY_OK);
}

static void keep(const char *label, uint64_t receipt) {
  assert_true(receipt > 0);
  fprintf(out, "receipt %s %llu\n", label, (unsigned long long)receipt);
}

static void test_scenario(void **state) {
  (void)state;
  const char *path = getenv("TALLY_FIXTURE_OUT");
  assert_non_null(path);
  out = fopen(path, "w");
  assert_non_null(out);
  th_fresh_db("upgrade", dsn, sizeof dsn);
  fprintf(out, "dsn %s\n", dsn);
  th_config(&cfg, dsn);
  cfg.tip_message_hold_s = 600; /* the message of dave's tip is still held at the dump */
  cfg.refund_window_s = 30 * 86400;
  eng = th_engine(&cfg);
  th_reply r;

  /* Roles: alice and host are creators; erin was one and is no longer. */
  ok("admin", "TALLY ROLE alice creator", OPER, NULL);
  ok("admin", "TALLY ROLE host creator", OPER, NULL);
  ok("admin", "TALLY ROLE erin creator", OPER, NULL);
  ok("root", "TALLY ROLE erin none", OPER, NULL);
  ok("alice", "ITEM ADD tee 5 100000 Tour tee", 0, NULL);
  ok("alice", "ITEM ADD print 2 3 Signed print", 0, NULL);
  ok("alice", "ITEM ADD duo 10 Duo poster", 0, NULL);
  ok("alice", "ITEM SET duo split alice:6000,host:4000", 0, NULL);

  /* Grants (audited, by an operator) and first purchases with consent. */
  assert_int_equal(th_buyer(eng, "bob", "100", "tee"), TALLY_OK);
  assert_int_equal(th_buyer(eng, "carol", "80", "tee"), TALLY_OK);
  assert_int_equal(th_buyer(eng, "dave", "60", "tee"), TALLY_OK);
  ok("admin", "TALLY GRANT gus 7", GRANTER, &r);
  keep("grant_gus", r.receipt);

  /* A purchase under a known message id: the upgrade test retries it. */
  assert_int_equal(th_cmd_key(eng, "bob", "BUY tee 2", "fixture-bob-tee-2", 0, &r), TALLY_OK);
  keep("bob_tee2", r.receipt);
  fprintf(out, "msgid bob_tee2 fixture-bob-tee-2 %llu\n", (unsigned long long)r.receipt);
  /* Partly refunded: 4.00 of its 10.00 back; 6.00 remain refundable. */
  char text[96];
  snprintf(text, sizeof text, "REFUND %llu 4", (unsigned long long)r.receipt);
  ok("bob", text, 0, NULL);

  /* A limited edition: serials 1, then 2-3 of 3 (sold out). */
  ok("bob", "BUY print", 0, &r);
  assert_non_null(strstr(r.text, "serial 1 of 3"));
  keep("bob_print", r.receipt);
  ok("carol", "BUY print 2", 0, &r);
  assert_non_null(strstr(r.text, "serials 2-3 of 3"));
  keep("carol_print", r.receipt);

  /* A co-op item: alice 60 %, host 40 % of the takings after the fee. */
  ok("carol", "BUY duo", 0, &r);
  keep("carol_duo", r.receipt);

  /* An event in #live: bob and carol attend, a raffle is drawn, a tip with
   * a message waits for the moderators. */
  assert_int_equal(in_ch("host", "EVENT START 30 Launch", TALLY_ROLE_CHANOP, NULL), TALLY_OK);
  th_presence(eng, "bob", CH, 1);
  th_presence(eng, "carol", CH, 1);
  th_presence(eng, "gus", "#elsewhere", 1);
  assert_int_equal(in_ch("host", "DROP CREATE tix 2 2 mode=raffle for=3s", TALLY_ROLE_CHANOP, NULL), TALLY_OK);
  assert_int_equal(in_ch("bob", "BUY tix", 0, NULL), TALLY_OK);
  assert_int_equal(in_ch("carol", "BUY tix", 0, NULL), TALLY_OK);
  assert_int_equal(in_ch("dave", "BUY tix", 0, NULL), TALLY_OK);
  for (int waited = 0; waited < 30000 && !th_announced("RAFFLE tix winners"); waited += 250) th_settle(eng, 250);
  assert_true(th_announced("RAFFLE tix winners (2 of 2 units)"));
  assert_int_equal(in_ch("dave", "TIP alice 5 great show tonight", 0, &r), TALLY_OK);
  keep("dave_tip", r.receipt);
  assert_int_equal(th_cmd(eng, "carol", "TIP host 1", 0, &r), TALLY_OK);
  keep("carol_tip", r.receipt);
  th_presence(eng, "carol", CH, 0);
  assert_int_equal(in_ch("host", "EVENT STOP", TALLY_ROLE_CHANOP, NULL), TALLY_OK);
  th_settle(eng, 800);
  assert_true(th_announced("Attendance: 2 attendees"));

  th_engine_free(eng);
  fclose(out);
  assert_int_equal(th_tally_check(dsn), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_scenario)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
