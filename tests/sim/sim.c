/* sim.c — the deterministic simulation of state.c + decide.c (see sim.h).
 *
 * One world per seed: a tally__state with small limits, a few creators and
 * buyers, items with limited and unlimited stock. Each step is drawn from
 * one PRNG: a decision (buy, tip, refund, grant; keys from a small pool so
 * that replays and key reuse with other parameters happen), a clock tick
 * (with jumps), a catalog change (as cmd_admin.c does it), a flush (as
 * tally__engine_flush: seal the open batch or resend a waiting one when a
 * "writer" is free), or an answer from the simulated database for one of the
 * batches in flight (commit, lost reply, rollback, serialization failure,
 * error), in any order. Engine-side outcomes mirror engine.c exactly:
 * tally__engine_batch_done (inserted ids, then a key lookup for the rest)
 * and tally__engine_batch_failed.
 *
 * Two ledgers are kept besides the engine's: the database's (which
 * transfers and keys are stored) and the model's (what the engine applied,
 * computed from the request parameters, not from the op). After every step
 * the engine's balances, holds, stock and refund counters must equal what
 * the model derives from them; that is where a broken rule shows up. */
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

static const char *const chan_names[SIM_CHANNELS + 1] = {"", "#c1", "#c2", "#c3"};

/* ---- crash report ------------------------------------------------------------- */
static volatile uint32_t crash_step;
static volatile int crash_active, crash_to_stdout;
static const char *crash_prefix = "";

/* Formatted before each run, outside the signal handler, which only
 * writes it. */
static char crash_line[512];

static void crash_write(void) {
  if (!crash_active) return;
  crash_active = 0;
  char buf[600];
  size_t n = 0;
  for (const char *s = crash_prefix; *s && n < 64; s++) buf[n++] = *s;
  char step[16];
  size_t k = 0;
  uint32_t v = crash_step;
  do step[k++] = (char)('0' + v % 10); while ((v /= 10) != 0);
  const char *head = "sim crashed at step ";
  for (const char *s = head; *s; s++) buf[n++] = *s;
  while (k) buf[n++] = step[--k];
  for (const char *s = crash_line; *s && n < sizeof buf - 2; s++) buf[n++] = *s;
  buf[n++] = '\n';
  ssize_t wr = write(2, buf, n);
  if (crash_to_stdout) wr = write(1, buf, n);
  (void)wr;
}

static void on_abort(int sig) {
  crash_write();
  signal(sig, SIG_DFL);
  raise(sig);
}

void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

void sim_crash_report_install(const char *prefix) {
  crash_prefix = prefix ? prefix : "";
  crash_to_stdout = !isatty(1); /* TAP readers look at stdout */
  signal(SIGABRT, on_abort);
  signal(SIGSEGV, on_abort);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(crash_write);
}

static void coop_refund_settle(world *w, const rec *t, int how);

/* ---- PRNG: splitmix64 seeds xoshiro256** ------------------------------------------ */
static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rnd(world *w) {
  uint64_t *s = w->g;
  uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

/* Uniform in [0, n), n > 0 (multiply-high; the bias is irrelevant here). */
static uint64_t below(world *w, uint64_t n) {
  return (uint64_t)(((unsigned __int128)rnd(w) * n) >> 64);
}
static int64_t between(world *w, int64_t lo, int64_t hi) {
  return lo + (int64_t)below(w, (uint64_t)(hi - lo) + 1);
}
static bool chance(world *w, uint32_t percent) { return below(w, 100) < percent; }

/* ---- failures --------------------------------------------------------------------- */
__attribute__((format(printf, 2, 3))) static void fail(world *w, const char *fmt, ...) {
  if (w->r->failed) return;
  w->r->failed = true;
  w->r->fail_step = w->step;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->r->why, sizeof w->r->why, fmt, ap);
  va_end(ap);
  if (!w->o.quiet)
    fprintf(stderr, "tally_sim: seed %llu step %u: %s\n", (unsigned long long)w->o.seed, w->step, w->r->why);
}

