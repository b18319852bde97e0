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
  snprintf(q->json + k, n - k, "]}");
  return true;
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
  if (!start_json(e, q)) {
    memset(q, 0, sizeof *q);
    return TALLY_ETOOBIG;
  }
  q->state = TALLY__QUIZ_STARTING;
  fact_mark(op, QF_START, slot, 0, q->json);
  return TALLY_OK;
}

/* ---- answers ------------------------------------------------------------------------- */
int tally__quiz_answer(tally__engine *e, uint32_t qi, uint32_t account, const char *text, uint64_t now_mono,
                       tally__op *op, bool *correct, uint32_t *seq) {
  tally__quiz *q = &tally__quizzes_of(e)->q[qi];
  if (q->state != TALLY__QUIZ_RUNNING || now_mono >= q->deadline_mono) return TALLY_ENO_QUIZ;
  if (account == q->host) return TALLY_ESELF;
  for (uint32_t i = 0; i < q->answer_count; i++)
    if (q->answers[i].used && q->answers[i].account == account) return TALLY_EANSWERED;
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
  snprintf(a->json, sizeof a->json, "{\"k\":\"qa\",\"q\":%" PRIu64 ",\"a\":%" PRIu64 ",\"s\":%u,\"ok\":%s}", q->id,
           e->st.accounts[account].id, a->seq, *correct ? "true" : "false");
  q->inflight++;
  fact_mark(op, QF_ANSWER, qi, slot, a->json);
  return TALLY_OK;
}

/* ---- deadline, winners, payout -------------------------------------------------------- */
static bool eligible(tally__engine *e, const tally__quiz *q, uint32_t account, int64_t first_seen_ms) {
  int64_t age_ms = (int64_t)e->cfg.reward_min_account_age_s * 1000;
  if (account == q->host) return false;
  /* Unknown (0) counts as new: fails closed. */
  if (first_seen_ms == 0 || q->started_ms - first_seen_ms < age_ms) return false;
  int64_t present = tally__audience_first_ms(&e->st, q->event_id, account);
  return present != 0 && present <= q->started_ms;
}

/* When tally first saw each answer's person: with LINK, a wallet's age is
 * its oldest identity's (an old IRC account that linked a new Matrix one
 * is not new). One pass over the accounts, only when an answerer's wallet
 * has linked identities (rare): O(accounts + links x answers), once per quiz. */
static void answers_first_seen(const tally__engine *e, const tally__quiz *q, int64_t *seen) {
  const tally__state *st = &e->st;
  bool any = false;
  for (uint32_t i = 0; i < q->answer_count; i++) {
    seen[i] = 0;
    if (!q->answers[i].used) continue;
    seen[i] = st->accounts[q->answers[i].account].first_seen_ms;
    any |= st->accounts[q->answers[i].account].linked_count > 0;
  }
  if (!any) return;
  for (uint32_t k = 0; k < st->account_count; k++) {
    const tally__account *a = &st->accounts[k];
    if (a->person == TALLY__NONE || a->first_seen_ms == 0) continue;
    if (a->link_state != TALLY__LINK_LINKED && a->link_state != TALLY__LINK_UNLINKING) continue;
    for (uint32_t i = 0; i < q->answer_count; i++)
      if (q->answers[i].used && q->answers[i].account == a->person && (seen[i] == 0 || a->first_seen_ms < seen[i]))
        seen[i] = a->first_seen_ms;
  }
}

/* The winners, by arrival: committed right answers of eligible accounts,
 * lowest seq first (the engine's arrival order; no ties). */
static void choose_winners(tally__engine *e, tally__quiz *q) {
  q->answerers = 0;
  q->winner_count = 0;
  for (uint32_t i = 0; i < q->answer_count; i++) q->answerers += q->answers[i].used && q->answers[i].committed;
  if (q->answerers < q->min_players) return;
  int64_t seen[TALLY__QUIZ_ANSWERS_MAX];
  answers_first_seen(e, q, seen);
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
    if (!eligible(e, q, q->answers[best].account, seen[best])) continue;
    q->grant[q->winner_count] = TALLY__NONE;
    q->winner[q->winner_count++] = q->answers[best].account;
  }
}

