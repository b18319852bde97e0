/* receipt_pg.c — rebuild receipt proofs and audit signed batches from the
 * ledger tables.
 *
 * The engine signs each batch's Merkle root at commit time; here the CLI
 * and `tally check` recompute that root from the rows alone, so any edit to
 * a signed transfer (or a missing or extra row) shows up as a bad batch.
 * Results are fetched in binary format, which makes every column's width
 * explicit: integers are cast to int8 in SQL and checked to be 8 bytes. */
#include "receipt_pg.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  PG_RESULT_BINARY = 1,
  PG_CHECK_PAGE_ROWS = 256, /* batches fetched per query by check */
  PG_PARAM_BYTES = 24,      /* a uint64 in decimal and a NUL */
};

/* Columns 0..10 map to tally__receipt_fields; a NULL name means a dangling
 * reference, reported rather than hashed as "". 11..12 are the network and
 * name of the identity that made it (sql/010; "" for none), which a version
 * 2 leaf names; a version 1 leaf does not read them. A transfer without a
 * transfer_identities row was made by its account's own (first) identity;
 * a row naming identity 0 was made by the engine itself (batch.c). */
#define PG_TRANSFER_SELECT                                                     \
  "SELECT t.id, t.batch_id, t.kind::int8, t.qty::int8, t.amount_minor,"        \
  " coalesce(t.ref_transfer, 0), t.created_ms, a.name,"                        \
  " CASE WHEN t.counterparty_id IS NULL THEN '' ELSE c.name END,"              \
  " CASE WHEN t.item_id IS NULL THEN '' ELSE i.sku END,"                       \
  " coalesce(t.serial, 0)::int8, coalesce(nw.name, ''), coalesce(idn.name, '')," \
  " coalesce((SELECT ru.grant_id FROM reward_uses ru"                          \
  "  WHERE ru.transfer_id = t.id AND ru.kind = 1), 0)"                         \
  " FROM transfers t LEFT JOIN accounts a ON a.id = t.account_id"              \
  " LEFT JOIN transfer_identities ti ON ti.transfer_id = t.id"                 \
  " LEFT JOIN identities idn ON idn.id = coalesce(ti.identity_id,"             \
  "  (SELECT min(i2.id) FROM identities i2 WHERE i2.account_id = t.account_id))" \
  " LEFT JOIN networks nw ON nw.id = idn.network_id"                           \
  " LEFT JOIN accounts c ON c.id = t.counterparty_id"                          \
  " LEFT JOIN items i ON i.id = t.item_id "

#define PG_BATCH_SELECT                                                        \
  "SELECT b.id, b.first_transfer, b.last_transfer, b.leaf_count::int8,"        \
  " b.merkle_root, b.signature, b.key_id, k.public_key, b.leaf_version::int8" \
  " FROM batches b JOIN signing_keys k ON k.key_id = b.key_id "

typedef struct pg_batch {
  uint64_t id, first, last;
  uint32_t leaf_count;
  uint32_t leaf_version; /* 1 before sql/011, 2 since */
  uint8_t root[TALLY_HASH_BYTES];
  uint8_t sig[TALLY_SIG_BYTES];
  uint8_t pub[TALLY_PUBKEY_BYTES];
  char key_id[TALLY_KEY_ID_CHARS + 1];
} pg_batch;

__attribute__((format(printf, 4, 5))) static int
pg_fail(char *err, size_t err_len, int code, const char *fmt, ...) {
  if (err && err_len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
  }
  return code;
}

/* Runs a query with text parameters and binary results; on TALLY_OK the
 * caller owns *res and clears it. */
static int pg_query(PGconn *conn, const char *sql, int n_params,
                    const char *const *params, PGresult **res, char *err,
                    size_t err_len) {
  *res = PQexecParams(conn, sql, n_params, NULL, params, NULL, NULL,
                      PG_RESULT_BINARY);
  if (*res && PQresultStatus(*res) == PGRES_TUPLES_OK) return TALLY_OK;
  int rc = pg_fail(err, err_len, TALLY_EDB, "receipts query: %s",
                   *res ? PQresultErrorMessage(*res) : PQerrorMessage(conn));
  PQclear(*res);
  *res = NULL;
  return rc;
}

static int pg_i64(const PGresult *res, int row, int col, int64_t *out) {
  if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8) return 0;
  const uint8_t *p = (const uint8_t *)PQgetvalue(res, row, col);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  *out = (int64_t)v; /* two's complement, as PostgreSQL sends int8 */
  return 1;
}

