/* test_describe.c — tally_commands_describe() describes each command word
 * once, in the form adapters need; TALLY HELP's lines come from the same
 * table and name every word; tally_text_check() is the engine's rule
 * (adapters call it instead of their own UTF-8 check). The engine side
 * (every described word is dispatched, nothing else is) is
 * tests/integration/test_commands.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "describe.h"
#include "runtime.h"
#include "tally.h"

enum { WORDS_MAX = 64 };

typedef struct seen {
  int n;
  const char *word[WORDS_MAX];
  uint32_t flags[WORDS_MAX], group[WORDS_MAX];
} seen;

static void collect(void *ud, const tally_command_doc *d) {
  seen *s = ud;
  assert_true(s->n < WORDS_MAX);
  assert_int_equal(d->size, sizeof *d);
  assert_int_equal(d->version, TALLY_COMMAND_DOC_VERSION);
  assert_non_null(d->word);
  assert_non_null(d->usage);
  assert_non_null(d->help);
  assert_true(d->help[0] != '\0');
  assert_true(d->group <= TALLY_COMMAND_GROUP_OPERATORS);
  for (const char *p = d->word; *p; p++) assert_true(*p >= 'A' && *p <= 'Z');
  /* Adapters show these as they are: clean text by the engine's own rule. */
  assert_int_equal(tally_text_check(d->usage, strlen(d->usage)), TALLY_OK);
  assert_int_equal(tally_text_check(d->help, strlen(d->help)), TALLY_OK);
  assert_non_null(d->operator_usage);
  assert_int_equal(tally_text_check(d->operator_usage, strlen(d->operator_usage)), TALLY_OK);
  /* Admin forms are TALLY's sub-commands, and only TALLY has them. */
  if (!strcmp(d->word, "TALLY")) {
    assert_non_null(strstr(d->operator_usage, "TALLY GRANT <account> <amount>"));
    assert_non_null(strstr(d->operator_usage, "TALLY ROLE <account>"));
  } else {
    assert_string_equal(d->operator_usage, "");
  }
  s->word[s->n] = d->word;
  s->flags[s->n] = d->flags;
  s->group[s->n] = d->group;
  s->n++;
}

static int find(const seen *s, const char *word) {
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->word[i], word) == 0) return i;
  return -1;
}

static void test_each_word_once(void **state) {
  (void)state;
  seen s = {0};
  tally_commands_describe(collect, &s);
  for (int i = 0; i < s.n; i++)
    for (int j = i + 1; j < s.n; j++) assert_string_not_equal(s.word[i], s.word[j]);
  /* The words the IRC module registered from its own list before: none lost. */
  static const char *const before[] = {"SHOP", "BUY", "CONFIRM", "TIP", "WALLET", "RECEIPTS", "REFUND",
                                       "VERIFY", "ITEM", "TALLY", "EVENT", "DROP", "REDEEM", "HIGHLIGHT",
                                       "REACT", "REFCODE", "SHIP", "ORDERS", "HIDE", "DELIVERY",
                                       "LINK", "UNLINK"};
  for (size_t i = 0; i < sizeof before / sizeof before[0]; i++) assert_true(find(&s, before[i]) >= 0);
  /* Rewards and quizzes (issue 14). */
  static const char *const added[] = {"REWARD", "REWARDS", "QUIZ", "ANSWER",
                                      "ROOM" /* a room's settings (issue 13) */, "GOAL"};
  for (size_t i = 0; i < sizeof added / sizeof added[0]; i++) assert_true(find(&s, added[i]) >= 0);
  /* Challenges (issue 14). */
  static const char *const challenges[] = {"CHALLENGE"};
  for (size_t i = 0; i < sizeof challenges / sizeof challenges[0]; i++) assert_true(find(&s, challenges[i]) >= 0);
  assert_int_equal(s.n, (int)(sizeof before / sizeof before[0] + sizeof added / sizeof added[0] +
                              sizeof challenges / sizeof challenges[0]));
  assert_true(s.flags[find(&s, "ANSWER")] & TALLY_COMMAND_NEEDS_ACCOUNT);
  /* Flags are the dispatcher's and the handlers' rules. */
  assert_true(s.flags[find(&s, "BUY")] & TALLY_COMMAND_NEEDS_ACCOUNT);
  assert_false(s.flags[find(&s, "SHOP")] & TALLY_COMMAND_NEEDS_ACCOUNT);
  assert_true(s.flags[find(&s, "SHIP")] & TALLY_COMMAND_PRIVATE_ONLY);
  assert_true(s.flags[find(&s, "DELIVERY")] & TALLY_COMMAND_PRIVATE_ONLY);
  assert_true(s.flags[find(&s, "LINK")] & TALLY_COMMAND_PRIVATE_ONLY); /* its codes are secrets */
  assert_true(s.flags[find(&s, "UNLINK")] & TALLY_COMMAND_PRIVATE_ONLY);
  assert_true(s.flags[find(&s, "REACT")] & TALLY_COMMAND_IN_EVENT);
  assert_false(s.flags[find(&s, "ROOM")] & TALLY_COMMAND_PRIVATE_ONLY); /* said in the room it sets */
  tally_commands_describe(NULL, NULL); /* no callback: nothing happens */
}

