/* goals.c — a community goal's life: start, counting, progress lines, a
 * level reached (who was present, stored with the level), its payout, the
 * next level, the end and the cooldown (contract in goals.h). Every step a
 * restart must not lose is a FACT op; memory changes when its batch
 * commits, except the counting, which follows committed transfers and is
 * rebuilt from them at restore. */
#include "goals.h"
#include "test_fault.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live.h"
#include "loader.h"
#include "rewards.h"
#include "text.h"

/* FACT sub-kinds (op->qty); op->entry_slot is the goal. */
enum { GF_START = 1, GF_LEVEL = 2, GF_PRESENT = 3, GF_END = 4 };
/* grant_slot values besides a rewards slot and TALLY__NONE (not granted yet). */
#define GOAL_PAID (TALLY__NONE - 1)
#define GOAL_GIVEN_UP (TALLY__NONE - 2)
/* said bits */
enum { SAID_25 = 1, SAID_50 = 2, SAID_75 = 4, SAID_NEEDS = 8 };

tally__goals *tally__goals_of(tally__engine *e) { return e->feature_data[TALLY__FDATA_GOALS]; }

static bool ours(const tally__op *op) { return op->type == TALLY__OP_FACT && op->kind == TALLY__FACT_GOAL; }

static void fact_mark(tally__op *op, uint32_t sub, uint32_t goal, const char *json) {
  op->kind = TALLY__FACT_GOAL;
  op->qty = sub;
  op->entry_slot = goal;
  op->fact = json;
}

bool tally__goal_running(const tally__goal *g) {
  return g->state != TALLY__GOAL_FREE && g->state != TALLY__GOAL_COOLDOWN;
}

/* A JSON string of s (UTF-8 checked by the dispatcher): quotes,
 * backslashes and control characters escaped. False when it does not fit. */
static bool json_str(char *out, size_t n, size_t *k, const char *s) {
  if (*k + 2 >= n) return false;
  out[(*k)++] = '"';
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (*k + 8 >= n) return false;
    if (ch == '"' || ch == '\\') {
      out[(*k)++] = '\\';
      out[(*k)++] = (char)ch;
    } else if (ch < 0x20) {
      *k += (size_t)snprintf(out + *k, n - *k, "\\u%04x", ch);
    } else {
      out[(*k)++] = (char)ch;
    }
  }
  out[(*k)++] = '"';
  out[*k] = 0;
  return true;
}

static int64_t add_sat(int64_t a, int64_t b) {
  int64_t s;
  if (__builtin_add_overflow(a, b, &s)) return b > 0 ? INT64_MAX : INT64_MIN;
  return s;
}

/* ---- buffers and counting ------------------------------------------------------------- */
static tally__goal_bufs *bufs_new(void) {
  tally__goal_bufs *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  if (tally__map_init(&b->people_index, TALLY__GOAL_CONTRIBUTIONS_MAX) != TALLY_OK) {
    free(b);
    return NULL;
  }
  return b;
}

static void bufs_free(tally__goal *g) {
  if (!g->b) return;
  tally__map_free(&g->b->people_index);
  free(g->b);
  g->b = NULL;
}

/* The open level counts from nothing. */
static void level_reset(tally__goal *g) {
  tally__map *m = &g->b->people_index;
  memset(m->slots, 0, (m->mask + 1) * sizeof *m->slots);
  m->count = 0;
  g->total = 0;
  g->contributors = g->contrib_count = g->people_count = 0;
  g->said = 0;
  g->full_said = false;
}

static int64_t target(const tally__goal *g) { return g->levels[g->level]; }

static uint32_t percent(const tally__goal *g) {
  if (g->total <= 0) return 0;
  __int128 p = (__int128)g->total * 100 / target(g);
  return p > 1000 ? 1000 : (uint32_t)p;
}

/* account's committed transfer adds amount to the open level. */
static void count_in(tally__engine *e, tally__goal *g, uint32_t account, uint64_t transfer, int64_t amount) {
  tally__goal_bufs *b = g->b;
  if (g->contrib_count == TALLY__GOAL_CONTRIBUTIONS_MAX) {
    if (!g->full_said)
      fprintf(stderr, "tally: goal %" PRIu64 ": level %u counts %d transfers at most; later ones do not count\n", g->id,
              g->level + 1, TALLY__GOAL_CONTRIBUTIONS_MAX);
    g->full_said = true;
    return;
  }
  uint32_t p = tally__map_find(&b->people_index, (uint64_t)account + 1, NULL, NULL);
  if (p == TALLY__MAP_NONE) {
    p = g->people_count++;
    b->people[p] = (tally__goal_person){.account = account, .net = 0};
    int rc = tally__map_put(&b->people_index, (uint64_t)account + 1, p);
    (void)rc; /* sized for every contribution: cannot be full */
  }
  b->contrib[g->contrib_count++] = (tally__goal_contrib){.transfer_id = transfer, .person = p, .amount = amount};
  int64_t before = b->people[p].net;
  b->people[p].net = add_sat(before, amount);
  if (before <= 0 && b->people[p].net > 0) g->contributors++;
  g->total = add_sat(g->total, amount);
  (void)e;
}

/* A committed refund of `transfer` takes amount back from the open level
 * (no more than the transfer still counts). */
static void count_out(tally__goal *g, uint64_t transfer, int64_t amount) {
  tally__goal_bufs *b = g->b;
  for (uint32_t i = g->contrib_count; i-- > 0;) {
    tally__goal_contrib *c = &b->contrib[i];
    if (c->transfer_id != transfer) continue;
    int64_t off = amount < c->amount ? amount : c->amount;
    c->amount -= off;
    tally__goal_person *p = &b->people[c->person];
    int64_t before = p->net;
    p->net -= off;
    if (before > 0 && p->net <= 0) g->contributors--;
    g->total -= off;
    return;
  }
}

