/* batch_params.h — how a sealed batch writes its statement's parameters
 * (ledger layer, batch*.c only): scalars as text, arrays in PostgreSQL's
 * binary array format, into the batch's one text buffer (no allocation per
 * batch). Small and called per row, so inline; and the internal entry
 * points of the batch's files: catalog rows (batch_rows.c), the catalog
 * and ledger columns (batch_columns.c), the records, audience, identity and
 * fact columns (batch_records.c). */
#ifndef TALLY_BATCH_PARAMS_H
#define TALLY_BATCH_PARAMS_H

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"

/* ---- text rendering --------------------------------------------------------- */
static inline void sb_raw(tally__batch *b, const char *s, size_t n) {
  assert(b->text_len + n < b->text_cap);
  memcpy(b->text + b->text_len, s, n);
  b->text_len += n;
}
static inline void sb_char(tally__batch *b, char c) { sb_raw(b, &c, 1); }
static inline void sb_i64(tally__batch *b, int64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
  sb_raw(b, tmp, (size_t)n);
}
static inline void sb_hex(tally__batch *b, const uint8_t *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    sb_char(b, hex[p[i] >> 4]);
    sb_char(b, hex[p[i] & 15]);
  }
}
/* Starts parameter k; params point into text, which never moves. */
static inline void sb_param(tally__batch *b, int k) { b->params[k] = b->text + b->text_len; }
static inline void sb_end(tally__batch *b) { sb_char(b, 0); }


/* ---- binary array parameters --------------------------------------------------- */
/* Arrays go to PostgreSQL in its binary array format (array_send): parsing
 * tens of thousands of numbers from text cost it a fifth of a batch, and
 * rendering them cost us as much. Layout: ndim, has-nulls flag, element
 * type oid, then per dimension size and lower bound, then per element a
 * length (-1 for NULL) and its big-endian bytes. */
enum { OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_TEXT = 25 };

static inline void bin_u32(tally__batch *b, uint32_t v) {
  uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  sb_raw(b, (const char *)be, 4);
}
static inline void bin_patch_u32(tally__batch *b, size_t at, uint32_t v) {
  uint8_t *p = (uint8_t *)b->text + at;
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static inline void bin_open(tally__batch *b, int k, uint32_t oid) {
  b->params[k] = b->text + b->text_len;
  b->formats[k] = 1;
  b->arr_param = k;
  b->arr_start = b->text_len;
  b->arr_count = 0;
  b->arr_nulls = false;
  bin_u32(b, 1);   /* ndim */
  bin_u32(b, 0);   /* has nulls: patched at close */
  bin_u32(b, oid); /* element type */
  bin_u32(b, 0);   /* size: patched at close */
  bin_u32(b, 1);   /* lower bound */
}

static inline void bin_close(tally__batch *b) {
  if (b->arr_count == 0) { /* an empty array has no dimensions: ndim 0, flags, oid */
    bin_patch_u32(b, b->arr_start, 0);
    b->text_len = b->arr_start + 12;
  } else {
    bin_patch_u32(b, b->arr_start + 4, b->arr_nulls ? 1 : 0);
    bin_patch_u32(b, b->arr_start + 12, b->arr_count);
  }
  b->lengths[b->arr_param] = (int)(b->text_len - b->arr_start);
}

static inline void bin_i64(tally__batch *b, int64_t v) {
  bin_u32(b, 8);
  bin_u32(b, (uint32_t)((uint64_t)v >> 32));
  bin_u32(b, (uint32_t)v);
  b->arr_count++;
}
static inline void bin_i32(tally__batch *b, int32_t v) {
  bin_u32(b, 4);
  bin_u32(b, (uint32_t)v);
  b->arr_count++;
}
static inline void bin_i16(tally__batch *b, int16_t v) {
  bin_u32(b, 2);
  uint8_t be[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
  sb_raw(b, (const char *)be, 2);
  b->arr_count++;
}
static inline void bin_bool(tally__batch *b, bool v) {
  bin_u32(b, 1);
  sb_char(b, v ? 1 : 0);
  b->arr_count++;
}
static inline void bin_text(tally__batch *b, const char *s) {
  size_t n = strlen(s);
  bin_u32(b, (uint32_t)n);
  sb_raw(b, s, n);
  b->arr_count++;
}
static inline void bin_null(tally__batch *b) {
  bin_u32(b, UINT32_MAX); /* length -1 */
  b->arr_nulls = true;
  b->arr_count++;
}
static inline void bin_i64_or_null(tally__batch *b, bool present, int64_t v) {
  if (present) bin_i64(b, v);
  else bin_null(b);
}


/* batch_rows.c: the catalog rows that go with a batch being sealed, and
 * whether row `index` of kind `what` is in this batch already. */
void tally__batch_take_rows(tally__batch *b, tally__state *st);
bool tally__batch_row_taken(const tally__batch *b, uint32_t index, uint8_t what);
/* batch_columns.c: accounts, items, transfers, legs, drops, events and
 * their extras, in the statement's parameter order. */
void tally__batch_render_columns(tally__batch *b, const tally__state *st);
/* batch_records.c: records, audience, merch, tip messages, co-op, raffle
 * passes, audit, identities, links and facts. */
void tally__batch_render_records(tally__batch *b, const tally__state *st, uint64_t now_mono);
/* The account whose identity made op (batch_records.c; the leaves use it too). */
const tally__account *tally__batch_op_maker(const tally__batch *b, const tally__state *st, const tally__op *op);

#endif
