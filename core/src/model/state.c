/* state.c — tables of the in-memory model and the hold/commit/release rules
 * that keep it consistent with any subset of batches committing. */
#include "state.h"
#include "test_fault.h"

#include <assert.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "text.h"

typedef struct name_probe {
  const tally__state *st;
  const char *name;
} name_probe;

static bool account_name_eq(const void *ud, uint32_t i) {
  const name_probe *p = ud;
  return strcmp(tally__account_name(p->st, i), p->name) == 0;
}
static bool item_sku_eq(const void *ud, uint32_t i) {
  const name_probe *p = ud;
  return strcmp(p->st->items[i].sku, p->name) == 0;
}

int tally__state_init(tally__state *st, const tally_config *cfg) {
  memset(st, 0, sizeof *st);
  st->cfg = cfg;
  st->accounts = calloc(cfg->accounts_max, sizeof *st->accounts);
  st->items = calloc(cfg->items_max, sizeof *st->items);
  st->purchases = tally__alloc_big((size_t)cfg->purchases_max * sizeof *st->purchases);
  st->keys = tally__alloc_big((size_t)cfg->keys_max * sizeof *st->keys);
  st->consents = tally__alloc_big((size_t)TALLY__CONSENTS_PENDING_MAX * sizeof *st->consents);
  st->events = calloc(TALLY__EVENTS_MAX, sizeof *st->events);
  st->per_user = tally__alloc_big((size_t)cfg->purchases_max * sizeof *st->per_user);
  st->agreed = tally__alloc_big((size_t)cfg->purchases_max * sizeof *st->agreed);
  st->dirty_accounts = calloc(cfg->accounts_max, sizeof *st->dirty_accounts);
  st->dirty_items = calloc(cfg->items_max, sizeof *st->dirty_items);
  /* Untouched pages of these cost nothing until co-op items or raffles are used. */
  st->coop = tally__alloc_big((size_t)cfg->coop_purchases_max * sizeof *st->coop);
  st->entries = tally__alloc_big((size_t)TALLY__RAFFLE_ENTRIES_MAX * sizeof *st->entries);
  st->draw_scratch = tally__alloc_big((size_t)TALLY__RAFFLE_ENTRIES_MAX * sizeof *st->draw_scratch);
  st->audience = tally__alloc_big((size_t)TALLY__AUDIENCE_MAX * sizeof *st->audience);
  st->dirty_audience = calloc(TALLY__AUDIENCE_MAX, sizeof *st->dirty_audience);
  st->highlights = calloc(TALLY__HIGHLIGHTS_SLOTS, sizeof *st->highlights);
  st->ship_notes = calloc(TALLY__SHIP_NOTES_KEPT, sizeof *st->ship_notes);
  st->bios = calloc(TALLY__BIOS_MAX, sizeof *st->bios);
  if (!st->highlights || !st->ship_notes || !st->bios || !st->coop || !st->entries || !st->draw_scratch || !st->audience || !st->dirty_audience ||
      tally__map_init(&st->audience_index, TALLY__AUDIENCE_MAX) ||!st->accounts || !st->items || !st->purchases || !st->keys || !st->consents || !st->events ||
      !st->per_user || tally__map_init(&st->per_user_index, cfg->purchases_max) || !st->dirty_accounts ||
      !st->agreed || tally__map_init(&st->agreed_index, cfg->purchases_max) ||
      !st->dirty_items || tally__map_init(&st->account_by_name, cfg->accounts_max) ||
      tally__map_init(&st->identity_by_name, cfg->accounts_max) ||
      tally__map_init(&st->item_by_sku, cfg->items_max) ||
      tally__keys_init(st) ||
      tally__map_init(&st->channel_by_name, TALLY__CHANNELS_MAX) ||
      /* A name for every account, two for every op in flight, one for every
       * raffle entry, and some for commands being handled. */
      tally__names_init(&st->names, cfg->names_bytes_max,
                        cfg->accounts_max + 2 * tally__ops_in_flight_max(cfg) + TALLY__RAFFLE_ENTRIES_MAX + 1024)) {
    tally__state_free(st);
    return TALLY_ENOMEM;
  }
  st->next_id = 1000;
  /* The irc network exists in every ledger (sql/010): index 0. */
  st->networks[0].id = TALLY__NETWORK_IRC_ID;
  strcpy(st->networks[0].name, "irc");
  st->network_count = 1;
  return TALLY_OK;
}

