/* describe.h — TALLY HELP's text, built from command_table.h (describe.c). */
#ifndef TALLY_DESCRIBE_H
#define TALLY_DESCRIBE_H

#include <stdbool.h>
#include <stddef.h>

/* Help line `index` into out (NUL-terminated, at most cap - 1 bytes);
 * false when there is no such line. */
bool tally__commands_help_line(size_t index, char *out, size_t cap);

#endif
