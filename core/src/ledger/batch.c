/* batch.c — renders a batch as ONE statement: data-modifying CTEs that
 * insert from unnest() over array parameters. One statement is one
 * transaction and one round trip, so group commit costs one fsync per
 * batch however many buys it carries. Parameters are text arrays built in a
 * buffer allocated once per batch slot. */
#include "batch.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raffle.h"
#include "receipt.h"
#include "signer.h"
#include "test_fault.h"

/* One statement, so one transaction: sql/004_shop_audience.sql's
 * tally_write_batch (batch lock, lease check, then the rows in dependency
 * order; it returns the transfer ids it inserted), then the functions of
 * later migrations, each writing its own tables and returning nothing. A
 * new table gets a function of its own here instead of another copy of
 * tally_write_batch. Arrays go in binary; the scalars $1..$8 and $43 as
 * text. */
const char tally__batch_sql[] =
    "SELECT * FROM tally_write_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
    " $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32,"
    " $33, $34, $35, $36, $37, $38, $39, $40, $41, $42, $43, $44, $45, $46, $47, $48, $49, $50, $51,"
    " $52, $53, $54, $55, $56, $57, $58, $59, $60, $61, $62, $63, $64, $65, $66, $67, $68, $69, $70,"
    " $71, $72, $73, $74, $75, $76, $77, $78, $79, $80, $81, $82, $83, $84, $85, $86, $87, $88, $89,"
    " $90, $91, $92, $93, $94, $95, $96, $97, $98)"
    " UNION ALL SELECT * FROM tally_write_tip_messages($1, $8, $99, $100, $101, $102, $103)"
    " UNION ALL SELECT * FROM tally_write_coop_purchases($1, $104)"
    " UNION ALL SELECT * FROM tally_write_raffle_passes($8, $105, $106, $107, $108)"
    " UNION ALL SELECT * FROM tally_write_audit($1, $8, $109, $110, $111)"
    " UNION ALL SELECT * FROM tally_write_identities($1, $8, $112, $113, $114, $115, $116, $117, $118, $119)"
    " UNION ALL SELECT * FROM tally_write_links($1, $8, $120, $121, $122, $123, $124, $125)"
    " UNION ALL SELECT * FROM tally_write_facts($1, $8, $126::jsonb)"
    " UNION ALL SELECT * FROM tally_write_goals($1, $8, $126::jsonb)" /* sql/017: the goal kinds of the facts */
    " UNION ALL SELECT * FROM tally_write_challenge_facts($1, $8, $126::jsonb)"
    " UNION ALL SELECT * FROM tally_write_quiz_rounds($1, $8, $126::jsonb)" /* sql/019: same facts */
    " UNION ALL SELECT * FROM tally_write_reward_unlocks($1, $8, $126::jsonb)" /* sql/020: same facts */
    " UNION ALL SELECT * FROM tally_mark_batch($1, $8, $4)" /* sql/022: a batch without transfers leaves its id */
    /* Last: refuses (TL002) a batch that would commit fewer transfers than it signed. */
    " UNION ALL SELECT * FROM tally_batch_whole($1, $2, $3, $4)";

/* The keys' transfers, and (idem_key NULL) the batch's mark if it left one (sql/022). */
const char tally__batch_lookup_sql[] = "SELECT * FROM tally_lookup_batch($1, $2)";

int tally__batch_init(tally__batch *b, uint32_t op_max) {
  memset(b, 0, sizeof *b);
  b->op_max = op_max;
  b->ops = calloc(op_max, sizeof *b->ops);
  b->leaves = calloc(op_max, sizeof *b->leaves);
  b->scratch = calloc(op_max, sizeof *b->scratch);
  b->text_cap = (size_t)op_max * TALLY__BATCH_OP_TEXT_BYTES +
                (size_t)TALLY__BATCH_ROWS_MAX * TALLY__BATCH_ROW_TEXT_BYTES + TALLY__BATCH_NETWORKS_TEXT_BYTES + 4096;
  b->text = malloc(b->text_cap);
  b->xfer = calloc(op_max, sizeof *b->xfer);
  b->found_id = calloc(op_max, sizeof *b->found_id);
  b->found_fp = calloc(op_max, sizeof *b->found_fp);
  b->inserted = calloc(op_max, sizeof *b->inserted);
  b->drop = calloc(op_max, sizeof *b->drop);
  b->keys_cap = (size_t)op_max * (2 * TALLY__KEY_BYTES_MAX + 4) + 16;
  b->keys_text = malloc(b->keys_cap);
  if (!b->ops || !b->leaves || !b->scratch || !b->text || !b->xfer || !b->found_id ||
      !b->found_fp || !b->inserted || !b->keys_text || !b->drop) {
    tally__batch_free(b);
    return TALLY_ENOMEM;
  }
  return TALLY_OK;
}

void tally__batch_free(tally__batch *b) {
  free(b->ops);
  free(b->leaves);
  free(b->scratch);
  free(b->text);
  free(b->xfer);
  free(b->found_id);
  free(b->found_fp);
  free(b->inserted);
  free(b->drop);
  free(b->keys_text);
  memset(b, 0, sizeof *b);
}

void tally__batch_reset(tally__batch *b) {
  b->phase = TALLY__BATCH_FREE;
  b->op_count = b->transfer_count = b->row_count = 0;
  b->inflight = false;
  b->maybe_committed = false;
  b->retries = 0;
  b->key_taken = false;
  b->reseals = 0;
  b->hidden = 0;
  b->text_len = 0;
  b->id = 0;
}

int tally__batch_full(const tally__batch *b) { return b->op_count >= b->op_max; }

tally__op *tally__batch_append(tally__batch *b) {
  assert(b->phase == TALLY__BATCH_OPEN && b->op_count < b->op_max);
  tally__op *op = &b->ops[b->op_count++];
  op->origin = 0; /* no reference yet (see tally__cmd_op_unused) */
  return op;
}

/* ---- text rendering --------------------------------------------------------- */
static void sb_raw(tally__batch *b, const char *s, size_t n) {
  assert(b->text_len + n < b->text_cap);
  memcpy(b->text + b->text_len, s, n);
  b->text_len += n;
}
static void sb_char(tally__batch *b, char c) { sb_raw(b, &c, 1); }
static void sb_i64(tally__batch *b, int64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%" PRId64, v);
  sb_raw(b, tmp, (size_t)n);
}
static void sb_hex(tally__batch *b, const uint8_t *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    sb_char(b, hex[p[i] >> 4]);
    sb_char(b, hex[p[i] & 15]);
  }
}
/* Starts parameter k; params point into text, which never moves. */
static void sb_param(tally__batch *b, int k) { b->params[k] = b->text + b->text_len; }
static void sb_end(tally__batch *b) { sb_char(b, 0); }