void tally__state_free(tally__state *st) {
  tally__names_free(&st->names);
  for (uint32_t i = 0; st->items && i < st->item_count; i++) free(st->items[i].serials);
  if (st->cfg) tally__free_big(st->coop, (size_t)st->cfg->coop_purchases_max * sizeof *st->coop);
  tally__free_big(st->entries, (size_t)TALLY__RAFFLE_ENTRIES_MAX * sizeof *st->entries);
  tally__free_big(st->draw_scratch, (size_t)TALLY__RAFFLE_ENTRIES_MAX * sizeof *st->draw_scratch);
  tally__free_big(st->audience, (size_t)TALLY__AUDIENCE_MAX * sizeof *st->audience);
  free(st->dirty_audience);
  free(st->highlights);
  free(st->ship_notes);
  free(st->bios);
  tally__map_free(&st->audience_index);
  free(st->accounts);
  free(st->items);
  if (st->cfg) {
    tally__free_big(st->purchases, (size_t)st->cfg->purchases_max * sizeof *st->purchases);
    tally__free_big(st->keys, (size_t)st->cfg->keys_max * sizeof *st->keys);
    tally__free_big(st->consents, (size_t)TALLY__CONSENTS_PENDING_MAX * sizeof *st->consents);
    tally__free_big(st->per_user, (size_t)st->cfg->purchases_max * sizeof *st->per_user);
    tally__free_big(st->agreed, (size_t)st->cfg->purchases_max * sizeof *st->agreed);
  }
  free(st->dirty_accounts);
  free(st->dirty_items);
  tally__map_free(&st->account_by_name);
  tally__map_free(&st->identity_by_name);
  tally__map_free(&st->item_by_sku);
  tally__keys_free(st);
  free(st->events);
  tally__map_free(&st->per_user_index);
  tally__map_free(&st->agreed_index);
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
  /* Names go into receipts, whose strings are at most TALLY_RECEIPT_TEXT_BYTES_MAX. */
  size_t len = strlen(name);
  if (len >= TALLY__ACCOUNT_NAME_BYTES) return TALLY_ETOOBIG;
  if (st->account_count >= st->cfg->accounts_max) return TALLY_ETOO_MANY;
  uint32_t handle; /* an account's name is kept for good: its reference is never given back */
  int rc = tally__names_intern_kept(&st->names, TALLY__NAMES_SPACE_ACCOUNT, name, len, &handle);
  if (rc) return rc;
  i = st->account_count;
  tally__account *a = &st->accounts[i];
  memset(a, 0, sizeof *a);
  a->id = tally__state_take_id(st);
  a->kind = kind;
  a->consent_slot = TALLY__NONE;
  a->role_by = TALLY__NONE;
  a->person = TALLY__NONE;
  a->joined = TALLY__NONE;
  a->name = handle;
  rc = tally__map_put(&st->account_by_name, tally__hash_str(name), i);
  if (rc) return rc;
  st->account_count++;
  *index = i;
  return TALLY_OK;
}

/* ---- networks and identities ----------------------------------------------------- */
int tally__network_get(tally__state *st, const char *name, uint16_t *net) {
  for (uint16_t i = 0; i < st->network_count; i++)
    if (strcmp(st->networks[i].name, name) == 0) {
      *net = i;
      return TALLY_OK;
    }
  if (!tally__network_name_ok(name)) return TALLY_ENETWORK;
  uint16_t id = 0;
  for (uint16_t i = 0; i < st->network_count; i++)
    if (st->networks[i].id > id) id = st->networks[i].id;
  if (st->network_count >= TALLY__NETWORKS_MAX || id >= INT16_MAX) return TALLY_ENAMES_FULL;
  if (tally__network_put(st, (uint16_t)(id + 1), name)) return TALLY_ENAMES_FULL;
  *net = (uint16_t)(st->network_count - 1);
  return TALLY_OK;
}

