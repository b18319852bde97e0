/* test_admin.c — the public admin and bench headers (tally/admin.h,
 * tally/bench.h) give the CLI and the bench what they took from core's
 * private headers before, with the same results: the raffle order is the
 * engine's step-by-step Fisher-Yates, amounts parse and format as text.h
 * does, and a bad token or an over-long name is refused, not asserted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raffle.h"
#include "tally/admin.h"
#include "tally/bench.h"

static void test_amounts(void **state) {
  (void)state;
  int64_t v = 0;
  assert_int_equal(tally_admin_amount_parse("5.25", 4, 2, &v), TALLY_OK);
  assert_int_equal(v, 525);
  assert_int_equal(tally_admin_amount_parse("0", 1, 2, &v), TALLY_EBAD_AMOUNT);
  assert_int_equal(tally_admin_amount_parse(NULL, 0, 2, &v), TALLY_EINVAL);
  char out[32];
  assert_int_equal(tally_admin_amount_format(525, 2, out, sizeof out), 4);
  assert_string_equal(out, "5.25");
}

/* The order the CLI prints is the order the engine walks one step at a time. */
static void test_raffle_order_matches_engine(void **state) {
  (void)state;
  const char *names[] = {"user:a", "user:b", "user:c", "user:d", "user:e", "user:f", "user:g"};
  enum { N = sizeof names / sizeof names[0] };
  uint8_t seed[32], hash[32], want_hash[32];
  for (int i = 0; i < 32; i++) seed[i] = (uint8_t)(i * 7 + 1);
  uint32_t order[N], want[N];
  assert_int_equal(tally_admin_raffle_order(42, seed, names, N, hash, order), TALLY_OK);

  tally__raffle_hasher *h = tally__raffle_hash_begin(42, N);
  for (int i = 0; i < N; i++) tally__raffle_hash_add(h, names[i]);
  assert_int_equal(tally__raffle_hash_end(h, want_hash), TALLY_OK);
  assert_memory_equal(hash, want_hash, 32);
  tally__raffle_rng rng;
  tally__raffle_rng_init(&rng, seed, want_hash);
  for (uint32_t i = 0; i < N; i++) want[i] = i;
  for (uint32_t i = 0; i < N; i++) tally__raffle_step(&rng, want, N, i);
  assert_memory_equal(order, want, sizeof want);

  uint8_t c1[32], c2[32];
  tally_admin_raffle_commitment(seed, c1);
  tally__raffle_commitment(seed, c2);
  assert_memory_equal(c1, c2, 32);
}

/* Names come from the ledger: one the hash format cannot hold is refused. */
static void test_raffle_refuses_long_name(void **state) {
  (void)state;
  size_t len = (size_t)UINT16_MAX + 1;
  char *big = malloc(len + 1);
  assert_non_null(big);
  memset(big, 'x', len);
  big[len] = '\0';
  const char *names[] = {"user:a", big};
  uint8_t seed[32] = {0}, hash[32];
  uint32_t order[2];
  assert_int_equal(tally_admin_raffle_order(1, seed, names, 2, hash, order), TALLY_EINVAL);
  assert_int_equal(tally_admin_raffle_order(1, seed, NULL, 2, hash, order), TALLY_EINVAL);
  free(big);
}

static void test_receipt_token_refused(void **state) {
  (void)state;
  tally_admin_receipt *r = (tally_admin_receipt *)1;
  assert_int_equal(tally_admin_receipt_decode("tr1.AAAA", 8, &r), TALLY_EFRAME);
  assert_null(r);
  assert_int_equal(tally_admin_receipt_decode(NULL, 0, &r), TALLY_EINVAL);
  tally_admin_receipt_free(NULL);
}

static void test_bench_decide(void **state) {
  (void)state;
  double dt = -1;
  assert_int_equal(tally_bench_decide(1000, &dt), TALLY_OK);
  assert_true(dt >= 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_amounts),
      cmocka_unit_test(test_raffle_order_matches_engine),
      cmocka_unit_test(test_raffle_refuses_long_name),
      cmocka_unit_test(test_receipt_token_refused),
      cmocka_unit_test(test_bench_decide),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
