/* challenges.h — rules a host or creator defines over what tally sees
 * (minutes attended in an event, purchases or tips in an event, events of
 * one host attended in a row, a first purchase from a creator); reaching
 * one grants its reward once and its badge.
 *
 * Contract (README "Challenges and badges", docs/findings/challenges.md):
 *   - A rule (CHALLENGE ADD) is a ledger fact (sql/018), and so is its
 *     deletion; both take effect in memory when their batch commits.
 *     Kinds and what they count:
 *       minutes=N  seconds present in one event (the attendance rows),
 *       spent=X    committed purchases by the account in one event, less
 *                  their refunds (refunds after it was reached take nothing back),
 *       tipped=X   committed tips by the account in one event,
 *         each in the event running in the room it was added in (`event`),
 *         else in any event the rule's owner hosts;
 *       streak=N   the owner's last N events (by start) all attended,
 *       first      the account's first purchase ever of the owner's items,
 *                  made after the rule was added.
 *   - Progress is never stored: it is what the ledger holds (attendance,
 *     transfers, events), rebuilt at restore and followed in memory.
 *   - Reaching a rule writes an achievement (rule, account): its primary
 *     key makes it once, across restarts too. Once it committed the rule's
 *     reward is granted (features/rewards, grants keyed by (rule id,
 *     account): once as well); a restart between the two grants it then.
 *   - A deleted rule is reached by nobody from the moment its deletion is
 *     decided; what was reached before keeps its badge and its reward.
 *   - Badges show in WALLET, on the owner's shop card, and in the event's
 *     summary ("Challenges reached: ...").
 * Engine thread only; fixed tables (limits below). */
#ifndef TALLY_CHALLENGES_H
#define TALLY_CHALLENGES_H

#include "engine_internal.h"
#include "map.h"

struct loader;

enum {
  TALLY__FDATA_CHALLENGES = 5,          /* index in e->feature_data (rewards 0, quiz 1) */
  TALLY__FACT_CHALLENGE = 15,           /* op->kind of this feature's FACT ops */
  TALLY__CHALLENGES_MAX = 256,          /* rules in memory, deleted ones too (their badges stay) */
  TALLY__CHALLENGES_LIVE_MAX = 64,      /* rules not deleted at once: what every scan walks */
  TALLY__CHALLENGE_ACHIEVED_MAX = 65536,
  TALLY__CHALLENGE_SUMS_MAX = 65536,    /* (event, account) purchases and tips of running events */
  TALLY__CHALLENGE_SALES_MAX = 65536,   /* purchases of running events whose refunds are subtracted */
  TALLY__CHALLENGE_SEEN_MAX = 65536,    /* (creator, buyer) who bought; (old event, account) attended */
  TALLY__CHALLENGE_HISTORY_MAX = 1024,  /* events of streak owners, oldest forgotten first */
  TALLY__CHALLENGE_STREAK_MAX = 20,     /* streak=N at most */
  TALLY__CHALLENGE_MINUTES_MAX = 24 * 60,
  TALLY__CHALLENGE_INFLIGHT_MAX = 1024, /* achievement facts in flight at once (their JSON) */
  TALLY__CHALLENGE_NAME_BYTES_MAX = 32,
  TALLY__CHALLENGE_BADGE_BYTES_MAX = 32,
  TALLY__CHALLENGE_SCAN_MS = 1000,      /* minutes and streaks are looked at this often */
  TALLY__CHALLENGE_LIST_MAX = 10,
  TALLY__CHALLENGE_JSON_BYTES = 384,
};

enum tally__challenge_kind {
  TALLY__CH_MINUTES = 1,
  TALLY__CH_SPENT = 2,
  TALLY__CH_TIPPED = 3,
  TALLY__CH_STREAK = 4,
  TALLY__CH_FIRST = 5,
};

typedef struct tally__challenge {
  uint64_t id;
  uint64_t event_id;     /* 0: any event of the owner */
  uint32_t owner;
  uint32_t reward_def;   /* features/rewards slot, or TALLY__NONE */
  uint8_t kind;          /* enum tally__challenge_kind */
  int64_t threshold;     /* seconds, minor units, events; 1 for first */
  bool used, committed, deleted, busy;
  bool deleting;         /* its deletion is decided: nobody reaches it any more */
  char name[TALLY__CHALLENGE_NAME_BYTES_MAX + 1];
  char badge[TALLY__CHALLENGE_BADGE_BYTES_MAX + 1];
  char json[TALLY__CHALLENGE_JSON_BYTES];
} tally__challenge;