int tally__network_put(tally__state *st, uint16_t id, const char *name) {
  if (!tally__network_name_ok(name)) return TALLY_ENETWORK;
  for (uint16_t i = 0; i < st->network_count; i++)
    if (st->networks[i].id == id) return strcmp(st->networks[i].name, name) == 0 ? TALLY_OK : TALLY_ENETWORK;
  if (st->network_count >= TALLY__NETWORKS_MAX) return TALLY_ENAMES_FULL;
  tally__network *n = &st->networks[st->network_count++];
  n->id = id;
  snprintf(n->name, sizeof n->name, "%s", name);
  return TALLY_OK;
}

typedef struct identity_probe {
  const tally__state *st;
  uint16_t net;
  const char *name;
  size_t len;
} identity_probe;

static bool identity_eq(const void *ud, uint32_t i) {
  const identity_probe *p = ud;
  const tally__account *a = &p->st->accounts[i];
  const char *n = tally__names_str(&p->st->names, a->name) + a->label;
  return a->net == p->net && strlen(n) == p->len && memcmp(n, p->name, p->len) == 0;
}

static uint64_t identity_hash(uint16_t net, const char *name, size_t len) {
  uint64_t h = tally__hash_u64(net);
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)name[i]) * UINT64_C(0x100000001b3);
  return tally__hash_u64(h);
}

uint32_t tally__identity_find(const tally__state *st, uint16_t net, const char *name, size_t len) {
  identity_probe p = {st, net, name, len};
  return tally__map_find(&st->identity_by_name, identity_hash(net, name, len), identity_eq, &p);
}

int tally__identity_attach(tally__state *st, uint32_t index, uint64_t id, uint16_t net, uint16_t label) {
  tally__account *a = &st->accounts[index];
  a->identity_id = id;
  a->net = net;
  a->label = label;
  const char *n = tally__names_str(&st->names, a->name) + label;
  return tally__map_put(&st->identity_by_name, identity_hash(net, n, strlen(n)), index);
}

int tally__identity_get(tally__state *st, uint16_t net, const char *name, uint32_t *index) {
  size_t len = strlen(name);
  uint32_t i = tally__identity_find(st, net, name, len);
  if (i != TALLY__NONE) {
    *index = i;
    return TALLY_OK;
  }
  const tally__network *nw = &st->networks[net];
  char full[TALLY__ACCOUNT_NAME_BYTES + TALLY__NETWORK_NAME_BYTES_MAX];
  bool legacy = nw->id == TALLY__NETWORK_IRC_ID && !strchr(name, ':');
  int n = legacy ? snprintf(full, sizeof full, "user:%s", name) : snprintf(full, sizeof full, "%s:%s", nw->name, name);
  if (n < 0 || (size_t)n >= sizeof full || (size_t)n >= TALLY__ACCOUNT_NAME_BYTES) return TALLY_ETOOBIG;
  /* Ids in order: the account's, then its identity's. A name already used
   * by another account (only a ledger written by hand can do that) is
   * refused rather than shared. */
  if (tally__account_find(st, full) != TALLY__NONE) return TALLY_ENETWORK;
  int rc = tally__account_get(st, full, TALLY__ACCOUNT_USER, &i);
  if (rc) return rc;
  rc = tally__identity_attach(st, i, tally__state_take_id(st), net, (uint16_t)(n - len));
  if (rc) return rc;
  *index = i;
  return TALLY_OK;
}

const char *tally__account_label(const tally__state *st, uint32_t index) {
  const tally__account *a = &st->accounts[index];
  const char *name = tally__names_str(&st->names, a->name);
  if (a->identity_id) return name + a->label;
  return strncmp(name, "user:", 5) == 0 ? name + 5 : name;
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
  int64_t left = (int64_t)it->stock - it->sold - it->held;
  /* Never below zero in memory; stored data could say otherwise (a stock
   * edited down outside tally): then nothing is left. */
  return left < 0 ? 0 : (int32_t)left;
}

/* ---- serial numbers of limited editions ------------------------------------------ */
/* Bit s-1 of it->serials is serial s. Serials are taken at decision time
 * and given back if the purchase is released, so the numbers sold are
 * unique and never above the edition size. */
