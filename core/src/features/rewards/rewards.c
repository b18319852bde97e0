/* rewards.c — definitions, grants, their use at BUY, give-back at a full
 * refund, and expiry (contract in rewards.h). State lives in the
 * feature's own tables (e->feature_data); every change that matters is a
 * ledger fact first and takes effect in memory when its batch commits. */
#include "rewards.h"
#include "test_fault.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "say.h"
#include "split.h"
#include "text.h"

_Static_assert(TALLY__REWARD_DEFS_MAX == 1024 && TALLY__REWARD_GRANTS_MAX == 4096, "the LIMITs of the restore queries");

/* FACT sub-kinds (op->qty) and their table slot (op->entry_slot). */
enum { RF_DEF = 1, RF_DEL = 2, RF_GRANT = 3, RF_EXPIRE = 4, RF_OFFER = 5, RF_UNOFFER = 6 };

tally__rewards *tally__rewards_of(tally__engine *e) { return e->feature_data[TALLY__FDATA_REWARDS]; }

static bool ours(const tally__op *op) { return op->type == TALLY__OP_FACT && op->kind == TALLY__FACT_REWARD; }

static void fact_mark(tally__op *op, uint32_t sub, uint32_t slot, const char *json) {
  op->kind = TALLY__FACT_REWARD;
  op->qty = sub;
  op->entry_slot = slot;
  op->fact = json;
}

/* ---- restore ---------------------------------------------------------------------- */
static int restore_defs(loader *l, tally__rewards *r) {
  PGresult *q = tally__load_q(l,
                              "SELECT d.id, d.creator_id, d.name, d.percent_bps, d.amount_minor, d.cap_minor, d.ttl_s,"
                              " d.item_id, x.reward_id IS NOT NULL, coalesce(u.kind, 0) FROM reward_defs d"
                              " LEFT JOIN reward_deletions x ON x.reward_id = d.id"
                              " LEFT JOIN reward_unlocks u ON u.reward_id = d.id ORDER BY d.id DESC LIMIT $1::int",
                              1, (const char *const[]){"1024"});
  if (!q) return TALLY_EDB;
  for (int i = 0; i < PQntuples(q); i++) {
    tally__reward_def *d = &r->defs[i];
    d->id = (uint64_t)tally__load_i64(q, i, 0);
    d->creator = tally__load_acc(l, tally__load_i64(q, i, 1));
    int64_t item = tally__load_i64(q, i, 7);
    d->item = item ? tally__load_item(l, item) : TALLY__NONE;
    if (d->creator == TALLY__NONE || (item && d->item == TALLY__NONE)) continue; /* names what is gone */
    tally__text_clip(d->name, sizeof d->name, PQgetvalue(q, i, 2));
    d->bps = (int32_t)tally__load_i64(q, i, 3);
    d->amount = tally__load_i64(q, i, 4);
    d->cap = tally__load_i64(q, i, 5);
    d->ttl_s = (uint32_t)tally__load_i64(q, i, 6);
    d->deleted = PQgetvalue(q, i, 8)[0] == 't';
    d->unlock = (uint8_t)tally__load_i64(q, i, 9);
    /* Neither a discount nor an unlock (a reward_unlocks row lost): it gives nothing. */
    if (!d->bps && !d->amount && !d->unlock) d->deleted = true;
    d->used = d->committed = true;
  }
  PQclear(q);
  return TALLY_OK;
}

static uint32_t def_by_id(const tally__rewards *r, uint64_t id) {
  for (uint32_t i = 0; i < TALLY__REWARD_DEFS_MAX; i++)
    if (r->defs[i].used && r->defs[i].id == id) return i;
  return TALLY__NONE;
}

/* Grants that can still matter: unused ones, and used ones (a full refund
 * may give them back), newest first; expired ones are done. */
