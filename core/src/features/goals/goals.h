/* goals.h — community goals with levels: amounts an event's room fills
 * with its committed tips and purchases, level by level, like a hype
 * train; every account present at a level's 100 % earns the host's reward
 * (features/rewards) once.
 *
 * Contract (README "Community goals"):
 *   - GOAL START <amount>[,<amount>...] [reward=<name>] [for=30m]
 *     [min-accounts=N] by a host in a room with a live event; one goal per
 *     room at a time, and none sooner than `goal_cooldown` seconds after
 *     the room's last goal ended. The start is a ledger fact; the room
 *     hears of it once it is stored.
 *   - What counts: the committed purchases and tips of the room's event
 *     (op->event_id) decided after the level opened (transfer id above the
 *     level's opening id: the goal's id for level 1, the previous level's
 *     id after). A committed refund of a counted purchase subtracts while
 *     its level is open. A level counts at most
 *     TALLY__GOAL_CONTRIBUTIONS_MAX transfers (more are not counted).
 *   - The room hears 25, 50 and 75 % once each per level. A level is
 *     reached when its total is at least its amount and at least
 *     min-accounts distinct accounts have a positive contribution in it.
 *     Then the accounts present in the room (the event's audience, the host
 *     left out) are taken at that moment and stored with the level's fact
 *     in one batch (sql/017 goal_levels + goal_present); once stored the
 *     room hears it, each of them gets a grant keyed by (level id, account)
 *     over as many ticks as batch room needs, and the next level (the next
 *     amount) opens with a fresh timer. Overshoot does not carry over.
 *   - A level whose timer runs out ends the goal; so do the last level
 *     reached (after its payout), GOAL STOP (after a payout in progress)
 *     and the end of the event.
 *   - Timers are monotonic; the stored wall-clock deadlines seed them after
 *     a restart. Restore rebuilds the open level's total from `transfers`,
 *     the progress lines already passed (none is said twice), and a payout
 *     in progress from goal_present minus the grants already stored.
 * Engine thread only; fixed tables, plus per running goal the buffers
 * allocated at its start (freed at its end). */
#ifndef TALLY_GOALS_H
#define TALLY_GOALS_H

#include "engine_internal.h"
#include "map.h"

struct loader;

enum {
  TALLY__FDATA_GOALS = 4,      /* index in e->feature_data (rewards 0, quiz 1) */
  TALLY__FACT_GOAL = 10,       /* op->kind of this feature's FACT ops (10..14 are goals') */
  TALLY__GOALS_MAX = 16,       /* goals at once (running, or cooling down), all rooms */
  TALLY__GOAL_LEVELS_MAX = 8,
  TALLY__GOAL_SECONDS_MIN = 5, /* for= of a level */
  TALLY__GOAL_SECONDS_MAX = 24 * 3600,
  TALLY__GOAL_SECONDS_DEFAULT = 30 * 60,
  TALLY__GOAL_MIN_ACCOUNTS_MAX = 10000,
  TALLY__GOAL_CONTRIBUTIONS_MAX = 8192, /* transfers one level counts */
  TALLY__GOAL_PRESENT_MAX = 4096,       /* accounts one level's payout pays */
  /* Account ids per gp fact: 20 digits and a comma each, within a fact. */
  TALLY__GOAL_PRESENT_PER_FACT = 80,
  TALLY__GOAL_PRESENT_FACTS_MAX =
      (TALLY__GOAL_PRESENT_MAX + TALLY__GOAL_PRESENT_PER_FACT - 1) / TALLY__GOAL_PRESENT_PER_FACT,
  /* Grants one payout makes per tick: the batch keeps room for buyers. */
  TALLY__GOAL_GRANTS_PER_TICK = 8,
  TALLY__GOAL_JSON_BYTES = 1024, /* the start fact: a 255-byte room escaped, 8 levels */
};
_Static_assert(TALLY__GOAL_PRESENT_PER_FACT * 21 + 96 < TALLY__FACT_BYTES_MAX, "a gp fact fits a fact");
_Static_assert((int)TALLY__GOAL_JSON_BYTES < (int)TALLY__FACT_BYTES_MAX, "a start or end fact fits a fact");

typedef enum tally__goal_state {
  TALLY__GOAL_FREE = 0,
  TALLY__GOAL_STARTING,  /* its start fact is in flight (level 1 counts already) */
  TALLY__GOAL_OPEN,      /* a level counts; its timer runs */
  TALLY__GOAL_REACHED,   /* present accounts taken: the level's facts wait for batch room */
  TALLY__GOAL_RECORDING, /* the level's facts are in flight */
  TALLY__GOAL_PAYING,    /* the level is stored: its grants are being made */
  TALLY__GOAL_ENDING,    /* its end fact is in flight */
  TALLY__GOAL_COOLDOWN,  /* ended: no new goal in the room before cooldown_mono */
} tally__goal_state;

enum {
  TALLY__GOAL_END_EXPIRED = 1,
  TALLY__GOAL_END_COMPLETE = 2,
  TALLY__GOAL_END_STOPPED = 3,
  TALLY__GOAL_END_EVENT = 4,
};

