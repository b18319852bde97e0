/* test_tallyd_tables.c — tallyd's two hash tables against brute-force
 * models, with random operations: the presence merge (presence.c: a JOIN
 * to the engine exactly on 0 -> 1 across slots, a PART exactly on 1 -> 0,
 * a full table refuses, a slot's withdrawal) and the unanswered-commands
 * table (pending.c: linear probing with backward-shift deletion). Linked
 * with those two objects of tallyd only; td_slot_push is stubbed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../tallyd/tallyd.h"

/* ---- stub: pending.c answers into a slot ------------------------------------ */
static int pushed;
void td_slot_push(td_daemon *d, td_slot *s, const tally_effect *e, const char *origin) {
  (void)d;
  (void)s;
  /* The names kept with a command are its own (the model names each id). */
  char want[32];
  snprintf(want, sizeof want, "o%llu", (unsigned long long)(e->req_id / 977));
  assert_string_equal(origin, want);
  assert_string_equal(e->origin, want);
  assert_string_equal(e->channel, "#c");
  pushed++;
}

/* ---- presence ---------------------------------------------------------------- */
enum { SLOTS = 4, ACCOUNTS = 6, ROOMS = 3, MAX = 40 };
static int model[SLOTS][ACCOUNTS][ROOMS]; /* reported by slot */
static int told[ACCOUNTS][ROOMS];         /* what the engine was told: 1 present */
static int calls;

static void on_change(void *ud, const char *network, const char *account, const char *room, int present) {
  (void)ud;
  assert_string_equal(network, "libera");
  int a = account[1] - '0', r = room[2] - '0';
  assert_int_not_equal(told[a][r], present); /* only transitions are told */
  told[a][r] = present;
  calls++;
}

static int refs(int a, int r) {
  int n = 0;
  for (int s = 0; s < SLOTS; s++) n += model[s][a][r];
  return n;
}

static int pairs(void) {
  int n = 0;
  for (int s = 0; s < SLOTS; s++)
    for (int a = 0; a < ACCOUNTS; a++)
      for (int r = 0; r < ROOMS; r++) n += model[s][a][r];
  return n;
}

static void check_all(td_presence *p) {
  assert_int_equal(td_presence_count(p), pairs());
  for (int a = 0; a < ACCOUNTS; a++)
    for (int r = 0; r < ROOMS; r++) assert_int_equal(told[a][r], refs(a, r) > 0);
}

static void test_presence_model(void **state) {
  (void)state;
  td_presence *p = td_presence_new(MAX);
  assert_non_null(p);
  srand(11);
  int refusals = 0;
  for (int step = 0; step < 20000; step++) {
    int s = rand() % SLOTS, a = rand() % ACCOUNTS, r = rand() % ROOMS, op = rand() % 50;
    char acct[8], room[8];
    snprintf(acct, sizeof acct, "a%d", a);
    snprintf(room, sizeof room, "#r%d", r);
    if (op == 0) { /* the slot expires */
      td_presence_withdraw(p, (uint32_t)s + 1, on_change, NULL);
      memset(model[s], 0, sizeof model[s]);
    } else {
      int present = op < 30; /* joins outnumber parts: the table fills */
      int rc = td_presence_report(p, (uint32_t)s + 1, "libera", acct, room, present, on_change, NULL);
      if (rc == TALLY_ETOO_MANY) {
        /* Refused only when full and the report is new. */
        assert_true(present && !model[s][a][r] && pairs() >= MAX);
        refusals++;
      } else {
        assert_int_equal(rc, TALLY_OK);
        model[s][a][r] = present;
      }
    }
    check_all(p);
  }
  /* Replay names exactly the members of a room. */
  int before = calls;
  memset(told, 0, sizeof told); /* replay says "present" for each: count them */
  td_presence_replay(p, "libera", "#r1", on_change, NULL);
  int members = 0;
  for (int a = 0; a < ACCOUNTS; a++) members += refs(a, 1) > 0;
  assert_int_equal(calls - before, members);
  td_presence_free(p);
  assert_true(refusals > 0); /* the bound was reached */
}

/* ---- pending ------------------------------------------------------------------ */
static void test_pending_model(void **state) {
  (void)state;
  static td_daemon d;
  td_slot s;
  memset(&s, 0, sizeof s);
  d.cfg.slot_effects_max = 400; /* 256 places at first, then 512, then 1024 at most */
  enum { IDS = 2000 };
  static int want[IDS];
  srand(7);
  int live = 0, grown = 0, busy = 0;
  for (int step = 0; step < 100000; step++) {
    int id = rand() % IDS;
    if (rand() % 8 < (step < 50000 ? 5 : 4)) { /* fills, then hovers at the bound */
      char origin[32];
      snprintf(origin, sizeof origin, "o%d", id);
      int rc = td_pending_add(&d, &s, (uint64_t)id * 977, origin, "#c");
      if (rc == TALLY_OK) {
        live += want[id] == 0;
        want[id]++;
      } else {
        busy++;
        assert_int_equal(rc, TALLY_EBUSY);
        assert_true(live + 1 >= 768);
        assert_int_equal(s.pend_cap, 1024);
      }
    } else if (want[id]) {
      td_pending_done(&s, (uint64_t)id * 977);
      want[id]--;
      live -= want[id] == 0;
    } else {
      td_pending_done(&s, (uint64_t)id * 977); /* unknown: nothing happens */
    }
    assert_int_equal(s.pend_count, live);
    assert_int_equal(s.pend_count + s.pend_free_count, s.pend_cap); /* a name place per entry */
    grown |= s.pend_cap > 256;
  }
  assert_true(grown);
  assert_true(busy > 0);
  pushed = 0;
  td_pending_answer_all(&d, &s, TALLY_ESTATE, "stopped");
  assert_int_equal(pushed, live); /* each unanswered req_id answered once */
  assert_int_equal(s.pend_count, 0);
  td_pending_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_presence_model),
      cmocka_unit_test(test_pending_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
