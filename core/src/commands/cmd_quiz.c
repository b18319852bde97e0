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
    "QUIZ START [room] <seconds> <question> | <answer>[|<answer>...] [winners=N] [reward=<name>] [min-players=N]"
    " | QUIZ ROUND [room] <questions> [winners=N] [reward=<name>] [min-players=N] | QUIZ STOP [room]"
    " | QUIZ SCORES [room]"
    " (room: only privately, where a room shows every line)";

/* s trimmed of spaces at both ends, in place. */
static char *trim(char *s) {
  while (*s == ' ') s++;
  size_t n = strlen(s);
  while (n && s[n - 1] == ' ') s[--n] = 0;
  return s;
}

typedef struct quiz_opts {
  uint32_t winners, min_players;
  bool given; /* any option at all */
  char reward[TALLY__REWARD_NAME_BYTES_MAX + 1];
} quiz_opts;

/* Cuts trailing key=value options off line into o; false when one is
 * bad (answered). What is left in line is the text before them. */
static bool quiz_options(tally__cmd *c, char *line, quiz_opts *o) {
  for (;;) {
    char *sp = strrchr(trim(line), ' ');
    char *w = sp ? sp + 1 : line;
    uint64_t v;
    int rc = TALLY_OK;
    if (strncmp(w, "winners=", 8) == 0) {
      rc = tally__uint_parse(w + 8, strlen(w + 8), TALLY__QUIZ_WINNERS_MAX, &v);
      o->winners = (uint32_t)v;
    } else if (strncmp(w, "min-players=", 12) == 0) {
      rc = tally__uint_parse(w + 12, strlen(w + 12), TALLY__QUIZ_PLAYERS_MAX, &v);
      o->min_players = (uint32_t)v;
    } else if (strncmp(w, "reward=", 7) == 0) {
      if (strlen(w + 7) >= sizeof o->reward || !w[7]) rc = TALLY_EUNKNOWN_REWARD;
      else snprintf(o->reward, sizeof o->reward, "%s", w + 7);
    } else {
      return true;
    }
    if (rc) {
      tally__reply(c->e, c->cmd, rc, 0, "%s: %s. %s", tally_strerror(rc), w, quiz_usage);
      return false;
    }
    o->given = true;
    if (!sp) {
      line[0] = 0;
      return true;
    }
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

/* Who may run a quiz: in a room its hosts (the chat network's rank);
 * privately, for a room named in the command, the host of the room's
 * event, or of what runs there (a network that shows every room line
 * has its hosts start quizzes privately, so the answers stay hidden). */
static bool host_ok(tally__cmd *c, const char *room, uint32_t ev) {
  if (c->roles & TALLY_ROLE_ADMIN) return true;
  if (c->cmd->channel[0] && (c->roles & TALLY_ROLE_HOST)) return true;
  if (!c->cmd->channel[0]) {
    const tally__state *st = &c->e->st;
    if (ev != TALLY__NONE && (st->events[ev].host == c->account || st->events[ev].host == c->identity)) return true;
    tally__quizzes *z = tally__quizzes_of(c->e);
    uint32_t q = tally__quiz_in(c->e, c->net, room), r = tally__quiz_round_in(c->e, c->net, room);
    if (q != TALLY__NONE && z->q[q].host == c->account) return true;
    if (r != TALLY__NONE && z->rounds[r].host == c->account) return true;
  }
  tally__reply_hint(c->e, c->cmd, TALLY_ENO_PERMISSION, TALLY_HINT_HOST_ROLE,
                    "%s: only the room's hosts run quizzes (privately: the host of the room's event, QUIZ START <room> ...)",
                    tally_strerror(TALLY_ENO_PERMISSION));
  return false;
}

/* The room a QUIZ form is for: where it was said, or privately the word
 * after the sub-command. *next: its first argument after that; *ev the
 * room's live event (needed unless `any`). False: answered. */
static bool quiz_room(tally__cmd *c, char *room, size_t n, int *next, uint32_t *ev, bool any) {
  tally__engine *e = c->e;
  *next = 2;
  if (c->cmd->channel[0]) {
    tally__text_clip(room, n, c->cmd->channel);
  } else if (c->t.count < 3 || tally__word_copy(&c->t, 2, room, n) != TALLY_OK) {
    tally__cmd_usage(c, quiz_usage);
    return false;
  } else {
    *next = 3;
  }
  /* In a room the rank decides before anything is looked up. */
  if (c->cmd->channel[0] && !host_ok(c, room, TALLY__NONE)) return false;
  *ev = tally__live_event_in(&e->st, c->net, room);
  if (*ev == TALLY__NONE && !any) {
    tally__reply(e, c->cmd, TALLY_ENOTFOUND, 0,
                 "No event is running %s%s: EVENT START first (a quiz's winners must have been present when it started).",
                 c->cmd->channel[0] ? "here" : "in ", c->cmd->channel[0] ? "" : room);
    return false;
  }
  return c->cmd->channel[0] || host_ok(c, room, *ev);
}

/* opts' reward: one of the sender's own, or <creator>/<name> that its
 * creator offered in room (REWARD OFFER); stored and not deleted. */
static bool reward_of(tally__cmd *c, const quiz_opts *o, const char *room, uint32_t *def) {
  *def = TALLY__NONE;
  if (!o->reward[0]) return true;
  const char *slash = strchr(o->reward, '/');
  uint32_t creator = c->account;
  const char *name = o->reward;
  if (slash) {
    creator = tally__identity_find(&c->e->st, c->net, o->reward, (size_t)(slash - o->reward));
    if (creator != TALLY__NONE) creator = tally__account_person(&c->e->st, creator);
    name = slash + 1;
  }
  uint32_t d = creator == TALLY__NONE ? TALLY__NONE : tally__reward_def_find(c->e, creator, name);
  const tally__rewards *r = tally__rewards_of(c->e);
  if (d != TALLY__NONE && creator != c->account && !tally__reward_offered(c->e, d, c->net, room)) {
    tally__reply(c->e, c->cmd, TALLY_EUNKNOWN_REWARD, 0,
                 "%s: reward=%s is not offered in %s (its creator says REWARD OFFER %s %s)",
                 tally_strerror(TALLY_EUNKNOWN_REWARD), o->reward, room, name, room);
    return false;
  }
  if (d == TALLY__NONE || !r->defs[d].committed || r->defs[d].deleted) {
    tally__reply(c->e, c->cmd, TALLY_EUNKNOWN_REWARD, 0,
                 "%s: reward=%s names none of your rewards (a quiz gives one of yours: REWARD ADD, REWARD LIST)",
                 tally_strerror(TALLY_EUNKNOWN_REWARD), o->reward);
    return false;
  }
  *def = d;
  return true;
}

static void quiz_start(tally__cmd *c) {
  tally__engine *e = c->e;
  char room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  int at;
  uint32_t ev;
  if (!quiz_room(c, room, sizeof room, &at, &ev, false)) return;
  if (c->t.count < at + 2) {
    tally__cmd_usage(c, quiz_usage);
    return;
  }
  uint64_t seconds;
  if (tally__uint_parse(c->t.word[at], c->t.len[at], TALLY__QUIZ_SECONDS_MAX, &seconds) ||
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
  spec.round = TALLY__NONE;
  tally__text_clip(spec.room, sizeof spec.room, room);
  char line[TALLY_TEXT_BYTES_MAX + 1];
  quiz_opts o = {.winners = 1, .min_players = TALLY__QUIZ_MIN_PLAYERS_DEFAULT};
  tally__text_clip(line, sizeof line, c->t.rest[at + 1]);
  if (!quiz_options(c, line, &o) || !quiz_text(c, line, &spec)) return;
  spec.winners_max = o.winners;
  spec.min_players = o.min_players;
  if (spec.winners_max == 0 || spec.min_players == 0) {
    tally__cmd_usage(c, quiz_usage);
    return;
  }
  uint32_t ri = tally__quiz_round_in(e, c->net, room);
  if (ri != TALLY__NONE) {
    const tally__quiz_round *r = &tally__quizzes_of(e)->rounds[ri];
    if (o.given) {
      tally__reply(e, c->cmd, TALLY_EBAD_SYNTAX, 0,
                   "%s: a question of a round takes no winners=, reward= or min-players= (the round's apply)",
                   tally_strerror(TALLY_EBAD_SYNTAX));
      return;
    }
    if (r->state == TALLY__ROUND_STARTING) {
      tally__reply(e, c->cmd, TALLY_EBUSY, 0, "%s: the round is being opened; ask again in a moment",
                   tally_strerror(TALLY_EBUSY));
      return;
    }
    if (r->state != TALLY__ROUND_OPEN || r->stopped || r->stopping || r->started >= r->questions_max) {
      tally__reply(e, c->cmd, TALLY_EEXISTS, 0, "This room's round has had its %u %s and is ending.", r->started,
                   r->started == 1 ? "question" : "questions");
      return;
    }
    spec.round = ri;
    spec.round_n = r->started + 1;
    spec.round_id = r->id;
    spec.winners_max = spec.min_players = 1; /* stored rows need them; the round decides */
    spec.reward_def = TALLY__NONE;
  } else if (!reward_of(c, &o, room, &spec.reward_def)) {
    return;
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
  if (spec.round != TALLY__NONE)
    note(op, "Question %u of %u asked for %llu s.", spec.round_n,
         tally__quizzes_of(e)->rounds[spec.round].questions_max, (unsigned long long)seconds);
  else
    note(op, "Quiz started for %llu s (%u %s, at least %u players).", (unsigned long long)seconds, spec.winners_max,
         spec.winners_max == 1 ? "winner" : "winners", spec.min_players);
  tally__cmd_fact_added(c, op);
}

static void quiz_round(tally__cmd *c) {
  tally__engine *e = c->e;
  char room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  int at;
  uint32_t ev;
  if (!quiz_room(c, room, sizeof room, &at, &ev, false)) return;
  uint64_t questions;
  if (c->t.count < at + 1 ||
      tally__uint_parse(c->t.word[at], c->t.len[at], TALLY__QUIZ_ROUND_QUESTIONS_MAX, &questions) || questions == 0) {
    tally__reply(e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: a round has 1 to %d questions. %s", tally_strerror(TALLY_EBAD_SYNTAX),
                 TALLY__QUIZ_ROUND_QUESTIONS_MAX, quiz_usage);
    return;
  }
  quiz_opts o = {.winners = 1, .min_players = TALLY__QUIZ_MIN_PLAYERS_DEFAULT};
  char line[TALLY_TEXT_BYTES_MAX + 1] = "";
  if (c->t.count > at + 1) tally__text_clip(line, sizeof line, c->t.rest[at + 1]);
  if (!quiz_options(c, line, &o)) return;
  if (trim(line)[0] || o.winners == 0 || o.min_players == 0) {
    tally__cmd_usage(c, quiz_usage);
    return;
  }
  tally__quiz_round spec;
  memset(&spec, 0, offsetof(tally__quiz_round, scores));
  spec.host = c->account;
  spec.net = c->net;
  spec.event_id = e->st.events[ev].id;
  spec.questions_max = (uint32_t)questions;
  spec.winners_max = o.winners;
  spec.min_players = o.min_players;
  tally__text_clip(spec.room, sizeof spec.room, room);
  if (!reward_of(c, &o, room, &spec.reward_def)) return;
  tally__op *op = tally__cmd_fact_slot(c);
  if (!op) return;
  int rc = tally__quiz_round_start(e, &spec, op);
  if (rc) {
    tally__cmd_op_unused(c);
    if (rc == TALLY_EEXISTS) tally__reply(e, c->cmd, rc, 0, "A quiz or a round is already running here; wait for its end.");
    else tally__cmd_refuse(c, rc);
    return;
  }
  note(op, "Round of %u %s opened: ask each with QUIZ START <seconds> <question> | <answer>; QUIZ STOP ends it early.",
       spec.questions_max, spec.questions_max == 1 ? "question" : "questions");
  tally__cmd_fact_added(c, op);
}

static void quiz_stop(tally__cmd *c) {
  tally__engine *e = c->e;
  char room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  int at;
  uint32_t ev;
  if (!quiz_room(c, room, sizeof room, &at, &ev, true)) return;
  if (c->t.count != at) {
    tally__cmd_usage(c, quiz_usage);
    return;
  }
  tally__op *op = tally__cmd_fact_slot(c);
  if (!op) return;
  int what = 0;
  int rc = tally__quiz_stop(e, c->net, room, op, &what);
  if (rc) {
    tally__cmd_op_unused(c);
    if (rc == TALLY_ENO_QUIZ) tally__reply(e, c->cmd, rc, 0, "%s: no quiz or round runs there", tally_strerror(rc));
    else if (rc == TALLY_EBUSY)
      tally__reply(e, c->cmd, rc, 0, "%s: it is being started or stopped; try again in a moment", tally_strerror(rc));
    else tally__cmd_refuse(c, rc);
    return;
  }
  if (what == 1) note(op, "Stopped: the quiz closes now with the answers so far.");
  else if (what == 2) note(op, "Round stopped: its scoreboard decides now.");
  else note(op, "Stopped: this question closes now with the answers so far, and the round ends after it.");
  tally__cmd_fact_added(c, op);
}

/* QUIZ SCORES [room]: the running round's whole scoreboard, for anyone
 * (the room sees only the top five after each question). */
static void quiz_scores(tally__cmd *c) {
  tally__engine *e = c->e;
  char room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  if (c->cmd->channel[0]) {
    tally__text_clip(room, sizeof room, c->cmd->channel);
  } else if (c->t.count < 3 || tally__word_copy(&c->t, 2, room, sizeof room) != TALLY_OK) {
    tally__cmd_usage(c, "QUIZ SCORES <room> (in the room itself: QUIZ SCORES)");
    return;
  }
  uint32_t r = tally__quiz_round_in(e, c->net, room);
  if (r == TALLY__NONE) {
    tally__reply(e, c->cmd, TALLY_ENO_QUIZ, 0, "%s: no round runs in %s", tally_strerror(TALLY_ENO_QUIZ), room);
    return;
  }
  const tally__quiz_round *qr = &tally__quizzes_of(e)->rounds[r];
  char board[TALLY_TEXT_BYTES_MAX - 64];
  tally__quiz_round_scores(e, r, c->account, board, sizeof board);
  tally__reply(e, c->cmd, TALLY_OK, 0, "Scores in %s after %u of %u questions: %s.", room, qr->played,
               qr->questions_max, board);
}

void tally__cmd_quiz(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "QUIZ", TALLY__NA);
  if (!tally__quizzes_of(c->e) || !tally__rewards_of(c->e)) {
    tally__cmd_refuse(c, TALLY_ESTARTING);
    return;
  }
  if (tally__word_is(&c->t, 1, "START")) quiz_start(c);
  else if (tally__word_is(&c->t, 1, "ROUND")) quiz_round(c);
  else if (tally__word_is(&c->t, 1, "STOP")) quiz_stop(c);
  else if (tally__word_is(&c->t, 1, "SCORES")) quiz_scores(c);
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
static const tally__command_row quiz_rows[] = {
    {"ANSWER", tally__cmd_answer, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE,
     "[room] <text>",
     "answer a quiz (privately, or in its room where command lines stay hidden)", NULL, 0},
    {"QUIZ", tally__cmd_quiz, TALLY__NA, TALLY_COMMAND_GROUP_HOSTS,
     "START <seconds> <question> | <answer>[|<answer>...] [winners=N] [reward=<name>] [min-players=3] "
     "| QUIZ ROUND <questions> [winners=N] [reward=<name>] [min-players=3] | QUIZ STOP|SCORES "
     "(privately: QUIZ START|ROUND|STOP <room> ...)",
     "a quiz or a round of them in this event's room (hosts; the command checks the room's rank); "
     "the first right answers, or a round's top scores, win your reward",
     /* No role rows: a private QUIZ START <room> is checked against that
      * room's event by the handler itself. */
     NULL, 0},
};
const tally__command_rows tally__quiz_commands = TALLY__ROWS(quiz_rows);
