/* cmd_quiz.c — QUIZ START (hosts, in an event's room) and ANSWER (anyone,
 * privately or as an intercepted room line). The rules live in
 * features/quiz/quiz.c; this file parses and answers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "command_rows.h"
#include "commands.h"
#include "live.h"
#include "quiz.h"
#include "rewards.h"
#include "text.h"

/* The answer said once op commits, cut at a character boundary. */
__attribute__((format(printf, 2, 3))) static void note(tally__op *op, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(op->note, sizeof op->note, fmt, ap);
  va_end(ap);
  if (n > 0) tally__text_trim_tail(op->note, (size_t)n < sizeof op->note ? (size_t)n : sizeof op->note - 1);
}

static const char quiz_usage[] =
    "QUIZ START <seconds> <question> | <answer>[|<answer>...] [winners=N] [reward=<name>] [min-players=N]";

/* s trimmed of spaces at both ends, in place. */
static char *trim(char *s) {
  while (*s == ' ') s++;
  size_t n = strlen(s);
  while (n && s[n - 1] == ' ') s[--n] = 0;
  return s;
}

/* Cuts trailing key=value options off line into spec; false when one is
 * bad (answered). */
static bool quiz_options(tally__cmd *c, char *line, tally__quiz *spec, char *reward, size_t reward_n) {
  for (;;) {
    char *sp = strrchr(trim(line), ' ');
    char *w = sp ? sp + 1 : line;
    uint64_t v;
    int rc = TALLY_OK;
    if (strncmp(w, "winners=", 8) == 0) {
      rc = tally__uint_parse(w + 8, strlen(w + 8), TALLY__QUIZ_WINNERS_MAX, &v);
      spec->winners_max = (uint32_t)v;
    } else if (strncmp(w, "min-players=", 12) == 0) {
      rc = tally__uint_parse(w + 12, strlen(w + 12), TALLY__QUIZ_PLAYERS_MAX, &v);
      spec->min_players = (uint32_t)v;
    } else if (strncmp(w, "reward=", 7) == 0) {
      if (strlen(w + 7) >= reward_n || !w[7]) rc = TALLY_EUNKNOWN_REWARD;
      else snprintf(reward, reward_n, "%s", w + 7);
    } else {
      return true;
    }
    if (rc) {
      tally__reply(c->e, c->cmd, rc, 0, "%s: %s. %s", tally_strerror(rc), w, quiz_usage);
      return false;
    }
    if (!sp) return true;
    *sp = 0;
  }
}

/* "question | a | b" into spec; false when refused (answered). */
static bool quiz_text(tally__cmd *c, char *line, tally__quiz *spec) {
  char *bar = strchr(line, '|');
  if (!bar) {
    tally__cmd_usage(c, quiz_usage);
    return false;
  }
  *bar = 0;
  char *question = trim(line);
  if (!*question || strlen(question) > TALLY__QUIZ_QUESTION_BYTES_MAX) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: the question is 1 to %d bytes", tally_strerror(TALLY_EBAD_SYNTAX),
                 TALLY__QUIZ_QUESTION_BYTES_MAX);
    return false;
  }
  snprintf(spec->question, sizeof spec->question, "%s", question);
  for (char *part = bar + 1; part; ) {
    char *next = strchr(part, '|');
    if (next) *next++ = 0;
    char *a = trim(part);
    int32_t cps[TALLY__QUIZ_MATCH_CP_MAX];
    size_t n;
    if (!*a || strlen(a) > TALLY__QUIZ_ANSWER_BYTES_MAX || tally__quiz_fold(a, strlen(a), cps, &n) || n == 0 ||
        spec->expected_count == TALLY__QUIZ_EXPECTED_MAX) {
      tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: 1 to %d answers, each 1 to %d bytes", tally_strerror(TALLY_EBAD_SYNTAX),
                   TALLY__QUIZ_EXPECTED_MAX, TALLY__QUIZ_ANSWER_BYTES_MAX);
      return false;
    }
    snprintf(spec->expected[spec->expected_count++], sizeof spec->expected[0], "%s", a);
    part = next;
  }
  return true;
}

