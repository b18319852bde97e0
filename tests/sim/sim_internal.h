/* sim_internal.h — what the simulator's files share (see sim.h for the
 * contract and docs/SIMULATION.md): the world, the model's records, and
 * the functions of each part:
 *   sim_world.c   crash report, PRNG, failures, records, building a world
 *   sim_engine.c  engine-side transitions (as engine.c) and the simulated
 *                 database with its batches
 *   sim_decide.c  requests and decisions, checked against the model
 *   sim_live.c    the clock, catalog changes, drops and events
 *   sim_check.c   the invariants checked after every step
 *   sim.c         the run and the names of bugs and faults
 * Test code only: none of it is linked into libtally. */
#ifndef TALLY_SIM_INTERNAL_H
#define TALLY_SIM_INTERNAL_H

#include "sim.h"
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "decide.h"
#include "live.h"
#include "state.h"
#include "text.h"

/* ---- limits of the simulated world ------------------------------------------- */
enum {
  SIM_ACCOUNTS_MAX = 64,
  SIM_ITEMS_MAX = 16,
  SIM_SLOTS_MAX = 3,           /* batches: writers (<= 2) + the open one */
  SIM_RETRY_MAX = 5,           /* engine_internal.h TALLY__RETRY_MAX */
  SIM_ID_BASE = 1000,          /* state.c: the first id taken */
  SIM_KEY_POOL_MAX = 512,
  SIM_BATCH_MAX = 256,
  SIM_RECENT = 64,             /* requests kept for duplicate delivery */
  SIM_EVENTS_MAX = 16,         /* events per run (st->events holds TALLY__EVENTS_MAX) */
  SIM_CHANNELS = 3,            /* "#c1".."#c3"; requests said in "" have no channel */
};

#define SIM_WALL_START INT64_C(1700000000000) /* 2023-11-14, UTC */

enum { REC_FREE = 0, REC_DECIDED = 1, REC_APPLIED = 2, REC_RELEASED = 3 };
enum { SB_FREE = 0, SB_OPEN = 1, SB_WAIT = 2, SB_FLIGHT = 3 };

/* The model's record of one decided transfer, indexed by transfer id. */
typedef struct rec {
  uint8_t kind, status, leg_count;
  bool in_db;
  uint32_t account, other, item, qty;
  int64_t amount, fee, req_amount;
  uint64_t ref;
  uint64_t fp; /* request fingerprint, as the ledger stores it (request_fp) */
  uint64_t event_id; /* the event the model put it in, 0 if none */
  uint8_t ev;        /* that event's index in st->events + 1, 0 if none */
  tally__leg legs[TALLY__LEGS_MAX];
  /* Purchases only: refunds applied, their fee parts, refunds in flight,
   * refunds stored in the database. */
  int64_t refunded, refund_fees, refund_inflight, refund_fee_inflight, db_refunded;
  /* Co-op purchases: each payee (creators, then the fee) with what it was
   * credited and what refunds took back (committed, in flight). */
  uint8_t pay_n;
  uint32_t pay_acc[TALLY__PAYEES_MAX];
  int64_t pay_credit[TALLY__PAYEES_MAX], pay_back[TALLY__PAYEES_MAX], pay_inflight[TALLY__PAYEES_MAX];
  char key[TALLY__KEY_BYTES_MAX + 1];
} rec;

/* Idempotency key -> transfer id, open addressing; 0 is empty. */
typedef struct kmap {
  uint64_t *ids;
  size_t mask;
} kmap;

typedef struct req {
  uint8_t kind;
  uint32_t account, other, item, qty;
  int64_t amount; /* requested: refunds 0 = everything */
  uint64_t ref;
  uint8_t chan; /* said in channel "#c<chan>", 0: no channel */
} req;

/* A request as a host delivered it, kept to deliver it again (F7). */
typedef struct sent {
  req q;
  char key[TALLY__KEY_BYTES_MAX + 1];
} sent;

typedef struct sbatch {
  int phase;
  uint64_t id, due_ms;
  uint32_t op_count, retries;
  bool db_done; /* an earlier attempt committed, its reply was lost */
  tally__op *ops;
} sbatch;

