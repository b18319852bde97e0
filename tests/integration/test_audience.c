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

/* Sets config keys by name from "key=value,key=value" (new keys by name,
 * so a test also says what a build without them lacks). */
static void config_keys(const char *kv) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", kv ? kv : "");
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    assert_non_null(eq);
    *eq = 0;
    char err[TALLY_ERRBUF_BYTES];
    int rc = tally_config_set(&cfg, tok, eq + 1, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, TALLY_OK);
  }
}

/* alice and host creators; bob, carol, dave, gus with 100 credits and
 * consent; tip messages held tip_hold_s; config keys kv. */
static void setup_tuned(const char *name, uint32_t tip_hold_s, const char *kv) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.highlight_repeat_s = 5;
  cfg.tip_message_hold_s = tip_hold_s;
  config_keys(kv);
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE alice creator", OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE host creator", OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD pin 1 Pin", 0, &r), TALLY_OK);
  const char *buyers[] = {"bob", "carol", "dave", "gus"};
  for (int i = 0; i < 4; i++) assert_int_equal(th_buyer(eng, buyers[i], "100", "pin"), TALLY_OK);
}

static void setup_holding_tips(const char *name, uint32_t tip_hold_s) { setup_tuned(name, tip_hold_s, NULL); }
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
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE host creator", OPER, &r), TALLY_OK);
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

  finish();
}


/* The event id from "Event started (id N)." */
static unsigned long long event_started(const char *channel) {
  th_reply r;
  assert_int_equal(th_cmd_in(eng, "host", channel, "EVENT START 30 Stream", HOST, &r), TALLY_OK);
  const char *id = strstr(r.text, "(id ");
  assert_non_null(id);
  return strtoull(id + 4, NULL, 10);
}

#define HL_BOUGHT "SELECT count(*) FROM transfers t JOIN items i ON i.id = t.item_id WHERE t.kind = 1 AND i.kind = 3"

/* Issue 9 #2 and #12: a highlight tier's sku cannot be bought with BUY
 * (which skipped the queue's checks, so the 257th committed highlight
 * aborted the engine); HIGHLIGHT is refused before any payment once the
 * account's or the channel's share of the queue is taken. */