static int pg_u64(const PGresult *res, int row, int col, uint64_t max,
                  uint64_t *out) {
  int64_t v;
  if (!pg_i64(res, row, col, &v) || v < 0 || (uint64_t)v > max) return 0;
  *out = (uint64_t)v;
  return 1;
}

static int pg_u32(const PGresult *res, int row, int col, uint32_t *out) {
  uint64_t v;
  if (!pg_u64(res, row, col, UINT32_MAX, &v)) return 0;
  *out = (uint32_t)v;
  return 1;
}

static int pg_bytes(const PGresult *res, int row, int col, uint8_t *dst,
                    size_t n) {
  if (PQgetisnull(res, row, col) || (size_t)PQgetlength(res, row, col) != n) {
    return 0;
  }
  memcpy(dst, PQgetvalue(res, row, col), n);
  return 1;
}

/* TALLY_OK, TALLY_EDB for NULL, TALLY_ETOOBIG when it does not fit cap. */
static int pg_text(const PGresult *res, int row, int col, char *dst, size_t cap) {
  if (PQgetisnull(res, row, col)) return TALLY_EDB;
  size_t n = (size_t)PQgetlength(res, row, col);
  if (n >= cap) return TALLY_ETOOBIG;
  memcpy(dst, PQgetvalue(res, row, col), n);
  dst[n] = '\0';
  return TALLY_OK;
}

/* Row of PG_TRANSFER_SELECT into p's fields; *signed_row (may be NULL)
 * says whether batch_id was set, and batch_id is 0 when it was NULL. */
static int pg_row_fields(const PGresult *res, int row, tally__receipt_proof *p,
                         int *signed_row, char *err, size_t err_len) {
  p->batch_id = 0;
  if (signed_row) *signed_row = !PQgetisnull(res, row, 1);
  int ok = pg_u64(res, row, 0, INT64_MAX, &p->transfer_id) &&
           (PQgetisnull(res, row, 1) ||
            pg_u64(res, row, 1, INT64_MAX, &p->batch_id)) &&
           pg_u32(res, row, 2, &p->kind) && pg_u32(res, row, 3, &p->qty) &&
           pg_i64(res, row, 4, &p->amount_minor) &&
           pg_u64(res, row, 5, INT64_MAX, &p->ref_transfer) &&
           pg_i64(res, row, 6, &p->created_ms);
  if (!ok) return pg_fail(err, err_len, TALLY_EDB, "transfers: bad row %d", row);
  char *dst[3] = {p->account, p->counterparty, p->sku};
  static const char *const what[3] = {"account", "counterparty", "item"};
  for (int i = 0; i < 3; i++) {
    int rc = pg_text(res, row, 7 + i, dst[i], TALLY_RECEIPT_TEXT_BYTES_MAX + 1);
    if (rc == TALLY_EDB) {
      return pg_fail(err, err_len, TALLY_EDB, "transfer %" PRIu64 ": unknown %s",
                     p->transfer_id, what[i]);
    }
    if (rc != TALLY_OK) {
      return pg_fail(err, err_len, rc, "transfer %" PRIu64 ": %s name too long",
                     p->transfer_id, what[i]);
    }
  }
  if (!pg_u32(res, row, 10, &p->serial))
    return pg_fail(err, err_len, TALLY_EDB, "transfers: bad serial in row %d", row);
  if (pg_text(res, row, 11, p->network, sizeof p->network) != TALLY_OK ||
      pg_text(res, row, 12, p->identity, sizeof p->identity) != TALLY_OK)
    return pg_fail(err, err_len, TALLY_ETOOBIG, "transfer %" PRIu64 ": identity name too long", p->transfer_id);
  p->shard = 0; /* no shards yet: room in the v2 leaf */
  /* The earned reward a purchase used (sql/015), 0 for every other transfer. */
  if (!pg_u64(res, row, 13, INT64_MAX, &p->reward))
    return pg_fail(err, err_len, TALLY_EDB, "transfers: bad reward in row %d", row);
  return TALLY_OK;
}

