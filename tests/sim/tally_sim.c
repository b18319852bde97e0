/* tally_sim.c — command line of the deterministic simulation.
 *
 *   tally_sim --seed S [--steps N]          replay one run
 *   tally_sim --seeds A..B [--steps N]      run many; stop at the first breach
 *   --inject-bug NAME   plant a bug in the real code (core/src/base/test_fault.h;
 *                       a test build only: make sim BUILD=build/san SANITIZE=address,undefined)
 *   --trace         one line per command, answer and batch outcome on stderr
 *   --keep-going    report every failing seed, not only the first
 * Exit status 0 when every check held, 1 on a breach, 2 on bad usage. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

static int usage(void) {
  fprintf(stderr,
          "usage: tally_sim (--seed S | --seeds A..B) [--steps N] [--trace] [--keep-going]\n"
          "                 [--inject-bug NAME]\n");
  if (sim_bug_count() == 0) {
    fprintf(stderr, "  (this is a plain build: planted bugs need make sim BUILD=build/san SANITIZE=address,undefined)\n");
  } else {
    fprintf(stderr, "  planted bugs:");
    for (uint32_t b = 1; b < sim_bug_count(); b++)
      fprintf(stderr, " %s%s", sim_bug_name(b), sim_bug_simulated(b) ? "" : "(PostgreSQL only)");
    fprintf(stderr, "\n");
  }
  return 2;
}

static bool parse_u64(const char *s, uint64_t *out) {
  char *end;
  if (!s || !*s) return false;
  *out = strtoull(s, &end, 10);
  return *end == 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  sim_options o = {.steps = 10000};
  uint64_t first = 1, last = 0, v;
  bool have_seed = false, keep_going = false;
  char extra[512] = "";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--seed") == 0 && parse_u64(next, &first)) {
      last = first;
      have_seed = true;
      i++;
    } else if (strcmp(a, "--seeds") == 0 && next && strstr(next, "..")) {
      char lo[32];
      snprintf(lo, sizeof lo, "%.*s", (int)(strstr(next, "..") - next), next);
      if (!parse_u64(lo, &first) || !parse_u64(strstr(next, "..") + 2, &last) || last < first) return usage();
      have_seed = true;
      i++;
    } else if (strcmp(a, "--steps") == 0 && parse_u64(next, &v) && v > 0 && v < 100000000) {
      o.steps = (uint32_t)v;
      i++;
    } else if (strcmp(a, "--inject-bug") == 0 && next && sim_bug_parse(next)) {
      o.bug = sim_bug_parse(next);
      i++;
    } else if (strcmp(a, "--keep-going") == 0) {
      keep_going = true;
    } else if (strcmp(a, "--trace") == 0) {
      o.trace = true;
    } else {
      return usage();
    }
  }
  if (!have_seed) return usage();
  sim_crash_report_install("tally_sim: ");
  sim_flags_text(&o, extra, sizeof extra);
  sim_result total = {0}, r;
  uint64_t failures = 0;
  o.quiet = keep_going;
  double t0 = now_s();
  for (uint64_t seed = first; seed <= last; seed++) {
    o.seed = seed;
    if (sim_run(&o, &r)) {
      printf("seed %" PRIu64 " FAILED at step %u: %s\n", seed, r.fail_step, r.why);
      printf("replay: tally_sim --seed %" PRIu64 " --steps %u%s\n", seed, o.steps, extra);
      failures++;
      if (!keep_going) return 1;
      continue;
    }
    total.steps += r.steps;
    total.commands += r.commands;
    total.replays += r.replays;
    total.receipts += r.receipts;
    total.refused += r.refused;
    total.batches += r.batches;
    total.lost_replies += r.lost_replies;
    total.lost_sends += r.lost_sends;
    total.serialization += r.serialization;
    total.failed_batches += r.failed_batches;
    total.data_refused += r.data_refused;
    total.lookups += r.lookups;
    total.lookup_failures += r.lookup_failures;
    total.key_taken += r.key_taken;
    total.quizzes += r.quizzes;
    total.rewards_granted += r.rewards_granted;
    total.rewards_used += r.rewards_used;
    total.rewards_returned += r.rewards_returned;
    total.rewards_expired += r.rewards_expired;
    total.free_units += r.free_units;
    total.goals += r.goals;
    total.goal_levels += r.goal_levels;
    if (seed == UINT64_MAX) break;
  }
  if (failures)
    printf("seeds %" PRIu64 "..%" PRIu64 ": %" PRIu64 " failed; the others took %" PRIu64 " steps in %.1f s\n",
           first, last, failures, total.steps, now_s() - t0);
  else
    printf("seeds %" PRIu64 "..%" PRIu64 ": no breach; %" PRIu64 " steps in %.1f s\n", first, last,
           total.steps, now_s() - t0);
  printf("  commands %" PRIu64 " (delivered again %" PRIu64 "), receipts %" PRIu64 ", refusals %" PRIu64 "\n",
         total.commands, total.replays, total.receipts, total.refused);
  printf("  batch answers: committed %" PRIu64 ", committed with the reply lost %" PRIu64 ", lost before commit %" PRIu64
         ", serialization failures %" PRIu64 ", errors %" PRIu64 ", data refused %" PRIu64 ", key taken %" PRIu64
         "; key lookups %" PRIu64 " (failed %" PRIu64 ")\n",
         total.batches, total.lost_replies, total.lost_sends, total.serialization, total.failed_batches,
         total.data_refused, total.key_taken, total.lookups, total.lookup_failures);
  printf("  rewards: %" PRIu64 " quizzes asked; the ledger stored %" PRIu64 " grants, %" PRIu64 " uses (%" PRIu64
         " free units), %" PRIu64 " given back, %" PRIu64 " expired\n",
         total.quizzes, total.rewards_granted, total.rewards_used, total.free_units, total.rewards_returned,
         total.rewards_expired);
  printf("  goals: %" PRIu64 " started; the ledger stored %" PRIu64 " levels reached\n", total.goals, total.goal_levels);
  return failures ? 1 : 0;
}
