/* matrix_record.c — the AS's worker: every statement it runs, on its own
 * PostgreSQL connection (tallyd's loop never waits on PostgreSQL), one job
 * at a time from a FIFO (td_mx_job, matrix.h).
 *
 * TD_MX_JOB_TXN: a transaction and its command event ids are written in ONE
 * statement (sql/014_matrix.sql). Only when it commits is the homeserver
 * answered 200 (td_mx_txn_recorded, matrix_txn.c); if it fails, 500, and
 * the homeserver sends the same txnId again. The statement returns the
 * events to submit: those it inserted, and those an earlier tallyd process
 * recorded (it may have died before submitting them; the engine's
 * idempotency key is the event id, so a second submit cannot apply twice).
 * A txnId sent again to the same process submits nothing.
 *
 * TD_MX_JOB_OUTBOX: the outbox rows queued until the job starts
 * (matrix_outbox.c: messages to post, and their settlements); rows not
 * written are kept for the next job. TD_MX_JOB_LOAD: what earlier
 * processes left unposted, handed to td_mx_outbox_loaded; tried again
 * until it loads. */
#include "matrix.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char RECORD_SQL[] =
    "WITH ev AS (SELECT e->>0 AS event_id, e->>1 AS room_id, e->>2 AS sender FROM jsonb_array_elements($4::jsonb) e),"
    " t AS (INSERT INTO matrix_transactions (txn_id, boot, event_count, received_ms)"
    "       VALUES ($1, $2, (SELECT count(*) FROM ev), $3::bigint) ON CONFLICT (txn_id) DO NOTHING RETURNING txn_id),"
    " ins AS (INSERT INTO matrix_events (event_id, txn_id, boot, room_id, sender, received_ms)"
    "       SELECT event_id, $1, $2, room_id, sender, $3::bigint FROM ev WHERE EXISTS (SELECT 1 FROM t)"
    "       ON CONFLICT (event_id) DO NOTHING RETURNING event_id)"
    " SELECT ev.event_id, (SELECT count(*) FROM t) FROM ev WHERE ev.event_id IN (SELECT event_id FROM ins)"
    "    OR EXISTS (SELECT 1 FROM matrix_events m WHERE m.event_id = ev.event_id AND m.boot <> $2)"
    " UNION ALL SELECT NULL, (SELECT count(*) FROM t)";

static const char OUTBOX_ADD_SQL[] =
    "INSERT INTO matrix_outbox (txn_id, room_id, content, created_ms)"
    " SELECT e->>0, e->>1, e->>2, $2::bigint FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(e, n)"
    " ORDER BY n ON CONFLICT (txn_id) DO NOTHING";
static const char OUTBOX_SETTLE_SQL[] =
    "INSERT INTO matrix_settled (txn_id, outcome, settled_ms)"
    " SELECT e->>0, (e->>1)::smallint, $2::bigint FROM jsonb_array_elements($1::jsonb) e"
    " ON CONFLICT (txn_id) DO NOTHING";
/* What earlier processes left unposted: a day back at most (a homeserver
 * keeps txnIds for a limited time; an older answer is stale), in order. */
static const char OUTBOX_LOAD_SQL[] =
    "SELECT o.txn_id, o.room_id, o.content FROM matrix_outbox o"
    " WHERE NOT EXISTS (SELECT 1 FROM matrix_settled s WHERE s.txn_id = o.txn_id)"
    "   AND o.created_ms > $1::bigint - 86400000 ORDER BY o.id LIMIT $2::int";

uint64_t td_mx_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int pg_ready(td_mx *m, td_mx_job *j) {
  PGconn *pg = m->pg;
  if (pg && PQstatus(pg) != CONNECTION_OK) PQreset(pg);
  if (!pg) {
    pg = m->pg = PQconnectdb(m->d->cfg.engine.dsn);
    if (PQstatus(pg) == CONNECTION_OK) PQclear(PQexec(pg, "SET statement_timeout = 10000"));
  }
  if (PQstatus(pg) == CONNECTION_OK) return 1;
  snprintf(j->err, sizeof j->err, "connect: %s", PQerrorMessage(pg));
  return 0;
}

static int exec_ok(td_mx_job *j, PGresult *r, ExecStatusType want) {
  if (PQresultStatus(r) == want) return 1;
  snprintf(j->err, sizeof j->err, "%s", PQresultErrorMessage(r));
  PQclear(r);
  return 0;
}

static void outbox_work(td_mx *m, td_mx_job *j, const char *now) {
  const char *p[2] = {j->add_json, now};
  if (j->add_json) {
    PGresult *r = PQexecParams(m->pg, OUTBOX_ADD_SQL, 2, NULL, p, NULL, NULL, 0);
    if (!exec_ok(j, r, PGRES_COMMAND_OK)) return;
    PQclear(r);
  }
  if (j->settle_json) {
    p[0] = j->settle_json;
    PGresult *r = PQexecParams(m->pg, OUTBOX_SETTLE_SQL, 2, NULL, p, NULL, NULL, 0);
    if (!exec_ok(j, r, PGRES_COMMAND_OK)) return;
    PQclear(r);
  }
  j->ok = 1;
}

static void load_work(td_mx *m, td_mx_job *j, const char *now) {
  char limit[16];
  snprintf(limit, sizeof limit, "%d", TD_MX_OUT_MAX / 2);
  const char *p[2] = {now, limit};
  PGresult *r = PQexecParams(m->pg, OUTBOX_LOAD_SQL, 2, NULL, p, NULL, NULL, 0);
  if (!exec_ok(j, r, PGRES_TUPLES_OK)) return;
  j->loaded = json_array();
  for (int i = 0; i < PQntuples(r); i++)
    json_array_append_new(j->loaded, json_pack("[sss]", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)));
  PQclear(r);
  j->ok = 1;
}

