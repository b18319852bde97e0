/* bench_api.c — tally/bench.h: the decide_per_s loop of bench_engine.c,
 * moved here verbatim so the bench builds without -Icore/src. Kept in
 * core (not a copy in bench/) so it measures the real decide path. */
#include "tally/bench.h"

#include <stdio.h>
#include <time.h>

#include "decide.h"

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum { BENCH_PRICE_MINOR = 500, BENCH_KEY_BYTES = 32 };

int tally_bench_decide(uint64_t rounds, double *elapsed_s) {
  tally_config cfg;
  tally_config_init(&cfg); /* production defaults for every table size */
  tally__state st;
  int rc = tally__state_init(&st, &cfg);
  if (rc) return rc;
  uint32_t fees, ext, creator, buyer, item;
  tally__account_get(&st, "sys:fees", TALLY__ACCOUNT_FEES, &fees);
  tally__account_get(&st, "sys:external", TALLY__ACCOUNT_EXTERNAL, &ext);
  tally__account_get(&st, "user:alice", TALLY__ACCOUNT_USER, &creator);
  tally__account_get(&st, "user:bob", TALLY__ACCOUNT_USER, &buyer);
  st.fees = fees, st.external = ext;
  st.accounts[buyer].balance = INT64_MAX / 4;
  tally__item_add(&st, "tee", &item);
  st.items[item].creator = creator;
  st.items[item].price = BENCH_PRICE_MINOR;
  static tally__op op; /* large: off the stack, as in the engine */
  char key[BENCH_KEY_BYTES];
  uint32_t origin; /* interned once, as the dispatcher does for each command */
  tally__origin_take(&st, 0, "o", &origin);
  double t0 = mono_s();
  for (uint64_t i = 0; i < rounds && rc == TALLY_OK; i++) {
    snprintf(key, sizeof key, "k%llu", (unsigned long long)i);
    tally__decide_ctx ctx = {.wall_ms = 1, .mono_ms = 1, .origin = "o", .origin_name = origin, .channel = "", .key = key};
    rc = tally__decide_buy(&st, &ctx, buyer, item, 1, &op);
    if (rc) break;
    tally__op_commit(&st, &op);
    tally__names_unref(&st.names, op.origin); /* settled (tally__engine_pending_done) */
    st.keys[op.key_slot].state = TALLY__KEY_DONE;
  }
  if (elapsed_s) *elapsed_s = mono_s() - t0;
  tally__state_free(&st);
  return rc;
}
