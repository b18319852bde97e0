/* sim_live.c — the clock (with jumps), catalog changes as cmd_admin.c makes
 * them, and drops and events as live.c and cmd_live.c change them
 * (sim_internal.h). */
#include "sim_internal.h"

/* ---- clock and catalog ------------------------------------------------------------------------------ */
void step_clock(world *w) {
  uint64_t r = below(w, 1000);
  uint64_t dt = r < 980 ? (uint64_t)between(w, 0, 100) : (uint64_t)between(w, 1000, 10000);
  w->mono += dt;
  w->wall += (int64_t)dt;
  if (r >= 990) w->wall += chance(w, 50) ? 3600000 : -3600000; /* F9: wall clock jumps */
  if (r == 999) w->wall += 86400000 - between(w, 0, 60000);
  if (w->wall < SIM_WALL_START) w->wall = SIM_WALL_START;
}

/* Item changes as cmd_admin.c makes them ("stock N" = N more from now on). */
void step_catalog(world *w) {
  uint32_t i = (uint32_t)below(w, w->st.item_count);
  tally__item *it = &w->st.items[i];
  uint64_t r = below(w, 100);
  if (r < 45) it->stock = chance(w, 20) ? -1 : (int32_t)between(w, 0, 20) + it->sold + it->held;
  else if (r < 75) it->price = w->price[i] = random_price(w);
  else it->deleted = !it->deleted;
  if (it->deleted && chance(w, 50)) it->deleted = false;
  trace(w, "catalog: %s stock=%d price=%lld deleted=%d", it->sku, it->stock, (long long)it->price, it->deleted);
}

/* ---- drops and events, as live.c and cmd_live.c change them ------------------------------------------------- */
/* tally__live_drop_open: only a scheduled drop opens. */
void drop_open(world *w, uint32_t k) {
  tally__item *it = &w->st.items[k];
  if (it->drop_state != TALLY__DROP_SCHEDULED) return;
  it->drop_state = TALLY__DROP_LIVE;
  trace(w, "drop %s LIVE", it->sku);
}

/* tally__live_drop_close: any drop closes, for good. */
void drop_close(world *w, uint32_t k) {
  tally__item *it = &w->st.items[k];
  if (it->drop_state == TALLY__DROP_CLOSED) return;
  it->drop_state = TALLY__DROP_CLOSED;
  trace(w, "drop %s CLOSED (sold %d, held %d)", it->sku, it->sold, it->held);
}

/* DROP CREATE as cmd_live.c makes it: a new item (a drop never reuses a
 * sku), scheduled, with a window on the monotonic clock, limited stock,
 * maybe a per-buyer limit, in the event running in its channel if any. */
void drop_create(world *w) {
  tally__state *st = &w->st;
  char sku[16];
  uint32_t k;
  snprintf(sku, sizeof sku, "drop%u", st->item_count);
  if (st->item_count >= SIM_ITEMS_MAX || tally__item_add(st, sku, &k)) return;
  tally__item *it = &st->items[k];
  uint8_t chan = (uint8_t)between(w, 1, SIM_CHANNELS);
  it->creator = w->creators[below(w, w->creator_count)];
  it->price = w->price[k] = chance(w, 80) ? between(w, 1, 500) : random_price(w);
  it->stock = (int32_t)between(w, 0, 40);
  it->refund_window_s = w->cfg.refund_window_s;
  snprintf(it->title, sizeof it->title, "drop %s", sku);
  snprintf(it->drop_channel, sizeof it->drop_channel, "%s", chan_names[chan]);
  it->drop_state = TALLY__DROP_SCHEDULED;
  it->drop_per_user = chance(w, 85) ? (uint32_t)between(w, 1, 3) : 0;
  int64_t start_in = chance(w, 40) ? 0 : between(w, 100, 30000), for_ms = between(w, 500, 120000);
  it->drop_start_ms = w->wall + start_in;
  it->drop_end_ms = it->drop_start_ms + for_ms;
  it->drop_start_mono = w->mono + (uint64_t)start_in;
  it->drop_end_mono = it->drop_start_mono + (uint64_t)for_ms;
  it->drop_event = w->item_event[k] = w->chan_event[chan];
  w->drops[w->drop_count++] = k;
  w->r->drops++;
  trace(w, "drop %s created: stock %d price %lld per-user %u in %s (event %llu), opens in %lld ms for %lld ms",
        sku, it->stock, (long long)it->price, it->drop_per_user, chan_names[chan],
        (unsigned long long)it->drop_event, (long long)start_in, (long long)for_ms);
  if (start_in == 0) drop_open(w, k);
}

