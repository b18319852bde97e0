/* sim.c — the deterministic simulation of state.c + decide.c (see sim.h).
 *
 * One world per seed: a tally__state with small limits, a few creators and
 * buyers, items with limited and unlimited stock. Each step is drawn from
 * one PRNG: a decision (buy, tip, refund, grant; keys from a small pool so
 * that replays and key reuse with other parameters happen), a clock tick
 * (with jumps), a catalog change (as cmd_admin.c does it), a flush (as
 * tally__engine_flush: seal the open batch or resend a waiting one when a
 * "writer" is free), or an answer from the simulated database for one of the
 * batches in flight (commit, lost reply, rollback, serialization failure,
 * error), in any order. Engine-side outcomes mirror engine.c exactly:
 * tally__engine_batch_done (inserted ids, then a key lookup for the rest)
 * and tally__engine_batch_failed.
 *
 * Two ledgers are kept besides the engine's: the database's (which
 * transfers and keys are stored) and the model's (what the engine applied,
 * computed from the request parameters, not from the op). After every step
 * the engine's balances, holds, stock and refund counters must equal what
 * the model derives from them; that is where a broken rule shows up.
 *
 * This file holds the run; sim_internal.h lists the other parts. */
#include "sim_internal.h"

/* ---- the run ------------------------------------------------------------------------------------------------- */
void step(world *w) {
  uint64_t r = below(w, 100);
  /* A drop storm against a slow database: mostly decisions, few answers. */
  if ((w->o.faults & SIM_FAULT_BIG_BATCHES) && r < 60) r = 0;
  if (r < 40) {
    step_decide(w);
  } else if (r < 58) {
    step_clock(w);
    live_tick(w);
  } else if (r < 75) {
    flush(w);
  } else if (r < 96) {
    sbatch *b = flight_due(w);
    if (b) db_answer(w, b, false);
  } else if (r < 98) {
    step_catalog(w);
  } else {
    step_live(w);
  }
}

/* Lets every batch finish cleanly, so that the final state is quiet. */
void drain(world *w) {
  for (int round = 0; round < 64 && !w->r->failed; round++) {
    flush(w);
    for (uint32_t i = 0; i < w->slots && !w->r->failed; i++)
      if (w->b[i].phase == SB_FLIGHT) {
        w->inflight--;
        uint32_t n = db_commit(w, &w->b[i], w->inserted);
        batch_done(w, &w->b[i], w->inserted, n);
      }
    if (!w->r->failed) check(w);
  }
  if (w->r->failed) return;
  if (w->decided_open != 0) fail(w, "I5: %llu ops never resolved", (unsigned long long)w->decided_open);
  check_purchases(w);
}

int sim_run(const sim_options *o, sim_result *r) {
  memset(r, 0, sizeof *r);
  world *w = malloc(sizeof *w);
  if (!w || world_init(w, o, r)) {
    snprintf(r->why, sizeof r->why, "out of memory");
    r->failed = true;
    if (w) world_free(w);
    free(w);
    return 1;
  }
  char flags[256];
  sim_flags_text(o, flags, sizeof flags);
  snprintf(crash_line, sizeof crash_line, " (replay: tally_sim --seed %llu --steps %u%s)",
           (unsigned long long)o->seed, o->steps, flags);
  crash_active = 1;
  for (w->step = 1; w->step <= o->steps && !r->failed; w->step++) {
    crash_step = w->step;
    step(w);
    if (!r->failed) check(w);
    if (!r->failed && w->step % 256 == 0) check_purchases(w);
  }
  r->steps = w->step - 1;
  if (!r->failed) {
    w->step = o->steps + 1;
    drain(w);
  }
  crash_active = 0;
  world_free(w);
  free(w);
  return r->failed ? 1 : 0;
}

/* ---- names ---------------------------------------------------------------------------------------------------- */
const char *const bug_names[SIM_BUG_COUNT] = {"none", "double-commit", "lost-sale", "skip-release",
                                                     "skip-per-user"};
const char *const fault_names[] = {"fail-after-unknown", "huge-amounts", "old-refunds",
                                          "refund-fees", "replay-params", "replay-first", "big-batches"};

uint32_t sim_bug_parse(const char *name) {
  for (uint32_t i = 1; i < SIM_BUG_COUNT; i++)
    if (strcmp(name, bug_names[i]) == 0) return i;
  return SIM_BUG_NONE;
}

const char *sim_bug_name(uint32_t bug) { return bug < SIM_BUG_COUNT ? bug_names[bug] : "?"; }

bool sim_faults_parse(const char *list, uint32_t *out) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  uint32_t bits = 0;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (strcmp(t, "all") == 0) {
      bits |= (1u << (sizeof fault_names / sizeof fault_names[0])) - 1;
      continue;
    }
    size_t i = 0;
    while (i < sizeof fault_names / sizeof fault_names[0] && strcmp(t, fault_names[i]) != 0) i++;
    if (i == sizeof fault_names / sizeof fault_names[0]) return false;
    bits |= 1u << i;
  }
  *out = bits;
  return true;
}

void sim_flags_text(const sim_options *o, char *out, size_t n) {
  size_t k = 0;
  out[0] = 0;
  if (o->bug && k < n) k += (size_t)snprintf(out + k, n - k, " --inject-bug %s", sim_bug_name(o->bug));
  for (size_t i = 0; i < sizeof fault_names / sizeof fault_names[0] && k < n; i++)
    if (o->faults & (1u << i))
      k += (size_t)snprintf(out + k, n - k, "%s%s", k && strstr(out, "--faults") ? "," : " --faults ", fault_names[i]);
}