static int restore_grants(loader *l, tally__rewards *r, int64_t now_ms) {
  PGresult *q = tally__load_q(l,
                              "SELECT g.id, g.reward_id, g.account_id, g.quiz_id, g.expires_ms, u.kind, u.transfer_id"
                              " FROM reward_grants g LEFT JOIN LATERAL (SELECT kind, transfer_id FROM reward_uses"
                              "  WHERE grant_id = g.id ORDER BY seq DESC LIMIT 1) u ON true"
                              " WHERE u.kind IS DISTINCT FROM 2 ORDER BY g.id DESC LIMIT $1::int",
                              1, (const char *const[]){"4096"});
  if (!q) return TALLY_EDB;
  uint64_t now_mono = tally__now_mono_ms(l->e);
  for (int i = 0; i < PQntuples(q); i++) {
    tally__reward_earned *g = &r->grants[i];
    g->id = (uint64_t)tally__load_i64(q, i, 0);
    g->def = def_by_id(r, (uint64_t)tally__load_i64(q, i, 1));
    g->account = tally__load_acc(l, tally__load_i64(q, i, 2));
    if (g->def == TALLY__NONE || g->account == TALLY__NONE) {
      memset(g, 0, sizeof *g);
      continue;
    }
    g->quiz_id = (uint64_t)tally__load_i64(q, i, 3);
    g->expires_ms = tally__load_i64(q, i, 4);
    int64_t left = g->expires_ms - now_ms;
    g->expires_mono = now_mono + (uint64_t)(left > 0 ? left : 0); /* past: the first tick expires it */
    bool used = !PQgetisnull(q, i, 5) && tally__load_i64(q, i, 5) == 1;
    g->state = used ? TALLY__GRANT_USED : TALLY__GRANT_READY;
    g->transfer = used ? (uint64_t)tally__load_i64(q, i, 6) : 0;
    r->grant_high = (uint32_t)i + 1;
  }
  PQclear(q);
  return TALLY_OK;
}

/* (event, account) counts of committed grants in events still running:
 * what reward_per_event_max holds against (sql/015 quizzes, sql/019 rounds). */
static int restore_per_event(loader *l, tally__rewards *r) {
  PGresult *q = tally__load_q(l,
                              "SELECT x.ev, x.account_id, count(*) FROM ("
                              " SELECT z.event_id AS ev, g.account_id FROM reward_grants g JOIN quizzes z ON z.id = g.quiz_id"
                              " UNION ALL SELECT z.event_id, g.account_id FROM reward_grants g"
                              "  JOIN quiz_rounds z ON z.id = g.quiz_id"
                              /* a goal level's payout names the level; an achievement's, its challenge */
                              " UNION ALL SELECT o.event_id, g.account_id FROM reward_grants g"
                              "  JOIN goal_levels v ON v.id = g.quiz_id JOIN goals o ON o.id = v.goal_id"
                              " UNION ALL SELECT a.event_id, g.account_id FROM reward_grants g"
                              "  JOIN challenge_achievements a ON a.challenge_id = g.quiz_id AND a.account_id = g.account_id"
                              "  WHERE a.event_id <> 0) x"
                              " JOIN events v ON v.id = x.ev WHERE v.stopped_ms IS NULL"
                              " GROUP BY x.ev, x.account_id LIMIT $1::int",
                              1, (const char *const[]){"4096"});
  _Static_assert(TALLY__REWARD_PER_EVENT_MAX == 4096, "the LIMIT above");
  if (!q) return TALLY_EDB;
  for (int i = 0; i < PQntuples(q); i++) {
    uint32_t account = tally__load_acc(l, tally__load_i64(q, i, 1));
    if (account == TALLY__NONE) continue;
    struct tally__reward_per_event *p = &r->per_event[r->per_event_count++];
    p->event_id = (uint64_t)tally__load_i64(q, i, 0);
    p->account = account;
    p->count = (uint32_t)tally__load_i64(q, i, 2);
  }
  PQclear(q);
  return TALLY_OK;
}

static int restore_offers(loader *l, tally__rewards *r) {
  /* In force: the latest change of each (reward, network, room), the
   * reward_offers row counting as an offer at its batch (sql/023). */
  PGresult *q = tally__load_q(l,
                              "SELECT reward_id, network_id, room FROM (SELECT DISTINCT ON (reward_id, network_id, room)"
                              " reward_id, network_id, room, offered FROM (SELECT reward_id, network_id, room, true AS"
                              " offered, batch_id FROM reward_offers UNION ALL SELECT reward_id, network_id, room, offered,"
                              " batch_id FROM reward_offer_changes) x ORDER BY reward_id, network_id, room, batch_id DESC) y"
                              " WHERE offered ORDER BY reward_id DESC LIMIT $1::int",
                              1, (const char *const[]){"256"});
  _Static_assert(TALLY__REWARD_OFFERS_MAX == 256, "the LIMIT above");
  if (!q) return TALLY_EDB;
  uint32_t n = 0;
  for (int i = 0; i < PQntuples(q); i++) {
    uint32_t def = def_by_id(r, (uint64_t)tally__load_i64(q, i, 0));
    int64_t net = tally__load_i64(q, i, 1);
    uint16_t k = 0;
    while (k < l->e->st.network_count && l->e->st.networks[k].id != net) k++;
    if (def == TALLY__NONE || k == l->e->st.network_count) continue;
    struct tally__reward_offer *o = &r->offers[n++];
    o->def = def;
    o->net = k;
    o->used = o->committed = true;
    tally__text_clip(o->room, sizeof o->room, PQgetvalue(q, i, 2));
  }
  PQclear(q);
  return TALLY_OK;
}

