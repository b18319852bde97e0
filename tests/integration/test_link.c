/* test_link.c — one wallet across networks (LINK / UNLINK, sql/013) against
 * a real PostgreSQL: issue, claim on another network, confirm; expiry,
 * wrong network, the brute-force limit; a balance moved by one transfer
 * that sums to zero; limits, caps and consents per person; refund rights
 * with the person; UNLINK; a restart rebuilds links. `tally check` after each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

typedef struct fx {
  char dsn[512];
  tally_config cfg;
  tally_engine *e;
} fx;

static fx F;
static const uint32_t OPER = TALLY_ROLE_OPER | TALLY_ROLE_GRANT | TALLY_ROLE_ADMIN;
static const char *XMPP_BOB = "bob@example.org";

static int cmd(const char *network, const char *account, const char *text, th_reply *r) {
  int rc = th_cmd_net(F.e, network, account, "", text, NULL, 0, r);
  if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "[%s] %s: %s -> %s (%s)\n", network, account, text, tally_err_name(rc), r->text);
  return rc;
}

static void expect(int code, const char *network, const char *account, const char *text) {
  th_reply r;
  int rc = cmd(network, account, text, &r);
  if (rc != code)
    fprintf(stderr, "[%s] %s: %s -> %s (%s), wanted %s\n", network, account, text, tally_err_name(rc), r.text,
            tally_err_name(code));
  assert_int_equal(rc, code);
}

static void expect_text(int code, const char *network, const char *account, const char *text, const char *needle) {
  th_reply r;
  int rc = cmd(network, account, text, &r);
  if (rc != code || !strstr(r.text, needle))
    fprintf(stderr, "[%s] %s: %s -> %s (%s), wanted %s with \"%s\"\n", network, account, text, tally_err_name(rc),
            r.text, tally_err_name(code), needle);
  assert_int_equal(rc, code);
  assert_non_null(strstr(r.text, needle));
}

static void balance_is(const char *network, const char *account, const char *needle) {
  expect_text(TALLY_OK, network, account, "WALLET", needle);
}

/* A shop on irc: "maker" sells tee (5.00) and cap (2.00); irc "alice" has
 * 20.00 (cap_minor: the daily cap, 0 none). */