bool tally__item_numbered(const tally__item *it) {
  return it->stock > 0 && it->stock <= TALLY__SERIAL_STOCK_MAX;
}

int tally__item_serials_alloc(tally__item *it) {
  free(it->serials);
  it->serials = NULL;
  it->serial_low = 0;
  if (!tally__item_numbered(it)) return TALLY_OK;
  it->serials = calloc(((size_t)it->stock + 63) / 64, sizeof *it->serials);
  return it->serials ? TALLY_OK : TALLY_ENOMEM;
}

static bool serial_bit(const tally__item *it, uint32_t s) { return (it->serials[s / 64] >> (s % 64)) & 1; }

void tally__serial_mark(tally__item *it, uint32_t first, uint32_t qty) {
  if (!it->serials || first == 0) return;
  for (uint32_t s = first - 1; s < first - 1 + qty && s < (uint32_t)it->stock; s++)
    it->serials[s / 64] |= UINT64_C(1) << (s % 64);
}

uint32_t tally__serial_take(tally__item *it, uint32_t qty) {
  if (!it->serials || qty == 0) return 0;
  uint32_t n = (uint32_t)it->stock, run = 0, start = 0;
  for (uint32_t s = it->serial_low; s < n; s++) {
    if (s % 64 == 0 && it->serials[s / 64] == UINT64_MAX) { /* a full word */
      s += 63;
      run = 0;
      continue;
    }
    if (serial_bit(it, s)) {
      run = 0;
      continue;
    }
    if (run++ == 0) start = s;
    if (run == qty) {
      tally__serial_mark(it, start + 1, qty);
      if (start == it->serial_low) it->serial_low = start + qty;
      return start + 1;
    }
  }
  return 0;
}

void tally__serial_give_back(tally__item *it, uint32_t first, uint32_t qty) {
  if (!it->serials || first == 0) return;
  for (uint32_t s = first - 1; s < first - 1 + qty && s < (uint32_t)it->stock; s++) {
    assert(serial_bit(it, s));
    it->serials[s / 64] &= ~(UINT64_C(1) << (s % 64));
  }
  if (first - 1 < it->serial_low) it->serial_low = first - 1;
}

/* ---- co-op shares ----------------------------------------------------------- */
uint32_t tally__coop_take(tally__state *st) {
  uint32_t slot = st->coop_next % st->cfg->coop_purchases_max;
  tally__coop *c = &st->coop[slot];
  if (c->inflight) return TALLY__NONE; /* full of co-op purchases in flight */
  st->coop_next++;
  memset(c, 0, sizeof *c);
  return slot;
}

uint32_t tally__coop_of(const tally__state *st, const tally__purchase *p) {
  if (p->coop_slot == TALLY__NONE || p->coop_slot >= st->cfg->coop_purchases_max) return TALLY__NONE;
  return st->coop[p->coop_slot].transfer_id == p->transfer_id ? p->coop_slot : TALLY__NONE;
}

static uint32_t coop_payee(const tally__coop *c, uint32_t account) {
  for (uint32_t i = 0; i < c->count; i++)
    if (c->account[i] == account) return i;
  return TALLY__NONE;
}

/* A refund's legs against its co-op record: held (+1), committed (0) or
 * released (-1). */
static void coop_refund_legs(tally__state *st, const tally__op *op, int how) {
  tally__purchase *p = &st->purchases[op->purchase_slot];
  uint32_t slot = tally__coop_of(st, p);
  if (slot == TALLY__NONE) return;
  tally__coop *c = &st->coop[slot];
  for (int i = 0; i < op->leg_count; i++) {
    if (op->legs[i].amount >= 0) continue; /* the buyer's credit */
    uint32_t k = coop_payee(c, op->legs[i].account);
    assert(k != TALLY__NONE);
    int64_t back = -op->legs[i].amount;
    if (how > 0) c->held[k] += back;
    else c->held[k] -= back;
    if (how == 0) c->returned[k] += back;
    assert(c->held[k] >= 0 && c->returned[k] + c->held[k] <= c->credit[k]);
  }
  if (how > 0) c->inflight++;
  else c->inflight--;
}

