/* test_identity.c — every name carries its network (sql/010): an account
 * is (network, name), commands and effects say their network, idempotency
 * keys are scoped by (network, identity, message id), and the ledger keeps
 * identities across a restart. `tally check` runs after each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "harness.h"
#include "load.h"
#include "merkle.h"
#include "receipt.h"
#include "signer.h"
#include "tally/admin.h"

typedef struct fx {
  char dsn[512];
  tally_config cfg;
  tally_engine *e;
} fx;

static fx F;

static const uint32_t OPER = TALLY_ROLE_OPER | TALLY_ROLE_GRANT;

static int net_cmd(const char *network, const char *account, const char *text, const char *msg_id, uint32_t roles,
                   th_reply *r) {
  int rc = th_cmd_net(F.e, network, account, "", text, msg_id, roles, r);
  if (rc != TALLY_OK) fprintf(stderr, "[%s] %s: %s -> %s (%s)\n", network ? network : "-", account, text,
                              tally_err_name(rc), r->text);
  return rc;
}

static void start(const char *test) {
  th_fresh_db(test, F.dsn, sizeof F.dsn);
  th_config(&F.cfg, F.dsn);
  F.e = th_engine(&F.cfg);
}

static void done(void) {
  th_engine_free(F.e);
  assert_int_equal(th_tally_check(F.dsn), 0);
}

/* The balance WALLET tells `account` of `network`, in minor units' text. */
static void balance_is(const char *network, const char *account, const char *needle) {
  th_reply r;
  assert_int_equal(net_cmd(network, account, "WALLET", NULL, 0, &r), TALLY_OK);
  if (!strstr(r.text, needle)) fprintf(stderr, "[%s] %s WALLET: %s (wanted %s)\n", network, account, r.text, needle);
  assert_non_null(strstr(r.text, needle));
}

/* "alice" on irc and "alice" on matrix are two people with two wallets,
 * before and after a restart; replies name the network they are for. */
static void test_same_name_two_networks(void **state) {
  (void)state;
  start("id_two_nets");
  th_reply r;
  assert_int_equal(net_cmd(NULL, "admin", "TALLY GRANT alice 7", NULL, OPER, &r), TALLY_OK);
  assert_string_equal(r.network, "irc");
  assert_int_equal(net_cmd("matrix", "op", "TALLY GRANT alice 3", NULL, OPER, &r), TALLY_OK);
  assert_string_equal(r.network, "matrix");
  balance_is("irc", "alice", "7.00");
  balance_is("matrix", "alice", "3.00");
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(DISTINCT account_id) FROM identities WHERE name = 'alice'"), 2);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM identities i JOIN networks n ON n.id = i.network_id"
                                     " WHERE i.name = 'alice' AND n.name IN ('irc', 'matrix')"), 2);
  /* The irc network's accounts keep their names from before identities. */
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM accounts a JOIN identities i ON i.account_id = a.id"
                                     " WHERE a.name = 'user:alice' AND i.network_id = 1"), 1);
  /* Each grant names the identity whose command made it. */
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfer_identities ti JOIN identities i"
                                     " ON i.id = ti.identity_id WHERE i.name IN ('admin', 'op')"), 2);
  /* After a restart the wallets are still two, and found by (network, name). */
  th_engine_free(F.e);
  F.e = th_engine(&F.cfg);
  balance_is("matrix", "alice", "3.00");
  balance_is("irc", "alice", "7.00");
  assert_int_equal(net_cmd("matrix", "alice", "TIP bob 1", NULL, 0, &r), TALLY_EUNKNOWN_ACCOUNT);
  assert_int_equal(th_cmd_net(F.e, "matrix", "alice", "!room:example.org", "TIP op 1", NULL, 0, &r), TALLY_OK);
  /* The thanks is said in the matrix room, on the matrix network. */
  th_settle(F.e, 200);
  assert_true(th_announced_in("matrix", "!room:example.org: Thank you alice for tipping op"));
  assert_false(th_announced_in("irc", "!room:example.org: Thank you"));
  balance_is("matrix", "alice", "2.00");
  balance_is("irc", "alice", "7.00");
  done();
}