/* Every word starts an entry of some help line: at a line's start, after a
 * group's label ("Creators: ITEM ...") or after "; ". all starts with "\n". */
static void count_word(void *ud, const tally_command_doc *d) {
  const char *all = ud;
  static const char *const before[] = {"\n", ": ", "; "};
  int found = 0;
  for (size_t i = 0; i < sizeof before / sizeof before[0]; i++) {
    char needle[64];
    snprintf(needle, sizeof needle, "%s%s%s", before[i], d->word, d->usage[0] ? " " : " - ");
    found += strstr(all, needle) != NULL;
  }
  assert_true(found > 0);
}

static void test_help_lines_name_every_word(void **state) {
  (void)state;
  char all[8 * (TALLY_TEXT_BYTES_MAX + 1)] = "\n", line[TALLY_TEXT_BYTES_MAX + 1];
  size_t n = 0;
  for (; tally__commands_help_line(tally__commands(), n, line, sizeof line); n++) {
    assert_true(strlen(line) <= TALLY_TEXT_BYTES_MAX);
    assert_int_equal(tally_text_check(line, strlen(line)), TALLY_OK);
    assert_true(strlen(all) + strlen(line) + 2 < sizeof all);
    strcat(all, line);
    strcat(all, "\n");
  }
  /* TALLY HELP is one notice per line: ten at most keeps it readable. */
  if (n < 5 || n > 10) fprintf(stderr, "help: %zu lines:%s", n, all);
  assert_true(n >= 5 && n <= 10);
  tally_commands_describe(count_word, all);
  assert_non_null(strstr(all, "TALLY GRANT <account> <amount>"));
  assert_false(tally__commands_help_line(tally__commands(), n, line, sizeof line));
}

/* TALLY HELP shows the words in the order it did when they were all rows of
 * one table (before features registered their own, issue 10): a group's
 * core words first, then each feature's in runtime.c's table order. Words
 * added later may sit anywhere; these keep their order. */
static void test_help_order_kept(void **state) {
  (void)state;
  char all[8 * (TALLY_TEXT_BYTES_MAX + 1)] = "", line[TALLY_TEXT_BYTES_MAX + 1];
  for (size_t n = 0; tally__commands_help_line(tally__commands(), n, line, sizeof line); n++) {
    strcat(all, line);
    strcat(all, "\n");
  }
  static const char *const order[] = {
      "\nSHOP [", "; BUY <", "; CONFIRM <", "; TIP <", "; WALLET - ", "; RECEIPTS - ", "; REFUND <",
      "; VERIFY <", "; REDEEM <", "DELIVERY <", "; SHIP <", "; TALLY HELP", "LINK | ", "UNLINK [",
      "; REWARDS - ", "; ANSWER [", "In an event: HIGHLIGHT <", "; REACT <", "Creators: ITEM ADD",
      "; REFCODE ADD", "; ORDERS - ", "; REWARD ADD", "Hosts (channel moderators, in the channel): EVENT START",
      "; DROP CREATE", "HIDE <tip receipt>", "; QUIZ START", "Admins: TALLY GRANT"};
  memmove(all + 1, all, strlen(all) + 1);
  all[0] = '\n';
  const char *at = all;
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    const char *p = strstr(at, order[i]);
    if (!p) fprintf(stderr, "help: \"%s\" missing or out of order\n", order[i]);
    assert_non_null(p);
    at = p + 1;
  }
}

