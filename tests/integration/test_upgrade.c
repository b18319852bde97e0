/* test_upgrade.c — a ledger written by the previous release (schema
 * 001-009, commit 00405e8) upgraded by today's engine.
 *
 * tests/fixtures/upgrade_v009.* were made by tests/upgrade/make_fixture.sh,
 * which ran tests/upgrade/scenario.c on that release's engine: grants,
 * consented purchases, a limited edition, a partial refund, a co-op item,
 * an event with attendance and a raffle drawn, tips (one message held),
 * role changes. Each test loads the dump into a fresh database and starts
 * today's engine on it (migrations apply at start):
 *
 *   test_upgrade_keeps_every_fact: the start succeeds; every fact recorded
 *     on the old ledger (balances, stock, sold counts, serials, refunds,
 *     raffle winners, attendance, consents, audit rows, and a digest of
 *     every column the old schema had, row by row) is the same after it.
 *   test_upgrade_old_receipts_verify: every receipt token the old release
 *     printed verifies offline (`tally verify TOKEN --pubkey`), by id
 *     against the upgraded ledger, and with VERIFY in chat.
 *   test_upgrade_old_purchases_behave: a pre-upgrade purchase refunds up to
 *     what is left of it and no further; a retried pre-upgrade message id
 *     answers its first receipt and charges nothing; a pre-upgrade buyer is
 *     not asked to CONFIRM again; serials and sold-out stock continue; the
 *     raffle's draw recomputes.
 *   test_upgrade_facts_catch_a_lost_row: the fact check itself fails when
 *     one row is deleted from the loaded ledger (so a migration that loses
 *     one cannot pass).
 *
 * The engine runs under libfaketime at the fixture's own time (plus an
 * hour), so refund windows and holds behave as they did when it was made,
 * however old the fixture gets. `tally check` runs after each test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "harness.h"

#define FIXTURE "tests/fixtures/upgrade_v009"
#define UNDER_FAKETIME "TALLY_UPGRADE_UNDER_FAKETIME"
enum { LINE_MAX_BYTES = 8192, TOKENS_MAX = 64 };

static char dsn[512];
static tally_config cfg;
static tally_engine *eng;
static char key_path[512];
static int64_t made_ms; /* when the old release wrote its last transfer */
enum { CLOCK_AHEAD_S = 3600 }; /* the engine runs this long after made_ms */

/* ---- the fixture ------------------------------------------------------------ */
static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) fprintf(stderr, "%s: cannot open (run from the checkout's root)\n", path);
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = 0;
  fclose(f);
  return buf;
}

/* The id of the receipt labelled `label` ("receipt LABEL ID"). */
static uint64_t receipt(const char *label) {
  FILE *f = fopen(FIXTURE ".receipts", "r");
  assert_non_null(f);
  char line[LINE_MAX_BYTES], want[128];
  snprintf(want, sizeof want, "receipt %s ", label);
  uint64_t id = 0;
  while (!id && fgets(line, sizeof line, f))
    if (strncmp(line, want, strlen(want)) == 0) id = strtoull(line + strlen(want), NULL, 10);
  fclose(f);
  assert_true(id > 0);
  return id;
}

