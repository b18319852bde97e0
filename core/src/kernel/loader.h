/* loader.h — what the start-up loader's files share (loader.c rebuilds
 * accounts, items, purchases, keys and events; loader_shop.c co-op shares,
 * serial numbers, redemptions and raffles).
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
uint32_t tally__load_item(const loader *l, int64_t id); /* TALLY__NONE if unknown */

/* After items, purchases and live state: the item columns of migration
 * 004, serial numbers taken, co-op shares of kept purchases, redemptions,
 * raffle entries and draws still due. */
int tally__load_shop(loader *l, int64_t now_ms);

#endif
