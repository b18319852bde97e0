/* cmd_hide.c — HIDE <receipt>: a moderator keeps a held tip message
 * (features/tipmsg.c, contract in tipmsg.h) from being said in the channel.
 * The command lives here, with the command helpers it uses; the queue of
 * held messages and the HIDE op's settlement stay in tipmsg.c. */
#include <stdio.h>

#include "command_rows.h"
#include "commands.h"
#include "tipmsg.h"

void tally__cmd_hide(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "HIDE", TALLY__NA);
  uint64_t receipt;
  if (c->t.count != 2 || tally__uint_parse(c->t.word[1], c->t.len[1], UINT64_MAX / 10, &receipt)) {
    tally__cmd_usage(c, "HIDE <tip receipt> (moderators, in the tip's channel)");
    return;
  }
  if (!c->cmd->channel[0]) {
    tally__reply(c->e, c->cmd, TALLY_ENOT_IN_CHANNEL, 0, "%s: say HIDE in the channel where the tip was thanked",
                 tally_strerror(TALLY_ENOT_IN_CHANNEL));
    return;
  }
  tally__held_tip *h = tally__tip_held_find(c->e, receipt, c->net, c->cmd->channel);
  if (h && h->state == TALLY__HELD_RESERVED) h = NULL; /* its tip is not committed yet */
  if (h && h->state != TALLY__HELD_WAITING) {
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "The message of tip %llu is already hidden.", (unsigned long long)receipt);
    return;
  }
  if (!h) {
    tally__reply_hint(c->e, c->cmd, TALLY_ENOT_HELD, TALLY_HINT_ALREADY_SAID, "%s",
                      tally_strerror(TALLY_ENOT_HELD));
    return;
  }
  tally__op *op = tally__cmd_record_op(c, TALLY__OP_HIDE);
  if (!op) return;
  op->ref_transfer = receipt;
  snprintf(op->note, sizeof op->note, "The message of tip %llu is hidden; the tip stands.",
           (unsigned long long)receipt);
  h->state = TALLY__HELD_HIDING; /* not said while the HIDE is in flight */
}

/* ---- the feature's command words (command_rows.h; runtime.c registers them) -- */
static const tally__role_row hide_roles[] = {TALLY__ROLE_ROW("", 0, MODERATORS, OPEN)};
static const tally__command_row tip_rows[] = {
    {"HIDE", tally__cmd_hide, TALLY__NA, TALLY_COMMAND_GROUP_HOSTS,
     "<tip receipt>",
     "hide a tip's message (moderators, in its channel)",
     hide_roles, sizeof hide_roles / sizeof hide_roles[0]},
};
const tally__command_rows tally__tip_commands = TALLY__ROWS(tip_rows);
