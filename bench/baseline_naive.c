/* baseline_naive.c — the naive baseline of `make bench`.
 *
 * N client threads, each with its own synchronous libpq connection in
 * autocommit mode, call naive_buy() (bench/naive.sql) once per transaction
 * for a fixed time. Tries 1, 8, 32 and 64 clients (not 64 with --quick) and
 * prints the best rate as one JSON object on stdout:
 *
 *   {"naive_per_s": X, "naive_clients": N, "naive_by_clients": {"1": X1, ...}}
 *
 * Usage: baseline_naive --dsn DSN --seconds S [--quick]
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
  KEY_LEN = 64,
  ID_LEN = 24,
  MAX_ROUNDS = 4,
  QUICK_ROUNDS = 3,
  ERR_LEN = 256,
};

static const int CLIENT_COUNTS[MAX_ROUNDS] = {1, 8, 32, 64};
static const char *const BUY_SQL = "SELECT naive_buy($1::bigint, $2::bigint, $3::text)";
static const char *const STMT = "buy";

typedef struct options {
  const char *dsn;
  double seconds;
  int quick;
} options;

/* Workers connect first; the clock starts once all are connected. */
typedef struct gate {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int ready, open;
} gate;

typedef struct worker {
  pthread_t thread;
  const char *dsn;
  gate *start;
  atomic_int *stop;
  unsigned long long run_id;
  int round, index;
  uint64_t rng;
  long done, failed;
  char err[ERR_LEN];
} worker;

static int buy_once(worker *w, PGconn *conn, long seq) {
  char buyer[ID_LEN], item[ID_LEN], key[KEY_LEN];
  snprintf(buyer, sizeof buyer, "%d", BUYER_ID_BASE + 1 + (int)(bench_next_rand(&w->rng) % BUYERS));
  snprintf(item, sizeof item, "%d", 1 + (int)(bench_next_rand(&w->rng) % ITEMS));
  snprintf(key, sizeof key, "n%llx-%d-%d-%ld", w->run_id, w->round, w->index, seq);
  const char *params[3] = {buyer, item, key};
  PGresult *res = PQexecPrepared(conn, STMT, 3, params, NULL, NULL, 0);
  int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
  if (!ok) bench_note_error(w->err, sizeof w->err, "naive_buy", PQerrorMessage(conn));
  PQclear(res);
  return ok;
}

static void gate_arrive(gate *g) {
  pthread_mutex_lock(&g->lock);
  g->ready++;
  pthread_cond_broadcast(&g->cond);
  while (!g->open) pthread_cond_wait(&g->cond, &g->lock);
  pthread_mutex_unlock(&g->lock);
}

static void gate_open_when(gate *g, int arrivals) {
  pthread_mutex_lock(&g->lock);
  while (g->ready < arrivals) pthread_cond_wait(&g->cond, &g->lock);
  g->open = 1;
  pthread_cond_broadcast(&g->cond);
  pthread_mutex_unlock(&g->lock);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  PGconn *conn = bench_connect_prepared(w->dsn, STMT, BUY_SQL, 3, w->err, sizeof w->err);
  gate_arrive(w->start);
  if (conn == NULL) return NULL;
  for (long seq = 0; !atomic_load(w->stop); seq++) {
    int ok = buy_once(w, conn, seq);
    if (atomic_load(w->stop)) break; /* finished after the window closed */
    if (ok) w->done++;
    else w->failed++;
  }
  PQfinish(conn);
  return NULL;
}

/* Runs one round with `clients` connections; returns buys/s, or -1 on error. */
static double run_round(const options *opt, int round, int clients,
                        unsigned long long run_id) {
  worker *ws = calloc((size_t)clients, sizeof *ws);
  gate start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
  atomic_int stop = 0;
  int started = 0;
  if (ws == NULL) return -1;
  for (; started < clients; started++) {
    worker *w = &ws[started];
    *w = (worker){.dsn = opt->dsn, .start = &start, .stop = &stop, .run_id = run_id,
                  .round = round, .index = started,
                  .rng = run_id * 31 + (uint64_t)started * 7919 + 1};
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) break;
  }
  gate_open_when(&start, started);
  double t0 = bench_now_s();
  if (started == clients) bench_sleep_s(opt->seconds);
  atomic_store(&stop, 1);
  double elapsed = bench_now_s() - t0;
  long done = 0, failed = 0;
  const char *err = started < clients ? "pthread_create failed\n" : NULL;
  for (int i = 0; i < started; i++) {
    pthread_join(ws[i].thread, NULL);
    done += ws[i].done;
    failed += ws[i].failed;
    if (err == NULL && ws[i].err[0] != '\0') err = ws[i].err;
  }
  if (err != NULL) fprintf(stderr, "baseline_naive: %d clients: %s", clients, err);
  fprintf(stderr, "baseline_naive: %2d clients: %ld buys (%ld failed) in %.2fs = %.0f/s\n",
          clients, done, failed, elapsed, (double)done / elapsed);
  free(ws);
  return done > 0 && started == clients ? (double)done / elapsed : -1;
}

static int parse_args(int argc, char **argv, options *opt) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dsn") == 0 && i + 1 < argc) opt->dsn = argv[++i];
    else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) opt->seconds = atof(argv[++i]);
    else if (strcmp(argv[i], "--quick") == 0) opt->quick = 1;
    else return -1;
  }
  return opt->dsn != NULL && opt->seconds > 0 ? 0 : -1;
}

static void print_json(const int *counts, const double *rates, int rounds) {
  int best = 0;
  for (int r = 1; r < rounds; r++)
    if (rates[r] > rates[best]) best = r;
  printf("{\"naive_per_s\": %.1f, \"naive_clients\": %d, \"naive_by_clients\": {",
         rates[best], counts[best]);
  for (int r = 0; r < rounds; r++)
    printf("%s\"%d\": %.1f", r ? ", " : "", counts[r], rates[r]);
  printf("}}\n");
}

int main(int argc, char **argv) {
  options opt = {0};
  if (parse_args(argc, argv, &opt) != 0) {
    fprintf(stderr, "usage: %s --dsn DSN --seconds S [--quick]\n", argv[0]);
    return 2;
  }
  int rounds = opt.quick ? QUICK_ROUNDS : MAX_ROUNDS;
  unsigned long long run_id = (unsigned long long)time(NULL) << 20 ^ (unsigned long long)getpid();
  double rates[MAX_ROUNDS];
  for (int r = 0; r < rounds; r++) {
    rates[r] = run_round(&opt, r, CLIENT_COUNTS[r], run_id);
    if (rates[r] < 0) return 1;
  }
  print_json(CLIENT_COUNTS, rates, rounds);
  return 0;
}
