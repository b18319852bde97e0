/* runtime.h — what the runtime layer's files share. */
#ifndef TALLY_RUNTIME_H
#define TALLY_RUNTIME_H

#include "hooks.h"

/* engine_loop.c: tally_engine_new with the table the engine drives
 * (runtime.c passes its own). */
int tally__engine_new(const tally__hooks *hooks, const tally_config *cfg, tally_engine **out, char *err,
                      size_t err_len);

/* One tick of the loop (tally_engine_start's timer runs it every
 * TALLY__TICK_MS): start-up, the environment's tick, "pending" notices, the
 * features' timers, then the queued commands. A simulator that keeps its
 * own time calls it directly. */
void tally__engine_tick(tally__engine *e);
/* Takes one command frame (as drawn from the queue): decoded and dispatched
 * through the hook table. False, and nothing taken, while the effect ring
 * lacks room for its answers. */
bool tally__engine_take_command(tally__engine *e, const uint8_t *frame, size_t len);

/* runtime.c: the command set of the core's and every registered feature's
 * words (describe.h), built on first use; NULL if the rows are inconsistent
 * (a word twice: tally_engine_new says which). */
const struct tally__command_set *tally__commands(void);

/* runtime.c: every config key, the core's and each registered feature's
 * (base/config.h), built on first use. */
const struct tally__config_table *tally__config_table_get(void);
/* config_api.c: tally__config_import_in on that table. */
int tally__config_import(tally_config *out, const tally_config *cfg, char *err, size_t err_len);

#endif
