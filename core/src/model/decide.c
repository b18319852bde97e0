/* decide.c — every rule about whether money may move lives here, in one
 * place that the engine, the simulator and the benchmark all call. Pure
 * memory: a decision costs no I/O, so "sold out" and "not enough credits"
 * never wait for PostgreSQL. */
#include "decide.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "text.h"
#include "test_fault.h"

uint64_t tally__transfer_fingerprint(uint32_t kind, uint64_t a, uint64_t b, uint64_t c,
                                    int64_t amount) {
  uint64_t h = tally__hash_u64(kind);
  h = tally__hash_u64(h ^ a);
  h = tally__hash_u64(h ^ ((uint64_t)b << 1));
  h = tally__hash_u64(h ^ c);
  return tally__hash_u64(h ^ (uint64_t)amount);
}

/* Returns TALLY_OK when the key is new and the key ring has room for it. */
static int key_check(const tally__state *st, const tally__decide_ctx *ctx, uint64_t fp) {
  uint32_t slot = tally__key_find(st, ctx->key);
  if (slot == TALLY__NONE) return tally__keys_room(st) ? TALLY_OK : TALLY_EBUSY;
  const tally__key *k = &st->keys[slot];
  if (k->fingerprint != fp) return TALLY_EKEY_MISMATCH;
  if (ctx->existing_transfer)
    *ctx->existing_transfer = k->state == TALLY__KEY_DONE ? k->transfer_id : 0;
  return TALLY_EEXISTS;
}

/* Bounded copy of a host name (origin, channel); they fit by frame limits. */
static void copy_name(char dst[TALLY_NAME_BYTES_MAX + 1], const char *src) {
  tally__text_clipn(dst, TALLY_NAME_BYTES_MAX + 1, src, TALLY_NAME_BYTES_MAX);
}

static void op_start(tally__state *st, const tally__decide_ctx *ctx, tally__op *op,
                     uint8_t kind, uint32_t account, int64_t amount, uint64_t fp) {
  memset(op, 0, offsetof(tally__op, origin)); /* origin, channel, note are set below or unused */
  op->note[0] = 0;
  op->type = TALLY__OP_TRANSFER;
  op->kind = kind;
  op->account = account;
  op->counterparty = TALLY__NONE;
  op->item = TALLY__NONE;
  op->purchase_slot = TALLY__NONE;
  op->amount = amount;
  op->transfer_id = tally__state_take_id(st);
  op->created_ms = ctx->wall_ms;
  op->decided_mono_ms = ctx->mono_ms;
  op->req_id = ctx->req_id;
  /* A reference for the op's time in flight, given back when it settles
   * (tally__engine_pending_done). The origin of a command is interned
   * already (command.c), so this only finds it; an engine-made op whose
   * origin no longer fits the table answers no one (it still happens). */
  if (ctx->origin_name) {
    op->origin = ctx->origin_name;
    tally__names_ref(&st->names, op->origin);
  } else if (tally__origin_take(st, ctx->net, ctx->origin ? ctx->origin : "", &op->origin)) {
    op->origin = 0;
  }
  copy_name(op->channel, ctx->channel);
  op->net = ctx->net;
  op->maker = ctx->maker;
  op->key_slot = tally__key_add(st, ctx->key, fp, op->transfer_id, TALLY__KEY_INFLIGHT, ctx->wall_ms);
}

static void op_leg(tally__op *op, uint32_t account, int64_t amount) {
  if (amount == 0) return;
  assert(op->leg_count < TALLY__LEGS_MAX);
  op->legs[op->leg_count].account = account;
  op->legs[op->leg_count].amount = amount;
  op->leg_count++;
}

/* Daily cap: spent today plus this amount must stay within the cap. */
static int spend_check(const tally__state *st, tally__account *a, int64_t wall_ms, int64_t amount) {
  /* A new day starts the count again; a clock that jumped back to an
   * earlier day does not (it keeps the later day's total: stricter, and
   * what a restart rebuilds from the ledger). */
  int32_t day = tally__utc_day(wall_ms);
  if (day > a->spent_day) {
    a->spent_day = day;
    a->spent_today = 0;
  }
  int64_t after;
  if (!tally__add_i64(a->spent_today, amount, &after)) return TALLY_EOVERFLOW;
  if (st->cfg->daily_cap_minor > 0 && after > st->cfg->daily_cap_minor) return TALLY_EOVER_CAP;
  if (tally__account_available(a) < amount) return TALLY_ENO_FUNDS;
  return TALLY_OK;
}

