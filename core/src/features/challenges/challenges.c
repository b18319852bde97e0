/* challenges.c — rules, progress followed from what commits, achievements
 * written once, their rewards and badges (contract in challenges.h).
 *
 * Progress has no table of its own: minutes are the audience rows (the
 * kernel rebuilds them from attendance), purchases and tips of running
 * events are summed here from the committed transfers (rebuilt from
 * `transfers` at restore), streaks read the owners' events and who
 * attended them, first purchases the (creator, buyer) pairs that bought. */
#include "challenges.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live.h"
#include "loader.h"
#include "rewards.h"
#include "text.h"

_Static_assert(TALLY__CHALLENGES_MAX == 256 && TALLY__CHALLENGE_ACHIEVED_MAX == 65536 &&
                   TALLY__CHALLENGE_SUMS_MAX == 65536 && TALLY__CHALLENGE_SEEN_MAX == 65536,
               "the LIMITs of the restore queries");

/* FACT sub-kinds (op->qty); op->entry_slot is the rule or the achievement. */
enum { CF_DEF = 1, CF_DEL = 2, CF_REACHED = 3 };
#define SEEN_EVENT_BIT (UINT64_C(1) << 63)

tally__challenges *tally__challenges_of(tally__engine *e) { return e->feature_data[TALLY__FDATA_CHALLENGES]; }

static bool ours(const tally__op *op) { return op->type == TALLY__OP_FACT && op->kind == TALLY__FACT_CHALLENGE; }

static void fact_mark(tally__op *op, uint32_t sub, uint32_t slot, const char *json) {
  op->kind = TALLY__FACT_CHALLENGE;
  op->qty = sub;
  op->entry_slot = slot;
  op->fact = json;
}

/* ---- the tables' indexes ------------------------------------------------------------ */
typedef struct probe {
  const tally__challenges *z;
  uint64_t a;
  uint32_t b;
} probe;

static uint64_t pair_hash(uint64_t a, uint32_t b) { return tally__hash_u64(a * 0x9e3779b97f4a7c15ull ^ b); }

static bool ach_eq(const void *ud, uint32_t i) {
  const probe *p = ud;
  return p->z->ach[i].rule == p->a && p->z->ach[i].account == p->b;
}
static bool sum_eq(const void *ud, uint32_t i) {
  const probe *p = ud;
  return p->z->sums[i].event_id == p->a && p->z->sums[i].account == p->b;
}
static bool seen_eq(const void *ud, uint32_t i) {
  const probe *p = ud;
  return p->z->seen[i].a == p->a && p->z->seen[i].b == p->b;
}

static uint32_t ach_find(const tally__challenges *z, uint32_t rule, uint32_t account) {
  probe p = {z, rule, account};
  return tally__map_find(&z->ach_index, pair_hash(rule, account), ach_eq, &p);
}

static tally__challenge_sum *sum_get(tally__challenges *z, uint64_t event_id, uint32_t account, bool create) {
  probe p = {z, event_id, account};
  uint64_t h = pair_hash(event_id, account);
  uint32_t i = tally__map_find(&z->sum_index, h, sum_eq, &p);
  if (i != TALLY__MAP_NONE) return &z->sums[i];
  if (!create || z->sum_count == TALLY__CHALLENGE_SUMS_MAX || tally__map_put(&z->sum_index, h, z->sum_count)) return NULL;
  tally__challenge_sum *s = &z->sums[z->sum_count++];
  *s = (tally__challenge_sum){.event_id = event_id, .account = account};
  return s;
}

static bool sale_eq(const void *ud, uint32_t i) {
  const probe *p = ud;
  return p->z->sales[i].transfer_id == p->a;
}

/* A purchase of sum s (false when the table is full: its refunds will not
 * come off, which can only reach later, never earlier, than the ledger's
 * gross sum that `tally check` holds it against). */
static void sale_add(tally__challenges *z, uint64_t transfer_id, uint32_t sum) {
  if (z->sale_count == TALLY__CHALLENGE_SALES_MAX ||
      tally__map_put(&z->sale_index, tally__hash_u64(transfer_id), z->sale_count))
    return;
  z->sales[z->sale_count++] = (tally__challenge_sale){transfer_id, sum};
}

static tally__challenge_sum *sale_sum(tally__challenges *z, uint64_t transfer_id) {
  probe p = {z, transfer_id, 0};
  uint32_t i = tally__map_find(&z->sale_index, tally__hash_u64(transfer_id), sale_eq, &p);
  return i == TALLY__MAP_NONE ? NULL : &z->sums[z->sales[i].sum];
}

static bool seen_has(const tally__challenges *z, uint64_t a, uint32_t b) {
  probe p = {z, a, b};
  return tally__map_find(&z->seen_index, pair_hash(a, b), seen_eq, &p) != TALLY__MAP_NONE;
}

/* False when the table is full (then the first-purchase rules stop: what
 * is not known cannot be told first). */
static bool seen_add(tally__challenges *z, uint64_t a, uint32_t b) {
  if (seen_has(z, a, b)) return true;
  if (z->seen_count == TALLY__CHALLENGE_SEEN_MAX || tally__map_put(&z->seen_index, pair_hash(a, b), z->seen_count))
    return false;
  z->seen[z->seen_count++] = (tally__challenge_seen){a, b};
  return true;
}

static uint64_t bought_key(uint32_t creator) { return (uint64_t)creator + 1; }

