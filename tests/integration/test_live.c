/* test_live.c — micro-events and timed drops through the public API against
 * the real PostgreSQL: hosting rights, drop windows and per-buyer limits,
 * announcements (live, low stock, sold out, closed, tips, summary), and an
 * event and its drops surviving a restart. `tally check` runs after each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define CH "#live"
#define HOST TALLY_ROLE_CHANOP

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;

static int say(const char *account, const char *text, uint32_t roles) {
  th_reply r;
  int rc = th_cmd_in(eng, account, CH, text, roles, &r);
  if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "%s: %s -> %s %s\n", account, text, tally_err_name(rc), r.text);
  return rc;
}

/* Sets config keys by name ("key=value,..."): a build without them fails. */
static void config_keys(const char *kv) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", kv ? kv : "");
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    assert_non_null(eq);
    *eq = 0;
    char err[TALLY_ERRBUF_BYTES];
    int rc = tally_config_set(&cfg, tok, eq + 1, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, TALLY_OK);
  }
}

/* alice and host creators; bob and carol with credits and consent given
 * (a first purchase); config keys kv. */
static void setup_tuned(const char *name, const char *kv) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  config_keys(kv);
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE alice creator", TALLY_ROLE_OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE host creator", TALLY_ROLE_OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD pin 1 Pin", 0, &r), TALLY_OK);
  const char *buyers[] = {"bob", "carol"};
  for (int i = 0; i < 2; i++) assert_int_equal(th_buyer(eng, buyers[i], "50", "pin"), TALLY_OK);
}

static void setup(const char *name) { setup_tuned(name, NULL); }

static void finish(void) {
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

static void test_hosting_needs_a_channel_operator(void **state) {
  (void)state;
  setup("livehost");
  th_reply r;
  assert_int_equal(say("bob", "EVENT START 30 Mine", 0), TALLY_ENO_PERMISSION);
  assert_int_equal(say("bob", "DROP CREATE x 1 1", 0), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd(eng, "host", "EVENT START 30 Nowhere", HOST, &r), TALLY_ENOT_IN_CHANNEL);
  assert_int_equal(say("", "EVENT START 30 Anon", HOST), TALLY_ENOT_LOGGED_IN);
  assert_int_equal(say("host", "EVENT START 0 Zero", HOST), TALLY_EBAD_SYNTAX);
  assert_int_equal(say("host", "DROP CREATE tee 3 1 mode=lottery", HOST), TALLY_EBAD_SYNTAX);
  assert_int_equal(say("host", "EVENT START 30 Launch", HOST), TALLY_OK);
  assert_int_equal(say("host", "EVENT START 30 Again", HOST), TALLY_EEXISTS);
  finish();
}

/* Room lines follow the reply they come with (a drop's "Only 1 left" is
 * said once the buy commits): waited for, bounded, not checked at once. */
static int announced_within(const char *needle, int ms);

static void test_drop_first_come(void **state) {
  (void)state;
  setup("livedrop");
  assert_int_equal(say("host", "EVENT START 30 Launch party", HOST), TALLY_OK);
  assert_int_equal(say("host", "DROP CREATE tee 3 2 per-user=2", HOST), TALLY_OK);
  assert_true(announced_within("LIVE NOW: drop tee - 3 units at 2.00 credits", 3000));
  assert_int_equal(say("bob", "BUY tee 2", 0), TALLY_OK);
  assert_true(announced_within("Only 1 left of tee", 3000));
  /* Per-buyer limit: accounts, not nicks. */
  assert_int_equal(say("bob", "BUY tee", 0), TALLY_EPER_USER_LIMIT);
  assert_int_equal(say("carol", "BUY tee", 0), TALLY_OK);
  assert_true(announced_within("SOLD OUT: tee", 3000));
  assert_int_equal(say("carol", "BUY tee", 0), TALLY_ESOLD_OUT);
  /* Scheduled: not before its start. */
  assert_int_equal(say("host", "DROP CREATE later 5 1 start=+1h", HOST), TALLY_OK);
  assert_true(announced_within("Drop coming: later - 5 units at 1.00 credits, starts in 3600 s", 3000));
  assert_int_equal(say("bob", "BUY later", 0), TALLY_EDROP_NOT_LIVE);
  assert_int_equal(say("host", "DROP START later", HOST), TALLY_OK);
  assert_int_equal(say("bob", "BUY later", 0), TALLY_OK);
  assert_int_equal(say("host", "DROP STOP later", HOST), TALLY_OK);
  th_settle(eng, 200); /* "closed" is said once nothing of the drop is held */
  assert_true(announced_within("Drop later closed: 1 of 5 sold", 3000));
  assert_int_equal(say("bob", "BUY later", 0), TALLY_EDROP_CLOSED);
  /* Tips in the channel are thanked there and count toward the event. */
  assert_int_equal(say("bob", "TIP alice 1.50 great show", 0), TALLY_OK);
  assert_true(announced_within("Thank you bob for tipping alice 1.50 credits: great show", 3000));
  assert_int_equal(say("host", "EVENT STOP", HOST), TALLY_OK);
  th_settle(eng, 200); /* the summary waits for the event's ops in flight */
  assert_true(announced_within("Event \"Launch party\" ended: 3 sales (7.00 credits), 1 tip (1.50 credits). Drops: tee 3/3, later 1/5. Thank you!", 3000));
  assert_int_equal(th_sql_i64(dsn, "SELECT count(*) FROM transfers WHERE event_id IS NOT NULL"), 4);
  finish();
}

static void test_drop_window_follows_its_timers(void **state) {
  (void)state;
  setup("livetimer");
  assert_int_equal(say("host", "DROP CREATE later 5 1 start=+11s", HOST), TALLY_OK);
  assert_int_equal(say("host", "DROP CREATE soon 5 1 start=+1s for=2s", HOST), TALLY_OK);
  assert_int_equal(say("bob", "BUY soon", 0), TALLY_EDROP_NOT_LIVE);
  th_settle(eng, 1500);
  assert_true(th_announced("Drop later starts in 10 s.")); /* the countdown */
  assert_false(th_announced("Drop soon starts in")); /* its creation said when */
  assert_true(th_announced("LIVE NOW: drop soon"));
  assert_int_equal(say("bob", "BUY soon", 0), TALLY_OK);
  th_settle(eng, 2500);
  assert_true(th_announced("Drop soon closed: 1 of 5 sold"));
  assert_true(th_announced("for 2 s")); /* short windows in seconds */
  assert_int_equal(say("bob", "BUY soon", 0), TALLY_EDROP_CLOSED);
  finish();
}

/* A purchase refunded in full gives its units of a limited drop back to the
 * buyer (the stock stays sold), also after a restart. */
static void test_refund_gives_back_per_buyer_units(void **state) {
  (void)state;
  setup("liverefund");
  th_reply r;
  assert_int_equal(say("host", "DROP CREATE one 5 1 per-user=1", HOST), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "bob", CH, "BUY one", 0, &r), TALLY_OK);
  char refund[48];
  snprintf(refund, sizeof refund, "REFUND %llu 0.50", (unsigned long long)r.receipt);
  assert_int_equal(say("bob", "BUY one", 0), TALLY_EPER_USER_LIMIT);
  assert_int_equal(say("bob", refund, 0), TALLY_OK); /* half: the unit is still his */
  assert_int_equal(say("bob", "BUY one", 0), TALLY_EPER_USER_LIMIT);
  assert_int_equal(say("bob", refund, 0), TALLY_OK); /* the rest: refunded in full */
  assert_int_equal(say("bob", "BUY one", 0), TALLY_OK);
  assert_int_equal(say("bob", "BUY one", 0), TALLY_EPER_USER_LIMIT);
  th_engine_free(eng);
  eng = th_engine(&cfg);
  assert_int_equal(say("bob", "BUY one", 0), TALLY_EPER_USER_LIMIT); /* the same count rebuilt */
  finish();
}