/* ---- catalog rows ------------------------------------------------------------ */
/* An item, role, privacy, bio or referral-code row goes in one sealed
 * batch at a time: a version already in flight is not taken again until
 * that batch settles (tally__batch_rows_settled). Two batches on two
 * connections writing one new item would race on its unique sku, and
 * role_changes, which has no key, would record one change twice.
 * The exceptions go again while in flight, as their inserts are safe when
 * concurrent (every unique key is an arbiter of their ON CONFLICT):
 * - account and consent rows, because rows of other tables reference them
 *   (the insert waits for the other batch, then does nothing);
 * - event and attendance rows, whose slots can be reused or compacted
 *   while a batch is in flight (live.c event_slot, audience_rows.c), so a
 *   mark kept by slot index could land on another row.
 * A batch is opened for rows alone only when some row is not in flight
 * (tally__batch_rows_waiting); account rows count their batches for that. */
static bool row_taken(const tally__batch *b, uint32_t index, uint8_t what) {
  for (uint32_t r = 0; r < b->row_count; r++)
    if (b->rows[r].index == index && b->rows[r].what == what) return true;
  return false;
}

static void row_add(tally__batch *b, tally__state *st, uint32_t index, uint64_t version, uint8_t what) {
  assert(b->row_count < TALLY__BATCH_ROWS_MAX);
  b->rows[b->row_count++] = (tally__batch_row){index, version, what};
  if (what == TALLY__ROW_ACCOUNT) st->accounts[index].row_batches++;
  if (what == TALLY__ROW_CONSENT) st->accounts[index].consent_batches++;
}

/* Rows with a version (or a one-time row) not yet in any sealed batch: what
 * take_rows takes and tally__batch_rows_waiting looks for. */
static bool role_due(const tally__account *a) { return a->role_dirty && a->role_sent_version != a->role_version; }
static bool privacy_due(const tally__account *a) {
  return a->privacy_dirty && a->privacy_sent_version != a->privacy_version;
}
static bool refcode_due(const tally__refcode *rc) { return !rc->persisted && !rc->sent; }
static bool bio_due(const tally__bio *bio) { return bio->dirty && bio->sent_version != bio->version; }
static bool item_due(const tally__item *it) { return it->dirty && it->sent_version != it->version; }

static void take_account_rows(tally__batch *b, tally__state *st) {
  for (uint32_t k = 0; k < st->dirty_account_count && b->row_count + 4 <= TALLY__BATCH_ROWS_MAX; k++) {
    uint32_t i = st->dirty_accounts[k];
    tally__account *a = &st->accounts[i];
    if (!a->persisted) row_add(b, st, i, 0, TALLY__ROW_ACCOUNT);
    if (a->consented && !a->consent_persisted) row_add(b, st, i, 0, TALLY__ROW_CONSENT);
    if (role_due(a)) {
      row_add(b, st, i, a->role_version, TALLY__ROW_ROLE);
      a->role_sent_version = a->role_version;
    }
    if (privacy_due(a)) {
      row_add(b, st, i, a->privacy_version, TALLY__ROW_PRIVACY);
      a->privacy_sent_version = a->privacy_version;
    }
  }
}

static void take_rows(tally__batch *b, tally__state *st) {
  take_account_rows(b, st);
  for (uint32_t k = 0; k < st->dirty_audience_count && b->row_count < TALLY__BATCH_ROWS_MAX; k++) {
    uint32_t i = st->dirty_audience[k];
    if (st->audience[i].dirty) row_add(b, st, i, st->audience[i].version, TALLY__ROW_ATTEND);
  }
  for (uint32_t i = 0; i < st->refcode_count && b->row_count < TALLY__BATCH_ROWS_MAX; i++) {
    if (!refcode_due(&st->refcodes[i])) continue;
    row_add(b, st, i, 0, TALLY__ROW_REFCODE);
    st->refcodes[i].sent = true;
  }
  for (uint32_t i = 0; i < st->bio_count && b->row_count < TALLY__BATCH_ROWS_MAX; i++) {
    tally__bio *bio = &st->bios[i];
    if (!bio_due(bio)) continue;
    row_add(b, st, i, bio->version, TALLY__ROW_BIO);
    bio->sent_version = bio->version;
  }
  /* An event row references its host's account row, an item row its
   * creator's: each goes with its account row (accounts are inserted
   * first), or not at all. */
  for (uint32_t i = 0; i < st->event_count && b->row_count + 2 <= TALLY__BATCH_ROWS_MAX; i++) {
    const tally__event *ev = &st->events[i];
    if (!ev->dirty) continue;
    if (!st->accounts[ev->host].persisted && !row_taken(b, ev->host, TALLY__ROW_ACCOUNT))
      row_add(b, st, ev->host, 0, TALLY__ROW_ACCOUNT);
    row_add(b, st, i, ev->version, TALLY__ROW_EVENT);
  }
  for (uint32_t k = 0; k < st->dirty_item_count && b->row_count + 2 <= TALLY__BATCH_ROWS_MAX; k++) {
    uint32_t i = st->dirty_items[k];
    tally__item *it = &st->items[i];
    if (!item_due(it)) continue;
    if (!st->accounts[it->creator].persisted && !row_taken(b, it->creator, TALLY__ROW_ACCOUNT))
      row_add(b, st, it->creator, 0, TALLY__ROW_ACCOUNT);
    row_add(b, st, i, it->version, TALLY__ROW_ITEM);
    it->sent_version = it->version;
  }
}

bool tally__batch_rows_waiting(const tally__state *st) {
  for (uint32_t k = 0; k < st->dirty_account_count; k++) {
    const tally__account *a = &st->accounts[st->dirty_accounts[k]];
    if (!a->persisted && a->row_batches == 0) return true;
    if (a->consented && !a->consent_persisted && a->consent_batches == 0) return true;
    if (role_due(a) || privacy_due(a)) return true;
  }
  for (uint32_t k = 0; k < st->dirty_audience_count; k++)
    if (st->audience[st->dirty_audience[k]].dirty) return true;
  for (uint32_t i = 0; i < st->refcode_count; i++)
    if (refcode_due(&st->refcodes[i])) return true;
  for (uint32_t i = 0; i < st->bio_count; i++)
    if (bio_due(&st->bios[i])) return true;
  for (uint32_t i = 0; i < st->event_count; i++)
    if (st->events[i].dirty) return true;
  for (uint32_t k = 0; k < st->dirty_item_count; k++)
    if (item_due(&st->items[st->dirty_items[k]])) return true;
  return false;
}

