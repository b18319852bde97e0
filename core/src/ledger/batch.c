/* batch.c — renders a batch as ONE statement: data-modifying CTEs that
 * insert from unnest() over array parameters. One statement is one
 * transaction and one round trip, so group commit costs one fsync per
 * batch however many buys it carries. Parameters are built in a buffer
 * allocated once per batch slot (batch_params.h). This file: a batch's
 * life (init, ops, seal, reseal, the ops dropped), its leaves, root and
 * signature, and the key lookup's parameter; the columns are rendered by
 * batch_columns.c and batch_records.c, the catalog rows taken by
 * batch_rows.c. */
#include "batch.h"
#include "batch_params.h"

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
    " UNION ALL SELECT * FROM tally_write_offer_changes($1, $8, $126::jsonb)" /* sql/023: same facts */
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
    const tally__account *m = tally__batch_op_maker(b, st, op);
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
  tally__batch_take_rows(b, st);
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
  tally__batch_render_columns(b, st);
  tally__batch_render_records(b, st, mono_ms);
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
    const char *key = tally__key_text(st, b->ops[b->xfer[i]].key_slot);
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
