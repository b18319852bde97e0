/* engine.c — the public engine API, the engine thread and its loop, effect
 * emission, and what happens to a batch when it commits or fails.
 *
 * The host thread only copies frames into `in` and out of `out`; the engine
 * thread drains `in` each time it is woken (uv_async) or ticks, decides each
 * command in memory, appends money operations to the open batch, and hands
 * sealed batches to idle writers. Replies about money are emitted only in
 * tally__engine_batch_done, i.e. after PostgreSQL said COMMIT. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "engine_internal.h"
#include "hooks.h"
#include "text.h"

/* ---- clocks ----------------------------------------------------------------- */
uint64_t tally__now_mono_ms(tally__engine *e) {
  uv_update_time(&e->loop);
  return uv_now(&e->loop);
}

int64_t tally__now_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t tally__format_amount(const tally__engine *e, int64_t minor, char *out, size_t n) {
  char num[32];
  tally__amount_format(minor, e->cfg.currency_decimals, num, sizeof num);
  int k = snprintf(out, n, "%s %s", num, e->currency);
  return k < 0 ? 0 : (size_t)k;
}

/* ---- effects ------------------------------------------------------------------ */
static void emit_effect(tally__engine *e, const tally_effect *eff);

void tally__emit(tally__engine *e, uint32_t kind, int code, uint64_t req_id, uint64_t receipt,
                 const char *origin, const char *channel, const char *text) {
  /* A refusal for want of an account always says how to log in, in the
   * adapter's words: the engine's text names no network's way of doing it. */
  uint32_t hint = code == TALLY_ENOT_LOGGED_IN ? TALLY_HINT_LOG_IN : TALLY_HINT_NONE;
  tally_effect eff = {.size = sizeof eff, .version = TALLY_EFFECT_VERSION, .kind = kind,
                      .code = code, .req_id = req_id, .receipt_id = receipt,
                      .origin = origin ? origin : "", .channel = channel ? channel : "",
                      .text = text ? text : "", .hint = hint};
  emit_effect(e, &eff);
}

static void emit_effect(tally__engine *e, const tally_effect *eff) {
  uint32_t kind = eff->kind;
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len;
  int rc = tally__effect_encode(eff, buf, sizeof buf, &len);
  assert(rc == TALLY_OK);
  /* Replies had space reserved before their command was taken (see
   * effects_room), so a full ring for a reply is a broken invariant. An
   * announcement (timers, drops) is not reserved: if the host stopped
   * draining, it is dropped and counted rather than stalling the engine. */
  rc = tally__ring_push(&e->out, buf, len);
  if (rc != TALLY_OK && kind != TALLY_EFFECT_REPLY) {
    atomic_fetch_add_explicit(&e->n_announce_dropped, 1, memory_order_relaxed);
    return;
  }
  assert(rc == TALLY_OK);
  atomic_fetch_add_explicit(&e->n_effects_out, 1, memory_order_relaxed);
  e->effects_pending = true;
}

void tally__reply(tally__engine *e, const tally__command_frame *cmd, int code, uint64_t receipt,
                  const char *fmt, ...) {
  char text[TALLY_TEXT_BYTES_MAX + 1];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  tally__emit(e, TALLY_EFFECT_REPLY, code, cmd->req_id, receipt, cmd->origin, cmd->channel, text);
}

void tally__reply_hint(tally__engine *e, const tally__command_frame *cmd, int code, uint32_t hint,
                       const char *fmt, ...) {
  char text[TALLY_TEXT_BYTES_MAX + 1];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  tally_effect eff = {.size = sizeof eff, .version = TALLY_EFFECT_VERSION, .kind = TALLY_EFFECT_REPLY,
                      .code = code, .req_id = cmd->req_id, .origin = cmd->origin,
                      .channel = cmd->channel, .text = text, .hint = hint};
  emit_effect(e, &eff);
}

void tally__announce(tally__engine *e, const char *channel, const char *fmt, ...) {
  if (!channel || !channel[0]) return;
  char text[TALLY_TEXT_BYTES_MAX + 1];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  tally__emit(e, TALLY_EFFECT_ANNOUNCE, TALLY_OK, 0, 0, "", channel, text);
}

void tally__signal_host(tally__engine *e) {
  if (!e->effects_pending) return;
  e->effects_pending = false;
  uint64_t one = 1;
  ssize_t n = write(e->efd, &one, sizeof one);
  (void)n; /* EAGAIN means the counter is already non-zero: the host will wake */
}

/* ---- batches -------------------------------------------------------------------- */
tally__batch *tally__engine_open_batch(tally__engine *e) {
  if (e->open && e->open->phase == TALLY__BATCH_OPEN && !tally__batch_full(e->open)) return e->open;
  if (e->open && e->open->phase == TALLY__BATCH_OPEN) return NULL; /* full, waiting */
  for (uint32_t i = 0; i < e->batch_slots; i++) {
    if (e->batches[i].phase == TALLY__BATCH_FREE) {
      e->open = &e->batches[i];
      e->open->phase = TALLY__BATCH_OPEN;
      return e->open;
    }
  }
  e->open = NULL;
  return NULL;
}

