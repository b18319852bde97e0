/* state.c — tables of the in-memory model and the hold/commit/release rules
 * that keep it consistent with any subset of batches committing. */
#include "state.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct name_probe {
  const tally__state *st;
  const char *name;
} name_probe;

static bool account_name_eq(const void *ud, uint32_t i) {
  const name_probe *p = ud;
  return strcmp(p->st->accounts[i].name, p->name) == 0;
}
static bool item_sku_eq(const void *ud, uint32_t i) {
  const name_probe *p = ud;
  return strcmp(p->st->items[i].sku, p->name) == 0;
}
static bool key_eq(const void *ud, uint32_t i) {
  const name_probe *p = ud;
  return strcmp(p->st->keys[i].key, p->name) == 0;
}
static bool purchase_id_eq(const void *ud, uint32_t i) {
  const tally__state *st = ((const name_probe *)ud)->st;
  return st->purchases[i].transfer_id == *(const uint64_t *)((const name_probe *)ud)->name;
}

int tally__state_init(tally__state *st, const tally_config *cfg) {
  memset(st, 0, sizeof *st);
  st->cfg = cfg;
  st->accounts = calloc(cfg->accounts_max, sizeof *st->accounts);
  st->items = calloc(cfg->items_max, sizeof *st->items);
  st->purchases = calloc(cfg->purchases_max, sizeof *st->purchases);
  st->keys = calloc(cfg->keys_max, sizeof *st->keys);
  st->dirty_accounts = calloc(cfg->accounts_max, sizeof *st->dirty_accounts);
  st->dirty_items = calloc(cfg->items_max, sizeof *st->dirty_items);
  if (!st->accounts || !st->items || !st->purchases || !st->keys || !st->dirty_accounts ||
      !st->dirty_items || tally__map_init(&st->account_by_name, cfg->accounts_max) ||
      tally__map_init(&st->item_by_sku, cfg->items_max) ||
      tally__map_init(&st->purchase_by_id, cfg->purchases_max) ||
      tally__map_init(&st->key_by_hash, cfg->keys_max) ||
      tally__map_init(&st->channel_by_name, TALLY__CHANNELS_MAX)) {
    tally__state_free(st);
    return TALLY_ENOMEM;
  }
  st->next_id = 1000;
  return TALLY_OK;
}

void tally__state_free(tally__state *st) {
  free(st->accounts);
  free(st->items);
  free(st->purchases);
  free(st->keys);
  free(st->dirty_accounts);
  free(st->dirty_items);
  tally__map_free(&st->account_by_name);
  tally__map_free(&st->item_by_sku);
  tally__map_free(&st->purchase_by_id);
  tally__map_free(&st->key_by_hash);
  tally__map_free(&st->channel_by_name);
  memset(st, 0, sizeof *st);
}

uint64_t tally__state_take_id(tally__state *st) {
  uint64_t id = st->next_id++;
  assert(st->next_id > id);
  return id;
}

/* ---- accounts -------------------------------------------------------------- */
uint32_t tally__account_find(const tally__state *st, const char *name) {
  name_probe p = {st, name};
  return tally__map_find(&st->account_by_name, tally__hash_str(name), account_name_eq, &p);
}

int tally__account_get(tally__state *st, const char *name, uint8_t kind, uint32_t *index) {
  uint32_t i = tally__account_find(st, name);
  if (i != TALLY__NONE) {
    *index = i;
    return TALLY_OK;
  }
  /* Names go into receipts, whose strings are at most TALLY_NAME_BYTES_MAX. */
  if (strlen(name) > TALLY_NAME_BYTES_MAX) return TALLY_ETOOBIG;
  if (st->account_count >= st->cfg->accounts_max) return TALLY_ETOO_MANY;
  i = st->account_count;
  tally__account *a = &st->accounts[i];
  memset(a, 0, sizeof *a);
  a->id = tally__state_take_id(st);
  a->kind = kind;
  strcpy(a->name, name);
  int rc = tally__map_put(&st->account_by_name, tally__hash_str(name), i);
  if (rc) return rc;
  st->account_count++;
  *index = i;
  return TALLY_OK;
}

int64_t tally__account_available(const tally__account *a) { return a->balance - a->held; }