__attribute__((format(printf, 2, 3))) static void trace(world *w, const char *fmt, ...) {
  if (!w->o.trace) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[%u] ", w->step);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ---- records and key maps ------------------------------------------------------------ */
static rec *rec_of(world *w, uint64_t id) {
  if (id < SIM_ID_BASE || id - SIM_ID_BASE >= w->rec_cap) return NULL;
  return &w->recs[id - SIM_ID_BASE];
}

static uint64_t key_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

static uint64_t kmap_get(world *w, const kmap *m, const char *key) {
  for (size_t i = key_hash(key) & m->mask;; i = (i + 1) & m->mask) {
    if (m->ids[i] == 0) return 0;
    if (strcmp(rec_of(w, m->ids[i])->key, key) == 0) return m->ids[i];
  }
}

static void kmap_put(world *w, kmap *m, uint64_t id) {
  const char *key = rec_of(w, id)->key;
  size_t i = key_hash(key) & m->mask;
  while (m->ids[i] != 0) i = (i + 1) & m->mask;
  m->ids[i] = id;
}

static int kmap_init(kmap *m, uint64_t entries) {
  size_t cap = 16;
  while (cap < 2 * entries) cap *= 2;
  m->ids = calloc(cap, sizeof *m->ids);
  m->mask = cap - 1;
  return m->ids ? 0 : -1;
}

/* ---- the world --------------------------------------------------------------------------- */
static uint32_t pick(world *w, const uint32_t *v, size_t n) { return v[below(w, n)]; }

static void world_config(world *w) {
  static const uint32_t keys[] = {1024, 4096}, purchases[] = {1024, 4096};
  static const uint32_t batch[] = {1, 2, 4, 16, 64, SIM_BATCH_MAX};
  static const uint32_t fees[] = {0, 1, 250, 333, 5000};
  tally_config *c = &w->cfg;
  tally_config_init(c);
  c->accounts_max = SIM_ACCOUNTS_MAX;
  c->items_max = SIM_ITEMS_MAX;
  c->keys_max = pick(w, keys, 2);
  c->purchases_max = pick(w, purchases, 2);
  c->batch_max = pick(w, batch, 6);
  c->writers = (uint32_t)between(w, 1, 2);
  c->fee_bps = chance(w, 70) ? pick(w, fees, 5) : (uint32_t)between(w, 0, 5000);
  c->daily_cap_minor = chance(w, 70) ? 0 : between(w, 1, 50000);
  c->refund_window_s = chance(w, 80) ? 86400 : (uint32_t)between(w, 0, 600);
  if (w->o.faults & SIM_FAULT_BIG_BATCHES) { /* valid, yet more in flight than keys kept */
    c->batch_max = 4096;
    c->keys_max = c->purchases_max = 1024;
  }
  w->writers = c->writers;
  w->slots = c->writers + 1;
}

static int world_accounts(world *w) {
  tally__state *st = &w->st;
  if (tally__account_get(st, "sys:fees", TALLY__ACCOUNT_FEES, &st->fees) ||
      tally__account_get(st, "sys:external", TALLY__ACCOUNT_EXTERNAL, &st->external))
    return -1;
  w->creator_count = (uint32_t)between(w, 1, 3);
  uint32_t buyers = (uint32_t)between(w, 2, 12);
  char name[32];
  for (uint32_t i = 0; i < w->creator_count + buyers; i++) {
    bool creator = i < w->creator_count;
    snprintf(name, sizeof name, creator ? "user:c%u" : "user:b%u", i);
    uint32_t a;
    if (tally__account_get(st, name, TALLY__ACCOUNT_USER, &a)) return -1;
    st->accounts[a].is_creator = creator;
    if (creator) w->creators[i] = a;
    w->users[w->user_count++] = a;
  }
  return 0;
}

static int64_t random_price(world *w) {
  uint64_t r = below(w, 100);
  if (r < 50) return between(w, 1, 1000);
  if (r < 80) return between(w, 1, 100);
  if (r < 95) return between(w, 1000, 1000000);
  return between(w, 1, 999999999999999999LL); /* the parse limit: 18 digits */
}

static int world_items(world *w) {
  tally__state *st = &w->st;
  uint32_t n = (uint32_t)between(w, 1, 8);
  char sku[16];
  for (uint32_t i = 0; i < n; i++) {
    snprintf(sku, sizeof sku, "sku%u", i);
    uint32_t k;
    if (tally__item_add(st, sku, &k)) return -1;
    tally__item *it = &st->items[k];
    it->creator = w->creators[below(w, w->creator_count)];
    it->price = w->price[k] = random_price(w);
    it->stock = chance(w, 35) ? -1 : (int32_t)between(w, 0, 60);
    it->refund_window_s = w->cfg.refund_window_s;
    snprintf(it->title, sizeof it->title, "Item %u", i);
    if (w->creator_count >= 2 && chance(w, 40)) { /* a co-op item: fixed from the start */
      it->split.count = (uint8_t)w->creator_count;
      uint32_t left = TALLY__BPS_WHOLE;
      for (uint32_t c = 0; c < w->creator_count; c++) {
        uint32_t bps = c + 1 == w->creator_count ? left : (uint32_t)between(w, 1, left - (w->creator_count - 1 - c));
        it->split.account[c] = w->creators[c];
        it->split.bps[c] = (uint16_t)bps;
        left -= bps;
      }
    }
  }
  return 0;
}

static void event_start(world *w);
static void drop_create(world *w);

static int world_init(world *w, const sim_options *o, sim_result *r) {
  memset(w, 0, sizeof *w);
  w->o = *o;
  w->r = r;
  uint64_t x = o->seed;
  for (int i = 0; i < 4; i++) w->g[i] = splitmix64(&x);
  world_config(w);
  if (tally__state_init(&w->st, &w->cfg)) return -1;
  w->st_live = true;
  /* Ids: accounts and items at start, then at most one per step (a
   * transfer or a batch), plus the batches of the final drain. */
  w->rec_cap = 256 + (uint64_t)o->steps + 16;
  w->recs = calloc(w->rec_cap, sizeof *w->recs);
  w->purchases = calloc((size_t)o->steps + 1, sizeof *w->purchases);
  if (!w->recs || !w->purchases || kmap_init(&w->db_keys, w->rec_cap) ||
      kmap_init(&w->applied_keys, w->rec_cap))
    return -1;
  for (uint32_t i = 0; i < w->slots; i++) {
    w->b[i].ops = calloc(w->cfg.batch_max, sizeof *w->b[i].ops);
    if (!w->b[i].ops) return -1;
  }
  if (!(w->inserted = calloc(w->cfg.batch_max, sizeof *w->inserted))) return -1;
  if (world_accounts(w) || world_items(w)) return -1;
  w->wall = SIM_WALL_START + between(w, 0, 86400000);
  w->mono = 1000000;
  w->key_pool = (uint32_t)between(w, 4, SIM_KEY_POOL_MAX);
  w->fresh_pct = (uint32_t)between(w, 20, 90);
  if (chance(w, 50)) event_start(w);
  for (int64_t n = between(w, 0, 2); n > 0; n--) drop_create(w);
  w->last_id = w->st.next_id - 1;
  return 0;
}

static void world_free(world *w) {
  if (w->st_live) tally__state_free(&w->st);
  for (uint32_t i = 0; i < SIM_SLOTS_MAX; i++) free(w->b[i].ops);
  free(w->recs);
  free(w->purchases);
  free(w->inserted);
  free(w->db_keys.ids);
  free(w->applied_keys.ids);
}

/* ---- engine-side transitions (mirror engine.c) ----------------------------------------------- */
static const char *kind_name(uint8_t kind) {
  switch (kind) {
  case TALLY__TRANSFER_PURCHASE: return "buy";
  case TALLY__TRANSFER_TIP: return "tip";
  case TALLY__TRANSFER_REFUND: return "refund";
  default: return "grant";
  }
}

/* The engine applies op: tally__op_commit, key DONE (engine.c op_committed). */
static void op_applied(world *w, tally__op *op) {
  rec *t = rec_of(w, op->transfer_id);
  if (!t || t->status != REC_DECIDED) {
    fail(w, "I5: transfer %llu applied but not in flight (status %d)",
         (unsigned long long)op->transfer_id, t ? t->status : -1);
    return;
  }
  if (!t->in_db) fail(w, "I7: transfer %llu applied but not in the ledger", (unsigned long long)op->transfer_id);
  uint64_t other = kmap_get(w, &w->applied_keys, t->key);
  if (other) fail(w, "I3: key '%s' applied twice: transfers %llu and %llu", t->key,
                  (unsigned long long)other, (unsigned long long)op->transfer_id);
  else kmap_put(w, &w->applied_keys, op->transfer_id);
  t->status = REC_APPLIED;
  w->applied_count++;
  w->decided_open--;
  w->r->committed++;
  for (int i = 0; i < t->leg_count; i++)
    if (__builtin_add_overflow(w->bal[t->legs[i].account], t->legs[i].amount, &w->bal[t->legs[i].account]))
      fail(w, "I1: balance of %s overflows int64 when transfer %llu commits",
           w->st.accounts[t->legs[i].account].name, (unsigned long long)op->transfer_id);
  if (t->kind == TALLY__TRANSFER_PURCHASE) {
    w->sold[t->item] += (int32_t)t->qty;
    w->pu_sold[t->account][t->item] += (int32_t)t->qty;
    if (w->st.items[t->item].drop_per_user) w->pu_sold_limited += t->qty;
    w->pu_held[t->account][t->item] -= (int32_t)t->qty;
  }
  if (t->kind == TALLY__TRANSFER_REFUND) {
    rec *p = rec_of(w, t->ref);
    p->refund_inflight -= t->amount;
    p->refund_fee_inflight -= t->fee;
    p->refunded += t->amount;
    p->refund_fees += t->fee;
    coop_refund_settle(w, t, 0);
    if (p->refunded == p->amount && w->st.items[p->item].drop_per_user) { /* the units come back */
      w->pu_sold[p->account][p->item] -= (int32_t)p->qty;
      w->pu_sold_limited -= p->qty;
    }
    if (p->refunded > p->amount)
      fail(w, "I4: purchase %llu refunded %lld of %lld", (unsigned long long)t->ref,
           (long long)p->refunded, (long long)p->amount);
    if ((w->o.faults & SIM_FAULT_REFUND_FEES) &&
        (p->refund_fees > p->fee || (p->refunded == p->amount && p->refund_fees != p->fee)))
      fail(w, "I4: purchase %llu (amount %lld, fee %lld) refunded %lld with fee parts %lld",
           (unsigned long long)t->ref, (long long)p->amount, (long long)p->fee,
           (long long)p->refunded, (long long)p->refund_fees);
  }
  if (w->r->failed) return;
  tally__op_commit(&w->st, op);
  w->st.keys[op->key_slot].state = TALLY__KEY_DONE;
  if (op->kind != TALLY__TRANSFER_GRANT) tally__account_note_receipt(&w->st.accounts[op->account], op->transfer_id);
  if (w->o.bug == SIM_BUG_DOUBLE_COMMIT && op->kind == TALLY__TRANSFER_GRANT && chance(w, 25))
    tally__op_commit(&w->st, op);
  if (w->o.bug == SIM_BUG_LOST_SALE && op->kind == TALLY__TRANSFER_PURCHASE && chance(w, 25))
    w->st.items[op->item].sold -= (int32_t)op->qty;
  trace(w, "applied %s %llu", kind_name(op->kind), (unsigned long long)op->transfer_id);
}

/* The engine releases op's holds (tally__op_release). */
static void op_released(world *w, tally__op *op) {
  rec *t = rec_of(w, op->transfer_id);
  if (!t || t->status != REC_DECIDED) {
    fail(w, "I5: transfer %llu released but not in flight", (unsigned long long)op->transfer_id);
    return;
  }
  if (t->in_db)
    fail(w, "I7: transfer %llu is in the ledger but the engine released it (buyer told 'not charged')",
         (unsigned long long)op->transfer_id);
  t->status = REC_RELEASED;
  w->decided_open--;
  w->r->released++;
  if (t->kind == TALLY__TRANSFER_REFUND) {
    rec_of(w, t->ref)->refund_inflight -= t->amount;
    rec_of(w, t->ref)->refund_fee_inflight -= t->fee;
    coop_refund_settle(w, t, -1);
  }
  if (t->kind == TALLY__TRANSFER_PURCHASE) w->pu_held[t->account][t->item] -= (int32_t)t->qty;
  tally__op_release(&w->st, op);
  if (w->o.bug == SIM_BUG_SKIP_PER_USER && op->kind == TALLY__TRANSFER_PURCHASE &&
      w->st.items[op->item].drop_per_user) { /* the injected bug: the decrement is skipped */
    int32_t *units;
    tally__per_user_units(&w->st, op->account, op->item, &units);
    if (units) *units += (int32_t)op->qty;
  }
  trace(w, "released %s %llu", kind_name(op->kind), (unsigned long long)op->transfer_id);
}

/* tally__engine_batch_done with the inserted ids (inserted[k]) and a key
 * lookup answered by the database for the ops that were not inserted. */
static void batch_done(world *w, sbatch *b, const bool *inserted, uint32_t n_inserted) {
  bool all = n_inserted == b->op_count;
  for (uint32_t k = 0; k < b->op_count && !w->r->failed; k++) {
    tally__op *op = &b->ops[k];
    if (all || inserted[k]) {
      op_applied(w, op);
      continue;
    }
    tally__key *key = &w->st.keys[op->key_slot];
    rec *t = rec_of(w, op->transfer_id);
    if (key->state != TALLY__KEY_INFLIGHT || strcmp(key->key, t->key) != 0)
      fail(w, "key slot %u of in-flight transfer %llu was reused (holds '%s', state %d; wanted '%s')",
           op->key_slot, (unsigned long long)op->transfer_id, key->key, key->state, t->key);
    uint64_t existing = kmap_get(w, &w->db_keys, key->key);
    if (existing == op->transfer_id) {
      op_applied(w, op);
      continue;
    }
    op_released(w, op);
    /* engine.c op_not_ours: the same request recorded earlier gets its
     * first answer; a request with other parameters is refused. */
    if (existing && rec_of(w, existing)->fp == key->fingerprint) {
      trace(w, "ledger: key '%s' of %llu already taken by %llu", key->key,
            (unsigned long long)op->transfer_id, (unsigned long long)existing);
      w->r->duplicates++;
      key->transfer_id = existing;
      key->state = TALLY__KEY_DONE;
    } else {
      if (existing) w->r->duplicates++;
      tally__key_forget(&w->st, op->key_slot);
    }
  }
  b->phase = SB_FREE;
  b->op_count = 0;
  b->db_done = false;
  b->retries = 0;
  w->r->batches++;
}

/* tally__engine_batch_failed. */
static void batch_failed(world *w, sbatch *b) {
  uint32_t skip = w->o.bug == SIM_BUG_SKIP_RELEASE && b->op_count ? (uint32_t)below(w, b->op_count) : UINT32_MAX;
  for (uint32_t k = 0; k < b->op_count && !w->r->failed; k++) {
    tally__op *op = &b->ops[k];
    if (k == skip) { /* the injected bug: the hold stays, the op is gone */
      rec *t = rec_of(w, op->transfer_id);
      t->status = REC_RELEASED;
      w->decided_open--;
      if (t->kind == TALLY__TRANSFER_REFUND) {
        rec_of(w, t->ref)->refund_inflight -= t->amount;
        rec_of(w, t->ref)->refund_fee_inflight -= t->fee;
        coop_refund_settle(w, t, -1);
      }
      if (t->kind == TALLY__TRANSFER_PURCHASE) w->pu_held[t->account][t->item] -= (int32_t)t->qty;
      tally__key_forget(&w->st, op->key_slot);
      continue;
    }
    op_released(w, op);
    tally__key_forget(&w->st, op->key_slot);
  }
  if (w->open == b) w->open = NULL;
  b->phase = SB_FREE;
  b->op_count = 0;
  b->db_done = false;
  b->retries = 0;
  w->r->failed_batches++;
}

/* ---- the simulated database ----------------------------------------------------------------- */
/* One attempt of the batch statement: inserts each transfer whose id and
 * key are new (ON CONFLICT DO NOTHING), in one transaction. */
static uint32_t db_commit(world *w, sbatch *b, bool *inserted) {
  uint32_t n = 0;
  for (uint32_t k = 0; k < b->op_count; k++) {
    rec *t = rec_of(w, b->ops[k].transfer_id);
    inserted[k] = false;
    if (t->in_db || kmap_get(w, &w->db_keys, t->key)) continue;
    if (t->kind == TALLY__TRANSFER_REFUND) {
      rec *p = rec_of(w, t->ref);
      if (!p->in_db) fail(w, "I4: refund %llu stored before its purchase %llu", (unsigned long long)b->ops[k].transfer_id, (unsigned long long)t->ref);
      if ((p->db_refunded += t->amount) > p->amount)
        fail(w, "I4: ledger refunds of purchase %llu exceed it", (unsigned long long)t->ref);
    }
    if (t->kind == TALLY__TRANSFER_PURCHASE) {
      w->db_sold[t->item] += (int32_t)t->qty;
      int32_t stock = w->st.items[t->item].stock;
      if (stock >= 0 && w->db_sold[t->item] > stock)
        fail(w, "I2: ledger has %d units of %s, stock %d", w->db_sold[t->item], w->st.items[t->item].sku, stock);
    }
    t->in_db = true;
    kmap_put(w, &w->db_keys, b->ops[k].transfer_id);
    inserted[k] = true;
    w->db_count++;
    n++;
  }
  return n;
}

static sbatch *flight_due(world *w) {
  uint32_t due[SIM_SLOTS_MAX], n = 0;
  for (uint32_t i = 0; i < w->slots; i++)
    if (w->b[i].phase == SB_FLIGHT && w->b[i].due_ms <= w->mono) due[n++] = i;
  return n ? &w->b[due[below(w, n)]] : NULL;
}

/* The answer to one batch in flight. `clean` answers "committed". */
static void db_answer(world *w, sbatch *b, bool clean) {
  bool *inserted = w->inserted;
  uint64_t roll = clean ? 0 : below(w, 100);
  bool may_fail = !b->db_done || (w->o.faults & SIM_FAULT_FAIL_AFTER_UNKNOWN);
  w->inflight--;
  if (roll < 70 || (!may_fail && roll >= 87)) {
    uint32_t n = db_commit(w, b, inserted);
    trace(w, "db: batch %llu committed (%u of %u inserted)", (unsigned long long)b->id, n, b->op_count);
    if (n != b->op_count && (w->o.faults & SIM_FAULT_FAIL_AFTER_UNKNOWN) && chance(w, 20)) {
      /* writer.c batch_query_failed: the key lookup that follows a partial
       * insert fails, so the outcome is open: resent later, unchanged. */
      trace(w, "db: key lookup of batch %llu failed", (unsigned long long)b->id);
      b->db_done = true;
      b->phase = SB_WAIT;
      return;
    }
    batch_done(w, b, inserted, n);
  } else if (roll < 80) { /* F2: committed, the reply is lost; resent later */
    db_commit(w, b, inserted);
    b->db_done = true;
    b->phase = SB_WAIT;
    w->r->lost_replies++;
    trace(w, "db: batch %llu committed, reply lost", (unsigned long long)b->id);
  } else if (roll < 87) { /* F1: lost before COMMIT; resent later */
    b->phase = SB_WAIT;
    trace(w, "db: batch %llu lost before commit", (unsigned long long)b->id);
  } else if (roll < 95 && b->retries++ < SIM_RETRY_MAX) { /* F10: serialization failure */
    b->phase = SB_WAIT;
    trace(w, "db: batch %llu serialization failure", (unsigned long long)b->id);
  } else if (b->db_done) { /* F4 after an unknown outcome: settled by key lookup */
    trace(w, "db: batch %llu failed after an unknown outcome: settled by lookup", (unsigned long long)b->id);
    for (uint32_t k = 0; k < b->op_count; k++) inserted[k] = false;
    batch_done(w, b, inserted, 0);
  } else { /* F4: error, rolled back */
    trace(w, "db: batch %llu failed", (unsigned long long)b->id);
    batch_failed(w, b);
  }
}

/* tally__engine_flush: seal the open batch or resend a waiting one while a
 * writer is idle; the answer comes after a random delay. */
static void flush(world *w) {
  for (uint32_t i = 0; i < w->slots; i++) {
    sbatch *b = &w->b[i];
    bool waiting = b->phase == SB_WAIT, open_with_work = b->phase == SB_OPEN && b->op_count > 0;
    if (!waiting && !open_with_work) continue;
    if (w->inflight >= w->writers) return;
    if (open_with_work) {
      b->id = tally__state_take_id(&w->st);
      if (b->id <= w->last_batch_id) fail(w, "I9: batch id %llu after %llu", (unsigned long long)b->id, (unsigned long long)w->last_batch_id);
      w->last_batch_id = b->id;
      if (w->open == b) w->open = NULL;
    }
    b->phase = SB_FLIGHT;
    w->inflight++;
    b->due_ms = w->mono + (chance(w, 90) ? (uint64_t)between(w, 0, 50) : (uint64_t)between(w, 500, 5000));
    trace(w, "flush: batch %llu (%u ops) sent", (unsigned long long)b->id, b->op_count);
  }
}

/* tally__engine_open_batch. */
static sbatch *open_batch(world *w) {
  if (w->open && w->open->phase == SB_OPEN && w->open->op_count < w->cfg.batch_max) return w->open;
  if (w->open && w->open->phase == SB_OPEN) return NULL;
  for (uint32_t i = 0; i < w->slots; i++) {
    if (w->b[i].phase == SB_FREE) {
      w->open = &w->b[i];
      w->open->phase = SB_OPEN;
      return w->open;
    }
  }
  w->open = NULL;
  return NULL;
}

/* ---- decisions ---------------------------------------------------------------------------------- */
static const char *random_key(world *w) {
  if (chance(w, w->fresh_pct)) {
    snprintf(w->key, sizeof w->key, "f%llu", (unsigned long long)++w->fresh);
  } else {
    uint32_t k = (uint32_t)below(w, w->key_pool);
    /* A few pool keys are as long as a key can be. */
    if (k % 61 == 7) snprintf(w->key, sizeof w->key, "%0*u", TALLY__KEY_BYTES_MAX, k);
    else snprintf(w->key, sizeof w->key, "k%u", k);
  }
  return w->key;
}

static uint32_t random_user(world *w) { return w->users[below(w, w->user_count)]; }

static int64_t random_amount(world *w) {
  uint64_t r = below(w, 100);
  if (r < 60) return between(w, 1, 500);
  if (r < 90) return between(w, 1, 20000);
  if (r < 99) return between(w, 1, 10000000);
  return between(w, 1, 1000000000000LL);
}

static void random_req(world *w, req *q) {
  memset(q, 0, sizeof *q);
  uint64_t r = below(w, 100);
  q->account = random_user(w);
  q->chan = (uint8_t)below(w, SIM_CHANNELS + 1);
  if (r < 50) {
    static const uint32_t odd[] = {0, 101, 1000, UINT32_MAX};
    q->kind = TALLY__TRANSFER_PURCHASE;
    /* Buys aimed at drops, mostly at those not closed yet: a crowd at the
     * window, small quantities. */
    q->item = (uint32_t)below(w, w->st.item_count);
    if (w->drop_count && chance(w, 40)) {
      uint32_t open[SIM_ITEMS_MAX], n = 0;
      for (uint32_t d = 0; d < w->drop_count; d++)
        if (w->st.items[w->drops[d]].drop_state != TALLY__DROP_CLOSED) open[n++] = w->drops[d];
      q->item = n && chance(w, 75) ? open[below(w, n)] : w->drops[below(w, w->drop_count)];
    }
    uint64_t s = below(w, 100);
    q->qty = s < 80 ? (uint32_t)between(w, 1, 3) : s < 92 ? (uint32_t)between(w, 1, 100) : odd[below(w, 4)];
  } else if (r < 65) {
    q->kind = TALLY__TRANSFER_TIP;
    q->other = chance(w, 95) ? random_user(w) : (chance(w, 50) ? w->st.fees : w->st.external);
    q->amount = random_amount(w);
  } else if (r < 85) {
    q->kind = TALLY__TRANSFER_REFUND;
    uint64_t s = below(w, 100);
    bool old = (w->o.faults & SIM_FAULT_OLD_REFUNDS) && chance(w, 50);
    if (w->purchase_count && s < 90) {
      /* Purchases memory still remembers; by default not the oldest ones,
       * which a refund in flight would keep from being forgotten (a known
       * core bug, SIM_FAULT_OLD_REFUNDS aims there on purpose). */
      uint32_t keep = w->cfg.purchases_max, lo = 0, span;
      if (old) {
        lo = w->purchase_count > keep + 8 ? w->purchase_count - keep - 8 : 0;
        span = 24;
      } else {
        uint32_t margin = SIM_SLOTS_MAX * w->cfg.batch_max + 64;
        keep = keep > margin ? keep - margin : 1;
        lo = w->purchase_count > keep ? w->purchase_count - keep : 0;
        span = w->purchase_count - lo;
      }
      uint32_t i = lo + (uint32_t)below(w, span);
      q->ref = w->purchases[i < w->purchase_count ? i : w->purchase_count - 1];
      rec *p = rec_of(w, q->ref);
      if (s < 85) q->account = p->account;
      uint64_t a = below(w, 100);
      q->amount = a < 30 ? 0 : a < 75 ? between(w, 1, p->amount) : a < 90 ? between(w, 1, 10) : a < 95 ? -1 : p->amount + 1;
    } else {
      q->ref = (uint64_t)between(w, 0, (int64_t)w->st.next_id + 10);
      q->amount = chance(w, 50) ? 0 : random_amount(w);
    }
  } else {
    q->kind = TALLY__TRANSFER_GRANT;
    q->amount = random_amount(w) * (chance(w, 50) ? 100 : 1);
    if ((w->o.faults & SIM_FAULT_HUGE_AMOUNTS) && chance(w, 10))
      q->amount = between(w, 1, 999999999999999999LL);
  }
}

/* The legs the model expects, from the request alone (and, for a refund,
 * from the model's record of its purchase). */
static int expected_legs(world *w, const req *q, int64_t *amount, int64_t *fee, tally__leg *legs) {
  tally__state *st = &w->st;
  int n = 0;
#define LEG(acc, amt) do { if ((amt) != 0) { legs[n].account = (acc); legs[n].amount = (amt); n++; } } while (0)
  if (q->kind == TALLY__TRANSFER_PURCHASE) {
    *amount = w->price[q->item] * (int64_t)q->qty;
    *fee = (int64_t)(((__int128)*amount * w->cfg.fee_bps) / 10000);
    LEG(q->account, -*amount);
    const tally__split *sp = &st->items[q->item].split;
    if (sp->count) { /* the model's own largest remainder over the shares */
      int64_t net = *amount - *fee, part[TALLY__SPLIT_MAX], rem[TALLY__SPLIT_MAX], given = 0;
      for (int i = 0; i < sp->count; i++) {
        part[i] = (int64_t)(((__int128)net * sp->bps[i]) / TALLY__BPS_WHOLE);
        rem[i] = (int64_t)(((__int128)net * sp->bps[i]) % TALLY__BPS_WHOLE);
        given += part[i];
      }
      for (; given < net; given++) {
        int best = -1;
        for (int i = 0; i < sp->count; i++)
          if (rem[i] >= 0 && (best < 0 || rem[i] > rem[best])) best = i;
        part[best]++;
        rem[best] = -1;
      }
      for (int i = 0; i < sp->count; i++) LEG(sp->account[i], part[i]);
    } else {
      LEG(st->items[q->item].creator, *amount - *fee);
    }
    LEG(st->fees, *fee);
  } else if (q->kind == TALLY__TRANSFER_TIP) {
    *amount = q->amount;
    *fee = 0;
    LEG(q->account, -*amount);
    LEG(q->other, *amount);
  } else if (q->kind == TALLY__TRANSFER_REFUND) {
    const rec *p = rec_of(w, q->ref);
    int64_t done = p->refunded + p->refund_inflight;
    *amount = q->amount ? q->amount : p->amount - done;
    /* Cumulative share of the fee, less what earlier parts (committed or in
     * flight) returned; clamped so no part exceeds its amount or the fee. */
    int64_t before = p->refund_fees + p->refund_fee_inflight;
    int64_t f = (int64_t)(((__int128)p->fee * (done + *amount)) / p->amount) - before;
    if (f < 0) f = 0;
    if (f > *amount) f = *amount;
    if (f > p->fee - before) f = p->fee - before;
    *fee = f;
    LEG(q->account, *amount);
    LEG(p->other, -(*amount - *fee));
    LEG(st->fees, -*fee);
  } else {
    *amount = q->amount;
    *fee = 0;
    LEG(st->external, -*amount);
    LEG(q->account, *amount);
  }
#undef LEG
  return n;
}

/* A co-op refund cannot be predicted leg by leg from the request (its
 * rounding follows the earlier parts), so the model checks what it must
 * be: the buyer gets the amount, each payee gives back a part >= 0 that
 * keeps what it returned within what it was credited, and the parts sum to
 * the amount. Returns the leg count, or -1 after a failure. */
static int coop_refund_legs(world *w, const req *q, const tally__op *op, rec *p, int64_t *amount, int64_t *fee,
                            tally__leg *legs) {
  int64_t done = p->refunded + p->refund_inflight;
  *amount = q->amount ? q->amount : p->amount - done;
  *fee = 0;
  if (op->leg_count < 2 || op->legs[0].account != q->account || op->legs[0].amount != *amount) {
    fail(w, "I4: co-op refund %llu does not pay the buyer %lld", (unsigned long long)op->transfer_id, (long long)*amount);
    return -1;
  }
  int64_t sum = 0;
  for (int i = 1; i < op->leg_count; i++) {
    int k = -1;
    for (int j = 0; j < p->pay_n; j++)
      if (p->pay_acc[j] == op->legs[i].account) k = j;
    int64_t part = -op->legs[i].amount;
    if (k < 0 || part <= 0 || p->pay_back[k] + p->pay_inflight[k] + part > p->pay_credit[k]) {
      fail(w, "I4: co-op refund %llu takes %lld from %s, which it cannot", (unsigned long long)op->transfer_id,
           (long long)part, w->st.accounts[op->legs[i].account].name);
      return -1;
    }
    if (p->pay_acc[k] == w->st.fees) *fee = part;
    sum += part;
  }
  if (sum != *amount) {
    fail(w, "I1: co-op refund %llu gives %lld and takes back %lld", (unsigned long long)op->transfer_id,
         (long long)*amount, (long long)sum);
    return -1;
  }
  memcpy(legs, op->legs, sizeof op->legs[0] * op->leg_count);
  return op->leg_count;
}

/* A refund's parts against its co-op purchase: held (+1), applied (0) or
 * released (-1). */
static void coop_refund_settle(world *w, const rec *t, int how) {
  rec *p = rec_of(w, t->ref);
  if (!p || !p->pay_n) return;
  for (int i = 1; i < t->leg_count; i++)
    for (int j = 0; j < p->pay_n; j++) {
      if (p->pay_acc[j] != t->legs[i].account) continue;
      int64_t part = -t->legs[i].amount;
      if (how > 0) p->pay_inflight[j] += part;
      else p->pay_inflight[j] -= part;
      if (how == 0) p->pay_back[j] += part;
    }
  if (how == 0 && p->refunded == p->amount)
    for (int j = 0; j < p->pay_n; j++)
      if (p->pay_back[j] != p->pay_credit[j])
        fail(w, "I4: co-op purchase %llu fully refunded, but %s got back %lld of %lld", (unsigned long long)t->ref,
             w->st.accounts[p->pay_acc[j]].name, (long long)p->pay_back[j], (long long)p->pay_credit[j]);
}

/* A decision that succeeded: check it against the model, then record it. */
static void decided(world *w, const req *q, const tally__op *op, const char *key) {
  if (op->transfer_id <= w->last_id)
    fail(w, "I9: transfer id %llu decided after %llu", (unsigned long long)op->transfer_id, (unsigned long long)w->last_id);
  w->last_id = op->transfer_id;
  rec *t = rec_of(w, op->transfer_id);
  if (!t || t->status != REC_FREE) {
    fail(w, "transfer id %llu out of the model's range or reused", (unsigned long long)op->transfer_id);
    return;
  }
  if (q->kind == TALLY__TRANSFER_REFUND) {
    const rec *p = rec_of(w, q->ref);
    if (!p || p->kind != TALLY__TRANSFER_PURCHASE || p->status != REC_APPLIED)
      fail(w, "I4: refund of %llu decided but that purchase is not committed", (unsigned long long)q->ref);
    else if (p->account != q->account)
      fail(w, "I4: refund of %llu decided for someone else than its buyer", (unsigned long long)q->ref);
    if (w->r->failed) return;
  }
  tally__leg legs[TALLY__LEGS_MAX];
  int64_t amount, fee;
  int n;
  rec *coop = q->kind == TALLY__TRANSFER_REFUND ? rec_of(w, q->ref) : NULL;
  if (coop && coop->pay_n) n = coop_refund_legs(w, q, op, coop, &amount, &fee, legs);
  else n = expected_legs(w, q, &amount, &fee, legs);
  if (n < 0) return;
  bool same = op->kind == q->kind && op->amount == amount && op->fee == fee && op->leg_count == n &&
              op->account == q->account;
  for (int i = 0; same && i < n; i++)
    same = op->legs[i].account == legs[i].account && op->legs[i].amount == legs[i].amount;
  if (!same) {
    fail(w, "%s %llu: op (amount %lld, fee %lld, %u legs) differs from the model (amount %lld, fee %lld, %d legs)",
         kind_name(q->kind), (unsigned long long)op->transfer_id, (long long)op->amount,
         (long long)op->fee, op->leg_count, (long long)amount, (long long)fee, n);
    return;
  }
  int64_t sum = 0;
  for (int i = 0; i < n; i++) sum += legs[i].amount;
  if (sum != 0) fail(w, "I1: legs of %llu sum to %lld", (unsigned long long)op->transfer_id, (long long)sum);
  if (q->kind == TALLY__TRANSFER_REFUND) {
    rec *p = rec_of(w, q->ref);
    if (p->refunded + p->refund_inflight + amount > p->amount)
      fail(w, "I4: refund of %lld on purchase %llu would exceed it", (long long)amount, (unsigned long long)q->ref);
    p->refund_inflight += amount;
    p->refund_fee_inflight += fee;
  }
  t->kind = q->kind;
  t->fp = w->st.keys[op->key_slot].fingerprint;
  t->status = REC_DECIDED;
  t->account = q->account;
  t->other = q->kind == TALLY__TRANSFER_PURCHASE ? w->st.items[q->item].creator : q->other;
  t->item = q->item;
  t->qty = q->qty;
  t->amount = amount;
  t->req_amount = q->amount;
  t->fee = fee;
  t->ref = q->ref;
  t->leg_count = (uint8_t)n;
  memcpy(t->legs, legs, sizeof legs);
  snprintf(t->key, sizeof t->key, "%s", key);
  t->pay_n = 0;
  if (q->kind == TALLY__TRANSFER_PURCHASE && w->st.items[q->item].split.count) {
    /* Payees: the creators' legs, then the fee (even when it took nothing). */
    for (int i = 1; i < n; i++)
      if (legs[i].account != w->st.fees) {
        t->pay_acc[t->pay_n] = legs[i].account;
        t->pay_credit[t->pay_n] = legs[i].amount;
        t->pay_back[t->pay_n] = t->pay_inflight[t->pay_n] = 0;
        t->pay_n++;
      }
    t->pay_acc[t->pay_n] = w->st.fees;
    t->pay_credit[t->pay_n] = fee;
    t->pay_back[t->pay_n] = t->pay_inflight[t->pay_n] = 0;
    t->pay_n++;
  }
  if (q->kind == TALLY__TRANSFER_REFUND) coop_refund_settle(w, t, +1);
  if (q->kind == TALLY__TRANSFER_PURCHASE) {
    w->purchases[w->purchase_count++] = op->transfer_id;
    w->pu_held[q->account][q->item] += (int32_t)q->qty;
  }
  w->decided_open++;
  w->r->decided++;
}

/* Does committed transfer t answer request q (same kind and parameters)? */
static bool same_params(const rec *t, const req *q) {
  bool same = t->kind == q->kind && t->account == q->account;
  if (q->kind == TALLY__TRANSFER_PURCHASE) same = same && t->item == q->item && t->qty == q->qty;
  if (q->kind == TALLY__TRANSFER_TIP) same = same && t->other == q->other && t->amount == q->amount;
  if (q->kind == TALLY__TRANSFER_GRANT) same = same && t->amount == q->amount;
  if (q->kind == TALLY__TRANSFER_REFUND) same = same && t->ref == q->ref && t->req_amount == q->amount;
  return same;
}

/* The key was seen before with the same fingerprint: the answer must be
 * the transfer that owns the key (or "pending" while it is in flight). */
static void replayed(world *w, const req *q, const char *key, uint64_t existing) {
  w->r->replays++;
  if (existing == 0) return; /* in flight: the engine says "pending" */
  rec *t = rec_of(w, existing);
  if (!t || t->status != REC_APPLIED || strcmp(t->key, key) != 0) {
    fail(w, "I3: replay of key '%s' answered with receipt %llu, which is not that key's committed transfer",
         key, (unsigned long long)existing);
    return;
  }
  if ((w->o.faults & SIM_FAULT_REPLAY_PARAMS) && !same_params(t, q))
    fail(w, "I3: key '%s' replayed as a %s answered 'already done' with receipt %llu, a %s with other parameters",
         key, kind_name(q->kind), (unsigned long long)existing, kind_name(t->kind));
}

/* The committed transfer a replay of q under `key` must answer with, when
 * the engine still remembers the key; 0 when no answer is prescribed. */
static uint64_t replay_expected(world *w, const req *q, const char *key) {
  uint32_t slot = tally__key_find(&w->st, key);
  if (slot == TALLY__NONE || w->st.keys[slot].state != TALLY__KEY_DONE) return 0;
  uint64_t id = kmap_get(w, &w->applied_keys, key);
  return id && same_params(rec_of(w, id), q) ? id : 0;
}

/* The event an op joins, from the model's records (cmd_money.c: a buy joins
 * its drop's event, else the event running in the channel it was said in;
 * a tip the channel's; refunds and grants none). *ev = index + 1. */
static uint64_t model_event(world *w, const req *q, uint8_t *ev) {
  uint64_t id = 0;
  if (q->kind == TALLY__TRANSFER_PURCHASE && w->item_event[q->item]) id = w->item_event[q->item];
  else if (q->kind == TALLY__TRANSFER_PURCHASE || q->kind == TALLY__TRANSFER_TIP) id = w->chan_event[q->chan];
  *ev = 0;
  for (uint32_t i = 0; id && i < w->ev_count; i++)
    if (w->ev_id[i] == id) *ev = (uint8_t)(i + 1);
  return id;
}

static const char *const drop_state_names[] = {"not a drop", "SCHEDULED", "LIVE", "CLOSED"};

/* D1, D2: a buy of a drop is decided only while it is LIVE and within the
 * per-buyer limit (units committed and in flight, in the model); a drop
 * refusal names the state the drop was in, and "limit" is said only when
 * the model agrees that this buy would pass it. */
static void drop_checks(world *w, const req *q, int rc, uint8_t state, uint32_t limit, int64_t have) {
  if (q->kind != TALLY__TRANSFER_PURCHASE) return;
  const tally__item *it = &w->st.items[q->item];
  const char *buyer = w->st.accounts[q->account].name;
  if (rc == TALLY_OK && state != TALLY__DROP_NONE) {
    w->r->drop_buys++;
    if (state != TALLY__DROP_LIVE)
      fail(w, "D2: %s bought %u of drop %s while it was %s", buyer, q->qty, it->sku, drop_state_names[state]);
    if (limit && have + q->qty > limit)
      fail(w, "D1: %s bought %u of drop %s holding %lld already, limit %u", buyer, q->qty, it->sku,
           (long long)have, limit);
  }
  if (rc == TALLY_EDROP_NOT_LIVE) {
    w->r->drop_not_live++;
    if (state != TALLY__DROP_SCHEDULED)
      fail(w, "D2: buy of %s refused 'not live' while it was %s", it->sku, drop_state_names[state]);
  }
  if (rc == TALLY_EDROP_CLOSED) {
    w->r->drop_closed++;
    if (state != TALLY__DROP_CLOSED)
      fail(w, "D2: buy of %s refused 'closed' while it was %s", it->sku, drop_state_names[state]);
  }
  if (rc == TALLY_EPER_USER_LIMIT) {
    w->r->drop_limit++;
    if (!limit || have + q->qty <= limit)
      fail(w, "D1: %s refused %u of %s over the per-buyer limit, but has %lld (committed %d, in flight %d), limit %u",
           buyer, q->qty, it->sku, (long long)have, w->pu_sold[q->account][q->item],
           w->pu_held[q->account][q->item], limit);
  }
}

static void step_decide(world *w) {
  sbatch *b = open_batch(w);
  if (!b) {
    w->r->busy++;
    return;
  }
  req q;
  const char *key;
  if (w->recent_count && chance(w, 20)) { /* F7: the same command delivered again */
    const sent *d = &w->recent[below(w, w->recent_count < SIM_RECENT ? w->recent_count : SIM_RECENT)];
    if (chance(w, 80)) q = d->q;
    else random_req(w, &q);
    snprintf(w->key, sizeof w->key, "%s", d->key);
    key = w->key;
  } else {
    random_req(w, &q);
    key = random_key(w);
  }
  sent *keep = &w->recent[w->recent_count++ % SIM_RECENT];
  keep->q = q;
  snprintf(keep->key, sizeof keep->key, "%s", key);
  tally__op *op = &b->ops[b->op_count];
  uint64_t existing = UINT64_MAX, next_id = w->st.next_id;
  uint32_t key_next = w->st.key_next, purchase_next = w->st.purchase_next;
  tally__decide_ctx ctx = {.wall_ms = w->wall, .mono_ms = w->mono, .req_id = ++w->req_id,
                           .origin = "sim", .channel = chan_names[q.chan], .key = key,
                           .existing_transfer = &existing};
  tally__state *st = &w->st;
  /* What the model knows of a drop before the decision (D1, D2). */
  uint8_t drop_state = 0;
  uint32_t limit = 0;
  int64_t have = 0;
  if (q.kind == TALLY__TRANSFER_PURCHASE) {
    drop_state = st->items[q.item].drop_state;
    limit = st->items[q.item].drop_per_user;
    have = (int64_t)w->pu_sold[q.account][q.item] + w->pu_held[q.account][q.item];
  }
  uint64_t first = (w->o.faults & SIM_FAULT_REPLAY_FIRST) ? replay_expected(w, &q, key) : 0;
  int rc;
  switch (q.kind) {
  case TALLY__TRANSFER_PURCHASE: rc = tally__decide_buy(st, &ctx, q.account, q.item, q.qty, op); break;
  case TALLY__TRANSFER_TIP: rc = tally__decide_tip(st, &ctx, q.account, q.other, q.amount, op); break;
  case TALLY__TRANSFER_REFUND: rc = tally__decide_refund(st, &ctx, q.account, q.ref, q.amount, op); break;
  default: rc = tally__decide_grant(st, &ctx, q.account, q.amount, op); break;
  }
  trace(w, "%s acct=%u item=%u qty=%u amount=%lld ref=%llu key=%s -> %s", kind_name(q.kind), q.account,
        q.item, q.qty, (long long)q.amount, (unsigned long long)q.ref, key, tally_err_name(rc));
  if (first && (rc != TALLY_EEXISTS || existing != first))
    fail(w, "I3: %s replayed with key '%s' after receipt %llu committed, answered %s (receipt %llu)",
         kind_name(q.kind), key, (unsigned long long)first, tally_err_name(rc),
         (unsigned long long)(rc == TALLY_EEXISTS ? existing : 0));
  drop_checks(w, &q, rc, drop_state, limit, have);
  if (rc == TALLY_OK) {
    /* cmd_money.c: after a successful decision the op joins its event. */
    uint8_t ev = 0;
    uint64_t ev_id = model_event(w, &q, &ev);
    if (q.kind == TALLY__TRANSFER_PURCHASE || q.kind == TALLY__TRANSFER_TIP) {
      uint64_t core_ev = tally__live_event_for(st, q.kind == TALLY__TRANSFER_PURCHASE ? q.item : TALLY__NONE,
                                               chan_names[q.chan]);
      if (core_ev != ev_id)
        fail(w, "D3: %s in '%s' joins event %llu, the model says %llu", kind_name(q.kind), chan_names[q.chan],
             (unsigned long long)core_ev, (unsigned long long)ev_id);
    }
    if (ev && w->ev_stopped[ev - 1])
      fail(w, "D3: %s decided into event %llu after it stopped", kind_name(q.kind), (unsigned long long)ev_id);
    op->event_id = ev_id;
    tally__event_inflight(st, ev_id, +1);
    b->op_count++;
    decided(w, &q, op, key);
    rec *t = rec_of(w, op->transfer_id);
    if (t) {
      t->event_id = ev_id;
      t->ev = ev;
    }
    if (ev) w->r->event_ops++;
    return;
  }
  /* decide.h: a refusal changes nothing (no id, key or purchase taken). */
  if (st->next_id != next_id || st->key_next != key_next || st->purchase_next != purchase_next)
    fail(w, "%s refused with %s but took an id, key or purchase slot", kind_name(q.kind), tally_err_name(rc));
  if (rc == TALLY_EEXISTS) replayed(w, &q, key, existing);
  else w->r->refused++;
  if (rc == TALLY_EEXISTS && existing == UINT64_MAX) fail(w, "EEXISTS without an answer for key '%s'", key);
}

/* ---- clock and catalog ------------------------------------------------------------------------------ */
static void step_clock(world *w) {
  uint64_t r = below(w, 1000);
  uint64_t dt = r < 980 ? (uint64_t)between(w, 0, 100) : (uint64_t)between(w, 1000, 10000);
  w->mono += dt;
  w->wall += (int64_t)dt;
  if (r >= 990) w->wall += chance(w, 50) ? 3600000 : -3600000; /* F9: wall clock jumps */
  if (r == 999) w->wall += 86400000 - between(w, 0, 60000);
  if (w->wall < SIM_WALL_START) w->wall = SIM_WALL_START;
}

/* Item changes as cmd_admin.c makes them ("stock N" = N more from now on). */
static void step_catalog(world *w) {
  uint32_t i = (uint32_t)below(w, w->st.item_count);
  tally__item *it = &w->st.items[i];
  uint64_t r = below(w, 100);
  if (r < 45) it->stock = chance(w, 20) ? -1 : (int32_t)between(w, 0, 20) + it->sold + it->held;
  else if (r < 75) it->price = w->price[i] = random_price(w);
  else it->deleted = !it->deleted;
  if (it->deleted && chance(w, 50)) it->deleted = false;
  trace(w, "catalog: %s stock=%d price=%lld deleted=%d", it->sku, it->stock, (long long)it->price, it->deleted);
}

/* ---- drops and events, as live.c and cmd_live.c change them ------------------------------------------------- */
/* tally__live_drop_open: only a scheduled drop opens. */
static void drop_open(world *w, uint32_t k) {
  tally__item *it = &w->st.items[k];
  if (it->drop_state != TALLY__DROP_SCHEDULED) return;
  it->drop_state = TALLY__DROP_LIVE;
  trace(w, "drop %s LIVE", it->sku);
}

/* tally__live_drop_close: any drop closes, for good. */
static void drop_close(world *w, uint32_t k) {
  tally__item *it = &w->st.items[k];
  if (it->drop_state == TALLY__DROP_CLOSED) return;
  it->drop_state = TALLY__DROP_CLOSED;
  trace(w, "drop %s CLOSED (sold %d, held %d)", it->sku, it->sold, it->held);
}

/* DROP CREATE as cmd_live.c makes it: a new item (a drop never reuses a
 * sku), scheduled, with a window on the monotonic clock, limited stock,
 * maybe a per-buyer limit, in the event running in its channel if any. */
static void drop_create(world *w) {
  tally__state *st = &w->st;
  char sku[16];
  uint32_t k;
  snprintf(sku, sizeof sku, "drop%u", st->item_count);
  if (st->item_count >= SIM_ITEMS_MAX || tally__item_add(st, sku, &k)) return;
  tally__item *it = &st->items[k];
  uint8_t chan = (uint8_t)between(w, 1, SIM_CHANNELS);
  it->creator = w->creators[below(w, w->creator_count)];
  it->price = w->price[k] = chance(w, 80) ? between(w, 1, 500) : random_price(w);
  it->stock = (int32_t)between(w, 0, 40);
  it->refund_window_s = w->cfg.refund_window_s;
  snprintf(it->title, sizeof it->title, "drop %s", sku);
  snprintf(it->drop_channel, sizeof it->drop_channel, "%s", chan_names[chan]);
  it->drop_state = TALLY__DROP_SCHEDULED;
  it->drop_per_user = chance(w, 85) ? (uint32_t)between(w, 1, 3) : 0;
  int64_t start_in = chance(w, 40) ? 0 : between(w, 100, 30000), for_ms = between(w, 500, 120000);
  it->drop_start_ms = w->wall + start_in;
  it->drop_end_ms = it->drop_start_ms + for_ms;
  it->drop_start_mono = w->mono + (uint64_t)start_in;
  it->drop_end_mono = it->drop_start_mono + (uint64_t)for_ms;
  it->drop_event = w->item_event[k] = w->chan_event[chan];
  w->drops[w->drop_count++] = k;
  w->r->drops++;
  trace(w, "drop %s created: stock %d price %lld per-user %u in %s (event %llu), opens in %lld ms for %lld ms",
        sku, it->stock, (long long)it->price, it->drop_per_user, chan_names[chan],
        (unsigned long long)it->drop_event, (long long)start_in, (long long)for_ms);
  if (start_in == 0) drop_open(w, k);
}

/* tally__live_event_start, in a channel without a running event. */
static void event_start(world *w) {
  tally__state *st = &w->st;
  uint8_t chan = (uint8_t)between(w, 1, SIM_CHANNELS);
  if (w->chan_event[chan] || w->ev_count >= SIM_EVENTS_MAX || st->event_count >= TALLY__EVENTS_MAX) return;
  uint32_t i = st->event_count++;
  tally__event *ev = &st->events[i];
  memset(ev, 0, sizeof *ev);
  int64_t ms = between(w, 2000, 300000);
  ev->id = tally__state_take_id(st);
  ev->host = w->creators[below(w, w->creator_count)];
  ev->start_ms = w->wall;
  ev->end_ms = w->wall + ms;
  ev->end_mono = w->mono + (uint64_t)ms;
  snprintf(ev->channel, sizeof ev->channel, "%s", chan_names[chan]);
  snprintf(ev->title, sizeof ev->title, "event %u", i);
  ev->dirty = true;
  ev->version++;
  w->ev_id[w->ev_count++] = ev->id;
  w->chan_event[chan] = ev->id;
  w->r->events++;
  trace(w, "event %llu started in %s for %lld ms", (unsigned long long)ev->id, chan_names[chan], (long long)ms);
}

/* tally__live_event_stop: no new op joins it, its drops close, and its
 * summary is due once nothing of it is in flight. */
static void event_stop(world *w, uint32_t i) {
  tally__event *ev = &w->st.events[i];
  if (w->ev_stopped[i]) return;
  w->ev_stopped[i] = true;
  ev->stopped_ms = w->wall;
  ev->summary_due = true;
  ev->dirty = true;
  ev->version++;
  for (uint32_t c = 1; c <= SIM_CHANNELS; c++)
    if (w->chan_event[c] == ev->id) w->chan_event[c] = 0;
  for (uint32_t d = 0; d < w->drop_count; d++)
    if (w->item_event[w->drops[d]] == ev->id) drop_close(w, w->drops[d]);
  trace(w, "event %llu stopped (%u in flight)", (unsigned long long)ev->id, ev->inflight);
}

/* tally__live_tick after the clock moved: summaries whose ops all resolved,
 * drops whose window opened or closed, events whose time is up. */
static void live_tick(world *w) {
  tally__state *st = &w->st;
  for (uint32_t i = 0; i < w->ev_count; i++) {
    tally__event *ev = &st->events[i];
    if (ev->summary_due && ev->inflight == 0) ev->summary_due = false;
  }
  for (uint32_t d = 0; d < w->drop_count; d++) {
    uint32_t k = w->drops[d];
    tally__item *it = &st->items[k];
    if (it->drop_state == TALLY__DROP_SCHEDULED && w->mono >= it->drop_start_mono) drop_open(w, k);
    if (it->drop_state == TALLY__DROP_LIVE && w->mono >= it->drop_end_mono) drop_close(w, k);
  }
  for (uint32_t i = 0; i < w->ev_count; i++)
    if (!w->ev_stopped[i] && w->mono >= st->events[i].end_mono) event_stop(w, i);
}

/* A host's live command: DROP CREATE / START / STOP, EVENT START / STOP. */
static void step_live(world *w) {
  uint64_t r = below(w, 100);
  if (r < 8) drop_create(w);
  else if (r < 40) event_start(w);
  else if (r < 55) {
    uint32_t running[SIM_EVENTS_MAX], n = 0;
    for (uint32_t i = 0; i < w->ev_count; i++)
      if (!w->ev_stopped[i]) running[n++] = i;
    if (n) event_stop(w, running[below(w, n)]);
  } else if (w->drop_count && r < 80) {
    drop_open(w, w->drops[below(w, w->drop_count)]);
  } else if (w->drop_count) {
    drop_close(w, w->drops[below(w, w->drop_count)]);
  }
}

/* ---- checks ---------------------------------------------------------------------------------------------- */
/* D1: per-buyer units in memory (st->per_user, read without adding rows)
 * equal the model's committed + in-flight units and stay within the limit.
 * Each row is compared with the model, and the rows' units sum to the
 * model's total, so a pair without a row has no units in the model either.
 * D3: each event counts exactly the model's ops in flight for it. */
static void check_drops(world *w, int32_t (*infl)[SIM_ITEMS_MAX], int64_t infl_limited, const uint32_t *ev_infl) {
  const tally__state *st = &w->st;
  uint32_t seen[SIM_ACCOUNTS_MAX];
  int64_t mem_total = 0, model_total;
  memset(seen, 0, st->account_count * sizeof seen[0]);
  for (uint32_t e = 0; e < st->per_user_count; e++) {
    uint64_t key = st->per_user[e].key;
    uint32_t a = (uint32_t)(key >> 32), i = (uint32_t)key;
    int32_t units = st->per_user[e].units;
    if (a >= st->account_count || i >= st->item_count || !st->items[i].drop_per_user || (seen[a] >> i & 1)) {
      fail(w, "D1: per-user row %u (account %u, item %u) is for no limited drop or twice", e, a, i);
      return;
    }
    seen[a] |= 1u << i;
    mem_total += units;
    const tally__item *it = &st->items[i];
    if (units != w->pu_sold[a][i] + infl[a][i] || units > (int64_t)it->drop_per_user) {
      fail(w, "D1: %s has %d units of drop %s in memory, model %d committed + %d in flight, limit %u",
           st->accounts[a].name, units, it->sku, w->pu_sold[a][i], infl[a][i], it->drop_per_user);
      return;
    }
  }
  model_total = w->pu_sold_limited + infl_limited;
  if (mem_total != model_total)
    fail(w, "D1: per-user rows hold %lld units of drops, the model %lld committed + in flight",
         (long long)mem_total, (long long)model_total);
  if (st->event_count != w->ev_count) fail(w, "D3: %u events in memory, model %u", st->event_count, w->ev_count);
  for (uint32_t i = 0; i < w->ev_count && !w->r->failed; i++) {
    const tally__event *ev = &st->events[i];
    if (ev->id != w->ev_id[i] || ev->inflight != ev_infl[i])
      fail(w, "D3: event %llu counts %u ops in flight, the model %u", (unsigned long long)ev->id, ev->inflight,
           ev_infl[i]);
    else if (!ev->summary_due && w->ev_stopped[i] && ev_infl[i])
      fail(w, "D3: event %llu summarized with %u ops in flight", (unsigned long long)ev->id, ev_infl[i]);
  }
}

static void check(world *w) {
  const tally__state *st = &w->st;
  int64_t held[SIM_ACCOUNTS_MAX] = {0};
  int32_t item_held[SIM_ITEMS_MAX] = {0};
  int32_t pu_infl[SIM_ACCOUNTS_MAX][SIM_ITEMS_MAX];
  uint32_t ev_infl[SIM_EVENTS_MAX] = {0};
  int64_t infl_limited = 0; /* units in flight of drops with a per-buyer limit */
  memset(pu_infl, 0, st->account_count * sizeof pu_infl[0]);
  uint64_t open = 0;
  for (uint32_t i = 0; i < w->slots; i++) {
    const sbatch *b = &w->b[i];
    for (uint32_t k = 0; k < b->op_count; k++) {
      const tally__op *op = &b->ops[k];
      const rec *t = rec_of(w, op->transfer_id);
      open++;
      if (t->status != REC_DECIDED) {
        fail(w, "I5: transfer %llu in a batch but resolved", (unsigned long long)op->transfer_id);
        return;
      }
      for (int l = 0; l < t->leg_count; l++)
        if (t->legs[l].amount < 0 && st->accounts[t->legs[l].account].kind != TALLY__ACCOUNT_EXTERNAL)
          held[t->legs[l].account] -= t->legs[l].amount;
      if (t->kind == TALLY__TRANSFER_PURCHASE) {
        item_held[t->item] += (int32_t)t->qty;
        pu_infl[t->account][t->item] += (int32_t)t->qty;
        if (st->items[t->item].drop_per_user) infl_limited += t->qty;
      }
      if (op->event_id != t->event_id)
        fail(w, "D3: op %llu carries event %llu, the model put it in %llu", (unsigned long long)op->transfer_id,
             (unsigned long long)op->event_id, (unsigned long long)t->event_id);
      if (t->ev) ev_infl[t->ev - 1]++;
      if (t->kind == TALLY__TRANSFER_REFUND) {
        const tally__purchase *p = &st->purchases[op->purchase_slot];
        const rec *pr = rec_of(w, t->ref);
        if (!p->live || p->transfer_id != t->ref || p->refund_held != pr->refund_inflight ||
            p->refunded != pr->refunded)
          fail(w, "I4: purchase %llu in memory (live %d, id %llu, refunded %lld, in flight %lld) != model (%lld, %lld)",
               (unsigned long long)t->ref, p->live, (unsigned long long)p->transfer_id, (long long)p->refunded,
               (long long)p->refund_held, (long long)pr->refunded, (long long)pr->refund_inflight);
      }
    }
  }
  if (open != w->decided_open) fail(w, "I5: %llu ops in batches, %llu decided and unresolved", (unsigned long long)open, (unsigned long long)w->decided_open);
  __int128 total = 0;
  for (uint32_t a = 0; a < st->account_count; a++) {
    const tally__account *acc = &st->accounts[a];
    total += acc->balance;
    if (acc->balance != w->bal[a])
      fail(w, "I1: %s balance %lld, committed legs sum to %lld", acc->name, (long long)acc->balance, (long long)w->bal[a]);
    if (acc->held != held[a])
      fail(w, "I5: %s holds %lld, in-flight debits sum to %lld", acc->name, (long long)acc->held, (long long)held[a]);
    if (acc->kind != TALLY__ACCOUNT_EXTERNAL && (acc->held < 0 || acc->balance - acc->held < 0))
      fail(w, "I6: %s balance %lld held %lld", acc->name, (long long)acc->balance, (long long)acc->held);
  }
  if (total != 0) fail(w, "I1: balances sum to %lld", (long long)total);
  for (uint32_t i = 0; i < st->item_count; i++) {
    const tally__item *it = &st->items[i];
    if (it->sold != w->sold[i] || it->held != item_held[i])
      fail(w, "I2: %s sold %d held %d, model sold %d held %d", it->sku, it->sold, it->held, w->sold[i], item_held[i]);
    if (it->stock >= 0 && it->sold + it->held > it->stock)
      fail(w, "I2: %s sold %d + held %d > stock %d", it->sku, it->sold, it->held, it->stock);
  }
  bool quiet = true;
  for (uint32_t i = 0; i < w->slots; i++) quiet = quiet && (w->b[i].phase == SB_FREE || w->b[i].phase == SB_OPEN);
  if (quiet && w->db_count != w->applied_count)
    fail(w, "I7: nothing in flight, yet the ledger holds %llu transfers and memory applied %llu",
         (unsigned long long)w->db_count, (unsigned long long)w->applied_count);
  if (!w->r->failed) check_drops(w, pu_infl, infl_limited, ev_infl);
}

/* The model's per-buyer units in flight (kept as ops are decided and
 * resolved) equal those of the ops in the batches. */
static void check_model_units(world *w) {
  int32_t infl[SIM_ACCOUNTS_MAX][SIM_ITEMS_MAX];
  memset(infl, 0, sizeof infl);
  for (uint32_t s = 0; s < w->slots; s++)
    for (uint32_t k = 0; k < w->b[s].op_count; k++) {
      const rec *t = rec_of(w, w->b[s].ops[k].transfer_id);
      if (t->kind == TALLY__TRANSFER_PURCHASE) infl[t->account][t->item] += (int32_t)t->qty;
    }
  for (uint32_t a = 0; a < w->st.account_count; a++)
    for (uint32_t i = 0; i < w->st.item_count; i++)
      if (infl[a][i] != w->pu_held[a][i]) {
        fail(w, "sim: the model holds %d units of %s for %s, the batches %d", w->pu_held[a][i], w->st.items[i].sku,
             w->st.accounts[a].name, infl[a][i]);
        return;
      }
}

/* Every purchase memory still remembers agrees with the model. */
static void check_purchases(world *w) {
  check_model_units(w);
  for (uint32_t i = 0; i < w->purchase_count && !w->r->failed; i++) {
    uint64_t id = w->purchases[i];
    const rec *t = rec_of(w, id);
    uint32_t slot = tally__purchase_find(&w->st, id);
    if (t->status == REC_RELEASED && slot != TALLY__NONE)
      fail(w, "I5: released purchase %llu still refundable", (unsigned long long)id);
    if (slot == TALLY__NONE) continue;
    const tally__purchase *p = &w->st.purchases[slot];
    if (p->committed != (t->status == REC_APPLIED) || p->refunded != t->refunded || p->amount != t->amount)
      fail(w, "I4: purchase %llu in memory (committed %d, refunded %lld) != model (%d, %lld)",
           (unsigned long long)id, p->committed, (long long)p->refunded, t->status == REC_APPLIED,
           (long long)t->refunded);
  }
}

/* ---- the run ------------------------------------------------------------------------------------------------- */
static void step(world *w) {
  uint64_t r = below(w, 100);
  /* A drop storm against a slow database: mostly decisions, few answers. */
  if ((w->o.faults & SIM_FAULT_BIG_BATCHES) && r < 60) r = 0;
  if (r < 40) {
    step_decide(w);
  } else if (r < 58) {
    step_clock(w);
    live_tick(w);
  } else if (r < 75) {
    flush(w);
  } else if (r < 96) {
    sbatch *b = flight_due(w);
    if (b) db_answer(w, b, false);
  } else if (r < 98) {
    step_catalog(w);
  } else {
    step_live(w);
  }
}

/* Lets every batch finish cleanly, so that the final state is quiet. */
static void drain(world *w) {
  for (int round = 0; round < 64 && !w->r->failed; round++) {
    flush(w);
    for (uint32_t i = 0; i < w->slots && !w->r->failed; i++)
      if (w->b[i].phase == SB_FLIGHT) {
        w->inflight--;
        uint32_t n = db_commit(w, &w->b[i], w->inserted);
        batch_done(w, &w->b[i], w->inserted, n);
      }
    if (!w->r->failed) check(w);
  }
  if (w->r->failed) return;
  if (w->decided_open != 0) fail(w, "I5: %llu ops never resolved", (unsigned long long)w->decided_open);
  check_purchases(w);
}

int sim_run(const sim_options *o, sim_result *r) {
  memset(r, 0, sizeof *r);
  world *w = malloc(sizeof *w);
  if (!w || world_init(w, o, r)) {
    snprintf(r->why, sizeof r->why, "out of memory");
    r->failed = true;
    if (w) world_free(w);
    free(w);
    return 1;
  }
  char flags[256];
  sim_flags_text(o, flags, sizeof flags);
  snprintf(crash_line, sizeof crash_line, " (replay: tally_sim --seed %llu --steps %u%s)",
           (unsigned long long)o->seed, o->steps, flags);
  crash_active = 1;
  for (w->step = 1; w->step <= o->steps && !r->failed; w->step++) {
    crash_step = w->step;
    step(w);
    if (!r->failed) check(w);
    if (!r->failed && w->step % 256 == 0) check_purchases(w);
  }
  r->steps = w->step - 1;
  if (!r->failed) {
    w->step = o->steps + 1;
    drain(w);
  }
  crash_active = 0;
  world_free(w);
  free(w);
  return r->failed ? 1 : 0;
}

/* ---- names ---------------------------------------------------------------------------------------------------- */
static const char *const bug_names[SIM_BUG_COUNT] = {"none", "double-commit", "lost-sale", "skip-release",
                                                     "skip-per-user"};
static const char *const fault_names[] = {"fail-after-unknown", "huge-amounts", "old-refunds",
                                          "refund-fees", "replay-params", "replay-first", "big-batches"};

uint32_t sim_bug_parse(const char *name) {
  for (uint32_t i = 1; i < SIM_BUG_COUNT; i++)
    if (strcmp(name, bug_names[i]) == 0) return i;
  return SIM_BUG_NONE;
}

const char *sim_bug_name(uint32_t bug) { return bug < SIM_BUG_COUNT ? bug_names[bug] : "?"; }

bool sim_faults_parse(const char *list, uint32_t *out) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  uint32_t bits = 0;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (strcmp(t, "all") == 0) {
      bits |= (1u << (sizeof fault_names / sizeof fault_names[0])) - 1;
      continue;
    }
    size_t i = 0;
    while (i < sizeof fault_names / sizeof fault_names[0] && strcmp(t, fault_names[i]) != 0) i++;
    if (i == sizeof fault_names / sizeof fault_names[0]) return false;
    bits |= 1u << i;
  }
  *out = bits;
  return true;
}

void sim_flags_text(const sim_options *o, char *out, size_t n) {
  size_t k = 0;
  out[0] = 0;
  if (o->bug && k < n) k += (size_t)snprintf(out + k, n - k, " --inject-bug %s", sim_bug_name(o->bug));
  for (size_t i = 0; i < sizeof fault_names / sizeof fault_names[0] && k < n; i++)
    if (o->faults & (1u << i))
      k += (size_t)snprintf(out + k, n - k, "%s%s", k && strstr(out, "--faults") ? "," : " --faults ", fault_names[i]);
}
