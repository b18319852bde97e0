/* test_fault_crash.c — crashes while many buyers buy at once:
 *   F1  PostgreSQL SIGKILLed mid-batch and restarted (the shared test
 *       cluster: tools/pg.sh kill/start on $TALLY_TEST_DSN's directory; it is
 *       restarted before the test ends and must come back on the same DSN);
 *   F5  the engine's process SIGKILLed mid-run (a forked child that prints
 *       each receipt to a pipe as it gets it), then a new engine on the same
 *       database: stock = initial - committed, balances = sum of entries,
 *       every printed receipt in the ledger, ids keep increasing;
 *   F6  buyers left without an answer retry with the same key and get the
 *       receipt on record;
 *   F11 allocation failure at start (re-executed with an allocator that
 *       fails big allocations) and pools exhausted at run time ("busy").
 * See docs/RELIABILITY.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "load.h"

static th_fault_fx F;

static int teardown(void **state) {
  (void)state;
  th_fault_fx_free(&F);
  return 0;
}

static void setup_shop(const char *name, int buyers) {
  th_fresh_db(name, F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.pending_timeout_ms = 1000;
  F.e = th_engine(&F.cfg);
  th_load_init(&F.L, F.e, 20000);
  assert_int_equal(th_load_shop(&F.L, buyers, 1000000, 100000), 0);
}

/* ---- F1 -------------------------------------------------------------------------- */
/* tools/pg.sh: $TALLY_PG_SH, else ./tools/pg.sh, else next to $TALLY_CLI's build dir. */
static void pg_sh_path(char *out, size_t n) {
  const char *env = getenv("TALLY_PG_SH");
  if (env) {
    snprintf(out, n, "%s", env);
    return;
  }
  if (access("tools/pg.sh", X_OK) == 0) {
    snprintf(out, n, "tools/pg.sh");
    return;
  }
  const char *cli = getenv("TALLY_CLI");
  snprintf(out, n, "%s/../../tools/pg.sh", cli ? cli : ".");
}

/* The cluster directory: host= of $TALLY_TEST_DSN. */
static void pg_dir(char *out, size_t n) {
  const char *dsn = getenv("TALLY_TEST_DSN");
  const char *h = dsn ? strstr(dsn, "host=") : NULL;
  assert_non_null(h);
  h += 5;
  size_t len = strcspn(h, " ");
  assert_true(len < n && h[0] == '/');
  memcpy(out, h, len);
  out[len] = 0;
}

typedef struct f1_fault {
  char pg_sh[512], dir[256], dsn_after[512];
  atomic_int done;
  int kill_rc, start_rc;
  int64_t killed_ms, started_ms;
} f1_fault;

static void *f1_thread(void *arg) {
  f1_fault *f = arg;
  char cmd[1024];
  usleep(800 * 1000);
  char path[600];
  snprintf(path, sizeof path, "%s/data/postmaster.pid", f->dir);
  FILE *pidf = fopen(path, "r");
  int pm = 0;
  if (pidf) {
    if (fscanf(pidf, "%d", &pm) != 1) pm = 0;
    fclose(pidf);
  }
  snprintf(cmd, sizeof cmd, "%s kill %s", f->pg_sh, f->dir);
  f->kill_rc = system(cmd);
  f->killed_ms = th_now_ms();
  /* pg.sh kill returns while the dead postmaster may still be a zombie
   * waiting for init to reap it (seconds here); pg_ctl status counts a
   * zombie as running and `pg.sh start` would then not start anything. */
  snprintf(path, sizeof path, "/proc/%d", pm);
  for (int i = 0; pm > 0 && i < 1500 && access(path, F_OK) == 0; i++) usleep(10 * 1000);
  usleep(300 * 1000);
  /* Orphaned backends may still hold the shared memory for a moment. */
  snprintf(cmd, sizeof cmd, "%s start %s", f->pg_sh, f->dir);
  f->start_rc = -1;
  for (int attempt = 0; attempt < 5 && f->start_rc != 0; attempt++) {
    if (attempt) sleep(1);
    FILE *p = popen(cmd, "r");
    if (!p) continue;
    if (!fgets(f->dsn_after, sizeof f->dsn_after, p)) f->dsn_after[0] = 0;
    f->dsn_after[strcspn(f->dsn_after, "\n")] = 0;
    f->start_rc = pclose(p);
  }
  f->started_ms = th_now_ms();
  atomic_store(&f->done, 1);
  return NULL;
}

typedef struct f1_plan {
  f1_fault *f;
  int64_t done_at;
} f1_plan;

