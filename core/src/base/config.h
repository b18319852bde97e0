/* config.h — the engine's side of tally_config (config.c). */
#ifndef TALLY_BASE_CONFIG_H
#define TALLY_BASE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "tally.h"

/* Remote mode's limits (they match tally/frames.h's HELLO fields, which
 * base cannot include: frames.h is the wire layer's public face). */
enum {
  TALLY__UNIX_PATH_MAX = 108,      /* sun_path of struct sockaddr_un */
  TALLY__SECRET_BYTES_MIN = 16,    /* a shared secret shorter than this is guessable */
  TALLY__INSTANCE_BYTES_MAX = 255, /* TALLY_FRAME_INSTANCE_BYTES_MAX */
  TALLY__ADAPTER_BYTES_MAX = 64,   /* TALLY_FRAME_ADAPTER_BYTES_MAX */
};

/* One configuration key: its field of the public tally_config, its type,
 * its default (as text, read like a host's value), its bounds (numbers) and
 * its help line (`tally config`, tally_config_describe). The core's keys are
 * config.c's table; a feature declares its own in its files
 * (tally__config_keys), named by its entry of runtime.c's feature table
 * (`.config_keys`): the public struct keeps its layout (its fields are ABI),
 * only where a key is declared moves. */
typedef enum { TALLY__CFG_STR, TALLY__CFG_U32, TALLY__CFG_I64 } tally__cfg_type;
typedef struct tally__config_key {
  const char *key;
  tally__cfg_type type;
  size_t offset; /* offsetof(tally_config, field) */
  const char *default_text;
  int64_t min, max;
  const char *help;
} tally__config_key;

/* A feature's keys (or the core's): `count` rows. */
typedef struct tally__config_keys {
  const tally__config_key *keys;
  size_t count;
} tally__config_keys;
#define TALLY__CONFIG_KEYS(array) {(array), sizeof(array) / sizeof((array)[0])}

/* The core's keys (config.c). */
extern const tally__config_keys tally__core_config_keys;

/* Every key: parts[0..count), the core's first, then each feature's in
 * table order (runtime.c builds it; `tally config` lists it in this order). */
typedef struct tally__config_table {
  const tally__config_keys *const *parts;
  size_t count;
} tally__config_table;

/* The public tally_config_* functions of tally.h on table t
 * (runtime/config_api.c passes the registered one). */
void tally__config_init_size_in(const tally__config_table *t, tally_config *cfg, size_t size);
int tally__config_set_in(const tally__config_table *t, tally_config *cfg, const char *key, const char *value,
                         char *err, size_t err_len);
int tally__config_check_in(const tally__config_table *t, const tally_config *host, char *err, size_t err_len);
void tally__config_describe_in(const tally__config_table *t, tally_config_doc_cb fn, void *ud);
/* out = the host's cfg as the library's whole struct: the fields past
 * cfg->size (a host built against an older tally.h) at their defaults.
 * TALLY_ECONFIG with a message for a foreign version or a struct smaller
 * than TALLY_CONFIG_SIZE_V1. (tally__config_import, runtime.h, on the
 * registered table.) */
int tally__config_import_in(const tally__config_table *t, tally_config *out, const tally_config *cfg, char *err,
                            size_t err_len);
/* TALLY_ECONFIG with a message unless t is a table: each name once, each
 * field inside tally_config, each default valid. */
int tally__config_table_check(const tally__config_table *t, char *err, size_t err_len);

#endif