static void run_sql(const char *q) {
  PGconn *c = PQconnectdb(dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *r = PQexec(c, q);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    fprintf(stderr, "%s: %s\n", q, PQresultErrorMessage(r));
  assert_true(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
  PQclear(r);
  PQfinish(c);
}

/* Loads the old release's dump into a fresh database with psql (the dump
 * has COPY blocks, which psql feeds). */
static void load_fixture(const char *name) {
  th_fresh_db(name, dsn, sizeof dsn);
  const char *bin = getenv("PGBIN");
  char psql[512];
  snprintf(psql, sizeof psql, "%s/psql", bin ? bin : "/usr/lib/postgresql/15/bin");
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    execl(psql, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", FIXTURE ".sql", (char *)NULL);
    _exit(127);
  }
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* The old release's signing key, copied where the engine may read it (a
 * key open to others is refused, so mode 0600). */
static void copy_key(void) {
  const char *tmp = getenv("TALLY_TMP");
  snprintf(key_path, sizeof key_path, "%s/upgrade-signing-%d.pem", tmp ? tmp : "/tmp", (int)getpid());
  const char *from[] = {FIXTURE ".pem", FIXTURE ".pub"}, *suffix[] = {"", ".pub"};
  for (int i = 0; i < 2; i++) {
    char to[600];
    snprintf(to, sizeof to, "%s%s", key_path, suffix[i]);
    char *body = slurp(from[i]);
    FILE *f = fopen(to, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    free(body);
    assert_int_equal(chmod(to, i ? 0644 : 0600), 0);
  }
}

static void upgrade(const char *name) {
  load_fixture(name);
  copy_key();
  th_config(&cfg, dsn);
  cfg.signing_key_path = key_path;
  cfg.tip_message_hold_s = 600; /* as the old release ran */
  eng = th_engine(&cfg); /* aborts unless the start (with migrations) succeeds */
}

static void finish(void) {
  th_engine_free(eng);
  eng = NULL;
  assert_int_equal(th_tally_check(dsn), 0);
}

/* ---- facts ------------------------------------------------------------------ */
/* How many facts of the fixture differ on the ledger at dsn; prints each. */
static int facts_differ(void) {
  FILE *f = fopen(FIXTURE ".facts", "r");
  assert_non_null(f);
  PGconn *c = PQconnectdb(dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  char line[LINE_MAX_BYTES];
  int differ = 0, facts = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *tab = strchr(line, '\t');
    assert_non_null(tab);
    *tab = 0;
    const char *want = tab + 1;
    PGresult *r = PQexec(c, line);
    const char *got = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0)
                                                                                : PQresultErrorMessage(r);
    if (strcmp(got, want) != 0) {
      fprintf(stderr, "fact differs: %s\n  before: %s\n  after:  %s\n", line, want, got);
      differ++;
    }
    PQclear(r);
    facts++;
  }
  PQfinish(c);
  fclose(f);
  assert_true(facts >= 20); /* the fixture's facts were read at all */
  return differ;
}

static void test_upgrade_keeps_every_fact(void **state) {
  (void)state;
  upgrade("upfacts");
  assert_int_equal(facts_differ(), 0);
  /* Today's migrations were applied on top of the old ones. */
  assert_true(th_sql_i64(dsn, "SELECT max(version) FROM schema_migrations") >= 11);
  /* Every user account of the old ledger is now the irc network's identity
   * of its name, with its wallet (migration 010), and nothing else is. */
  int64_t users = th_sql_i64(dsn, "SELECT count(*) FROM accounts WHERE kind = 1");
  assert_true(users >= 8);
  assert_int_equal(th_sql_i64(dsn, "SELECT count(*) FROM accounts a JOIN identities i ON i.account_id = a.id"
                                   " JOIN networks n ON n.id = i.network_id"
                                   " WHERE a.kind = 1 AND n.name = 'irc' AND 'user:' || i.name = a.name"),
                   users);
  assert_int_equal(th_sql_i64(dsn, "SELECT count(*) FROM identities"), users);
  /* The old batches keep their v1 leaves (migration 011). */
  assert_int_equal(th_sql_i64(dsn, "SELECT count(*) FROM batches WHERE leaf_version <> 1"), 0);
  finish();
  /* And again after a second start: nothing is rewritten by a restart. */
  eng = th_engine(&cfg);
  assert_int_equal(facts_differ(), 0);
  finish();
}

static void test_upgrade_facts_catch_a_lost_row(void **state) {
  (void)state;
  load_fixture("uplost");
  assert_int_equal(facts_differ(), 0);
  /* Behind the append-only triggers, as a faulty migration could. */
  run_sql("SET session_replication_role = replica;"
          " DELETE FROM attendance WHERE account_id = (SELECT id FROM accounts WHERE name = 'user:carol')");
  assert_true(facts_differ() >= 2); /* the attendance list and the table's digest */
}

/* ---- receipts --------------------------------------------------------------- */
/* The token `tally receipt ID` prints (its first line starting "tr"), into out. */
static void receipt_token(uint64_t id, char *out, size_t cap) {
  const char *cli = getenv("TALLY_CLI");
  assert_non_null(cli);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' --dsn '%s' receipt %llu", cli, dsn, (unsigned long long)id);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char line[LINE_MAX_BYTES];
  out[0] = 0;
  while (fgets(line, sizeof line, p)) {
    char *t = strstr(line, "tr");
    if (t && (t[2] == '1' || t[2] == '2') && t[3] == '.' && !out[0]) {
      t[strcspn(t, " \n")] = 0;
      snprintf(out, cap, "%s", t);
    }
  }
  assert_int_equal(pclose(p), 0);
  assert_true(out[0] != 0);
}

/* `tally verify TOKEN --pubkey HEX`, with no database at all. */
static int verify_offline(const char *token, const char *pubkey) {
  const char *cli = getenv("TALLY_CLI");
  assert_non_null(cli);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    unsetenv("TALLY_DSN");
    unsetenv("DATABASE_URL");
    if (!getenv("TALLY_TEST_VERBOSE")) freopen("/dev/null", "w", stdout);
    execl(cli, "tally", "verify", token, "--pubkey", pubkey, (char *)NULL);
    _exit(127);
  }
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_upgrade_old_receipts_verify(void **state) {
  (void)state;
  upgrade("upverify");
  char *pub = slurp(FIXTURE ".pub");
  pub[strcspn(pub, "\n")] = 0;
  FILE *f = fopen(FIXTURE ".receipts", "r");
  assert_non_null(f);
  char line[LINE_MAX_BYTES], id[32], token[LINE_MAX_BYTES];
  int tokens = 0;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "token %31s %8000s", id, token) != 2) continue;
    tokens++;
    if (verify_offline(token, pub) != 0) fprintf(stderr, "token of receipt %s does not verify offline\n", id);
    assert_int_equal(verify_offline(token, pub), 0);
    assert_int_equal(th_tally_run(dsn, "verify", id), 0);
    assert_int_equal(th_tally_run(dsn, "verify", token), 0);
    char text[64];
    th_reply r;
    snprintf(text, sizeof text, "VERIFY %s", id);
    assert_int_equal(th_cmd(eng, "gus", text, 0, &r), TALLY_OK);
    assert_non_null(strstr(r.text, "VALID, in batch"));
  }
  fclose(f);
  assert_int_equal(tokens, 16); /* every transfer the old release wrote */
  /* The owners still see what their old receipts say. */
  th_reply r;
  char text[64];
  snprintf(text, sizeof text, "VERIFY %llu", (unsigned long long)receipt("bob_tee2"));
  assert_int_equal(th_cmd(eng, "bob", text, 0, &r), TALLY_OK);
  if (!strstr(r.text, "your purchase of 2x tee")) fprintf(stderr, "%s\n", r.text);
  assert_non_null(strstr(r.text, "your purchase of 2x tee"));
  assert_non_null(strstr(r.text, "4.00 credits refunded"));
  snprintf(text, sizeof text, "VERIFY %llu", (unsigned long long)receipt("dave_tip"));
  assert_int_equal(th_cmd(eng, "alice", text, 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "a tip of 5.00 credits to you from dave"));
  /* A receipt made after the upgrade is a v2 leaf (it names the irc
   * identity that bought) and verifies offline with the same key. */
  assert_int_equal(th_cmd(eng, "dave", "BUY tee", 0, &r), TALLY_OK);
  uint64_t fresh = r.receipt;
  char fresh_token[LINE_MAX_BYTES];
  receipt_token(fresh, fresh_token, sizeof fresh_token);
  assert_int_equal(strncmp(fresh_token, "tr2.", 4), 0);
  assert_int_equal(verify_offline(fresh_token, pub), 0);
  assert_int_equal(th_tally_run(dsn, "verify", fresh_token), 0); /* a v2 token against the ledger */
  assert_int_equal(th_sql_i64f(dsn, "SELECT b.leaf_version FROM transfers t JOIN batches b ON b.id = t.batch_id"
                                    " WHERE t.id = %llu", (unsigned long long)fresh),
                   2);
  /* dave's own irc identity made it: no transfer_identities row (the
   * ledger's default), and the ledger's leaf for it (tally verify above,
   * tally check at the end) names dave on irc. */
  assert_int_equal(th_sql_i64f(dsn, "SELECT count(*) FROM transfer_identities WHERE transfer_id = %llu",
                               (unsigned long long)fresh),
                   0);
  /* A tampered token is still refused: the offline check is not vacuous. */
  assert_int_not_equal(verify_offline("tr1.AAAA", "00"), 0);
  free(pub);
  finish();
}