static void test_text_check(void **state) {
  (void)state;
  assert_int_equal(tally_text_check("BUY tee 2", 9), TALLY_OK);
  assert_int_equal(tally_text_check("caf\xc3\xa9", 5), TALLY_OK);
  assert_int_equal(tally_text_check("BUY \xff", 5), TALLY_EBAD_UTF8);
  assert_int_equal(tally_text_check("BUY \xc0\xaf", 6), TALLY_EBAD_UTF8);     /* overlong */
  assert_int_equal(tally_text_check("BUY \xed\xa0\x80", 7), TALLY_EBAD_UTF8); /* surrogate */
  assert_int_equal(tally_text_check("caf\xc3", 4), TALLY_EBAD_UTF8);         /* cut */
  /* Controls the IRC module used to pass on: the engine refuses them all. */
  assert_int_equal(tally_text_check("BUY\ttee", 7), TALLY_EBAD_SYNTAX);
  assert_int_equal(tally_text_check("\x02" "BUY", 4), TALLY_EBAD_SYNTAX);
  assert_int_equal(tally_text_check("BUY \xc2\x85", 6), TALLY_EBAD_SYNTAX); /* C1 NEL */
  assert_int_equal(tally_text_check("BUY\x7f", 4), TALLY_EBAD_SYNTAX);
  assert_int_equal(tally_text_check("a\0b", 3), TALLY_EBAD_SYNTAX);
  assert_int_equal(tally_text_check(NULL, 0), TALLY_EINVAL);
}

/* The role rules an adapter can show are the dispatcher's (command_table.h):
 * HIDE needs a moderator, a host or an admin; EVENT and DROP forms a host
 * or an admin, DROP LIST nobody; TALLY GRANT an admin with the grant
 * privilege; SHOP no role. */
typedef struct role_seen {
  const tally_command_role *rows[WORDS_MAX];
  uint32_t count[WORDS_MAX];
  const char *word[WORDS_MAX];
  int n;
} role_seen;

static void collect_roles(void *ud, const tally_command_doc *d) {
  role_seen *s = ud;
  assert_true(s->n < WORDS_MAX);
  assert_true(d->version >= 2);
  assert_true(d->role_count == 0 || d->roles != NULL);
  s->word[s->n] = d->word;
  s->rows[s->n] = d->roles;
  s->count[s->n] = d->role_count;
  s->n++;
}

static const tally_command_role *role_row(const role_seen *s, const char *word, const char *sub) {
  for (int i = 0; i < s->n; i++) {
    if (strcmp(s->word[i], word) != 0) continue;
    for (uint32_t k = 0; k < s->count[i]; k++)
      if (strcmp(s->rows[i][k].sub, sub) == 0) return &s->rows[i][k];
  }
  return NULL;
}

static void test_roles_described(void **state) {
  (void)state;
  role_seen s = {0};
  tally_commands_describe(collect_roles, &s);
  const tally_command_role *hide = role_row(&s, "HIDE", "");
  assert_non_null(hide);
  assert_int_equal(hide->any_of, TALLY_ROLE_MODERATOR | TALLY_ROLE_HOST | TALLY_ROLE_ADMIN);
  const tally_command_role *event = role_row(&s, "EVENT", "");
  assert_non_null(event);
  assert_int_equal(event->any_of, TALLY_ROLE_HOST | TALLY_ROLE_ADMIN);
  assert_false(event->any_of & TALLY_ROLE_MODERATOR);
  const tally_command_role *list = role_row(&s, "DROP", "LIST");
  assert_non_null(list);
  assert_int_equal(list->any_of, 0);
  const tally_command_role *grant = role_row(&s, "TALLY", "GRANT");
  assert_non_null(grant);
  assert_int_equal(grant->any_of, TALLY_ROLE_ADMIN);
  assert_int_equal(grant->all_of, TALLY_ROLE_GRANT);
  const tally_command_role *remove = role_row(&s, "HIGHLIGHT", "REMOVE");
  assert_non_null(remove);
  assert_int_equal(remove->words, 2);
  assert_null(role_row(&s, "SHOP", ""));
  /* The deprecated names are the same bits: hosts built against 1.4 work. */
  assert_int_equal(TALLY_ROLE_CHANOP, TALLY_ROLE_HOST);
  assert_int_equal(TALLY_ROLE_OPER, TALLY_ROLE_ADMIN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_each_word_once),
      cmocka_unit_test(test_help_lines_name_every_word),
      cmocka_unit_test(test_help_order_kept),
      cmocka_unit_test(test_text_check),
      cmocka_unit_test(test_roles_described),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
