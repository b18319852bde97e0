/* cmd_rewards.c — REWARD ADD|LIST|DEL (a creator's rewards for their own
 * items) and REWARDS (what an account has earned). The rules live in
 * features/rewards/rewards.c; this file parses and answers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "command_rows.h"
#include "commands.h"
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

static const char reward_usage[] =
    "REWARD ADD <name> discount=10%|2.00 [cap=<amount>] [for=10m] [sku=<sku>|all] | REWARD ADD <name> free=<sku>|access=<sku>"
    " [for=10m] | REWARD LIST | REWARD DEL <name> | REWARD OFFER <name> [room] [off]";

/* "30s", "10m", "2h" -> seconds (1 .. TALLY__REWARD_TTL_S_MAX). */
static int ttl_parse(const char *s, size_t n, uint32_t *out) {
  if (n < 2) return TALLY_EBAD_SYNTAX;
  char unit = s[n - 1];
  uint64_t scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400 : 0;
  uint64_t v;
  if (!scale || tally__uint_parse(s, n - 1, TALLY__REWARD_TTL_S_MAX, &v) || v == 0) return TALLY_EBAD_SYNTAX;
  if (v * scale > TALLY__REWARD_TTL_S_MAX) return TALLY_EBAD_SYNTAX;
  *out = (uint32_t)(v * scale);
  return TALLY_OK;
}

/* "10%", "12.5%" -> basis points (1 .. 10000). */
static int percent_parse(const char *s, size_t n, int32_t *bps) {
  int64_t v;
  /* As an amount with two decimals: "12.5" -> 1250, which is basis points. */
  if (tally__amount_parse(s, n, 2, &v) || v > 10000) return TALLY_EBAD_SYNTAX;
  *bps = (int32_t)v;
  return TALLY_OK;
}

static bool name_ok(const char *s, size_t n) {
  if (n == 0 || n > TALLY__REWARD_NAME_BYTES_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
          s[i] == '-' || s[i] == '_'))
      return false;
  return true;
}

static bool option(const tally__cmd *c, int k, const char *key, const char **v, size_t *vn) {
  size_t n = strlen(key);
  if (c->t.len[k] <= n || memcmp(c->t.word[k], key, n) != 0) return false;
  *v = c->t.word[k] + n;
  *vn = c->t.len[k] - n;
  return true;
}

/* The options of REWARD ADD into spec; false when refused (answered). */
static bool add_options(tally__cmd *c, tally__reward_def *spec) {
  bool discount = false, sku_given = false;
  for (int k = 3; k < c->t.count; k++) {
    const char *v;
    size_t vn;
    int rc = TALLY_OK;
    uint8_t unlock = 0;
    sku_given |= c->t.len[k] > 4 && memcmp(c->t.word[k], "sku=", 4) == 0;
    if (option(c, k, "discount=", &v, &vn) && !discount) {
      discount = true;
      if (vn > 1 && v[vn - 1] == '%') rc = percent_parse(v, vn - 1, &spec->bps);
      else rc = tally__amount_parse(v, vn, c->e->cfg.currency_decimals, &spec->amount);
    } else if (option(c, k, "cap=", &v, &vn)) {
      rc = tally__amount_parse(v, vn, c->e->cfg.currency_decimals, &spec->cap);
    } else if (option(c, k, "for=", &v, &vn)) {
      rc = ttl_parse(v, vn, &spec->ttl_s);
    } else if ((unlock = option(c, k, "free=", &v, &vn) ? TALLY__REWARD_UNLOCK_FREE
                         : option(c, k, "access=", &v, &vn) ? TALLY__REWARD_UNLOCK_ACCESS : 0) ||
               option(c, k, "sku=", &v, &vn)) {
      char sku[TALLY__SKU_BYTES_MAX + 1];
      if (unlock && spec->unlock) { /* one free= or access= */
        tally__cmd_usage(c, reward_usage);
        return false;
      }
      if (unlock) spec->unlock = unlock;
      if (vn == 3 && memcmp(v, "all", 3) == 0 && !unlock) spec->item = TALLY__NONE;
      else if (vn >= sizeof sku) rc = TALLY_EUNKNOWN_ITEM;
      else {
        memcpy(sku, v, vn);
        sku[vn] = 0;
        spec->item = tally__item_find(&c->e->st, sku);
        if (spec->item == TALLY__NONE || c->e->st.items[spec->item].deleted) rc = TALLY_EUNKNOWN_ITEM;
        else if (c->e->st.items[spec->item].creator != c->account) {
          tally__reply(c->e, c->cmd, TALLY_ENO_PERMISSION, 0,
                       "%s: a reward is for your own items, and %s is not yours", tally_strerror(TALLY_ENO_PERMISSION),
                       c->e->st.items[spec->item].sku);
          return false;
        }
      }
    } else {
      tally__cmd_usage(c, reward_usage);
      return false;
    }
    if (rc) {
      tally__reply(c->e, c->cmd, rc, 0, "%s: %.*s", tally_strerror(rc), (int)c->t.len[k], c->t.word[k]);
      return false;
    }
  }
  /* A free unit or an access names its item itself: no discount, cap or sku= with it. */
  if (spec->unlock && (discount || spec->cap || sku_given)) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: free=<sku> and access=<sku> go without discount=, cap= or sku=. %s",
                 tally_strerror(TALLY_EBAD_SYNTAX), reward_usage);
    return false;
  }
  /* access= to an item that is not (yet) attendees-only is kept: the drop
   * may come later; until then BUY needs no access and leaves it unused. */
  if (spec->unlock == TALLY__REWARD_UNLOCK_FREE && tally__reward_free_unit_refused(&c->e->st.items[spec->item])) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: %s is a highlight or a reaction, which is never a free unit",
                 tally_strerror(TALLY_EBAD_SYNTAX), c->e->st.items[spec->item].sku);
    return false;
  }
  if (spec->unlock == TALLY__REWARD_UNLOCK_FREE && c->e->st.items[spec->item].split.count) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: %s is shared with co-creators; a free unit is for an item you alone sell",
                 tally_strerror(TALLY_EBAD_SYNTAX), c->e->st.items[spec->item].sku);
    return false;
  }
  if (!discount && !spec->unlock) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: discount=10%%, discount=2.00, free=<sku> or access=<sku> is needed. %s",
                 tally_strerror(TALLY_EBAD_SYNTAX), reward_usage);
    return false;
  }
  return true;
}

