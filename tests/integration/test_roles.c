/* test_roles.c — generic roles (issue 10 item 4): what each role may do is
 * decided in core, once (command_table.h's role rules, checked by the
 * dispatcher). A moderator (IRC halfop) may HIDE a held tip message and
 * remove a highlight but not host; an account listed in the config key
 * `admins` is an admin without the adapter's admin bit; TALLY GRANT still
 * needs the grant privilege, and grant_max caps it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define CH "#live"
#define MOD TALLY_ROLE_MODERATOR

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;

#define sql(...) th_sql_i64f(dsn, __VA_ARGS__)

static int run(const char *account, const char *text, uint32_t roles, th_reply *r) {
  th_reply tmp;
  if (!r) r = &tmp;
  int rc = th_cmd_in(eng, account, CH, text, roles, r);
  if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "%s: %s -> %s %s\n", account, text, tally_err_name(rc), r->text);
  return rc;
}

/* alice a creator with an item, bob a buyer with 100 credits; config key
 * `admins` (by name: a build without the key fails here) when given. */
static void setup(const char *name, const char *admins) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.tip_message_hold_s = 30;
  if (admins) {
    char err[TALLY_ERRBUF_BYTES] = "";
    int rc = tally_config_set(&cfg, "admins", admins, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, TALLY_OK);
  }
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "root", "TALLY ROLE alice creator", TALLY_ROLE_OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD pin 1 Pin", 0, &r), TALLY_OK);
  assert_int_equal(th_buyer(eng, "bob", "100", "pin"), TALLY_OK);
}

static void finish(void) {
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* A moderator only (IRC halfop): HIDE works, hosting is refused with the
 * host hint, like for anyone without the host role. */
static void test_moderator_hides_but_does_not_host(void **state) {
  (void)state;
  setup("rolemod", NULL);
  th_reply r;
  assert_int_equal(run("bob", "TIP alice 1 rude words", 0, &r), TALLY_OK);
  char hide[64];
  snprintf(hide, sizeof hide, "HIDE %llu", (unsigned long long)r.receipt);
  assert_int_equal(run("carol", hide, 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(run("half", hide, MOD, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "is hidden; the tip stands"));
  assert_int_equal(run("half", "EVENT START 10 Party", MOD, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(r.hint, TALLY_HINT_HOST_ROLE);
  assert_string_equal(r.text, "no permission: only the channel's hosts run events and drops");
  assert_int_equal(run("half", "DROP CREATE tee 5 3", MOD, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(r.hint, TALLY_HINT_HOST_ROLE);
  assert_int_equal(run("half", "DROP LIST", MOD, &r), TALLY_OK); /* open to everyone */
  /* A host moderates too (the 1.4 chanop bit alone): unchanged. */
  assert_int_equal(run("bob", "TIP alice 1 more rude words", 0, &r), TALLY_OK);
  snprintf(hide, sizeof hide, "HIDE %llu", (unsigned long long)r.receipt);
  assert_int_equal(run("op", hide, TALLY_ROLE_CHANOP, &r), TALLY_OK);
  assert_int_equal(sql("SELECT count(*) FROM hidden_messages"), 2);
  finish();
}

/* An account of `admins` is an admin whatever the adapter says: TALLY ROLE
 * and STATS work without the admin bit; an unlisted account is refused. */
static void test_listed_admin_runs_admin_commands(void **state) {
  (void)state;
  setup("roleadmins", "boss, chief");
  th_reply r;
  assert_int_equal(th_cmd(eng, "carol", "TALLY STATS", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(r.hint, TALLY_HINT_ADMIN_ROLE);
  assert_int_equal(th_cmd(eng, "chief", "TALLY STATS", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "boss", "TALLY ROLE carol creator", 0, &r), TALLY_OK);
  assert_int_equal(sql("SELECT count(*) FROM role_changes r JOIN accounts a ON a.id = r.account_id"
                       " WHERE a.name = 'user:carol' AND r.by_account = 'user:boss'"),
                   1);
  /* A prefix or suffix of a listed name is not listed. */
  assert_int_equal(th_cmd(eng, "bos", "TALLY STATS", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd(eng, "chiefs", "TALLY STATS", 0, &r), TALLY_ENO_PERMISSION);
  /* `admins` names the configured network's accounts: "chief" of another
   * network is someone else. */
  assert_int_equal(th_cmd_net(eng, "matrix", "chief", "", "TALLY STATS", "m-chief-1", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd_net(eng, "irc", "chief", "", "TALLY STATS", "m-chief-2", 0, &r), TALLY_OK);
  /* Admins host anywhere, as operators did. */
  assert_int_equal(run("boss", "EVENT START 10 Party", 0, &r), TALLY_OK);
  finish();
}

/* Being an admin (listed or by the adapter) does not create credits: TALLY
 * GRANT needs the grant privilege too, and grant_max caps it. */
static void test_grant_needs_privilege_and_cap(void **state) {
  (void)state;
  setup("rolegrant", "boss");
  th_engine_free(eng);
  cfg.grant_max_major = 1000; /* the default (the harness lifts it) */
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "boss", "TALLY GRANT bob 5", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(r.hint, TALLY_HINT_GRANT_PRIVILEGE);
  assert_int_equal(th_cmd(eng, "oper", "TALLY GRANT bob 5", TALLY_ROLE_OPER, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(r.hint, TALLY_HINT_GRANT_PRIVILEGE);
  /* The privilege without being an admin is not enough either. */
  assert_int_equal(th_cmd(eng, "carol", "TALLY GRANT bob 5", TALLY_ROLE_GRANT, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(r.hint, TALLY_HINT_ADMIN_ROLE);
  assert_int_equal(th_cmd(eng, "boss", "TALLY GRANT bob 5", TALLY_ROLE_GRANT, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "boss", "TALLY GRANT bob 1000.01", TALLY_ROLE_GRANT, &r), TALLY_EOVERFLOW);
  assert_non_null(strstr(r.text, "(grant_max)"));
  finish();
}

/* `admins` holds account names: anything else is a config error. */
static void test_admins_config_checked(void **state) {
  (void)state;
  tally_config c;
  th_config(&c, "dbname=unused");
  char err[TALLY_ERRBUF_BYTES] = "";
  assert_int_equal(tally_config_set(&c, "admins", "alice,bob", err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_check(&c, err, sizeof err), TALLY_OK);
  char long_name[TALLY_NAME_BYTES_MAX + 8];
  memset(long_name, 'a', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = 0;
  assert_int_equal(tally_config_set(&c, "admins", long_name, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_check(&c, err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "admins"));
  assert_int_equal(tally_config_set(&c, "admins", "alice,\x01x", err, sizeof err), TALLY_OK);
  assert_int_equal(tally_config_check(&c, err, sizeof err), TALLY_ECONFIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_moderator_hides_but_does_not_host),
      cmocka_unit_test(test_listed_admin_runs_admin_commands),
      cmocka_unit_test(test_grant_needs_privilege_and_cap),
      cmocka_unit_test(test_admins_config_checked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
