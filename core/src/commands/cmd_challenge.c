/* cmd_challenge.c — CHALLENGE ADD|LIST|DEL: rules hosts and creators set
 * over what tally sees. The rules live in features/challenges/; this file
 * parses and answers, and every refusal names its reason. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "challenges.h"
#include "commands.h"
#include "live.h"
#include "rewards.h"
#include "text.h"

/* The answer said once op commits, cut at a character boundary. */
__attribute__((format(printf, 2, 3))) static void note(tally__op *op, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(op->note, sizeof op->note, fmt, ap);
  va_end(ap);
  if (n > 0) tally__text_trim_tail(op->note, (size_t)n < sizeof op->note ? (size_t)n : sizeof op->note - 1);
}

static const char challenge_usage[] =
    "CHALLENGE ADD <name> minutes=30|spent=20|tipped=5|streak=3|first [event] [reward=<name>] [badge=<text>]"
    " | CHALLENGE LIST | CHALLENGE DEL <name>";

static bool name_ok(const char *s, size_t n) {
  if (n == 0 || n > TALLY__CHALLENGE_NAME_BYTES_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
          s[i] == '-' || s[i] == '_'))
      return false;
  return true;
}

/* A badge is one word of printable text (UTF-8 is checked by the
 * dispatcher): no quote or backslash, so it goes into JSON as it is. */
static bool badge_ok(const char *s, size_t n) {
  if (n == 0 || n > TALLY__CHALLENGE_BADGE_BYTES_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x21 || s[i] == '"' || s[i] == '\\' || s[i] == 0x7f) return false;
  return true;
}

static bool option(const tally__cmd *c, int k, const char *key, const char **v, size_t *vn) {
  size_t n = strlen(key);
  if (c->t.len[k] <= n || memcmp(c->t.word[k], key, n) != 0) return false;
  *v = c->t.word[k] + n;
  *vn = c->t.len[k] - n;
  return true;
}

/* Hosts (the room's, or of an event tally knows) and creators set rules. */
static bool may_define(tally__cmd *c) {
  const tally__state *st = &c->e->st;
  if (c->roles & (TALLY_ROLE_HOST | TALLY_ROLE_ADMIN) || st->accounts[c->account].is_creator) return true;
  for (uint32_t i = 0; i < st->event_count; i++)
    if (st->events[i].host == c->account) return true;
  tally__reply_hint(c->e, c->cmd, TALLY_ENO_PERMISSION, TALLY_HINT_HOST_ROLE,
                    "%s: challenges are set by hosts and creators (CHALLENGE LIST shows them to everyone)",
                    tally_strerror(TALLY_ENO_PERMISSION));
  return false;
}

__attribute__((format(printf, 3, 4))) static bool refuse(tally__cmd *c, int code, const char *fmt, ...) {
  char why[TALLY_TEXT_BYTES_MAX / 2];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (n > 0) tally__text_trim_tail(why, (size_t)n < sizeof why ? (size_t)n : sizeof why - 1); /* a whole character */
  tally__reply(c->e, c->cmd, code, 0, "%s: %s", tally_strerror(code), why);
  return false;
}

/* The kind (exactly one) and the options of CHALLENGE ADD into spec;
 * false when refused (answered). */
