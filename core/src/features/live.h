/* live.h — micro-events and timed drops (issue 4, first part).
 *
 * Contract: events and drops live in the engine's memory like items and are
 * written as catalog rows with the next batch. Their timers follow the
 * monotonic clock (a wall-clock jump never opens or closes a drop early);
 * the stored wall-clock times only seed those timers after a restart.
 * Announcements go to the channel; nothing here moves money: a drop is an
 * item whose purchases decide.c checks against its window and per-buyer
 * limit. */
#ifndef TALLY_LIVE_H
#define TALLY_LIVE_H

#include "config.h"
#include "engine_internal.h"

enum {
  TALLY__EVENT_MINUTES_MAX = 600,
  TALLY__DROP_WINDOW_MS_MAX = 24 * 3600 * 1000,
  TALLY__DROP_DEFAULT_MS = 10 * 60 * 1000,
  TALLY__SUMMARY_RAFFLE_WAIT_MS = 120 * 1000, /* the summary waits this long at most for its raffles' draws */
};

/* Index of the running event in channel, or TALLY__NONE. */
uint32_t tally__live_event_in(const tally__state *st, uint16_t net, const char *channel);
/* Index of the event with this id, or TALLY__NONE. */
uint32_t tally__live_event_find(const tally__state *st, uint64_t id);
/* A new running event (memory, dirty); TALLY_ETOO_MANY when the table is
 * full of running events. */
int tally__live_event_start(tally__engine *e, uint32_t host, uint16_t net, const char *channel, const char *title,
                            uint32_t minutes, uint32_t *index);
/* Ends a running event now and announces its summary, once the ops it
 * decided have settled and the raffles it closed are drawn and charged. */
void tally__live_event_stop(tally__engine *e, uint32_t index);
/* Registers a drop item's timers and announces it. */
int tally__live_drop_schedule(tally__engine *e, uint32_t item);
/* Moves a drop to LIVE or CLOSED now, with its announcement. */
void tally__live_drop_open(tally__engine *e, uint32_t item);
void tally__live_drop_close(tally__engine *e, uint32_t item);
/* Start-up (hook restore, loader_live.c): running and recent events with
 * their totals, per-buyer counts of limited drops, drops' timers re-armed. */
struct loader;
int tally__live_restore(struct loader *l, int64_t now_ms);
/* Timers: opens, closes and ends what is due. Cheap: walks only active drops
 * and running events. */
void tally__live_tick(tally__engine *e, uint64_t now_mono);
/* After a transfer committed: event totals and "low stock" / "sold out". */
void tally__live_committed(tally__engine *e, const tally__op *op);
/* The ledger refused a batch for lack of resources (SQLSTATE class 53,
 * e.g. disk full): live drops pause, so their windows do not run out while
 * nobody can buy. Buys are still tried (each one probes the ledger) and
 * answered "could not be recorded; you were not charged". The first batch
 * that commits transfers resumes them, their ends moved by the pause. */
void tally__live_ledger_refused(tally__engine *e);
void tally__live_ledger_recovered(tally__engine *e);
/* The event a new op belongs to: its drop's event, else the running event
 * of the channel it was said in. */
uint64_t tally__live_event_for(const tally__state *st, uint32_t item, uint16_t net, const char *channel);

/* Its config keys (timed drops), registered by runtime.c. */
extern const tally__config_keys tally__live_config_keys;

#endif
