/* sim_engine.c — engine-side transitions, mirroring engine.c (a transfer
 * applied or released, a batch done or failed), and the simulated database
 * that answers batches in any order (sim_internal.h). */
#include "sim_internal.h"

/* ---- engine-side transitions (mirror engine.c) ----------------------------------------------- */
const char *kind_name(uint8_t kind) {
  switch (kind) {
  case TALLY__TRANSFER_PURCHASE: return "buy";
  case TALLY__TRANSFER_TIP: return "tip";
  case TALLY__TRANSFER_REFUND: return "refund";
  default: return "grant";
  }
}

/* The engine applies op: tally__op_commit, key DONE (engine.c op_committed). */
void op_applied(world *w, tally__op *op) {
  rec *t = rec_of(w, op->transfer_id);
  if (!t || t->status != REC_DECIDED) {
    fail(w, "I5: transfer %llu applied but not in flight (status %d)",
         (unsigned long long)op->transfer_id, t ? t->status : -1);
    return;
  }
  if (!t->in_db) fail(w, "I7: transfer %llu applied but not in the ledger", (unsigned long long)op->transfer_id);
  uint64_t other = kmap_get(w, &w->applied_keys, t->key);
  if (other) fail(w, "I3: key '%s' applied twice: transfers %llu and %llu", t->key,
                  (unsigned long long)other, (unsigned long long)op->transfer_id);
  else kmap_put(w, &w->applied_keys, op->transfer_id);
  t->status = REC_APPLIED;
  w->applied_count++;
  w->decided_open--;
  w->r->committed++;
  for (int i = 0; i < t->leg_count; i++)
    if (__builtin_add_overflow(w->bal[t->legs[i].account], t->legs[i].amount, &w->bal[t->legs[i].account]))
      fail(w, "I1: balance of %s overflows int64 when transfer %llu commits",
           w->st.accounts[t->legs[i].account].name, (unsigned long long)op->transfer_id);
  if (t->kind == TALLY__TRANSFER_PURCHASE) {
    w->sold[t->item] += (int32_t)t->qty;
    w->pu_sold[t->account][t->item] += (int32_t)t->qty;
    if (w->st.items[t->item].drop_per_user) w->pu_sold_limited += t->qty;
    w->pu_held[t->account][t->item] -= (int32_t)t->qty;
  }
  if (t->kind == TALLY__TRANSFER_REFUND) {
    rec *p = rec_of(w, t->ref);
    p->refund_inflight -= t->amount;
    p->refund_fee_inflight -= t->fee;
    p->refunded += t->amount;
    p->refund_fees += t->fee;
    coop_refund_settle(w, t, 0);
    if (p->refunded == p->amount && w->st.items[p->item].drop_per_user) { /* the units come back */
      w->pu_sold[p->account][p->item] -= (int32_t)p->qty;
      w->pu_sold_limited -= p->qty;
    }
    if (p->refunded > p->amount)
      fail(w, "I4: purchase %llu refunded %lld of %lld", (unsigned long long)t->ref,
           (long long)p->refunded, (long long)p->amount);
    if ((w->o.faults & SIM_FAULT_REFUND_FEES) &&
        (p->refund_fees > p->fee || (p->refunded == p->amount && p->refund_fees != p->fee)))
      fail(w, "I4: purchase %llu (amount %lld, fee %lld) refunded %lld with fee parts %lld",
           (unsigned long long)t->ref, (long long)p->amount, (long long)p->fee,
           (long long)p->refunded, (long long)p->refund_fees);
  }
  if (w->r->failed) return;
  tally__op_commit(&w->st, op);
  w->st.keys[op->key_slot].state = TALLY__KEY_DONE;
  if (op->kind != TALLY__TRANSFER_GRANT) tally__account_note_receipt(&w->st.accounts[op->account], op->transfer_id);
  if (w->o.bug == SIM_BUG_DOUBLE_COMMIT && op->kind == TALLY__TRANSFER_GRANT && chance(w, 25))
    tally__op_commit(&w->st, op);
  if (w->o.bug == SIM_BUG_LOST_SALE && op->kind == TALLY__TRANSFER_PURCHASE && chance(w, 25))
    w->st.items[op->item].sold -= (int32_t)op->qty;
  trace(w, "applied %s %llu", kind_name(op->kind), (unsigned long long)op->transfer_id);
}

