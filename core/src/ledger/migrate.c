/* migrate.c — forward-only schema migrations, recorded in a version table. */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tally.h"

static int exec_ok(PGconn *c, const char *sql, char *err, size_t err_len) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) snprintf(err, err_len, "migrate: %s", PQresultErrorMessage(r));
  PQclear(r);
  return ok ? TALLY_OK : TALLY_EDB;
}

int tally__migrate(PGconn *c, int *applied, char *err, size_t err_len) {
  *applied = 0;
  int rc = exec_ok(c,
                   "SET client_min_messages = warning;"
                   "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY,"
                   " name text NOT NULL, applied_ms bigint NOT NULL)",
                   err, err_len);
  if (rc) return rc;
  for (int i = 0; i < tally__migration_count; i++) {
    const tally__migration *m = &tally__migrations[i];
    if ((rc = exec_ok(c, "BEGIN", err, err_len))) return rc;
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%d, %d)", TALLY__LOCK_CLASS, TALLY__LOCK_MIGRATE);
    if ((rc = exec_ok(c, sql, err, err_len))) goto rollback;
    snprintf(sql, sizeof sql, "SELECT 1 FROM schema_migrations WHERE version = %d", m->version);
    PGresult *r = PQexec(c, sql);
    int done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
    PQclear(r);
    if (!done) {
      if ((rc = exec_ok(c, m->sql, err, err_len))) goto rollback;
      const char *vals[3];
      char ver[16], ms[24];
      snprintf(ver, sizeof ver, "%d", m->version);
      snprintf(ms, sizeof ms, "%lld", (long long)time(NULL) * 1000);
      vals[0] = ver, vals[1] = m->name, vals[2] = ms;
      r = PQexecParams(c, "INSERT INTO schema_migrations VALUES ($1, $2, $3)", 3, NULL, vals,
                       NULL, NULL, 0);
      int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      if (!ok) snprintf(err, err_len, "migrate: %s", PQresultErrorMessage(r));
      PQclear(r);
      if (!ok) { rc = TALLY_EDB; goto rollback; }
      (*applied)++;
    }
    if ((rc = exec_ok(c, "COMMIT", err, err_len))) return rc;
  }
  return TALLY_OK;
rollback:
  PQclear(PQexec(c, "ROLLBACK"));
  return rc;
}
