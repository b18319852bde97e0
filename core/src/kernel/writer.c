/* writer.c — PostgreSQL connections that write batches, driven by the
 * engine's libuv loop (uv_poll on PQsocket), never blocking it once
 * connected.
 *
 * It reads each answer into a tally__outcome and leaves what it means to
 * tally__engine_on_outcome (outcome.c), so the simulator, which answers
 * batches itself, runs the same rules. tally__env_real (the end of this
 * file) is the production environment: the loop's clock, the real-time
 * clock, and these writers. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"
#include "hooks.h"
#include "migrate.h"

static void writer_on_io(uv_poll_t *h, int status, int events);

/* Writer 0's session lock, in the two-key form (migrate.h): batch ids own
 * the one-key space. */
#define TALLY__LOCK_SQL "SELECT pg_try_advisory_lock(1952541817, 1)"
_Static_assert(TALLY__LOCK_CLASS == 1952541817 && TALLY__LOCK_WRITER == 1, "TALLY__LOCK_SQL names the writer lock");

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
  w->result = NULL;
  if (w->conn) PQfinish(w->conn);
  w->conn = NULL;
  w->state = TALLY__WRITER_DOWN;
}

/* Session settings ride in the startup packet, so a connection needs no
 * set-up round trip; they come first so that the admin's DSN overrides. */
/* TCP keepalives and a user timeout notice a silently dead connection in
 * seconds instead of libpq's default two hours (ignored on unix sockets). */
static const char *const connect_keys[] = {"options", "keepalives_idle", "keepalives_interval",
                                           "keepalives_count", "tcp_user_timeout", "dbname",
                                           "connect_timeout", "application_name", NULL};
enum { CONNECT_PARAMS = 8 };
static const char *connect_vals(const tally__engine *e, int i) {
  static const char *const vals[CONNECT_PARAMS] = {
      "-c synchronous_commit=on -c client_min_messages=warning", "10", "5", "3", "30000", NULL, "3",
      "tally-engine"};
  return i == 5 ? e->dsn : vals[i];
}

static bool start_watching(tally__writer *w) {
  if (PQsetnonblocking(w->conn, 1) != 0 || uv_poll_init(&w->engine->loop, &w->poll, PQsocket(w->conn)))
    return false;
  w->poll.data = w;
  w->poll_live = true;
  w->poll_fd = PQsocket(w->conn);
  return true;
}

/* Blocking connect, used only for the engine's first start (which loads
 * its state with blocking queries anyway); reconnects use
 * tally__writer_reconnect_start, which never blocks. */
int tally__writer_connect(tally__writer *w, char *err, size_t err_len) {
  tally__engine *e = w->engine;
  tally__writer_close(w);
  if (w->poll_closing) {
    snprintf(err, err_len, "connect: previous connection still closing");
    return TALLY_EDB;
  }
  const char *vals[CONNECT_PARAMS + 1] = {NULL};
  for (int i = 0; i < CONNECT_PARAMS; i++) vals[i] = connect_vals(e, i);
  w->conn = PQconnectdbParams(connect_keys, vals, 1);
  if (!w->conn || PQstatus(w->conn) != CONNECTION_OK) {
    snprintf(err, err_len, "connect: %s", w->conn ? PQerrorMessage(w->conn) : "out of memory");
    tally__writer_close(w);
    return TALLY_EDB;
  }
  if (w->index == 0) {
    /* One engine per database: it is the single writer of stock and
     * balances. Held for the session, so it follows writer 0's connection. */
    PGresult *r = PQexec(w->conn, TALLY__LOCK_SQL);
    bool locked = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!locked) {
      snprintf(err, err_len, "another tally engine is using this database");
      tally__writer_close(w);
      return TALLY_EDB;
    }
  }
  /* Writer 0's statement needs the migrations, which it applies next
   * (tally__engine_load), so it prepares after them. */
  if (w->index != 0 && tally__writer_prepare(w, err, err_len) != TALLY_OK) return TALLY_EDB;
  if (!start_watching(w)) {
    snprintf(err, err_len, "connect: cannot watch the connection");
    tally__writer_close(w);
    return TALLY_EDB;
  }
  w->want_write = false;
  writer_watch(w);
  w->state = TALLY__WRITER_IDLE;
  return TALLY_OK;
}

int tally__writer_prepare(tally__writer *w, char *err, size_t err_len) {
  PGresult *r = PQprepare(w->conn, TALLY__BATCH_STMT, tally__batch_sql, TALLY__BATCH_PARAMS, NULL);
  bool prepared = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!prepared) snprintf(err, err_len, "prepare the batch statement: %s", PQresultErrorMessage(r));
  PQclear(r);
  if (prepared) return TALLY_OK;
  tally__writer_close(w);
  return TALLY_EDB;
}

