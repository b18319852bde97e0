/* test_operator.c — operators' money actions through the public API
 * against the real PostgreSQL: TALLY GRANT needs the grant privilege
 * (TALLY_ROLE_GRANT), is capped by grant_max and writes an audit row
 * naming the operator; TALLY ROLE records who changed the role. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define OPER TALLY_ROLE_OPER
#define GRANTER (TALLY_ROLE_OPER | TALLY_ROLE_GRANT)

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;

#define sql(...) th_sql_i64f(dsn, __VA_ARGS__)

static int run(const char *account, const char *text, uint32_t roles, th_reply *r) {
  int rc = th_cmd(eng, account, text, roles, r);
  if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "%s: %s -> %s %s\n", account, text, tally_err_name(rc), r->text);
  return rc;
}

static void setup(const char *name) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  eng = th_engine(&cfg);
}

static void finish(void) {
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

static void test_grant_needs_privilege(void **state) {
  (void)state;
  setup("opgrantpriv");
  th_reply r;
  /* An operator of a class without tally/grant: refused, nothing moves. */
  assert_int_equal(run("helper", "TALLY GRANT bob 5", OPER, &r), TALLY_ENO_PERMISSION);
  /* Neutral text; the adapter names its network's privilege (the hint). */
  assert_non_null(strstr(r.text, "grant privilege"));
  assert_int_equal(r.hint, TALLY_HINT_GRANT_PRIVILEGE);
  /* The grant bit alone is not enough either: TALLY is for operators. */
  assert_int_equal(run("helper", "TALLY GRANT bob 5", TALLY_ROLE_GRANT, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(run("admin", "TALLY GRANT bob 5", GRANTER, &r), TALLY_OK);
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 4"), 1);
  finish();
}

static void test_grant_is_audited_once(void **state) {
  (void)state;
  setup("opgrantaudit");
  th_reply r;
  assert_int_equal(th_cmd_key(eng, "admin", "TALLY GRANT bob 5", "m-grant-1", GRANTER, &r), TALLY_OK);
  uint64_t receipt = r.receipt;
  assert_true(receipt != 0);
  assert_int_equal(sql("SELECT count(*) FROM audit_log WHERE transfer_id = %llu AND actor = 'user:admin'"
                       " AND action = 'grant' AND detail LIKE '%%500 minor units to user:bob%%'",
                       (unsigned long long)receipt),
                   1);
  /* The same message again: the first answer, and no second audit row. */
  assert_int_equal(th_cmd_key(eng, "admin", "TALLY GRANT bob 5", "m-grant-1", GRANTER, &r), TALLY_OK);
  assert_int_equal(r.receipt, receipt);
  assert_int_equal(sql("SELECT count(*) FROM audit_log"), 1);
  /* And after a restart, when the key is read back from the ledger. */
  th_engine_free(eng);
  eng = th_engine(&cfg);
  assert_int_equal(th_cmd_key(eng, "admin", "TALLY GRANT bob 5", "m-grant-1", GRANTER, &r), TALLY_OK);
  assert_int_equal(sql("SELECT count(*) FROM audit_log"), 1);
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 4"), 1);
  finish();
}

static void test_grant_cap(void **state) {
  (void)state;
  setup("opgrantcap");
  th_reply r;
  /* Default grant_max is 1000 (major units); the harness lifts it for
   * other tests, so put the default back. */
  tally_config defaults;
  tally_config_init(&defaults);
  assert_int_equal(defaults.grant_max_major, 1000);
  th_engine_free(eng);
  cfg.grant_max_major = defaults.grant_max_major;
  eng = th_engine(&cfg);
  assert_int_equal(run("admin", "TALLY GRANT bob 1000.01", GRANTER, &r), TALLY_EOVERFLOW);
  assert_non_null(strstr(r.text, "at most 1000.00"));
  assert_int_equal(sql("SELECT count(*) FROM transfers"), 0);
  assert_int_equal(run("admin", "TALLY GRANT bob 1000", GRANTER, &r), TALLY_OK);
  th_engine_free(eng);
  /* A smaller cap, and 0 = no cap. */
  assert_int_equal(tally_config_set(&cfg, "grant_max", "2", NULL, 0), TALLY_OK);
  eng = th_engine(&cfg);
  assert_int_equal(run("admin", "TALLY GRANT bob 2.01", GRANTER, &r), TALLY_EOVERFLOW);
  assert_int_equal(run("admin", "TALLY GRANT bob 2", GRANTER, &r), TALLY_OK);
  th_engine_free(eng);
  assert_int_equal(tally_config_set(&cfg, "grant_max", "0", NULL, 0), TALLY_OK);
  eng = th_engine(&cfg);
  assert_int_equal(run("admin", "TALLY GRANT bob 50000", GRANTER, &r), TALLY_OK);
  assert_int_equal(sql("SELECT sum(amount_minor) FROM transfers WHERE kind = 4"), 100000 + 200 + 5000000);
  finish();
}

static void test_role_change_names_operator(void **state) {
  (void)state;
  setup("oprole");
  th_reply r;
  assert_int_equal(run("admin", "TALLY ROLE alice creator", OPER, &r), TALLY_OK);
  assert_int_equal(run("root", "TALLY ROLE alice none", OPER, &r), TALLY_OK);
  assert_int_equal(sql("SELECT count(*) FROM role_changes r JOIN accounts a ON a.id = r.account_id"
                       " WHERE a.name = 'user:alice' AND r.role = 'creator' AND r.by_account = 'user:admin'"),
                   1);
  assert_int_equal(sql("SELECT count(*) FROM role_changes r JOIN accounts a ON a.id = r.account_id"
                       " WHERE a.name = 'user:alice' AND r.role = 'none' AND r.by_account = 'user:root'"),
                   1);
  assert_int_equal(sql("SELECT count(*) FROM role_changes WHERE by_account = 'engine'"), 0);
  finish();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grant_needs_privilege),
      cmocka_unit_test(test_grant_is_audited_once),
      cmocka_unit_test(test_grant_cap),
      cmocka_unit_test(test_role_change_names_operator),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
