/* pending.c — the commands of a slot that the engine has not answered yet,
 * by req_id: the busy bound counts them (their answers will need room), and
 * at SIGTERM those the engine stopped without answering (still queued, or
 * in a batch that did not resolve in time) get an answer from tallyd, so no
 * user is left with silence. An open-addressing table with linear probing
 * and backward-shift deletion, of twice slot_effects_max places at most,
 * grown from a small start as commands are in flight (the busy bound keeps
 * it under three quarters full). */
#include "tallyd.h"

#include <stdlib.h>
#include <string.h>

typedef struct td_pending {
  uint64_t req_id;
  uint32_t count; /* 0: empty; a req_id reused while pending counts twice */
  char origin[TD_KEPT_NAME_BYTES_MAX + 1];  /* "" when longer: not answered at stop */
  char channel[TD_KEPT_NAME_BYTES_MAX + 1];
} td_pending;

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

static int insert(td_slot *s, uint64_t req_id, const char *origin, const char *channel, uint32_t count);

/* Doubles the table (rehashing): it starts small and grows with what is in
 * flight, so a slot with a big bound (a bench's queue_depth) touches only
 * what it uses. */
static int grow(td_slot *s, uint32_t cap) {
  td_pending *old = s->pend;
  uint32_t old_cap = s->pend_cap;
  s->pend = calloc(cap, sizeof *s->pend);
  if (!s->pend) {
    s->pend = old;
    return TALLY_ENOMEM;
  }
  s->pend_cap = cap;
  s->pend_count = 0;
  for (uint32_t i = 0; old && i < old_cap; i++)
    if (old[i].count) insert(s, old[i].req_id, old[i].origin, old[i].channel, old[i].count);
  free(old);
  return TALLY_OK;
}

static int insert(td_slot *s, uint64_t req_id, const char *origin, const char *channel, uint32_t count) {
  for (uint32_t i = slot_of(s, req_id);; i = (i + 1) & (s->pend_cap - 1)) {
    td_pending *p = &s->pend[i];
    if (p->count && p->req_id != req_id) continue;
    if (!p->count) {
      p->req_id = req_id;
      /* A name too long to keep is not cut (an answer to half a JID would
       * go astray): the entry still counts for the busy bound, and at stop
       * its command is logged as unanswered instead. */
      size_t on = strnlen(origin, TD_KEPT_NAME_BYTES_MAX + 1), cn = strnlen(channel, TD_KEPT_NAME_BYTES_MAX + 1);
      int fits = on <= TD_KEPT_NAME_BYTES_MAX && cn <= TD_KEPT_NAME_BYTES_MAX;
      if (!fits) on = cn = 0;
      memcpy(p->origin, origin, on); /* per command: no printf */
      p->origin[on] = 0;
      memcpy(p->channel, channel, cn);
      p->channel[cn] = 0;
      s->pend_count++;
    }
    p->count += count;
    return TALLY_OK;
  }
}

int td_pending_add(td_daemon *d, td_slot *s, uint64_t req_id, const char *origin, const char *channel) {
  uint32_t max = cap_max(d);
  if (!s->pend && grow(s, PENDING_CAP_FIRST < max ? PENDING_CAP_FIRST : max) != TALLY_OK) return TALLY_ENOMEM;
  if (s->pend_count + 1 >= s->pend_cap / 2 + s->pend_cap / 4) {
    if (s->pend_cap >= max) return TALLY_EBUSY;
    if (grow(s, s->pend_cap * 2) != TALLY_OK) return TALLY_ENOMEM;
  }
  return insert(s, req_id, origin, channel, 1);
}

void td_pending_done(td_slot *s, uint64_t req_id) {
  if (!s->pend || !s->pend_count) return;
  uint32_t mask = s->pend_cap - 1, i = slot_of(s, req_id);
  while (s->pend[i].count && s->pend[i].req_id != req_id) i = (i + 1) & mask;
  if (!s->pend[i].count) return;
  if (--s->pend[i].count) return;
  s->pend_count--;
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
    tally_effect e = {.size = sizeof e, .version = TALLY_EFFECT_VERSION, .kind = TALLY_EFFECT_REPLY, .code = code,
                      .req_id = p->req_id, .origin = p->origin, .channel = p->channel, .text = text,
                      .network = s->network, .args = ""};
    p->count = 0;
    if (!p->origin[0]) { /* its name was too long to keep: the caller logs it */
      unanswerable++;
      continue;
    }
    td_slot_push(d, s, &e, p->origin);
  }
  s->pend_count = 0;
  return unanswerable;
}

void td_pending_free(td_slot *s) {
  free(s->pend);
  s->pend = NULL;
  s->pend_cap = s->pend_count = 0;
}