/* Starts a reconnect and returns at once; writer_connect_poll finishes it. */
static int writer_reconnect_start(tally__writer *w, uint64_t now) {
  tally__engine *e = w->engine;
  assert(w->state == TALLY__WRITER_DOWN); /* tally__writers_tick: only a writer that is down */
  tally__writer_close(w);
  if (w->poll_closing) return TALLY_EDB;
  const char *vals[CONNECT_PARAMS + 1] = {NULL};
  for (int i = 0; i < CONNECT_PARAMS; i++) vals[i] = connect_vals(e, i);
  w->conn = PQconnectStartParams(connect_keys, vals, 1);
  if (!w->conn || PQstatus(w->conn) == CONNECTION_BAD || !start_watching(w)) {
    tally__writer_close(w);
    return TALLY_EDB;
  }
  w->state = TALLY__WRITER_CONNECTING;
  w->connect_deadline_ms = now + TALLY__CONNECT_TIMEOUT_MS;
  w->want_write = true; /* PQconnectStart: wait for writable first */
  writer_watch(w);
  return TALLY_OK;
}

static void writer_broken(tally__writer *w, const char *why);

/* The last step of a reconnect: TALLY__WRITER_PREPARE until it is answered. */
static void writer_send_prepare(tally__writer *w) {
  if (!PQsendPrepare(w->conn, TALLY__BATCH_STMT, tally__batch_sql, TALLY__BATCH_PARAMS, NULL)) {
    writer_broken(w, PQerrorMessage(w->conn));
    return;
  }
  w->state = TALLY__WRITER_PREPARE;
  w->want_write = true;
  writer_watch(w);
}

static void writer_connect_poll(tally__writer *w) {
  assert(w->state == TALLY__WRITER_CONNECTING && w->conn); /* writer_on_io */
  PostgresPollingStatusType ps = PQconnectPoll(w->conn);
  if (ps == PGRES_POLLING_FAILED) {
    writer_broken(w, PQerrorMessage(w->conn));
    return;
  }
  if (PQsocket(w->conn) != w->poll_fd) {
    writer_broken(w, "connection socket changed while connecting");
    return;
  }
  if (ps != PGRES_POLLING_OK) {
    w->want_write = ps == PGRES_POLLING_WRITING;
    writer_watch(w);
    return;
  }
  if (w->index != 0) {
    writer_send_prepare(w);
    return;
  }
  if (!PQsendQuery(w->conn, TALLY__LOCK_SQL)) {
    writer_broken(w, PQerrorMessage(w->conn));
    return;
  }
  w->state = TALLY__WRITER_SETUP;
  w->want_write = true;
  writer_watch(w);
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
  tally__outcome lost = {.kind = TALLY__OUTCOME_LOST};
  if (b) tally__engine_on_outcome(e, b, &lost);
}

int tally__writer_send_batch(tally__writer *w, tally__batch *b) {
  assert(w->state == TALLY__WRITER_IDLE && b->phase == TALLY__BATCH_SEALED);
  if (!PQsendQueryPrepared(w->conn, TALLY__BATCH_STMT, TALLY__BATCH_PARAMS, b->params, b->lengths, b->formats, 0)) {
    writer_broken(w, PQerrorMessage(w->conn));
    return TALLY_EDB;
  }
  w->state = TALLY__WRITER_BATCH;
  w->batch = b;
  if (writer_send_flush(w) != TALLY_OK) {
    /* Part of it may have gone out: the batch goes back, maybe committed. */
    writer_broken(w, PQerrorMessage(w->conn));
    return TALLY_EDB;
  }
  return TALLY_OK;
}

/* Looks up every key of the batch, to settle which of its transfers the
 * ledger holds (ours from an earlier attempt, or someone's older ones). */
static int writer_send_lookup(tally__writer *w) {
  tally__batch *b = w->batch;
  assert(w->state == TALLY__WRITER_IDLE && b); /* writer_outcome: its statement or lookup answered */
  char id[24];
  snprintf(id, sizeof id, "%llu", (unsigned long long)b->id);
  const char *params[2] = {id, tally__batch_keys_param(b, &w->engine->st)};
  if (!PQsendQueryParams(w->conn, tally__batch_lookup_sql, 2, NULL, params, NULL, NULL, 0))
    return TALLY_EDB;
  w->state = TALLY__WRITER_RESOLVE;
  tally__engine_lookup_sent(w->engine, b);
  return writer_send_flush(w);
}

/* Hands what came back to the engine, and sends the key lookup it asks for. */
static void writer_outcome(tally__writer *w, tally__batch *b, const tally__outcome *o) {
  w->batch = NULL;
  if (tally__engine_on_outcome(w->engine, b, o) != TALLY__NEXT_LOOKUP) return;
  w->batch = b;
  if (writer_send_lookup(w) != TALLY_OK) writer_broken(w, "lookup could not be sent");
}

