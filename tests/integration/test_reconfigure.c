/* test_reconfigure.c — tally_engine_reconfigure: a rehash changes the live
 * settings (here the per-account rate limit) of a running engine; a bad
 * config is refused whole; other keys are not live. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

enum { TICK_WAIT_US = 200000 }; /* a few engine ticks: the change applies at the next */

/* WALLETs by one account until one is refused; how many went through (max n). */
static int wallets_until_limited(tally_engine *e, const char *account, int n) {
  th_reply r;
  for (int i = 0; i < n; i++) {
    int rc = th_cmd(e, account, "WALLET", 0, &r);
    if (rc == TALLY_ERATE_LIMITED) return i;
    assert_int_equal(rc, TALLY_OK);
  }
  return n;
}

static void test_rate_limit_changes_live(void **state) {
  (void)state;
  assert_int_equal(tally_config_key_live("rate_account"), 1);
  assert_int_equal(tally_config_key_live("pending_timeout"), 1);
  assert_int_equal(tally_config_key_live("fee_bps"), 0);
  assert_int_equal(tally_config_key_live("dsn"), 0);
  assert_int_equal(tally_config_key_live("queue_depth"), 0);
  assert_int_equal(tally_config_key_live(NULL), 0);

  char dsn[512];
  th_fresh_db("reconfigure", dsn, sizeof dsn);
  tally_config cfg;
  th_config(&cfg, dsn);
  cfg.rate_account_per_min = 0; /* unlimited */
  tally_engine *e = th_engine(&cfg);
  assert_int_equal(wallets_until_limited(e, "alice", 30), 30);

  /* A bad config is refused whole: nothing of it applies. */
  tally_config bad = cfg;
  bad.rate_account_per_min = 1;
  bad.batch_max = bad.queue_depth + 1;
  char err[TALLY_ERRBUF_BYTES] = "";
  assert_int_equal(tally_engine_reconfigure(e, &bad, err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "batch_max"));
  usleep(TICK_WAIT_US);
  assert_int_equal(wallets_until_limited(e, "bob", 30), 30);

  /* 1 per minute: the bucket holds 5 (command.c), the 6th is refused. */
  tally_config live = cfg;
  live.rate_account_per_min = 1;
  live.fee_bps = cfg.fee_bps + 1; /* not live: ignored, not an error */
  assert_int_equal(tally_engine_reconfigure(e, &live, err, sizeof err), TALLY_OK);
  usleep(TICK_WAIT_US);
  assert_int_equal(wallets_until_limited(e, "carol", 30), 5);
  assert_int_equal(tally_engine_reconfigure(NULL, &live, err, sizeof err), TALLY_EINVAL);
  assert_int_equal(tally_engine_reconfigure(e, NULL, err, sizeof err), TALLY_EINVAL);

  /* And back to unlimited. */
  assert_int_equal(tally_engine_reconfigure(e, &cfg, err, sizeof err), TALLY_OK);
  usleep(TICK_WAIT_US);
  assert_int_equal(wallets_until_limited(e, "carol", 30), 30);
  th_engine_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_rate_limit_changes_live)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