void tally__account_mark_dirty(tally__state *st, uint32_t index) {
  tally__account *a = &st->accounts[index];
  if (a->dirty_listed) return;
  assert(st->dirty_account_count < st->cfg->accounts_max);
  a->dirty_listed = true;
  st->dirty_accounts[st->dirty_account_count++] = index;
}

void tally__account_note_receipt(tally__account *a, uint64_t transfer_id) {
  a->recent[a->recent_next % TALLY__RECENT_RECEIPTS] = transfer_id;
  a->recent_next++;
}

/* ---- items ----------------------------------------------------------------- */
uint32_t tally__item_find(const tally__state *st, const char *sku) {
  name_probe p = {st, sku};
  return tally__map_find(&st->item_by_sku, tally__hash_str(sku), item_sku_eq, &p);
}

int tally__item_add(tally__state *st, const char *sku, uint32_t *index) {
  assert(tally__item_find(st, sku) == TALLY__NONE);
  if (strlen(sku) > TALLY__SKU_BYTES_MAX) return TALLY_ETOOBIG;
  if (st->item_count >= st->cfg->items_max) return TALLY_ETOO_MANY;
  uint32_t i = st->item_count;
  tally__item *it = &st->items[i];
  memset(it, 0, sizeof *it);
  it->id = tally__state_take_id(st);
  it->stock = -1;
  strcpy(it->sku, sku);
  int rc = tally__map_put(&st->item_by_sku, tally__hash_str(sku), i);
  if (rc) return rc;
  st->item_count++;
  *index = i;
  return TALLY_OK;
}

void tally__item_mark_dirty(tally__state *st, uint32_t index) {
  tally__item *it = &st->items[index];
  it->dirty = true;
  it->version++;
  if (it->dirty_listed) return;
  it->dirty_listed = true;
  st->dirty_items[st->dirty_item_count++] = index;
}

int32_t tally__item_left(const tally__item *it) {
  if (it->stock < 0) return -1;
  int32_t left = it->stock - it->sold - it->held;
  assert(left >= 0);
  return left;
}

/* ---- idempotency keys ------------------------------------------------------ */
uint32_t tally__key_find(const tally__state *st, const char *key) {
  name_probe p = {st, key};
  return tally__map_find(&st->key_by_hash, tally__hash_str(key), key_eq, &p);
}

uint32_t tally__key_add(tally__state *st, const char *key, uint64_t fingerprint,
                        uint64_t transfer_id, uint8_t key_state, int64_t now_ms) {
  assert(strlen(key) <= TALLY__KEY_BYTES_MAX);
  uint32_t slot = st->key_next++ % st->cfg->keys_max;
  tally__key *k = &st->keys[slot];
  /* The ring forgets the oldest key; one still in flight is never evicted
   * because keys_max is far above the operations that can be in flight. */
  if (k->state != TALLY__KEY_FREE) {
    assert(k->state == TALLY__KEY_DONE);
    tally__key_forget(st, slot);
  }
  k->hash = tally__hash_str(key);
  k->fingerprint = fingerprint;
  k->transfer_id = transfer_id;
  k->created_ms = now_ms;
  k->state = key_state;
  strcpy(k->key, key);
  int rc = tally__map_put(&st->key_by_hash, k->hash, slot);
  assert(rc == TALLY_OK);
  (void)rc;
  return slot;
}

void tally__key_forget(tally__state *st, uint32_t slot) {
  tally__key *k = &st->keys[slot];
  if (k->state == TALLY__KEY_FREE) return;
  bool found = tally__map_del(&st->key_by_hash, k->hash, slot);
  assert(found);
  (void)found;
  k->state = TALLY__KEY_FREE;
}

/* ---- purchases ------------------------------------------------------------- */
uint32_t tally__purchase_find(const tally__state *st, uint64_t transfer_id) {
  name_probe p = {st, (const char *)&transfer_id};
  return tally__map_find(&st->purchase_by_id, tally__hash_u64(transfer_id), purchase_id_eq, &p);
}

uint32_t tally__purchase_add(tally__state *st, const tally__purchase *src) {
  uint32_t slot = st->purchase_next++ % st->cfg->purchases_max;
  tally__purchase *p = &st->purchases[slot];
  if (p->live) {
    assert(p->committed && p->refund_held == 0);
    tally__purchase_forget(st, slot);
  }
  *p = *src;
  p->live = true;
  int rc = tally__map_put(&st->purchase_by_id, tally__hash_u64(p->transfer_id), slot);
  assert(rc == TALLY_OK);
  (void)rc;
  return slot;
}