/* A FACT op of the command, not yet counted as pending: the feature may
 * still refuse it (then tally__cmd_op_unused); fact_added counts it. */
static tally__op *fact_slot(tally__cmd *c) {
  tally__op *op = tally__cmd_op_slot(c);
  if (!op) {
    tally__cmd_refuse(c, TALLY_EBUSY);
    return NULL;
  }
  memset(op, 0, sizeof *op);
  op->type = TALLY__OP_FACT;
  op->account = c->account;
  op->counterparty = TALLY__NONE;
  op->item = TALLY__NONE;
  op->req_id = c->cmd->req_id;
  op->created_ms = c->wall;
  op->net = c->net;
  tally__text_clip(op->channel, sizeof op->channel, c->cmd->channel);
  return op;
}

/* Answered with op->note once its batch commits. */
void tally__cmd_fact_added(tally__cmd *c, tally__op *op) {
  op->origin = c->origin;
  tally__names_ref(&c->e->st.names, op->origin);
  tally__cmd_op_added(c);
}

tally__op *tally__cmd_fact_slot(tally__cmd *c) { return fact_slot(c); }

static void reward_add(tally__cmd *c) {
  if (!tally__cmd_may_sell(c)) return; /* the discount comes out of the sender's takings */
  if (c->t.count < 4 || !name_ok(c->t.word[2], c->t.len[2])) {
    tally__cmd_usage(c, reward_usage);
    return;
  }
  tally__reward_def spec = {.creator = c->account, .item = TALLY__NONE, .ttl_s = TALLY__REWARD_TTL_S_DEFAULT};
  memcpy(spec.name, c->t.word[2], c->t.len[2]);
  spec.name[c->t.len[2]] = 0;
  if (!add_options(c, &spec)) return;
  tally__op *op = fact_slot(c);
  if (!op) return;
  int rc = tally__reward_def_new(c->e, &spec, op);
  if (rc) {
    tally__cmd_op_unused(c);
    if (rc == TALLY_EEXISTS)
      tally__reply(c->e, c->cmd, rc, 0, "%s: you have a reward named %s (names stay taken after REWARD DEL)",
                   tally_strerror(rc), spec.name);
    else tally__cmd_refuse(c, rc);
    return;
  }
  char what[128];
  tally__reward_describe(c->e, &spec, what, sizeof what);
  note(op, "Reward %s saved: %s, lasts %u s once earned. A quiz you host can give it (reward=%s).",
           spec.name, what, spec.ttl_s, spec.name);
  tally__cmd_fact_added(c, op);
}

static void reward_del(tally__cmd *c) {
  if (c->t.count != 3) {
    tally__cmd_usage(c, reward_usage);
    return;
  }
  char name[TALLY__REWARD_NAME_BYTES_MAX + 1];
  uint32_t def = TALLY__NONE;
  if (tally__word_copy(&c->t, 2, name, sizeof name) == TALLY_OK) def = tally__reward_def_find(c->e, c->account, name);
  if (def == TALLY__NONE) {
    tally__cmd_refuse(c, TALLY_EUNKNOWN_REWARD);
    return;
  }
  tally__op *op = fact_slot(c);
  if (!op) return;
  int rc = tally__reward_def_delete(c->e, def, op);
  if (rc) {
    tally__cmd_op_unused(c);
    tally__cmd_refuse(c, rc);
    return;
  }
  note(op, "Reward %s deleted: no one earns it from now on; ones already earned still apply until they expire.", name);
  tally__cmd_fact_added(c, op);
}

/* REWARD OFFER <name> [room] [off]: the creator lets the hosts of a room
 * give the reward in their quizzes (reward=<creator>/<name>); the discount
 * is still the creator's. In a room the room is where it is said. "off"
 * withdraws the offer (sql/023): quizzes running keep it, no new one may. */
