/* cmd_goal.c — GOAL START (hosts, in an event's room), GOAL STOP (hosts)
 * and GOAL (the status, anyone). The rules live in
 * features/goals/goals.c; this file parses, refuses with the reason, and
 * answers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "goals.h"
#include "live.h"
#include "rewards.h"
#include "text.h"

static const char goal_usage[] =
    "GOAL START <amount>[,<amount>...] [reward=<name>] [for=30m] [min-accounts=N] | GOAL STOP | GOAL [room]";

/* The answer said once op commits, cut at a character boundary. */
__attribute__((format(printf, 2, 3))) static void note(tally__op *op, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(op->note, sizeof op->note, fmt, ap);
  va_end(ap);
  if (n > 0) tally__text_trim_tail(op->note, (size_t)n < sizeof op->note ? (size_t)n : sizeof op->note - 1);
}

/* "90s", "30m", "2h" -> seconds (TALLY__GOAL_SECONDS_MIN .. _MAX). */
static int dur_parse(const char *s, size_t n, uint64_t *out) {
  if (n < 2) return TALLY_EBAD_SYNTAX;
  char unit = s[n - 1];
  uint64_t scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 0;
  uint64_t v;
  if (!scale || tally__uint_parse(s, n - 1, TALLY__GOAL_SECONDS_MAX, &v)) return TALLY_EBAD_SYNTAX;
  v *= scale;
  if (v < TALLY__GOAL_SECONDS_MIN || v > TALLY__GOAL_SECONDS_MAX) return TALLY_EBAD_SYNTAX;
  *out = v;
  return TALLY_OK;
}

/* "10,25.50,100" into spec's levels; false when refused (answered). */
static bool levels_parse(tally__cmd *c, const char *s, size_t n, tally__goal *spec) {
  spec->level_count = 0;
  for (size_t from = 0; from <= n;) {
    size_t len = 0;
    while (from + len < n && s[from + len] != ',') len++;
    int64_t v = 0;
    int rc = len ? tally__amount_parse(s + from, len, c->e->cfg.currency_decimals, &v) : TALLY_EBAD_SYNTAX;
    if (rc || v <= 0 || v >= TALLY__MONEY_SUPPLY_MAX || spec->level_count == TALLY__GOAL_LEVELS_MAX) {
      tally__reply(c->e, c->cmd, TALLY_EGOAL_LEVELS, 0, "%s (%d at most, e.g. 50 or 50,100,200): %.*s. Usage: %s",
                   tally_strerror(TALLY_EGOAL_LEVELS), TALLY__GOAL_LEVELS_MAX, (int)n, s, goal_usage);
      return false;
    }
    spec->levels[spec->level_count++] = v;
    from += len + 1;
  }
  return true;
}

static bool option(const tally__cmd *c, int k, const char *key, const char **v, size_t *vn) {
  size_t n = strlen(key);
  if (c->t.len[k] <= n || memcmp(c->t.word[k], key, n) != 0) return false;
  *v = c->t.word[k] + n;
  *vn = c->t.len[k] - n;
  return true;
}