static tally__writer *idle_writer(tally__engine *e) {
  for (uint32_t k = 0; k < e->cfg.writers; k++)
    if (e->writers[k].state == TALLY__WRITER_IDLE) return &e->writers[k];
  return NULL;
}

static void send_batch(tally__engine *e, tally__writer *w, tally__batch *b) {
  b->inflight = true;
  if (tally__writer_send_batch(w, b) != TALLY_OK) b->inflight = false;
  (void)e;
}

/* Gives sealed batches waiting to be (re)sent to idle writers first, oldest
 * batch id first, then seals the open batch if a writer is still idle. */
void tally__engine_flush(tally__engine *e) {
  if (!e->ready) return;
  for (;;) {
    tally__batch *oldest = NULL;
    for (uint32_t i = 0; i < e->batch_slots; i++) {
      tally__batch *b = &e->batches[i];
      if (b->phase == TALLY__BATCH_SEALED && !b->inflight && (!oldest || b->id < oldest->id)) oldest = b;
    }
    tally__writer *w = oldest ? idle_writer(e) : NULL;
    if (!w) break;
    send_batch(e, w, oldest);
    if (!oldest->inflight) return; /* the writer broke; try again later */
  }
  tally__writer *w = idle_writer(e);
  if (!w) return;
  tally__batch *open = e->open;
  bool ops = open && open->phase == TALLY__BATCH_OPEN && open->op_count > 0;
  if (!ops) {
    /* Catalog rows changed by timers (a drop opening, an event ending)
     * have no op to ride with: they open a batch of their own. Looked for
     * only here, so a flush while buys flow costs no scan of the rows.
     * After a failed batch, rows alone wait a while: a row the ledger
     * keeps refusing must not turn into a tight loop of failing batches. */
    bool rows = tally__now_mono_ms(e) >= e->rows_retry_mono_ms && tally__batch_rows_waiting(&e->st);
    if (!rows) return;
    if (!open) open = tally__engine_open_batch(e);
    if (!open || open->phase != TALLY__BATCH_OPEN) return;
  }
  int rc = tally__batch_seal(open, &e->st, e->signer, tally__now_mono_ms(e), tally__now_wall_ms(),
                             e->lease_epoch);
  e->open = NULL;
  if (rc) {
    tally__engine_batch_failed(e, open, "signing failed");
    return;
  }
  send_batch(e, w, open);
}

static void rows_committed(tally__engine *e, const tally__batch *b) {
  tally__state *st = &e->st;
  tally__batch_rows_settled(b, st);
  for (uint32_t r = 0; r < b->row_count; r++) {
    const tally__batch_row *row = &b->rows[r];
    if (row->what == TALLY__ROW_ITEM) {
      tally__item *it = &st->items[row->index];
      if (it->version == row->version) it->dirty = false;
      continue;
    }
    if (row->what == TALLY__ROW_EVENT) {
      tally__event *ev = &st->events[row->index];
      if (ev->version == row->version) ev->dirty = false;
      continue;
    }
    if (row->what == TALLY__ROW_ATTEND) {
      tally__audience *au = &st->audience[row->index];
      if (au->version == row->version) au->dirty = false;
      continue;
    }
    if (row->what == TALLY__ROW_REFCODE) {
      st->refcodes[row->index].persisted = true;
      continue;
    }
    if (row->what == TALLY__ROW_BIO) {
      if (st->bios[row->index].version == row->version) st->bios[row->index].dirty = false;
      continue;
    }
    tally__account *a = &st->accounts[row->index];
    if (row->what == TALLY__ROW_PRIVACY && a->privacy_version == row->version) a->privacy_dirty = false;
    if (row->what == TALLY__ROW_ACCOUNT) a->persisted = true;
    if (row->what == TALLY__ROW_CONSENT) a->consent_persisted = true;
    if (row->what == TALLY__ROW_ROLE && a->role_version == row->version) a->role_dirty = false;
  }
  /* Drop rows that are clean now from the dirty lists. */
  uint32_t n = 0;
  for (uint32_t k = 0; k < st->dirty_account_count; k++) {
    tally__account *a = &st->accounts[st->dirty_accounts[k]];
    bool dirty = !a->persisted || (a->consented && !a->consent_persisted) || a->role_dirty || a->privacy_dirty;
    if (dirty) st->dirty_accounts[n++] = st->dirty_accounts[k];
    else a->dirty_listed = false;
  }
  st->dirty_account_count = n;
  n = 0;
  for (uint32_t k = 0; k < st->dirty_item_count; k++) {
    tally__item *it = &st->items[st->dirty_items[k]];
    if (it->dirty) st->dirty_items[n++] = st->dirty_items[k];
    else it->dirty_listed = false;
  }
  st->dirty_item_count = n;
  n = 0;
  for (uint32_t k = 0; k < st->dirty_audience_count; k++) {
    tally__audience *au = &st->audience[st->dirty_audience[k]];
    if (au->dirty) st->dirty_audience[n++] = st->dirty_audience[k];
    else au->dirty_listed = false;
  }
  st->dirty_audience_count = n;
}

