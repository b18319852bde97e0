/* test_quiz.c — quizzes against the real PostgreSQL (issue 14): the first
 * N right answers by arrival win, fewer than min-players pays nothing,
 * accounts too new or not present when it started cannot win, and an
 * engine restart in the middle of a quiz resumes it (same deadline, the
 * stored answers, each winner paid once). `tally check` after each. */
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

/* host (a creator) runs an event in #live with a reward `prize`; the
 * players are present before any quiz starts. */
static void setup(const char *name, uint32_t min_age_s) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.reward_min_account_age_s = min_age_s;
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

static void test_first_right_answers_by_arrival_win(void **state) {
  (void)state;
  setup("quizwin", 0);
  th_reply r;
  /* Only a host starts one, only with an own reward, only in an event's room. */
  assert_int_equal(th_cmd_in(eng, "p1", CH, "QUIZ START 5 Q? | A", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Q? | A reward=nope", HOST, &r), TALLY_EUNKNOWN_REWARD);
  assert_int_equal(th_cmd_in(eng, "host", "#empty", "QUIZ START 5 Q? | A", HOST, &r), TALLY_ENOTFOUND);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER x", 0, &r), TALLY_ENO_QUIZ);
  assert_int_equal(th_cmd_in(eng, "host", CH,
                             "QUIZ START 5 Which river flows through Paris? | Seine | la Seine winners=2 reward=prize min-players=3",
                             HOST, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Again? | no", HOST, &r), TALLY_EEXISTS);
  wait_announced("QUIZ (5 s): Which river flows through Paris?", 3000);
  /* Arrival: p2 wrong, p3 right, p1 right (in the room, intercepted), p4 right. */
  assert_int_equal(th_cmd(eng, "p2", "ANSWER Loire", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Not right"));
  assert_int_equal(th_cmd(eng, "p3", "ANSWER  LA SEINE ", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Right!"));
  assert_int_equal(th_cmd_in(eng, "p1", CH, "ANSWER seine", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Right!"));
  assert_int_equal(th_cmd(eng, "p4", "ANSWER Seine", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p4", "ANSWER Seine", 0, &r), TALLY_EANSWERED);
  assert_int_equal(th_cmd(eng, "host", "ANSWER Seine", 0, &r), TALLY_ESELF);
  wait_announced("answered so far.", 6000); /* the room sees a count (how many depends on batching), never an answer */
  wait_announced("Quiz over: the answer was Seine. 4 answered; the winners, by arrival: p3, p1", 10000);
  assert_int_equal(grants_of("p3"), 1);
  assert_int_equal(grants_of("p1"), 1);
  assert_int_equal(grants_of("p4"), 0);
  assert_int_equal(grants_of("p2"), 0);
  assert_int_equal(sql("SELECT count(*) FROM quiz_answers"), 4);
  assert_int_equal(sql("SELECT count(*) FROM quiz_ends WHERE answerers = 4 AND winners = 2"), 1);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER late", 0, &r), TALLY_ENO_QUIZ);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

static void test_too_few_players_pays_nothing(void **state) {
  (void)state;
  setup("quizfew", 0);
  th_reply r;
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 2+2? | 4 | four winners=3 reward=prize", HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): 2+2?", 3000);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER 4", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p2", "ANSWER Four", 0, &r), TALLY_OK);
  wait_announced("2 answered, fewer than the 3 players it needs: nobody wins", 10000);
  assert_int_equal(sql("SELECT count(*) FROM reward_grants"), 0);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* Accounts tally first saw a moment ago, or that were not in the room
 * when the quiz started, answer but cannot win. */
static void test_new_or_absent_accounts_cannot_win(void **state) {
  (void)state;
  setup("quizage", 3600);
  th_reply r;
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 2+3? | 5 reward=prize min-players=2", HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): 2+3?", 3000);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER 5", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p2", "ANSWER 5", 0, &r), TALLY_OK);
  wait_announced("Quiz over: the answer was 5. 2 answered; no winner.", 10000);
  assert_int_equal(sql("SELECT count(*) FROM reward_grants"), 0);
  th_engine_free(eng);

  /* Old enough, but "late" joined after the start. */
  cfg.reward_min_account_age_s = 0;
  eng = th_engine(&cfg);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 3+3? | 6 reward=prize min-players=2", HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): 3+3?", 3000);
  assert_int_equal(th_cmd(eng, "late", "WALLET", 0, &r), TALLY_OK);
  th_presence(eng, "late", CH, 1);
  assert_int_equal(th_cmd(eng, "late", "ANSWER 6", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p3", "ANSWER 6", 0, &r), TALLY_OK);
  wait_announced("Quiz over: the answer was 6. 2 answered; the winner: p3", 10000);
  assert_int_equal(grants_of("late"), 0);
  assert_int_equal(grants_of("p3"), 1);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

static void test_restart_in_the_middle_of_a_quiz(void **state) {
  (void)state;
  setup("quizrestart", 0);
  th_reply r;
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 8 Capital of Japan? | Tokyo winners=2 reward=prize min-players=3",
                             HOST, &r), TALLY_OK);
  wait_announced("QUIZ (8 s): Capital of Japan?", 3000);
  assert_int_equal(th_cmd(eng, "p4", "ANSWER Kyoto", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "p2", "ANSWER tokyo", 0, &r), TALLY_OK);
  th_engine_free(eng);
  eng = th_engine(&cfg);
  wait_announced("QUIZ resumed (", 3000);
  /* The stored answers count: p2 cannot answer again, and arrival goes on. */
  assert_int_equal(th_cmd(eng, "p2", "ANSWER Tokyo", 0, &r), TALLY_EANSWERED);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER Tokio", 0, &r), TALLY_OK); /* 5 code points: no edit allowed */
  assert_non_null(strstr(r.text, "Not right"));
  assert_int_equal(th_cmd(eng, "p3", "ANSWER TOKYO", 0, &r), TALLY_OK);
  assert_int_equal(sql("SELECT seq FROM quiz_answers qa JOIN accounts a ON a.id = qa.account_id WHERE a.name = 'user:p3'"),
                   4);
  wait_announced("Quiz over: the answer was Tokyo. 4 answered; the winners, by arrival: p2, p3", 12000);
  assert_int_equal(grants_of("p2"), 1);
  assert_int_equal(grants_of("p3"), 1);
  th_engine_free(eng);
  /* Over: a second restart neither reopens nor pays it again. */
  eng = th_engine(&cfg);
  th_settle(eng, 500);
  assert_int_equal(th_cmd(eng, "p4", "ANSWER Tokyo", 0, &r), TALLY_ENO_QUIZ);
  assert_int_equal(sql("SELECT count(*) FROM reward_grants"), 2);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* The deadline passes while the engine is down: it closes at the next
 * start, once, with the answers it had. */
static void test_deadline_passes_while_down(void **state) {
  (void)state;
  setup("quizdown", 0);
  th_reply r;
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Red planet? | Mars reward=prize min-players=1", HOST, &r),
                   TALLY_OK);
  wait_announced("QUIZ (5 s): Red planet?", 3000);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER mars", 0, &r), TALLY_OK);
  th_engine_free(eng);
  sleep(6);
  eng = th_engine(&cfg);
  wait_announced("Quiz over: the answer was Mars. 1 answered; the winner: p1", 5000);
  assert_int_equal(grants_of("p1"), 1);
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* The code after marker in text (LINK answers "Your link code: <8 characters>"). */
static void code_after(const char *text, const char *marker, size_t len, char *out) {
  const char *p = strstr(text, marker);
  if (!p) fprintf(stderr, "# no \"%s\" in: %s\n", marker, text);
  assert_non_null(p);
  memcpy(out, p + strlen(marker), len);
  out[len] = 0;
}

/* xmpp bob@example.org joins irc p1's wallet (LINK, sql/013). */
static void link_bob_to_p1(void) {
  th_reply r;
  char code[16], confirm[16], line[64], told[TALLY_TEXT_BYTES_MAX + 1];
  assert_int_equal(th_cmd_net(eng, "irc", "p1", "", "LINK", NULL, 0, &r), TALLY_OK);
  code_after(r.text, "Your link code: ", 8, code);
  snprintf(line, sizeof line, "LINK %s", code);
  assert_int_equal(th_cmd_net(eng, "xmpp", "bob@example.org", "", line, NULL, 0, &r), TALLY_OK);
  assert_true(th_told("irc", "p1", "asks to join your wallet", told, sizeof told));
  code_after(told, "LINK CONFIRM ", 6, confirm);
  snprintf(line, sizeof line, "LINK CONFIRM %s", confirm);
  int rc = th_cmd_net(eng, "irc", "p1", "", line, NULL, 0, &r);
  if (rc == TALLY_EBUSY) { /* bob's identity row still in flight */
    th_settle(eng, 300);
    rc = th_cmd_net(eng, "irc", "p1", "", line, NULL, 0, &r);
  }
  assert_int_equal(rc, TALLY_OK);
  th_settle(eng, 200);
  assert_true(th_told("xmpp", "bob@example.org", "Linked: you now use the wallet of irc:p1", NULL, 0));
}

/* With LINK, a quiz's reward goes to the person's wallet and a BUY on the
 * other network uses it; the person's age is its oldest identity's (an
 * old xmpp identity linked into a new irc wallet makes it old enough). */
static void test_linked_identities_are_one_player(void **state) {
  (void)state;
  setup("quizlinked", 3600);
  th_reply r;
  link_bob_to_p1();
  /* bob's own wallet was first seen two hours ago; p1 (the person) and p2 just now. */
  assert_int_equal(sql("WITH u AS (UPDATE accounts SET created_ms = created_ms - 7200000 WHERE id ="
                       " (SELECT account_id FROM identities WHERE name = 'bob@example.org') RETURNING 1)"
                       " SELECT count(*) FROM u"), 1);
  th_engine_free(eng);
  eng = th_engine(&cfg);
  assert_int_equal(th_cmd(eng, "host", "ITEM ADD tee 5 Tee", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "admin", "TALLY GRANT p1 20", OPER | TALLY_ROLE_GRANT | TALLY_ROLE_ADMIN, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host", CH, "QUIZ START 5 Capital of Italy? | Rome | Roma reward=prize winners=3 min-players=2",
                             HOST, &r), TALLY_OK);
  wait_announced("QUIZ (5 s): Capital of Italy?", 3000);
  /* A quiz is in a room of one network: bob answers it as p1 on irc. */
  assert_int_equal(th_cmd_net(eng, "xmpp", "bob@example.org", "", "ANSWER Roma", NULL, 0, &r), TALLY_ENO_QUIZ);
  assert_int_equal(th_cmd(eng, "p1", "ANSWER Roma", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Right!"));
  assert_int_equal(th_cmd(eng, "p2", "ANSWER Rome", 0, &r), TALLY_OK);
  /* p2 is too new; p1's wallet is as old as bob's identity. */
  wait_announced("Quiz over: the answer was Rome. 2 answered; the winner: p1", 10000);
  assert_int_equal(grants_of("p1"), 1);
  assert_int_equal(grants_of("p2"), 0);
  assert_int_equal(sql("SELECT count(*) FROM reward_grants"), 1);
  /* bob sees it and uses it on xmpp: the person's wallet pays 4.00. */
  assert_int_equal(th_cmd_net(eng, "xmpp", "bob@example.org", "", "REWARDS", NULL, 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "prize from host"));
  int rc = th_cmd_net(eng, "xmpp", "bob@example.org", "", "BUY tee", NULL, 0, &r);
  if (rc == TALLY_ECONSENT) { /* a first purchase asks for consent */
    char code[16], line[64];
    code_after(r.text, "CONFIRM ", 6, code);
    snprintf(line, sizeof line, "CONFIRM %s", code);
    rc = th_cmd_net(eng, "xmpp", "bob@example.org", "", line, NULL, 0, &r);
  }
  if (rc != TALLY_OK || !strstr(r.text, "for 4.00")) fprintf(stderr, "# BUY: %s (%s)\n", tally_err_name(rc), r.text);
  assert_int_equal(rc, TALLY_OK);
  assert_non_null(strstr(r.text, "for 4.00"));
  assert_int_equal(sql("SELECT count(*) FROM reward_uses u JOIN reward_grants g ON g.id = u.grant_id"
                       " JOIN accounts a ON a.id = g.account_id WHERE u.kind = 1 AND a.name = 'user:p1'"), 1);
  assert_int_equal(th_cmd(eng, "p1", "REWARDS", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "no earned rewards"));
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_first_right_answers_by_arrival_win),
      cmocka_unit_test(test_too_few_players_pays_nothing),
      cmocka_unit_test(test_new_or_absent_accounts_cannot_win),
      cmocka_unit_test(test_restart_in_the_middle_of_a_quiz),
      cmocka_unit_test(test_deadline_passes_while_down),
      cmocka_unit_test(test_linked_identities_are_one_player),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
