/* test_fault_disk.c — F4 on a real full filesystem, not an injected error.
 *
 * The test mounts a small tmpfs, makes it a tablespace of the test cluster
 * and creates the ledger's database in it, so every table and index of the
 * ledger lives on it (pg_wal stays on the cluster's own disk: PostgreSQL
 * refuses the statement instead of PANICking). A ballast file leaves about
 * a megabyte free; buyers then buy at full speed until PostgreSQL really
 * fails to extend a file (ENOSPC, SQLSTATE 53100). Asserted:
 *   - buyers are told "could not be recorded; you were not charged", never
 *     a receipt without a commit (every receipt is in the ledger, nobody
 *     refused is charged, nothing twice);
 *   - once the ballast is deleted, buying works again without a restart;
 *   - `tally check` passes.
 * Mounting needs root with CAP_SYS_ADMIN; without it the test is skipped
 * and says so. See docs/RELIABILITY.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "harness.h"
#include "load.h"

enum { FS_MB = 40, LEFT_FREE_KB = 1024, BUYERS = 30 };
/* How long the parent's clean-up waits for a cluster that is restarting. */
enum { CLEANUP_WAIT_MS = 30000 };

static th_fault_fx F;
static char mnt[512], ballast[600], space[600], db[64];
static int mounted, have_space;

/* The cluster's data directory owner: the tablespace must belong to it. */
static int server_owner(uid_t *uid, gid_t *gid) {
  const char *dsn = getenv("TALLY_TEST_DSN");
  const char *h = dsn ? strstr(dsn, "host=") : NULL;
  if (!h || h[5] != '/') return -1;
  char path[600];
  snprintf(path, sizeof path, "%.*s/data", (int)strcspn(h + 5, " "), h + 5);
  struct stat st;
  if (stat(path, &st)) return -1;
  *uid = st.st_uid;
  *gid = st.st_gid;
  return 0;
}

/* Mounts the small filesystem; on failure writes why into `why`. */
static int mount_small_fs(char *why, size_t n) {
  uid_t uid;
  gid_t gid;
  if (server_owner(&uid, &gid)) {
    snprintf(why, n, "cannot find the test cluster's data directory from TALLY_TEST_DSN");
    return -1;
  }
  const char *tmp = getenv("TALLY_TMP");
  snprintf(mnt, sizeof mnt, "%s/f4fs-%d", tmp ? tmp : "/tmp", (int)getpid());
  if (mkdir(mnt, 0755) && errno != EEXIST) {
    snprintf(why, n, "mkdir %s: %s", mnt, strerror(errno));
    return -1;
  }
  char opts[96];
  snprintf(opts, sizeof opts, "size=%dm,mode=0755", FS_MB);
  if (mount("tally-f4", mnt, "tmpfs", MS_NOSUID | MS_NODEV, opts)) {
    snprintf(why, n, "mount -t tmpfs -o %s failed: %s (needs root with CAP_SYS_ADMIN)", opts, strerror(errno));
    rmdir(mnt);
    return -1;
  }
  mounted = 1;
  snprintf(space, sizeof space, "%s/ts", mnt);
  snprintf(ballast, sizeof ballast, "%s/ballast", mnt);
  if (mkdir(space, 0700) || chown(space, uid, gid)) {
    snprintf(why, n, "tablespace folder %s: %s", space, strerror(errno));
    return -1;
  }
  return 0;
}

static int64_t fs_free_bytes(void) {
  struct statvfs v;
  assert_int_equal(statvfs(mnt, &v), 0);
  return (int64_t)v.f_bavail * (int64_t)v.f_frsize;
}

