/* audience.c — attendance, supporters and creators of events (audience.h). */
#include "audience.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "live.h"

static void audience_mark_dirty(tally__state *st, uint32_t i) {
  tally__audience *a = &st->audience[i];
  if (a->first_ms == 0) return; /* never present: nothing to store */
  a->dirty = true;
  a->version++;
  if (a->dirty_listed) return;
  a->dirty_listed = true;
  st->dirty_audience[st->dirty_audience_count++] = i;
}


void tally__audience_presence(tally__engine *e, uint16_t net, const char *channel, uint32_t account, bool present) {
  tally__state *st = &e->st;
  uint32_t ev = tally__live_event_in(st, net, channel);
  if (ev == TALLY__NONE) return; /* only events count attendance */
  uint32_t i = tally__audience_row(st, st->events[ev].id, account, present);
  if (i == TALLY__NONE) return;
  tally__audience *a = &st->audience[i];
  uint64_t now = tally__now_mono_ms(e);
  if (present && !a->joined_mono) {
    a->joined_mono = now ? now : 1;
    if (!a->first_ms) a->first_ms = tally__now_wall_ms(e);
  } else if (!present && a->joined_mono) {
    a->total_ms += now - a->joined_mono;
    a->joined_mono = 0;
  } else {
    return;
  }
  audience_mark_dirty(st, i);
}


void tally__audience_totals(const tally__state *st, uint64_t event_id, uint64_t now_mono, uint32_t *attendees,
                            uint64_t *total_ms) {
  *attendees = 0;
  *total_ms = 0;
  for (uint32_t i = 0; i < st->audience_count; i++) {
    const tally__audience *a = &st->audience[i];
    if (a->event_id != event_id || !a->first_ms) continue;
    (*attendees)++;
    *total_ms += (uint64_t)tally__audience_seconds(st, i, now_mono) * 1000;
  }
}

void tally__audience_event_stopped(tally__engine *e, uint64_t event_id) {
  tally__state *st = &e->st;
  uint64_t now = tally__now_mono_ms(e);
  for (uint32_t i = 0; i < st->audience_count; i++) {
    tally__audience *a = &st->audience[i];
    if (a->event_id != event_id || !a->joined_mono) continue;
    a->total_ms += now - a->joined_mono;
    a->joined_mono = 0;
    audience_mark_dirty(st, i);
  }
}

void tally__audience_tick(tally__engine *e, uint64_t now_mono) {
  tally__state *st = &e->st;
  if (now_mono < st->audience_flush_mono) return;
  st->audience_flush_mono = now_mono + TALLY__ATTENDANCE_FLUSH_MS;
  for (uint32_t i = 0; i < st->audience_count; i++)
    if (st->audience[i].joined_mono) audience_mark_dirty(st, i);
}

void tally__audience_committed(tally__state *st, const tally__op *op) {
  if (!op->event_id || (op->kind != TALLY__TRANSFER_PURCHASE && op->kind != TALLY__TRANSFER_TIP)) return;
  uint32_t i = tally__audience_row(st, op->event_id, op->account, true);
  if (i != TALLY__NONE) st->audience[i].spent += op->amount;
  for (int k = 0; k < op->leg_count; k++) {
    const tally__leg *leg = &op->legs[k];
    if (leg->amount <= 0 || leg->account == st->fees || op->kind != TALLY__TRANSFER_PURCHASE) continue;
    uint32_t j = tally__audience_row(st, op->event_id, leg->account, true);
    if (j != TALLY__NONE) st->audience[j].earned += leg->amount;
  }
}

/* The rows of the event with the largest `spent` (earned: false) or
 * `earned`, best first, into top[]; returns how many. */
static uint32_t audience_top(const tally__state *st, uint64_t event_id, bool earned, uint32_t *top, uint32_t max) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < st->audience_count; i++) {
    const tally__audience *a = &st->audience[i];
    int64_t v = earned ? a->earned : a->spent;
    if (a->event_id != event_id || v <= 0) continue;
    uint32_t at = n < max ? n++ : max;
    while (at > 0) {
      const tally__audience *b = &st->audience[top[at - 1]];
      if ((earned ? b->earned : b->spent) >= v) break;
      if (at < max) top[at] = top[at - 1];
      at--;
    }
    if (at < max) top[at] = i;
  }
  return n;
}

/* Marks name (account) and amount of the entry just written at out + used
 * as "<sep><name> <amount>". */
static void mark_entry(tally__engine *e, tally__say_marks *m, size_t used, const char *name, const char *amount,
                       int64_t minor) {
  size_t at = used + (used ? 2 : 0);
  tally__say_mark(m, TALLY_ARG_ACCOUNT, at, strlen(name), 0, 0);
  tally__say_mark(m, TALLY_ARG_AMOUNT, at + strlen(name) + 1, strlen(amount), minor, e->cfg.currency_decimals);
}

void tally__audience_supporters(tally__engine *e, uint64_t event_id, char *out, size_t cap, tally__say_marks *marks) {
  const tally__state *st = &e->st;
  uint32_t top[TALLY__SUPPORTERS_NAMED];
  uint32_t n = audience_top(st, event_id, false, top, TALLY__SUPPORTERS_NAMED), unnamed = 0;
  size_t used = 0;
  out[0] = 0;
  for (uint32_t k = 0; k < n; k++) {
    const tally__audience *a = &st->audience[top[k]];
    const tally__account *acc = &st->accounts[a->account];
    if (acc->unnamed) {
      unnamed++;
      continue;
    }
    char amount[48];
    tally__format_amount(e, a->spent, amount, sizeof amount);
    int w = snprintf(out + used, cap - used, "%s%s %s", used ? ", " : "", tally__account_label(st, a->account), amount);
    if (w < 0 || (size_t)w >= cap - used) break;
    mark_entry(e, marks, used, tally__account_label(st, a->account), amount, a->spent);
    used += (size_t)w;
  }
  if (unnamed)
    snprintf(out + used, cap - used, "%s%u who prefer%s not to be named", used ? ", and " : "", unnamed,
             unnamed == 1 ? "s" : "");
}

void tally__audience_creators(tally__engine *e, uint64_t event_id, char *out, size_t cap, tally__say_marks *marks) {
  const tally__state *st = &e->st;
  uint32_t top[8];
  uint32_t n = audience_top(st, event_id, true, top, 8), unnamed = 0;
  size_t used = 0;
  out[0] = 0;
  for (uint32_t k = 0; k < n; k++) {
    const tally__audience *a = &st->audience[top[k]];
    if (st->accounts[a->account].unnamed) { /* TALLY PRIVACY on: counted, not named */
      unnamed++;
      continue;
    }
    char amount[48];
    tally__format_amount(e, a->earned, amount, sizeof amount);
    int w = snprintf(out + used, cap - used, "%s%s %s", used ? ", " : "", tally__account_label(st, a->account), amount);
    if (w < 0 || (size_t)w >= cap - used) break;
    mark_entry(e, marks, used, tally__account_label(st, a->account), amount, a->earned);
    used += (size_t)w;
  }
  if (unnamed && used < cap)
    snprintf(out + used, cap - used, "%s%u who prefer%s not to be named", used ? ", and " : "", unnamed,
             unnamed == 1 ? "s" : "");
}
