/* batch_columns.c — the catalog and ledger columns of a batch's statement:
 * accounts, items, transfers, consents and roles, legs, request
 * fingerprints, drops, events and the items' and transfers' extras, each a
 * binary array parameter at its fixed position (tally_write_batch). */
#include "batch_params.h"
#include "test_fault.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
      case 2: bin_text(b, tally__key_text(st, op->key_slot)); break;
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

void tally__batch_render_columns(tally__batch *b, const tally__state *st) {
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
}
