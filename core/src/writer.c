/* writer.c — PostgreSQL connections that write batches, driven by the
 * engine's libuv loop (uv_poll on PQsocket), never blocking it once
 * connected.
 *
 * Outcome rules (RELIABILITY.md F1, F2, F10):
 *   - the connection breaks with a batch in flight: the outcome is unknown,
 *     so the batch stays sealed and is sent again, unchanged, on the next
 *     connection; its ON CONFLICT keys make that a no-op for what committed;
 *   - serialization failure or deadlock: sent again up to TALLY__RETRY_MAX;
 *   - any other error: the transaction rolled back, so the batch fails and
 *     every buyer hears they were not charged. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

static void writer_on_io(uv_poll_t *h, int status, int events);

static void writer_watch(tally__writer *w) {
  int events = UV_READABLE | (w->want_write ? UV_WRITABLE : 0);
  uv_poll_start(&w->poll, events, writer_on_io);
}

static void on_poll_closed(uv_handle_t *h) {
  tally__writer *w = h->data;
  w->poll_closing = false;
}

void tally__writer_close(tally__writer *w) {
  if (w->poll_live) {
    /* Stopped before PQfinish closes the fd; the handle itself is reusable
     * only after its close callback (see tally__writer_connect). */
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_poll_closed);
    w->poll_live = false;
    w->poll_closing = true;
  }
  if (w->result) PQclear(w->result);
  if (w->inserted) PQclear(w->inserted);
  w->result = w->inserted = NULL;
  if (w->conn) PQfinish(w->conn);
  w->conn = NULL;
  w->state = TALLY__WRITER_DOWN;
}

/* Blocking connect; runs on the engine thread only at start and on
 * reconnect, with connect_timeout bounding the wait. */
int tally__writer_connect(tally__writer *w, char *err, size_t err_len) {
  tally__engine *e = w->engine;
  tally__writer_close(w);
  if (w->poll_closing) {
    snprintf(err, err_len, "connect: previous connection still closing");
    return TALLY_EDB;
  }
  const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
  const char *vals[] = {e->dsn, "3", "tally-engine", NULL};
  w->conn = PQconnectdbParams(keys, vals, 1);
  if (!w->conn || PQstatus(w->conn) != CONNECTION_OK) {
    snprintf(err, err_len, "connect: %s", w->conn ? PQerrorMessage(w->conn) : "out of memory");
    tally__writer_close(w);
    return TALLY_EDB;
  }
  PGresult *r = PQexec(w->conn, "SET synchronous_commit = on; SET client_min_messages = warning");
  PQclear(r);
  if (w->index == 0) {
    /* One engine per database: it is the single writer of stock and
     * balances. Held for the session, so it follows writer 0's connection. */
    r = PQexec(w->conn, "SELECT pg_try_advisory_lock(7999001)");
    bool locked = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!locked) {
      snprintf(err, err_len, "another tally engine is using this database");
      tally__writer_close(w);
      return TALLY_EDB;
    }
  }
  if (PQsetnonblocking(w->conn, 1) != 0 || uv_poll_init(&e->loop, &w->poll, PQsocket(w->conn))) {
    snprintf(err, err_len, "connect: cannot watch the connection");
    tally__writer_close(w);
    return TALLY_EDB;
  }
  w->poll.data = w;
  w->poll_live = true;
  w->want_write = false;
  writer_watch(w);
  w->state = TALLY__WRITER_IDLE;
  return TALLY_OK;
}

static int writer_send_flush(tally__writer *w) {
  int f = PQflush(w->conn);
  if (f < 0) return TALLY_EDB;
  w->want_write = f == 1;
  writer_watch(w);
  return TALLY_OK;
}

