/* fuzz_command_line.c — an invariant fuzzer for the money rules: the decide
 * layer (core/src/model/decide.c) and the hold/commit/release rules of the state
 * (core/src/model/state.c), driven without the engine, PostgreSQL or I/O.
 *
 * Every command that moves money ends in one of tally__decide_buy, _tip,
 * _refund or _grant, and every decided op later either commits (its batch
 * reached PostgreSQL) or is released (its batch failed). The input is a
 * program: it picks a config, items, then a sequence of decisions with
 * fuzzed arguments, commits and releases of in-flight ops in any order,
 * clock steps and catalog changes (price, stock, delete) as ITEM SET/DEL
 * make them. After every step the state must satisfy the rules of state.h:
 *
 *   - every account but sys:external: held >= 0 and balance - held >= 0;
 *   - the balances sum to zero (sys:external goes negative by what was
 *     granted), computed in 128 bits so an overflow cannot hide it;
 *   - each account's held and each item's held equal the sums over the ops
 *     still in flight (nothing leaks when ops commit or fail in any order);
 *   - every item with limited stock: sold + held <= stock;
 *   - a refusal changes no money, stock, key or id;
 *   - spent_today stays within [0, daily_cap];
 *   - refunds never exceed the purchase, and a purchase refunded in full in
 *     any number of parts has returned exactly its fee.
 *
 * Input layout: 7 bytes of set-up (clock, fee, cap, refund window, three
 * items), then steps of one opcode byte and its
 * arguments; a missing byte reads as 0, and the program ends with the input.
 *
 * Build and run: tests/fuzz/run.sh (see docs/FUZZING.md); by hand:
 *   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -Icore/include -Icore/src/base -Icore/src/wire -Icore/src/receipts -Icore/src/model -Ischemas -Itests/fuzz \
 *     tests/fuzz/command_line/fuzz_command_line.c core/src/model/decide.c \
 *     core/src/model/state.c core/src/model/keys.c core/src/base/map.c core/src/base/split.c \
 *     core/src/model/audience_rows.c core/src/base/text.c core/src/base/config.c \
 *     core/src/base/errors.c -o build/fuzz/fuzz_command_line */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "fuzz_check.h"
#include "state.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
  SIM_INFLIGHT_MAX = 16, /* ops decided and not yet resolved */
  SIM_PURCHASES_MAX = 512,
  SIM_ITEMS = 3,
  SIM_USERS = 4, /* user:a user:b user:c user:d */
  SIM_KEYS = 24, /* distinct idempotency keys, so keys get reused */
  SIM_STEPS_MAX = 4096,
};

typedef struct sim_reader {
  const uint8_t *p, *end;
} sim_reader;

static uint8_t rd_u8(sim_reader *r) { return r->p < r->end ? *r->p++ : 0; }

static uint64_t rd_bytes(sim_reader *r, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | rd_u8(r);
  return v;
}

/* A positive amount: mostly small, sometimes up to INT64_MAX. */
static int64_t rd_amount(sim_reader *r) {
  uint8_t cls = rd_u8(r);
  uint64_t v;
  switch (cls % 5) {
  case 0: v = rd_u8(r); break;
  case 1: v = rd_bytes(r, 2); break;
  case 2: v = rd_bytes(r, 4); break;
  case 3: v = rd_bytes(r, 8) & INT64_MAX; break;
  default: v = (uint64_t)INT64_MAX - rd_u8(r); break;
  }
  return v == 0 ? 1 : (int64_t)v;
}

/* What the simulator remembers about one purchase it decided. */
typedef struct sim_purchase {
  uint64_t transfer_id;
  int64_t fee, fee_refunded; /* fee_refunded: fee parts of committed refunds */
  bool refund_released;       /* a refund of it failed */
} sim_purchase;

typedef struct sim {
  tally_config cfg;
  tally__state st;
  uint32_t users[SIM_USERS];
  uint32_t items[SIM_ITEMS];
  tally__op inflight[SIM_INFLIGHT_MAX];
  uint32_t inflight_count;
  sim_purchase purchases[SIM_PURCHASES_MAX];
  uint32_t purchase_count;
  int64_t wall_ms;
  uint64_t mono_ms;
  uint64_t req_id;
} sim;

