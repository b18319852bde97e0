/* sim_check.c — the invariants, checked after every step on the engine's
 * real state and the simulated ledger (docs/SIMULATION.md). The answers
 * people get are checked as they come (sim_drive.c on_effect), and each
 * transfer as the ledger stores it (sim_env.c store_one).
 *
 * The ledger may be ahead of memory only by transfers still in a batch
 * (committed, the answer not in yet), so at every step, exactly:
 *   memory balance + legs of stored in-flight ops = ledger balance (I1, I7)
 *   memory sold    + units of stored in-flight purchases = ledger sold (I2)
 * and what memory holds is exactly what the ops in its batches debit (I5). */
#include "sim_internal.h"

typedef struct inflight {
  int64_t held[64], stored[64]; /* by account: debits held, legs of stored ops */
  int32_t item_held[SIM_ENGINE_ITEMS], item_stored[SIM_ENGINE_ITEMS];
  uint32_t ops;
} inflight;

static void count_inflight(world *w, inflight *f) {
  const tally__engine *e = (const tally__engine *)w->e;
  const tally__state *st = &e->st;
  memset(f, 0, sizeof *f);
  for (uint32_t i = 0; i < e->batch_slots; i++) {
    const tally__batch *b = &e->batches[i];
    if (b->phase == TALLY__BATCH_FREE) continue;
    for (uint32_t k = 0; k < b->op_count + b->hidden; k++) {
      const tally__op *op = &b->ops[k];
      f->ops++;
      if (op->type != TALLY__OP_TRANSFER) continue;
      bool stored = ledger_tx(w, op->transfer_id) != NULL;
      for (int l = 0; l < op->leg_count; l++) {
        const tally__leg *leg = &op->legs[l];
        if (leg->amount < 0 && st->accounts[leg->account].kind != TALLY__ACCOUNT_EXTERNAL)
          f->held[leg->account] -= leg->amount;
        if (stored) f->stored[leg->account] += leg->amount;
      }
      if (op->kind == TALLY__TRANSFER_PURCHASE && op->item < SIM_ENGINE_ITEMS) {
        f->item_held[op->item] += (int32_t)op->qty;
        if (stored) f->item_stored[op->item] += (int32_t)op->qty;
      }
    }
  }
}

static void check_accounts(world *w, const inflight *f) {
  const tally__state *st = &((const tally__engine *)w->e)->st;
  __int128 total = 0;
  for (uint32_t a = 0; a < st->account_count && !w->r->failed; a++) {
    const tally__account *acc = &st->accounts[a];
    total += acc->balance;
    if (acc->balance + f->stored[a] != w->db_bal[a])
      fail(w, "I1: %s has %lld in memory (+%lld stored, answer not in yet), the ledger %lld", tally__account_name(st, a),
           (long long)acc->balance, (long long)f->stored[a], (long long)w->db_bal[a]);
    else if (acc->held != f->held[a])
      fail(w, "I5: %s holds %lld, its in-flight debits sum to %lld", tally__account_name(st, a), (long long)acc->held,
           (long long)f->held[a]);
    else if (acc->kind != TALLY__ACCOUNT_EXTERNAL && (acc->held < 0 || acc->balance - acc->held < 0))
      fail(w, "I6: %s has balance %lld and holds %lld", tally__account_name(st, a), (long long)acc->balance, (long long)acc->held);
  }
  if (total != 0 && !w->r->failed) fail(w, "I1: balances in memory sum to %lld", (long long)total);
}

static void check_items(world *w, const inflight *f) {
  const tally__state *st = &((const tally__engine *)w->e)->st;
  for (uint32_t i = 0; i < st->item_count && i < SIM_ENGINE_ITEMS && !w->r->failed; i++) {
    const tally__item *it = &st->items[i];
    if (it->held != f->item_held[i])
      fail(w, "I5: %s holds %d units, its in-flight purchases %d", it->sku, it->held, f->item_held[i]);
    else if (it->sold + f->item_stored[i] != w->db_sold[i])
      fail(w, "I2: %s sold %d in memory (+%d stored, answer not in yet), the ledger %d", it->sku, it->sold,
           f->item_stored[i], w->db_sold[i]);
    else if (it->stock >= 0 && it->sold + it->held > it->stock)
      fail(w, "I2: %s sold %d + held %d > stock %d", it->sku, it->sold, it->held, it->stock);
  }
}

/* I4 in memory: no purchase refunded (committed and in flight) beyond what
 * was paid, and what memory says was refunded is what the ledger holds. */
static void check_purchases(world *w) {
  const tally__state *st = &((const tally__engine *)w->e)->st;
  for (uint32_t i = 0; i < st->cfg->purchases_max && !w->r->failed; i++) {
    const tally__purchase *p = &st->purchases[i];
    if (!p->live || !p->committed) continue;
    if (p->refunded < 0 || p->refund_held < 0 || p->refunded + p->refund_held > p->amount)
      fail(w, "I4: purchase %llu of %lld: %lld refunded, %lld in flight", (unsigned long long)p->transfer_id,
           (long long)p->amount, (long long)p->refunded, (long long)p->refund_held);
    const ltx *t = ledger_tx(w, p->transfer_id);
    if (!t) fail(w, "I7: purchase %llu is committed in memory, not in the ledger", (unsigned long long)p->transfer_id);
    else if (t->refunded < p->refunded)
      fail(w, "I4: purchase %llu: memory has %lld refunded, the ledger %lld", (unsigned long long)p->transfer_id,
           (long long)p->refunded, (long long)t->refunded);
  }
}

void check(world *w) {
  if (w->r->failed) return;
  inflight f;
  count_inflight(w, &f);
  const tally__engine *e = (const tally__engine *)w->e;
  if (f.ops != e->ops_pending) {
    fail(w, "I5: %u ops in batches, the engine counts %u pending", f.ops, e->ops_pending);
    return;
  }
  check_accounts(w, &f);
  check_items(w, &f);
  if (!w->r->failed) check_rewards(w);
  if (!w->r->failed && (w->step % 64 == 0 || w->step > w->o.steps)) check_purchases(w);
}

bool quiet(const world *w) {
  const tally__engine *e = (const tally__engine *)w->e;
  if (e->ops_pending || goals_paying(w)) return false;
  for (uint32_t i = 0; i < e->batch_slots; i++)
    if (e->batches[i].phase == TALLY__BATCH_SEALED || e->batches[i].phase == TALLY__BATCH_RESOLVING) return false;
  return true;
}

/* After the final drain: nothing in flight, and every command answered. */
void check_quiet(world *w) {
  if (w->r->failed) return;
  if (!quiet(w) || env_busy(w)) {
    fail(w, "I5: %u ops never resolved", ((const tally__engine *)w->e)->ops_pending);
    return;
  }
  for (uint64_t q = 1; q <= w->req_next; q++)
    if (!w->reqs[q].answered) {
      fail(w, "I5: req %llu was never answered", (unsigned long long)q);
      return;
    }
  check(w);
  check_goals_paid(w);
}
