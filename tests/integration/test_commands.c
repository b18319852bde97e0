/* test_commands.c — the engine dispatches exactly the words that
 * tally_commands_describe() describes (adapters register their commands
 * from it), and TALLY HELP answers from the same table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static tally_engine *eng;

static void each_word_dispatched(void *ud, const tally_command_doc *d) {
  int *count = ud;
  th_reply r;
  int rc = th_cmd(eng, "alice", d->word, 0, &r);
  if (rc == TALLY_EUNKNOWN_CMD) fprintf(stderr, "described but not dispatched: %s\n", d->word);
  assert_int_not_equal(rc, TALLY_EUNKNOWN_CMD);
  (*count)++;
}

static void test_described_words_are_dispatched(void **state) {
  (void)state;
  char dsn[512];
  tally_config cfg;
  th_fresh_db("commands", dsn, sizeof dsn);
  th_config(&cfg, dsn);
  eng = th_engine(&cfg);
  int count = 0;
  tally_commands_describe(each_word_dispatched, &count);
  assert_true(count >= 20);
  th_reply r;
  assert_int_equal(th_cmd(eng, "alice", "NOSUCHWORD", 0, &r), TALLY_EUNKNOWN_CMD);
  assert_int_equal(th_cmd(eng, "alice", "TALLY HELP", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "SHOP [creator] - list items"));
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_described_words_are_dispatched),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
