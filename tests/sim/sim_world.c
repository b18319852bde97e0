/* sim_world.c — the crash report, the PRNG, failures, the model's records
 * and key maps, and building a world from a seed (sim_internal.h). */
#include "sim_internal.h"

const char *const chan_names[SIM_CHANNELS + 1] = {"", "#c1", "#c2", "#c3"};

/* ---- crash report ------------------------------------------------------------- */
volatile uint32_t crash_step;
volatile int crash_active, crash_to_stdout;
const char *crash_prefix = "";

/* Formatted before each run, outside the signal handler, which only
 * writes it. */
char crash_line[512];

void crash_write(void) {
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

void on_abort(int sig) {
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
uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

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
__attribute__((format(printf, 2, 3))) void fail(world *w, const char *fmt, ...) {
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

__attribute__((format(printf, 2, 3))) void trace(world *w, const char *fmt, ...) {
  if (!w->o.trace) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[%u] ", w->step);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ---- records and key maps ------------------------------------------------------------ */
rec *rec_of(world *w, uint64_t id) {
  if (id < SIM_ID_BASE || id - SIM_ID_BASE >= w->rec_cap) return NULL;
  return &w->recs[id - SIM_ID_BASE];
}

uint64_t key_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

uint64_t kmap_get(world *w, const kmap *m, const char *key) {
  for (size_t i = key_hash(key) & m->mask;; i = (i + 1) & m->mask) {
    if (m->ids[i] == 0) return 0;
    if (strcmp(rec_of(w, m->ids[i])->key, key) == 0) return m->ids[i];
  }
}

void kmap_put(world *w, kmap *m, uint64_t id) {
  const char *key = rec_of(w, id)->key;
  size_t i = key_hash(key) & m->mask;
  while (m->ids[i] != 0) i = (i + 1) & m->mask;
  m->ids[i] = id;
}

int kmap_init(kmap *m, uint64_t entries) {
  size_t cap = 16;
  while (cap < 2 * entries) cap *= 2;
  m->ids = calloc(cap, sizeof *m->ids);
  m->mask = cap - 1;
  return m->ids ? 0 : -1;
}

/* ---- the world --------------------------------------------------------------------------- */
uint32_t pick(world *w, const uint32_t *v, size_t n) { return v[below(w, n)]; }

void world_config(world *w) {
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

int world_accounts(world *w) {
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

int64_t random_price(world *w) {
  uint64_t r = below(w, 100);
  if (r < 50) return between(w, 1, 1000);
  if (r < 80) return between(w, 1, 100);
  if (r < 95) return between(w, 1000, 1000000);
  return between(w, 1, 999999999999999999LL); /* the parse limit: 18 digits */
}

int world_items(world *w) {
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


int world_init(world *w, const sim_options *o, sim_result *r) {
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

void world_free(world *w) {
  if (w->st_live) tally__state_free(&w->st);
  for (uint32_t i = 0; i < SIM_SLOTS_MAX; i++) free(w->b[i].ops);
  free(w->recs);
  free(w->purchases);
  free(w->inserted);
  free(w->db_keys.ids);
  free(w->applied_keys.ids);
}
