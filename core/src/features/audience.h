/* audience.h — who took part in an event: attendance (present in the
 * event's channel, and for how long), what each account spent as a
 * supporter and earned as a creator, and whether it may be named.
 *
 * Contract: one row per (event, account) in a fixed pool
 * (TALLY__AUDIENCE_MAX); rows of finished events are reclaimed when the
 * pool fills. Presence comes from the host adapter
 * (tally_engine_submit_presence); when an event starts, or the engine
 * starts with events running, the engine asks the adapter for the
 * channel's roster (TALLY_EFFECT_ROSTER). Attendance is written as catalog
 * rows (seconds so far, never lowered), at least once a minute while
 * someone is present; spending and earnings are rebuilt from the ledger. */
#ifndef TALLY_AUDIENCE_H
#define TALLY_AUDIENCE_H

#include "engine_internal.h"

enum {
  TALLY__ATTENDANCE_FLUSH_MS = 60000,
  TALLY__SUPPORTERS_NAMED = 3, /* top supporters named in a summary */
};

/* A presence change of account in channel (present: joined or listed). */
void tally__audience_presence(tally__engine *e, uint16_t net, const char *channel, uint32_t account, bool present);
/* Attendees and their total presence so far. */
void tally__audience_totals(const tally__state *st, uint64_t event_id, uint64_t now_mono, uint32_t *attendees,
                            uint64_t *total_ms);
/* The event stopped: everyone present leaves now. */
void tally__audience_event_stopped(tally__engine *e, uint64_t event_id);
/* Periodic: rows of people present are written again (their time grew). */
void tally__audience_tick(tally__engine *e, uint64_t now_mono);
/* A committed transfer in an event: the payer's spending, the payees'
 * earnings. */
void tally__audience_committed(tally__state *st, const tally__op *op);
/* "a 12.00, b 8.00 (and 1 who prefers not to be named)" into out. */
void tally__audience_supporters(tally__engine *e, uint64_t event_id, char *out, size_t n, tally__say_marks *marks);
/* "alice 30.00, bob 12.00": what the event's sales earned each creator. */
void tally__audience_creators(tally__engine *e, uint64_t event_id, char *out, size_t n, tally__say_marks *marks);

#endif
