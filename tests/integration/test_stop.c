/* test_stop.c — tally_engine_stop_within: a host that cannot wait (a chat
 * server unloading the module) stops the engine while a batch is stuck in
 * PostgreSQL.
 *
 * A psql-like session holds an ACCESS EXCLUSIVE lock on transfers, so the
 * batch of a TIP waits inside PostgreSQL. stop_within(TALLY_ENGINE_STOP_FAST_MS)
 * must return TALLY_OK (thread joined) within that limit, the tipper must
 * have been told "pending", and the engine must free without a leak (ASan).
 * Then the lock is released: whatever PostgreSQL decided for the batch, a
 * new engine on the same ledger answers the same command (same idempotency
 * key) without applying it twice: bob got exactly one tip of it, and
 * `tally check` passes. */
#include <libpq-fe.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

enum {
  LOCK_WAIT_MS = 10000,  /* for the batch to reach the lock */
  STOP_MARGIN_MS = 100,  /* scheduling slack on two busy cores, ASan included */
};

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t balance(const char *dsn, const char *account) {
  char q[256];
  snprintf(q, sizeof q, "SELECT coalesce(sum(e.amount_minor), 0) FROM entries e"
                        " JOIN accounts a ON a.id = e.account_id WHERE a.name = 'user:%s'", account);
  return th_sql_i64(dsn, q);
}

typedef struct seen {
  uint64_t req_id;
  int pending, other;
} seen;

static void on_effect(void *ud, const tally_effect *eff) {
  seen *s = ud;
  if (eff->kind != TALLY_EFFECT_REPLY || eff->req_id != s->req_id) return;
  if (eff->code == TALLY_EPENDING) s->pending++;
  else s->other++;
}

static void test_stop_within_leaves_a_stuck_batch_to_postgres(void **state) {
  (void)state;
  char dsn[512];
  th_fresh_db("stop", dsn, sizeof dsn);
  tally_config cfg;
  th_config(&cfg, dsn);
  tally_engine *e = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(e, "bob", "WALLET", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(e, "admin", "TALLY GRANT alice 10", TALLY_ROLE_OPER | TALLY_ROLE_GRANT, &r), TALLY_OK);
  assert_int_equal(th_cmd(e, "alice", "TIP bob 1", 0, &r), TALLY_OK);
  const int64_t one_tip = balance(dsn, "bob");
  assert_true(one_tip > 0);

  /* A session of its own holds the table every batch writes. */
  PGconn *lock = PQconnectdb(dsn);
  assert_int_equal(PQstatus(lock), CONNECTION_OK);
  PGresult *res = PQexec(lock, "BEGIN; LOCK TABLE transfers IN ACCESS EXCLUSIVE MODE");
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);

  char key[64];
  snprintf(key, sizeof key, "stop-%d", (int)getpid());
  seen s = {.req_id = th_send(e, "alice", "TIP bob 1", key)};
  int64_t waiting = 0;
  for (uint64_t until = mono_ms() + LOCK_WAIT_MS; !waiting && mono_ms() < until;) {
    usleep(20000);
    waiting = th_sql_i64(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tally-engine'"
                              " AND wait_event_type = 'Lock'");
  }
  assert_true(waiting > 0); /* the batch sits in PostgreSQL, behind the lock */

  uint64_t t0 = mono_ms();
  assert_int_equal(tally_engine_stop_within(e, TALLY_ENGINE_STOP_FAST_MS), TALLY_OK);
  uint64_t took = mono_ms() - t0;
  fprintf(stderr, "# stop_within took %llu ms with a batch stuck in PostgreSQL\n", (unsigned long long)took);
  assert_true(took <= TALLY_ENGINE_STOP_FAST_MS + STOP_MARGIN_MS);
  /* Idempotent, and the thread is gone: nothing blocks any more. */
  assert_int_equal(tally_engine_stop_within(e, 0), TALLY_OK);
  tally_engine_stop(e);
  while (tally_engine_drain(e, on_effect, &s, 1000) > 0) {
  }
  assert_int_equal(s.pending, 1); /* told "pending": RECEIPTS will show it */
  assert_int_equal(s.other, 0);
  tally_engine_free(e);

  res = PQexec(lock, "COMMIT");
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);
  PQfinish(lock);

  /* PostgreSQL decided the stuck batch (committed once its client was
   * gone, or not): the next engine rebuilds from the ledger and the same
   * command, resent, is applied at most once in all. */
  tally_engine *b = th_engine(&cfg);
  int64_t decided = balance(dsn, "bob");
  assert_true(decided == one_tip || decided == 2 * one_tip);
  fprintf(stderr, "# the stuck batch was %s by PostgreSQL\n", decided == 2 * one_tip ? "committed" : "not committed");
  assert_int_equal(th_cmd_key(b, "alice", "TIP bob 1", key, 0, &r), TALLY_OK);
  assert_int_equal(balance(dsn, "bob"), 2 * one_tip);
  th_engine_free(b);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* The API's edges: NULL, an engine never started, a stopped one. */