static void say_amount(tally__engine *e, int64_t minor, char *out, size_t n) { tally__format_amount(e, minor, out, n); }

/* A level's time as the room reads it: "45 s", "30 min" (rounded up). */
static void say_span(uint64_t ms, char *out, size_t n) {
  if (ms < 60000) snprintf(out, n, "%" PRIu64 " s", (ms + 999) / 1000);
  else snprintf(out, n, "%" PRIu64 " min", (ms + 59999) / 60000);
}

/* The progress line the open level's total earns, once each. */
static void progress(tally__engine *e, tally__goal *g, bool quiet) {
  uint32_t pct = percent(g);
  uint8_t bits = (uint8_t)((pct >= 25 ? SAID_25 : 0) | (pct >= 50 ? SAID_50 : 0) | (pct >= 75 ? SAID_75 : 0));
  uint8_t fresh = (uint8_t)(bits & ~g->said);
  g->said |= bits;
  bool needs = pct >= 100 && g->contributors < g->min_accounts;
  if (quiet) {
    if (needs) g->said |= SAID_NEEDS;
    return;
  }
  char tot[48], of[48];
  say_amount(e, g->total, tot, sizeof tot);
  say_amount(e, target(g), of, sizeof of);
  if (needs && !(g->said & SAID_NEEDS)) {
    g->said |= SAID_NEEDS;
    tally__announce_in(e, g->net, g->room, "Goal level %u: %s of %s, but it needs %u contributors (%u so far).",
                       g->level + 1, tot, of, g->min_accounts, g->contributors);
    return;
  }
  if (!fresh || pct >= 100) return; /* 100 %: the level's own line says it */
  uint32_t line = fresh & SAID_75 ? 75 : fresh & SAID_50 ? 50 : 25;
  tally__say say;
  tally__say_init(&say, TALLY_MSG_GOAL_PROGRESS);
  tally__sayf(&say, "nnmm", "Goal level %u: %u %% - %s of %s.", g->level + 1, line, tot, of);
  tally__say_value(&say, 2, g->total, TALLY__DECIMALS(e));
  tally__say_value(&say, 3, target(g), TALLY__DECIMALS(e));
  tally__announce_say_in(e, g->net, g->room, &say);
}

void tally__goals_room_moved(tally__engine *e, uint16_t net, const char *from, const char *to, uint64_t before_id) {
  tally__goals *z = tally__goals_of(e);
  for (uint32_t i = 0; z && i < TALLY__GOALS_MAX; i++) {
    tally__goal *g = &z->g[i];
    if (g->state != TALLY__GOAL_FREE && g->id < before_id && g->net == net && strcmp(g->room, from) == 0)
      tally__text_clip(g->room, sizeof g->room, to);
  }
}

static bool counting(const tally__goal *g) {
  return !g->done && g->b && !g->end_reason &&
         (g->state == TALLY__GOAL_STARTING || g->state == TALLY__GOAL_OPEN || g->state == TALLY__GOAL_REACHED ||
          g->state == TALLY__GOAL_RECORDING || g->state == TALLY__GOAL_PAYING);
}

/* The accounts present in the room now (the event's audience), the host
 * left out, and (for a reward) one that has reward_per_event_max rewards of
 * the event already: the level's payout pays exactly them, and `tally
 * check` G2 holds it to that. */
static void snapshot(tally__engine *e, tally__goal *g) {
  const tally__state *st = &e->st;
  uint32_t n = 0, cap = g->reward_def != TALLY__NONE ? e->cfg.reward_per_event_max : 0;
  for (uint32_t i = 0; i < st->audience_count; i++) {
    const tally__audience *a = &st->audience[i];
    if (a->event_id != g->event_id || !a->joined_mono || a->account == g->host) continue;
    if (cap && tally__reward_event_count(e, g->event_id, a->account) >= cap) continue;
    if (n == TALLY__GOAL_PRESENT_MAX) {
      fprintf(stderr, "tally: goal %" PRIu64 ": more than %d present; the first %d are paid\n", g->id,
              TALLY__GOAL_PRESENT_MAX, TALLY__GOAL_PRESENT_MAX);
      break;
    }
    g->b->present[n++] = a->account;
  }
  g->present_count = n;
  g->paying_level = g->level;
  g->paid_total = g->total;
  g->paid_contributors = g->contributors;
  g->level_id = 0; /* taken when its facts are written */
  g->state = TALLY__GOAL_REACHED;
}

static bool reached(const tally__goal *g) {
  return g->total >= target(g) && g->contributors >= g->min_accounts;
}

void tally__goals_committed(tally__engine *e, const tally__op *op) {
  tally__goals *z = tally__goals_of(e);
  if (!z || op->type != TALLY__OP_TRANSFER) return;
  bool refund = op->kind == TALLY__TRANSFER_REFUND;
  if (!refund && (!op->event_id || (op->kind != TALLY__TRANSFER_PURCHASE && op->kind != TALLY__TRANSFER_TIP))) return;
  if (op->amount == 0) return; /* a free unit (sql/020): no money, no contributor (G4 counts kinds 1 and 2) */
  for (uint32_t i = 0; i < TALLY__GOALS_MAX; i++) {
    tally__goal *g = &z->g[i];
    if (!counting(g)) continue;
    if (refund) {
      if (op->ref_transfer <= g->open_id) continue;
      count_out(g, op->ref_transfer, op->amount);
      continue; /* a level going down says nothing */
    }
    if (op->event_id != g->event_id || op->transfer_id <= g->open_id) continue;
    count_in(e, g, op->account, op->transfer_id, op->amount);
    progress(e, g, false);
    if (g->state == TALLY__GOAL_OPEN && reached(g)) snapshot(e, g);
  }
}