/* The rewards' fact tables, whose ids and batch ids come from the engine's
 * counter (tally__load_ids_past says why the restore raises it). */
static const tally__id_table reward_id_tables[] = {{"reward_defs", true},  {"reward_deletions", false},
                                                   {"reward_grants", true}, {"reward_uses", false},
                                                   {"reward_offers", false}, {"reward_offer_changes", false}};

int tally__rewards_restore(loader *l, int64_t now_ms) {
  tally__engine *e = l->e;
  tally__rewards *r = tally__rewards_of(e);
  if (!r && !(r = calloc(1, sizeof *r))) {
    snprintf(l->err, l->err_len, "load: rewards: %s", tally_strerror(TALLY_ENOMEM));
    return TALLY_ENOMEM;
  }
  memset(r, 0, sizeof *r); /* a start that is tried again loads afresh */
  e->feature_data[TALLY__FDATA_REWARDS] = r;
  int rc = tally__load_ids_past(l, reward_id_tables, sizeof reward_id_tables / sizeof reward_id_tables[0]);
  if (!rc) rc = restore_defs(l, r);
  if (!rc) rc = restore_grants(l, r, now_ms);
  if (!rc) rc = restore_per_event(l, r);
  if (!rc) rc = restore_offers(l, r);
  return rc;
}

void tally__rewards_destroy(tally__engine *e) {
  free(e->feature_data[TALLY__FDATA_REWARDS]);
  e->feature_data[TALLY__FDATA_REWARDS] = NULL;
}

/* ---- definitions ------------------------------------------------------------------ */
uint32_t tally__reward_def_by_id(tally__engine *e, uint64_t id) {
  tally__rewards *r = tally__rewards_of(e);
  return r ? def_by_id(r, id) : TALLY__NONE;
}

uint32_t tally__reward_def_find(tally__engine *e, uint32_t creator, const char *name) {
  tally__rewards *r = tally__rewards_of(e);
  for (uint32_t i = 0; r && i < TALLY__REWARD_DEFS_MAX; i++)
    if (r->defs[i].used && r->defs[i].creator == creator && strcmp(r->defs[i].name, name) == 0) return i;
  return TALLY__NONE;
}

int tally__reward_def_new(tally__engine *e, const tally__reward_def *spec, tally__op *op) {
  tally__rewards *r = tally__rewards_of(e);
  if (!r) return TALLY_ESTARTING;
  if (tally__reward_def_find(e, spec->creator, spec->name) != TALLY__NONE) return TALLY_EEXISTS;
  uint32_t slot = TALLY__NONE;
  for (uint32_t i = 0; i < TALLY__REWARD_DEFS_MAX && slot == TALLY__NONE; i++)
    if (!r->defs[i].used) slot = i;
  if (slot == TALLY__NONE) return TALLY_ETOO_MANY;
  tally__reward_def *d = &r->defs[slot];
  *d = *spec;
  d->id = tally__state_take_id(&e->st);
  d->used = d->busy = true;
  d->committed = d->deleted = false;
  const tally__state *st = &e->st;
  snprintf(d->json, sizeof d->json,
           "{\"k\":\"def\",\"r\":%" PRIu64 ",\"c\":%" PRIu64 ",\"n\":\"%s\",\"bps\":%d,\"amt\":%" PRId64
           ",\"cap\":%" PRId64 ",\"ttl\":%u,\"item\":%" PRIu64 "}",
           d->id, st->accounts[d->creator].id, spec->name, d->bps, d->amount, d->cap, d->ttl_s,
           d->item == TALLY__NONE ? 0 : st->items[d->item].id);
  if (d->unlock) { /* sql/020 tally_write_reward_unlocks: the same object, its "unl" key */
    size_t n = strlen(d->json);
    snprintf(d->json + n - 1, sizeof d->json - (n - 1), ",\"unl\":%u}", (unsigned)d->unlock);
  }
  fact_mark(op, RF_DEF, slot, d->json);
  return TALLY_OK;
}

int tally__reward_def_delete(tally__engine *e, uint32_t def, tally__op *op) {
  tally__reward_def *d = &tally__rewards_of(e)->defs[def];
  if (d->busy || !d->committed) return TALLY_EPENDING;
  if (d->deleted) return TALLY_EUNKNOWN_REWARD;
  d->busy = true;
  snprintf(d->json, sizeof d->json, "{\"k\":\"del\",\"r\":%" PRIu64 "}", d->id);
  fact_mark(op, RF_DEL, def, d->json);
  return TALLY_OK;
}

