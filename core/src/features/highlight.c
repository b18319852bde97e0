/* highlight.c — paid highlights and reactions (highlight.h). */
#include "text.h"
#include "highlight.h"

#include <stddef.h>
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "decide.h"
#include "live.h"

enum {
  HL_FREE = TALLY__HL_FREE,
  HL_QUEUED = TALLY__HL_QUEUED,
  HL_SHOWING = TALLY__HL_SHOWING,
  HL_REFUND = TALLY__HL_REFUND,
  HL_SHOWN = TALLY__HL_SHOWN,
  HL_RESERVED = TALLY__HL_RESERVED,
};

void tally__highlight_sku(uint64_t event_id, const char *name, char sku[TALLY__SKU_BYTES_MAX + 1]) {
  if (name) snprintf(sku, TALLY__SKU_BYTES_MAX + 1, "hl-%llu-%s", (unsigned long long)event_id, name);
  else snprintf(sku, TALLY__SKU_BYTES_MAX + 1, "react-%llu", (unsigned long long)event_id);
}

bool tally__highlight_sku_reserved(const char *sku, size_t n) {
  return (n >= 3 && memcmp(sku, "hl-", 3) == 0) || (n >= 6 && memcmp(sku, "react-", 6) == 0);
}

bool tally__highlight_item_is(const tally__state *st, uint32_t i, uint64_t event_id, const char *name) {
  const tally__item *it = &st->items[i];
  return it->kind == (name ? TALLY__KIND_HIGHLIGHT : TALLY__KIND_REACTION) && it->drop_event == event_id &&
         it->drop_state == TALLY__DROP_NONE;
}

uint32_t tally__highlight_item(const tally__state *st, uint64_t event_id, const char *name) {
  char sku[TALLY__SKU_BYTES_MAX + 1];
  tally__highlight_sku(event_id, name, sku);
  uint32_t i = tally__item_find(st, sku);
  /* Only the event's own item of that kind: an item that merely has the
   * name (made before the prefix was reserved) would pay its creator. */
  if (i == TALLY__NONE || st->items[i].deleted || !tally__highlight_item_is(st, i, event_id, name)) return TALLY__NONE;
  return i;
}

/* The slot its purchase reserved, else (after a restart) a free one. */
static tally__highlight *slot_for(tally__state *st, uint64_t transfer_id) {
  tally__highlight *free_slot = NULL;
  for (uint32_t i = 0; i < TALLY__HIGHLIGHTS_SLOTS; i++) {
    tally__highlight *h = &st->highlights[i];
    if (h->state == HL_RESERVED && h->transfer_id == transfer_id) return h;
    if (h->state == HL_FREE && !free_slot) free_slot = h;
  }
  return free_slot;
}

void tally__highlight_queue(tally__engine *e, uint64_t transfer_id, uint32_t buyer, uint32_t item,
                            const char *origin, const char *text) {
  tally__state *st = &e->st;
  tally__highlight *free_slot = slot_for(st, transfer_id);
  if (!free_slot) {
    /* Only a ledger holding more than the table (written before slots
     * were reserved at decision) gets here: it waits for a later start. */
    fprintf(stderr, "tally: highlight %llu: no queue slot free; not shown now (refunded or shown after a restart)\n",
            (unsigned long long)transfer_id);
    return;
  }
  memset(free_slot, 0, sizeof *free_slot);
  free_slot->transfer_id = transfer_id;
  free_slot->buyer = buyer;
  free_slot->item = item;
  free_slot->state = HL_QUEUED;
  tally__text_clip(free_slot->origin, sizeof free_slot->origin, origin);
  free_slot->net = st->accounts[buyer].net; /* its purchase's, when known (tally__highlights_committed) */
  tally__text_clip(free_slot->text, sizeof free_slot->text, text);
  /* Bought as the event ended: it can no longer be shown. */
  uint32_t ev = tally__live_event_find(st, st->items[item].drop_event);
  if (ev == TALLY__NONE || st->events[ev].stopped_ms) free_slot->state = HL_REFUND;
}