/* ---- start ------------------------------------------------------------------------------- */
static bool start_json(tally__engine *e, tally__goal *g) {
  const tally__state *st = &e->st;
  const tally__rewards *r = tally__rewards_of(e);
  uint64_t reward = g->reward_def == TALLY__NONE || !r ? 0 : r->defs[g->reward_def].id;
  size_t n = sizeof g->json, k = 0;
  k += (size_t)snprintf(g->json, n,
                        "{\"k\":\"gs\",\"g\":%" PRIu64 ",\"h\":%" PRIu64 ",\"net\":%u,\"ev\":%" PRIu64 ",\"r\":%" PRIu64
                        ",\"dur\":%" PRIu64 ",\"min\":%u,\"dl\":%" PRId64 ",\"lv\":[",
                        g->id, st->accounts[g->host].id, (unsigned)st->networks[g->net].id, g->event_id, reward,
                        g->duration_ms, g->min_accounts, g->deadline_ms);
  for (uint32_t i = 0; i < g->level_count && k + 24 < n; i++)
    k += (size_t)snprintf(g->json + k, n - k, "%s%" PRId64, i ? "," : "", g->levels[i]);
  if (k + 16 >= n) return false;
  k += (size_t)snprintf(g->json + k, n - k, "],\"room\":");
  if (!json_str(g->json, n, &k, g->room) || k + 2 >= n) return false;
  snprintf(g->json + k, n - k, "}");
  return true;
}

uint32_t tally__goal_in(tally__engine *e, uint16_t net, const char *room) {
  tally__goals *z = tally__goals_of(e);
  for (uint32_t i = 0; z && i < TALLY__GOALS_MAX; i++) {
    const tally__goal *g = &z->g[i];
    if (g->state != TALLY__GOAL_FREE && g->net == net && strcmp(g->room, room) == 0) return i;
  }
  return TALLY__NONE;
}

int tally__goal_start(tally__engine *e, const tally__goal *spec, uint64_t now_mono, tally__op *op, uint32_t *wait_s) {
  tally__goals *z = tally__goals_of(e);
  if (!z) return TALLY_ESTARTING;
  *wait_s = 0;
  uint32_t here = tally__goal_in(e, spec->net, spec->room);
  if (here != TALLY__NONE && z->g[here].state != TALLY__GOAL_COOLDOWN) return TALLY_EEXISTS;
  if (here != TALLY__NONE && z->g[here].cooldown_mono > now_mono) {
    *wait_s = (uint32_t)((z->g[here].cooldown_mono - now_mono + 999) / 1000);
    return TALLY_EGOAL_COOLDOWN;
  }
  uint32_t slot = here; /* its cooldown is over: the slot is the room's again */
  for (uint32_t i = 0; i < TALLY__GOALS_MAX && slot == TALLY__NONE; i++)
    if (z->g[i].state == TALLY__GOAL_FREE) slot = i;
  for (uint32_t i = 0; i < TALLY__GOALS_MAX && slot == TALLY__NONE; i++)
    if (z->g[i].state == TALLY__GOAL_COOLDOWN && z->g[i].cooldown_mono <= now_mono) slot = i;
  if (slot == TALLY__NONE) return TALLY_ETOO_MANY;
  tally__goal_bufs *b = bufs_new();
  if (!b) return TALLY_ENOMEM;
  tally__goal *g = &z->g[slot];
  *g = *spec;
  g->b = b;
  g->id = tally__state_take_id(&e->st);
  g->open_id = g->id; /* level 1 counts what is decided from now on */
  g->level = 0;
  g->deadline_ms = tally__now_wall_ms(e) + (int64_t)g->duration_ms;
  g->deadline_mono = now_mono + g->duration_ms;
  level_reset(g);
  if (!start_json(e, g)) {
    bufs_free(g);
    memset(g, 0, sizeof *g);
    return TALLY_ETOOBIG;
  }
  g->state = TALLY__GOAL_STARTING;
  fact_mark(op, GF_START, slot, g->json);
  return TALLY_OK;
}

/* ---- a level reached: its facts, its payout ----------------------------------------------- */
/* The level's gl fact and its gp facts (who was present) into the bufs. */
static void level_json(tally__engine *e, tally__goal *g, int64_t next_deadline_ms) {
  const tally__state *st = &e->st;
  tally__goal_bufs *b = g->b;
  snprintf(b->present_json[0], sizeof b->present_json[0],
           "{\"k\":\"gl\",\"g\":%" PRIu64 ",\"l\":%u,\"id\":%" PRIu64 ",\"tot\":%" PRId64 ",\"c\":%u,\"n\":%u,\"ndl\":%" PRId64 "}",
           g->id, g->paying_level + 1, g->level_id, g->paid_total, g->paid_contributors, g->present_count,
           next_deadline_ms);
  g->present_facts = 0;
  if (g->reward_def == TALLY__NONE) return; /* nothing to pay: who was there is not needed */
  for (uint32_t from = 0; from < g->present_count; from += TALLY__GOAL_PRESENT_PER_FACT) {
    char *j = b->present_json[1 + g->present_facts++];
    size_t n = sizeof b->present_json[0];
    size_t k = (size_t)snprintf(j, n, "{\"k\":\"gp\",\"id\":%" PRIu64 ",\"a\":[", g->level_id);
    for (uint32_t i = from; i < g->present_count && i < from + TALLY__GOAL_PRESENT_PER_FACT; i++)
      k += (size_t)snprintf(j + k, n - k, "%s%" PRIu64, i > from ? "," : "", st->accounts[b->present[i]].id);
    snprintf(j + k, n - k, "]}");
  }
}