bool tally__reward_offered(tally__engine *e, uint32_t def, uint16_t net, const char *room) {
  tally__rewards *r = tally__rewards_of(e);
  for (uint32_t i = 0; r && i < TALLY__REWARD_OFFERS_MAX; i++) {
    const struct tally__reward_offer *o = &r->offers[i];
    /* A withdrawal in flight ends it now: no quiz decided after it may use it. */
    if (o->used && o->committed && !o->withdrawing && o->def == def && o->net == net && strcmp(o->room, room) == 0)
      return true;
  }
  return false;
}

int tally__reward_offer_withdraw(tally__engine *e, uint32_t def, uint16_t net, const char *room, tally__op *op) {
  tally__rewards *r = tally__rewards_of(e);
  if (!r) return TALLY_ESTARTING;
  for (uint32_t i = 0; i < TALLY__REWARD_OFFERS_MAX; i++) {
    struct tally__reward_offer *o = &r->offers[i];
    if (!o->used || o->def != def || o->net != net || strcmp(o->room, room) != 0) continue;
    if (!o->committed || o->withdrawing) return TALLY_EBUSY; /* its offer or withdrawal is in flight */
    o->withdrawing = true;
    snprintf(o->json, sizeof o->json, "{\"k\":\"offc\",\"r\":%" PRIu64 ",\"net\":%u,\"room\":\"%s\"}",
             r->defs[def].id, (unsigned)e->st.networks[net].id, room); /* room: the caller's (-Wrestrict) */
    fact_mark(op, RF_UNOFFER, i, o->json);
    return TALLY_OK;
  }
  return TALLY_ENOTFOUND;
}

int tally__reward_offer(tally__engine *e, uint32_t def, uint16_t net, const char *room, tally__op *op) {
  tally__rewards *r = tally__rewards_of(e);
  if (!r) return TALLY_ESTARTING;
  if (strpbrk(room, "\"\\")) return TALLY_EBAD_SYNTAX; /* kept out of the fact's JSON string */
  uint32_t slot = TALLY__NONE;
  for (uint32_t i = 0; i < TALLY__REWARD_OFFERS_MAX; i++) {
    const struct tally__reward_offer *o = &r->offers[i];
    if (o->used && o->def == def && o->net == net && strcmp(o->room, room) == 0)
      return o->withdrawing ? TALLY_EBUSY : TALLY_EEXISTS;
    if (!o->used && slot == TALLY__NONE) slot = i;
  }
  if (slot == TALLY__NONE) return TALLY_ETOO_MANY;
  struct tally__reward_offer *o = &r->offers[slot];
  memset(o, 0, sizeof *o);
  o->def = def;
  o->net = net;
  o->used = true;
  tally__text_clip(o->room, sizeof o->room, room);
  snprintf(o->json, sizeof o->json, "{\"k\":\"off\",\"r\":%" PRIu64 ",\"net\":%u,\"room\":\"%s\"}", r->defs[def].id,
           (unsigned)e->st.networks[net].id, room); /* the caller's: o->room would overlap o->json (-Wrestrict) */
  fact_mark(op, RF_OFFER, slot, o->json);
  return TALLY_OK;
}

void tally__reward_describe(tally__engine *e, const tally__reward_def *d, char *out, size_t n) {
  char amount[48], cap[64] = "";
  if (d->unlock && d->item != TALLY__NONE) {
    const char *sku = e->st.items[d->item].sku;
    if (d->unlock == TALLY__REWARD_UNLOCK_FREE) snprintf(out, n, "one %s free", sku);
    else snprintf(out, n, "access to %s without attending", sku);
    return;
  }
  if (d->bps % 100) snprintf(amount, sizeof amount, "%d.%02d%%", d->bps / 100, d->bps % 100); /* 12.05% */
  else if (d->bps) snprintf(amount, sizeof amount, "%d%%", d->bps / 100);
  else tally__format_amount(e, d->amount, amount, sizeof amount);
  if (d->cap) {
    char c[48];
    tally__format_amount(e, d->cap, c, sizeof c);
    snprintf(cap, sizeof cap, " (cap %s)", c);
  }
  snprintf(out, n, "%s%s off %s", amount, cap, d->item == TALLY__NONE ? "every item" : e->st.items[d->item].sku);
}

