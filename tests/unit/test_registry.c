/* test_registry.c — features register their command words and config keys
 * (issue 10 item 1): the command set is the core's rows plus every
 * registered feature's, in TALLY HELP's order, each word once, a word
 * registered twice refused with its name; the config table is the core's
 * keys plus every feature's, each once, a key declared twice or past the
 * end of tally_config refused; the feature keys keep their names, defaults,
 * bounds and fields of the public struct. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
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
    if (!strncmp(line, "Hosts (channel moderators, in the channel): ", 44) &&
        strstr(line, "SHOUT <text> - a fake host word"))
      hosts = true; /* after the core's host words, on a hosts line */
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

typedef struct keys_seen {
  int n, found;
  const char *want;
  char default_text[32];
} keys_seen;

static void count_key(void *ud, const char *key, const char *default_text, const char *help) {
  keys_seen *k = ud;
  k->n++;
  assert_non_null(help);
  if (k->want && !strcmp(key, k->want)) {
    k->found++;
    snprintf(k->default_text, sizeof k->default_text, "%s", default_text);
  }
}

/* Each feature's keys: described once, with their defaults, set into
 * their fields of the public struct, bounds checked. */
static void test_feature_keys(void **state) {
  (void)state;
  static const struct {
    const char *key, *default_text;
    size_t offset;
    const char *valid; /* in bounds, not the default */
  } keys[] = {
      {"highlight_repeat", "30", offsetof(tally_config, highlight_repeat_s), "5"},
      {"highlight_topic", "0", offsetof(tally_config, highlight_topic), "1"},
      {"highlights_per_channel", "64", offsetof(tally_config, highlights_per_channel), "1"},
      {"highlights_per_account", "8", offsetof(tally_config, highlights_per_account), "1"},
      {"highlight_refund_wait", "600", offsetof(tally_config, highlight_refund_wait_s), "1"},
      {"tip_message_hold", "0", offsetof(tally_config, tip_message_hold_s), "1"},
      {"held_tips_per_channel", "64", offsetof(tally_config, held_tips_per_channel), "1"},
      {"held_tips_per_account", "8", offsetof(tally_config, held_tips_per_account), "1"},
      {"drops_per_host", "16", offsetof(tally_config, drops_per_host), "1"},
      {"link_code_ttl", "600", offsetof(tally_config, link_code_ttl_s), "1"},
      {"reward_min_account_age", "3600", offsetof(tally_config, reward_min_account_age_s), "1"},
  };
  char err[TALLY_ERRBUF_BYTES];
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    keys_seen k = {.want = keys[i].key};
    tally_config_describe(count_key, &k);
    assert_int_equal(k.found, 1);
    assert_string_equal(k.default_text, keys[i].default_text);
    tally_config cfg;
    tally_config_init(&cfg);
    uint32_t v;
    memcpy(&v, (const char *)&cfg + keys[i].offset, sizeof v);
    assert_int_equal(v, (uint32_t)atoi(keys[i].default_text));
    assert_int_equal(tally_config_set(&cfg, keys[i].key, keys[i].valid, err, sizeof err), TALLY_OK);
    memcpy(&v, (const char *)&cfg + keys[i].offset, sizeof v);
    assert_int_equal(v, (uint32_t)atoi(keys[i].valid));
    assert_int_equal(tally_config_set(&cfg, keys[i].key, "99999999", err, sizeof err), TALLY_ECONFIG);
    assert_non_null(strstr(err, "out of range"));
  }
}

static const tally__config_key twice_rows[] = {
    {"fee_bps", TALLY__CFG_U32, offsetof(tally_config, fee_bps), "250", 0, 5000, "again"}};
static const tally__config_keys twice = TALLY__CONFIG_KEYS(twice_rows);
static const tally__config_key past_rows[] = {
    {"past_end", TALLY__CFG_I64, sizeof(tally_config) - 4, "0", 0, 1, "past the struct"}};
static const tally__config_keys past = TALLY__CONFIG_KEYS(past_rows);
static const tally__config_key bad_default_rows[] = {
    {"bad_default", TALLY__CFG_U32, offsetof(tally_config, fee_bps), "9", 10, 20, "default below min"}};
static const tally__config_keys bad_default = TALLY__CONFIG_KEYS(bad_default_rows);

static void test_config_table_checked(void **state) {
  (void)state;
  char err[TALLY_ERRBUF_BYTES] = "";
  assert_int_equal(tally__config_table_check(tally__config_table_get(), err, sizeof err), TALLY_OK);
  const tally__config_keys *parts[] = {&tally__core_config_keys, &twice};
  tally__config_table t = {parts, 2};
  assert_int_equal(tally__config_table_check(&t, err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "fee_bps: declared twice"));
  parts[1] = &past;
  assert_int_equal(tally__config_table_check(&t, err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "past_end"));
  parts[1] = &bad_default;
  assert_int_equal(tally__config_table_check(&t, err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "bad_default: its default"));
  /* The core's keys alone lack the features' (the registered table has them). */
  tally__config_table core = {parts, 1};
  tally_config cfg;
  tally_config_init(&cfg);
  assert_int_equal(tally__config_set_in(&core, &cfg, "drops_per_host", "3", err, sizeof err), TALLY_ECONFIG);
  assert_non_null(strstr(err, "unknown key"));
  assert_int_equal(tally_config_set(&cfg, "drops_per_host", "3", err, sizeof err), TALLY_OK);
  assert_int_equal(cfg.drops_per_host, 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_duplicate_word_refused),
      cmocka_unit_test(test_feature_words_join_their_group),
      cmocka_unit_test(test_registered_set_has_feature_words),
      cmocka_unit_test(test_feature_keys),
      cmocka_unit_test(test_config_table_checked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
