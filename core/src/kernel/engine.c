/* engine.c — the kernel's engine: clocks, effect emission, the open batch,
 * and what happens to a batch when it commits or fails.
 *
 * The thread, the loop and the public API around it are one layer up
 * (runtime/engine_loop.c): the loop decides each command in memory (through
 * the hook table), appends money operations to the open batch, and hands
 * sealed batches to idle writers (here). Replies about money are emitted only
 * in tally__engine_batch_done, i.e. after PostgreSQL said COMMIT. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "abi.h"
#include "engine_internal.h"
#include "hooks.h"
#include "text.h"
#include "test_fault.h"

/* ---- clocks (the environment's: tally__env) ------------------------------- */
uint64_t tally__now_mono_ms(tally__engine *e) { return e->env->now_mono_ms(e); }

int64_t tally__now_wall_ms(const tally__engine *e) { return e->env->now_wall_ms(e); }

size_t tally__format_amount(const tally__engine *e, int64_t minor, char *out, size_t n) {
  char num[32];
  tally__amount_format(minor, e->cfg.currency_decimals, num, sizeof num);
  int k = snprintf(out, n, "%s %s", num, e->currency);
  return k < 0 ? 0 : (size_t)k;
}

/* ---- effects ------------------------------------------------------------------ */
static void emit_effect(tally__engine *e, const tally_effect *eff);

static void emit_named(tally__engine *e, const char *network, uint32_t kind, int code, uint64_t req_id,
                       uint64_t receipt, const char *origin, const char *channel, const char *text) {
  /* A refusal for want of an account always says how to log in, in the
   * adapter's words: the engine's text names no network's way of doing it. */
  uint32_t hint = code == TALLY_ENOT_LOGGED_IN ? TALLY_HINT_LOG_IN : TALLY_HINT_NONE;
  tally_effect eff = {.size = sizeof eff, .version = TALLY_EFFECT_VERSION, .kind = kind,
                      .code = code, .req_id = req_id, .receipt_id = receipt,
                      .origin = origin ? origin : "", .channel = channel ? channel : "",
                      .text = text ? text : "", .hint = hint, .network = network};
  emit_effect(e, &eff);
}

void tally__emit(tally__engine *e, uint32_t kind, int code, uint64_t req_id, uint64_t receipt,
                 const char *origin, const char *channel, const char *text) {
  emit_named(e, e->cfg.network, kind, code, req_id, receipt, origin, channel, text);
}

void tally__emit_in(tally__engine *e, uint16_t net, uint32_t kind, int code, uint64_t req_id, uint64_t receipt,
                    const char *origin, const char *channel, const char *text) {
  const char *network = net < e->st.network_count ? e->st.networks[net].name : e->cfg.network;
  emit_named(e, network, kind, code, req_id, receipt, origin, channel, text);
}

/* The network a command frame's names belong to: its own, or the configured one. */
static const char *frame_network(const tally__engine *e, const tally__command_frame *cmd) {
  return cmd->network[0] ? cmd->network : e->cfg.network;
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
  emit_named(e, frame_network(e, cmd), TALLY_EFFECT_REPLY, code, cmd->req_id, receipt, cmd->origin, cmd->channel,
             text);
}

void tally__reply_say(tally__engine *e, const tally__command_frame *cmd, int code, uint64_t receipt,
                      const tally__say *say) {
  char args[TALLY_EFFECT_ARGS_BYTES_MAX + 1];
  tally__say_args(say, args, sizeof args);
  tally_effect eff = {.size = sizeof eff, .version = TALLY_EFFECT_VERSION, .kind = TALLY_EFFECT_REPLY,
                      .code = code, .req_id = cmd->req_id, .receipt_id = receipt, .origin = cmd->origin,
                      .channel = cmd->channel, .text = say->text,
                      .hint = code == TALLY_ENOT_LOGGED_IN ? TALLY_HINT_LOG_IN : TALLY_HINT_NONE,
                      .msg = args[0] ? say->msg : TALLY_MSG_TEXT, .args = args, .network = frame_network(e, cmd)};
  emit_effect(e, &eff);
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
                      .channel = cmd->channel, .text = text, .hint = hint, .network = frame_network(e, cmd)};
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

void tally__announce_in(tally__engine *e, uint16_t net, const char *channel, const char *fmt, ...) {
  if (!channel || !channel[0]) return;
  char text[TALLY_TEXT_BYTES_MAX + 1];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  tally__emit_in(e, net, TALLY_EFFECT_ANNOUNCE, TALLY_OK, 0, 0, "", channel, text);
}