/* Sends the level's facts, all in the open batch (one transaction), or
 * nothing when it has no room for them (the next tick tries again). */
static bool level_send(tally__engine *e, tally__goal *g, uint32_t slot) {
  tally__batch *bt = tally__engine_open_batch(e);
  uint32_t need = 1 + g->present_facts;
  if (!bt || bt->op_max - bt->op_count < need) return false;
  for (uint32_t f = 0; f < need; f++) {
    tally__op *op = tally__engine_record_op(e, TALLY__OP_FACT, g->host, TALLY__NONE);
    if (!op) { /* cannot happen: room was counted; the ones taken still settle */
      g->facts_failed = true;
      break;
    }
    fact_mark(op, f == 0 ? GF_LEVEL : GF_PRESENT, slot, g->b->present_json[f]);
    g->facts_inflight++;
  }
  g->state = TALLY__GOAL_RECORDING;
  return true;
}

/* REACHED: the level id is taken, the next level opens with a fresh timer
 * (it counts from the level id on), and the facts go out. */
static void level_write(tally__engine *e, tally__goal *g, uint32_t slot, uint64_t now_mono) {
  if (g->level_id) { /* written before and failed: the same facts again */
    g->facts_failed = false;
    level_send(e, g, slot);
    return;
  }
  tally__batch *bt = tally__engine_open_batch(e);
  if (!bt) return;
  /* A batch smaller than the facts of every present account: pay those that fit. */
  uint32_t fit = (bt->op_max - 1) * TALLY__GOAL_PRESENT_PER_FACT;
  if (g->reward_def != TALLY__NONE && g->present_count > fit) {
    fprintf(stderr, "tally: goal %" PRIu64 ": batch_max %u stores %u present accounts of %u\n", g->id, bt->op_max, fit,
            g->present_count);
    g->present_count = fit;
  }
  uint32_t facts = g->reward_def == TALLY__NONE ? 0 : (g->present_count + TALLY__GOAL_PRESENT_PER_FACT - 1) /
                                                        TALLY__GOAL_PRESENT_PER_FACT;
  if (bt->op_max - bt->op_count < 1 + facts) return; /* the next batch */
  g->level_id = tally__state_take_id(&e->st);
  bool next = g->level + 1 < g->level_count;
  int64_t ndl = next ? tally__now_wall_ms(e) + (int64_t)g->duration_ms : 0;
  level_json(e, g, ndl);
  for (uint32_t i = 0; i < g->present_count; i++) g->b->grant_slot[i] = TALLY__NONE;
  if (next) {
    g->level++;
    g->open_id = g->level_id;
    level_reset(g);
    g->deadline_ms = ndl;
    g->deadline_mono = now_mono + g->duration_ms;
  } else {
    g->done = true;
  }
  g->facts_failed = false;
  level_send(e, g, slot);
}

/* Grants for the present accounts that have none, at most
 * TALLY__GOAL_GRANTS_PER_TICK a tick and none while the engine stops
 * (the next start goes on from the stored present list); true when all of
 * them are committed or given up on. */
static bool pay(tally__engine *e, tally__goal *g) {
  if (g->reward_def == TALLY__NONE) return true;
  tally__rewards *r = tally__rewards_of(e);
  if (!r) return false;
  tally__goal_bufs *b = g->b;
  bool all = true, stopping = atomic_load(&e->stopping);
  uint32_t made = 0, n = g->present_count - (TALLY__FAULT(GOAL_SKIPS_ONE) && g->present_count > 0);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t s = b->grant_slot[i];
    if (s == GOAL_PAID || s == GOAL_GIVEN_UP) continue;
    if (s != TALLY__NONE) {
      const tally__reward_earned *gr = &r->grants[s];
      if (gr->id != b->grant_id[i] || gr->state == TALLY__GRANT_FREE) {
        b->grant_slot[i] = TALLY__NONE; /* its fact failed: grant again */
      } else if (gr->state == TALLY__GRANT_GRANTING) {
        all = false;
        continue;
      } else {
        b->grant_slot[i] = GOAL_PAID;
        continue;
      }
    }
    all = false;
    if (made == TALLY__GOAL_GRANTS_PER_TICK || stopping) continue;
    /* Counted for reward_per_event_max with the event's other rewards. The
     * snapshot left out whoever was at the cap; one that reached it since
     * (a quiz's grant in flight then) is still paid, as the stored present
     * list promises: the cap is passed by one in that race. */
    int rc = tally__reward_grant_event(e, g->reward_def, b->present[i], g->level_id, g->event_id, &s);
    if (rc == TALLY_EREWARD_CAP) rc = tally__reward_grant(e, g->reward_def, b->present[i], g->level_id, &s);
    if (rc == TALLY_EBUSY) return false; /* no batch room: the next tick goes on */
    if (rc == TALLY_EUNKNOWN_REWARD) { /* deleted meanwhile: nobody can get it any more */
      fprintf(stderr, "tally: goal %" PRIu64 " level %u: its reward is gone; the payout stops\n", g->id,
              g->paying_level + 1);
      for (uint32_t k = i; k < g->present_count; k++)
        if (b->grant_slot[k] == TALLY__NONE) b->grant_slot[k] = GOAL_GIVEN_UP;
      continue;
    }
    if (rc) {
      fprintf(stderr, "tally: goal %" PRIu64 " level %u: reward not granted to %s: %s\n", g->id, g->paying_level + 1,
              tally__account_name(&e->st, b->present[i]), tally_strerror(rc));
      b->grant_slot[i] = GOAL_GIVEN_UP;
      continue;
    }
    b->grant_slot[i] = s;
    b->grant_id[i] = r->grants[s].id;
    made++;
  }
  return all;
}

