/* quiz.c — a quiz's life: start, answers, deadline, winners, payout, end
 * (contract in quiz.h). Every step that a restart must not lose is a FACT
 * op; memory changes when its batch commits. */
#include "quiz.h"

#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "rewards.h"
#include "text.h"

/* FACT sub-kinds (op->qty); op->entry_slot is the quiz, op->serial the answer. */
enum { QF_START = 1, QF_ANSWER = 2, QF_END = 3 };
/* Round facts (kind TALLY__FACT_QUIZ_ROUND): entry_slot the round, for a
 * stop entry_slot the quiz (or TALLY__NONE) and serial the round (or NONE). */
enum { RX_START = 1, RX_STOP = 2, RX_END = 3 };

tally__quizzes *tally__quizzes_of(tally__engine *e) { return e->feature_data[TALLY__FDATA_QUIZ]; }

static void fact_mark(tally__op *op, uint32_t sub, uint32_t quiz, uint32_t answer, const char *json) {
  op->kind = TALLY__FACT_QUIZ;
  op->qty = sub;
  op->entry_slot = quiz;
  op->serial = answer;
  op->fact = json;
}

/* A JSON string of s (UTF-8 already checked by the dispatcher): quotes,
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

/* ---- start -------------------------------------------------------------------------- */
static bool start_json(tally__engine *e, tally__quiz *q) {
  const tally__state *st = &e->st;
  const tally__rewards *r = tally__rewards_of(e);
  uint64_t reward = q->reward_def == TALLY__NONE || !r ? 0 : r->defs[q->reward_def].id;
  size_t n = sizeof q->json, k = 0;
  k += (size_t)snprintf(q->json, n,
                        "{\"k\":\"qs\",\"q\":%" PRIu64 ",\"h\":%" PRIu64 ",\"net\":%u,\"w\":%u,\"r\":%" PRIu64
                        ",\"min\":%u,\"dur\":%" PRIu64 ",\"dl\":%" PRId64 ",\"ev\":%" PRIu64 ",\"room\":",
                        q->id, st->accounts[q->host].id, (unsigned)st->networks[q->net].id, q->winners_max, reward,
                        q->min_players, q->duration_ms, q->deadline_ms, q->event_id);
  if (k >= n || !json_str(q->json, n, &k, q->room) || k + 8 >= n) return false;
  k += (size_t)snprintf(q->json + k, n - k, ",\"qt\":");
  if (!json_str(q->json, n, &k, q->question) || k + 8 >= n) return false;
  k += (size_t)snprintf(q->json + k, n - k, ",\"ans\":[");
  for (uint32_t i = 0; i < q->expected_count; i++) {
    if (i) q->json[k++] = ',';
    if (!json_str(q->json, n, &k, q->expected[i]) || k + 4 >= n) return false;
  }
  if (k + 64 >= n) return false;
  if (q->round != TALLY__NONE)
    snprintf(q->json + k, n - k, "],\"rd\":%" PRIu64 ",\"rn\":%u}", q->round_id, q->round_n);
  else
    snprintf(q->json + k, n - k, "]}");
  return true;
}

void tally__quiz_room_moved(tally__engine *e, uint16_t net, const char *from, const char *to, uint64_t before_id) {
  tally__quizzes *z = tally__quizzes_of(e);
  for (uint32_t i = 0; z && i < TALLY__QUIZZES_MAX; i++) {
    tally__quiz *q = &z->q[i];
    if (q->state != TALLY__QUIZ_FREE && q->id < before_id && q->net == net && strcmp(q->room, from) == 0)
      tally__text_clip(q->room, sizeof q->room, to);
  }
  for (uint32_t i = 0; z && i < TALLY__QUIZZES_MAX; i++) {
    tally__quiz_round *r = &z->rounds[i];
    if (r->state != TALLY__ROUND_FREE && r->id < before_id && r->net == net && strcmp(r->room, from) == 0)
      tally__text_clip(r->room, sizeof r->room, to);
  }
}

uint32_t tally__quiz_in(tally__engine *e, uint16_t net, const char *room) {
  tally__quizzes *z = tally__quizzes_of(e);
  for (uint32_t i = 0; z && i < TALLY__QUIZZES_MAX; i++) {
    const tally__quiz *q = &z->q[i];
    if (q->state != TALLY__QUIZ_FREE && q->net == net && strcmp(q->room, room) == 0) return i;
  }
  return TALLY__NONE;
}

uint32_t tally__quiz_only(tally__engine *e, uint16_t net, uint32_t *running) {
  tally__quizzes *z = tally__quizzes_of(e);
  uint32_t found = TALLY__NONE;
  *running = 0;
  for (uint32_t i = 0; z && i < TALLY__QUIZZES_MAX; i++)
    if (z->q[i].state == TALLY__QUIZ_RUNNING && z->q[i].net == net) {
      found = i;
      (*running)++;
    }
  return *running == 1 ? found : TALLY__NONE;
}

int tally__quiz_start(tally__engine *e, const tally__quiz *spec, uint64_t now_mono, tally__op *op) {
  tally__quizzes *z = tally__quizzes_of(e);
  if (!z) return TALLY_ESTARTING;
  if (tally__quiz_in(e, spec->net, spec->room) != TALLY__NONE) return TALLY_EEXISTS;
  uint32_t slot = TALLY__NONE;
  for (uint32_t i = 0; i < TALLY__QUIZZES_MAX && slot == TALLY__NONE; i++)
    if (z->q[i].state == TALLY__QUIZ_FREE) slot = i;
  if (slot == TALLY__NONE) return TALLY_ETOO_MANY;
  tally__quiz *q = &z->q[slot];
  memcpy(q, spec, offsetof(tally__quiz, answers)); /* the answers are cleared below */
  q->id = tally__state_take_id(&e->st);
  q->started_ms = tally__now_wall_ms(e);
  q->deadline_ms = q->started_ms + (int64_t)q->duration_ms;
  q->deadline_mono = now_mono + q->duration_ms;
  q->answer_count = q->inflight = q->seq_next = q->winner_count = q->answerers = q->said_count = 0;
  q->said_mono = 0;
  q->stopping = false;
  if (!start_json(e, q)) {
    memset(q, 0, sizeof *q);
    return TALLY_ETOOBIG;
  }
  q->state = TALLY__QUIZ_STARTING;
  if (q->round != TALLY__NONE) z->rounds[q->round].quiz = slot; /* the round's one question at a time */
  fact_mark(op, QF_START, slot, 0, q->json);
  return TALLY_OK;
}

