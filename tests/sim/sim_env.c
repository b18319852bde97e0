/* sim_env.c — the engine's environment in the simulation (kernel
 * tally__env): simulated clocks, writers that hold a batch until the
 * simulator answers it, and the ledger those answers come from. The
 * ledger follows PostgreSQL's rules as tally_write_batch and
 * tally_lookup_batch state them (sql/): an idempotency key is held by one
 * transfer; a batch commits whole or not at all, and is refused (TL002)
 * when a key is taken; a resend of a batch that committed finds its
 * transfers and inserts nothing. The engine learns all of it only through
 * tally__engine_on_outcome, as from the real writers (sim_internal.h). */
#include "sim_internal.h"

static world *world_of(const tally__engine *e) { return e->env_ud; }

static uint64_t sim_now_mono(tally__engine *e) { return world_of(e)->mono; }
static int64_t sim_now_wall(const tally__engine *e) { return world_of(e)->wall; }

static swriter *idle(world *w) {
  for (uint32_t k = 0; k < w->writers; k++)
    if (!w->wr[k].b) return &w->wr[k];
  return NULL;
}

static bool sim_writer_idle(tally__engine *e) { return idle(world_of(e)) != NULL; }

/* The answer comes after a random delay, mostly short. */
static uint64_t delay(world *w) {
  return w->mono + (chance(w, 90) ? (uint64_t)between(w, 0, 50) : (uint64_t)between(w, 500, 5000));
}

static int sim_send_batch(tally__engine *e, tally__batch *b) {
  world *w = world_of(e);
  swriter *s = idle(w);
  if (!s) return TALLY_EBUSY;
  s->b = b;
  s->lookup = false;
  s->due_ms = delay(w);
  trace(w, "batch %llu sent (%u ops, %u transfers, %u rows)", (unsigned long long)b->id, b->op_count,
        b->transfer_count, b->row_count);
  return TALLY_OK;
}

static void sim_tick(tally__engine *e, uint64_t now) { (void)e, (void)now; }

const tally__env sim_env = {.now_mono_ms = sim_now_mono, .now_wall_ms = sim_now_wall,
                            .writer_idle = sim_writer_idle, .send_batch = sim_send_batch, .tick = sim_tick};

bool env_busy(const world *w) {
  for (uint32_t k = 0; k < w->writers; k++)
    if (w->wr[k].b) return true;
  return false;
}

swriter *env_due(world *w) {
  uint32_t due[SIM_WRITERS_MAX], n = 0;
  for (uint32_t k = 0; k < w->writers; k++)
    if (w->wr[k].b && w->wr[k].due_ms <= w->mono) due[n++] = k;
  return n ? &w->wr[due[below(w, n)]] : NULL;
}

ltx *ledger_tx(world *w, uint64_t id) {
  uint32_t i = umap_get(&w->tx_by_id, id);
  return i ? &w->tx[i - 1] : NULL;
}

static const tally__key *op_key(world *w, const tally__op *op) { return &w->e->st.keys[op->key_slot]; }

/* The ledger's own checks as a transfer is stored: its legs sum to zero
 * (I1), no wallet goes below zero (I6), no item is sold beyond its stock
 * (I2), no purchase is refunded beyond what was paid (I4). */