static bool add_options(tally__cmd *c, tally__challenge *spec) {
  tally__engine *e = c->e;
  bool in_event = false;
  for (int k = 3; k < c->t.count; k++) {
    const char *v, *w = c->t.word[k];
    size_t vn, wn = c->t.len[k];
    uint64_t u;
    int64_t amount;
    uint8_t kind = 0;
    if (option(c, k, "minutes=", &v, &vn)) {
      /* Whole or tenths of minutes: minutes=1.5 is 90 s. */
      if (tally__amount_parse(v, vn, 1, &amount) || amount <= 0 || amount > TALLY__CHALLENGE_MINUTES_MAX * 10)
        return refuse(c, TALLY_EBAD_SYNTAX, "minutes= is 0.1 to %d", TALLY__CHALLENGE_MINUTES_MAX);
      kind = TALLY__CH_MINUTES;
      spec->threshold = amount * 6;
    } else if (option(c, k, "spent=", &v, &vn) || option(c, k, "tipped=", &v, &vn)) {
      if (tally__amount_parse(v, vn, e->cfg.currency_decimals, &amount) || amount <= 0)
        return refuse(c, TALLY_EBAD_AMOUNT, "%.*s is not an amount above zero", (int)wn, w);
      kind = w[0] == 's' ? TALLY__CH_SPENT : TALLY__CH_TIPPED;
      spec->threshold = amount;
    } else if (option(c, k, "streak=", &v, &vn)) {
      if (tally__uint_parse(v, vn, TALLY__CHALLENGE_STREAK_MAX, &u) || u < 2)
        return refuse(c, TALLY_EBAD_SYNTAX, "streak= is 2 to %d events in a row", TALLY__CHALLENGE_STREAK_MAX);
      kind = TALLY__CH_STREAK;
      spec->threshold = (int64_t)u;
    } else if (wn == 5 && memcmp(w, "first", 5) == 0) {
      kind = TALLY__CH_FIRST;
      spec->threshold = 1;
    } else if (wn == 5 && memcmp(w, "event", 5) == 0) {
      in_event = true;
    } else if (option(c, k, "reward=", &v, &vn)) {
      char name[TALLY__REWARD_NAME_BYTES_MAX + 1];
      uint32_t def = TALLY__NONE;
      if (vn < sizeof name) {
        memcpy(name, v, vn);
        name[vn] = 0;
        def = tally__reward_def_find(e, c->account, name); /* one's own rewards only: they are one's own money */
      }
      const tally__rewards *r = tally__rewards_of(e);
      if (def == TALLY__NONE || !r->defs[def].committed || r->defs[def].deleted)
        return refuse(c, TALLY_EUNKNOWN_REWARD, "%.*s names none of your rewards (REWARD ADD, REWARD LIST)", (int)wn, w);
      spec->reward_def = def;
    } else if (option(c, k, "badge=", &v, &vn)) {
      if (!badge_ok(v, vn))
        return refuse(c, TALLY_EBAD_SYNTAX, "a badge is one word of 1 to %d bytes, without quotes or backslashes",
                      TALLY__CHALLENGE_BADGE_BYTES_MAX);
      memcpy(spec->badge, v, vn);
      spec->badge[vn] = 0;
    } else {
      return refuse(c, TALLY_EBAD_SYNTAX, "%.*s is not an option here. %s", (int)wn, w, challenge_usage);
    }
    if (kind && spec->kind) return refuse(c, TALLY_EBAD_SYNTAX, "one of minutes=, spent=, tipped=, streak=, first per challenge");
    if (kind) spec->kind = kind;
  }
  if (!spec->kind) return refuse(c, TALLY_EBAD_SYNTAX, "say what it counts: %s", challenge_usage);
  if (spec->reward_def == TALLY__NONE && !spec->badge[0])
    return refuse(c, TALLY_EBAD_SYNTAX, "a challenge gives a reward=, a badge=, or both");
  if (spec->kind == TALLY__CH_FIRST && !e->st.accounts[c->account].is_creator)
    return refuse(c, TALLY_ENO_PERMISSION, "first counts purchases of your own items, and only creators sell");
  if (in_event) {
    if (spec->kind == TALLY__CH_STREAK || spec->kind == TALLY__CH_FIRST)
      return refuse(c, TALLY_EBAD_SYNTAX, "event binds minutes=, spent= and tipped= to this event; %s counts across events",
                    spec->kind == TALLY__CH_STREAK ? "streak=" : "first");
    uint32_t ev = c->cmd->channel[0] ? tally__live_event_in(&e->st, c->net, c->cmd->channel) : TALLY__NONE;
    if (ev == TALLY__NONE) return refuse(c, TALLY_ENOTFOUND, "no event is running here (event counts the one in this room)");
    spec->event_id = e->st.events[ev].id;
  }
  return true;
}