enum tally__achievement_state {
  TALLY__ACH_FREE = 0,
  TALLY__ACH_WANT,       /* reached; its fact waits for batch room */
  TALLY__ACH_RECORDING,  /* its fact is in flight */
  TALLY__ACH_DONE,       /* stored */
};

typedef struct tally__achievement {
  uint32_t rule, account;
  uint64_t event_id, transfer_id;
  int64_t progress;
  uint8_t state;         /* enum tally__achievement_state */
  bool paid;             /* its reward is granted and stored, or it has none */
  uint32_t grant;        /* the grant slot in flight, or TALLY__NONE */
  uint32_t json;         /* its slot in the in-flight JSON pool while RECORDING */
} tally__achievement;

typedef struct tally__challenge_sum {
  uint64_t event_id;
  uint32_t account;
  int64_t purchased, tipped;
} tally__challenge_sum;

/* A purchase of a running event: its refunds come off its buyer's sum. */
typedef struct tally__challenge_sale {
  uint64_t transfer_id;
  uint32_t sum;          /* index in sums */
} tally__challenge_sale;

typedef struct tally__challenge_seen {
  uint64_t a;            /* creator account index + 1 (bought), or an event id with the top bit set */
  uint32_t b;            /* the buyer / attendee */
} tally__challenge_seen;

typedef struct tally__challenge_past {
  uint64_t id;
  uint32_t host;
  int64_t start_ms;
} tally__challenge_past;

typedef struct tally__challenges {
  tally__challenge rules[TALLY__CHALLENGES_MAX];
  tally__achievement *ach;
  uint32_t ach_count, unpaid, want;
  tally__map ach_index;
  tally__challenge_sum *sums;
  uint32_t sum_count;
  tally__map sum_index;
  tally__challenge_sale *sales;
  uint32_t sale_count;
  tally__map sale_index;
  tally__challenge_seen *seen;
  uint32_t seen_count;
  tally__map seen_index;
  bool bought_complete;  /* every (creator, buyer) pair is known: first rules may fire */
  tally__challenge_past past[TALLY__CHALLENGE_HISTORY_MAX];
  uint32_t past_count;
  char json[TALLY__CHALLENGE_INFLIGHT_MAX][192];
  bool json_used[TALLY__CHALLENGE_INFLIGHT_MAX];
  /* Per slot of st->events (slots are stable): the event whose summary
   * line was said there, so each event's is said once. */
  uint64_t said[TALLY__EVENTS_MAX];
  uint64_t scan_mono;
  bool rescan;           /* the next scan looks at every row, not only present ones */
} tally__challenges;

tally__challenges *tally__challenges_of(tally__engine *e);

/* Hook entries (runtime/runtime.c). */
int tally__challenges_restore(struct loader *l, int64_t now_ms);
void tally__challenges_tick(tally__engine *e, uint64_t now_mono);
void tally__challenges_committed(tally__engine *e, const tally__op *op);
void tally__challenges_record_settled(tally__engine *e, const tally__op *op, bool ok);
void tally__challenges_destroy(tally__engine *e);

/* The owner's rule named `name` (deleted ones too), or TALLY__NONE. */
uint32_t tally__challenge_find(tally__engine *e, uint32_t owner, const char *name);
/* A new rule from spec with its define fact in op (a FACT op the caller
 * took): TALLY_EEXISTS (the owner used the name), TALLY_ETOO_MANY,
 * TALLY_EBUYERS_UNKNOWN (first: the buyers are not all known). */
int tally__challenge_new(tally__engine *e, const tally__challenge *spec, tally__op *op);
/* CHALLENGE DEL: its delete fact in op (TALLY_EPENDING while one is in
 * flight, TALLY_EUNKNOWN_CHALLENGE once deleted). */
int tally__challenge_delete(tally__engine *e, uint32_t rule, uint32_t by, tally__op *op);
/* "30 min in an event of alice", "spent 20.00 in this event", ... */
void tally__challenge_describe(tally__engine *e, const tally__challenge *r, char *out, size_t n);
/* CHALLENGE LIST: one reply line. */
void tally__challenge_list(tally__engine *e, uint32_t account, char *out, size_t n);
/* The badges account earned, "Regular, Fan" ("" when none). */
void tally__challenge_badges(tally__engine *e, uint32_t account, char *out, size_t n);
/* The live rules of owner that give a badge or a reward, for the shop
 * card ("" when none). */
void tally__challenge_card(tally__engine *e, uint32_t owner, char *out, size_t n);

#endif