int tally__check_drop(const tally__item *it) {
  if (it->drop_state == TALLY__DROP_SCHEDULED) return TALLY_EDROP_NOT_LIVE;
  if (it->drop_state == TALLY__DROP_CLOSED) return TALLY_EDROP_CLOSED;
  return TALLY_OK;
}

int tally__check_stock(const tally__item *it, uint32_t qty) {
  if (it->deleted) return TALLY_EUNKNOWN_ITEM;
  int32_t left = tally__item_left(it);
  if (left >= 0 && (int64_t)qty > left) return left == 0 ? TALLY_ESOLD_OUT : TALLY_ETOO_MANY;
  return TALLY_OK;
}

/* The code's creator must be one of the item's creators, and its
 * affiliate none of them (each payee appears once in a transfer). */
bool tally__refcode_fits(const tally__item *it, const tally__refcode *ref) {
  if (it->split.count == 0) return ref->creator == it->creator && ref->affiliate != it->creator;
  bool creator = false;
  for (uint32_t i = 0; i < it->split.count; i++) {
    if (it->split.account[i] == ref->affiliate) return false;
    creator |= it->split.account[i] == ref->creator;
  }
  return creator;
}

/* The payees of a purchase that needs a co-op record (a split, or an
 * affiliate): creators by their shares of what is left after the fee, then
 * the affiliate, then the fee. The affiliate's share comes out of the part
 * of the creator who issued the code only ("of your takings"): the other
 * co-creators never pay for a code they did not give out. */
static void coop_fill(tally__state *st, const tally__item *it, const tally__refcode *ref, int64_t amount,
                      int64_t fee, tally__coop *c) {
  int64_t weights[TALLY__SPLIT_MAX], parts[TALLY__SPLIT_MAX];
  uint32_t n = it->split.count ? it->split.count : 1;
  for (uint32_t i = 0; i < n; i++) {
    weights[i] = it->split.count ? it->split.bps[i] : TALLY__BPS_WHOLE;
    c->account[i] = it->split.count ? it->split.account[i] : it->creator;
  }
  tally__apportion(amount - fee, weights, n, parts);
  int64_t affiliate = 0;
  for (uint32_t i = 0; ref && i < n; i++)
    if (c->account[i] == ref->creator) { /* tally__refcode_fits: exactly one */
      affiliate = tally__bps_of(parts[i], ref->bps);
      parts[i] -= affiliate;
    }
  for (uint32_t i = 0; i < n; i++) c->credit[i] = parts[i];
  c->count = (uint8_t)n;
  if (ref) {
    c->account[c->count] = ref->affiliate;
    c->credit[c->count++] = affiliate;
  }
  c->account[c->count] = st->fees;
  c->credit[c->count++] = fee;
}

