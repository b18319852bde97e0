/* sim.h — a deterministic simulation of the real engine.
 *
 * Contract: sim_run builds a real engine (tally_engine_new: the kernel, the
 * command dispatcher and every feature, as production has them) and drives
 * it on one thread from one seed, without its loop thread and without
 * PostgreSQL. Time and the ledger sit behind the engine's environment
 * (kernel tally__env): the simulator keeps the clocks (monotonic and wall,
 * with jumps), plays the writers, and answers each batch itself from a
 * ledger of its own (the ledger's rules: a key held once, a batch whole or
 * not at all, a resend that finds its transfers), in any order: commit,
 * commit with the reply lost, lost before commit, serialization failure,
 * error, data refused, a failed key lookup. Commands are chat lines (BUY,
 * TIP, REFUND, CONFIRM, TALLY GRANT, ITEM SET, EVENT, DROP, QUIZ START,
 * ANSWER, presence) with message ids
 * from a small pool, so replays and reused keys happen; each goes through
 * the real dispatcher. After every step the checks of sim_check.c run on
 * the engine's real state and effects and on the simulated ledger
 * (docs/SIMULATION.md). The same seed and step count replay the same run.
 * Nothing is global except the crash report (seed and step of the run in
 * progress, printed if core asserts or a sanitizer aborts). */
#ifndef TALLY_SIM_H
#define TALLY_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sim_options {
  uint64_t seed;
  uint32_t steps;
  uint32_t bug;    /* a planted bug of the real code (core/src/base/test_fault.h), 0 none */
  bool quiet;      /* no failure report on stderr */
  bool trace;      /* one line per command, answer and batch outcome on stderr */
} sim_options;

typedef struct sim_result {
  uint64_t steps, commands, replays, receipts, refused;
  uint64_t batches, lost_replies, lost_sends, serialization, failed_batches, data_refused, lookups,
      lookup_failures, key_taken;
  uint64_t quizzes; /* QUIZ START lines sent */
  uint64_t rewards_granted, rewards_used, rewards_returned, rewards_expired; /* as the ledger stored them */
  uint64_t free_units; /* of those uses, free units (a purchase of amount 0) */
  uint64_t goals, goal_levels; /* GOAL START lines sent; levels the ledger stored */
  bool failed;
  uint32_t fail_step;
  char why[320];
} sim_result;

/* Runs one seed; 0 when every check held, 1 on the first breach (r->why). */
int sim_run(const sim_options *o, sim_result *r);

/* The planted bugs this build has: test builds only (make BUILD=build/san
 * SANITIZE=address,undefined); sim_bug_parse returns 0 for an unknown name
 * or in a plain build. sim_bug_count is 0 in a plain build. */
uint32_t sim_bug_parse(const char *name);
const char *sim_bug_name(uint32_t bug);
uint32_t sim_bug_count(void);
/* Is `bug` one the simulator is meant to catch (the others are the
 * loader's and the batch SQL's: tests/adversary, on a real PostgreSQL)? */
bool sim_bug_simulated(uint32_t bug);

/* " --inject-bug X": what replays o besides seed and steps. */
void sim_flags_text(const sim_options *o, char *out, size_t n);

/* On SIGABRT (a core assert, a sanitizer report) print `prefix` and the seed
 * and step of the run in progress, so that any crash can be replayed. */
void sim_crash_report_install(const char *prefix);

#endif