/* Grants for every winner that has none (restored, or stored before a
 * restart); true when all of them are committed. */
static bool pay(tally__engine *e, tally__quiz *q) {
  if (q->reward_def == TALLY__NONE) return true;
  tally__rewards *r = tally__rewards_of(e);
  bool all = true;
  for (uint32_t w = 0; w < q->winner_count; w++) {
    uint32_t g = q->grant[w];
    if (g == TALLY__NONE - 1) continue; /* given up on */
    if (g != TALLY__NONE && r->grants[g].state == TALLY__GRANT_FREE) g = TALLY__NONE; /* its fact failed */
    if (g == TALLY__NONE) g = tally__reward_grant_of(e, q->id, q->winner[w]);
    if (g == TALLY__NONE) {
      int rc = tally__reward_grant(e, q->reward_def, q->winner[w], q->id, &g);
      if (rc == TALLY_EBUSY) return false; /* the next tick goes on */
      if (rc) {
        fprintf(stderr, "tally: quiz %" PRIu64 ": reward not granted to %s: %s\n", q->id,
                tally__account_name(&e->st, q->winner[w]), tally_strerror(rc));
        q->grant[w] = TALLY__NONE - 1; /* given up on: not waited for */
        continue;
      }
    }
    q->grant[w] = g;
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
    if (q->state == TALLY__QUIZ_PAYING && pay(e, q)) end_fact(e, q, i);
  }
}

/* ---- settled facts ----------------------------------------------------------------------- */
static void announce_start(tally__engine *e, const tally__quiz *q) {
  char reward[160] = "";
  const tally__rewards *r = tally__rewards_of(e);
  if (q->reward_def != TALLY__NONE && r) {
    char what[128];
    tally__reward_describe(e, &r->defs[q->reward_def], what, sizeof what);
    snprintf(reward, sizeof reward, "; each wins the reward %s (%s)", r->defs[q->reward_def].name, what);
  }
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
  if (op->type != TALLY__OP_FACT || op->kind != TALLY__FACT_QUIZ) return;
  tally__quiz *q = &tally__quizzes_of(e)->q[op->entry_slot];
  if (op->qty == QF_START) {
    if (!ok) {
      memset(q, 0, sizeof *q);
      return;
    }
    q->state = TALLY__QUIZ_RUNNING;
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
    announce_end(e, q);
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
                              " q.min_players, q.duration_ms, q.deadline_ms, q.event_id FROM quizzes q"
                              " WHERE NOT EXISTS (SELECT 1 FROM quiz_ends x WHERE x.quiz_id = q.id)"
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
    int64_t left = q->deadline_ms - now_ms;
    q->deadline_mono = now_mono + (uint64_t)(left > 0 ? left : 0); /* past: closes at the first tick */
    q->said_mono = 0;
    q->event_id = (uint64_t)tally__load_i64(r, i, 10); /* the event it started in, not today's */
    if (q->winners_max > TALLY__QUIZ_WINNERS_MAX) q->winners_max = TALLY__QUIZ_WINNERS_MAX;
    q->state = TALLY__QUIZ_RUNNING;
    q->resumed = true;
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
                    "SELECT a.quiz_id, a.account_id, a.seq, a.correct FROM quiz_answers a"
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
    a->used = a->committed = true;
    if (a->seq > q->seq_next) q->seq_next = a->seq;
  }
  PQclear(r);
  return TALLY_OK;
}

int tally__quiz_restore(loader *l, int64_t now_ms) {
  tally__engine *e = l->e;
  tally__quizzes *z = tally__quizzes_of(e);
  if (!z && !(z = calloc(1, sizeof *z))) {
    snprintf(l->err, l->err_len, "load: quizzes: %s", tally_strerror(TALLY_ENOMEM));
    return TALLY_ENOMEM;
  }
  memset(z, 0, sizeof *z);
  e->feature_data[TALLY__FDATA_QUIZ] = z;
  int rc = restore_quizzes(l, z, now_ms);
  if (!rc) rc = restore_answers(l, z);
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