void tally__emit_say_in(tally__engine *e, uint16_t net, uint32_t kind, int code, uint64_t req_id,
                        uint64_t receipt, const char *origin, const char *channel, const tally__say *say) {
  char args[TALLY_EFFECT_ARGS_BYTES_MAX + 1];
  tally__say_args(say, args, sizeof args);
  tally_effect eff = {.size = sizeof eff, .version = TALLY_EFFECT_VERSION, .kind = kind, .code = code,
                      .req_id = req_id, .receipt_id = receipt, .origin = origin ? origin : "",
                      .channel = channel ? channel : "", .text = say->text,
                      .hint = code == TALLY_ENOT_LOGGED_IN ? TALLY_HINT_LOG_IN : TALLY_HINT_NONE,
                      .msg = args[0] ? say->msg : TALLY_MSG_TEXT, .args = args,
                      .network = net < e->st.network_count ? e->st.networks[net].name : e->cfg.network};
  emit_effect(e, &eff);
}

void tally__emit_say(tally__engine *e, uint32_t kind, int code, uint64_t req_id, uint64_t receipt,
                     const char *origin, const char *channel, const tally__say *say) {
  tally__emit_say_in(e, TALLY__NET_CONFIGURED, kind, code, req_id, receipt, origin, channel, say);
}

void tally__announce_say_in(tally__engine *e, uint16_t net, const char *channel, const tally__say *say) {
  if (!channel || !channel[0]) return;
  tally__emit_say_in(e, net, TALLY_EFFECT_ANNOUNCE, TALLY_OK, 0, 0, "", channel, say);
}

void tally__announce_say(tally__engine *e, const char *channel, const tally__say *say) {
  tally__announce_say_in(e, TALLY__NET_CONFIGURED, channel, say);
}

void tally__signal_host(tally__engine *e) {
  if (!e->effects_pending) return;
  e->effects_pending = false;
  uint64_t one = 1;
  ssize_t n = write(e->efd, &one, sizeof one);
  (void)n; /* EAGAIN means the counter is already non-zero: the host will wake */
}

/* ---- batches -------------------------------------------------------------------- */
tally__op *tally__engine_record_op(tally__engine *e, uint8_t type, uint32_t account, uint32_t item) {
  tally__batch *b = tally__engine_open_batch(e);
  if (!b) return NULL;
  tally__op *op = tally__batch_append(b);
  memset(op, 0, sizeof *op);
  op->type = type;
  op->account = account;
  op->counterparty = TALLY__NONE;
  op->item = item;
  op->created_ms = tally__now_wall_ms(e);
  tally__engine_pending_add(e, op); /* origin and channel "": the engine's own record */
  return op;
}

uint32_t tally__effects_bytes(const char *origin, const char *channel) {
  size_t one = tally__ring_record_bytes(TALLY__EFFECT_FIXED_BYTES + strlen(origin) + strlen(channel));
  return (uint32_t)(TALLY__EFFECTS_PER_OP_MAX * one);
}

void tally__engine_pending_add(tally__engine *e, tally__op *op) {
  op->effects_bytes = tally__effects_bytes(tally__origin_str(&e->st, op->origin), op->channel);
  e->ops_pending++;
  e->effects_reserved += op->effects_bytes;
}

void tally__engine_pending_done(tally__engine *e, const tally__op *op) {
  assert(e->ops_pending > 0 && e->effects_reserved >= op->effects_bytes);
  e->ops_pending--;
  e->effects_reserved -= op->effects_bytes;
  /* Its name stays readable until the next compaction (names.h), so the
   * settling code after this may still answer it. */
  tally__names_unref(&e->st.names, op->origin);
}

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

/* A new attempt of sealed batch b: what the last one learned is cleared,
 * then the environment's writer takes it. */