static void op_committed(tally__engine *e, tally__batch *b, tally__op *op);
static void op_failed(tally__engine *e, tally__op *op, const char *text);
static void batch_go_again(tally__engine *e, tally__batch *b);

/* A transfer the ledger does not hold as ours: a duplicate key, or (after a
 * complete lookup) a transfer that never committed. */
static void op_not_ours(tally__engine *e, tally__batch *b, uint32_t k) {
  tally__op *op = &b->ops[b->xfer[k]];
  tally__key *key = &e->st.keys[op->key_slot];
  uint64_t existing = b->found_id[k];
  tally__op_release(&e->st, op);
  e->ops_pending--;
  TALLY__FEATURES_CALL(e, settled, op,
                       !existing ? TALLY_EFAILED : b->found_fp[k] == key->fingerprint ? TALLY_OK : TALLY_EKEY_MISMATCH);
  if (existing && b->found_fp[k] == key->fingerprint) {
    /* The same request was recorded earlier (the key had left memory): its
     * first answer. */
    key->transfer_id = existing;
    key->state = TALLY__KEY_DONE;
    if (op->origin[0])
      tally__emit(e, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, existing, op->origin, op->channel,
                  "Already done earlier: receipt on record");
  } else if (existing) {
    tally__key_forget(&e->st, op->key_slot);
    if (op->origin[0])
      tally__emit(e, TALLY_EFFECT_REPLY, TALLY_EKEY_MISMATCH, op->req_id, 0, op->origin, op->channel,
                  tally_strerror(TALLY_EKEY_MISMATCH));
  } else {
    assert(b->looked_up); /* "not charged" only when the ledger was asked */
    tally__key_forget(&e->st, op->key_slot); /* a CLI grant: polled for again */
    if (op->origin[0])
      tally__emit(e, TALLY_EFFECT_REPLY, TALLY_EFAILED, op->req_id, 0, op->origin, op->channel,
                  tally_strerror(TALLY_EFAILED));
  }
}

/* A record op (raffle entry, pass redemption) committed, or (ok false)
 * failed: its effect in memory is made durable or undone. */
static void record_settled(tally__engine *e, const tally__op *op, bool ok) {
  tally__state *st = &e->st;
  if (op->type == TALLY__OP_ENTRY) {
    tally__raffle_entry *en = &st->entries[op->entry_slot];
    st->items[op->item].entries_inflight--;
    if (ok) {
      en->persisted = true;
    } else {
      en->live = false;
      int32_t *units;
      tally__per_user_units(st, op->account, op->item, &units);
      if (units) *units = 0;
    }
  } else if (op->type == TALLY__OP_SHIP && ok) {
    tally__ship_note *n = &st->ship_notes[st->ship_next++ % TALLY__SHIP_NOTES_KEPT];
    n->transfer_id = op->ref_transfer;
    tally__text_clip(n->note, sizeof n->note, op->note);
  } else if (op->type == TALLY__OP_REDEEM) {
    tally__purchase *p = &st->purchases[op->purchase_slot];
    p->redeem_held = false;
    p->redeemed = ok;
  } else {
    TALLY__FEATURES_CALL(e, record_settled, op, ok); /* HIDE, PASS: a feature's */
  }
}

/* Did this batch commit? Yes when its statement succeeded. Settled by key
 * lookup after a lost outcome and a failed resend, it did when the ledger
 * holds any of its transfers under our ids (one transaction: all or
 * nothing). A batch without transfers cannot be told apart that way, and
 * is taken as committed, as a lost reply most often means. */
static bool batch_committed(const tally__batch *b) {
  if (b->statement_ok || b->transfer_count == 0) return true;
  for (uint32_t k = 0; k < b->transfer_count; k++)
    if (b->found_id[k] == b->ops[b->xfer[k]].transfer_id) return true;
  return false;
}

/* A batch refused as a whole because some of its keys are held by other
 * transfers (TL002; the key had left memory, e.g. a replay a day later):
 * those ops get their first answer (or "key reused"), and the others go
 * again in the same batch under a new id and signature. Nothing of it
 * committed, so no receipt named the old id. */
static void batch_resettle(tally__engine *e, tally__batch *b) {
  b->key_taken = false;
  memset(b->drop, 0, b->op_count * sizeof *b->drop);
  uint32_t dropped = 0;
  for (uint32_t k = 0; k < b->transfer_count; k++) {
    if (!b->found_id[k]) continue;
    op_not_ours(e, b, k);
    b->drop[b->xfer[k]] = true;
    dropped++;
  }
  tally__batch_drop_ops(b, b->drop);
  if (!dropped || b->reseals >= TALLY__RESEALS_MAX) {
    tally__engine_batch_failed(e, b, "refused: a key is taken, and the lookup did not say which");
    return;
  }
  b->reseals++;
  batch_go_again(e, b); /* sealed and not in flight: tally__engine_flush sends it */
}

/* Re-seals what is left of a batch (op_count ops, then the hidden ones)
 * under a new id; tally__engine_flush sends it. */