static int f1_hook(void *ud, int64_t t) {
  f1_plan *p = ud;
  if (!p->done_at && atomic_load(&p->f->done)) p->done_at = t;
  return p->done_at && t >= p->done_at + 2500;
}

static void test_f1_postgres_killed_mid_batch(void **state) {
  (void)state;
  setup_shop("f1", 30);
  /* Each batch statement takes >= 50 ms, so the kill lands inside one. */
  assert_int_equal(th_sql_exec(F.dsn,
                               "CREATE FUNCTION th_slow() RETURNS trigger LANGUAGE plpgsql AS"
                               " $$BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END$$;"
                               " CREATE TRIGGER th_slow AFTER INSERT ON transfers"
                               " FOR EACH STATEMENT EXECUTE FUNCTION th_slow()"),
                   0);
  static f1_fault f;
  memset(&f, 0, sizeof f);
  pg_sh_path(f.pg_sh, sizeof f.pg_sh);
  pg_dir(f.dir, sizeof f.dir);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, f1_thread, &f), 0);
  f1_plan plan = {&f, 0};
  int sent = th_load_run(&F.L, 30, "BUY tee", 2, 40000, f1_hook, &plan);
  pthread_join(th, NULL);
  fprintf(stderr, "f1: sent %d; PostgreSQL killed (rc %d) and restarted after %lld ms (rc %d): %s\n", sent,
          f.kill_rc, (long long)(f.started_ms - f.killed_ms), f.start_rc, f.dsn_after);
  /* The shared cluster is back, on the same DSN. */
  assert_int_equal(f.kill_rc, 0);
  assert_int_equal(f.start_rc, 0);
  assert_string_equal(f.dsn_after, getenv("TALLY_TEST_DSN"));
  assert_int_equal(th_load_wait(&F.L, 30000), 0);
  tally_stats st = {0};
  tally_engine_stats(F.e, &st);
  fprintf(stderr, "f1: %llu batch retries\n", (unsigned long long)st.batch_retries);
  assert_true(st.batch_retries >= 1);
  /* Recovered: a buy now gets a receipt. */
  int i = th_load_send(&F.L, "b3", "BUY tee", NULL, 0);
  assert_int_equal(th_load_wait(&F.L, 15000), 0);
  assert_int_equal(F.L.reqs[i].final_code, TALLY_OK);
  th_load_stop_engine(&F.L);
  th_ledger_report r;
  int rc = th_load_check(&F.L, F.dsn, "tee", &r, "f1");
  assert_int_equal(rc, 0);
  assert_true(r.receipts > 100);
  tally_engine_free(F.e);
  F.e = NULL;
  assert_int_equal(th_tally_check(F.dsn), 0);
}

/* ---- F5 -------------------------------------------------------------------------- */
static void put_line(int fd, const char *fmt, ...) {
  char line[160];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0 && write(fd, line, (size_t)n) != n) _exit(3);
}

/* The child: an engine that buys until it is killed, telling the parent
 * "S key" before each submit and "R key code receipt" for each answer. */
static void f5_child(int fd) {
  alarm(60);
  tally_engine *e = th_engine(&F.cfg);
  th_load L;
  th_load_init(&L, e, 20000);
  put_line(fd, "READY\n");
  int told = 0;
  char key[48], who[16];
  for (int i = 0; L.n < L.cap; i++) {
    snprintf(key, sizeof key, "f5-%d", i);
    snprintf(who, sizeof who, "b%d", i % 30);
    put_line(fd, "S %s\n", key);
    th_load_send(&L, who, "BUY tee", key, 0);
    th_load_pump(&L, 2);
    /* Answers come in order of commits, not of sends: report each once. */
    for (int j = told; j < L.n; j++) {
      th_req *q = &L.reqs[j];
      if (q->finals && q->pending >= 0) {
        put_line(fd, "R %s %d %llu\n", q->key, q->final_code, (unsigned long long)q->receipt);
        q->pending = -1; /* reported */
      }
    }
    while (told < L.n && L.reqs[told].pending < 0) told++;
  }
  _exit(0);
}

static void f5_parse(th_load *P, char *line) {
  char key[48];
  int code;
  unsigned long long receipt;
  if (sscanf(line, "S %47s", key) == 1) {
    th_load_add(P, key);
  } else if (sscanf(line, "R %47s %d %llu", key, &code, &receipt) == 3) {
    int i = th_load_find(P, key);
    assert_true(i >= 0);
    P->reqs[i].finals++;
    P->reqs[i].final_code = code;
    P->reqs[i].receipt = receipt;
  }
}