static void store_one(world *w, const tally__batch *b, const tally__op *op) {
  tally__state *st = &w->e->st;
  if (w->tx_count >= w->tx_cap) {
    fail(w, "sim: more transfers than the ledger has room for (%u)", w->tx_cap);
    return;
  }
  ltx *t = &w->tx[w->tx_count++];
  memset(t, 0, sizeof *t);
  t->id = op->transfer_id;
  t->batch = b->id;
  t->kind = op->kind;
  t->ref = op->ref_transfer;
  t->req_id = op->req_id;
  t->amount = op->amount;
  t->item = op->item;
  t->qty = op->qty;
  t->fee = op->fee;
  t->fp = op_key(w, op)->fingerprint;
  snprintf(t->key, sizeof t->key, "%s", op_key(w, op)->key);
  trace(w, "ledger: transfer %llu stored (key '%s', batch %llu)", (unsigned long long)t->id, t->key,
        (unsigned long long)b->id);
  umap_put(&w->tx_by_id, t->id, w->tx_count);
  umap_put(&w->tx_by_key, hash_str(t->key), w->tx_count);
  if (op->req_id && op->req_id < w->req_cap && op->origin) w->tx_of_req[op->req_id] = w->tx_count;
  int64_t sum = 0;
  for (int i = 0; i < op->leg_count; i++) {
    const tally__leg *leg = &op->legs[i];
    sum += leg->amount;
    int64_t *bal = &w->db_bal[leg->account];
    if (__builtin_add_overflow(*bal, leg->amount, bal))
      fail(w, "I1: the ledger balance of %s overflows with transfer %llu", tally__account_name(st, leg->account),
           (unsigned long long)t->id);
    if (*bal < 0 && st->accounts[leg->account].kind != TALLY__ACCOUNT_EXTERNAL)
      fail(w, "I6: the ledger balance of %s is %lld after transfer %llu", tally__account_name(st, leg->account),
           (long long)*bal, (unsigned long long)t->id);
  }
  if (sum != 0) fail(w, "I1: the legs of transfer %llu sum to %lld", (unsigned long long)t->id, (long long)sum);
  if (op->kind == TALLY__TRANSFER_PURCHASE && op->item < SIM_ENGINE_ITEMS) {
    w->db_sold[op->item] += (int32_t)op->qty;
    const tally__item *it = &st->items[op->item];
    if (it->stock >= 0 && w->db_sold[op->item] > it->stock)
      fail(w, "I2: the ledger has %d units of %s sold, stock %d", w->db_sold[op->item], it->sku, it->stock);
  }
  if (op->kind == TALLY__TRANSFER_REFUND) {
    ltx *p = ledger_tx(w, op->ref_transfer);
    if (!p || p->kind != TALLY__TRANSFER_PURCHASE)
      fail(w, "I4: refund %llu stored before its purchase %llu", (unsigned long long)t->id,
           (unsigned long long)op->ref_transfer);
    else if ((p->refunded += op->amount) > p->amount)
      fail(w, "I4: purchase %llu of %lld is refunded %lld in the ledger", (unsigned long long)p->id,
           (long long)p->amount, (long long)p->refunded);
    /* The fee comes back in proportion: a full refund, in any number of
     * parts, returns exactly the fee that was taken. */
    else if ((p->fee_back += op->fee) > p->fee || (p->refunded == p->amount && p->fee_back != p->fee))
      fail(w, "I4: purchase %llu (%lld, fee %lld) refunded %lld, its refunds gave back %lld of the fee",
           (unsigned long long)p->id, (long long)p->amount, (long long)p->fee, (long long)p->refunded,
           (long long)p->fee_back);
  }
}

/* One attempt of the batch statement: 0 when it ran (inserted[] set),
 * or 1 when the ledger refused it whole because a key is taken. */
static int ledger_write(world *w, tally__batch *b) {
  if (umap_get(&w->batches_stored, b->id)) return 0; /* a resend: ON CONFLICT, nothing new */
  for (uint32_t k = 0; k < b->transfer_count; k++) {
    const tally__op *op = &b->ops[b->xfer[k]];
    if (umap_get(&w->tx_by_key, hash_str(op_key(w, op)->key)) || ledger_tx(w, op->transfer_id)) return 1;
  }
  /* The facts its statement writes (sim_rewards.c), then its transfers. */
  for (uint32_t k = 0; k < b->op_count && !w->r->failed; k++) {
    ledger_goal_fact(w, &b->ops[k]);
    ledger_reward_fact(w, &b->ops[k]);
  }
  for (uint32_t k = 0; k < b->transfer_count && !w->r->failed; k++) {
    store_one(w, b, &b->ops[b->xfer[k]]);
    ledger_reward_transfer(w, &b->ops[b->xfer[k]]);
    b->inserted[k] = 1;
  }
  umap_put(&w->batches_stored, b->id, 1);
  return 0;
}