static int pg_batch_row(const PGresult *res, int row, pg_batch *b, char *err,
                        size_t err_len) {
  int ok = pg_u64(res, row, 0, INT64_MAX, &b->id) &&
           pg_u64(res, row, 1, INT64_MAX, &b->first) &&
           pg_u64(res, row, 2, INT64_MAX, &b->last) &&
           pg_u32(res, row, 3, &b->leaf_count) && b->leaf_count > 0 &&
           pg_bytes(res, row, 4, b->root, sizeof b->root) &&
           pg_bytes(res, row, 5, b->sig, sizeof b->sig) &&
           pg_text(res, row, 6, b->key_id, sizeof b->key_id) == TALLY_OK &&
           pg_bytes(res, row, 7, b->pub, sizeof b->pub) &&
           pg_u32(res, row, 8, &b->leaf_version) && b->leaf_version >= 1 &&
           b->leaf_version <= TALLY_RECEIPT_VERSION_MAX;
  if (!ok) return pg_fail(err, err_len, TALLY_EDB, "batches: bad row %d", row);
  return TALLY_OK;
}

/* Leaves of batch b in id order into a new array (caller frees), and the
 * index of transfer want_id among them (b->leaf_count if absent). */
static int pg_batch_leaves(PGconn *conn, const pg_batch *b, uint64_t want_id,
                           uint8_t (**leaves_out)[32], uint32_t *want_index,
                           char *err, size_t err_len) {
  char p_first[PG_PARAM_BYTES], p_last[PG_PARAM_BYTES], p_id[PG_PARAM_BYTES];
  snprintf(p_first, sizeof p_first, "%" PRIu64, b->first);
  snprintf(p_last, sizeof p_last, "%" PRIu64, b->last);
  snprintf(p_id, sizeof p_id, "%" PRIu64, b->id);
  const char *params[3] = {p_first, p_last, p_id};
  PGresult *res;
  int rc = pg_query(conn,
                    PG_TRANSFER_SELECT "WHERE t.id BETWEEN $1 AND $2"
                                       " AND t.batch_id = $3 ORDER BY t.id",
                    3, params, &res, err, err_len);
  if (rc != TALLY_OK) return rc;
  int rows = PQntuples(res);
  if (rows < 0 || (uint64_t)rows != b->leaf_count) {
    PQclear(res);
    return pg_fail(err, err_len, TALLY_EBADSIG,
                   "batch %" PRIu64 ": signed for %" PRIu32
                   " transfers, found %d",
                   b->id, b->leaf_count, rows);
  }
  uint8_t (*leaves)[32] = malloc((size_t)rows * sizeof *leaves);
  if (!leaves) {
    PQclear(res);
    return pg_fail(err, err_len, TALLY_ENOMEM, "batch %" PRIu64, b->id);
  }
  *want_index = b->leaf_count;
  tally__receipt_proof row_fields;
  for (int i = 0; i < rows && rc == TALLY_OK; i++) {
    rc = pg_row_fields(res, i, &row_fields, NULL, err, err_len);
    if (rc != TALLY_OK) break;
    row_fields.version = b->leaf_version;
    tally__receipt_fields f;
    tally__receipt_proof_fields(&row_fields, &f);
    tally__receipt_leaf(&f, leaves[i]);
    if (f.transfer_id == want_id) *want_index = (uint32_t)i;
  }
  PQclear(res);
  if (rc != TALLY_OK) {
    free(leaves);
    return rc;
  }
  *leaves_out = leaves;
  return TALLY_OK;
}

/* Root of the leaves matches the batch, its key matches its id, and the
 * signature verifies. */
static int pg_batch_verify(const pg_batch *b, const uint8_t (*leaves)[32],
                           char *err, size_t err_len) {
  uint8_t (*scratch)[32] = malloc((size_t)b->leaf_count * sizeof *scratch);
  if (!scratch) return pg_fail(err, err_len, TALLY_ENOMEM, "batch %" PRIu64, b->id);
  uint8_t root[TALLY_HASH_BYTES];
  tally__merkle_root(leaves, b->leaf_count, scratch, root);
  free(scratch);
  if (memcmp(root, b->root, sizeof root) != 0) {
    return pg_fail(err, err_len, TALLY_EBADSIG,
                   "batch %" PRIu64 ": merkle root does not match its transfers",
                   b->id);
  }
  char key_id[TALLY_KEY_ID_CHARS + 1];
  tally__key_id(b->pub, key_id);
  if (strcmp(key_id, b->key_id) != 0) {
    return pg_fail(err, err_len, TALLY_EBADSIG,
                   "batch %" PRIu64 ": signing key %s is not the key it names",
                   b->id, b->key_id);
  }
  int rc = tally__batch_sig_verify(b->pub, b->id, b->leaf_count, b->root, b->sig);
  if (rc == TALLY_EBADSIG) {
    return pg_fail(err, err_len, rc,
                   "batch %" PRIu64 ": signature does not verify with key %s",
                   b->id, b->key_id);
  }
  if (rc != TALLY_OK) return pg_fail(err, err_len, rc, "batch %" PRIu64, b->id);
  return TALLY_OK;
}

