/* live.c — events and drops: their timers, totals and announcements.
 * Money rules stay in decide.c; this file only says what happens when. */
#include "text.h"
#include "live.h"
#include "audience.h"
#include "highlight.h"
#include "live_raffle.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static void event_mark_dirty(tally__event *ev) {
  ev->dirty = true;
  ev->version++;
}

uint32_t tally__live_event_in(const tally__state *st, uint16_t net, const char *channel) {
  if (!channel || !channel[0]) return TALLY__NONE;
  for (uint32_t i = 0; i < st->event_count; i++) {
    const tally__event *ev = &st->events[i];
    if (!ev->stopped_ms && ev->net == net && strcmp(ev->channel, channel) == 0) return i;
  }
  return TALLY__NONE;
}

uint32_t tally__live_event_find(const tally__state *st, uint64_t id) {
  for (uint32_t i = 0; id && i < st->event_count; i++)
    if (st->events[i].id == id) return i;
  return TALLY__NONE;
}

uint64_t tally__live_event_for(const tally__state *st, uint32_t item, uint16_t net, const char *channel) {
  if (item != TALLY__NONE && st->items[item].drop_event) return st->items[item].drop_event;
  uint32_t ev = tally__live_event_in(st, net, channel);
  return ev == TALLY__NONE ? 0 : st->events[ev].id;
}

/* A slot for a new event: a free one, else the oldest that is stopped,
 * saved, summarized and has nothing in flight. */
static uint32_t event_slot(tally__state *st) {
  if (st->event_count < TALLY__EVENTS_MAX) return st->event_count++;
  uint32_t oldest = TALLY__NONE;
  for (uint32_t i = 0; i < st->event_count; i++) {
    const tally__event *ev = &st->events[i];
    bool done = ev->stopped_ms && !ev->dirty && !ev->summary_due && ev->inflight == 0;
    if (done && (oldest == TALLY__NONE || ev->stopped_ms < st->events[oldest].stopped_ms))
      oldest = i;
  }
  return oldest;
}

int tally__live_event_start(tally__engine *e, uint32_t host, uint16_t net, const char *channel, const char *title,
                            uint32_t minutes, uint32_t *index) {
  tally__state *st = &e->st;
  uint32_t i = event_slot(st);
  if (i == TALLY__NONE) return TALLY_ETOO_MANY;
  tally__event *ev = &st->events[i];
  memset(ev, 0, sizeof *ev);
  ev->id = tally__state_take_id(st);
  ev->host = host;
  ev->start_ms = tally__now_wall_ms(e);
  ev->end_ms = ev->start_ms + (int64_t)minutes * 60000;
  ev->end_mono = tally__now_mono_ms(e) + (uint64_t)minutes * 60000;
  ev->net = net;
  tally__text_clip(ev->channel, sizeof ev->channel, channel);
  tally__text_clip(ev->title, sizeof ev->title, title);
  event_mark_dirty(ev);
  tally__account_mark_dirty(st, host); /* the event row references its host */
  /* Who is here already counts as attending: ask the host for the roster. */
  tally__emit_in(e, ev->net, TALLY_EFFECT_ROSTER, TALLY_OK, 0, 0, "", ev->channel, "");
  *index = i;
  return TALLY_OK;
}

/* "1 tip", "3 tips". */
static const char *plural(uint64_t n, const char *one, const char *many) { return n == 1 ? one : many; }