/* ---- answers ------------------------------------------------------------------------- */
int tally__quiz_answer(tally__engine *e, uint32_t qi, uint32_t account, const char *text, uint64_t now_mono,
                       tally__op *op, bool *correct, uint32_t *seq) {
  tally__quiz *q = &tally__quizzes_of(e)->q[qi];
  if (q->state != TALLY__QUIZ_RUNNING || q->stopping || now_mono >= q->deadline_mono) return TALLY_ENO_QUIZ;
  /* By person: an identity that answered, then LINKed into another
   * person's wallet, is that person now, who may not answer again through
   * a second identity (nor the host through a linked one). */
  const tally__state *st = &e->st;
  if (tally__account_person(st, account) == tally__account_person(st, q->host)) return TALLY_ESELF;
  for (uint32_t i = 0; i < q->answer_count; i++)
    if (q->answers[i].used && tally__account_person(st, q->answers[i].account) == tally__account_person(st, account))
      return TALLY_EANSWERED;
  uint32_t slot = TALLY__NONE;
  for (uint32_t i = 0; i < q->answer_count && slot == TALLY__NONE; i++)
    if (!q->answers[i].used) slot = i; /* one whose fact failed */
  if (slot == TALLY__NONE) {
    if (q->answer_count == TALLY__QUIZ_ANSWERS_MAX) return TALLY_EBUSY;
    slot = q->answer_count++;
  }
  *correct = false;
  for (uint32_t i = 0; i < q->expected_count && !*correct; i++) *correct = tally__quiz_match(text, q->expected[i]);
  tally__quiz_given *a = &q->answers[slot];
  *a = (tally__quiz_given){.account = account, .seq = ++q->seq_next, .correct = *correct, .used = true};
  *seq = a->seq;
  int k = snprintf(a->json, sizeof a->json, "{\"k\":\"qa\",\"q\":%" PRIu64 ",\"a\":%" PRIu64 ",\"s\":%u,\"ok\":%s",
                   q->id, e->st.accounts[account].id, a->seq, *correct ? "true" : "false");
  if (q->round != TALLY__NONE) {
    /* Elapsed on the monotonic clock; after a restart the timer was seeded
     * from the stored deadline, so this stays within [0, T]. */
    uint64_t asked = q->deadline_mono > q->duration_ms ? q->deadline_mono - q->duration_ms : 0;
    uint64_t t = now_mono > asked ? now_mono - asked : 0;
    a->points = *correct ? (uint8_t)tally__quiz_points(t, q->duration_ms) : 0;
    k += snprintf(a->json + k, sizeof a->json - (size_t)k, ",\"pts\":%u,\"t\":%" PRIu64, a->points, t);
  }
  snprintf(a->json + k, sizeof a->json - (size_t)k, "}");
  q->inflight++;
  fact_mark(op, QF_ANSWER, qi, slot, a->json);
  return TALLY_OK;
}

/* ---- deadline, winners, payout -------------------------------------------------------- */
uint32_t tally__quiz_points(uint64_t t_ms, uint64_t duration_ms) {
  if (duration_ms == 0 || t_ms >= duration_ms) return TALLY__QUIZ_POINTS_MIN;
  /* floor(9 t / T): t < T <= 3,600,000 ms, so 9 t cannot overflow. */
  uint64_t lost = (uint64_t)(TALLY__QUIZ_POINTS_MAX - TALLY__QUIZ_POINTS_MIN) * t_ms / duration_ms;
  return (uint32_t)(TALLY__QUIZ_POINTS_MAX - lost);
}

/* Whether account may win what host started at started_ms in event_id:
 * not the host, first seen long enough before, present in the event
 * before the start, and (when a reward is at stake) below
 * reward_per_event_max rewards in that event. */
static bool eligible(tally__engine *e, uint32_t host, uint64_t event_id, int64_t started_ms, bool rewarded,
                     uint32_t account, int64_t first_seen_ms) {
  int64_t age_ms = (int64_t)e->cfg.reward_min_account_age_s * 1000;
  if (account == host) return false;
  /* Unknown (0) counts as new: fails closed. */
  if (first_seen_ms == 0 || started_ms - first_seen_ms < age_ms) return false;
  int64_t present = tally__audience_first_ms(&e->st, event_id, account);
  if (present == 0 || present > started_ms) return false;
  uint32_t cap = e->cfg.reward_per_event_max;
  return !rewarded || cap == 0 || tally__reward_event_count(e, event_id, account) < cap;
}

/* When tally first saw each of n accounts (TALLY__NONE: 0): with LINK, a
 * wallet's age is its oldest identity's (an old IRC account that linked a
 * new Matrix one is not new). One pass over the accounts, only when one of
 * the wallets has linked identities (rare): O(accounts + links x n). */
static void first_seen_of(const tally__engine *e, const uint32_t *acc, uint32_t n, int64_t *seen) {
  const tally__state *st = &e->st;
  bool any = false;
  for (uint32_t i = 0; i < n; i++) {
    seen[i] = 0;
    if (acc[i] == TALLY__NONE) continue;
    seen[i] = st->accounts[acc[i]].first_seen_ms;
    any |= st->accounts[acc[i]].linked_count > 0;
  }
  if (!any) return;
  for (uint32_t k = 0; k < st->account_count; k++) {
    const tally__account *a = &st->accounts[k];
    if (a->person == TALLY__NONE || a->first_seen_ms == 0) continue;
    if (a->link_state != TALLY__LINK_LINKED && a->link_state != TALLY__LINK_UNLINKING) continue;
    for (uint32_t i = 0; i < n; i++)
      if (acc[i] != TALLY__NONE && acc[i] == a->person && (seen[i] == 0 || a->first_seen_ms < seen[i]))
        seen[i] = a->first_seen_ms;
  }
}

/* The winners, by arrival: committed right answers of eligible accounts,
 * lowest seq first (the engine's arrival order; no ties). A question of a
 * round has none: the round's scoreboard decides. */