static void test_highlight_queue_has_quotas_and_no_back_door(void **state) {
  (void)state;
  setup_tuned("audhlquota", 0, "highlights_per_channel=3,highlights_per_account=2");
  th_reply r;
  unsigned long long ev = event_started(CH);
  assert_int_equal(run("host", "EVENT TIER gold 0.01 600", HOST, NULL), TALLY_OK);
  assert_int_equal(run("host", "EVENT REACT 0.01", HOST, NULL), TALLY_OK);
  char buy[64];
  snprintf(buy, sizeof buy, "BUY hl-%llu-gold", ev);
  assert_int_equal(run("bob", buy, 0, &r), TALLY_EBAD_SYNTAX);
  assert_non_null(strstr(r.text, "HIGHLIGHT"));
  snprintf(buy, sizeof buy, "BUY react-%llu", ev);
  assert_int_equal(run("bob", buy, 0, &r), TALLY_EBAD_SYNTAX);
  assert_non_null(strstr(r.text, "REACT"));
  assert_int_equal(sql(HL_BOUGHT), 0);

  assert_int_equal(run("bob", "HIGHLIGHT gold one", 0, NULL), TALLY_OK);
  assert_int_equal(run("bob", "HIGHLIGHT gold two", 0, NULL), TALLY_OK);
  assert_int_equal(run("bob", "HIGHLIGHT gold three", 0, &r), TALLY_ETOO_MANY); /* bob's share */
  assert_int_equal(run("carol", "HIGHLIGHT gold one", 0, NULL), TALLY_OK);
  assert_int_equal(run("dave", "HIGHLIGHT gold one", 0, &r), TALLY_EBUSY); /* the channel's share */
  assert_non_null(strstr(r.text, "queue is full"));
  assert_int_equal(sql(HL_BOUGHT), 3); /* the refused ones paid nothing */
  /* Another channel has a share of its own; bob's share is his everywhere. */
  assert_int_equal(th_cmd_in(eng, "host2", "#other", "EVENT START 30 Other", HOST, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "admin", "TALLY ROLE host2 creator", OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "host2", "#other", "EVENT TIER gold 0.01 600", HOST, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "dave", "#other", "HIGHLIGHT gold hi", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd_in(eng, "bob", "#other", "HIGHLIGHT gold hi", 0, &r), TALLY_ETOO_MANY);
  assert_int_equal(sql(HL_BOUGHT), 4);
  finish();
}

/* Issue 9 #2: a highlight the engine must refund, but whose payee spent
 * the credits, no longer keeps its slot for good: retried for
 * highlight_refund_wait seconds, then the slot is freed (and logged). */
static void test_unpayable_highlight_refund_frees_its_slot(void **state) {
  (void)state;
  setup_tuned("audhlstuck", 0, "highlights_per_channel=2,highlight_refund_wait=1");
  th_reply r;
  (void)event_started(CH);
  assert_int_equal(run("host", "EVENT TIER gold 1 600", HOST, NULL), TALLY_OK);
  assert_int_equal(run("bob", "HIGHLIGHT gold first", 0, NULL), TALLY_OK);   /* shows */
  assert_int_equal(run("carol", "HIGHLIGHT gold second", 0, NULL), TALLY_OK); /* waits */
  int64_t earned = sql("SELECT sum(e.amount_minor) FROM entries e JOIN accounts a ON a.id = e.account_id"
                       " WHERE a.name = 'user:host'");
  char tip[64];
  snprintf(tip, sizeof tip, "TIP alice %lld.%02lld", (long long)(earned / 100), (long long)(earned % 100));
  assert_int_equal(th_cmd(eng, "host", tip, 0, &r), TALLY_OK); /* the host spends what carol's refund needs */
  assert_int_equal(run("host", "EVENT STOP", HOST, NULL), TALLY_OK);
  th_settle(eng, 2500);
  (void)event_started(CH);
  assert_int_equal(run("host", "EVENT TIER gold 1 600", HOST, NULL), TALLY_OK);
  assert_int_equal(run("dave", "HIGHLIGHT gold third", 0, NULL), TALLY_OK);
  assert_int_equal(run("gus", "HIGHLIGHT gold fourth", 0, NULL), TALLY_OK); /* carol's slot was given up */
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 3"), 0); /* nothing to refund it from */
  finish();
}

/* Issue 9 #4: the engine's own skus (hl-..., react-...) cannot be taken by
 * ITEM ADD or DROP CREATE, and an existing item of such a sku that is not
 * the event's tier is not taken over (its creator would be paid). */
static void test_highlight_skus_cannot_be_squatted(void **state) {
  (void)state;
  setup("audsquat");
  th_reply r;
  unsigned long long ev = event_started(CH);
  char text[96];
  snprintf(text, sizeof text, "ITEM ADD hl-%llu-gold 1 Gold", ev);
  assert_int_equal(th_cmd(eng, "alice", text, 0, &r), TALLY_EBAD_SYNTAX);
  snprintf(text, sizeof text, "ITEM ADD react-%llu 1 Reactions", ev);
  assert_int_equal(th_cmd(eng, "alice", text, 0, &r), TALLY_EBAD_SYNTAX);
  snprintf(text, sizeof text, "DROP CREATE hl-%llu-silver 1 1", ev);
  assert_int_equal(run("host", text, HOST, &r), TALLY_EBAD_SYNTAX);
  /* An item of that sku from before the prefix was reserved. */
  th_engine_free(eng);
  assert_int_equal(sql("WITH i AS (INSERT INTO items (id, sku, creator_id, price_minor, stock, title, refund_window_s,"
                       " version, updated_ms) SELECT 900000000, 'hl-%llu-gold', id, 100, NULL, 'squat', 86400, 1, 0"
                       " FROM accounts WHERE name = 'user:alice' RETURNING 1) SELECT count(*) FROM i", ev), 1);
  eng = th_engine(&cfg);
  assert_int_equal(run("host", "EVENT TIER gold 1 5", HOST, &r), TALLY_EEXISTS);
  assert_int_equal(run("bob", "HIGHLIGHT gold hello", 0, &r), TALLY_EUNKNOWN_ITEM);
  assert_int_equal(run("host", "EVENT TIER silver 1 5", HOST, &r), TALLY_OK); /* other tiers are fine */
  assert_int_equal(run("bob", "HIGHLIGHT silver hello", 0, &r), TALLY_OK);
  assert_int_equal(sql("SELECT count(*) FROM transfers t JOIN items i ON i.id = t.item_id WHERE i.sku = 'hl-%llu-gold'", ev), 0);
  finish();
}

/* Issue 9 #12: held tip messages have a share per channel and per account,
 * and a full table fails closed: the TIP with a message is refused before
 * any charge ("the moderation queue is full"), a TIP without one passes. */
static void test_held_tip_messages_fail_closed(void **state) {
  (void)state;
  setup_tuned("audtipfull", 600, "held_tips_per_channel=3,held_tips_per_account=2");
  th_reply r;
  assert_int_equal(run("bob", "TIP alice 1 one", 0, NULL), TALLY_OK);
  assert_int_equal(run("bob", "TIP alice 1 two", 0, NULL), TALLY_OK);
  assert_int_equal(run("bob", "TIP alice 1 three", 0, &r), TALLY_ETOO_MANY); /* bob's share */
  assert_int_equal(run("carol", "TIP alice 1 one", 0, NULL), TALLY_OK);
  assert_int_equal(run("dave", "TIP alice 1 one", 0, &r), TALLY_EBUSY); /* the channel's share */
  assert_non_null(strstr(r.text, "the moderation queue is full"));
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 2"), 3); /* refused: not charged */
  assert_int_equal(run("dave", "TIP alice 1", 0, NULL), TALLY_OK);       /* no message: nothing to hold */
  assert_int_equal(th_cmd_in(eng, "dave", "#other", "TIP alice 1 elsewhere", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "dave", "TIP alice 1 in private", 0, &r), TALLY_OK); /* not said in a channel */
  assert_int_equal(sql("SELECT count(*) FROM held_messages"), 4);
  assert_false(th_announced("three"));
  /* The whole table (256, all channels): what still waits after a restart
   * counts, and the next message is refused, not said unmoderated. */
  th_engine_free(eng);
  config_keys("held_tips_per_channel=256,held_tips_per_account=256");
  eng = th_engine(&cfg);
  int taken = 0;
  for (int i = 0; i < 300; i++) {
    char tip[64];
    snprintf(tip, sizeof tip, "TIP alice 0.01 fill %d", i);
    int rc = run("gus", tip, 0, &r);
    if (rc != TALLY_OK) {
      assert_int_equal(rc, TALLY_EBUSY);
      assert_non_null(strstr(r.text, "the moderation queue is full"));
      break;
    }
    taken++;
  }
  assert_int_equal(taken, 256 - 4);
  assert_false(th_announced("credits: fill")); /* not said unmoderated */
  assert_int_equal(sql("SELECT count(*) FROM transfers t JOIN accounts a ON a.id = t.account_id"
                       " WHERE a.name = 'user:gus' AND t.kind = 2"), 256 - 4);
  finish();
}

/* Issue 9 #14: TALLY PRIVACY on keeps a raffle winner and a creator out of
 * the lines that name winners and what creators earned. */
static void test_privacy_in_raffle_winners_and_creators_earned(void **state) {
  (void)state;
  setup("audprivraffle");
  th_reply r;
  (void)event_started(CH);
  assert_int_equal(th_cmd(eng, "host", "TALLY PRIVACY on", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "bob", "TALLY PRIVACY on", 0, &r), TALLY_OK);
  assert_int_equal(run("host", "DROP CREATE vinyl 2 1 mode=raffle", HOST, NULL), TALLY_OK);
  assert_int_equal(run("alice", "DROP CREATE shirt 5 1", HOST, NULL), TALLY_OK);
  assert_int_equal(run("bob", "BUY vinyl", 0, NULL), TALLY_OK);
  assert_int_equal(run("carol", "BUY vinyl", 0, NULL), TALLY_OK);
  assert_int_equal(run("dave", "BUY shirt", 0, NULL), TALLY_OK);
  assert_int_equal(run("host", "DROP STOP vinyl", HOST, NULL), TALLY_OK);
  assert_true(announced_within("RAFFLE vinyl winners (2 of 2 units): carol, and 1 who prefers not to be named.", 5000));
  assert_int_equal(run("host", "EVENT STOP", HOST, NULL), TALLY_OK);
  assert_true(announced_within("Creators earned: alice 0.98 credits, and 1 who prefers not to be named.", 5000));
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
      cmocka_unit_test(test_highlight_queue_has_quotas_and_no_back_door),
      cmocka_unit_test(test_unpayable_highlight_refund_frees_its_slot),
      cmocka_unit_test(test_highlight_skus_cannot_be_squatted),
      cmocka_unit_test(test_held_tip_messages_fail_closed),
      cmocka_unit_test(test_privacy_in_raffle_winners_and_creators_earned),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