static void end_write(tally__engine *e, tally__goal *g, uint32_t slot, tally__op *op) {
  snprintf(g->json, sizeof g->json, "{\"k\":\"ge\",\"g\":%" PRIu64 ",\"why\":%u,\"lv\":%u}", g->id, g->end_reason,
           g->reached);
  fact_mark(op, GF_END, slot, g->json);
  g->state = TALLY__GOAL_ENDING;
}

static void end_fact(tally__engine *e, tally__goal *g, uint32_t slot) {
  tally__op *op = tally__engine_record_op(e, TALLY__OP_FACT, g->host, TALLY__NONE);
  if (op) end_write(e, g, slot, op); /* else the next tick tries again */
}

int tally__goal_stop(tally__engine *e, uint32_t i, tally__op *op) {
  tally__goal *g = &tally__goals_of(e)->g[i];
  if (!tally__goal_running(g) || g->state == TALLY__GOAL_ENDING || g->end_reason) return TALLY_ENO_GOAL;
  if (g->state == TALLY__GOAL_STARTING) return TALLY_ESTARTING;
  g->stop_requested = true;
  if (g->state != TALLY__GOAL_OPEN) return TALLY_EPENDING; /* a level is being stored or paid: after it */
  g->end_reason = TALLY__GOAL_END_STOPPED;
  end_write(e, g, i, op);
  return TALLY_OK;
}

/* ---- the tick ------------------------------------------------------------------------------ */
static void say_resumed(tally__engine *e, tally__goal *g, uint64_t now_mono) {
  char tot[48], of[48];
  say_amount(e, g->total, tot, sizeof tot);
  say_amount(e, target(g), of, sizeof of);
  uint64_t left = g->deadline_mono > now_mono ? (g->deadline_mono - now_mono + 999) / 1000 : 0;
  tally__announce_in(e, g->net, g->room, "GOAL resumed: level %u of %u, %s of %s, %" PRIu64 " s left. GOAL shows it.",
                     g->level + 1, g->level_count, tot, of, left);
}

static bool event_over(const tally__engine *e, const tally__goal *g) {
  uint32_t ev = tally__live_event_find(&e->st, g->event_id);
  return ev == TALLY__NONE || e->st.events[ev].stopped_ms != 0;
}

static void tick_one(tally__engine *e, tally__goal *g, uint32_t i, uint64_t now_mono) {
  if (g->state == TALLY__GOAL_COOLDOWN) {
    if (g->cooldown_mono <= now_mono) memset(g, 0, sizeof *g);
    return;
  }
  if (g->state == TALLY__GOAL_OPEN && g->resumed) {
    g->resumed = false;
    if (!g->end_reason && !g->done) say_resumed(e, g, now_mono);
  }
  if (g->state == TALLY__GOAL_PAYING && pay(e, g)) {
    g->level_id = 0;
    g->present_count = 0;
    g->state = TALLY__GOAL_OPEN;
    if (g->done) g->end_reason = TALLY__GOAL_END_COMPLETE;
    else if (g->stop_requested) g->end_reason = TALLY__GOAL_END_STOPPED;
  }
  if (g->state == TALLY__GOAL_OPEN && !g->end_reason) {
    if (g->done) g->end_reason = TALLY__GOAL_END_COMPLETE;
    else if (reached(g)) snapshot(e, g); /* restored at 100 %, or reached during a payout */
    else if (now_mono >= g->deadline_mono) g->end_reason = TALLY__GOAL_END_EXPIRED;
    else if (event_over(e, g)) g->end_reason = TALLY__GOAL_END_EVENT;
  }
  if (g->state == TALLY__GOAL_REACHED) level_write(e, g, i, now_mono);
  if (g->state == TALLY__GOAL_OPEN && g->end_reason) end_fact(e, g, i);
}

void tally__goals_tick(tally__engine *e, uint64_t now_mono) {
  tally__goals *z = tally__goals_of(e);
  for (uint32_t i = 0; z && i < TALLY__GOALS_MAX; i++)
    if (z->g[i].state != TALLY__GOAL_FREE) tick_one(e, &z->g[i], i, now_mono);
}

/* ---- settled facts ------------------------------------------------------------------------- */
static void reward_phrase(tally__engine *e, const tally__goal *g, char *out, size_t n) {
  const tally__rewards *r = tally__rewards_of(e);
  out[0] = 0;
  if (g->reward_def == TALLY__NONE || !r) return;
  char what[128];
  tally__reward_describe(e, &r->defs[g->reward_def], what, sizeof what);
  snprintf(out, n, "; at 100 %% everyone present earns the reward %s (%s)", r->defs[g->reward_def].name, what);
}

static void announce_start(tally__engine *e, const tally__goal *g) {
  char of[48], reward[200], more[64] = "", needs[64] = "", span[32];
  say_amount(e, g->levels[0], of, sizeof of);
  say_span(g->duration_ms, span, sizeof span);
  reward_phrase(e, g, reward, sizeof reward);
  if (g->level_count > 1) snprintf(more, sizeof more, " (level 1 of %u)", g->level_count);
  if (g->min_accounts > 1) snprintf(needs, sizeof needs, "; it needs %u contributors", g->min_accounts);
  tally__say say;
  tally__say_init(&say, TALLY_MSG_GOAL_STARTED);
  tally__sayf(&say, "m----", "GOAL: tips and purchases here fill %s within %s%s%s%s. GOAL shows the progress.", of,
              span, more, reward, needs);
  tally__say_value(&say, 0, g->levels[0], TALLY__DECIMALS(e));
  tally__announce_say_in(e, g->net, g->room, &say);
}