static void choose_winners(tally__engine *e, tally__quiz *q) {
  q->answerers = 0;
  q->winner_count = 0;
  for (uint32_t i = 0; i < q->answer_count; i++) q->answerers += q->answers[i].used && q->answers[i].committed;
  if (q->round != TALLY__NONE || q->answerers < q->min_players) return;
  int64_t seen[TALLY__QUIZ_ANSWERS_MAX];
  uint32_t acc[TALLY__QUIZ_ANSWERS_MAX];
  for (uint32_t i = 0; i < q->answer_count; i++) acc[i] = q->answers[i].used ? q->answers[i].account : TALLY__NONE;
  first_seen_of(e, acc, q->answer_count, seen);
  uint32_t last = 0;
  while (q->winner_count < q->winners_max) {
    uint32_t best = TALLY__NONE;
    for (uint32_t i = 0; i < q->answer_count; i++) {
      const tally__quiz_given *a = &q->answers[i];
      if (!a->used || !a->committed || !a->correct || a->seq <= last) continue;
      if (best == TALLY__NONE || a->seq < q->answers[best].seq) best = i;
    }
    if (best == TALLY__NONE) break;
    last = q->answers[best].seq;
    if (!eligible(e, q->host, q->event_id, q->started_ms, q->reward_def != TALLY__NONE, q->answers[best].account,
                  seen[best]))
      continue;
    q->grant[q->winner_count] = TALLY__NONE;
    q->winner[q->winner_count++] = q->answers[best].account;
  }
}

/* Grants of def for every winner that has none (restored, or stored
 * before a restart), keyed by (source, account); true when all of them
 * are committed. grant[w]: the slot, TALLY__NONE (none yet) or
 * TALLY__NONE - 1 (given up on: not waited for). */
static bool pay_list(tally__engine *e, uint32_t def, uint64_t source, uint64_t event_id, const uint32_t *winner,
                     uint32_t *grant, uint32_t count) {
  if (def == TALLY__NONE) return true;
  tally__rewards *r = tally__rewards_of(e);
  bool all = true;
  for (uint32_t w = 0; w < count; w++) {
    uint32_t g = grant[w];
    if (g == TALLY__NONE - 1) continue;
    if (g != TALLY__NONE && r->grants[g].state == TALLY__GRANT_FREE) g = TALLY__NONE; /* its fact failed */
    if (g == TALLY__NONE) g = tally__reward_grant_of(e, source, winner[w]);
    if (g == TALLY__NONE) {
      int rc = tally__reward_grant_event(e, def, winner[w], source, event_id, &g);
      if (rc == TALLY_EBUSY) return false; /* the next tick goes on */
      if (rc) {
        fprintf(stderr, "tally: quiz %" PRIu64 ": reward not granted to %s: %s\n", source,
                tally__account_name(&e->st, winner[w]), tally_strerror(rc));
        grant[w] = TALLY__NONE - 1;
        continue;
      }
    }
    grant[w] = g;
    if (g < TALLY__REWARD_GRANTS_MAX && r->grants[g].state == TALLY__GRANT_GRANTING) all = false;
  }
  return all;
}

static void end_fact(tally__engine *e, tally__quiz *q, uint32_t qi) {
  tally__op *op = tally__engine_record_op(e, TALLY__OP_FACT, q->host, TALLY__NONE);
  if (!op) return; /* the next tick tries again */
  snprintf(q->json, sizeof q->json, "{\"k\":\"qe\",\"q\":%" PRIu64 ",\"n\":%u,\"w\":%u}", q->id, q->answerers,
           q->winner_count);
  fact_mark(op, QF_END, qi, 0, q->json);
  q->state = TALLY__QUIZ_ENDING;
}

static void say_count(tally__engine *e, tally__quiz *q, uint64_t now_mono) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < q->answer_count; i++) n += q->answers[i].used && q->answers[i].committed;
  /* The first answer is said at once, later counts at most every SAY_MS. */
  if (n == q->said_count || (q->said_mono && now_mono - q->said_mono < TALLY__QUIZ_SAY_MS)) return;
  q->said_count = n;
  q->said_mono = now_mono;
  tally__announce_in(e, q->net, q->room, "Quiz: %u %s answered so far.", n, n == 1 ? "has" : "have");
}

/* ---- rounds ------------------------------------------------------------------------------ */
static void round_mark(tally__op *op, uint32_t sub, uint32_t a, uint32_t b, const char *json) {
  op->kind = TALLY__FACT_QUIZ_ROUND;
  op->qty = sub;
  op->entry_slot = a;
  op->serial = b;
  op->fact = json;
}

uint32_t tally__quiz_round_in(tally__engine *e, uint16_t net, const char *room) {
  tally__quizzes *z = tally__quizzes_of(e);
  for (uint32_t i = 0; z && i < TALLY__QUIZZES_MAX; i++) {
    const tally__quiz_round *r = &z->rounds[i];
    if (r->state != TALLY__ROUND_FREE && r->net == net && strcmp(r->room, room) == 0) return i;
  }
  return TALLY__NONE;
}

static bool round_json(tally__engine *e, tally__quiz_round *r) {
  const tally__state *st = &e->st;
  const tally__rewards *rw = tally__rewards_of(e);
  uint64_t reward = r->reward_def == TALLY__NONE || !rw ? 0 : rw->defs[r->reward_def].id;
  size_t n = sizeof r->json, k = 0;
  k += (size_t)snprintf(r->json, n,
                        "{\"k\":\"qr\",\"r\":%" PRIu64 ",\"h\":%" PRIu64 ",\"net\":%u,\"ev\":%" PRIu64
                        ",\"n\":%u,\"w\":%u,\"rw\":%" PRIu64 ",\"min\":%u,\"at\":%" PRId64 ",\"room\":",
                        r->id, st->accounts[r->host].id, (unsigned)st->networks[r->net].id, r->event_id,
                        r->questions_max, r->winners_max, reward, r->min_players, r->started_ms);
  if (k >= n || !json_str(r->json, n, &k, r->room) || k + 2 >= n) return false;
  snprintf(r->json + k, n - k, "}");
  return true;
}