typedef struct tally__goal_contrib {
  uint64_t transfer_id;
  uint32_t person; /* index into people */
  int64_t amount;  /* what still counts (refunds subtract) */
} tally__goal_contrib;

typedef struct tally__goal_person {
  uint32_t account;
  int64_t net;
} tally__goal_person;

/* Per running goal (allocated at its start or restore). */
typedef struct tally__goal_bufs {
  tally__goal_contrib contrib[TALLY__GOAL_CONTRIBUTIONS_MAX];
  tally__goal_person people[TALLY__GOAL_CONTRIBUTIONS_MAX];
  tally__map people_index; /* account + 1 -> people slot */
  uint32_t present[TALLY__GOAL_PRESENT_MAX];
  uint32_t grant_slot[TALLY__GOAL_PRESENT_MAX]; /* features/rewards slot, TALLY__NONE, or PAID/GIVEN_UP */
  uint64_t grant_id[TALLY__GOAL_PRESENT_MAX];
  char present_json[TALLY__GOAL_PRESENT_FACTS_MAX + 1][TALLY__FACT_BYTES_MAX]; /* gl, then the gp facts */
} tally__goal_bufs;

typedef struct tally__goal {
  uint64_t id;
  uint8_t state;          /* tally__goal_state */
  uint32_t host;
  uint16_t net;
  uint64_t event_id;
  char room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  int64_t levels[TALLY__GOAL_LEVELS_MAX];
  uint32_t level_count;
  uint32_t reward_def;    /* features/rewards slot, or TALLY__NONE */
  uint32_t min_accounts;
  uint64_t duration_ms;
  /* The level that counts (0-based); `done` once the last one is reached. */
  uint32_t level;
  bool done;
  uint64_t open_id;       /* transfers with a higher id count for `level` */
  int64_t deadline_ms;    /* wall clock, stored */
  uint64_t deadline_mono; /* what the timer follows */
  int64_t total;
  uint32_t contributors;  /* people with net > 0 */
  uint32_t contrib_count, people_count;
  uint8_t said;           /* bits: 25, 50, 75 % said; bit 3: "needs contributors" said */
  bool full_said;         /* the contributions table filled: logged once */
  /* The level being recorded or paid. */
  uint32_t paying_level;  /* 0-based */
  uint64_t level_id;
  uint32_t present_count, present_facts, facts_inflight;
  bool facts_failed;
  int64_t paid_total;     /* the paid level's total and contributors, for its announcement */
  uint32_t paid_contributors;
  bool stop_requested;
  uint8_t end_reason;
  uint32_t reached;       /* levels reached */
  bool resumed;           /* restored: the room is told at the first tick */
  uint64_t cooldown_mono; /* COOLDOWN: until then */
  tally__goal_bufs *b;
  char json[TALLY__GOAL_JSON_BYTES]; /* the start fact, then the end fact */
} tally__goal;

typedef struct tally__goals {
  tally__goal g[TALLY__GOALS_MAX];
} tally__goals;

tally__goals *tally__goals_of(tally__engine *e);
/* Hook (ROOM MOVE): goals of (net, from) made before before_id run in `to`. */
void tally__goals_room_moved(tally__engine *e, uint16_t net, const char *from, const char *to, uint64_t before_id);

/* Hook entries (runtime/runtime.c). */
int tally__goals_restore(struct loader *l, int64_t now_ms);
void tally__goals_tick(tally__engine *e, uint64_t now_mono);
void tally__goals_committed(tally__engine *e, const tally__op *op);
void tally__goals_record_settled(tally__engine *e, const tally__op *op, bool ok);
void tally__goals_destroy(tally__engine *e);

/* The goal of room (net, room) that is not free (cooling down included),
 * or TALLY__NONE. */
uint32_t tally__goal_in(tally__engine *e, uint16_t net, const char *room);
/* Is goal i running (started, not ended)? */
bool tally__goal_running(const tally__goal *g);
/* A new goal from spec (host, net, room, event_id, levels, reward_def,
 * min_accounts, duration_ms) with its start fact in op (a FACT op the
 * caller took). TALLY_EEXISTS: one runs in the room; TALLY_EGOAL_COOLDOWN
 * (*wait_s: seconds left); TALLY_ETOO_MANY: the table is full;
 * TALLY_ENOMEM. */
int tally__goal_start(tally__engine *e, const tally__goal *spec, uint64_t now_mono, tally__op *op, uint32_t *wait_s);
/* GOAL STOP of goal i: its end fact in op (TALLY_OK), or, while a level
 * is being recorded or paid, TALLY_EPENDING: the goal ends after it
 * (op unused). TALLY_ENO_GOAL: not running. */
int tally__goal_stop(tally__engine *e, uint32_t i, tally__op *op);
/* GOAL: one status line of goal i into out. */
void tally__goal_status(tally__engine *e, uint32_t i, uint64_t now_mono, char *out, size_t n);

#endif