static void batch_go_again(tally__engine *e, tally__batch *b) {
  if (b->op_count == 0 && b->row_count == 0) {
    b->op_count = b->hidden;
    b->hidden = 0;
  }
  if (b->op_count == 0 && b->row_count == 0) {
    tally__batch_reset(b);
    return;
  }
  int rc = tally__batch_reseal(b, &e->st, e->signer, tally__now_mono_ms(e), tally__now_wall_ms(), e->lease_epoch);
  if (rc) tally__engine_batch_failed(e, b, "signing failed");
}

/* The part of a batch that was sent committed: the hidden ops move up and
 * go next, as one batch (halved again if the ledger still refuses it). */
static void batch_next_part(tally__engine *e, tally__batch *b) {
  memmove(b->ops, b->ops + b->op_count, b->hidden * sizeof *b->ops);
  b->op_count = b->hidden;
  b->hidden = 0;
  b->row_count = 0; /* committed with the part before */
  batch_go_again(e, b);
}

void tally__engine_batch_isolate(tally__engine *e, tally__batch *b, const char *why) {
  uint32_t sent = b->op_count;
  fprintf(stderr, "tally: batch %llu refused for its data (%s): isolating the op at fault\n",
          (unsigned long long)b->id, why);
  if (sent == 0) { /* the catalog rows alone: nothing to isolate */
    tally__engine_batch_failed(e, b, why);
    return;
  }
  if (b->row_count > 0) { /* rows first, alone: an op is blamed only without them */
    b->hidden += sent;
    b->op_count = 0;
  } else if (sent == 1) {
    char text[TALLY_TEXT_BYTES_MAX + 1];
    snprintf(text, sizeof text, "could not be recorded: the ledger refused this request's data (%s); you were not charged",
             why);
    tally__text_trim_tail(text, strlen(text));
    op_failed(e, &b->ops[0], text);
    memmove(b->ops, b->ops + 1, b->hidden * sizeof *b->ops);
    b->op_count = b->hidden;
    b->hidden = 0;
  } else {
    b->op_count = sent / 2;
    b->hidden += sent - sent / 2;
  }
  batch_go_again(e, b);
}

void tally__engine_batch_done(tally__engine *e, tally__batch *b) {
  if (b->key_taken) {
    batch_resettle(e, b);
    return;
  }
  bool committed = batch_committed(b);
  if (committed) rows_committed(e, b);
  else tally__batch_rows_settled(b, &e->st); /* still dirty: they go again */
  for (uint32_t k = 0; k < b->op_count; k++) {
    tally__op *op = &b->ops[k];
    if (op->type == TALLY__OP_TRANSFER) continue;
    e->ops_pending--;
    record_settled(e, op, committed);
    if (!committed) {
      if (op->origin[0] || op->type == TALLY__OP_ACK)
        tally__emit(e, TALLY_EFFECT_REPLY, TALLY_EFAILED, op->req_id, 0, op->origin, op->channel,
                    tally_strerror(TALLY_EFAILED));
      continue;
    }
    if (op->type == TALLY__OP_SHIP) {
      char text[96];
      snprintf(text, sizeof text, "Shipping note saved for receipt %llu; the creator sees it with ORDERS.",
               (unsigned long long)op->ref_transfer);
      tally__emit(e, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, 0, op->origin, op->channel, text);
      continue;
    }
    if (op->origin[0] || op->type == TALLY__OP_ACK)
      tally__emit(e, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, 0, op->origin, op->channel, op->note);
  }
  for (uint32_t k = 0; k < b->transfer_count; k++) {
    tally__op *op = &b->ops[b->xfer[k]];
    if (b->inserted[k] || b->found_id[k] == op->transfer_id) op_committed(e, b, op);
    else op_not_ours(e, b, k);
  }
  if (committed && b->transfer_count) TALLY__FEATURES_CALL0(e, ledger_recovered); /* the ledger takes writes again */
  atomic_fetch_add_explicit(&e->n_batches, 1, memory_order_relaxed);
  if (committed && b->hidden) {
    batch_next_part(e, b);
    return;
  }
  b->op_count += b->hidden; /* not committed: settled above are only the sent ones */
  b->hidden = 0;
  tally__batch_reset(b);
}

/* What a buyer of a digital item or pass is told privately, after the
 * receipt line. */
static void purchase_extras(tally__engine *e, const tally__op *op, const tally__item *it) {
  if (!op->origin[0]) return;
  char text[TALLY_TEXT_BYTES_MAX + 1];
  if (it->kind == TALLY__KIND_DIGITAL) /* delivered is what DELIVERY records: not sent here */
    snprintf(text, sizeof text, "Your %s is ready: send privately DELIVERY %llu to receive it (refundable until then)",
             it->sku, (unsigned long long)op->transfer_id);
  else if (it->kind == TALLY__KIND_MERCH)
    snprintf(text, sizeof text, "To get your %s shipped, send privately: SHIP %llu <address and any note>", it->sku,
             (unsigned long long)op->transfer_id);
  else if (it->kind == TALLY__KIND_PASS)
    snprintf(text, sizeof text, "Your pass %s is ready: REDEEM %llu to use it (once; a redeemed pass is not refundable)",
             it->sku, (unsigned long long)op->transfer_id);
  else
    return;
  tally__emit(e, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, 0, op->origin, "", text);
}

