/* test_shop.c — co-op splits, limited-edition serials, passes, digital
 * goods, raffle drops and CONFIRM EXTEND through the public API against the
 * real PostgreSQL. `tally check` runs after each; the raffle is recomputed
 * by `tally draw` from the ledger. */
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

static int run(const char *account, const char *text) {
  th_reply r;
  int rc = th_cmd_in(eng, account, CH, text, 0, &r);
  if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "%s: %s -> %s %s\n", account, text, tally_err_name(rc), r.text);
  return rc;
}

#define sql(...) th_sql_i64f(dsn, __VA_ARGS__)

/* Creators alice, dave, erin and host (who runs drops); buyers bob and
 * carol with 100 credits and consent given. */
static void setup(const char *name) {
  th_fresh_db(name, dsn, sizeof dsn);
  th_config(&cfg, dsn);
  eng = th_engine(&cfg);
  th_reply r;
  const char *creators[] = {"alice", "dave", "erin", "host"};
  for (int i = 0; i < 4; i++) {
    char text[64];
    snprintf(text, sizeof text, "TALLY ROLE %s creator", creators[i]);
    assert_int_equal(th_cmd(eng, "admin", text, OPER, &r), TALLY_OK);
  }
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD pin 1 Pin", 0, &r), TALLY_OK);
  const char *buyers[] = {"bob", "carol"};
  for (int i = 0; i < 2; i++) assert_int_equal(th_buyer(eng, buyers[i], "100", "pin"), TALLY_OK);
}

static void finish(void) {
  th_engine_free(eng);
  assert_int_equal(th_tally_check(dsn), 0);
}

static int64_t balance(const char *account) {
  return sql("SELECT coalesce(sum(e.amount_minor), 0) FROM entries e JOIN accounts a ON a.id = e.account_id"
             " WHERE a.name = 'user:%s'", account);
}

/* The leg of the last purchase (or refund) of kind k credited/debited to account. */
static int64_t leg_of(int kind, const char *account) {
  return sql("SELECT coalesce(sum(l.m), 0) FROM (SELECT * FROM transfers WHERE kind = %d ORDER BY id DESC LIMIT 1) t,"
             " unnest(t.leg_accounts, t.leg_amounts) AS l(a, m) JOIN accounts ac ON ac.id = l.a"
             " WHERE ac.name = '%s'", kind, account);
}

static void test_coop_split_and_refunds(void **state) {
  (void)state;
  setup("shopcoop");
  /* 1.00 credits = 100 units, fee 2.5% = 2, 98 split 3333/3333/3334 bps:
   * floors 32/32/32, the two units left go to the largest remainders
   * (dave .67, then alice .66 listed before bob .66). */
  assert_int_equal(run("alice", "ITEM ADD trio 1 Trio print"), TALLY_OK);
  assert_int_equal(run("bob", "ITEM SET trio split alice:3333,bob:3333,dave:3334"), TALLY_ENO_PERMISSION);
  assert_int_equal(run("alice", "ITEM SET trio split alice:5000,bob:4000"), TALLY_EBAD_SYNTAX);
  assert_int_equal(run("alice", "ITEM SET trio split alice:3333,alice:6667"), TALLY_EBAD_SYNTAX);
  assert_int_equal(run("alice", "ITEM SET trio split alice:3333,erin:3333,dave:3334"), TALLY_OK);
  int64_t a0 = balance("alice"), e0 = balance("erin"), d0 = balance("dave"), b0 = balance("bob");
  th_reply r;
  assert_int_equal(th_cmd(eng, "bob", "BUY trio", 0, &r), TALLY_OK);
  uint64_t receipt = r.receipt;
  assert_int_equal(leg_of(1, "user:alice"), 33);
  assert_int_equal(leg_of(1, "user:erin"), 32);
  assert_int_equal(leg_of(1, "user:dave"), 33);
  assert_int_equal(leg_of(1, "sys:fees"), 2);
  assert_int_equal(sql("SELECT cardinality(leg_accounts) FROM transfers WHERE id = %llu", (unsigned long long)receipt), 5);
  assert_int_equal(run("alice", "ITEM SET trio split alice:10000"), TALLY_EFIXED);
  /* A partial refund takes back in proportion, by largest remainder:
   * 33 of 100 -> 11, 10, 11 and 1 of the fee. */
  char text[64];
  snprintf(text, sizeof text, "REFUND %llu 0.33", (unsigned long long)receipt);
  assert_int_equal(th_cmd(eng, "bob", text, 0, &r), TALLY_OK);
  assert_int_equal(leg_of(3, "user:alice"), -11);
  assert_int_equal(leg_of(3, "user:erin"), -10);
  assert_int_equal(leg_of(3, "user:dave"), -11);
  assert_int_equal(leg_of(3, "sys:fees"), -1);
  /* A restart in between: the shares and what was returned are reloaded. */
  th_engine_free(eng);
  eng = th_engine(&cfg);
  snprintf(text, sizeof text, "REFUND %llu", (unsigned long long)receipt);
  assert_int_equal(th_cmd(eng, "bob", text, 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "bob", text, 0, &r), TALLY_EREFUND_EXCEEDS);
  /* Everyone is back where they were: not a unit created or lost. */
  assert_int_equal(balance("alice"), a0);
  assert_int_equal(balance("erin"), e0);
  assert_int_equal(balance("dave"), d0);
  assert_int_equal(balance("bob"), b0);
  finish();
}

