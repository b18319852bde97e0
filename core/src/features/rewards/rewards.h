/* rewards.h — rewards a creator defines for their own items, earned in chat
 * (a quiz today), bound to the account that earned them.
 *
 * Contract (README "Rewards", docs/findings/rewards.md):
 *   - A definition (REWARD ADD) is a discount, percent or amount, with an
 *     optional cap, a lifetime (for=) and an item (sku=, or every item of
 *     its creator). The discount lowers what the creator receives: nobody
 *     else's money is spent. Only items with one creator (no split) take
 *     one, and a purchase always moves at least one minor unit (a free unit
 *     is the next slice).
 *   - An earned reward (a grant) belongs to one account, is used once, and
 *     expires (the monotonic clock; the stored wall-clock expiry seeds it
 *     after a restart). It is never moved to another account: there is no
 *     command that could.
 *   - It applies itself at the account's next BUY of an eligible item (the
 *     largest discount first, then the one expiring first) unless the BUY
 *     says `noreward`; the purchase carries it (the use is written with the
 *     purchase, in its batch), so a failed purchase gives it back. A full
 *     refund of that purchase gives it back too, if it has not expired.
 *   - Defining, deleting, granting and expiring are FACT ops (sql/015),
 *     answered or counted only once committed: a grant that fails never
 *     counts and never applies.
 * Engine thread only. Tables are fixed at start (limits below). */
#ifndef TALLY_REWARDS_H
#define TALLY_REWARDS_H

#include "engine_internal.h"

struct loader;

enum {
  TALLY__FDATA_REWARDS = 0,         /* index in e->feature_data */
  TALLY__FACT_REWARD = 1,           /* op->kind of the FACT ops of this feature */
  TALLY__REWARD_DEFS_MAX = 1024,    /* definitions kept (deleted ones too, while grants name them) */
  TALLY__REWARD_GRANTS_MAX = 4096,  /* earned rewards kept: unused, or used and still refundable */
  TALLY__REWARD_NAME_BYTES_MAX = 32,
  TALLY__REWARD_TTL_S_DEFAULT = 600,         /* for= left out: ten minutes */
  TALLY__REWARD_TTL_S_MAX = 7 * 24 * 3600,   /* for= at most a week: rewards are ephemeral */
  TALLY__REWARD_LIST_MAX = 10,               /* lines of REWARD LIST / REWARDS */
  TALLY__REWARD_JSON_BYTES = 256,
  TALLY__REWARD_PER_EVENT_MAX = 4096, /* (event, account) counts kept for reward_per_event_max */
  TALLY__REWARD_OFFERS_MAX = 256,     /* REWARD OFFER rows kept (rooms x rewards) */
};

enum { TALLY__REWARD_UNLOCK_NONE = 0, TALLY__REWARD_UNLOCK_FREE = 1, TALLY__REWARD_UNLOCK_ACCESS = 2 };

typedef enum tally__grant_state {
  TALLY__GRANT_FREE = 0,
  TALLY__GRANT_GRANTING,  /* its grant fact is in flight: not yet the account's */
  TALLY__GRANT_READY,     /* the account's, unused */
  TALLY__GRANT_HELD,      /* a purchase using it is in flight */
  TALLY__GRANT_USED,      /* used by purchase `transfer` */
  TALLY__GRANT_RETURNING, /* the full refund of that purchase is in flight */
  TALLY__GRANT_EXPIRING,  /* its expiry fact is in flight */
} tally__grant_state;

typedef struct tally__reward_def {
  uint64_t id;
  uint32_t creator, item; /* item TALLY__NONE: every item of the creator */
  int32_t bps;            /* percent off in basis points, or 0 */
  int64_t amount, cap;    /* amount off, or 0; cap 0: none */
  uint32_t ttl_s;
  bool used;              /* slot taken */
  bool committed;         /* its define fact committed */
  bool deleted;           /* REWARD DEL committed: no new grants (earned ones still apply) */
  bool busy;              /* a fact of it is in flight */
  char name[TALLY__REWARD_NAME_BYTES_MAX + 1];
  char json[TALLY__REWARD_JSON_BYTES];
  /* Not a discount (sql/020 reward_unlocks; bps and amount are 0): one free
   * unit of `item`, or access to `item` when it is attendees-only. */
  uint8_t unlock; /* TALLY__REWARD_UNLOCK_* */
} tally__reward_def;

typedef struct tally__reward_earned {
  uint64_t id;
  uint32_t def, account;
  uint64_t quiz_id;
  int64_t expires_ms;     /* wall clock, stored */
  uint64_t expires_mono;  /* what the timer follows */
  uint64_t transfer;      /* USED, RETURNING: the purchase */
  uint8_t state;          /* tally__grant_state */
  char json[160];
  uint64_t event_id;      /* the event it was earned in (0: none known): reward_per_event_max */
} tally__reward_earned;

typedef struct tally__rewards {
  tally__reward_def defs[TALLY__REWARD_DEFS_MAX];
  tally__reward_earned grants[TALLY__REWARD_GRANTS_MAX];
  uint64_t committed_grants; /* since start: what counters count */
  /* One past the highest grant slot ever taken: scans stop there, so a
   * BUY costs nothing here until someone has earned a reward (slots are
   * taken lowest first). */
  uint32_t grant_high;
  /* Grants per (event, account), committed or in flight (a failed one is
   * taken back): reward_per_event_max. Rebuilt at start from committed
   * grants of running events. */
  struct tally__reward_per_event {
    uint64_t event_id;
    uint32_t account, count;
  } per_event[TALLY__REWARD_PER_EVENT_MAX];
  uint32_t per_event_count;
  /* REWARD OFFER: rewards their creators made available to a room's hosts. */
  struct tally__reward_offer {
    uint32_t def;
    uint16_t net;
    bool used, committed;
    bool withdrawing; /* REWARD OFFER ... off in flight: no new quiz may use it */
    char room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
    char json[TALLY__REWARD_JSON_BYTES + TALLY__ROOM_KEPT_BYTES_MAX];
  } offers[TALLY__REWARD_OFFERS_MAX];
} tally__rewards;

