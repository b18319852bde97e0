/* adv_actions.c — what hostile users do, one function an action, and the
 * weighted table the runner draws from. Each finding of the review that
 * seeded this layer has an action that reaches it: names in splits that
 * include the buyer, squatted engine skus, shared tables filled by one
 * user, long texts cut inside a character, replays of keys that left
 * memory, refunds of other people's receipts, restarts between any two
 * steps. Answers are not checked here (the integration tests check each
 * refusal's wording); the oracles after each step are (adv_check.c). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "adv.h"

#define HOST_ROLES TALLY_ROLE_CHANOP
#define OPER_ROLES (TALLY_ROLE_OPER | TALLY_ROLE_GRANT)

static void say(adv *a, const char *account, const char *channel, uint32_t roles, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void say(adv *a, const char *account, const char *channel, uint32_t roles, const char *fmt, ...) {
  char text[ADV_TEXT_BYTES];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  th_reply r;
  (void)adv_say(a, account, channel, text, roles, &r);
}

/* Text of about `bytes` bytes mixing 1- to 4-byte characters, so that any
 * byte limit may fall inside a character. */
static void mixed_text(adv *a, char *out, size_t bytes) {
  static const char *chars[] = {"a", "é", "€", "🎉", "ß", "字"};
  size_t n = 0;
  out[0] = 0;
  while (n + 5 < bytes) {
    /* A space now and then: words, but fewer than the tokenizer's limit. */
    const char *c = n % 40 == 39 ? " " : chars[adv_below(a, sizeof chars / sizeof chars[0])];
    size_t l = strlen(c);
    memcpy(out + n, c, l);
    n += l;
  }
  out[n] = 0;
}

static uint64_t some_receipt(adv *a) {
  if (a->receipt_count == 0) return 1 + adv_below(a, 50);
  uint32_t kept = a->receipt_count < ADV_RECEIPTS_KEPT ? a->receipt_count : ADV_RECEIPTS_KEPT;
  return a->receipts[adv_below(a, kept)];
}

static bool event_running(adv *a) {
  return th_sql_i64(a->dsn, "SELECT count(*) FROM (SELECT DISTINCT ON (id) stopped_ms FROM events"
                            " ORDER BY id, version DESC) q WHERE stopped_ms IS NULL") > 0;
}

void adv_setup(adv *a) {
  th_reply r;
  const char *creators[] = {"host", "shopkeep", "cre1", "cre2"};
  for (size_t i = 0; i < sizeof creators / sizeof creators[0]; i++)
    say(a, "admin", "", OPER_ROLES, "TALLY ROLE %s creator", creators[i]);
  say(a, "shopkeep", "", 0, "ITEM ADD " ADV_CANARY_SKU " 0.01 Honest canary");
  say(a, "cre1", "", 0, "ITEM ADD tee 1 Tee");
  say(a, "cre1", "", 0, "ITEM ADD pin 0.5 1000 Pin");
  for (int i = 0; i < ADV_BUYERS; i++) {
    char b[16];
    snprintf(b, sizeof b, "b%d", i);
    (void)th_buyer(a->e, b, "100", "pin");
  }
  if (th_buyer(a->e, "honest", "500", ADV_CANARY_SKU) != TALLY_OK) (void)th_cmd(a->e, "honest", "WALLET", 0, &r);
  a->honest_ready = true;
}

/* ---- actions ---------------------------------------------------------------- */
static void tip_long_text(adv *a) {
  char msg[400];
  mixed_text(a, msg, 200 + adv_below(a, 200));
  const char *from = adv_buyer(a), *to = adv_buyer(a);
  say(a, from, adv_below(a, 2) ? ADV_CHANNEL : "", 0, "TIP %s 0.01 %s", to, msg);
}

static void self_split(adv *a) {
  const char *b = adv_buyer(a);
  int n = ++a->drop_seq;
  th_reply r;
  char text[256];
  if (adv_below(a, 2)) {
    say(a, "host", ADV_CHANNEL, HOST_ROLES, "DROP CREATE d%d 5 0.10 split=host:5000,%s:5000", n, b);
    snprintf(text, sizeof text, "BUY d%d", n);
  } else {
    say(a, "cre1", "", 0, "ITEM ADD c%d 0.10 Coop %d", n, n);
    say(a, "cre1", "", 0, "ITEM SET c%d split cre1:5000,%s:5000", n, b);
    snprintf(text, sizeof text, "BUY c%d", n);
  }
  if (adv_say(a, b, ADV_CHANNEL, text, 0, &r) == TALLY_OK && r.receipt) {
    say(a, b, "", 0, "REFUND %llu 0.01", (unsigned long long)r.receipt);
    if (adv_below(a, 2)) adv_restart(a);
    say(a, b, "", 0, "REFUND %llu 0.01", (unsigned long long)r.receipt);
  }
}

