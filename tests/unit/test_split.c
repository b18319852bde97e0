/* test_split.c — largest-remainder splits and proportional refunds: over
 * many odd amounts, shares and refund sequences, no unit is created or
 * lost, no part is negative, and a full refund returns every share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "split.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(uint64_t n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state % n;
}

static void test_apportion_examples(void **state) {
  (void)state;
  int64_t w[3] = {3333, 3333, 3334}, p[3];
  tally__apportion(98, w, 3, p);
  assert_int_equal(p[0], 33); /* remainders .66, .66, .67: dave, then the first listed */
  assert_int_equal(p[1], 32);
  assert_int_equal(p[2], 33);
  int64_t half[2] = {5000, 5000};
  tally__apportion(1, half, 2, p);
  assert_int_equal(p[0], 1); /* a tie goes to the one listed first */
  assert_int_equal(p[1], 0);
  tally__apportion(0, half, 2, p);
  assert_int_equal(p[0] + p[1], 0);
  int64_t big[2] = {1, 9999};
  tally__apportion(INT64_C(1) << 62, big, 2, p); /* no overflow at the money supply bound */
  assert_int_equal(p[0] + p[1], INT64_C(1) << 62);
}

static void test_apportion_sums_exactly(void **state) {
  (void)state;
  for (int round = 0; round < 200000; round++) {
    uint32_t n = 1 + (uint32_t)rnd(TALLY__PAYEES_MAX);
    int64_t w[TALLY__PAYEES_MAX], p[TALLY__PAYEES_MAX], whole = 0;
    for (uint32_t i = 0; i < n; i++) whole += w[i] = 1 + (int64_t)rnd(10000);
    int64_t amount = (int64_t)rnd(round % 2 ? 1000 : 1000000007);
    tally__apportion(amount, w, n, p);
    int64_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
      /* within one unit of the exact share */
      __int128 exact = (__int128)amount * w[i];
      assert_true((__int128)p[i] * whole <= exact + whole && (__int128)p[i] * whole >= exact - whole);
      assert_true(p[i] >= 0);
      sum += p[i];
    }
    assert_int_equal(sum, amount);
  }
}

static void test_refunds_in_parts_return_every_share(void **state) {
  (void)state;
  for (int round = 0; round < 50000; round++) {
    uint32_t n = 1 + (uint32_t)rnd(TALLY__PAYEES_MAX);
    int64_t credit[TALLY__PAYEES_MAX], returned[TALLY__PAYEES_MAX] = {0}, total = 0;
    for (uint32_t i = 0; i < n; i++) total += credit[i] = (int64_t)rnd(round % 3 ? 50 : 100000);
    if (total == 0) continue;
    int64_t refunded = 0;
    while (refunded < total) {
      int64_t left = total - refunded;
      int64_t amount = rnd(4) == 0 ? left : 1 + (int64_t)rnd((uint64_t)left);
      int64_t parts[TALLY__PAYEES_MAX], sum = 0;
      assert_int_equal(tally__apportion_refund(credit, returned, n, total, refunded, amount, parts), 0);
      for (uint32_t i = 0; i < n; i++) {
        assert_true(parts[i] >= 0);
        returned[i] += parts[i];
        assert_true(returned[i] <= credit[i]);
        sum += parts[i];
      }
      assert_int_equal(sum, amount);
      refunded += amount;
    }
    for (uint32_t i = 0; i < n; i++) assert_int_equal(returned[i], credit[i]);
  }
}

/* Records rebuilt from the ledger that do not add up are refused, never
 * asserted on (issue 9 #1: a buyer who was also a payee had a negative
 * "returned" after a restart, and the next refund aborted). */
static void test_refund_of_a_record_that_does_not_add_up_is_refused(void **state) {
  (void)state;
  int64_t credit[3] = {49, 49, 2}, parts[3];
  int64_t negative[3] = {0, -99, 0}, over[3] = {50, 0, 0}, fine[3] = {1, 0, 0};
  assert_int_equal(tally__apportion_refund(credit, negative, 3, 100, 1, 1, parts), TALLY__SPLIT_EINCONSISTENT);
  assert_int_equal(tally__apportion_refund(credit, over, 3, 100, 50, 1, parts), TALLY__SPLIT_EINCONSISTENT);
  /* returns that do not sum to what was refunded, credits not to the total */
  assert_int_equal(tally__apportion_refund(credit, fine, 3, 100, 2, 1, parts), TALLY__SPLIT_EINCONSISTENT);
  assert_int_equal(tally__apportion_refund(credit, fine, 3, 101, 1, 1, parts), TALLY__SPLIT_EINCONSISTENT);
  /* more than is left, nothing, no payee, too many payees */
  assert_int_equal(tally__apportion_refund(credit, fine, 3, 100, 1, 100, parts), TALLY__SPLIT_EINCONSISTENT);
  assert_int_equal(tally__apportion_refund(credit, fine, 3, 100, 1, 0, parts), TALLY__SPLIT_EINCONSISTENT);
  assert_int_equal(tally__apportion_refund(credit, fine, 0, 100, 1, 1, parts), TALLY__SPLIT_EINCONSISTENT);
  assert_int_equal(tally__apportion_refund(credit, fine, TALLY__PAYEES_MAX + 1, 100, 1, 1, parts),
                   TALLY__SPLIT_EINCONSISTENT);
  int64_t huge[2] = {INT64_MAX, INT64_MAX}, none[2] = {0, 0};
  assert_int_equal(tally__apportion_refund(huge, none, 2, 100, 0, 1, parts), TALLY__SPLIT_EINCONSISTENT);
  assert_int_equal(tally__apportion_refund(credit, fine, 3, 100, 1, 99, parts), 0);
  assert_int_equal(parts[0] + parts[1] + parts[2], 99);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_apportion_examples),
      cmocka_unit_test(test_apportion_sums_exactly),
      cmocka_unit_test(test_refunds_in_parts_return_every_share),
      cmocka_unit_test(test_refund_of_a_record_that_does_not_add_up_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
