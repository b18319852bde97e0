/* sim_check.c — the invariants checked after every step (the tables of
 * docs/SIMULATION.md) (sim_internal.h). */
#include "sim_internal.h"

/* ---- checks ---------------------------------------------------------------------------------------------- */
/* D1: per-buyer units in memory (st->per_user, read without adding rows)
 * equal the model's committed + in-flight units and stay within the limit.
 * Each row is compared with the model, and the rows' units sum to the
 * model's total, so a pair without a row has no units in the model either.
 * D3: each event counts exactly the model's ops in flight for it. */
void check_drops(world *w, int32_t (*infl)[SIM_ITEMS_MAX], int64_t infl_limited, const uint32_t *ev_infl) {
  const tally__state *st = &w->st;
  uint32_t seen[SIM_ACCOUNTS_MAX];
  int64_t mem_total = 0, model_total;
  memset(seen, 0, st->account_count * sizeof seen[0]);
  for (uint32_t e = 0; e < st->per_user_count; e++) {
    uint64_t key = st->per_user[e].key;
    uint32_t a = (uint32_t)(key >> 32), i = (uint32_t)key;
    int32_t units = st->per_user[e].units;
    if (a >= st->account_count || i >= st->item_count || !st->items[i].drop_per_user || (seen[a] >> i & 1)) {
      fail(w, "D1: per-user row %u (account %u, item %u) is for no limited drop or twice", e, a, i);
      return;
    }
    seen[a] |= 1u << i;
    mem_total += units;
    const tally__item *it = &st->items[i];
    if (units != w->pu_sold[a][i] + infl[a][i] || units > (int64_t)it->drop_per_user) {
      fail(w, "D1: %s has %d units of drop %s in memory, model %d committed + %d in flight, limit %u",
           st->accounts[a].name, units, it->sku, w->pu_sold[a][i], infl[a][i], it->drop_per_user);
      return;
    }
  }
  model_total = w->pu_sold_limited + infl_limited;
  if (mem_total != model_total)
    fail(w, "D1: per-user rows hold %lld units of drops, the model %lld committed + in flight",
         (long long)mem_total, (long long)model_total);
  if (st->event_count != w->ev_count) fail(w, "D3: %u events in memory, model %u", st->event_count, w->ev_count);
  for (uint32_t i = 0; i < w->ev_count && !w->r->failed; i++) {
    const tally__event *ev = &st->events[i];
    if (ev->id != w->ev_id[i] || ev->inflight != ev_infl[i])
      fail(w, "D3: event %llu counts %u ops in flight, the model %u", (unsigned long long)ev->id, ev->inflight,
           ev_infl[i]);
    else if (!ev->summary_due && w->ev_stopped[i] && ev_infl[i])
      fail(w, "D3: event %llu summarized with %u ops in flight", (unsigned long long)ev->id, ev_infl[i]);
  }
}