static void send_batch(tally__engine *e, tally__batch *b) {
  memset(b->inserted, 0, b->transfer_count);
  memset(b->found_id, 0, b->transfer_count * sizeof *b->found_id);
  b->looked_up = false;
  b->statement_ok = false;
  b->found_batch = false;
  b->sent_mono_ms = tally__now_mono_ms(e);
  b->inflight = true;
  if (e->env->send_batch(e, b) != TALLY_OK) b->inflight = false;
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
    if (!oldest || !e->env->writer_idle(e)) break;
    send_batch(e, oldest);
    if (!oldest->inflight) return; /* the writer broke; try again later */
  }
  if (!e->env->writer_idle(e)) return;
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
  int rc = tally__batch_seal(open, &e->st, e->signer, tally__now_mono_ms(e), tally__now_wall_ms(e),
                             e->lease_epoch);
  e->open = NULL;
  if (rc) {
    tally__engine_batch_failed(e, open, "signing failed");
    return;
  }
  send_batch(e, open);
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
  tally__engine_pending_done(e, op);
  TALLY__FEATURES_CALL(e, settled, op,
                       !existing ? TALLY_EFAILED : b->found_fp[k] == key->fingerprint ? TALLY_OK : TALLY_EKEY_MISMATCH);
  if (existing && b->found_fp[k] == key->fingerprint) {
    /* The same request was recorded earlier (the key had left memory): its
     * first answer. */
    key->transfer_id = existing;
    key->state = TALLY__KEY_DONE;
    if (op->origin)
      tally__emit_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, existing, tally__origin_str(&e->st, op->origin), op->channel,
                  "Already done earlier: receipt on record");
  } else if (existing) {
    tally__key_forget(&e->st, op->key_slot);
    if (op->origin)
      tally__emit_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_EKEY_MISMATCH, op->req_id, 0, tally__origin_str(&e->st, op->origin), op->channel,
                  tally_strerror(TALLY_EKEY_MISMATCH));
  } else {
    assert(b->looked_up); /* "not charged" only when the ledger was asked */
    tally__key_forget(&e->st, op->key_slot); /* a CLI grant: polled for again */
    if (op->origin)
      tally__emit_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_EFAILED, op->req_id, 0, tally__origin_str(&e->st, op->origin), op->channel,
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
 * nothing); a batch without transfers, when the lookup found the mark it
 * leaves (sql/022). Taking such a batch as committed, as before, let a
 * reward the ledger never stored be announced and used (tests/sim). */
static bool batch_committed(const tally__batch *b) {
  if (b->statement_ok) return true;
  assert(b->looked_up); /* batch_done: after the statement or the lookup */
  if (b->transfer_count == 0) return b->found_batch;
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
  int rc = tally__batch_reseal(b, &e->st, e->signer, tally__now_mono_ms(e), tally__now_wall_ms(e), e->lease_epoch);
  if (rc) tally__engine_batch_failed(e, b, "signing failed");
}

/* The part of a batch that was sent is settled: the hidden ops move up and
 * go next, as one batch (halved again if the ledger still refuses it). */
static void batch_next_part(tally__engine *e, tally__batch *b) {
  memmove(b->ops, b->ops + b->op_count, b->hidden * sizeof *b->ops);
  b->op_count = b->hidden;
  b->hidden = 0;
  b->row_count = 0; /* committed with the part before, or still dirty: they go again */
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
    tally__engine_pending_done(e, op);
    record_settled(e, op, committed);
    if (!committed) {
      if (op->origin || op->type == TALLY__OP_ACK)
        tally__emit_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_EFAILED, op->req_id, 0, tally__origin_str(&e->st, op->origin), op->channel,
                    tally_strerror(TALLY_EFAILED));
      continue;
    }
    if (op->type == TALLY__OP_SHIP) {
      char text[96];
      snprintf(text, sizeof text, "Shipping note saved for receipt %llu; the creator sees it with ORDERS.",
               (unsigned long long)op->ref_transfer);
      tally__emit_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, 0, tally__origin_str(&e->st, op->origin), op->channel, text);
      continue;
    }
    if (op->origin || op->type == TALLY__OP_ACK)
      tally__emit_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, 0, tally__origin_str(&e->st, op->origin), op->channel, op->note);
  }
  for (uint32_t k = 0; k < b->transfer_count; k++) {
    tally__op *op = &b->ops[b->xfer[k]];
    if (b->inserted[k] || b->found_id[k] == op->transfer_id) op_committed(e, b, op);
    else op_not_ours(e, b, k);
  }
  if (committed && b->transfer_count) TALLY__FEATURES_CALL0(e, ledger_recovered); /* the ledger takes writes again */
  atomic_fetch_add_explicit(&e->n_batches, 1, memory_order_relaxed);
  if (b->hidden) {
    /* Ops held back while isolating one at fault were never sent: they go
     * next, whether the part that was sent committed or (settled by key
     * lookup after a lost answer) did not. Reset, they would stay held and
     * pending, and their senders would never hear back. */
    batch_next_part(e, b);
    return;
  }
  tally__batch_reset(b);
}

/* What a buyer of a digital item or pass is told privately, after the
 * receipt line. */
static void purchase_extras(tally__engine *e, const tally__op *op, const tally__item *it) {
  if (!op->origin) return;
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
  tally__emit_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, 0, tally__origin_str(&e->st, op->origin), "", text);
}

