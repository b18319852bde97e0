/* tally/admin.h — what the `tally` admin command (and any other offline tool)
 * needs from libtally besides the engine: migrations, amounts, receipts and
 * the raffle draw's recomputation.
 *
 * Contract
 * --------
 * - Every function here that takes a `struct pg_conn *` (libpq's PGconn) is a
 *   blocking libpq call on the caller's own connection. None may run on a chat
 *   server's thread or inside the engine; they are for the CLI, audits and
 *   tests. The connection is borrowed and left as it was: no transaction is
 *   opened or closed, except tally_admin_migrate's own per-migration ones.
 * - Errors are negative TALLY_E* codes (tally.h); when a function takes
 *   err/err_len it writes a sentence there when err_len > 0.
 * - Nothing here writes money. Grants are requests that the running engine
 *   applies (see `tally grant`).
 * - Including this header does not need libpq's headers: `struct pg_conn` is
 *   the type libpq's `PGconn` names.
 * - Outputs are plain values or handles owned by the caller, freed with the
 *   matching *_free; strings in tally_admin_receipt_info are borrowed from the
 *   receipt handle and live as long as it does.
 */
#ifndef TALLY_ADMIN_H
#define TALLY_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "tally.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pg_conn; /* libpq's PGconn */

enum {
  TALLY_ADMIN_HASH_BYTES = 32,   /* SHA-256: raffle seeds, commitments, entry hashes */
  TALLY_ADMIN_PUBKEY_BYTES = 32, /* Ed25519 public key of a signing key */
  /* Longest receipt token ("tr1." or "tr2." + base64url); buffers add one for the NUL.
   * Follows TALLY_IDENTITY_BYTES_MAX (core checks the two agree at compile time);
   * 2196 before 1.6, when names had 64 bytes. */
  TALLY_ADMIN_RECEIPT_TOKEN_BYTES_MAX = 12954,
};

/* ---- Migrations ----------------------------------------------------------- */
/* Applies, in order and each in its own transaction, every SQL migration
 * compiled into this libtally that the ledger does not have yet, under an
 * advisory lock (two processes never migrate at once). *applied = how many
 * were applied now. */
TALLY_API int tally_admin_migrate(struct pg_conn *conn, int *applied, char *err,
                                  size_t err_len);
/* The newest schema version compiled into this libtally. */
TALLY_API int tally_admin_schema_version(void);

/* ---- Amounts --------------------------------------------------------------- */
/* "5", "5.2", "5.25" with decimals 2 -> 500, 520, 525 minor units. Zero,
 * negative, too many decimals or an int64 overflow are refused with a code. */
TALLY_API int tally_admin_amount_parse(const char *s, size_t len, uint32_t decimals,
                                       int64_t *out_minor);
/* 525 with decimals 2 -> "5.25". Always NUL-terminates; returns the length. */
TALLY_API size_t tally_admin_amount_format(int64_t minor, uint32_t decimals, char *out,
                                           size_t out_size);

/* ---- Receipts -------------------------------------------------------------- */
/* A receipt with its Merkle proof and its batch's signature (opaque). */
typedef struct tally_admin_receipt tally_admin_receipt;

/* What a receipt says, for printing. kind: 1 purchase, 2 tip, 3 refund,
 * 4 grant. counterparty and sku are "" when absent. */
typedef struct tally_admin_receipt_info {
  uint64_t transfer_id, batch_id;
  uint32_t kind, qty;
  int64_t amount_minor;
  uint32_t leaf_index, leaf_count; /* position in the batch's tree */
  const char *account, *counterparty, *sku;
  const char *key_id; /* hex id of the key that signed the batch */
} tally_admin_receipt_info;

/* Loads transfer_id's receipt from the ledger. TALLY_ENOTFOUND for an
 * unknown or not yet signed transfer, TALLY_EDB, TALLY_EBADSIG (stored data
 * does not match its signed batch), TALLY_ENOMEM. */
TALLY_API int tally_admin_receipt_load(struct pg_conn *conn, uint64_t transfer_id,
                                       tally_admin_receipt **out, char *err, size_t err_len);
/* Parses a receipt token (token[0..len), no NUL needed). TALLY_EFRAME for
 * anything the encoder would not have produced. Checks nothing: see
 * tally_admin_receipt_verify. */
TALLY_API int tally_admin_receipt_decode(const char *token, size_t len,
                                         tally_admin_receipt **out);
/* Writes the token and a NUL; *len excludes the NUL. TALLY_ETOOBIG if cap is
 * below TALLY_ADMIN_RECEIPT_TOKEN_BYTES_MAX + 1. */
TALLY_API int tally_admin_receipt_token(const tally_admin_receipt *r, char *out, size_t cap,
                                        size_t *len);
/* The public key the receipt's key_id names, from the ledger's signing_keys.
 * TALLY_ENOTFOUND, TALLY_EBADSIG if the stored key does not hash to key_id. */
TALLY_API int tally_admin_receipt_public_key(struct pg_conn *conn, const tally_admin_receipt *r,
                                             uint8_t pub[TALLY_ADMIN_PUBKEY_BYTES]);
/* TALLY_OK when pub is the key the receipt names, its leaf hashes up to the
 * batch root along the proof, and the signature signs that root;
 * TALLY_EBADSIG otherwise; TALLY_ECRYPTO if OpenSSL could not run. Offline. */
TALLY_API int tally_admin_receipt_verify(const tally_admin_receipt *r,
                                         const uint8_t pub[TALLY_ADMIN_PUBKEY_BYTES]);
TALLY_API void tally_admin_receipt_info_get(const tally_admin_receipt *r,
                                            tally_admin_receipt_info *out);
TALLY_API void tally_admin_receipt_free(tally_admin_receipt *r);

/* Recomputes every batch's Merkle root from its transfers and verifies its
 * signature. Every bad batch is reported to `bad` (may be NULL) and the scan
 * goes on; returns TALLY_EBADSIG if any was bad, TALLY_EDB on a database
 * error (the scan stops). *checked counts good batches, *bad_count bad ones. */
typedef void (*tally_admin_bad_batch_cb)(void *ud, uint64_t batch_id, const char *why);
TALLY_API int tally_admin_check_batches(struct pg_conn *conn, uint64_t *checked,
                                        uint64_t *bad_count, tally_admin_bad_batch_cb bad,
                                        void *ud, char *err, size_t err_len);

/* ---- Raffle draws (docs/RAFFLE.md) ------------------------------------------ */
/* commitment = SHA-256(seed), announced when a raffle opens. */
TALLY_API void tally_admin_raffle_commitment(const uint8_t seed[TALLY_ADMIN_HASH_BYTES],
                                             uint8_t out[TALLY_ADMIN_HASH_BYTES]);
/* From the revealed seed and the n entries' account names in arrival order,
 * computes the entry hash and the whole draw order: order[k] is the index
 * (into names) of the k-th entry drawn. Winners are taken in that order.
 * TALLY_EINVAL for a NULL argument or a name longer than the hash format's
 * 65,535 bytes (names come from the ledger: refused, never asserted),
 * TALLY_ENOMEM, TALLY_ECRYPTO. */
TALLY_API int tally_admin_raffle_order(uint64_t item_id, const uint8_t seed[TALLY_ADMIN_HASH_BYTES],
                                       const char *const *names, uint32_t n,
                                       uint8_t entry_hash[TALLY_ADMIN_HASH_BYTES],
                                       uint32_t *order);

#ifdef __cplusplus
}
#endif
#endif
