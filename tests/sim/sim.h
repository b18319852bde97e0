/* sim.h — a deterministic simulation of the engine's state machine.
 *
 * Contract: sim_run drives core/src/state.c and core/src/decide.c (the layer
 * where every money rule lives) single-threaded, from one seed: random
 * buys, tips, refunds and grants with keys from a small pool, a simulated
 * clock (wall and monotonic, with jumps), group-commit batches, and a
 * simulated database that commits, fails, loses replies and reorders up to
 * two batches in flight. It mirrors engine.c's batch_done / batch_failed
 * state transitions without the I/O, keeps its own shadow ledger, and checks
 * RELIABILITY.md's I1-I6 and I9 after every step. Timed drops (items with a
 * window and a per-buyer limit) and events (ops counted in flight per
 * event) are part of the default mix, with their own checks (D1-D3). The same seed and step
 * count replay the same run exactly. No allocation happens outside sim_run;
 * nothing is global except the crash report (seed and step of the run in
 * progress, printed if core asserts or a sanitizer aborts). */
#ifndef TALLY_SIM_H
#define TALLY_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deliberate breaches, to show that the checks catch them (self-test). */
enum sim_bug {
  SIM_BUG_NONE = 0,
  SIM_BUG_DOUBLE_COMMIT = 1, /* a committed grant is applied twice */
  SIM_BUG_LOST_SALE = 2,     /* a committed sale is not counted as sold */
  SIM_BUG_SKIP_RELEASE = 3,  /* a failed batch leaves one hold behind */
  SIM_BUG_SKIP_PER_USER = 4, /* a released drop purchase keeps its per-buyer units */
  SIM_BUG_COUNT = 5,
};

/* Faults beyond the default mix; each reaches a known core bug (see
 * docs/SIMULATION.md), so they are off unless asked for. */
enum sim_fault {
  SIM_FAULT_FAIL_AFTER_UNKNOWN = 1u << 0, /* a resent batch whose first attempt
                                             committed now fails (F2 then F4), or
                                             the key lookup after a partial insert
                                             fails */
  SIM_FAULT_HUGE_AMOUNTS = 1u << 1,       /* grants near the 18-digit parse limit */
  SIM_FAULT_OLD_REFUNDS = 1u << 2,        /* refunds aimed at the oldest purchases,
                                             as memory is about to forget them */
  SIM_FAULT_REFUND_FEES = 1u << 3,        /* check: a full refund returns exactly the fee */
  SIM_FAULT_REPLAY_PARAMS = 1u << 4,      /* check: a replay's answer is for its own params */
  SIM_FAULT_REPLAY_FIRST = 1u << 5,       /* check: a replay of a committed request
                                             returns its receipt, not a refusal */
  SIM_FAULT_BIG_BATCHES = 1u << 6,        /* batch_max 4096 with keys_max and
                                             purchases_max at their minimum 1024 */
};

typedef struct sim_options {
  uint64_t seed;
  uint32_t steps;
  uint32_t bug;    /* enum sim_bug */
  uint32_t faults; /* enum sim_fault bits */
  bool quiet;      /* no failure report on stderr */
  bool trace;      /* one line per step on stderr */
} sim_options;

typedef struct sim_result {
  uint64_t steps, decided, committed, released, refused, replays, busy;
  uint64_t batches, lost_replies, failed_batches, duplicates;
  /* Drops and events: drops created, drop purchases decided, drop buys
   * refused (not live / closed / over the per-buyer limit), events started,
   * decided ops that joined an event. */
  uint64_t drops, drop_buys, drop_not_live, drop_closed, drop_limit, events, event_ops;
  bool failed;
  uint32_t fail_step;
  char why[320];
} sim_result;

/* Runs one seed; 0 when every check held, 1 on the first breach (r->why). */
int sim_run(const sim_options *o, sim_result *r);

/* Parses "double-commit", "lost-sale", "skip-release", "skip-per-user";
 * SIM_BUG_NONE if unknown. */
uint32_t sim_bug_parse(const char *name);
const char *sim_bug_name(uint32_t bug);
/* Parses a comma-separated list of fault names or "all"; false if unknown. */
bool sim_faults_parse(const char *list, uint32_t *out);

/* " --inject-bug X --faults a,b": what replays o besides seed and steps. */
void sim_flags_text(const sim_options *o, char *out, size_t n);

/* On SIGABRT (a core assert, a sanitizer report) print `prefix` and the seed
 * and step of the run in progress, so that any crash can be replayed. */
void sim_crash_report_install(const char *prefix);

#endif