static sim fuzz_sim; /* tally__state holds ~1 MB of fixed tables */

/* TALLY_FUZZ_TRACE=1 in the environment prints each step on stderr, to
 * read what a saved input does: replay_command_line <file>. */
static int fuzz_trace = -1;
#define SIM_TRACE(...)                                                         \
  do {                                                                         \
    if (fuzz_trace) fprintf(stderr, __VA_ARGS__);                              \
  } while (0)

static void sim_config(sim *s, sim_reader *r) {
  tally_config_init(&s->cfg);
  char v[32];
  char err[TALLY_ERRBUF_BYTES];
  /* The smallest tables the config allows, so each run is cheap (the rings
   * must hold twice what can be in flight: batch_max x (writers + 1)). */
  static const char *const small[][2] = {{"accounts_max", "16"}, {"items_max", "16"},
                                         {"keys_max", "1024"}, {"purchases_max", "1024"},
                                         {"batch_max", "64"}, {"writers", "2"}, {"dsn", "fuzz"}};
  for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
    FUZZ_CHECK(tally_config_set(&s->cfg, small[i][0], small[i][1], err, sizeof err) == TALLY_OK);
  uint8_t b = rd_u8(r);
  snprintf(v, sizeof v, "%u", b % 3 == 0 ? 0u : b % 3 == 1 ? 250u : 5000u - b);
  FUZZ_CHECK(tally_config_set(&s->cfg, "fee_bps", v, err, sizeof err) == TALLY_OK);
  b = rd_u8(r);
  snprintf(v, sizeof v, "%u", b & 1 ? 0u : (unsigned)b * 1000u);
  FUZZ_CHECK(tally_config_set(&s->cfg, "daily_cap", v, err, sizeof err) == TALLY_OK);
  b = rd_u8(r);
  snprintf(v, sizeof v, "%u", b & 1 ? 86400u : (unsigned)b * 60u);
  FUZZ_CHECK(tally_config_set(&s->cfg, "refund_window", v, err, sizeof err) == TALLY_OK);
  FUZZ_CHECK(tally_config_check(&s->cfg, err, sizeof err) == TALLY_OK);
}

static void sim_setup(sim *s, sim_reader *r) {
  memset(s->inflight, 0, sizeof s->inflight);
  s->inflight_count = 0;
  s->purchase_count = 0;
  s->wall_ms = 1700000000000LL + (int64_t)rd_u8(r) * 3600000;
  s->mono_ms = 1000;
  s->req_id = 1;
  sim_config(s, r);
  tally__state *st = &s->st;
  FUZZ_CHECK(tally__state_init(st, &s->cfg) == TALLY_OK);
  uint32_t i;
  FUZZ_CHECK(tally__account_get(st, "sys:fees", TALLY__ACCOUNT_FEES, &i) == TALLY_OK);
  st->fees = i;
  FUZZ_CHECK(tally__account_get(st, "sys:external", TALLY__ACCOUNT_EXTERNAL, &i) == TALLY_OK);
  st->external = i;
  static const char *const names[SIM_USERS] = {"user:a", "user:b", "user:c", "user:d"};
  for (int u = 0; u < SIM_USERS; u++)
    FUZZ_CHECK(tally__account_get(st, names[u], TALLY__ACCOUNT_USER, &s->users[u]) == TALLY_OK);
  static const char *const skus[SIM_ITEMS] = {"tee", "mug", "sticker"};
  for (int k = 0; k < SIM_ITEMS; k++) {
    FUZZ_CHECK(tally__item_add(st, skus[k], &s->items[k]) == TALLY_OK);
    tally__item *it = &st->items[s->items[k]];
    uint8_t b = rd_u8(r);
    it->creator = s->users[b % SIM_USERS];
    it->price = (int64_t)(b >> 2) * 50 + 1;
    it->stock = b & 1 ? -1 : (int32_t)(b >> 1) % 8;
    it->refund_window_s = s->cfg.refund_window_s;
    /* The last item is co-op when its byte says so: its creator and the
     * next user share it by a split derived from the same byte. */
    if (k == SIM_ITEMS - 1 && (b & 2)) {
      it->split.count = 2;
      it->split.account[0] = it->creator;
      it->split.account[1] = s->users[(b + 1) % SIM_USERS];
      it->split.bps[0] = (uint16_t)(1 + (b * 37u) % (TALLY__BPS_WHOLE - 1));
      it->split.bps[1] = (uint16_t)(TALLY__BPS_WHOLE - it->split.bps[0]);
    }
  }
}

