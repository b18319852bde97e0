/* describe.h — TALLY HELP's text, built from command_table.h (describe.c). */
#ifndef TALLY_DESCRIBE_H
#define TALLY_DESCRIBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text.h"

/* Help line `index` into out (NUL-terminated, at most cap - 1 bytes);
 * false when there is no such line. */
bool tally__commands_help_line(size_t index, char *out, size_t cap);

/* A set of roles of command_table.h's TALLY__ROLE_SETS: one of any_of is
 * needed (0: open); a sender without is refused with hint and why. */
typedef struct tally__role_set_info {
  uint32_t any_of;
  uint32_t hint;
  const char *why;
} tally__role_set_info;
extern const tally__role_set_info tally__role_sets[];

/* The TALLY__ROLE_TABLE row that applies to the tokenized command t (its
 * first word already known to be a command word): sets[0] then sets[1]
 * must each allow the sender. False: the form is open to everyone. */
bool tally__role_rule_find(const tally__tokens *t, uint8_t sets[2]);

#endif