static void test_coop_drop_with_odd_amounts(void **state) {
  (void)state;
  setup("shopcoopdrop");
  assert_int_equal(run("host", "DROP CREATE duo 50 0.07 split=alice:6000,dave:4000"), TALLY_ENO_PERMISSION);
  th_reply r;
  assert_int_equal(th_cmd_in(eng, "host", CH, "DROP CREATE duo 50 0.07 split=alice:6000,dave:4000,erin:0", HOST, &r),
                   TALLY_EBAD_SYNTAX);
  assert_int_equal(th_cmd_in(eng, "host", CH, "DROP CREATE duo 50 0.07 split=alice:6000,dave:4000", HOST, &r), TALLY_OK);
  for (int qty = 1; qty <= 9; qty++) {
    char text[32];
    snprintf(text, sizeof text, "BUY duo %d", qty % 3 + 1);
    assert_int_equal(run(qty % 2 ? "bob" : "carol", text), TALLY_OK);
  }
  /* Every purchase of the drop: legs sum to zero, the split is 60/40 of the
   * takings after the fee within one unit. */
  assert_int_equal(sql("SELECT count(*) FROM transfers t WHERE kind = 1 AND item_id = (SELECT id FROM items"
                       " WHERE sku = 'duo') AND (SELECT sum(m) FROM unnest(t.leg_amounts) m) = 0"), 9);
  assert_int_equal(sql("SELECT count(*) FROM transfers t, LATERAL (SELECT sum(l.m) FILTER (WHERE a.name = 'user:alice') AS al,"
                       " sum(l.m) FILTER (WHERE a.name = 'user:dave') AS dv, sum(l.m) FILTER (WHERE l.a = 1) AS fee"
                       " FROM unnest(t.leg_accounts, t.leg_amounts) l(a, m) JOIN accounts a ON a.id = l.a) s"
                       " WHERE t.item_id = (SELECT id FROM items WHERE sku = 'duo')"
                       " AND abs(s.al * 10000 - (t.amount_minor - coalesce(s.fee, 0)) * 6000) < 10000"
                       " AND s.al + s.dv + coalesce(s.fee, 0) = t.amount_minor"), 9);
  finish();
}

static void test_serial_numbers(void **state) {
  (void)state;
  setup("shopserial");
  th_reply r;
  assert_int_equal(run("alice", "ITEM ADD print 2 3 Signed print"), TALLY_OK);
  assert_int_equal(th_cmd(eng, "bob", "BUY print", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "serial 1 of 3"));
  uint64_t first = r.receipt;
  assert_int_equal(th_cmd(eng, "carol", "BUY print 2", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "serials 2-3 of 3"));
  assert_int_equal(sql("SELECT serial FROM transfers WHERE id = %llu", (unsigned long long)r.receipt), 2);
  assert_int_equal(run("alice", "ITEM SET print stock 5"), TALLY_EFIXED);
  /* The serial is inside the signed leaf: the offline proof covers it. */
  char id[24];
  snprintf(id, sizeof id, "%llu", (unsigned long long)first);
  assert_int_equal(th_tally_run(dsn, "verify", id), 0);
  finish();
}