static void writer_broken(tally__writer *w, const char *why) {
  tally__engine *e = w->engine;
  fprintf(stderr, "tally: writer %d lost its connection: %s\n", w->index, why);
  tally__batch *b = w->batch;
  w->batch = NULL;
  tally__writer_close(w);
  w->next_connect_ms = tally__now_mono_ms(e) + TALLY__RECONNECT_MS;
  if (b) {
    /* Unknown outcome: resend later, unchanged (not in flight puts it back
     * among the sealed batches that tally__engine_flush sends). */
    b->phase = TALLY__BATCH_SEALED;
    b->inflight = false;
    atomic_fetch_add_explicit(&e->n_retries, 1, memory_order_relaxed);
  }
}

int tally__writer_send_batch(tally__writer *w, tally__batch *b) {
  assert(w->state == TALLY__WRITER_IDLE && b->phase == TALLY__BATCH_SEALED);
  if (!PQsendQueryParams(w->conn, tally__batch_sql, TALLY__BATCH_PARAMS, NULL, b->params, NULL,
                         NULL, 0)) {
    writer_broken(w, PQerrorMessage(w->conn));
    return TALLY_EDB;
  }
  w->state = TALLY__WRITER_BATCH;
  w->batch = b;
  return writer_send_flush(w) == TALLY_OK ? TALLY_OK : TALLY_EDB;
}

/* After a batch: the keys of transfers that were not inserted. */
static int writer_send_resolve(tally__writer *w, const PGresult *inserted) {
  tally__batch *b = w->batch;
  tally__engine *e = w->engine;
  /* Render "{k1,k2,...}" into the batch's text buffer after its params. */
  char *arr = b->text + b->text_len;
  size_t cap = b->text_cap - b->text_len, n = 0;
  arr[n++] = '{';
  int count = 0;
  for (uint32_t k = 0; k < b->op_count && count < TALLY__PENDING_IDS_MAX * 16; k++) {
    const tally__op *op = &b->ops[k];
    if (op->type != TALLY__OP_TRANSFER) continue;
    bool found = false;
    for (int i = 0; i < PQntuples(inserted) && !found; i++)
      found = strtoull(PQgetvalue(inserted, i, 0), NULL, 10) == op->transfer_id;
    if (found) continue;
    const char *key = e->st.keys[op->key_slot].key;
    if (n + 2 * strlen(key) + 4 >= cap) break;
    if (count++) arr[n++] = ',';
    arr[n++] = '"';
    for (const char *s = key; *s; s++) {
      if (*s == '"' || *s == '\\') arr[n++] = '\\';
      arr[n++] = *s;
    }
    arr[n++] = '"';
  }
  arr[n++] = '}';
  arr[n] = 0;
  const char *params[1] = {arr};
  if (!PQsendQueryParams(w->conn, "SELECT idem_key, id FROM transfers WHERE idem_key = ANY($1::text[])",
                         1, NULL, params, NULL, NULL, 0))
    return TALLY_EDB;
  w->state = TALLY__WRITER_RESOLVE;
  b->phase = TALLY__BATCH_RESOLVING;
  return writer_send_flush(w);
}

static bool retryable(const PGresult *r) {
  const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return code && (strcmp(code, "40001") == 0 || strcmp(code, "40P01") == 0);
}

