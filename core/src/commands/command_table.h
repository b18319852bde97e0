/* command_table.h — the one table of command words.
 *
 * command.c builds its dispatch table from it (word -> handler, and the
 * needs-an-account check), describe.c builds tally_commands_describe() and
 * the TALLY HELP text from it, so an adapter's command list, the engine's
 * dispatch and the help cannot disagree. A new command is one row here.
 *
 * X(word, handler, flags, group, usage, help):
 *   word     upper case, as typed (the adapter may rename it: cmd_<word>)
 *   handler  void (*)(tally__cmd *), in commands.h
 *   flags    TALLY_COMMAND_* of tally.h
 *   group    TALLY_COMMAND_GROUP_*: who it is for, which TALLY HELP line
 *   usage    the arguments after the word ("" for none)
 *   help     one short line */
#ifndef TALLY_COMMAND_TABLE_H
#define TALLY_COMMAND_TABLE_H

#include "tally.h"

#define TALLY__NA TALLY_COMMAND_NEEDS_ACCOUNT
#define TALLY__PRIV TALLY_COMMAND_PRIVATE_ONLY
#define TALLY__EV TALLY_COMMAND_IN_EVENT

#define TALLY__COMMAND_TABLE(X)                                                                        \
  X(SHOP, tally__cmd_shop, 0, TALLY_COMMAND_GROUP_EVERYONE, "[creator]", "list items")                 \
  X(BUY, tally__cmd_buy, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE, "<sku> [qty] [max=<price>] [ref=<code>] [noreward]", \
    "buy an item")                                                                                     \
  X(CONFIRM, tally__cmd_confirm, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE, "<code> | CONFIRM EXTEND",   \
    "agree to a first purchase or a raised price")                                                     \
  X(TIP, tally__cmd_tip, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE, "<account> <amount> [message]",      \
    "tip an account")                                                                                  \
  X(WALLET, tally__cmd_wallet, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE, "", "your balance")            \
  X(RECEIPTS, tally__cmd_receipts, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE, "", "your recent receipts") \
  X(REFUND, tally__cmd_refund, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE, "<receipt> [amount]",          \
    "refund a purchase")                                                                               \
  X(VERIFY, tally__cmd_verify, 0, TALLY_COMMAND_GROUP_EVERYONE, "<receipt> | VERIFY DRAW <sku>",       \
    "check a receipt's signature, or a raffle's draw")                                                 \
  X(REDEEM, tally__cmd_redeem, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE, "<receipt of a pass>",         \
    "use a pass")                                                                                      \
  X(DELIVERY, tally__cmd_delivery, TALLY__NA | TALLY__PRIV, TALLY_COMMAND_GROUP_EVERYONE,              \
    "<receipt of a digital item>", "get a digital purchase (privately)")                               \
  X(SHIP, tally__cmd_ship, TALLY__NA | TALLY__PRIV, TALLY_COMMAND_GROUP_EVERYONE,                      \
    "<receipt> <shipping address or note>", "where to send merchandise (privately)")                   \
  X(TALLY, tally__cmd_tally, 0, TALLY_COMMAND_GROUP_EVERYONE, "HELP | TALLY PRIVACY on|off",           \
    "this help, and whether event summaries name you")                                                     \
  X(HIGHLIGHT, tally__cmd_highlight, TALLY__NA | TALLY__EV, TALLY_COMMAND_GROUP_EVENT,                 \
    "<tier> <message>", "a paid, pinned message")                                                      \
  X(REACT, tally__cmd_react, TALLY__NA | TALLY__EV, TALLY_COMMAND_GROUP_EVENT, "<emote>",              \
    "a paid reaction")                                                                                 \
  X(ITEM, tally__cmd_item, TALLY__NA, TALLY_COMMAND_GROUP_CREATORS,                                    \
    "ADD <sku> <price> [stock] <title> | ITEM SET <sku> price|stock|title|split|kind|delivery <value> " \
    "| ITEM DEL <sku>", "manage your items")                                                           \
  X(REFCODE, tally__cmd_refcode, TALLY__NA, TALLY_COMMAND_GROUP_CREATORS,                              \
    "ADD <code> <affiliate> <bps> | REFCODE LIST", "referral codes")                                   \
  X(ORDERS, tally__cmd_orders, TALLY__NA, TALLY_COMMAND_GROUP_CREATORS, "", "your sold items to ship") \
  X(EVENT, tally__cmd_event, 0, TALLY_COMMAND_GROUP_HOSTS,                                             \
    "START <minutes> <title> | EVENT STOP | EVENT TIER <name> <price> <seconds> | EVENT REACT <price>", \
    "run a live event in this channel (tiers and reactions need the creator role too)")                \
  X(DROP, tally__cmd_drop, 0, TALLY_COMMAND_GROUP_HOSTS,                                               \
    "CREATE <sku> <qty> <price> [per-user=N] [start=+5m|HH:MM] [for=10m] [mode=first|raffle] "        \
    "[split=a:6000,b:4000] [attendees-only] | DROP START|STOP <sku> | DROP LIST",                      \
    "timed drops in this channel (creating one needs the creator role too)")                           \
  X(HIDE, tally__cmd_hide, TALLY__NA, TALLY_COMMAND_GROUP_HOSTS, "<tip receipt>",                      \
    "hide a tip's message (moderators, in its channel)")                                               \
  X(LINK, tally__cmd_link, TALLY__NA | TALLY__PRIV, TALLY_COMMAND_GROUP_EVERYONE,                      \
    "| LINK <code> | LINK CONFIRM <code> | LINK CANCEL",                                                \
    "one wallet across networks: LINK here gives a code, LINK <code> on your other network claims it, " \
    "LINK CONFIRM here agrees (privately)")                                                            \
  X(UNLINK, tally__cmd_unlink, TALLY__NA | TALLY__PRIV, TALLY_COMMAND_GROUP_EVERYONE,                  \
    "[<network:identity>]", "detach a linked identity (privately; receipts stay with the wallet)")          \
  X(REWARDS, tally__cmd_rewards, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE, "",                          \
    "the rewards you earned (used at your next BUY they fit)")                                         \
  X(ANSWER, tally__cmd_answer, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE, "[room] <text>",               \
    "answer a quiz (privately, or in its room where command lines stay hidden)")                                            \
  X(REWARD, tally__cmd_reward, TALLY__NA, TALLY_COMMAND_GROUP_CREATORS,                                \
    "ADD <name> discount=10%|2.00 [cap=<amount>] [for=10m] [sku=<sku>|all] | REWARD LIST | REWARD DEL <name> " \
    "| REWARD OFFER <name> [room]",                                                                   \
    "discounts on your items that quizzes give")                                                       \
  X(QUIZ, tally__cmd_quiz, TALLY__NA, TALLY_COMMAND_GROUP_HOSTS,                                       \
    "START <seconds> <question> | <answer>[|<answer>...] [winners=N] [reward=<name>] [min-players=3] "  \
    "| QUIZ ROUND <questions> [winners=N] [reward=<name>] [min-players=3] | QUIZ STOP "                \
    "(privately: QUIZ START|ROUND|STOP <room> ...)",                                                  \
    "a quiz or a round of them in this event's room (hosts; the command checks the room's rank); "    \
    "the first right answers, or a round's top scores, win your reward")

