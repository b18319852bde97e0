/* test_fence.c — one engine per ledger, even when the lock connection
 * drops (review finding: two engines both spent the same balance).
 *
 * Engine A runs; its lock-holding connection is killed; engine B starts and
 * takes the lease. A's next payment must be refused by the ledger itself
 * (TL001), A must stop, and B must carry on from the ledger's state. */
#include <libpq-fe.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static void on_status(void *ud, const tally_effect *eff) {
  if (eff->kind == TALLY_EFFECT_STATUS && eff->code == TALLY_OK) *(int *)ud = 1;
}

/* Kills the backend holding the engine's advisory lock. */
static void kill_lock_holder(const char *dsn) {
  PGconn *c = PQconnectdb(dsn);
  PQclear(PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND classid = 1952541817 AND objid = 1 AND objsubid = 2 AND granted"));
  PQfinish(c);
}

static void test_second_engine_fences_the_first(void **state) {
  (void)state;
  char dsn[512];
  th_fresh_db("fence", dsn, sizeof dsn);
  tally_config cfg;
  th_config(&cfg, dsn);
  tally_engine *a = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(a, "bob", "WALLET", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(a, "carol", "WALLET", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(a, "admin", "TALLY GRANT alice 1", TALLY_ROLE_OPER | TALLY_ROLE_GRANT, &r), TALLY_OK);

  /* B starts while A runs: it gets in only once A's lock connection dies. */
  tally_engine *b;
  char err[TALLY_ERRBUF_BYTES];
  assert_int_equal(tally_engine_new(&cfg, &b, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_engine_start(b), TALLY_OK);
  int ready = 0;
  for (int i = 0; i < 150 && !ready; i++) {
    if (i % 2 == 0) kill_lock_holder(dsn);
    struct pollfd p = {tally_engine_fd(b), POLLIN, 0};
    poll(&p, 1, 100);
    tally_engine_drain(b, on_status, &ready, 100);
  }
  assert_true(ready);

  /* A's payment is refused by the ledger, and A stops taking payments. */
  int rc = th_cmd(a, "alice", "TIP bob 1", 0, &r);
  assert_int_not_equal(rc, TALLY_OK);
  assert_int_equal(th_cmd(a, "alice", "TIP bob 1", 0, &r), TALLY_ESTATE);
  /* B spends the same credit once. */
  assert_int_equal(th_cmd(b, "alice", "TIP carol 1", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(b, "alice", "TIP carol 1", 0, &r), TALLY_ENO_FUNDS);
  assert_int_equal(th_sql_i64(dsn, "SELECT coalesce(sum(e.amount_minor), 0) FROM entries e"
                                   " JOIN accounts a ON a.id = e.account_id WHERE a.name = 'user:alice'"), 0);
  th_engine_free(a);
  th_engine_free(b);
  assert_int_equal(th_tally_check(dsn), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_second_engine_fences_the_first)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