int tally__quiz_round_start(tally__engine *e, const tally__quiz_round *spec, tally__op *op) {
  tally__quizzes *z = tally__quizzes_of(e);
  if (!z) return TALLY_ESTARTING;
  if (tally__quiz_round_in(e, spec->net, spec->room) != TALLY__NONE || tally__quiz_in(e, spec->net, spec->room) != TALLY__NONE)
    return TALLY_EEXISTS;
  uint32_t slot = TALLY__NONE;
  for (uint32_t i = 0; i < TALLY__QUIZZES_MAX && slot == TALLY__NONE; i++)
    if (z->rounds[i].state == TALLY__ROUND_FREE) slot = i;
  if (slot == TALLY__NONE) return TALLY_ETOO_MANY;
  tally__quiz_round *r = &z->rounds[slot];
  memcpy(r, spec, offsetof(tally__quiz_round, scores));
  r->id = tally__state_take_id(&e->st);
  r->started_ms = tally__now_wall_ms(e);
  r->started = r->played = r->score_count = r->winner_count = 0;
  r->stopped = r->stopping = r->chosen = false;
  r->quiz = TALLY__NONE;
  if (!round_json(e, r)) {
    memset(r, 0, sizeof *r);
    return TALLY_ETOOBIG;
  }
  r->state = TALLY__ROUND_STARTING;
  round_mark(op, RX_START, slot, TALLY__NONE, r->json);
  return TALLY_OK;
}

int tally__quiz_stop(tally__engine *e, uint16_t net, const char *room, tally__op *op, int *what) {
  tally__quizzes *z = tally__quizzes_of(e);
  if (!z) return TALLY_ESTARTING;
  uint32_t qi = tally__quiz_in(e, net, room), ri = tally__quiz_round_in(e, net, room);
  tally__quiz *q = qi != TALLY__NONE ? &z->q[qi] : NULL;
  tally__quiz_round *r = ri != TALLY__NONE ? &z->rounds[ri] : NULL;
  if (q && q->stopping && q->deadline_mono <= tally__now_mono_ms(e)) q = NULL; /* stopped: closing now */
  if ((q && (q->state == TALLY__QUIZ_STARTING || q->stopping)) || (r && (r->state == TALLY__ROUND_STARTING || r->stopping)))
    return TALLY_EBUSY; /* its fact is in flight */
  if (q && q->state != TALLY__QUIZ_RUNNING) q = NULL; /* closing already */
  if (r && (r->state != TALLY__ROUND_OPEN || r->stopped)) r = NULL;
  if (!q && !r) return TALLY_ENO_QUIZ;
  *what = (q ? 1 : 0) | (r ? 2 : 0);
  char *json = q ? q->stop_json : r->stop_json;
  snprintf(json, sizeof q->stop_json, "{\"k\":\"qx\",\"q\":%" PRIu64 ",\"r\":%" PRIu64 ",\"n\":%u,\"at\":%" PRId64 "}",
           q ? q->id : 0, r ? r->id : 0, r ? r->started : 0, tally__now_wall_ms(e));
  if (q) q->stopping = true; /* no answer from now on */
  if (r) r->stopping = true;
  round_mark(op, RX_STOP, q ? qi : TALLY__NONE, r ? ri : TALLY__NONE, json);
  return TALLY_OK;
}

static tally__quiz_score *score_of(tally__quiz_round *r, uint32_t account) {
  for (uint32_t i = 0; i < r->score_count; i++)
    if (r->scores[i].account == account) return &r->scores[i];
  if (r->score_count == TALLY__QUIZ_PLAYERS_MAX) return NULL; /* then: players beyond the table do not count */
  tally__quiz_score *s = &r->scores[r->score_count++];
  *s = (tally__quiz_score){.account = account};
  return s;
}

static void round_add(tally__quiz_round *r, uint32_t n, uint32_t account, uint32_t points, uint32_t seq) {
  tally__quiz_score *s = score_of(r, account);
  if (!s || points == 0) return;
  s->points += points;
  s->reached = ((uint64_t)n << 32) | seq;
}

/* The best score not taken: most points, then who reached it first;
 * a player without points is never best. */
static uint32_t next_best(const tally__quiz_round *r, const bool *taken) {
  uint32_t best = TALLY__NONE;
  for (uint32_t i = 0; i < r->score_count; i++) {
    const tally__quiz_score *s = &r->scores[i];
    if (taken[i] || s->points == 0) continue;
    const tally__quiz_score *b = best == TALLY__NONE ? NULL : &r->scores[best];
    if (!b || s->points > b->points || (s->points == b->points && s->reached < b->reached)) best = i;
  }
  return best;
}

/* "p3 19, p1 10, p4 5": the top `shown` totals. */
static void scoreboard(tally__engine *e, const tally__quiz_round *r, uint32_t shown, char *out, size_t n) {
  bool taken[TALLY__QUIZ_PLAYERS_MAX] = {false};
  size_t k = 0;
  out[0] = 0;
  for (uint32_t i = 0; i < shown && k + 48 < n; i++) {
    uint32_t b = next_best(r, taken);
    if (b == TALLY__NONE) break;
    taken[b] = true;
    k += (size_t)snprintf(out + k, n - k, "%s%s %u", i ? ", " : "", tally__account_label(&e->st, r->scores[b].account),
                          r->scores[b].points);
  }
  if (!out[0]) snprintf(out, n, "nobody has scored");
}

/* Room kept for "... and N more" and the asker's own place after the list. */
enum { SCORES_TAIL_BYTES = 96 };

void tally__quiz_round_scores(tally__engine *e, uint32_t ri, uint32_t asker, char *out, size_t n) {
  const tally__quiz_round *r = &tally__quizzes_of(e)->rounds[ri];
  bool taken[TALLY__QUIZ_PLAYERS_MAX] = {false};
  size_t k = 0;
  uint32_t shown = 0, place = 0, points = 0, ranked = 0;
  bool asker_shown = false;
  assert(n > SCORES_TAIL_BYTES);
  out[0] = 0;
  for (uint32_t rank = 1; rank <= r->score_count; rank++) {
    uint32_t b = next_best(r, taken); /* scorers only: 0 points is not on the board */
    if (b == TALLY__NONE) break;
    ranked = rank;
    taken[b] = true;
    const tally__quiz_score *s = &r->scores[b];
    bool mine = tally__account_person(&e->st, s->account) == tally__account_person(&e->st, asker);
    if (mine) place = rank, points = s->points;
    const char *who = tally__account_label(&e->st, s->account);
    if (shown == rank - 1 && k + strlen(who) + 24 + SCORES_TAIL_BYTES < n) {
      k += (size_t)snprintf(out + k, n - k, "%s%u. %s %u", shown ? ", " : "", rank, who, s->points);
      shown++;
      asker_shown |= mine;
    }
  }
  if (!ranked) {
    snprintf(out, n, "nobody has scored yet");
    return;
  }
  if (shown < ranked) k += (size_t)snprintf(out + k, n - k, " and %u more", ranked - shown);
  if (place && !asker_shown) snprintf(out + k, n - k, "; you: number %u with %u points", place, points);
  else if (!place) snprintf(out + k, n - k, "; you have not scored");
}

