/* live_raffle.h — raffle drops in the engine: entries and the draw.
 *
 * Contract: a raffle drop is a drop whose BUY enters instead of buying.
 * Entries are durable before the entrant is told (ENTRY ops). When the
 * drop closes, the draw waits until no entry is in flight, so the list it
 * freezes is exactly the stored one; then it reveals the seed and the
 * entry hash, and charges winners in draw order (raffle.h), one at a time,
 * until the units are gone. A winner is named only once the charge
 * committed; a charge whose batch failed is tried again, and an entry that
 * cannot be charged is passed over with its reason stored (raffle_passes),
 * so `tally draw` can check every position of the order. A restart before the
 * draw finished draws again from the stored seed and entries: the same
 * order, and the winners' idempotency keys keep anyone from paying twice. */
#ifndef TALLY_LIVE_RAFFLE_H
#define TALLY_LIVE_RAFFLE_H

#include "engine_internal.h"

enum {
  TALLY__RAFFLE_CHARGE_TRIES = 5,  /* a winner's charge failing at batch level, then passed over */
  TALLY__RAFFLE_RETRY_MS = 1000,   /* between those tries */
};

/* New raffle: fresh secret seed. TALLY_ECRYPTO if no randomness. */
int tally__raffle_new_seed(tally__item *it);
/* The "open" announcement with the seed's commitment. */
void tally__raffle_announce_open(tally__engine *e, uint32_t item);
/* The drop closed: its draw is due. */
void tally__raffle_close(tally__engine *e, uint32_t item);
/* Runs due draws as far as batch room allows. */
void tally__raffle_tick(tally__engine *e);
/* Adds an entry (memory); TALLY__NONE when the table is full. */
/* origin: a name in st->names (0 none); the entry takes a reference. */
uint32_t tally__raffle_entry_add(tally__state *st, uint32_t item, uint32_t account, uint32_t origin);
/* A winner's charge (op->raffle_charge) settled: TALLY_OK committed (now
 * or earlier), TALLY_EFAILED its batch failed (tried again), another code
 * refused (passed over with it). */
void tally__raffle_charge_settled(tally__engine *e, const tally__op *op, int outcome);
/* A PASS op's raffle_passes row committed (ok) or not (sent again). */
void tally__raffle_pass_settled(tally__engine *e, const tally__op *op, bool ok);
/* Is account entered in the raffle item? */
bool tally__raffle_entered(tally__state *st, uint32_t item, uint32_t account);

#endif