/* ---- invariants ---------------------------------------------------------- */
static void sim_check(const sim *s) {
  const tally__state *st = &s->st;
  __int128 sum = 0;
  int64_t held[16] = {0};
  int32_t item_held[16] = {0};
  FUZZ_CHECK(st->account_count <= 16 && st->item_count <= 16);
  for (uint32_t k = 0; k < s->inflight_count; k++) {
    const tally__op *op = &s->inflight[k];
    for (int l = 0; l < op->leg_count; l++)
      if (op->legs[l].amount < 0 && op->legs[l].account != st->external)
        held[op->legs[l].account] -= op->legs[l].amount;
    if (op->kind == TALLY__TRANSFER_PURCHASE) item_held[op->item] += (int32_t)op->qty;
  }
  for (uint32_t i = 0; i < st->account_count; i++) {
    const tally__account *a = &st->accounts[i];
    sum += a->balance;
    FUZZ_CHECK(a->held == held[i]);
    if (i == st->external) continue;
    FUZZ_CHECK(a->held >= 0 && a->balance >= 0);
    FUZZ_CHECK(tally__account_available(a) >= 0);
    FUZZ_CHECK(a->spent_today >= 0);
    if (s->cfg.daily_cap_minor > 0) FUZZ_CHECK(a->spent_today <= s->cfg.daily_cap_minor);
  }
  FUZZ_CHECK(sum == 0);
  for (uint32_t i = 0; i < st->item_count; i++) {
    const tally__item *it = &st->items[i];
    FUZZ_CHECK(it->held == item_held[i] && it->sold >= 0);
    if (it->stock >= 0) FUZZ_CHECK((int64_t)it->sold + it->held <= it->stock);
  }
  uint32_t used = st->purchase_next < s->cfg.purchases_max ? st->purchase_next : s->cfg.purchases_max;
  for (uint32_t i = 0; i < used; i++) {
    const tally__purchase *p = &st->purchases[i];
    if (!p->live) continue;
    FUZZ_CHECK(p->refunded >= 0 && p->refund_held >= 0);
    FUZZ_CHECK(p->refunded + p->refund_held <= p->amount);
    FUZZ_CHECK(p->fee >= 0 && p->fee <= p->amount);
  }
}

/* Money, stock, keys and ids: what a refusal must leave alone. */
typedef struct sim_snapshot {
  int64_t balance[16], held[16];
  int32_t sold[16], item_held[16];
  uint64_t next_id;
  uint32_t key_next, purchase_next;
} sim_snapshot;

static void sim_snap(const tally__state *st, sim_snapshot *z) {
  memset(z, 0, sizeof *z);
  for (uint32_t i = 0; i < st->account_count; i++) {
    z->balance[i] = st->accounts[i].balance;
    z->held[i] = st->accounts[i].held;
  }
  for (uint32_t i = 0; i < st->item_count; i++) {
    z->sold[i] = st->items[i].sold;
    z->item_held[i] = st->items[i].held;
  }
  z->next_id = st->next_id;
  z->key_next = st->key_next;
  z->purchase_next = st->purchase_next;
}

/* ---- steps ----------------------------------------------------------------- */
static sim_purchase *sim_purchase_find(sim *s, uint64_t transfer_id) {
  for (uint32_t i = 0; i < s->purchase_count; i++)
    if (s->purchases[i].transfer_id == transfer_id) return &s->purchases[i];
  return NULL;
}

