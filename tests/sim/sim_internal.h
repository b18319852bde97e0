/* sim_internal.h — what the simulator's files share (see sim.h for the
 * contract and docs/SIMULATION.md):
 *   sim_world.c   crash report, PRNG, failures, maps, building a world
 *   sim_env.c     the engine's environment: clocks, writers, and the
 *                 simulated ledger that answers batches
 *   sim_drive.c   commands through the real dispatcher, and their answers
 *   sim_rewards.c earned rewards in the simulated ledger, their checks
 *   sim_goals.c   goal levels in the simulated ledger, their payout
 *   sim_check.c   the invariants checked after every step
 *   sim.c         the run, the steps and the names of the planted bugs
 * Test code only: none of it is linked into libtally. Nothing here copies
 * the engine: its decisions, batches and settlement are the real ones. */
#ifndef TALLY_SIM_INTERNAL_H
#define TALLY_SIM_INTERNAL_H

#include "sim.h"
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_internal.h"
#include "hooks.h"
#include "runtime.h"
#include "test_fault.h"

/* ---- limits of the simulated world ------------------------------------------- */
enum {
  SIM_BUYERS_MAX = 10,
  SIM_CREATORS_MAX = 3,
  SIM_ITEMS_MAX = 16,   /* items and drops */
  SIM_WRITERS_MAX = 2,
  SIM_CHANNELS = 3,     /* "#c1".."#c3" */
  SIM_KEY_POOL_MAX = 256,
  SIM_RECENT = 32,      /* commands kept for delivering again */
  SIM_RECEIPTS = 512,   /* purchase receipts kept per run, for refunds */
  SIM_TEXT = 200,
  SIM_ENGINE_ITEMS = 32, /* the engine's items_max */
  SIM_GRANTS_MAX = 4096, /* reward grants the simulated ledger keeps */
  SIM_LEVELS_MAX = 1024, /* goal levels the simulated ledger keeps */
  SIM_ACCOUNTS_MAX = 64, /* the engine's accounts_max: a bit each in a level's sets */
};

#define SIM_WALL_START INT64_C(1700000000000) /* 2023-11-14, UTC */

/* ---- the simulated ledger ------------------------------------------------------ */
/* One stored transfer. */
typedef struct ltx {
  uint64_t id, batch, ref, req_id, fp;
  uint8_t kind;
  uint32_t item, qty;
  int64_t amount, refunded;
  int64_t fee, fee_back; /* purchases: the fee taken, and what its refunds gave back of it */
  char key[TALLY__KEY_BYTES_MAX + 1];
} ltx;

/* One stored reward grant (sql/015's reward_grants, its use and expiry). */
typedef struct lgrant {
  uint64_t id;
  uint64_t used_by; /* the purchase that used it, 0: unused (or given back) */
  uint32_t account; /* the engine's account index */
  bool expired;     /* its expiry fact is stored */
} lgrant;

/* One stored goal level (sql/017's goal_levels and goal_present) and the
 * grants that paid it, by engine account index. */
typedef struct lgoal {
  uint64_t id;
  bool stored;              /* its gl fact is stored (its gp facts may come first) */
  uint32_t present_n;       /* how many its gl fact says were present */
  uint64_t present, paid;   /* bit per account index */
} lgoal;

/* Open addressing, 64-bit keys -> index + 1 (0: empty). */
typedef struct umap {
  uint64_t *keys;
  uint32_t *vals;
  size_t mask;
} umap;

/* A writer: the batch it holds (statement or key lookup in flight). */
typedef struct swriter {
  tally__batch *b;
  bool lookup;
  uint64_t due_ms;
} swriter;

/* A command as a host delivered it, kept to deliver it again. */
typedef struct sent {
  char account[16], channel[8], msg_id[24], text[SIM_TEXT];
  uint32_t roles;
} sent;

/* What the simulator remembers of each command it sent, by req_id. */
typedef struct sreq {
  bool answered;    /* a final reply came (not only "pending") */
  uint64_t ident;   /* hash of (account, msg_id, text): the same request */
  int16_t user;     /* buyer index, -1 none */
  uint8_t kind;     /* 'B' buy, 'C' confirm, else other */
} sreq;

