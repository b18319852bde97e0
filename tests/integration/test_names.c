/* test_names.c — names that fit every network (tally.h, 1.6): a bare JID
 * of 2,047 bytes buys on "xmpp" and gets a receipt that verifies, a full
 * JID of 3,071 bytes as origin is answered whole, one byte over each
 * limit is refused with TALLY_ETOOBIG, and a full names table refuses new
 * names (TALLY_ENAMES_FULL) while the accounts it has keep buying. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

typedef struct fx {
  char dsn[512];
  tally_config cfg;
  tally_engine *e;
} fx;

static fx F;

static const uint32_t OPER = TALLY_ROLE_OPER | TALLY_ROLE_GRANT;

/* The reply to one command, with the origin and room it was sent to. */
typedef struct answer {
  uint64_t req_id;
  int done, code;
  uint64_t receipt;
  char text[TALLY_TEXT_BYTES_MAX + 1];
  char origin[TALLY_ORIGIN_BYTES_MAX + 1];
  char network[64];
} answer;

/* Announcements seen, as "network|room|text". */
enum { SAID_KEEP = 128 };
static char said[SAID_KEEP][TALLY_TEXT_BYTES_MAX + 160];
static int said_count;

static int said_in(const char *network, const char *room, const char *needle) {
  char prefix[160];
  snprintf(prefix, sizeof prefix, "%s|%s|", network, room);
  for (int i = 0; i < said_count && i < SAID_KEEP; i++)
    if (strncmp(said[i], prefix, strlen(prefix)) == 0 && strstr(said[i] + strlen(prefix), needle)) return 1;
  return 0;
}

static void on_effect(void *ud, const tally_effect *eff) {
  answer *a = ud;
  if (eff->kind == TALLY_EFFECT_ANNOUNCE && strlen(eff->channel) < 100)
    snprintf(said[said_count++ % SAID_KEEP], sizeof said[0], "%s|%s|%s", eff->network ? eff->network : "",
             eff->channel, eff->text);
  if (eff->kind != TALLY_EFFECT_REPLY || eff->req_id != a->req_id || a->done) return;
  a->done = 1;
  a->code = eff->code;
  a->receipt = eff->receipt_id;
  snprintf(a->text, sizeof a->text, "%s", eff->text);
  snprintf(a->origin, sizeof a->origin, "%s", eff->origin);
  snprintf(a->network, sizeof a->network, "%s", eff->network ? eff->network : "");
}

static uint64_t req_seq = 1u << 30;

/* Sends one command as the adapter would (tally_engine_submit_command) and
 * waits for its reply: the API's code when it is refused at submit. */
static int send_cmd(const char *network, const char *origin, const char *account, const char *channel,
                    const char *msg_id, const char *text, uint32_t roles, answer *a) {
  char id[64];
  memset(a, 0, sizeof *a);
  a->req_id = ++req_seq;
  if (!msg_id) {
    snprintf(id, sizeof id, "n%d-%llu", (int)getpid(), (unsigned long long)a->req_id);
    msg_id = id;
  }
  tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = a->req_id, .origin = origin,
                     .account = account, .nick = "n", .channel = channel, .msg_id = msg_id, .text = text,
                     .roles = roles, .network = network};
  int rc = tally_engine_submit_command(F.e, &c);
  if (rc != TALLY_OK) return a->code = rc;
  for (int waited = 0; !a->done && waited < 15000; waited += 10) {
    struct pollfd p = {tally_engine_fd(F.e), POLLIN, 0};
    poll(&p, 1, 10);
    tally_engine_drain(F.e, on_effect, a, 1000);
  }
  assert_true(a->done);
  usleep(2000);
  tally_engine_drain(F.e, on_effect, a, 1000);
  return a->code;
}

static char *name_of(size_t len, char fill, const char *tail) {
  char *s = malloc(len + 1);
  assert_non_null(s);
  memset(s, fill, len);
  size_t t = strlen(tail);
  memcpy(s + len - t, tail, t);
  s[len] = 0;
  return s;
}