static void event_summary(tally__engine *e, tally__event *ev) {
  tally__state *st = &e->st;
  tally__reactions_flush(e, (uint32_t)(ev - st->events));
  char sales[48], tips[48], drops[TALLY_TEXT_BYTES_MAX / 2] = "";
  tally__format_amount(e, ev->sales_minor, sales, sizeof sales);
  tally__format_amount(e, ev->tips_minor, tips, sizeof tips);
  size_t n = 0;
  for (uint32_t i = 0; i < st->item_count && n + 48 < sizeof drops; i++) {
    const tally__item *it = &st->items[i];
    if (it->drop_event != ev->id || it->kind == TALLY__KIND_HIGHLIGHT || it->kind == TALLY__KIND_REACTION) continue;
    int k = snprintf(drops + n, sizeof drops - n, "%s%s %d/%d", n ? ", " : " Drops: ", it->sku, it->sold,
                     it->stock);
    if (k > 0) n += (size_t)k;
  }
  tally__say say;
  tally__say_init(&say, TALLY_MSG_EVENT_ENDED);
  tally__sayf(&say, "tn-mn-m", "Event \"%s\" ended: %llu %s (%s), %llu %s (%s).%s%s Thank you!", ev->title,
              (unsigned long long)ev->sales, plural(ev->sales, "sale", "sales"), sales, (unsigned long long)ev->tips,
              plural(ev->tips, "tip", "tips"), tips, drops, n ? "." : "");
  tally__say_value(&say, 2, ev->sales_minor, TALLY__DECIMALS(e));
  tally__say_value(&say, 4, ev->tips_minor, TALLY__DECIMALS(e));
  tally__announce_say_in(e, ev->net, ev->channel, &say);
  uint32_t attendees;
  uint64_t total_ms;
  tally__audience_totals(st, ev->id, tally__now_mono_ms(e), &attendees, &total_ms);
  char supporters[TALLY_TEXT_BYTES_MAX / 2], creators[TALLY_TEXT_BYTES_MAX / 2];
  tally__say_marks top = {0}, earned = {0}, none = {0};
  tally__audience_supporters(e, ev->id, supporters, sizeof supporters, &top);
  tally__audience_creators(e, ev->id, creators, sizeof creators, &earned);
  tally__say_init(&say, TALLY_MSG_EVENT_ATTENDANCE);
  tally__sayf(&say, "n", "Attendance: %u %s, %llu min on average. Top supporters: ", attendees,
              attendees == 1 ? "attendee" : "attendees",
              (unsigned long long)(attendees ? total_ms / attendees / 60000 : 0));
  tally__say_splice(&say, supporters[0] ? supporters : "none", supporters[0] ? &top : &none);
  tally__sayf(&say, "", ". Creators earned: ");
  tally__say_splice(&say, creators[0] ? creators : "nothing yet", creators[0] ? &earned : &none);
  tally__sayf(&say, "", ".");
  tally__announce_say_in(e, ev->net, ev->channel, &say);
}

/* Stops the event now: no new op joins it and its drops close; the
 * summary waits until the ops already decided for it have resolved, so it
 * counts exactly what the ledger holds (tally__live_tick says it). */
void tally__live_event_stop(tally__engine *e, uint32_t index) {
  tally__state *st = &e->st;
  tally__event *ev = &st->events[index];
  if (ev->stopped_ms) return;
  ev->stopped_ms = tally__now_wall_ms(e);
  ev->summary_due = true;
  event_mark_dirty(ev);
  tally__audience_event_stopped(e, ev->id);
  tally__highlights_event_stopped(e, ev->id);
  for (uint32_t k = 0; k < st->drops_active_count;) {
    uint32_t item = st->drops_active[k];
    if (st->items[item].drop_event == ev->id) tally__live_drop_close(e, item);
    else k++;
  }
}

static void drop_deactivate(tally__state *st, uint32_t item) {
  for (uint32_t k = 0; k < st->drops_active_count; k++)
    if (st->drops_active[k] == item) {
      st->drops_active[k] = st->drops_active[--st->drops_active_count];
      return;
    }
}

int tally__live_drop_schedule(tally__engine *e, uint32_t item) {
  tally__state *st = &e->st;
  if (st->drops_active_count >= TALLY__DROPS_ACTIVE_MAX) return TALLY_ETOO_MANY;
  tally__item *it = &st->items[item];
  int64_t wall = tally__now_wall_ms(e);
  uint64_t mono = tally__now_mono_ms(e);
  /* Wall-clock times seed the monotonic timers once, here. */
  it->drop_start_mono = it->drop_start_ms <= wall ? mono : mono + (uint64_t)(it->drop_start_ms - wall);
  it->drop_end_mono = it->drop_end_ms <= wall ? mono : mono + (uint64_t)(it->drop_end_ms - wall);
  st->drops_active[st->drops_active_count++] = item;
  return TALLY_OK;
}

void tally__live_drop_open(tally__engine *e, uint32_t item) {
  tally__item *it = &e->st.items[item];
  if (it->drop_state != TALLY__DROP_SCHEDULED) return;
  it->drop_state = TALLY__DROP_LIVE;
  tally__item_mark_dirty(&e->st, item);
  if (it->drop_mode == TALLY__MODE_RAFFLE) {
    tally__raffle_announce_open(e, item);
    return;
  }
  char price[48];
  tally__format_amount(e, it->price, price, sizeof price);
  int64_t ms = it->drop_end_ms - it->drop_start_ms;
  char span[32];
  if (ms < 60000) snprintf(span, sizeof span, "%lld s", (long long)((ms + 999) / 1000));
  else snprintf(span, sizeof span, "%lld min", (long long)((ms + 59999) / 60000));
  tally__say say;
  tally__say_init(&say, TALLY_MSG_DROP_LIVE);
  tally__sayf(&say, "tnm--", "LIVE NOW: %s - %d units at %s for %s%s. Type: ", it->title,
              it->stock - it->sold - it->held, price, span, it->drop_per_user ? " (limit per buyer)" : "");
  /* The command as the engine takes it; the adapter says it its network's way. */
  size_t command = say.len;
  tally__sayf(&say, "s", "BUY %s", it->sku);
  tally__say_span(&say, TALLY_ARG_COMMAND, command);
  tally__say_value(&say, 2, it->price, TALLY__DECIMALS(e));
  tally__announce_say_in(e, it->drop_net, it->drop_channel, &say);
}