static void op_committed(tally__engine *e, tally__batch *b, tally__op *op) {
  tally__state *st = &e->st;
  tally__op_commit(st, op);
  e->ops_pending--;
  tally__key *key = &st->keys[op->key_slot];
  key->state = TALLY__KEY_DONE;
  tally__account *a = &st->accounts[op->account];
  char amount[48], text[TALLY_TEXT_BYTES_MAX + 1];
  tally__format_amount(e, op->amount, amount, sizeof amount);
  switch (op->kind) {
  case TALLY__TRANSFER_PURCHASE: {
    const tally__item *it = &st->items[op->item];
    tally__account_note_receipt(a, op->transfer_id);
    atomic_fetch_add_explicit(&e->n_buys_committed, 1, memory_order_relaxed);
    int n = snprintf(text, sizeof text, "Bought %ux %s (%s) for %s. receipt %llu (batch %llu, signed)",
                     op->qty, it->title, it->sku, amount, (unsigned long long)op->transfer_id,
                     (unsigned long long)b->id);
    if (op->serial && n > 0 && (size_t)n < sizeof text) {
      if (op->qty == 1)
        snprintf(text + n, sizeof text - (size_t)n, " - serial %u of %d", op->serial, it->stock);
      else
        snprintf(text + n, sizeof text - (size_t)n, " - serials %u-%u of %d", op->serial,
                 op->serial + op->qty - 1, it->stock);
    }
    break;
  }
  case TALLY__TRANSFER_TIP:
    tally__account_note_receipt(a, op->transfer_id);
    TALLY__FEATURES_CALL(e, tipped, op, amount);
    snprintf(text, sizeof text, "Tipped %s to %s. receipt %llu%s", amount,
             st->accounts[op->counterparty].name + 5, (unsigned long long)op->transfer_id,
             op->held_message ? " - your message is shown after the channel's moderation hold" : "");
    break;
  case TALLY__TRANSFER_REFUND:
    tally__account_note_receipt(a, op->transfer_id);
    snprintf(text, sizeof text, "Refunded %s for receipt %llu. receipt %llu", amount,
             (unsigned long long)op->ref_transfer, (unsigned long long)op->transfer_id);
    break;
  default:
    snprintf(text, sizeof text, "Granted %s to %s. receipt %llu", amount, a->name + 5,
             (unsigned long long)op->transfer_id);
    break;
  }
  if (op->origin[0])
    tally__emit(e, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, op->transfer_id, op->origin,
                op->channel, text);
  if (op->kind == TALLY__TRANSFER_PURCHASE) purchase_extras(e, op, &st->items[op->item]);
  TALLY__FEATURES_CALL(e, committed, op);
  TALLY__FEATURES_CALL(e, settled, op, TALLY_OK);
}

/* An op that did not commit and never will in this batch: its effect in
 * memory is undone and its sender told `text`. */
static void op_failed(tally__engine *e, tally__op *op, const char *text) {
  e->ops_pending--;
  record_settled(e, op, false);
  if (op->type == TALLY__OP_TRANSFER) {
    tally__op_release(&e->st, op);
    tally__key_forget(&e->st, op->key_slot); /* a CLI grant: polled for again */
    TALLY__FEATURES_CALL(e, settled, op, TALLY_EFAILED);
    atomic_fetch_add_explicit(&e->n_buys_refused, 1, memory_order_relaxed);
  }
  if (op->origin[0]) tally__emit(e, TALLY_EFFECT_REPLY, TALLY_EFAILED, op->req_id, 0, op->origin, op->channel, text);
}

void tally__engine_batch_failed(tally__engine *e, tally__batch *b, const char *why) {
  b->op_count += b->hidden; /* ops left out of the last send fail with it */
  b->hidden = 0;
  for (uint32_t k = 0; k < b->op_count; k++) op_failed(e, &b->ops[k], tally_strerror(TALLY_EFAILED));
  fprintf(stderr, "tally: batch %llu failed: %s\n", (unsigned long long)b->id, why);
  tally__batch_rows_settled(b, &e->st);
  e->rows_retry_mono_ms = tally__now_mono_ms(e) + TALLY__ROWS_RETRY_MS;
  if (e->open == b) e->open = NULL;
  tally__batch_reset(b);
}

void tally__engine_fence(tally__engine *e) {
  if (e->fenced) return;
  e->fenced = true;
  e->ready = false;
  fprintf(stderr, "tally: another engine took this ledger; this one stops writing\n");
  tally__emit(e, TALLY_EFFECT_STATUS, TALLY_ESTATE, 0, 0, "", "",
              "stopped: another tally engine took over this ledger");
  /* Open batches and sealed ones never sent were never committed: their
   * buyers were not charged. A batch whose outcome was lost is not failed
   * blind: it stays unresolved (its buyers were told "pending", and the
   * ledger, which the new engine serves, has the truth). */
  for (uint32_t i = 0; i < e->batch_slots; i++) {
    tally__batch *b = &e->batches[i];
    bool open = b->phase == TALLY__BATCH_OPEN && b->op_count;
    bool unsent = b->phase == TALLY__BATCH_SEALED && !b->inflight && !b->maybe_committed;
    if (open || unsent) tally__engine_batch_failed(e, b, "fenced");
  }
}