/* ---- streak history ------------------------------------------------------------------ */
static bool past_has(const tally__challenges *z, uint64_t id) {
  for (uint32_t i = 0; i < z->past_count; i++)
    if (z->past[i].id == id) return true;
  return false;
}

static void past_add(tally__challenges *z, uint64_t id, uint32_t host, int64_t start_ms) {
  if (past_has(z, id)) return;
  if (z->past_count == TALLY__CHALLENGE_HISTORY_MAX) { /* the oldest start goes */
    uint32_t old = 0;
    for (uint32_t i = 1; i < z->past_count; i++)
      if (z->past[i].start_ms < z->past[old].start_ms) old = i;
    z->past[old] = z->past[--z->past_count];
  }
  z->past[z->past_count++] = (tally__challenge_past){id, host, start_ms};
}

static bool attended(tally__engine *e, const tally__challenges *z, uint64_t event_id, uint32_t account) {
  return tally__audience_attended(&e->st, event_id, account) || seen_has(z, event_id | SEEN_EVENT_BIT, account);
}

/* Events of host attended in a row by account, counting back from the one
 * that started at or before `from_ms` (the running one), at most `max`. */
static int64_t streak_of(tally__engine *e, const tally__challenges *z, uint32_t host, uint32_t account, int64_t from_ms,
                         int64_t max) {
  int64_t n = 0, below = from_ms + 1;
  while (n < max) {
    const tally__challenge_past *best = NULL;
    for (uint32_t i = 0; i < z->past_count; i++) {
      const tally__challenge_past *p = &z->past[i];
      if (p->host == host && p->start_ms < below && (!best || p->start_ms > best->start_ms)) best = p;
    }
    if (!best || !attended(e, z, best->id, account)) break;
    n++;
    below = best->start_ms;
  }
  return n;
}

/* ---- reaching ------------------------------------------------------------------------ */
static bool rule_live(const tally__challenge *r) { return r->used && r->committed && !r->deleted && !r->deleting; }

/* Does rule r count what happens in event ev (an index into st->events)? */
static bool rule_in_event(const tally__challenge *r, const tally__event *ev) {
  return r->event_id ? r->event_id == ev->id : ev->host == r->owner;
}

/* Rule r is reached by account: an achievement waiting for batch room
 * (once: a second reach finds the first). */
static void reach(tally__engine *e, uint32_t rule, uint32_t account, uint64_t event_id, uint64_t transfer_id,
                  int64_t progress) {
  tally__challenges *z = tally__challenges_of(e);
  if (ach_find(z, rule, account) != TALLY__MAP_NONE) return;
  if (z->ach_count == TALLY__CHALLENGE_ACHIEVED_MAX ||
      tally__map_put(&z->ach_index, pair_hash(rule, account), z->ach_count)) {
    fprintf(stderr, "tally: challenge %s: the table of achievements is full; %s not recorded\n", z->rules[rule].name,
            tally__account_name(&e->st, account));
    return;
  }
  z->ach[z->ach_count++] = (tally__achievement){.rule = rule, .account = account, .event_id = event_id,
                                                .transfer_id = transfer_id, .progress = progress,
                                                .state = TALLY__ACH_WANT, .grant = TALLY__NONE,
                                                .json = TALLY__NONE};
  z->want++;
}

/* The rules of one kind an event's purchase or tip may reach. */
static void check_sum(tally__engine *e, const tally__challenge_sum *s, uint8_t kind, uint64_t transfer_id) {
  tally__challenges *z = tally__challenges_of(e);
  uint32_t ev = tally__live_event_find(&e->st, s->event_id);
  if (ev == TALLY__NONE) return;
  int64_t v = kind == TALLY__CH_SPENT ? s->purchased : s->tipped;
  for (uint32_t i = 0; i < TALLY__CHALLENGES_MAX; i++) {
    const tally__challenge *r = &z->rules[i];
    if (!rule_live(r) || r->kind != kind || v < r->threshold || !rule_in_event(r, &e->st.events[ev])) continue;
    reach(e, i, s->account, s->event_id, transfer_id, v);
  }
}

void tally__challenges_committed(tally__engine *e, const tally__op *op) {
  tally__challenges *z = tally__challenges_of(e);
  if (!z || op->type != TALLY__OP_TRANSFER) return;
  if (op->kind == TALLY__TRANSFER_REFUND) { /* what was refunded was not spent */
    tally__challenge_sum *s = sale_sum(z, op->ref_transfer);
    if (s) s->purchased -= op->amount;
    return;
  }
  /* A free unit a reward gave (amount 0, kind 6 in the ledger) is not a sale: nothing was spent. */
  bool sale = op->kind == TALLY__TRANSFER_PURCHASE && op->amount > 0;
  if (!sale && op->kind != TALLY__TRANSFER_TIP) return;
  if (op->event_id) {
    tally__challenge_sum *s = sum_get(z, op->event_id, op->account, true);
    if (s) {
      *(sale ? &s->purchased : &s->tipped) += op->amount;
      if (sale) sale_add(z, op->transfer_id, (uint32_t)(s - z->sums));
      check_sum(e, s, sale ? TALLY__CH_SPENT : TALLY__CH_TIPPED, op->transfer_id);
    }
  }
  if (!sale || op->item >= e->st.item_count) return;
  uint32_t creator = e->st.items[op->item].creator;
  bool before = seen_has(z, bought_key(creator), op->account);
  if (!before && !seen_add(z, bought_key(creator), op->account)) z->bought_complete = false;
  if (before || !z->bought_complete) return;
  for (uint32_t i = 0; i < TALLY__CHALLENGES_MAX; i++) {
    const tally__challenge *r = &z->rules[i];
    /* Decided after the rule (ids are the engine's one counter). */
    if (rule_live(r) && r->kind == TALLY__CH_FIRST && r->owner == creator && op->transfer_id > r->id)
      reach(e, i, op->account, op->event_id, op->transfer_id, 1);
  }
}

