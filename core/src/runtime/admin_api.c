/* admin_api.c — tally/admin.h: thin public wrappers over the internals the
 * `tally` CLI uses (migrate, text, receipt, receipt_pg, raffle), so tools
 * outside core build without -Icore/src. No logic of its own: each function
 * checks its arguments and calls the internal one. */
#include "tally/admin.h"

#include <stdlib.h>
#include <string.h>

#include "migrate.h"
#include "raffle.h"
#include "receipt.h"
#include "receipt_pg.h"
#include "text.h"

_Static_assert((int)TALLY_ADMIN_RECEIPT_TOKEN_BYTES_MAX == (int)TALLY_RECEIPT_TOKEN_BYTES_MAX,
               "admin.h's token limit must follow receipt.h");
_Static_assert((int)TALLY_ADMIN_PUBKEY_BYTES == (int)TALLY_PUBKEY_BYTES, "Ed25519 key size");
_Static_assert((int)TALLY_ADMIN_HASH_BYTES == (int)TALLY__RAFFLE_HASH_BYTES, "SHA-256 size");

enum { ADMIN_RAFFLE_NAME_BYTES_MAX = UINT16_MAX }; /* be16 length in the entry hash */

struct tally_admin_receipt {
  tally__receipt_proof proof;
};

int tally_admin_migrate(struct pg_conn *conn, int *applied, char *err, size_t err_len) {
  int dummy;
  if (!conn) return TALLY_EINVAL;
  return tally__migrate(conn, applied ? applied : &dummy, err, err_len);
}

int tally_admin_schema_version(void) {
  return tally__migrations[tally__migration_count - 1].version;
}

int tally_admin_amount_parse(const char *s, size_t len, uint32_t decimals, int64_t *out_minor) {
  if (!s || !out_minor) return TALLY_EINVAL;
  return tally__amount_parse(s, len, decimals, out_minor);
}

size_t tally_admin_amount_format(int64_t minor, uint32_t decimals, char *out, size_t out_size) {
  if (!out || out_size == 0) return 0;
  return tally__amount_format(minor, decimals, out, out_size);
}

static tally_admin_receipt *receipt_new(void) { return calloc(1, sizeof(tally_admin_receipt)); }

int tally_admin_receipt_load(struct pg_conn *conn, uint64_t transfer_id, tally_admin_receipt **out,
                             char *err, size_t err_len) {
  if (!conn || !out) return TALLY_EINVAL;
  *out = NULL;
  tally_admin_receipt *r = receipt_new();
  if (!r) return TALLY_ENOMEM;
  int rc = tally__receipt_pg_load(conn, transfer_id, &r->proof, err, err_len);
  if (rc) free(r);
  else *out = r;
  return rc;
}

int tally_admin_receipt_decode(const char *token, size_t len, tally_admin_receipt **out) {
  if (!token || !out) return TALLY_EINVAL;
  *out = NULL;
  tally_admin_receipt *r = receipt_new();
  if (!r) return TALLY_ENOMEM;
  int rc = tally__receipt_token_decode(token, len, &r->proof);
  if (rc) free(r);
  else *out = r;
  return rc;
}

int tally_admin_receipt_token(const tally_admin_receipt *r, char *out, size_t cap, size_t *len) {
  size_t dummy;
  if (!r || !out) return TALLY_EINVAL;
  return tally__receipt_token_encode(&r->proof, out, cap, len ? len : &dummy);
}

int tally_admin_receipt_public_key(struct pg_conn *conn, const tally_admin_receipt *r,
                                   uint8_t pub[TALLY_ADMIN_PUBKEY_BYTES]) {
  if (!conn || !r || !pub) return TALLY_EINVAL;
  return tally__receipt_pg_public_key(conn, r->proof.key_id, pub);
}

int tally_admin_receipt_verify(const tally_admin_receipt *r, const uint8_t pub[TALLY_ADMIN_PUBKEY_BYTES]) {
  if (!r || !pub) return TALLY_EINVAL;
  return tally__receipt_proof_verify(&r->proof, pub);
}

void tally_admin_receipt_info_get(const tally_admin_receipt *r, tally_admin_receipt_info *out) {
  if (!out) return;
  memset(out, 0, sizeof *out);
  if (!r) return;
  const tally__receipt_proof *p = &r->proof;
  *out = (tally_admin_receipt_info){.transfer_id = p->transfer_id, .batch_id = p->batch_id, .kind = p->kind,
                                    .qty = p->qty, .amount_minor = p->amount_minor, .leaf_index = p->leaf_index,
                                    .leaf_count = p->leaf_count, .account = p->account,
                                    .counterparty = p->counterparty, .sku = p->sku, .key_id = p->key_id};
}

void tally_admin_receipt_free(tally_admin_receipt *r) { free(r); }

int tally_admin_check_batches(struct pg_conn *conn, uint64_t *checked, uint64_t *bad_count,
                              tally_admin_bad_batch_cb bad, void *ud, char *err, size_t err_len) {
  uint64_t c = 0, b = 0;
  if (!conn) return TALLY_EINVAL;
  int rc = tally__receipt_pg_check_batches(conn, &c, &b, bad, ud, err, err_len);
  if (checked) *checked = c;
  if (bad_count) *bad_count = b;
  return rc;
}

void tally_admin_raffle_commitment(const uint8_t seed[TALLY_ADMIN_HASH_BYTES],
                                   uint8_t out[TALLY_ADMIN_HASH_BYTES]) {
  if (seed && out) tally__raffle_commitment(seed, out);
}

int tally_admin_raffle_order(uint64_t item_id, const uint8_t seed[TALLY_ADMIN_HASH_BYTES],
                             const char *const *names, uint32_t n, uint8_t entry_hash[TALLY_ADMIN_HASH_BYTES],
                             uint32_t *order) {
  if (!seed || !entry_hash || (n > 0 && (!names || !order))) return TALLY_EINVAL;
  for (uint32_t i = 0; i < n; i++)
    if (!names[i] || strlen(names[i]) > ADMIN_RAFFLE_NAME_BYTES_MAX) return TALLY_EINVAL;
  tally__raffle_hasher *h = tally__raffle_hash_begin(item_id, n);
  if (!h) return TALLY_ENOMEM;
  int rc = TALLY_OK;
  for (uint32_t i = 0; i < n && rc == TALLY_OK; i++) rc = tally__raffle_hash_add(h, names[i]);
  int end = tally__raffle_hash_end(h, entry_hash); /* frees h on every path */
  if (rc == TALLY_OK) rc = end;
  if (rc) return rc;
  /* Fisher-Yates fixes position i at step i, so the whole order's prefix is
   * the order the engine walked however far it went. */
  tally__raffle_rng rng;
  tally__raffle_rng_init(&rng, seed, entry_hash);
  for (uint32_t i = 0; i < n; i++) order[i] = i;
  for (uint32_t i = 0; i < n; i++) tally__raffle_step(&rng, order, n, i);
  return TALLY_OK;
}