static void round_choose(tally__engine *e, tally__quiz_round *r) {
  r->winner_count = 0;
  r->chosen = true;
  if (r->score_count < r->min_players) return;
  bool taken[TALLY__QUIZ_PLAYERS_MAX] = {false};
  uint32_t acc[TALLY__QUIZ_PLAYERS_MAX];
  int64_t seen[TALLY__QUIZ_PLAYERS_MAX];
  for (uint32_t i = 0; i < r->score_count; i++) acc[i] = r->scores[i].account;
  first_seen_of(e, acc, r->score_count, seen);
  while (r->winner_count < r->winners_max) {
    uint32_t b = next_best(r, taken);
    if (b == TALLY__NONE) break;
    taken[b] = true;
    if (!eligible(e, r->host, r->event_id, r->started_ms, r->reward_def != TALLY__NONE, acc[b], seen[b])) continue;
    r->grant[r->winner_count] = TALLY__NONE;
    r->winner[r->winner_count++] = acc[b];
  }
}

/* A question of round r ended (its end fact committed): its committed
 * answers go on the scoreboard, which the room sees. */
static void round_question_ended(tally__engine *e, const tally__quiz *q) {
  tally__quiz_round *r = &tally__quizzes_of(e)->rounds[q->round];
  uint32_t right = 0;
  for (uint32_t i = 0; i < q->answer_count; i++) {
    const tally__quiz_given *a = &q->answers[i];
    if (!a->used || !a->committed) continue;
    round_add(r, q->round_n, a->account, a->points, a->seq);
    right += a->correct;
  }
  r->played++;
  r->quiz = TALLY__NONE;
  char board[TALLY_TEXT_BYTES_MAX / 2];
  scoreboard(e, r, TALLY__QUIZ_SCOREBOARD_SHOWN, board, sizeof board);
  tally__announce_in(e, q->net, q->room, "Question %u of %u over: the answer was %s. %u answered, %u right. Scores: %s.",
                     q->round_n, r->questions_max, q->expected[0], q->answerers, right, board);
}

static void round_end_fact(tally__engine *e, tally__quiz_round *r, uint32_t ri) {
  tally__op *op = tally__engine_record_op(e, TALLY__OP_FACT, r->host, TALLY__NONE);
  if (!op) return; /* the next tick tries again */
  snprintf(r->json, sizeof r->json, "{\"k\":\"qre\",\"r\":%" PRIu64 ",\"n\":%u,\"p\":%u,\"w\":%u}", r->id, r->played,
           r->score_count, r->winner_count);
  round_mark(op, RX_END, ri, TALLY__NONE, r->json);
  r->state = TALLY__ROUND_ENDING;
}

static void round_tick(tally__engine *e, uint32_t ri) {
  tally__quiz_round *r = &tally__quizzes_of(e)->rounds[ri];
  if (r->state == TALLY__ROUND_OPEN && r->quiz == TALLY__NONE && !r->stopping &&
      (r->stopped || r->played >= r->questions_max))
    r->state = TALLY__ROUND_PAYING;
  if (r->state != TALLY__ROUND_PAYING) return;
  if (!r->chosen) round_choose(e, r);
  if (pay_list(e, r->reward_def, r->id, r->event_id, r->winner, r->grant, r->winner_count)) round_end_fact(e, r, ri);
}

static void reward_text(tally__engine *e, uint32_t def, char *out, size_t n) {
  const tally__rewards *r = tally__rewards_of(e);
  out[0] = 0;
  if (def == TALLY__NONE || !r) return;
  char what[128];
  tally__reward_describe(e, &r->defs[def], what, sizeof what);
  snprintf(out, n, "; each wins the reward %s (%s)", r->defs[def].name, what);
}

static void announce_round_start(tally__engine *e, const tally__quiz_round *r) {
  char reward[160];
  reward_text(e, r->reward_def, reward, sizeof reward);
  tally__announce_in(e, r->net, r->room,
                     "QUIZ ROUND of %u %s, asked one at a time: answer each privately, ANSWER <text>. A right answer "
                     "scores %d points at once, down to %d at the deadline; the top %u by points win%s.",
                     r->questions_max, r->questions_max == 1 ? "question" : "questions", TALLY__QUIZ_POINTS_MAX,
                     TALLY__QUIZ_POINTS_MIN, r->winners_max, reward);
}

static void announce_round_end(tally__engine *e, const tally__quiz_round *r) {
  char board[TALLY_TEXT_BYTES_MAX / 3], names[TALLY_TEXT_BYTES_MAX / 3] = "";
  scoreboard(e, r, TALLY__QUIZ_SCOREBOARD_SHOWN, board, sizeof board);
  size_t k = 0;
  for (uint32_t w = 0; w < r->winner_count && k + 40 < sizeof names; w++)
    k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", w ? ", " : "", tally__account_label(&e->st, r->winner[w]));
  const char *qs = r->played == 1 ? "question" : "questions";
  if (r->score_count < r->min_players)
    tally__announce_in(e, r->net, r->room,
                       "Round over after %u %s: %u played, fewer than the %u players it needs: nobody wins.", r->played,
                       qs, r->score_count, r->min_players);
  else if (r->winner_count == 0)
    tally__announce_in(e, r->net, r->room, "Round over after %u %s. Final scores: %s. No winner.", r->played, qs, board);
  else
    tally__announce_in(e, r->net, r->room, "Round over after %u %s. Final scores: %s. %s: %s%s", r->played, qs, board,
                       r->winner_count == 1 ? "The winner" : "The winners, by points", names,
                       r->reward_def != TALLY__NONE ? " (REWARDS shows the reward)" : "");
}

