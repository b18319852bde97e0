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

/* Advisory lock keys. PostgreSQL keeps the one-bigint and the two-int4 key
 * spaces apart (a lock in one never conflicts with the other). The bigint
 * space belongs to batch ids alone: tally_write_batch and tally_lookup_batch
 * (tally_lookup_keys before sql/022) lock pg_advisory_xact_lock(batch_id). Every other lock takes two keys, a
 * class and a key, so no batch id can ever meet it (issue 9 #17: the batch
 * that got id 7999001 used to wait for writer 0's session lock). The item
 * row lock of sql/005 has a class of its own (1953066361). */
enum {
  TALLY__LOCK_CLASS = 0x74616c79, /* "taly" */
  TALLY__LOCK_WRITER = 1,         /* writer 0's session lock: one engine per ledger */
  TALLY__LOCK_MIGRATE = 2,        /* transaction lock while migrating */
};

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
