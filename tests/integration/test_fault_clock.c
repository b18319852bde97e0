/* test_fault_clock.c — F9: the wall clock jumps (±1 h, ±1 day) while many
 * buyers buy at once.
 *
 * The test re-executes itself under libfaketime (Debian package faketime):
 * LD_PRELOAD with FAKETIME_TIMESTAMP_FILE re-read on every call
 * (FAKETIME_NO_CACHE=1), so writing the file moves CLOCK_REALTIME at once,
 * and FAKETIME_DONT_FAKE_MONOTONIC=1, because a real wall-clock step does
 * not move CLOCK_MONOTONIC. PostgreSQL runs unfaked, as a separate host's
 * clock would. Under ASan the preload also needs verify_asan_link_order=0.
 *
 *   test_f9_jumps_under_buying: a drop scheduled to open 2 s after it is
 *     created and to close 4 s later, jumps of +1 h, -1 day, +1 day, -1 h
 *     before and inside its window, buyers buying all along. The drop opens
 *     and closes on the monotonic clock; no buy is lost or doubled; every
 *     receipt is in the ledger; `tally check` passes.
 *   test_f9_daily_cap_across_jumps: what the daily spend cap does. It counts
 *     per UTC day of the engine's wall clock, and the count belongs to the
 *     latest day seen: a jump back (inside the day or across midnight) keeps
 *     that day's total, so a clock set back never reopens a day; a jump
 *     forward to a new day starts at zero; a restart rebuilds the same
 *     count from the ledger (the latest day with spending).
 * See docs/RELIABILITY.md. */
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
#include "load.h"

#define UNDER_FAKETIME "TALLY_F9_UNDER_FAKETIME"

static th_fault_fx F;
static char clock_file[512];

static int teardown(void **state) {
  (void)state;
  th_fault_fx_free(&F);
  return 0;
}

/* Moves the engine host's wall clock: libfaketime's syntax ("+1h", "-1d",
 * "+0" relative to the real clock, "2030-01-15 12:00:00" frozen). Written
 * aside and renamed, so a reader never sees half a line. */
static void clock_set(const char *spec) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.new", clock_file);
  FILE *f = fopen(tmp, "w");
  assert_non_null(f);
  fprintf(f, "%s\n", spec);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(rename(tmp, clock_file), 0);
}

static int64_t wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec;
}

/* ---- jumps under buying ------------------------------------------------------- */
/* SLACK_MS: how far from its time a window edge may be seen. A timer on the
 * wall clock would be off by an hour or a day; the slack only absorbs the
 * 20 ms tick and a loaded machine (make test runs on both cores). */
enum { BUYERS = 20, OPEN_MS = 2000, WINDOW_MS = 4000, RUN_MS = 7500, SLACK_MS = 500 };

typedef struct jump {
  int at_ms;
  const char *spec;
} jump;

/* Before the window: a timer on the wall clock would open at once after
 * +1 h, or a day late after -1 day. Inside it: it would close at once after
 * +1 day. */
static const jump jumps[] = {{500, "+1h"}, {1200, "-1d"}, {2800, "+1d"}, {4200, "-1h"}, {6600, "+0"}};

/* A copy of L holding only the requests marked in `pick`, for th_load_check
 * on one sku. */
static th_load only(const th_load *L, const char *pick, char want) {
  th_load o = *L;
  o.reqs = calloc((size_t)L->n + 1, sizeof *o.reqs);
  assert_non_null(o.reqs);
  o.n = 0;
  for (int i = 0; i < L->n; i++)
    if (pick[i] == want) o.reqs[o.n++] = L->reqs[i];
  return o;
}

