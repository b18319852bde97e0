/* verifier.c — see verifier.h. One thread, one connection, one FIFO of
 * jobs shared with the engine thread under a mutex: the engine fills slots
 * at `submitted`, the thread runs them in order, and the engine collects
 * everything below `finished`. A slot is touched by one side at a time. */
#include "verifier.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "receipt_pg.h"

struct tally__verifier {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_t thread;
  bool stopping;
  uint64_t submitted, finished, collected; /* job counts; slot = count % MAX */
  PGcancel *cancel;                        /* of the running connection, under lock */
  uv_async_t *wake;
  char *dsn;
  uint8_t engine_pub[TALLY_PUBKEY_BYTES];
  char engine_key_id[TALLY_KEY_ID_CHARS + 1];
  /* verifier thread only */
  PGconn *conn;
  uint64_t retry_at_ms;
  tally__verify_job jobs[TALLY__VERIFY_JOBS_MAX];
};

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void drop_conn(tally__verifier *v) {
  pthread_mutex_lock(&v->lock);
  if (v->cancel) PQfreeCancel(v->cancel);
  v->cancel = NULL;
  pthread_mutex_unlock(&v->lock);
  if (v->conn) PQfinish(v->conn);
  v->conn = NULL;
}

/* Its own session: read-only, every statement bounded, named in
 * pg_stat_activity. The admin's DSN comes last and may override. */
static bool ensure_conn(tally__verifier *v) {
  if (v->conn && PQstatus(v->conn) == CONNECTION_OK) return true;
  drop_conn(v);
  if (mono_ms() < v->retry_at_ms) return false;
  char options[128];
  snprintf(options, sizeof options, "-c statement_timeout=%d -c default_transaction_read_only=on",
           TALLY__VERIFY_STATEMENT_MS);
  const char *keys[] = {"options", "connect_timeout", "application_name", "dbname", NULL};
  const char *vals[] = {options, "3", "tally-verifier", v->dsn, NULL};
  v->conn = PQconnectdbParams(keys, vals, 1);
  if (!v->conn || PQstatus(v->conn) != CONNECTION_OK) {
    drop_conn(v);
    v->retry_at_ms = mono_ms() + TALLY__VERIFY_RECONNECT_MS;
    return false;
  }
  PGcancel *cancel = PQgetCancel(v->conn);
  pthread_mutex_lock(&v->lock);
  v->cancel = cancel;
  pthread_mutex_unlock(&v->lock);
  return true;
}

/* Committed refunds of purchase id (kind 3 = refund). */
static int refunded_of(PGconn *conn, uint64_t id, int64_t *out) {
  char p_id[24];
  snprintf(p_id, sizeof p_id, "%" PRIu64, id);
  const char *params[1] = {p_id};
  PGresult *r = PQexecParams(conn,
                             "SELECT coalesce(sum(amount_minor), 0) FROM transfers"
                             " WHERE ref_transfer = $1 AND kind = 3",
                             1, NULL, params, NULL, NULL, 0);
  int rc = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? TALLY_OK : TALLY_EDB;
  if (rc == TALLY_OK) *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return rc;
}

static void run_job(tally__verifier *v, tally__verify_job *j) {
  j->why[0] = '\0';
  j->refunded_minor = 0;
  if (!ensure_conn(v)) {
    j->rc = TALLY_EDB;
    snprintf(j->why, sizeof j->why, "%s", tally_strerror(TALLY_EDB));
    return;
  }
  /* The same load as `tally verify`: it recomputes the batch's leaves from
   * the stored transfers, their root, and the batch's signature with the
   * key the batch names. */
  j->rc = tally__receipt_pg_load(v->conn, j->receipt, &j->proof, j->why, sizeof j->why);
  if (j->rc == TALLY_OK && strcmp(j->proof.key_id, v->engine_key_id) != 0) {
    char batch_key[TALLY_KEY_ID_CHARS + 1];
    memcpy(batch_key, j->proof.key_id, sizeof batch_key);
    j->rc = TALLY_EBADSIG;
    snprintf(j->why, sizeof j->why, "its batch is signed by key %s, not by this engine's key %s", batch_key,
             v->engine_key_id);
  }
  /* The receipt's own proof (leaf, audit path, signature) with the key
   * this engine signs with, not one read from the database. */
  if (j->rc == TALLY_OK && tally__receipt_proof_verify(&j->proof, v->engine_pub) != TALLY_OK) {
    j->rc = TALLY_EBADSIG;
    snprintf(j->why, sizeof j->why, "its proof does not verify with this engine's key %s", v->engine_key_id);
  }
  if (j->rc == TALLY_OK && j->proof.kind == 1 && refunded_of(v->conn, j->receipt, &j->refunded_minor) != TALLY_OK)
    j->rc = TALLY_EDB;
  if (j->rc == TALLY_EDB && PQstatus(v->conn) != CONNECTION_OK) drop_conn(v);
  if (j->rc == TALLY_EDB && !j->why[0]) snprintf(j->why, sizeof j->why, "%s", tally_strerror(TALLY_EDB));
}