/* An emote into the event's counters of this minute. */
static void reaction_count(tally__state *st, const tally__op *op) {
  uint32_t ev = tally__live_event_find(st, op->event_id);
  if (ev == TALLY__NONE) return;
  tally__event *E = &st->events[ev];
  for (int k = 0; k < TALLY__REACTION_KINDS; k++) {
    if (E->reaction[k][0] && strcmp(E->reaction[k], op->note) != 0) continue;
    if (!E->reactions_until_mono) E->reactions_until_mono = op->decided_mono_ms + TALLY__REACTIONS_WINDOW_MS;
    if (!E->reaction[k][0]) {
      size_t n = strnlen(op->note, TALLY__EMOTE_BYTES_MAX); /* REACT checked it fits */
      memcpy(E->reaction[k], op->note, n);
      E->reaction[k][n] = 0;
    }
    E->reaction_count[k] += op->qty;
    return;
  }
  E->reaction_count[TALLY__REACTION_KINDS - 1] += op->qty; /* more kinds than shown: the last counts them */
}

void tally__highlights_committed(tally__engine *e, const tally__op *op) {
  if (op->kind != TALLY__TRANSFER_PURCHASE) return;
  const tally__item *it = &e->st.items[op->item];
  if (it->kind == TALLY__KIND_REACTION) reaction_count(&e->st, op);
  if (it->kind == TALLY__KIND_HIGHLIGHT) {
    tally__highlight_queue(e, op->transfer_id, op->account, op->item, tally__origin_str(&e->st, op->origin), op->note);
    for (uint32_t i = 0; i < TALLY__HIGHLIGHTS_SLOTS; i++) /* answers go where the buyer asked */
      if (e->st.highlights[i].state != HL_FREE && e->st.highlights[i].transfer_id == op->transfer_id)
        e->st.highlights[i].net = op->net;
  }
}

static const char *channel_of(const tally__state *st, const tally__highlight *h) {
  return st->items[h->item].drop_channel;
}
static uint16_t net_of(const tally__state *st, const tally__highlight *h) { return st->items[h->item].drop_net; }

/* Is a highlight of h's event showing? A channel runs one event at a time
 * and a stopped event's highlights are unpinned or refunded, so "same
 * event" is "same channel", compared as an integer: the pick below asks
 * this for every queued slot on every tick. */
static bool channel_busy(const tally__state *st, const tally__highlight *h) {
  uint64_t event = st->items[h->item].drop_event;
  for (uint32_t i = 0; i < TALLY__HIGHLIGHTS_SLOTS; i++)
    if (st->highlights[i].state == HL_SHOWING && st->items[st->highlights[i].item].drop_event == event) return true;
  return false;
}

/* Shows h: a channel line, or (highlight_topic) the channel's topic. */
static void say(tally__engine *e, const tally__highlight *h, bool first) {
  const tally__state *st = &e->st;
  tally__say say;
  tally__say_init(&say, TALLY_MSG_HIGHLIGHT);
  tally__sayf(&say, "at", "HIGHLIGHT from %s: %s", tally__account_label(st, h->buyer), h->text);
  if (!e->cfg.highlight_topic) tally__announce_say_in(e, net_of(st, h), channel_of(st, h), &say);
  else if (first) tally__emit_say_in(e, net_of(st, h), TALLY_EFFECT_TOPIC, TALLY_OK, 0, 0, "", channel_of(st, h), &say);
}

/* A highlight stops showing: in topic mode the channel's topic comes back. */
static void unpin(tally__engine *e, tally__highlight *h) {
  h->state = HL_SHOWN;
  if (e->cfg.highlight_topic)
    tally__emit_in(e, net_of(&e->st, h), TALLY_EFFECT_TOPIC, TALLY_OK, 0, 0, "", channel_of(&e->st, h), "");
}

/* The engine refunds a highlight it could not show: TALLY_OK when decided,
 * TALLY_EBUSY (no batch room: next tick), TALLY_ENO_FUNDS (the payee
 * spent it: retried), or why it cannot be refunded at all. */
