/* describe.c — the command set: the core's words (command_table.h) and
 * every registered feature's (command_rows.h), built once at engine creation
 * (runtime.c); the dispatcher (command.c), tally_commands_describe() and the
 * TALLY HELP lines all read it, so adapters, help and dispatch name the same
 * words. Also tally_text_check(). Pure: no engine. */
#include "describe.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "command_table.h"
#include "commands.h"
#include "text.h"

#define SET_ROW(name, any_of, hint, why) {(any_of), (hint), (why)},
const tally__role_set_info tally__role_sets[] = {TALLY__ROLE_SETS(SET_ROW)};
#undef SET_ROW

/* The core's words; their role forms are TALLY__ROLE_TABLE's rows of the
 * same word, found at build time. */
#define CORE_ROW(word, fn, flags, group, usage, help) {#word, fn, (flags), (group), usage, help, NULL, 0},
static const tally__command_row core_rows[] = {TALLY__COMMAND_TABLE(CORE_ROW)};
#undef CORE_ROW
const tally__command_rows tally__core_commands = TALLY__ROWS(core_rows);

typedef struct core_rule {
  const char *word;
  tally__role_row row;
} core_rule;
#define RULE_ROW(word, sub, words, needs, also) {#word, TALLY__ROLE_ROW(sub, words, needs, also)},
static const core_rule core_rules[] = {TALLY__ROLE_TABLE(RULE_ROW)};
#undef RULE_ROW

__attribute__((format(printf, 3, 4))) static int build_fail(char *err, size_t err_len, const char *fmt, ...) {
  if (err && err_len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
  }
  return TALLY_EINVAL;
}

static int role_add(tally__command_set *s, const char *word, const tally__role_row *r, char *err, size_t err_len) {
  if (s->role_count >= TALLY__COMMAND_ROLES_MAX)
    return build_fail(err, err_len, "commands: more than %d role rows", TALLY__COMMAND_ROLES_MAX);
  if (!r->sub || r->needs >= TALLY__ROLE_SET_COUNT || r->also >= TALLY__ROLE_SET_COUNT)
    return build_fail(err, err_len, "commands: a role row of %s names no role set", word);
  s->roles[s->role_count] = (tally_command_role){r->sub, r->words, tally__role_sets[r->needs].any_of,
                                                 tally__role_sets[r->also].any_of};
  s->role_sets[s->role_count][0] = r->needs;
  s->role_sets[s->role_count][1] = r->also;
  s->role_count++;
  return TALLY_OK;
}

static int row_add(tally__command_set *s, const tally__command_row *r, char *err, size_t err_len) {
  if (s->count >= TALLY__COMMANDS_MAX)
    return build_fail(err, err_len, "commands: more than %d words", TALLY__COMMANDS_MAX);
  for (size_t i = 0; i < s->count; i++)
    if (strcmp(s->rows[i].word, r->word) == 0)
      return build_fail(err, err_len, "commands: %s is registered twice", r->word);
  size_t k = s->count, first = s->role_count;
  int rc = TALLY_OK;
  for (uint32_t j = 0; j < r->role_count && rc == TALLY_OK; j++) rc = role_add(s, r->word, &r->roles[j], err, err_len);
  for (size_t j = 0; j < sizeof core_rules / sizeof core_rules[0] && rc == TALLY_OK; j++)
    if (strcmp(core_rules[j].word, r->word) == 0) rc = role_add(s, r->word, &core_rules[j].row, err, err_len);
  if (rc) return rc;
  s->rows[k] = *r;
  s->word_len[k] = (uint32_t)strlen(r->word);
  s->role_first[k] = (uint32_t)first;
  uint32_t roles = (uint32_t)(s->role_count - first);
  s->docs[k] = (tally_command_doc){sizeof(tally_command_doc), TALLY_COMMAND_DOC_VERSION, r->word, r->usage,
                                   r->help, r->flags, r->group, NULL, roles,
                                   strcmp(r->word, "TALLY") ? "" : TALLY__OPERATOR_USAGE};
  s->count++;
  return TALLY_OK;
}