static void start(const char *test, int64_t cap_minor, uint32_t ttl_s) {
  th_fresh_db(test, F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.daily_cap_minor = cap_minor;
  if (ttl_s) F.cfg.link_code_ttl_s = ttl_s;
  F.e = th_engine(&F.cfg);
  th_reply r;
  assert_int_equal(th_cmd_net(F.e, "irc", "admin", "", "TALLY ROLE maker creator", NULL, OPER, &r), TALLY_OK);
  expect(TALLY_OK, "irc", "maker", "ITEM ADD tee 5 Tour tee");
  expect(TALLY_OK, "irc", "maker", "ITEM ADD cap 2 Cap");
  assert_int_equal(th_cmd_net(F.e, "irc", "admin", "", "TALLY GRANT alice 20", NULL, OPER, &r), TALLY_OK);
}

static void restart(void) {
  th_engine_free(F.e);
  F.e = th_engine(&F.cfg);
}

static void done(void) {
  th_engine_free(F.e);
  assert_int_equal(th_tally_check(F.dsn), 0);
}

/* The code in "... code: <8 characters> (" or "CONFIRM <6 characters> (" of text. */
static void code_after(const char *text, const char *marker, size_t len, char *out) {
  const char *p = strstr(text, marker);
  assert_non_null(p);
  memcpy(out, p + strlen(marker), len);
  out[len] = 0;
}

/* irc alice issues, (claim_net, claimer) claims, alice confirms: the
 * confirm's answer into *done_r. */
static void link_up(const char *claim_net, const char *claimer, th_reply *done_r) {
  th_reply r;
  char code[16], confirm[16], line[64];
  assert_int_equal(cmd("irc", "alice", "LINK", &r), TALLY_OK);
  code_after(r.text, "Your link code: ", 8, code);
  snprintf(line, sizeof line, "LINK %s", code);
  expect_text(TALLY_OK, claim_net, claimer, line, "Asked irc:alice to confirm");
  char told[TALLY_TEXT_BYTES_MAX + 1];
  assert_true(th_told("irc", "alice", "asks to join your wallet", told, sizeof told));
  char who[128];
  snprintf(who, sizeof who, "%s:%s asks", claim_net, claimer);
  assert_non_null(strstr(told, who));
  code_after(told, "LINK CONFIRM ", 6, confirm);
  snprintf(line, sizeof line, "LINK CONFIRM %s", confirm);
  /* A claimer seen for the first time has its identity row in flight for a
   * moment (the engine says so, "busy"); a person would not type that fast. */
  int rc = cmd("irc", "alice", line, done_r);
  if (rc == TALLY_EBUSY && strstr(done_r->text, "still being recorded")) {
    th_settle(F.e, 300);
    rc = cmd("irc", "alice", line, done_r);
  }
  if (rc != TALLY_OK) fprintf(stderr, "LINK CONFIRM: %s (%s)\n", tally_err_name(rc), done_r->text);
  assert_int_equal(rc, TALLY_OK);
  th_settle(F.e, 100);
  assert_true(th_told(claim_net, claimer, "Linked: you now use the wallet of irc:alice", NULL, 0));
}

/* An empty XMPP identity joins alice's wallet: nothing moves, one link row,
 * and from then on WALLET, BUY and receipts are the person's; each transfer
 * keeps the identity that made it; a restart keeps the link. */
static void test_link_empty_identity(void **state) {
  (void)state;
  start("link_empty", 0, 0);
  balance_is("xmpp", XMPP_BOB, "0.00"); /* a new, empty identity */
  th_reply r;
  link_up("xmpp", XMPP_BOB, &r);
  assert_non_null(strstr(r.text, "nothing moved"));
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM identity_links WHERE event = 1 AND transfer_id IS NULL"), 1);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 5"), 0);
  balance_is("xmpp", XMPP_BOB, "20.00");
  /* A purchase on xmpp: alice has consented on no item yet, so it asks. */
  assert_int_equal(cmd("xmpp", XMPP_BOB, "BUY cap", &r), TALLY_ECONSENT);
  char confirm[16], line[32];
  code_after(r.text, "CONFIRM ", 6, confirm);
  snprintf(line, sizeof line, "CONFIRM %s", confirm);
  assert_int_equal(cmd("xmpp", XMPP_BOB, line, &r), TALLY_OK);
  uint64_t bought = r.receipt;
  balance_is("irc", "alice", "18.00");
  /* The ledger: the purchase is on alice's account, made by bob's identity. */
  char q[512];
  snprintf(q, sizeof q, "SELECT count(*) FROM transfers t JOIN accounts a ON a.id = t.account_id"
           " JOIN transfer_identities ti ON ti.transfer_id = t.id JOIN identities i ON i.id = ti.identity_id"
           " WHERE t.id = %llu AND a.name = 'user:alice' AND i.name = '%s'", (unsigned long long)bought, XMPP_BOB);
  assert_int_equal(th_sql_i64(F.dsn, q), 1);
  /* Alice sees the receipt (same person) and may refund it on irc. */
  expect_text(TALLY_OK, "irc", "alice", "RECEIPTS", "");
  restart();
  balance_is("xmpp", XMPP_BOB, "18.00");
  snprintf(line, sizeof line, "REFUND %llu", (unsigned long long)bought);
  expect(TALLY_OK, "irc", "alice", line);
  balance_is("xmpp", XMPP_BOB, "20.00");
  done();
}

/* A joining identity with money: all of it moves by ONE transfer (kind 5)
 * whose legs sum to zero; its own wallet ends at zero; nothing is doubled. */
static void test_link_moves_balance(void **state) {
  (void)state;
  start("link_move", 0, 0);
  th_reply r;
  assert_int_equal(th_cmd_net(F.e, "xmpp", "op", "", "TALLY GRANT bob@example.org 7.25", NULL, OPER, &r), TALLY_OK);
  int64_t total = th_sql_i64(F.dsn, "SELECT sum(amount_minor) FROM entries e JOIN accounts a ON a.id = e.account_id"
                                    " WHERE a.kind = 1");
  link_up("xmpp", XMPP_BOB, &r);
  assert_non_null(strstr(r.text, "moved here by one transfer"));
  assert_true(r.receipt > 0);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE kind = 5"), 1);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT amount_minor FROM transfers WHERE kind = 5"), 725);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT sum(e.amount_minor) FROM entries e JOIN transfers t ON t.id = e.transfer_id"
                                     " WHERE t.kind = 5"), 0);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM identity_links l JOIN transfers t ON t.id = l.transfer_id"
                                     " WHERE t.kind = 5"), 1);
  /* bob's own wallet is empty, the users' money is what it was. */
  assert_int_equal(th_sql_i64(F.dsn, "SELECT coalesce(sum(e.amount_minor), 0) FROM entries e JOIN accounts a"
                                     " ON a.id = e.account_id WHERE a.name = 'xmpp:bob@example.org'"), 0);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT sum(amount_minor) FROM entries e JOIN accounts a ON a.id = e.account_id"
                                     " WHERE a.kind = 1"), total);
  balance_is("irc", "alice", "27.25");
  balance_is("xmpp", XMPP_BOB, "27.25");
  /* A grant or tip to bob's name lands in the person's wallet. */
  assert_int_equal(th_cmd_net(F.e, "xmpp", "op", "", "TALLY GRANT bob@example.org 1", NULL, OPER, &r), TALLY_OK);
  balance_is("irc", "alice", "28.25");
  restart();
  balance_is("xmpp", XMPP_BOB, "28.25");
  assert_int_equal(th_sql_i64(F.dsn, "SELECT coalesce(sum(e.amount_minor), 0) FROM entries e JOIN accounts a"
                                     " ON a.id = e.account_id WHERE a.name = 'xmpp:bob@example.org'"), 0);
  done();
}

