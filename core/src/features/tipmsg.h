/* tipmsg.h — tip messages held for moderators before the channel sees them.
 *
 * Contract: IRC cannot take back a line once it is said, so a moderator can
 * only remove a tip's message before it is said. With tip_message_hold_s >
 * 0, a tip with a message said in a channel is thanked at once without
 * the message; the message goes to the channel's moderators only
 * (TALLY_EFFECT_MODERATORS) and to the channel when the hold is over,
 * unless a moderator said `HIDE <receipt>` in that channel first. The money
 * moves either way: the tip committed before any of this.
 *
 * Durable: the tip's batch writes a held_messages row (its channel, when
 * it shows) and HIDE writes a hidden_messages row, answered once committed.
 * After a restart, messages whose time had not come, or came at most
 * TALLY__HELD_REPLAY_MS before, wait again unless hidden: one shown just
 * before a crash may be said twice, a hidden one never is. At most
 * TALLY__HELD_TIPS_MAX wait at once (counting tips in flight), at most
 * held_tips_per_channel in one channel and held_tips_per_account from one
 * tipper: beyond that a TIP with a message is refused before any charge
 * (fails closed: never said without moderation). */
#ifndef TALLY_TIPMSG_H
#define TALLY_TIPMSG_H

#include "config.h"
#include "engine_internal.h"

enum {
  TALLY__HELD_REPLAY_MS = 60000, /* after a restart, due this recently: wait again */
  TALLY__HELD_TIPS_MAX = 256,    /* tip messages waiting for moderators, all channels */
  TALLY__FDATA_TIPS = 7,         /* index in e->feature_data (the last: new features count up from 2) */
};

/* A tip's message shown to the channel's moderators first (tipmsg.c). */
enum tally__held_state {
  TALLY__HELD_FREE = 0,
  TALLY__HELD_RESERVED = 4, /* its tip is in flight (a slot taken at decision) */
  TALLY__HELD_WAITING = 1, /* shown to the channel when due */
  TALLY__HELD_HIDING = 2,  /* a HIDE is in flight */
  TALLY__HELD_HIDDEN = 3,  /* never shown; the slot frees when its hold would have ended */
};
typedef struct tally__held_tip {
  uint64_t transfer_id;
  uint64_t due_mono;
  uint32_t tipper, recipient;
  int64_t amount;
  uint8_t state; /* enum tally__held_state */
  uint16_t net;  /* the network of channel */
  char channel[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  char text[TALLY_TEXT_BYTES_MAX / 2];
} tally__held_tip;

/* The feature's own state (e->feature_data[TALLY__FDATA_TIPS]): allocated
 * zeroed with the engine and zeroed again before each start's restore
 * (runtime.c's entry gives its size), freed with the engine. */
typedef struct tally__tips {
  tally__held_tip held[TALLY__HELD_TIPS_MAX];
} tally__tips;
tally__tips *tally__tips_of(tally__engine *e);

/* TIP committed: thanks said in its channel, and its message held or said.
 * `amount` is the formatted amount. */
void tally__tip_thanks(tally__engine *e, const tally__op *op, const char *amount);
/* Says the messages whose hold is over; frees hidden slots. */
void tally__tip_messages_tick(tally__engine *e, uint64_t now_mono);
/* The held message of tip transfer_id (in channel; any channel when NULL),
 * or NULL. HIDE (commands/cmd_hide.c) checks and marks its state. */
tally__held_tip *tally__tip_held_find(tally__engine *e, uint64_t transfer_id, uint16_t net, const char *channel);
/* A HIDE op committed (ok) or failed. */
void tally__tip_hide_settled(tally__engine *e, const tally__op *op, bool ok);
/* Room for one more held tip message (tip_message_hold) from tipper in
 * channel: TALLY_OK, TALLY_EBUSY (the table or the channel's share is
 * full) or TALLY_ETOO_MANY (the tipper's share). */
int tally__held_tip_room(tally__engine *e, uint32_t tipper, uint16_t net, const char *channel);
/* A slot for the decided tip op's message, taken from decision to commit
 * (filled by tally__tip_message_queue, given back by tally__tip_settled);
 * false when tally__held_tip_room says no (cmd_money.c asked it first
 * and refused the TIP). So a tip whose held_messages row is written always
 * finds its slot, and a message is never said unmoderated. */
bool tally__tip_message_reserve(tally__engine *e, const tally__op *op);
/* A transfer settled (hooks.h): a tip that did not commit as ours gives
 * back the slot it reserved. One that committed has queued its message
 * already (tally__tip_thanks, on `tipped`), so a slot still reserved is
 * one to free whatever the outcome (also "already done earlier"). */
void tally__tip_settled(tally__engine *e, const tally__op *op, int outcome);
/* Queues a committed tip's message (also after a restart); false when no
 * slot is free. */
bool tally__tip_message_queue(tally__engine *e, uint64_t transfer_id, uint32_t tipper,
                              uint32_t recipient, int64_t amount, uint16_t net, const char *channel,
                              const char *text, uint64_t due_mono);

/* Its config keys (tip messages held for moderators), registered by runtime.c. */
extern const tally__config_keys tally__tip_config_keys;

#endif
