/* bench_util.c — shared helpers of the bench programs (bench_util.h). */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_sleep_s(double seconds) {
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

uint64_t bench_next_rand(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_quantile_sorted(const double *samples, int n, double q) {
  if (n <= 0) return 0;
  int i = (int)(n * q);
  return samples[i < n ? i : n - 1];
}

double bench_quantile(double *samples, int n, double q) {
  if (n <= 0) return 0;
  qsort(samples, (size_t)n, sizeof *samples, cmp_double);
  return bench_quantile_sorted(samples, n, q);
}

int bench_parse_dsn_quick(int argc, char **argv, const char *name, const char **dsn, int *quick) {
  *dsn = NULL;
  *quick = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--dsn") && i + 1 < argc) *dsn = argv[++i];
    else if (!strcmp(argv[i], "--quick")) *quick = 1;
    else *dsn = NULL, i = argc;
  }
  if (*dsn) return 0;
  fprintf(stderr, "usage: %s --dsn DSN [--quick]\n", name);
  return -1;
}

void bench_note_error(char *err, size_t err_len, const char *what, const char *msg) {
  if (err[0] == '\0') snprintf(err, err_len, "%s: %s", what, msg);
}

PGconn *bench_connect_prepared(const char *dsn, const char *stmt, const char *sql, int nparams, char *err,
                               size_t err_len) {
  PGconn *conn = PQconnectdb(dsn);
  if (PQstatus(conn) != CONNECTION_OK) {
    bench_note_error(err, err_len, "connect", PQerrorMessage(conn));
    PQfinish(conn);
    return NULL;
  }
  PGresult *res = PQprepare(conn, stmt, sql, nparams, NULL);
  int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  if (!ok) bench_note_error(err, err_len, "prepare", PQerrorMessage(conn));
  PQclear(res);
  if (ok) return conn;
  PQfinish(conn);
  return NULL;
}
