/* commands.h — the command handlers and the helpers they share.
 *
 * Contract: a handler answers every command exactly once: a refusal at
 * once, or (for anything that writes) after the batch holding its op
 * commits or fails. Handlers never block and never allocate. */
#ifndef TALLY_COMMANDS_H
#define TALLY_COMMANDS_H

#include <assert.h>
#include <stdarg.h>

#include "command_table.h" /* TALLY__NA, TALLY__PRIV, TALLY__EV for TALLY__CMD_ENTRY */
#include "engine_internal.h"
#include "text.h"

typedef struct tally__cmd {
  tally__engine *e;
  const tally__command_frame *cmd;
  tally__tokens t;
  uint64_t now;  /* monotonic ms */
  int64_t wall;  /* wall-clock ms */
  uint32_t account; /* TALLY__NONE when not logged in */
  uint16_t net;     /* the command's network (st->networks index) */
  uint32_t roles;   /* TALLY_ROLE_*: the adapter's, plus ADMIN for an account of `admins` */
  uint32_t origin;  /* the sender's origin in st->names, referenced while it is handled */
  char key[TALLY__KEY_BYTES_MAX + 1];
  /* The sender's identity (its own account: identity_id, net, label), while
   * `account` is the wallet it uses: the person's once linked (LINK). The
   * same index when not linked; TALLY__NONE when not logged in. */
  uint32_t identity;
  bool use_reward; /* BUY, CONFIRM: an earned reward may apply (BUY ... noreward: no) */
} tally__cmd;

/* At a row handler's entry (issue 10 item 7): what the dispatcher
 * (command.c) established for the row's word and flags, never what the
 * sender wrote. A failure is a dispatch bug (a handler reached by the wrong
 * word, or without the account its row promises). */
#define TALLY__CMD_ENTRY(c, word, flags)                                                                \
  do {                                                                                                  \
    assert((c)->e && (c)->cmd && (c)->t.count >= 1 && tally__word_is(&(c)->t, 0, (word)));             \
    assert(!((flags) & TALLY_COMMAND_NEEDS_ACCOUNT) || ((c)->account < (c)->e->st.account_count &&      \
                                                        (c)->identity < (c)->e->st.account_count));     \
    assert(!((flags) & TALLY_COMMAND_PRIVATE_ONLY) || !(c)->cmd->channel[0]);                           \
  } while (0)

/* The wallet of identity (the command's network, account), created when
 * new (with the demo welcome grant). */
int tally__cmd_account(tally__cmd *c, const char *account, uint32_t *index);
/* The account named by token i in the command's network, never created:
 * TALLY__NONE when there is none. */
uint32_t tally__cmd_named(tally__cmd *c, int token);
/* A token bucket in thousandths of a command: per_min a minute, a burst of
 * per_min / 4 + 5; false when empty. per_min 0 is unlimited. */
bool tally__bucket_take(int64_t *tokens, int64_t *at_ms, uint32_t per_min, uint64_t now);
void tally__cmd_refuse(tally__cmd *c, int code);
void tally__cmd_usage(tally__cmd *c, const char *usage);
/* A fresh op in the open batch, or NULL when every batch slot is busy. */
tally__op *tally__cmd_op_slot(tally__cmd *c);
void tally__cmd_op_unused(tally__cmd *c); /* give back the slot just taken */
void tally__cmd_op_added(tally__cmd *c);  /* count it as pending */
__attribute__((format(printf, 2, 3))) void tally__cmd_ack_after_commit(tally__cmd *c,
                                                                         const char *fmt, ...);
/* A record op (ENTRY, REDEEM, SHIP, HIDE) of the command, counted as
 * pending; NULL when busy (answered). */
tally__op *tally__cmd_record_op(tally__cmd *c, uint8_t type);
int tally__cmd_amount(tally__cmd *c, int token, int64_t *out);
const char *tally__cmd_key(tally__cmd *c, const char *prefix);
void tally__cmd_welcome(tally__cmd *c, uint32_t account);
/* Runs a decision into a fresh op and answers refusals; used by every money
 * command. decide_rc is what the decide function returned. */
void tally__cmd_money_result(tally__cmd *c, int decide_rc, uint64_t existing);

/* "alice:6000,bob:4000" (names of accounts, basis points summing to
 * 10000) into *out; TALLY_EBAD_SYNTAX otherwise, TALLY_EUNKNOWN_ACCOUNT
 * for a payee that is not an account yet (none is created), and
 * TALLY_ENO_PERMISSION for one without the creator role. */
