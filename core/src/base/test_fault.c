/* test_fault.c — the planted bugs' switch (test_fault.h); compiled empty
 * unless TALLY_TEST_FAULTS (test builds only). */
#include "test_fault.h"

#ifdef TALLY_TEST_FAULTS
#include <stdlib.h>
#include <string.h>

static const char *const names[TALLY__FAULT_COUNT] = {
    NULL, "commit-twice", "release-stock", "receipt-unknown", "refund-over", "failed-keeps-key",
    "loader-refund", "loader-balance", "batch-fee", "reward-twice", "goal-skips-one"};

static int active = -1; /* -1: not read from the environment yet */

const char *tally__test_fault_name(uint32_t f) { return f < TALLY__FAULT_COUNT ? names[f] : NULL; }

uint32_t tally__test_fault_parse(const char *name) {
  for (uint32_t f = 1; name && f < TALLY__FAULT_COUNT; f++)
    if (strcmp(name, names[f]) == 0) return f;
  return TALLY__FAULT_NONE;
}

void tally__test_fault_set(uint32_t f) { active = (int)f; }

int tally__test_fault(uint32_t f) {
  if (active < 0) active = (int)tally__test_fault_parse(getenv("TALLY_TEST_FAULT"));
  return (uint32_t)active == f;
}
#else
typedef int tally__test_fault_empty; /* ISO C: a translation unit is not empty */
#endif
