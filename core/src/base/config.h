/* config.h — the engine's side of tally_config (config.c). */
#ifndef TALLY_BASE_CONFIG_H
#define TALLY_BASE_CONFIG_H

#include <stddef.h>

#include "tally.h"

/* Remote mode's limits (they match tally/frames.h's HELLO fields, which
 * base cannot include: frames.h is the wire layer's public face). */
enum {
  TALLY__UNIX_PATH_MAX = 108,      /* sun_path of struct sockaddr_un */
  TALLY__SECRET_BYTES_MIN = 16,    /* a shared secret shorter than this is guessable */
  TALLY__INSTANCE_BYTES_MAX = 255, /* TALLY_FRAME_INSTANCE_BYTES_MAX */
  TALLY__ADAPTER_BYTES_MAX = 64,   /* TALLY_FRAME_ADAPTER_BYTES_MAX */
};

/* out = the host's cfg as the library's whole struct: the fields past
 * cfg->size (a host built against an older tally.h) at their defaults.
 * TALLY_ECONFIG with a message for a foreign version or a struct smaller
 * than TALLY_CONFIG_SIZE_V1. */
int tally__config_import(tally_config *out, const tally_config *cfg, char *err, size_t err_len);

#endif
