/* test_quiz_round.c — quiz rounds, QUIZ STOP, a quiz started privately
 * naming its room, and the per-event reward cap, against the real
 * PostgreSQL (issue 14, sql/019). A round's right answers score
 * max(1, 10 - floor(9 t / T)); its winners are the top totals, ties by who
 * reached the total first; a restart rebuilds the same scoreboard and
 * pays once. `tally check` after each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define CH "#live"
#define HOST TALLY_ROLE_CHANOP
#define OPER TALLY_ROLE_OPER

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;

#define sql(...) th_sql_i64f(dsn, __VA_ARGS__)

static const char *players[] = {"p1", "p2", "p3", "p4"};
enum { PLAYERS = 4 };

static void wait_announced(const char *needle, int ms) {
  for (int waited = 0; waited < ms && !th_announced(needle); waited += 100) th_settle(eng, 100);
  if (!th_announced(needle)) fprintf(stderr, "# not announced: %s\n", needle);
  assert_true(th_announced(needle));
}

static int64_t grants_of(const char *account) {
  return sql("SELECT count(*) FROM reward_grants g JOIN accounts a ON a.id = g.account_id WHERE a.name = 'user:%s'",
             account);
}

static int64_t points_of(const char *account, int n) {
  return sql("SELECT p.points FROM quiz_points p JOIN quiz_round_questions x ON x.quiz_id = p.quiz_id"
             " JOIN accounts a ON a.id = p.account_id WHERE a.name = 'user:%s' AND x.n = %d",
             account, n);
}

/* host (a creator) runs an event in #live with a reward `prize`; the
 * players are present before anything starts. */
static void setup(const char *name) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.reward_min_account_age_s = 0;
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE host creator", OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "host", "REWARD ADD prize discount=1.00 for=1h", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "EVENT START 30 Quiz night", HOST, &r), TALLY_OK);
  for (int i = 0; i < PLAYERS; i++) {
    assert_int_equal(th_cmd(eng, players[i], "WALLET", 0, &r), TALLY_OK); /* known to tally */
    th_presence(eng, players[i], CH, 1);
  }
  th_settle(eng, 300);
}