/* tally_lookup_batch (sql/022): the transfer (id, fingerprint) that holds each key. */
static void ledger_lookup(world *w, tally__batch *b) {
  for (uint32_t k = 0; k < b->transfer_count; k++) {
    const tally__op *op = &b->ops[b->xfer[k]];
    uint32_t i = umap_get(&w->tx_by_key, hash_str(op_key(w, op)->key));
    b->found_id[k] = i ? w->tx[i - 1].id : 0;
    b->found_fp[k] = i ? w->tx[i - 1].fp : 0;
  }
  /* tally_lookup_batch (sql/022): a batch without transfers is found by its mark. */
  b->found_batch = b->transfer_count == 0 && umap_get(&w->batches_stored, b->id) != 0;
}

static void outcome(world *w, swriter *s, tally__outcome o, const char *what) {
  tally__batch *b = s->b;
  trace(w, "batch %llu: %s", (unsigned long long)b->id, what);
  s->b = NULL;
  if (w->r->failed) return; /* the ledger saw a breach: the engine must not act on it */
  if (tally__engine_on_outcome((tally__engine *)w->e, b, &o) != TALLY__NEXT_LOOKUP) return;
  tally__engine_lookup_sent((tally__engine *)w->e, b);
  s->b = b;
  s->lookup = true;
  s->due_ms = delay(w);
  w->r->lookups++;
}

static tally__outcome error(const char *sqlstate, bool lookup) {
  return (tally__outcome){.kind = TALLY__OUTCOME_ERROR, .lookup = lookup, .sqlstate = sqlstate,
                          .message = "simulated"};
}

/* The answer to the statement or lookup writer s holds. `clean`: it runs
 * and commits (set-up, and the final drain). */
void env_answer(world *w, swriter *s, bool clean) {
  tally__batch *b = s->b;
  uint64_t roll = clean ? 0 : below(w, 100);
  if (s->lookup) {
    if (roll < 90) {
      ledger_lookup(w, b);
      outcome(w, s, (tally__outcome){.kind = TALLY__OUTCOME_LOOKUP_OK}, "lookup answered");
    } else {
      w->r->lookup_failures++;
      outcome(w, s, error("57014", true), "lookup failed");
    }
    return;
  }
  if (roll < 80) { /* it runs; below 70 the reply arrives */
    if (ledger_write(w, b)) {
      w->r->key_taken++;
      outcome(w, s, error(TALLY__SQLSTATE_KEY_TAKEN, false), "refused: a key is taken (TL002)");
      return;
    }
    if (roll < 70) {
      w->r->batches++;
      outcome(w, s, (tally__outcome){.kind = TALLY__OUTCOME_STATEMENT_OK}, "committed");
    } else {
      w->r->lost_replies++;
      outcome(w, s, (tally__outcome){.kind = TALLY__OUTCOME_LOST}, "committed, reply lost");
    }
  } else if (roll < 87) {
    w->r->lost_sends++;
    outcome(w, s, (tally__outcome){.kind = TALLY__OUTCOME_LOST}, "lost before commit");
  } else if (roll < 94) {
    w->r->serialization++;
    outcome(w, s, error("40001", false), "serialization failure");
  } else if (roll < 96) {
    w->r->failed_batches++;
    outcome(w, s, error("XX000", false), "error, rolled back");
  } else if (roll < 98) { /* class 53: live drops pause until the ledger takes writes again */
    w->r->failed_batches++;
    outcome(w, s, error("53100", false), "disk full (class 53), rolled back");
  } else {
    w->r->data_refused++;
    outcome(w, s, error("23514", false), "data refused (class 23), rolled back");
  }
}
