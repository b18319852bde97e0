/* pending.c — the commands of a slot that the engine has not answered yet,
 * by req_id: the busy bound counts them (their answers will need room), and
 * at SIGTERM those the engine stopped without answering (still queued, or
 * in a batch that did not resolve in time) get an answer from tallyd, so no
 * user is left with silence. An open-addressing table with linear probing
 * and backward-shift deletion, of twice slot_effects_max places at most,
 * grown from a small start as commands are in flight (the busy bound keeps
 * it under three quarters full). */
#include "tallyd.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* The table's places are 16 bytes, so probing and the backward shift stay
 * within a few cache lines; the names (kept only to answer at stop) live in
 * a side store, a place of which is taken per command and given back when it
 * is answered, most recently freed first (the hot ones stay in cache). */
typedef struct td_pending {
  uint64_t req_id;
  uint32_t count; /* 0: empty; a req_id reused while pending counts twice */
  uint32_t names; /* index in s->pend_names */
} td_pending;

struct td_pending_names {
  char origin[TD_KEPT_NAME_BYTES_MAX + 1]; /* "" when longer: not answered at stop */
  char channel[TD_KEPT_NAME_BYTES_MAX + 1];
};

static uint32_t slot_of(const td_slot *s, uint64_t req_id) {
  return (uint32_t)((req_id * 0x9e3779b97f4a7c15ull) >> 32) & (s->pend_cap - 1);
}

enum { PENDING_CAP_FIRST = 256 };

/* The most places a slot's table may have: twice slot_effects_max, so the
 * busy bound (which counts these) keeps it under three quarters full. */
static uint32_t cap_max(const td_daemon *d) {
  uint32_t cap = 16;
  while (cap < 2u * d->cfg.slot_effects_max) cap <<= 1;
  return cap;
}

static void place(td_slot *s, td_pending e) {
  uint32_t i = slot_of(s, e.req_id);
  while (s->pend[i].count) i = (i + 1) & (s->pend_cap - 1);
  s->pend[i] = e;
}

/* Doubles the table (rehashing) and the name store: it starts small and
 * grows with what is in flight, so a slot with a big bound (a bench's
 * queue_depth) touches only what it uses. Name indices stay valid. */
static int grow(td_slot *s, uint32_t cap) {
  td_pending *table = calloc(cap, sizeof *table);
  struct td_pending_names *names = realloc(s->pend_names, (size_t)cap * sizeof *names);
  uint32_t *free_idx = names ? realloc(s->pend_free, (size_t)cap * sizeof *free_idx) : NULL;
  if (names) s->pend_names = names;
  if (free_idx) s->pend_free = free_idx;
  if (!table || !names || !free_idx) {
    free(table);
    return TALLY_ENOMEM;
  }
  td_pending *old = s->pend;
  uint32_t old_cap = s->pend_cap;
  /* New name places go under the free ones, so the reused stay on top. */
  memmove(s->pend_free + (cap - old_cap), s->pend_free, (size_t)s->pend_free_count * sizeof *s->pend_free);
  for (uint32_t k = 0; k < cap - old_cap; k++) s->pend_free[k] = cap - 1 - k;
  s->pend_free_count += cap - old_cap;
  s->pend = table;
  s->pend_cap = cap;
  for (uint32_t i = 0; old && i < old_cap; i++)
    if (old[i].count) place(s, old[i]);
  free(old);
  return TALLY_OK;
}

static void keep_names(struct td_pending_names *n, const char *origin, const char *channel) {
  /* A name too long to keep is not cut (an answer to half a JID would go
   * astray): the entry still counts for the busy bound, and at stop its
   * command is logged as unanswered instead. */
  size_t on = strnlen(origin, TD_KEPT_NAME_BYTES_MAX + 1), cn = strnlen(channel, TD_KEPT_NAME_BYTES_MAX + 1);
  if (on > TD_KEPT_NAME_BYTES_MAX || cn > TD_KEPT_NAME_BYTES_MAX) on = cn = 0;
  memcpy(n->origin, origin, on); /* per command: no printf */
  n->origin[on] = 0;
  memcpy(n->channel, channel, cn);
  n->channel[cn] = 0;
}

int td_pending_add(td_daemon *d, td_slot *s, uint64_t req_id, const char *origin, const char *channel) {
  uint32_t max = cap_max(d);
  if (!s->pend && grow(s, PENDING_CAP_FIRST < max ? PENDING_CAP_FIRST : max) != TALLY_OK) return TALLY_ENOMEM;
  if (s->pend_count + 1 >= s->pend_cap / 2 + s->pend_cap / 4) {
    if (s->pend_cap >= max) return TALLY_EBUSY;
    if (grow(s, s->pend_cap * 2) != TALLY_OK) return TALLY_ENOMEM;
  }
  for (uint32_t i = slot_of(s, req_id);; i = (i + 1) & (s->pend_cap - 1)) {
    td_pending *p = &s->pend[i];
    if (p->count && p->req_id != req_id) continue;
    if (!p->count) {
      assert(s->pend_free_count > 0); /* one name place per table place */
      p->req_id = req_id;
      p->names = s->pend_free[--s->pend_free_count];
      keep_names(&s->pend_names[p->names], origin, channel);
      s->pend_count++;
    }
    p->count++;
    return TALLY_OK;
  }
}

static void release(td_slot *s, uint32_t i) {
  s->pend_free[s->pend_free_count++] = s->pend[i].names;
  s->pend[i].count = 0;
}

void td_pending_done(td_slot *s, uint64_t req_id) {
  if (!s->pend || !s->pend_count) return;
  uint32_t mask = s->pend_cap - 1, i = slot_of(s, req_id);
  while (s->pend[i].count && s->pend[i].req_id != req_id) i = (i + 1) & mask;
  if (!s->pend[i].count) return;
  if (--s->pend[i].count) return;
  s->pend_count--;
  s->pend_free[s->pend_free_count++] = s->pend[i].names;
  /* Backward shift: later entries of the run move up, so no tombstones. */
  for (uint32_t j = (i + 1) & mask; s->pend[j].count; j = (j + 1) & mask) {
    uint32_t home = slot_of(s, s->pend[j].req_id);
    if (((j - home) & mask) >= ((j - i) & mask)) {
      s->pend[i] = s->pend[j];
      s->pend[j].count = 0;
      i = j;
    }
  }
  s->pend[i].count = 0;
}

uint32_t td_pending_answer_all(td_daemon *d, td_slot *s, int code, const char *text) {
  uint32_t unanswerable = 0;
  for (uint32_t i = 0; s->pend && i < s->pend_cap; i++) {
    td_pending *p = &s->pend[i];
    if (!p->count) continue;
    const struct td_pending_names *n = &s->pend_names[p->names];
    tally_effect e = {.size = sizeof e, .version = TALLY_EFFECT_VERSION, .kind = TALLY_EFFECT_REPLY, .code = code,
                      .req_id = p->req_id, .origin = n->origin, .channel = n->channel, .text = text,
                      .network = s->network, .args = ""};
    release(s, i);
    if (!n->origin[0]) { /* its name was too long to keep: the caller logs it */
      unanswerable++;
      continue;
    }
    td_slot_push(d, s, &e, n->origin);
  }
  s->pend_count = 0;
  return unanswerable;
}

void td_pending_free(td_slot *s) {
  free(s->pend);
  free(s->pend_names);
  free(s->pend_free);
  s->pend = NULL;
  s->pend_names = NULL;
  s->pend_free = NULL;
  s->pend_cap = s->pend_count = s->pend_free_count = 0;
}