/* The options after the amounts; false when one is refused (answered). */
static bool start_options(tally__cmd *c, tally__goal *spec) {
  tally__engine *e = c->e;
  for (int k = 3; k < c->t.count; k++) {
    const char *v;
    size_t vn;
    if (option(c, k, "for=", &v, &vn)) {
      uint64_t s;
      if (dur_parse(v, vn, &s)) {
        tally__reply(e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: for=%.*s: a level lasts %d s to %d h (for=90s, for=30m, for=2h)",
                     tally_strerror(TALLY_EBAD_SYNTAX), (int)vn, v, TALLY__GOAL_SECONDS_MIN, TALLY__GOAL_SECONDS_MAX / 3600);
        return false;
      }
      spec->duration_ms = s * 1000;
    } else if (option(c, k, "min-accounts=", &v, &vn)) {
      uint64_t m;
      if (tally__uint_parse(v, vn, TALLY__GOAL_MIN_ACCOUNTS_MAX, &m) || m == 0) {
        tally__reply(e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: min-accounts=%.*s: 1 to %d distinct contributors",
                     tally_strerror(TALLY_EBAD_SYNTAX), (int)vn, v, TALLY__GOAL_MIN_ACCOUNTS_MAX);
        return false;
      }
      spec->min_accounts = (uint32_t)m;
    } else if (option(c, k, "reward=", &v, &vn)) {
      char name[TALLY__REWARD_NAME_BYTES_MAX + 1];
      uint32_t def = TALLY__NONE;
      if (vn < sizeof name) {
        memcpy(name, v, vn);
        name[vn] = 0;
        def = tally__reward_def_find(e, c->account, name);
      }
      const tally__rewards *r = tally__rewards_of(e);
      if (def == TALLY__NONE || !r->defs[def].committed || r->defs[def].deleted) {
        tally__reply(e, c->cmd, TALLY_EUNKNOWN_REWARD, 0,
                     "%s: reward=%.*s names none of your rewards (a goal gives one of yours: REWARD ADD, REWARD LIST)",
                     tally_strerror(TALLY_EUNKNOWN_REWARD), (int)vn, v);
        return false;
      }
      spec->reward_def = def;
    } else {
      tally__reply(e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: unknown option %.*s. Usage: %s", tally_strerror(TALLY_EBAD_SYNTAX),
                   (int)c->t.len[k], c->t.word[k], goal_usage);
      return false;
    }
  }
  return true;
}

/* The running event of the command's room; TALLY__NONE when refused (answered). */
static uint32_t room_event(tally__cmd *c, const char *what) {
  if (!c->cmd->channel[0]) {
    tally__reply(c->e, c->cmd, TALLY_ENOT_IN_CHANNEL, 0, "%s: %s in the event's room", tally_strerror(TALLY_ENOT_IN_CHANNEL),
                 what);
    return TALLY__NONE;
  }
  uint32_t ev = tally__live_event_in(&c->e->st, c->net, c->cmd->channel);
  if (ev == TALLY__NONE)
    tally__reply(c->e, c->cmd, TALLY_ENOTFOUND, 0,
                 "No event is running here: EVENT START first (a goal counts the event's tips and purchases).");
  return ev;
}

static void goal_start(tally__cmd *c) {
  tally__engine *e = c->e;
  if (c->t.count < 3) {
    tally__cmd_usage(c, goal_usage);
    return;
  }
  uint32_t ev = room_event(c, "start a goal");
  if (ev == TALLY__NONE) return;
  tally__goal spec;
  memset(&spec, 0, sizeof spec);
  spec.host = c->account;
  spec.net = c->net;
  spec.event_id = e->st.events[ev].id;
  spec.duration_ms = (uint64_t)TALLY__GOAL_SECONDS_DEFAULT * 1000;
  spec.min_accounts = 1;
  spec.reward_def = TALLY__NONE;
  tally__text_clip(spec.room, sizeof spec.room, c->cmd->channel);
  if (!levels_parse(c, c->t.word[2], c->t.len[2], &spec) || !start_options(c, &spec)) return;
  tally__op *op = tally__cmd_fact_slot(c);
  if (!op) return;
  uint32_t wait_s = 0;
  int rc = tally__goal_start(e, &spec, c->now, op, &wait_s);
  if (rc) {
    tally__cmd_op_unused(c);
    if (rc == TALLY_EEXISTS)
      tally__reply(e, c->cmd, rc, 0, "%s: a goal is already running here (GOAL shows it; GOAL STOP ends it)",
                   tally_strerror(rc));
    else if (rc == TALLY_EGOAL_COOLDOWN)
      tally__reply(e, c->cmd, rc, 0, "%s: %u s left (goal_cooldown is %u s)", tally_strerror(rc), wait_s,
                   e->cfg.goal_cooldown_s);
    else if (rc == TALLY_ETOO_MANY)
      tally__reply(e, c->cmd, rc, 0, "%s: %d goals run at once, all rooms together; try again when one ends",
                   tally_strerror(rc), TALLY__GOALS_MAX);
    else tally__cmd_refuse(c, rc);
    return;
  }
  char first[48];
  tally__format_amount(e, spec.levels[0], first, sizeof first);
  note(op, "Goal started: %u %s, level 1 is %s within %llu s%s.", spec.level_count,
       spec.level_count == 1 ? "level" : "levels", first, (unsigned long long)(spec.duration_ms / 1000),
       spec.reward_def == TALLY__NONE ? " (no reward: reward=<name> gives one)" : "");
  tally__cmd_fact_added(c, op);
}