/* ---- use at BUY ------------------------------------------------------------------- */
int64_t tally__reward_discount(tally__engine *e, uint32_t def, uint32_t item, int64_t total) {
  const tally__reward_def *d = &tally__rewards_of(e)->defs[def];
  const tally__item *it = &e->st.items[item];
  /* The creator's own items only, and only where the creator is the one
   * payee: a split item's co-creators never pay for someone's reward. */
  if (it->creator != d->creator || it->split.count || (d->item != TALLY__NONE && d->item != item)) return 0;
  if (total <= 1 || d->unlock) return 0; /* an unlock takes nothing off: tally__reward_pick_unlock */
  int64_t off = d->bps ? (int64_t)(((__int128)total * d->bps) / TALLY__BPS_WHOLE) : d->amount;
  if (d->cap && off > d->cap) off = d->cap;
  if (off >= total) off = total - 1; /* a purchase moves at least one minor unit */
  return off > 0 ? off : 0;
}

static bool usable(const tally__reward_earned *g, uint32_t account, uint64_t now_mono) {
  return g->state == TALLY__GRANT_READY && g->account == account && g->expires_mono > now_mono;
}

uint32_t tally__reward_pick(tally__engine *e, uint32_t account, uint32_t item, int64_t total, int64_t *discount) {
  tally__rewards *r = tally__rewards_of(e);
  *discount = 0;
  if (!r || account == TALLY__NONE) return TALLY__NONE;
  uint64_t now = tally__now_mono_ms(e);
  uint32_t best = TALLY__NONE;
  for (uint32_t i = 0; i < r->grant_high; i++) {
    const tally__reward_earned *g = &r->grants[i];
    if (!usable(g, account, now)) continue;
    int64_t off = tally__reward_discount(e, g->def, item, total);
    if (off <= 0) continue;
    if (off > *discount || (off == *discount && g->expires_mono < r->grants[best].expires_mono)) {
      *discount = off;
      best = i;
    }
  }
  return best;
}

uint32_t tally__reward_pick_unlock(tally__engine *e, uint32_t account, uint32_t item, uint8_t unlock) {
  tally__rewards *r = tally__rewards_of(e);
  if (!r || account == TALLY__NONE) return TALLY__NONE;
  uint64_t now = tally__now_mono_ms(e);
  const tally__item *it = &e->st.items[item];
  uint32_t best = TALLY__NONE;
  for (uint32_t i = 0; i < r->grant_high; i++) {
    const tally__reward_earned *g = &r->grants[i];
    if (!usable(g, account, now)) continue;
    const tally__reward_def *d = &r->defs[g->def];
    if (d->unlock != unlock || d->item != item || it->creator != d->creator) continue;
    if (unlock == TALLY__REWARD_UNLOCK_FREE && (it->split.count || tally__reward_free_unit_refused(it))) continue;
    if (best == TALLY__NONE || g->expires_mono < r->grants[best].expires_mono) best = i;
  }
  return best;
}

void tally__reward_hold(tally__engine *e, uint32_t g, tally__op *op, int64_t discount) {
  tally__reward_earned *gr = &tally__rewards_of(e)->grants[g];
  gr->state = TALLY__GRANT_HELD;
  gr->transfer = op->transfer_id;
  op->reward_fact = TALLY__REWARD_FACT_USE;
  op->reward_grant = gr->id;
  op->discount = discount;
}

static tally__reward_earned *grant_by_id(tally__rewards *r, uint64_t id) {
  for (uint32_t i = 0; r && i < r->grant_high; i++)
    if (r->grants[i].state != TALLY__GRANT_FREE && r->grants[i].id == id) return &r->grants[i];
  return NULL;
}

void tally__reward_refund_attach(tally__engine *e, tally__op *op, bool full) {
  tally__rewards *r = tally__rewards_of(e);
  if (!r || !full) return;
  for (uint32_t i = 0; i < r->grant_high; i++) {
    tally__reward_earned *g = &r->grants[i];
    if (g->state != TALLY__GRANT_USED || g->transfer != op->ref_transfer) continue;
    g->state = TALLY__GRANT_RETURNING;
    op->reward_fact = TALLY__REWARD_FACT_RETURN;
    op->reward_grant = g->id;
    return;
  }
}

/* A purchase that used a reward, or a refund that gives one back,
 * committed as ours: the reward is used (and named to the buyer), or the
 * account's again. */