static void announce_level(tally__engine *e, const tally__goal *g) {
  const tally__rewards *r = tally__rewards_of(e);
  char tot[48], of[48], earn[160] = "", next[160];
  say_amount(e, g->paid_total, tot, sizeof tot);
  say_amount(e, g->levels[g->paying_level], of, sizeof of);
  if (g->reward_def != TALLY__NONE && r)
    snprintf(earn, sizeof earn, " %u present earn %s (REWARDS shows it).", g->present_count,
             r->defs[g->reward_def].name);
  if (g->done) {
    snprintf(next, sizeof next, " That was the last level.");
  } else {
    char amount[48], span[32];
    say_amount(e, g->levels[g->level], amount, sizeof amount);
    say_span(g->duration_ms, span, sizeof span);
    snprintf(next, sizeof next, " Level %u: %s within %s.", g->level + 1, amount, span);
  }
  tally__say say;
  tally__say_init(&say, TALLY_MSG_GOAL_REACHED);
  tally__sayf(&say, "nmmn---", "GOAL level %u reached: %s of %s from %u contributor%s!%s%s", g->paying_level + 1, tot,
              of, g->paid_contributors, g->paid_contributors == 1 ? "" : "s", earn, next);
  tally__say_value(&say, 1, g->paid_total, TALLY__DECIMALS(e));
  tally__say_value(&say, 2, g->levels[g->paying_level], TALLY__DECIMALS(e));
  tally__announce_say_in(e, g->net, g->room, &say);
}

static void announce_end(tally__engine *e, const tally__goal *g) {
  char why[200], tot[48], of[48];
  say_amount(e, g->total, tot, sizeof tot);
  say_amount(e, target(g), of, sizeof of);
  switch (g->end_reason) {
  case TALLY__GOAL_END_EXPIRED:
    snprintf(why, sizeof why, "level %u ran out of time at %s of %s", g->level + 1, tot, of);
    break;
  case TALLY__GOAL_END_COMPLETE: snprintf(why, sizeof why, "every level reached"); break;
  case TALLY__GOAL_END_STOPPED: snprintf(why, sizeof why, "stopped by the host"); break;
  default: snprintf(why, sizeof why, "the event ended"); break;
  }
  tally__say say;
  tally__say_init(&say, TALLY_MSG_GOAL_ENDED);
  tally__sayf(&say, "-nn", "Goal over: %s. Levels reached: %u of %u.", why, g->reached, g->level_count);
  tally__announce_say_in(e, g->net, g->room, &say);
}

void tally__goals_record_settled(tally__engine *e, const tally__op *op, bool ok) {
  if (!ours(op)) return;
  tally__goal *g = &tally__goals_of(e)->g[op->entry_slot];
  if (op->qty == GF_START) {
    if (!ok) {
      bufs_free(g);
      memset(g, 0, sizeof *g);
      return;
    }
    g->state = TALLY__GOAL_OPEN;
    announce_start(e, g);
  } else if (op->qty == GF_LEVEL || op->qty == GF_PRESENT) {
    g->facts_inflight--;
    if (!ok) g->facts_failed = true;
    if (g->facts_inflight) return;
    if (g->facts_failed) {
      g->state = TALLY__GOAL_REACHED; /* the next tick sends the same facts again */
      return;
    }
    g->reached++;
    g->state = TALLY__GOAL_PAYING;
    announce_level(e, g);
  } else if (op->qty == GF_END) {
    if (!ok) {
      g->state = TALLY__GOAL_OPEN; /* end_reason stays: the next tick writes it again */
      return;
    }
    announce_end(e, g);
    bufs_free(g);
    uint32_t cool = e->cfg.goal_cooldown_s;
    if (!cool) {
      memset(g, 0, sizeof *g);
      return;
    }
    g->state = TALLY__GOAL_COOLDOWN;
    g->cooldown_mono = tally__now_mono_ms(e) + (uint64_t)cool * 1000;
  }
}

/* ---- status -------------------------------------------------------------------------------- */
void tally__goal_status(tally__engine *e, uint32_t i, uint64_t now_mono, char *out, size_t n) {
  const tally__goal *g = &tally__goals_of(e)->g[i];
  if (g->state == TALLY__GOAL_COOLDOWN) {
    snprintf(out, n, "No goal is running here; the next may start in %" PRIu64 " s (goal_cooldown).",
             g->cooldown_mono > now_mono ? (g->cooldown_mono - now_mono + 999) / 1000 : 0);
    return;
  }
  char tot[48], of[48], reward[200];
  reward_phrase(e, g, reward, sizeof reward);
  if (g->done) {
    snprintf(out, n, "Goal: all %u levels reached; paying level %u%s.", g->level_count, g->paying_level + 1, reward);
    return;
  }
  say_amount(e, g->total, tot, sizeof tot);
  say_amount(e, target(g), of, sizeof of);
  uint64_t left = g->deadline_mono > now_mono ? (g->deadline_mono - now_mono + 999) / 1000 : 0;
  const char *paying = g->state == TALLY__GOAL_RECORDING || g->state == TALLY__GOAL_PAYING ? " (paying the last level)" : "";
  snprintf(out, n, "Goal level %u of %u: %s of %s (%u %%), %u of %u contributors, %" PRIu64 " min %" PRIu64 " s left%s%s.",
           g->level + 1, g->level_count, tot, of, percent(g), g->contributors, g->min_accounts, left / 60, left % 60,
           paying, reward);
}

/* ---- restore -------------------------------------------------------------------------------- */
static uint16_t net_of(const tally__state *st, int64_t id) {
  for (uint16_t n = 0; n < st->network_count; n++)
    if (st->networks[n].id == id) return n;
  return UINT16_MAX;
}