int tally__decide_buy(tally__state *st, const tally__decide_ctx *ctx, uint32_t buyer,
                      uint32_t item, uint32_t qty, tally__op *op) {
  assert(buyer < st->account_count && item < st->item_count && ctx->key);
  if (qty == 0 || qty > TALLY__QTY_MAX) return TALLY_EBAD_QTY;
  /* The key first, over the request as typed: a replay gets its first
   * answer even if the item sold out or its price changed since (I3). */
  const tally__refcode *ref = ctx->ref;
  uint64_t fp = tally__transfer_fingerprint(TALLY__TRANSFER_PURCHASE, st->accounts[buyer].id, st->items[item].id, qty,
                                            ref ? (int64_t)(tally__hash_str(ref->code) >> 1) : 0);
  int rc = key_check(st, ctx, fp);
  if (rc) return rc;
  tally__item *it = &st->items[item];
  int64_t amount;
  if (!tally__mul_i64(it->price, qty, &amount)) return TALLY_EOVERFLOW;
  /* A reward lowers what the buyer pays and so what the creator (the only
   * payee: the feature checks) receives; the fee is taken on what is paid. */
  if (ctx->discount < 0 || (ctx->discount > 0 && ctx->discount >= amount)) return TALLY_EOVERFLOW;
  amount -= ctx->discount;
  /* A free unit is one unit at no price: no fee, nothing of the creator's. */
  if (ctx->free_unit && (qty != 1 || ctx->discount || ref)) return TALLY_EINVAL;
  if (ctx->free_unit) amount = 0;
  if ((rc = tally__check_stock(it, qty))) return rc;
  /* A raffle's winners are charged by the engine after its window closed. */
  bool raffle_draw = ctx->by_engine && it->drop_mode == TALLY__MODE_RAFFLE;
  if (!raffle_draw && (rc = tally__check_drop(it))) return rc;
  if (it->creator == buyer) return TALLY_ESELF;
  if (ref && (ref->affiliate == buyer || !tally__refcode_fits(it, ref))) return TALLY_EBAD_REF;
  if (it->attendees_only && !ctx->access && !tally__audience_attended(st, it->drop_event, buyer))
    return TALLY_ENOT_ATTENDEE;
  if (!tally__purchases_room(st)) return TALLY_EBUSY;
  /* Its queue slot is taken with the decision (tally__op_hold), so every
   * path that buys a highlight is bounded by the table and its shares. */
  if (it->kind == TALLY__KIND_HIGHLIGHT && (rc = tally__highlight_room(st, buyer, item))) return rc;
  if (it->drop_per_user) { /* accounts, not nicks: holds across nick changes */
    int32_t *units;
    int32_t have = tally__per_user_units(st, buyer, item, &units);
    if (!units) return TALLY_EBUSY;
    if ((int64_t)have + qty > it->drop_per_user) return TALLY_EPER_USER_LIMIT;
  }
  tally__account *a = &st->accounts[buyer];
  if ((rc = spend_check(st, a, ctx->wall_ms, amount))) return rc;
  uint32_t serial = tally__serial_take(it, qty);
  /* Units are left but not qty consecutive serials (some were given back
   * out of order): buy fewer at once. */
  if (it->serials && serial == 0) return TALLY_ETOO_MANY;
  uint32_t coop = TALLY__NONE;
  if ((it->split.count || ref) && (coop = tally__coop_take(st)) == TALLY__NONE) {
    tally__serial_give_back(it, serial, qty);
    return TALLY_EBUSY;
  }

  int64_t fee = tally__bps_of(amount, st->cfg->fee_bps);
  op_start(st, ctx, op, TALLY__TRANSFER_PURCHASE, buyer, amount, fp);
  op->item = item;
  op->qty = qty;
  op->fee = fee;
  op->serial = serial;
  if (amount == 0) { /* a free unit: two zero legs, so it has entries like every transfer (sql/020) */
    op->legs[0] = (tally__leg){.account = buyer, .amount = 0};
    op->legs[1] = (tally__leg){.account = it->creator, .amount = 0};
    op->leg_count = 2;
  }
  op_leg(op, buyer, -amount);
  tally__purchase p = {.transfer_id = op->transfer_id, .buyer = buyer, .item = item,
                       .amount = amount, .fee = fee, .created_ms = ctx->wall_ms,
                       .coop_slot = coop, .serial = serial, .qty = qty};
  if (coop == TALLY__NONE) {
    op_leg(op, it->creator, amount - fee);
    op_leg(op, st->fees, fee);
  } else {
    /* The record keeps each payee's credit, so refunds reverse it. */
    tally__coop *c = &st->coop[coop];
    coop_fill(st, it, ref, amount, fee, c);
    c->transfer_id = op->transfer_id;
    c->inflight = 1;
    op->coop_legs = true; /* stored with it: start-up must not guess from the legs */
    for (uint32_t i = 0; i < c->count; i++) op_leg(op, c->account[i], c->credit[i]);
  }
  op->purchase_slot = tally__purchase_add(st, &p);
  a->spent_today += amount;
  tally__op_hold(st, op);
  /* Deciding at this price is agreeing to it: a later raise asks again. */
  tally__agreed_note(st, buyer, item, it->price);
  return TALLY_OK;
}

int tally__decide_tip(tally__state *st, const tally__decide_ctx *ctx, uint32_t from,
                      uint32_t to, int64_t amount, tally__op *op) {
  assert(from < st->account_count && to < st->account_count && amount > 0);
  if (from == to) return TALLY_ESELF;
  uint64_t fp = tally__transfer_fingerprint(TALLY__TRANSFER_TIP, st->accounts[from].id, st->accounts[to].id, 0, amount);
  int rc = key_check(st, ctx, fp);
  if (rc) return rc;
  if (st->accounts[to].kind != TALLY__ACCOUNT_USER) return TALLY_EUNKNOWN_ACCOUNT;
  tally__account *a = &st->accounts[from];
  if ((rc = spend_check(st, a, ctx->wall_ms, amount))) return rc;
  op_start(st, ctx, op, TALLY__TRANSFER_TIP, from, amount, fp);
  op->counterparty = to;
  op_leg(op, from, -amount);
  op_leg(op, to, amount);
  a->spent_today += amount;
  tally__op_hold(st, op);
  return TALLY_OK;
}

/* floor(fee * part / whole) without overflow (its inputs are checked by
 * tally__decide_refund first). */