static void refund_hostile(adv *a) {
  static const char *amounts[] = {"", " 0.01", " 1", " 0.5", " 999999999999", " -1", " 0", " 1e3"};
  say(a, adv_buyer(a), "", 0, "REFUND %llu%s", (unsigned long long)some_receipt(a),
      amounts[adv_below(a, sizeof amounts / sizeof amounts[0])]);
}

static void highlight_flood(adv *a) {
  uint64_t ev = adv_last_event(a);
  if (!ev || !event_running(a)) {
    say(a, "host", ADV_CHANNEL, HOST_ROLES, "EVENT START 30 Flood night");
    ev = adv_last_event(a);
  }
  say(a, "host", ADV_CHANNEL, HOST_ROLES, "EVENT TIER gold 0.01 600");
  int n = 40 + (int)adv_below(a, 260);
  char msg[200];
  for (int i = 0; i < n; i++) {
    mixed_text(a, msg, 20 + adv_below(a, 180));
    if (adv_below(a, 2)) say(a, adv_buyer(a), ADV_CHANNEL, 0, "HIGHLIGHT gold %s", msg);
    else say(a, adv_buyer(a), ADV_CHANNEL, 0, "BUY hl-%llu-gold", (unsigned long long)ev);
  }
}

/* An event's id is public once it starts (its lines name it), so a
 * creator can add the engine's sku for its tier before the host does. */
static void squat(adv *a) {
  if (event_running(a)) say(a, "host", ADV_CHANNEL, HOST_ROLES, "EVENT STOP");
  uint64_t before = adv_last_event(a);
  say(a, "host", ADV_CHANNEL, HOST_ROLES, "EVENT START 30 Squatted show");
  uint64_t ev = before;
  for (int i = 0; i < 100 && ev == before; i++) { /* the event row goes with the next batch */
    th_settle(a->e, 10);
    ev = adv_last_event(a);
  }
  say(a, "cre2", "", 0, "ITEM ADD hl-%llu-gold 0.01 Squatted tier", (unsigned long long)ev);
  say(a, "cre2", "", 0, "ITEM ADD react-%llu 0.01 Squatted reactions", (unsigned long long)ev);
  say(a, "host", ADV_CHANNEL, HOST_ROLES, "EVENT TIER gold 0.01 30");
  say(a, "host", ADV_CHANNEL, HOST_ROLES, "EVENT REACT 0.01");
  say(a, adv_buyer(a), ADV_CHANNEL, 0, "HIGHLIGHT gold hello");
  say(a, adv_buyer(a), ADV_CHANNEL, 0, "REACT 🔥");
  say(a, adv_buyer(a), ADV_CHANNEL, 0, "BUY hl-%llu-gold", (unsigned long long)ev);
}

static void event_cycle(adv *a) {
  int n = ++a->drop_seq;
  say(a, "host", ADV_CHANNEL, HOST_ROLES, "EVENT START 10 Raffle night");
  say(a, "host", ADV_CHANNEL, HOST_ROLES, "DROP CREATE r%d 2 0.10 mode=raffle", n);
  for (int i = 0; i < 3; i++) say(a, adv_buyer(a), ADV_CHANNEL, 0, "BUY r%d", n);
  if (adv_below(a, 3) == 0) adv_restart(a);
  say(a, "host", ADV_CHANNEL, HOST_ROLES, "EVENT STOP");
  th_settle(a->e, 200);
  say(a, "anyone", "", 0, "VERIFY DRAW r%d", n);
}

static void bad_input(adv *a) {
  static const char *lines[] = {
      "BUY \xff\xfe", "TIP b1 0.01 \xc3", "TIP b1 0.01 bad\x01ctl", "BUY tee 0", "BUY tee -1",
      "BUY tee 99999999999999999999", "TIP b1 99999999999999999999", "TIP b1 -5", "TIP b1 1e3",
      "TIP b1 \xd9\xa3", "TIP nobody 1", "TIP b1 0", "REFUND abc", "REFUND 18446744073709551615",
      "ITEM ADD x 0 T", "ITEM ADD \xe2\x82 1 T", "CONFIRM ZZZZZZ", "CONFIRM EXTEND", "DROP CREATE",
      "EVENT TIER", "HIGHLIGHT", "REACT", "SHIP", "REDEEM 0", "HIDE x", "TALLY", "TALLY ROLE",
      "VERIFY 99999999999", "", "   ", "BUY", "BUY tee 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17"};
  const char *who = adv_buyer(a);
  if (adv_below(a, 4) == 0) { /* overlong: more than a line holds */
    char big[ADV_TEXT_BYTES];
    memset(big, 'A', sizeof big - 1);
    memcpy(big, "TIP b1 0.01 ", 12);
    big[600 + adv_below(a, 1000)] = 0;
    say(a, who, ADV_CHANNEL, 0, "%s", big);
    return;
  }
  say(a, who, adv_below(a, 2) ? ADV_CHANNEL : "", 0, "%s", lines[adv_below(a, sizeof lines / sizeof lines[0])]);
}