static void writer_query_done(tally__writer *w) {
  tally__engine *e = w->engine;
  PGresult *r = w->result;
  w->result = NULL;
  writer_state was = w->state;
  tally__batch *b = w->batch;
  w->state = TALLY__WRITER_IDLE;
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (was == TALLY__WRITER_GRANTS) {
    for (int i = 0; st == PGRES_TUPLES_OK && i < PQntuples(r); i++)
      tally__grant_request_apply(e, strtoll(PQgetvalue(r, i, 0), NULL, 10), PQgetvalue(r, i, 1),
                                 strtoll(PQgetvalue(r, i, 2), NULL, 10));
    PQclear(r);
    return;
  }
  assert(b);
  if (st != PGRES_TUPLES_OK) {
    const char *msg = r ? PQresultErrorMessage(r) : "no result";
    w->batch = NULL;
    if (r && retryable(r) && b->retries++ < TALLY__RETRY_MAX) {
      b->phase = TALLY__BATCH_SEALED;
      b->inflight = false;
      atomic_fetch_add_explicit(&e->n_retries, 1, memory_order_relaxed);
    } else {
      tally__engine_batch_failed(e, b, msg);
    }
    PQclear(r);
    return;
  }
  if (was == TALLY__WRITER_BATCH && (uint32_t)PQntuples(r) != b->transfer_count) {
    /* Some transfers were not inserted: find out why before answering. The
     * insert result is kept until the lookup answers. */
    w->inserted = r;
    if (writer_send_resolve(w, r) != TALLY_OK) writer_broken(w, "resolve query could not be sent");
    return;
  }
  w->batch = NULL;
  if (was == TALLY__WRITER_RESOLVE) {
    tally__engine_batch_done(e, b, w->inserted, r);
    PQclear(w->inserted);
    w->inserted = NULL;
  } else {
    tally__engine_batch_done(e, b, r, NULL);
  }
  PQclear(r);
}

static void writer_on_io(uv_poll_t *h, int status, int events) {
  tally__writer *w = h->data;
  tally__engine *e = w->engine;
  if (status < 0) {
    writer_broken(w, uv_strerror(status));
    return;
  }
  if ((events & UV_WRITABLE) && writer_send_flush(w) != TALLY_OK) {
    writer_broken(w, PQerrorMessage(w->conn));
    return;
  }
  if (!(events & UV_READABLE)) return;
  if (!PQconsumeInput(w->conn)) {
    writer_broken(w, PQerrorMessage(w->conn));
    return;
  }
  while (w->conn && !PQisBusy(w->conn)) {
    PGresult *r = PQgetResult(w->conn);
    if (!r) {
      if (w->state == TALLY__WRITER_IDLE) break; /* e.g. a notice, nothing pending */
      writer_query_done(w);
      tally__engine_flush(e);
      tally__signal_host(e); /* receipts go out now, not at the next tick */
      break;
    }
    if (PQstatus(w->conn) == CONNECTION_BAD) {
      PQclear(r);
      writer_broken(w, "connection closed");
      return;
    }
    if (w->result) PQclear(r); /* only the first result of a statement matters */
    else w->result = r;
  }
  if (w->conn && PQstatus(w->conn) == CONNECTION_BAD) writer_broken(w, "connection closed");
}

int tally__writer_poll_grants(tally__writer *w) {
  tally__engine *e = w->engine;
  char last[24];
  snprintf(last, sizeof last, "%lld", (long long)e->last_grant_request);
  const char *params[1] = {last};
  if (!PQsendQueryParams(w->conn,
                         "SELECT id, account, amount_minor FROM grant_requests WHERE id > $1::bigint"
                         " ORDER BY id LIMIT 64",
                         1, NULL, params, NULL, NULL, 0))
    return TALLY_EDB;
  w->state = TALLY__WRITER_GRANTS;
  return writer_send_flush(w);
}

void tally__writers_tick(tally__engine *e, uint64_t now) {
  for (uint32_t k = 0; k < e->cfg.writers; k++) {
    tally__writer *w = &e->writers[k];
    if (w->state != TALLY__WRITER_DOWN || now < w->next_connect_ms) continue;
    char err[TALLY_ERRBUF_BYTES];
    if (tally__writer_connect(w, err, sizeof err) != TALLY_OK) {
      w->next_connect_ms = now + TALLY__RECONNECT_MS;
      continue;
    }
    fprintf(stderr, "tally: writer %d reconnected\n", w->index);
  }
  tally__writer *w0 = &e->writers[0];
  if (now >= e->next_grant_poll_ms && w0->state == TALLY__WRITER_IDLE) {
    e->next_grant_poll_ms = now + TALLY__GRANT_POLL_MS;
    if (tally__writer_poll_grants(w0) != TALLY_OK) writer_broken(w0, "grant poll failed");
  }
  tally__engine_flush(e);
}
