/* sim_rewards.c — earned rewards in the simulated ledger, and their checks
 * (docs/SIMULATION.md, "Rewards"). The ledger stores what a batch says of
 * a reward as sql/015 does: a grant fact (one row per grant id: a resend
 * inserts nothing), the use written with the purchase that carries it, the
 * give-back with the full refund of that purchase, an expiry fact. As it
 * stores them it checks the rules of an earned reward:
 *   R-once:    a grant is used by one purchase at a time, never again
 *              until a full refund gave it back;
 *   R-owner:   only the account it was granted to uses it;
 *   R-expiry:  never used once its expiry is stored, nor by a purchase
 *              decided after its time; an expiry never ends a used one;
 *   R-return:  a give-back only with the full refund of the purchase that
 *              used it.
 * After every step, memory (tally__rewards) and the ledger must agree:
 * what memory holds as used is used in the ledger by the same purchase,
 * and no grant the ledger holds unused and unexpired is missing from
 * memory (a reward the buyer earned would be lost). */
#include "sim_internal.h"

#include <inttypes.h>

#include "rewards.h"

lgrant *ledger_grant(world *w, uint64_t id) {
  uint32_t i = umap_get(&w->grant_by_id, id);
  return i ? &w->grants[i - 1] : NULL;
}

/* The grant id a reward fact's JSON names ("g":N), 0 if none. */
static uint64_t fact_grant(const char *json) {
  const char *g = json ? strstr(json, "\"g\":") : NULL;
  return g ? strtoull(g + 4, NULL, 10) : 0;
}

static bool fact_is(const char *json, const char *kind) {
  char k[32];
  snprintf(k, sizeof k, "\"k\":\"%s\"", kind);
  return json && strstr(json, k);
}

/* Memory's grant with ledger id `id`, or NULL. */
static const tally__reward_earned *memory_grant(world *w, uint64_t id) {
  const tally__rewards *r = tally__rewards_of((tally__engine *)w->e);
  for (uint32_t i = 0; r && i < r->grant_high; i++)
    if (r->grants[i].state != TALLY__GRANT_FREE && r->grants[i].id == id) return &r->grants[i];
  return NULL;
}

/* A reward FACT op of a batch being stored: grants and expiries. */
void ledger_reward_fact(world *w, const tally__op *op) {
  if (op->type != TALLY__OP_FACT || op->kind != TALLY__FACT_REWARD) return;
  uint64_t id = fact_grant(op->fact);
  if (fact_is(op->fact, "grant")) {
    if (ledger_grant(w, id)) return; /* ON CONFLICT DO NOTHING */
    if (w->grant_count >= w->grant_cap) {
      fail(w, "sim: more reward grants than the ledger has room for (%u)", w->grant_cap);
      return;
    }
    w->grants[w->grant_count++] = (lgrant){.id = id, .account = op->account};
    umap_put(&w->grant_by_id, id, w->grant_count);
    ledger_goal_grant(w, op->account, strtoull(strstr(op->fact, "\"q\":") ? strstr(op->fact, "\"q\":") + 4 : "0", NULL, 10));
    w->r->rewards_granted++;
    trace(w, "ledger: reward grant %" PRIu64 " to %s", id, tally__account_name(&w->e->st, op->account));
  } else if (fact_is(op->fact, "exp")) {
    lgrant *g = ledger_grant(w, id);
    if (!g) fail(w, "R-expiry: an expiry of grant %" PRIu64 ", which the ledger does not hold", id);
    else if (g->used_by) fail(w, "R-expiry: grant %" PRIu64 " expired while purchase %" PRIu64 " uses it", id, g->used_by);
    else if (!g->expired) {
      g->expired = true;
      w->r->rewards_expired++;
    }
  }
}