static void start(const char *test, uint32_t names_bytes) {
  th_fresh_db(test, F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.cfg.welcome_grant_minor = 500; /* so an account too long to name in TALLY GRANT can pay */
  if (names_bytes) F.cfg.names_bytes_max = names_bytes;
  F.e = th_engine(&F.cfg);
}

static void done(void) {
  th_engine_free(F.e);
  assert_int_equal(th_tally_check(F.dsn), 0);
}

/* Waits until `account`'s welcome grant is committed: its wallet's text
 * cannot show it (a 2 KB name fills the reply), so a BUY that is not
 * refused for funds says so. */
static void funded(const char *network, const char *origin, const char *account) {
  answer a;
  assert_int_equal(send_cmd(network, origin, account, "", NULL, "WALLET", 0, &a), TALLY_OK);
  th_settle(F.e, 300);
}

/* Buys sku, answering the first-purchase CONFIRM. */
static int buy(const char *network, const char *origin, const char *account, const char *sku, answer *a) {
  char text[64];
  snprintf(text, sizeof text, "BUY %s", sku);
  int rc = send_cmd(network, origin, account, "", NULL, text, 0, a);
  for (int i = 0; rc == TALLY_ENO_FUNDS && i < 100; i++) { /* the welcome grant is on its way */
    usleep(20000);
    rc = send_cmd(network, origin, account, "", NULL, text, 0, a);
  }
  if (rc != TALLY_ECONSENT) return rc;
  const char *code = strstr(a->text, "CONFIRM ");
  assert_non_null(code);
  char confirm[32];
  snprintf(confirm, sizeof confirm, "CONFIRM %.6s", code + 8);
  return send_cmd(network, origin, account, "", NULL, confirm, 0, a);
}

static void test_jid_buys_and_origin_echoed(void **state) {
  (void)state;
  start("names_jid", 0);
  answer a;
  assert_int_equal(send_cmd(NULL, "admin", "admin", "", NULL, "TALLY ROLE seller creator", OPER, &a), TALLY_OK);
  assert_int_equal(send_cmd(NULL, "seller", "seller", "", NULL, "ITEM ADD tee 1 Tee", 0, &a), TALLY_OK);
  /* A bare JID at the limit (1,023 + '@' + 1,023 bytes), answered at a full
   * JID at its limit (the bare JID, '/', a 1,023-byte resource). */
  char *local = name_of(1023, 'j', "");
  char *jid = malloc(TALLY_IDENTITY_BYTES_MAX + 1), *full = malloc(TALLY_ORIGIN_BYTES_MAX + 1);
  snprintf(jid, TALLY_IDENTITY_BYTES_MAX + 1, "%s@%s", local, local);
  snprintf(full, TALLY_ORIGIN_BYTES_MAX + 1, "%s/%s", jid, local);
  assert_int_equal(strlen(jid), TALLY_IDENTITY_BYTES_MAX);
  assert_int_equal(strlen(full), TALLY_ORIGIN_BYTES_MAX);
  funded("xmpp", full, jid);
  assert_int_equal(buy("xmpp", full, jid, "tee", &a), TALLY_OK);
  assert_true(a.receipt > 0);
  assert_non_null(strstr(a.text, "Bought"));
  assert_string_equal(a.origin, full);
  assert_string_equal(a.network, "xmpp");
  /* The ledger holds the identity whole, on its network, and the buyer's
   * receipt verifies against it. */
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM identities i JOIN networks n ON n.id = i.network_id"
                                     " WHERE n.name = 'xmpp' AND octet_length(i.name) = 2047"), 1);
  char verify[64];
  snprintf(verify, sizeof verify, "VERIFY %llu", (unsigned long long)a.receipt);
  answer v;
  assert_int_equal(send_cmd("xmpp", full, jid, "", NULL, verify, 0, &v), TALLY_OK);
  assert_string_equal(v.origin, full);
  /* A 255-byte message id (an XMPP stanza id) is a key like any other: a
   * retry is the first answer. */
  char *mid = name_of(TALLY_MSG_ID_BYTES_MAX, 'm', "1");
  answer t1, t2;
  assert_int_equal(send_cmd("xmpp", full, jid, "", mid, "BUY tee", 0, &t1), TALLY_OK);
  assert_int_equal(send_cmd("xmpp", full, jid, "", mid, "BUY tee", 0, &t2), TALLY_OK);
  assert_true(t1.receipt > 0);
  assert_int_equal(t2.receipt, t1.receipt);
  /* After a restart the wallet is found again by its 2,047-byte name. */
  th_engine_free(F.e);
  F.e = th_engine(&F.cfg);
  /* That key is longer than a key slot holds inline (state.h): the ledger
   * has all of it, and the restarted engine still knows it. */
  assert_true(th_sql_i64(F.dsn, "SELECT max(length(idem_key)) FROM transfers") > (int64_t)strlen(mid));
  assert_int_equal(send_cmd("xmpp", full, jid, "", mid, "BUY tee", 0, &t2), TALLY_OK);
  assert_int_equal(t2.receipt, t1.receipt);
  /* Its 3.00 left pay for 3 more (the same wallet: no second identity),
   * and nothing more. */
  assert_int_equal(send_cmd("xmpp", full, jid, "", NULL, "BUY tee 3", 0, &a), TALLY_OK);
  assert_true(a.receipt > 0);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM identities i JOIN networks n ON n.id = i.network_id"
                                     " WHERE n.name = 'xmpp'"), 1);
  assert_int_equal(send_cmd("xmpp", full, jid, "", NULL, "BUY tee 1", 0, &a), TALLY_ENO_FUNDS);
  free(local);
  free(jid);
  free(full);
  free(mid);
  done();
}