static void quiz_start(tally__cmd *c) {
  tally__engine *e = c->e;
  if (c->t.count < 4) {
    tally__cmd_usage(c, quiz_usage);
    return;
  }
  if (!c->cmd->channel[0]) {
    tally__reply(c->e, c->cmd, TALLY_ENOT_IN_CHANNEL, 0, "%s: start a quiz in the event's room",
                 tally_strerror(TALLY_ENOT_IN_CHANNEL));
    return;
  }
  uint32_t ev = tally__live_event_in(&e->st, c->net, c->cmd->channel);
  if (ev == TALLY__NONE) {
    tally__reply(e, c->cmd, TALLY_ENOTFOUND, 0,
                 "No event is running here: EVENT START first (a quiz's winners must have been present when it started).");
    return;
  }
  uint64_t seconds;
  if (tally__uint_parse(c->t.word[2], c->t.len[2], TALLY__QUIZ_SECONDS_MAX, &seconds) ||
      seconds < TALLY__QUIZ_SECONDS_MIN) {
    tally__reply(e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: a quiz lasts %d to %d seconds", tally_strerror(TALLY_EBAD_SYNTAX),
                 TALLY__QUIZ_SECONDS_MIN, TALLY__QUIZ_SECONDS_MAX);
    return;
  }
  static tally__quiz spec; /* large; the engine thread is the only caller */
  memset(&spec, 0, offsetof(tally__quiz, answers));
  spec.host = c->account;
  spec.net = c->net;
  spec.event_id = e->st.events[ev].id;
  spec.duration_ms = seconds * 1000;
  spec.winners_max = 1;
  spec.min_players = TALLY__QUIZ_MIN_PLAYERS_DEFAULT;
  spec.reward_def = TALLY__NONE;
  tally__text_clip(spec.room, sizeof spec.room, c->cmd->channel);
  char line[TALLY_TEXT_BYTES_MAX + 1], reward[TALLY__REWARD_NAME_BYTES_MAX + 1] = "";
  tally__text_clip(line, sizeof line, c->t.rest[3]);
  if (!quiz_options(c, line, &spec, reward, sizeof reward) || !quiz_text(c, line, &spec)) return;
  if (spec.winners_max == 0 || spec.min_players == 0) {
    tally__cmd_usage(c, quiz_usage);
    return;
  }
  if (reward[0]) {
    uint32_t def = tally__reward_def_find(e, c->account, reward);
    const tally__rewards *r = tally__rewards_of(e);
    if (def == TALLY__NONE || !r->defs[def].committed || r->defs[def].deleted) {
      tally__reply(e, c->cmd, TALLY_EUNKNOWN_REWARD, 0,
                   "%s: reward=%s names none of your rewards (a quiz gives one of yours: REWARD ADD, REWARD LIST)",
                   tally_strerror(TALLY_EUNKNOWN_REWARD), reward);
      return;
    }
    spec.reward_def = def;
  }
  tally__op *op = tally__cmd_fact_slot(c);
  if (!op) return;
  int rc = tally__quiz_start(e, &spec, c->now, op);
  if (rc) {
    tally__cmd_op_unused(c);
    if (rc == TALLY_EEXISTS) tally__reply(e, c->cmd, rc, 0, "A quiz is already running here; wait for its end.");
    else tally__cmd_refuse(c, rc);
    return;
  }
  note(op, "Quiz started for %llu s (%u %s, at least %u players).",
           (unsigned long long)seconds, spec.winners_max, spec.winners_max == 1 ? "winner" : "winners", spec.min_players);
  tally__cmd_fact_added(c, op);
}

