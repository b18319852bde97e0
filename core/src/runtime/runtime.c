/* runtime.c — the top layer: the public tally_engine_new, with the table of
 * hooks (kernel/hooks.h) through which the kernel drives the features and
 * the command dispatcher without naming them.
 *
 * The feature order is behaviour: at start-up events and drops are restored
 * before the shop's features, on a committed transfer live.c's totals
 * and announcements come before a raffle charge is settled, and on a tick
 * drops and timers run before held tip messages are said.
 *
 * An entry also names the feature's command words (`.commands`, its command
 * file's rows): the command set the dispatcher, tally_commands_describe()
 * and TALLY HELP read is built from the core's words and these, once, before
 * the first engine. Its `.config_keys` (rows of its files) join the core's
 * keys the same way (tally__config_table_get, read by config_api.c). */
#include <pthread.h>
#include <stdio.h>

#include "command_rows.h"
#include "commands.h"
#include "config.h"
#include "describe.h"
#include "highlight.h"
#include "hooks.h"
#include "runtime.h"
#include "live.h"
#include "live_raffle.h"
#include "loader_shop.h"
#include "goals.h"
#include "quiz.h"
#include "rewards.h"
#include "rooms.h"
#include "tipmsg.h"
#include "link.h"
#include "challenges.h"

/* A raffle's charges and passes are its own: other ops pass through. */
static void raffle_settled(tally__engine *e, const tally__op *op, int outcome) {
  if (op->raffle_charge) tally__raffle_charge_settled(e, op, outcome);
}

static void raffle_record_settled(tally__engine *e, const tally__op *op, bool ok) {
  if (op->type == TALLY__OP_PASS) tally__raffle_pass_settled(e, op, ok);
}

static void tip_record_settled(tally__engine *e, const tally__op *op, bool ok) {
  if (op->type == TALLY__OP_HIDE) tally__tip_hide_settled(e, op, ok);
}

static const tally__feature_hooks features[] = {
    {.name = "live",
     .commands = &tally__live_commands,
     .config_keys = &tally__live_config_keys,
     .restore = tally__live_restore,
     .tick = tally__live_tick,
     .committed = tally__live_committed,
     .ledger_refused = tally__live_ledger_refused,
     .ledger_recovered = tally__live_ledger_recovered},
    /* Restores after live, the order loader.c always had (the audience and
     * raffles it rebuilds belong to live's events and drops). */
    {.name = "shop", .restore = tally__load_shop},
    /* Paid highlights and reactions: their timers and totals run inside
     * live's hooks (live.c calls highlight.c); the entry registers their
     * words. */
    {.name = "highlight", .commands = &tally__highlight_commands, .config_keys = &tally__highlight_config_keys},
    {.name = "raffle", .settled = raffle_settled, .record_settled = raffle_record_settled},
    {.name = "tip messages",
     .commands = &tally__tip_commands,
     .config_keys = &tally__tip_config_keys,
     .data_size = sizeof(tally__tips),
     .data_slot = TALLY__FDATA_TIPS,
     .tick = tally__tip_messages_tick,
     .tipped = tally__tip_thanks,
     .settled = tally__tip_settled,
     .record_settled = tip_record_settled},
    /* One wallet across networks: restores after the kernel's accounts and
     * identities; settles LINK ops and link moves. */
    {.name = "link",
     .commands = &tally__link_commands,
     .config_keys = &tally__link_config_keys,
     .data_size = sizeof(tally__links),
     .data_slot = TALLY__FDATA_LINKS,
     .restore = tally__link_restore,
     .settled = tally__link_settled,
     .record_settled = tally__link_record_settled},
    /* Restores after the shop (items and accounts are known), before the
     * quizzes, which name rewards and find their grants. */
    {.name = "rewards",
     .commands = &tally__rewards_commands,
     .restore = tally__rewards_restore,
     .tick = tally__rewards_tick,
     .committed = tally__rewards_committed,
     .settled = tally__rewards_settled,
     .record_settled = tally__rewards_record_settled,
     .destroy = tally__rewards_destroy},
    {.name = "quiz",
     .commands = &tally__quiz_commands,
     .config_keys = &tally__quiz_config_keys,
     .restore = tally__quiz_restore,
     .tick = tally__quiz_tick,
     .record_settled = tally__quiz_record_settled,
     .destroy = tally__quiz_destroy,
     .room_moved = tally__quiz_room_moved},
    /* After rewards (a goal names one and pays with its grants). Its
     * committed entry counts a room's purchases and tips after live's
     * totals. */
    {.name = "goals",
     .restore = tally__goals_restore,
     .tick = tally__goals_tick,
     .committed = tally__goals_committed,
     .record_settled = tally__goals_record_settled,
     .destroy = tally__goals_destroy,
     .room_moved = tally__goals_room_moved},
    /* Restores after rewards (a rule names one, its achievements find
     * their grants) and after the shop (events, attendance). */
    {.name = "challenges",
     .restore = tally__challenges_restore,
     .tick = tally__challenges_tick,
     .committed = tally__challenges_committed,
     .record_settled = tally__challenges_record_settled,
     .destroy = tally__challenges_destroy},
    /* Restores after live, quiz and goals: a running event, quiz, round or
     * goal follows the room moves made after it (room_moved). */
    {.name = "rooms",
     .restore = tally__rooms_restore,
     .record_settled = tally__rooms_record_settled,
     .destroy = tally__rooms_destroy},
};

