/* batch_records.c — the rest of a batch's statement: record ops, the
 * audience, merch notes, tip messages, co-op purchases, raffle passes, the
 * audit log, identities, links and the features' facts (sql/005 onwards). */
#include "batch_params.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
const tally__account *tally__batch_op_maker(const tally__batch *b, const tally__state *st, const tally__op *op) {
  if (op->maker >= st->account_count || !st->accounts[op->maker].identity_id) return NULL;
  const tally__account *a = &st->accounts[op->maker];
  return a->persisted || tally__batch_row_taken(b, op->maker, TALLY__ROW_ACCOUNT) ? a : NULL;
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
  return op->maker == op->account && tally__batch_op_maker(b, st, op) != NULL;
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
      const tally__account *m = tally__batch_op_maker(b, st, op);
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


void tally__batch_render_records(tally__batch *b, const tally__state *st, uint64_t now_mono) {
  render_records(b, st);
  render_audience_columns(b, st);
  render_audience_rows(b, st, now_mono);
  render_merch(b, st);
  render_tip_messages(b, st, st->cfg->tip_message_hold_s);
  render_coop_purchases(b);
  render_raffle_passes(b, st);
  render_audit(b, st);
  render_identities(b, st);
  render_links(b, st);
  render_facts(b);
}