static void test_f9_jumps_under_buying(void **state) {
  (void)state;
  clock_set("+0");
  th_fresh_db("f9", F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.e = th_engine(&F.cfg);
  th_load_init(&F.L, F.e, 20000);
  assert_int_equal(th_load_shop(&F.L, BUYERS, 1000000, 100000), 0);
  /* The drop is created at +1 h, so its stored wall times are an hour
   * ahead; only the monotonic timers seeded from them may count. */
  clock_set("+1h");
  th_reply r;
  char text[96];
  snprintf(text, sizeof text, "DROP CREATE flash 10000 1 start=+%ds for=%ds", OPEN_MS / 1000, WINDOW_MS / 1000);
  int64_t t0 = th_now_ms();
  assert_int_equal(th_cmd_in(F.e, "host", "#live", text, TALLY_ROLE_CHANOP, &r), TALLY_OK);
  clock_set("+0");

  char *is_flash = calloc((size_t)F.L.cap, 1);
  assert_non_null(is_flash);
  size_t next_jump = 0;
  for (int k = 0; th_now_ms() - t0 < RUN_MS && F.L.n < F.L.cap; k++) {
    int64_t t = th_now_ms() - t0;
    if (next_jump < sizeof jumps / sizeof jumps[0] && t >= jumps[next_jump].at_ms) {
      clock_set(jumps[next_jump].spec);
      fprintf(stderr, "f9: %lld ms: wall clock %s\n", (long long)t, jumps[next_jump].spec);
      next_jump++;
    }
    char who[16];
    snprintf(who, sizeof who, "b%d", k % BUYERS);
    int flash = k % 4 == 0;
    int i = th_load_send(&F.L, who, flash ? "BUY flash" : "BUY tee", NULL, 0);
    is_flash[i] = flash ? 'f' : 't';
    th_load_pump(&F.L, 4);
  }
  assert_int_equal(next_jump, sizeof jumps / sizeof jumps[0]);
  assert_int_equal(th_load_wait(&F.L, 30000), 0);

  /* The window, from the answers. A refusal is decided at or after its
   * send; "not live" sent at s proves the drop was closed at s, a receipt
   * sent at s proves it was live at some time >= s, "closed" answered at a
   * proves it had closed by a. */
  int64_t last_not_live_sent = -1, last_not_live_answer = -1, first_ok_sent = -1, last_ok_sent = -1,
          first_closed_answer = -1;
  int flash_ok = 0, flash_not_live = 0, flash_closed = 0, tee_ok = 0, tee_n = 0;
  for (int i = 0; i < F.L.n; i++) {
    const th_req *q = &F.L.reqs[i];
    int64_t s = q->sent_ms - t0, a = q->answered_ms - t0;
    if (is_flash[i] == 't') {
      tee_n++;
      tee_ok += q->final_code == TALLY_OK && q->receipt;
      continue;
    }
    if (is_flash[i] != 'f') continue;
    if (q->final_code == TALLY_EDROP_NOT_LIVE) {
      flash_not_live++;
      if (s > last_not_live_sent) last_not_live_sent = s;
      if (a > last_not_live_answer) last_not_live_answer = a;
    } else if (q->final_code == TALLY_OK && q->receipt) {
      flash_ok++;
      if (first_ok_sent < 0) first_ok_sent = s;
      if (s > last_ok_sent) last_ok_sent = s;
    } else if (q->final_code == TALLY_EDROP_CLOSED) {
      flash_closed++;
      if (first_closed_answer < 0 || a < first_closed_answer) first_closed_answer = a;
    } else {
      fail_msg("flash buy %d: %s: %s", i, tally_err_name(q->final_code), q->text);
    }
  }
  fprintf(stderr,
          "f9: tee %d/%d receipts; flash: %d not live (last sent %lld ms, answered %lld ms), %d receipts"
          " (sent %lld..%lld ms), %d closed (first answered %lld ms); window [%d, %d] ms\n",
          tee_ok, tee_n, flash_not_live, (long long)last_not_live_sent, (long long)last_not_live_answer, flash_ok,
          (long long)first_ok_sent, (long long)last_ok_sent, flash_closed, (long long)first_closed_answer, OPEN_MS,
          OPEN_MS + WINDOW_MS);
  /* Opened neither early (after +1 h) nor late (after -1 day). */
  assert_true(last_not_live_sent >= OPEN_MS - SLACK_MS);
  assert_true(last_not_live_answer <= OPEN_MS + SLACK_MS);
  /* Closed neither early (after +1 day) nor late. */
  assert_true(first_ok_sent >= OPEN_MS - SLACK_MS && first_ok_sent <= OPEN_MS + SLACK_MS);
  assert_true(last_ok_sent >= OPEN_MS + WINDOW_MS - SLACK_MS);
  assert_true(first_closed_answer >= OPEN_MS + WINDOW_MS - SLACK_MS);
  assert_true(first_closed_answer <= OPEN_MS + WINDOW_MS + SLACK_MS);
  /* Every plain buy got its receipt through all the jumps. */
  assert_int_equal(tee_ok, tee_n);

  th_load_stop_engine(&F.L);
  th_ledger_report rt, rf;
  th_load tee = only(&F.L, is_flash, 't'), fl = only(&F.L, is_flash, 'f');
  int rc_tee = th_load_check(&tee, F.dsn, "tee", &rt, "f9 tee");
  int rc_flash = th_load_check(&fl, F.dsn, "flash", &rf, "f9 flash");
  th_load_free(&tee);
  th_load_free(&fl);
  free(is_flash);
  assert_int_equal(rc_tee, 0);
  assert_int_equal(rc_flash, 0);
  assert_int_equal(rt.ledger_rows, tee_n);
  assert_int_equal(rf.ledger_rows, flash_ok);
  th_engine_free(F.e);
  F.e = NULL;
  assert_int_equal(th_tally_check(F.dsn), 0);
}

/* ---- the daily cap ----------------------------------------------------------- */
static int buy(const char *who) {
  th_reply r;
  return th_cmd(F.e, who, "BUY tee", 0, &r);
}

/* Buys until refused; returns the receipts and the refusal in *why. */
static int buy_until_refused(int *why) {
  for (int n = 0; n < 100; n++) {
    int rc = buy("b0");
    if (rc != TALLY_OK) {
      *why = rc;
      return n;
    }
  }
  *why = TALLY_OK;
  return 100;
}

static void test_f9_daily_cap_across_jumps(void **state) {
  (void)state;
  /* A frozen wall clock at noon of day D: day boundaries are exact. */
  clock_set("2030-01-15 12:00:00");
  assert_int_equal(wall_s(), 1894708800); /* the preload really moves the clock */
  th_fresh_db("f9cap", F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.daily_cap_minor = 500; /* 5.00 credits; a tee or a pin costs 1.00 */
  F.e = th_engine(&F.cfg);
  th_load_init(&F.L, F.e, 100);
  assert_int_equal(th_load_shop(&F.L, 1, 1000000, 1000), 0); /* b0 spent 1.00 on a pin */
  int why;
  assert_int_equal(buy_until_refused(&why), 4);
  assert_int_equal(why, TALLY_EOVER_CAP);
  /* Back one hour, same day: the day's total stands. */
  clock_set("2030-01-15 11:00:00");
  assert_int_equal(buy("b0"), TALLY_EOVER_CAP);
  /* Forward to the next day: a new count. */
  clock_set("2030-01-16 12:00:00");
  assert_int_equal(buy_until_refused(&why), 5);
  assert_int_equal(why, TALLY_EOVER_CAP);
  /* Back across midnight to day D: D+1's total stands; D does not reopen. */
  clock_set("2030-01-15 12:00:00");
  assert_int_equal(buy("b0"), TALLY_EOVER_CAP);
  /* The ledger holds what happened, dated by the engine's clock: 5.00 on
   * each day. */
  assert_int_equal(th_sql_i64(F.dsn, "SELECT sum(amount_minor) FROM transfers WHERE kind = 1"
                                     " AND created_ms < 1894752000000"),
                   500);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT sum(amount_minor) FROM transfers WHERE kind = 1"
                                     " AND created_ms >= 1894752000000"),
                   500);
  /* A restart on day D rebuilds the same count: D+1's 5.00, over the cap. */
  th_engine_free(F.e);
  F.e = th_engine(&F.cfg);
  F.L.e = F.e;
  assert_int_equal(buy("b0"), TALLY_EOVER_CAP);
  /* Forward to D+1 again: the same day, the same total. */
  clock_set("2030-01-16 12:00:00");
  assert_int_equal(buy("b0"), TALLY_EOVER_CAP);
  /* And on D+2 a new count. */
  clock_set("2030-01-17 12:00:00");
  assert_int_equal(buy_until_refused(&why), 5);
  assert_int_equal(why, TALLY_EOVER_CAP);
  th_engine_free(F.e);
  F.e = NULL;
  clock_set("+0");
  assert_int_equal(th_tally_check(F.dsn), 0);
}

/* ---- running under libfaketime --------------------------------------------------- */
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
    printf("1..0 # SKIP F9: libfaketime.so.1 not found (Debian package faketime; `make deps` installs it)\n");
    exit(0);
  }
  const char *tmp = getenv("TALLY_TMP");
  snprintf(clock_file, sizeof clock_file, "%s/f9-clock-%d", tmp ? tmp : "/tmp", (int)getpid());
  FILE *f = fopen(clock_file, "w");
  if (!f || fprintf(f, "+0\n") < 0 || fclose(f)) {
    perror(clock_file);
    exit(1);
  }
  append_env("LD_PRELOAD", lib, ":");
  setenv("FAKETIME_TIMESTAMP_FILE", clock_file, 1);
  setenv("FAKETIME_NO_CACHE", "1", 1);
  setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
  setenv("TZ", "UTC", 1); /* absolute times in the clock file are UTC */
  /* libasan is not first in the link order once something is preloaded. */
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
      cmocka_unit_test_teardown(test_f9_jumps_under_buying, teardown),
      cmocka_unit_test_teardown(test_f9_daily_cap_across_jumps, teardown),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  unlink(clock_file);
  return rc;
}
