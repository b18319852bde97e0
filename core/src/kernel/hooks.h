/* hooks.h — how the kernel calls the layers above it, without naming them.
 *
 * The kernel (engine.c, writer.c, loader.c) settles batches and restores
 * memory; the features (features/) and the dispatcher (commands/) sit above
 * it. The kernel, and the loop (runtime/engine_loop.c), reach them only
 * through this table, which runtime/runtime.c fills and hands to
 * tally__engine_new (runtime.h), the way PostgreSQL's resource managers or Redis module
 * hooks work: adding a feature adds an entry there, not a call here. An
 * entry also names the feature's command words, so the dispatcher and the
 * command table need no edit either.
 *
 * Contract: every pointer of tally__hooks is set; a feature's entries may be
 * NULL. Feature entries run in table order (the order is behaviour: effects
 * come out in it). All run on the engine thread. */
#ifndef TALLY_HOOKS_H
#define TALLY_HOOKS_H

#include "engine_internal.h"

struct loader; /* loader.h: the start-up loader's context and query helpers */
/* commands/command_rows.h and describe.h: a feature's command words, and
 * the set built from every feature's; the kernel never looks inside. */
struct tally__command_rows;
struct tally__command_set;

typedef struct tally__feature_hooks {
  const char *name;
  /* The feature's command words (its command file's rows), or NULL: the
   * dispatcher and tally_commands_describe() know them from here. */
  const struct tally__command_rows *commands;
  /* The feature's config keys (base/config.h rows in its files), or NULL:
   * tally_config_set, _check, _describe and `tally config` know them from
   * here (runtime/config_api.c). */
  const struct tally__config_keys *config_keys;
  /* The feature's own state: data_size bytes (0: none) at
   * e->feature_data[data_slot], allocated zeroed with the engine
   * (tally__engine_new), zeroed again before each start's restore
   * (loader.c: a start tried again loads afresh), freed with the engine.
   * A feature that allocates its tables itself (rewards, quiz: at restore,
   * freed by `destroy`) leaves data_size 0. */
  size_t data_size;
  uint32_t data_slot;
  /* Start-up, after the kernel's own state (accounts, items, purchases,
   * keys) and before the first command: rebuilds the feature's memory from
   * the ledger (loader.c, blocking, on the engine thread). A nonzero return
   * (the message in l->err) fails the start; later features do not run. */
  int (*restore)(struct loader *l, int64_t now_ms);
  /* Each tick while the engine is ready (timers, held messages). */
  void (*tick)(tally__engine *e, uint64_t now_mono);
  /* A tip committed, before the tipper's reply (amount: formatted). */
  void (*tipped)(tally__engine *e, const tally__op *op, const char *amount);
  /* A transfer committed, after its sender's reply. */
  void (*committed)(tally__engine *e, const tally__op *op);
  /* A transfer settled: outcome TALLY_OK (committed, after `committed`),
   * TALLY_EFAILED or TALLY_EKEY_MISMATCH (it did not). */
  void (*settled)(tally__engine *e, const tally__op *op, int outcome);
  /* A record op of a type the kernel does not know committed (ok) or not. */
  void (*record_settled)(tally__engine *e, const tally__op *op, bool ok);
  /* The ledger refused a batch for lack of resources (SQLSTATE class 53),
   * and took transfers again after that. */
  void (*ledger_refused)(tally__engine *e);
  void (*ledger_recovered)(tally__engine *e);
  /* tally_engine_free: gives back what the feature allocated (its tables in
   * e->feature_data). */
  void (*destroy)(tally__engine *e);
  /* ROOM MOVE (a Matrix room upgrade): what the feature runs in room `from`
   * of network `net` runs in `to` from now on. Only what was made before
   * the move (ids below before_id: UINT64_MAX when it just committed; the
   * move's id when rooms' restore replays it) follows. */
  void (*room_moved)(tally__engine *e, uint16_t net, const char *from, const char *to, uint64_t before_id);
} tally__feature_hooks;

typedef struct tally__hooks {
  /* A decoded command frame, once the engine is ready. */
  void (*command)(tally__engine *e, const tally__command_frame *cmd);
  /* The verifier thread checked a VERIFY (ud: the engine). */
  void (*verify_answer)(void *ud, const tally__verify_job *j);
  /* A grant request the CLI queued in the ledger (tally grant). */
  void (*grant_request)(tally__engine *e, int64_t request_id, const char *account, int64_t amount);
  const tally__feature_hooks *features;
  size_t feature_count;
  /* The command set built from the core's words and every feature's
   * `commands` (runtime.c, once, before the first engine). */
  const struct tally__command_set *commands;
} tally__hooks;

/* Runs entry `fn` of every feature that has it, in table order. */
#define TALLY__FEATURES_CALL(e, fn, ...)                                          \
  do {                                                                            \
    const tally__hooks *h_ = (e)->hooks;                                          \
    for (size_t f_ = 0; f_ < h_->feature_count; f_++)                             \
      if (h_->features[f_].fn) h_->features[f_].fn((e), __VA_ARGS__);             \
  } while (0)
#define TALLY__FEATURES_CALL0(e, fn)                                              \
  do {                                                                            \
    const tally__hooks *h_ = (e)->hooks;                                          \
    for (size_t f_ = 0; f_ < h_->feature_count; f_++)                             \
      if (h_->features[f_].fn) h_->features[f_].fn((e));                          \
  } while (0)

#endif
