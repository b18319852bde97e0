/* test_audience.c — what an event's audience does through the public API
 * against the real PostgreSQL: paid highlights shown in turn (and refunded
 * by the engine when the event ends first), paid reactions aggregated,
 * attendance from presence and attendees-only drops, top supporters with
 * the privacy opt-out, and referral codes with an affiliate's share that a
 * refund reverses. `tally check` runs after each. */
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

static int run(const char *account, const char *text, uint32_t roles, th_reply *r) {
  th_reply tmp;
  if (!r) r = &tmp;
  int rc = th_cmd_in(eng, account, CH, text, roles, r);
  if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "%s: %s -> %s %s\n", account, text, tally_err_name(rc), r->text);
  return rc;
}

#define sql(...) th_sql_i64f(dsn, __VA_ARGS__)

/* alice a creator; bob, carol, dave, gus with 100 credits and consent;
 * tip messages held tip_hold_s. */
static void setup_holding_tips(const char *name, uint32_t tip_hold_s) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.highlight_repeat_s = 5;
  cfg.tip_message_hold_s = tip_hold_s;
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE alice creator", OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD pin 1 Pin", 0, &r), TALLY_OK);
  const char *buyers[] = {"bob", "carol", "dave", "gus"};
  for (int i = 0; i < 4; i++) assert_int_equal(th_buyer(eng, buyers[i], "100", "pin"), TALLY_OK);
}

static void setup(const char *name) { setup_holding_tips(name, 0); }

static void finish(void) {
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

static void test_highlights_shown_in_turn_and_refunded_when_not(void **state) {
  (void)state;
  setup("audhl");
  th_reply r;
  assert_int_equal(run("bob", "HIGHLIGHT gold Hello", 0, NULL), TALLY_ENOT_IN_CHANNEL);
  assert_int_equal(run("host", "EVENT START 30 Stream", HOST, NULL), TALLY_OK);
  assert_int_equal(run("bob", "EVENT TIER gold 2 3", 0, NULL), TALLY_ENO_PERMISSION);
  assert_int_equal(run("host", "EVENT TIER gold 2 3", HOST, NULL), TALLY_OK);
  assert_true(th_announced("Highlights on sale: gold pins your message for 3 s, 2.00 credits"));
  assert_int_equal(run("bob", "HIGHLIGHT silver Hi", 0, NULL), TALLY_EUNKNOWN_ITEM);
  assert_int_equal(run("bob", "HIGHLIGHT gold Hello everyone", 0, &r), TALLY_OK);
  uint64_t first = r.receipt;
  th_settle(eng, 200);
  assert_true(th_announced("HIGHLIGHT from bob: Hello everyone"));
  /* carol's (600 s) waits for bob's 3 s; timings below need no precision. */
  assert_int_equal(run("host", "EVENT TIER long 1 600", HOST, NULL), TALLY_OK);
  assert_int_equal(run("carol", "HIGHLIGHT long Second", 0, NULL), TALLY_OK);
  th_settle(eng, 300);
  assert_false(th_announced("HIGHLIGHT from carol: Second")); /* bob's 3 s are not over */
  for (int waited = 0; waited < 10000 && !th_announced("HIGHLIGHT from carol: Second"); waited += 250)
    th_settle(eng, 250);
  assert_true(th_announced("HIGHLIGHT from carol: Second"));
  assert_int_equal(run("host", "HIGHLIGHT REMOVE", HOST, NULL), TALLY_OK); /* carol's stops, stays paid */
  assert_int_equal(run("host", "HIGHLIGHT REMOVE", HOST, NULL), TALLY_ENOTFOUND);
  /* dave's shows; gus's waits behind it; the event ends first: gus's is
   * refunded by the engine. */
  assert_int_equal(run("dave", "HIGHLIGHT long Third", 0, NULL), TALLY_OK);
  for (int waited = 0; waited < 10000 && !th_announced("HIGHLIGHT from dave: Third"); waited += 50) th_settle(eng, 50);
  assert_true(th_announced("HIGHLIGHT from dave: Third"));
  assert_int_equal(run("gus", "HIGHLIGHT long Fourth", 0, &r), TALLY_OK);
  uint64_t third = r.receipt;
  assert_int_equal(run("host", "EVENT STOP", HOST, NULL), TALLY_OK);
  th_settle(eng, 1500);
  char text[48];
  snprintf(text, sizeof text, "REFUND %llu", (unsigned long long)first);
  assert_int_equal(run("bob", text, 0, NULL), TALLY_ENOT_REFUNDABLE); /* shown: a buyer cannot refund it */
  th_engine_free(eng); /* everything settled and stored */
  eng = th_engine(&cfg);
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 3 AND ref_transfer = %llu"
                       " AND idem_key = 'hl-refund:%llu'", (unsigned long long)third, (unsigned long long)third), 1);
  assert_int_equal(sql("SELECT count(*) FROM redemptions WHERE transfer_id = %llu", (unsigned long long)first), 1);
  assert_int_equal(sql("SELECT count(*) FROM redemptions"), 3); /* bob's, carol's (removed) and dave's were shown */
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 3"), 1); /* only the unshown one */
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE memo = 'Hello everyone'"), 1);
  finish();
}

