/* describe.h — the command set (the core's words and every registered
 * feature's), and TALLY HELP's text built from it (describe.c). */
#ifndef TALLY_DESCRIBE_H
#define TALLY_DESCRIBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "command_rows.h"
#include "text.h"

enum {
  TALLY__COMMANDS_MAX = 64,      /* command words, the core's and every feature's */
  TALLY__COMMAND_ROLES_MAX = 64, /* role forms of all of them together */
};

/* Every command word, built once from the core's rows and each feature's
 * (tally__command_set_build), in TALLY HELP's order: by group, and in a
 * group in registration order (the core's, then the features' in table
 * order). rows[i] and docs[i] are the same word; docs[i].roles points into
 * roles[], role_sets[] holds the same rows' set indexes. */
typedef struct tally__command_set {
  size_t count;
  tally__command_row rows[TALLY__COMMANDS_MAX];
  uint32_t word_len[TALLY__COMMANDS_MAX]; /* strlen(rows[i].word): the lookup's first test */
  tally_command_doc docs[TALLY__COMMANDS_MAX];
  size_t role_count;
  tally_command_role roles[TALLY__COMMAND_ROLES_MAX];
  uint8_t role_sets[TALLY__COMMAND_ROLES_MAX][2]; /* enum tally__role_set: needs, also */
  uint32_t role_first[TALLY__COMMANDS_MAX];       /* docs[i]'s first row in roles[] */
} tally__command_set;

/* Builds s from parts[0..n) (tally__core_commands first). TALLY_EINVAL with
 * a message in err for a word registered twice, an incomplete row, a group
 * past HOSTS, or more words or role rows than the limits above. */
int tally__command_set_build(tally__command_set *s, const tally__command_rows *const *parts, size_t n, char *err,
                             size_t err_len);
/* The row of t's first word, its index in *index; NULL when none. */
const tally__command_row *tally__command_find(const tally__command_set *s, const tally__tokens *t, size_t *index);
/* Calls cb once per word, in the set's order (tally_commands_describe). */
void tally__commands_describe(const tally__command_set *s, tally_command_doc_cb cb, void *ud);

/* Help line `index` into out (NUL-terminated, at most cap - 1 bytes);
 * false when there is no such line. */
bool tally__commands_help_line(const tally__command_set *s, size_t index, char *out, size_t cap);

/* A set of roles of command_table.h's TALLY__ROLE_SETS: one of any_of is
 * needed (0: open); a sender without is refused with hint and why. */
typedef struct tally__role_set_info {
  uint32_t any_of;
  uint32_t hint;
  const char *why;
} tally__role_set_info;
extern const tally__role_set_info tally__role_sets[];

/* The role row of word `index` (tally__command_find's) that applies to the
 * tokenized command t: sets[0] then sets[1] must each allow the sender.
 * False: the form is open to everyone. */
bool tally__role_rule_find(const tally__command_set *s, size_t index, const tally__tokens *t, uint8_t sets[2]);

#endif
