/* test_fault.h — bugs planted on purpose in the real code, to show that the
 * simulator (tests/sim) and the real-PostgreSQL adversary test
 * (tests/adversary) catch them.
 *
 * Only a test build has them: the Makefile defines TALLY_TEST_FAULTS when
 * it builds with sanitizers (build/san, what `make test` runs). In the
 * plain build (`make`: the library, the CLI and the InspIRCd module)
 * TALLY__FAULT(x) is the constant false, no symbol of this file exists
 * (tests/docs/no_test_faults.sh checks with nm), and nothing changes.
 *
 * In a test build one fault at a time is active: the one named by the
 * environment variable TALLY_TEST_FAULT (read once), or the one
 * tally__test_fault_set chose (the simulator, per run). */
#ifndef TALLY_TEST_FAULT_H
#define TALLY_TEST_FAULT_H

#include <stdint.h>

enum tally__fault {
  TALLY__FAULT_NONE = 0,
  TALLY__FAULT_COMMIT_TWICE,     /* kernel: a committed grant is applied to memory twice */
  TALLY__FAULT_RELEASE_STOCK,    /* model: a released purchase keeps its units held */
  TALLY__FAULT_RECEIPT_UNKNOWN,  /* kernel: a batch whose answer was lost is taken as committed */
  TALLY__FAULT_REFUND_OVER,      /* model: a refund forgets the refunds still in flight */
  TALLY__FAULT_FAILED_KEEPS_KEY, /* kernel: a failed op's key is not forgotten, so a retry is
                                    answered "already done" with no receipt in the ledger */
  TALLY__FAULT_LOADER_REFUND,    /* loader: a purchase's refunds are counted twice at start-up */
  TALLY__FAULT_LOADER_BALANCE,   /* loader: a wallet's credits are counted twice at start-up */
  TALLY__FAULT_BATCH_FEE,        /* batch SQL: a purchase's fee leg is sent one unit short */
  TALLY__FAULT_REWARD_TWICE,     /* rewards: a purchase using a reward leaves it usable */
  TALLY__FAULT_GOAL_SKIPS_ONE,   /* goals: a level's payout never pays its last present account */
  TALLY__FAULT_COUNT
};

#ifdef TALLY_TEST_FAULTS
/* True when fault `f` is the active one. */
int tally__test_fault(uint32_t f);
/* Makes `f` the active fault (TALLY__FAULT_NONE: none). */
void tally__test_fault_set(uint32_t f);
/* The name of fault f ("commit-twice", ...), NULL if none; and back (0 if unknown). */
const char *tally__test_fault_name(uint32_t f);
uint32_t tally__test_fault_parse(const char *name);
#define TALLY__FAULT(f) (tally__test_fault(TALLY__FAULT_##f))
#else
#define TALLY__FAULT(f) 0
#endif

#endif
