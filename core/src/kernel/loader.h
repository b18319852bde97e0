/* loader.h — what the start-up loader's files share (loader.c rebuilds
 * accounts, items, purchases and keys; the features rebuild theirs through
 * the restore entry of the hook table (hooks.h): loader_live.c events and
 * drops, loader_shop.c co-op shares, serial numbers, redemptions, raffles).
 *
 * Contract: runs once, blocking, on the engine thread before the first
 * command; a query error leaves its message in l->err and returns NULL or
 * TALLY_EDB. */
#ifndef TALLY_LOADER_H
#define TALLY_LOADER_H

#include "engine_internal.h"

typedef struct loader {
  tally__engine *e;
  PGconn *c;
  tally__map acc_by_id, item_by_id; /* ledger id -> memory index */
  char *err;
  size_t err_len;
} loader;

PGresult *tally__load_q(loader *l, const char *sql, int n, const char *const *params);
int64_t tally__load_i64(const PGresult *r, int row, int col);
uint32_t tally__load_acc(const loader *l, int64_t id);  /* TALLY__NONE if unknown */

/* A table of a feature's facts whose ids come from the engine's one id
 * counter: every such table has a batch_id, and `has_id` says whether its
 * rows also take an id of their own. */
typedef struct tally__id_table {
  const char *name; /* a constant identifier in the feature's code, never user input */
  bool has_id;
} tally__id_table;

/* Raises the engine's id counter past every id and batch id stored in
 * these tables. A batch that carries only facts writes no `batches` row,
 * so the kernel's own counters cannot see it; without this a restart
 * hands out a stored id again and ON CONFLICT DO NOTHING drops the new
 * fact while memory believes it stored. Each feature lists its own
 * tables and calls this from its restore. */
int tally__load_ids_past(loader *l, const tally__id_table *tables, size_t n);
uint32_t tally__load_item(const loader *l, int64_t id); /* TALLY__NONE if unknown */

#endif
