/* sim.c — the run (see sim.h): one world per seed, each step drawn from one
 * PRNG: a command (buy, tip, refund, grant, confirm, a line delivered
 * again), the clock moving (with jumps) and the engine's tick (timers,
 * drops, events, "pending" notices), a flush (the engine hands sealed
 * batches to idle writers), an answer from the simulated ledger for a batch
 * in flight, a catalog change, a host's live command, or a piece of a quiz
 * (an event, people showing up, the question, answers). Then the checks.
 * At the end every batch is let through cleanly and the engine must be
 * quiet with every command answered.
 *
 * The engine is the real one: the command dispatcher, the features, the
 * kernel's batches and their settlement (tally__engine_on_outcome). What
 * the simulator owns is time, the order of things, and the ledger's
 * answers (sim_env.c). */
#include "sim_internal.h"

static void step_clock(world *w) {
  uint64_t r = below(w, 1000);
  uint64_t dt = r < 980 ? (uint64_t)between(w, 0, 100) : (uint64_t)between(w, 1000, 10000);
  w->mono += dt;
  w->wall += (int64_t)dt;
  if (r >= 990) w->wall += chance(w, 50) ? 3600000 : -3600000; /* F9: the wall clock jumps */
  if (r == 999) w->wall += 86400000 - between(w, 0, 60000);
  if (w->wall < SIM_WALL_START) w->wall = SIM_WALL_START;
  tally__engine_tick((tally__engine *)w->e);
}

static void step(world *w) {
  uint64_t r = below(w, 100);
  if (r < 40) {
    step_command(w);
    /* The loop flushes after each burst of commands it drains. */
    if (chance(w, 50)) tally__engine_flush((tally__engine *)w->e);
  } else if (r < 58) {
    step_clock(w);
  } else if (r < 72) {
    tally__engine_flush((tally__engine *)w->e);
  } else if (r < 96) {
    swriter *s = env_due(w);
    if (s) env_answer(w, s, false);
    /* The real writer flushes after each answer; here only sometimes, so
     * that sealed batches also wait for a tick. */
    if (s && chance(w, 50)) tally__engine_flush((tally__engine *)w->e);
  } else if (r < 97) {
    step_catalog(w);
  } else if (r < 98) {
    step_live(w);
  } else {
    step_quiz(w);
  }
  collect(w);
}

/* Lets every batch through cleanly, so that the final state is quiet. */
static void drain(world *w) {
  for (int round = 0; round < 512 && !w->r->failed; round++) {
    tally__engine_flush((tally__engine *)w->e);
    collect(w);
    if (quiet(w) && !env_busy(w)) break;
    for (uint32_t k = 0; k < w->writers && !w->r->failed; k++)
      if (w->wr[k].b) env_answer(w, &w->wr[k], true);
    w->mono += 25;
    tally__engine_tick((tally__engine *)w->e);
    collect(w);
    check(w);
  }
  check_quiet(w);
}

int sim_run(const sim_options *o, sim_result *r) {
  memset(r, 0, sizeof *r);
#ifdef TALLY_TEST_FAULTS
  tally__test_fault_set(o->bug);
#endif
  world *w = malloc(sizeof *w);
  char flags[128];
  sim_flags_text(o, flags, sizeof flags);
  snprintf(crash_line, sizeof crash_line, " (replay: tally_sim --seed %llu --steps %u%s)",
           (unsigned long long)o->seed, o->steps, flags);
  crash_active = 1;
  crash_step = 0;
  if (!w || world_init(w, o, r)) {
    if (!r->failed) snprintf(r->why, sizeof r->why, "sim: could not build the world (out of memory?)");
    r->failed = true;
    if (w) world_free(w);
    free(w);
    crash_active = 0;
    return 1;
  }
  for (w->step = 1; w->step <= o->steps && !r->failed; w->step++) {
    crash_step = w->step;
    step(w);
    check(w);
  }
  r->steps = w->step - 1;
  if (!r->failed) {
    w->step = o->steps + 1;
    drain(w);
  }
  crash_active = 0;
  world_free(w);
  free(w);
#ifdef TALLY_TEST_FAULTS
  tally__test_fault_set(TALLY__FAULT_NONE);
#endif
  return r->failed ? 1 : 0;
}

/* ---- the planted bugs (core/src/base/test_fault.h) ------------------------------------------ */
uint32_t sim_bug_count(void) {
#ifdef TALLY_TEST_FAULTS
  return TALLY__FAULT_COUNT;
#else
  return 0;
#endif
}

uint32_t sim_bug_parse(const char *name) {
#ifdef TALLY_TEST_FAULTS
  return tally__test_fault_parse(name);
#else
  (void)name;
  return 0;
#endif
}

const char *sim_bug_name(uint32_t bug) {
#ifdef TALLY_TEST_FAULTS
  const char *n = tally__test_fault_name(bug);
  return n ? n : "none";
#else
  (void)bug;
  return "none";
#endif
}

/* The loader's and the batch SQL's bugs need PostgreSQL: tests/adversary. */
bool sim_bug_simulated(uint32_t bug) {
#ifdef TALLY_TEST_FAULTS
  return bug != TALLY__FAULT_NONE && bug != TALLY__FAULT_LOADER_REFUND && bug != TALLY__FAULT_LOADER_BALANCE &&
         bug != TALLY__FAULT_BATCH_FEE && bug < TALLY__FAULT_COUNT;
#else
  (void)bug;
  return false;
#endif
}

void sim_flags_text(const sim_options *o, char *out, size_t n) {
  out[0] = 0;
  if (o->bug) snprintf(out, n, " --inject-bug %s", sim_bug_name(o->bug));
}
