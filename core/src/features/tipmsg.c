/* tipmsg.c — tip messages held for moderators (contract in tipmsg.h). */
#include "tipmsg.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>


static const char *who(const tally__state *st, uint32_t account) {
  return tally__account_label(st, account); /* past "user:" */
}

tally__tips *tally__tips_of(tally__engine *e) {
  assert(e->feature_data[TALLY__FDATA_TIPS]); /* allocated with the engine (runtime.c's entry) */
  return e->feature_data[TALLY__FDATA_TIPS];
}

static tally__held_tip *held_find(tally__tips *t, uint64_t transfer_id, uint16_t net, const char *channel) {
  for (uint32_t i = 0; i < TALLY__HELD_TIPS_MAX; i++) {
    tally__held_tip *h = &t->held[i];
    if (h->state != TALLY__HELD_FREE && h->transfer_id == transfer_id &&
        (!channel || (h->net == net && strcmp(h->channel, channel) == 0)))
      return h;
  }
  return NULL;
}

tally__held_tip *tally__tip_held_find(tally__engine *e, uint64_t transfer_id, uint16_t net, const char *channel) {
  return held_find(tally__tips_of(e), transfer_id, net, channel);
}

int tally__held_tip_room(tally__engine *e, uint32_t tipper, uint16_t net, const char *channel) {
  const tally__tips *t = tally__tips_of(e);
  uint32_t used = 0, in_channel = 0, by_tipper = 0;
  for (uint32_t i = 0; i < TALLY__HELD_TIPS_MAX; i++) {
    const tally__held_tip *h = &t->held[i];
    if (h->state == TALLY__HELD_FREE) continue;
    used++;
    in_channel += h->net == net && strcmp(h->channel, channel) == 0;
    by_tipper += h->tipper == tipper;
  }
  if (by_tipper >= e->cfg.held_tips_per_account) return TALLY_ETOO_MANY;
  if (used >= TALLY__HELD_TIPS_MAX || in_channel >= e->cfg.held_tips_per_channel) return TALLY_EBUSY;
  return TALLY_OK;
}

void tally__tip_settled(tally__engine *e, const tally__op *op, int outcome) {
  (void)outcome;
  if (!op->held_message) return;
  tally__tips *t = tally__tips_of(e);
  for (uint32_t i = 0; i < TALLY__HELD_TIPS_MAX; i++)
    if (t->held[i].state == TALLY__HELD_RESERVED && t->held[i].transfer_id == op->transfer_id)
      t->held[i].state = TALLY__HELD_FREE;
}

static void say_message(tally__engine *e, const tally__held_tip *h) {
  char amount[48];
  tally__format_amount(e, h->amount, amount, sizeof amount);
  tally__say say;
  tally__say_init(&say, TALLY_MSG_TIP_MESSAGE);
  tally__sayf(&say, "amat", "%s's message with the tip of %s to %s: %s", who(&e->st, h->tipper), amount,
              who(&e->st, h->recipient), h->text);
  tally__say_value(&say, 1, h->amount, TALLY__DECIMALS(e));
  tally__announce_say_in(e, e->st.accounts[h->tipper].net, h->channel, &say);
}

bool tally__tip_message_reserve(tally__engine *e, const tally__op *op) {
  if (tally__held_tip_room(e, op->account, op->net, op->channel) != TALLY_OK) return false;
  tally__tips *t = tally__tips_of(e);
  for (uint32_t i = 0; i < TALLY__HELD_TIPS_MAX; i++) {
    tally__held_tip *h = &t->held[i];
    if (h->state != TALLY__HELD_FREE) continue;
    memset(h, 0, sizeof *h);
    h->state = TALLY__HELD_RESERVED; /* counted in the shares from now on */
    h->transfer_id = op->transfer_id;
    h->tipper = op->account;
    h->net = op->net;
    snprintf(h->channel, sizeof h->channel, "%s", op->channel);
    return true;
  }
  return false;
}

bool tally__tip_message_queue(tally__engine *e, uint64_t transfer_id, uint32_t tipper,
                              uint32_t recipient, int64_t amount, uint16_t net, const char *channel,
                              const char *text, uint64_t due_mono) {
  tally__tips *t = tally__tips_of(e);
  /* Its reserved slot (a tip just committed), else a free one (a restart). */
  tally__held_tip *h = held_find(t, transfer_id, 0, NULL);
  if (h && h->state != TALLY__HELD_RESERVED) return true; /* already waiting */
  for (uint32_t i = 0; i < TALLY__HELD_TIPS_MAX && !h; i++)
    if (t->held[i].state == TALLY__HELD_FREE) h = &t->held[i];
  if (!h) return false;
  memset(h, 0, sizeof *h);
  h->transfer_id = transfer_id;
  h->due_mono = due_mono;
  h->tipper = tipper;
  h->recipient = recipient;
  h->amount = amount;
  h->state = TALLY__HELD_WAITING;
  h->net = net;
  snprintf(h->channel, sizeof h->channel, "%s", channel);
  snprintf(h->text, sizeof h->text, "%s", text);
  return true;
}

/* The moderators' line was formatted into TALLY_TEXT_BYTES_MAX bytes (one
 * fewer than a reply): cut the same, so the text stays what it was. */
