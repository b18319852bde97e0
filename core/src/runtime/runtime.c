/* runtime.c — the top layer: the public tally_engine_new, with the table of
 * hooks (kernel/hooks.h) through which the kernel drives the features and
 * the command dispatcher without naming them.
 *
 * The feature order is behaviour: at start-up events and drops are restored
 * before the shop's features, on a committed transfer live.c's totals
 * and announcements come before a raffle charge is settled, and on a tick
 * drops and timers run before held tip messages are said. */
#include "commands.h"
#include "hooks.h"
#include "runtime.h"
#include "live.h"
#include "live_raffle.h"
#include "loader_shop.h"
#include "quiz.h"
#include "rewards.h"
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
     .restore = tally__live_restore,
     .tick = tally__live_tick,
     .committed = tally__live_committed,
     .ledger_refused = tally__live_ledger_refused,
     .ledger_recovered = tally__live_ledger_recovered},
    /* Restores after live, the order loader.c always had (the audience and
     * raffles it rebuilds belong to live's events and drops). */
    {.name = "shop", .restore = tally__load_shop},
    {.name = "raffle", .settled = raffle_settled, .record_settled = raffle_record_settled},
    {.name = "tip messages",
     .tick = tally__tip_messages_tick,
     .tipped = tally__tip_thanks,
     .record_settled = tip_record_settled},
    /* One wallet across networks: restores after the kernel's accounts and
     * identities; settles LINK ops and link moves. */
    {.name = "link",
     .restore = tally__link_restore,
     .settled = tally__link_settled,
     .record_settled = tally__link_record_settled},
    /* Restores after the shop (items and accounts are known), before the
     * quizzes, which name rewards and find their grants. */
    {.name = "rewards",
     .restore = tally__rewards_restore,
     .tick = tally__rewards_tick,
     .committed = tally__rewards_committed,
     .settled = tally__rewards_settled,
     .record_settled = tally__rewards_record_settled,
     .destroy = tally__rewards_destroy},
    {.name = "quiz",
     .restore = tally__quiz_restore,
     .tick = tally__quiz_tick,
     .record_settled = tally__quiz_record_settled,
     .destroy = tally__quiz_destroy},
    /* Restores after rewards (a rule names one, its achievements find
     * their grants) and after the shop (events, attendance). */
    {.name = "challenges",
     .restore = tally__challenges_restore,
     .tick = tally__challenges_tick,
     .committed = tally__challenges_committed,
     .record_settled = tally__challenges_record_settled,
     .destroy = tally__challenges_destroy},
};

static const tally__hooks hooks = {
    .command = tally__command_handle,
    .verify_answer = tally__cmd_verify_answer,
    .grant_request = tally__grant_request_apply,
    .features = features,
    .feature_count = sizeof features / sizeof features[0],
};

int tally_engine_new(const tally_config *cfg, tally_engine **out, char *err, size_t err_len) {
  return tally__engine_new(&hooks, cfg, out, err, err_len);
}