static void test_event_and_drop_survive_a_restart(void **state) {
  (void)state;
  setup("liverestart");
  assert_int_equal(say("host", "EVENT START 30 Marathon", HOST), TALLY_OK);
  assert_int_equal(say("host", "DROP CREATE cap 10 1 per-user=1", HOST), TALLY_OK);
  assert_int_equal(say("bob", "BUY cap", 0), TALLY_OK);
  th_engine_free(eng);
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(say("bob", "EVENT", 0), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "bob", CH, "EVENT", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Marathon"));
  assert_non_null(strstr(r.text, "1 sales"));
  assert_int_equal(say("bob", "BUY cap", 0), TALLY_EPER_USER_LIMIT); /* the limit remembered */
  assert_int_equal(say("carol", "BUY cap", 0), TALLY_OK);             /* the drop still live */
  assert_int_equal(say("host", "EVENT STOP", HOST), TALLY_OK);
  th_settle(eng, 200);
  assert_true(th_announced("Event \"Marathon\" ended: 2 sales"));
  finish();
}


/* Waits up to ms for an announcement containing needle. */
static int announced_within(const char *needle, int ms) {
  for (int waited = 0; waited < ms; waited += 100) {
    if (th_announced(needle)) return 1;
    th_settle(eng, 100);
  }
  return th_announced(needle);
}

/* Issue 9 #22: EVENT STOP closes a raffle drop still open; the summary
 * waits for its draw and the winners' charges, so it counts them. */
static void test_event_summary_counts_what_its_stop_settles(void **state) {
  (void)state;
  setup("livestopraffle");
  assert_int_equal(say("host", "EVENT START 30 Vinyl night", HOST), TALLY_OK);
  assert_int_equal(say("host", "DROP CREATE vinyl 2 1 mode=raffle", HOST), TALLY_OK);
  assert_int_equal(say("bob", "BUY vinyl", 0), TALLY_OK);
  assert_int_equal(say("carol", "BUY vinyl", 0), TALLY_OK);
  assert_int_equal(say("host", "EVENT STOP", HOST), TALLY_OK);
  assert_true(announced_within("Event \"Vinyl night\" ended", 5000));
  assert_true(th_announced("RAFFLE vinyl winners (2 of 2 units)"));
  assert_true(th_announced("Event \"Vinyl night\" ended: 2 sales (2.00 credits), 0 tips (0.00 credits)."
                           " Drops: vinyl 2/2. Thank you!"));
  assert_true(th_announced("Creators earned: host 1.96 credits."));
  finish();
}

/* Issue 9 #11: selling needs the creator role, not only channel operator
 * status; split payees must exist and be creators; a refused DROP CREATE
 * creates nothing; drops and items per host are bounded. */
static void test_selling_needs_the_creator_role(void **state) {
  (void)state;
  setup_tuned("livecreator", "drops_per_host=2,items_per_creator=4");
  th_reply r;
  /* bob runs his channel: he may host, not sell. */
  assert_int_equal(th_cmd_in(eng, "bob", "#bob", "EVENT START 30 Chat", HOST, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "bob", "#bob", "DROP CREATE x 1 1", HOST, &r), TALLY_ENO_PERMISSION);
  assert_non_null(strstr(r.text, "creator"));
  assert_int_equal(th_cmd_in(eng, "bob", "#bob", "EVENT TIER gold 1 5", HOST, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd_in(eng, "bob", "#bob", "EVENT REACT 1", HOST, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd_in(eng, "bob", "#bob", "EVENT STOP", HOST, &r), TALLY_OK);
  assert_int_equal(th_sql_i64(dsn, "SELECT count(*) FROM items WHERE sku = 'x' OR sku LIKE 'hl-%' OR sku LIKE 'react-%'"), 0);
  /* Payees: existing accounts with the creator role; nothing is created
   * by a refused drop. */
  assert_int_equal(say("host", "DROP CREATE duo 5 1 split=host:5000,newbie:5000", HOST), TALLY_EUNKNOWN_ACCOUNT);
  assert_int_equal(say("host", "DROP CREATE duo 5 1 split=host:5000,carol:5000", HOST), TALLY_ENO_PERMISSION);
  th_settle(eng, 200);
  assert_int_equal(th_sql_i64(dsn, "SELECT count(*) FROM accounts WHERE name = 'user:newbie'"), 0);
  assert_int_equal(th_sql_i64(dsn, "SELECT count(*) FROM items WHERE sku = 'duo'"), 0);
  assert_int_equal(say("host", "DROP CREATE duo 5 1 split=host:5000,alice:5000", HOST), TALLY_OK);
  /* Quotas: live or scheduled drops at once, items in all. */
  assert_int_equal(say("host", "DROP CREATE a 5 1 start=+1h", HOST), TALLY_OK);
  assert_int_equal(say("host", "DROP CREATE b 5 1 start=+1h", HOST), TALLY_ETOO_MANY); /* 2 at once */
  assert_int_equal(say("host", "DROP STOP a", HOST), TALLY_OK);
  assert_int_equal(say("host", "DROP CREATE b 5 1 start=+1h", HOST), TALLY_OK);
  assert_int_equal(say("host", "DROP STOP b", HOST), TALLY_OK);
  assert_int_equal(th_cmd(eng, "host", "ITEM ADD c 1 C", 0, &r), TALLY_OK); /* 4 items */
  assert_int_equal(say("host", "DROP CREATE d 5 1", HOST), TALLY_ETOO_MANY);
  assert_int_equal(th_cmd(eng, "host", "ITEM ADD e 1 E", 0, &r), TALLY_ETOO_MANY);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD e 1 E", 0, &r), TALLY_OK); /* per creator */
  th_settle(eng, 200);
  assert_int_equal(th_sql_i64(dsn, "SELECT count(*) FROM items i JOIN accounts a ON a.id = i.creator_id"
                                   " WHERE a.name = 'user:host'"), 4);
  finish();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hosting_needs_a_channel_operator),
      cmocka_unit_test(test_drop_first_come),
      cmocka_unit_test(test_drop_window_follows_its_timers),
      cmocka_unit_test(test_refund_gives_back_per_buyer_units),
      cmocka_unit_test(test_event_and_drop_survive_a_restart),
      cmocka_unit_test(test_event_summary_counts_what_its_stop_settles),
      cmocka_unit_test(test_selling_needs_the_creator_role),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