static void replay(adv *a) {
  if (a->sent_count == 0) return;
  uint32_t kept = a->sent_count < ADV_SENT_KEPT ? a->sent_count : ADV_SENT_KEPT;
  const adv_sent *s = &a->sent[adv_below(a, kept)];
  th_reply r;
  const char *text = adv_below(a, 3) ? s->text : "TIP b2 0.02 replayed with other words";
  (void)adv_say_key(a, s->account, s->channel, text, s->msg_id, s->roles, &r);
}

/* More keys than memory keeps, then the first ones again: each must get
 * its first answer or a refusal, and never break a batch's signature. */
static void key_flood(adv *a) {
  if (a->key_flood_done) return;
  a->key_flood_done = true;
  uint32_t first = a->sent_count;
  for (int i = 0; i < 1100; i++) say(a, "b0", "", 0, "TIP b1 0.01");
  th_reply r;
  for (uint32_t i = 0; i < 8 && first >= 8; i++) {
    const adv_sent *s = &a->sent[(first - 8 + i) % ADV_SENT_KEPT];
    if (a->sent_count - (first - 8 + i) > ADV_SENT_KEPT) continue; /* overwritten in our table */
    (void)adv_say_key(a, s->account, s->channel, s->text, s->msg_id, s->roles, &r);
    a->replays_aged++;
  }
  /* Replays of the earliest flood keys, now out of the engine's memory. */
  char msg_id[48];
  for (int i = 1; i <= 4; i++) {
    snprintf(msg_id, sizeof msg_id, "adv%llu-%llu", (unsigned long long)a->seed,
             (unsigned long long)(a->msg_seq - 1100 + (uint64_t)i));
    (void)adv_say_key(a, "b0", "", "TIP b1 0.01", msg_id, 0, &r);
    a->replays_aged++;
  }
}

static void fill_held(adv *a) {
  int n = 100 + (int)adv_below(a, 200);
  for (int i = 0; i < n; i++) say(a, adv_buyer(a), ADV_CHANNEL, 0, "TIP %s 0.01 held message %d", adv_buyer(a), i);
}

static void referral(adv *a) {
  int n = ++a->drop_seq;
  const char *aff = adv_buyer(a), *b = adv_buyer(a);
  say(a, "cre1", "", 0, "ITEM ADD f%d 1 Referred %d", n, n);
  if (adv_below(a, 2)) say(a, "cre1", "", 0, "ITEM SET f%d split cre1:5000,cre2:5000", n);
  say(a, adv_below(a, 2) ? "cre2" : "cre1", "", 0, "REFCODE ADD rc%d %s 1000", n, aff);
  th_reply r;
  char text[64];
  snprintf(text, sizeof text, "BUY f%d 1 ref=rc%d", n, n);
  if (adv_say(a, b, "", text, 0, &r) == TALLY_OK && r.receipt) {
    if (adv_below(a, 2)) adv_restart(a);
    say(a, b, "", 0, "REFUND %llu%s", (unsigned long long)r.receipt, adv_below(a, 2) ? " 0.33" : "");
  }
}

static void role_churn(adv *a) {
  const char *b = adv_buyer(a);
  say(a, "admin", "", OPER_ROLES, "TALLY ROLE %s %s", b, adv_below(a, 2) ? "creator" : "none");
  int n = ++a->drop_seq;
  say(a, b, ADV_OTHER_CHANNEL, HOST_ROLES, "EVENT START 5 My own show");
  say(a, b, ADV_OTHER_CHANNEL, HOST_ROLES, "DROP CREATE o%d 3 0.5 split=%s:5000,newbie%d:5000", n, b, n);
  say(a, b, ADV_OTHER_CHANNEL, HOST_ROLES, "EVENT TIER gold 0.01 30");
  say(a, b, ADV_OTHER_CHANNEL, HOST_ROLES, "EVENT STOP");
}

static void restart(adv *a) { adv_restart(a); }

/* Every receipt anyone was given must verify against the ledger (I7 and
 * the batch signature), and a stranger must not learn what it was for. */
