/* load.h — concurrent buying for fault tests: many buyers submit through the
 * public API without waiting, every answer is recorded per request, and the
 * ledger is compared with what the buyers were told.
 *
 * A request's answers: any number of "pending" notices (TALLY_EPENDING) and
 * at most one final answer (a receipt, a refusal, "could not be recorded").
 * A submit refused by the full queue counts as a final "busy". */
#ifndef TALLY_TEST_LOAD_H
#define TALLY_TEST_LOAD_H

#include <stdint.h>

#include "tally.h"

enum { TH_NO_ANSWER = 1 }; /* final_code before any final answer (codes are <= 0) */

typedef struct th_req {
  char key[48];        /* msg_id = idempotency key */
  int final_code;      /* TH_NO_ANSWER until answered */
  int finals;          /* final answers seen: more than one is a bug */
  int pending;         /* pending notices seen */
  uint64_t receipt;    /* of the final answer */
  int64_t sent_ms, answered_ms;
  char text[TALLY_TEXT_BYTES_MAX + 1]; /* the final answer's text */
} th_req;

typedef struct th_load {
  tally_engine *e;
  th_req *reqs;
  int n, cap;
  uint64_t base; /* req_id of reqs[0]; ids never collide with harness.c's */
} th_load;

int64_t th_now_ms(void);

/* The fixture of a fault test: its database, engine and load. */
typedef struct th_fault_fx {
  char dsn[512];
  tally_config cfg;
  tally_engine *e;
  th_load L;
} th_fault_fx;
/* Frees the engine (if any) and the load; the fixture can be reused. */
void th_fault_fx_free(th_fault_fx *f);
void th_load_init(th_load *L, tally_engine *e, int cap);
void th_load_free(th_load *L);
/* Forgets the requests recorded so far (e.g. after setting up a shop). */
void th_load_reset(th_load *L);
/* Submits text as account with msg_id key (generated when NULL); never
 * waits. Returns the request's index. */
int th_load_send(th_load *L, const char *account, const char *text, const char *key, uint32_t roles);
/* Records a request made elsewhere (another process): index. */
int th_load_add(th_load *L, const char *key);
int th_load_find(const th_load *L, const char *key);
/* Drains effects for up to ms milliseconds. */
void th_load_pump(th_load *L, int ms);
/* Pumps until every request has a final answer or timeout_ms passed;
 * returns how many have none. */
int th_load_wait(th_load *L, int timeout_ms);
/* Same for keys: a copy of a key answered only "pending" (sent while the
 * first copy was in flight) counts as resolved once another copy of that key
 * has a final answer. Returns the requests still unresolved. */
int th_load_wait_keys(th_load *L, int timeout_ms);
/* tally_engine_stop (in-flight batches resolve) then drains what it said. */
void th_load_stop_engine(th_load *L);

/* Sends `text` from buyers b0..b<buyers-1> in turn, one every interval_ms,
 * pumping answers in between, for max_ms or until hook returns non-zero
 * (hook gets the elapsed milliseconds). Returns how many were sent. */
typedef int (*th_load_hook)(void *ud, int64_t elapsed_ms);
int th_load_run(th_load *L, int buyers, const char *text, int interval_ms, int max_ms, th_load_hook hook,
                void *ud);

/* Sets up a shop: alice sells "tee" (1.00, `stock` units) and "pin" (1.00,
 * unlimited); buyers b0..b<n-1> get `credits` each and have confirmed their
 * first purchase (a pin), so later buys are plain. Returns 0 or -1. */
int th_load_shop(th_load *L, int buyers, int stock, int credits);

typedef struct th_ledger_report {
  int reqs, ok, receipts, busy, failed, sold_out, pending_only, other, unanswered;
  int double_answers;      /* requests with more than one final answer */
  int receipts_missing;    /* receipt seen, no transfer with that id and key */
  int receipt_conflicts;   /* one key, different receipts */
  int refused_in_ledger;   /* told refused/failed, yet charged */
  int ledger_rows, ledger_qty;
  int ledger_unexplained;  /* transfer whose key nobody sent or nobody may own */
  int ledger_dup_keys;     /* a key charged more than once */
} th_ledger_report;

/* Compares every answer with the purchases of `sku` in the ledger. Returns
 * 0 when the invariants hold (I3, I7, everyone answered), -1 otherwise;
 * prints the report to stderr with tag. */
int th_load_check(const th_load *L, const char *dsn, const char *sku, th_ledger_report *r,
                  const char *tag);

/* Runs one statement that returns no rows; 0 on success. */
int th_sql_exec(const char *dsn, const char *sql);
/* The same, tried again every 250 ms for up to max_ms (a cluster that is
 * restarting after a crash); for clean-ups that must happen. */
int th_sql_exec_retry(const char *dsn, const char *sql, int max_ms);
/* The minor units in "... balance 12.34 credits available ..." (WALLET), or INT64_MIN. */
int64_t th_wallet_available(const char *text, int decimals);

#endif
