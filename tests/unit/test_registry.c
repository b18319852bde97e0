/* test_registry.c — features register their command words and config keys
 * (issue 10 item 1): the command set is the core's rows plus every
 * registered feature's, in TALLY HELP's order, each word once, a word
 * registered twice refused with its name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "describe.h"
#include "runtime.h"
#include "tally.h"

static void handler(struct tally__cmd *c) { (void)c; }

static const tally__role_row shout_roles[] = {TALLY__ROLE_ROW("LOUD", 0, MODERATORS, OPEN)};
static const tally__command_row fake_rows[] = {
    {"SHOUT", handler, TALLY_COMMAND_NEEDS_ACCOUNT, TALLY_COMMAND_GROUP_HOSTS, "<text>", "a fake host word",
     shout_roles, 1},
    {"WHISPER", handler, 0, TALLY_COMMAND_GROUP_EVERYONE, "", "a fake word for everyone", NULL, 0},
};
static const tally__command_rows fake = TALLY__ROWS(fake_rows);

static tally__command_set set; /* large: not on the stack */

static void test_duplicate_word_refused(void **state) {
  (void)state;
  char err[TALLY_ERRBUF_BYTES] = "";
  const tally__command_rows *twice[] = {&tally__core_commands, &tally__quiz_commands, &tally__quiz_commands};
  assert_int_equal(tally__command_set_build(&set, twice, 3, err, sizeof err), TALLY_EINVAL);
  assert_non_null(strstr(err, "registered twice"));
  assert_non_null(strstr(err, "ANSWER"));
  /* A group past HOSTS has no help line: refused, not hidden. */
  static const tally__command_row admin_row[] = {
      {"ROOT", handler, 0, TALLY_COMMAND_GROUP_OPERATORS, "", "no such line", NULL, 0}};
  static const tally__command_rows admin = TALLY__ROWS(admin_row);
  const tally__command_rows *bad[] = {&tally__core_commands, &admin};
  assert_int_equal(tally__command_set_build(&set, bad, 2, err, sizeof err), TALLY_EINVAL);
  assert_non_null(strstr(err, "ROOT"));
}

static int index_of(const tally__command_set *s, const char *word) {
  for (size_t i = 0; i < s->count; i++)
    if (!strcmp(s->docs[i].word, word)) return (int)i;
  return -1;
}

/* A feature's words join their group's help line after the core's, and
 * dispatch finds them with their role rows. */
static void test_feature_words_join_their_group(void **state) {
  (void)state;
  char err[TALLY_ERRBUF_BYTES] = "";
  const tally__command_rows *parts[] = {&tally__core_commands, &fake};
  assert_int_equal(tally__command_set_build(&set, parts, 2, err, sizeof err), TALLY_OK);
  assert_int_equal(set.count, tally__core_commands.count + 2);
  /* EVERYONE's words first (the core's, then WHISPER), then the creators'. */
  assert_true(index_of(&set, "TALLY") < index_of(&set, "WHISPER"));
  assert_true(index_of(&set, "WHISPER") < index_of(&set, "ITEM"));
  assert_int_equal(index_of(&set, "SHOUT"), (int)set.count - 1);
  char line[TALLY_TEXT_BYTES_MAX + 1];
  bool hosts = false;
  for (size_t i = 0; tally__commands_help_line(&set, i, line, sizeof line); i++)
    if (strstr(line, "Hosts (channel moderators, in the channel): SHOUT <text> - a fake host word")) hosts = true;
  assert_true(hosts);
  tally__tokens t;
  assert_int_equal(tally__tokenize("shout loud hello", &t), TALLY_OK);
  size_t index = 99;
  const tally__command_row *row = tally__command_find(&set, &t, &index);
  assert_non_null(row);
  assert_string_equal(row->word, "SHOUT");
  uint8_t sets[2];
  assert_true(tally__role_rule_find(&set, index, &t, sets));
  assert_int_equal(sets[0], TALLY__ROLES_MODERATORS);
  const tally_command_doc *d = &set.docs[index];
  assert_int_equal(d->role_count, 1);
  assert_int_equal(d->roles[0].any_of, TALLY_ROLE_MODERATOR | TALLY_ROLE_HOST | TALLY_ROLE_ADMIN);
  assert_int_equal(tally__tokenize("shout", &t), TALLY_OK);
  assert_false(tally__role_rule_find(&set, index, &t, sets)); /* the bare word is open */
  assert_int_equal(tally__tokenize("SHOUTS x", &t), TALLY_OK);
  assert_null(tally__command_find(&set, &t, &index));
}

/* The registered set: the words of every feature of runtime.c's table. */
static void test_registered_set_has_feature_words(void **state) {
  (void)state;
  const tally__command_set *s = tally__commands();
  assert_non_null(s);
  static const char *const words[] = {"HIGHLIGHT", "REACT", "EVENT", "DROP", "HIDE", "LINK",
                                      "UNLINK", "REWARDS", "REWARD", "ANSWER", "QUIZ"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) assert_true(index_of(s, words[i]) >= 0);
  assert_int_equal(s->count, tally__core_commands.count + sizeof words / sizeof words[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_duplicate_word_refused),
      cmocka_unit_test(test_feature_words_join_their_group),
      cmocka_unit_test(test_registered_set_has_feature_words),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
