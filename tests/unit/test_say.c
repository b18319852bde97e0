/* test_say.c — tally__sayf (core/src/base/say.c) writes exactly what
 * snprintf writes for the engine's conversions, records the span of each
 * conversion marked as an argument, and turns a sentence that does not fit
 * into text only; tally__say_args encodes what tally_effect_args_parse
 * decodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "say.h"

static void test_same_text_as_snprintf(void **state) {
  (void)state;
  tally__say s;
  tally__say_init(&s, TALLY_MSG_BOUGHT);
  tally__sayf(&s, "ntsmR-", "Bought %ux %s (%s) for %s. receipt %llu (batch %llu, signed)", 3u, "A <b>", "a-1",
              "1.50 credits", 18446744073709551615ull, 7ull);
  tally__sayf(&s, "", " - serials %u-%u of %d, %d%% %c %5.2s|%-4d|%lld", 1u, 3u, -4, 50, 'x', "abc", 7, -9ll);
  char want[TALLY_TEXT_BYTES_MAX + 1];
  snprintf(want, sizeof want, "Bought %ux %s (%s) for %s. receipt %llu (batch %llu, signed)"
           " - serials %u-%u of %d, %d%% %c %5.2s|%-4d|%lld", 3u, "A <b>", "a-1", "1.50 credits",
           18446744073709551615ull, 7ull, 1u, 3u, -4, 50, 'x', "abc", 7, -9ll);
  assert_string_equal(s.text, want);
  assert_int_equal(s.len, strlen(want));
  assert_int_equal(s.msg, TALLY_MSG_BOUGHT);
  assert_int_equal(s.count, 5);
  assert_int_equal(s.arg[0].kind, TALLY_ARG_COUNT);
  assert_int_equal(s.arg[0].value, 3);
  assert_int_equal(s.arg[1].kind, TALLY_ARG_TEXT);
  assert_memory_equal(s.text + s.arg[1].start, "A <b>", s.arg[1].len);
  assert_int_equal(s.arg[4].kind, TALLY_ARG_RECEIPT);
  assert_int_equal(s.arg[4].value, INT64_MAX); /* clamped: receipts are below 2^63 */
  tally__say_value(&s, 3, 150, 2);
  char args[TALLY_EFFECT_ARGS_BYTES_MAX + 1];
  tally__say_args(&s, args, sizeof args);
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  size_t n;
  assert_int_equal(tally_effect_args_parse(s.text, args, a, TALLY_EFFECT_ARGS_MAX, &n), TALLY_OK);
  assert_int_equal(n, 5);
  assert_memory_equal(a, s.arg, sizeof a[0] * n);
}

/* Cut text or too many arguments: text only, never a partial structure. */
static void test_lost_structure(void **state) {
  (void)state;
  tally__say s;
  char big[700];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  tally__say_init(&s, TALLY_MSG_TIP_THANKS);
  tally__sayf(&s, "at", "%s says %s", "bob", big);
  /* snprintf's cut: the first TALLY_TEXT_BYTES_MAX bytes */
  assert_int_equal(strlen(s.text), TALLY_TEXT_BYTES_MAX);
  assert_memory_equal(s.text, "bob says xxx", 12);
  assert_int_equal(s.msg, TALLY_MSG_TEXT);
  assert_int_equal(s.count, 0);
  char args[TALLY_EFFECT_ARGS_BYTES_MAX + 1];
  tally__say_args(&s, args, sizeof args);
  assert_string_equal(args, "");

  tally__say_init(&s, TALLY_MSG_TIP_THANKS);
  tally__sayf(&s, "aaaaaaaaa", "%s%s%s%s%s%s%s%s%s", "a", "b", "c", "d", "e", "f", "g", "h", "i");
  assert_string_equal(s.text, "abcdefghi");
  assert_int_equal(s.msg, TALLY_MSG_TEXT);

  /* A spliced piece whose marks would pass the limit. */
  tally__say_init(&s, TALLY_MSG_EVENT_ATTENDANCE);
  tally__say_marks m = {0};
  for (int i = 0; i < 9; i++) tally__say_mark(&m, TALLY_ARG_ACCOUNT, (size_t)i, 1, 0, 0);
  assert_true(m.over);
  tally__say_splice(&s, "abcdefghi", &m);
  assert_string_equal(s.text, "abcdefghi");
  assert_int_equal(s.msg, TALLY_MSG_TEXT);
}

/* tally__say_span: a span around text already appended (a command and its
 * sku) goes before the arguments inside it, so args stay in text order;
 * one argument too many: text only. */
static void test_span_around_arguments(void **state) {
  (void)state;
  tally__say s;
  tally__say_init(&s, TALLY_MSG_DROP_LIVE);
  tally__sayf(&s, "t", "LIVE NOW: %s. Type: ", "Tee");
  size_t from = s.len;
  tally__sayf(&s, "s", "BUY %s", "tee");
  tally__say_span(&s, TALLY_ARG_COMMAND, from);
  assert_string_equal(s.text, "LIVE NOW: Tee. Type: BUY tee");
  assert_int_equal(s.count, 3);
  assert_int_equal(s.arg[0].kind, TALLY_ARG_TEXT);
  assert_int_equal(s.arg[1].kind, TALLY_ARG_COMMAND);
  assert_memory_equal(s.text + s.arg[1].start, "BUY tee", s.arg[1].len);
  assert_int_equal(s.arg[1].len, 7);
  assert_int_equal(s.arg[2].kind, TALLY_ARG_SKU);
  assert_memory_equal(s.text + s.arg[2].start, "tee", s.arg[2].len);
  char args[TALLY_EFFECT_ARGS_BYTES_MAX + 1];
  tally__say_args(&s, args, sizeof args);
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  size_t n;
  assert_int_equal(tally_effect_args_parse(s.text, args, a, TALLY_EFFECT_ARGS_MAX, &n), TALLY_OK);
  assert_int_equal(n, 3);
  assert_memory_equal(a, s.arg, sizeof a[0] * n);

  tally__say_init(&s, TALLY_MSG_DROP_LIVE);
  for (int i = 0; i < TALLY_EFFECT_ARGS_MAX; i++) tally__sayf(&s, "n", "%d ", i);
  tally__say_span(&s, TALLY_ARG_COMMAND, 0);
  assert_int_equal(s.msg, TALLY_MSG_TEXT);
  assert_int_equal(s.count, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_text_as_snprintf),
      cmocka_unit_test(test_lost_structure),
      cmocka_unit_test(test_span_around_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