/* The statement or the lookup failed (the connection is fine: a broken one
 * goes through writer_broken). */
static void batch_query_failed(tally__writer *w, tally__batch *b, const PGresult *r, writer_state was) {
  tally__outcome o = {.kind = TALLY__OUTCOME_ERROR, .lookup = was == TALLY__WRITER_RESOLVE,
                      .sqlstate = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL,
                      .message = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL};
  if (r && !o.message) o.message = PQresultErrorMessage(r);
  writer_outcome(w, b, &o);
}

static void batch_statement_done(tally__writer *w, tally__batch *b, const PGresult *r) {
  for (int i = 0; i < PQntuples(r); i++) {
    int32_t k = tally__batch_find_transfer(b, strtoull(PQgetvalue(r, i, 0), NULL, 10));
    assert(k >= 0);
    b->inserted[k] = 1;
  }
  writer_outcome(w, b, &(tally__outcome){.kind = TALLY__OUTCOME_STATEMENT_OK});
}

static void batch_lookup_done(tally__writer *w, tally__batch *b, const PGresult *r) {
  const tally__state *st = &w->engine->st;
  for (int i = 0; i < PQntuples(r); i++) {
    uint64_t id = strtoull(PQgetvalue(r, i, 1), NULL, 10);
    if (PQgetisnull(r, i, 0)) { /* the batch's own mark (sql/022) */
      b->found_batch = id == b->id;
      continue;
    }
    uint64_t fp = (uint64_t)strtoll(PQgetvalue(r, i, 2), NULL, 10);
    int32_t k = tally__batch_find_transfer(b, id);
    if (k < 0) {
      /* Someone else's transfer under one of our keys: find which (rare, so
       * a scan is fine). */
      const char *key = PQgetvalue(r, i, 0);
      for (uint32_t j = 0; j < b->transfer_count && k < 0; j++)
        if (strcmp(tally__key_text(st, b->ops[b->xfer[j]].key_slot), key) == 0) k = (int32_t)j;
    }
    if (k < 0) continue;
    b->found_id[k] = id;
    b->found_fp[k] = fp;
  }
  writer_outcome(w, b, &(tally__outcome){.kind = TALLY__OUTCOME_LOOKUP_OK});
}

static void writer_query_done(tally__writer *w) {
  tally__engine *e = w->engine;
  PGresult *r = w->result;
  w->result = NULL;
  writer_state was = w->state;
  tally__batch *b = w->batch;
  /* Only a writer with a query in flight gets an answer (writer_on_io). */
  assert(was == TALLY__WRITER_SETUP || was == TALLY__WRITER_PREPARE || was == TALLY__WRITER_GRANTS ||
         was == TALLY__WRITER_BATCH || was == TALLY__WRITER_RESOLVE);
  w->state = TALLY__WRITER_IDLE;
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (was == TALLY__WRITER_SETUP) {
    bool locked = st == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!locked) writer_broken(w, "another tally engine holds this database's lock");
    else writer_send_prepare(w);
    return;
  }
  if (was == TALLY__WRITER_PREPARE) {
    if (st != PGRES_COMMAND_OK) {
      /* Broken, not retried here: it reconnects after TALLY__RECONNECT_MS. */
      char why[TALLY_ERRBUF_BYTES];
      snprintf(why, sizeof why, "prepare the batch statement: %s", r ? PQresultErrorMessage(r) : "no result");
      PQclear(r);
      writer_broken(w, why);
      return;
    }
    PQclear(r);
    fprintf(stderr, "tally: writer %d reconnected\n", w->index);
    return;
  }
  if (was == TALLY__WRITER_GRANTS) {
    for (int i = 0; st == PGRES_TUPLES_OK && i < PQntuples(r); i++)
      e->hooks->grant_request(e, strtoll(PQgetvalue(r, i, 0), NULL, 10), PQgetvalue(r, i, 1),
                              strtoll(PQgetvalue(r, i, 2), NULL, 10));
    PQclear(r);
    return;
  }
  assert(b);
  if (st != PGRES_TUPLES_OK) batch_query_failed(w, b, r, was);
  else if (was == TALLY__WRITER_BATCH) batch_statement_done(w, b, r);
  else batch_lookup_done(w, b, r);
  PQclear(r);
}

static void writer_on_io(uv_poll_t *h, int status, int events) {
  tally__writer *w = h->data;
  tally__engine *e = w->engine;
  if (status < 0) {
    writer_broken(w, uv_strerror(status));
    return;
  }
  if (w->state == TALLY__WRITER_CONNECTING) {
    writer_connect_poll(w);
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
    /* A statement's rows come first; an error at COMMIT comes as a later
     * result and decides the outcome. */
    if (!w->result) w->result = r;
    else if (PQresultStatus(r) == PGRES_FATAL_ERROR) {
      PQclear(w->result);
      w->result = r;
    } else PQclear(r);
  }
  if (w->conn && PQstatus(w->conn) == CONNECTION_BAD) writer_broken(w, "connection closed");
}