typedef struct world {
  sim_options o;
  sim_result *r;
  uint64_t g[4]; /* xoshiro256** */
  tally_config cfg;
  tally_engine *e;
  char key_path[64];
  /* time */
  uint64_t mono;
  int64_t wall;
  /* the environment's writers */
  swriter wr[SIM_WRITERS_MAX];
  uint32_t writers;
  /* the simulated ledger */
  ltx *tx;
  uint32_t tx_count, tx_cap;
  umap tx_by_id, tx_by_key, batches_stored;
  int64_t *db_bal;       /* by account index */
  int32_t db_sold[SIM_ENGINE_ITEMS];  /* by the engine's item index */
  uint32_t *tx_of_req;   /* by req_id: stored transfer index + 1 */
  lgrant *grants;        /* reward grants stored */
  uint32_t grant_count, grant_cap;
  umap grant_by_id;
  lgoal *levels;         /* goal levels stored */
  uint32_t level_count;
  /* the world's people and things */
  uint32_t buyers, creators;
  char item_sku[SIM_ITEMS_MAX][16];
  int8_t item_creator[SIM_ITEMS_MAX];
  uint32_t items, drops;
  bool event_on[SIM_CHANNELS + 1];
  char consent_code[SIM_BUYERS_MAX][8];
  uint64_t receipts[SIM_RECEIPTS];
  int8_t receipt_user[SIM_RECEIPTS];
  uint32_t receipt_count;
  /* commands */
  sreq *reqs;
  uint64_t req_next, req_cap;
  umap first_receipt; /* request identity -> receipt it was first answered with */
  sent recent[SIM_RECENT];
  uint32_t recent_count;
  uint32_t key_pool, fresh_pct;
  uint64_t grant_requests; /* the highest CLI grant request id made up so far */
  uint64_t fresh;
  uint32_t step;
  bool setup; /* setting up: every batch commits */
} world;

extern char crash_line[512];
extern const char *const chan_names[SIM_CHANNELS + 1];
extern volatile int crash_active;
extern volatile uint32_t crash_step;

/* sim_world.c */
uint64_t rnd(world *w);
uint64_t below(world *w, uint64_t n);
int64_t between(world *w, int64_t lo, int64_t hi);
bool chance(world *w, uint32_t percent);
__attribute__((format(printf, 2, 3))) void fail(world *w, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void trace(world *w, const char *fmt, ...);
uint64_t hash_str(const char *s);
int umap_init(umap *m, size_t entries);
void umap_free(umap *m);
uint32_t umap_get(const umap *m, uint64_t key);
void umap_put(umap *m, uint64_t key, uint32_t val);
int world_init(world *w, const sim_options *o, sim_result *r);
void world_free(world *w);

/* sim_env.c */
extern const tally__env sim_env;
void env_answer(world *w, swriter *s, bool clean);
swriter *env_due(world *w);
bool env_busy(const world *w);
ltx *ledger_tx(world *w, uint64_t id);

/* sim_drive.c */
uint64_t say(world *w, const char *account, const char *channel, const char *msg_id, const char *text,
             uint32_t roles);
void collect(world *w);
void step_command(world *w);
void step_catalog(world *w);
void step_live(world *w);
void step_quiz(world *w);

/* sim_rewards.c: earned rewards in the simulated ledger and their checks. */
lgrant *ledger_grant(world *w, uint64_t id);
void ledger_reward_fact(world *w, const tally__op *op);
void ledger_reward_transfer(world *w, const tally__op *op);
void check_rewards(world *w);

/* sim_goals.c: goal levels in the simulated ledger and their payout. */
void ledger_goal_fact(world *w, const tally__op *op);
void ledger_goal_grant(world *w, uint32_t account, uint64_t source);
void check_goals_paid(world *w);
bool goals_paying(const world *w);

/* sim_check.c */
void check(world *w);
void check_quiet(world *w);
bool quiet(const world *w);

#endif