/* ---- purchases ------------------------------------------------------------- */
/* The ring holds purchases in increasing transfer-id order (ids are taken in
 * decision order, and the loader adds them ascending), so a binary search
 * finds one: no hash index to keep up on every buy. */
static uint32_t purchase_count(const tally__state *st) {
  return st->purchase_next < st->cfg->purchases_max ? st->purchase_next : st->cfg->purchases_max;
}

static uint32_t purchase_slot_at(const tally__state *st, uint32_t logical) {
  uint32_t oldest = st->purchase_next < st->cfg->purchases_max ? 0 : st->purchase_next % st->cfg->purchases_max;
  return (oldest + logical) % st->cfg->purchases_max;
}

uint32_t tally__purchase_find(const tally__state *st, uint64_t transfer_id) {
  uint32_t lo = 0, hi = purchase_count(st);
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    uint64_t id = st->purchases[purchase_slot_at(st, mid)].transfer_id;
    if (id < transfer_id) lo = mid + 1;
    else hi = mid;
  }
  if (lo == purchase_count(st)) return TALLY__NONE;
  uint32_t slot = purchase_slot_at(st, lo);
  const tally__purchase *p = &st->purchases[slot];
  return p->transfer_id == transfer_id && p->live ? slot : TALLY__NONE;
}

bool tally__purchases_room(const tally__state *st) {
  const tally__purchase *p = &st->purchases[st->purchase_next % st->cfg->purchases_max];
  return !p->live || (p->committed && p->refund_held == 0);
}

uint32_t tally__purchase_add(tally__state *st, const tally__purchase *src) {
  uint32_t count = purchase_count(st);
  assert(count == 0 || st->purchases[purchase_slot_at(st, count - 1)].transfer_id < src->transfer_id);
  uint32_t slot = st->purchase_next++ % st->cfg->purchases_max;
  tally__purchase *p = &st->purchases[slot];
  /* The oldest purchase is forgotten; one in flight never is, because
   * purchases_max is far above the operations that can be in flight. */
  assert(!p->live || (p->committed && p->refund_held == 0));
  *p = *src;
  p->live = true;
  return slot;
}

void tally__purchase_forget(tally__state *st, uint32_t slot) { st->purchases[slot].live = false; }

/* ---- per-user drop limits ---------------------------------------------------- */
typedef struct per_user_probe {
  const tally__state *st;
  uint64_t key;
} per_user_probe;

static bool per_user_eq(const void *ud, uint32_t i) {
  const per_user_probe *p = ud;
  return p->st->per_user[i].key == p->key;
}

int32_t tally__per_user_units(tally__state *st, uint32_t account, uint32_t item, int32_t **slot) {
  per_user_probe p = {st, ((uint64_t)account << 32) | item};
  uint64_t h = tally__hash_u64(p.key);
  uint32_t i = tally__map_find(&st->per_user_index, h, per_user_eq, &p);
  if (i == TALLY__NONE) {
    if (st->per_user_count >= st->cfg->purchases_max || tally__map_put(&st->per_user_index, h, st->per_user_count)) {
      *slot = NULL;
      return 0;
    }
    i = st->per_user_count++;
    st->per_user[i].key = p.key;
    st->per_user[i].units = 0;
  }
  *slot = &st->per_user[i].units;
  return st->per_user[i].units;
}

/* ---- prices buyers agreed to -------------------------------------------------- */
typedef struct agreed_probe {
  const tally__state *st;
  uint64_t key;
} agreed_probe;

static bool agreed_eq(const void *ud, uint32_t i) {
  const agreed_probe *p = ud;
  return p->st->agreed[i].key == p->key;
}

static uint32_t agreed_find(const tally__state *st, uint64_t key) {
  agreed_probe p = {st, key};
  return tally__map_find(&st->agreed_index, tally__hash_u64(key), agreed_eq, &p);
}

bool tally__agreed_price(const tally__state *st, uint32_t account, uint32_t item, int64_t *price) {
  uint32_t i = agreed_find(st, ((uint64_t)account << 32) | item);
  if (i == TALLY__NONE) return false;
  *price = st->agreed[i].price;
  return true;
}