static void goal_stop(tally__cmd *c) {
  if (c->t.count != 2) {
    tally__cmd_usage(c, goal_usage);
    return;
  }
  if (!c->cmd->channel[0]) {
    tally__reply(c->e, c->cmd, TALLY_ENOT_IN_CHANNEL, 0, "%s: stop a goal in its room", tally_strerror(TALLY_ENOT_IN_CHANNEL));
    return;
  }
  uint32_t i = tally__goal_in(c->e, c->net, c->cmd->channel);
  if (i == TALLY__NONE || !tally__goal_running(&tally__goals_of(c->e)->g[i])) {
    tally__reply(c->e, c->cmd, TALLY_ENO_GOAL, 0, "%s here", tally_strerror(TALLY_ENO_GOAL));
    return;
  }
  tally__op *op = tally__cmd_fact_slot(c);
  if (!op) return;
  int rc = tally__goal_stop(c->e, i, op);
  if (rc == TALLY_OK) {
    note(op, "Goal stopped.");
    tally__cmd_fact_added(c, op);
    return;
  }
  tally__cmd_op_unused(c);
  if (rc == TALLY_EPENDING)
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "A level is being paid out: the goal ends once everyone present has the reward.");
  else if (rc == TALLY_ESTARTING)
    tally__reply(c->e, c->cmd, rc, 0, "%s: the goal is still being saved; stop it in a moment", tally_strerror(rc));
  else if (rc == TALLY_ENO_GOAL)
    tally__reply(c->e, c->cmd, rc, 0, "%s here: it is ending already", tally_strerror(rc));
  else tally__cmd_refuse(c, rc);
}

/* GOAL in a room, or GOAL <room> privately. */
static void goal_status(tally__cmd *c) {
  char room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  if (c->cmd->channel[0]) tally__text_clip(room, sizeof room, c->cmd->channel);
  else if (c->t.count != 2 || tally__word_copy(&c->t, 1, room, sizeof room) != TALLY_OK) {
    tally__reply(c->e, c->cmd, TALLY_ENO_GOAL, 0, "%s: say GOAL in the event's room, or GOAL <room> here",
                 tally_strerror(TALLY_ENO_GOAL));
    return;
  }
  uint32_t i = tally__goal_in(c->e, c->net, room);
  if (i == TALLY__NONE) {
    tally__reply(c->e, c->cmd, TALLY_ENO_GOAL, 0, "%s in %s (a host starts one: GOAL START <amount>)",
                 tally_strerror(TALLY_ENO_GOAL), room);
    return;
  }
  char line[TALLY_TEXT_BYTES_MAX];
  tally__goal_status(c->e, i, c->now, line, sizeof line);
  tally__reply(c->e, c->cmd, TALLY_OK, 0, "%s", line);
}

void tally__cmd_goal(tally__cmd *c) {
  if (!tally__goals_of(c->e) || !tally__rewards_of(c->e)) {
    tally__cmd_refuse(c, TALLY_ESTARTING);
    return;
  }
  if (tally__word_is(&c->t, 1, "START")) goal_start(c);
  else if (tally__word_is(&c->t, 1, "STOP")) goal_stop(c);
  else if (c->t.count == 1 || (c->t.count == 2 && !c->cmd->channel[0])) goal_status(c);
  else tally__cmd_usage(c, goal_usage);
}