/* ---- behaviour -------------------------------------------------------------- */
static int64_t balance(const char *account) {
  return th_sql_i64f(dsn, "SELECT coalesce(sum(e.amount_minor), 0) FROM entries e JOIN accounts a"
                          " ON a.id = e.account_id WHERE a.name = 'user:%s'", account);
}

static void test_upgrade_old_purchases_behave(void **state) {
  (void)state;
  upgrade("upbehave");
  th_reply r;
  char text[96];
  uint64_t tee2 = receipt("bob_tee2"); /* 2 tees for 10.00, 4.00 refunded before the upgrade */
  int64_t bob0 = balance("bob");

  /* The retried message: its first answer, nothing charged. */
  assert_int_equal(th_cmd_key(eng, "bob", "BUY tee 2", "fixture-bob-tee-2", 0, &r), TALLY_OK);
  assert_int_equal(r.receipt, tee2);
  assert_int_equal(balance("bob"), bob0);
  assert_int_equal(th_sql_i64f(dsn, "SELECT count(*) FROM transfers WHERE idem_key LIKE '%%fixture-bob-tee-2%%'"), 1);

  /* Refund rights: 6.00 remain, not a unit more. */
  snprintf(text, sizeof text, "REFUND %llu 6.01", (unsigned long long)tee2);
  assert_int_equal(th_cmd(eng, "bob", text, 0, &r), TALLY_EREFUND_EXCEEDS);
  snprintf(text, sizeof text, "REFUND %llu 6", (unsigned long long)tee2);
  assert_int_equal(th_cmd(eng, "bob", text, 0, &r), TALLY_OK);
  assert_int_equal(balance("bob"), bob0 + 600);
  snprintf(text, sizeof text, "REFUND %llu 0.01", (unsigned long long)tee2);
  assert_int_equal(th_cmd(eng, "bob", text, 0, &r), TALLY_EREFUND_EXCEEDS);
  /* Someone else's pre-upgrade receipt stays theirs. */
  snprintf(text, sizeof text, "REFUND %llu", (unsigned long long)receipt("carol_duo"));
  assert_int_equal(th_cmd(eng, "bob", text, 0, &r), TALLY_ENOT_YOURS);

  /* Consent given before the upgrade holds: no CONFIRM asked; the tee's
   * serials continue after the 5 units sold. */
  assert_int_equal(th_cmd(eng, "dave", "BUY tee", 0, &r), TALLY_OK);
  assert_non_null(strstr(r.text, "serial 6 of 100000"));
  assert_int_equal(balance("dave"), 4800 - 500);
  /* It is stamped at the fixture's time plus an hour: the clock is the one
   * the refund windows above were judged by. */
  int64_t at = th_sql_i64f(dsn, "SELECT created_ms FROM transfers WHERE id = %llu", (unsigned long long)r.receipt);
  assert_true(at >= made_ms + CLOCK_AHEAD_S * 1000LL && at < made_ms + (CLOCK_AHEAD_S + 600) * 1000LL);
  /* The edition sold out before the upgrade stays sold out; the co-op item
   * still pays its split. */
  assert_int_equal(th_cmd(eng, "bob", "BUY print", 0, &r), TALLY_ESOLD_OUT);
  int64_t alice0 = balance("alice"), host0 = balance("host");
  assert_int_equal(th_cmd(eng, "bob", "BUY duo", 0, &r), TALLY_OK);
  assert_true(balance("alice") > alice0 && balance("host") > host0);
  /* A newcomer is still asked to confirm. */
  assert_int_equal(th_cmd(eng, "admin", "TALLY GRANT erin 20", TALLY_ROLE_OPER | TALLY_ROLE_GRANT, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "erin", "BUY tee", 0, &r), TALLY_ECONSENT);

  /* The raffle drawn before the upgrade recomputes from its seed. */
  assert_int_equal(th_cmd(eng, "carol", "VERIFY DRAW tix", 0, &r), TALLY_OK);
  assert_int_equal(th_tally_run(dsn, "draw", "tix"), 0);
  /* Roles: alice is still a creator, erin no longer. */
  assert_int_equal(th_cmd(eng, "alice", "ITEM ADD sticker 1 Sticker", 0, &r), TALLY_OK);
  assert_int_equal(th_cmd(eng, "erin", "ITEM ADD badge 1 Badge", 0, &r), TALLY_ENO_PERMISSION);
  finish();
}