static void job_work(uv_work_t *w) {
  td_mx_job *j = w->data;
  td_mx *m = j->m;
  if (!pg_ready(m, j)) return;
  PGconn *pg = m->pg;
  char now[24];
  snprintf(now, sizeof now, "%llu", (unsigned long long)td_mx_wall_ms());
  if (j->kind == TD_MX_JOB_OUTBOX) {
    outbox_work(m, j, now);
    return;
  }
  if (j->kind == TD_MX_JOB_LOAD) {
    load_work(m, j, now);
    return;
  }
  const char *params[4] = {j->txn_id, m->boot, now, j->rows_json};
  PGresult *r = PQexecParams(pg, RECORD_SQL, 4, NULL, params, NULL, NULL, 0);
  if (!exec_ok(j, r, PGRES_TUPLES_OK)) return;
  int rows = PQntuples(r);
  for (int i = 0; i < rows; i++) {
    if (PQgetisnull(r, i, 0)) {
      j->inserted = atoi(PQgetvalue(r, i, 1));
      continue;
    }
    const char *id = PQgetvalue(r, i, 0);
    for (uint32_t k = 0; k < j->n; k++)
      if (!strcmp(j->cmds[k].event_id, id)) j->cmds[k].submit = 1;
  }
  PQclear(r);
  j->ok = 1;
}

void td_mx_job_free(td_mx_job *j) {
  free(j->add_json);
  free(j->settle_json);
  json_decref(j->loaded);
  json_decref(j->sides);
  free(j->cmds);
  free(j->rows_json);
  free(j);
}

static void job_done(uv_work_t *w, int status);

static void job_next(td_mx *m) {
  if (m->job_running || !m->jobs_head) return;
  td_mx_job *j = m->jobs_head;
  if (j->kind == TD_MX_JOB_OUTBOX) { /* takes every row queued until now */
    json_t *add = m->ob_add, *settle = m->ob_settle;
    j->add_json = json_array_size(add) ? json_dumps(add, JSON_COMPACT) : NULL;
    j->settle_json = json_array_size(settle) ? json_dumps(settle, JSON_COMPACT) : NULL;
    j->rows = (uint32_t)(json_array_size(add) + json_array_size(settle));
    json_array_clear(add);
    json_array_clear(settle);
    m->ob_queued = 0;
  }
  m->job_running = 1;
  j->work.data = j;
  if (uv_queue_work(m->d->loop, &j->work, job_work, job_done) != 0) {
    m->job_running = 0;
    td_log(TD_ERR, "matrix: cannot queue a record job");
  }
}

void td_mx_job_push(td_mx *m, td_mx_job *j) {
  if (m->jobs_tail) m->jobs_tail->next = j;
  else m->jobs_head = j;
  m->jobs_tail = j;
  m->job_count++;
  job_next(m);
}

/* An outbox or load job ended: rows not written go back for the next
 * write; a load that failed is queued again; a load hands its rows on. */
static void side_job_done(td_mx *m, td_mx_job *j) {
  if (j->kind == TD_MX_JOB_OUTBOX) {
    if (!j->ok) {
      /* Kept for the next outbox job (started by the next row or settle, not
       * at once: a PostgreSQL that is down would make a tight loop). */
      td_log(TD_WARN, "matrix: %u outbox rows not written yet (%s): kept for the next write", j->rows, j->err);
      json_t *add = j->add_json ? json_loads(j->add_json, 0, NULL) : NULL;
      json_t *settle = j->settle_json ? json_loads(j->settle_json, 0, NULL) : NULL;
      if (add) json_array_extend(m->ob_add, add);
      if (settle) json_array_extend(m->ob_settle, settle);
      json_decref(add);
      json_decref(settle);
    }
    return;
  }
  if (!j->ok) { /* TD_MX_JOB_LOAD: tried again; transactions wait (503) meanwhile */
    td_log(TD_WARN, "matrix: the outbox did not load (%s); trying again", j->err);
    td_mx_job *again = calloc(1, sizeof *again);
    if (again) {
      again->m = m;
      again->kind = TD_MX_JOB_LOAD;
      again->next = NULL;
      if (m->jobs_tail) m->jobs_tail->next = again;
      else m->jobs_head = again;
      m->jobs_tail = again;
      m->job_count++;
    }
    return;
  }
  td_mx_outbox_loaded(m, j->loaded);
}

static void job_done(uv_work_t *w, int status) {
  (void)status;
  td_mx_job *j = w->data;
  td_mx *m = j->m;
  m->job_running = 0;
  m->jobs_head = j->next;
  if (!m->jobs_head) m->jobs_tail = NULL;
  m->job_count--;
  if (j->kind == TD_MX_JOB_TXN) td_mx_txn_recorded(m, j);
  else side_job_done(m, j);
  td_mx_job_free(j);
  job_next(m);
}

/* At the stop (the loop has ended): the jobs that never ran, and the
 * worker's connection. */
void td_mx_jobs_free(td_mx *m) {
  while (m->jobs_head) {
    td_mx_job *j = m->jobs_head;
    m->jobs_head = j->next;
    td_mx_job_free(j);
  }
  if (m->pg) PQfinish(m->pg);
}