static void round_settled(tally__engine *e, const tally__op *op, bool ok) {
  tally__quizzes *z = tally__quizzes_of(e);
  if (op->qty == RX_STOP) {
    tally__quiz *q = op->entry_slot != TALLY__NONE ? &z->q[op->entry_slot] : NULL;
    tally__quiz_round *r = op->serial != TALLY__NONE ? &z->rounds[op->serial] : NULL;
    if (q && ok) {
      uint64_t now = tally__now_mono_ms(e);
      if (q->deadline_mono > now) q->deadline_mono = now; /* closes at the next tick, with the answers so far */
    } else if (q) {
      q->stopping = false;
    }
    if (r) {
      r->stopping = false;
      r->stopped |= ok;
    }
    return;
  }
  tally__quiz_round *r = &z->rounds[op->entry_slot];
  if (op->qty == RX_START) {
    if (!ok) {
      memset(r, 0, sizeof *r);
      return;
    }
    r->state = TALLY__ROUND_OPEN;
    announce_round_start(e, r);
  } else if (op->qty == RX_END) {
    if (!ok) {
      r->state = TALLY__ROUND_PAYING; /* the next tick writes it again */
      return;
    }
    announce_round_end(e, r);
    memset(r, 0, sizeof *r);
  }
}

void tally__quiz_tick(tally__engine *e, uint64_t now_mono) {
  tally__quizzes *z = tally__quizzes_of(e);
  for (uint32_t i = 0; z && i < TALLY__QUIZZES_MAX; i++) {
    tally__quiz *q = &z->q[i];
    if (q->resumed && q->state == TALLY__QUIZ_RUNNING && now_mono < q->deadline_mono) {
      /* Its first announcement may have been lost with the engine. */
      q->resumed = false;
      tally__announce_in(e, q->net, q->room, "QUIZ resumed (%" PRIu64 " s left): %s - answer privately: ANSWER <text>.",
                         (q->deadline_mono - now_mono + 999) / 1000, q->question);
    }
    if (q->state == TALLY__QUIZ_RUNNING && now_mono < q->deadline_mono) say_count(e, q, now_mono);
    else if (q->state == TALLY__QUIZ_RUNNING) q->state = TALLY__QUIZ_CLOSING;
    if (q->state == TALLY__QUIZ_CLOSING && q->inflight == 0) {
      choose_winners(e, q);
      q->state = TALLY__QUIZ_PAYING;
    }
    if (q->state == TALLY__QUIZ_PAYING &&
        pay_list(e, q->reward_def, q->id, q->event_id, q->winner, q->grant, q->winner_count))
      end_fact(e, q, i);
  }
  for (uint32_t i = 0; z && i < TALLY__QUIZZES_MAX; i++) round_tick(e, i);
}

/* ---- settled facts ----------------------------------------------------------------------- */
static void announce_start(tally__engine *e, const tally__quiz *q) {
  if (q->round != TALLY__NONE) {
    const tally__quiz_round *r = &tally__quizzes_of(e)->rounds[q->round];
    tally__announce_in(e, q->net, q->room,
                       "QUIZ %u/%u (%" PRIu64 " s): %s - answer privately: ANSWER <text>. "
                       "Right now scores %d points, at the deadline %d.",
                       q->round_n, r->questions_max, q->duration_ms / 1000, q->question, TALLY__QUIZ_POINTS_MAX,
                       TALLY__QUIZ_POINTS_MIN);
    return;
  }
  char reward[160];
  reward_text(e, q->reward_def, reward, sizeof reward);
  tally__announce_in(e, q->net, q->room,
                     "QUIZ (%" PRIu64 " s): %s - answer privately: ANSWER <text>. "
                     "The first %u right %s win%s.",
                     q->duration_ms / 1000, q->question, q->winners_max, q->winners_max == 1 ? "answer" : "answers",
                     reward);
}
static void announce_end(tally__engine *e, const tally__quiz *q) {
  char names[TALLY_TEXT_BYTES_MAX / 2] = "";
  size_t k = 0;
  for (uint32_t w = 0; w < q->winner_count && k + 40 < sizeof names; w++)
    k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", w ? ", " : "",
                          tally__account_label(&e->st, q->winner[w]));
  if (q->answerers < q->min_players)
    tally__announce_in(e, q->net, q->room,
                       "Quiz over: the answer was %s. %u answered, fewer than the %u players it needs: nobody wins.",
                       q->expected[0], q->answerers, q->min_players);
  else if (q->winner_count == 0)
    tally__announce_in(e, q->net, q->room, "Quiz over: the answer was %s. %u answered; no winner.", q->expected[0],
                       q->answerers);
  else
    tally__announce_in(e, q->net, q->room, "Quiz over: the answer was %s. %u answered; %s: %s%s", q->expected[0],
                       q->answerers, q->winner_count == 1 ? "the winner" : "the winners, by arrival", names,
                       q->reward_def != TALLY__NONE ? " (REWARDS shows the reward)" : "");
}

void tally__quiz_record_settled(tally__engine *e, const tally__op *op, bool ok) {
  if (op->type != TALLY__OP_FACT) return;
  if (op->kind == TALLY__FACT_QUIZ_ROUND) {
    round_settled(e, op, ok);
    return;
  }
  if (op->kind != TALLY__FACT_QUIZ) return;
  tally__quizzes *z = tally__quizzes_of(e);
  tally__quiz *q = &z->q[op->entry_slot];
  if (op->qty == QF_START) {
    if (!ok) {
      if (q->round != TALLY__NONE) z->rounds[q->round].quiz = TALLY__NONE;
      memset(q, 0, sizeof *q);
      return;
    }
    q->state = TALLY__QUIZ_RUNNING;
    if (q->round != TALLY__NONE) z->rounds[q->round].started = q->round_n;
    announce_start(e, q);
  } else if (op->qty == QF_ANSWER) {
    tally__quiz_given *a = &q->answers[op->serial];
    q->inflight--;
    if (ok) a->committed = true;
    else a->used = false; /* not stored: the account may answer again */
  } else if (op->qty == QF_END) {
    if (!ok) {
      q->state = TALLY__QUIZ_PAYING; /* the next tick writes it again */
      return;
    }
    if (q->round != TALLY__NONE) round_question_ended(e, q);
    else announce_end(e, q);
    memset(q, 0, sizeof *q);
  }
}