/* The feature's tables (NULL before its restore ran). */
tally__rewards *tally__rewards_of(tally__engine *e);

/* Hook entries (runtime/runtime.c). */
int tally__rewards_restore(struct loader *l, int64_t now_ms);
void tally__rewards_tick(tally__engine *e, uint64_t now_mono);
void tally__rewards_committed(tally__engine *e, const tally__op *op);
void tally__rewards_settled(tally__engine *e, const tally__op *op, int outcome);
void tally__rewards_record_settled(tally__engine *e, const tally__op *op, bool ok);
void tally__rewards_destroy(tally__engine *e);

/* Definitions. find: the creator's definition named `name` (deleted ones
 * too), or TALLY__NONE. new: a slot filled in (not yet stored) and its
 * define fact in op (a FACT op the caller took; TALLY_ETOO_MANY when the
 * table is full, TALLY_EEXISTS for a name the creator used before). */
uint32_t tally__reward_def_find(tally__engine *e, uint32_t creator, const char *name);
/* The definition with ledger id `id`, or TALLY__NONE (a quiz's restore). */
uint32_t tally__reward_def_by_id(tally__engine *e, uint64_t id);
int tally__reward_def_new(tally__engine *e, const tally__reward_def *spec, tally__op *op);
/* REWARD DEL: the delete fact in op (TALLY_EPENDING while one is in flight). */
int tally__reward_def_delete(tally__engine *e, uint32_t def, tally__op *op);

/* The discount `def` gives on `total` minor units of `item` (0: it does
 * not apply to that item). Always below total. */
int64_t tally__reward_discount(tally__engine *e, uint32_t def, uint32_t item, int64_t total);
/* The account's best usable reward for qty of item at `total`, or
 * TALLY__NONE; *discount what it takes off. */
uint32_t tally__reward_pick(tally__engine *e, uint32_t account, uint32_t item, int64_t total, int64_t *discount);
/* The account's usable unlock reward of kind `unlock` (TALLY__REWARD_UNLOCK_*)
 * for item (the one expiring first), or TALLY__NONE. A free unit fits only
 * an item its creator alone sells (no split: no co-creator gives it away). */
uint32_t tally__reward_pick_unlock(tally__engine *e, uint32_t account, uint32_t item, uint8_t unlock);
/* Highlights and reactions are never free units: the engine refunds an
 * unshown highlight, and a free unit is never refunded. */
static inline bool tally__reward_free_unit_refused(const tally__item *it) {
  return it->kind == TALLY__KIND_HIGHLIGHT || it->kind == TALLY__KIND_REACTION;
}
/* A decided purchase (op) uses grant g: held until the op settles. */
void tally__reward_hold(tally__engine *e, uint32_t g, tally__op *op, int64_t discount);
/* A decided refund (op) of purchase `receipt`: if it refunds that purchase
 * in full and the purchase used a reward, the refund gives it back. */
void tally__reward_refund_attach(tally__engine *e, tally__op *op, bool full);

/* Grants def to account for quiz_id: an engine-made FACT op. TALLY_EBUSY
 * (no batch room: try at the next tick), TALLY_ETOO_MANY (table full),
 * TALLY_EUNKNOWN_REWARD (deleted or not stored). *slot is the grant's. */
int tally__reward_grant(tally__engine *e, uint32_t def, uint32_t account, uint64_t quiz_id, uint32_t *slot);
/* The same for an event: counted against reward_per_event_max
 * (TALLY_EREWARD_CAP when the account has that many in event_id). */
int tally__reward_grant_event(tally__engine *e, uint32_t def, uint32_t account, uint64_t quiz_id, uint64_t event_id,
                              uint32_t *slot);
/* Rewards account earned in event_id (committed and in flight). */
uint32_t tally__reward_event_count(tally__engine *e, uint64_t event_id, uint32_t account);
/* REWARD OFFER: def made available to the hosts of (net, room), its fact
 * in op (TALLY_EEXISTS: offered there already; TALLY_ETOO_MANY: full;
 * TALLY_EBAD_SYNTAX: a room name with a quote or backslash). offered:
 * whether a committed offer says so. */
int tally__reward_offer(tally__engine *e, uint32_t def, uint16_t net, const char *room, tally__op *op);
bool tally__reward_offered(tally__engine *e, uint32_t def, uint16_t net, const char *room);
/* REWARD OFFER <name> <room> off: the withdrawal fact in op (sql/023);
 * TALLY_ENOTFOUND: not offered there; TALLY_EBUSY: its offer or a
 * withdrawal is in flight. Quizzes already running keep the reward. */
int tally__reward_offer_withdraw(tally__engine *e, uint32_t def, uint16_t net, const char *room, tally__op *op);
/* The grant of quiz_id to account (granting or after), or TALLY__NONE. */
uint32_t tally__reward_grant_of(tally__engine *e, uint64_t quiz_id, uint32_t account);

/* REWARD LIST of a creator, REWARDS of an account: one reply line each
 * into out (n bytes). */
void tally__reward_list_defs(tally__engine *e, uint32_t creator, char *out, size_t n);
void tally__reward_list_grants(tally__engine *e, uint32_t account, uint64_t now_mono, char *out, size_t n);
/* "10%" / "2.00", with " (cap 5.00)" when capped: how REWARD LIST says it. */
void tally__reward_describe(tally__engine *e, const tally__reward_def *d, char *out, size_t n);

#endif