/* ---- running at the fixture's time -------------------------------------------- */
/* Re-executes this binary with the wall clock starting an hour after the
 * fixture was made (libfaketime "@TIME": it then runs on from there). */
static void reexec_at_fixture_time(char **argv) {
  const char *lib = th_libfaketime();
  if (!lib) {
    printf("1..0 # SKIP libfaketime.so.1 not found (Debian package faketime; `make deps` installs it)\n");
    exit(0);
  }
  time_t at = (time_t)(made_ms / 1000 + CLOCK_AHEAD_S);
  char when[64], env[96];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime(&at));
  snprintf(env, sizeof env, "@%s", when);
  const char *old = getenv("LD_PRELOAD");
  char preload[1024];
  snprintf(preload, sizeof preload, "%s%s%s", lib, old && old[0] ? ":" : "", old ? old : "");
  setenv("LD_PRELOAD", preload, 1);
  setenv("FAKETIME", env, 1);
  setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
  setenv("TZ", "UTC", 1);
  const char *asan = getenv("ASAN_OPTIONS");
  char opts[1024];
  snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "", asan && asan[0] ? ":" : "");
  setenv("ASAN_OPTIONS", opts, 1);
  setenv(UNDER_FAKETIME, "1", 1);
  fflush(NULL);
  execv("/proc/self/exe", argv);
  perror("execv /proc/self/exe");
  exit(1);
}

static int teardown(void **state) {
  (void)state;
  if (eng) th_engine_free(eng);
  eng = NULL;
  return 0;
}

int main(int argc, char **argv) {
  (void)argc;
  char *meta = slurp(FIXTURE ".meta");
  const char *made = strstr(meta, "made_ms ");
  if (!made) abort();
  made_ms = strtoll(made + 8, NULL, 10);
  free(meta);
  if (!getenv(UNDER_FAKETIME)) reexec_at_fixture_time(argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_upgrade_keeps_every_fact, teardown),
      cmocka_unit_test_teardown(test_upgrade_facts_catch_a_lost_row, teardown),
      cmocka_unit_test_teardown(test_upgrade_old_receipts_verify, teardown),
      cmocka_unit_test_teardown(test_upgrade_old_purchases_behave, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
