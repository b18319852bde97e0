/* batch.h — one group commit: the ops decided since the last one, the
 * catalog rows that ride along with them, their Merkle root and signature,
 * and the single SQL statement that writes all of it.
 *
 * Contract: a batch is sealed once (ids, leaves, root, signature and SQL
 * text are fixed from then on), so it can be sent again unchanged after a
 * lost connection: every row it writes is keyed (transfer ids, idempotency
 * keys, batch id, account ids) and inserted with ON CONFLICT DO NOTHING,
 * which makes a resend a no-op for whatever already committed. Memory is
 * allocated once by tally__batch_init for batch_max ops. */
#ifndef TALLY_BATCH_H
#define TALLY_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "state.h"

enum {
  TALLY__BATCH_PARAMS = 126,
  TALLY__BATCH_ROWS_MAX = 1024, /* catalog rows (accounts, items, ...) per batch */
  /* 768 + its transfer_identities row, and an audited grant's audit_log
   * row naming two accounts (names of up to TALLY__ACCOUNT_NAME_BYTES). The
   * text buffer is sized for the worst case; pages are touched only as used. */
  TALLY__BATCH_OP_TEXT_BYTES = 800 + 2 * TALLY__ACCOUNT_NAME_BYTES + 160, /* + a reward fact (sql/015) */
  /* A catalog row with its room (drop channel, event channel), or an
   * account's row, its identity row and its role change's author. */
  TALLY__BATCH_ROW_TEXT_BYTES = 640 + 128 + TALLY__ROOM_KEPT_BYTES_MAX + 3 * TALLY__ACCOUNT_NAME_BYTES,
  /* The networks rows of one batch: at most every network once. */
  TALLY__BATCH_NETWORKS_TEXT_BYTES = TALLY__NETWORKS_MAX * (TALLY__NETWORK_NAME_BYTES_MAX + 16) + 64,
};

typedef enum tally__batch_phase {
  TALLY__BATCH_FREE = 0,
  TALLY__BATCH_OPEN,     /* taking ops */
  TALLY__BATCH_SEALED,   /* waiting for a writer, or sent */
  TALLY__BATCH_RESOLVING /* looking up keys that were already taken */
} tally__batch_phase;

typedef struct tally__batch_row {
  uint32_t index;
  uint64_t version;
  uint8_t what; /* TALLY__ROW_* */
} tally__batch_row;
enum {
  TALLY__ROW_ACCOUNT = 1, TALLY__ROW_CONSENT = 2, TALLY__ROW_ROLE = 3, TALLY__ROW_ITEM = 4, TALLY__ROW_EVENT = 5,
  TALLY__ROW_ATTEND = 6, TALLY__ROW_PRIVACY = 7, TALLY__ROW_REFCODE = 8, TALLY__ROW_BIO = 9,
};

typedef struct tally__batch {
  tally__batch_phase phase;
  uint64_t id;
  uint32_t op_count, op_max, transfer_count;
  tally__op *ops;
  tally__batch_row rows[TALLY__BATCH_ROWS_MAX];
  uint32_t row_count;
  uint8_t (*leaves)[32];
  uint8_t (*scratch)[32];
  uint8_t root[32], sig[64];
  char *text;
  size_t text_len, text_cap;
  const char *params[TALLY__BATCH_PARAMS];
  int lengths[TALLY__BATCH_PARAMS]; /* binary parameters' byte counts */
  int formats[TALLY__BATCH_PARAMS]; /* 0 text (scalars), 1 binary (arrays) */
  int arr_param;                    /* the array being rendered */
  size_t arr_start;
  uint32_t arr_count;
  bool arr_nulls;
  bool inflight;        /* sent, answer not yet in */
  bool maybe_committed; /* a send's outcome was lost: settle by key lookup, never fail blind */
  uint32_t *xfer;       /* indices of the transfer ops, in transfer-id order */
  uint64_t *found_id;   /* per transfer op: id the ledger holds for its key (0 = none) */
  uint64_t *found_fp;   /* per transfer op: that transfer's request fingerprint */
  uint8_t *inserted;    /* per transfer op: inserted by the last statement */
  bool looked_up;       /* found_* hold a complete key lookup */
  bool statement_ok;    /* the last attempt of the statement itself succeeded */
  bool found_batch;     /* the key lookup found the batch's mark (sql/022: batches without transfers) */
  char *keys_text;      /* "{k1,k2,...}" for the key lookup */
  size_t keys_cap;
  uint32_t retries;   /* serialization failures so far */
  bool key_taken;     /* refused as a whole (TL002): settle by lookup, then re-seal the rest */
  uint32_t reseals;   /* times re-sealed under a new id */
  bool *drop;         /* per op: scratch for tally__batch_drop_ops */
  uint32_t hidden;    /* ops after op_count left out of this send while one the
                       * ledger refuses is looked for (engine.c, isolation) */
  uint64_t sealed_mono_ms;
  uint64_t sent_mono_ms; /* last statement or lookup sent */
} tally__batch;