/* ---- the loop ------------------------------------------------------------------- */
static bool effects_room(tally__engine *e) {
  size_t free_slots = tally__ring_capacity(&e->out) - tally__ring_count(&e->out);
  /* Per pending op: its answer, a "pending" notice, a channel line (tip
   * thanks) and a drop line (low stock, sold out). */
  return free_slots >= (size_t)TALLY__EFFECTS_PER_EVENT_MAX + 4u * e->ops_pending + 8u;
}

static void drain_events(tally__engine *e) {
  tally__command_frame cmd;
  uint32_t since_flush = 0;
  while (effects_room(e)) {
    /* Hand work to idle writers while a burst is still being drained, so
     * both connections overlap instead of one big batch at a time. */
    if (++since_flush >= TALLY__DRAIN_FLUSH_EVERY) {
      since_flush = 0;
      tally__engine_flush(e);
    }
    size_t len = tally__ring_pop(&e->in, e->frame);
    if (len == 0) break;
    atomic_fetch_add_explicit(&e->n_events_in, 1, memory_order_relaxed);
    if (tally__command_frame_decode(&e->dec, e->frame, len, &cmd) != TALLY_OK) {
      fprintf(stderr, "tally: dropped a malformed frame (%zu bytes)\n", len);
      continue;
    }
    if (!e->ready) {
      if (e->fenced)
        tally__reply(e, &cmd, TALLY_ESTATE, 0, "tally is stopped here: another tally engine took over its ledger");
      else tally__reply(e, &cmd, TALLY_ESTARTING, 0, "%s", tally_strerror(TALLY_ESTARTING));
      continue;
    }
    e->hooks->command(e, &cmd);
  }
  tally__engine_flush(e);
  tally__signal_host(e);
}

/* The verifier thread finished some VERIFY checks: answer them. */
static void on_verified(uv_async_t *h) {
  tally__engine *e = h->data;
  tally__verifier_collect(e->verifier, e->hooks->verify_answer, e);
  tally__signal_host(e);
}

static void on_wake(uv_async_t *h) {
  tally__engine *e = h->data;
  if (atomic_load(&e->stopping)) return;
  drain_events(e);
}

static void try_start(tally__engine *e, uint64_t now) {
  if (e->ready || now < e->next_start_ms) return;
  e->next_start_ms = now + TALLY__RECONNECT_MS * 2;
  char err[TALLY_ERRBUF_BYTES] = "";
  tally__writer *w0 = &e->writers[0];
  int rc = tally__writer_connect(w0, err, sizeof err);
  if (rc == TALLY_OK) rc = tally__engine_load(e, w0->conn, err, sizeof err);
  for (uint32_t k = 1; rc == TALLY_OK && k < e->cfg.writers; k++)
    rc = tally__writer_connect(&e->writers[k], err, sizeof err);
  if (rc != TALLY_OK) {
    if (strcmp(err, e->startup_error) != 0) {
      fprintf(stderr, "tally: start: %s\n", err);
      /* A host sees why it is not starting (e.g. a config the ledger refuses). */
      tally__emit(e, TALLY_EFFECT_STATUS, rc, 0, 0, "", "", err);
    }
    snprintf(e->startup_error, sizeof e->startup_error, "%s", err);
    for (uint32_t k = 0; k < e->cfg.writers; k++) tally__writer_close(&e->writers[k]);
    return;
  }
  e->ready = true;
  tally__emit(e, TALLY_EFFECT_STATUS, TALLY_OK, 0, 0, "", "", "ready");
  /* Presence before this start is unknown: ask for the rosters of the
   * channels whose events are running. */
  for (uint32_t i = 0; i < e->st.event_count; i++)
    if (!e->st.events[i].stopped_ms)
      tally__emit(e, TALLY_EFFECT_ROSTER, TALLY_OK, 0, 0, "", e->st.events[i].channel, "");
}

static void pending_notices(tally__engine *e, uint64_t now) {
  for (uint32_t i = 0; i < e->batch_slots; i++) {
    tally__batch *b = &e->batches[i];
    if (b->phase == TALLY__BATCH_FREE) continue; /* open ones too: all writers may be down */
    for (uint32_t k = 0; k < b->op_count; k++) {
      tally__op *op = &b->ops[k];
      /* Only payments are "pending"; an ACK (ITEM, ROLE) just answers late. */
      if (op->type != TALLY__OP_TRANSFER || op->told_pending || !op->origin[0] ||
          now - op->decided_mono_ms < e->cfg.pending_timeout_ms)
        continue;
      op->told_pending = true;
      tally__emit(e, TALLY_EFFECT_REPLY, TALLY_EPENDING, op->req_id, 0, op->origin, op->channel,
                  tally_strerror(TALLY_EPENDING));
    }
  }
}