/* Minutes and streaks: the audience rows of running events (present ones,
 * or all of them after a restart or a new rule). */
static void scan(tally__engine *e, tally__challenges *z, uint64_t now_mono) {
  tally__state *st = &e->st;
  uint32_t live[TALLY__CHALLENGES_LIVE_MAX], n = 0;
  for (uint32_t i = 0; i < TALLY__CHALLENGES_MAX && n < TALLY__CHALLENGES_LIVE_MAX; i++)
    if (rule_live(&z->rules[i]) && (z->rules[i].kind == TALLY__CH_MINUTES || z->rules[i].kind == TALLY__CH_STREAK))
      live[n++] = i;
  bool all = z->rescan;
  z->rescan = false;
  /* The events of streak owners in memory (running and of the last day)
   * join their history: a streak never skips an event it did not see. */
  for (uint32_t k = 0; k < st->event_count; k++) {
    const tally__event *ev = &st->events[k];
    for (uint32_t j = 0; j < n; j++)
      if (z->rules[live[j]].kind == TALLY__CH_STREAK && z->rules[live[j]].owner == ev->host) {
        past_add(z, ev->id, ev->host, ev->start_ms);
        break;
      }
  }
  if (!n) return;
  uint64_t cached_id = 0;
  const tally__event *cached = NULL;
  for (uint32_t row = 0; row < st->audience_count; row++) {
    const tally__audience *a = &st->audience[row];
    if (!a->first_ms || (!all && !a->joined_mono)) continue;
    if (a->event_id != cached_id) {
      uint32_t ev = tally__live_event_find(st, a->event_id);
      cached_id = a->event_id;
      cached = ev == TALLY__NONE || st->events[ev].stopped_ms ? NULL : &st->events[ev];
    }
    if (!cached) continue;
    for (uint32_t j = 0; j < n; j++) {
      const tally__challenge *r = &z->rules[live[j]];
      if (ach_find(z, live[j], a->account) != TALLY__MAP_NONE) continue;
      if (r->kind == TALLY__CH_MINUTES && rule_in_event(r, cached)) {
        int32_t s = tally__audience_seconds(st, row, now_mono);
        if (s >= r->threshold) reach(e, live[j], a->account, cached->id, 0, s);
      } else if (r->kind == TALLY__CH_STREAK && cached->host == r->owner) {
        int64_t k = streak_of(e, z, r->owner, a->account, cached->start_ms, r->threshold);
        if (k >= r->threshold) reach(e, live[j], a->account, cached->id, 0, k);
      }
    }
  }
}

/* ---- achievements: stored, announced, paid ---------------------------------------------- */
static uint32_t json_take(tally__challenges *z) {
  for (uint32_t i = 0; i < TALLY__CHALLENGE_INFLIGHT_MAX; i++)
    if (!z->json_used[i]) {
      z->json_used[i] = true;
      return i;
    }
  return TALLY__NONE;
}

static void send_wanted(tally__engine *e, tally__challenges *z) {
  const tally__state *st = &e->st;
  for (uint32_t i = 0; i < z->ach_count && z->want; i++) {
    tally__achievement *a = &z->ach[i];
    if (a->state != TALLY__ACH_WANT) continue;
    const tally__challenge *r = &z->rules[a->rule];
    if (r->deleted) { /* deleted before it was stored: not reached */
      a->state = TALLY__ACH_FREE;
      z->want--;
      continue;
    }
    if (r->deleting) continue; /* stored if the deletion fails, dropped once it commits */
    uint32_t j = json_take(z);
    if (j == TALLY__NONE) return;
    tally__op *op = tally__engine_record_op(e, TALLY__OP_FACT, a->account, TALLY__NONE);
    if (!op) {
      z->json_used[j] = false;
      return; /* the next tick goes on */
    }
    snprintf(z->json[j], sizeof z->json[j],
             "{\"k\":\"ca\",\"c\":%" PRIu64 ",\"a\":%" PRIu64 ",\"ev\":%" PRIu64 ",\"x\":%" PRIu64 ",\"p\":%" PRId64 "}",
             r->id, st->accounts[a->account].id, a->event_id, a->transfer_id, a->progress);
    a->json = j;
    a->state = TALLY__ACH_RECORDING;
    z->want--;
    fact_mark(op, CF_REACHED, i, z->json[j]);
  }
}

/* Grants for achievements stored without one (restored, or just stored);
 * the grant's key (rule, account) keeps it once. */
