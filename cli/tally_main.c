/* tally_main.c — the `tally` admin command.
 *
 *   tally [--dsn DSN] [--config FILE] migrate | grant | verify | receipt | check | draw | export | config
 *
 * The DSN comes from --dsn, else the `dsn` of --config FILE, else
 * $TALLY_DSN, else $DATABASE_URL. Grants are
 * not written here: they are requests that the running engine (the single
 * writer) applies exactly once, so memory and ledger never disagree. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "tally.h"
#include "tally/admin.h"

static const char usage[] =
    "usage: tally [--dsn DSN] [--config FILE] COMMAND [ARGS]\n"
    "  migrate                      apply pending SQL migrations\n"
    "  grant ACCOUNT AMOUNT         give credits (audited); applied by the running engine\n"
    "        [--actor NAME] [--wait SECONDS]  (AMOUNT in the ledger's currency decimals)\n"
    "  verify RECEIPT_ID|TOKEN      check a receipt's signature and Merkle proof\n"
    "        [--pubkey HEX]         (a token with --pubkey needs no database)\n"
    "  receipt RECEIPT_ID           print the receipt token to keep or share\n"
    "  check                        check the ledger invariants; exit 1 on any breach\n"
    "  draw SKU                     recompute a raffle's draw from its seed and entries\n"
    "  export                       transfers as CSV on stdout\n"
    "  config                       list the engine's configuration keys; with --config FILE,\n"
    "                               check FILE instead (exit 1 if the engine would refuse it)\n"
    "  matrix-registration FILE URL SERVER_NAME\n"
    "                               write a Matrix AS registration (fresh tokens) for tallyd\n"
    "DSN: --dsn, else the dsn of --config FILE, else $TALLY_DSN, else $DATABASE_URL.\n";

PGconn *cli_connect(const cli_opts *o) {
  if (!o->dsn) {
    fprintf(stderr, "tally: no database: give --dsn or set TALLY_DSN\n");
    return NULL;
  }
  PGconn *c = PQconnectdb(o->dsn);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "tally: connect: %s", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
  }
  PQclear(PQexec(c, "SET client_min_messages = warning"));
  return c;
}

static int cmd_migrate(PGconn *c) {
  char err[TALLY_ERRBUF_BYTES] = "";
  int applied;
  if (tally_admin_migrate(c, &applied, err, sizeof err)) {
    fprintf(stderr, "tally migrate: %s\n", err);
    return 1;
  }
  printf("migrations: %d applied, schema at version %d\n", applied,
         tally_admin_schema_version());
  return 0;
}

/* The ledger's currency decimals (recorded by the first engine start), or
 * -1 with the reason printed. */
static int ledger_decimals(PGconn *c) {
  PGresult *r = PQexec(c, "SELECT decimals FROM ledger_currency WHERE id = 1");
  int dec = -1;
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fprintf(stderr, "tally grant: %s", PQresultErrorMessage(r));
  else if (PQntuples(r) == 0)
    fprintf(stderr, "tally grant: the ledger does not know its currency decimals yet:"
                    " start the engine once (it records its `decimals` setting)\n");
  else dec = atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  if (dec > 6) {
    fprintf(stderr, "tally grant: the ledger records %d decimals, more than 6\n", dec);
    dec = -1;
  }
  return dec;
}