void tally__rewards_committed(tally__engine *e, const tally__op *op) {
  if (op->reward_fact == TALLY__REWARD_FACT_NONE) return;
  tally__rewards *r = tally__rewards_of(e);
  tally__reward_earned *g = grant_by_id(r, op->reward_grant);
  if (!g) return;
  const tally__reward_def *d = &r->defs[g->def];
  char off[48], text[TALLY_TEXT_BYTES_MAX];
  if (op->reward_fact == TALLY__REWARD_FACT_USE && d->unlock) {
    g->state = TALLY__FAULT(REWARD_TWICE) ? TALLY__GRANT_READY : TALLY__GRANT_USED;
    tally__say say;
    bool free_unit = d->unlock == TALLY__REWARD_UNLOCK_FREE;
    tally__say_init(&say, free_unit ? TALLY_MSG_REWARD_FREE_UNIT : TALLY_MSG_REWARD_ACCESS);
    tally__sayf(&say, "tRs", free_unit ? "Reward %s used on receipt %llu: your %s is free (the creator's gift; never refunded)"
                                       : "Reward %s used on receipt %llu: it let you buy %s without attending",
                d->name, (unsigned long long)op->transfer_id, e->st.items[op->item].sku);
    if (op->origin)
      tally__emit_say_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, 0, tally__origin_str(&e->st, op->origin),
                         op->channel, &say);
    return;
  }
  if (op->reward_fact == TALLY__REWARD_FACT_USE) {
    g->state = TALLY__FAULT(REWARD_TWICE) ? TALLY__GRANT_READY : TALLY__GRANT_USED;
    tally__format_amount(e, op->discount, off, sizeof off);
    /* Structured (TALLY_MSG_REWARD_USED): an adapter renders the discount
     * and the receipt its own way, as it does BUY's reply before it. */
    tally__say say;
    tally__say_init(&say, TALLY_MSG_REWARD_USED);
    tally__sayf(&say, "tRm", "Reward %s used on receipt %llu: %s off the price (the creator's gift)", d->name,
                (unsigned long long)op->transfer_id, off);
    tally__say_value(&say, 2, op->discount, TALLY__DECIMALS(e));
    if (op->origin)
      tally__emit_say_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, 0, tally__origin_str(&e->st, op->origin),
                         op->channel, &say);
    return;
  }
  g->state = TALLY__GRANT_READY; /* expired meanwhile: the next tick writes its expiry */
  g->transfer = 0;
  bool alive = g->expires_mono > tally__now_mono_ms(e);
  snprintf(text, sizeof text, "Reward %s is yours again%s", d->name, alive ? " (REWARDS lists it)" : ", but it has expired");
  if (op->origin)
    tally__emit_in(e, op->net, TALLY_EFFECT_REPLY, TALLY_OK, op->req_id, 0, tally__origin_str(&e->st, op->origin),
                   op->channel, text);
}

/* Runs after `committed` for every settled transfer: one that did not
 * commit as ours (failed, or a duplicate key) undoes its hold. */
void tally__rewards_settled(tally__engine *e, const tally__op *op, int outcome) {
  (void)outcome;
  if (op->reward_fact == TALLY__REWARD_FACT_NONE) return;
  tally__reward_earned *g = grant_by_id(tally__rewards_of(e), op->reward_grant);
  if (!g) return;
  if (g->state == TALLY__GRANT_HELD && g->transfer == op->transfer_id) {
    g->state = TALLY__GRANT_READY;
    g->transfer = 0;
  } else if (g->state == TALLY__GRANT_RETURNING) {
    g->state = TALLY__GRANT_USED;
  }
}

/* ---- grants and expiry ---------------------------------------------------------------- */
int tally__reward_grant(tally__engine *e, uint32_t def, uint32_t account, uint64_t quiz_id, uint32_t *slot) {
  tally__rewards *r = tally__rewards_of(e);
  if (!r) return TALLY_ESTARTING;
  const tally__reward_def *d = &r->defs[def];
  if (!d->used || !d->committed || d->deleted) return TALLY_EUNKNOWN_REWARD;
  uint32_t s = TALLY__NONE;
  for (uint32_t i = 0; i < TALLY__REWARD_GRANTS_MAX && s == TALLY__NONE; i++)
    if (r->grants[i].state == TALLY__GRANT_FREE) s = i;
  if (s == TALLY__NONE) return TALLY_ETOO_MANY;
  tally__op *op = tally__engine_record_op(e, TALLY__OP_FACT, account, TALLY__NONE);
  if (!op) return TALLY_EBUSY;
  tally__reward_earned *g = &r->grants[s];
  memset(g, 0, sizeof *g);
  if (s >= r->grant_high) r->grant_high = s + 1;
  g->id = tally__state_take_id(&e->st);
  g->def = def;
  g->account = account;
  g->quiz_id = quiz_id;
  g->expires_ms = tally__now_wall_ms(e) + (int64_t)d->ttl_s * 1000;
  g->expires_mono = tally__now_mono_ms(e) + (uint64_t)d->ttl_s * 1000;
  g->state = TALLY__GRANT_GRANTING;
  snprintf(g->json, sizeof g->json,
           "{\"k\":\"grant\",\"g\":%" PRIu64 ",\"r\":%" PRIu64 ",\"a\":%" PRIu64 ",\"q\":%" PRIu64 ",\"exp\":%" PRId64 "}",
           g->id, d->id, e->st.accounts[account].id, quiz_id, g->expires_ms);
  fact_mark(op, RF_GRANT, s, g->json);
  *slot = s;
  return TALLY_OK;
}