static void challenge_add(tally__cmd *c) {
  if (!may_define(c)) return;
  if (c->t.count < 4 || !name_ok(c->t.word[2], c->t.len[2])) {
    tally__cmd_usage(c, challenge_usage);
    return;
  }
  tally__challenge spec = {.owner = c->account, .reward_def = TALLY__NONE};
  memcpy(spec.name, c->t.word[2], c->t.len[2]);
  spec.name[c->t.len[2]] = 0;
  if (!add_options(c, &spec)) return;
  tally__op *op = tally__cmd_fact_slot(c);
  if (!op) return;
  int rc = tally__challenge_new(c->e, &spec, op);
  if (rc) {
    tally__cmd_op_unused(c);
    if (rc == TALLY_EEXISTS)
      refuse(c, rc, "you have a challenge named %s (names stay taken after CHALLENGE DEL)", spec.name);
    else if (rc == TALLY_ETOO_MANY)
      refuse(c, rc, "at most %d challenges at once; CHALLENGE DEL one first", TALLY__CHALLENGES_LIVE_MAX);
    else tally__cmd_refuse(c, rc);
    return;
  }
  char what[128], badge[64] = "", reward[64] = "";
  tally__challenge_describe(c->e, &spec, what, sizeof what);
  if (spec.badge[0]) snprintf(badge, sizeof badge, " the badge %s", spec.badge);
  if (spec.reward_def != TALLY__NONE)
    snprintf(reward, sizeof reward, "%s the reward %s", spec.badge[0] ? " and" : "",
             tally__rewards_of(c->e)->defs[spec.reward_def].name);
  note(op, "Challenge %s saved: %s. Reaching it earns%s%s, once per account.", spec.name, what, badge, reward);
  tally__cmd_fact_added(c, op);
}

static void challenge_del(tally__cmd *c) {
  if (c->t.count != 3) {
    tally__cmd_usage(c, challenge_usage);
    return;
  }
  char name[TALLY__CHALLENGE_NAME_BYTES_MAX + 1];
  uint32_t rule = TALLY__NONE;
  if (tally__word_copy(&c->t, 2, name, sizeof name) == TALLY_OK) rule = tally__challenge_find(c->e, c->account, name);
  if (rule == TALLY__NONE) {
    refuse(c, TALLY_EUNKNOWN_CHALLENGE, "you have no challenge named %.*s (CHALLENGE LIST; only its owner deletes one)",
           (int)c->t.len[2], c->t.word[2]);
    return;
  }
  tally__op *op = tally__cmd_fact_slot(c);
  if (!op) return;
  int rc = tally__challenge_delete(c->e, rule, c->account, op);
  if (rc) {
    tally__cmd_op_unused(c);
    if (rc == TALLY_EPENDING) refuse(c, TALLY_EBUSY, "challenge %s is still being saved; try again in a moment", name);
    else refuse(c, rc, "challenge %s is deleted already", name);
    return;
  }
  note(op, "Challenge %s deleted: nobody reaches it from now on; badges and rewards earned before stay.", name);
  tally__cmd_fact_added(c, op);
}

void tally__cmd_challenge(tally__cmd *c) {
  if (!tally__challenges_of(c->e) || !tally__rewards_of(c->e)) {
    tally__cmd_refuse(c, TALLY_ESTARTING);
    return;
  }
  if (tally__word_is(&c->t, 1, "ADD")) challenge_add(c);
  else if (tally__word_is(&c->t, 1, "DEL")) challenge_del(c);
  else if (tally__word_is(&c->t, 1, "LIST") && c->t.count == 2) {
    char text[TALLY_TEXT_BYTES_MAX];
    tally__challenge_list(c->e, c->account, text, sizeof text);
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "%s", text);
  } else {
    tally__cmd_usage(c, challenge_usage);
  }
}