/* Closes the drop now; its "closed" line waits until nothing of it is held
 * (tally__live_tick), so it counts exactly what sold. */
void tally__live_drop_close(tally__engine *e, uint32_t item) {
  tally__state *st = &e->st;
  tally__item *it = &st->items[item];
  drop_deactivate(st, item);
  if (it->drop_state == TALLY__DROP_CLOSED) return;
  it->drop_state = TALLY__DROP_CLOSED;
  if (it->drop_mode == TALLY__MODE_RAFFLE) { /* the draw is its last word */
    tally__raffle_close(e, item);
    tally__item_mark_dirty(st, item);
    return;
  }
  it->drop_close_due = !it->drop_out_said; /* a sold-out drop has said its last word */
  if (it->drop_close_due) st->drops_closing++;
  tally__item_mark_dirty(st, item);
}

static void drop_close_say(tally__engine *e, tally__item *it) {
  it->drop_close_due = false;
  e->st.drops_closing--;
  tally__say say;
  tally__say_init(&say, TALLY_MSG_DROP_CLOSED);
  tally__sayf(&say, "snn", "Drop %s closed: %d of %d sold.", it->sku, it->sold, it->stock);
  tally__announce_say_in(e, it->drop_net, it->drop_channel, &say);
}

/* Does this drop's "closed" line wait for its event's summary? */
static bool waits_for_summary(const tally__state *st, const tally__item *it) {
  uint32_t ev = tally__live_event_find(st, it->drop_event);
  return ev != TALLY__NONE && st->events[ev].summary_due;
}

/* Is a raffle drop of the event closed but not drawn yet? Its draw charges
 * winners (ops of the event), which the summary must count. A draw that
 * cannot happen (say its seed is lost) does not hold the summary back
 * longer than TALLY__SUMMARY_RAFFLE_WAIT_MS. */
static bool raffle_undrawn(const tally__engine *e, const tally__event *ev) {
  const tally__state *st = &e->st;
  if (!st->raffles_due || tally__now_wall_ms(e) - ev->stopped_ms > TALLY__SUMMARY_RAFFLE_WAIT_MS) return false;
  for (uint32_t k = 0; k < st->item_count; k++) {
    const tally__item *it = &st->items[k];
    if (it->drop_event == ev->id && it->drop_mode == TALLY__MODE_RAFFLE && it->drop_state == TALLY__DROP_CLOSED &&
        !it->raffle_drawn)
      return true;
  }
  return false;
}

static void announce_due(tally__engine *e) {
  tally__state *st = &e->st;
  for (uint32_t i = 0; i < st->event_count; i++) {
    tally__event *ev = &st->events[i];
    if (!ev->summary_due || ev->inflight || raffle_undrawn(e, ev)) continue;
    ev->summary_due = false;
    /* Drops of the event say "closed" first, with their final counts. */
    for (uint32_t k = 0; k < st->item_count; k++) {
      tally__item *it = &st->items[k];
      if (it->drop_event == ev->id && it->drop_close_due) drop_close_say(e, it);
    }
    event_summary(e, ev);
  }
}

/* "starts in 1 min", then "in 10 s": once each, for drops scheduled
 * further ahead than that. */
static void drop_countdown(tally__engine *e, tally__item *it, uint64_t now_mono) {
  static const struct { uint64_t ms; const char *text; } marks[] = {{60000, "1 min"}, {10000, "10 s"}};
  uint64_t left = it->drop_start_mono > now_mono ? it->drop_start_mono - now_mono : 0;
  for (int k = 0; k < 2; k++) {
    if ((it->drop_countdown_said >> k) & 1 || left > marks[k].ms || left == 0) continue;
    it->drop_countdown_said |= (uint8_t)(1u << k);
    if (left + 1000 < marks[k].ms) continue; /* scheduled closer than that: its creation said when */
    tally__announce_in(e, it->drop_net, it->drop_channel, "%s %s starts in %s.", it->drop_mode == TALLY__MODE_RAFFLE ? "Raffle" : "Drop",
                    it->sku, marks[k].text);
  }
}