static void test_highlight_as_topic(void **state) {
  (void)state;
  th_fresh_db("audtopic", dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.highlight_topic = 1;
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY GRANT bob 10", OPER | TALLY_ROLE_GRANT, &r), TALLY_OK);
  assert_int_equal(run("host", "EVENT START 30 Stream", HOST, NULL), TALLY_OK);
  assert_int_equal(run("host", "EVENT TIER gold 1 2", HOST, NULL), TALLY_OK);
  assert_int_equal(run("bob", "HIGHLIGHT gold Hi", 0, NULL), TALLY_ECONSENT); /* consent comes first */
  assert_int_equal(run("host", "EVENT TIER pin 1 1", HOST, NULL), TALLY_OK);
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE alice creator", OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD pin 1 Pin", 0, &r), TALLY_OK);
  assert_int_equal(th_buy_confirmed(eng, "bob", "pin", &r), TALLY_OK);
  int before;
  th_topic(&before);
  assert_int_equal(run("bob", "HIGHLIGHT gold Pinned up top", 0, NULL), TALLY_OK);
  th_settle(eng, 300);
  int changes;
  assert_string_equal(th_topic(&changes), "HIGHLIGHT from bob: Pinned up top");
  assert_int_equal(changes, before + 1);
  assert_false(th_announced("HIGHLIGHT from bob: Pinned")); /* the topic instead of channel lines */
  th_settle(eng, 2500);
  assert_string_equal(th_topic(&changes), ""); /* its time is up: the old topic back */
  assert_int_equal(changes, before + 2);
  finish();
}

static void test_reactions_are_aggregated(void **state) {
  (void)state;
  setup("audreact");
  assert_int_equal(run("host", "EVENT START 30 Stream", HOST, NULL), TALLY_OK);
  assert_int_equal(run("bob", "REACT fire", 0, NULL), TALLY_EUNKNOWN_ITEM);
  assert_int_equal(run("host", "EVENT REACT 0.10", HOST, NULL), TALLY_OK);
  for (int i = 0; i < 3; i++) assert_int_equal(run("bob", "REACT \xf0\x9f\x94\xa5", 0, NULL), TALLY_OK);
  assert_int_equal(run("carol", "REACT \xf0\x9f\x91\x8f", 0, NULL), TALLY_OK);
  assert_int_equal(run("carol", "REACT this-is-far-too-long-an-emote", 0, NULL), TALLY_EBAD_SYNTAX);
  assert_int_equal(run("host", "EVENT STOP", HOST, NULL), TALLY_OK);
  th_settle(eng, 500);
  assert_true(th_announced("Reactions in the last minute: 3 \xf0\x9f\x94\xa5, 1 \xf0\x9f\x91\x8f"));
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 1 AND memo = '\xf0\x9f\x94\xa5'"), 3);
  finish();
}