/* tally__live_event_start, in a channel without a running event. */
void event_start(world *w) {
  tally__state *st = &w->st;
  uint8_t chan = (uint8_t)between(w, 1, SIM_CHANNELS);
  if (w->chan_event[chan] || w->ev_count >= SIM_EVENTS_MAX || st->event_count >= TALLY__EVENTS_MAX) return;
  uint32_t i = st->event_count++;
  tally__event *ev = &st->events[i];
  memset(ev, 0, sizeof *ev);
  int64_t ms = between(w, 2000, 300000);
  ev->id = tally__state_take_id(st);
  ev->host = w->creators[below(w, w->creator_count)];
  ev->start_ms = w->wall;
  ev->end_ms = w->wall + ms;
  ev->end_mono = w->mono + (uint64_t)ms;
  snprintf(ev->channel, sizeof ev->channel, "%s", chan_names[chan]);
  snprintf(ev->title, sizeof ev->title, "event %u", i);
  ev->dirty = true;
  ev->version++;
  w->ev_id[w->ev_count++] = ev->id;
  w->chan_event[chan] = ev->id;
  w->r->events++;
  trace(w, "event %llu started in %s for %lld ms", (unsigned long long)ev->id, chan_names[chan], (long long)ms);
}

/* tally__live_event_stop: no new op joins it, its drops close, and its
 * summary is due once nothing of it is in flight. */
void event_stop(world *w, uint32_t i) {
  tally__event *ev = &w->st.events[i];
  if (w->ev_stopped[i]) return;
  w->ev_stopped[i] = true;
  ev->stopped_ms = w->wall;
  ev->summary_due = true;
  ev->dirty = true;
  ev->version++;
  for (uint32_t c = 1; c <= SIM_CHANNELS; c++)
    if (w->chan_event[c] == ev->id) w->chan_event[c] = 0;
  for (uint32_t d = 0; d < w->drop_count; d++)
    if (w->item_event[w->drops[d]] == ev->id) drop_close(w, w->drops[d]);
  trace(w, "event %llu stopped (%u in flight)", (unsigned long long)ev->id, ev->inflight);
}

/* tally__live_tick after the clock moved: summaries whose ops all resolved,
 * drops whose window opened or closed, events whose time is up. */
void live_tick(world *w) {
  tally__state *st = &w->st;
  for (uint32_t i = 0; i < w->ev_count; i++) {
    tally__event *ev = &st->events[i];
    if (ev->summary_due && ev->inflight == 0) ev->summary_due = false;
  }
  for (uint32_t d = 0; d < w->drop_count; d++) {
    uint32_t k = w->drops[d];
    tally__item *it = &st->items[k];
    if (it->drop_state == TALLY__DROP_SCHEDULED && w->mono >= it->drop_start_mono) drop_open(w, k);
    if (it->drop_state == TALLY__DROP_LIVE && w->mono >= it->drop_end_mono) drop_close(w, k);
  }
  for (uint32_t i = 0; i < w->ev_count; i++)
    if (!w->ev_stopped[i] && w->mono >= st->events[i].end_mono) event_stop(w, i);
}

/* A host's live command: DROP CREATE / START / STOP, EVENT START / STOP. */
void step_live(world *w) {
  uint64_t r = below(w, 100);
  if (r < 8) drop_create(w);
  else if (r < 40) event_start(w);
  else if (r < 55) {
    uint32_t running[SIM_EVENTS_MAX], n = 0;
    for (uint32_t i = 0; i < w->ev_count; i++)
      if (!w->ev_stopped[i]) running[n++] = i;
    if (n) event_stop(w, running[below(w, n)]);
  } else if (w->drop_count && r < 80) {
    drop_open(w, w->drops[below(w, w->drop_count)]);
  } else if (w->drop_count) {
    drop_close(w, w->drops[below(w, w->drop_count)]);
  }
}