/* "{100,200}" (a bigint[] as text) into g->levels. */
static void levels_parse(tally__goal *g, const char *s) {
  g->level_count = 0;
  for (const char *p = s; *p && g->level_count < TALLY__GOAL_LEVELS_MAX;) {
    if (*p < '0' || *p > '9') {
      p++;
      continue;
    }
    char *end;
    long long v = strtoll(p, &end, 10);
    g->levels[g->level_count++] = v;
    p = end;
  }
}

/* The open level's contributions: the event's purchases and tips after
 * its opening id (at most the table's size, lowest ids first, as memory
 * would have counted them), less their refunds. */
static int restore_counts(loader *l, tally__goal *g) {
  char ev[24], open[24], lim[24];
  snprintf(ev, sizeof ev, "%" PRIu64, g->event_id);
  snprintf(open, sizeof open, "%" PRIu64, g->open_id);
  snprintf(lim, sizeof lim, "%d", TALLY__GOAL_CONTRIBUTIONS_MAX);
  const char *const p[] = {ev, open, lim};
  PGresult *r = tally__load_q(l,
                              "SELECT t.id, t.account_id, t.amount_minor - coalesce((SELECT sum(x.amount_minor) FROM transfers x"
                              "  WHERE x.kind = 3 AND x.ref_transfer = t.id), 0)"
                              " FROM transfers t WHERE t.event_id = $1::bigint AND t.kind IN (1, 2) AND t.id > $2::bigint"
                              " ORDER BY t.id LIMIT $3::int",
                              3, p);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t a = tally__load_acc(l, tally__load_i64(r, i, 1));
    if (a == TALLY__NONE) continue;
    int64_t amount = tally__load_i64(r, i, 2);
    count_in(l->e, g, a, (uint64_t)tally__load_i64(r, i, 0), amount > 0 ? amount : 0);
  }
  PQclear(r);
  progress(l->e, g, true); /* the lines already passed are not said again */
  return TALLY_OK;
}

/* A payout in progress: the level's stored present accounts without a
 * grant of it yet. */
static int restore_payout(loader *l, tally__goal *g) {
  char id[24];
  snprintf(id, sizeof id, "%" PRIu64, g->level_id);
  const char *const p[] = {id};
  PGresult *r = tally__load_q(l,
                              "SELECT p.account_id FROM goal_present p WHERE p.level_id = $1::bigint AND NOT EXISTS"
                              " (SELECT 1 FROM reward_grants x WHERE x.quiz_id = p.level_id AND x.account_id = p.account_id)"
                              " ORDER BY p.account_id",
                              1, p);
  if (!r) return TALLY_EDB;
  g->present_count = 0;
  for (int i = 0; i < PQntuples(r) && g->present_count < TALLY__GOAL_PRESENT_MAX; i++) {
    uint32_t a = tally__load_acc(l, tally__load_i64(r, i, 0));
    if (a == TALLY__NONE) continue;
    g->b->grant_slot[g->present_count] = TALLY__NONE;
    g->b->present[g->present_count++] = a;
  }
  PQclear(r);
  return TALLY_OK;
}

/* The levels a restored goal reached: the last one says where counting
 * starts, when the next level's timer ends, and whether its payout is
 * still going on (a later level is never reached before it finished). */
static int restore_levels(loader *l, tally__goal *g, int64_t now_ms, uint64_t now_mono) {
  char id[24];
  snprintf(id, sizeof id, "%" PRIu64, g->id);
  const char *const p[] = {id};
  PGresult *r = tally__load_q(l,
                              "SELECT level, id, total_minor, contributors, next_deadline_ms, EXISTS (SELECT 1 FROM goal_present x"
                              "  WHERE x.level_id = v.id AND NOT EXISTS (SELECT 1 FROM reward_grants y"
                              "  WHERE y.quiz_id = x.level_id AND y.account_id = x.account_id))"
                              " FROM goal_levels v WHERE goal_id = $1::bigint ORDER BY level DESC LIMIT 1",
                              1, p);
  if (!r) return TALLY_EDB;
  int rc = TALLY_OK;
  if (PQntuples(r) == 1) {
    uint32_t lv = (uint32_t)tally__load_i64(r, 0, 0);
    g->reached = lv;
    g->paying_level = lv - 1;
    g->level_id = (uint64_t)tally__load_i64(r, 0, 1);
    g->paid_total = tally__load_i64(r, 0, 2);
    g->paid_contributors = (uint32_t)tally__load_i64(r, 0, 3);
    int64_t ndl = tally__load_i64(r, 0, 4);
    bool unpaid = PQgetvalue(r, 0, 5)[0] == 't' && g->reward_def != TALLY__NONE;
    g->open_id = g->level_id;
    if (lv >= g->level_count) {
      g->done = true;
      g->level = g->level_count - 1;
    } else {
      g->level = lv;
      g->deadline_ms = ndl;
    }
    if (unpaid) {
      rc = restore_payout(l, g);
      g->state = TALLY__GOAL_PAYING;
    } else {
      g->level_id = 0;
    }
  }
  PQclear(r);
  int64_t left = g->deadline_ms - now_ms;
  g->deadline_mono = now_mono + (uint64_t)(left > 0 ? left : 0); /* past: ends at the first tick */
  if (!rc && !g->done) rc = restore_counts(l, g);
  return rc;
}

