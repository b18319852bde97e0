/* harness.h — helpers for integration tests: a fresh database per test, an
 * engine on it, commands sent through the public API and their answers
 * awaited, and `tally check` run on the ledger. */
#ifndef TALLY_TEST_HARNESS_H
#define TALLY_TEST_HARNESS_H

#include <stdint.h>

#include "tally.h"

typedef struct th_reply {
  int code;
  uint64_t receipt;
  char text[TALLY_TEXT_BYTES_MAX + 1];
  uint32_t hint; /* enum tally_hint of the reply */
  char network[TALLY_NAME_BYTES_MAX + 1]; /* the reply effect's network */
  uint32_t msg;  /* enum tally_msg of the reply (0: text only) */
  char args[TALLY_EFFECT_ARGS_BYTES_MAX + 1]; /* its encoded arguments */
} th_reply;

/* An announcement, moderators' line or topic as the adapter got it. */
typedef struct th_effect {
  uint32_t kind, msg;
  char text[TALLY_TEXT_BYTES_MAX + 1];
  char args[TALLY_EFFECT_ARGS_BYTES_MAX + 1];
} th_effect;
/* The latest such effect whose text contains needle into *out; 0 if none. */
int th_effect_find(const char *needle, th_effect *out);
/* A reply nobody asked for (req_id 0) to origin of network containing
 * needle, latest first; its text into out (may be NULL); 0 if none. */
int th_told(const char *network, const char *origin, const char *needle, char *out, size_t out_len);

/* Creates database th_<name>_<pid> next to $TALLY_TEST_DSN; writes its DSN. */
void th_fresh_db(const char *name, char *dsn, size_t dsn_len);
/* Config with test defaults on dsn (key file in $TALLY_TMP). */
void th_config(tally_config *cfg, const char *dsn);
/* Starts an engine and waits for its "ready" status. */
tally_engine *th_engine(const tally_config *cfg);
void th_engine_free(tally_engine *e);
/* Sends text as account (msg_id auto-generated unless given) and waits for the
 * final reply to it (skipping "pending" notices). Returns the reply code. */
int th_cmd(tally_engine *e, const char *account, const char *text, uint32_t roles, th_reply *out);
int th_cmd_key(tally_engine *e, const char *account, const char *text, const char *msg_id,
               uint32_t roles, th_reply *out);
/* As th_cmd, said in a channel (roles e.g. TALLY_ROLE_CHANOP). */
int th_cmd_in(tally_engine *e, const char *account, const char *channel, const char *text, uint32_t roles,
              th_reply *out);
/* Did any channel announcement seen so far contain `needle`? Each is kept
 * as "<channel>: <text>", one to the channel's moderators only as
 * "@<channel>: <text>". */
int th_announced(const char *needle);
/* th_announced, said in a room of `network` (the effect's network). */
int th_announced_in(const char *network, const char *needle);
/* The last topic the engine set (TALLY_EFFECT_TOPIC; "" = restore), and
 * how many topic changes it asked for so far. */
const char *th_topic(int *changes);
/* Did the engine ask for channel's roster (TALLY_EFFECT_ROSTER) last? */
int th_rostered(const char *channel);
/* Submits a presence change (what an adapter does on join and part). */
void th_presence(tally_engine *e, const char *account, const char *channel, int present);
/* Drains and records whatever the engine says in the next `ms`. */
void th_settle(tally_engine *e, int ms);
/* Sends without waiting; answers are collected by th_collect. */
uint64_t th_send(tally_engine *e, const char *account, const char *text, const char *msg_id);
/* As th_send, said in a channel by a user with that nick and origin. */
uint64_t th_send_in(tally_engine *e, const char *account, const char *channel, const char *text);
/* Waits until `count` final replies to th_send'ed commands arrived; codes are
 * tallied into counts[code index] via callback. Returns replies seen. */
typedef void (*th_reply_fn)(void *ud, uint64_t req_id, const th_reply *r);
int th_collect(tally_engine *e, int count, int timeout_ms, th_reply_fn fn, void *ud);
/* A buyer ready to buy: granted `credits` (by an operator) and consent
 * given with a first purchase of `sku`; returns TALLY_OK or the first
 * refusal. */
int th_buyer(tally_engine *e, const char *account, const char *credits, const char *sku);
/* Buys through the consent step: BUY then CONFIRM <code>. */
int th_buy_confirmed(tally_engine *e, const char *account, const char *sku, th_reply *out);
/* Runs `$TALLY_CLI --dsn dsn check`; returns its exit status. */
int th_tally_check(const char *dsn);
/* Runs `$TALLY_CLI --dsn dsn cmd [arg]`; returns its exit status. */
int th_tally_run(const char *dsn, const char *cmd, const char *arg);
/* The same with two arguments (e.g. grant ACCOUNT AMOUNT). */
int th_tally_run2(const char *dsn, const char *cmd, const char *arg1, const char *arg2);
/* Starts an engine that is expected NOT to become ready: waits up to
 * timeout_ms for a non-OK status effect; returns its code (TALLY_OK if it
 * became ready or said nothing) and copies its text. Frees the engine. */
int th_engine_refused(const tally_config *cfg, char *text, size_t text_len, int timeout_ms);
/* As th_cmd_key, for an identity of `network` (NULL: the configured one),
 * said in channel ("" privately), origin = account. */
int th_cmd_net(tally_engine *e, const char *network, const char *account, const char *channel,
               const char *text, const char *msg_id, uint32_t roles, th_reply *out);
/* The path of Debian's libfaketime (or $TALLY_LIBFAKETIME), NULL when it is
 * not installed: a test that needs it reports a skip, never a pass. */
const char *th_libfaketime(void);
/* One value from SQL (first row, first column) as int64. */
int64_t th_sql_i64(const char *dsn, const char *sql);
/* th_sql_i64 of a printf-formatted query. */
__attribute__((format(printf, 2, 3))) int64_t th_sql_i64f(const char *dsn, const char *fmt, ...);

#endif