/* ---- restore ------------------------------------------------------------------------------ */
static uint16_t net_of(const tally__state *st, int64_t id) {
  for (uint16_t n = 0; n < st->network_count; n++)
    if (st->networks[n].id == id) return n;
  return UINT16_MAX;
}

static tally__quiz *quiz_by_id(tally__quizzes *z, uint64_t id) {
  for (uint32_t i = 0; i < TALLY__QUIZZES_MAX; i++)
    if (z->q[i].state != TALLY__QUIZ_FREE && z->q[i].id == id) return &z->q[i];
  return NULL;
}

static int restore_quizzes(loader *l, tally__quizzes *z, int64_t now_ms) {
  tally__engine *e = l->e;
  PGresult *r = tally__load_q(l,
                              "SELECT q.id, q.host_id, q.network_id, q.room, q.question, q.winners, q.reward_id,"
                              " q.min_players, q.duration_ms, q.deadline_ms, q.event_id, s.stopped_ms, x.round_id, x.n"
                              " FROM quizzes q LEFT JOIN quiz_stops s ON s.id = q.id"
                              " LEFT JOIN quiz_round_questions x ON x.quiz_id = q.id"
                              " WHERE NOT EXISTS (SELECT 1 FROM quiz_ends y WHERE y.quiz_id = q.id)"
                              " ORDER BY q.id DESC LIMIT 16",
                              0, NULL);
  if (!r) return TALLY_EDB;
  _Static_assert(TALLY__QUIZZES_MAX == 16, "the LIMIT above");
  uint64_t now_mono = tally__now_mono_ms(e);
  uint32_t n = 0;
  for (int i = 0; i < PQntuples(r); i++) {
    tally__quiz *q = &z->q[n];
    memset(q, 0, sizeof *q);
    q->id = (uint64_t)tally__load_i64(r, i, 0);
    q->host = tally__load_acc(l, tally__load_i64(r, i, 1));
    q->net = net_of(&e->st, tally__load_i64(r, i, 2));
    if (q->host == TALLY__NONE || q->net == UINT16_MAX) continue;
    tally__text_clip(q->room, sizeof q->room, PQgetvalue(r, i, 3));
    tally__text_clip(q->question, sizeof q->question, PQgetvalue(r, i, 4));
    q->winners_max = (uint32_t)tally__load_i64(r, i, 5);
    int64_t reward = tally__load_i64(r, i, 6);
    q->reward_def = reward ? tally__reward_def_by_id(e, (uint64_t)reward) : TALLY__NONE;
    q->min_players = (uint32_t)tally__load_i64(r, i, 7);
    q->duration_ms = (uint64_t)tally__load_i64(r, i, 8);
    q->deadline_ms = tally__load_i64(r, i, 9);
    q->started_ms = q->deadline_ms - (int64_t)q->duration_ms;
    q->round = TALLY__NONE;
    bool stopped = !PQgetisnull(r, i, 11); /* QUIZ STOP committed: closed, whatever its deadline said */
    if (stopped && tally__load_i64(r, i, 11) < q->deadline_ms) q->deadline_ms = tally__load_i64(r, i, 11);
    if (!PQgetisnull(r, i, 12)) {
      q->round_id = (uint64_t)tally__load_i64(r, i, 12);
      q->round_n = (uint32_t)tally__load_i64(r, i, 13);
      for (uint32_t k = 0; k < TALLY__QUIZZES_MAX && q->round == TALLY__NONE; k++)
        if (z->rounds[k].state != TALLY__ROUND_FREE && z->rounds[k].id == q->round_id) q->round = k;
      if (q->round != TALLY__NONE) z->rounds[q->round].quiz = n;
    }
    int64_t left = q->deadline_ms - now_ms;
    q->deadline_mono = now_mono + (uint64_t)(left > 0 && !stopped ? left : 0); /* past: closes at the first tick */
    q->said_mono = 0;
    q->event_id = (uint64_t)tally__load_i64(r, i, 10); /* the event it started in, not today's */
    if (q->winners_max > TALLY__QUIZ_WINNERS_MAX) q->winners_max = TALLY__QUIZ_WINNERS_MAX;
    q->state = TALLY__QUIZ_RUNNING;
    q->resumed = !stopped;
    q->stopping = stopped;
    n++;
  }
  PQclear(r);
  return TALLY_OK;
}

/* The expected answers and the answers given, of the quizzes restored. */
static int restore_answers(loader *l, tally__quizzes *z) {
  PGresult *r = tally__load_q(l,
                              "SELECT q.id, u.a FROM quizzes q, unnest(q.answers) WITH ORDINALITY AS u(a, o)"
                              " WHERE NOT EXISTS (SELECT 1 FROM quiz_ends x WHERE x.quiz_id = q.id) ORDER BY q.id, u.o",
                              0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    tally__quiz *q = quiz_by_id(z, (uint64_t)tally__load_i64(r, i, 0));
    if (!q || q->expected_count == TALLY__QUIZ_EXPECTED_MAX) continue;
    tally__text_clip(q->expected[q->expected_count++], sizeof q->expected[0], PQgetvalue(r, i, 1));
  }
  PQclear(r);
  r = tally__load_q(l,
                    "SELECT a.quiz_id, a.account_id, a.seq, a.correct, p.points FROM quiz_answers a"
                    " LEFT JOIN quiz_points p ON p.quiz_id = a.quiz_id AND p.account_id = a.account_id"
                    " WHERE NOT EXISTS (SELECT 1 FROM quiz_ends x WHERE x.quiz_id = a.quiz_id) ORDER BY a.quiz_id, a.seq",
                    0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    tally__quiz *q = quiz_by_id(z, (uint64_t)tally__load_i64(r, i, 0));
    uint32_t account = tally__load_acc(l, tally__load_i64(r, i, 1));
    if (!q || account == TALLY__NONE || q->answer_count == TALLY__QUIZ_ANSWERS_MAX) continue;
    tally__quiz_given *a = &q->answers[q->answer_count++];
    a->account = account;
    a->seq = (uint32_t)tally__load_i64(r, i, 2);
    a->correct = PQgetvalue(r, i, 3)[0] == 't';
    a->points = PQgetisnull(r, i, 4) ? 0 : (uint8_t)tally__load_i64(r, i, 4);
    a->used = a->committed = true;
    if (a->seq > q->seq_next) q->seq_next = a->seq;
  }
  PQclear(r);
  return TALLY_OK;
}