typedef struct world {
  sim_options o;
  sim_result *r;
  uint64_t g[4]; /* xoshiro256** */
  tally_config cfg;
  tally__state st;
  bool st_live;
  uint32_t users[SIM_ACCOUNTS_MAX], user_count, creators[8], creator_count;
  int64_t price[SIM_ITEMS_MAX];
  sbatch b[SIM_SLOTS_MAX];
  uint32_t slots, writers, inflight;
  sbatch *open;
  int64_t wall;
  uint64_t mono, req_id;
  rec *recs;
  uint64_t rec_cap;
  kmap db_keys, applied_keys;
  int64_t bal[SIM_ACCOUNTS_MAX];   /* model: committed legs per account */
  int32_t sold[SIM_ITEMS_MAX];     /* model: committed units per item */
  int32_t db_sold[SIM_ITEMS_MAX];  /* database: stored units per item */
  uint64_t db_count, applied_count, decided_open;
  uint64_t last_id, last_batch_id;
  uint64_t *purchases;
  uint32_t purchase_count;
  uint32_t key_pool, fresh_pct;
  uint64_t fresh;
  uint32_t step;
  char key[TALLY__KEY_BYTES_MAX + 1];
  bool *inserted; /* batch_max: which ops the last statement inserted */
  sent recent[SIM_RECENT];
  uint32_t recent_count;
  /* Drops and events (the model's side). */
  int32_t pu_sold[SIM_ACCOUNTS_MAX][SIM_ITEMS_MAX]; /* committed units per buyer and item */
  int64_t pu_sold_limited;                          /* their sum over drops with a limit */
  int32_t pu_held[SIM_ACCOUNTS_MAX][SIM_ITEMS_MAX]; /* units in flight per buyer and item */
  uint32_t drops[SIM_ITEMS_MAX], drop_count;        /* item indices of drops */
  uint64_t chan_event[SIM_CHANNELS + 1];            /* running event per channel, 0 none */
  uint64_t item_event[SIM_ITEMS_MAX];               /* a drop's event, 0 none */
  uint64_t ev_id[SIM_EVENTS_MAX];                   /* events started, by index */
  uint32_t ev_count;
  bool ev_stopped[SIM_EVENTS_MAX];
} world;

extern char crash_line[512];
extern const char *const bug_names[SIM_BUG_COUNT];
extern const char *const chan_names[SIM_CHANNELS + 1];
extern const char *const drop_state_names[];
extern const char *const fault_names[];
extern const char *crash_prefix;
extern volatile int crash_active, crash_to_stdout;
extern volatile uint32_t crash_step;

void crash_write(void);
void on_abort(int sig);
uint64_t splitmix64(uint64_t *x);
uint64_t rotl(uint64_t x, int k);
uint64_t rnd(world *w);
uint64_t below(world *w, uint64_t n);
int64_t between(world *w, int64_t lo, int64_t hi);
bool chance(world *w, uint32_t percent);
__attribute__((format(printf, 2, 3))) void fail(world *w, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void trace(world *w, const char *fmt, ...);
rec *rec_of(world *w, uint64_t id);
uint64_t key_hash(const char *s);
uint64_t kmap_get(world *w, const kmap *m, const char *key);
void kmap_put(world *w, kmap *m, uint64_t id);
int kmap_init(kmap *m, uint64_t entries);
uint32_t pick(world *w, const uint32_t *v, size_t n);
void world_config(world *w);
int world_accounts(world *w);
int64_t random_price(world *w);
int world_items(world *w);
int world_init(world *w, const sim_options *o, sim_result *r);
void world_free(world *w);
const char *kind_name(uint8_t kind);
void op_applied(world *w, tally__op *op);
void op_released(world *w, tally__op *op);
void batch_done(world *w, sbatch *b, const bool *inserted, uint32_t n_inserted);
void batch_failed(world *w, sbatch *b);
uint32_t db_commit(world *w, sbatch *b, bool *inserted);
sbatch *flight_due(world *w);
void db_answer(world *w, sbatch *b, bool clean);
void flush(world *w);
sbatch *open_batch(world *w);
const char *random_key(world *w);
uint32_t random_user(world *w);
int64_t random_amount(world *w);
void random_req(world *w, req *q);
int expected_legs(world *w, const req *q, int64_t *amount, int64_t *fee, tally__leg *legs);
int coop_refund_legs(world *w, const req *q, const tally__op *op, rec *p, int64_t *amount, int64_t *fee, tally__leg *legs);
void coop_refund_settle(world *w, const rec *t, int how);
void decided(world *w, const req *q, const tally__op *op, const char *key);
bool same_params(const rec *t, const req *q);
void replayed(world *w, const req *q, const char *key, uint64_t existing);
uint64_t replay_expected(world *w, const req *q, const char *key);
uint64_t model_event(world *w, const req *q, uint8_t *ev);
void drop_checks(world *w, const req *q, int rc, uint8_t state, uint32_t limit, int64_t have);
void step_decide(world *w);
void step_clock(world *w);
void step_catalog(world *w);
void drop_open(world *w, uint32_t k);
void drop_close(world *w, uint32_t k);
void drop_create(world *w);
void event_start(world *w);
void event_stop(world *w, uint32_t i);
void live_tick(world *w);
void step_live(world *w);
void check_drops(world *w, int32_t (*infl)[SIM_ITEMS_MAX], int64_t infl_limited, const uint32_t *ev_infl);
void check(world *w);
void check_model_units(world *w);
void check_purchases(world *w);
void step(world *w);
void drain(world *w);

#endif
