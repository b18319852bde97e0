/* test_sim.c — the simulation as a `make test` check (TAP lines for
 * tests/run.sh): seeds 1..SIM_TEST_SEEDS with the default fault mix, then
 * a self-test that each injected bug is caught. A failure names the seed to
 * replay with build/tests/sim/tally_sim. TALLY_SIM_SEEDS overrides the seed
 * count. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim.h"

#ifndef SIM_TEST_SEEDS
#define SIM_TEST_SEEDS 3000
#endif
#ifndef SIM_TEST_STEPS
#define SIM_TEST_STEPS 10000
#endif

int main(void) {
  sim_crash_report_install("not ok ");
  setvbuf(stdout, NULL, _IOLBF, 0);
  int failed = 0;
  const char *env = getenv("TALLY_SIM_SEEDS");
  uint64_t seeds = env && atoi(env) > 0 ? (uint64_t)atoi(env) : SIM_TEST_SEEDS;
  printf("1..%d\n", 2 + (int)SIM_BUG_COUNT - 1);
  sim_options o = {.steps = SIM_TEST_STEPS};
  sim_result r;
  uint64_t steps = 0, seed;
  for (seed = 1; seed <= seeds; seed++) {
    o.seed = seed;
    if (sim_run(&o, &r)) break;
    steps += r.steps;
  }
  if (seed <= seeds) {
    printf("not ok 1 sim seed %" PRIu64 " step %u: %s (replay: tally_sim --seed %" PRIu64 " --steps %u)\n",
           seed, r.fail_step, r.why, seed, o.steps);
    failed++;
  } else {
    printf("ok 1 sim seeds 1..%" PRIu64 " (%" PRIu64 " steps)\n", seeds, steps);
  }
  /* Every fault switch at once (each reached a core bug once: see
   * docs/SIMULATION.md); big batches is now a configuration that
   * tally_config_check refuses, so it stays off. */
  sim_options f = {.steps = SIM_TEST_STEPS,
                   .faults = SIM_FAULT_FAIL_AFTER_UNKNOWN | SIM_FAULT_HUGE_AMOUNTS | SIM_FAULT_OLD_REFUNDS |
                             SIM_FAULT_REFUND_FEES | SIM_FAULT_REPLAY_PARAMS | SIM_FAULT_REPLAY_FIRST};
  uint64_t fseeds = seeds / 4 + 1, fsteps = 0;
  for (seed = 1; seed <= fseeds; seed++) {
    f.seed = seed;
    if (sim_run(&f, &r)) break;
    fsteps += r.steps;
  }
  if (seed <= fseeds) {
    printf("not ok %d sim with all faults, seed %" PRIu64 " step %u: %s (replay: tally_sim --seed %" PRIu64
           " --faults all)\n", (int)SIM_BUG_COUNT + 1, seed, r.fail_step, r.why, seed);
    failed++;
  } else {
    printf("ok %d sim with all faults, seeds 1..%" PRIu64 " (%" PRIu64 " steps)\n", (int)SIM_BUG_COUNT + 1, fseeds,
           fsteps);
  }
  /* Self-test: a deliberately broken rule must be caught within 50 seeds. */
  for (uint32_t bug = 1; bug < SIM_BUG_COUNT; bug++) {
    sim_options b = {.steps = SIM_TEST_STEPS, .bug = bug, .quiet = true};
    uint64_t caught = 0;
    for (b.seed = 1; b.seed <= 50 && !caught; b.seed++)
      if (sim_run(&b, &r)) caught = b.seed;
    if (caught) {
      printf("ok %u sim catches injected bug %s (seed %" PRIu64 ": %s)\n", 1 + bug, sim_bug_name(bug), caught, r.why);
    } else {
      printf("not ok %u sim misses injected bug %s in seeds 1..50\n", 1 + bug, sim_bug_name(bug));
      failed++;
    }
  }
  return failed ? 1 : 0;
}