/* Every refusal names its reason; a code is single use and expires. */
static void test_link_refusals(void **state) {
  (void)state;
  start("link_refuse", 0, 2);
  th_reply r;
  char code[16], line[64];
  /* Privately only. */
  assert_int_equal(th_cmd_net(F.e, "irc", "alice", "#live", "LINK", NULL, 0, &r), TALLY_EBAD_SYNTAX);
  assert_non_null(strstr(r.text, "privately"));
  assert_int_equal(cmd("irc", "alice", "LINK", &r), TALLY_OK);
  code_after(r.text, "Your link code: ", 8, code);
  /* The same network that issued it. */
  snprintf(line, sizeof line, "LINK %s", code);
  expect_text(TALLY_EBAD_SYNTAX, "irc", "carol", line, "another network");
  /* Lower case is the same code; a creator's wallet cannot join. */
  th_reply g;
  assert_int_equal(th_cmd_net(F.e, "xmpp", "op", "", "TALLY ROLE seller@example.org creator", NULL, OPER, &g), TALLY_OK);
  for (char *p = line + 5; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
  expect_text(TALLY_ENO_PERMISSION, "xmpp", "seller@example.org", line, "creator");
  /* Expired: the ttl is 2 s here. */
  th_settle(F.e, 2200);
  expect_text(TALLY_EBAD_CODE, "xmpp", XMPP_BOB, line, "expired");
  /* Single use: claimed once, a second claim is refused. */
  assert_int_equal(cmd("irc", "alice", "LINK", &r), TALLY_OK);
  code_after(r.text, "Your link code: ", 8, code);
  snprintf(line, sizeof line, "LINK %s", code);
  expect(TALLY_OK, "xmpp", XMPP_BOB, line);
  expect_text(TALLY_EBAD_CODE, "matrix", "@bob:example.org", line, "unknown or already used");
  /* A wrong confirmation code, then LINK CANCEL tells the claimer. */
  expect_text(TALLY_EBAD_CODE, "irc", "alice", "LINK CONFIRM AAAAAA", "wrong confirmation code");
  expect_text(TALLY_OK, "irc", "alice", "LINK CANCEL", "cancelled");
  assert_true(th_told("xmpp", XMPP_BOB, "declined", NULL, 0));
  expect_text(TALLY_EBAD_CODE, "irc", "alice", "LINK CONFIRM AAAAAA", "no link waits");
  /* Already linked: a second wallet cannot take bob. */
  link_up("xmpp", XMPP_BOB, &r);
  assert_int_equal(th_cmd_net(F.e, "irc", "admin", "", "TALLY GRANT dave 1", NULL, OPER, &g), TALLY_OK);
  assert_int_equal(cmd("irc", "dave", "LINK", &r), TALLY_OK);
  code_after(r.text, "Your link code: ", 8, code);
  snprintf(line, sizeof line, "LINK %s", code);
  expect_text(TALLY_EEXISTS, "xmpp", XMPP_BOB, line, "already linked");
  /* And alice, whose wallet others use, cannot join dave's. */
  expect_text(TALLY_EBAD_SYNTAX, "irc", "alice", line, "another network");
  expect(TALLY_EBAD_SYNTAX, "irc", "alice", "LINK A B C D");
  done();
}

/* Wrong codes are counted per identity (5 an hour) and over everyone (100
 * an hour): past either, even the right code is refused, so a code of 40
 * bits cannot be guessed in its minutes. */
static void test_link_guess_limits(void **state) {
  (void)state;
  start("link_guess", 0, 0);
  th_reply r;
  char code[16], line[64];
  assert_int_equal(cmd("irc", "alice", "LINK", &r), TALLY_OK);
  code_after(r.text, "Your link code: ", 8, code);
  for (int i = 0; i < 5; i++) expect_text(TALLY_EBAD_CODE, "xmpp", "mallory@example.org", "LINK 22222222", "unknown");
  snprintf(line, sizeof line, "LINK %s", code);
  expect_text(TALLY_ERATE_LIMITED, "xmpp", "mallory@example.org", line, "too many wrong link codes");
  /* Wrong confirmation codes count the same way. */
  for (int i = 0; i < 5; i++) expect(TALLY_EBAD_CODE, "irc", "alice", "LINK CONFIRM 222222");
  expect(TALLY_ERATE_LIMITED, "irc", "alice", "LINK CONFIRM 222222");
  /* Many identities together: after 100 wrong codes nobody may try. */
  char who[64];
  for (int i = 0; i < 18; i++) {
    snprintf(who, sizeof who, "m%d@example.org", i);
    for (int k = 0; k < 5; k++) expect(TALLY_EBAD_CODE, "xmpp", who, "LINK 33333333");
  }
  expect_text(TALLY_ERATE_LIMITED, "xmpp", "m99@example.org", "LINK 33333333", "too many");
  /* The code itself was never claimed: bob cannot either (everyone waits). */
  expect(TALLY_ERATE_LIMITED, "xmpp", XMPP_BOB, line);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM identity_links"), 0);
  done();
}

/* Per-buyer limits, daily caps and consents count per person once linked. */
static void test_link_limits_per_person(void **state) {
  (void)state;
  start("link_limits", 700, 0);
  th_reply r;
  assert_int_equal(th_buy_confirmed(F.e, "alice", "tee", &r), TALLY_OK); /* 5.00 of the 7.00 cap; consent given */
  link_up("xmpp", XMPP_BOB, &r);
  /* No consent asked again (the person agreed); the cap is the person's. */
  expect_text(TALLY_EOVER_CAP, "xmpp", XMPP_BOB, "BUY tee", "cap");
  expect(TALLY_OK, "xmpp", XMPP_BOB, "BUY cap");
  expect(TALLY_EOVER_CAP, "irc", "alice", "BUY cap");
  expect_text(TALLY_OK, "xmpp", XMPP_BOB, "WALLET", "Spent today: 7.00");
  /* A drop's per-buyer limit: one per person, whichever network buys. */
  assert_int_equal(th_cmd_net(F.e, "irc", "maker", "#live", "DROP CREATE pin 10 0.50 per-user=1", NULL, TALLY_ROLE_HOST, &r),
                   TALLY_OK);
  th_engine_free(F.e);
  F.cfg.daily_cap_minor = 0;
  F.e = th_engine(&F.cfg);
  expect(TALLY_OK, "irc", "alice", "BUY pin");
  expect(TALLY_EPER_USER_LIMIT, "xmpp", XMPP_BOB, "BUY pin");
  done();
}

/* UNLINK detaches an identity with an empty wallet; receipts and refund
 * rights stay with the person, also of what it bought before the link. */
static void test_unlink(void **state) {
  (void)state;
  start("link_unlink", 0, 0);
  th_reply r;
  char line[64];
  assert_int_equal(th_cmd_net(F.e, "xmpp", "op", "", "TALLY GRANT bob@example.org 5", NULL, OPER, &r), TALLY_OK);
  assert_int_equal(cmd("xmpp", XMPP_BOB, "BUY cap", &r), TALLY_ECONSENT);
  char confirm[16];
  code_after(r.text, "CONFIRM ", 6, confirm);
  snprintf(line, sizeof line, "CONFIRM %s", confirm);
  assert_int_equal(cmd("xmpp", XMPP_BOB, line, &r), TALLY_OK);
  uint64_t before = r.receipt; /* bought by bob's own wallet, before the link */
  link_up("xmpp", XMPP_BOB, &r);
  balance_is("irc", "alice", "23.00");
  assert_int_equal(th_buy_confirmed(F.e, "alice", "tee", &r), TALLY_OK);
  expect(TALLY_OK, "xmpp", XMPP_BOB, "BUY cap");
  th_reply linked_buy;
  assert_int_equal(cmd("xmpp", XMPP_BOB, "BUY cap", &linked_buy), TALLY_OK);
  /* The root identity cannot be unlinked; a name that is not linked neither. */
  expect_text(TALLY_ENO_PERMISSION, "irc", "alice", "UNLINK irc:alice", "its own");
  expect_text(TALLY_EUNKNOWN_ACCOUNT, "irc", "alice", "UNLINK xmpp:nobody@example.org", "network:name");
  expect_text(TALLY_EBAD_SYNTAX, "irc", "alice", "UNLINK xmpp:bob@example.org x", "Usage");
  restart(); /* the link is rebuilt from identity_links */
  expect_text(TALLY_OK, "irc", "alice", "UNLINK xmpp:bob@example.org", "Unlinked xmpp:bob@example.org");
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM identity_links WHERE event = 2"), 1);
  balance_is("xmpp", XMPP_BOB, "0.00");
  balance_is("irc", "alice", "14.00");
  /* Refund rights stay with the person: bob's purchase while linked, and
   * the one from before the link. */
  snprintf(line, sizeof line, "REFUND %llu", (unsigned long long)linked_buy.receipt);
  expect(TALLY_ENOT_YOURS, "xmpp", XMPP_BOB, line);
  expect(TALLY_OK, "irc", "alice", line);
  snprintf(line, sizeof line, "REFUND %llu", (unsigned long long)before);
  expect(TALLY_ENOT_YOURS, "xmpp", XMPP_BOB, line);
  restart();
  expect(TALLY_OK, "irc", "alice", line);
  balance_is("irc", "alice", "18.00");
  balance_is("xmpp", XMPP_BOB, "0.00");
  expect_text(TALLY_ENOTFOUND, "xmpp", XMPP_BOB, "UNLINK", "not linked");
  done();
}

/* `tally check` sees a link that breaks the rules (planted by hand). */
static void test_check_sees_bad_link(void **state) {
  (void)state;
  start("link_check", 0, 0);
  th_reply r;
  assert_int_equal(th_cmd_net(F.e, "xmpp", "op", "", "TALLY GRANT bob@example.org 1", NULL, OPER, &r), TALLY_OK);
  th_engine_free(F.e);
  F.e = NULL;
  assert_int_equal(th_tally_check(F.dsn), 0);
  /* bob linked to alice with 1.00 left in his own wallet: money would be stranded. */
  assert_int_equal(th_sql_i64(F.dsn, "WITH x AS (INSERT INTO identity_links (id, identity_id, account_id, event, by_identity,"
                                     " batch_id, created_ms) SELECT 999999999, b.id, a.account_id, 1, a.id, 0, 0"
                                     " FROM identities b, identities a WHERE b.name = 'bob@example.org' AND a.name = 'alice'"
                                     " RETURNING 1) SELECT count(*) FROM x"), 1);
  assert_int_not_equal(th_tally_check(F.dsn), 0);
}

/* A quiz counts a person once: xmpp bob answers, then joins alice's
 * wallet; his next answer is the person's second, refused (it was taken
 * as a new account's before). */
static void test_link_answers_a_quiz_once(void **state) {
  (void)state;
  start("link_quiz", 0, 0);
  th_reply r;
  const uint32_t host = TALLY_ROLE_CHANOP;
  const char *room = "quiz@rooms.example.org";
  assert_int_equal(th_cmd_net(F.e, "xmpp", "host@example.org", room, "EVENT START 30 Show", NULL, host, &r), TALLY_OK);
  assert_int_equal(th_cmd_net(F.e, "xmpp", "host@example.org", room, "QUIZ START 60 One? | 1 min-players=1", NULL, host,
                              &r),
                   TALLY_OK);
  expect(TALLY_OK, "xmpp", XMPP_BOB, "ANSWER 1");
  expect(TALLY_EANSWERED, "xmpp", XMPP_BOB, "ANSWER 1");
  link_up("xmpp", XMPP_BOB, &r);
  expect(TALLY_EANSWERED, "xmpp", XMPP_BOB, "ANSWER 1");
  done();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_link_empty_identity),
      cmocka_unit_test(test_link_moves_balance),
      cmocka_unit_test(test_link_refusals),
      cmocka_unit_test(test_link_guess_limits),
      cmocka_unit_test(test_link_limits_per_person),
      cmocka_unit_test(test_unlink),
      cmocka_unit_test(test_check_sees_bad_link),
      cmocka_unit_test(test_link_answers_a_quiz_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