void tally__live_tick(tally__engine *e, uint64_t now_mono) {
  tally__state *st = &e->st;
  announce_due(e);
  tally__raffle_tick(e);
  tally__audience_tick(e, now_mono);
  tally__highlights_tick(e, now_mono);
  for (uint32_t k = 0; k < st->item_count && st->drops_closing; k++) {
    tally__item *it = &st->items[k];
    if (it->drop_close_due && it->held == 0 && !waits_for_summary(st, it)) drop_close_say(e, it);
  }
  for (uint32_t k = 0; k < st->drops_active_count;) {
    uint32_t item = st->drops_active[k];
    tally__item *it = &st->items[item];
    if (it->drop_state == TALLY__DROP_SCHEDULED) drop_countdown(e, it, now_mono);
    if (it->drop_state == TALLY__DROP_SCHEDULED && now_mono >= it->drop_start_mono) tally__live_drop_open(e, item);
    if (it->drop_state == TALLY__DROP_LIVE && now_mono >= it->drop_end_mono && !st->drops_paused_mono) {
      tally__live_drop_close(e, item); /* removes it from the active list */
      continue;
    }
    k++;
  }
  for (uint32_t i = 0; i < st->event_count; i++) {
    tally__event *ev = &st->events[i];
    if (!ev->stopped_ms && now_mono >= ev->end_mono) tally__live_event_stop(e, i);
  }
}

void tally__live_ledger_refused(tally__engine *e) {
  tally__state *st = &e->st;
  if (st->drops_paused_mono) return;
  st->drops_paused_mono = tally__now_mono_ms(e);
  for (uint32_t k = 0; k < st->drops_active_count; k++) {
    const tally__item *it = &st->items[st->drops_active[k]];
    if (it->drop_state != TALLY__DROP_LIVE) continue;
    tally__say say;
    tally__say_init(&say, TALLY_MSG_DROP_PAUSED);
    tally__sayf(&say, "s", "Drop %s is paused: purchases cannot be recorded right now. "
                "Its time stands still until they can.", it->sku);
    tally__announce_say_in(e, it->drop_net, it->drop_channel, &say);
  }
}

void tally__live_ledger_recovered(tally__engine *e) {
  tally__state *st = &e->st;
  if (!st->drops_paused_mono) return;
  uint64_t now = tally__now_mono_ms(e), paused = now - st->drops_paused_mono;
  st->drops_paused_mono = 0;
  for (uint32_t k = 0; k < st->drops_active_count; k++) {
    uint32_t i = st->drops_active[k];
    tally__item *it = &st->items[i];
    if (it->drop_state != TALLY__DROP_LIVE) continue;
    it->drop_end_mono += paused;
    it->drop_end_ms += (int64_t)paused; /* stored: a restart keeps the longer window */
    tally__item_mark_dirty(st, i);
    uint64_t left = it->drop_end_mono > now ? it->drop_end_mono - now : 0;
    tally__announce_in(e, it->drop_net, it->drop_channel, "Drop %s resumes: %llu s left.", it->sku,
                    (unsigned long long)((left + 999) / 1000));
  }
}

void tally__live_committed(tally__engine *e, const tally__op *op) {
  tally__state *st = &e->st;
  tally__audience_committed(st, op);
  tally__highlights_committed(e, op);
  uint32_t ev = tally__live_event_find(st, op->event_id);
  if (ev != TALLY__NONE && op->kind == TALLY__TRANSFER_PURCHASE && op->amount > 0) { /* a free unit is no sale */
    st->events[ev].sales++;
    st->events[ev].sales_minor += op->amount;
  } else if (ev != TALLY__NONE && op->kind == TALLY__TRANSFER_TIP) {
    st->events[ev].tips++;
    st->events[ev].tips_minor += op->amount;
  }
  if (op->kind != TALLY__TRANSFER_PURCHASE) return;
  tally__item *it = &st->items[op->item];
  if (it->drop_state == TALLY__DROP_NONE || it->stock <= 0) return;
  int32_t left = tally__item_left(it);
  if (left == 0 && it->sold >= it->stock && !it->drop_out_said) {
    it->drop_out_said = true;
    tally__say say;
    tally__say_init(&say, TALLY_MSG_DROP_SOLD_OUT);
    tally__sayf(&say, "sn", "SOLD OUT: %s - all %d units are gone.", it->sku, it->stock);
    tally__announce_say_in(e, it->drop_net, it->drop_channel, &say);
  } else if (left > 0 && left <= (it->stock / 10 > 1 ? it->stock / 10 : 1) && !it->drop_low_said) {
    /* Low: 10% of the stock, or the last unit of a small drop. */
    it->drop_low_said = true;
    tally__say say;
    tally__say_init(&say, TALLY_MSG_DROP_LOW);
    tally__sayf(&say, "ns", "Only %d left of %s!", left, it->sku);
    tally__announce_say_in(e, it->drop_net, it->drop_channel, &say);
  }
}

/* ---- the feature's config keys (config.h; runtime.c registers them) ------- */
static const tally__config_key config_keys[] = {
    {"drops_per_host", TALLY__CFG_U32, offsetof(tally_config, drops_per_host), "16", 1, 256,
     "scheduled or live drops of one creator at once (256 for everyone together)"},
};
const tally__config_keys tally__live_config_keys = TALLY__CONFIG_KEYS(config_keys);