static void *verifier_thread(void *arg) {
  tally__verifier *v = arg;
  pthread_mutex_lock(&v->lock);
  for (;;) {
    while (!v->stopping && v->finished == v->submitted) pthread_cond_wait(&v->cond, &v->lock);
    if (v->stopping) break;
    tally__verify_job *j = &v->jobs[v->finished % TALLY__VERIFY_JOBS_MAX];
    pthread_mutex_unlock(&v->lock);
    run_job(v, j);
    pthread_mutex_lock(&v->lock);
    v->finished++;
    uv_async_send(v->wake);
  }
  pthread_mutex_unlock(&v->lock);
  drop_conn(v);
  return NULL;
}

int tally__verifier_start(const char *dsn, const uint8_t engine_pub[TALLY_PUBKEY_BYTES], uv_async_t *wake,
                          tally__verifier **out) {
  tally__verifier *v = calloc(1, sizeof *v);
  if (!v) return TALLY_ENOMEM;
  v->dsn = strdup(dsn ? dsn : "");
  v->wake = wake;
  memcpy(v->engine_pub, engine_pub, sizeof v->engine_pub);
  tally__key_id(engine_pub, v->engine_key_id);
  pthread_mutex_init(&v->lock, NULL);
  pthread_cond_init(&v->cond, NULL);
  if (!v->dsn || pthread_create(&v->thread, NULL, verifier_thread, v) != 0) {
    pthread_cond_destroy(&v->cond);
    pthread_mutex_destroy(&v->lock);
    free(v->dsn);
    free(v);
    return TALLY_ENOMEM;
  }
  *out = v;
  return TALLY_OK;
}

tally__verify_job *tally__verifier_slot(tally__verifier *v) {
  if (!v) return NULL;
  pthread_mutex_lock(&v->lock);
  bool full = v->submitted - v->collected >= TALLY__VERIFY_JOBS_MAX;
  uint64_t at = v->submitted;
  pthread_mutex_unlock(&v->lock);
  if (full) return NULL;
  tally__verify_job *j = &v->jobs[at % TALLY__VERIFY_JOBS_MAX];
  memset(j, 0, sizeof *j);
  return j;
}

void tally__verifier_commit(tally__verifier *v) {
  pthread_mutex_lock(&v->lock);
  v->submitted++;
  pthread_cond_signal(&v->cond);
  pthread_mutex_unlock(&v->lock);
}

uint32_t tally__verifier_collect(tally__verifier *v, void (*fn)(void *ud, const tally__verify_job *j), void *ud) {
  if (!v) return 0;
  pthread_mutex_lock(&v->lock);
  uint64_t finished = v->finished;
  pthread_mutex_unlock(&v->lock);
  uint32_t n = 0;
  for (uint64_t k = v->collected; k < finished; k++, n++) fn(ud, &v->jobs[k % TALLY__VERIFY_JOBS_MAX]);
  pthread_mutex_lock(&v->lock);
  v->collected = finished;
  pthread_mutex_unlock(&v->lock);
  return n;
}

void tally__verifier_stop(tally__verifier *v) {
  if (!v) return;
  char err[128];
  pthread_mutex_lock(&v->lock);
  v->stopping = true;
  if (v->cancel) (void)PQcancel(v->cancel, err, sizeof err); /* a running query ends now */
  pthread_cond_signal(&v->cond);
  pthread_mutex_unlock(&v->lock);
  pthread_join(v->thread, NULL);
  pthread_cond_destroy(&v->cond);
  pthread_mutex_destroy(&v->lock);
  free(v->dsn);
  free(v);
}
