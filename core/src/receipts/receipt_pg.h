/* receipt_pg.h — receipt proofs and batch audits read from PostgreSQL.
 *
 * Contract
 * --------
 * - Blocking libpq calls for the CLI (`tally receipt`, `tally verify`) and
 *   `tally check`; never called on the engine's hot path. The connection is
 *   borrowed and left as it was (no transaction is opened or closed).
 * - The leaves of a batch are the receipt leaves of all transfers whose
 *   batch_id is the batch, within first_transfer..last_transfer, in id order;
 *   their number must equal batches.leaf_count. serial is 0 (no column yet).
 * - Errors: TALLY_ENOTFOUND (unknown transfer, unsigned transfer, unknown
 *   key), TALLY_EDB (query failed or a column has an unexpected type or
 *   value), TALLY_EBADSIG (stored data does not match its signed batch),
 *   TALLY_ETOOBIG (a name longer than TALLY_NAME_BYTES_MAX), TALLY_ENOMEM.
 *   err receives a sentence when err_len > 0.
 */
#ifndef TALLY_RECEIPT_PG_H
#define TALLY_RECEIPT_PG_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "receipt.h"

/* Fills *out with the transfer, its audit path and its batch's signature. */
int tally__receipt_pg_load(PGconn *conn, uint64_t transfer_id,
                           tally__receipt_proof *out, char *err,
                           size_t err_len);
/* Public key of key_id from signing_keys. TALLY_EBADSIG if the stored key
 * does not hash to key_id. */
int tally__receipt_pg_public_key(PGconn *conn, const char *key_id,
                                 uint8_t pub[TALLY_PUBKEY_BYTES]);
/* Recomputes every batch's root from its transfers and verifies its
 * signature with the key it names. Every bad batch is reported to `bad`
 * (its id and why) and the scan goes on, so one bad batch hides no later
 * one; returns TALLY_EBADSIG if any was bad. A database error stops the
 * scan (TALLY_EDB, err says why). *batches_checked counts good batches,
 * *batches_bad the bad ones. */
typedef void (*tally__bad_batch_fn)(void *ud, uint64_t batch_id, const char *why);
int tally__receipt_pg_check_batches(PGconn *conn, uint64_t *batches_checked, uint64_t *batches_bad,
                                    tally__bad_batch_fn bad, void *ud, char *err, size_t err_len);

#endif