/* One byte over each limit: refused by the API with TALLY_ETOOBIG, and
 * nothing reaches the engine (it still answers the next command). */
static void test_one_byte_over(void **state) {
  (void)state;
  start("names_over", 0);
  char *account = name_of(TALLY_IDENTITY_BYTES_MAX + 1, 'a', "@x");
  char *origin = name_of(TALLY_ORIGIN_BYTES_MAX + 1, 'o', "/r");
  char *room = name_of(TALLY_ROOM_BYTES_MAX + 1, 'r', "@muc");
  char *mid = name_of(TALLY_MSG_ID_BYTES_MAX + 1, 'm', "");
  char *nick = name_of(TALLY_NICK_BYTES_MAX + 1, 'n', "");
  answer a;
  assert_int_equal(send_cmd("xmpp", "o", account, "", NULL, "WALLET", 0, &a), TALLY_ETOOBIG);
  assert_int_equal(send_cmd("xmpp", origin, "bob", "", NULL, "WALLET", 0, &a), TALLY_ETOOBIG);
  assert_int_equal(send_cmd("xmpp", "o", "bob", room, NULL, "WALLET", 0, &a), TALLY_ETOOBIG);
  assert_int_equal(send_cmd("xmpp", "o", "bob", "", mid, "WALLET", 0, &a), TALLY_ETOOBIG);
  tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = 1, .origin = "o",
                     .account = "bob", .nick = nick, .channel = "", .msg_id = "m", .text = "WALLET", .network = "xmpp"};
  assert_int_equal(tally_engine_submit_command(F.e, &c), TALLY_ETOOBIG);
  /* At the limits, the same command is answered. */
  account[TALLY_IDENTITY_BYTES_MAX] = 0;
  origin[TALLY_ORIGIN_BYTES_MAX] = 0;
  assert_int_equal(send_cmd("xmpp", origin, account, "", NULL, "WALLET", 0, &a), TALLY_OK);
  assert_string_equal(a.origin, origin);
  /* Rooms are kept in 255 bytes (a Matrix room id's limit) until they are
   * interned too: one more is refused by the engine, with its code. */
  char *mroom = name_of(255, 'x', ":example.org");
  mroom[0] = '!';
  assert_int_equal(send_cmd("matrix", "@u:x", "@u:x", mroom, NULL, "EVENT START 5 Big room", TALLY_ROLE_HOST, &a),
                   TALLY_OK);
  free(mroom);
  mroom = name_of(256, 'x', ":example.org");
  assert_int_equal(send_cmd("matrix", "@u:x", "@u:x", mroom, NULL, "WALLET", 0, &a), TALLY_ETOOBIG);
  free(mroom);
  free(account);
  free(origin);
  free(room);
  free(mid);
  free(nick);
  done();
}

/* A names table too small for everyone: new long names are refused
 * TALLY_ENAMES_FULL, clearly, and the accounts it has go on buying. */
