/* verifier.h — VERIFY <receipt> in chat checks what `tally verify` checks,
 * on a thread and a PostgreSQL connection of its own, so the engine's loop
 * never waits for it and a flood of VERIFY cannot slow anyone's purchase.
 *
 * Contract
 * --------
 * - The engine thread submits jobs (tally__verifier_submit) into a bounded
 *   FIFO of TALLY__VERIFY_JOBS_MAX; a full FIFO is TALLY_EBUSY at once
 *   (the caller answers "busy"). Nothing on the engine thread blocks.
 * - The verifier thread takes jobs in order and, for each, on its own
 *   connection (connected when first needed; after a failure, again once
 *   TALLY__VERIFY_RECONNECT_MS passed; statement_timeout bounds a query;
 *   read-only transactions): loads the transfer and its batch
 *   (tally__receipt_pg_load: the leaf recomputed from the stored transfer,
 *   every leaf of the batch, its Merkle root against the stored root, the
 *   batch's signature with the key it names), then checks the proof
 *   (leaf, audit path, signature) with the ENGINE's public key, and for a
 *   purchase sums its committed refunds. Then it wakes the engine loop
 *   (uv_async_send on the handle it was given).
 * - On the engine thread, tally__verifier_collect hands every finished job
 *   to a callback, in submission order, and frees its slot.
 * - tally__verifier_stop cancels a running query and joins the thread;
 *   unanswered jobs are dropped (the engine is stopping).
 * - Results: rc TALLY_OK (valid), TALLY_EBADSIG (not valid, `why` says
 *   what failed), TALLY_ENOTFOUND (no such signed transfer), TALLY_EDB
 *   (database unavailable or a query failed).
 */
#ifndef TALLY_VERIFIER_H
#define TALLY_VERIFIER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "receipt.h"
#include "signer.h"
#include "state.h"

enum {
  TALLY__VERIFY_JOBS_MAX = 32,          /* VERIFYs waiting or running; more: "busy" */
  TALLY__VERIFY_RECONNECT_MS = 1000,    /* after a failed connect, fail fast this long */
  TALLY__VERIFY_STATEMENT_MS = 5000,    /* statement_timeout of the verifier's session */
};

typedef struct tally__verify_job {
  /* set by the engine thread */
  uint64_t req_id, receipt;
  char requester[TALLY__ACCOUNT_NAME_BYTES]; /* "user:<name>", "" when not logged in */
  /* Copies, sized by the wire's limits, not handles into the names table:
   * the verifier thread reads them, and only the engine thread may read
   * that table. 32 jobs of ~5 KiB each. */
  char origin[TALLY_ORIGIN_BYTES_MAX + 1];
  char channel[TALLY_ROOM_BYTES_MAX + 1];
  uint16_t net; /* the network of origin and channel */
  /* set by the verifier thread */
  int rc;
  char why[TALLY_ERRBUF_BYTES];
  tally__receipt_proof proof;
  int64_t refunded_minor; /* committed refunds of a purchase */
} tally__verify_job;

typedef struct tally__verifier tally__verifier;

/* Starts the thread; wake is an initialised uv_async_t of the engine loop.
 * TALLY_ENOMEM when the thread cannot start. */
int tally__verifier_start(const char *dsn, const uint8_t engine_pub[TALLY_PUBKEY_BYTES], uv_async_t *wake,
                          tally__verifier **out);
/* Engine thread. The slot to fill, or NULL when the FIFO is full; the job
 * goes to the thread at tally__verifier_commit. */
tally__verify_job *tally__verifier_slot(tally__verifier *v);
void tally__verifier_commit(tally__verifier *v);
/* Engine thread: every finished job to fn, in order. Returns how many. */
uint32_t tally__verifier_collect(tally__verifier *v, void (*fn)(void *ud, const tally__verify_job *j), void *ud);
/* Any thread but the verifier's; NULL is allowed. Stops and frees. */
void tally__verifier_stop(tally__verifier *v);

#endif