enum { FEATURE_COUNT = sizeof features / sizeof features[0] };

/* The command set: built once, before the first engine or description. */
static tally__command_set command_set;
static int command_set_rc;
static char command_set_err[TALLY_ERRBUF_BYTES];
static pthread_once_t command_set_once = PTHREAD_ONCE_INIT;

static void command_set_build(void) {
  const tally__command_rows *parts[1 + FEATURE_COUNT];
  size_t n = 0;
  parts[n++] = &tally__core_commands;
  for (size_t f = 0; f < FEATURE_COUNT; f++)
    if (features[f].commands) parts[n++] = features[f].commands;
  command_set_rc = tally__command_set_build(&command_set, parts, n, command_set_err, sizeof command_set_err);
}

const tally__command_set *tally__commands(void) {
  pthread_once(&command_set_once, command_set_build);
  return command_set_rc ? NULL : &command_set;
}

/* Every config key: the core's, then each feature's in table order. */
static const tally__config_keys *config_parts[1 + FEATURE_COUNT];
static tally__config_table config_table;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

static void config_table_build(void) {
  size_t n = 0;
  config_parts[n++] = &tally__core_config_keys;
  for (size_t f = 0; f < FEATURE_COUNT; f++)
    if (features[f].config_keys) config_parts[n++] = features[f].config_keys;
  config_table = (tally__config_table){config_parts, n};
}

const tally__config_table *tally__config_table_get(void) {
  pthread_once(&config_once, config_table_build);
  return &config_table;
}

static const tally__hooks hooks = {
    .command = tally__command_handle,
    .verify_answer = tally__cmd_verify_answer,
    .grant_request = tally__grant_request_apply,
    .features = features,
    .feature_count = FEATURE_COUNT,
    .commands = &command_set,
};

int tally_engine_new(const tally_config *cfg, tally_engine **out, char *err, size_t err_len) {
  /* A word registered twice is a build mistake: no engine, with its name. */
  if (!tally__commands()) {
    if (err && err_len) snprintf(err, err_len, "%s", command_set_err);
    return TALLY_EINVAL;
  }
  return tally__engine_new(&hooks, cfg, out, err, err_len);
}

void tally_commands_describe(tally_command_doc_cb cb, void *ud) { tally__commands_describe(tally__commands(), cb, ud); }
