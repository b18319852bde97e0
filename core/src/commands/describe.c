/* describe.c — tally_commands_describe(), tally_text_check() and the TALLY
 * HELP lines, all from command_table.h (the table command.c dispatches on),
 * so adapters, help and dispatch name the same words. Pure: no engine. */
#include "describe.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "command_table.h"
#include "text.h"

#define SET_ROW(name, any_of, hint, why) {(any_of), (hint), (why)},
const tally__role_set_info tally__role_sets[] = {TALLY__ROLE_SETS(SET_ROW)};
#undef SET_ROW

/* The role table twice from the same rows: with its word and set names for
 * the dispatcher, and as the public rows tally_command_doc.roles points at. */
typedef struct role_rule {
  const char *word;
  uint8_t sets[2];
} role_rule;
#define RULE_ROW(word, sub, words, needs, also) {#word, {TALLY__ROLES_##needs, TALLY__ROLES_##also}},
static const role_rule rules[] = {TALLY__ROLE_TABLE(RULE_ROW)};
#undef RULE_ROW
/* Each set's roles as an integer constant, for the static public rows. */
#define SET_ANY(name, any_of, hint, why) ANY_OF_##name = (int)(any_of),
enum { TALLY__ROLE_SETS(SET_ANY) };
#undef SET_ANY
#define PUBLIC_ROW(word, sub, words, needs, also) {sub, (words), ANY_OF_##needs, ANY_OF_##also},
static const tally_command_role public_rules[] = {TALLY__ROLE_TABLE(PUBLIC_ROW)};
#undef PUBLIC_ROW
enum { RULE_COUNT = sizeof rules / sizeof rules[0] };

static bool sub_matches(const tally_command_role *r, const tally__tokens *t) {
  if (r->words && (uint32_t)t->count != r->words) return false;
  if (t->count < 2) return false;
  return !r->sub[0] || tally__word_is(t, 1, r->sub);
}

bool tally__role_rule_find(const tally__tokens *t, uint8_t sets[2]) {
  for (size_t i = 0; i < RULE_COUNT; i++) {
    if (!tally__word_is(t, 0, rules[i].word) || !sub_matches(&public_rules[i], t)) continue;
    sets[0] = rules[i].sets[0];
    sets[1] = rules[i].sets[1];
    return true;
  }
  return false;
}

#define DOC_ROW(word, fn, flags, group, usage, help) \
  {sizeof(tally_command_doc), TALLY_COMMAND_DOC_VERSION, #word, usage, help, (flags), (group), NULL, 0, ""},
static tally_command_doc docs[] = {TALLY__COMMAND_TABLE(DOC_ROW)};
#undef DOC_ROW

enum { DOC_COUNT = sizeof docs / sizeof docs[0] };

/* Points each doc at its word's adjacent role rows, once (the strings and
 * rows are static: valid for the library's lifetime). */
static void docs_link(void) {
  for (size_t i = 0; i < DOC_COUNT; i++)
    if (!strcmp(docs[i].word, "TALLY")) docs[i].operator_usage = TALLY__OPERATOR_USAGE;
  for (size_t r = 0; r < RULE_COUNT; r++) {
    for (size_t i = 0; i < DOC_COUNT; i++) {
      if (strcmp(docs[i].word, rules[r].word) != 0) continue;
      if (!docs[i].roles) docs[i].roles = &public_rules[r];
      docs[i].role_count++;
    }
  }
}

void tally_commands_describe(tally_command_doc_cb cb, void *ud) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  if (!cb) return;
  pthread_once(&once, docs_link);
  for (size_t i = 0; i < DOC_COUNT; i++) cb(ud, &docs[i]);
}

int tally_text_check(const char *s, size_t len) {
  if (!s) return TALLY_EINVAL;
  return tally__text_check(s, len);
}

static const char *const group_label[] = {
    [TALLY_COMMAND_GROUP_EVERYONE] = "",
    [TALLY_COMMAND_GROUP_EVENT] = "In an event: ",
    [TALLY_COMMAND_GROUP_CREATORS] = "Creators: ",
    [TALLY_COMMAND_GROUP_HOSTS] = "Hosts (channel moderators, in the channel): ",
    [TALLY_COMMAND_GROUP_OPERATORS] = "Admins: ",
};

/* Appends "WORD usage - help" to out (at *len, capacity cap); false and
 * nothing appended if it does not fit. */
static bool append(char *out, size_t cap, size_t *len, const char *sep, const tally_command_doc *d) {
  int n = snprintf(out + *len, cap - *len, "%s%s%s%s - %s", sep, d->word, d->usage[0] ? " " : "", d->usage,
                   d->help);
  if (n < 0 || (size_t)n >= cap - *len) {
    out[*len] = '\0';
    return false;
  }
  *len += (size_t)n;
  return true;
}

/* Help line `index` (0, 1, ...) into out: the commands of one group joined
 * by "; ", a group spilling onto further lines when it does not fit in cap
 * (TALLY_TEXT_BYTES_MAX + 1 in practice). Returns false past the last line. */
bool tally__commands_help_line(size_t index, char *out, size_t cap) {
  size_t line = 0;
  for (uint32_t g = 0; g <= TALLY_COMMAND_GROUP_OPERATORS; g++) {
    size_t i = 0;
    if (g == TALLY_COMMAND_GROUP_OPERATORS) {
      if (line == index) {
        snprintf(out, cap, "%s%s", group_label[g], TALLY__OPERATOR_USAGE);
        return true;
      }
      line++;
      continue;
    }
    while (i < DOC_COUNT) {
      size_t len = (size_t)snprintf(out, cap, "%s", group_label[g]);
      int added = 0;
      for (; i < DOC_COUNT; i++) {
        if (docs[i].group != g) continue;
        if (!append(out, cap, &len, added ? "; " : "", &docs[i])) {
          if (!added) i++; /* one entry longer than a line: skipped, never loops */
          break;
        }
        added++;
      }
      if (!added) {
        if (i < DOC_COUNT) continue; /* only a too-long entry was skipped */
        break;
      }
      if (line == index) return true;
      line++;
    }
  }
  return false;
}