/* The engine releases op's holds (tally__op_release). */
void op_released(world *w, tally__op *op) {
  rec *t = rec_of(w, op->transfer_id);
  if (!t || t->status != REC_DECIDED) {
    fail(w, "I5: transfer %llu released but not in flight", (unsigned long long)op->transfer_id);
    return;
  }
  if (t->in_db)
    fail(w, "I7: transfer %llu is in the ledger but the engine released it (buyer told 'not charged')",
         (unsigned long long)op->transfer_id);
  t->status = REC_RELEASED;
  w->decided_open--;
  w->r->released++;
  if (t->kind == TALLY__TRANSFER_REFUND) {
    rec_of(w, t->ref)->refund_inflight -= t->amount;
    rec_of(w, t->ref)->refund_fee_inflight -= t->fee;
    coop_refund_settle(w, t, -1);
  }
  if (t->kind == TALLY__TRANSFER_PURCHASE) w->pu_held[t->account][t->item] -= (int32_t)t->qty;
  tally__op_release(&w->st, op);
  if (w->o.bug == SIM_BUG_SKIP_PER_USER && op->kind == TALLY__TRANSFER_PURCHASE &&
      w->st.items[op->item].drop_per_user) { /* the injected bug: the decrement is skipped */
    int32_t *units;
    tally__per_user_units(&w->st, op->account, op->item, &units);
    if (units) *units += (int32_t)op->qty;
  }
  trace(w, "released %s %llu", kind_name(op->kind), (unsigned long long)op->transfer_id);
}

/* tally__engine_batch_done with the inserted ids (inserted[k]) and a key
 * lookup answered by the database for the ops that were not inserted. */
void batch_done(world *w, sbatch *b, const bool *inserted, uint32_t n_inserted) {
  bool all = n_inserted == b->op_count;
  for (uint32_t k = 0; k < b->op_count && !w->r->failed; k++) {
    tally__op *op = &b->ops[k];
    if (all || inserted[k]) {
      op_applied(w, op);
      continue;
    }
    tally__key *key = &w->st.keys[op->key_slot];
    rec *t = rec_of(w, op->transfer_id);
    if (key->state != TALLY__KEY_INFLIGHT || strcmp(key->key, t->key) != 0)
      fail(w, "key slot %u of in-flight transfer %llu was reused (holds '%s', state %d; wanted '%s')",
           op->key_slot, (unsigned long long)op->transfer_id, key->key, key->state, t->key);
    uint64_t existing = kmap_get(w, &w->db_keys, key->key);
    if (existing == op->transfer_id) {
      op_applied(w, op);
      continue;
    }
    op_released(w, op);
    /* engine.c op_not_ours: the same request recorded earlier gets its
     * first answer; a request with other parameters is refused. */
    if (existing && rec_of(w, existing)->fp == key->fingerprint) {
      trace(w, "ledger: key '%s' of %llu already taken by %llu", key->key,
            (unsigned long long)op->transfer_id, (unsigned long long)existing);
      w->r->duplicates++;
      key->transfer_id = existing;
      key->state = TALLY__KEY_DONE;
    } else {
      if (existing) w->r->duplicates++;
      tally__key_forget(&w->st, op->key_slot);
    }
  }
  b->phase = SB_FREE;
  b->op_count = 0;
  b->db_done = false;
  b->retries = 0;
  w->r->batches++;
}

/* tally__engine_batch_failed. */
void batch_failed(world *w, sbatch *b) {
  uint32_t skip = w->o.bug == SIM_BUG_SKIP_RELEASE && b->op_count ? (uint32_t)below(w, b->op_count) : UINT32_MAX;
  for (uint32_t k = 0; k < b->op_count && !w->r->failed; k++) {
    tally__op *op = &b->ops[k];
    if (k == skip) { /* the injected bug: the hold stays, the op is gone */
      rec *t = rec_of(w, op->transfer_id);
      t->status = REC_RELEASED;
      w->decided_open--;
      if (t->kind == TALLY__TRANSFER_REFUND) {
        rec_of(w, t->ref)->refund_inflight -= t->amount;
        rec_of(w, t->ref)->refund_fee_inflight -= t->fee;
        coop_refund_settle(w, t, -1);
      }
      if (t->kind == TALLY__TRANSFER_PURCHASE) w->pu_held[t->account][t->item] -= (int32_t)t->qty;
      tally__key_forget(&w->st, op->key_slot);
      continue;
    }
    op_released(w, op);
    tally__key_forget(&w->st, op->key_slot);
  }
  if (w->open == b) w->open = NULL;
  b->phase = SB_FREE;
  b->op_count = 0;
  b->db_done = false;
  b->retries = 0;
  w->r->failed_batches++;
}

/* ---- the simulated database ----------------------------------------------------------------- */
/* One attempt of the batch statement: inserts each transfer whose id and
 * key are new (ON CONFLICT DO NOTHING), in one transaction. */
uint32_t db_commit(world *w, sbatch *b, bool *inserted) {
  uint32_t n = 0;
  for (uint32_t k = 0; k < b->op_count; k++) {
    rec *t = rec_of(w, b->ops[k].transfer_id);
    inserted[k] = false;
    if (t->in_db || kmap_get(w, &w->db_keys, t->key)) continue;
    if (t->kind == TALLY__TRANSFER_REFUND) {
      rec *p = rec_of(w, t->ref);
      if (!p->in_db) fail(w, "I4: refund %llu stored before its purchase %llu", (unsigned long long)b->ops[k].transfer_id, (unsigned long long)t->ref);
      if ((p->db_refunded += t->amount) > p->amount)
        fail(w, "I4: ledger refunds of purchase %llu exceed it", (unsigned long long)t->ref);
    }
    if (t->kind == TALLY__TRANSFER_PURCHASE) {
      w->db_sold[t->item] += (int32_t)t->qty;
      int32_t stock = w->st.items[t->item].stock;
      if (stock >= 0 && w->db_sold[t->item] > stock)
        fail(w, "I2: ledger has %d units of %s, stock %d", w->db_sold[t->item], w->st.items[t->item].sku, stock);
    }
    t->in_db = true;
    kmap_put(w, &w->db_keys, b->ops[k].transfer_id);
    inserted[k] = true;
    w->db_count++;
    n++;
  }
  return n;
}