static void test_f5_engine_killed(void **state) {
  (void)state;
  enum { STOCK = 100000 };
  th_fresh_db("f5", F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.pending_timeout_ms = 1000;
  F.e = th_engine(&F.cfg);
  th_load_init(&F.L, F.e, 20000);
  assert_int_equal(th_load_shop(&F.L, 30, STOCK, 100000), 0);
  th_engine_free(F.e);
  F.e = NULL;

  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    f5_child(fds[1]);
  }
  close(fds[1]);
  /* The parent: read until READY, 1.5 s more, then SIGKILL; then the rest. */
  th_load_reset(&F.L);
  char buf[1 << 16];
  size_t have = 0;
  int ready = 0, killed = 0;
  int64_t start = th_now_ms(), ready_at = 0;
  for (;;) {
    if (!killed && ready && th_now_ms() >= ready_at + 1500) {
      kill(pid, SIGKILL);
      killed = 1;
    }
    if (!killed && th_now_ms() > start + 30000) {
      kill(pid, SIGKILL);
      killed = 1;
    }
    struct pollfd p = {fds[0], POLLIN, 0};
    poll(&p, 1, 10);
    if (!(p.revents & (POLLIN | POLLHUP))) continue;
    ssize_t n = read(fds[0], buf + have, sizeof buf - have - 1);
    if (n <= 0) break;
    have += (size_t)n;
    buf[have] = 0;
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n'))) {
      *nl = 0;
      if (strcmp(line, "READY") == 0) {
        ready = 1;
        ready_at = th_now_ms();
      } else {
        f5_parse(&F.L, line);
      }
      line = nl + 1;
    }
    have = strlen(line);
    memmove(buf, line, have);
  }
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  assert_true(ready);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  /* Buys the child sent without telling an answer: outcome unknown to the
   * buyer (they would check RECEIPTS), so they may or may not be charged. */
  int unknown = 0;
  for (int i = 0; i < F.L.n; i++)
    if (!F.L.reqs[i].finals) {
      F.L.reqs[i].pending = 1;
      unknown++;
    }
  fprintf(stderr, "f5: child sent %d buys, %d without an answer when killed\n", F.L.n, unknown);
  assert_true(F.L.n > 50);

  /* A new engine on the same database (waits for the dead one's lock). */
  F.e = th_engine(&F.cfg);
  F.L.e = F.e;
  th_ledger_report r;
  assert_int_equal(th_load_check(&F.L, F.dsn, "tee", &r, "f5"), 0);
  assert_true(r.receipts > 0);

  /* F6: buyers who never heard back retry with the same key: they get the
   * receipt on record (or, if it never committed, one new purchase). So do
   * the last three who did hear back, in case everyone did. */
  for (int i = 0; i < F.L.n; i++) {
    if (!F.L.reqs[i].pending && i < F.L.n - 3) continue;
    char key[48], who[16], sql[160];
    snprintf(key, sizeof key, "%s", F.L.reqs[i].key);
    snprintf(who, sizeof who, "b%d", atoi(key + 3) % 30);
    snprintf(sql, sizeof sql, "SELECT coalesce(max(id), 0) FROM transfers WHERE idem_key = '%s'", key);
    int64_t before = th_sql_i64(F.dsn, sql);
    th_reply retry;
    assert_int_equal(th_cmd_key(F.e, who, "BUY tee", key, 0, &retry), TALLY_OK);
    if (before) assert_int_equal((int64_t)retry.receipt, before);
    assert_int_equal(th_sql_i64(F.dsn, sql), (int64_t)retry.receipt);
    if (!before) r.ledger_qty++; /* bought now */
  }

  /* stock = initial - committed */
  th_reply rep;
  assert_int_equal(th_cmd(F.e, "b0", "SHOP", 0, &rep), TALLY_OK);
  const char *left = strstr(rep.text, "credits - ");
  assert_non_null(left);
  assert_int_equal(atoi(left + 10), STOCK - r.ledger_qty);
  /* balances = sum of entries, nothing left held */
  for (int i = 0; i < 5; i++) {
    char who[16], sql[200];
    snprintf(who, sizeof who, "b%d", i);
    assert_int_equal(th_cmd(F.e, who, "WALLET", 0, &rep), TALLY_OK);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(e.amount_minor), 0) FROM entries e JOIN accounts a ON a.id = e.account_id"
             " WHERE a.name = 'user:%s'", who);
    assert_int_equal(th_wallet_available(rep.text, 2), th_sql_i64(F.dsn, sql));
    assert_non_null(strstr(rep.text, "available, 0.00 credits pending"));
  }
  /* Ids continue above everything the dead engine wrote (I9). */
  int64_t max_id = th_sql_i64(F.dsn, "SELECT max(id) FROM transfers");
  assert_int_equal(th_cmd(F.e, "b1", "BUY tee", 0, &rep), TALLY_OK);
  assert_true((int64_t)rep.receipt > max_id);
  th_engine_free(F.e);
  F.e = NULL;
  assert_int_equal(th_tally_check(F.dsn), 0);
}