static int cmd_grant(PGconn *c, const cli_opts *o, const char *account, const char *amount_text) {
  int decimals = ledger_decimals(c);
  if (decimals < 0) return 1;
  int64_t amount;
  int rc = tally_admin_amount_parse(amount_text, strlen(amount_text), (uint32_t)decimals, &amount);
  if (rc || !account[0] || strlen(account) > TALLY_IDENTITY_BYTES_MAX) {
    fprintf(stderr, "tally grant: %s\n", rc ? tally_strerror(rc) : "bad account name");
    return 1;
  }
  char amount_s[24], ms[24], detail[160];
  snprintf(amount_s, sizeof amount_s, "%lld", (long long)amount);
  snprintf(ms, sizeof ms, "%lld", (long long)time(NULL) * 1000);
  snprintf(detail, sizeof detail, "grant %s minor units to %s", amount_s, account);
  const char *p[5] = {account, amount_s, o->actor, ms, detail};
  PGresult *r = PQexecParams(c,
                             "WITH g AS (INSERT INTO grant_requests (account, amount_minor, actor, created_ms)"
                             " VALUES ($1, $2::bigint, $3, $4::bigint) RETURNING id),"
                             " a AS (INSERT INTO audit_log (actor, action, detail, created_ms)"
                             " SELECT $3, 'grant', $5 || ' (request ' || id || ')', $4::bigint FROM g)"
                             " SELECT id FROM g",
                             5, NULL, p, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    fprintf(stderr, "tally grant: %s", PQresultErrorMessage(r));
    PQclear(r);
    return 1;
  }
  char key[48];
  snprintf(key, sizeof key, "grant-request:%s", PQgetvalue(r, 0, 0));
  printf("grant request %s recorded (by %s)\n", PQgetvalue(r, 0, 0), o->actor);
  PQclear(r);
  const char *kp[1] = {key};
  for (int i = 0; i < o->wait_s * 10; i++) {
    r = PQexecParams(c, "SELECT id FROM transfers WHERE idem_key = $1", 1, NULL, kp, NULL, NULL, 0);
    int done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (done) printf("applied: transfer %s\n", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (done) return 0;
    usleep(100 * 1000);
  }
  printf("queued: the engine applies it when it runs\n");
  return 0;
}

static int cmd_export(PGconn *c) {
  PGresult *r = PQexec(c,
                       "COPY (SELECT t.id, t.batch_id, t.kind, t.idem_key, a.name AS account,"
                       " cp.name AS counterparty, i.sku, t.qty, t.amount_minor, t.ref_transfer, t.created_ms"
                       " FROM transfers t JOIN accounts a ON a.id = t.account_id"
                       " LEFT JOIN accounts cp ON cp.id = t.counterparty_id LEFT JOIN items i ON i.id = t.item_id"
                       " ORDER BY t.id) TO STDOUT WITH CSV HEADER");
  if (PQresultStatus(r) != PGRES_COPY_OUT) {
    fprintf(stderr, "tally export: %s", PQresultErrorMessage(r));
    PQclear(r);
    return 1;
  }
  PQclear(r);
  char *line;
  int n;
  while ((n = PQgetCopyData(c, &line, 0)) > 0) {
    fwrite(line, 1, (size_t)n, stdout);
    PQfreemem(line);
  }
  PQclear(PQgetResult(c));
  return 0;
}

/* One parsed option into o; false for --help and unknown options. */
static bool cli_option(cli_opts *o, int ch) {
  switch (ch) {
  case 'd': o->dsn = optarg; o->dsn_given = true; return true;
  case 'c': o->config_path = optarg; return true;
  case 'k': o->pubkey_hex = optarg; return true;
  case 'a': o->actor = optarg; return true;
  case 'w': o->wait_s = atoi(optarg); return true;
  default: return false;
  }
}

static int config_file_check(const tally_config *cfg, const char *path);
static int run_command(const cli_opts *po, const char *cmd, char **args, int nargs);

static void print_key(void *ud, const char *key, const char *def, const char *help) {
  (void)ud;
  printf("  %-16s default %-22s %s\n", key, def[0] ? def : "(none)", help);
}

int main(int argc, char **argv) {
  cli_opts o = {.dsn = getenv("TALLY_DSN"), .actor = getenv("USER"), .wait_s = 5};
  if (!o.dsn) o.dsn = getenv("DATABASE_URL");
  if (!o.actor) o.actor = "cli";
  static const struct option opts[] = {{"dsn", required_argument, 0, 'd'},  {"pubkey", required_argument, 0, 'k'},
                                       {"actor", required_argument, 0, 'a'}, {"config", required_argument, 0, 'c'},
                                       {"wait", required_argument, 0, 'w'},  {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  /* Options may stand anywhere (tally verify TOKEN --pubkey HEX): GNU
   * getopt moves the command word and its arguments to the end. */
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1)
    if (!cli_option(&o, ch)) {
      fputs(usage, ch == 'h' ? stdout : stderr);
      return ch == 'h' ? 0 : 2;
    }
  int first = optind;
  if (first >= argc) {
    fputs(usage, stderr);
    return 2;
  }
  const char *cmd = argv[first];
  char **args = argv + first + 1;
  int nargs = argc - first - 1;
  /* The config file is read whole (and refused whole) before anything. */
  tally_config cfg;
  tally_config_init(&cfg);
  tally_config_file *file = NULL;
  if (o.config_path) {
    char err[TALLY_ERRBUF_BYTES] = "";
    if (tally_config_load_file(&cfg, o.config_path, &file, err, sizeof err)) {
      fprintf(stderr, "tally: %s\n", err);
      return 2;
    }
    if (!o.dsn_given && cfg.dsn[0]) o.dsn = cfg.dsn;
  }
  if (strcmp(cmd, "config") == 0) {
    int rc = o.config_path ? config_file_check(&cfg, o.config_path) : 0;
    if (!o.config_path) {
      printf("configuration keys (InspIRCd: attributes of <tally>):\n");
      tally_config_describe(print_key, NULL);
    }
    tally_config_file_free(file);
    return rc;
  }
  int rc = run_command(&o, cmd, args, nargs);
  tally_config_file_free(file);
  return rc;
}

/* tally --config FILE config: what tally_engine_new would say of FILE. */
static int config_file_check(const tally_config *cfg, const char *path) {
  char err[TALLY_ERRBUF_BYTES] = "";
  if (tally_config_check(cfg, err, sizeof err)) {
    fprintf(stderr, "tally: %s: %s\n", path, err);
    return 1;
  }
  printf("%s: ok\n", path);
  return 0;
}

static int run_command(const cli_opts *po, const char *cmd, char **args, int nargs) {
  cli_opts o = *po;
  bool offline = strcmp(cmd, "verify") == 0 && nargs == 1 && o.pubkey_hex && cli_is_token(args[0]);
  if (offline) return cli_verify(NULL, &o, args[0]);
  if (!strcmp(cmd, "matrix-registration")) {
    if (nargs != 3) {
      fprintf(stderr, "tally: matrix-registration FILE URL SERVER_NAME\n%s", usage);
      return 2;
    }
    return cli_matrix_registration(args[0], args[1], args[2]);
  }
  int want = strcmp(cmd, "grant") == 0 ? 2 : (strcmp(cmd, "verify") == 0 || strcmp(cmd, "receipt") == 0 || strcmp(cmd, "draw") == 0) ? 1 : 0;
  bool known = !strcmp(cmd, "migrate") || !strcmp(cmd, "grant") || !strcmp(cmd, "verify") ||
               !strcmp(cmd, "receipt") || !strcmp(cmd, "check") || !strcmp(cmd, "export") || !strcmp(cmd, "draw");
  if (!known || nargs != want) {
    fprintf(stderr, "tally: %s\n%s", known ? "wrong number of arguments" : "unknown command", usage);
    return 2;
  }
  PGconn *c = cli_connect(&o);
  if (!c) return 2;
  int rc;
  if (!strcmp(cmd, "migrate")) rc = cmd_migrate(c);
  else if (!strcmp(cmd, "grant")) rc = cmd_grant(c, &o, args[0], args[1]);
  else if (!strcmp(cmd, "verify")) rc = cli_verify(c, &o, args[0]);
  else if (!strcmp(cmd, "receipt")) rc = cli_receipt(c, args[0]);
  else if (!strcmp(cmd, "check")) rc = cli_check(c);
  else if (!strcmp(cmd, "draw")) rc = cli_draw(c, args[0]);
  else rc = cmd_export(c);
  PQfinish(c);
  return rc;
}