static int refund(tally__engine *e, tally__highlight *h) {
  tally__state *st = &e->st;
  tally__batch *b = tally__engine_open_batch(e);
  if (!b) return TALLY_EBUSY;
  tally__op *op = tally__batch_append(b);
  char key[TALLY__KEY_BYTES_MAX + 1];
  snprintf(key, sizeof key, "hl-refund:%llu", (unsigned long long)h->transfer_id);
  uint64_t existing = 0;
  tally__decide_ctx ctx = {.wall_ms = tally__now_wall_ms(e), .mono_ms = tally__now_mono_ms(e), .origin = h->origin,
                           .channel = "", .key = key, .existing_transfer = &existing, .by_engine = true,
                           .net = h->net};
  int rc = tally__decide_refund(st, &ctx, h->buyer, h->transfer_id, 0, op);
  if (rc != TALLY_OK) {
    b->op_count--;
    return rc;
  }
  tally__engine_pending_add(e, op);
  if (h->origin[0])
    tally__emit_in(e, h->net, TALLY_EFFECT_REPLY, TALLY_OK, 0, 0, h->origin, "",
                "Your highlight could not be shown before the event ended: it is being refunded.");
  return TALLY_OK;
}

/* A fully shown highlight is recorded (a redemption row): no refund after. */
static int record_shown(tally__engine *e, tally__highlight *h) {
  tally__state *st = &e->st;
  uint32_t slot = tally__purchase_find(st, h->transfer_id);
  if (slot == TALLY__NONE) return TALLY_OK;
  tally__op *op = tally__engine_record_op(e, TALLY__OP_REDEEM, h->buyer, h->item);
  if (!op) return TALLY_EBUSY;
  op->ref_transfer = h->transfer_id;
  op->purchase_slot = slot;
  st->purchases[slot].redeem_held = true;
  return TALLY_OK;
}

/* The minute's reactions of event i, aggregated in one line. */
void tally__reactions_flush(tally__engine *e, uint32_t i) {
  tally__state *st = &e->st;
  {
    tally__event *E = &st->events[i];
    E->reactions_until_mono = 0;
    char text[TALLY_TEXT_BYTES_MAX / 2];
    size_t n = 0;
    for (int k = 0; k < TALLY__REACTION_KINDS && E->reaction[k][0]; k++) {
      int w = snprintf(text + n, sizeof text - n, "%s%u %s", n ? ", " : "", E->reaction_count[k], E->reaction[k]);
      if (w > 0 && (size_t)w < sizeof text - n) n += (size_t)w;
    }
    if (n) tally__announce_in(e, E->net, E->channel, "Reactions in the last minute: %s", text);
    memset(E->reaction_count, 0, sizeof E->reaction_count);
    memset(E->reaction, 0, sizeof E->reaction);
  }
}

static void reactions_say(tally__engine *e, uint64_t now) {
  tally__state *st = &e->st;
  for (uint32_t i = 0; i < st->event_count; i++)
    if (st->events[i].reactions_until_mono && now >= st->events[i].reactions_until_mono) tally__reactions_flush(e, i);
}

uint32_t tally__highlights_used(const tally__state *st) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < TALLY__HIGHLIGHTS_SLOTS; i++) n += st->highlights[i].state != HL_FREE;
  return n;
}

/* A slot to refund: tried every tick while there is no batch room, every
 * TALLY__HL_REFUND_RETRY_MS while the payee lacks the credits, for at most
 * highlight_refund_wait seconds; then the slot is freed (logged) so it
 * cannot hold the table for good. The purchase stays unrefunded in the
 * ledger, and the next start queues it for refunding again. */
static void refund_step(tally__engine *e, tally__highlight *h, uint64_t now) {
  if (now < h->refund_retry_mono) return;
  int rc = refund(e, h);
  if (rc == TALLY_EBUSY) return;
  if (rc == TALLY_ENO_FUNDS) {
    if (!h->refund_give_up_mono) h->refund_give_up_mono = now + (uint64_t)e->cfg.highlight_refund_wait_s * 1000;
    h->refund_retry_mono = now + TALLY__HL_REFUND_RETRY_MS;
    if (now < h->refund_give_up_mono) return;
    fprintf(stderr, "tally: highlight %llu: refund not paid after %u s (its payee lacks the credits); "
            "queue slot freed, retried at the next start\n", (unsigned long long)h->transfer_id,
            e->cfg.highlight_refund_wait_s);
    if (h->origin[0])
      tally__emit_in(e, h->net, TALLY_EFFECT_REPLY, TALLY_ENO_FUNDS, 0, 0, h->origin, "",
                  "Your highlight could not be shown, and its refund cannot be paid yet (the host lacks the "
                  "credits); an operator has been told.");
  } else if (rc != TALLY_OK && rc != TALLY_EEXISTS) {
    fprintf(stderr, "tally: highlight %llu: not refunded (%s); queue slot freed\n",
            (unsigned long long)h->transfer_id, tally_strerror(rc));
  }
  h->state = HL_FREE;
}