/* The legs of a decided op, checked against the rules of decide.c. */
static void sim_check_op(const sim *s, const tally__op *op, int64_t price_at_decision) {
  const tally__state *st = &s->st;
  int64_t sum = 0;
  FUZZ_CHECK(op->type == TALLY__OP_TRANSFER && op->leg_count >= 2 && op->leg_count <= TALLY__LEGS_MAX);
  for (int l = 0; l < op->leg_count; l++) {
    FUZZ_CHECK(op->legs[l].amount != 0 && op->legs[l].account < st->account_count);
    FUZZ_CHECK(!__builtin_add_overflow(sum, op->legs[l].amount, &sum));
  }
  FUZZ_CHECK(sum == 0 && op->amount > 0);
  if (op->kind == TALLY__TRANSFER_PURCHASE) {
    FUZZ_CHECK(op->qty >= 1 && op->qty <= TALLY__QTY_MAX);
    FUZZ_CHECK((__int128)price_at_decision * op->qty == op->amount);
    FUZZ_CHECK(op->fee == tally__bps_of(op->amount, s->cfg.fee_bps));
  }
}

static void sim_decided(sim *s, const tally__op *op) {
  FUZZ_CHECK(s->inflight_count < SIM_INFLIGHT_MAX);
  s->inflight[s->inflight_count++] = *op;
  if (op->kind == TALLY__TRANSFER_PURCHASE && s->purchase_count < SIM_PURCHASES_MAX)
    s->purchases[s->purchase_count++] = (sim_purchase){op->transfer_id, op->fee, 0, false};
}

static void sim_decide(sim *s, sim_reader *r, uint8_t what) {
  tally__state *st = &s->st;
  char key[16];
  snprintf(key, sizeof key, "m%u", rd_u8(r) % SIM_KEYS);
  uint64_t existing = UINT64_MAX;
  tally__decide_ctx ctx = {.wall_ms = s->wall_ms, .mono_ms = s->mono_ms, .req_id = s->req_id++,
                           .origin = "fuzz", .channel = "#fuzz", .key = key,
                           .existing_transfer = &existing};
  uint32_t user = s->users[rd_u8(r) % SIM_USERS];
  static tally__op op;
  memset(&op, 0xa5, sizeof op);
  sim_snapshot before, after;
  sim_snap(st, &before);
  int64_t price = 0;
  int rc;
  switch (what) {
  case 0: { /* BUY sku qty */
    uint32_t item = s->items[rd_u8(r) % SIM_ITEMS];
    uint32_t qty = rd_u8(r);
    price = st->items[item].price;
    rc = tally__decide_buy(st, &ctx, user, item, qty, &op);
    break;
  }
  case 1: { /* TIP user amount: to any account, sys ones are refused */
    uint32_t to = rd_u8(r) % st->account_count;
    rc = tally__decide_tip(st, &ctx, user, to, rd_amount(r), &op);
    break;
  }
  case 2: { /* REFUND receipt [amount] */
    uint8_t b = rd_u8(r);
    uint64_t receipt = s->purchase_count && b < 0xf0
                           ? s->purchases[b % s->purchase_count].transfer_id
                           : rd_bytes(r, 2);
    int64_t amount = rd_u8(r) & 1 ? 0 : rd_amount(r);
    rc = tally__decide_refund(st, &ctx, user, receipt, amount, &op);
    break;
  }
  default: { /* TALLY GRANT user amount */
    int64_t amount = rd_amount(r);
    rc = tally__decide_grant(st, &ctx, user, amount, &op);
    break;
  }
  }
  SIM_TRACE("decide %s by %s key %s -> %s", what == 0 ? "buy" : what == 1 ? "tip"
            : what == 2 ? "refund" : "grant", tally__account_name(st, user), key, tally_err_name(rc));
  if (rc == TALLY_OK)
    SIM_TRACE(": transfer %llu amount %lld fee %lld (in flight: %u)",
              (unsigned long long)op.transfer_id, (long long)op.amount, (long long)op.fee,
              s->inflight_count + 1);
  SIM_TRACE("\n");
  if (rc == TALLY_OK) {
    sim_check_op(s, &op, price);
    sim_decided(s, &op);
    return;
  }
  FUZZ_CHECK(rc < 0 && strcmp(tally_err_name(rc), "UNKNOWN") != 0);
  if (rc == TALLY_EEXISTS) FUZZ_CHECK(existing != UINT64_MAX);
  sim_snap(st, &after);
  FUZZ_CHECK(memcmp(&before, &after, sizeof before) == 0);
}