static struct tally__reward_per_event *per_event(tally__rewards *r, uint64_t event_id, uint32_t account) {
  for (uint32_t i = 0; i < r->per_event_count; i++)
    if (r->per_event[i].event_id == event_id && r->per_event[i].account == account) return &r->per_event[i];
  return NULL;
}

static bool event_running(const tally__state *st, uint64_t event_id) {
  for (uint32_t i = 0; i < st->event_count; i++)
    if (st->events[i].id == event_id) return st->events[i].stopped_ms == 0;
  return false;
}

/* A slot for (event, account); a full table first forgets the counts of
 * events that have ended (no grant can name them any more). */
static struct tally__reward_per_event *per_event_take(tally__engine *e, tally__rewards *r, uint64_t event_id,
                                                      uint32_t account) {
  struct tally__reward_per_event *p = per_event(r, event_id, account);
  if (p) return p;
  if (r->per_event_count == TALLY__REWARD_PER_EVENT_MAX) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->per_event_count; i++)
      if (event_running(&e->st, r->per_event[i].event_id)) r->per_event[k++] = r->per_event[i];
    r->per_event_count = k;
    if (k == TALLY__REWARD_PER_EVENT_MAX) return NULL;
  }
  p = &r->per_event[r->per_event_count++];
  *p = (struct tally__reward_per_event){.event_id = event_id, .account = account};
  return p;
}

uint32_t tally__reward_event_count(tally__engine *e, uint64_t event_id, uint32_t account) {
  tally__rewards *r = tally__rewards_of(e);
  const struct tally__reward_per_event *p = r && event_id ? per_event(r, event_id, account) : NULL;
  return p ? p->count : 0;
}

int tally__reward_grant_event(tally__engine *e, uint32_t def, uint32_t account, uint64_t quiz_id, uint64_t event_id,
                              uint32_t *slot) {
  tally__rewards *r = tally__rewards_of(e);
  if (!r) return TALLY_ESTARTING;
  struct tally__reward_per_event *p = NULL;
  if (event_id) {
    uint32_t cap = e->cfg.reward_per_event_max;
    if (cap && tally__reward_event_count(e, event_id, account) >= cap) return TALLY_EREWARD_CAP;
    /* Full of running events' counts: a cap could not be held, so refuse;
     * without a cap nothing is counted. */
    if (!(p = per_event_take(e, r, event_id, account)) && cap) return TALLY_ETOO_MANY;
  }
  int rc = tally__reward_grant(e, def, account, quiz_id, slot);
  if (rc || !p) return rc;
  p->count++; /* taken back if the grant's fact fails */
  r->grants[*slot].event_id = event_id;
  return TALLY_OK;
}

uint32_t tally__reward_grant_of(tally__engine *e, uint64_t quiz_id, uint32_t account) {
  tally__rewards *r = tally__rewards_of(e);
  for (uint32_t i = 0; r && i < r->grant_high; i++)
    if (r->grants[i].state != TALLY__GRANT_FREE && r->grants[i].quiz_id == quiz_id && r->grants[i].account == account)
      return i;
  return TALLY__NONE;
}

/* Unused rewards past their time get an expiry fact (as many as batch room
 * allows; the rest at the next tick). Until it commits none of them
 * applies (usable() reads the clock). */
void tally__rewards_tick(tally__engine *e, uint64_t now_mono) {
  tally__rewards *r = tally__rewards_of(e);
  for (uint32_t i = 0; r && i < r->grant_high; i++) {
    tally__reward_earned *g = &r->grants[i];
    if (g->state != TALLY__GRANT_READY || g->expires_mono > now_mono) continue;
    tally__op *op = tally__engine_record_op(e, TALLY__OP_FACT, g->account, TALLY__NONE);
    if (!op) return;
    g->state = TALLY__GRANT_EXPIRING;
    snprintf(g->json, sizeof g->json, "{\"k\":\"exp\",\"g\":%" PRIu64 "}", g->id);
    fact_mark(op, RF_EXPIRE, i, g->json);
  }
}