void tally__purchase_forget(tally__state *st, uint32_t slot) {
  tally__purchase *p = &st->purchases[slot];
  if (!p->live) return;
  bool found = tally__map_del(&st->purchase_by_id, tally__hash_u64(p->transfer_id), slot);
  assert(found);
  (void)found;
  p->live = false;
}

/* ---- money movement -------------------------------------------------------- */
static bool leg_is_held(const tally__state *st, const tally__leg *leg) {
  return leg->amount < 0 && st->accounts[leg->account].kind != TALLY__ACCOUNT_EXTERNAL;
}

void tally__op_hold(tally__state *st, const tally__op *op) {
  assert(op->type == TALLY__OP_TRANSFER && op->leg_count >= 2);
  int64_t sum = 0;
  for (int i = 0; i < op->leg_count; i++) {
    const tally__leg *leg = &op->legs[i];
    assert(leg->amount != 0);
    sum += leg->amount;
    if (!leg_is_held(st, leg)) continue;
    tally__account *a = &st->accounts[leg->account];
    a->held -= leg->amount;
    assert(tally__account_available(a) >= 0);
  }
  assert(sum == 0);
  if (op->kind == TALLY__TRANSFER_PURCHASE) {
    tally__item *it = &st->items[op->item];
    it->held += (int32_t)op->qty;
    assert(it->stock < 0 || it->sold + it->held <= it->stock);
  }
  if (op->kind == TALLY__TRANSFER_REFUND) st->purchases[op->purchase_slot].refund_held += op->amount;
}

void tally__op_commit(tally__state *st, const tally__op *op) {
  if (op->welcome) st->accounts[op->account].welcome_inflight = false;
  for (int i = 0; i < op->leg_count; i++) {
    const tally__leg *leg = &op->legs[i];
    tally__account *a = &st->accounts[leg->account];
    if (leg_is_held(st, leg)) {
      a->held += leg->amount;
      assert(a->held >= 0);
    }
    a->balance += leg->amount;
    assert(a->kind == TALLY__ACCOUNT_EXTERNAL || tally__account_available(a) >= 0);
  }
  if (op->kind == TALLY__TRANSFER_PURCHASE) {
    tally__item *it = &st->items[op->item];
    it->held -= (int32_t)op->qty;
    it->sold += (int32_t)op->qty;
    assert(it->held >= 0 && (it->stock < 0 || it->sold + it->held <= it->stock));
    st->purchases[op->purchase_slot].committed = true;
  }
  if (op->kind == TALLY__TRANSFER_REFUND) {
    tally__purchase *p = &st->purchases[op->purchase_slot];
    p->refund_held -= op->amount;
    p->refunded += op->amount;
    assert(p->refund_held >= 0 && p->refunded <= p->amount);
  }
}

void tally__op_release(tally__state *st, const tally__op *op) {
  if (op->welcome) st->accounts[op->account].welcome_inflight = false;
  for (int i = 0; i < op->leg_count; i++) {
    const tally__leg *leg = &op->legs[i];
    if (!leg_is_held(st, leg)) continue;
    tally__account *a = &st->accounts[leg->account];
    a->held += leg->amount;
    assert(a->held >= 0);
  }
  tally__account *payer = &st->accounts[op->account];
  if ((op->kind == TALLY__TRANSFER_PURCHASE || op->kind == TALLY__TRANSFER_TIP) &&
      payer->spent_day == tally__utc_day(op->created_ms))
    payer->spent_today -= op->amount;
  if (op->kind == TALLY__TRANSFER_PURCHASE) {
    tally__item *it = &st->items[op->item];
    it->held -= (int32_t)op->qty;
    assert(it->held >= 0);
    tally__purchase_forget(st, op->purchase_slot);
  }
  if (op->kind == TALLY__TRANSFER_REFUND) st->purchases[op->purchase_slot].refund_held -= op->amount;
}

int32_t tally__utc_day(int64_t wall_ms) { return (int32_t)(wall_ms / 86400000); }