static void test_attendance_supporters_and_privacy(void **state) {
  (void)state;
  setup("audattend");
  th_reply r;
  assert_int_equal(run("host", "DROP CREATE vip 5 1 attendees-only", HOST, NULL), TALLY_ENOT_IN_CHANNEL);
  assert_int_equal(run("host", "EVENT START 30 Stream", HOST, NULL), TALLY_OK);
  assert_true(th_rostered(CH)); /* the adapter is asked who is here */
  th_presence(eng, "bob", CH, 1);
  th_presence(eng, "carol", CH, 1);
  th_presence(eng, "gus", "#elsewhere", 1);
  assert_int_equal(run("host", "DROP CREATE vip 5 1 attendees-only", HOST, NULL), TALLY_OK);
  assert_int_equal(run("bob", "BUY vip 2", 0, NULL), TALLY_OK);
  assert_int_equal(run("dave", "BUY vip", 0, NULL), TALLY_ENOT_ATTENDEE);
  assert_int_equal(run("gus", "BUY vip", 0, NULL), TALLY_ENOT_ATTENDEE);
  th_presence(eng, "carol", CH, 0); /* left: attended all the same */
  assert_int_equal(run("carol", "BUY vip", 0, NULL), TALLY_OK);
  assert_int_equal(run("dave", "TIP alice 5 great show", 0, NULL), TALLY_OK);
  assert_int_equal(th_cmd(eng, "bob", "TALLY PRIVACY maybe", 0, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd(eng, "bob", "TALLY PRIVACY on", 0, &r), TALLY_OK);
  /* The choice survives a restart; so do attendance and spending. */
  th_engine_free(eng);
  eng = th_engine(&cfg);
  th_settle(eng, 200);
  assert_int_equal(run("host", "EVENT STOP", HOST, NULL), TALLY_OK);
  th_settle(eng, 800);
  assert_true(th_announced("Attendance: 2 attendees"));
  assert_true(th_announced("Top supporters: dave 5.00 credits, carol 1.00 credits, and 1 who prefers not to be named."));
  assert_true(th_announced("Creators earned: host 2.93 credits."));
  assert_int_equal(sql("SELECT count(*) FROM attendance"), 2);
  assert_int_equal(sql("SELECT count(*) FROM privacy_changes WHERE hidden"), 1);
  finish();
}

static void test_referral_code_share_and_refund(void **state) {
  (void)state;
  setup("audref");
  th_reply r;
  assert_int_equal(th_cmd(eng, "bob", "REFCODE ADD pal gus 1000", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd(eng, "alice", "REFCODE ADD pal alice 1000", 0, &r), TALLY_ESELF);
  assert_int_equal(th_cmd(eng, "alice", "REFCODE ADD pal gus 9000", 0, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd(eng, "alice", "REFCODE ADD pal gus 1000", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "REFCODE ADD pal dave 1000", 0, &r), TALLY_EEXISTS);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD mug 10 Mug", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "bob", "BUY mug ref=nope", 0, &r), TALLY_EBAD_REF);
  assert_int_equal(th_cmd(eng, "gus", "BUY mug ref=pal", 0, &r), TALLY_EBAD_REF); /* no self-referral */
  assert_int_equal(th_cmd(eng, "bob", "BUY mug 1 ref=pal", 0, &r), TALLY_OK);
  uint64_t receipt = r.receipt;
  /* 10.00: fee 25, gus 10% of the 975 left = 97, alice 878. */
  assert_int_equal(sql("SELECT l.m FROM transfers t, unnest(t.leg_accounts, t.leg_amounts) l(a, m)"
                       " JOIN accounts a ON a.id = l.a WHERE t.id = %llu AND a.name = 'user:gus'",
                       (unsigned long long)receipt), 97);
  assert_int_equal(sql("SELECT l.m FROM transfers t, unnest(t.leg_accounts, t.leg_amounts) l(a, m)"
                       " JOIN accounts a ON a.id = l.a WHERE t.id = %llu AND a.name = 'user:alice'",
                       (unsigned long long)receipt), 878);
  /* The referral code is kept across a restart; a refund takes back gus's share too. */
  th_engine_free(eng);
  eng = th_engine(&cfg);
  char text[48];
  snprintf(text, sizeof text, "REFUND %llu", (unsigned long long)receipt);
  assert_int_equal(th_cmd(eng, "bob", text, 0, &r), TALLY_OK);
  assert_int_equal(sql("SELECT count(*) FROM (SELECT l.a, sum(l.m) s FROM transfers t, unnest(t.leg_accounts,"
                       " t.leg_amounts) l(a, m) WHERE t.id = %llu OR t.ref_transfer = %llu GROUP BY l.a) x WHERE s <> 0",
                       (unsigned long long)receipt, (unsigned long long)receipt), 0);
  assert_int_equal(th_cmd(eng, "carol", "BUY mug ref=pal", 0, &r), TALLY_OK);
  finish();
}

/* Waits up to ms for an announcement containing needle. */
static int announced_within(const char *needle, int ms) {
  for (int waited = 0; waited < ms; waited += 100) {
    if (th_announced(needle)) return 1;
    th_settle(eng, 100);
  }
  return th_announced(needle);
}

/* With tip_message_hold, a tip's message goes to the channel's moderators
 * first; HIDE keeps it off the channel for good (across a restart), the
 * money moves regardless, and a message still waiting at a restart is said
 * after it. */
static void test_tip_messages_held_for_moderators(void **state) {
  (void)state;
  setup_holding_tips("audtipmsg", 2);
  th_reply r;

  assert_int_equal(run("bob", "TIP alice 1 great show tonight", 0, &r), TALLY_OK);
  uint64_t kept = r.receipt;
  assert_true(th_announced("#live: Thank you bob for tipping alice 1.00 credits! Their message follows in 2 s."));
  char text[160];
  snprintf(text, sizeof text, "@#live: Tip %llu from bob to alice says: great show tonight", (unsigned long long)kept);
  assert_true(th_announced(text));
  assert_false(th_announced("#live: bob's message with the tip of 1.00 credits to alice: great show tonight"));
  assert_int_equal(run("bob", "TIP alice 1 some rude words", 0, &r), TALLY_OK);
  uint64_t hidden = r.receipt;

  char hide[64];
  snprintf(hide, sizeof hide, "HIDE %llu", (unsigned long long)hidden);
  assert_int_equal(run("carol", hide, 0, NULL), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd(eng, "mod", hide, HOST, &r), TALLY_ENOT_IN_CHANNEL);
  assert_int_equal(th_cmd_in(eng, "mod", "#elsewhere", hide, HOST, &r), TALLY_ENOT_HELD);
  assert_int_equal(run("mod", "HIDE", HOST, NULL), TALLY_EBAD_SYNTAX);
  assert_int_equal(run("mod", hide, HOST, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "is hidden; the tip stands"));
  snprintf(text, sizeof text, "@#live: mod hid the message of tip %llu from bob", (unsigned long long)hidden);
  assert_true(th_announced(text));
  th_settle(eng, 100); /* a few ticks: the hidden slot stays until its hold ends */
  assert_int_equal(run("mod", hide, HOST, &r), TALLY_OK); /* again: already hidden */

  assert_true(announced_within("#live: bob's message with the tip of 1.00 credits to alice: great show tonight", 4000));
  th_settle(eng, 300);
  assert_false(th_announced("#live: bob's message with the tip of 1.00 credits to alice: some rude words"));
  snprintf(hide, sizeof hide, "HIDE %llu", (unsigned long long)kept);
  assert_int_equal(run("mod", hide, HOST, &r), TALLY_ENOT_HELD); /* said already: IRC cannot take it back */

  /* A restart within the hold: the waiting message is said after it, the
   * hidden one never. */
  assert_int_equal(run("carol", "TIP alice 2 see you next week", 0, &r), TALLY_OK);
  assert_int_equal(run("carol", "TIP alice 2 spoiler alert", 0, &r), TALLY_OK);
  snprintf(hide, sizeof hide, "HIDE %llu", (unsigned long long)r.receipt);
  assert_int_equal(run("mod", hide, HOST, &r), TALLY_OK);
  th_engine_free(eng);
  eng = th_engine(&cfg);
  assert_true(announced_within("#live: carol's message with the tip of 2.00 credits to alice: see you next week", 4000));
  th_settle(eng, 500);
  assert_false(th_announced("#live: carol's message with the tip of 2.00 credits to alice: spoiler alert"));

  /* Every tip moved its money; the ledger holds what was held and hidden. */
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 2"), 4);
  assert_int_equal(sql("SELECT count(*) FROM held_messages"), 4);
  assert_int_equal(sql("SELECT count(*) FROM hidden_messages"), 2);
  assert_int_equal(sql("SELECT count(*) FROM hidden_messages h JOIN accounts a ON a.id = h.by_account"
                       " WHERE a.name = 'user:mod'"), 2);

  /* At most TALLY__HELD_TIPS_MAX (256) messages wait; the next is said at
   * once with its thanks, and has no held_messages row. */
  for (int i = 0; i <= 256; i++) {
    char tip[64];
    snprintf(tip, sizeof tip, "TIP alice 0.01 overflow %d", i);
    assert_int_equal(run("dave", tip, 0, &r), TALLY_OK);
  }
  assert_true(th_announced("#live: Thank you dave for tipping alice 0.01 credits: overflow 256"));
  assert_false(th_announced("#live: Thank you dave for tipping alice 0.01 credits: overflow 255"));
  assert_int_equal(sql("SELECT count(*) FROM held_messages"), 4 + 256);
  finish();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_highlights_shown_in_turn_and_refunded_when_not),
      cmocka_unit_test(test_highlight_as_topic),
      cmocka_unit_test(test_reactions_are_aggregated),
      cmocka_unit_test(test_attendance_supporters_and_privacy),
      cmocka_unit_test(test_referral_code_share_and_refund),
      cmocka_unit_test(test_tip_messages_held_for_moderators),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