static void test_pass_redeems_once(void **state) {
  (void)state;
  setup("shoppass");
  th_reply r;
  assert_int_equal(run("alice", "ITEM ADD vip 3 VIP backstage pass"), TALLY_OK);
  assert_int_equal(run("alice", "ITEM SET vip kind pass"), TALLY_OK);
  assert_int_equal(th_cmd(eng, "bob", "BUY vip", 0, &r), TALLY_OK);
  uint64_t pass = r.receipt;
  assert_int_equal(run("alice", "ITEM SET vip kind plain"), TALLY_EFIXED);
  char redeem[48], refund[48];
  snprintf(redeem, sizeof redeem, "REDEEM %llu", (unsigned long long)pass);
  snprintf(refund, sizeof refund, "REFUND %llu", (unsigned long long)pass);
  assert_int_equal(run("carol", redeem), TALLY_ENOT_YOURS);
  assert_int_equal(run("bob", redeem), TALLY_OK);
  assert_int_equal(run("bob", redeem), TALLY_EREDEEMED);
  assert_int_equal(run("bob", refund), TALLY_ENOT_REFUNDABLE);
  assert_int_equal(sql("SELECT count(*) FROM redemptions WHERE transfer_id = %llu", (unsigned long long)pass), 1);
  /* Still redeemed after a restart. */
  th_engine_free(eng);
  eng = th_engine(&cfg);
  assert_int_equal(run("bob", redeem), TALLY_EREDEEMED);
  /* A refunded pass cannot be redeemed. */
  assert_int_equal(th_cmd(eng, "carol", "BUY vip", 0, &r), TALLY_OK);
  snprintf(redeem, sizeof redeem, "REDEEM %llu", (unsigned long long)r.receipt);
  snprintf(refund, sizeof refund, "REFUND %llu", (unsigned long long)r.receipt);
  assert_int_equal(run("carol", refund), TALLY_OK);
  assert_int_equal(run("carol", redeem), TALLY_ENOT_A_PASS);
  /* A plain item is not a pass; digital goods are not refundable. */
  assert_int_equal(th_cmd(eng, "bob", "BUY pin", 0, &r), TALLY_OK);
  snprintf(redeem, sizeof redeem, "REDEEM %llu", (unsigned long long)r.receipt);
  assert_int_equal(run("bob", redeem), TALLY_ENOT_A_PASS);
  assert_int_equal(run("alice", "ITEM ADD ebook 2 The ebook"), TALLY_OK);
  assert_int_equal(run("alice", "ITEM SET ebook kind digital"), TALLY_OK);
  assert_int_equal(run("alice", "ITEM SET ebook delivery https://example.org/dl/ebook"), TALLY_OK);
  assert_int_equal(th_cmd(eng, "bob", "BUY ebook", 0, &r), TALLY_OK);
  snprintf(refund, sizeof refund, "REFUND %llu", (unsigned long long)r.receipt);
  char delivery[48];
  snprintf(delivery, sizeof delivery, "DELIVERY %llu", (unsigned long long)r.receipt);
  assert_int_equal(th_cmd(eng, "bob", delivery, 0, &r), TALLY_OK);
  assert_int_equal(run("bob", refund), TALLY_ENOT_REFUNDABLE);
  finish();
}

/* A private command (no channel). */
static int priv(const char *account, const char *text, th_reply *r) {
  int rc = th_cmd(eng, account, text, 0, r);
  if (getenv("TALLY_TEST_VERBOSE")) fprintf(stderr, "%s: %s -> %s %s\n", account, text, tally_err_name(rc), r->text);
  return rc;
}

static int on_receipt(const char *account, const char *verb, uint64_t receipt, th_reply *r) {
  char text[64];
  snprintf(text, sizeof text, "%s %llu", verb, (unsigned long long)receipt);
  return priv(account, text, r);
}

/* Digital goods: DELIVERY <receipt> sends the text to its buyer, privately,
 * as often as asked; the first DELIVERY is stored (a redemptions row) and
 * ends the right to a refund, also across a restart. */