static void pay(tally__engine *e, tally__challenges *z) {
  tally__rewards *rw = tally__rewards_of(e);
  for (uint32_t i = 0; i < z->ach_count && z->unpaid; i++) {
    tally__achievement *a = &z->ach[i];
    if (a->state != TALLY__ACH_DONE || a->paid) continue;
    const tally__challenge *r = &z->rules[a->rule];
    uint32_t g = a->grant;
    if (g != TALLY__NONE && rw->grants[g].state == TALLY__GRANT_FREE) g = TALLY__NONE; /* its fact failed */
    if (g == TALLY__NONE) g = tally__reward_grant_of(e, r->id, a->account);
    if (g == TALLY__NONE) {
      /* Reached in an event: counted against reward_per_event_max there. */
      int rc = tally__reward_grant_event(e, r->reward_def, a->account, r->id, a->event_id, &g);
      if (rc == TALLY_EBUSY) return;
      if (rc) {
        fprintf(stderr, "tally: challenge %s: reward not granted to %s: %s\n", r->name,
                tally__account_name(&e->st, a->account), tally_strerror(rc));
        a->paid = true; /* given up on (the reward was deleted, the table is full, or the account has
                           reward_per_event_max rewards of that event) */
        z->unpaid--;
        continue;
      }
    }
    a->grant = g;
    if (rw->grants[g].state != TALLY__GRANT_GRANTING) {
      a->paid = true;
      z->unpaid--;
    }
  }
}

/* After an event's summary (live.c said it when summary_due went false):
 * who reached what in it. */
static void summaries(tally__engine *e, tally__challenges *z) {
  const tally__state *st = &e->st;
  for (uint32_t k = 0; k < st->event_count; k++) {
    const tally__event *ev = &st->events[k];
    if (!ev->stopped_ms || ev->summary_due || z->said[k] == ev->id) continue;
    z->said[k] = ev->id;
    char line[TALLY_TEXT_BYTES_MAX - 64];
    tally__say_marks marks = {0};
    size_t used = 0;
    uint32_t count = 0, more = 0;
    line[0] = 0;
    for (uint32_t i = 0; i < z->ach_count; i++) {
      const tally__achievement *a = &z->ach[i];
      if (a->state != TALLY__ACH_DONE || a->event_id != ev->id) continue;
      count++;
      const tally__challenge *r = &z->rules[a->rule];
      bool named = !st->accounts[a->account].unnamed;
      const char *who = named ? tally__account_label(st, a->account) : "someone";
      const char *what = r->badge[0] ? r->badge : r->name;
      int w = snprintf(line + used, sizeof line - used, "%s%s (%s)", used ? ", " : "", who, what);
      if (w < 0 || (size_t)w >= sizeof line - used) {
        line[used] = 0;
        more++;
        continue;
      }
      size_t at = used + (used ? 2 : 0);
      if (named) tally__say_mark(&marks, TALLY_ARG_ACCOUNT, at, strlen(who), 0, 0);
      tally__say_mark(&marks, TALLY_ARG_TEXT, at + strlen(who) + 2, strlen(what), 0, 0);
      used += (size_t)w;
    }
    if (!count) continue;
    tally__say say;
    tally__say_init(&say, TALLY_MSG_CHALLENGES_SUMMARY);
    tally__sayf(&say, "", "Challenges reached: ");
    tally__say_splice(&say, line, &marks);
    if (more) tally__sayf(&say, "n", ", and %u more", more);
    tally__sayf(&say, "", ".");
    tally__announce_say_in(e, ev->net, ev->channel, &say);
  }
}

void tally__challenges_tick(tally__engine *e, uint64_t now_mono) {
  tally__challenges *z = tally__challenges_of(e);
  if (!z) return;
  if (now_mono >= z->scan_mono) {
    z->scan_mono = now_mono + TALLY__CHALLENGE_SCAN_MS;
    scan(e, z, now_mono);
  }
  if (z->want) send_wanted(e, z);
  if (z->unpaid) pay(e, z);
  summaries(e, z);
}

static void announce_reached(tally__engine *e, const tally__challenges *z, const tally__achievement *a) {
  const tally__state *st = &e->st;
  uint32_t ev = a->event_id ? tally__live_event_find(st, a->event_id) : TALLY__NONE;
  if (ev == TALLY__NONE) return; /* WALLET shows it */
  const tally__challenge *r = &z->rules[a->rule];
  char what[128];
  tally__challenge_describe(e, r, what, sizeof what);
  bool named = !st->accounts[a->account].unnamed;
  tally__say say;
  tally__say_init(&say, TALLY_MSG_CHALLENGE_REACHED);
  tally__sayf(&say, named ? "at-" : "-t-", "%s reached the challenge %s (%s)",
              named ? tally__account_label(st, a->account) : "Someone", r->name, what);
  if (r->badge[0]) tally__sayf(&say, "t", ", badge %s", r->badge);
  if (r->reward_def != TALLY__NONE)
    tally__sayf(&say, "t", ", reward %s (REWARDS shows it)", tally__rewards_of(e)->defs[r->reward_def].name);
  tally__sayf(&say, "", ".");
  tally__announce_say_in(e, st->events[ev].net, st->events[ev].channel, &say);
}

void tally__challenges_record_settled(tally__engine *e, const tally__op *op, bool ok) {
  if (!ours(op)) return;
  tally__challenges *z = tally__challenges_of(e);
  uint32_t s = op->entry_slot;
  if (op->qty == CF_DEF || op->qty == CF_DEL) {
    tally__challenge *r = &z->rules[s];
    r->busy = false;
    if (op->qty == CF_DEF && ok) {
      r->committed = true;
      z->rescan = true; /* who is already there may have reached it */
      if (r->kind == TALLY__CH_SPENT || r->kind == TALLY__CH_TIPPED) /* and who already spent or tipped enough */
        for (uint32_t i = 0; i < z->sum_count; i++) check_sum(e, &z->sums[i], r->kind, 0);
    } else if (op->qty == CF_DEF) {
      memset(r, 0, sizeof *r); /* never stored: the name is free again */
    } else if (ok) {
      r->deleted = true;
    } else {
      r->deleting = false;
    }
    return;
  }
  tally__achievement *a = &z->ach[s];
  if (a->json != TALLY__NONE) z->json_used[a->json] = false;
  a->json = TALLY__NONE;
  if (!ok) {
    a->state = TALLY__ACH_WANT; /* the next tick writes it again; its key keeps it once */
    z->want++;
    return;
  }
  a->state = TALLY__ACH_DONE;
  a->paid = z->rules[a->rule].reward_def == TALLY__NONE;
  z->unpaid += !a->paid;
  announce_reached(e, z, a);
}