void tally__rewards_record_settled(tally__engine *e, const tally__op *op, bool ok) {
  if (!ours(op)) return;
  tally__rewards *r = tally__rewards_of(e);
  uint32_t s = op->entry_slot;
  if (op->qty == RF_OFFER) {
    struct tally__reward_offer *o = &r->offers[s];
    if (ok) o->committed = true;
    else memset(o, 0, sizeof *o); /* never stored: may be offered again */
    return;
  }
  if (op->qty == RF_UNOFFER) {
    struct tally__reward_offer *o = &r->offers[s];
    if (ok) memset(o, 0, sizeof *o); /* withdrawn: may be offered again */
    else o->withdrawing = false;    /* not stored: still offered */
    return;
  }
  if (op->qty == RF_DEF || op->qty == RF_DEL) {
    tally__reward_def *d = &r->defs[s];
    d->busy = false;
    if (op->qty == RF_DEF && ok) d->committed = true;
    else if (op->qty == RF_DEF) memset(d, 0, sizeof *d); /* never stored: the name is free again */
    else if (ok) d->deleted = true;
    return;
  }
  tally__reward_earned *g = &r->grants[s];
  if (op->qty == RF_GRANT) {
    if (ok) {
      g->state = TALLY__GRANT_READY;
      r->committed_grants++; /* counters count committed grants only */
    } else {
      struct tally__reward_per_event *p = g->event_id ? per_event(r, g->event_id, g->account) : NULL;
      if (p && p->count) p->count--; /* counters count committed grants only */
      memset(g, 0, sizeof *g);
    }
  } else if (op->qty == RF_EXPIRE) {
    if (ok) memset(g, 0, sizeof *g);
    else g->state = TALLY__GRANT_READY; /* the next tick tries again */
  }
}

/* ---- lists ------------------------------------------------------------------------- */
static void duration(uint64_t ms, char *out, size_t n) {
  uint64_t s = ms / 1000;
  if (s >= 3600) snprintf(out, n, "%" PRIu64 " h %" PRIu64 " min", s / 3600, s % 3600 / 60);
  else if (s >= 60) snprintf(out, n, "%" PRIu64 " min", s / 60);
  else snprintf(out, n, "%" PRIu64 " s", s);
}

void tally__reward_list_defs(tally__engine *e, uint32_t creator, char *out, size_t n) {
  tally__rewards *r = tally__rewards_of(e);
  size_t k = (size_t)snprintf(out, n, "Your rewards:");
  uint32_t shown = 0, more = 0;
  for (uint32_t i = 0; r && i < TALLY__REWARD_DEFS_MAX; i++) {
    const tally__reward_def *d = &r->defs[i];
    if (!d->used || d->creator != creator || d->deleted) continue;
    if (shown == TALLY__REWARD_LIST_MAX || k + 96 > n) {
      more++;
      continue;
    }
    char what[128], life[32];
    tally__reward_describe(e, d, what, sizeof what);
    duration((uint64_t)d->ttl_s * 1000, life, sizeof life);
    k += (size_t)snprintf(out + k, n - k, "%s %s %s, lasts %s%s", shown ? ";" : "", d->name, what, life,
                          d->committed ? "" : " (being saved)");
    shown++;
  }
  if (!shown) snprintf(out, n, "You have defined no rewards: REWARD ADD <name> discount=10%% [cap=<amount>] [for=10m] [sku=<sku>|all]");
  else if (more && k < n) snprintf(out + k, n - k, "; and %u more", more);
}

void tally__reward_list_grants(tally__engine *e, uint32_t account, uint64_t now_mono, char *out, size_t n) {
  tally__rewards *r = tally__rewards_of(e);
  size_t k = (size_t)snprintf(out, n, "Your earned rewards (used at your next BUY of an item they fit; BUY <sku> noreward keeps them):");
  uint32_t shown = 0;
  for (uint32_t i = 0; r && i < TALLY__REWARD_GRANTS_MAX && shown < TALLY__REWARD_LIST_MAX; i++) {
    const tally__reward_earned *g = &r->grants[i];
    bool held = g->state == TALLY__GRANT_HELD;
    if ((!usable(g, account, now_mono) && !(held && g->account == account)) || k + 128 > n) continue;
    const tally__reward_def *d = &r->defs[g->def];
    char what[128], left[32];
    tally__reward_describe(e, d, what, sizeof what);
    duration(g->expires_mono > now_mono ? g->expires_mono - now_mono : 0, left, sizeof left);
    k += (size_t)snprintf(out + k, n - k, "%s %s from %s: %s, %s left%s", shown ? ";" : "", d->name,
                          tally__account_label(&e->st, d->creator), what, left, held ? " (a purchase is using it)" : "");
    shown++;
  }
  if (!shown) snprintf(out, n, "You have no earned rewards right now (quizzes in events give them)");
}