/* Matrix and XMPP clients choose their own message ids: the same id from
 * two identities (or two networks) is two commands; from one identity,
 * the same command once. */
static void test_msg_id_scoped_by_identity(void **state) {
  (void)state;
  start("id_msgid");
  th_reply r, r2;
  for (int k = 0; k < 2; k++) {
    const char *who = k ? "bob" : "alice";
    assert_int_equal(net_cmd("matrix", "op", k ? "TALLY GRANT bob 5" : "TALLY GRANT alice 5", NULL, OPER, &r), TALLY_OK);
    (void)who;
  }
  assert_int_equal(net_cmd(NULL, "admin", "TALLY GRANT alice 5", NULL, OPER, &r), TALLY_OK);
  assert_int_equal(net_cmd("matrix", "carol", "WALLET", NULL, 0, &r), TALLY_OK);
  assert_int_equal(net_cmd(NULL, "carol", "WALLET", NULL, 0, &r), TALLY_OK);
  assert_int_equal(net_cmd("matrix", "alice", "TIP carol 1", "m1", 0, &r), TALLY_OK);
  assert_int_equal(net_cmd("matrix", "bob", "TIP carol 1", "m1", 0, &r2), TALLY_OK);
  assert_true(r.receipt > 0 && r2.receipt > 0 && r.receipt != r2.receipt);
  /* The same id on another network is another command too. */
  th_reply r3, again;
  assert_int_equal(net_cmd(NULL, "alice", "TIP carol 1", "m1", 0, &r3), TALLY_OK);
  assert_true(r3.receipt != r.receipt && r3.receipt != r2.receipt);
  /* One identity's retry is its first answer, charged once. */
  assert_int_equal(net_cmd("matrix", "alice", "TIP carol 1", "m1", 0, &again), TALLY_OK);
  assert_int_equal(again.receipt, r.receipt);
  assert_int_equal(net_cmd("matrix", "alice", "TIP carol 2", "m1", 0, &again), TALLY_EKEY_MISMATCH);
  balance_is("matrix", "alice", "4.00");
  balance_is("matrix", "bob", "4.00");
  balance_is("matrix", "carol", "2.00");
  balance_is("irc", "carol", "1.00");
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM transfers WHERE idem_key LIKE '%m1'"), 3);
  /* ... and after a restart its key is still known. */
  th_engine_free(F.e);
  F.e = th_engine(&F.cfg);
  assert_int_equal(net_cmd("matrix", "alice", "TIP carol 1", "m1", 0, &again), TALLY_OK);
  assert_int_equal(again.receipt, r.receipt);
  balance_is("matrix", "alice", "4.00");
  done();
}

/* A network name that is not one, and one network too many, are refused
 * with their own codes; a command of a version-1 host (no network field)
 * is the configured network's. */
static void test_networks_refused_and_v1_host(void **state) {
  (void)state;
  start("id_nets_full");
  th_reply r;
  assert_int_equal(th_cmd_net(F.e, "Bad Net", "alice", "", "WALLET", NULL, 0, &r), TALLY_ENETWORK);
  assert_int_equal(th_cmd_net(F.e, "user", "alice", "", "WALLET", NULL, 0, &r), TALLY_ENETWORK);
  char net[32];
  int ok = 0, full = 0;
  for (int i = 0; i < 80; i++) {
    snprintf(net, sizeof net, "net%d", i);
    int rc = th_cmd_net(F.e, net, "alice", "", "WALLET", NULL, 0, &r);
    ok += rc == TALLY_OK;
    full += rc == TALLY_ENAMES_FULL;
  }
  assert_int_equal(ok, 63); /* 64 networks with irc */
  assert_int_equal(full, 17);
  /* Version 1 of tally_command ends before `network`. */
  assert_int_equal(net_cmd(NULL, "admin", "TALLY GRANT dave 2", NULL, OPER, &r), TALLY_OK);
  tally_command c = {.size = offsetof(tally_command, network), .version = 1, .req_id = 1,
                     .origin = "dave", .account = "dave", .nick = "dave", .channel = "",
                     .msg_id = "v1", .text = "WALLET"};
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t len;
  assert_int_equal(tally_command_encode(&c, buf, sizeof buf, &len), TALLY_OK);
  balance_is("irc", "dave", "2.00");
  done();
}