static void held_clip(tally__say *say) {
  if (say->len < TALLY_TEXT_BYTES_MAX - 1) return;
  say->len = TALLY_TEXT_BYTES_MAX - 1;
  say->text[say->len] = 0;
  say->msg = TALLY_MSG_TEXT;
  say->count = 0;
}

void tally__tip_thanks(tally__engine *e, const tally__op *op, const char *amount) {
  const tally__state *st = &e->st;
  const char *tipper = who(st, op->account), *to = who(st, op->counterparty);
  uint32_t hold_s = e->cfg.tip_message_hold_s;
  if (op->held_message && op->note[0]) {
    uint64_t due = tally__now_mono_ms(e) + (uint64_t)hold_s * 1000;
    if (tally__tip_message_queue(e, op->transfer_id, op->account, op->counterparty, op->amount, op->net, op->channel,
                                 op->note, due)) {
      tally__say say;
      tally__say_init(&say, TALLY_MSG_TIP_THANKS_HELD);
      tally__sayf(&say, "aam-", "Thank you %s for tipping %s %s! Their message follows in %u s.", tipper, to,
                  amount, hold_s);
      tally__say_value(&say, 2, op->amount, TALLY__DECIMALS(e));
      tally__announce_say_in(e, op->net, op->channel, &say);
      /* (TALLY_TEXT_BYTES_MAX - 1 bytes at most, as before) */
      tally__say_init(&say, TALLY_MSG_TIP_HELD);
      tally__sayf(&say, "Raat-R", "Tip %llu from %s to %s says: %s -- shown here in %u s unless a moderator says HIDE %llu",
                  (unsigned long long)op->transfer_id, tipper, to, op->note, hold_s,
                  (unsigned long long)op->transfer_id);
      held_clip(&say);
      tally__emit_say_in(e, op->net, TALLY_EFFECT_MODERATORS, TALLY_OK, 0, op->transfer_id, "", op->channel, &say);
      return;
    }
    /* Its slot was reserved at decision, so this is not reached; were it,
     * the message stays unsaid rather than unmoderated. */
    fprintf(stderr, "tally: tip %llu: no slot for its held message; not said\n", (unsigned long long)op->transfer_id);
    tally__announce_in(e, op->net, op->channel, "Thank you %s for tipping %s %s!", tipper, to, amount);
    return;
  }
  tally__say say;
  tally__say_init(&say, TALLY_MSG_TIP_THANKS);
  tally__sayf(&say, "aam", "Thank you %s for tipping %s %s", tipper, to, amount);
  tally__say_value(&say, 2, op->amount, TALLY__DECIMALS(e));
  if (op->note[0]) tally__sayf(&say, "t", ": %s", op->note);
  tally__announce_say_in(e, op->net, op->channel, &say);
}

void tally__tip_messages_tick(tally__engine *e, uint64_t now_mono) {
  tally__tips *t = tally__tips_of(e);
  for (uint32_t i = 0; i < TALLY__HELD_TIPS_MAX; i++) {
    tally__held_tip *h = &t->held[i];
    if (h->state == TALLY__HELD_HIDDEN && now_mono >= h->due_mono) {
      h->state = TALLY__HELD_FREE; /* kept until then: a second HIDE hears "already hidden" */
    } else if (h->state == TALLY__HELD_WAITING && now_mono >= h->due_mono) {
      say_message(e, h);
      h->state = TALLY__HELD_FREE;
    }
    /* HIDING waits for its HIDE to settle, however long that takes. */
  }
}

void tally__tip_hide_settled(tally__engine *e, const tally__op *op, bool ok) {
  tally__held_tip *h = held_find(tally__tips_of(e), op->ref_transfer, op->net, op->channel);
  if (!h || h->state != TALLY__HELD_HIDING) return;
  if (!ok) {
    h->state = TALLY__HELD_WAITING; /* not recorded: said when due, as if never hidden */
    return;
  }
  h->state = TALLY__HELD_HIDDEN;
  tally__say say;
  tally__say_init(&say, TALLY_MSG_TIP_HIDDEN);
  tally__sayf(&say, "aRa", "%s hid the message of tip %llu from %s", who(&e->st, op->account),
              (unsigned long long)op->ref_transfer, who(&e->st, h->tipper));
  tally__emit_say_in(e, op->net, TALLY_EFFECT_MODERATORS, TALLY_OK, 0, op->ref_transfer, "", op->channel, &say);
}

/* ---- the feature's config keys (config.h; runtime.c registers them) ------- */
static const tally__config_key config_keys[] = {
    {"tip_message_hold", TALLY__CFG_U32, offsetof(tally_config, tip_message_hold_s), "0", 0, 600,
     "seconds a tip's message is shown to the channel's moderators only (who can HIDE it) before "
     "the channel sees it; 0 = at once"},
    {"held_tips_per_channel", TALLY__CFG_U32, offsetof(tally_config, held_tips_per_channel), "64", 1, 256,
     "tip messages waiting for moderators in one channel (256 for all channels together); "
     "beyond it a TIP with a message is refused before any charge"},
    {"held_tips_per_account", TALLY__CFG_U32, offsetof(tally_config, held_tips_per_account), "8", 1, 256,
     "tip messages waiting for moderators from one account"},
};
const tally__config_keys tally__tip_config_keys = TALLY__CONFIG_KEYS(config_keys);
