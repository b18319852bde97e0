/* test_quiz_match.c — when a quiz answer is right (features/quiz/quiz_match.h):
 * Unicode folding (case, then NFKD without marks), trimming, and the
 * tolerance of floor(code points / 8) optimal-string-alignment edits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "quiz_match.h"
#include "tally.h"

static uint32_t dist(const char *a, const char *b) {
  int32_t x[TALLY__QUIZ_MATCH_CP_MAX], y[TALLY__QUIZ_MATCH_CP_MAX];
  size_t nx, ny;
  assert_int_equal(tally__quiz_fold(a, strlen(a), x, &nx), TALLY_OK);
  assert_int_equal(tally__quiz_fold(b, strlen(b), y, &ny), TALLY_OK);
  return tally__quiz_distance(x, nx, y, ny);
}

static void test_folding_by_unicode_rules(void **state) {
  (void)state;
  assert_true(tally__quiz_match("Café", "CAFE"));
  assert_true(tally__quiz_match("CAFE", "Café"));
  assert_true(tally__quiz_match("Straße", "STRASSE"));
  assert_true(tally__quiz_match("STRASSE", "straße"));
  /* é as one code point and as e + combining acute are the same answer. */
  assert_true(tally__quiz_match("cafe\xcc\x81", "caf\xc3\xa9"));
  /* Compatibility forms: the fi ligature, full-width letters. */
  assert_true(tally__quiz_match("\xef\xac\x81sh", "FISH"));
  assert_true(tally__quiz_match("\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3", "abc"));
  int32_t cps[TALLY__QUIZ_MATCH_CP_MAX];
  size_t n;
  assert_int_equal(tally__quiz_fold("  Ça  va ", 9, cps, &n), TALLY_OK);
  assert_int_equal(n, 5); /* "ca va": trimmed, one inner space, no cedilla */
  assert_int_equal(cps[0], 'c');
  assert_int_equal(cps[2], ' ');
}

static void test_trimming_and_spaces(void **state) {
  (void)state;
  assert_true(tally__quiz_match("   paris  ", "Paris"));
  assert_true(tally__quiz_match("new   york", "New York"));
  assert_false(tally__quiz_match("   ", "Paris"));
  assert_false(tally__quiz_match("", "Paris"));
}

static void test_distance_is_optimal_string_alignment(void **state) {
  (void)state;
  assert_int_equal(dist("kitten", "sitting"), 3);
  assert_int_equal(dist("abc", "abc"), 0);
  assert_int_equal(dist("abcd", "abdc"), 1); /* a swap of neighbours is one edit */
  assert_int_equal(dist("ca", "abc"), 3);    /* OSA, not Damerau: no substring edited twice */
  assert_int_equal(dist("", "abc"), 3);
  assert_int_equal(dist("abc", ""), 3);
}

static void test_tolerance_is_floor_of_an_eighth(void **state) {
  (void)state;
  /* 7 code points: no edit tolerated. */
  assert_true(tally__quiz_match("mercury", "Mercury"));
  assert_false(tally__quiz_match("mercyry", "Mercury"));
  /* 8 code points: one edit (a typo, a swap, a letter missing or extra). */
  assert_true(tally__quiz_match("Jupiter", "Jupiters"));  /* one missing */
  assert_true(tally__quiz_match("Jupitres", "Jupiters")); /* one swap */
  assert_false(tally__quiz_match("Jupitre", "Jupiters")); /* a swap and one missing: two */
}

static void test_typo_accepted_wrong_word_refused(void **state) {
  (void)state;
  /* "Amsterdam" is 9 code points: one edit allowed. */
  assert_true(tally__quiz_match("Amsterdan", "Amsterdam"));
  assert_true(tally__quiz_match("Amstredam", "Amsterdam")); /* swap */
  assert_true(tally__quiz_match("Amsterdamm", "Amsterdam")); /* one extra */
  assert_false(tally__quiz_match("Amstrdan", "Amsterdam")); /* two edits */
  assert_false(tally__quiz_match("Rotterdam", "Amsterdam"));
  /* 16 code points: two edits. */
  assert_true(tally__quiz_match("constantinopel", "Constantinople"));
  assert_false(tally__quiz_match("Istanbul", "Constantinople"));
}

static void test_bad_and_long_input(void **state) {
  (void)state;
  assert_false(tally__quiz_match("\xff\xfe", "abc"));
  int32_t cps[TALLY__QUIZ_MATCH_CP_MAX];
  size_t n;
  assert_int_equal(tally__quiz_fold("\xc3", 1, cps, &n), TALLY_EBAD_UTF8);
  char longer[TALLY__QUIZ_MATCH_CP_MAX + 2];
  memset(longer, 'a', sizeof longer - 1);
  longer[sizeof longer - 1] = 0;
  assert_int_equal(tally__quiz_fold(longer, strlen(longer), cps, &n), TALLY_ETOOBIG);
  assert_false(tally__quiz_match(longer, longer)); /* never right, never read past the limit */
  longer[TALLY__QUIZ_MATCH_CP_MAX] = 0; /* exactly at the limit: fine */
  assert_true(tally__quiz_match(longer, longer));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_folding_by_unicode_rules),
      cmocka_unit_test(test_trimming_and_spaces),
      cmocka_unit_test(test_distance_is_optimal_string_alignment),
      cmocka_unit_test(test_tolerance_is_floor_of_an_eighth),
      cmocka_unit_test(test_typo_accepted_wrong_word_refused),
      cmocka_unit_test(test_bad_and_long_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
