/* command_table.h — the core's command words (those of no feature).
 *
 * A feature's words are rows of its own command file (command_rows.h:
 * cmd_quiz.c's tally__quiz_commands), registered by its entry of runtime.c's
 * feature table. describe.c builds one command set from these rows and every
 * feature's at engine creation: command.c dispatches on it,
 * tally_commands_describe() and TALLY HELP describe it, so an adapter's
 * command list, the engine's dispatch and the help cannot disagree. A new
 * core command is one row here; a feature's is one row in its file.
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
  X(ITEM, tally__cmd_item, TALLY__NA, TALLY_COMMAND_GROUP_CREATORS,                                    \
    "ADD <sku> <price> [stock] <title> | ITEM SET <sku> price|stock|title|split|kind|delivery <value> " \
    "| ITEM DEL <sku>", "manage your items")                                                           \
  X(REFCODE, tally__cmd_refcode, TALLY__NA, TALLY_COMMAND_GROUP_CREATORS,                              \
    "ADD <code> <affiliate> <bps> | REFCODE LIST", "referral codes")                                   \
  X(ORDERS, tally__cmd_orders, TALLY__NA, TALLY_COMMAND_GROUP_CREATORS, "", "your sold items to ship") \
  X(ROOM, tally__cmd_room, TALLY__NA, TALLY_COMMAND_GROUP_HOSTS,                                       \
    "| ROOM SET reply=room|thread|dm redact=on|off host_level=<level> | ROOM MOVE <room>",             \
    "this room's settings: where answers go, whether command lines are removed, the level of hosts") \
  X(GOAL, tally__cmd_goal, TALLY__NA, TALLY_COMMAND_GROUP_HOSTS,                                       \
    "START <amount>[,<amount>...] [reward=<name>] [for=30m] [min-accounts=N] | GOAL STOP | GOAL [room]", \
    "a community goal: tips and purchases here fill each level; all present at 100 % earn your reward") \
  X(CHALLENGE, tally__cmd_challenge, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE,                          \
    "ADD <name> minutes=30|spent=20|tipped=5|streak=3|first [event] [reward=<name>] [badge=<text>]"    \
    " | CHALLENGE LIST | CHALLENGE DEL <name>",                                                        \
    "challenges hosts and creators set; reaching one earns its badge and reward once")

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
 * adjacent. A feature's word carries its rows itself (tally__command_row
 * .roles); rows here for it are tried after those. */
#define TALLY__ROLE_TABLE(R)                                                                           \
  R(ROOM, "SET", 0, HOSTS, OPEN)                                                                       \
  R(ROOM, "MOVE", 0, HOSTS, OPEN)                                                                      \
  R(GOAL, "START", 0, HOSTS, OPEN)                                                                     \
  R(GOAL, "STOP", 0, HOSTS, OPEN)                                                                      \
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