void tally__agreed_note(tally__state *st, uint32_t account, uint32_t item, int64_t price) {
  uint64_t key = ((uint64_t)account << 32) | item;
  uint32_t i = agreed_find(st, key);
  if (i == TALLY__NONE) {
    if (st->agreed_count >= st->cfg->purchases_max ||
        tally__map_put(&st->agreed_index, tally__hash_u64(key), st->agreed_count)) {
      st->accounts[account].agreed_lost = true; /* fail closed: its BUYs ask again */
      return;
    }
    i = st->agreed_count++;
    st->agreed[i].key = key;
  }
  st->agreed[i].price = price;
}

/* ---- shares of the shared tables -------------------------------------------- */
int tally__highlight_room(const tally__state *st, uint32_t buyer, uint32_t item) {
  const tally__item *room = &st->items[item];
  uint32_t used = 0, in_channel = 0, by_buyer = 0;
  for (uint32_t i = 0; i < TALLY__HIGHLIGHTS_SLOTS; i++) {
    const tally__highlight *h = &st->highlights[i];
    if (h->state == TALLY__HL_FREE) continue;
    used++;
    const tally__item *it = &st->items[h->item];
    in_channel += it->drop_net == room->drop_net && strcmp(it->drop_channel, room->drop_channel) == 0;
    by_buyer += h->buyer == buyer;
  }
  if (by_buyer >= st->cfg->highlights_per_account) return TALLY_ETOO_MANY;
  if (used >= TALLY__HIGHLIGHTS_SLOTS || in_channel >= st->cfg->highlights_per_channel) return TALLY_EBUSY;
  return TALLY_OK;
}

/* A decided highlight purchase takes its slot now (decide.c checked there
 * is room), so its commit never finds the table full. */
static void highlight_reserve(tally__state *st, const tally__op *op) {
  for (uint32_t i = 0; i < TALLY__HIGHLIGHTS_SLOTS; i++) {
    tally__highlight *h = &st->highlights[i];
    if (h->state != TALLY__HL_FREE) continue;
    memset(h, 0, sizeof *h);
    h->state = TALLY__HL_RESERVED;
    h->transfer_id = op->transfer_id;
    h->buyer = op->account;
    h->item = op->item;
    return;
  }
}

/* A purchase that did not commit gives back the slot it reserved (a tip's
 * held message slot: the tip messages feature, tipmsg.c, on `settled`). */
static void reservations_release(tally__state *st, const tally__op *op) {
  for (uint32_t i = 0; op->kind == TALLY__TRANSFER_PURCHASE && i < TALLY__HIGHLIGHTS_SLOTS; i++)
    if (st->highlights[i].state == TALLY__HL_RESERVED && st->highlights[i].transfer_id == op->transfer_id)
      st->highlights[i].state = TALLY__HL_FREE;
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
    assert(leg->amount != 0 || op->amount == 0); /* a free unit's two zero legs (sql/020) */
    sum += leg->amount;
    if (!leg_is_held(st, leg)) continue;
    tally__account *a = &st->accounts[leg->account];
    a->held -= leg->amount;
    assert(tally__account_available(a) >= 0);
  }
  assert(sum == 0);
  if (op->kind == TALLY__TRANSFER_PURCHASE) {
    tally__item *it = &st->items[op->item];
    if (it->kind == TALLY__KIND_HIGHLIGHT) highlight_reserve(st, op);
    it->held += (int32_t)op->qty;
    assert(it->stock < 0 || it->sold + it->held <= it->stock);
    int32_t *units;
    if (it->drop_per_user && (tally__per_user_units(st, op->account, op->item, &units), units))
      *units += (int32_t)op->qty;
  }
  if (op->kind == TALLY__TRANSFER_REFUND) {
    st->purchases[op->purchase_slot].refund_held += op->amount;
    st->purchases[op->purchase_slot].fee_held += op->fee;
    coop_refund_legs(st, op, +1);
  }
  if (op->kind == TALLY__TRANSFER_GRANT) st->grants_pending += op->amount;
}

