/* test_names.c — the interned names table (core/src/model/names.c): one
 * handle per (space, bytes), references counted, names without references
 * readable until compaction and then forgotten with their bytes
 * reclaimed, handles stable across compaction, and its budgets (bytes,
 * names, the reserve kept names leave) refused as TALLY_ENAMES_FULL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "names.h"
#include "tally.h"

static void test_intern_and_spaces(void **state) {
  (void)state;
  tally__names t;
  assert_int_equal(tally__names_init(&t, 4096, 64), TALLY_OK);
  uint32_t a, b, c, d;
  assert_int_equal(tally__names_intern(&t, 0, "#live", 5, &a), TALLY_OK);
  assert_int_equal(tally__names_intern(&t, 0, "#live", 5, &b), TALLY_OK);
  assert_int_equal(tally__names_intern(&t, 1, "#live", 5, &c), TALLY_OK); /* another network */
  assert_int_equal(tally__names_intern(&t, 0, "", 0, &d), TALLY_OK);
  assert_int_equal(a, b);
  assert_true(a != c && a != 0 && c != 0);
  assert_int_equal(d, 0);
  assert_string_equal(tally__names_str(&t, a), "#live");
  assert_string_equal(tally__names_str(&t, 0), "");
  assert_int_equal(tally__names_find(&t, 1, "#live", 5), c);
  assert_int_equal(tally__names_find(&t, 2, "#live", 5), 0);
  tally__names_free(&t);
}

static void test_forget_and_compact(void **state) {
  (void)state;
  tally__names t;
  assert_int_equal(tally__names_init(&t, 1024, 64), TALLY_OK);
  uint32_t h[8];
  char s[32];
  for (int i = 0; i < 8; i++) {
    snprintf(s, sizeof s, "origin-%d", i);
    assert_int_equal(tally__names_intern(&t, 0, s, strlen(s), &h[i]), TALLY_OK);
  }
  for (int i = 0; i < 8; i += 2) tally__names_unref(&t, h[i]);
  /* Without references, still readable and found again until compaction. */
  assert_string_equal(tally__names_str(&t, h[2]), "origin-2");
  uint32_t again;
  assert_int_equal(tally__names_intern(&t, 0, "origin-2", 8, &again), TALLY_OK);
  assert_int_equal(again, h[2]);
  size_t before = t.bytes_top;
  tally__names_compact(&t);
  assert_true(t.bytes_top < before);
  for (int i = 1; i < 8; i += 2) {
    snprintf(s, sizeof s, "origin-%d", i);
    assert_string_equal(tally__names_str(&t, h[i]), s); /* handles kept, bytes moved */
  }
  assert_string_equal(tally__names_str(&t, h[2]), "origin-2");
  assert_int_equal(tally__names_find(&t, 0, "origin-0", 8), 0); /* forgotten */
  assert_int_equal(t.live, 5);
  tally__names_free(&t);
}

static void test_budgets(void **state) {
  (void)state;
  tally__names t;
  assert_int_equal(tally__names_init(&t, 1024, 1000), TALLY_OK);
  char big[400];
  memset(big, 'x', sizeof big);
  uint32_t h, k;
  /* Kept names stop at 7/8 of the budget: 2 x 416 bytes fit, a third not. */
  big[0] = 'a';
  assert_int_equal(tally__names_intern_kept(&t, 0, big, sizeof big, &h), TALLY_OK);
  big[0] = 'b';
  assert_int_equal(tally__names_intern_kept(&t, 0, big, sizeof big, &h), TALLY_OK);
  big[0] = 'c';
  assert_int_equal(tally__names_intern_kept(&t, 0, big, sizeof big, &h), TALLY_ENAMES_FULL);
  /* The reserve still takes names to answer... */
  assert_int_equal(tally__names_intern(&t, 1, "uuid-1", 6, &k), TALLY_OK);
  /* ...until the bytes are spent. */
  assert_int_equal(tally__names_intern(&t, 1, big, 150, &h), TALLY_OK);
  assert_int_equal(tally__names_intern(&t, 2, big, 150, &h), TALLY_ENAMES_FULL);
  /* Given back and compacted, the bytes serve again. */
  tally__names_unref(&t, k);
  tally__names_unref(&t, h);
  assert_true(tally__names_tidy(&t));
  assert_int_equal(tally__names_intern(&t, 2, big, 150, &h), TALLY_OK);
  tally__names_free(&t);
  /* The count of names is a budget too. */
  assert_int_equal(tally__names_init(&t, 65536, 3), TALLY_OK);
  for (int i = 0; i < 3; i++) assert_int_equal(tally__names_intern(&t, (uint16_t)i, "n", 1, &h), TALLY_OK);
  assert_int_equal(tally__names_intern(&t, 9, "n", 1, &h), TALLY_ENAMES_FULL);
  tally__names_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_intern_and_spaces),
      cmocka_unit_test(test_forget_and_compact),
      cmocka_unit_test(test_budgets),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