/* Who may use which form of a command: the one rule, decided in core. The
 * dispatcher (command.c) checks it before the handler runs, and
 * tally_commands_describe() exports it (tally_command_doc.roles), so an
 * adapter shows what the engine enforces. The adapter only maps its
 * network's ranks to TALLY_ROLE_* bits.
 *
 * S(name, any_of, hint, why): a set of roles, one of which is needed, and
 * how a sender without any is refused ("no permission" + why, with hint). */
#define TALLY__ROLE_SETS(S)                                                                            \
  S(OPEN, 0u, TALLY_HINT_NONE, "")                                                                     \
  S(HOSTS, TALLY_ROLE_HOST | TALLY_ROLE_ADMIN, TALLY_HINT_HOST_ROLE,                                   \
    ": only the channel's hosts run events and drops")                                                 \
  S(MODERATORS, TALLY_ROLE_MODERATOR | TALLY_ROLE_HOST | TALLY_ROLE_ADMIN, TALLY_HINT_NONE, "")        \
  S(ADMINS, TALLY_ROLE_ADMIN, TALLY_HINT_ADMIN_ROLE, ": admins only")                                  \
  S(GRANTERS, TALLY_ROLE_GRANT, TALLY_HINT_GRANT_PRIVILEGE, ": TALLY GRANT needs the grant privilege")

/* R(word, sub, words, needs, also): the form `word sub...` (sub "" is any
 * second word, never the bare word; words 0 or the exact word count) needs
 * a role of set `needs` and then one of set `also`. The first row of a word
 * that matches applies; forms without a row are open. Rows of a word are
 * adjacent. */
#define TALLY__ROLE_TABLE(R)                                                                           \
  R(EVENT, "", 0, HOSTS, OPEN)                                                                         \
  R(DROP, "LIST", 0, OPEN, OPEN)                                                                       \
  R(DROP, "", 0, HOSTS, OPEN)                                                                          \
  R(HIDE, "", 0, MODERATORS, OPEN)                                                                     \
  R(HIGHLIGHT, "REMOVE", 2, MODERATORS, OPEN)                                                          \
  R(TALLY, "HELP", 0, OPEN, OPEN)                                                                      \
  R(TALLY, "PRIVACY", 0, OPEN, OPEN)                                                                   \
  R(TALLY, "GRANT", 0, ADMINS, GRANTERS)                                                               \
  R(TALLY, "", 0, ADMINS, OPEN)

#define TALLY__SET_ENUM(name, any_of, hint, why) TALLY__ROLES_##name,
enum tally__role_set { TALLY__ROLE_SETS(TALLY__SET_ENUM) TALLY__ROLE_SET_COUNT };
#undef TALLY__SET_ENUM

/* Operators' TALLY sub-commands: described in the operators' group of
 * TALLY HELP, dispatched inside tally__cmd_tally. */
#define TALLY__OPERATOR_USAGE "TALLY GRANT <account> <amount> | TALLY ROLE <account> creator|none | TALLY STATS"

#endif