int tally__writer_poll_grants(tally__writer *w) {
  tally__engine *e = w->engine;
  char floor[24], skipped[TALLY__GRANT_SKIPPED_MAX * 21 + 3], limit[12];
  int64_t from = e->last_grant_request - TALLY__GRANT_REORDER_IDS;
  snprintf(floor, sizeof floor, "%lld", (long long)(from > 0 ? from : 0));
  snprintf(limit, sizeof limit, "%d", TALLY__GRANT_POLL_ROWS);
  size_t n = (size_t)snprintf(skipped, sizeof skipped, "{0");
  for (uint32_t i = 0; i < TALLY__GRANT_SKIPPED_MAX; i++)
    if (e->grant_skipped[i]) n += (size_t)snprintf(skipped + n, sizeof skipped - n, ",%lld", (long long)e->grant_skipped[i]);
  snprintf(skipped + n, sizeof skipped - n, "}");
  const char *params[3] = {floor, skipped, limit};
  /* Not `id > last`: a request whose id was taken before a higher one's
   * may commit after it. A request is open until its transfer exists. */
  if (!PQsendQueryParams(w->conn,
                         "SELECT g.id, g.account, g.amount_minor FROM grant_requests g"
                         " WHERE g.id > $1::bigint AND g.id <> ALL ($2::bigint[]) AND NOT EXISTS"
                         " (SELECT 1 FROM transfers t WHERE t.idem_key = 'grant-request:' || g.id)"
                         " ORDER BY g.id LIMIT $3::int",
                         3, NULL, params, NULL, NULL, 0))
    return TALLY_EDB;
  assert(w->state == TALLY__WRITER_IDLE && w->index == 0); /* tally__writers_tick: writer 0, idle */
  w->state = TALLY__WRITER_GRANTS;
  return writer_send_flush(w);
}

void tally__writers_tick(tally__engine *e, uint64_t now) {
  for (uint32_t k = 0; k < e->cfg.writers; k++) {
    tally__writer *w = &e->writers[k];
    if (e->fenced) { /* let go of the lock and the connections; never reconnect */
      if (w->state == TALLY__WRITER_IDLE) tally__writer_close(w);
      continue;
    }
    bool connecting = w->state == TALLY__WRITER_CONNECTING || w->state == TALLY__WRITER_SETUP ||
                      w->state == TALLY__WRITER_PREPARE;
    if (connecting && now > w->connect_deadline_ms) writer_broken(w, "connect timed out");
    /* No answer for too long: treat the connection as lost (the batch goes
     * back, maybe committed, and is settled by key lookup). */
    if (w->batch && now - w->batch->sent_mono_ms > TALLY__ANSWER_DEADLINE_MS)
      writer_broken(w, "no answer from PostgreSQL");
    if (w->state != TALLY__WRITER_DOWN || now < w->next_connect_ms) continue;
    if (writer_reconnect_start(w, now) != TALLY_OK) w->next_connect_ms = now + TALLY__RECONNECT_MS;
  }
  tally__writer *w0 = &e->writers[0];
  if (now >= e->next_grant_poll_ms && w0->state == TALLY__WRITER_IDLE) {
    e->next_grant_poll_ms = now + TALLY__GRANT_POLL_MS;
    if (tally__writer_poll_grants(w0) != TALLY_OK) writer_broken(w0, "grant poll failed");
  }
  tally__engine_flush(e);
}

/* ---- the production environment (tally__env) ------------------------------------ */
static uint64_t real_now_mono_ms(tally__engine *e) {
  uv_update_time(&e->loop);
  return uv_now(&e->loop);
}

static int64_t real_now_wall_ms(const tally__engine *e) {
  (void)e;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

tally__writer *tally__writer_idle(tally__engine *e) {
  for (uint32_t k = 0; k < e->cfg.writers; k++)
    if (e->writers[k].state == TALLY__WRITER_IDLE) return &e->writers[k];
  return NULL;
}

static bool real_writer_idle(tally__engine *e) { return tally__writer_idle(e) != NULL; }

static int real_send_batch(tally__engine *e, tally__batch *b) {
  tally__writer *w = tally__writer_idle(e);
  return w ? tally__writer_send_batch(w, b) : TALLY_EBUSY;
}

const tally__env tally__env_real = {.now_mono_ms = real_now_mono_ms, .now_wall_ms = real_now_wall_ms,
                                    .writer_idle = real_writer_idle, .send_batch = real_send_batch,
                                    .tick = tally__writers_tick};