void tally__batch_rows_settled(const tally__batch *b, tally__state *st) {
  for (uint32_t r = 0; r < b->row_count; r++) {
    const tally__batch_row *row = &b->rows[r];
    uint64_t *sent = NULL;
    switch (row->what) {
    case TALLY__ROW_ITEM: sent = &st->items[row->index].sent_version; break;
    case TALLY__ROW_BIO: sent = &st->bios[row->index].sent_version; break;
    case TALLY__ROW_ACCOUNT: st->accounts[row->index].row_batches--; break;
    case TALLY__ROW_CONSENT: st->accounts[row->index].consent_batches--; break;
    case TALLY__ROW_ROLE: sent = &st->accounts[row->index].role_sent_version; break;
    case TALLY__ROW_PRIVACY: sent = &st->accounts[row->index].privacy_sent_version; break;
    case TALLY__ROW_REFCODE: st->refcodes[row->index].sent = false; break;
    default: break;
    }
    /* A later batch may carry a newer version by now: that one stays marked. */
    if (sent && *sent == row->version) *sent = 0;
  }
}

/* ---- binary array parameters --------------------------------------------------- */
/* Arrays go to PostgreSQL in its binary array format (array_send): parsing
 * tens of thousands of numbers from text cost it a fifth of a batch, and
 * rendering them cost us as much. Layout: ndim, has-nulls flag, element
 * type oid, then per dimension size and lower bound, then per element a
 * length (-1 for NULL) and its big-endian bytes. */
enum { OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_TEXT = 25 };