static void on_tick(uv_timer_t *t) {
  tally__engine *e = t->data;
  uint64_t now = tally__now_mono_ms(e);
  if (!e->ready && !e->fenced) try_start(e, now);
  if (e->ready || e->fenced) {
    tally__writers_tick(e, now);
    pending_notices(e, now);
  }
  if (e->ready) {
    TALLY__FEATURES_CALL(e, tick, now);
  }
  if (!atomic_load(&e->stopping)) drain_events(e);
  else tally__engine_flush(e);
  tally__signal_host(e);
}

static bool work_in_flight(const tally__engine *e) {
  for (uint32_t i = 0; i < e->batch_slots; i++) {
    const tally__batch *b = &e->batches[i];
    if (b->phase == TALLY__BATCH_SEALED || b->phase == TALLY__BATCH_RESOLVING) return true;
    if (b->phase == TALLY__BATCH_OPEN && b->op_count > 0) return true;
  }
  return false;
}

static void on_close(uv_handle_t *h) { (void)h; }

static void *engine_thread(void *arg) {
  tally__engine *e = arg;
  atomic_store(&e->running, 1);
  while (!atomic_load(&e->stopping)) uv_run(&e->loop, UV_RUN_ONCE);
  /* Stopping: let in-flight batches resolve so their buyers get answers. */
  uint64_t deadline = tally__now_mono_ms(e) + TALLY__STOP_WAIT_MS;
  while (e->ready && work_in_flight(e) && tally__now_mono_ms(e) < deadline)
    uv_run(&e->loop, UV_RUN_ONCE);
  tally__signal_host(e);
  for (uint32_t k = 0; k < e->cfg.writers; k++) tally__writer_close(&e->writers[k]);
  tally__verifier_stop(e->verifier);
  e->verifier = NULL;
  uv_close((uv_handle_t *)&e->verify_wake, on_close);
  uv_close((uv_handle_t *)&e->wake, on_close);
  uv_close((uv_handle_t *)&e->tick, on_close);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  atomic_store(&e->running, 0);
  return NULL;
}

/* ---- public API ------------------------------------------------------------------ */
static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int tally__engine_new(const tally__hooks *hooks, const tally_config *cfg, tally_engine **out, char *err,
                      size_t err_len) {
  if (!cfg || !out) return TALLY_EINVAL;
  assert(hooks && hooks->command && hooks->verify_answer && hooks->grant_request); /* runtime.c's table */
  int rc = tally_config_check(cfg, err, err_len);
  if (rc) return rc;
  tally__engine *e = calloc(1, sizeof *e);
  if (!e) return TALLY_ENOMEM;
  e->cfg = *cfg;
  e->hooks = hooks;
  e->dsn = dup_or_null(cfg->dsn);
  e->key_path = dup_or_null(cfg->signing_key_path);
  e->currency = dup_or_null(cfg->currency);
  e->cfg.dsn = e->dsn;
  e->cfg.signing_key_path = e->key_path;
  e->cfg.currency = e->currency;
  e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  e->batch_slots = e->cfg.writers + 1;
  e->batches = calloc(e->batch_slots, sizeof *e->batches);
  rc = (!e->dsn || !e->key_path || !e->currency || e->efd < 0 || !e->batches) ? TALLY_ENOMEM : TALLY_OK;
  if (!rc) rc = tally__ring_init(&e->in, e->cfg.queue_depth);
  if (!rc) rc = tally__ring_init(&e->out, 2u * e->cfg.queue_depth + 4u * e->cfg.batch_max * e->batch_slots + 1024u);
  if (!rc) rc = tally__state_init(&e->st, &e->cfg);
  if (!rc) rc = tally__decoder_init(&e->dec);
  if (!rc) rc = tally__decoder_init(&e->host_dec);
  for (uint32_t i = 0; !rc && i < e->batch_slots; i++) rc = tally__batch_init(&e->batches[i], e->cfg.batch_max);
  if (!rc) rc = tally__signer_open(e->key_path, &e->signer, err, err_len);
  if (rc) {
    if (err && err_len && !err[0]) snprintf(err, err_len, "tally: %s", tally_strerror(rc));
    tally_engine_free(e);
    return rc;
  }
  pthread_mutex_init(&e->host_dec_lock, NULL);
  for (int k = 0; k < TALLY__WRITERS_MAX; k++) {
    e->writers[k].engine = e;
    e->writers[k].index = k;
  }
  *out = e;
  return TALLY_OK;
}

int tally_engine_start(tally_engine *e) {
  assert(e);
  if (e->thread_started) return TALLY_ESTATE;
  if (uv_loop_init(&e->loop)) return TALLY_ENOMEM;
  uv_async_init(&e->loop, &e->wake, on_wake);
  uv_timer_init(&e->loop, &e->tick);
  e->wake.data = e->tick.data = e;
  uv_timer_start(&e->tick, on_tick, 0, TALLY__TICK_MS);
  uv_async_init(&e->loop, &e->verify_wake, on_verified);
  e->verify_wake.data = e;
  uint8_t pub[TALLY_PUBKEY_BYTES];
  tally__signer_public(e->signer, pub);
  if (tally__verifier_start(e->dsn, pub, &e->verify_wake, &e->verifier) != TALLY_OK) e->verifier = NULL;
  if (pthread_create(&e->thread, NULL, engine_thread, e) != 0) {
    tally__verifier_stop(e->verifier);
    e->verifier = NULL;
    return TALLY_ENOMEM;
  }
  e->thread_started = true;
  return TALLY_OK;
}