static int pg_load_batch(PGconn *conn, uint64_t batch_id, pg_batch *b,
                         char *err, size_t err_len) {
  char p_id[PG_PARAM_BYTES];
  snprintf(p_id, sizeof p_id, "%" PRIu64, batch_id);
  const char *params[1] = {p_id};
  PGresult *res;
  int rc = pg_query(conn, PG_BATCH_SELECT "WHERE b.id = $1", 1, params, &res,
                    err, err_len);
  if (rc != TALLY_OK) return rc;
  if (PQntuples(res) != 1) {
    rc = pg_fail(err, err_len, TALLY_EDB, "batch %" PRIu64 " is missing",
                 batch_id);
  } else {
    rc = pg_batch_row(res, 0, b, err, err_len);
  }
  PQclear(res);
  return rc;
}

/* The transfer's own row: fields into out and its batch id. */
static int pg_load_transfer(PGconn *conn, uint64_t transfer_id,
                            tally__receipt_proof *out, char *err,
                            size_t err_len) {
  if (transfer_id == 0 || transfer_id > INT64_MAX) {
    return pg_fail(err, err_len, TALLY_ENOTFOUND, "no transfer %" PRIu64,
                   transfer_id);
  }
  char p_id[PG_PARAM_BYTES];
  snprintf(p_id, sizeof p_id, "%" PRIu64, transfer_id);
  const char *params[1] = {p_id};
  PGresult *res;
  int signed_row = 0;
  int rc = pg_query(conn, PG_TRANSFER_SELECT "WHERE t.id = $1", 1, params,
                    &res, err, err_len);
  if (rc != TALLY_OK) return rc;
  if (PQntuples(res) != 1) {
    rc = pg_fail(err, err_len, TALLY_ENOTFOUND, "no transfer %" PRIu64,
                 transfer_id);
  } else {
    rc = pg_row_fields(res, 0, out, &signed_row, err, err_len);
  }
  PQclear(res);
  if (rc == TALLY_OK && !signed_row) {
    rc = pg_fail(err, err_len, TALLY_ENOTFOUND,
                 "transfer %" PRIu64 " is not in a signed batch", transfer_id);
  }
  return rc;
}

int tally__receipt_pg_load(PGconn *conn, uint64_t transfer_id,
                           tally__receipt_proof *out, char *err,
                           size_t err_len) {
  assert(conn && out);
  memset(out, 0, sizeof *out);
  int rc = pg_load_transfer(conn, transfer_id, out, err, err_len);
  pg_batch b;
  if (rc == TALLY_OK) rc = pg_load_batch(conn, out->batch_id, &b, err, err_len);
  uint8_t (*leaves)[32] = NULL;
  uint32_t index = 0;
  if (rc == TALLY_OK) {
    rc = pg_batch_leaves(conn, &b, transfer_id, &leaves, &index, err, err_len);
  }
  if (rc == TALLY_OK) rc = pg_batch_verify(&b, (const uint8_t (*)[32])leaves, err, err_len);
  if (rc == TALLY_OK && index >= b.leaf_count) {
    rc = pg_fail(err, err_len, TALLY_EBADSIG,
                 "transfer %" PRIu64 " is outside its batch %" PRIu64,
                 transfer_id, b.id);
  }
  size_t path_len = 0;
  if (rc == TALLY_OK) {
    rc = tally__merkle_path((const uint8_t (*)[32])leaves, b.leaf_count, index,
                            out->path, TALLY_MERKLE_DEPTH_MAX, &path_len);
    assert(rc == TALLY_OK && "a uint32 leaf count fits the path limit");
  }
  free(leaves);
  if (rc != TALLY_OK) {
    memset(out, 0, sizeof *out);
    return rc;
  }
  /* A version 1 proof carries no identity (its leaf does not name one). */
  out->version = b.leaf_version;
  if (out->version < 2) out->network[0] = out->identity[0] = 0;
  out->leaf_index = index;
  out->leaf_count = b.leaf_count;
  out->path_len = (uint32_t)path_len;
  memcpy(out->root, b.root, sizeof out->root);
  memcpy(out->sig, b.sig, sizeof out->sig);
  memcpy(out->key_id, b.key_id, sizeof out->key_id);
  return TALLY_OK;
}