static void verify_issued(adv *a, const char *who) {
  if (a->receipt_count == 0) return;
  uint64_t receipt = some_receipt(a);
  char text[64];
  snprintf(text, sizeof text, "VERIFY %llu", (unsigned long long)receipt);
  th_reply r;
  int rc = adv_say(a, who, "", text, 0, &r);
  if (rc == TALLY_EBUSY || rc == TALLY_ERATE_LIMITED || a->broken[0]) return;
  const char *why = NULL;
  if (rc != TALLY_OK || !strstr(r.text, "VALID, in batch")) why = "an issued receipt does not verify";
  else if (strcmp(who, "stranger") == 0 && !strstr(r.text, "shown only to its buyer"))
    why = "VERIFY shows a stranger what a receipt was for";
  if (why)
    snprintf(a->broken, sizeof a->broken, "%s: %s -> %s %.150s", why, text, tally_err_name(rc), r.text);
}

static void lookups(adv *a) {
  static const char *lines[] = {"SHOP", "SHOP cre2", "RECEIPTS", "WALLET", "ORDERS", "DROP LIST", "EVENT",
                                "TALLY HELP", "TALLY STATS"};
  const char *who = adv_below(a, 2) ? adv_buyer(a) : "stranger";
  verify_issued(a, who);
  say(a, who, "", 0, "VERIFY %llu", (unsigned long long)(1 + adv_below(a, 5000)));
  say(a, who, "", 0, "%s", lines[adv_below(a, sizeof lines / sizeof lines[0])]);
}

static void kinds(adv *a) {
  static const char *kind[] = {"pass", "digital", "merch", "plain"};
  int n = ++a->drop_seq;
  char text[400];
  mixed_text(a, text, 150 + adv_below(a, 150));
  say(a, "cre2", "", 0, "ITEM ADD k%d 0.2 %s", n, text);
  say(a, "cre2", "", 0, "ITEM SET k%d kind %s", n, kind[adv_below(a, 4)]);
  say(a, "cre2", "", 0, "ITEM SET k%d delivery %s", n, text);
  const char *b = adv_buyer(a);
  th_reply r;
  char buy[32];
  snprintf(buy, sizeof buy, "BUY k%d", n);
  if (adv_say(a, b, "", buy, 0, &r) != TALLY_OK || !r.receipt) return;
  mixed_text(a, text, 150 + adv_below(a, 150));
  say(a, b, "", 0, "SHIP %llu %s", (unsigned long long)r.receipt, text);
  say(a, adv_below(a, 2) ? b : adv_buyer(a), "", 0, "REDEEM %llu", (unsigned long long)r.receipt);
  say(a, b, "", 0, "REFUND %llu", (unsigned long long)r.receipt);
  say(a, "cre2", "", 0, "ORDERS");
}

static void grant_hostile(adv *a) {
  static const char *amounts[] = {"99999999999999", "-1", "0", "1.234", "4611686018427387904", "5"};
  const char *amount = amounts[adv_below(a, sizeof amounts / sizeof amounts[0])];
  say(a, "admin", "", OPER_ROLES, "TALLY GRANT %s %s", adv_buyer(a), amount);
  say(a, adv_buyer(a), ADV_CHANNEL, HOST_ROLES, "TALLY GRANT %s 100", adv_buyer(a));
}

static void hide(adv *a) {
  say(a, "host", ADV_CHANNEL, HOST_ROLES, "HIDE %llu", (unsigned long long)some_receipt(a));
  say(a, adv_buyer(a), ADV_CHANNEL, 0, "HIDE %llu", (unsigned long long)some_receipt(a));
}

static void long_names(adv *a) {
  char text[400];
  mixed_text(a, text, 100 + adv_below(a, 250));
  say(a, "cre2", "", 0, "SHOP BIO %s", text);
  int n = ++a->drop_seq;
  say(a, "cre2", "", 0, "ITEM ADD t%d 0.3 %s", n, text);
  say(a, adv_buyer(a), "", 0, "BUY t%d", n);
  say(a, "cre2", "", 0, "ITEM SET t%d price 9", n); /* a raise right after a buyer saw the price */
  say(a, adv_buyer(a), "", 0, "BUY t%d", n);
}

const adv_action adv_actions[] = {
    {"tip with a long text", 10, tip_long_text},   {"a split naming the buyer", 8, self_split},
    {"refund of any receipt", 10, refund_hostile}, {"highlight flood", 3, highlight_flood},
    {"squat engine skus", 4, squat},               {"event with a raffle", 5, event_cycle},
    {"bad input", 10, bad_input},                  {"replay", 8, replay},
    {"flood of keys, then replays", 1, key_flood}, {"fill the moderation queue", 2, fill_held},
    {"referral on a co-op item", 5, referral},     {"role churn, hosting without the role", 4, role_churn},
    {"restart", 6, restart},                       {"lookups of others' receipts", 6, lookups},
    {"passes, digital goods, merch", 4, kinds},    {"hostile grants", 3, grant_hostile},
    {"hide", 3, hide},                             {"long bios and titles, a price raise", 3, long_names},
};
const int adv_action_count = (int)(sizeof adv_actions / sizeof adv_actions[0]);