static void bin_u32(tally__batch *b, uint32_t v) {
  uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  sb_raw(b, (const char *)be, 4);
}
static void bin_patch_u32(tally__batch *b, size_t at, uint32_t v) {
  uint8_t *p = (uint8_t *)b->text + at;
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void bin_open(tally__batch *b, int k, uint32_t oid) {
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

static void bin_close(tally__batch *b) {
  if (b->arr_count == 0) { /* an empty array has no dimensions: ndim 0, flags, oid */
    bin_patch_u32(b, b->arr_start, 0);
    b->text_len = b->arr_start + 12;
  } else {
    bin_patch_u32(b, b->arr_start + 4, b->arr_nulls ? 1 : 0);
    bin_patch_u32(b, b->arr_start + 12, b->arr_count);
  }
  b->lengths[b->arr_param] = (int)(b->text_len - b->arr_start);
}

static void bin_i64(tally__batch *b, int64_t v) {
  bin_u32(b, 8);
  bin_u32(b, (uint32_t)((uint64_t)v >> 32));
  bin_u32(b, (uint32_t)v);
  b->arr_count++;
}
static void bin_i32(tally__batch *b, int32_t v) {
  bin_u32(b, 4);
  bin_u32(b, (uint32_t)v);
  b->arr_count++;
}
static void bin_i16(tally__batch *b, int16_t v) {
  bin_u32(b, 2);
  uint8_t be[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
  sb_raw(b, (const char *)be, 2);
  b->arr_count++;
}
static void bin_bool(tally__batch *b, bool v) {
  bin_u32(b, 1);
  sb_char(b, v ? 1 : 0);
  b->arr_count++;
}
static void bin_text(tally__batch *b, const char *s) {
  size_t n = strlen(s);
  bin_u32(b, (uint32_t)n);
  sb_raw(b, s, n);
  b->arr_count++;
}
static void bin_null(tally__batch *b) {
  bin_u32(b, UINT32_MAX); /* length -1 */
  b->arr_nulls = true;
  b->arr_count++;
}
static void bin_i64_or_null(tally__batch *b, bool present, int64_t v) {
  if (present) bin_i64(b, v);
  else bin_null(b);
}

/* ---- catalog and ledger columns ---------------------------------------------------- */
static void render_accounts(tally__batch *b, const tally__state *st) {
  static const uint32_t oids[3] = {OID_INT8, OID_TEXT, OID_INT2};
  for (int col = 0; col < 3; col++) {
    bin_open(b, 8 + col, oids[col]);
    for (uint32_t r = 0; r < b->row_count; r++) {
      if (b->rows[r].what != TALLY__ROW_ACCOUNT) continue;
      const tally__account *a = &st->accounts[b->rows[r].index];
      if (col == 0) bin_i64(b, (int64_t)a->id);
      else if (col == 1) bin_text(b, tally__names_str(&st->names, a->name));
      else bin_i16(b, a->kind);
    }
    bin_close(b);
  }
}

static void render_items(tally__batch *b, const tally__state *st) {
  static const uint32_t oids[9] = {OID_INT8, OID_TEXT, OID_INT8, OID_INT8, OID_INT4,
                                   OID_TEXT, OID_INT4, OID_BOOL, OID_INT8};
  for (int col = 0; col < 9; col++) {
    bin_open(b, 11 + col, oids[col]);
    for (uint32_t r = 0; r < b->row_count; r++) {
      if (b->rows[r].what != TALLY__ROW_ITEM) continue;
      const tally__item *it = &st->items[b->rows[r].index];
      switch (col) {
      case 0: bin_i64(b, (int64_t)it->id); break;
      case 1: bin_text(b, it->sku); break;
      case 2: bin_i64(b, (int64_t)st->accounts[it->creator].id); break;
      case 3: bin_i64(b, it->price); break;
      case 4: if (it->stock < 0) bin_null(b); else bin_i32(b, it->stock); break;
      case 5: bin_text(b, it->title); break;
      case 6: bin_i32(b, (int32_t)it->refund_window_s); break;
      case 7: bin_bool(b, it->deleted); break;
      default: bin_i64(b, (int64_t)b->rows[r].version); break;
      }
    }
    bin_close(b);
  }
}

/* $44..$49: the drop columns of the item rows, in the same row order. */
static void render_item_drops(tally__batch *b, const tally__state *st) {
  static const uint32_t oids[6] = {OID_TEXT, OID_INT8, OID_INT8, OID_INT4, OID_INT2, OID_INT8};
  for (int col = 0; col < 6; col++) {
    bin_open(b, 43 + col, oids[col]);
    for (uint32_t r = 0; r < b->row_count; r++) {
      if (b->rows[r].what != TALLY__ROW_ITEM) continue;
      const tally__item *it = &st->items[b->rows[r].index];
      bool drop = it->drop_state != TALLY__DROP_NONE;
      switch (col) {
      case 0: if (drop) bin_text(b, it->drop_channel); else bin_null(b); break;
      case 1: bin_i64_or_null(b, drop, it->drop_start_ms); break;
      case 2: bin_i64_or_null(b, drop, it->drop_end_ms); break;
      case 3: bin_i32(b, (int32_t)it->drop_per_user); break;
      case 4: bin_i16(b, it->drop_state); break;
      default: bin_i64_or_null(b, it->drop_event != 0, (int64_t)it->drop_event); break;
      }
    }
    bin_close(b);
  }
}

/* $50: each transfer's event; $51..$58: event rows. */
static void render_events(tally__batch *b, const tally__state *st) {
  bin_open(b, 49, OID_INT8);
  for (uint32_t i = 0; i < b->transfer_count; i++) {
    const tally__op *op = &b->ops[b->xfer[i]];
    bin_i64_or_null(b, op->event_id != 0, (int64_t)op->event_id);
  }
  bin_close(b);
  static const uint32_t oids[8] = {OID_INT8, OID_TEXT, OID_TEXT, OID_INT8, OID_INT8, OID_INT8, OID_INT8, OID_INT8};
  for (int col = 0; col < 8; col++) {
    bin_open(b, 50 + col, oids[col]);
    for (uint32_t r = 0; r < b->row_count; r++) {
      if (b->rows[r].what != TALLY__ROW_EVENT) continue;
      const tally__event *ev = &st->events[b->rows[r].index];
      switch (col) {
      case 0: bin_i64(b, (int64_t)ev->id); break;
      case 1: bin_text(b, ev->channel); break;
      case 2: bin_text(b, ev->title); break;
      case 3: bin_i64(b, (int64_t)st->accounts[ev->host].id); break;
      case 4: bin_i64(b, ev->start_ms); break;
      case 5: bin_i64(b, ev->end_ms); break;
      case 6: bin_i64_or_null(b, ev->stopped_ms != 0, ev->stopped_ms); break;
      default: bin_i64(b, (int64_t)b->rows[r].version); break;
      }
    }
    bin_close(b);
  }
}

static void render_request_fps(tally__batch *b, const tally__state *st) {
  bin_open(b, 41, OID_INT8);
  for (uint32_t i = 0; i < b->transfer_count; i++)
    bin_i64(b, (int64_t)st->keys[b->ops[b->xfer[i]].key_slot].fingerprint);
  bin_close(b);
}

static void render_transfers(tally__batch *b, const tally__state *st) {
  static const uint32_t oids[10] = {OID_INT8, OID_INT2, OID_TEXT, OID_INT8, OID_INT8,
                                    OID_INT8, OID_INT4, OID_INT8, OID_INT8, OID_INT8};
  for (int col = 0; col < 10; col++) {
    bin_open(b, 20 + col, oids[col]);
    for (uint32_t i = 0; i < b->transfer_count; i++) {
      const tally__op *op = &b->ops[b->xfer[i]];
      switch (col) {
      case 0: bin_i64(b, (int64_t)op->transfer_id); break;
      case 1: bin_i16(b, (int16_t)tally__transfer_ledger_kind(op->kind, op->amount)); break; /* 6: a free unit */
      case 2: bin_text(b, st->keys[op->key_slot].key); break;
      case 3: bin_i64(b, (int64_t)st->accounts[op->account].id); break;
      case 4:
        bin_i64_or_null(b, op->counterparty != TALLY__NONE,
                        op->counterparty == TALLY__NONE ? 0 : (int64_t)st->accounts[op->counterparty].id);
        break;
      case 5:
        bin_i64_or_null(b, op->item != TALLY__NONE, op->item == TALLY__NONE ? 0 : (int64_t)st->items[op->item].id);
        break;
      case 6: bin_i32(b, (int32_t)op->qty); break;
      case 7: bin_i64(b, op->amount); break;
      case 8: bin_i64_or_null(b, op->ref_transfer != 0, (int64_t)op->ref_transfer); break;
      default: bin_i64(b, op->created_ms); break;
      }
    }
    bin_close(b);
  }
}

static void render_consents_roles(tally__batch *b, const tally__state *st) {
  static const uint32_t oids[5] = {OID_INT8, OID_INT8, OID_INT8, OID_TEXT, OID_TEXT};
  for (int col = 0; col < 5; col++) {
    bin_open(b, 33 + col, oids[col]);
    uint8_t want = col < 2 ? TALLY__ROW_CONSENT : TALLY__ROW_ROLE;
    for (uint32_t r = 0; r < b->row_count; r++) {
      if (b->rows[r].what != want) continue;
      const tally__account *a = &st->accounts[b->rows[r].index];
      if (col == 0 || col == 2) bin_i64(b, (int64_t)a->id);
      else if (col == 1) bin_i64(b, 0);
      else if (col == 3) bin_text(b, a->is_creator ? "creator" : "none");
      else bin_text(b, a->role_by == TALLY__NONE ? "engine" : tally__account_name(st, a->role_by)); /* by_account */
    }
    bin_close(b);
  }
}

/* Legs by position: $31..$33 hold the accounts of legs 1..3 of every
 * transfer, $39..$41 their amounts, NULL where a transfer has fewer legs.
 * Each row then builds its own small arrays; slicing one big array per row
 * would cost PostgreSQL far more. */
/* Legs past the third go in render_transfer_extras. */
static void render_legs(tally__batch *b, const tally__state *st) {
  static const int param_of_col[6] = {30, 31, 32, 38, 39, 40};
  for (int col = 0; col < 6; col++) {
    int leg = col % 3;
    bool amounts = col >= 3;
    bin_open(b, param_of_col[col], OID_INT8);
    for (uint32_t i = 0; i < b->transfer_count; i++) {
      const tally__op *op = &b->ops[b->xfer[i]];
      if (leg >= op->leg_count) bin_null(b);
      else if (amounts && TALLY__FAULT(BATCH_FEE) && op->kind == TALLY__TRANSFER_PURCHASE &&
               op->legs[leg].account == st->fees && op->legs[leg].amount > 0)
        bin_i64(b, op->legs[leg].amount - 1); /* the legs no longer sum to zero */
      else if (amounts) bin_i64(b, op->legs[leg].amount);
      else bin_i64(b, (int64_t)st->accounts[op->legs[leg].account].id);
    }
    bin_close(b);
  }
}

/* $59..$66: item columns of co-op shares, kinds and raffles. */
static void split_text(const tally__state *st, const tally__split *sp, char *out, size_t cap) {
  size_t n = 0;
  out[0] = 0;
  for (uint32_t i = 0; i < sp->count; i++) {
    int w = snprintf(out + n, cap - n, "%s%llu:%u", i ? "," : "",
                     (unsigned long long)st->accounts[sp->account[i]].id, sp->bps[i]);
    assert(w > 0 && (size_t)w < cap - n);
    n += (size_t)w;
  }
}

static void render_item_extras(tally__batch *b, const tally__state *st) {
  static const uint32_t oids[8] = {OID_TEXT, OID_INT2, OID_TEXT, OID_INT2, OID_TEXT, OID_BOOL, OID_TEXT, OID_INT4};
  char text[TALLY__SPLIT_MAX * 32 + 1];
  for (int col = 0; col < 8; col++) {
    bin_open(b, 58 + col, oids[col]);
    for (uint32_t r = 0; r < b->row_count; r++) {
      if (b->rows[r].what != TALLY__ROW_ITEM) continue;
      const tally__item *it = &st->items[b->rows[r].index];
      bool raffle = it->drop_mode == TALLY__MODE_RAFFLE;
      switch (col) {
      case 0: split_text(st, &it->split, text, sizeof text); bin_text(b, text); break;
      case 1: bin_i16(b, it->kind); break;
      case 2: bin_text(b, it->delivery); break;
      case 3: bin_i16(b, it->drop_mode); break;
      case 4: if (raffle) { tally__hex(it->raffle_seed, 32, text); bin_text(b, text); } else bin_null(b); break;
      case 5: bin_bool(b, it->raffle_drawn); break;
      case 6: if (it->raffle_drawn) { tally__hex(it->raffle_entry_hash, 32, text); bin_text(b, text); } else bin_null(b); break;
      default: bin_i32(b, (int32_t)it->raffle_entries); break;
      }
    }
    bin_close(b);
  }
}

/* $67 serials; $68..$71 legs past the third: each transfer's slice
 * [xo:xe] (1-based, inclusive) of the flat x_acc/x_amt arrays. */
static void render_transfer_extras(tally__batch *b, const tally__state *st) {
  bin_open(b, 66, OID_INT4);
  for (uint32_t i = 0; i < b->transfer_count; i++) {
    const tally__op *op = &b->ops[b->xfer[i]];
    if (op->serial) bin_i32(b, (int32_t)op->serial);
    else bin_null(b);
  }
  bin_close(b);
  for (int col = 0; col < 2; col++) {
    bin_open(b, 67 + col, OID_INT4);
    int32_t next = 1;
    for (uint32_t i = 0; i < b->transfer_count; i++) {
      const tally__op *op = &b->ops[b->xfer[i]];
      if (op->leg_count <= 3) {
        bin_null(b);
        continue;
      }
      int32_t extra = op->leg_count - 3;
      bin_i32(b, col == 0 ? next : next + extra - 1);
      next += extra;
    }
    bin_close(b);
  }
  for (int col = 0; col < 2; col++) {
    bin_open(b, 69 + col, OID_INT8);
    for (uint32_t i = 0; i < b->transfer_count; i++) {
      const tally__op *op = &b->ops[b->xfer[i]];
      for (int leg = 3; leg < op->leg_count; leg++)
        bin_i64(b, col ? op->legs[leg].amount : (int64_t)st->accounts[op->legs[leg].account].id);
    }
    bin_close(b);
  }
}

/* $72..$75 raffle entries, $76..$78 pass redemptions: rows written by
 * ENTRY and REDEEM ops, answered once their batch commits. */
static void render_records(tally__batch *b, const tally__state *st) {
  for (int col = 0; col < 7; col++) {
    bool entry = col < 4;
    bin_open(b, 71 + col, col == 2 ? OID_INT4 : OID_INT8);
    for (uint32_t k = 0; k < b->op_count; k++) {
      const tally__op *op = &b->ops[k];
      if (op->type != (entry ? TALLY__OP_ENTRY : TALLY__OP_REDEEM)) continue;
      switch (col) {
      case 0: bin_i64(b, (int64_t)st->items[op->item].id); break;
      case 1: case 5: bin_i64(b, (int64_t)st->accounts[op->account].id); break;
      case 2: bin_i32(b, (int32_t)st->entries[op->entry_slot].seq); break;
      case 4: bin_i64(b, (int64_t)op->ref_transfer); break;
      default: bin_i64(b, op->created_ms); break;
      }
    }
    bin_close(b);
  }
}

/* $79 show_s and $80 attendees-only of item rows; $81 each transfer's memo
 * (a tip's message, a highlight's text, a reaction's emote). */
static void render_audience_columns(tally__batch *b, const tally__state *st) {
  for (int col = 0; col < 2; col++) {
    bin_open(b, 78 + col, col ? OID_BOOL : OID_INT4);
    for (uint32_t r = 0; r < b->row_count; r++) {
      if (b->rows[r].what != TALLY__ROW_ITEM) continue;
      const tally__item *it = &st->items[b->rows[r].index];
      if (col) bin_bool(b, it->attendees_only);
      else bin_i32(b, (int32_t)it->show_s);
    }
    bin_close(b);
  }
  bin_open(b, 80, OID_TEXT);
  for (uint32_t i = 0; i < b->transfer_count; i++) {
    const tally__op *op = &b->ops[b->xfer[i]];
    bool memo = op->note[0] && (op->kind == TALLY__TRANSFER_TIP || op->kind == TALLY__TRANSFER_PURCHASE);
    if (memo) bin_text(b, op->note);
    else bin_null(b);
  }
  bin_close(b);
}

/* $82..$85 attendance, $86..$88 privacy choices, $89..$92 referral codes. */
static void render_audience_rows(tally__batch *b, const tally__state *st, uint64_t now_mono) {
  static const uint8_t what_of[11] = {TALLY__ROW_ATTEND,  TALLY__ROW_ATTEND,  TALLY__ROW_ATTEND,  TALLY__ROW_ATTEND,
                                      TALLY__ROW_PRIVACY, TALLY__ROW_PRIVACY, TALLY__ROW_PRIVACY, TALLY__ROW_REFCODE,
                                      TALLY__ROW_REFCODE, TALLY__ROW_REFCODE, TALLY__ROW_REFCODE};
  static const uint32_t oids[11] = {OID_INT8, OID_INT8, OID_INT4, OID_INT8, OID_INT8, OID_BOOL,
                                    OID_INT8, OID_TEXT, OID_INT8, OID_INT8, OID_INT4};
  for (int col = 0; col < 11; col++) {
    bin_open(b, 81 + col, oids[col]);
    for (uint32_t r = 0; r < b->row_count; r++) {
      if (b->rows[r].what != what_of[col]) continue;
      uint32_t i = b->rows[r].index;
      switch (col) {
      case 0: bin_i64(b, (int64_t)st->audience[i].event_id); break;
      case 1: bin_i64(b, (int64_t)st->accounts[st->audience[i].account].id); break;
      case 2: bin_i32(b, tally__audience_seconds(st, i, now_mono)); break;
      case 3: bin_i64(b, st->audience[i].first_ms); break;
      case 4: bin_i64(b, (int64_t)st->accounts[i].id); break;
      case 5: bin_bool(b, st->accounts[i].unnamed); break;
      case 6: bin_i64(b, (int64_t)b->rows[r].version); break;
      case 7: bin_text(b, st->refcodes[i].code); break;
      case 8: bin_i64(b, (int64_t)st->accounts[st->refcodes[i].creator].id); break;
      case 9: bin_i64(b, (int64_t)st->accounts[st->refcodes[i].affiliate].id); break;
      default: bin_i32(b, st->refcodes[i].bps); break;
      }
    }
    bin_close(b);
  }
}

/* $93..$95 shipping notes (SHIP ops), $96..$98 creators' bios (rows). */
static void render_merch(tally__batch *b, const tally__state *st) {
  for (int col = 0; col < 3; col++) {
    bin_open(b, 92 + col, col == 2 ? OID_TEXT : OID_INT8);
    for (uint32_t k = 0; k < b->op_count; k++) {
      const tally__op *op = &b->ops[k];
      if (op->type != TALLY__OP_SHIP) continue;
      if (col == 0) bin_i64(b, (int64_t)op->ref_transfer);
      else if (col == 1) bin_i64(b, (int64_t)st->accounts[op->account].id);
      else bin_text(b, op->note);
    }
    bin_close(b);
  }
  for (int col = 0; col < 3; col++) {
    bin_open(b, 95 + col, col == 1 ? OID_TEXT : OID_INT8);
    for (uint32_t r = 0; r < b->row_count; r++) {
      if (b->rows[r].what != TALLY__ROW_BIO) continue;
      const tally__bio *bio = &st->bios[b->rows[r].index];
      if (col == 0) bin_i64(b, (int64_t)st->accounts[bio->account].id);
      else if (col == 1) bin_text(b, bio->text);
      else bin_i64(b, (int64_t)b->rows[r].version);
    }
    bin_close(b);
  }
}

/* $99..$101 held tip messages (TIP transfers with held_message: channel,
 * when it shows), $102..$103 hidden ones (HIDE ops). */
static void render_tip_messages(tally__batch *b, const tally__state *st, uint32_t hold_s) {
  for (int col = 0; col < 3; col++) {
    bin_open(b, 98 + col, col == 1 ? OID_TEXT : OID_INT8);
    for (uint32_t i = 0; i < b->transfer_count; i++) {
      const tally__op *op = &b->ops[b->xfer[i]];
      if (!op->held_message) continue;
      if (col == 0) bin_i64(b, (int64_t)op->transfer_id);
      else if (col == 1) bin_text(b, op->channel);
      else bin_i64(b, op->created_ms + (int64_t)hold_s * 1000);
    }
    bin_close(b);
  }
  for (int col = 0; col < 2; col++) {
    bin_open(b, 101 + col, OID_INT8);
    for (uint32_t k = 0; k < b->op_count; k++) {
      const tally__op *op = &b->ops[k];
      if (op->type != TALLY__OP_HIDE) continue;
      bin_i64(b, col == 0 ? (int64_t)op->ref_transfer : (int64_t)st->accounts[op->account].id);
    }
    bin_close(b);
  }
}

/* $104 purchases whose legs are a co-op record (sql/007). */
static void render_coop_purchases(tally__batch *b) {
  bin_open(b, 103, OID_INT8);
  for (uint32_t i = 0; i < b->transfer_count; i++) {
    const tally__op *op = &b->ops[b->xfer[i]];
    if (op->coop_legs) bin_i64(b, (int64_t)op->transfer_id);
  }
  bin_close(b);
}

/* $105..$108 raffle entries passed over (PASS ops: item, account, reason). */
static void render_raffle_passes(tally__batch *b, const tally__state *st) {
  static const uint32_t oids[4] = {OID_INT8, OID_INT8, OID_INT4, OID_TEXT};
  for (int col = 0; col < 4; col++) {
    bin_open(b, 104 + col, oids[col]);
    for (uint32_t k = 0; k < b->op_count; k++) {
      const tally__op *op = &b->ops[k];
      if (op->type != TALLY__OP_PASS) continue;
      if (col == 0) bin_i64(b, (int64_t)st->items[op->item].id);
      else if (col == 1) bin_i64(b, (int64_t)st->accounts[op->account].id);
      else if (col == 2) bin_i32(b, (int32_t)op->fee);
      else bin_text(b, tally_err_name((int)op->fee));
    }
    bin_close(b);
  }
}

/* $109..$111 audit rows of operators' grants from chat (sql/009): the
 * grant's transfer, the operator's account, what was done. */
static void render_audit(tally__batch *b, const tally__state *st) {
  for (int col = 0; col < 3; col++) {
    bin_open(b, 108 + col, col == 0 ? OID_INT8 : OID_TEXT);
    for (uint32_t i = 0; i < b->transfer_count; i++) {
      const tally__op *op = &b->ops[b->xfer[i]];
      if (!op->audited) continue;
      char detail[TALLY__ACCOUNT_NAME_BYTES + 64];
      if (col == 0) bin_i64(b, (int64_t)op->transfer_id);
      else if (col == 1) bin_text(b, tally__account_name(st, op->actor));
      else {
        snprintf(detail, sizeof detail, "grant %" PRId64 " minor units to %s (TALLY GRANT)", op->amount,
                 tally__account_name(st, op->account));
        bin_text(b, detail);
      }
    }
    bin_close(b);
  }
}

/* The identity (its account) whose command made op, or NULL for the engine's
 * own. Only one whose identity row is stored or goes with this batch: the
 * v2 leaf names it, and `tally check` recomputes the leaf from that row (a
 * new account's row may wait for a later batch when this one is full). */
static const tally__account *op_maker(const tally__batch *b, const tally__state *st, const tally__op *op) {
  if (op->maker >= st->account_count || !st->accounts[op->maker].identity_id) return NULL;
  const tally__account *a = &st->accounts[op->maker];
  return a->persisted || row_taken(b, op->maker, TALLY__ROW_ACCOUNT) ? a : NULL;
}

/* A new account row of a user carries its identity (sql/010). */
static bool row_identity(const tally__batch *b, const tally__state *st, uint32_t r) {
  return b->rows[r].what == TALLY__ROW_ACCOUNT && st->accounts[b->rows[r].index].identity_id != 0;
}

/* Whether op's receipt names its own account's identity: then no
 * transfer_identities row is written, since the ledger's default for a
 * transfer without one is its account's first identity (receipt_pg.c). One
 * row per transfer cost about a fifth of the durable throughput (make bench);
 * the rows are for the other cases: a grant by an operator, and (0) a
 * transfer the engine made on its own. */
static bool op_names_own_identity(const tally__batch *b, const tally__state *st, const tally__op *op) {
  return op->maker == op->account && op_maker(b, st, op) != NULL;
}

/* $112..$113 the networks of this batch's identities (each once), $114..$117
 * the identities of its new accounts, $118..$119 the identity of each
 * transfer whose receipt does not name its own account's identity (0: none,
 * the engine's own) (sql/010 tally_write_identities). */
static void render_identities(tally__batch *b, const tally__state *st) {
  bool used[TALLY__NETWORKS_MAX] = {false};
  for (uint32_t r = 0; r < b->row_count; r++)
    if (row_identity(b, st, r)) used[st->accounts[b->rows[r].index].net] = true;
  for (int col = 0; col < 2; col++) {
    bin_open(b, 111 + col, col == 0 ? OID_INT2 : OID_TEXT);
    for (uint16_t n = 0; n < st->network_count; n++) {
      if (!used[n]) continue;
      if (col == 0) bin_i16(b, (int16_t)st->networks[n].id);
      else bin_text(b, st->networks[n].name);
    }
    bin_close(b);
  }
  static const uint32_t oids[4] = {OID_INT8, OID_INT2, OID_TEXT, OID_INT8};
  for (int col = 0; col < 4; col++) {
    bin_open(b, 113 + col, oids[col]);
    for (uint32_t r = 0; r < b->row_count; r++) {
      if (!row_identity(b, st, r)) continue;
      const tally__account *a = &st->accounts[b->rows[r].index];
      if (col == 0) bin_i64(b, (int64_t)a->identity_id);
      else if (col == 1) bin_i16(b, (int16_t)st->networks[a->net].id);
      else if (col == 2) bin_text(b, tally__names_str(&st->names, a->name) + a->label);
      else bin_i64(b, (int64_t)a->id);
    }
    bin_close(b);
  }
  for (int col = 0; col < 2; col++) {
    bin_open(b, 117 + col, OID_INT8);
    for (uint32_t i = 0; i < b->transfer_count; i++) {
      const tally__op *op = &b->ops[b->xfer[i]];
      if (op_names_own_identity(b, st, op)) continue;
      const tally__account *m = op_maker(b, st, op);
      bin_i64(b, (int64_t)(col == 0 ? op->transfer_id : m ? m->identity_id : 0));
    }
    bin_close(b);
  }
}

/* $120..$125 identity_links rows (sql/013): LINK ops and the transfers of
 * kind LINK (the balance move) carry one each. */
static void render_links(tally__batch *b, const tally__state *st) {
  static const uint32_t oids[6] = {OID_INT8, OID_INT8, OID_INT8, OID_INT2, OID_INT8, OID_INT8};
  for (int col = 0; col < 6; col++) {
    bin_open(b, 119 + col, oids[col]);
    for (uint32_t k = 0; k < b->op_count; k++) {
      const tally__op *op = &b->ops[k];
      if (!op->link_event) continue;
      /* The move's own account is the joining wallet, its counterparty the person's. */
      uint32_t person = op->type == TALLY__OP_TRANSFER ? op->counterparty : op->account;
      if (col == 0) bin_i64(b, (int64_t)op->link_id);
      else if (col == 1) bin_i64(b, (int64_t)st->accounts[op->link_identity].identity_id);
      else if (col == 2) bin_i64(b, (int64_t)st->accounts[person].id);
      else if (col == 3) bin_i16(b, (int16_t)op->link_event);
      else if (col == 4) bin_i64(b, (int64_t)st->accounts[op->link_by].identity_id);
      else bin_i64(b, op->type == TALLY__OP_TRANSFER ? (int64_t)op->transfer_id : 0);
    }
    bin_close(b);
  }
}

/* $126 the features' ledger facts (sql/015), one JSON array: each FACT op's
 * object as its feature wrote it, and for a purchase that used an earned
 * reward (or the full refund that gives one back) a "use" ("ret") object
 * naming its transfer, which tally_write_facts keeps only when that
 * transfer committed with this batch. JSON, not arrays per column: the
 * facts of several features share one parameter and one function. */
_Static_assert(TALLY__FACT_BYTES_MAX + 64 < TALLY__BATCH_OP_TEXT_BYTES, "a fact fits its op's share of the batch text");
static void render_facts(tally__batch *b) {
  sb_param(b, 125);
  sb_char(b, '[');
  bool first = true;
  for (uint32_t k = 0; k < b->op_count; k++) {
    const tally__op *op = &b->ops[k];
    char tmp[160];
    const char *obj = NULL;
    if (op->type == TALLY__OP_FACT && op->fact) obj = op->fact;
    else if (op->type == TALLY__OP_TRANSFER && op->reward_fact != TALLY__REWARD_FACT_NONE) {
      snprintf(tmp, sizeof tmp, "{\"k\":\"%s\",\"g\":%" PRIu64 ",\"x\":%" PRIu64 ",\"d\":%" PRId64 "}",
               op->reward_fact == TALLY__REWARD_FACT_USE ? "use" : "ret", op->reward_grant, op->transfer_id,
               op->discount);
      obj = tmp;
    }
    if (!obj) continue;
    size_t n = strnlen(obj, TALLY__FACT_BYTES_MAX);
    assert(n < TALLY__FACT_BYTES_MAX);
    if (!first) sb_char(b, ',');
    first = false;
    sb_raw(b, obj, n);
  }
  sb_char(b, ']');
  sb_end(b);
}

/* ---- leaves, root, signature ---------------------------------------------------- */
static void compute_leaves(tally__batch *b, const tally__state *st) {
  b->transfer_count = 0;
  for (uint32_t k = 0; k < b->op_count; k++) {
    const tally__op *op = &b->ops[k];
    if (op->type != TALLY__OP_TRANSFER) continue;
    b->xfer[b->transfer_count] = k;
    tally__receipt_fields f = {
        .transfer_id = op->transfer_id, .batch_id = b->id, .kind = tally__transfer_ledger_kind(op->kind, op->amount), .qty = op->qty,
        .amount_minor = op->amount, .ref_transfer = op->ref_transfer,
        .created_ms = op->created_ms, .account = tally__account_name(st, op->account),
        .counterparty = op->counterparty == TALLY__NONE ? "" : tally__account_name(st, op->counterparty),
        .sku = op->item == TALLY__NONE ? "" : st->items[op->item].sku, .serial = op->serial,
        .version = 2}; /* sql/011: batches written since are leaf version 2 */
    const tally__account *m = op_maker(b, st, op);
    f.network = m ? st->networks[m->net].name : "";
    f.identity = m ? tally__names_str(&st->names, m->name) + m->label : "";
    /* The v2 leaf's reward: the earned reward a purchase used (sql/015
     * reward_uses, written with it), so the signed receipt names it. */
    f.reward = op->reward_fact == TALLY__REWARD_FACT_USE ? op->reward_grant : 0;
    tally__receipt_leaf(&f, b->leaves[b->transfer_count++]);
  }
}

static int seal_render(tally__batch *b, tally__state *st, struct tally__signer *signer,
                       uint64_t mono_ms, int64_t wall_ms, uint64_t lease_epoch);

int tally__batch_seal(tally__batch *b, tally__state *st, struct tally__signer *signer,
                      uint64_t mono_ms, int64_t wall_ms, uint64_t lease_epoch) {
  assert(b->phase == TALLY__BATCH_OPEN);
  b->id = tally__state_take_id(st);
  take_rows(b, st);
  return seal_render(b, st, signer, mono_ms, wall_ms, lease_epoch);
}

int tally__batch_reseal(tally__batch *b, tally__state *st, struct tally__signer *signer,
                        uint64_t mono_ms, int64_t wall_ms, uint64_t lease_epoch) {
  assert(b->phase != TALLY__BATCH_FREE);
  b->id = tally__state_take_id(st); /* above every transfer id it holds */
  b->inflight = false;
  b->retries = 0;
  b->maybe_committed = false;
  b->looked_up = false;
  b->statement_ok = false;
  b->found_batch = false;
  return seal_render(b, st, signer, mono_ms, wall_ms, lease_epoch);
}

void tally__batch_drop_ops(tally__batch *b, const bool *drop) {
  uint32_t n = 0;
  for (uint32_t k = 0; k < b->op_count; k++)
    if (!drop[k]) b->ops[n++] = b->ops[k];
  uint32_t kept = n;
  for (uint32_t k = b->op_count; k < b->op_count + b->hidden; k++) b->ops[n++] = b->ops[k];
  b->op_count = kept;
}

static int seal_render(tally__batch *b, tally__state *st, struct tally__signer *signer,
                       uint64_t mono_ms, int64_t wall_ms, uint64_t lease_epoch) {
  b->sealed_mono_ms = mono_ms;
  compute_leaves(b, st);
  uint64_t first = 0, last = 0;
  for (uint32_t k = 0; k < b->op_count; k++) {
    if (b->ops[k].type != TALLY__OP_TRANSFER) continue;
    if (!first) first = b->ops[k].transfer_id;
    assert(b->ops[k].transfer_id > last);
    last = b->ops[k].transfer_id;
  }
  memset(b->root, 0, sizeof b->root);
  memset(b->sig, 0, sizeof b->sig);
  if (b->transfer_count > 0) {
    tally__merkle_root((const uint8_t(*)[32])b->leaves, b->transfer_count, b->scratch, b->root);
    int rc = tally__signer_sign_batch(signer, b->id, b->transfer_count, b->root, b->sig);
    if (rc) return rc;
  }
  b->text_len = 0;
  memset(b->formats, 0, sizeof b->formats);
  memset(b->lengths, 0, sizeof b->lengths);
  int64_t header[4] = {(int64_t)b->id, (int64_t)first, (int64_t)last, b->transfer_count};
  for (int k = 0; k < 4; k++) {
    sb_param(b, k);
    sb_i64(b, header[k]);
    sb_end(b);
  }
  sb_param(b, 4);
  sb_hex(b, b->root, sizeof b->root);
  sb_end(b);
  sb_param(b, 5);
  sb_hex(b, b->sig, sizeof b->sig);
  sb_end(b);
  sb_param(b, 6);
  sb_raw(b, tally__signer_key_id(signer), strlen(tally__signer_key_id(signer)));
  sb_end(b);
  sb_param(b, 7);
  sb_i64(b, wall_ms);
  sb_end(b);
  render_accounts(b, st);
  render_items(b, st);
  render_transfers(b, st);
  render_consents_roles(b, st);
  render_legs(b, st);
  render_request_fps(b, st);
  render_item_drops(b, st);
  render_events(b, st);
  render_item_extras(b, st);
  render_transfer_extras(b, st);
  render_records(b, st);
  render_audience_columns(b, st);
  render_audience_rows(b, st, mono_ms);
  render_merch(b, st);
  render_tip_messages(b, st, st->cfg->tip_message_hold_s);
  render_coop_purchases(b);
  render_raffle_passes(b, st);
  render_audit(b, st);
  render_identities(b, st);
  render_links(b, st);
  render_facts(b);
  sb_param(b, 42);
  sb_i64(b, (int64_t)lease_epoch);
  sb_end(b);
  b->phase = TALLY__BATCH_SEALED;
  return TALLY_OK;
}

const char *tally__batch_keys_param(tally__batch *b, const tally__state *st) {
  size_t n = 0;
  b->keys_text[n++] = '{';
  for (uint32_t i = 0; i < b->transfer_count; i++) {
    const char *key = st->keys[b->ops[b->xfer[i]].key_slot].key;
    assert(n + 2 * strlen(key) + 4 < b->keys_cap);
    if (i) b->keys_text[n++] = ',';
    b->keys_text[n++] = '"';
    for (const char *c = key; *c; c++) {
      if (*c == '"' || *c == '\\') b->keys_text[n++] = '\\';
      b->keys_text[n++] = *c;
    }
    b->keys_text[n++] = '"';
  }
  b->keys_text[n++] = '}';
  b->keys_text[n] = 0;
  return b->keys_text;
}

int32_t tally__batch_find_transfer(const tally__batch *b, uint64_t transfer_id) {
  uint32_t lo = 0, hi = b->transfer_count;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (b->ops[b->xfer[mid]].transfer_id < transfer_id) lo = mid + 1;
    else hi = mid;
  }
  return lo < b->transfer_count && b->ops[b->xfer[lo]].transfer_id == transfer_id ? (int32_t)lo : -1;
}