static void reward_offer(tally__cmd *c) {
  if (!tally__cmd_may_sell(c)) return;
  bool here = c->cmd->channel[0] != 0;
  bool off = c->t.count >= 4 && tally__word_is(&c->t, c->t.count - 1, "OFF");
  int words = c->t.count - (off ? 1 : 0); /* REWARD OFFER <name> [room] */
  if (!(words == 4 || (words == 3 && here))) {
    tally__cmd_usage(c, reward_usage);
    return;
  }
  char name[TALLY__REWARD_NAME_BYTES_MAX + 1], room[TALLY__ROOM_KEPT_BYTES_MAX + 1];
  uint32_t def = TALLY__NONE;
  if (tally__word_copy(&c->t, 2, name, sizeof name) == TALLY_OK) def = tally__reward_def_find(c->e, c->account, name);
  const tally__rewards *r = tally__rewards_of(c->e);
  if (def == TALLY__NONE || !r->defs[def].committed || r->defs[def].deleted) {
    tally__cmd_refuse(c, TALLY_EUNKNOWN_REWARD);
    return;
  }
  if (words == 4) {
    if (tally__word_copy(&c->t, 3, room, sizeof room) != TALLY_OK) {
      tally__cmd_refuse(c, TALLY_ETOOBIG);
      return;
    }
  } else {
    tally__text_clip(room, sizeof room, c->cmd->channel);
  }
  tally__op *op = fact_slot(c);
  if (!op) return;
  if (off) {
    int wrc = tally__reward_offer_withdraw(c->e, def, c->net, room, op);
    if (wrc) {
      tally__cmd_op_unused(c);
      if (wrc == TALLY_ENOTFOUND)
        tally__reply(c->e, c->cmd, wrc, 0, "%s: %s is not offered in %s", tally_strerror(wrc), name, room);
      else if (wrc == TALLY_EBUSY)
        tally__reply(c->e, c->cmd, wrc, 0, "%s: its offer in %s is being changed; try again in a moment",
                     tally_strerror(wrc), room);
      else tally__cmd_refuse(c, wrc);
      return;
    }
    note(op, "Offer of %s in %s withdrawn: quizzes running keep it; no new one may give it.", name, room);
    tally__cmd_fact_added(c, op);
    return;
  }
  int rc = tally__reward_offer(c->e, def, c->net, room, op);
  if (rc) {
    tally__cmd_op_unused(c);
    if (rc == TALLY_EEXISTS) tally__reply(c->e, c->cmd, rc, 0, "%s: %s is offered in %s already", tally_strerror(rc), name, room);
    else if (rc == TALLY_EBUSY)
      tally__reply(c->e, c->cmd, rc, 0, "%s: its offer in %s is being changed; try again in a moment",
                   tally_strerror(rc), room);
    else tally__cmd_refuse(c, rc);
    return;
  }
  note(op, "Reward %s offered in %s: its hosts may give it in their quizzes (reward=%s/%s); the discount is yours.", name,
       room, tally__account_label(&c->e->st, c->account), name);
  tally__cmd_fact_added(c, op);
}

void tally__cmd_reward(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "REWARD", TALLY__NA);
  if (!tally__rewards_of(c->e)) {
    tally__cmd_refuse(c, TALLY_ESTARTING);
    return;
  }
  if (tally__word_is(&c->t, 1, "ADD")) reward_add(c);
  else if (tally__word_is(&c->t, 1, "DEL")) reward_del(c);
  else if (tally__word_is(&c->t, 1, "OFFER")) reward_offer(c);
  else if (tally__word_is(&c->t, 1, "LIST") && c->t.count == 2) {
    char text[TALLY_TEXT_BYTES_MAX];
    tally__reward_list_defs(c->e, c->account, text, sizeof text);
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "%s", text);
  } else {
    tally__cmd_usage(c, reward_usage);
  }
}

void tally__cmd_rewards(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "REWARDS", TALLY__NA);
  if (c->t.count != 1) {
    tally__cmd_usage(c, "REWARDS");
    return;
  }
  char text[TALLY_TEXT_BYTES_MAX];
  tally__reward_list_grants(c->e, c->account, c->now, text, sizeof text);
  tally__reply(c->e, c->cmd, TALLY_OK, 0, "%s", text);
}

/* ---- the feature's command words (command_rows.h; runtime.c registers them) -- */
static const tally__command_row rewards_rows[] = {
    {"REWARDS", tally__cmd_rewards, TALLY__NA, TALLY_COMMAND_GROUP_EVERYONE,
     "",
     "the rewards you earned (used at your next BUY they fit)", NULL, 0},
    {"REWARD", tally__cmd_reward, TALLY__NA, TALLY_COMMAND_GROUP_CREATORS,
     "ADD <name> discount=10%|2.00|free=<sku>|access=<sku> [cap=<amount>] [for=10m] [sku=<sku>|all] | REWARD LIST "
     "| REWARD DEL <name> | REWARD OFFER <name> [room] [off]",
     "discounts, free units and access on your items that quizzes give", NULL, 0},
};
const tally__command_rows tally__rewards_commands = TALLY__ROWS(rewards_rows);
