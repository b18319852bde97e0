/* config.h — the engine's side of tally_config (config.c). */
#ifndef TALLY_BASE_CONFIG_H
#define TALLY_BASE_CONFIG_H

#include <stddef.h>

#include "tally.h"

/* out = the host's cfg as the library's whole struct: the fields past
 * cfg->size (a host built against an older tally.h) at their defaults.
 * TALLY_ECONFIG with a message for a foreign version or a struct smaller
 * than TALLY_CONFIG_SIZE_V1. */
int tally__config_import(tally_config *out, const tally_config *cfg, char *err, size_t err_len);

#endif
