/* cli.h — the `tally` admin command: shared helpers of its subcommands.
 * Every subcommand is blocking libpq on its own connection; none of it
 * runs inside a chat server. */
#ifndef TALLY_CLI_H
#define TALLY_CLI_H

#include <stdbool.h>

#include <libpq-fe.h>

typedef struct cli_opts {
  const char *dsn;
  bool dsn_given;          /* --dsn: wins over the config file's dsn */
  const char *config_path; /* --config FILE */
  const char *pubkey_hex;
  const char *actor;
  int wait_s;
} cli_opts;

PGconn *cli_connect(const cli_opts *o);
int cli_check(PGconn *c);
int cli_verify(PGconn *c, const cli_opts *o, const char *what);
/* A receipt token of any version ("tr1.", "tr2.", ...) rather than a receipt id:
 * with --pubkey it is checked without a database. */
bool cli_is_token(const char *s);
int cli_receipt(PGconn *c, const char *id);
int cli_draw(PGconn *c, const char *sku);
/* tally matrix-registration FILE URL SERVER_NAME (matrix_reg.c): no database. */
int cli_matrix_registration(const char *path, const char *url, const char *server_name);

#endif