/* Resolves in-flight op k the way tally__engine_batch_done and
 * tally__engine_batch_failed do. */
static void sim_resolve(sim *s, uint32_t k, bool commit) {
  tally__state *st = &s->st;
  tally__op op = s->inflight[k];
  s->inflight[k] = s->inflight[--s->inflight_count];
  SIM_TRACE("%s transfer %llu (kind %u, amount %lld, fee %lld)\n", commit ? "commit" : "release",
            (unsigned long long)op.transfer_id, op.kind, (long long)op.amount, (long long)op.fee);
  if (commit) {
    tally__op_commit(st, &op);
    st->keys[op.key_slot].state = TALLY__KEY_DONE;
    if (op.kind == TALLY__TRANSFER_REFUND) {
      sim_purchase *p = sim_purchase_find(s, op.ref_transfer);
      FUZZ_CHECK(p != NULL);
      p->fee_refunded += op.fee;
      const tally__purchase *tp = &st->purchases[op.purchase_slot];
      FUZZ_CHECK(tp->transfer_id == op.ref_transfer);
      if (tp->refunded == tp->amount) FUZZ_CHECK(p->fee_refunded == p->fee);
      FUZZ_CHECK(p->fee_refunded <= p->fee);
    }
  } else {
    tally__op_release(st, &op);
    tally__key_forget(st, op.key_slot);
    sim_purchase *p = op.kind == TALLY__TRANSFER_REFUND ? sim_purchase_find(s, op.ref_transfer) : NULL;
    if (p) p->refund_released = true;
  }
}

/* ITEM SET price|stock and ITEM DEL, as core/src/cmd_admin.c applies them. */
static void sim_item_admin(sim *s, sim_reader *r) {
  tally__item *it = &s->st.items[s->items[rd_u8(r) % SIM_ITEMS]];
  uint8_t b = rd_u8(r);
  switch (b % 4) {
  case 0: it->price = rd_amount(r); break;
  case 1: it->stock = -1; break;
  case 2: {
    int64_t stock = (int64_t)(rd_u8(r) % 8) + it->sold + it->held;
    if (stock <= INT32_MAX) it->stock = (int32_t)stock;
    break;
  }
  default: it->deleted = !it->deleted; break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (fuzz_trace < 0) fuzz_trace = getenv("TALLY_FUZZ_TRACE") != NULL;
  sim *s = &fuzz_sim;
  sim_reader r = {data, data + size};
  sim_setup(s, &r);
  sim_check(s);
  for (int step = 0; step < SIM_STEPS_MAX && r.p < r.end; step++) {
    uint8_t what = rd_u8(&r);
    switch (what % 8) {
    case 0: case 1: case 2: case 3:
      if (s->inflight_count < SIM_INFLIGHT_MAX) sim_decide(s, &r, what % 4);
      break;
    case 4: case 5:
      if (s->inflight_count) sim_resolve(s, rd_u8(&r) % s->inflight_count, what % 8 == 4);
      break;
    case 6: { /* clock: seconds to days, never backwards */
      uint64_t step_ms = (uint64_t)rd_u8(&r) * (what & 8 ? 3600000u : 1000u);
      s->wall_ms += (int64_t)step_ms;
      s->mono_ms += step_ms;
      break;
    }
    default: sim_item_admin(s, &r); break;
    }
    sim_check(s);
  }
  /* Whatever was left in flight resolves too: by commit or by failure. */
  while (s->inflight_count) {
    sim_resolve(s, s->inflight_count - 1, (s->inflight_count & 1) != 0);
    sim_check(s);
  }
  tally__state_free(&s->st);
  return 0;
}