/* ---- rules --------------------------------------------------------------------------- */
uint32_t tally__challenge_find(tally__engine *e, uint32_t owner, const char *name) {
  tally__challenges *z = tally__challenges_of(e);
  for (uint32_t i = 0; z && i < TALLY__CHALLENGES_MAX; i++)
    if (z->rules[i].used && z->rules[i].owner == owner && strcmp(z->rules[i].name, name) == 0) return i;
  return TALLY__NONE;
}

int tally__challenge_new(tally__engine *e, const tally__challenge *spec, tally__op *op) {
  tally__challenges *z = tally__challenges_of(e);
  if (!z) return TALLY_ESTARTING;
  if (tally__challenge_find(e, spec->owner, spec->name) != TALLY__NONE) return TALLY_EEXISTS;
  if (spec->kind == TALLY__CH_FIRST && !z->bought_complete) return TALLY_EBUYERS_UNKNOWN;
  uint32_t slot = TALLY__NONE, live = 0;
  for (uint32_t i = 0; i < TALLY__CHALLENGES_MAX; i++) {
    if (!z->rules[i].used && slot == TALLY__NONE) slot = i;
    live += z->rules[i].used && !z->rules[i].deleted;
  }
  if (slot == TALLY__NONE || live >= TALLY__CHALLENGES_LIVE_MAX) return TALLY_ETOO_MANY;
  tally__challenge *r = &z->rules[slot];
  *r = *spec;
  r->id = tally__state_take_id(&e->st);
  r->used = r->busy = true;
  r->committed = r->deleted = r->deleting = false;
  const tally__rewards *rw = tally__rewards_of(e);
  uint64_t reward = r->reward_def == TALLY__NONE || !rw ? 0 : rw->defs[r->reward_def].id;
  snprintf(r->json, sizeof r->json,
           "{\"k\":\"cd\",\"c\":%" PRIu64 ",\"o\":%" PRIu64 ",\"n\":\"%s\",\"t\":%u,\"th\":%" PRId64 ",\"ev\":%" PRIu64
           ",\"r\":%" PRIu64 ",\"b\":\"%s\"}",
           r->id, e->st.accounts[r->owner].id, spec->name, (unsigned)r->kind, r->threshold, r->event_id, reward,
           spec->badge);
  fact_mark(op, CF_DEF, slot, r->json);
  return TALLY_OK;
}

int tally__challenge_delete(tally__engine *e, uint32_t rule, uint32_t by, tally__op *op) {
  tally__challenge *r = &tally__challenges_of(e)->rules[rule];
  if (r->busy || !r->committed) return TALLY_EPENDING;
  if (r->deleted || r->deleting) return TALLY_EUNKNOWN_CHALLENGE;
  r->busy = r->deleting = true;
  snprintf(r->json, sizeof r->json, "{\"k\":\"cx\",\"c\":%" PRIu64 ",\"by\":%" PRIu64 "}", r->id,
           e->st.accounts[by].id);
  fact_mark(op, CF_DEL, rule, r->json);
  return TALLY_OK;
}

void tally__challenge_describe(tally__engine *e, const tally__challenge *r, char *out, size_t n) {
  char amount[48];
  const char *where = r->event_id ? "in one event" : "in one event they host";
  switch (r->kind) {
  case TALLY__CH_MINUTES:
    if (r->threshold % 60) snprintf(out, n, "%" PRId64 " s present %s", r->threshold, where);
    else snprintf(out, n, "%" PRId64 " min present %s", r->threshold / 60, where);
    break;
  case TALLY__CH_SPENT:
  case TALLY__CH_TIPPED:
    tally__format_amount(e, r->threshold, amount, sizeof amount);
    snprintf(out, n, "%s %s %s", r->kind == TALLY__CH_SPENT ? "buy for" : "tip", amount, where);
    break;
  case TALLY__CH_STREAK:
    snprintf(out, n, "%" PRId64 " of their events in a row", r->threshold);
    break;
  default:
    snprintf(out, n, "a first purchase of their items");
  }
}

static size_t rule_line(tally__engine *e, const tally__challenge *r, char *out, size_t n) {
  char what[128], reward[64] = "";
  tally__challenge_describe(e, r, what, sizeof what);
  if (r->reward_def != TALLY__NONE)
    snprintf(reward, sizeof reward, ", reward %s", tally__rewards_of(e)->defs[r->reward_def].name);
  int w = snprintf(out, n, "%s by %s: %s%s%s%s%s", r->name, tally__account_label(&e->st, r->owner), what,
                   r->badge[0] ? ", badge " : "", r->badge, reward, r->committed ? "" : " (being saved)");
  return w < 0 ? 0 : (size_t)w;
}

