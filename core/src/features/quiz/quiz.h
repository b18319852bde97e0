/* quiz.h — quizzes a host runs in an event's room; the first right answers
 * by arrival earn one of the host's rewards (features/rewards).
 *
 * Contract (README "Quizzes for hosts"):
 *   - QUIZ START <seconds> <question> | <answer>[|<answer>...] [winners=N]
 *     [reward=<name>] [min-players=N] in a room with a live event (tally
 *     knows who is present from the event's attendance). The start is a
 *     ledger fact; the room sees the question once it is stored.
 *   - Answers are private: ANSWER <text> in a private message, or a line
 *     the host intercepts in the room (!answer; the room never sees it).
 *     One answer per account per question; each is stored with its arrival
 *     number (the engine's order of decision) and answered once stored.
 *     quiz_match.h says when one is right.
 *   - The room sees "N have answered" at most every TALLY__QUIZ_SAY_MS, and
 *     at the deadline the answer and the winners: the first `winners` right
 *     answers by arrival among eligible accounts. Not eligible: the host,
 *     an account tally first saw less than reward_min_account_age before
 *     the quiz started, one not present in the room's event before the quiz
 *     started. Fewer than min-players distinct accounts answering: nobody
 *     wins, nothing is paid.
 *   - The deadline is a monotonic timer; the stored wall-clock deadline
 *     seeds it after a restart, and the stored answers make the same
 *     winners. Grants are keyed by (quiz, account), so a payout that a
 *     restart interrupted pays each winner once.
 *   - A round (QUIZ ROUND <questions>, sql/019) is that many questions in
 *     one room, asked one after another with QUIZ START. A right answer
 *     scores max(1, 10 - floor(9 t / T)) points (t: ms since the question
 *     was asked, T: its duration), a wrong one 0; a question of a round
 *     has no winners of its own. After the last question (or QUIZ STOP)
 *     the round's winners are the `winners` highest totals among eligible
 *     accounts (eligibility against the round's start), ties broken by
 *     who reached the total first (the arrival of their last scoring
 *     answer); fewer than min-players distinct accounts: nobody wins.
 *     Points are stored with each answer, so a restart rebuilds the same
 *     scoreboard and the grants, keyed by (round, account), pay once.
 *   - QUIZ STOP closes the running question now (the answers so far
 *     count) and ends its round after it; with no question running it ends
 *     the open round. The stop is stored: a restart does not reopen it.
 * Engine thread only; fixed tables (limits below). */
#ifndef TALLY_QUIZ_H
#define TALLY_QUIZ_H

#include "config.h"
#include "engine_internal.h"
#include "quiz_match.h"

struct loader;

enum {
  TALLY__FDATA_QUIZ = 1,          /* index in e->feature_data */
  TALLY__FACT_QUIZ = 2,           /* op->kind of this feature's FACT ops */
  TALLY__QUIZZES_MAX = 16,        /* quizzes at once, all rooms */
  TALLY__QUIZ_ANSWERS_MAX = 512,  /* answers one quiz takes (then: busy) */
  TALLY__QUIZ_EXPECTED_MAX = 8,   /* accepted answers of one question */
  TALLY__QUIZ_WINNERS_MAX = 50,
  TALLY__QUIZ_SECONDS_MIN = 5,
  TALLY__QUIZ_SECONDS_MAX = 3600,
  TALLY__QUIZ_MIN_PLAYERS_DEFAULT = 3,
  TALLY__QUIZ_PLAYERS_MAX = TALLY__QUIZ_ANSWERS_MAX,
  TALLY__QUIZ_SAY_MS = 5000,      /* "N have answered" at most this often */
  TALLY__QUIZ_QUESTION_BYTES_MAX = 200,
  TALLY__QUIZ_ANSWER_BYTES_MAX = 100,
  TALLY__QUIZ_START_JSON_BYTES = TALLY__FACT_BYTES_MAX,
  TALLY__FACT_QUIZ_ROUND = 20,    /* op->kind of round facts: start, stop, end (sql/019) */
  TALLY__QUIZ_ROUND_QUESTIONS_MAX = 50,
  TALLY__QUIZ_POINTS_MAX = 10,    /* points of a right answer at once; 1 at the deadline */
  TALLY__QUIZ_POINTS_MIN = 1,
  TALLY__QUIZ_SCOREBOARD_SHOWN = 5, /* totals said after each question of a round */
};

typedef enum tally__quiz_state {
  TALLY__QUIZ_FREE = 0,
  TALLY__QUIZ_STARTING, /* its start fact is in flight */
  TALLY__QUIZ_RUNNING,
  TALLY__QUIZ_CLOSING,  /* past the deadline: waits for answers in flight */
  TALLY__QUIZ_PAYING,   /* winners chosen: their grants are being stored */
  TALLY__QUIZ_ENDING,   /* its end fact is in flight */
} tally__quiz_state;

typedef struct tally__quiz_given {
  uint32_t account, seq;
  bool correct, committed, used;
  uint8_t points;       /* in a round: what it scored (0: wrong) */
  char json[160];
} tally__quiz_given;

