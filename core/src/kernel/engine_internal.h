/* engine_internal.h — the engine object shared by engine.c (clocks, effects,
 * batches), writer.c (PostgreSQL), loader.c (start-up), the layers above
 * them, and runtime/engine_loop.c (API, thread, loop).
 *
 * Threading contract: `in`, `out`, `efd` and the atomics are touched by
 * both the host thread and the engine thread; everything else only by the
 * engine thread once tally_engine_start has returned. */
#ifndef TALLY_ENGINE_INTERNAL_H
#define TALLY_ENGINE_INTERNAL_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "batch.h"
#include "codec.h"
#include "ring.h"
#include "say.h"
#include "signer.h"
#include "state.h"
#include "tally.h"
#include "verifier.h"

enum {
  TALLY__WRITERS_MAX = 4,
  TALLY__REMOTE_STRINGS = 8, /* config strings remote mode copies (runtime/engine_loop.c) */
  TALLY__TICK_MS = 20,
  TALLY__RECONNECT_MS = 500,
  /* The start's load waits for a table lock at most this long, then fails
   * and is retried: a ledger held by another session (a LOCK TABLE, a long
   * migration) must not pin the engine thread, so a host's stop during a
   * start stays within TALLY_ENGINE_STOP_FAST_MS. */
  TALLY__LOAD_LOCK_TIMEOUT_MS = 250,
  TALLY__CONNECT_TIMEOUT_MS = 5000,
  TALLY__ANSWER_DEADLINE_MS = 60000, /* a statement unanswered this long: connection lost */
  TALLY__ROWS_RETRY_MS = 1000,       /* catalog rows alone retry this long after a failure */
  TALLY__RETRY_MAX = 5,            /* serialization failures before giving up */
  TALLY__EFFECTS_PER_EVENT_MAX = 24, /* effects one command may emit at once */
  TALLY__EFFECTS_PER_OP_MAX = 4,     /* answer, "pending" notice, channel line, drop line */
  /* An effect frame without its origin and room: every other field at its
   * limit (the text, the args, the network, nine integers, the headers). */
  TALLY__EFFECT_FIXED_BYTES = 3 + 9 * 2 + 9 * 9 + 3 * 2 + (3 + TALLY_TEXT_BYTES_MAX) +
                              (3 + TALLY_FRAME_NETWORK_BYTES_MAX) + (3 + TALLY_EFFECT_ARGS_BYTES_MAX),
  TALLY__GRANT_POLL_MS = 1000,
  /* Grant requests take their bigserial id before they commit, so one may
   * commit after higher ids did: each poll looks back this many ids below
   * the highest seen for requests that have no transfer yet. */
  TALLY__GRANT_REORDER_IDS = 4096,
  TALLY__GRANT_POLL_ROWS = 64,
  TALLY__RESEALS_MAX = 64, /* a batch re-sealed without ops whose keys were taken, at most */
  TALLY__GRANT_SKIPPED_MAX = 64, /* requests the engine cannot apply, left out of polls */
  TALLY__STOP_WAIT_MS = 10000,
  TALLY__PENDING_IDS_MAX = 256,    /* keys looked up per resolve query */
  TALLY__DRAIN_FLUSH_EVERY = 512,  /* events drained between offers to idle writers */
  TALLY__FEATURE_DATA_MAX = 8,     /* features with tables of their own (e->feature_data) */
};

/* Role bit of frames made by tally_engine_submit_presence. */
#define TALLY__ROLE_PRESENCE (1u << 31)

typedef enum writer_state {
  TALLY__WRITER_DOWN = 0,
  TALLY__WRITER_IDLE,
  TALLY__WRITER_BATCH,   /* a batch statement in flight */
  TALLY__WRITER_RESOLVE, /* looking up already-taken keys of its batch */
  TALLY__WRITER_GRANTS,  /* polling grant_requests */
  TALLY__WRITER_CONNECTING, /* PQconnectPoll in progress (reconnects) */
  TALLY__WRITER_SETUP,      /* session set-up query (writer 0: the advisory lock) */
  TALLY__WRITER_PREPARE,    /* preparing the batch statement (writer.c, TALLY__BATCH_STMT) */
} writer_state;