void tally__highlights_tick(tally__engine *e, uint64_t now) {
  tally__state *st = &e->st;
  reactions_say(e, now);
  for (uint32_t i = 0; i < TALLY__HIGHLIGHTS_SLOTS; i++) {
    tally__highlight *h = &st->highlights[i];
    if (h->state == HL_REFUND) refund_step(e, h, now);
    if (h->state == HL_SHOWN && record_shown(e, h) == TALLY_OK) h->state = HL_FREE;
    if (h->state == HL_SHOWING && now >= h->until_mono) unpin(e, h);
    if (h->state == HL_SHOWING && now >= h->next_say_mono) {
      say(e, h, false);
      h->next_say_mono = now + (uint64_t)e->cfg.highlight_repeat_s * 1000;
    }
  }
  /* Next in line, per channel, in commit order (slots fill in that order
   * only until one frees: so pick the lowest transfer id). */
  for (;;) {
    tally__highlight *next = NULL;
    for (uint32_t i = 0; i < TALLY__HIGHLIGHTS_SLOTS; i++) {
      tally__highlight *h = &st->highlights[i];
      if (h->state != HL_QUEUED || channel_busy(st, h)) continue;
      if (!next || h->transfer_id < next->transfer_id) next = h;
    }
    if (!next) return;
    next->state = HL_SHOWING;
    next->until_mono = now + (uint64_t)st->items[next->item].show_s * 1000;
    next->next_say_mono = now + (uint64_t)e->cfg.highlight_repeat_s * 1000;
    say(e, next, true);
  }
}

void tally__highlights_event_stopped(tally__engine *e, uint64_t event_id) {
  tally__state *st = &e->st;
  for (uint32_t i = 0; i < TALLY__HIGHLIGHTS_SLOTS; i++) {
    tally__highlight *h = &st->highlights[i];
    if (st->items[h->item].drop_event != event_id) continue;
    if (h->state == HL_QUEUED) h->state = HL_REFUND;
    else if (h->state == HL_SHOWING) unpin(e, h); /* it was shown; it ends with its event */
  }
}

bool tally__highlight_remove(tally__engine *e, uint16_t net, const char *channel) {
  tally__state *st = &e->st;
  for (uint32_t i = 0; i < TALLY__HIGHLIGHTS_SLOTS; i++) {
    tally__highlight *h = &st->highlights[i];
    if (h->state == HL_SHOWING && net_of(st, h) == net && strcmp(channel_of(st, h), channel) == 0) {
      unpin(e, h); /* paid and shown: removing it moves no money */
      return true;
    }
  }
  return false;
}

/* ---- the feature's config keys (config.h; runtime.c registers them) ------- */
static const tally__config_key config_keys[] = {
    {"highlight_repeat", TALLY__CFG_U32, offsetof(tally_config, highlight_repeat_s), "30", 5, 3600,
     "seconds between repeats of a pinned paid highlight in its channel"},
    {"highlight_topic", TALLY__CFG_U32, offsetof(tally_config, highlight_topic), "0", 0, 1,
     "1: a paid highlight is pinned as the channel topic (restored after) instead of repeated"},
    {"highlights_per_channel", TALLY__CFG_U32, offsetof(tally_config, highlights_per_channel), "64", 1, 256,
     "paid highlights queued or showing in one channel (256 for all channels together); "
     "beyond it HIGHLIGHT is refused before payment"},
    {"highlights_per_account", TALLY__CFG_U32, offsetof(tally_config, highlights_per_account), "8", 1, 256,
     "paid highlights queued or showing bought by one account"},
    {"highlight_refund_wait", TALLY__CFG_U32, offsetof(tally_config, highlight_refund_wait_s), "600", 1, 86400,
     "seconds the engine retries refunding an unshown highlight whose payee lacks the credits; "
     "then its queue slot is freed (logged; retried at the next start)"},
};
const tally__config_keys tally__highlight_config_keys = TALLY__CONFIG_KEYS(config_keys);
