/* runtime.h — what the runtime layer's files share. */
#ifndef TALLY_RUNTIME_H
#define TALLY_RUNTIME_H

#include "hooks.h"

/* engine_loop.c: tally_engine_new with the table the engine drives
 * (runtime.c passes its own). */
int tally__engine_new(const tally__hooks *hooks, const tally_config *cfg, tally_engine **out, char *err,
                      size_t err_len);

#endif