int tally_engine_submit(tally_engine *e, const uint8_t *frame, size_t frame_len) {
  assert(e);
  if (!frame || frame_len == 0) return TALLY_EINVAL;
  if (frame_len > TALLY_FRAME_BYTES_MAX) return TALLY_ETOOBIG;
  if (atomic_load_explicit(&e->stopping, memory_order_relaxed)) return TALLY_ESTATE;
  int rc = tally__ring_push(&e->in, frame, frame_len);
  if (rc == TALLY_EBUSY) {
    atomic_fetch_add_explicit(&e->n_busy, 1, memory_order_relaxed);
    return rc;
  }
  if (rc == TALLY_OK && e->thread_started) uv_async_send(&e->wake);
  return rc;
}

int tally_engine_submit_command(tally_engine *e, const tally_command *cmd) {
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len;
  int rc = tally_command_encode(cmd, buf, sizeof buf, &len);
  return rc ? rc : tally_engine_submit(e, buf, len);
}

/* Presence travels as a command frame that only this function can mark
 * (TALLY__ROLE_PRESENCE): the wire format stays v1, and no chat line can
 * pretend to be a presence change because adapters never set that bit. */
int tally_engine_submit_presence(tally_engine *e, const tally_presence *p) {
  if (!e || !p || !p->account || !p->channel) return TALLY_EINVAL;
  tally_command cmd = {.size = sizeof cmd, .version = TALLY_COMMAND_VERSION, .origin = "", .account = p->account,
                       .nick = "", .channel = p->channel, .msg_id = "", .text = p->present ? "PRESENCE JOIN" : "PRESENCE PART",
                       .roles = TALLY__ROLE_PRESENCE};
  return tally_engine_submit_command(e, &cmd);
}

int tally_engine_fd(const tally_engine *e) { return e->efd; }

int tally_engine_drain(tally_engine *e, tally_effect_cb cb, void *ud, size_t max_effects) {
  assert(e && cb);
  uint64_t counter;
  ssize_t n = read(e->efd, &counter, sizeof counter);
  (void)n;
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  tally__effect_frame f;
  int delivered = 0;
  pthread_mutex_lock(&e->host_dec_lock);
  while ((size_t)delivered < max_effects) {
    size_t len = tally__ring_pop(&e->out, buf);
    if (len == 0) break;
    int rc = tally__effect_frame_decode(&e->host_dec, buf, len, &f);
    assert(rc == TALLY_OK);
    (void)rc;
    tally_effect eff = {.size = sizeof eff, .version = TALLY_EFFECT_VERSION, .kind = (uint32_t)f.kind,
                        .code = (int32_t)f.code, .req_id = f.req_id, .receipt_id = f.receipt_id,
                        .origin = f.origin, .channel = f.channel, .text = f.text,
                        .hint = (uint32_t)f.hint};
    cb(ud, &eff);
    delivered++;
  }
  pthread_mutex_unlock(&e->host_dec_lock);
  /* More left than max: keep the fd readable so the host comes back. */
  if (tally__ring_count(&e->out) > 0) {
    uint64_t one = 1;
    n = write(e->efd, &one, sizeof one);
  }
  return delivered;
}

void tally_engine_stop(tally_engine *e) {
  assert(e);
  if (!e->thread_started) return;
  atomic_store(&e->stopping, 1);
  uv_async_send(&e->wake);
  pthread_join(e->thread, NULL);
  e->thread_started = false;
  uv_loop_close(&e->loop);
}

void tally_engine_free(tally_engine *e) {
  if (!e) return;
  tally_engine_stop(e);
  for (uint32_t i = 0; e->batches && i < e->batch_slots; i++) tally__batch_free(&e->batches[i]);
  free(e->batches);
  tally__state_free(&e->st);
  if (e->dec.zone.chunk_list.head) tally__decoder_free(&e->dec);
  if (e->host_dec.zone.chunk_list.head) tally__decoder_free(&e->host_dec);
  if (e->in.slots) tally__ring_free(&e->in);
  if (e->out.slots) tally__ring_free(&e->out);
  if (e->signer) tally__signer_close(e->signer);
  if (e->efd >= 0) close(e->efd);
  free(e->dsn);
  free(e->key_path);
  free(e->currency);
  free(e);
}

void tally_engine_stats(const tally_engine *e, tally_stats *out) {
  memset(out, 0, sizeof *out);
  out->size = sizeof *out;
  out->version = TALLY_STATS_VERSION;
  out->events_in = atomic_load(&e->n_events_in);
  out->effects_out = atomic_load(&e->n_effects_out);
  out->busy_rejects = atomic_load(&e->n_busy);
  out->buys_committed = atomic_load(&e->n_buys_committed);
  out->buys_refused = atomic_load(&e->n_buys_refused);
  out->batches_committed = atomic_load(&e->n_batches);
  out->batch_retries = atomic_load(&e->n_retries);
  out->queue_depth_now = tally__ring_count(&e->in);
}
