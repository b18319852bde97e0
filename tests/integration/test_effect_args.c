/* test_effect_args.c — structured effects (issue 10 item 2): the engine's
 * sentences carry a message code (enum tally_msg) and typed arguments (an
 * account, an amount in minor units with its decimals, a receipt, a count,
 * a sku, user text), each a byte span of the unchanged English text, so an
 * adapter renders them (HTML, mentions, escaping) without parsing English.
 * Every user-text span covers exactly the user's words, markup included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define CH "#live"
#define HOST TALLY_ROLE_HOST
#define MOD TALLY_ROLE_MODERATOR

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;

static int run(const char *account, const char *text, uint32_t roles, th_reply *r) {
  th_reply tmp;
  if (!r) r = &tmp;
  int rc = th_cmd_in(eng, account, CH, text, roles, r);
  if (getenv("TALLY_TEST_VERBOSE"))
    fprintf(stderr, "%s: %s -> %s %s [%u %s]\n", account, text, tally_err_name(rc), r->text, r->msg, r->args);
  return rc;
}

/* alice and host creators (alice sells "pin", titled with markup); bob and
 * carol buyers with 100 credits; tip messages held hold_s. */
static void setup(const char *name, uint32_t hold_s) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  cfg.tip_message_hold_s = hold_s;
  cfg.highlight_repeat_s = 5;
  eng = th_engine(&cfg);
  th_reply r;
  assert_int_equal(th_cmd(eng, "root", "TALLY ROLE alice creator", TALLY_ROLE_ADMIN, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "root", "TALLY ROLE host creator", TALLY_ROLE_ADMIN, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD pin 1 <i>Pin</i> & co", 0, &r), TALLY_OK);
  assert_int_equal(th_buyer(eng, "bob", "100", "pin"), TALLY_OK);
  assert_int_equal(th_buyer(eng, "carol", "100", "pin"), TALLY_OK);
}

static void finish(void) {
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

/* Parses args against text, checks there are `count` of them. */
static void parse(const char *text, const char *args, tally_effect_arg *a, size_t count) {
  size_t n = 0;
  int rc = tally_effect_args_parse(text, args, a, TALLY_EFFECT_ARGS_MAX, &n);
  if (rc || n != count) fprintf(stderr, "text '%s' args '%s' -> %d, %zu\n", text, args, rc, n);
  assert_int_equal(rc, TALLY_OK);
  assert_int_equal(n, count);
}

/* Argument a is of kind and covers exactly `covers` in text. */
static void span_is(const char *text, const tally_effect_arg *a, uint32_t kind, const char *covers) {
  if (a->kind != kind || a->len != strlen(covers) || strncmp(text + a->start, covers, a->len) != 0)
    fprintf(stderr, "want %u '%s', got %u '%.*s'\n", kind, covers, a->kind, (int)a->len, text + a->start);
  assert_int_equal(a->kind, kind);
  assert_int_equal(a->len, strlen(covers));
  assert_memory_equal(text + a->start, covers, a->len);
}

static void amount_is(const char *text, const tally_effect_arg *a, const char *covers, int64_t minor) {
  span_is(text, a, TALLY_ARG_AMOUNT, covers);
  assert_int_equal(a->value, minor);
  assert_int_equal(a->decimals, 2);
}

static void value_is(const char *text, const tally_effect_arg *a, uint32_t kind, int64_t value) {
  char covers[32];
  snprintf(covers, sizeof covers, "%lld", (long long)value);
  span_is(text, a, kind, covers);
  assert_int_equal(a->value, value);
}

/* Room lines may follow the reply they go with (a drop's "Only 1 left" is
 * said once the buy commits): waited for, up to 3 s. */
static th_effect find(const char *needle) {
  th_effect f;
  memset(&f, 0, sizeof f);
  for (int waited = 0; waited < 3000 && !th_effect_find(needle, &f); waited += 50) th_settle(eng, 50);
  if (!th_effect_find(needle, &f)) fprintf(stderr, "no effect says '%s'\n", needle);
  assert_true(f.kind != 0);
  return f;
}

/* A tip with a message: the thanks line names both accounts, the amount,
 * and the message as one user-text span, markup and all; the tipper's
 * reply too (with its receipt). The English is what it was. */
static void test_tip_message_is_one_span(void **state) {
  (void)state;
  setup("argtip", 0);
  th_reply r;
  const char *message = "*bold* <b>x</b>, 50% & \"more\"";
  char line[256];
  snprintf(line, sizeof line, "TIP alice 1.5 %s", message);
  assert_int_equal(run("bob", line, 0, &r), TALLY_OK);
  char text[256];
  snprintf(text, sizeof text, "Tipped 1.50 credits to alice. receipt %llu", (unsigned long long)r.receipt);
  assert_string_equal(r.text, text);
  assert_int_equal(r.msg, TALLY_MSG_TIPPED);
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  parse(r.text, r.args, a, 3);
  amount_is(r.text, &a[0], "1.50 credits", 150);
  span_is(r.text, &a[1], TALLY_ARG_ACCOUNT, "alice");
  value_is(r.text, &a[2], TALLY_ARG_RECEIPT, (int64_t)r.receipt);

  th_effect f = find("Thank you bob for tipping alice");
  snprintf(text, sizeof text, "Thank you bob for tipping alice 1.50 credits: %s", message);
  assert_string_equal(f.text, text);
  assert_int_equal(f.kind, TALLY_EFFECT_ANNOUNCE);
  assert_int_equal(f.msg, TALLY_MSG_TIP_THANKS);
  parse(f.text, f.args, a, 4);
  span_is(f.text, &a[0], TALLY_ARG_ACCOUNT, "bob");
  span_is(f.text, &a[1], TALLY_ARG_ACCOUNT, "alice");
  amount_is(f.text, &a[2], "1.50 credits", 150);
  span_is(f.text, &a[3], TALLY_ARG_TEXT, message);

  /* Without a message: no text argument. */
  assert_int_equal(run("carol", "TIP alice 2", 0, &r), TALLY_OK);
  f = find("Thank you carol for tipping alice");
  assert_string_equal(f.text, "Thank you carol for tipping alice 2.00 credits");
  parse(f.text, f.args, a, 3);
  amount_is(f.text, &a[2], "2.00 credits", 200);

  /* A refusal is text only. */
  assert_int_equal(run("bob", "TIP alice", 0, &r), TALLY_EBAD_SYNTAX);
  assert_int_equal(r.msg, TALLY_MSG_TEXT);
  assert_string_equal(r.args, "");
  finish();
}

/* A held tip message: the channel's thanks, the moderators' line (receipt,
 * accounts, the message as one span), the hide notice, and a kept message
 * said after its hold. */
static void test_held_tip_lines(void **state) {
  (void)state;
  setup("argheld", 1);
  th_reply r;
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  assert_int_equal(run("bob", "TIP alice 1 <script>x</script>", 0, &r), TALLY_OK);
  uint64_t rude = r.receipt;
  th_effect f = find("Their message follows in 1 s.");
  assert_int_equal(f.msg, TALLY_MSG_TIP_THANKS_HELD);
  parse(f.text, f.args, a, 3);
  span_is(f.text, &a[0], TALLY_ARG_ACCOUNT, "bob");
  amount_is(f.text, &a[2], "1.00 credits", 100);

  char says[128];
  snprintf(says, sizeof says, "Tip %llu from bob to alice says: ", (unsigned long long)rude);
  f = find(says);
  assert_int_equal(f.kind, TALLY_EFFECT_MODERATORS);
  assert_int_equal(f.msg, TALLY_MSG_TIP_HELD);
  parse(f.text, f.args, a, 5);
  value_is(f.text, &a[0], TALLY_ARG_RECEIPT, (int64_t)rude);
  span_is(f.text, &a[1], TALLY_ARG_ACCOUNT, "bob");
  span_is(f.text, &a[2], TALLY_ARG_ACCOUNT, "alice");
  span_is(f.text, &a[3], TALLY_ARG_TEXT, "<script>x</script>");
  value_is(f.text, &a[4], TALLY_ARG_RECEIPT, (int64_t)rude);

  char hide[64];
  snprintf(hide, sizeof hide, "HIDE %llu", (unsigned long long)rude);
  assert_int_equal(run("mod", hide, MOD, &r), TALLY_OK);
  th_settle(eng, 200);
  f = find("mod hid the message of tip");
  assert_int_equal(f.msg, TALLY_MSG_TIP_HIDDEN);
  parse(f.text, f.args, a, 3);
  span_is(f.text, &a[0], TALLY_ARG_ACCOUNT, "mod");
  value_is(f.text, &a[1], TALLY_ARG_RECEIPT, (int64_t)rude);
  span_is(f.text, &a[2], TALLY_ARG_ACCOUNT, "bob");

  assert_int_equal(run("carol", "TIP alice 3 see you <3", 0, &r), TALLY_OK);
  for (int waited = 0; waited < 4000 && !th_effect_find("carol's message with the tip", &f); waited += 100)
    th_settle(eng, 100);
  f = find("carol's message with the tip");
  assert_string_equal(f.text, "carol's message with the tip of 3.00 credits to alice: see you <3");
  assert_int_equal(f.msg, TALLY_MSG_TIP_MESSAGE);
  parse(f.text, f.args, a, 4);
  span_is(f.text, &a[0], TALLY_ARG_ACCOUNT, "carol");
  amount_is(f.text, &a[1], "3.00 credits", 300);
  span_is(f.text, &a[2], TALLY_ARG_ACCOUNT, "alice");
  span_is(f.text, &a[3], TALLY_ARG_TEXT, "see you <3");
  finish();
}

/* A purchase's receipt reply: count, the title (user text), sku, amount,
 * receipt. */
static void test_purchase_reply(void **state) {
  (void)state;
  setup("argbuy", 0);
  th_reply r;
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  assert_int_equal(th_cmd(eng, "bob", "BUY pin 2", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Bought 2x <i>Pin</i> & co (pin) for 2.00 credits. receipt "));
  assert_int_equal(r.msg, TALLY_MSG_BOUGHT);
  parse(r.text, r.args, a, 5);
  value_is(r.text, &a[0], TALLY_ARG_COUNT, 2);
  span_is(r.text, &a[1], TALLY_ARG_TEXT, "<i>Pin</i> & co");
  span_is(r.text, &a[2], TALLY_ARG_SKU, "pin");
  amount_is(r.text, &a[3], "2.00 credits", 200);
  value_is(r.text, &a[4], TALLY_ARG_RECEIPT, (int64_t)r.receipt);
  finish();
}

/* A drop's lines: live (title, units, price, sku), low, sold out, and an
 * event's start and end (title as user text, counts and amounts). */
static void test_drop_and_event_lines(void **state) {
  (void)state;
  setup("argdrop", 0);
  th_reply r;
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  assert_int_equal(run("host", "EVENT START 30 Big <Launch>", HOST, &r), TALLY_OK);
  th_effect f = find("Live event \"Big <Launch>\" starts now");
  assert_int_equal(f.msg, TALLY_MSG_EVENT_STARTED);
  parse(f.text, f.args, a, 1);
  span_is(f.text, &a[0], TALLY_ARG_TEXT, "Big <Launch>");

  assert_int_equal(run("host", "DROP CREATE tee 2 3", HOST, &r), TALLY_OK);
  f = find("LIVE NOW: drop tee");
  assert_int_equal(f.msg, TALLY_MSG_DROP_LIVE);
  parse(f.text, f.args, a, 5);
  span_is(f.text, &a[0], TALLY_ARG_TEXT, "drop tee");
  value_is(f.text, &a[1], TALLY_ARG_COUNT, 2);
  amount_is(f.text, &a[2], "3.00 credits", 300);
  span_is(f.text, &a[3], TALLY_ARG_COMMAND, "BUY tee");
  span_is(f.text, &a[4], TALLY_ARG_SKU, "tee");

  assert_int_equal(run("host", "DROP CREATE later 5 4 start=+1h", HOST, &r), TALLY_OK);
  f = find("Drop coming: later - 5 units at 4.00 credits, starts in ");
  assert_int_equal(f.msg, TALLY_MSG_DROP_COMING);
  parse(f.text, f.args, a, 3);
  span_is(f.text, &a[0], TALLY_ARG_SKU, "later");
  value_is(f.text, &a[1], TALLY_ARG_COUNT, 5);
  amount_is(f.text, &a[2], "4.00 credits", 400);

  assert_int_equal(run("bob", "BUY tee", 0, &r), TALLY_OK);
  f = find("Only 1 left of tee!");
  assert_int_equal(f.msg, TALLY_MSG_DROP_LOW);
  parse(f.text, f.args, a, 2);
  value_is(f.text, &a[0], TALLY_ARG_COUNT, 1);
  span_is(f.text, &a[1], TALLY_ARG_SKU, "tee");
  assert_int_equal(run("carol", "BUY tee", 0, &r), TALLY_OK);
  f = find("SOLD OUT: tee - all 2 units are gone.");
  assert_int_equal(f.msg, TALLY_MSG_DROP_SOLD_OUT);
  parse(f.text, f.args, a, 2);
  span_is(f.text, &a[0], TALLY_ARG_SKU, "tee");
  value_is(f.text, &a[1], TALLY_ARG_COUNT, 2);

  assert_int_equal(run("bob", "TIP host 1", 0, &r), TALLY_OK);
  assert_int_equal(run("host", "EVENT STOP", HOST, &r), TALLY_OK);
  th_settle(eng, 300);
  f = find("Event \"Big <Launch>\" ended: ");
  assert_int_equal(f.msg, TALLY_MSG_EVENT_ENDED);
  parse(f.text, f.args, a, 5);
  span_is(f.text, &a[0], TALLY_ARG_TEXT, "Big <Launch>");
  value_is(f.text, &a[1], TALLY_ARG_COUNT, 2);
  amount_is(f.text, &a[2], "6.00 credits", 600);
  value_is(f.text, &a[3], TALLY_ARG_COUNT, 1);
  amount_is(f.text, &a[4], "1.00 credits", 100);
  finish();
}

/* Each ACCOUNT argument from `from` on is followed by its AMOUNT, whose
 * text is the value formatted; returns how many pairs. */
static int account_amount_pairs(const char *text, const tally_effect_arg *a, size_t n, size_t from) {
  int pairs = 0;
  for (size_t i = from; i + 1 < n; i += 2) {
    assert_int_equal(a[i].kind, TALLY_ARG_ACCOUNT);
    assert_int_equal(a[i + 1].kind, TALLY_ARG_AMOUNT);
    char shown[48];
    snprintf(shown, sizeof shown, "%lld.%02lld credits", (long long)(a[i + 1].value / 100),
             (long long)(a[i + 1].value % 100));
    span_is(text, &a[i + 1], TALLY_ARG_AMOUNT, shown);
    pairs++;
  }
  return pairs;
}

/* The event's attendance line: the top supporters and the creators, each
 * an account with its amount. */
static void test_attendance_line(void **state) {
  (void)state;
  setup("argattend", 0);
  th_reply r;
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  th_presence(eng, "bob", CH, 1);
  assert_int_equal(run("host", "EVENT START 30 Stream", HOST, &r), TALLY_OK);
  th_presence(eng, "bob", CH, 1);
  assert_int_equal(run("bob", "TIP host 4", 0, &r), TALLY_OK);
  assert_int_equal(run("carol", "TIP host 3", 0, &r), TALLY_OK);
  assert_int_equal(run("host", "DROP CREATE tee 5 2", HOST, &r), TALLY_OK); /* a sale: host earns */
  assert_int_equal(run("bob", "BUY tee", 0, &r), TALLY_OK);
  assert_int_equal(run("host", "EVENT STOP", HOST, &r), TALLY_OK);
  th_effect f;
  for (int waited = 0; waited < 3000 && !th_effect_find("Attendance: ", &f); waited += 100) th_settle(eng, 100);
  f = find("Attendance: ");
  assert_int_equal(f.msg, TALLY_MSG_EVENT_ATTENDANCE);
  size_t n = 0;
  assert_int_equal(tally_effect_args_parse(f.text, f.args, a, TALLY_EFFECT_ARGS_MAX, &n), TALLY_OK);
  if (getenv("TALLY_TEST_VERBOSE") || n != 7) fprintf(stderr, "attendance: '%s' [%s]\n", f.text, f.args);
  /* The count, then each named account with its amount. */
  assert_int_equal(n, 7);
  assert_int_equal(a[0].kind, TALLY_ARG_COUNT);
  assert_int_equal(account_amount_pairs(f.text, a, n, 1), 3);
  span_is(f.text, &a[1], TALLY_ARG_ACCOUNT, "bob");
  span_is(f.text, &a[3], TALLY_ARG_ACCOUNT, "carol");
  span_is(f.text, &a[5], TALLY_ARG_ACCOUNT, "host");
  const char *creators = strstr(f.text, ". Creators earned: host ");
  assert_non_null(creators);
  assert_true(a[5].start == (uint32_t)(creators - f.text) + 19);
  assert_non_null(strstr(f.text, "Top supporters: bob "));
  /* And the sums: bob's tip and purchase, carol's tip, the host's takings
   * of the 2.00 sale after the 2.5 % fee (tips are not "earned" here). */
  assert_int_equal(a[2].value, 600);
  assert_int_equal(a[4].value, 300);
  assert_int_equal(a[6].value, 195);
  finish();
}

/* A raffle's winners line names each charged winner as an account. */
static void test_raffle_winners_line(void **state) {
  (void)state;
  setup("argraffle", 0);
  th_reply r;
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  assert_int_equal(run("host", "DROP CREATE tix 2 5 mode=raffle for=2s", HOST, &r), TALLY_OK);
  th_effect f = find("RAFFLE OPEN: drop tix");
  assert_int_equal(f.msg, TALLY_MSG_RAFFLE_OPEN);
  assert_int_equal(run("bob", "BUY tix", 0, &r), TALLY_OK);
  assert_int_equal(run("carol", "BUY tix", 0, &r), TALLY_OK);
  for (int waited = 0; waited < 30000 && !th_effect_find("RAFFLE tix winners", &f); waited += 250)
    th_settle(eng, 250);
  f = find("RAFFLE tix closed with 2 entries.");
  assert_int_equal(f.msg, TALLY_MSG_RAFFLE_CLOSED);
  parse(f.text, f.args, a, 4);
  span_is(f.text, &a[0], TALLY_ARG_SKU, "tix");
  value_is(f.text, &a[1], TALLY_ARG_COUNT, 2);
  value_is(f.text, &a[2], TALLY_ARG_COUNT, 2);
  span_is(f.text, &a[3], TALLY_ARG_SKU, "tix");
  f = find("RAFFLE tix winners (2 of 2 units): ");
  assert_int_equal(f.msg, TALLY_MSG_RAFFLE_WINNERS);
  size_t n = 0;
  assert_int_equal(tally_effect_args_parse(f.text, f.args, a, TALLY_EFFECT_ARGS_MAX, &n), TALLY_OK);
  assert_int_equal(n, 5);
  span_is(f.text, &a[0], TALLY_ARG_SKU, "tix");
  value_is(f.text, &a[1], TALLY_ARG_COUNT, 2);
  value_is(f.text, &a[2], TALLY_ARG_COUNT, 2);
  assert_int_equal(a[3].kind, TALLY_ARG_ACCOUNT);
  assert_int_equal(a[4].kind, TALLY_ARG_ACCOUNT);
  char names[64];
  snprintf(names, sizeof names, "%.*s %.*s", (int)a[3].len, f.text + a[3].start, (int)a[4].len, f.text + a[4].start);
  assert_true(strcmp(names, "bob carol") == 0 || strcmp(names, "carol bob") == 0);
  finish();
}

/* A shown highlight: the buyer and the message as one span. */
static void test_highlight_line(void **state) {
  (void)state;
  setup("arghl", 0);
  th_reply r;
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  assert_int_equal(run("host", "EVENT START 30 Stream", HOST, &r), TALLY_OK);
  assert_int_equal(run("host", "EVENT TIER gold 2 3", HOST, &r), TALLY_OK);
  th_effect sale = find("Highlights on sale: gold pins your message for 3 s, 2.00 credits.");
  assert_int_equal(sale.msg, TALLY_MSG_HIGHLIGHTS_ON_SALE);
  parse(sale.text, sale.args, a, 4);
  span_is(sale.text, &a[0], TALLY_ARG_TEXT, "gold");
  amount_is(sale.text, &a[1], "2.00 credits", 200);
  span_is(sale.text, &a[2], TALLY_ARG_COMMAND, "HIGHLIGHT gold <message>");
  span_is(sale.text, &a[3], TALLY_ARG_TEXT, "gold");
  assert_int_equal(a[3].start, a[2].start + strlen("HIGHLIGHT "));
  assert_int_equal(run("bob", "HIGHLIGHT gold Hi @everyone <b>!</b>", 0, &r), TALLY_OK);
  th_effect f;
  for (int waited = 0; waited < 3000 && !th_effect_find("HIGHLIGHT from bob", &f); waited += 100) th_settle(eng, 100);
  f = find("HIGHLIGHT from bob");
  assert_string_equal(f.text, "HIGHLIGHT from bob: Hi @everyone <b>!</b>");
  assert_int_equal(f.msg, TALLY_MSG_HIGHLIGHT);
  parse(f.text, f.args, a, 2);
  span_is(f.text, &a[0], TALLY_ARG_ACCOUNT, "bob");
  span_is(f.text, &a[1], TALLY_ARG_TEXT, "Hi @everyone <b>!</b>");
  finish();
}

/* Effect f (args a, n of them) names exactly one command, arguments[at],
 * covering exactly `covers` and ending the sentence or followed by
 * `after`; the text has no network's command syntax ("!buy"). */
static void command_is(const th_effect *f, const tally_effect_arg *a, size_t n, size_t at, const char *covers,
                       const char *after) {
  if (strchr(f->text, '!')) fprintf(stderr, "a '!' in '%s'\n", f->text);
  assert_null(strchr(f->text, '!'));
  span_is(f->text, &a[at], TALLY_ARG_COMMAND, covers);
  size_t commands = 0;
  for (size_t i = 0; i < n; i++) commands += a[i].kind == TALLY_ARG_COMMAND;
  assert_int_equal(commands, 1);
  const char *rest = f->text + a[at].start + a[at].len;
  assert_memory_equal(rest, after, strlen(after));
  if (!after[0]) assert_string_equal(rest, "");
  for (size_t i = 1; i < n; i++) assert_true(a[i - 1].start <= a[i].start); /* text order */
}

/* The lines that tell a room what to type (a drop, a raffle, highlights,
 * reactions) name the command as the engine takes it, one COMMAND span
 * ("BUY tee"), never IRC's "!buy tee": the adapter says it its network's
 * way. The arguments inside it (the sku, the tier) follow it. */
static void test_command_spans(void **state) {
  (void)state;
  setup("argcmd", 0);
  th_reply r;
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  assert_int_equal(run("host", "EVENT START 30 Stream", HOST, &r), TALLY_OK);
  assert_int_equal(run("host", "DROP CREATE tee 2 3", HOST, &r), TALLY_OK);
  th_effect f = find("LIVE NOW: drop tee");
  assert_int_equal(f.msg, TALLY_MSG_DROP_LIVE);
  parse(f.text, f.args, a, 5);
  command_is(&f, a, 5, 3, "BUY tee", "");
  assert_non_null(strstr(f.text, ". Type: BUY tee"));
  span_is(f.text, &a[4], TALLY_ARG_SKU, "tee");

  assert_int_equal(run("host", "DROP CREATE tix 2 5 mode=raffle", HOST, &r), TALLY_OK);
  f = find("RAFFLE OPEN: drop tix");
  assert_int_equal(f.msg, TALLY_MSG_RAFFLE_OPEN);
  parse(f.text, f.args, a, 5);
  span_is(f.text, &a[0], TALLY_ARG_TEXT, "drop tix");
  value_is(f.text, &a[1], TALLY_ARG_COUNT, 2);
  amount_is(f.text, &a[2], "5.00 credits", 500);
  command_is(&f, a, 5, 3, "BUY tix", " (no charge now; ");
  assert_non_null(strstr(f.text, "Enter with BUY tix (no charge now; "));
  span_is(f.text, &a[4], TALLY_ARG_SKU, "tix");

  assert_int_equal(run("host", "EVENT TIER gold 2 3", HOST, &r), TALLY_OK);
  f = find("Highlights on sale: gold");
  parse(f.text, f.args, a, 4);
  command_is(&f, a, 4, 2, "HIGHLIGHT gold <message>", "");
  span_is(f.text, &a[3], TALLY_ARG_TEXT, "gold");

  assert_int_equal(run("host", "EVENT REACT 0.10", HOST, &r), TALLY_OK);
  f = find("Paid reactions on sale: ");
  assert_int_equal(f.msg, TALLY_MSG_REACTIONS_ON_SALE);
  assert_string_equal(f.text, "Paid reactions on sale: 0.10 credits each. Type: REACT <emote>");
  parse(f.text, f.args, a, 2);
  amount_is(f.text, &a[0], "0.10 credits", 10);
  command_is(&f, a, 2, 1, "REACT <emote>", "");
  finish();
}

/* The decoder refuses what no engine sends: a span past the text, an
 * unknown kind, a missing value, junk. */
static void test_args_parse_refuses(void **state) {
  (void)state;
  tally_effect_arg a[TALLY_EFFECT_ARGS_MAX];
  size_t n;
  assert_int_equal(tally_effect_args_parse("hello", "", a, 8, &n), TALLY_OK);
  assert_int_equal(n, 0);
  assert_int_equal(tally_effect_args_parse("hello", "1:0+5", a, 8, &n), TALLY_OK);
  assert_int_equal(n, 1);
  assert_int_equal(tally_effect_args_parse("hello", "1:1+5", a, 8, &n), TALLY_EFRAME);
  assert_int_equal(tally_effect_args_parse("hello", "9:0+1", a, 8, &n), TALLY_EFRAME);
  assert_int_equal(tally_effect_args_parse("hello", "0:0+1", a, 8, &n), TALLY_EFRAME);
  assert_int_equal(tally_effect_args_parse("BUY x", "8:0+5,5:4+1", a, 8, &n), TALLY_OK); /* a command, its sku */
  assert_int_equal(n, 2);
  assert_int_equal(a[0].kind, TALLY_ARG_COMMAND);
  assert_int_equal(tally_effect_args_parse("hello", "2:0+1", a, 8, &n), TALLY_EFRAME);   /* amount: no value */
  assert_int_equal(tally_effect_args_parse("hello", "2:0+1=5", a, 8, &n), TALLY_EFRAME); /* no decimals */
  assert_int_equal(tally_effect_args_parse("hello", "2:0+1=-5/2", a, 8, &n), TALLY_OK);
  assert_int_equal(a[0].value, -5);
  assert_int_equal(tally_effect_args_parse("hello", "1:0+1,", a, 8, &n), TALLY_EFRAME);
  assert_int_equal(tally_effect_args_parse("hello", "1:0+1;1:0+1", a, 8, &n), TALLY_EFRAME);
  assert_int_equal(tally_effect_args_parse("hello", "1:0+99999999999999999999", a, 8, &n), TALLY_EFRAME);
  assert_int_equal(tally_effect_args_parse("hello", "1:0+1,1:1+1", a, 1, &n), TALLY_ETOOBIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tip_message_is_one_span),
      cmocka_unit_test(test_held_tip_lines),
      cmocka_unit_test(test_purchase_reply),
      cmocka_unit_test(test_drop_and_event_lines),
      cmocka_unit_test(test_highlight_line),
      cmocka_unit_test(test_attendance_line),
      cmocka_unit_test(test_raffle_winners_line),
      cmocka_unit_test(test_command_spans),
      cmocka_unit_test(test_args_parse_refuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