void tally__challenge_list(tally__engine *e, uint32_t account, char *out, size_t n) {
  tally__challenges *z = tally__challenges_of(e);
  (void)account;
  size_t k = (size_t)snprintf(out, n, "Challenges:");
  uint32_t shown = 0, more = 0;
  for (uint32_t i = 0; z && i < TALLY__CHALLENGES_MAX; i++) {
    const tally__challenge *r = &z->rules[i];
    if (!r->used || r->deleted || r->deleting) continue;
    char line[256];
    size_t w = rule_line(e, r, line, sizeof line);
    if (shown == TALLY__CHALLENGE_LIST_MAX || k + w + 24 > n) {
      more++;
      continue;
    }
    k += (size_t)snprintf(out + k, n - k, "%s %s", shown ? ";" : "", line);
    shown++;
  }
  if (!shown)
    snprintf(out, n, "No challenges yet: CHALLENGE ADD <name> minutes=30|spent=20|tipped=5|streak=3|first [event] "
                     "[reward=<name>] [badge=<text>]");
  else if (more && k < n) snprintf(out + k, n - k, "; and %u more", more);
}

void tally__challenge_badges(tally__engine *e, uint32_t account, char *out, size_t n) {
  tally__challenges *z = tally__challenges_of(e);
  size_t k = 0;
  out[0] = 0;
  for (uint32_t i = 0; z && i < z->ach_count; i++) {
    const tally__achievement *a = &z->ach[i];
    if (a->account != account || a->state != TALLY__ACH_DONE || !z->rules[a->rule].badge[0]) continue;
    int w = snprintf(out + k, n - k, "%s%s", k ? ", " : "", z->rules[a->rule].badge);
    if (w < 0 || (size_t)w >= n - k) {
      out[k] = 0;
      return;
    }
    k += (size_t)w;
  }
}

void tally__challenge_card(tally__engine *e, uint32_t owner, char *out, size_t n) {
  tally__challenges *z = tally__challenges_of(e);
  size_t k = 0;
  out[0] = 0;
  for (uint32_t i = 0; z && i < TALLY__CHALLENGES_MAX; i++) {
    const tally__challenge *r = &z->rules[i];
    if (!rule_live(r) || r->owner != owner) continue;
    char what[128];
    tally__challenge_describe(e, r, what, sizeof what);
    int w = snprintf(out + k, n - k, "%s%s (%s)", k ? ", " : "", r->badge[0] ? r->badge : r->name, what);
    if (w < 0 || (size_t)w >= n - k) {
      out[k] = 0;
      return;
    }
    k += (size_t)w;
  }
}

/* ---- restore -------------------------------------------------------------------------- */
static int restore_rules(loader *l, tally__challenges *z) {
  tally__engine *e = l->e;
  PGresult *q = tally__load_q(l,
                              "SELECT d.id, d.owner_id, d.name, d.kind, d.threshold, d.event_id, d.reward_id,"
                              " coalesce(d.badge, ''), x.challenge_id IS NOT NULL FROM challenge_defs d"
                              " LEFT JOIN challenge_deletions x ON x.challenge_id = d.id ORDER BY d.id DESC LIMIT 256",
                              0, NULL);
  if (!q) return TALLY_EDB;
  for (int i = 0; i < PQntuples(q); i++) {
    tally__challenge *r = &z->rules[i];
    r->owner = tally__load_acc(l, tally__load_i64(q, i, 1));
    if (r->owner == TALLY__NONE) continue;
    r->id = (uint64_t)tally__load_i64(q, i, 0);
    tally__text_clip(r->name, sizeof r->name, PQgetvalue(q, i, 2));
    r->kind = (uint8_t)tally__load_i64(q, i, 3);
    r->threshold = tally__load_i64(q, i, 4);
    r->event_id = (uint64_t)tally__load_i64(q, i, 5);
    int64_t reward = tally__load_i64(q, i, 6);
    r->reward_def = reward ? tally__reward_def_by_id(e, (uint64_t)reward) : TALLY__NONE;
    tally__text_clip(r->badge, sizeof r->badge, PQgetvalue(q, i, 7));
    r->deleted = PQgetvalue(q, i, 8)[0] == 't';
    r->used = r->committed = true;
  }
  PQclear(q);
  return TALLY_OK;
}

static uint32_t rule_by_id(const tally__challenges *z, uint64_t id) {
  for (uint32_t i = 0; i < TALLY__CHALLENGES_MAX; i++)
    if (z->rules[i].used && z->rules[i].id == id) return i;
  return TALLY__NONE;
}

/* Achievements of the rules in memory, and whether their reward is stored. */
static int restore_achievements(loader *l, tally__challenges *z) {
  PGresult *q = tally__load_q(l,
                              "SELECT a.challenge_id, a.account_id, a.event_id, a.transfer_id, a.progress,"
                              " EXISTS (SELECT 1 FROM reward_grants g WHERE g.quiz_id = a.challenge_id"
                              "  AND g.account_id = a.account_id)"
                              " FROM (SELECT * FROM challenge_achievements ORDER BY batch_id DESC LIMIT 65536) a"
                              " ORDER BY a.batch_id", /* the newest, in the order reached (summaries) */
                              0, NULL);
  if (!q) return TALLY_EDB;
  for (int i = 0; i < PQntuples(q); i++) {
    uint32_t rule = rule_by_id(z, (uint64_t)tally__load_i64(q, i, 0));
    uint32_t account = tally__load_acc(l, tally__load_i64(q, i, 1));
    if (rule == TALLY__NONE || account == TALLY__NONE || ach_find(z, rule, account) != TALLY__MAP_NONE) continue;
    if (tally__map_put(&z->ach_index, pair_hash(rule, account), z->ach_count)) break;
    tally__achievement *a = &z->ach[z->ach_count++];
    *a = (tally__achievement){.rule = rule, .account = account, .event_id = (uint64_t)tally__load_i64(q, i, 2),
                              .transfer_id = (uint64_t)tally__load_i64(q, i, 3), .progress = tally__load_i64(q, i, 4),
                              .state = TALLY__ACH_DONE, .grant = TALLY__NONE, .json = TALLY__NONE};
    /* Reached but not paid (a restart came between): paid now, once. */
    a->paid = z->rules[rule].reward_def == TALLY__NONE || PQgetvalue(q, i, 5)[0] == 't';
    z->unpaid += !a->paid;
  }
  PQclear(q);
  return TALLY_OK;
}