static int64_t fee_share(int64_t fee, int64_t part, int64_t whole) {
  assert(whole > 0 && part >= 0 && part <= whole);
  return (int64_t)(((__int128)fee * part) / whole);
}

/* A purchase this close to the oldest end of the ring could be forgotten
 * while its refund is in flight: too old to refund from memory. */
static bool purchase_near_eviction(const tally__state *st, uint32_t slot) {
  uint32_t max = st->cfg->purchases_max;
  if (st->purchase_next < max) return false;
  uint32_t oldest = st->purchase_next % max;
  uint32_t age_rank = (slot + max - oldest) % max; /* 0 = the oldest */
  return age_rank < tally__ops_in_flight_max(st->cfg);
}

/* A co-op purchase's refund: every payee gives back its part, in the
 * proportions of the purchase, counted against what earlier refunds took
 * (split.h, tally__apportion_refund). */
static int decide_coop_refund(tally__state *st, const tally__decide_ctx *ctx, uint32_t requester,
                              uint64_t receipt, uint32_t slot, int64_t amount, uint64_t fp,
                              tally__op *op) {
  tally__purchase *p = &st->purchases[slot];
  uint32_t coop = tally__coop_of(st, p);
  if (coop == TALLY__NONE) return TALLY_EREFUND_WINDOW; /* its shares are no longer kept */
  const tally__coop *c = &st->coop[coop];
  int64_t taken[TALLY__PAYEES_MAX], parts[TALLY__PAYEES_MAX];
  for (uint32_t i = 0; i < c->count; i++) taken[i] = c->returned[i] + c->held[i];
  if (tally__apportion_refund(c->credit, taken, c->count, p->amount, p->refunded + p->refund_held,
                              amount, parts)) {
    /* The record was rebuilt from the ledger and does not add up: refuse
     * (nothing moves) and say so where an operator looks. */
    fprintf(stderr, "tally: refund of %llu refused: its co-op record does not add up (%u payees, %lld paid,"
                    " %lld refunded)\n", (unsigned long long)receipt, (unsigned)c->count, (long long)p->amount,
            (long long)(p->refunded + p->refund_held));
    return TALLY_ELEDGER;
  }
  for (uint32_t i = 0; i < c->count; i++)
    if (tally__account_available(&st->accounts[c->account[i]]) < parts[i]) return TALLY_ENO_FUNDS;
  op_start(st, ctx, op, TALLY__TRANSFER_REFUND, requester, amount, fp);
  op->ref_transfer = receipt;
  op->item = p->item;
  op->purchase_slot = slot;
  op->fee = parts[c->count - 1]; /* the platform fee is the last payee */
  op_leg(op, requester, amount);
  for (uint32_t i = 0; i < c->count; i++) op_leg(op, c->account[i], -parts[i]);
  tally__op_hold(st, op);
  return TALLY_OK;
}

