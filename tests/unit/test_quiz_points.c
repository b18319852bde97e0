/* test_quiz_points.c — a round's points for speed (features/quiz/quiz.h):
 * max(1, 10 - floor(9 t / T)) for a right answer t ms into a question of
 * T ms, the formula README "Quiz rounds" states. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "quiz.h"

static void test_points_for_speed(void **state) {
  (void)state;
  assert_int_equal(tally__quiz_points(0, 5000), 10);
  assert_int_equal(tally__quiz_points(555, 5000), 10); /* 9 x 555 / 5000 = 0.999 */
  assert_int_equal(tally__quiz_points(556, 5000), 9);
  assert_int_equal(tally__quiz_points(2900, 5000), 5);
  assert_int_equal(tally__quiz_points(4999, 5000), 2);
  assert_int_equal(tally__quiz_points(5000, 5000), 1); /* at the deadline */
  assert_int_equal(tally__quiz_points(9000, 5000), 1); /* late (a clock jump): never below 1 */
  assert_int_equal(tally__quiz_points(3599999, 3600000), 2);
  assert_int_equal(tally__quiz_points(100, 0), 1);     /* no duration: the least */
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_points_for_speed)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
