/* describe.c — tally_commands_describe(), tally_text_check() and the TALLY
 * HELP lines, all from command_table.h (the table command.c dispatches on),
 * so adapters, help and dispatch name the same words. Pure: no engine. */
#include "describe.h"

#include <stdio.h>
#include <string.h>

#include "command_table.h"
#include "text.h"

#define DOC_ROW(word, fn, flags, group, usage, help) \
  {sizeof(tally_command_doc), TALLY_COMMAND_DOC_VERSION, #word, usage, help, (flags), (group)},
static const tally_command_doc docs[] = {TALLY__COMMAND_TABLE(DOC_ROW)};
#undef DOC_ROW

enum { DOC_COUNT = sizeof docs / sizeof docs[0] };

void tally_commands_describe(tally_command_doc_cb cb, void *ud) {
  if (!cb) return;
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
