/* bench_util.h — what every bench program needs: a monotonic clock, a
 * seeded random stream, sleeping, percentiles of latency samples,
 * `--dsn DSN [--quick]` arguments, and a PostgreSQL connection with one
 * prepared statement (the baselines). Not part of libtally. */
#ifndef TALLY_BENCH_UTIL_H
#define TALLY_BENCH_UTIL_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* Seconds on the monotonic clock. */
double bench_now_s(void);
void bench_sleep_s(double seconds);
/* xorshift64*: *state must not be 0. */
uint64_t bench_next_rand(uint64_t *state);
/* Sorts samples[0..n) and returns the q-quantile (0 <= q < 1); 0 when n is 0. */
double bench_quantile(double *samples, int n, double q);
/* The sample at quantile q of samples already sorted. */
double bench_quantile_sorted(const double *samples, int n, double q);
/* Reads `--dsn DSN` and `--quick`; anything else, or no DSN, prints
 * "usage: <name> --dsn DSN [--quick]" and returns -1. */
int bench_parse_dsn_quick(int argc, char **argv, const char *name, const char **dsn, int *quick);
/* Connects to dsn and prepares `stmt` as `sql` with nparams parameters;
 * NULL with "connect: ..." or "prepare: ..." in err (if err is still
 * empty) when either fails. */
PGconn *bench_connect_prepared(const char *dsn, const char *stmt, const char *sql, int nparams, char *err,
                               size_t err_len);
/* Keeps the first error: "what: msg" into err if err is empty. */
void bench_note_error(char *err, size_t err_len, const char *what, const char *msg);

#endif