static void test_stop_within_edges(void **state) {
  (void)state;
  assert_int_equal(tally_engine_stop_within(NULL, 0), TALLY_EINVAL);
  char dsn[512];
  th_fresh_db("stop_edges", dsn, sizeof dsn);
  tally_config cfg;
  th_config(&cfg, dsn);
  tally_engine *e;
  char err[TALLY_ERRBUF_BYTES] = "";
  assert_int_equal(tally_engine_new(&cfg, &e, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_engine_stop_within(e, TALLY_ENGINE_STOP_FAST_MS), TALLY_OK);
  tally_engine_free(e);

  e = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(e, "bob", "WALLET", 0, &r), TALLY_OK);
  uint64_t t0 = mono_ms();
  assert_int_equal(tally_engine_stop_within(e, TALLY_ENGINE_STOP_FAST_MS), TALLY_OK);
  assert_true(mono_ms() - t0 <= TALLY_ENGINE_STOP_FAST_MS + STOP_MARGIN_MS);
  /* Stopped: new commands are refused, not queued for nobody. */
  tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = 1, .origin = "o",
                     .account = "bob", .nick = "bob", .channel = "", .msg_id = "m1", .text = "WALLET"};
  assert_int_equal(tally_engine_submit_command(e, &c), TALLY_ESTATE);
  tally_engine_free(e);
}

/* An engine in its (synchronous) start while another session holds the
 * table lock the loader needs: the load waits at most its lock_timeout
 * (TALLY__LOAD_LOCK_TIMEOUT_MS) and is retried later, so stop_within
 * finishes within its limit (it used to answer TALLY_EBUSY, and the host's
 * fallback waited as long as the lock was held). */
static void test_stop_within_bounded_while_start_is_stuck(void **state) {
  (void)state;
  char dsn[512];
  th_fresh_db("stop_start", dsn, sizeof dsn);
  tally_config cfg;
  th_config(&cfg, dsn);
  th_engine_free(th_engine(&cfg)); /* migrations applied: the next start only loads */

  PGconn *lock = PQconnectdb(dsn);
  assert_int_equal(PQstatus(lock), CONNECTION_OK);
  PGresult *res = PQexec(lock, "BEGIN; LOCK TABLE transfers IN ACCESS EXCLUSIVE MODE");
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);

  tally_engine *e;
  char err[TALLY_ERRBUF_BYTES] = "";
  assert_int_equal(tally_engine_new(&cfg, &e, err, sizeof err), TALLY_OK);
  assert_int_equal(tally_engine_start(e), TALLY_OK);
  int64_t waiting = 0;
  for (uint64_t until = mono_ms() + LOCK_WAIT_MS; !waiting && mono_ms() < until;) {
    usleep(20000);
    waiting = th_sql_i64(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tally-engine'"
                              " AND wait_event_type = 'Lock'");
  }
  assert_true(waiting > 0); /* the start's load waits on the lock */
  /* The load gives up on the lock after its lock_timeout (shorter than the
   * fast stop), so the stop finishes in time while the lock is still held:
   * a host unloading during a start never waits on another session. */
  uint64_t t0 = mono_ms();
  assert_int_equal(tally_engine_stop_within(e, TALLY_ENGINE_STOP_FAST_MS), TALLY_OK);
  uint64_t took = mono_ms() - t0;
  fprintf(stderr, "# stop_within with the start behind a lock: done after %llu ms\n", (unsigned long long)took);
  assert_true(took <= TALLY_ENGINE_STOP_FAST_MS + STOP_MARGIN_MS);
  tally_engine_free(e); /* the thread is gone: nothing left to join */

  res = PQexec(lock, "COMMIT");
  PQclear(res);
  PQfinish(lock);
  /* The lock gone, the same ledger starts as before. */
  th_engine_free(th_engine(&cfg));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_stop_within_leaves_a_stuck_batch_to_postgres),
                                     cmocka_unit_test(test_stop_within_edges),
                                     cmocka_unit_test(test_stop_within_bounded_while_start_is_stuck)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