/* Fills the filesystem up to `leave` free bytes. */
static void ballast_fill(int64_t leave) {
  int64_t size = fs_free_bytes() - leave;
  assert_true(size > 0);
  int fd = open(ballast, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(posix_fallocate(fd, 0, size), 0);
  assert_int_equal(close(fd), 0);
}

/* Runs in the child, after its test: frees what the child holds. */
static int teardown(void **state) {
  (void)state;
  th_fault_fx_free(&F);
  return 0;
}

/* Runs in the parent whatever the child did (passed, failed, aborted,
 * killed): the ballast goes first, so a cluster that must replay WAL into
 * the tablespace has room to; then the database, the tablespace and the
 * mount, so a dead test cannot leave a full disk or a busy mount behind for
 * the tests after it (the harness's cluster is shared). */
static void cleanup_small_fs(void) {
  const char *base = getenv("TALLY_TEST_DSN");
  if (mounted) unlink(ballast);
  if (base && have_space) {
    char sql[256];
    /* The database's name is the child's pid: the parent knows the child. */
    if (db[0]) {
      snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
      if (th_sql_exec_retry(base, sql, CLEANUP_WAIT_MS)) fprintf(stderr, "f4disk: could not drop %s\n", db);
    }
    if (th_sql_exec_retry(base, "DROP TABLESPACE IF EXISTS th_f4", CLEANUP_WAIT_MS))
      fprintf(stderr, "f4disk: could not drop tablespace th_f4\n");
  }
  if (mounted) {
    if (umount2(mnt, MNT_DETACH)) perror("umount");
    rmdir(mnt);
    mounted = 0;
  }
}

/* The ledger's database, created inside the tablespace. */
static void ledger_on_small_fs(void) {
  const char *base = getenv("TALLY_TEST_DSN");
  char sql[800];
  snprintf(sql, sizeof sql, "CREATE DATABASE %s TABLESPACE th_f4", db);
  assert_int_equal(th_sql_exec(base, sql), 0);
  snprintf(F.dsn, sizeof F.dsn, "%s dbname=%s", base, db);
}

/* Buys until `want_failed` buyers were refused for the full disk (or
 * max_ms); returns the index of the first request sent. */
static int buy_until_full(int want_failed, int max_ms) {
  int first = F.L.n, failed = 0;
  int64_t t0 = th_now_ms();
  char who[16];
  for (int k = 0; failed < want_failed && th_now_ms() - t0 < max_ms && F.L.n < F.L.cap; k++) {
    snprintf(who, sizeof who, "b%d", k % BUYERS);
    th_load_send(&F.L, who, "BUY tee", NULL, 0);
    th_load_pump(&F.L, 1);
    if (k % 64 == 0) {
      failed = 0;
      for (int i = first; i < F.L.n; i++) failed += F.L.reqs[i].final_code == TALLY_EFAILED;
    }
  }
  return first;
}

static void test_f4_real_disk_full(void **state) {
  (void)state;
  assert_true(mounted);
  ledger_on_small_fs();
  th_config(&F.cfg, F.dsn);
  F.cfg.pending_timeout_ms = 1000;
  F.e = th_engine(&F.cfg);
  th_load_init(&F.L, F.e, 60000);
  assert_int_equal(th_load_shop(&F.L, BUYERS, 1000000, 100000), 0);
  ballast_fill((int64_t)LEFT_FREE_KB * 1024);
  fprintf(stderr, "f4disk: %lld bytes left on the tablespace's filesystem\n", (long long)fs_free_bytes());

  int64_t t0 = th_now_ms();
  int first = buy_until_full(200, 40000);
  assert_int_equal(th_load_wait(&F.L, 30000), 0);
  int ok = 0, failed = 0, other = 0;
  for (int i = first; i < F.L.n; i++) {
    const th_req *q = &F.L.reqs[i];
    if (q->final_code == TALLY_OK && q->receipt) ok++;
    else if (q->final_code == TALLY_EFAILED) {
      failed++;
      /* A clear refusal that says nothing was charged. */
      assert_non_null(strstr(q->text, "not charged"));
    } else other++;
  }
  fprintf(stderr, "f4disk: %d buys in %lld ms until full: %d receipts, %d refused (disk full), %d other;"
          " %lld bytes free\n", F.L.n - first, (long long)(th_now_ms() - t0), ok, failed, other,
          (long long)fs_free_bytes());
  assert_true(ok > 0);      /* the first megabyte took buys */
  assert_true(failed >= 200); /* then PostgreSQL really ran out of space */
  /* Refused buys released their holds: a wallet is its entries. */
  th_reply r;
  assert_int_equal(th_cmd(F.e, "b0", "WALLET", 0, &r), TALLY_OK);

  /* Space freed: buying works again, no restart. */
  assert_int_equal(unlink(ballast), 0);
  /* Counted only now: on the full disk a new session can fail to start
   * ("FATAL: could not write init file", when the relation cache's file must
   * be rewritten), and nothing was bought since the WALLET above. */
  int64_t spent = th_sql_i64(F.dsn, "SELECT count(*) FROM transfers t JOIN accounts a ON a.id = t.account_id"
                                    " WHERE t.kind = 1 AND a.name = 'user:b0'");
  assert_int_equal(th_wallet_available(r.text, 2), 100000LL * 100 - spent * 100);
  int again = F.L.n;
  char who[16];
  for (int i = 0; i < BUYERS; i++) {
    snprintf(who, sizeof who, "b%d", i);
    th_load_send(&F.L, who, "BUY tee", NULL, 0);
  }
  assert_int_equal(th_load_wait(&F.L, 30000), 0);
  for (int i = again; i < F.L.n; i++) {
    if (F.L.reqs[i].final_code != TALLY_OK) fprintf(stderr, "after: %s\n", F.L.reqs[i].text);
    assert_int_equal(F.L.reqs[i].final_code, TALLY_OK);
  }

  th_load_stop_engine(&F.L);
  th_ledger_report rep;
  assert_int_equal(th_load_check(&F.L, F.dsn, "tee", &rep, "f4disk"), 0);
  assert_int_equal(rep.ledger_rows, rep.receipts);
  assert_int_equal(rep.failed, failed);
  th_engine_free(F.e);
  F.e = NULL;
  assert_int_equal(th_tally_check(F.dsn), 0);
}

/* The tablespace is made here, in the parent, so that the parent can drop
 * it whatever happens to the child. */
static int make_tablespace(char *why, size_t n) {
  const char *base = getenv("TALLY_TEST_DSN");
  char sql[800];
  snprintf(sql, sizeof sql, "CREATE TABLESPACE th_f4 LOCATION '%s'", space);
  if (th_sql_exec(base, sql)) {
    snprintf(why, n, "CREATE TABLESPACE in %s failed", space);
    return -1;
  }
  have_space = 1;
  return 0;
}

int main(void) {
  /* Without a small filesystem there is nothing to test: say why as a TAP
   * skip (cmocka's own skip() prints "not ok ... # SKIP"). */
  char why[1400] = "";
  if (geteuid() != 0) snprintf(why, sizeof why, "not root: mounting a small filesystem needs root with CAP_SYS_ADMIN");
  else if (!mount_small_fs(why, sizeof why)) make_tablespace(why, sizeof why);
  if (why[0]) {
    cleanup_small_fs();
    if (mounted || have_space) {
      printf("1..1\nnot ok 1 - set-up: %s\n", why);
      return 1;
    }
    printf("1..0 # SKIP F4 real disk full: %s\n", why);
    return 0;
  }
  fflush(stdout);
  pid_t child = fork();
  if (child < 0) {
    perror("fork");
    cleanup_small_fs();
    return 1;
  }
  /* Both sides know the database's name: the child's pid. */
  snprintf(db, sizeof db, "th_f4disk_%d", (int)(child ? child : getpid()));
  if (child == 0) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_f4_real_disk_full, teardown),
    };
    _exit(cmocka_run_group_tests(tests, NULL, NULL));
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  cleanup_small_fs();
  if (WIFSIGNALED(status)) {
    /* Its TAP lines may be lost with its buffers: say so here. */
    printf("not ok 2 - the test process died by signal %d (%s)\n", WTERMSIG(status), strsignal(WTERMSIG(status)));
    return 1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
