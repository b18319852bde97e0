/* migrate.h — numbered SQL migrations compiled into libtally.
 *
 * Contract: tally__migrate applies, in order and each in its own
 * transaction, every migration newer than what schema_migrations records,
 * under a transaction-level advisory lock so two processes never migrate at
 * once. Blocking: call it only off the host's thread (engine start, CLI). */
#ifndef TALLY_MIGRATE_H
#define TALLY_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

typedef struct tally__migration {
  int version;
  const char *name;
  const char *sql;
} tally__migration;

extern const tally__migration tally__migrations[];
extern const int tally__migration_count;

/* *applied = how many were applied now. */
int tally__migrate(PGconn *conn, int *applied, char *err, size_t err_len);

#endif
