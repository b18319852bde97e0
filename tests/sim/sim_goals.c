/* sim_goals.c — community goals in the simulated ledger, and their rule
 * (docs/SIMULATION.md, "Goals"): every account stored as present when a
 * level was reached earns that level's reward exactly once, and nobody
 * else does (G1, G2 of `tally check`). The ledger stores a level's facts as
 * sql/017 does: the level (gl: its id and how many were present) and who
 * was present (gp: account ids, several facts per level); a resend inserts
 * nothing. The facts of a level go out in one batch, but a batch the
 * ledger refuses for its data is split to find the op at fault, so who was
 * present may be stored before the level itself (the goal sends the same
 * facts again until all of them are in; nothing refers to the level before). A grant names the level it pays (reward_grants.quiz_id), so as
 * each is stored it must be for a present account not yet paid for that
 * level; once the run is quiet, every present account of every level was
 * paid. */
#include "sim_internal.h"

#include <inttypes.h>

#include "goals.h"

static lgoal *level_of(world *w, uint64_t id) {
  for (uint32_t i = 0; i < w->level_count; i++)
    if (w->levels[i].id == id) return &w->levels[i];
  return NULL;
}

/* The engine's account index of ledger account id `id`, or -1. */
static int account_index(world *w, uint64_t id) {
  const tally__state *st = &w->e->st;
  for (uint32_t a = 0; a < st->account_count && a < SIM_ACCOUNTS_MAX; a++)
    if (st->accounts[a].id == id) return (int)a;
  return -1;
}

static uint64_t json_u64(const char *json, const char *field) {
  char k[16];
  snprintf(k, sizeof k, "\"%s\":", field);
  const char *p = strstr(json, k);
  return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

/* A goal FACT op of a batch being stored: a level, or who was present. */
void ledger_goal_fact(world *w, const tally__op *op) {
  if (op->type != TALLY__OP_FACT || op->kind != TALLY__FACT_GOAL || !op->fact) return;
  bool gl = strstr(op->fact, "\"k\":\"gl\"") != NULL;
  if (!gl && !strstr(op->fact, "\"k\":\"gp\"")) return;
  uint64_t id = json_u64(op->fact, "id");
  lgoal *l = level_of(w, id);
  if (!l) {
    if (w->level_count == SIM_LEVELS_MAX) {
      fail(w, "sim: more goal levels than the ledger has room for (%d)", SIM_LEVELS_MAX);
      return;
    }
    l = &w->levels[w->level_count++];
    *l = (lgoal){.id = id};
  }
  if (gl) {
    if (l->stored) return; /* ON CONFLICT DO NOTHING */
    l->stored = true;
    l->present_n = (uint32_t)json_u64(op->fact, "n");
    w->r->goal_levels++;
    trace(w, "ledger: goal level %" PRIu64 " reached, %u present", id, l->present_n);
    return;
  }
  const char *a = strstr(op->fact, "\"a\":[");
  for (const char *p = a ? a + 5 : ""; *p && *p != ']';) {
    char *end;
    uint64_t acc = strtoull(p, &end, 10);
    if (end == p) break;
    int k = account_index(w, acc);
    if (k < 0) fail(w, "G1: goal level %" PRIu64 " stores account %" PRIu64 " as present, unknown", l->id, acc);
    else l->present |= 1ull << k;
    p = *end == ',' ? end + 1 : end;
  }
}

/* A reward grant being stored: one for a goal level pays a present
 * account of it, once (G1). */
void ledger_goal_grant(world *w, uint32_t account, uint64_t source) {
  lgoal *l = level_of(w, source);
  if (!l) return; /* a quiz's, a round's */
  if (!l->stored) {
    fail(w, "G1: a grant pays goal level %" PRIu64 ", which the ledger does not hold", l->id);
    return;
  }
  if (account >= SIM_ACCOUNTS_MAX || !(l->present >> account & 1))
    fail(w, "G1: goal level %" PRIu64 " pays %s, who was not stored as present", l->id,
         tally__account_name(&w->e->st, account));
  else if (l->paid >> account & 1)
    fail(w, "G1: goal level %" PRIu64 " pays %s twice", l->id, tally__account_name(&w->e->st, account));
  else
    l->paid |= 1ull << account;
}

/* Once quiet: every level paid everyone stored as present (G2). */
void check_goals_paid(world *w) {
  for (uint32_t i = 0; i < w->level_count && !w->r->failed; i++) {
    const lgoal *l = &w->levels[i];
    if (!l->stored) fail(w, "G3: present accounts stored for goal level %" PRIu64 ", which the ledger never held", l->id);
    else if (!l->present) continue; /* no reward: who was there is not stored */
    else if ((uint32_t)__builtin_popcountll(l->present) != l->present_n)
      fail(w, "G3: goal level %" PRIu64 " says %u present, its present facts name %d", l->id, l->present_n,
           __builtin_popcountll(l->present));
    else if (l->paid != l->present)
      fail(w, "G2: goal level %" PRIu64 " paid %d of its %u present accounts", l->id, __builtin_popcountll(l->paid),
           l->present_n);
  }
}

/* A goal whose level is reached but not yet paid keeps the run from
 * being quiet (its grants come tick by tick). */
bool goals_paying(const world *w) {
  const tally__goals *z = tally__goals_of((tally__engine *)w->e);
  for (uint32_t i = 0; z && i < TALLY__GOALS_MAX; i++) {
    uint8_t s = z->g[i].state;
    if (s == TALLY__GOAL_REACHED || s == TALLY__GOAL_RECORDING || s == TALLY__GOAL_PAYING) return true;
  }
  return false;
}
