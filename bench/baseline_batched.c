/* baseline_batched.c — the hand-batched SQL baseline of `make bench`.
 *
 * "The best a careful user gets from hand-batched SQL": 2 client threads,
 * each with its own synchronous libpq connection, repeatedly send one
 * transaction of 1,000 buys: a single call of batched_buy() (bench/naive.sql)
 * with three array parameters (idempotency keys, buyers, items). Server side,
 * in one transaction: 1,000 transfers and 3,000 entries via unnest, then the
 * stock and wallet rows are updated once each from aggregated deltas, in id
 * order, under the same CHECKs as the naive schema. synchronous_commit stays
 * on: every batch waits for its WAL flush.
 *
 * Prints one JSON object on stdout:
 *   {"batched_sql_per_s": X, "batched_sql_clients": 2, "batched_sql_batch": 1000}
 *
 * Usage: baseline_batched --dsn DSN --seconds S [--quick]
 * The database must hold bench/naive.sql and naive_seed(10000, 100).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/bench_util.h"

enum {
  BUYERS = 10000,
  ITEMS = 100,
  BUYER_ID_BASE = 1000000, /* buyer b (1..BUYERS) is wallet BUYER_ID_BASE + b */
  CLIENTS = 2,
  BATCH = 1000,
  KEY_LEN = 48, /* an idempotency key, as written into the array literal */
  ID_LEN = 24,
  ERR_LEN = 256,
};

static const char *const BATCH_SQL =
    "SELECT batched_buy($1::text[], $2::bigint[], $3::bigint[])";
static const char *const STMT = "batch";

typedef struct options {
  const char *dsn;
  double seconds;
} options;

/* Array literals of one batch, rebuilt in place for every transaction. */
typedef struct batch_text {
  char keys[BATCH * KEY_LEN + 3];
  char buyers[BATCH * ID_LEN + 3];
  char items[BATCH * ID_LEN + 3];
} batch_text;

typedef struct worker {
  pthread_t thread;
  const char *dsn;
  pthread_barrier_t *start;
  atomic_int *stop;
  unsigned long long run_id;
  int index;
  uint64_t rng;
  long done, failed_batches;
  batch_text text;
  char err[ERR_LEN];
} worker;

/* Keys hold only [0-9a-z-], so the array literals need no quoting. */
static void build_batch(worker *w, long seq) {
  batch_text *t = &w->text;
  char *k = t->keys, *b = t->buyers, *it = t->items;
  *k++ = '{';
  *b++ = '{';
  *it++ = '{';
  for (int i = 0; i < BATCH; i++) {
    const char *sep = i + 1 < BATCH ? "," : "}";
    k += sprintf(k, "b%llx-%d-%ld-%d%s", w->run_id, w->index, seq, i, sep);
    b += sprintf(b, "%d%s", BUYER_ID_BASE + 1 + (int)(bench_next_rand(&w->rng) % BUYERS), sep);
    it += sprintf(it, "%d%s", 1 + (int)(bench_next_rand(&w->rng) % ITEMS), sep);
  }
}

/* Sends one batch; returns the buys applied, or -1. */
static long send_batch(worker *w, PGconn *conn, long seq) {
  build_batch(w, seq);
  const char *params[3] = {w->text.keys, w->text.buyers, w->text.items};
  PGresult *res = PQexecPrepared(conn, STMT, 3, params, NULL, NULL, 0);
  long applied = -1;
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
    applied = atol(PQgetvalue(res, 0, 0));
  else
    bench_note_error(w->err, sizeof w->err, "batched_buy", PQerrorMessage(conn));
  PQclear(res);
  return applied;
}

/* Every batch that commits counts, including the one in flight at the stop:
 * the clock runs until the last thread has finished. */
static void *worker_main(void *arg) {
  worker *w = arg;
  PGconn *conn = bench_connect_prepared(w->dsn, STMT, BATCH_SQL, 3, w->err, sizeof w->err);
  pthread_barrier_wait(w->start);
  if (conn == NULL) return NULL;
  for (long seq = 0; !atomic_load(w->stop); seq++) {
    long applied = send_batch(w, conn, seq);
    if (applied >= 0) w->done += applied;
    else w->failed_batches++;
  }
  PQfinish(conn);
  return NULL;
}

static double run(const options *opt, unsigned long long run_id) {
  static worker ws[CLIENTS]; /* large array buffers: keep them off the stack */
  pthread_barrier_t start;
  atomic_int stop = 0;
  pthread_barrier_init(&start, NULL, CLIENTS + 1);
  for (int i = 0; i < CLIENTS; i++) {
    ws[i] = (worker){.dsn = opt->dsn, .start = &start, .stop = &stop, .run_id = run_id,
                     .index = i, .rng = run_id * 31 + (uint64_t)i * 7919 + 1};
    if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
      fprintf(stderr, "baseline_batched: pthread_create failed\n");
      return -1; /* CLIENTS is tiny; failing here is not worth a clean unwind */
    }
  }
  pthread_barrier_wait(&start);
  double t0 = bench_now_s();
  bench_sleep_s(opt->seconds);
  atomic_store(&stop, 1);
  long done = 0, failed = 0;
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(ws[i].thread, NULL);
    done += ws[i].done;
    failed += ws[i].failed_batches;
    if (ws[i].err[0] != '\0') fprintf(stderr, "baseline_batched: %s", ws[i].err);
  }
  double elapsed = bench_now_s() - t0;
  pthread_barrier_destroy(&start);
  fprintf(stderr, "baseline_batched: %d clients x %d: %ld buys (%ld batches failed) in %.2fs = %.0f/s\n",
          CLIENTS, BATCH, done, failed, elapsed, (double)done / elapsed);
  return done > 0 && failed == 0 ? (double)done / elapsed : -1;
}

static int parse_args(int argc, char **argv, options *opt) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) opt->dsn = argv[++i];
    else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) opt->seconds = atof(argv[++i]);
    else if (strcmp(argv[i], "--quick") != 0) return -1; /* accepted, changes nothing */
  }
  return opt->dsn != NULL && opt->seconds > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  options opt = {0};
  if (parse_args(argc, argv, &opt) != 0) {
    fprintf(stderr, "usage: %s --dsn DSN --seconds S [--quick]\n", argv[0]);
    return 2;
  }
  unsigned long long run_id = (unsigned long long)time(NULL) << 20 ^ (unsigned long long)getpid();
  double rate = run(&opt, run_id);
  if (rate < 0) return 1;
  printf("{\"batched_sql_per_s\": %.1f, \"batched_sql_clients\": %d, \"batched_sql_batch\": %d}\n",
         rate, CLIENTS, BATCH);
  return 0;
}
