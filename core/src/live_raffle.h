/* live_raffle.h — raffle drops in the engine: entries and the draw.
 *
 * Contract: a raffle drop is a drop whose BUY enters instead of buying.
 * Entries are durable before the entrant is told (ENTRY ops). When the
 * drop closes, the draw waits until no entry is in flight, so the list it
 * freezes is exactly the stored one; then it reveals the seed and the
 * entry hash, and charges winners in draw order (raffle.h) until the units
 * are gone, over as many ticks as batch room needs. A restart before the
 * draw finished draws again from the stored seed and entries: the same
 * order, and the winners' idempotency keys keep anyone from paying twice. */
#ifndef TALLY_LIVE_RAFFLE_H
#define TALLY_LIVE_RAFFLE_H

#include "engine_internal.h"

/* New raffle: fresh secret seed. TALLY_ECRYPTO if no randomness. */
int tally__raffle_new_seed(tally__item *it);
/* The "open" announcement with the seed's commitment. */
void tally__raffle_announce_open(tally__engine *e, uint32_t item);
/* The drop closed: its draw is due. */
void tally__raffle_close(tally__engine *e, uint32_t item);
/* Runs due draws as far as batch room allows. */
void tally__raffle_tick(tally__engine *e);
/* Adds an entry (memory); TALLY__NONE when the table is full. */
uint32_t tally__raffle_entry_add(tally__state *st, uint32_t item, uint32_t account, const char *origin);
/* Is account entered in the raffle item? */
bool tally__raffle_entered(tally__state *st, uint32_t item, uint32_t account);

#endif