static void test_digital_delivery(void **state) {
  (void)state;
  setup("shopdelivery");
  th_reply r;
  static const char link[] = "https://example.org/dl/ebook";
  assert_int_equal(run("alice", "ITEM ADD ebook 2 The ebook"), TALLY_OK);
  assert_int_equal(run("alice", "ITEM SET ebook kind digital"), TALLY_OK);
  assert_int_equal(run("alice", "ITEM SET ebook delivery https://example.org/dl/ebook"), TALLY_OK);
  assert_int_equal(priv("bob", "BUY ebook", &r), TALLY_OK);
  uint64_t book = r.receipt;
  assert_int_equal(priv("bob", "BUY pin", &r), TALLY_OK);
  uint64_t pin = r.receipt;
  /* Only its buyer, only privately, only for digital goods. */
  assert_int_equal(on_receipt("carol", "DELIVERY", book, &r), TALLY_ENOT_YOURS);
  assert_null(strstr(r.text, link));
  char text[64];
  snprintf(text, sizeof text, "DELIVERY %llu", (unsigned long long)book);
  assert_int_equal(th_cmd_in(eng, "bob", CH, text, 0, &r), TALLY_EBAD_SYNTAX);
  assert_non_null(strstr(r.text, "privately"));
  assert_null(strstr(r.text, link));
  assert_int_equal(on_receipt("bob", "DELIVERY", pin, &r), TALLY_ENOT_DIGITAL);
  assert_int_equal(priv("bob", "DELIVERY 99999999", &r), TALLY_EUNKNOWN_RECEIPT);
  /* Refundable until delivered; a refunded one is not delivered. */
  assert_int_equal(priv("bob", "BUY ebook", &r), TALLY_OK);
  uint64_t second = r.receipt;
  assert_int_equal(on_receipt("bob", "REFUND", second, &r), TALLY_OK);
  assert_int_equal(on_receipt("bob", "DELIVERY", second, &r), TALLY_ENOT_DIGITAL);
  assert_null(strstr(r.text, link));
  /* Delivered: the text, a stored record, no refund; sent again on request. */
  assert_int_equal(on_receipt("bob", "DELIVERY", book, &r), TALLY_OK);
  assert_non_null(strstr(r.text, link));
  assert_int_equal(sql("SELECT count(*) FROM redemptions WHERE transfer_id = %llu", (unsigned long long)book), 1);
  assert_int_equal(on_receipt("bob", "REFUND", book, &r), TALLY_ENOT_REFUNDABLE);
  assert_int_equal(on_receipt("bob", "DELIVERY", book, &r), TALLY_OK);
  assert_non_null(strstr(r.text, link));
  assert_int_equal(sql("SELECT count(*) FROM redemptions"), 1);
  /* One bought before a restart and not yet delivered stays refundable... */
  assert_int_equal(priv("bob", "BUY ebook", &r), TALLY_OK);
  uint64_t third = r.receipt;
  th_engine_free(eng);
  eng = th_engine(&cfg);
  /* ...the delivered one stays delivered and can be fetched again. */
  assert_int_equal(on_receipt("bob", "DELIVERY", book, &r), TALLY_OK);
  assert_non_null(strstr(r.text, link));
  assert_int_equal(on_receipt("bob", "REFUND", book, &r), TALLY_ENOT_REFUNDABLE);
  assert_int_equal(on_receipt("bob", "DELIVERY", third, &r), TALLY_OK);
  assert_non_null(strstr(r.text, link));
  assert_int_equal(on_receipt("bob", "REFUND", third, &r), TALLY_ENOT_REFUNDABLE);
  assert_int_equal(sql("SELECT count(*) FROM redemptions"), 2);
  /* A fourth, refunded after the restart before any DELIVERY. */
  assert_int_equal(priv("bob", "BUY ebook", &r), TALLY_OK);
  th_engine_free(eng);
  eng = th_engine(&cfg);
  assert_int_equal(on_receipt("bob", "REFUND", r.receipt, &r), TALLY_OK);
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 3"), 2);
  finish();
}

