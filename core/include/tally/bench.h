/* tally/bench.h — benchmark-only entry points. NOT for hosts.
 *
 * Contract: these run pieces of the engine in isolation so `make bench` can
 * measure them without reaching into core's private headers. They allocate
 * their own private state (production-default table sizes), touch no
 * database and no engine, and are single-threaded. Their meaning may change
 * with any release; hosts must use tally.h only. */
#ifndef TALLY_BENCH_H
#define TALLY_BENCH_H

#include <stdint.h>

#include "tally.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The decide_per_s row: `rounds` in-memory buy decisions of one unit of a
 * 5.00 item by one funded buyer, each with a fresh idempotency key, each
 * decided and committed in memory (tally__decide_buy + tally__op_commit),
 * on a fresh state built from tally_config_init's defaults. *elapsed_s is
 * the monotonic time of the loop alone (state set-up excluded). TALLY_OK,
 * TALLY_ENOMEM, or the refusal code of the first decision that failed. */
TALLY_API int tally_bench_decide(uint64_t rounds, double *elapsed_s);

#ifdef __cplusplus
}
#endif
#endif
