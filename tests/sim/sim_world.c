/* sim_world.c — the crash report, the PRNG, failures, maps, and building a
 * world from a seed: a real engine in the simulated environment, its
 * people and items set up through commands (sim_internal.h). */
#include "sim_internal.h"

#include "goals.h"
#include "quiz.h"
#include "rewards.h"

const char *const chan_names[SIM_CHANNELS + 1] = {"", "#c1", "#c2", "#c3"};

/* ---- crash report ------------------------------------------------------------- */
volatile uint32_t crash_step;
volatile int crash_active;
static volatile int crash_to_stdout;
static const char *crash_prefix = "";

/* Formatted before each run, outside the signal handler, which only
 * writes it. */
char crash_line[512];

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


/* ---- PRNG: splitmix64 seeds xoshiro256** ------------------------------------------ */
static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rnd(world *w) {
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
uint64_t below(world *w, uint64_t n) {
  return (uint64_t)(((unsigned __int128)rnd(w) * n) >> 64);
}
int64_t between(world *w, int64_t lo, int64_t hi) {
  return lo + (int64_t)below(w, (uint64_t)(hi - lo) + 1);
}
bool chance(world *w, uint32_t percent) { return below(w, 100) < percent; }

/* ---- failures --------------------------------------------------------------------- */
void fail(world *w, const char *fmt, ...) {
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

void trace(world *w, const char *fmt, ...) {
  if (!w->o.trace) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[%u] ", w->step);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ---- maps ---------------------------------------------------------------------------------- */
uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h ? h : 1;
}

int umap_init(umap *m, size_t entries) {
  size_t cap = 16;
  while (cap < 2 * entries) cap *= 2;
  m->keys = calloc(cap, sizeof *m->keys);
  m->vals = calloc(cap, sizeof *m->vals);
  m->mask = cap - 1;
  return m->keys && m->vals ? 0 : -1;
}

void umap_free(umap *m) {
  free(m->keys);
  free(m->vals);
}

static size_t umap_slot(const umap *m, uint64_t key) {
  size_t i = (size_t)(key * 0x9e3779b97f4a7c15ull) & m->mask;
  while (m->vals[i] && m->keys[i] != key) i = (i + 1) & m->mask;
  return i;
}

uint32_t umap_get(const umap *m, uint64_t key) { return m->vals[umap_slot(m, key)]; }

void umap_put(umap *m, uint64_t key, uint32_t val) {
  size_t i = umap_slot(m, key);
  m->keys[i] = key;
  m->vals[i] = val;
}

/* ---- the world ------------------------------------------------------------------------------ */
static uint32_t pick(world *w, const uint32_t *v, size_t n) { return v[below(w, n)]; }

static void world_config(world *w) {
  static const uint32_t keys[] = {1024, 4096}, purchases[] = {1024, 4096};
  static const uint32_t batch[] = {1, 2, 8, 16, 64, 64, 64}; /* 1 and 2: "busy" under load */
  static const uint32_t fees[] = {0, 1, 250, 333, 5000};
  tally_config *c = &w->cfg;
  tally_config_init(c);
  c->dsn = "sim: no database";
  c->signing_key_path = w->key_path;
  c->accounts_max = 64;
  c->items_max = SIM_ENGINE_ITEMS;
  c->keys_max = pick(w, keys, 2);
  c->purchases_max = pick(w, purchases, 2);
  c->coop_purchases_max = 64;
  c->queue_depth = 1024;
  c->rate_account_per_min = 0;
  c->rate_channel_per_min = 0;
  c->grant_max_major = 0;
  c->batch_max = pick(w, batch, sizeof batch / sizeof batch[0]);
  c->writers = (uint32_t)between(w, 1, SIM_WRITERS_MAX);
  c->fee_bps = chance(w, 70) ? pick(w, fees, 5) : (uint32_t)between(w, 0, 5000);
  c->daily_cap_minor = chance(w, 70) ? 0 : between(w, 1, 5000000);
  c->refund_window_s = chance(w, 80) ? 86400 : (uint32_t)between(w, 0, 600);
  c->pending_timeout_ms = (uint32_t)between(w, 100, 5000);
  c->reward_min_account_age_s = 0; /* buyers made a moment ago may win a quiz */
  w->writers = c->writers;
}

/* The state an engine loads from an empty ledger: its two system accounts
 * (the migrations create them; tally__engine_load reads them). */
static int empty_ledger(world *w) {
  tally__state *st = &w->e->st;
  if (tally__account_get(st, "sys:fees", TALLY__ACCOUNT_FEES, &st->fees) ||
      tally__account_get(st, "sys:external", TALLY__ACCOUNT_EXTERNAL, &st->external))
    return -1;
  st->accounts[st->fees].persisted = st->accounts[st->external].persisted = true;
  /* Features that make their tables at restore, as from an empty ledger. */
  tally__engine *e = (tally__engine *)w->e;
  if (!(e->feature_data[TALLY__FDATA_REWARDS] = calloc(1, sizeof(tally__rewards))) ||
      !(e->feature_data[TALLY__FDATA_QUIZ] = calloc(1, sizeof(tally__quizzes))) ||
      !(e->feature_data[TALLY__FDATA_GOALS] = calloc(1, sizeof(tally__goals))))
    return -1;
  w->e->lease_epoch = 1;
  w->e->ready = true;
  return 0;
}

/* Everything the run set up through commands is committed before it starts. */
static void settle_all(world *w) {
  for (int round = 0; round < 256 && !w->r->failed; round++) {
    tally__engine_flush((tally__engine *)w->e);
    collect(w);
    if (!env_busy(w) && quiet(w)) return;
    for (uint32_t k = 0; k < w->writers; k++)
      if (w->wr[k].b) env_answer(w, &w->wr[k], true);
    collect(w);
  }
}

static int64_t random_price(world *w) {
  uint64_t r = below(w, 100);
  if (r < 50) return between(w, 1, 1000);
  if (r < 85) return between(w, 1, 100);
  return between(w, 1000, 100000);
}

static void settle_all(world *w);

/* A set-up command, let through before the next (none may be busy). */
static void setup_say(world *w, const char *account, const char *channel, const char *msg_id, const char *text,
                      uint32_t roles) {
  say(w, account, channel, msg_id, text, roles);
  settle_all(w);
}

/* Creators (the creator role), their items, funded buyers: all commands. */
static void world_people(world *w) {
  char text[SIM_TEXT], who[16];
  uint32_t op = TALLY_ROLE_OPER | TALLY_ROLE_GRANT;
  w->creators = (uint32_t)between(w, 1, SIM_CREATORS_MAX);
  w->buyers = (uint32_t)between(w, 2, SIM_BUYERS_MAX);
  for (uint32_t c = 0; c < w->creators; c++) {
    snprintf(text, sizeof text, "TALLY ROLE c%u creator", c);
    setup_say(w, "op", "", NULL, text, op);
  }
  settle_all(w);
  w->items = (uint32_t)between(w, 1, 8);
  for (uint32_t i = 0; i < w->items; i++) {
    uint32_t c = (uint32_t)below(w, w->creators);
    snprintf(w->item_sku[i], sizeof w->item_sku[i], "sku%u", i);
    w->item_creator[i] = (int8_t)c;
    snprintf(who, sizeof who, "c%u", c);
    if (chance(w, 35))
      snprintf(text, sizeof text, "ITEM ADD sku%u %lld Item %u", i, (long long)random_price(w), i);
    else
      snprintf(text, sizeof text, "ITEM ADD sku%u %lld %lld Item %u", i, (long long)random_price(w),
               (long long)between(w, 0, 40), i);
    setup_say(w, who, "", NULL, text, 0);
    if (w->creators >= 2 && chance(w, 40)) { /* a co-op item: its creators share each sale */
      uint32_t first = (uint32_t)between(w, 1, 9999);
      snprintf(text, sizeof text, "ITEM SET sku%u split c0:%u,c1:%u", i, first, 10000 - first);
      setup_say(w, who, "", NULL, text, 0);
    }
  }
  /* Each creator's reward "r", which their quizzes give (step_live). */
  for (uint32_t c = 0; c < w->creators; c++) {
    snprintf(who, sizeof who, "c%u", c);
    if (chance(w, 60))
      snprintf(text, sizeof text, "REWARD ADD r discount=%lld%% for=%llds", (long long)between(w, 1, 90),
               (long long)between(w, 30, 120));
    else
      snprintf(text, sizeof text, "REWARD ADD r discount=%lld.%02lld for=%llds", (long long)between(w, 0, 3),
               (long long)between(w, 1, 99), (long long)between(w, 30, 120));
    setup_say(w, who, "", NULL, text, 0);
    /* And "f", a free unit of one of their items (kind 6 transfers), when they sell one. */
    for (uint32_t i = 0; i < w->items; i++) {
      if (w->item_creator[i] != (int8_t)c) continue;
      snprintf(text, sizeof text, "REWARD ADD f free=%s for=%llds", w->item_sku[i], (long long)between(w, 30, 120));
      setup_say(w, who, "", NULL, text, 0);
      break;
    }
  }
  for (uint32_t b = 0; b < w->buyers; b++) {
    snprintf(text, sizeof text, "TALLY GRANT b%u %lld", b, (long long)between(w, 0, 20000));
    setup_say(w, "op", "", NULL, text, op);
  }
  settle_all(w);
}

/* The signing key is made by the first run and shared by the others. */
static void key_remove(void) {
  char path[80];
  snprintf(path, sizeof path, "/tmp/tally-sim-%d.pem", (int)getpid());
  unlink(path);
  snprintf(path, sizeof path, "/tmp/tally-sim-%d.pem.pub", (int)getpid());
  unlink(path);
}

int world_init(world *w, const sim_options *o, sim_result *r) {
  memset(w, 0, sizeof *w);
  w->o = *o;
  w->r = r;
  uint64_t x = o->seed;
  for (int i = 0; i < 4; i++) w->g[i] = splitmix64(&x);
  static bool key_cleanup;
  if (!key_cleanup) key_cleanup = atexit(key_remove) == 0;
  snprintf(w->key_path, sizeof w->key_path, "/tmp/tally-sim-%d.pem", (int)getpid());
  world_config(w);
  w->wall = SIM_WALL_START + between(w, 0, 86400000);
  w->mono = 1000000;
  /* Transfers: at most one per command, a few per step. */
  w->tx_cap = 4096 + 4 * o->steps;
  w->req_cap = 4096 + 4 * (uint64_t)o->steps;
  w->tx = calloc(w->tx_cap, sizeof *w->tx);
  w->reqs = calloc(w->req_cap, sizeof *w->reqs);
  w->tx_of_req = calloc(w->req_cap, sizeof *w->tx_of_req);
  w->db_bal = calloc(w->cfg.accounts_max, sizeof *w->db_bal);
  w->grant_cap = SIM_GRANTS_MAX;
  w->grants = calloc(w->grant_cap, sizeof *w->grants);
  w->levels = calloc(SIM_LEVELS_MAX, sizeof *w->levels);
  if (!w->tx || !w->reqs || !w->tx_of_req || !w->db_bal || !w->grants || !w->levels || umap_init(&w->grant_by_id, w->grant_cap) ||
      umap_init(&w->tx_by_id, w->tx_cap) ||
      umap_init(&w->tx_by_key, w->tx_cap) || umap_init(&w->batches_stored, w->tx_cap) ||
      umap_init(&w->first_receipt, w->req_cap))
    return -1;
  char err[TALLY_ERRBUF_BYTES] = "";
  if (tally_engine_new(&w->cfg, &w->e, err, sizeof err) != TALLY_OK) {
    fprintf(stderr, "tally_sim: %s\n", err);
    return -1;
  }
  w->e->env = &sim_env;
  w->e->env_ud = w;
  if (empty_ledger(w)) return -1;
  w->setup = true;
  world_people(w);
  w->setup = false;
  w->key_pool = (uint32_t)between(w, 4, SIM_KEY_POOL_MAX);
  w->fresh_pct = (uint32_t)between(w, 30, 90);
  return w->r->failed ? 1 : 0;
}

void world_free(world *w) {
  if (w->e) tally_engine_free(w->e);
  free(w->tx);
  free(w->reqs);
  free(w->tx_of_req);
  free(w->db_bal);
  free(w->grants);
  free(w->levels);
  umap_free(&w->grant_by_id);
  umap_free(&w->tx_by_id);
  umap_free(&w->tx_by_key);
  umap_free(&w->batches_stored);
  umap_free(&w->first_receipt);
}