static int restore_goals(loader *l, tally__goals *z, int64_t now_ms) {
  tally__engine *e = l->e;
  PGresult *r = tally__load_q(l,
                              "SELECT g.id, g.host_id, g.network_id, g.room, g.event_id, g.levels, g.reward_id, g.duration_ms,"
                              " g.min_accounts, g.deadline_ms FROM goals g"
                              " WHERE NOT EXISTS (SELECT 1 FROM goal_ends x WHERE x.goal_id = g.id)"
                              " ORDER BY g.id DESC LIMIT 16",
                              0, NULL);
  if (!r) return TALLY_EDB;
  _Static_assert(TALLY__GOALS_MAX == 16, "the LIMIT above");
  uint64_t now_mono = tally__now_mono_ms(e);
  uint32_t n = 0;
  int rc = TALLY_OK;
  for (int i = 0; i < PQntuples(r) && !rc; i++) {
    tally__goal *g = &z->g[n];
    memset(g, 0, sizeof *g);
    g->id = (uint64_t)tally__load_i64(r, i, 0);
    g->host = tally__load_acc(l, tally__load_i64(r, i, 1));
    g->net = net_of(&e->st, tally__load_i64(r, i, 2));
    if (g->host == TALLY__NONE || g->net == UINT16_MAX) continue;
    tally__text_clip(g->room, sizeof g->room, PQgetvalue(r, i, 3));
    g->event_id = (uint64_t)tally__load_i64(r, i, 4);
    levels_parse(g, PQgetvalue(r, i, 5));
    int64_t reward = tally__load_i64(r, i, 6);
    g->reward_def = reward ? tally__reward_def_by_id(e, (uint64_t)reward) : TALLY__NONE;
    g->duration_ms = (uint64_t)tally__load_i64(r, i, 7);
    g->min_accounts = (uint32_t)tally__load_i64(r, i, 8);
    g->deadline_ms = tally__load_i64(r, i, 9);
    if (g->level_count == 0) continue;
    if (!(g->b = bufs_new())) {
      rc = TALLY_ENOMEM;
      break;
    }
    g->open_id = g->id;
    g->state = TALLY__GOAL_OPEN;
    level_reset(g);
    rc = restore_levels(l, g, now_ms, now_mono);
    g->resumed = true;
    n++;
  }
  PQclear(r);
  if (rc == TALLY_ENOMEM) snprintf(l->err, l->err_len, "load: goals: %s", tally_strerror(rc));
  return rc;
}

/* Rooms whose last goal ended within goal_cooldown: no new goal there
 * before it is over (wall-clock seeded, then monotonic). */
static int restore_cooldowns(loader *l, tally__goals *z, int64_t now_ms) {
  tally__engine *e = l->e;
  if (!e->cfg.goal_cooldown_s) return TALLY_OK;
  char since[24];
  snprintf(since, sizeof since, "%" PRId64, now_ms - (int64_t)e->cfg.goal_cooldown_s * 1000);
  const char *const p[] = {since};
  PGresult *r = tally__load_q(l,
                              "SELECT g.network_id, g.room, max(x.created_ms) FROM goal_ends x JOIN goals g ON g.id = x.goal_id"
                              " WHERE x.created_ms > $1::bigint GROUP BY g.network_id, g.room",
                              1, p);
  if (!r) return TALLY_EDB;
  uint64_t now_mono = tally__now_mono_ms(e);
  for (int i = 0; i < PQntuples(r); i++) {
    uint16_t net = net_of(&e->st, tally__load_i64(r, i, 0));
    if (net == UINT16_MAX || tally__goal_in(e, net, PQgetvalue(r, i, 1)) != TALLY__NONE) continue;
    uint32_t slot = TALLY__NONE;
    for (uint32_t k = 0; k < TALLY__GOALS_MAX && slot == TALLY__NONE; k++)
      if (z->g[k].state == TALLY__GOAL_FREE) slot = k;
    if (slot == TALLY__NONE) break;
    tally__goal *g = &z->g[slot];
    memset(g, 0, sizeof *g);
    g->net = net;
    tally__text_clip(g->room, sizeof g->room, PQgetvalue(r, i, 1));
    int64_t until = tally__load_i64(r, i, 2) + (int64_t)e->cfg.goal_cooldown_s * 1000 - now_ms;
    g->cooldown_mono = now_mono + (uint64_t)(until > 0 ? until : 0);
    g->state = TALLY__GOAL_COOLDOWN;
  }
  PQclear(r);
  return TALLY_OK;
}

/* The goals' fact tables, whose ids and batch ids come from the engine's
 * counter (tally__load_ids_past says why the restore raises it). */
static const tally__id_table goal_id_tables[] = {
    {"goals", true}, {"goal_levels", true}, {"goal_present", false}, {"goal_ends", false}};

static void goals_clear(tally__goals *z) {
  for (uint32_t i = 0; i < TALLY__GOALS_MAX; i++) bufs_free(&z->g[i]);
  memset(z, 0, sizeof *z);
}

int tally__goals_restore(loader *l, int64_t now_ms) {
  tally__engine *e = l->e;
  tally__goals *z = tally__goals_of(e);
  if (!z && !(z = calloc(1, sizeof *z))) {
    snprintf(l->err, l->err_len, "load: goals: %s", tally_strerror(TALLY_ENOMEM));
    return TALLY_ENOMEM;
  }
  goals_clear(z); /* a start that is tried again loads afresh */
  e->feature_data[TALLY__FDATA_GOALS] = z;
  int rc = tally__load_ids_past(l, goal_id_tables, sizeof goal_id_tables / sizeof goal_id_tables[0]);
  if (!rc) rc = restore_goals(l, z, now_ms);
  if (!rc) rc = restore_cooldowns(l, z, now_ms);
  return rc;
}

void tally__goals_destroy(tally__engine *e) {
  tally__goals *z = tally__goals_of(e);
  if (z) goals_clear(z);
  free(z);
  e->feature_data[TALLY__FDATA_GOALS] = NULL;
}
