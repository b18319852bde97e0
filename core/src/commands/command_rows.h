/* command_rows.h — a command word as a feature registers it.
 *
 * The core's words are command_table.h's rows; a feature's words are an
 * array of tally__command_row in its own command file (cmd_quiz.c:
 * tally__quiz_commands), named by its entry of runtime.c's feature table
 * (`.commands`). At engine creation describe.c builds one command set from
 * the core's rows and every registered feature's (tally__command_set_build):
 * the dispatcher, tally_commands_describe() and TALLY HELP all read it, so
 * adding a feature's word edits neither command.c nor command_table.h. */
#ifndef TALLY_COMMAND_ROWS_H
#define TALLY_COMMAND_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "command_table.h"

struct tally__cmd;

/* One form of the word that needs a role (as a TALLY__ROLE_TABLE row of
 * command_table.h): the form `word sub...` (sub "" is any second word,
 * never the bare word; words 0 or the exact word count) needs a role of set
 * `needs` (enum tally__role_set) and then one of set `also`. A word's rows
 * are tried in order; the first that matches applies. */
typedef struct tally__role_row {
  const char *sub;
  uint32_t words;
  uint8_t needs, also;
} tally__role_row;
#define TALLY__ROLE_ROW(sub, words, needs, also) {(sub), (words), TALLY__ROLES_##needs, TALLY__ROLES_##also}

/* A command word: the columns of command_table.h's X(word, handler, flags,
 * group, usage, help), plus the word's role forms. */
typedef struct tally__command_row {
  const char *word;                /* upper case, as typed */
  void (*fn)(struct tally__cmd *c); /* the handler (commands.h) */
  uint32_t flags;                  /* TALLY_COMMAND_* of tally.h */
  uint32_t group;                  /* TALLY_COMMAND_GROUP_*, EVERYONE..HOSTS */
  const char *usage;               /* the arguments after the word ("" for none) */
  const char *help;                /* one short line */
  const tally__role_row *roles;    /* role_count rows, or NULL */
  uint32_t role_count;
} tally__command_row;

/* A feature's words: `count` rows. */
typedef struct tally__command_rows {
  const tally__command_row *rows;
  size_t count;
} tally__command_rows;
#define TALLY__ROWS(array) {(array), sizeof(array) / sizeof((array)[0])}

/* The core's words (command_table.h), built into every set first. */
extern const tally__command_rows tally__core_commands;

/* Each feature's words, in its command file (runtime.c registers them). */
extern const tally__command_rows tally__highlight_commands; /* cmd_audience.c: HIGHLIGHT, REACT */
extern const tally__command_rows tally__live_commands;      /* cmd_live.c: EVENT, DROP */
extern const tally__command_rows tally__tip_commands;       /* cmd_hide.c: HIDE */
extern const tally__command_rows tally__link_commands;      /* cmd_link.c: LINK, UNLINK */
extern const tally__command_rows tally__rewards_commands;   /* cmd_rewards.c: REWARDS, REWARD */
extern const tally__command_rows tally__quiz_commands;      /* cmd_quiz.c: ANSWER, QUIZ */

#endif