void tally__event_inflight(tally__state *st, uint64_t event_id, int delta) {
  for (uint32_t i = 0; event_id && i < st->event_count; i++)
    if (st->events[i].id == event_id) {
      assert(delta > 0 || st->events[i].inflight > 0);
      st->events[i].inflight += (uint32_t)delta;
      return;
    }
}

void tally__op_commit(tally__state *st, const tally__op *op) {
  /* A reserved highlight or held-tip slot stays reserved until
   * highlight.c or tipmsg.c fills it, right after this. */
  tally__event_inflight(st, op->event_id, -1);
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
    tally__purchase *p = &st->purchases[op->purchase_slot];
    p->committed = true;
    uint32_t coop = tally__coop_of(st, p);
    if (coop != TALLY__NONE) st->coop[coop].inflight--;
  }
  if (op->kind == TALLY__TRANSFER_REFUND) {
    coop_refund_legs(st, op, 0);
    tally__purchase *p = &st->purchases[op->purchase_slot];
    p->refund_held -= op->amount;
    p->refunded += op->amount;
    p->fee_held -= op->fee;
    p->fee_refunded += op->fee;
    assert(p->refund_held >= 0 && p->refunded <= p->amount);
    assert(p->fee_held >= 0 && p->fee_refunded <= p->fee);
    /* Refunded in full: the buyer's units of a limited drop come back
     * (the stock does not: sold units stay unique). */
    tally__item *it = &st->items[p->item];
    int32_t *units;
    if (p->refunded == p->amount && it->drop_per_user &&
        (tally__per_user_units(st, p->buyer, p->item, &units), units) && *units >= (int32_t)p->qty)
      *units -= (int32_t)p->qty;
  }
  if (op->kind == TALLY__TRANSFER_GRANT) st->grants_pending -= op->amount;
}

void tally__op_release(tally__state *st, const tally__op *op) {
  tally__event_inflight(st, op->event_id, -1);
  reservations_release(st, op);
  if (op->welcome) st->accounts[op->account].welcome_inflight = false;
  for (int i = 0; i < op->leg_count; i++) {
    const tally__leg *leg = &op->legs[i];
    if (!leg_is_held(st, leg)) continue;
    tally__account *a = &st->accounts[leg->account];
    a->held += leg->amount;
    assert(a->held >= 0);
  }
  tally__account *payer = &st->accounts[op->account];
  /* Clamped: a wall clock that jumped over midnight and back may have
   * reset the day's total since this op was decided. */
  if ((op->kind == TALLY__TRANSFER_PURCHASE || op->kind == TALLY__TRANSFER_TIP) &&
      payer->spent_day == tally__utc_day(op->created_ms))
    payer->spent_today = payer->spent_today > op->amount ? payer->spent_today - op->amount : 0;
  if (op->kind == TALLY__TRANSFER_PURCHASE) {
    tally__item *it = &st->items[op->item];
    if (!TALLY__FAULT(RELEASE_STOCK)) it->held -= (int32_t)op->qty;
    assert(it->held >= 0);
    tally__serial_give_back(it, op->serial, op->qty);
    uint32_t coop = tally__coop_of(st, &st->purchases[op->purchase_slot]);
    if (coop != TALLY__NONE) {
      st->coop[coop].inflight--;
      st->coop[coop].transfer_id = 0;
    }
    tally__purchase_forget(st, op->purchase_slot);
    int32_t *units;
    if (it->drop_per_user && (tally__per_user_units(st, op->account, op->item, &units), units))
      *units -= (int32_t)op->qty;
  }
  if (op->kind == TALLY__TRANSFER_REFUND) {
    st->purchases[op->purchase_slot].refund_held -= op->amount;
    st->purchases[op->purchase_slot].fee_held -= op->fee;
    coop_refund_legs(st, op, -1);
  }
  if (op->kind == TALLY__TRANSFER_GRANT) st->grants_pending -= op->amount;
}

uint32_t tally__ops_in_flight_max(const tally_config *cfg) { return cfg->batch_max * (cfg->writers + 1); }

int32_t tally__utc_day(int64_t wall_ms) { return (int32_t)(wall_ms / 86400000); }
