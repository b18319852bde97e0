/* adv.h — the adversarial layer: hostile creators, hosts and buyers played
 * against the real engine and a real PostgreSQL, with restarts between any
 * two steps.
 *
 * A run is a seed. Each step picks one hostile action from a weighted table
 * (adv_actions.c), sends its commands through the public API exactly as an
 * adapter would, and then checks the oracles (adv_check.c):
 *   - no abort: the engine runs in this process, so an assert reached by
 *     input ends the run (and the harness gives up on a command left
 *     unanswered for 15 s: a silent drop fails too);
 *   - every other user's purchase still commits: an honest buyer who takes
 *     no part in the hostilities buys after every step and must get a
 *     receipt;
 *   - I1, I4, I6 in SQL after every step; `tally check` (I1-I9 and every
 *     batch's signature) after every restart and at the end;
 *   - money never goes to the wrong person: highlight and reaction
 *     payments credit only the event's host (and the platform fee);
 *   - every receipt anyone was given verifies (VERIFY in chat: leaf, proof,
 *     signature), and a stranger's VERIFY says nothing of what it was for.
 * The seed and each step are printed, so `ADV_SEEDS=S ADV_STEPS=N` replays
 * a failure (timing inside the engine is not simulated: replays follow the
 * same commands, not the same interleavings). */
#ifndef TALLY_ADV_H
#define TALLY_ADV_H

#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

enum {
  ADV_BUYERS = 4,          /* b0..b3: hostile buyers */
  ADV_SENT_KEPT = 256,     /* past (msg_id, text) pairs kept for replays */
  ADV_RECEIPTS_KEPT = 256, /* receipts seen, for hostile refunds and VERIFY */
  ADV_TEXT_BYTES = 2048,   /* room for overlong lines */
  ADV_ANSWER_MS = 15000,   /* an unanswered command after this is a silent drop */
};

#define ADV_CHANNEL "#adv"
#define ADV_OTHER_CHANNEL "#elsewhere"
/* The honest buyer's item: unlimited, sold by a creator who takes no part. */
#define ADV_CANARY_SKU "canary"

typedef struct adv_sent {
  char account[16];
  char channel[16];
  char msg_id[48];
  char text[256];
  uint32_t roles;
} adv_sent;

typedef struct adv {
  uint64_t seed, rng;
  int step, steps;
  char dsn[512];
  tally_config cfg;
  tally_engine *e;
  uint64_t msg_seq, req_seq;
  bool canary_topup;     /* the honest buyer ran out: adv_canary tops up */
  bool honest_ready;     /* set-up done: honest buys ride with every command */
  char broken[400];      /* the first oracle breach seen while sending */
  adv_sent sent[ADV_SENT_KEPT];
  uint32_t sent_count;
  uint64_t receipts[ADV_RECEIPTS_KEPT];
  uint32_t receipt_count;
  int restarts, canary_buys, replays_aged;
  int drop_seq;          /* names of drops and items made by the run */
  bool key_flood_done;   /* the 1,100-key flood runs at most once per seed */
} adv;

/* ---- adv_run.c: sending, restarts --------------------------------------- */
uint64_t adv_rand(adv *a);
uint32_t adv_below(adv *a, uint32_t n);
/* Sends text as account in channel ("" = privately) with a fresh msg_id,
 * waits for the final answer; keeps the pair for replays and the receipt. */
int adv_say(adv *a, const char *account, const char *channel, const char *text, uint32_t roles,
            th_reply *out);
/* The same with a given msg_id (a replay). */
int adv_say_key(adv *a, const char *account, const char *channel, const char *text, const char *msg_id,
                uint32_t roles, th_reply *out);
void adv_restart(adv *a);
const char *adv_buyer(adv *a); /* a random hostile buyer's account */
/* The newest event's id in the ledger, 0 if none. */
uint64_t adv_last_event(adv *a);

/* ---- adv_actions.c ---------------------------------------------------------- */
typedef struct adv_action {
  const char *name;
  int weight;
  void (*fn)(adv *a);
} adv_action;
extern const adv_action adv_actions[];
extern const int adv_action_count;
/* The shop, the roles and the funds every run starts from. */
void adv_setup(adv *a);

/* ---- adv_check.c ------------------------------------------------------------ */
/* The honest buyer buys once; false (and a message) if it did not commit. */
bool adv_canary(adv *a, char *why, size_t why_len);
/* Right after a restart: every wallet in memory is the ledger's, and a
 * purchase refunded in part takes no refund of its whole price (what the
 * loader must rebuild). */
bool adv_loaded_matches(adv *a, char *why, size_t why_len);
/* SQL invariants after a step; false with the breach named. */
bool adv_invariants(adv *a, char *why, size_t why_len);

#endif