static void op_committed(tally__engine *e, tally__batch *b, tally__op *op) {
  tally__state *st = &e->st;
  tally__op_commit(st, op);
  if (TALLY__FAULT(COMMIT_TWICE) && op->kind == TALLY__TRANSFER_GRANT) tally__op_commit(st, op);
  tally__engine_pending_done(e, op);
  tally__key *key = &st->keys[op->key_slot];
  key->state = TALLY__KEY_DONE;
  tally__account *a = &st->accounts[op->account];
  char amount[48];
  tally__format_amount(e, op->amount, amount, sizeof amount);
  tally__say say; /* the amount is argument 0 of a tip, refund and grant, 3 of a purchase */
  switch (op->kind) {
  case TALLY__TRANSFER_PURCHASE: {
    const tally__item *it = &st->items[op->item];
    tally__account_note_receipt(a, op->transfer_id);
    atomic_fetch_add_explicit(&e->n_buys_committed, 1, memory_order_relaxed);
    tally__say_init(&say, TALLY_MSG_BOUGHT);
    tally__sayf(&say, "ntsmR-", "Bought %ux %s (%s) for %s. receipt %llu (batch %llu, signed)", op->qty, it->title,
                it->sku, amount, (unsigned long long)op->transfer_id, (unsigned long long)b->id);
    tally__say_value(&say, 3, op->amount, TALLY__DECIMALS(e));
    if (op->serial) {
      if (op->qty == 1)
        tally__sayf(&say, "", " - serial %u of %d", op->serial, it->stock);
      else
        tally__sayf(&say, "", " - serials %u-%u of %d", op->serial, op->serial + op->qty - 1, it->stock);
    }
    break;
  }
  case TALLY__TRANSFER_TIP:
    tally__account_note_receipt(a, op->transfer_id);
    TALLY__FEATURES_CALL(e, tipped, op, amount);
    tally__say_init(&say, TALLY_MSG_TIPPED);
    tally__sayf(&say, "maR-", "Tipped %s to %s. receipt %llu%s", amount, tally__account_label(st, op->counterparty),
                (unsigned long long)op->transfer_id,
                op->held_message ? " - your message is shown after the channel's moderation hold" : "");
    tally__say_value(&say, 0, op->amount, TALLY__DECIMALS(e));
    break;
  case TALLY__TRANSFER_REFUND:
    tally__account_note_receipt(a, op->transfer_id);
    tally__say_init(&say, TALLY_MSG_REFUNDED);
    tally__sayf(&say, "mRR", "Refunded %s for receipt %llu. receipt %llu", amount,
                (unsigned long long)op->ref_transfer, (unsigned long long)op->transfer_id);
    tally__say_value(&say, 0, op->amount, TALLY__DECIMALS(e));
    break;
  case TALLY__TRANSFER_LINK: /* features/link.c wrote what to say */
    tally__say_init(&say, 0);
    tally__sayf(&say, "-R", "%s receipt %llu", op->note, (unsigned long long)op->transfer_id);
    break;
  default:
    tally__say_init(&say, TALLY_MSG_GRANTED);
    tally__sayf(&say, "maR", "Granted %s to %s. receipt %llu", amount, tally__account_label(st, op->account),
                (unsigned long long)op->transfer_id);
    tally__say_value(&say, 0, op->amount, TALLY__DECIMALS(e));
    break;
  }
  if (op->origin)
    tally__emit_say_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, op->transfer_id, tally__origin_str(&e->st, op->origin), op->channel, &say);
  if (op->kind == TALLY__TRANSFER_PURCHASE) purchase_extras(e, op, &st->items[op->item]);
  TALLY__FEATURES_CALL(e, committed, op);
  TALLY__FEATURES_CALL(e, settled, op, TALLY_OK);
}

/* An op that did not commit and never will in this batch: its effect in
 * memory is undone and its sender told `text`. */
static void op_failed(tally__engine *e, tally__op *op, const char *text) {
  tally__engine_pending_done(e, op);
  record_settled(e, op, false);
  if (op->type == TALLY__OP_TRANSFER) {
    tally__op_release(&e->st, op);
    if (TALLY__FAULT(FAILED_KEEPS_KEY)) e->st.keys[op->key_slot].state = TALLY__KEY_DONE;
    else tally__key_forget(&e->st, op->key_slot); /* a CLI grant: polled for again */
    TALLY__FEATURES_CALL(e, settled, op, TALLY_EFAILED);
    atomic_fetch_add_explicit(&e->n_buys_refused, 1, memory_order_relaxed);
  }
  if (op->origin) tally__emit_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_EFAILED, op->req_id, 0, tally__origin_str(&e->st, op->origin), op->channel, text);
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

/* ---- counters (public: tally.h; also TALLY STATS) ------------------------------ */
/* Filled whole here, then copied up to the host's size (abi.h). */
void tally_engine_stats_size(const tally_engine *e, tally_stats *host, size_t size) {
  assert(e && host && size >= TALLY_STATS_SIZE_V1);
  tally_stats s, *out = &s;
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
  tally__abi_export(host, size, &s, sizeof s);
}

void(tally_engine_stats)(const tally_engine *e, tally_stats *out) { tally_engine_stats_size(e, out, sizeof *out); }