sbatch *flight_due(world *w) {
  uint32_t due[SIM_SLOTS_MAX], n = 0;
  for (uint32_t i = 0; i < w->slots; i++)
    if (w->b[i].phase == SB_FLIGHT && w->b[i].due_ms <= w->mono) due[n++] = i;
  return n ? &w->b[due[below(w, n)]] : NULL;
}

/* The answer to one batch in flight. `clean` answers "committed". */
void db_answer(world *w, sbatch *b, bool clean) {
  bool *inserted = w->inserted;
  uint64_t roll = clean ? 0 : below(w, 100);
  bool may_fail = !b->db_done || (w->o.faults & SIM_FAULT_FAIL_AFTER_UNKNOWN);
  w->inflight--;
  if (roll < 70 || (!may_fail && roll >= 87)) {
    uint32_t n = db_commit(w, b, inserted);
    trace(w, "db: batch %llu committed (%u of %u inserted)", (unsigned long long)b->id, n, b->op_count);
    if (n != b->op_count && (w->o.faults & SIM_FAULT_FAIL_AFTER_UNKNOWN) && chance(w, 20)) {
      /* writer.c batch_query_failed: the key lookup that follows a partial
       * insert fails, so the outcome is open: resent later, unchanged. */
      trace(w, "db: key lookup of batch %llu failed", (unsigned long long)b->id);
      b->db_done = true;
      b->phase = SB_WAIT;
      return;
    }
    batch_done(w, b, inserted, n);
  } else if (roll < 80) { /* F2: committed, the reply is lost; resent later */
    db_commit(w, b, inserted);
    b->db_done = true;
    b->phase = SB_WAIT;
    w->r->lost_replies++;
    trace(w, "db: batch %llu committed, reply lost", (unsigned long long)b->id);
  } else if (roll < 87) { /* F1: lost before COMMIT; resent later */
    b->phase = SB_WAIT;
    trace(w, "db: batch %llu lost before commit", (unsigned long long)b->id);
  } else if (roll < 95 && b->retries++ < SIM_RETRY_MAX) { /* F10: serialization failure */
    b->phase = SB_WAIT;
    trace(w, "db: batch %llu serialization failure", (unsigned long long)b->id);
  } else if (b->db_done) { /* F4 after an unknown outcome: settled by key lookup */
    trace(w, "db: batch %llu failed after an unknown outcome: settled by lookup", (unsigned long long)b->id);
    for (uint32_t k = 0; k < b->op_count; k++) inserted[k] = false;
    batch_done(w, b, inserted, 0);
  } else { /* F4: error, rolled back */
    trace(w, "db: batch %llu failed", (unsigned long long)b->id);
    batch_failed(w, b);
  }
}

/* tally__engine_flush: seal the open batch or resend a waiting one while a
 * writer is idle; the answer comes after a random delay. */
void flush(world *w) {
  for (uint32_t i = 0; i < w->slots; i++) {
    sbatch *b = &w->b[i];
    bool waiting = b->phase == SB_WAIT, open_with_work = b->phase == SB_OPEN && b->op_count > 0;
    if (!waiting && !open_with_work) continue;
    if (w->inflight >= w->writers) return;
    if (open_with_work) {
      b->id = tally__state_take_id(&w->st);
      if (b->id <= w->last_batch_id) fail(w, "I9: batch id %llu after %llu", (unsigned long long)b->id, (unsigned long long)w->last_batch_id);
      w->last_batch_id = b->id;
      if (w->open == b) w->open = NULL;
    }
    b->phase = SB_FLIGHT;
    w->inflight++;
    b->due_ms = w->mono + (chance(w, 90) ? (uint64_t)between(w, 0, 50) : (uint64_t)between(w, 500, 5000));
    trace(w, "flush: batch %llu (%u ops) sent", (unsigned long long)b->id, b->op_count);
  }
}

/* tally__engine_open_batch. */
sbatch *open_batch(world *w) {
  if (w->open && w->open->phase == SB_OPEN && w->open->op_count < w->cfg.batch_max) return w->open;
  if (w->open && w->open->phase == SB_OPEN) return NULL;
  for (uint32_t i = 0; i < w->slots; i++) {
    if (w->b[i].phase == SB_FREE) {
      w->open = &w->b[i];
      w->open->phase = SB_OPEN;
      return w->open;
    }
  }
  w->open = NULL;
  return NULL;
}