/* Open rounds (no end row), before their questions; then the scores of
 * their ended questions, in order, so `reached` is what it was. */
static int restore_rounds(loader *l, tally__quizzes *z) {
  tally__engine *e = l->e;
  PGresult *r = tally__load_q(l,
                              "SELECT r.id, r.host_id, r.network_id, r.room, r.event_id, r.questions, r.winners, r.reward_id,"
                              " r.min_players, r.started_ms,"
                              " (SELECT count(*) FROM quiz_round_questions x WHERE x.round_id = r.id),"
                              " (SELECT count(*) FROM quiz_round_questions x JOIN quiz_ends y ON y.quiz_id = x.quiz_id"
                              "  WHERE x.round_id = r.id),"
                              " EXISTS (SELECT 1 FROM quiz_stops s WHERE s.id = r.id)"
                              " FROM quiz_rounds r WHERE NOT EXISTS (SELECT 1 FROM quiz_round_ends x WHERE x.round_id = r.id)"
                              " ORDER BY r.id DESC LIMIT 16",
                              0, NULL);
  if (!r) return TALLY_EDB;
  uint32_t n = 0;
  for (int i = 0; i < PQntuples(r); i++) {
    tally__quiz_round *d = &z->rounds[n];
    memset(d, 0, sizeof *d);
    d->id = (uint64_t)tally__load_i64(r, i, 0);
    d->host = tally__load_acc(l, tally__load_i64(r, i, 1));
    d->net = net_of(&e->st, tally__load_i64(r, i, 2));
    if (d->host == TALLY__NONE || d->net == UINT16_MAX) continue;
    tally__text_clip(d->room, sizeof d->room, PQgetvalue(r, i, 3));
    d->event_id = (uint64_t)tally__load_i64(r, i, 4);
    d->questions_max = (uint32_t)tally__load_i64(r, i, 5);
    d->winners_max = (uint32_t)tally__load_i64(r, i, 6);
    if (d->winners_max > TALLY__QUIZ_WINNERS_MAX) d->winners_max = TALLY__QUIZ_WINNERS_MAX;
    int64_t reward = tally__load_i64(r, i, 7);
    d->reward_def = reward ? tally__reward_def_by_id(e, (uint64_t)reward) : TALLY__NONE;
    d->min_players = (uint32_t)tally__load_i64(r, i, 8);
    d->started_ms = tally__load_i64(r, i, 9);
    d->started = (uint32_t)tally__load_i64(r, i, 10);
    d->played = (uint32_t)tally__load_i64(r, i, 11);
    d->stopped = PQgetvalue(r, i, 12)[0] == 't';
    d->quiz = TALLY__NONE;
    d->state = TALLY__ROUND_OPEN; /* over already (all played, or stopped): the first tick pays it */
    n++;
  }
  PQclear(r);
  return TALLY_OK;
}

static int restore_scores(loader *l, tally__quizzes *z) {
  PGresult *r = tally__load_q(l,
                              "SELECT x.round_id, p.account_id, p.points, x.n, a.seq FROM quiz_points p"
                              " JOIN quiz_round_questions x ON x.quiz_id = p.quiz_id"
                              " JOIN quiz_answers a ON a.quiz_id = p.quiz_id AND a.account_id = p.account_id"
                              " WHERE EXISTS (SELECT 1 FROM quiz_ends y WHERE y.quiz_id = p.quiz_id)"
                              " AND NOT EXISTS (SELECT 1 FROM quiz_round_ends w WHERE w.round_id = x.round_id)"
                              " ORDER BY x.round_id, x.n, a.seq",
                              0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint64_t id = (uint64_t)tally__load_i64(r, i, 0);
    uint32_t account = tally__load_acc(l, tally__load_i64(r, i, 1));
    if (account == TALLY__NONE) continue;
    for (uint32_t k = 0; k < TALLY__QUIZZES_MAX; k++)
      if (z->rounds[k].state != TALLY__ROUND_FREE && z->rounds[k].id == id)
        round_add(&z->rounds[k], (uint32_t)tally__load_i64(r, i, 3), account, (uint32_t)tally__load_i64(r, i, 2),
                  (uint32_t)tally__load_i64(r, i, 4));
  }
  PQclear(r);
  return TALLY_OK;
}

/* The quizzes' fact tables, whose ids and batch ids come from the engine's
 * counter (tally__load_ids_past says why the restore raises it). */
static const tally__id_table quiz_id_tables[] = {
    {"quizzes", true},      {"quiz_answers", false},         {"quiz_ends", false},
    {"quiz_rounds", true},  {"quiz_round_questions", false}, {"quiz_points", false},
    {"quiz_stops", false},  {"quiz_round_ends", false}};

int tally__quiz_restore(loader *l, int64_t now_ms) {
  tally__engine *e = l->e;
  tally__quizzes *z = tally__quizzes_of(e);
  if (!z && !(z = calloc(1, sizeof *z))) {
    snprintf(l->err, l->err_len, "load: quizzes: %s", tally_strerror(TALLY_ENOMEM));
    return TALLY_ENOMEM;
  }
  memset(z, 0, sizeof *z);
  e->feature_data[TALLY__FDATA_QUIZ] = z;
  int rc = tally__load_ids_past(l, quiz_id_tables, sizeof quiz_id_tables / sizeof quiz_id_tables[0]);
  if (!rc) rc = restore_rounds(l, z);
  if (!rc) rc = restore_quizzes(l, z, now_ms);
  if (!rc) rc = restore_answers(l, z);
  if (!rc) rc = restore_scores(l, z);
  return rc;
}

void tally__quiz_destroy(tally__engine *e) {
  free(e->feature_data[TALLY__FDATA_QUIZ]);
  e->feature_data[TALLY__FDATA_QUIZ] = NULL;
}

/* ---- the feature's config keys (config.h; runtime.c registers them) ------- */
static const tally__config_key config_keys[] = {
    {"reward_min_account_age", TALLY__CFG_U32, offsetof(tally_config, reward_min_account_age_s), "3600", 0, 365u * 86400,
     "seconds: an account tally first saw less than this long before a quiz started cannot win it "
     "(a fresh account per answer gains nothing)"},
};
const tally__config_keys tally__quiz_config_keys = TALLY__CONFIG_KEYS(config_keys);