int tally__decide_refund(tally__state *st, const tally__decide_ctx *ctx, uint32_t requester,
                         uint64_t receipt, int64_t amount_typed, tally__op *op) {
  uint64_t fp = tally__transfer_fingerprint(TALLY__TRANSFER_REFUND, st->accounts[requester].id, 0, receipt, amount_typed);
  int rc = key_check(st, ctx, fp);
  if (rc) return rc;
  uint32_t slot = tally__purchase_find(st, receipt);
  if (slot == TALLY__NONE) return TALLY_EUNKNOWN_RECEIPT;
  tally__purchase *p = &st->purchases[slot];
  if (tally__purchase_owner(st, p) != requester) return TALLY_ENOT_YOURS; /* LINK: the person's */
  if (!p->committed) return TALLY_EPENDING;
  /* Amount 0 is a free unit a reward gave (sql/020): nothing was paid, so
   * nothing is refunded, and its reward is not given back either. */
  if (p->amount == 0) return TALLY_EREWARD_UNIT;
  const tally__item *it = &st->items[p->item];
  if (ctx->wall_ms - p->created_ms > (int64_t)it->refund_window_s * 1000 ||
      purchase_near_eviction(st, slot))
    return TALLY_EREFUND_WINDOW;
  /* Highlights and reactions are refunded only by the engine, when it
   * could not show them. */
  if ((it->kind == TALLY__KIND_HIGHLIGHT || it->kind == TALLY__KIND_REACTION) && !ctx->by_engine)
    return TALLY_ENOT_REFUNDABLE;
  /* A pass once redeemed, a digital item once delivered (the buyer ran
   * DELIVERY), a highlight once shown: each is a redemptions row. */
  if (p->redeemed || p->redeem_held) return TALLY_ENOT_REFUNDABLE;
  /* The purchase's totals were rebuilt from the ledger: checked before any
   * arithmetic relies on them (no ledger row may reach an assert). */
  if (p->amount <= 0 || p->refunded < 0 || p->refund_held < 0 || p->refunded > p->amount - p->refund_held ||
      p->fee < 0 || p->fee > p->amount || p->fee_refunded < 0 || p->fee_held < 0 ||
      p->fee_refunded > p->fee - p->fee_held) {
    fprintf(stderr, "tally: refund of %llu refused: its purchase record does not add up (paid %lld, fee %lld,"
                    " refunded %lld)\n", (unsigned long long)receipt, (long long)p->amount, (long long)p->fee,
            (long long)p->refunded);
    return TALLY_ELEDGER;
  }
  int64_t done = p->refunded + (TALLY__FAULT(REFUND_OVER) ? 0 : p->refund_held);
  int64_t remaining = p->amount - done;
  int64_t amount = amount_typed == 0 ? remaining : amount_typed;
  if (amount <= 0 || amount > remaining) return TALLY_EREFUND_EXCEEDS;
  if (p->coop_slot != TALLY__NONE)
    return decide_coop_refund(st, ctx, requester, receipt, slot, amount, fp, op);
  /* The fee comes back in proportion, cumulatively, so that a full refund in
   * any number of parts returns exactly the fee that was taken; counted
   * against what earlier parts (committed or in flight) already returned. */
  int64_t fee_before = p->fee_refunded + p->fee_held;
  int64_t fee_part = fee_share(p->fee, done + amount, p->amount) - fee_before;
  if (fee_part < 0) fee_part = 0;
  if (fee_part > amount) fee_part = amount;
  if (fee_part > p->fee - fee_before) fee_part = p->fee - fee_before;
  int64_t creator_part = amount - fee_part;
  uint32_t creator = it->creator, fees = st->fees;
  if (tally__account_available(&st->accounts[creator]) < creator_part ||
      tally__account_available(&st->accounts[fees]) < fee_part)
    return TALLY_ENO_FUNDS;
  op_start(st, ctx, op, TALLY__TRANSFER_REFUND, requester, amount, fp);
  op->ref_transfer = receipt;
  op->item = p->item;
  op->purchase_slot = slot;
  op->fee = fee_part;
  op_leg(op, requester, amount);
  op_leg(op, creator, -creator_part);
  op_leg(op, fees, -fee_part);
  tally__op_hold(st, op);
  return TALLY_OK;
}

int tally__decide_grant(tally__state *st, const tally__decide_ctx *ctx, uint32_t to,
                        int64_t amount, tally__op *op) {
  assert(to < st->account_count && amount > 0);
  uint64_t fp = tally__transfer_fingerprint(TALLY__TRANSFER_GRANT, st->accounts[to].id, 0, 0, amount);
  int rc = key_check(st, ctx, fp);
  if (rc) return rc;
  /* Everything ever granted (committed or in flight) stays under the money
   * supply bound, so no balance can overflow. */
  int64_t granted = -st->accounts[st->external].balance + st->grants_pending;
  if (amount > TALLY__MONEY_SUPPLY_MAX - granted) return TALLY_EOVERFLOW;
  op_start(st, ctx, op, TALLY__TRANSFER_GRANT, to, amount, fp);
  op_leg(op, st->external, -amount);
  op_leg(op, to, amount);
  tally__op_hold(st, op);
  return TALLY_OK;
}

int tally__decide_link_move(tally__state *st, const tally__decide_ctx *ctx, uint32_t from, uint32_t to,
                            int64_t amount, tally__op *op) {
  assert(from < st->account_count && to < st->account_count && amount > 0 && from != to);
  uint64_t fp = tally__transfer_fingerprint(TALLY__TRANSFER_LINK, st->accounts[from].id, st->accounts[to].id, 0, amount);
  int rc = key_check(st, ctx, fp);
  if (rc) return rc;
  /* All of it, nothing held: the joining wallet ends at exactly zero. Not
   * a spend: no daily cap. */
  if (tally__account_available(&st->accounts[from]) != amount || st->accounts[from].held != 0) return TALLY_EPENDING;
  op_start(st, ctx, op, TALLY__TRANSFER_LINK, from, amount, fp);
  op->counterparty = to;
  op_leg(op, from, -amount);
  op_leg(op, to, amount);
  tally__op_hold(st, op);
  return TALLY_OK;
}
