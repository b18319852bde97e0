/* test_hints.c — refusals that need explaining in a network's own words
 * carry a hint code (enum tally_hint) and network-neutral text: the engine
 * names no chat protocol's commands, services or ranks ("NickServ",
 * "/msg", "/quote", "IRC", "operator"); the adapter phrases the hint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;

static void setup(const char *name) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  eng = th_engine(&cfg);
}

static void finish(void) {
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* No chat-protocol word in a reply the engine wrote (case-sensitive where
 * the word is a name, so "operator" catches "IRC operator" and "server
 * operators" but also "Operator"). */
static void assert_neutral(const th_reply *r) {
  static const char *const words[] = {"NickServ", "ChanServ", "/msg", "/quote", "IRC", "operator",
                                      "Operator", "services account", "oper privilege", "!event"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
    if (strstr(r->text, words[i])) fail_msg("reply names \"%s\": %s", words[i], r->text);
  }
}

static void expect(int rc, const th_reply *r, int code, uint32_t hint) {
  assert_int_equal(rc, code);
  assert_int_equal(r->code, code);
  assert_int_equal(r->hint, hint);
  assert_neutral(r);
}

/* The brief's case: BUY without an account says "log in" in neutral words
 * and carries TALLY_HINT_LOG_IN, whichever path refuses it. */
static void test_not_logged_in_carries_log_in(void **state) {
  (void)state;
  setup("hintlogin");
  th_reply r;
  expect(th_cmd(eng, "", "BUY tee", 0, &r), &r, TALLY_ENOT_LOGGED_IN, TALLY_HINT_LOG_IN);
  assert_non_null(strstr(r.text, "log in to your account first"));
  expect(th_cmd(eng, "", "WALLET", 0, &r), &r, TALLY_ENOT_LOGGED_IN, TALLY_HINT_LOG_IN);
  /* Refused inside a handler (tally__cmd_refuse), not by the dispatcher. */
  expect(th_cmd_in(eng, "", "#live", "EVENT START 10 Party", TALLY_ROLE_CHANOP, &r), &r, TALLY_ENOT_LOGGED_IN,
         TALLY_HINT_LOG_IN);
  /* An answer that needs no explaining carries none. */
  expect(th_cmd(eng, "alice", "WALLET", 0, &r), &r, TALLY_OK, TALLY_HINT_NONE);
  finish();
}

static void test_private_only_carries_send_privately(void **state) {
  (void)state;
  setup("hintprivate");
  th_reply r;
  expect(th_cmd_in(eng, "alice", "#live", "DELIVERY 1001", 0, &r), &r, TALLY_EBAD_SYNTAX,
         TALLY_HINT_SEND_PRIVATELY);
  assert_non_null(strstr(r.text, "privately"));
  /* Refused before anything about it is looked up: a SHIP of a receipt that
   * does not exist (or is not merch) in a channel says "privately", not
   * what is wrong with the receipt, so a room that shows every line (a
   * Matrix room) learns nothing more. */
  expect(th_cmd_in(eng, "alice", "#live", "SHIP 999999 1 Main Street", 0, &r), &r, TALLY_EBAD_SYNTAX,
         TALLY_HINT_SEND_PRIVATELY);
  assert_non_null(strstr(r.text, "send SHIP privately"));
  finish();
}

static void test_roles_carry_their_hints(void **state) {
  (void)state;
  setup("hintroles");
  th_reply r;
  /* Selling (a drop) needs the creator role, which an admin gives: a
   * channel's host without it is told who gives it. */
  expect(th_cmd_in(eng, "alice", "#live", "DROP CREATE tee 5 3", TALLY_ROLE_CHANOP, &r), &r, TALLY_ENO_PERMISSION,
         TALLY_HINT_ADMIN_ROLE);
  assert_non_null(strstr(r.text, "TALLY ROLE <account> creator"));
  /* TALLY's admin sub-commands. */
  expect(th_cmd(eng, "alice", "TALLY STATS", 0, &r), &r, TALLY_ENO_PERMISSION, TALLY_HINT_ADMIN_ROLE);
  /* Hosting in a channel needs its host role. */
  expect(th_cmd_in(eng, "alice", "#live", "EVENT START 10 Party", 0, &r), &r, TALLY_ENO_PERMISSION,
         TALLY_HINT_HOST_ROLE);
  /* Creating credits needs the grant privilege on top of being an admin. */
  expect(th_cmd(eng, "helper", "TALLY GRANT bob 5", TALLY_ROLE_OPER, &r), &r, TALLY_ENO_PERMISSION,
         TALLY_HINT_GRANT_PRIVILEGE);
  /* Nothing held under that receipt: whether a said message can be taken
   * back is the network's business. */
  expect(th_cmd_in(eng, "mod", "#live", "HIDE 424242", TALLY_ROLE_CHANOP, &r), &r, TALLY_ENOT_HELD,
         TALLY_HINT_ALREADY_SAID);
  finish();
}

/* TALLY HELP is read on every network: none of its lines names a
 * protocol, and the admins' line says "Admins", not "Operators". */
typedef struct help_seen {
  int lines, admins;
} help_seen;

static void on_help(void *ud, uint64_t req_id, const th_reply *r) {
  (void)req_id;
  help_seen *h = ud;
  assert_int_equal(r->code, TALLY_OK);
  assert_int_equal(r->hint, TALLY_HINT_NONE);
  assert_neutral(r);
  h->lines++;
  if (strncmp(r->text, "Admins: ", 8) == 0) h->admins++;
}

static void test_help_is_neutral(void **state) {
  (void)state;
  setup("hinthelp");
  help_seen h = {0, 0};
  th_send(eng, "alice", "TALLY HELP", NULL);
  th_collect(eng, 64, 1500, on_help, &h);
  assert_true(h.lines >= 4);
  assert_int_equal(h.admins, 1);
  finish();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_not_logged_in_carries_log_in),
      cmocka_unit_test(test_private_only_carries_send_privately),
      cmocka_unit_test(test_roles_carry_their_hints),
      cmocka_unit_test(test_help_is_neutral),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
