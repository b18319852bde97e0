/* loader_live.c — start-up for the live feature: running and recent events
 * with their totals, per-buyer counts of limited drops, and the timers of
 * drops still to open or close. Called through the hook table's restore
 * entry (runtime.c), before the shop's features (loader_shop.c). */
#include <stdio.h>
#include <string.h>

#include "live.h"
#include "loader.h"

/* The shared helpers (loader.h) keep their short local names, as in loader.c. */
#define q tally__load_q
#define col_i64 tally__load_i64
#define acc_index tally__load_acc
#define item_index tally__load_item

/* Running and recent events with their totals, per-buyer counts of limited
 * drops, and the timers of drops still to open or close. */
int tally__live_restore(loader *l, int64_t now_ms) {
  tally__engine *e = l->e;
  tally__state *st = &e->st;
  char since[24];
  snprintf(since, sizeof since, "%lld", (long long)(now_ms - 86400000LL));
  const char *params[1] = {since};
  PGresult *r = q(l, "SELECT id, channel, title, host_id, start_ms, end_ms, coalesce(stopped_ms, 0), version"
                     " FROM events WHERE stopped_ms IS NULL OR stopped_ms >= $1::bigint"
                     " ORDER BY start_ms DESC LIMIT 256", 1, params);
  if (!r) return TALLY_EDB;
  uint64_t mono = tally__now_mono_ms(e);
  for (int i = 0; i < PQntuples(r) && st->event_count < TALLY__EVENTS_MAX; i++) {
    uint32_t host = acc_index(l, col_i64(r, i, 3));
    if (host == TALLY__NONE) continue;
    tally__event *ev = &st->events[st->event_count++];
    memset(ev, 0, sizeof *ev);
    ev->id = (uint64_t)col_i64(r, i, 0);
    snprintf(ev->channel, sizeof ev->channel, "%s", PQgetvalue(r, i, 1));
    snprintf(ev->title, sizeof ev->title, "%s", PQgetvalue(r, i, 2));
    ev->host = host;
    /* The ledger keeps the channel only: the room is the host's network's,
     * since the host's identity started it there (one identity per wallet
     * today; LINK will need events.network_id). */
    ev->net = st->accounts[host].net;
    ev->start_ms = col_i64(r, i, 4);
    ev->end_ms = col_i64(r, i, 5);
    ev->stopped_ms = col_i64(r, i, 6);
    ev->version = (uint64_t)col_i64(r, i, 7);
    ev->end_mono = ev->end_ms > now_ms ? mono + (uint64_t)(ev->end_ms - now_ms) : mono;
  }
  PQclear(r);
  r = q(l, "SELECT event_id, kind, count(*), sum(amount_minor) FROM transfers"
           " WHERE event_id IS NOT NULL AND kind IN (1, 2) GROUP BY 1, 2", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t ev = tally__live_event_find(st, (uint64_t)col_i64(r, i, 0));
    if (ev == TALLY__NONE) continue;
    bool sale = col_i64(r, i, 1) == TALLY__TRANSFER_PURCHASE;
    *(sale ? &st->events[ev].sales : &st->events[ev].tips) = (uint64_t)col_i64(r, i, 2);
    *(sale ? &st->events[ev].sales_minor : &st->events[ev].tips_minor) = col_i64(r, i, 3);
  }
  PQclear(r);
  r = q(l, "SELECT t.account_id, t.item_id, sum(t.qty) FROM transfers t JOIN items i ON i.id = t.item_id"
           " WHERE t.kind IN (1, 6) AND i.drop_per_user > 0 AND (t.kind = 6 OR t.amount_minor > coalesce((SELECT sum(r.amount_minor)"
           "  FROM transfers r WHERE r.kind = 3 AND r.ref_transfer = t.id), 0)) GROUP BY 1, 2", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t a = acc_index(l, col_i64(r, i, 0)), it = item_index(l, col_i64(r, i, 1));
    int32_t *units;
    if (a == TALLY__NONE || it == TALLY__NONE) continue;
    tally__per_user_units(st, a, it, &units);
    if (units) *units = (int32_t)col_i64(r, i, 2);
  }
  PQclear(r);
  for (uint32_t i = 0; i < st->item_count; i++) {
    uint8_t ds = st->items[i].drop_state;
    if ((ds == TALLY__DROP_SCHEDULED || ds == TALLY__DROP_LIVE) && tally__live_drop_schedule(e, i) != TALLY_OK)
      break;
  }
  return TALLY_OK;
}