/* A presence names its network: a matrix user in a matrix room with a
 * running event attends as the matrix identity, not as an irc one. */
static void test_presence_in_its_network(void **state) {
  (void)state;
  start("id_presence");
  th_reply r;
  const char *room = "!live:example.org";
  assert_int_equal(net_cmd("matrix", "op", "TALLY ROLE host creator", NULL, OPER, &r), TALLY_OK);
  assert_int_equal(th_cmd_net(F.e, "matrix", "host", room, "EVENT START 30 Stream", NULL, TALLY_ROLE_CHANOP, &r),
                   TALLY_OK);
  tally_presence p = {.size = sizeof p, .version = TALLY_PRESENCE_VERSION, .account = "bob", .channel = room,
                      .present = 1, .network = "matrix"};
  assert_int_equal(tally_engine_submit_presence(F.e, &p), TALLY_OK);
  th_settle(F.e, 200);
  assert_int_equal(th_cmd_net(F.e, "matrix", "host", room, "EVENT STOP", NULL, TALLY_ROLE_CHANOP, &r), TALLY_OK);
  th_settle(F.e, 800);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM attendance a JOIN identities i ON i.account_id = a.account_id"
                                     " JOIN networks n ON n.id = i.network_id WHERE n.name = 'matrix' AND i.name = 'bob'"),
                   1);
  assert_int_equal(th_sql_i64(F.dsn, "SELECT count(*) FROM identities WHERE name = 'bob' AND network_id = 1"), 0);
  done();
}

/* Loads transfer id's receipt from the ledger, turns it into a token, reads
 * the token back and checks it offline with the public key: what `tally
 * receipt` and `tally verify --pubkey` do. Returns the token's prefix. */