/* ---- F11 ------------------------------------------------------------------------- */
/* Re-executed child: every pool at its maximum, big allocations failing. */
static int f11_child(void) {
#if !defined(__SANITIZE_ADDRESS__)
  /* Without ASan (whose max_allocation_size_mb does this), cap the address space. */
  struct rlimit lim = {1ull << 30, 1ull << 30};
  setrlimit(RLIMIT_AS, &lim);
#endif
  tally_config cfg;
  tally_config_init(&cfg);
  char key[512];
  snprintf(key, sizeof key, "%s/f11-%d.pem", getenv("TALLY_TMP") ? getenv("TALLY_TMP") : "/tmp", (int)getpid());
  cfg.dsn = "host=/nonexistent dbname=none";
  cfg.signing_key_path = key;
  static const char *maxima[][2] = {{"queue_depth", "1048576"}, {"batch_max", "8192"},
                                     {"accounts_max", "16777216"}, {"items_max", "1048576"},
                                     {"keys_max", "16777216"}, {"purchases_max", "16777216"}};
  char err[TALLY_ERRBUF_BYTES] = "";
  for (size_t i = 0; i < sizeof maxima / sizeof maxima[0]; i++)
    if (tally_config_set(&cfg, maxima[i][0], maxima[i][1], err, sizeof err) != TALLY_OK) {
      printf("F11 config %s: %s\n", maxima[i][0], err);
      return 2;
    }
  tally_engine *e = NULL;
  int rc = tally_engine_new(&cfg, &e, err, sizeof err);
  printf("F11 tally_engine_new: %s (%s)\n", tally_err_name(rc), err);
  if (rc == TALLY_OK) tally_engine_free(e);
  unlink(key);
  if (rc == TALLY_ENOMEM && !err[0]) return 4; /* must say why */
  return rc == TALLY_OK || rc == TALLY_ENOMEM ? 0 : 1;
}

static void test_f11_allocation_failure_at_start(void **state) {
  (void)state;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char opts[1024];
    const char *old = getenv("ASAN_OPTIONS");
    /* allocator_may_return_null: a failed malloc returns NULL instead of
     * aborting; max_allocation_size_mb: anything above 256 MB fails. */
    snprintf(opts, sizeof opts, "%s%sallocator_may_return_null=1:max_allocation_size_mb=256", old ? old : "",
             old && old[0] ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    setenv("TH_F11_CHILD", "1", 1);
    execl("/proc/self/exe", "test_fault_crash", (char *)NULL);
    _exit(127);
  }
  int status;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) fprintf(stderr, "f11: child died of signal %d\n", WTERMSIG(status));
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* Pools exhausted at run time: new accounts beyond accounts_max are told
 * "busy"; known accounts keep working; nothing crashes. */
static void test_f11_pools_exhausted(void **state) {
  (void)state;
  th_fresh_db("f11", F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.accounts_max = 16;
  F.e = th_engine(&F.cfg);
  th_load_init(&F.L, F.e, 100);
  char who[16];
  for (int i = 0; i < 30; i++) {
    snprintf(who, sizeof who, "u%d", i);
    th_load_send(&F.L, who, "WALLET", NULL, 0);
  }
  assert_int_equal(th_load_wait(&F.L, 10000), 0);
  int ok = 0, busy = 0;
  for (int i = 0; i < F.L.n; i++) {
    ok += F.L.reqs[i].final_code == TALLY_OK;
    busy += F.L.reqs[i].final_code == TALLY_EBUSY;
  }
  fprintf(stderr, "f11: 30 new accounts with accounts_max 16: %d served, %d busy\n", ok, busy);
  assert_true(ok > 0);
  assert_true(busy > 0);
  assert_int_equal(ok + busy, 30);
  th_reply r;
  assert_int_equal(th_cmd(F.e, "u0", "WALLET", 0, &r), TALLY_OK);
  th_engine_free(F.e);
  F.e = NULL;
  th_load_free(&F.L);
  assert_int_equal(th_tally_check(F.dsn), 0);
}

int main(void) {
  if (getenv("TH_F11_CHILD")) return f11_child();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_f1_postgres_killed_mid_batch, teardown),
      cmocka_unit_test_teardown(test_f5_engine_killed, teardown),
      cmocka_unit_test_teardown(test_f11_allocation_failure_at_start, teardown),
      cmocka_unit_test_teardown(test_f11_pools_exhausted, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