/* Purchases and tips of running events, per account; the (creator, buyer)
 * pairs that bought. */
static int restore_sums(loader *l, tally__challenges *z) {
  PGresult *q = tally__load_q(l,
                              "SELECT t.id, t.event_id, t.account_id, t.kind, t.amount_minor - CASE WHEN t.kind = 1 THEN"
                              " coalesce((SELECT sum(r.amount_minor) FROM transfers r WHERE r.kind = 3"
                              "  AND r.ref_transfer = t.id), 0) ELSE 0 END FROM transfers t"
                              " JOIN events v ON v.id = t.event_id WHERE v.stopped_ms IS NULL AND t.kind IN (1, 2)"
                              " ORDER BY t.id LIMIT 65536",
                              0, NULL);
  _Static_assert(TALLY__CHALLENGE_SALES_MAX == 65536, "the LIMIT above");
  if (!q) return TALLY_EDB;
  for (int i = 0; i < PQntuples(q); i++) {
    uint32_t account = tally__load_acc(l, tally__load_i64(q, i, 2));
    if (account == TALLY__NONE) continue;
    tally__challenge_sum *s = sum_get(z, (uint64_t)tally__load_i64(q, i, 1), account, true);
    if (!s) break;
    bool sale = tally__load_i64(q, i, 3) == TALLY__TRANSFER_PURCHASE;
    *(sale ? &s->purchased : &s->tipped) += tally__load_i64(q, i, 4);
    if (sale) sale_add(z, (uint64_t)tally__load_i64(q, i, 0), (uint32_t)(s - z->sums));
  }
  PQclear(q);
  q = tally__load_q(l,
                    "SELECT DISTINCT i.creator_id, t.account_id FROM transfers t JOIN items i ON i.id = t.item_id"
                    " WHERE t.kind = 1 LIMIT 65537",
                    0, NULL);
  if (!q) return TALLY_EDB;
  z->bought_complete = PQntuples(q) <= TALLY__CHALLENGE_SEEN_MAX / 2; /* half: room for the new ones and attendance */
  for (int i = 0; i < PQntuples(q) && z->bought_complete; i++) {
    uint32_t creator = tally__load_acc(l, tally__load_i64(q, i, 0));
    uint32_t buyer = tally__load_acc(l, tally__load_i64(q, i, 1));
    if (creator != TALLY__NONE && buyer != TALLY__NONE && !seen_add(z, bought_key(creator), buyer))
      z->bought_complete = false;
  }
  PQclear(q);
  if (!z->bought_complete) fprintf(stderr, "tally: challenges: too many buyers to track; first-purchase rules are off\n");
  return TALLY_OK;
}

/* Streak owners' last events, who attended the ones older than memory's,
 * and first purchases a restart may have come between. */
