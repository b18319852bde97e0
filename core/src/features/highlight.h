/* highlight.h — paid highlights and reactions of a live event.
 *
 * Contract: a host prices highlight tiers (EVENT TIER) and reactions
 * (EVENT REACT) for the running event; each is an item of the event
 * (kinds TALLY__KIND_HIGHLIGHT and TALLY__KIND_REACTION) sold through
 * decide.c like any other, its text riding on the purchase as memo.
 * Highlights are shown one at a time per channel, in the order their
 * purchases committed: announced at once and again every
 * highlight_repeat_s (or, with highlight_topic, set as the channel's topic
 * and the old topic restored after) until the tier's time is up, then
 * recorded as shown
 * (a redemption row). A highlight that cannot be shown (the queue is full,
 * or the event ended first) is refunded by the engine; a buyer cannot
 * refund one. Reactions are announced aggregated once a minute. */
#ifndef TALLY_HIGHLIGHT_H
#define TALLY_HIGHLIGHT_H

#include "config.h"
#include "engine_internal.h"

enum {
  TALLY__HIGHLIGHTS_MAX = TALLY__HIGHLIGHTS_SLOTS, /* queued or showing, all channels together */
  TALLY__TIER_SECONDS_MAX = 3600,
  TALLY__TIER_NAME_BYTES_MAX = 12,
  TALLY__EMOTE_BYTES_MAX = 16,
  TALLY__REACTIONS_WINDOW_MS = 60000,
  TALLY__HL_REFUND_RETRY_MS = 1000, /* an unpayable refund is tried again this often */
};

/* Skus of the engine's own items start "hl-" (highlight tiers) or
 * "react-" (reactions): ITEM ADD and DROP CREATE refuse them. */
bool tally__highlight_sku_reserved(const char *sku, size_t n);
/* Is item i the event's highlight tier (name) or reaction item (NULL)? */
bool tally__highlight_item_is(const tally__state *st, uint32_t i, uint64_t event_id, const char *name);

/* The event's highlight tier `name` or its reaction item (name NULL), or
 * TALLY__NONE. */
uint32_t tally__highlight_item(const tally__state *st, uint64_t event_id, const char *name);
/* "hl-<event>-<name>" or "react-<event>" into sku. */
void tally__highlight_sku(uint64_t event_id, const char *name, char sku[TALLY__SKU_BYTES_MAX + 1]);
void tally__highlights_committed(tally__engine *e, const tally__op *op);
void tally__highlights_tick(tally__engine *e, uint64_t now_mono);
/* Says the reactions counted so far for event index i (the summary does,
 * so the last minute is not lost). */
void tally__reactions_flush(tally__engine *e, uint32_t i);
/* The event ended: what is still queued is refunded. */
void tally__highlights_event_stopped(tally__engine *e, uint64_t event_id);
/* Slots taken, those reserved by purchases in flight included. */
uint32_t tally__highlights_used(const tally__state *st);
/* HIGHLIGHT REMOVE: the one showing in channel stops (it stays paid). */
bool tally__highlight_remove(tally__engine *e, uint16_t net, const char *channel);
/* Queues a committed highlight purchase (also after a restart). */
void tally__highlight_queue(tally__engine *e, uint64_t transfer_id, uint32_t buyer, uint32_t item,
                            const char *origin, const char *text);

/* Its config keys (paid highlights), registered by runtime.c. */
extern const tally__config_keys tally__highlight_config_keys;

#endif