/* A transfer being stored that uses a reward or gives one back. */
void ledger_reward_transfer(world *w, const tally__op *op) {
  if (op->reward_fact == TALLY__REWARD_FACT_NONE) return;
  lgrant *g = ledger_grant(w, op->reward_grant);
  const tally__state *st = &w->e->st;
  if (!g) {
    fail(w, "R-once: transfer %llu names reward grant %" PRIu64 ", which the ledger does not hold",
         (unsigned long long)op->transfer_id, op->reward_grant);
    return;
  }
  if (op->reward_fact == TALLY__REWARD_FACT_USE) {
    const tally__reward_earned *m = memory_grant(w, g->id);
    if (g->used_by)
      fail(w, "R-once: purchase %llu uses grant %" PRIu64 ", which purchase %" PRIu64 " uses already",
           (unsigned long long)op->transfer_id, g->id, g->used_by);
    else if (g->account != op->account)
      fail(w, "R-owner: %s's purchase %llu uses grant %" PRIu64 " of %s", tally__account_name(st, op->account),
           (unsigned long long)op->transfer_id, g->id, tally__account_name(st, g->account));
    else if (g->expired)
      fail(w, "R-expiry: purchase %llu uses grant %" PRIu64 " after its expiry was stored",
           (unsigned long long)op->transfer_id, g->id);
    else if (m && op->decided_mono_ms >= m->expires_mono)
      fail(w, "R-expiry: purchase %llu, decided at %" PRIu64 " ms, uses grant %" PRIu64 " that expired at %" PRIu64 " ms",
           (unsigned long long)op->transfer_id, op->decided_mono_ms, g->id, m->expires_mono);
    else {
      g->used_by = op->transfer_id;
      w->r->rewards_used++;
      if (op->amount == 0) w->r->free_units++; /* kind 6: a free unit, never refunded */
    }
    return;
  }
  /* A give-back: stored after store_one added the refund to its purchase. */
  const ltx *p = ledger_tx(w, op->ref_transfer);
  if (g->used_by != op->ref_transfer)
    fail(w, "R-return: refund %llu gives back grant %" PRIu64 ", used by %" PRIu64 ", not by the refunded %llu",
         (unsigned long long)op->transfer_id, g->id, g->used_by, (unsigned long long)op->ref_transfer);
  else if (!p || p->refunded != p->amount)
    fail(w, "R-return: refund %llu gives back grant %" PRIu64 " but purchase %llu is not refunded in full",
         (unsigned long long)op->transfer_id, g->id, (unsigned long long)op->ref_transfer);
  else {
    g->used_by = 0;
    w->r->rewards_returned++;
  }
}

/* After every step: memory and the ledger agree on every grant. */
void check_rewards(world *w) {
  const tally__rewards *r = tally__rewards_of((tally__engine *)w->e);
  if (!r) return;
  for (uint32_t i = 0; i < r->grant_high && !w->r->failed; i++) {
    const tally__reward_earned *m = &r->grants[i];
    if (m->state == TALLY__GRANT_FREE || m->state == TALLY__GRANT_GRANTING) continue;
    const lgrant *g = ledger_grant(w, m->id);
    if (!g) {
      fail(w, "R-once: memory holds grant %" PRIu64 " (state %u), which the ledger does not", m->id, m->state);
    } else if (m->account != g->account) {
      fail(w, "R-owner: grant %" PRIu64 " is %s's in memory, %s's in the ledger", m->id,
           tally__account_name(&w->e->st, m->account), tally__account_name(&w->e->st, g->account));
    } else if (m->state == TALLY__GRANT_READY && (g->used_by || g->expired)) {
      fail(w, "R-once: grant %" PRIu64 " is usable in memory, but the ledger has it %s %" PRIu64, m->id,
           g->expired ? "expired" : "used by", g->used_by);
    } else if (m->state == TALLY__GRANT_USED && g->used_by != m->transfer) {
      fail(w, "R-once: grant %" PRIu64 " is used by %" PRIu64 " in memory, by %" PRIu64 " in the ledger", m->id,
           m->transfer, g->used_by);
    } else if (m->state == TALLY__GRANT_HELD && g->used_by && g->used_by != m->transfer) {
      fail(w, "R-once: grant %" PRIu64 " is held for %" PRIu64 ", the ledger has it used by %" PRIu64, m->id,
           m->transfer, g->used_by);
    }
  }
  for (uint32_t k = 0; k < w->grant_count && !w->r->failed; k++) {
    const lgrant *g = &w->grants[k];
    if (g->expired || g->used_by) continue;
    if (!memory_grant(w, g->id))
      fail(w, "R-once: the ledger holds grant %" PRIu64 " of %s unused, memory has lost it", g->id,
           tally__account_name(&w->e->st, g->account));
  }
}