typedef struct tally__quiz {
  uint64_t id;
  uint8_t state;
  uint32_t host;
  uint16_t net;
  uint64_t event_id;    /* the room's event when it started: who was present */
  char room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  char question[TALLY__QUIZ_QUESTION_BYTES_MAX + 1];
  char expected[TALLY__QUIZ_EXPECTED_MAX][TALLY__QUIZ_ANSWER_BYTES_MAX + 1];
  uint32_t expected_count, winners_max, min_players;
  uint32_t reward_def;  /* features/rewards slot, or TALLY__NONE */
  int64_t started_ms, deadline_ms;
  uint64_t duration_ms, deadline_mono, said_mono;
  uint32_t said_count;
  bool resumed;         /* restored running: the room is told again at the first tick */
  bool stopping;        /* QUIZ STOP in flight: no more answers */
  uint32_t round;       /* slot in tally__quizzes.rounds, or TALLY__NONE */
  uint32_t round_n;     /* its number in the round (1..) */
  uint64_t round_id;
  char stop_json[128];  /* its QUIZ STOP fact (in flight while `stopping`) */
  tally__quiz_given answers[TALLY__QUIZ_ANSWERS_MAX];
  uint32_t answer_count, inflight, seq_next;
  uint32_t winner[TALLY__QUIZ_WINNERS_MAX], grant[TALLY__QUIZ_WINNERS_MAX];
  uint32_t winner_count, answerers;
  char json[TALLY__QUIZ_START_JSON_BYTES]; /* the start fact, then the end fact */
} tally__quiz;

typedef enum tally__round_state {
  TALLY__ROUND_FREE = 0,
  TALLY__ROUND_STARTING, /* its start fact is in flight */
  TALLY__ROUND_OPEN,     /* questions are asked (one at a time) */
  TALLY__ROUND_PAYING,   /* over: winners chosen, their grants being stored */
  TALLY__ROUND_ENDING,   /* its end fact is in flight */
} tally__round_state;

typedef struct tally__quiz_score {
  uint32_t account, points;
  uint64_t reached; /* (question n << 32) | seq of the last scoring answer: who got there first */
} tally__quiz_score;

typedef struct tally__quiz_round {
  uint64_t id;
  uint8_t state;
  uint32_t host;
  uint16_t net;
  uint64_t event_id;
  char room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  uint32_t questions_max, started, played, winners_max, min_players;
  uint32_t reward_def;
  int64_t started_ms;
  bool stopped, stopping, chosen;
  uint32_t quiz;        /* slot of its question being asked, or TALLY__NONE */
  tally__quiz_score scores[TALLY__QUIZ_PLAYERS_MAX];
  uint32_t score_count;
  uint32_t winner[TALLY__QUIZ_WINNERS_MAX], grant[TALLY__QUIZ_WINNERS_MAX];
  uint32_t winner_count;
  char json[TALLY__QUIZ_START_JSON_BYTES];
  char stop_json[128];
} tally__quiz_round;

typedef struct tally__quizzes {
  tally__quiz q[TALLY__QUIZZES_MAX];
  tally__quiz_round rounds[TALLY__QUIZZES_MAX]; /* one per room at most */
} tally__quizzes;

tally__quizzes *tally__quizzes_of(tally__engine *e);

/* Hook entries (runtime/runtime.c). */
int tally__quiz_restore(struct loader *l, int64_t now_ms);
void tally__quiz_tick(tally__engine *e, uint64_t now_mono);
void tally__quiz_record_settled(tally__engine *e, const tally__op *op, bool ok);
void tally__quiz_destroy(tally__engine *e);

/* A new quiz from spec (id, state, timers, answers are set here) with its
 * start fact in op (a FACT op the caller took). TALLY_EEXISTS: one runs in
 * that room; TALLY_ETOO_MANY: the table is full. */
int tally__quiz_start(tally__engine *e, const tally__quiz *spec, uint64_t now_mono, tally__op *op);
/* The running quiz of (net, room), or TALLY__NONE. */
uint32_t tally__quiz_in(tally__engine *e, uint16_t net, const char *room);
/* The only running quiz of network net, or TALLY__NONE (none, or several). */
uint32_t tally__quiz_only(tally__engine *e, uint16_t net, uint32_t *running);
/* account answers quiz q with text: its answer fact in op (FACT op the
 * caller took), *correct whether it is right. TALLY_ENO_QUIZ (closed),
 * TALLY_EANSWERED, TALLY_EBUSY (answers full), TALLY_ESELF (the host). */
int tally__quiz_answer(tally__engine *e, uint32_t q, uint32_t account, const char *text, uint64_t now_mono,
                       tally__op *op, bool *correct, uint32_t *seq);
/* The points of a right answer t ms into a question of T ms. */
uint32_t tally__quiz_points(uint64_t t_ms, uint64_t duration_ms);

/* Rounds. round_in: the open (or starting) round of (net, room), or
 * TALLY__NONE. round_start: a new round from spec with its start fact in
 * op (TALLY_EEXISTS: one is open in that room, or a quiz runs there). */
uint32_t tally__quiz_round_in(tally__engine *e, uint16_t net, const char *room);
/* Hook (ROOM MOVE): quizzes and rounds of (net, from) made before before_id run in `to`. */
void tally__quiz_room_moved(tally__engine *e, uint16_t net, const char *from, const char *to, uint64_t before_id);
int tally__quiz_round_start(tally__engine *e, const tally__quiz_round *spec, tally__op *op);
/* QUIZ SCORES: round r's whole scoreboard, best first ("1. p2 20, 2. p1
 * 10, ..."), as much as fits in n bytes, then how many more, and the
 * asker's own place when it was not shown. */
void tally__quiz_round_scores(tally__engine *e, uint32_t r, uint32_t asker, char *out, size_t n);
/* QUIZ STOP in (net, room): its fact in op. TALLY_ENO_QUIZ: nothing runs
 * there; TALLY_EBUSY: a start or stop is in flight. *what says what
 * stops (1 a question, 2 a round, 3 both). */
int tally__quiz_stop(tally__engine *e, uint16_t net, const char *room, tally__op *op, int *what);

/* Its config keys (quiz winners), registered by runtime.c. */
extern const tally__config_keys tally__quiz_config_keys;

#endif