int tally__batch_init(tally__batch *b, uint32_t op_max);
void tally__batch_free(tally__batch *b);
void tally__batch_reset(tally__batch *b);
/* Room for one more op? */
int tally__batch_full(const tally__batch *b);
tally__op *tally__batch_append(tally__batch *b);

struct tally__signer;
/* Takes dirty catalog rows from st, computes receipt leaves, the root and
 * its signature, and renders the statement's parameters. */
int tally__batch_seal(tally__batch *b, tally__state *st, struct tally__signer *signer,
                      uint64_t mono_ms, int64_t wall_ms, uint64_t lease_epoch);
/* Seals again under a new batch id (new leaves, root, signature and
 * parameters) after ops were dropped from a batch that did not commit; the
 * catalog rows it carries stay with it. */
int tally__batch_reseal(tally__batch *b, tally__state *st, struct tally__signer *signer,
                        uint64_t mono_ms, int64_t wall_ms, uint64_t lease_epoch);
/* Removes the ops with drop[k] set (k < op_count), keeping the others'
 * order; the hidden ops stay right after the new op_count. */
void tally__batch_drop_ops(tally__batch *b, const bool *drop);
/* The batch committed or failed: its rows may be taken by another batch
 * again (a row stays out of every other batch while one carries it). */
void tally__batch_rows_settled(const tally__batch *b, tally__state *st);
/* Would a batch sealed now take any row? (Rows in flight elsewhere do not
 * count: a batch of its own for them would be empty.) */
bool tally__batch_rows_waiting(const tally__state *st);
/* The statement that writes a sealed batch (fenced by the engine's lease
 * epoch); it returns the ids of the transfers it inserted. */
extern const char tally__batch_sql[];
/* The name it is prepared under, once per connection (kernel/writer.c):
 * parsing and planning it for every batch was a fixed cost of each batch,
 * so of each buy when batches are small. Each batch's Bind names it. */
#define TALLY__BATCH_STMT "tally_batch"

/* $1 batch id, $2 keys: rows (idem_key, id, request_fp), looked up only
 * once no earlier attempt of the batch is still running. */
extern const char tally__batch_lookup_sql[];
/* SQLSTATE of a batch refused because another engine took the lease. */
#define TALLY__SQLSTATE_FENCED "TL001"
/* SQLSTATE of a batch refused as a whole because one of its keys is held by
 * another transfer (sql/008): settled by key lookup, then re-sealed. */
#define TALLY__SQLSTATE_KEY_TAKEN "TL002"
/* Renders the batch's keys into keys_text for tally__batch_lookup_sql. */
const char *tally__batch_keys_param(tally__batch *b, const tally__state *st);
/* Index (into xfer) of the transfer op with this id, or -1. */
int32_t tally__batch_find_transfer(const tally__batch *b, uint64_t transfer_id);

#endif