static void test_round_scoreboard_and_winners(void **state) {
  (void)state;
  setup("qround");
  th_reply r;
  assert_int_equal(th_cmd_in(eng, "p1", CH, "QUIZ ROUND 2", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ ROUND 0", HOST, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ ROUND 2 nonsense", HOST, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ ROUND 2 winners=2 reward=prize min-players=2", HOST, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Round of 2 questions opened"));
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ ROUND 3", HOST, &r), TALLY_EEXISTS);
  wait_announced("QUIZ ROUND of 2 questions", 3000);
  /* A question of a round takes the round's options only. */
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Q? | A winners=3", HOST, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Capital of France? | Paris", HOST, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Question 1 of 2"));
  wait_announced("QUIZ 1/2 (5 s): Capital of France?", 3000);
  /* At once: 10 points each; a wrong answer 0. */
  assert_int_equal(th_cmd(eng, "p1", "ANSWER paris", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Right!"));
  assert_int_equal(th_cmd(eng, "p2", "ANSWER Paris", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p3", "ANSWER Lyon", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Too soon? | x", HOST, &r), TALLY_EEXISTS);
  wait_announced("Question 1 of 2 over: the answer was Paris. 3 answered, 2 right. Scores: p1 10, p2 10.", 10000);
  /* The whole board, for anyone: in the room, or privately naming it. */
  assert_int_equal(th_cmd(eng, "p3", "QUIZ SCORES " CH, 0, &r), TALLY_OK);
  assert_string_equal(r.text, "Scores in " CH " after 1 of 2 questions: 1. p1 10, 2. p2 10; you have not scored.");
  assert_int_equal(th_cmd(eng, "p4", "QUIZ SCORES " CH, 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "; you have not scored."));
  assert_int_equal(th_cmd(eng, "p2", "QUIZ SCORES " CH, 0, &r), TALLY_OK);
  assert_string_equal(r.text, "Scores in " CH " after 1 of 2 questions: 1. p1 10, 2. p2 10.");
  assert_int_equal(th_cmd_in(eng, "p2", CH, "QUIZ SCORES", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "1. p1 10, 2. p2 10"));
  assert_int_equal(th_cmd(eng, "p2", "QUIZ SCORES #elsewhere", 0, &r), TALLY_ENO_QUIZ);
  assert_int_equal(th_cmd(eng, "p2", "QUIZ SCORES", 0, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(points_of("p1", 1), 10);
  assert_int_equal(points_of("p3", 1), 0);
  assert_int_equal(sql("SELECT count(*) FROM reward_grants"), 0); /* a question of a round pays nothing */
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Two plus two? | 4 | four", HOST, &r), TALLY_OK);
  wait_announced("QUIZ 2/2 (5 s): Two plus two?", 3000);
  assert_int_equal(th_cmd(eng, "p2", "ANSWER four", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER 5", 0, &r), TALLY_OK);
  th_settle(eng, 2900); /* t in [2900, 3333) ms of 5000: 10 - floor(9 t / 5000) = 5 */
  assert_int_equal(th_cmd(eng, "p3", "ANSWER 4", 0, &r), TALLY_OK);
  wait_announced("Question 2 of 2 over: the answer was 4. 3 answered, 2 right. Scores: p2 20, p1 10, p3 5.", 10000);
  wait_announced("Round over after 2 questions. Final scores: p2 20, p1 10, p3 5. The winners, by points: p2, p1", 5000);
  assert_int_equal(points_of("p3", 2), 5);
  assert_in_range(sql("SELECT p.elapsed_ms FROM quiz_points p JOIN accounts a ON a.id = p.account_id"
                      " JOIN quiz_round_questions x ON x.quiz_id = p.quiz_id WHERE a.name = 'user:p3' AND x.n = 2"),
                  2900, 3333);
  assert_int_equal(grants_of("p2"), 1);
  assert_int_equal(grants_of("p1"), 1);
  assert_int_equal(grants_of("p3"), 0);
  assert_int_equal(sql("SELECT count(*) FROM quiz_round_ends WHERE questions = 2 AND players = 3 AND winners = 2"), 1);
  /* Over: the room is free for the next. */
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 After? | yes", HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): After?", 3000);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* Ties go to who reached the total first; a restart in a question and
 * between questions rebuilds the scoreboard; the winner is paid once. */
static void test_round_across_restarts(void **state) {
  (void)state;
  setup("qroundrestart");
  th_reply r;
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ ROUND 2 reward=prize min-players=2", HOST, &r), TALLY_OK);
  wait_announced("QUIZ ROUND of 2 questions", 3000);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 6 Largest ocean? | Pacific", HOST, &r), TALLY_OK);
  wait_announced("QUIZ 1/2 (6 s): Largest ocean?", 3000);
  assert_int_equal(th_cmd(eng, "p3", "ANSWER pacific", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p4", "ANSWER Pacific", 0, &r), TALLY_OK);
  th_engine_free(eng);
  eng = th_engine(&cfg);
  wait_announced("QUIZ resumed (", 3000);
  assert_int_equal(th_cmd(eng, "p3", "ANSWER Pacific", 0, &r), TALLY_EANSWERED);
  wait_announced("Question 1 of 2 over: the answer was Pacific. 2 answered, 2 right. Scores: p3 10, p4 10.", 10000);
  th_engine_free(eng);
  eng = th_engine(&cfg); /* between questions: the round is open, question 2 is next */
  th_settle(eng, 300);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Smallest prime? | 2 | two", HOST, &r), TALLY_OK);
  wait_announced("QUIZ 2/2 (5 s): Smallest prime?", 3000);
  /* Both right at once: 20 each; p4 reached 20 first. */
  assert_int_equal(th_cmd(eng, "p4", "ANSWER two", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p3", "ANSWER 2", 0, &r), TALLY_OK);
  wait_announced("Round over after 2 questions. Final scores: p4 20, p3 20. The winner: p4", 10000);
  assert_int_equal(grants_of("p4"), 1);
  assert_int_equal(grants_of("p3"), 0);
  th_engine_free(eng);
  eng = th_engine(&cfg);
  th_settle(eng, 500);
  assert_int_equal(sql("SELECT count(*) FROM reward_grants"), 1);
  assert_int_equal(sql("SELECT count(*) FROM quiz_round_ends"), 1);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

static void test_quiz_stop(void **state) {
  (void)state;
  setup("qstop");
  th_reply r;
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ STOP", HOST, &r), TALLY_ENO_QUIZ);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 60 Longest river? | Nile reward=prize min-players=1", HOST, &r),
                   TALLY_OK);
  wait_announced("QUIZ (60 s): Longest river?", 3000);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER nile", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "p1", CH, "QUIZ STOP", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ STOP", HOST, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Stopped: the quiz closes now"));
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ STOP", HOST, &r), TALLY_ENO_QUIZ); /* stopped already */
  assert_int_equal(th_cmd(eng, "p2", "ANSWER Nile", 0, &r), TALLY_ENO_QUIZ);
  wait_announced("Quiz over: the answer was Nile. 1 answered; the winner: p1", 3000);
  assert_int_equal(grants_of("p1"), 1);
  assert_int_equal(sql("SELECT count(*) FROM quiz_stops"), 1);

  /* A stop survives a restart: the quiz closes, it is not resumed. */
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 60 Highest mountain? | Everest min-players=1", HOST, &r),
                   TALLY_OK);
  wait_announced("QUIZ (60 s): Highest mountain?", 3000);
  assert_int_equal(th_cmd(eng, "p2", "ANSWER everest", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ STOP", HOST, &r), TALLY_OK);
  /* The first engine may close the stopped quiz before it stops;
   * th_engine_free drains after stopping (tally.h), so its "Quiz over" is
   * not lost, and the restarted engine then (rightly) does not say it again. */
  th_engine_free(eng);
  eng = th_engine(&cfg);
  wait_announced("Quiz over: the answer was Everest. 1 answered; the winner: p2", 5000);
  assert_false(th_announced("QUIZ resumed (60 s left): Highest mountain?"));
  assert_false(th_announced("s left): Highest mountain?"));

  /* In a round: the question closes now and the round ends after it. */
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ ROUND 3 reward=prize min-players=1", HOST, &r), TALLY_OK);
  wait_announced("QUIZ ROUND of 3 questions", 3000);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 60 Blue planet? | Earth", HOST, &r), TALLY_OK);
  wait_announced("QUIZ 1/3 (60 s): Blue planet?", 3000);
  assert_int_equal(th_cmd(eng, "p3", "ANSWER earth", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ STOP", HOST, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "the round ends after it"));
  wait_announced("Question 1 of 3 over: the answer was Earth. 1 answered, 1 right. Scores: p3 10.", 3000);
  wait_announced("Round over after 1 question. Final scores: p3 10. The winner: p3", 3000);
  assert_int_equal(grants_of("p3"), 1);
  /* A round stopped between questions ends at once. */
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ ROUND 2 min-players=1", HOST, &r), TALLY_OK);
  wait_announced("QUIZ ROUND of 2 questions", 3000);
  th_settle(eng, 200);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ STOP", HOST, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Round stopped"));
  wait_announced("Round over after 0 questions: 0 played, fewer than the 1 players it needs: nobody wins.", 3000);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* Where the room shows every line (a Matrix AS, an XMPP component), the
 * host of the room's event starts the quiz privately, naming the room. */
static void test_private_start_naming_the_room(void **state) {
  (void)state;
  setup("qprivate");
  th_reply r;
  assert_int_equal(th_cmd(eng, "p1", "QUIZ START " CH " 5 Q? | A", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd(eng, "host", "QUIZ START #nowhere 5 Q? | A", 0, &r), TALLY_ENOTFOUND);
  assert_int_equal(th_cmd(eng, "host", "QUIZ START", 0, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd(eng, "host", "QUIZ START " CH " 5 Opposite of hot? | cold reward=prize min-players=2", 0, &r),
                   TALLY_OK);
  wait_announced("QUIZ (5 s): Opposite of hot?", 3000);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER Cold", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p2", "ANSWER " CH " cold", 0, &r), TALLY_OK);
  wait_announced("Quiz over: the answer was cold. 2 answered; the winner: p1", 10000);
  assert_int_equal(grants_of("p1"), 1);
  /* A round and its stop, privately too. */
  assert_int_equal(th_cmd(eng, "host", "QUIZ ROUND " CH " 2 min-players=1", 0, &r), TALLY_OK);
  wait_announced("QUIZ ROUND of 2 questions", 3000);
  assert_int_equal(th_cmd(eng, "p2", "QUIZ STOP " CH, 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd(eng, "host", "QUIZ STOP " CH, 0, &r), TALLY_OK);
  wait_announced("Round over after 0 questions", 3000);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* reward_per_event_max: a winner who has that many rewards in the event
 * is passed over for the next right answer; the count is rebuilt from
 * committed grants after a restart. */
static void test_reward_cap_per_event(void **state) {
  (void)state;
  setup("qcap");
  th_engine_free(eng);
  cfg.reward_per_event_max = 1;
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 One? | 1 reward=prize min-players=1", HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): One?", 3000);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER 1", 0, &r), TALLY_OK);
  wait_announced("Quiz over: the answer was 1. 1 answered; the winner: p1", 10000);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Two? | 2 reward=prize min-players=1", HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): Two?", 3000);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER 2", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p2", "ANSWER 2", 0, &r), TALLY_OK);
  wait_announced("Quiz over: the answer was 2. 2 answered; the winner: p2", 10000);
  th_engine_free(eng);
  eng = th_engine(&cfg);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Three? | 3 reward=prize min-players=1", HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): Three?", 3000);
  assert_int_equal(th_cmd(eng, "p2", "ANSWER 3", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER 3", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p3", "ANSWER 3", 0, &r), TALLY_OK);
  wait_announced("Quiz over: the answer was 3. 3 answered; the winner: p3", 10000);
  assert_int_equal(grants_of("p1"), 1);
  assert_int_equal(grants_of("p2"), 1);
  assert_int_equal(grants_of("p3"), 1);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* The second reply of a BUY that used a reward is structured
 * (TALLY_MSG_REWARD_USED): its name, the receipt and the discount. */
typedef struct used_reply {
  int seen;
  th_reply r;
} used_reply;

static void on_reply(void *ud, uint64_t req_id, const th_reply *r) {
  (void)req_id;
  used_reply *u = ud;
  if (r->msg == TALLY_MSG_REWARD_USED) {
    u->seen++;
    u->r = *r;
  }
}

static void test_reward_used_reply_is_structured(void **state) {
  (void)state;
  setup("qused");
  th_reply r;
  assert_int_equal(th_cmd(eng, "host", "ITEM ADD tee 10 Tee", 0, &r), TALLY_OK);
  assert_int_equal(th_buyer(eng, "p1", "50", "tee"), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Five? | 5 | five reward=prize min-players=1", HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): Five?", 3000);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER five", 0, &r), TALLY_OK);
  wait_announced("Quiz over: the answer was 5. 1 answered; the winner: p1", 10000);
  assert_true(th_send(eng, "p1", "BUY tee", NULL) > 0);
  used_reply u = {0};
  assert_int_equal(th_collect(eng, 2, 10000, on_reply, &u), 2);
  assert_int_equal(u.seen, 1);
  assert_non_null(strstr(u.r.text, "Reward prize used on receipt "));
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  size_t n;
  assert_int_equal(tally_effect_args_parse(u.r.text, u.r.args, a, TALLY_EFFECT_ARGS_MAX, &n), TALLY_OK);
  assert_int_equal(n, 3);
  assert_int_equal(a[0].kind, TALLY_ARG_TEXT);
  assert_int_equal(a[1].kind, TALLY_ARG_RECEIPT);
  assert_int_equal(a[2].kind, TALLY_ARG_AMOUNT);
  assert_int_equal(a[2].value, 100); /* 1.00 off */
  assert_int_equal(sql("SELECT count(*) FROM reward_uses WHERE kind = 1 AND transfer_id = %lld", (long long)a[1].value), 1);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* A host gives another creator's reward only where that creator offered
 * it (REWARD OFFER): the discount stays the creator's money. */
static void test_host_gives_an_offered_reward(void **state) {
  (void)state;
  setup("qoffer");
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE alice creator", OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "REWARD ADD a2 discount=2.00 for=1h", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Six? | 6 reward=alice/a2 min-players=1", HOST, &r),
                   TALLY_EUNKNOWN_REWARD);
  assert_non_null(strstr(r.text, "not offered in " CH));
  assert_int_equal(th_cmd(eng, "p1", "REWARD OFFER a2 " CH, 0, &r), TALLY_ENO_PERMISSION); /* creators only */
  assert_int_equal(th_cmd(eng, "alice", "REWARD OFFER nope " CH, 0, &r), TALLY_EUNKNOWN_REWARD);
  assert_int_equal(th_cmd(eng, "alice", "REWARD OFFER a2", 0, &r), TALLY_EBAD_SYNTAX); /* privately: name the room */
  assert_int_equal(th_cmd(eng, "alice", "REWARD OFFER a2 " CH, 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "reward=alice/a2"));
  assert_int_equal(th_cmd(eng, "alice", "REWARD OFFER a2 " CH, 0, &r), TALLY_EEXISTS);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Six? | 6 | six reward=alice/a2 min-players=1", HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): Six? - answer privately: ANSWER <text>. The first 1 right answer win; each wins the reward a2", 3000);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER six", 0, &r), TALLY_OK);
  wait_announced("Quiz over: the answer was 6. 1 answered; the winner: p1", 10000);
  assert_int_equal(sql("SELECT count(*) FROM reward_grants g JOIN reward_defs d ON d.id = g.reward_id"
                       " JOIN accounts c ON c.id = d.creator_id WHERE d.name = 'a2' AND c.name = 'user:alice'"), 1);
  th_engine_free(eng);
  eng = th_engine(&cfg); /* the offer is stored */
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ ROUND 1 reward=alice/a2 min-players=1", HOST, &r), TALLY_OK);
  wait_announced("QUIZ ROUND of 1 question", 3000);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ STOP", HOST, &r), TALLY_OK);
  wait_announced("Round over after 0 questions", 5000);

  /* Withdrawn (sql/023): no new quiz may give it, across a restart; offered
   * again, it may. */
  assert_int_equal(th_cmd(eng, "alice", "REWARD OFFER a2 #elsewhere off", 0, &r), TALLY_ENOTFOUND);
  assert_int_equal(th_cmd(eng, "alice", "REWARD OFFER a2 " CH " off", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "withdrawn"));
  assert_int_equal(th_cmd(eng, "alice", "REWARD OFFER a2 " CH " off", 0, &r), TALLY_ENOTFOUND);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Seven? | 7 reward=alice/a2 min-players=1", HOST, &r),
                   TALLY_EUNKNOWN_REWARD);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
  eng = th_engine(&cfg);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Seven? | 7 reward=alice/a2 min-players=1", HOST, &r),
                   TALLY_EUNKNOWN_REWARD);
  assert_int_equal(th_cmd_in(eng, "alice", CH, "REWARD OFFER a2", 0, &r), TALLY_OK); /* in the room itself */
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Eight? | 8 reward=alice/a2 min-players=1", HOST, &r),
                   TALLY_OK);
  th_engine_free(eng);
  eng = th_engine(&cfg); /* offered again, and stored so */
  assert_int_equal(th_cmd_in(eng, "alice", CH, "REWARD OFFER a2", 0, &r), TALLY_EEXISTS);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
  /* R9 sees a quiz that gave it after its withdrawal. */
  assert_int_equal(sql("WITH w AS (INSERT INTO reward_offer_changes (reward_id, network_id, room, offered, created_ms,"
                       " batch_id) SELECT reward_id, network_id, room, false, 0, (SELECT max(batch_id) FROM quizzes) - 1"
                       " FROM reward_offers RETURNING 1) SELECT count(*) FROM w"),
                   1);
  assert_int_not_equal(th_tally_check(dsn), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_scoreboard_and_winners),
      cmocka_unit_test(test_round_across_restarts),
      cmocka_unit_test(test_quiz_stop),
      cmocka_unit_test(test_private_start_naming_the_room),
      cmocka_unit_test(test_reward_cap_per_event),
      cmocka_unit_test(test_reward_used_reply_is_structured),
      cmocka_unit_test(test_host_gives_an_offered_reward),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