static void test_names_full(void **state) {
  (void)state;
  start("names_full", 65536);
  answer a;
  assert_int_equal(send_cmd(NULL, "admin", "admin", "", NULL, "TALLY ROLE seller creator", OPER, &a), TALLY_OK);
  assert_int_equal(send_cmd(NULL, "seller", "seller", "", NULL, "ITEM ADD mug 1 Mug", 0, &a), TALLY_OK);
  funded(NULL, "alice-uuid", "alice");
  int refused = 0, made = 0;
  for (int i = 0; i < 64 && !refused; i++) {
    char tail[32];
    snprintf(tail, sizeof tail, "@host%02d", i);
    char *jid = name_of(TALLY_IDENTITY_BYTES_MAX, 'u', tail);
    int rc = send_cmd("xmpp", "o", jid, "", NULL, "WALLET", 0, &a);
    if (rc == TALLY_ENAMES_FULL) {
      refused = 1;
      assert_non_null(strstr(a.text, "names"));
    } else {
      assert_int_equal(rc, TALLY_OK);
      made++;
    }
    free(jid);
  }
  assert_true(refused);
  assert_true(made >= 20); /* 64 KiB less its reserve holds about 27 of them */
  /* Alice, and the JIDs it holds, still buy. */
  assert_int_equal(buy(NULL, "alice-uuid-2", "alice", "mug", &a), TALLY_OK);
  assert_true(a.receipt > 0);
  char *first = name_of(TALLY_IDENTITY_BYTES_MAX, 'u', "@host00");
  funded("xmpp", "o2", first);
  assert_int_equal(buy("xmpp", "o2", first, "mug", &a), TALLY_OK);
  assert_true(a.receipt > 0);
  free(first);
  done();
}

/* "#live" on irc and "#live" on xmpp are two rooms: an event in one is not
 * in the other, each is announced on its own network, and stopping one
 * leaves the other running. */
static void test_same_room_two_networks(void **state) {
  (void)state;
  start("names_rooms", 0);
  said_count = 0;
  answer a;
  assert_int_equal(send_cmd(NULL, "h1", "host1", "#live", NULL, "EVENT START 30 IrcShow", TALLY_ROLE_HOST, &a),
                   TALLY_OK);
  assert_int_equal(send_cmd("xmpp", "h2", "host2@x", "#live", NULL, "EVENT", 0, &a), TALLY_OK);
  assert_non_null(strstr(a.text, "No event is running here"));
  assert_int_equal(send_cmd(NULL, "u1", "viewer", "#live", NULL, "EVENT", 0, &a), TALLY_OK);
  assert_non_null(strstr(a.text, "IrcShow"));
  assert_int_equal(send_cmd("xmpp", "h2", "host2@x", "#live", NULL, "EVENT START 30 XmppShow", TALLY_ROLE_HOST, &a),
                   TALLY_OK);
  th_settle(F.e, 100);
  assert_true(said_in("xmpp", "#live", "XmppShow"));
  assert_false(said_in("irc", "#live", "XmppShow"));
  assert_true(said_in("irc", "#live", "IrcShow"));
  assert_false(said_in("xmpp", "#live", "IrcShow"));
  assert_int_equal(send_cmd("xmpp", "h2", "host2@x", "#live", NULL, "EVENT STOP", TALLY_ROLE_HOST, &a), TALLY_OK);
  assert_int_equal(send_cmd(NULL, "u1", "viewer", "#live", NULL, "EVENT", 0, &a), TALLY_OK);
  assert_non_null(strstr(a.text, "IrcShow"));
  assert_int_equal(send_cmd("xmpp", "h2", "host2@x", "#live", NULL, "EVENT", 0, &a), TALLY_OK);
  assert_non_null(strstr(a.text, "No event is running here"));
  /* After a restart each event is in its own network's room again. */
  th_engine_free(F.e);
  F.e = th_engine(&F.cfg);
  assert_int_equal(send_cmd(NULL, "u1", "viewer", "#live", NULL, "EVENT", 0, &a), TALLY_OK);
  assert_non_null(strstr(a.text, "IrcShow"));
  assert_int_equal(send_cmd("xmpp", "h2", "host2@x", "#live", NULL, "EVENT START 30 Again", TALLY_ROLE_HOST, &a),
                   TALLY_OK);
  assert_int_equal(send_cmd(NULL, "h1", "host1", "#live", NULL, "EVENT STOP", TALLY_ROLE_HOST, &a), TALLY_OK);
  done();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_room_two_networks),
      cmocka_unit_test(test_jid_buys_and_origin_echoed),
      cmocka_unit_test(test_one_byte_over),
      cmocka_unit_test(test_names_full),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