static bool row_complete(const tally__command_row *r) {
  if (!r->word || !r->word[0] || !r->fn || !r->usage || !r->help || !r->help[0]) return false;
  if (r->role_count && !r->roles) return false;
  for (const char *p = r->word; *p; p++)
    if (*p < 'A' || *p > 'Z') return false;
  return true;
}

int tally__command_set_build(tally__command_set *s, const tally__command_rows *const *parts, size_t n, char *err,
                             size_t err_len) {
  memset(s, 0, sizeof *s);
  for (size_t p = 0; p < n; p++)
    for (size_t i = 0; i < parts[p]->count; i++) {
      const tally__command_row *r = &parts[p]->rows[i];
      if (!row_complete(r)) return build_fail(err, err_len, "commands: an incomplete row (%s)", r->word ? r->word : "no word");
      if (r->group > TALLY_COMMAND_GROUP_HOSTS)
        return build_fail(err, err_len, "commands: %s's group is not EVERYONE..HOSTS", r->word);
    }
  /* TALLY HELP's order: a group's words together, each group in
   * registration order. */
  for (uint32_t g = 0; g <= TALLY_COMMAND_GROUP_HOSTS; g++)
    for (size_t p = 0; p < n; p++)
      for (size_t i = 0; i < parts[p]->count; i++) {
        if (parts[p]->rows[i].group != g) continue;
        int rc = row_add(s, &parts[p]->rows[i], err, err_len);
        if (rc) return rc;
      }
  /* roles[] is complete: point each doc at its rows. */
  for (size_t k = 0; k < s->count; k++)
    if (s->docs[k].role_count) s->docs[k].roles = &s->roles[s->role_first[k]];
  return TALLY_OK;
}

const tally__command_row *tally__command_find(const tally__command_set *s, const tally__tokens *t, size_t *index) {
  if (t->count < 1) return NULL;
  for (size_t i = 0; i < s->count; i++) {
    if (t->len[0] != s->word_len[i] || !tally__word_is(t, 0, s->rows[i].word)) continue;
    *index = i;
    return &s->rows[i];
  }
  return NULL;
}

static bool sub_matches(const tally_command_role *r, const tally__tokens *t) {
  if (r->words && (uint32_t)t->count != r->words) return false;
  if (t->count < 2) return false;
  return !r->sub[0] || tally__word_is(t, 1, r->sub);
}

bool tally__role_rule_find(const tally__command_set *s, size_t index, const tally__tokens *t, uint8_t sets[2]) {
  assert(index < s->count);
  const tally_command_doc *d = &s->docs[index];
  for (uint32_t k = 0; k < d->role_count; k++) {
    if (!sub_matches(&d->roles[k], t)) continue;
    const uint8_t *at = s->role_sets[s->role_first[index] + k];
    sets[0] = at[0];
    sets[1] = at[1];
    return true;
  }
  return false;
}

void tally__commands_describe(const tally__command_set *s, tally_command_doc_cb cb, void *ud) {
  if (!cb || !s) return;
  for (size_t i = 0; i < s->count; i++) cb(ud, &s->docs[i]);
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
bool tally__commands_help_line(const tally__command_set *s, size_t index, char *out, size_t cap) {
  if (!s) return false;
  const tally_command_doc *docs = s->docs;
  const size_t doc_count = s->count;
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
    while (i < doc_count) {
      size_t len = (size_t)snprintf(out, cap, "%s", group_label[g]);
      int added = 0;
      for (; i < doc_count; i++) {
        if (docs[i].group != g) continue;
        if (!append(out, cap, &len, added ? "; " : "", &docs[i])) {
          if (!added) i++; /* one entry longer than a line: skipped, never loops */
          break;
        }
        added++;
      }
      if (!added) {
        if (i < doc_count) continue; /* only a too-long entry was skipped */
        break;
      }
      if (line == index) return true;
      line++;
    }
  }
  return false;
}