typedef struct tally__writer {
  struct tally_engine *engine;
  int index;
  PGconn *conn;
  uv_poll_t poll;
  bool poll_live, poll_closing, want_write;
  writer_state state;
  tally__batch *batch;
  PGresult *result;   /* first result of the current query */
  uint64_t down_since_ms, next_connect_ms, connect_deadline_ms;
  int poll_fd;
} tally__writer;

struct tally_engine {
  tally_config cfg;
  char *dsn, *key_path, *currency, *network, *admins;
  tally__ring in, out;
  int efd;
  pthread_t thread;
  bool thread_started;
  atomic_int stopping;
  atomic_int running;

  /* engine thread only */
  uv_loop_t loop;
  uv_async_t wake;
  uv_timer_t tick;
  tally__state st;
  tally__decoder dec;
  tally__signer *signer;
  tally__batch *batches;
  uint32_t batch_slots;
  tally__batch *open;
  tally__writer writers[TALLY__WRITERS_MAX];
  bool ready;
  bool fenced;           /* another engine took the lease: never write again */
  uint64_t lease_epoch;  /* engine_lease.epoch this engine holds */
  uint64_t rows_retry_mono_ms; /* catalog-only batches wait until then after a failure */
  uint64_t next_start_ms, next_grant_poll_ms;
  int64_t last_grant_request; /* the highest grant request id seen */
  int64_t grant_skipped[TALLY__GRANT_SKIPPED_MAX]; /* a ring; 0 = empty */
  uint32_t grant_skipped_next;
  bool effects_pending;
  uint32_t ops_pending;
  /* Bytes of the effects ring the pending ops' answers may take (the sum
   * of their effects_bytes): effects_room keeps them free. */
  uint64_t effects_reserved;
  uint8_t frame[TALLY_FRAME_BYTES_MAX];
  char startup_error[TALLY_ERRBUF_BYTES];
  /* VERIFY <receipt>: checked on a thread and connection of its own
   * (verifier.c), answered when verify_wake fires; its own rate bucket. */
  tally__verifier *verifier; /* NULL if its thread could not start: VERIFY is busy */
  uv_async_t verify_wake;
  int64_t verify_tokens_milli, verify_at_ms;

  /* host side */
  tally__decoder host_dec;
  pthread_mutex_t host_dec_lock; /* only contended by misuse: one drainer */

  _Atomic uint64_t n_events_in, n_effects_out, n_busy, n_buys_committed, n_buys_refused,
      n_batches, n_retries, n_announce_dropped;
  const struct tally__hooks *hooks; /* hooks.h: the layers above the kernel */
  const struct tally__env *env;     /* time and writers: tally__env_real, or a simulator's */
  void *env_ud;                     /* the environment's own data (a simulator's world) */
  /* Remote mode (config mode=remote; runtime/remote.c): the public calls go
   * to a tallyd; only cfg, in, out, efd, host_dec and the counters are used. */
  struct tally__remote *remote;
  char *remote_strings[TALLY__REMOTE_STRINGS];
  /* Set by tally_engine_stop_within: the stopping thread leaves batches in
   * flight to PostgreSQL instead of waiting for them (a host unloading its
   * copy of the library cannot wait). Never cleared: a later
   * tally_engine_stop must not turn it back into a wait. */
  atomic_bool stop_abandon;
  /* tally_engine_reconfigure: the host thread stores the settings that may
   * change live (engine_loop.c's live_keys, in that order) and bumps
   * live_gen; the engine thread copies them into cfg at its next tick. */
  _Atomic uint32_t live_values[8];
  atomic_uint live_gen;
  unsigned live_seen; /* engine thread only */
  /* A feature's own tables (features/<name>/, engine thread only), each at
   * the index its header names; allocated by its restore hook, given back by
   * its destroy hook. The kernel never looks inside. */
  void *feature_data[TALLY__FEATURE_DATA_MAX];
};

typedef struct tally_engine tally__engine;

/* What the kernel asks of the world around it: time, and a writer for each
 * sealed batch. The engine decides, seals and settles batches the same way
 * whoever answers; only this table differs. Production (writer.c) reads the
 * loop's clock and the real-time clock and hands batches to the PostgreSQL
 * writer threads; the simulator (tests/sim) keeps simulated time and answers
 * batches itself, in any order, through tally__engine_on_outcome. */
