/* test_goals_clock.c — F9 for community goals (issue 14, "a wall-clock jump
 * fires nothing early or twice"): a goal level's timer follows the monotonic
 * clock. The wall clock jumps +1 h, -1 day, +1 day while a 6 s level runs:
 * the level neither ends at once (a wall-clock timer would after +1 h) nor
 * a day late (after -1 day); it ends once, about 6 s after its start, and a
 * level reached in between opens the next with its own fresh 6 s.
 *
 * Re-executes itself under libfaketime as test_fault_clock.c does
 * (FAKETIME_TIMESTAMP_FILE re-read on every call, the monotonic clock not
 * faked); without the library it reports a skip, never a pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <time.h>
#include <unistd.h>

#include "harness.h"

#define UNDER_FAKETIME "TALLY_GOALS_UNDER_FAKETIME"
#define CH "#live"
#define HOST TALLY_ROLE_CHANOP
#define OPER TALLY_ROLE_OPER

static char clock_file[512];
static char dsn[512];

/* The engine host's wall clock, in libfaketime's syntax; renamed into place. */
static void clock_set(const char *spec) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.new", clock_file);
  FILE *f = fopen(tmp, "w");
  assert_non_null(f);
  fprintf(f, "%s\n", spec);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(rename(tmp, clock_file), 0);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (settling the engine) until needle is announced; the monotonic ms
 * it was first seen at, or -1. */
static int64_t seen_at(tally_engine *e, const char *needle, int ms) {
  for (int waited = 0; waited < ms; waited += 20) {
    if (th_announced(needle)) return mono_ms();
    th_settle(e, 20);
  }
  return th_announced(needle) ? mono_ms() : -1;
}

enum { LEVEL_MS = 6000, SLACK_MS = 1500 };

static void test_level_timer_ignores_wall_clock_jumps(void **state) {
  (void)state;
  th_fresh_db("goalclock", dsn, sizeof dsn);
  tally_config cfg;
  th_config(&cfg, dsn);
  cfg.goal_cooldown_s = 0;
  tally_engine *e = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(e, "admin", "TALLY ROLE host creator", OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(e, "host", "REWARD ADD prize discount=1.00 for=1h", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(e, "host", CH, "EVENT START 30 Clock night", HOST, &r), TALLY_OK);
  assert_int_equal(th_cmd(e, "admin", "TALLY GRANT b1 50", OPER | TALLY_ROLE_GRANT, &r), TALLY_OK);
  th_presence(e, "b1", CH, 1);
  th_settle(e, 200);

  assert_int_equal(th_cmd_in(e, "host", CH, "GOAL START 5,10 reward=prize for=6s", HOST, &r), TALLY_OK);
  int64_t start = mono_ms();
  assert_true(seen_at(e, "GOAL: tips and purchases here fill 5.00 credits within 6 s", 3000) >= 0);
  /* +1 h: a wall-clock timer would end the level now. */
  clock_set("+1h");
  th_settle(e, 1000);
  assert_false(th_announced("Goal over"));
  assert_int_equal(th_cmd_in(e, "b1", CH, "GOAL", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Goal level 1 of 2"));
  assert_null(strstr(r.text, " 0 min 0 s left"));
  /* -1 day: one would end it a day late. Level 1 reached on the way. */
  clock_set("-1d");
  assert_int_equal(th_cmd_in(e, "b1", CH, "TIP host 5", 0, &r), TALLY_OK);
  int64_t reached = seen_at(e, "GOAL level 1 reached: 5.00 credits of 5.00 credits", 3000);
  assert_true(reached >= 0);
  assert_true(reached - start < LEVEL_MS);
  /* +1 day inside level 2's fresh 6 s: it still runs its 6 s. */
  clock_set("+1d");
  th_settle(e, 1000);
  assert_false(th_announced("Goal over"));
  int64_t over = seen_at(e, "Goal over: level 2 ran out of time at 0.00 credits of 10.00 credits. Levels reached: 1 of 2.",
                         LEVEL_MS + SLACK_MS + 2000);
  assert_true(over >= 0);
  fprintf(stderr, "# level 2 ended %lld ms after level 1 was reached (its 6 s)\n", (long long)(over - reached));
  assert_true(over - reached >= LEVEL_MS - 500);
  assert_true(over - reached <= LEVEL_MS + SLACK_MS);
  clock_set("+0");
  th_settle(e, 300);
  assert_int_equal(th_cmd_in(e, "host", CH, "GOAL START 5", HOST, &r), TALLY_OK); /* ended once: free again */
  th_settle(e, 300);
  th_engine_free(e);
  assert_int_equal(th_sql_i64(dsn, "SELECT count(*) FROM goal_ends"), 1);
  assert_int_equal(th_sql_i64(dsn, "SELECT count(*) FROM goal_levels"), 1);
  assert_int_equal(th_tally_check(dsn), 0);
}

static void append_env(const char *name, const char *value, const char *sep) {
  const char *old = getenv(name);
  char buf[2048];
  if (old && old[0]) snprintf(buf, sizeof buf, "%s%s%s", value, sep, old);
  else snprintf(buf, sizeof buf, "%s", value);
  setenv(name, buf, 1);
}

/* Re-executes this binary with the preload; returns only if it cannot. */
static void reexec_under_faketime(char **argv) {
  const char *lib = th_libfaketime();
  if (!lib) {
    printf("1..0 # SKIP goals F9: libfaketime.so.1 not found (Debian package faketime; `make deps` installs it)\n");
    exit(0);
  }
  const char *tmp = getenv("TALLY_TMP");
  snprintf(clock_file, sizeof clock_file, "%s/goals-clock-%d", tmp ? tmp : "/tmp", (int)getpid());
  FILE *f = fopen(clock_file, "w");
  if (!f || fprintf(f, "+0\n") < 0 || fclose(f)) {
    perror(clock_file);
    exit(1);
  }
  append_env("LD_PRELOAD", lib, ":");
  setenv("FAKETIME_TIMESTAMP_FILE", clock_file, 1);
  setenv("FAKETIME_NO_CACHE", "1", 1);
  setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
  setenv("TZ", "UTC", 1);
  const char *asan = getenv("ASAN_OPTIONS");
  char opts[1024];
  snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "", asan && asan[0] ? ":" : "");
  setenv("ASAN_OPTIONS", opts, 1);
  setenv(UNDER_FAKETIME, clock_file, 1);
  fflush(NULL);
  execv("/proc/self/exe", argv);
  perror("execv /proc/self/exe");
  exit(1);
}

int main(int argc, char **argv) {
  (void)argc;
  const char *file = getenv(UNDER_FAKETIME);
  if (!file) reexec_under_faketime(argv);
  snprintf(clock_file, sizeof clock_file, "%s", file);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_level_timer_ignores_wall_clock_jumps),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  unlink(clock_file);
  return rc;
}