static void test_raffle_draw_is_verifiable(void **state) {
  (void)state;
  setup("shopraffle");
  th_reply r;
  /* Entrants need consent and enough credits; bob, carol and five more. */
  const char *more[] = {"gus", "hal", "ivy", "jon", "kim"};
  for (int i = 0; i < 5; i++) {
    char text[64];
    snprintf(text, sizeof text, "TALLY GRANT %s 10", more[i]);
    assert_int_equal(th_cmd(eng, "admin", text, OPER | TALLY_ROLE_GRANT, &r), TALLY_OK);
    assert_int_equal(th_buy_confirmed(eng, more[i], "pin", &r), TALLY_OK);
  }
  assert_int_equal(th_cmd_in(eng, "host", CH, "DROP CREATE tix 3 5 mode=raffle for=6s", HOST, &r), TALLY_OK);
  assert_true(th_announced("RAFFLE OPEN: drop tix"));
  assert_true(th_announced("Seed commitment sha256: "));
  assert_int_equal(run("bob", "BUY tix"), TALLY_OK);
  assert_int_equal(run("bob", "BUY tix"), TALLY_EENTERED);
  assert_int_equal(run("bob", "BUY tix 2"), TALLY_EBAD_QTY);
  assert_int_equal(run("carol", "BUY tix"), TALLY_OK);
  for (int i = 0; i < 5; i++) assert_int_equal(run(more[i], "BUY tix"), TALLY_OK);
  int64_t before = sql("SELECT count(*) FROM transfers WHERE kind = 1");
  assert_int_equal(sql("SELECT count(*) FROM raffle_entries"), 7);
  /* Nobody was charged for entering. Restart with entries stored: they
   * are reloaded and the timer resumes. */
  th_engine_free(eng);
  eng = th_engine(&cfg);
  /* gus spends his credits: if drawn, he is passed over. */
  assert_int_equal(run("gus", "TIP alice 9"), TALLY_OK);
  for (int waited = 0; waited < 20000 && !th_announced("RAFFLE tix winners"); waited += 250) th_settle(eng, 250);
  assert_true(th_announced("RAFFLE tix closed with 7 entries. Seed: "));
  assert_true(th_announced("RAFFLE tix winners (3 of 3 units)"));
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 1") - before, 3);
  assert_int_equal(sql("SELECT count(*) FROM transfers WHERE kind = 1 AND idem_key LIKE 'raffle:%%'"), 3);
  assert_int_equal(sql("SELECT count(*) FROM transfers t JOIN accounts a ON a.id = t.account_id WHERE t.kind = 1"
                       " AND t.idem_key LIKE 'raffle:%%' AND a.name = 'user:gus'"), 0);
  /* The items row's draw columns go with a catalog write after the
   * winners' batch: wait for it (bounded) rather than race it. */
  for (int waited = 0; waited < 10000 && sql("SELECT raffle_entries FROM items WHERE sku = 'tix'") != 7; waited += 100)
    th_settle(eng, 100);
  assert_int_equal(sql("SELECT raffle_entries FROM items WHERE sku = 'tix'"), 7);
  /* The CLI recomputes the draw from the revealed seed and the entries. */
  assert_int_equal(th_tally_run(dsn, "draw", "tix"), 0);
  assert_int_equal(run("carol", "VERIFY DRAW tix"), TALLY_OK);
  finish();
}

static void test_confirm_extend(void **state) {
  (void)state;
  setup("shopextend");
  th_reply r;
  assert_int_equal(th_cmd(eng, "admin", "TALLY GRANT newbie 5", OPER | TALLY_ROLE_GRANT, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "newbie", "CONFIRM EXTEND", 0, &r), TALLY_EBAD_CODE);
  assert_int_equal(th_cmd(eng, "newbie", "BUY pin", 0, &r), TALLY_ECONSENT);
  assert_non_null(strstr(r.text, "CONFIRM EXTEND"));
  const char *code = strstr(r.text, "CONFIRM ");
  char confirm[32];
  snprintf(confirm, sizeof confirm, "CONFIRM %.6s", code + 8);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(th_cmd(eng, "newbie", "CONFIRM EXTEND", 0, &r), TALLY_OK);
    assert_non_null(strstr(r.text, "more seconds"));
  }
  assert_int_equal(th_cmd(eng, "newbie", "CONFIRM EXTEND", 0, &r), TALLY_ETOO_MANY);
  assert_int_equal(th_cmd(eng, "newbie", confirm, 0, &r), TALLY_OK);
  finish();
}