void check(world *w) {
  const tally__state *st = &w->st;
  int64_t held[SIM_ACCOUNTS_MAX] = {0};
  int32_t item_held[SIM_ITEMS_MAX] = {0};
  int32_t pu_infl[SIM_ACCOUNTS_MAX][SIM_ITEMS_MAX];
  uint32_t ev_infl[SIM_EVENTS_MAX] = {0};
  int64_t infl_limited = 0; /* units in flight of drops with a per-buyer limit */
  memset(pu_infl, 0, st->account_count * sizeof pu_infl[0]);
  uint64_t open = 0;
  for (uint32_t i = 0; i < w->slots; i++) {
    const sbatch *b = &w->b[i];
    for (uint32_t k = 0; k < b->op_count; k++) {
      const tally__op *op = &b->ops[k];
      const rec *t = rec_of(w, op->transfer_id);
      open++;
      if (t->status != REC_DECIDED) {
        fail(w, "I5: transfer %llu in a batch but resolved", (unsigned long long)op->transfer_id);
        return;
      }
      for (int l = 0; l < t->leg_count; l++)
        if (t->legs[l].amount < 0 && st->accounts[t->legs[l].account].kind != TALLY__ACCOUNT_EXTERNAL)
          held[t->legs[l].account] -= t->legs[l].amount;
      if (t->kind == TALLY__TRANSFER_PURCHASE) {
        item_held[t->item] += (int32_t)t->qty;
        pu_infl[t->account][t->item] += (int32_t)t->qty;
        if (st->items[t->item].drop_per_user) infl_limited += t->qty;
      }
      if (op->event_id != t->event_id)
        fail(w, "D3: op %llu carries event %llu, the model put it in %llu", (unsigned long long)op->transfer_id,
             (unsigned long long)op->event_id, (unsigned long long)t->event_id);
      if (t->ev) ev_infl[t->ev - 1]++;
      if (t->kind == TALLY__TRANSFER_REFUND) {
        const tally__purchase *p = &st->purchases[op->purchase_slot];
        const rec *pr = rec_of(w, t->ref);
        if (!p->live || p->transfer_id != t->ref || p->refund_held != pr->refund_inflight ||
            p->refunded != pr->refunded)
          fail(w, "I4: purchase %llu in memory (live %d, id %llu, refunded %lld, in flight %lld) != model (%lld, %lld)",
               (unsigned long long)t->ref, p->live, (unsigned long long)p->transfer_id, (long long)p->refunded,
               (long long)p->refund_held, (long long)pr->refunded, (long long)pr->refund_inflight);
      }
    }
  }
  if (open != w->decided_open) fail(w, "I5: %llu ops in batches, %llu decided and unresolved", (unsigned long long)open, (unsigned long long)w->decided_open);
  __int128 total = 0;
  for (uint32_t a = 0; a < st->account_count; a++) {
    const tally__account *acc = &st->accounts[a];
    total += acc->balance;
    if (acc->balance != w->bal[a])
      fail(w, "I1: %s balance %lld, committed legs sum to %lld", acc->name, (long long)acc->balance, (long long)w->bal[a]);
    if (acc->held != held[a])
      fail(w, "I5: %s holds %lld, in-flight debits sum to %lld", acc->name, (long long)acc->held, (long long)held[a]);
    if (acc->kind != TALLY__ACCOUNT_EXTERNAL && (acc->held < 0 || acc->balance - acc->held < 0))
      fail(w, "I6: %s balance %lld held %lld", acc->name, (long long)acc->balance, (long long)acc->held);
  }
  if (total != 0) fail(w, "I1: balances sum to %lld", (long long)total);
  for (uint32_t i = 0; i < st->item_count; i++) {
    const tally__item *it = &st->items[i];
    if (it->sold != w->sold[i] || it->held != item_held[i])
      fail(w, "I2: %s sold %d held %d, model sold %d held %d", it->sku, it->sold, it->held, w->sold[i], item_held[i]);
    if (it->stock >= 0 && it->sold + it->held > it->stock)
      fail(w, "I2: %s sold %d + held %d > stock %d", it->sku, it->sold, it->held, it->stock);
  }
  bool quiet = true;
  for (uint32_t i = 0; i < w->slots; i++) quiet = quiet && (w->b[i].phase == SB_FREE || w->b[i].phase == SB_OPEN);
  if (quiet && w->db_count != w->applied_count)
    fail(w, "I7: nothing in flight, yet the ledger holds %llu transfers and memory applied %llu",
         (unsigned long long)w->db_count, (unsigned long long)w->applied_count);
  if (!w->r->failed) check_drops(w, pu_infl, infl_limited, ev_infl);
}

/* The model's per-buyer units in flight (kept as ops are decided and
 * resolved) equal those of the ops in the batches. */
void check_model_units(world *w) {
  int32_t infl[SIM_ACCOUNTS_MAX][SIM_ITEMS_MAX];
  memset(infl, 0, sizeof infl);
  for (uint32_t s = 0; s < w->slots; s++)
    for (uint32_t k = 0; k < w->b[s].op_count; k++) {
      const rec *t = rec_of(w, w->b[s].ops[k].transfer_id);
      if (t->kind == TALLY__TRANSFER_PURCHASE) infl[t->account][t->item] += (int32_t)t->qty;
    }
  for (uint32_t a = 0; a < w->st.account_count; a++)
    for (uint32_t i = 0; i < w->st.item_count; i++)
      if (infl[a][i] != w->pu_held[a][i]) {
        fail(w, "sim: the model holds %d units of %s for %s, the batches %d", w->pu_held[a][i], w->st.items[i].sku,
             w->st.accounts[a].name, infl[a][i]);
        return;
      }
}

/* Every purchase memory still remembers agrees with the model. */
void check_purchases(world *w) {
  check_model_units(w);
  for (uint32_t i = 0; i < w->purchase_count && !w->r->failed; i++) {
    uint64_t id = w->purchases[i];
    const rec *t = rec_of(w, id);
    uint32_t slot = tally__purchase_find(&w->st, id);
    if (t->status == REC_RELEASED && slot != TALLY__NONE)
      fail(w, "I5: released purchase %llu still refundable", (unsigned long long)id);
    if (slot == TALLY__NONE) continue;
    const tally__purchase *p = &w->st.purchases[slot];
    if (p->committed != (t->status == REC_APPLIED) || p->refunded != t->refunded || p->amount != t->amount)
      fail(w, "I4: purchase %llu in memory (committed %d, refunded %lld) != model (%d, %lld)",
           (unsigned long long)id, p->committed, (long long)p->refunded, t->status == REC_APPLIED,
           (long long)t->refunded);
  }
}