typedef struct tally__env {
  uint64_t (*now_mono_ms)(tally__engine *e);
  int64_t (*now_wall_ms)(const tally__engine *e);
  /* True when a writer is idle: send_batch would take a batch now. */
  bool (*writer_idle)(tally__engine *e);
  /* Hands sealed batch b (its attempt cleared: tally__engine_send_batch) to
   * an idle writer; TALLY_OK when it is in flight. Its answer comes back
   * through tally__engine_on_outcome. */
  int (*send_batch)(tally__engine *e, tally__batch *b);
  /* Each tick while the engine is ready or fenced (reconnects, grant polls,
   * answers that are overdue). */
  void (*tick)(tally__engine *e, uint64_t now_mono);
} tally__env;

/* The production table (writer.c); tally__engine_new installs it. */
extern const tally__env tally__env_real;

/* What came back for a batch in flight (what the writer saw, without
 * PostgreSQL's types). */
typedef enum tally__outcome_kind {
  TALLY__OUTCOME_STATEMENT_OK = 1, /* the batch statement ran: b->inserted says which transfers it inserted */
  TALLY__OUTCOME_LOOKUP_OK,        /* the key lookup ran: b->found_id, b->found_fp filled in */
  TALLY__OUTCOME_ERROR,            /* the statement (or the lookup) failed; the connection is fine */
  TALLY__OUTCOME_LOST,             /* the connection broke, or no answer in time: unknown */
} tally__outcome_kind;

typedef struct tally__outcome {
  tally__outcome_kind kind;
  bool lookup;          /* ERROR: the query that failed was the key lookup */
  const char *sqlstate; /* ERROR: its SQLSTATE, NULL if none */
  const char *message;  /* ERROR: for the log */
} tally__outcome;

/* What the writer must do next for the batch. */
enum { TALLY__NEXT_NONE = 0, TALLY__NEXT_LOOKUP = 1 };

/* engine.c */
uint64_t tally__now_mono_ms(tally__engine *e);
int64_t tally__now_wall_ms(const tally__engine *e);
void tally__emit(tally__engine *e, uint32_t kind, int code, uint64_t req_id, uint64_t receipt,
                 const char *origin, const char *channel, const char *text);
/* tally__emit for origin and channel of network `net` (st->networks index);
 * tally__emit is for the configured network. */
void tally__emit_in(tally__engine *e, uint16_t net, uint32_t kind, int code, uint64_t req_id, uint64_t receipt,
                    const char *origin, const char *channel, const char *text);
__attribute__((format(printf, 5, 6))) void tally__reply(tally__engine *e,
                                                          const tally__command_frame *cmd,
                                                          int code, uint64_t receipt,
                                                          const char *fmt, ...);
/* tally__reply of a structured sentence (base/say.h): its msg code and
 * arguments go with the text, e.g. a command span the adapter renders the
 * way its network types commands. */
void tally__reply_say(tally__engine *e, const tally__command_frame *cmd, int code, uint64_t receipt,
                      const tally__say *say);
/* tally__reply with a hint (enum tally_hint) the adapter phrases for its
 * network; `fmt` stays network-neutral. */
__attribute__((format(printf, 5, 6))) void tally__reply_hint(tally__engine *e,
                                                               const tally__command_frame *cmd,
                                                               int code, uint32_t hint,
                                                               const char *fmt, ...);
__attribute__((format(printf, 3, 4))) void tally__announce(tally__engine *e, const char *channel,
                                                             const char *fmt, ...);
/* tally__announce in a room of network `net` (st->networks index). Events
 * and drops keep no network yet: they announce in the configured one. */
__attribute__((format(printf, 4, 5))) void tally__announce_in(tally__engine *e, uint16_t net, const char *channel,
                                                                const char *fmt, ...);
/* An effect whose text is a structured sentence (base/say.h): its msg code
 * and arguments go with the text. tally__announce_say says nothing for an
 * empty channel, like tally__announce. */