static int restore_progress(loader *l, tally__challenges *z) {
  tally__engine *e = l->e;
  const tally__state *st = &e->st;
  char owners[TALLY__CHALLENGES_LIVE_MAX * 24 + 4];
  size_t k = (size_t)snprintf(owners, sizeof owners, "{");
  for (uint32_t i = 0; i < TALLY__CHALLENGES_MAX; i++) {
    const tally__challenge *r = &z->rules[i];
    if (!rule_live(r) || r->kind != TALLY__CH_STREAK || k + 24 > sizeof owners) continue;
    k += (size_t)snprintf(owners + k, sizeof owners - k, "%s%" PRIu64, k > 1 ? "," : "", st->accounts[r->owner].id);
  }
  snprintf(owners + k, sizeof owners - k, "}");
  const char *p[2] = {owners, "20"};
  _Static_assert(TALLY__CHALLENGE_STREAK_MAX == 20, "the parameter above");
  PGresult *q = tally__load_q(l,
                              "SELECT id, host_id, start_ms FROM (SELECT id, host_id, start_ms, row_number() OVER"
                              " (PARTITION BY host_id ORDER BY start_ms DESC) AS n FROM events"
                              " WHERE host_id = ANY($1::bigint[])) x WHERE n <= $2::int",
                              2, p);
  if (!q) return TALLY_EDB;
  for (int i = 0; i < PQntuples(q); i++) {
    uint32_t host = tally__load_acc(l, tally__load_i64(q, i, 1));
    if (host != TALLY__NONE) past_add(z, (uint64_t)tally__load_i64(q, i, 0), host, tally__load_i64(q, i, 2));
  }
  PQclear(q);
  q = tally__load_q(l,
                    "SELECT a.event_id, a.account_id FROM attendance a JOIN (SELECT id FROM (SELECT id, row_number()"
                    " OVER (PARTITION BY host_id ORDER BY start_ms DESC) AS n FROM events"
                    " WHERE host_id = ANY($1::bigint[])) x WHERE n <= $2::int) v ON v.id = a.event_id LIMIT 32768",
                    2, p);
  if (!q) return TALLY_EDB;
  for (int i = 0; i < PQntuples(q); i++) {
    uint32_t account = tally__load_acc(l, tally__load_i64(q, i, 1));
    if (account != TALLY__NONE) (void)seen_add(z, (uint64_t)tally__load_i64(q, i, 0) | SEEN_EVENT_BIT, account);
  }
  PQclear(q);
  /* First purchases after a rule whose achievement is not stored. */
  q = tally__load_q(l,
                    "SELECT d.id, t.account_id, min(t.id) FROM challenge_defs d JOIN items i ON i.creator_id = d.owner_id"
                    " JOIN transfers t ON t.item_id = i.id AND t.kind = 1 WHERE d.kind = 5"
                    " AND NOT EXISTS (SELECT 1 FROM challenge_deletions x WHERE x.challenge_id = d.id)"
                    " AND NOT EXISTS (SELECT 1 FROM challenge_achievements a WHERE a.challenge_id = d.id"
                    "  AND a.account_id = t.account_id)"
                    " GROUP BY d.id, t.account_id HAVING min(t.id) > d.id LIMIT 4096",
                    0, NULL);
  if (!q) return TALLY_EDB;
  for (int i = 0; i < PQntuples(q); i++) {
    uint32_t rule = rule_by_id(z, (uint64_t)tally__load_i64(q, i, 0));
    uint32_t account = tally__load_acc(l, tally__load_i64(q, i, 1));
    if (rule != TALLY__NONE && account != TALLY__NONE && z->bought_complete)
      reach(e, rule, account, 0, (uint64_t)tally__load_i64(q, i, 2), 1);
  }
  PQclear(q);
  return TALLY_OK;
}

/* The challenges' fact tables, whose ids and batch ids come from the
 * engine's counter (tally__load_ids_past says why the restore raises it;
 * a challenge's id must never equal a quiz's, since both key
 * reward_grants.quiz_id, and batch order is what C1 of `tally check`
 * compares). */
static const tally__id_table challenge_id_tables[] = {
    {"challenge_defs", true}, {"challenge_deletions", false}, {"challenge_achievements", false}};

static void tables_free(tally__challenges *z) {
  tally__map_free(&z->ach_index);
  tally__map_free(&z->sum_index);
  tally__map_free(&z->seen_index);
  tally__map_free(&z->sale_index);
  free(z->sales);
  free(z->ach);
  free(z->sums);
  free(z->seen);
}

int tally__challenges_restore(loader *l, int64_t now_ms) {
  (void)now_ms;
  tally__engine *e = l->e;
  tally__challenges *z = tally__challenges_of(e);
  if (z) tables_free(z); /* a start that is tried again loads afresh */
  if (!z) z = calloc(1, sizeof *z);
  if (z) memset(z, 0, sizeof *z);
  e->feature_data[TALLY__FDATA_CHALLENGES] = z;
  if (!z || !(z->ach = calloc(TALLY__CHALLENGE_ACHIEVED_MAX, sizeof *z->ach)) ||
      !(z->sums = calloc(TALLY__CHALLENGE_SUMS_MAX, sizeof *z->sums)) ||
      !(z->seen = calloc(TALLY__CHALLENGE_SEEN_MAX, sizeof *z->seen)) ||
      !(z->sales = calloc(TALLY__CHALLENGE_SALES_MAX, sizeof *z->sales)) ||
      tally__map_init(&z->sale_index, TALLY__CHALLENGE_SALES_MAX) ||
      tally__map_init(&z->ach_index, TALLY__CHALLENGE_ACHIEVED_MAX) ||
      tally__map_init(&z->sum_index, TALLY__CHALLENGE_SUMS_MAX) ||
      tally__map_init(&z->seen_index, TALLY__CHALLENGE_SEEN_MAX)) {
    snprintf(l->err, l->err_len, "load: challenges: %s", tally_strerror(TALLY_ENOMEM));
    return TALLY_ENOMEM;
  }
  z->rescan = true;
  /* Events that ended before this start had their summary said then. */
  for (uint32_t k = 0; k < e->st.event_count; k++)
    if (e->st.events[k].stopped_ms) z->said[k] = e->st.events[k].id;
  int rc = tally__load_ids_past(l, challenge_id_tables, sizeof challenge_id_tables / sizeof challenge_id_tables[0]);
  if (!rc) rc = restore_rules(l, z);
  if (!rc) rc = restore_achievements(l, z);
  if (!rc) rc = restore_sums(l, z);
  if (!rc) rc = restore_progress(l, z);
  /* The first scan reaches what the ledger already shows (a restart
   * between reaching and storing); the achievements' keys keep it once. */
  for (uint32_t s = 0; !rc && s < z->sum_count; s++) {
    check_sum(e, &z->sums[s], TALLY__CH_SPENT, 0);
    check_sum(e, &z->sums[s], TALLY__CH_TIPPED, 0);
  }
  return rc;
}

void tally__challenges_destroy(tally__engine *e) {
  tally__challenges *z = tally__challenges_of(e);
  if (!z) return;
  tables_free(z);
  free(z);
  e->feature_data[TALLY__FDATA_CHALLENGES] = NULL;
}