static void receipt_verifies(uint64_t id, const char *prefix) {
  PGconn *c = PQconnectdb(F.dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  char err[TALLY_ERRBUF_BYTES] = "", token[TALLY_ADMIN_RECEIPT_TOKEN_BYTES_MAX + 1];
  tally_admin_receipt *r = NULL, *back = NULL;
  int rc = tally_admin_receipt_load(c, id, &r, err, sizeof err);
  if (rc) fprintf(stderr, "receipt %llu: %s\n", (unsigned long long)id, err);
  assert_int_equal(rc, TALLY_OK);
  size_t len;
  assert_int_equal(tally_admin_receipt_token(r, token, sizeof token, &len), TALLY_OK);
  assert_int_equal(strncmp(token, prefix, 4), 0);
  assert_int_equal(tally_admin_receipt_decode(token, len, &back), TALLY_OK);
  uint8_t pub[TALLY_ADMIN_PUBKEY_BYTES];
  assert_int_equal(tally_admin_receipt_public_key(c, back, pub), TALLY_OK);
  assert_int_equal(tally_admin_receipt_verify(back, pub), TALLY_OK);
  /* A token of one version read as the other is refused or fails. */
  token[2] = token[2] == '1' ? '2' : '1';
  tally_admin_receipt *swapped = NULL;
  if (tally_admin_receipt_decode(token, len, &swapped) == TALLY_OK) {
    assert_int_not_equal(tally_admin_receipt_verify(swapped, pub), TALLY_OK);
    tally_admin_receipt_free(swapped);
  }
  tally_admin_receipt_free(back);
  tally_admin_receipt_free(r);
  PQfinish(c);
}

/* A batch signed before migration 011 (leaf version 1), made here as the
 * previous release made it: one grant, its v1 leaf signed with the
 * engine's key. */
static uint64_t v1_batch(void) {
  int64_t alice = th_sql_i64(F.dsn, "SELECT id FROM accounts WHERE name = 'user:alice'");
  assert_true(alice > 0);
  uint64_t tid = 900000001, bid = 900000002;
  tally__receipt_fields f = {.transfer_id = tid, .batch_id = bid, .kind = 4, .qty = 0, .amount_minor = 250,
                             .created_ms = 1700000000000, .account = "user:alice", .counterparty = "", .sku = "",
                             .version = 1};
  uint8_t leaf[1][32], scratch[1][32], root[32], sig[TALLY_SIG_BYTES];
  tally__receipt_leaf(&f, leaf[0]);
  tally__merkle_root((const uint8_t(*)[32])leaf, 1, scratch, root);
  tally__signer *signer = NULL;
  char err[TALLY_ERRBUF_BYTES];
  assert_int_equal(tally__signer_open(F.cfg.signing_key_path, &signer, err, sizeof err), TALLY_OK);
  assert_int_equal(tally__signer_sign_batch(signer, bid, 1, root, sig), TALLY_OK);
  char hroot[65], hsig[129], sql[1024];
  for (int i = 0; i < 32; i++) snprintf(hroot + 2 * i, 3, "%02x", root[i]);
  for (int i = 0; i < TALLY_SIG_BYTES; i++) snprintf(hsig + 2 * i, 3, "%02x", sig[i]);
  snprintf(sql, sizeof sql,
           "INSERT INTO batches (id, first_transfer, last_transfer, leaf_count, merkle_root, signature, key_id,"
           " created_ms, leaf_version) VALUES (%llu, %llu, %llu, 1, '\\x%s', '\\x%s', '%s', 1700000000000, 1);"
           "INSERT INTO transfers (id, batch_id, kind, idem_key, request_fp, account_id, qty, amount_minor,"
           " created_ms, leg_accounts, leg_amounts) VALUES (%llu, %llu, 4, 'v1-made', 0, %lld, 0, 250,"
           " 1700000000000, ARRAY[2, %lld]::bigint[], ARRAY[-250, 250]::bigint[])",
           (unsigned long long)bid, (unsigned long long)tid, (unsigned long long)tid, hroot, hsig,
           tally__signer_key_id(signer), (unsigned long long)tid, (unsigned long long)bid, (long long)alice,
           (long long)alice);
  tally__signer_close(signer);
  assert_int_equal(th_sql_exec(F.dsn, sql), 0);
  return tid;
}

/* Receipts of batches signed before the migration keep verifying (leaf
 * v1, "tr1."), new ones are v2 ("tr2.") and name the network and identity;
 * `tally check` passes on both, and VERIFY in chat answers both. */
static void test_v1_and_v2_receipts_verify(void **state) {
  (void)state;
  start("id_receipts");
  th_reply r;
  assert_int_equal(net_cmd(NULL, "admin", "TALLY GRANT alice 5", NULL, OPER, &r), TALLY_OK);
  assert_int_equal(net_cmd("matrix", "op", "TALLY GRANT @bob:example.org 5", NULL, OPER, &r), TALLY_OK);
  uint64_t v2 = r.receipt;
  th_engine_free(F.e);
  uint64_t v1 = v1_batch();
  F.e = th_engine(&F.cfg);
  assert_int_equal(th_sql_i64f(F.dsn, "SELECT leaf_version FROM batches WHERE id = (SELECT batch_id FROM transfers"
                                      " WHERE id = %llu)", (unsigned long long)v2), 2);
  receipt_verifies(v1, "tr1.");
  receipt_verifies(v2, "tr2.");
  char text[64];
  snprintf(text, sizeof text, "VERIFY %llu", (unsigned long long)v1);
  assert_int_equal(net_cmd(NULL, "alice", text, NULL, 0, &r), TALLY_OK);
  snprintf(text, sizeof text, "VERIFY %llu", (unsigned long long)v2);
  assert_int_equal(net_cmd("matrix", "@bob:example.org", text, NULL, 0, &r), TALLY_OK);
  assert_string_equal(r.network, "matrix");
  balance_is("irc", "alice", "7.50");
  /* The v2 leaf signs the identity: naming another one breaks the batch. */
  done();
  assert_int_equal(th_sql_exec(F.dsn, "SET session_replication_role = replica;"
                                      " UPDATE identities SET name = 'mallory' WHERE name = 'op'"), 0);
  assert_int_not_equal(th_tally_check(F.dsn), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_name_two_networks),
      cmocka_unit_test(test_msg_id_scoped_by_identity),
      cmocka_unit_test(test_networks_refused_and_v1_host),
      cmocka_unit_test(test_v1_and_v2_receipts_verify),
      cmocka_unit_test(test_presence_in_its_network),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