void tally__emit_say(tally__engine *e, uint32_t kind, int code, uint64_t req_id, uint64_t receipt,
                     const char *origin, const char *channel, const tally__say *say);
void tally__announce_say(tally__engine *e, const char *channel, const tally__say *say);
/* The same in network `net` (st->networks index; TALLY__NET_CONFIGURED: the
 * configured one). */
enum { TALLY__NET_CONFIGURED = UINT16_MAX };
void tally__emit_say_in(tally__engine *e, uint16_t net, uint32_t kind, int code, uint64_t req_id,
                        uint64_t receipt, const char *origin, const char *channel, const tally__say *say);
void tally__announce_say_in(tally__engine *e, uint16_t net, const char *channel, const tally__say *say);
/* The currency's decimals, for amount arguments (tally__say_value). */
#define TALLY__DECIMALS(e) ((e)->cfg.currency_decimals)
/* The open batch, or NULL when every slot is sealed (then answer "busy"). */
tally__batch *tally__engine_open_batch(tally__engine *e);
/* A record op the engine makes itself (no command behind it), cleared, of
 * `type` for `account` and `item`, counted as pending; NULL when every batch
 * is busy (try again at the next tick). */
/* Out-ring bytes the effects of one op to (origin, channel) may take. */
uint32_t tally__effects_bytes(const char *origin, const char *channel);
/* An op (in the open batch, its origin and channel set) is pending: it
 * counts in ops_pending and its effects' bytes are reserved. */
void tally__engine_pending_add(tally__engine *e, tally__op *op);
/* A pending op settled (committed, failed, released): the reverse. */
void tally__engine_pending_done(tally__engine *e, const tally__op *op);
tally__op *tally__engine_record_op(tally__engine *e, uint8_t type, uint32_t account, uint32_t item);
void tally__engine_flush(tally__engine *e);
/* Wakes the host if effects were emitted since the last wake. */
void tally__signal_host(tally__engine *e);
/* Settles a batch from its per-op `inserted` and `found_*` arrays: what the
 * ledger holds under our id committed; a key held by another transfer is a
 * duplicate (first answer, or refused when its request differs); anything
 * else is reported failed only after a complete lookup. */
void tally__engine_batch_done(tally__engine *e, tally__batch *b);
void tally__engine_batch_failed(tally__engine *e, tally__batch *b, const char *why);
/* Settles what came back for batch b (writer.c's rules, RELIABILITY.md F1,
 * F2, F4, F10): done, resent later unchanged, isolated, failed, or
 * TALLY__NEXT_LOOKUP: the caller sends the key lookup of b next
 * (tally__engine_lookup_sent) and reports its outcome here. */
int tally__engine_on_outcome(tally__engine *e, tally__batch *b, const tally__outcome *o);
/* The key lookup of b is on its way (RESOLVING). */
void tally__engine_lookup_sent(tally__engine *e, tally__batch *b);
/* PostgreSQL refused the batch for its data (SQLSTATE class 22 or 23) and
 * nothing of it committed: isolates the op it refuses (rows alone first,
 * then halves of the ops), refuses that op to its sender, and commits the
 * others in re-sealed batches. */
void tally__engine_batch_isolate(tally__engine *e, tally__batch *b, const char *why);
/* Another engine holds the ledger: stop taking money commands for good. */
void tally__engine_fence(tally__engine *e);
size_t tally__format_amount(const tally__engine *e, int64_t minor, char *out, size_t n);

/* writer.c */
int tally__writer_connect(tally__writer *w, char *err, size_t err_len);
/* Blocking, at the first start: prepares the batch statement (writer 0
 * after tally__engine_load has applied the migrations; the others in
 * tally__writer_connect). Closes the connection on failure. */
int tally__writer_prepare(tally__writer *w, char *err, size_t err_len);
void tally__writer_close(tally__writer *w);
int tally__writer_send_batch(tally__writer *w, tally__batch *b);
tally__writer *tally__writer_idle(tally__engine *e);
int tally__writer_poll_grants(tally__writer *w);
void tally__writers_tick(tally__engine *e, uint64_t now);

/* loader.c: blocking start-up on the engine thread. */
int tally__engine_load(tally__engine *e, PGconn *conn, char *err, size_t err_len);

#endif
