/* receipt.h — receipt leaves, receipt tokens and offline proof checking.
 *
 * Contract
 * --------
 * - A receipt leaf commits to one transfer: SHA256(0x00 || canonical), where
 *   canonical is "tally-receipt-v1" followed by the fields of
 *   tally__receipt_fields from transfer_id to serial in declaration order,
 *   integers big-endian at their declared width (signed ones as two's
 *   complement), strings as a u16 big-endian length and the bytes. Version 2
 *   (batches.leaf_version 2, sql/011: every batch since identities) is
 *   "tally-receipt-v2", the same fields, then network, identity, shard (u32)
 *   and reward (u64): the network and name of the identity whose command
 *   made the transfer ("" and "" for the engine's own), and room for a shard
 *   and a reward (0 for now). tally__receipt_leaf never allocates; strings
 *   over their limits are a programmer error.
 * - A receipt token is "tr1." + base64url without padding of a msgpack array
 *   [transfer_id, batch_id, kind, qty, amount_minor, ref_transfer,
 *   created_ms, account, counterparty, sku, serial, leaf_index, leaf_count,
 *   [path bin32...], root bin32, signature bin64, key_id str]; a version 2
 *   receipt is "tr2." and the array has network, identity, shard, reward
 *   after serial. Every proof has exactly one token: decoding accepts only
 *   the bytes that encoding produces (anything else is TALLY_EFRAME), and
 *   never crashes on input.
 * - A proof is a plain value (no pointers): copy it freely. Verification
 *   needs only the batch's public key, so a buyer can check a receipt
 *   without the database.
 */
#ifndef TALLY_RECEIPT_H
#define TALLY_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

#include "merkle.h"
#include "signer.h"
#include "tally.h"

enum tally__transfer_kind {
  TALLY_TRANSFER_PURCHASE = 1,
  TALLY_TRANSFER_TIP = 2,
  TALLY_TRANSFER_REFUND = 3,
  TALLY_TRANSFER_GRANT = 4,
};

enum {
  /* Each string field: an account's ledger name, "<network>:<identity>"
   * (64 before 1.6; the leaf's u16 lengths and msgpack's str16 hold more,
   * so tokens and leaves keep their format). */
  TALLY_RECEIPT_TEXT_BYTES_MAX = 32 + 1 + TALLY_IDENTITY_BYTES_MAX,
  TALLY_RECEIPT_NETWORK_BYTES_MAX = 32, /* = TALLY__NETWORK_NAME_BYTES_MAX (text.h) */
  TALLY_RECEIPT_FIELD_COUNT = 17, /* elements of the token's msgpack array */
  TALLY_RECEIPT_V2_FIELD_COUNT = 21, /* ... of a version 2 token */
  TALLY_RECEIPT_VERSION_MAX = 2,
  /* Largest msgpack body: array16 header, 15 integers of at most 9 bytes,
   * 4 str16 strings and the network's str8, an array16 of bin8 hashes,
   * root, signature, key id. */
  TALLY_RECEIPT_PACK_BYTES_MAX =
      3 + 15 * 9 + 4 * (3 + TALLY_RECEIPT_TEXT_BYTES_MAX) + (2 + TALLY_RECEIPT_NETWORK_BYTES_MAX) +
      3 + TALLY_MERKLE_DEPTH_MAX * (2 + TALLY_HASH_BYTES) +
      (2 + TALLY_HASH_BYTES) + (2 + TALLY_SIG_BYTES) + (1 + TALLY_KEY_ID_CHARS),
  /* "tr1." or "tr2." + unpadded base64url of the body; buffers add one for NUL. */
  TALLY_RECEIPT_TOKEN_BYTES_MAX = 4 + (TALLY_RECEIPT_PACK_BYTES_MAX * 4 + 2) / 3,
};

/* Borrowed view of one transfer, as the engine has it at commit time.
 * counterparty and sku are "" when absent; serial is 0 when none. */
typedef struct tally__receipt_fields {
  uint64_t transfer_id, batch_id;
  uint32_t kind, qty;
  int64_t amount_minor;
  uint64_t ref_transfer;
  int64_t created_ms;
  const char *account, *counterparty, *sku;
  uint32_t serial;
  /* Version 2 only (version 0 or 1: a v1 leaf, these are not read). */
  uint32_t version;
  const char *network, *identity; /* NULL is "" */
  uint32_t shard;
  uint64_t reward;
} tally__receipt_fields;

/* Everything needed to check one receipt offline, strings stored inline. */
typedef struct tally__receipt_proof {
  uint64_t transfer_id, batch_id;
  uint32_t kind, qty;
  int64_t amount_minor;
  uint64_t ref_transfer;
  int64_t created_ms;
  char account[TALLY_RECEIPT_TEXT_BYTES_MAX + 1];
  char counterparty[TALLY_RECEIPT_TEXT_BYTES_MAX + 1];
  char sku[TALLY_RECEIPT_TEXT_BYTES_MAX + 1];
  uint32_t serial;
  uint32_t version; /* 1 or 2 (0 is read as 1) */
  char network[TALLY_RECEIPT_NETWORK_BYTES_MAX + 1];
  char identity[TALLY_RECEIPT_TEXT_BYTES_MAX + 1];
  uint32_t shard;
  uint64_t reward;
  uint32_t leaf_index, leaf_count; /* position in the batch's tree */
  uint32_t path_len;
  uint8_t path[TALLY_MERKLE_DEPTH_MAX][TALLY_HASH_BYTES];
  uint8_t root[TALLY_HASH_BYTES];
  uint8_t sig[TALLY_SIG_BYTES];
  char key_id[TALLY_KEY_ID_CHARS + 1];
} tally__receipt_proof;

void tally__receipt_leaf(const tally__receipt_fields *fields,
                         uint8_t leaf[TALLY_HASH_BYTES]);

/* Copies fields into p (other members untouched). TALLY_ETOOBIG when a
 * string is longer than TALLY_RECEIPT_TEXT_BYTES_MAX. */
int tally__receipt_proof_set_fields(tally__receipt_proof *p,
                                    const tally__receipt_fields *fields);
/* A view of p's fields; its strings are borrowed from p. */
void tally__receipt_proof_fields(const tally__receipt_proof *p,
                                 tally__receipt_fields *fields);

/* Writes the token and a NUL into out; *len excludes the NUL. TALLY_ETOOBIG
 * if cap is too small (TALLY_RECEIPT_TOKEN_BYTES_MAX + 1 always fits),
 * TALLY_EINVAL for a proof whose strings or path exceed their limits. */
int tally__receipt_token_encode(const tally__receipt_proof *p, char *out,
                                size_t cap, size_t *len);
/* Parses token[0..len) (no NUL needed) into *out. TALLY_EFRAME for anything
 * that tally__receipt_token_encode would not have produced; *out is then
 * zeroed. Does not check the proof: see tally__receipt_proof_verify. */
int tally__receipt_token_decode(const char *token, size_t len,
                                tally__receipt_proof *out);

/* TALLY_OK when p's key_id names public_key, the recomputed leaf hashes up
 * to p->root along p->path, and p->sig signs that root for the batch;
 * TALLY_EBADSIG otherwise; TALLY_ECRYPTO if OpenSSL could not run. */
int tally__receipt_proof_verify(const tally__receipt_proof *p,
                                const uint8_t public_key[TALLY_PUBKEY_BYTES]);

#endif