int tally__split_parse(tally__cmd *c, const char *s, size_t n, tally__split *out);

/* Decides a purchase (note: a highlight's text or a reaction's emote; ref:
 * a referral code index or TALLY__NONE) and answers a refusal; returns
 * what decide said. */
int tally__cmd_buy_item(tally__cmd *c, uint32_t item, uint32_t qty, const char *key, const char *note,
                        uint32_t ref);

/* Selling (DROP CREATE, EVENT TIER, EVENT REACT: the proceeds go to the
 * sender) needs the creator role; false: refused (answered). */
bool tally__cmd_may_sell(tally__cmd *c);
/* Room for one more item of the sender (items_max, items_per_creator);
 * false: refused (answered). */
bool tally__cmd_item_room(tally__cmd *c);
/* A new item of the command's creator under sku (after tally__cmd_item_room),
 * its index in *index; false when refused (the refusal is said). */
bool tally__cmd_item_new(tally__cmd *c, const char *sku, uint32_t *index);

/* A FACT op (sql/015) of the command in the open batch, not yet pending
 * (NULL: busy, answered): a feature fills it or refuses (then
 * tally__cmd_op_unused); tally__cmd_fact_added makes it pending, answered
 * with its note once committed (cmd_rewards.c). */
tally__op *tally__cmd_fact_slot(tally__cmd *c);
void tally__cmd_fact_added(tally__cmd *c, tally__op *op);
void tally__cmd_reward(tally__cmd *c);
void tally__cmd_rewards(tally__cmd *c);
void tally__cmd_quiz(tally__cmd *c);
void tally__cmd_answer(tally__cmd *c);
/* GOAL START|STOP and GOAL (cmd_goal.c; features/goals). */
void tally__cmd_goal(tally__cmd *c);
/* CHALLENGE ADD|LIST|DEL (cmd_challenge.c). */
void tally__cmd_challenge(tally__cmd *c);

void tally__cmd_shop(tally__cmd *c);
void tally__cmd_highlight(tally__cmd *c);
void tally__cmd_react(tally__cmd *c);
void tally__cmd_refcode(tally__cmd *c);
/* EVENT TIER / EVENT REACT (cmd_audience.c); the host rights are checked. */
void tally__cmd_event_prices(tally__cmd *c, uint32_t event);
/* TALLY PRIVACY on|off */
void tally__cmd_privacy(tally__cmd *c);
void tally__cmd_buy(tally__cmd *c);
void tally__cmd_confirm(tally__cmd *c);
void tally__cmd_tip(tally__cmd *c);
void tally__cmd_wallet(tally__cmd *c);
void tally__cmd_receipts(tally__cmd *c);
void tally__cmd_refund(tally__cmd *c);
void tally__cmd_verify(tally__cmd *c);
void tally__cmd_item(tally__cmd *c);
void tally__cmd_tally(tally__cmd *c);
void tally__cmd_event(tally__cmd *c);
void tally__cmd_drop(tally__cmd *c);
void tally__cmd_redeem(tally__cmd *c);
void tally__cmd_ship(tally__cmd *c);
void tally__cmd_delivery(tally__cmd *c);
void tally__cmd_orders(tally__cmd *c);
enum { TALLY__ORDERS_SHOWN = 10 };
/* Enters the raffle drop item; TALLY_OK once its ENTRY op is queued. */
int tally__cmd_raffle_enter(tally__cmd *c, uint32_t item);
void tally__cmd_verify_draw(tally__cmd *c);
/* HIDE <receipt>: said in a channel by a moderator (cmd_hide.c). */
void tally__cmd_hide(tally__cmd *c);
/* LINK, LINK <code>, LINK CONFIRM <code>, LINK CANCEL; UNLINK <network:identity> (cmd_link.c). */
void tally__cmd_link(tally__cmd *c);
void tally__cmd_unlink(tally__cmd *c);
/* ROOM, ROOM SET, ROOM MOVE (cmd_room.c; the table in features/rooms). */
void tally__cmd_room(tally__cmd *c);

/* The entry points the kernel calls through its hook table (hooks.h). */
/* command.c */
void tally__command_handle(tally__engine *e, const tally__command_frame *cmd);
/* cmd_info.c: answers a VERIFY the verifier thread checked (ud: the engine). */
void tally__cmd_verify_answer(void *ud, const tally__verify_job *j);
/* cmd_money.c */
void tally__grant_request_apply(tally__engine *e, int64_t request_id, const char *account,
                                int64_t amount);

#endif