void tally__cmd_quiz(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "QUIZ", TALLY__NA);
  if (!tally__quizzes_of(c->e) || !tally__rewards_of(c->e)) {
    tally__cmd_refuse(c, TALLY_ESTARTING);
    return;
  }
  if (tally__word_is(&c->t, 1, "START")) quiz_start(c);
  else tally__cmd_usage(c, quiz_usage);
}

/* Which quiz an ANSWER is for, and where its text starts (token index);
 * TALLY__NONE when answered (refused). */
static uint32_t answer_target(tally__cmd *c, int *from) {
  *from = 1;
  if (c->cmd->channel[0]) {
    uint32_t q = tally__quiz_in(c->e, c->net, c->cmd->channel);
    if (q == TALLY__NONE) tally__reply(c->e, c->cmd, TALLY_ENO_QUIZ, 0, "%s here", tally_strerror(TALLY_ENO_QUIZ));
    return q;
  }
  char room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  if (c->t.count > 2 && tally__word_copy(&c->t, 1, room, sizeof room) == TALLY_OK) {
    uint32_t q = tally__quiz_in(c->e, c->net, room);
    if (q != TALLY__NONE) {
      *from = 2;
      return q;
    }
  }
  uint32_t running;
  uint32_t q = tally__quiz_only(c->e, c->net, &running);
  if (q == TALLY__NONE && running > 1)
    tally__reply(c->e, c->cmd, TALLY_ENO_QUIZ, 0, "%u quizzes are running: say which, ANSWER <room> <text>", running);
  else if (q == TALLY__NONE)
    tally__cmd_refuse(c, TALLY_ENO_QUIZ);
  return q;
}

void tally__cmd_answer(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "ANSWER", TALLY__NA);
  if (!tally__quizzes_of(c->e)) {
    tally__cmd_refuse(c, TALLY_ESTARTING);
    return;
  }
  if (c->t.count < 2) {
    tally__cmd_usage(c, "ANSWER [room] <text> (privately; in the quiz's room only where command lines stay hidden)");
    return;
  }
  int from;
  uint32_t q = answer_target(c, &from);
  if (q == TALLY__NONE) return;
  tally__op *op = tally__cmd_fact_slot(c);
  if (!op) return;
  bool correct;
  uint32_t seq;
  int rc = tally__quiz_answer(c->e, q, c->account, c->t.rest[from], c->now, op, &correct, &seq);
  if (rc) {
    tally__cmd_op_unused(c);
    if (rc == TALLY_ESELF) tally__reply(c->e, c->cmd, rc, 0, "%s: the host of a quiz does not answer it", tally_strerror(rc));
    else if (rc == TALLY_ENO_QUIZ) tally__reply(c->e, c->cmd, rc, 0, "%s: that quiz has closed", tally_strerror(rc));
    else tally__cmd_refuse(c, rc);
    return;
  }
  if (correct)
    note(op, "Right! Your answer is in (number %u by arrival); the winners are said at the deadline.", seq);
  else
    note(op, "Not right, sorry: that was your one answer to this question.");
  tally__cmd_fact_added(c, op);
}

/* ---- the feature's command words (command_rows.h; runtime.c registers them) -- */
static const tally__role_row quiz_roles[] = {TALLY__ROLE_ROW("", 0, HOSTS, OPEN)};
static const tally__command_row quiz_rows[] = {
    {"ANSWER", tally__cmd_answer, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE,
     "[room] <text>",
     "answer a quiz (privately, or in its room where command lines stay hidden)", NULL, 0},
    {"QUIZ", tally__cmd_quiz, TALLY__NA, TALLY_COMMAND_GROUP_HOSTS,
     "START <seconds> <question> | <answer>[|<answer>...] [winners=N] [reward=<name>] [min-players=3]",
     "a quiz in this event's room; the first right answers win your reward",
     quiz_roles, sizeof quiz_roles / sizeof quiz_roles[0]},
};
const tally__command_rows tally__quiz_commands = TALLY__ROWS(quiz_rows);
