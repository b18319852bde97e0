/* audience_rows.c — the (event, account) rows of audience.h: finding,
 * adding and reclaiming them, and what decide.c and batch.c read from them.
 * State only (no engine), so the simulator and the fuzzers link it alone. */
#include <string.h>

#include "state.h"

typedef struct audience_probe {
  const tally__state *st;
  uint64_t event_id;
  uint32_t account;
} audience_probe;

static bool audience_eq(const void *ud, uint32_t i) {
  const audience_probe *p = ud;
  return p->st->audience[i].event_id == p->event_id && p->st->audience[i].account == p->account;
}

static uint64_t audience_hash(uint64_t event_id, uint32_t account) {
  return tally__hash_u64(event_id * 0x9e3779b97f4a7c15ull ^ account);
}

/* Rows of events that are over (stopped, summarized, stored) go; the
 * others keep their order. */
static void audience_reclaim(tally__state *st) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < st->audience_count; i++) {
    const tally__audience *a = &st->audience[i];
    const tally__event *ev = NULL;
    for (uint32_t k = 0; k < st->event_count && !ev; k++)
      if (st->events[k].id == a->event_id) ev = &st->events[k];
    bool over = !ev || (ev->stopped_ms && !ev->summary_due);
    if (over && !a->dirty && !a->dirty_listed) continue;
    st->audience[n++] = *a;
  }
  st->audience_count = n;
  memset(st->audience_index.slots, 0, (st->audience_index.mask + 1) * sizeof *st->audience_index.slots);
  st->audience_index.count = 0;
  for (uint32_t i = 0; i < n; i++)
    tally__map_put(&st->audience_index, audience_hash(st->audience[i].event_id, st->audience[i].account), i);
  /* Dirty rows moved: their list is rebuilt. */
  st->dirty_audience_count = 0;
  for (uint32_t i = 0; i < n; i++)
    if (st->audience[i].dirty_listed) st->dirty_audience[st->dirty_audience_count++] = i;
}

uint32_t tally__audience_row(tally__state *st, uint64_t event_id, uint32_t account, bool create) {
  audience_probe p = {st, event_id, account};
  uint64_t h = audience_hash(event_id, account);
  uint32_t i = tally__map_find(&st->audience_index, h, audience_eq, &p);
  if (i != TALLY__NONE || !create) return i;
  if (st->audience_count >= TALLY__AUDIENCE_MAX) audience_reclaim(st);
  if (st->audience_count >= TALLY__AUDIENCE_MAX) return TALLY__NONE;
  i = st->audience_count;
  if (tally__map_put(&st->audience_index, h, i)) return TALLY__NONE;
  st->audience_count++;
  tally__audience *a = &st->audience[i];
  memset(a, 0, sizeof *a);
  a->event_id = event_id;
  a->account = account;
  return i;
}

bool tally__audience_attended(const tally__state *st, uint64_t event_id, uint32_t account) {
  audience_probe p = {st, event_id, account};
  uint32_t i = tally__map_find(&st->audience_index, audience_hash(event_id, account), audience_eq, &p);
  return i != TALLY__NONE && st->audience[i].first_ms != 0;
}

int64_t tally__audience_first_ms(const tally__state *st, uint64_t event_id, uint32_t account) {
  audience_probe p = {st, event_id, account};
  uint32_t i = tally__map_find(&st->audience_index, audience_hash(event_id, account), audience_eq, &p);
  return i == TALLY__NONE ? 0 : st->audience[i].first_ms;
}

int32_t tally__audience_seconds(const tally__state *st, uint32_t row, uint64_t now_mono) {
  const tally__audience *a = &st->audience[row];
  uint64_t ms = a->total_ms + (a->joined_mono ? now_mono - a->joined_mono : 0);
  return (int32_t)(ms / 1000 > INT32_MAX ? INT32_MAX : ms / 1000);
}