static void test_merch_shipping_and_shop_card(void **state) {
  (void)state;
  setup("shopmerch");
  th_reply r;
  assert_int_equal(run("alice", "ITEM ADD hoodie 20 Tour hoodie"), TALLY_OK);
  assert_int_equal(run("alice", "ITEM SET hoodie kind merch"), TALLY_OK);
  assert_int_equal(th_cmd(eng, "bob", "BUY hoodie", 0, &r), TALLY_OK);
  uint64_t order = r.receipt;
  char ship[128];
  snprintf(ship, sizeof ship, "SHIP %llu 1 Main St, Springfield", (unsigned long long)order);
  assert_int_equal(run("bob", ship), TALLY_EBAD_SYNTAX); /* said in a channel: personal data stays private */
  assert_int_equal(th_cmd(eng, "carol", ship, 0, &r), TALLY_ENOT_YOURS);
  assert_int_equal(th_cmd(eng, "bob", ship, 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "Shipping note saved"));
  assert_int_equal(th_cmd(eng, "bob", "BUY pin", 0, &r), TALLY_OK);
  snprintf(ship, sizeof ship, "SHIP %llu somewhere", (unsigned long long)r.receipt);
  assert_int_equal(th_cmd(eng, "bob", ship, 0, &r), TALLY_ENOT_MERCH);
  assert_int_equal(th_cmd(eng, "bob", "ORDERS", 0, &r), TALLY_ENO_PERMISSION);
  th_engine_free(eng); /* the creator still sees the note after a restart */
  eng = th_engine(&cfg);
  assert_int_equal(th_cmd(eng, "alice", "ORDERS", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "1x hoodie for bob - ship to: 1 Main St, Springfield"));
  assert_int_equal(sql("SELECT count(*) FROM shipping_notes WHERE transfer_id = %llu", (unsigned long long)order), 1);
  /* The shop card: bio, items, live drops. */
  assert_int_equal(th_cmd(eng, "bob", "SHOP BIO I am not a creator", 0, &r), TALLY_ENO_PERMISSION);
  assert_int_equal(th_cmd(eng, "alice", "SHOP BIO Prints, pins and tour merch", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "bob", "SHOP alice", 0, &r), TALLY_OK);
  assert_string_equal(r.text, "alice's shop: Prints, pins and tour merch - 2 items, 0 live drops");
  finish();
}

/* Each catalog row is written by one batch at a time. With two writers, a
 * row still in flight used to go out again with the next batch: role_changes
 * recorded each change twice, and two inserts of one new item raced on its
 * unique sku (a failed batch: "could not be recorded"). */
static void test_catalog_rows_written_once(void **state) {
  (void)state;
  setup("shoprows");
  assert_int_equal(sql("SELECT count(*) FROM role_changes"), 4);
  th_reply r;
  for (int i = 0; i < 10; i++) {
    const char *text = i % 2 ? "TALLY ROLE bob creator" : "TALLY ROLE bob none";
    assert_int_equal(th_cmd(eng, "admin", text, OPER, &r), TALLY_OK);
  }
  for (int i = 0; i < 300; i++) {
    char text[64];
    snprintf(text, sizeof text, "ITEM ADD row%d 1 Row %d", i, i);
    assert_int_equal(th_cmd(eng, "alice", text, 0, &r), TALLY_OK);
    snprintf(text, sizeof text, "SHOP BIO bio %d", i);
    if (i % 10 == 0) assert_int_equal(th_cmd(eng, "alice", text, 0, &r), TALLY_OK);
  }
  th_settle(eng, 300); /* rows that ride with no op go with a batch of their own */
  assert_int_equal(sql("SELECT count(*) FROM role_changes"), 14);
  assert_int_equal(sql("SELECT count(*) FROM role_changes r JOIN accounts a ON a.id = r.account_id"
                       " WHERE a.name = 'user:bob' AND r.role = 'creator'"), 5);
  assert_int_equal(sql("SELECT count(*) FROM items WHERE sku LIKE 'row%%'"), 300);
  assert_int_equal(sql("SELECT count(*) FROM creator_bios WHERE bio = 'bio 290'"), 1);
  finish();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_coop_split_and_refunds),
      cmocka_unit_test(test_coop_drop_with_odd_amounts),
      cmocka_unit_test(test_serial_numbers),
      cmocka_unit_test(test_pass_redeems_once),
      cmocka_unit_test(test_raffle_draw_is_verifiable),
      cmocka_unit_test(test_confirm_extend),
      cmocka_unit_test(test_merch_shipping_and_shop_card),
      cmocka_unit_test(test_catalog_rows_written_once),
      cmocka_unit_test(test_digital_delivery),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