int tally__receipt_pg_public_key(PGconn *conn, const char *key_id,
                                 uint8_t pub[TALLY_PUBKEY_BYTES]) {
  assert(conn && key_id && pub);
  const char *params[1] = {key_id};
  PGresult *res;
  int rc = pg_query(conn, "SELECT public_key FROM signing_keys WHERE key_id = $1",
                    1, params, &res, NULL, 0);
  if (rc != TALLY_OK) return rc;
  if (PQntuples(res) != 1) {
    rc = TALLY_ENOTFOUND;
  } else if (!pg_bytes(res, 0, 0, pub, TALLY_PUBKEY_BYTES)) {
    rc = TALLY_EDB;
  } else {
    char derived[TALLY_KEY_ID_CHARS + 1];
    tally__key_id(pub, derived);
    rc = strcmp(derived, key_id) == 0 ? TALLY_OK : TALLY_EBADSIG;
  }
  PQclear(res);
  return rc;
}

/* Checks one page of batches after *after_id; *rows is the page size. */
typedef struct pg_check_ctx {
  uint64_t checked, bad;
  tally__bad_batch_fn report;
  void *ud;
} pg_check_ctx;

static int pg_check_page(PGconn *conn, int64_t *after_id, int *rows,
                         pg_check_ctx *cx, char *err, size_t err_len) {
  char p_after[PG_PARAM_BYTES], p_limit[PG_PARAM_BYTES];
  snprintf(p_after, sizeof p_after, "%" PRId64, *after_id);
  snprintf(p_limit, sizeof p_limit, "%d", PG_CHECK_PAGE_ROWS);
  const char *params[2] = {p_after, p_limit};
  PGresult *res;
  int rc = pg_query(conn, PG_BATCH_SELECT "WHERE b.id > $1 ORDER BY b.id LIMIT $2",
                    2, params, &res, err, err_len);
  if (rc != TALLY_OK) return rc;
  *rows = PQntuples(res);
  for (int i = 0; i < *rows && rc == TALLY_OK; i++) {
    pg_batch b;
    uint8_t (*leaves)[32] = NULL;
    uint32_t unused;
    rc = pg_batch_row(res, i, &b, err, err_len);
    if (rc != TALLY_OK) b.id = strtoull(PQgetvalue(res, i, 0), NULL, 10); /* a malformed row: bad */
    if (rc == TALLY_OK) rc = pg_batch_leaves(conn, &b, 0, &leaves, &unused, err, err_len);
    if (rc == TALLY_OK) {
      rc = pg_batch_verify(&b, (const uint8_t (*)[32])leaves, err, err_len);
    }
    free(leaves);
    *after_id = (int64_t)b.id;
    if (rc == TALLY_OK) {
      cx->checked++;
    } else if (rc != TALLY_EDB && rc != TALLY_ENOMEM) {
      /* A bad batch: reported, and the scan goes on to the next one. */
      cx->bad++;
      if (cx->report) cx->report(cx->ud, b.id, err);
      rc = TALLY_OK;
    }
  }
  PQclear(res);
  return rc;
}

int tally__receipt_pg_check_batches(PGconn *conn, uint64_t *batches_checked, uint64_t *batches_bad,
                                    tally__bad_batch_fn bad, void *ud, char *err, size_t err_len) {
  assert(conn && batches_checked && batches_bad);
  pg_check_ctx cx = {.report = bad, .ud = ud};
  int64_t after_id = INT64_MIN;
  int rows = PG_CHECK_PAGE_ROWS;
  int rc = TALLY_OK;
  while (rc == TALLY_OK && rows == PG_CHECK_PAGE_ROWS) {
    rc = pg_check_page(conn, &after_id, &rows, &cx, err, err_len);
  }
  *batches_checked = cx.checked;
  *batches_bad = cx.bad;
  if (rc == TALLY_OK && cx.bad) rc = TALLY_EBADSIG;
  return rc;
}
