/* outcome.c — what the engine does with the answer to a batch in flight
 * (RELIABILITY.md F1, F2, F4, F10), whoever gave it: writer.c reads it from
 * PostgreSQL, the simulator (tests/sim) makes it up. The rules:
 *   - the connection broke with a batch in flight: the outcome is unknown,
 *     so the batch stays sealed and is sent again, unchanged; its ON
 *     CONFLICT keys make that a no-op for what committed;
 *   - serialization failure or deadlock: sent again up to TALLY__RETRY_MAX;
 *   - a key held by another transfer (TL002), or a failure after an unknown
 *     outcome: settled by key lookup, never failed blind (I7);
 *   - the data refused (class 22, 23): the op at fault is isolated;
 *   - any other error: the transaction rolled back, so the batch fails and
 *     every buyer hears they were not charged. */
#include <stdatomic.h>
#include <string.h>

#include "engine_internal.h"
#include "hooks.h"
#include "test_fault.h"

static bool has_class(const char *code, const char *cls) { return code && strncmp(code, cls, 2) == 0; }

static bool retryable(const char *code) {
  return code && (strcmp(code, "40001") == 0 || strcmp(code, "40P01") == 0);
}

/* Unknown outcome: resend later, unchanged (not in flight puts it back
 * among the sealed batches that tally__engine_flush sends). */
static void batch_lost(tally__engine *e, tally__batch *b) {
  b->phase = TALLY__BATCH_SEALED;
  b->inflight = false;
  b->maybe_committed = true;
  atomic_fetch_add_explicit(&e->n_retries, 1, memory_order_relaxed);
}

/* The statement or the lookup failed (the connection is fine). */
static int batch_error(tally__engine *e, tally__batch *b, const tally__outcome *o) {
  const char *code = o->sqlstate, *why = o->message ? o->message : "no result";
  bool fenced = code && strcmp(code, TALLY__SQLSTATE_FENCED) == 0;
  if (fenced) tally__engine_fence(e); /* another engine took the ledger: no more writes */
  bool again = !fenced && retryable(code) && b->retries < TALLY__RETRY_MAX;
  if (!o->lookup && code && strcmp(code, TALLY__SQLSTATE_KEY_TAKEN) == 0) {
    /* Refused as a whole, so no attempt of it committed (an earlier one
     * that did would have left every transfer in place): find which keys
     * the ledger holds, answer those ops, re-seal the rest (engine.c). */
    b->key_taken = true;
    memset(b->inserted, 0, b->transfer_count);
    return TALLY__NEXT_LOOKUP;
  }
  if (o->lookup || again) {
    /* A failed lookup leaves the outcome open; a retryable error is retried.
     * Either way the batch goes out again, unchanged. */
    b->retries++;
    if (o->lookup) b->maybe_committed = true;
    b->phase = TALLY__BATCH_SEALED;
    b->inflight = false;
    atomic_fetch_add_explicit(&e->n_retries, 1, memory_order_relaxed);
    return TALLY__NEXT_NONE;
  }
  if (b->maybe_committed) {
    /* This attempt rolled back, but an earlier one may have committed:
     * settle by key lookup instead of failing blind (I7). */
    memset(b->inserted, 0, b->transfer_count);
    return TALLY__NEXT_LOOKUP;
  }
  /* Class 22 (data exception) or 23 (integrity constraint): one op's data,
   * not the ledger's state. Never fail the others for it. */
  if (has_class(code, "22") || has_class(code, "23")) {
    tally__engine_batch_isolate(e, b, why);
    return TALLY__NEXT_NONE;
  }
  /* Class 53, insufficient resources (disk full, out of memory): live
   * drops pause until the ledger takes writes again. */
  if (has_class(code, "53")) TALLY__FEATURES_CALL0(e, ledger_refused);
  tally__engine_batch_failed(e, b, why);
  return TALLY__NEXT_NONE;
}

void tally__engine_lookup_sent(tally__engine *e, tally__batch *b) {
  b->phase = TALLY__BATCH_RESOLVING;
  b->sent_mono_ms = tally__now_mono_ms(e);
}

int tally__engine_on_outcome(tally__engine *e, tally__batch *b, const tally__outcome *o) {
  switch (o->kind) {
  case TALLY__OUTCOME_LOST:
    if (TALLY__FAULT(RECEIPT_UNKNOWN) && !b->key_taken) { /* as if the statement had said so */
      memset(b->inserted, 1, b->transfer_count);
      b->statement_ok = true;
      tally__engine_batch_done(e, b);
      return TALLY__NEXT_NONE;
    }
    batch_lost(e, b);
    return TALLY__NEXT_NONE;
  case TALLY__OUTCOME_STATEMENT_OK: {
    b->statement_ok = true;
    uint32_t n = 0;
    for (uint32_t k = 0; k < b->transfer_count; k++) n += b->inserted[k] ? 1u : 0u;
    if (n != b->transfer_count) return TALLY__NEXT_LOOKUP; /* some keys (or ids) were taken */
    tally__engine_batch_done(e, b);
    return TALLY__NEXT_NONE;
  }
  case TALLY__OUTCOME_LOOKUP_OK:
    b->looked_up = true;
    tally__engine_batch_done(e, b);
    return TALLY__NEXT_NONE;
  case TALLY__OUTCOME_ERROR:
    return batch_error(e, b, o);
  }
  return TALLY__NEXT_NONE;
}
