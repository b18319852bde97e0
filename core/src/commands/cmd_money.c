/* cmd_money.c — BUY, CONFIRM, TIP, REFUND and grants: the commands that
 * move money. Each parses its arguments, then hands the decision to
 * decide.c; the answer comes when the batch commits. */
#include <stdio.h>
#include <string.h>

#include "text.h"
#include "commands.h"
#include "decide.h"
#include "live.h"
#include "rewards.h"
#include "tipmsg.h"

static tally__decide_ctx ctx_of(tally__cmd *c, const char *key, uint64_t *existing) {
  return (tally__decide_ctx){.wall_ms = c->wall, .mono_ms = c->now, .req_id = c->cmd->req_id,
                             .origin = c->cmd->origin, .origin_name = c->origin, .channel = c->cmd->channel,
                             .key = key, .existing_transfer = existing, .net = c->net,
                             .maker = c->identity};
}

void tally__cmd_money_result(tally__cmd *c, int rc, uint64_t existing) {
  if (rc == TALLY_OK) {
    tally__cmd_op_added(c);
    return;
  }
  tally__cmd_op_unused(c);
  if (rc == TALLY_EEXISTS && existing)
    tally__reply(c->e, c->cmd, TALLY_OK, existing, "Already done: receipt %llu",
                 (unsigned long long)existing);
  else if (rc == TALLY_EEXISTS)
    tally__cmd_refuse(c, TALLY_EPENDING);
  else if (rc == TALLY_ENO_FUNDS && c->account != TALLY__NONE &&
           c->e->st.accounts[c->account].welcome_inflight)
    tally__reply(c->e, c->cmd, rc, 0, "%s yet: your welcome credits are still arriving, try again in a moment",
                 tally_strerror(rc));
  else
    tally__cmd_refuse(c, rc);
}

int tally__cmd_buy_item(tally__cmd *c, uint32_t item, uint32_t qty, const char *key, const char *note,
                        uint32_t ref) {
  tally__op *op = tally__cmd_op_slot(c);
  if (!op) {
    tally__cmd_refuse(c, TALLY_EBUSY);
    return TALLY_EBUSY;
  }
  uint64_t existing = 0;
  tally__decide_ctx ctx = ctx_of(c, key, &existing);
  ctx.ref = ref == TALLY__NONE ? NULL : &c->e->st.refcodes[ref];
  /* An earned reward applies itself (features/rewards); not with a
   * referral code, whose share is of the full price. */
  uint32_t grant = TALLY__NONE;
  int64_t total;
  const tally__item *it = &c->e->st.items[item];
  bool fresh = c->account != TALLY__NONE && tally__key_find(&c->e->st, key) == TALLY__NONE;
  /* One reward per purchase. An attendees-only item the buyer did not
   * attend needs an access reward (sql/020), which is then the one used,
   * `noreward` or not: without it the BUY is refused anyway. Then a free
   * unit (one unit, no referral code), then the best discount. */
  bool gated = fresh && it->attendees_only && !tally__audience_attended(&c->e->st, it->drop_event, c->account);
  if (gated && (grant = tally__reward_pick_unlock(c->e, c->account, item, TALLY__REWARD_UNLOCK_ACCESS)) != TALLY__NONE)
    ctx.access = true;
  else if (c->use_reward && !ctx.ref && fresh && qty == 1 &&
           (grant = tally__reward_pick_unlock(c->e, c->account, item, TALLY__REWARD_UNLOCK_FREE)) != TALLY__NONE)
    ctx.free_unit = true;
  else if (c->use_reward && !ctx.ref && fresh && !gated && tally__mul_i64(it->price, qty, &total))
    grant = tally__reward_pick(c->e, c->account, item, total, &ctx.discount);
  int rc = tally__decide_buy(&c->e->st, &ctx, c->account, item, qty, op);
  if (rc == TALLY_OK && grant != TALLY__NONE) tally__reward_hold(c->e, grant, op, ctx.discount);
  if (rc == TALLY_OK) {
    op->event_id = tally__live_event_for(&c->e->st, item, c->net, c->cmd->channel);
    tally__event_inflight(&c->e->st, op->event_id, +1);
    if (note) tally__text_clip(op->note, sizeof op->note, note);
  }
  tally__cmd_money_result(c, rc, existing);
  return rc;
}

/* A short code that is easy to type: no 0/O, 1/I/L. */
static void consent_code(tally__engine *e, char out[8]) {
  static const char alphabet[] = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";
  uint64_t x = tally__hash_u64(++e->st.consent_seq ^ (uint64_t)tally__now_wall_ms(e) ^ (uintptr_t)e);
  for (int i = 0; i < 6; i++, x /= 31) out[i] = alphabet[x % 31];
  out[6] = 0;
}

/* The account's pending CONFIRM slot: its own while it lasts, else the
 * next expired one after the cursor. NULL when all are taken. */
static tally__pending_consent *consent_slot_for(tally__cmd *c) {
  tally__state *st = &c->e->st;
  tally__account *a = &st->accounts[c->account];
  if (a->consent_slot != TALLY__NONE && st->consents[a->consent_slot].account == c->account)
    return &st->consents[a->consent_slot];
  for (uint32_t n = 0; n < TALLY__CONSENTS_PENDING_MAX; n++) {
    uint32_t i = st->consent_cursor++ % TALLY__CONSENTS_PENDING_MAX;
    tally__pending_consent *p = &st->consents[i];
    if (p->expires_mono_ms > c->now) continue;
    if (p->account != TALLY__NONE && p->account < st->account_count &&
        st->accounts[p->account].consent_slot == i)
      st->accounts[p->account].consent_slot = TALLY__NONE;
    a->consent_slot = i;
    return p;
  }
  return NULL;
}

/* A CONFIRM code for this purchase. agreed 0: the first purchase;
 * agreed > 0: the unit price rose above what the buyer last agreed to for
 * this item (agreed), and the code names the new price; agreed < 0: what
 * they agreed to is no longer known (the table was full), so ask again. */
static void ask_consent(tally__cmd *c, uint32_t item, uint32_t qty, uint32_t ref, int64_t agreed) {
  tally__state *st = &c->e->st;
  const tally__item *it = &st->items[item];
  int64_t total;
  if (!tally__mul_i64(it->price, qty, &total)) {
    tally__cmd_refuse(c, TALLY_EOVERFLOW);
    return;
  }
  tally__pending_consent *slot = consent_slot_for(c);
  if (!slot) {
    tally__cmd_refuse(c, TALLY_EBUSY);
    return;
  }
  *slot = (tally__pending_consent){.account = c->account, .item = item, .qty = qty, .ref = ref,
                                   .price_total = total,
                                   .expires_mono_ms = c->now + c->e->cfg.consent_ttl_s * 1000ull};
  consent_code(c->e, slot->code);
  snprintf(slot->key, sizeof slot->key, "%s", tally__cmd_key(c, ""));
  char amount[48], unit[48], before[48];
  tally__format_amount(c->e, total, amount, sizeof amount);
  /* The code to type is a command span, so each adapter says it the way its
   * network types commands ("!confirm k3x" in a Matrix room). */
  tally__say say;
  tally__say_init(&say, TALLY_MSG_CONSENT_ASKED);
  if (agreed < 0) {
    tally__sayf(&say, "ntm", "Please confirm: %ux %s costs %s. To agree, reply: ", qty, it->title, amount);
  } else if (agreed == 0) {
    tally__sayf(&say, "ntm", "First purchase: %ux %s costs %s, paid from your tally wallet. To agree, reply: ", qty,
                it->title, amount);
  } else {
    tally__format_amount(c->e, it->price, unit, sizeof unit);
    tally__format_amount(c->e, agreed, before, sizeof before);
    tally__sayf(&say, "tmmnm", "Price raised: %s is now %s each (you last agreed to %s); %ux costs %s. Not charged. "
                               "To agree, reply: ", it->title, unit, before, qty, amount);
  }
  size_t command = say.len;
  tally__sayf(&say, "-", "CONFIRM %s", slot->code);
  tally__say_span(&say, TALLY_ARG_COMMAND, command);
  if (agreed == 0) {
    tally__sayf(&say, "-", " (valid %u s; ", c->e->cfg.consent_ttl_s);
    size_t extend = say.len;
    tally__sayf(&say, "", "CONFIRM EXTEND");
    tally__say_span(&say, TALLY_ARG_COMMAND, extend);
    tally__sayf(&say, "", " for more time)");
  } else {
    tally__sayf(&say, "-", " (valid %u s)", c->e->cfg.consent_ttl_s);
  }
  uint32_t total_arg = agreed > 0 ? 4 : 2; /* the argument that is the total */
  tally__say_value(&say, total_arg, total, TALLY__DECIMALS(c->e));
  if (agreed > 0) {
    tally__say_value(&say, 1, it->price, TALLY__DECIMALS(c->e));
    tally__say_value(&say, 2, agreed, TALLY__DECIMALS(c->e));
  }
  tally__reply_say(c->e, c->cmd, TALLY_ECONSENT, 0, &say);
}

/* Index of the referral code in "ref=<code>", TALLY__NONE when absent;
 * false when it names no code. */
static bool ref_option(tally__cmd *c, int token, uint32_t *ref) {
  *ref = TALLY__NONE;
  if (token >= c->t.count) return true;
  if (c->t.len[token] < 5 || memcmp(c->t.word[token], "ref=", 4) != 0) return false;
  for (uint32_t i = 0; i < c->e->st.refcode_count; i++) {
    const char *code = c->e->st.refcodes[i].code;
    if (strlen(code) == c->t.len[token] - 4 && memcmp(code, c->t.word[token] + 4, c->t.len[token] - 4) == 0) {
      *ref = i;
      return true;
    }
  }
  return false;
}

/* BUY <sku> [qty] [max=<price>] [ref=<code>]: the options after sku and
 * qty, each at most once, in any order. max= is the highest unit price the
 * buyer accepts. False when the command was answered (refused). */
typedef struct buy_args {
  int plain; /* tokens before the options: 2 (sku) or 3 (sku qty) */
  uint32_t ref;
  bool noreward; /* keep an earned reward for later */
  bool has_max;
  int64_t max;
} buy_args;

static bool option_is(const tally__cmd *c, int k, const char *name) {
  size_t n = strlen(name);
  return c->t.len[k] > n && memcmp(c->t.word[k], name, n) == 0;
}

static bool buy_parse(tally__cmd *c, buy_args *b) {
  static const char usage[] = "BUY <sku> [qty] [max=<price>] [ref=<code>] [noreward]";
  *b = (buy_args){.plain = c->t.count, .ref = TALLY__NONE};
  for (int k = 2; k < c->t.count; k++)
    if (option_is(c, k, "ref=") || option_is(c, k, "max=") || tally__word_is(&c->t, k, "noreward")) {
      b->plain = k;
      break;
    }
  bool ref_seen = false;
  for (int k = b->plain; k < c->t.count; k++) {
    if (option_is(c, k, "ref=") && !ref_seen) {
      ref_seen = true;
      if (!ref_option(c, k, &b->ref)) {
        tally__cmd_refuse(c, TALLY_EBAD_REF);
        return false;
      }
    } else if (tally__word_is(&c->t, k, "noreward") && !b->noreward) {
      b->noreward = true;
    } else if (option_is(c, k, "max=") && !b->has_max) {
      b->has_max = true;
      int rc = tally__amount_parse(c->t.word[k] + 4, c->t.len[k] - 4, c->e->cfg.currency_decimals, &b->max);
      if (rc) {
        tally__reply(c->e, c->cmd, rc, 0, "max=: %s", tally_strerror(rc));
        return false;
      }
    } else {
      tally__cmd_usage(c, usage);
      return false;
    }
  }
  if (b->plain < 2 || b->plain > 3) {
    tally__cmd_usage(c, usage);
    return false;
  }
  return true;
}

/* A price raise never charges a buyer more than they agreed to: above
 * max= it is refused; without max=, above the unit price they last paid
 * or confirmed for this item it asks for a fresh CONFIRM. Returns true
 * when the command was answered. */
static bool price_guard(tally__cmd *c, uint32_t item, uint32_t qty, const buy_args *b) {
  tally__state *st = &c->e->st;
  const tally__item *it = &st->items[item];
  if (b->has_max && it->price > b->max) {
    char now[48], max[32];
    tally__format_amount(c->e, it->price, now, sizeof now);
    tally__amount_format(b->max, c->e->cfg.currency_decimals, max, sizeof max);
    tally__reply(c->e, c->cmd, TALLY_EOVER_MAX, 0, "%s: the price of %s is now %s, above your max=%s; not bought",
                 tally_strerror(TALLY_EOVER_MAX), it->sku, now, max);
    return true;
  }
  tally__account *a = &st->accounts[c->account];
  if (!a->consented || b->has_max) return false; /* first purchase: its own CONFIRM; max= is consent */
  int64_t agreed = 0;
  bool known = tally__agreed_price(st, c->account, item, &agreed);
  if (known ? it->price <= agreed : !a->agreed_lost) return false;
  ask_consent(c, item, qty, b->ref, known ? agreed : -1);
  return true;
}

void tally__cmd_buy(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "BUY", TALLY__NA);
  buy_args b;
  if (!buy_parse(c, &b)) return;
  c->use_reward = !b.noreward;
  uint32_t ref = b.ref;
  char sku[TALLY__SKU_BYTES_MAX + 1];
  uint32_t item = TALLY__NONE;
  if (tally__word_copy(&c->t, 1, sku, sizeof sku) == TALLY_OK) item = tally__item_find(&c->e->st, sku);
  if (item == TALLY__NONE) {
    tally__cmd_refuse(c, TALLY_EUNKNOWN_ITEM);
    return;
  }
  /* Highlights and reactions have their own commands, which check the
   * queue and take the text: BUY would skip both. */
  uint8_t kind = c->e->st.items[item].kind;
  if (kind == TALLY__KIND_HIGHLIGHT || kind == TALLY__KIND_REACTION) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: %s", tally_strerror(TALLY_EBAD_SYNTAX),
                 kind == TALLY__KIND_HIGHLIGHT ? "buy a highlight with HIGHLIGHT <tier> <message>"
                                               : "buy a reaction with REACT <emote>");
    return;
  }
  uint64_t qty = 1;
  if (b.plain == 3) {
    int rc = tally__uint_parse(c->t.word[2], c->t.len[2], TALLY__QTY_MAX, &qty);
    if (rc) {
      tally__cmd_refuse(c, rc);
      return;
    }
  }
  const char *key = tally__cmd_key(c, "");
  if (tally__key_find(&c->e->st, key) != TALLY__NONE) { /* a replay: its first answer */
    (void)tally__cmd_buy_item(c, item, (uint32_t)qty, key, NULL, ref);
    return;
  }
  const tally__item *it = &c->e->st.items[item];
  int rc = tally__check_stock(it, (uint32_t)qty);
  if (rc == TALLY_ETOO_MANY) {
    tally__reply(c->e, c->cmd, TALLY_ESOLD_OUT, 0, "Only %d left of %s", tally__item_left(it), it->sku);
    return;
  }
  if (!rc) rc = tally__check_drop(it);
  if (rc) {
    tally__cmd_refuse(c, rc);
    return;
  }
  bool raffle = it->drop_mode == TALLY__MODE_RAFFLE;
  if (raffle && qty != 1) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_QTY, 0, "a raffle entry is for one unit: BUY %s", it->sku);
    return;
  }
  if (price_guard(c, item, (uint32_t)qty, &b)) return;
  if (!c->e->st.accounts[c->account].consented) {
    ask_consent(c, item, (uint32_t)qty, ref, 0);
    return;
  }
  if (raffle) (void)tally__cmd_raffle_enter(c, item);
  else (void)tally__cmd_buy_item(c, item, (uint32_t)qty, key, NULL, ref);
}

/* CONFIRM EXTEND: more time for the pending code (accessibility). */
static void consent_extend(tally__cmd *c, tally__pending_consent *p) {
  if (!p || p->account != c->account || p->expires_mono_ms <= c->now) {
    tally__cmd_refuse(c, TALLY_EBAD_CODE);
    return;
  }
  if (p->extended >= TALLY__CONSENT_EXTENSIONS_MAX) {
    tally__reply(c->e, c->cmd, TALLY_ETOO_MANY, 0, "%s: the code cannot be extended again; BUY again for a new one",
                 tally_strerror(TALLY_ETOO_MANY));
    return;
  }
  p->extended++;
  p->expires_mono_ms += c->e->cfg.consent_ttl_s * 1000ull;
  tally__reply(c->e, c->cmd, TALLY_OK, 0, "Take your time: CONFIRM %s is valid for %llu more seconds.", p->code,
               (unsigned long long)((p->expires_mono_ms - c->now) / 1000));
}

void tally__cmd_confirm(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "CONFIRM", TALLY__NA);
  if (c->t.count != 2) {
    tally__cmd_usage(c, "CONFIRM <code> | CONFIRM EXTEND");
    return;
  }
  tally__state *st = &c->e->st;
  tally__account *a = &st->accounts[c->account];
  tally__pending_consent *p = a->consent_slot == TALLY__NONE ? NULL : &st->consents[a->consent_slot];
  if (tally__word_is(&c->t, 1, "EXTEND")) {
    consent_extend(c, p);
    return;
  }
  if (!p || p->account != c->account || p->expires_mono_ms <= c->now || !tally__word_is(&c->t, 1, p->code)) {
    tally__cmd_refuse(c, TALLY_EBAD_CODE);
    return;
  }
  /* The buyer agreed to the price shown: a price changed since is refused. */
  int64_t now_total;
  const tally__item *it = &st->items[p->item];
  if (!tally__mul_i64(it->price, p->qty, &now_total) || now_total != p->price_total) {
    p->expires_mono_ms = 0;
    a->consent_slot = TALLY__NONE;
    tally__cmd_refuse(c, TALLY_EPRICE_CHANGED);
    return;
  }
  /* Consent counts once the purchase it was asked for is taken; a refusal
   * (not enough credits yet, sold out, busy) leaves the code valid, so the
   * buyer can CONFIRM again. */
  uint8_t consented_before = a->consented; /* a CONFIRM of a price raise: consented already */
  a->consented = 1;
  bool raffle = it->drop_mode == TALLY__MODE_RAFFLE && it->drop_state == TALLY__DROP_LIVE;
  c->use_reward = true; /* a first purchase is a BUY too */
  int rc = raffle ? tally__cmd_raffle_enter(c, p->item) : tally__cmd_buy_item(c, p->item, p->qty, p->key, NULL, p->ref);
  if (rc != TALLY_OK && rc != TALLY_EEXISTS) {
    a->consented = consented_before;
    return;
  }
  tally__account_mark_dirty(st, c->account);
  p->expires_mono_ms = 0;
  p->account = TALLY__NONE;
  a->consent_slot = TALLY__NONE;
}

/* Room for one more message waiting for moderators; false: answered. */
static bool tip_hold_room(tally__cmd *c) {
  int rc = tally__held_tip_room(c->e, c->account, c->net, c->cmd->channel);
  if (rc == TALLY_ETOO_MANY)
    tally__reply(c->e, c->cmd, rc, 0, "%s: you have %u tip messages waiting for moderators; tip without a message, "
                 "or again once they are shown", tally_strerror(rc), c->e->cfg.held_tips_per_account);
  else if (rc)
    tally__reply(c->e, c->cmd, rc, 0, "%s: the moderation queue is full; tip without a message, or again in a "
                 "moment", tally_strerror(rc));
  return rc == TALLY_OK;
}

void tally__cmd_tip(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "TIP", TALLY__NA);
  if (c->t.count < 3) {
    tally__cmd_usage(c, "TIP <account> <amount> [message]");
    return;
  }
  uint32_t to = tally__cmd_named(c, 1);
  if (to == TALLY__NONE) {
    tally__cmd_refuse(c, TALLY_EUNKNOWN_ACCOUNT);
    return;
  }
  int64_t amount;
  if (tally__cmd_amount(c, 2, &amount)) return;
  /* Said in a channel with a hold: moderators see the message first. A
   * full moderation table refuses it before any charge (never said
   * unmoderated); a replay (known key) gets its first answer. */
  bool held = c->t.count > 3 && c->cmd->channel[0] && c->e->cfg.tip_message_hold_s > 0;
  const char *key = tally__cmd_key(c, "");
  if (held && tally__key_find(&c->e->st, key) == TALLY__NONE && !tip_hold_room(c)) return;
  tally__op *op = tally__cmd_op_slot(c);
  if (!op) {
    tally__cmd_refuse(c, TALLY_EBUSY);
    return;
  }
  uint64_t existing = 0;
  tally__decide_ctx ctx = ctx_of(c, key, &existing);
  int rc = tally__decide_tip(&c->e->st, &ctx, c->account, to, amount, op);
  if (rc == TALLY_OK) {
    op->event_id = tally__live_event_for(&c->e->st, TALLY__NONE, c->net, c->cmd->channel);
    tally__event_inflight(&c->e->st, op->event_id, +1);
    /* The channel's thank-you line, said once the tip is committed. */
    if (c->t.count > 3) tally__text_clip(op->note, sizeof op->note, c->t.rest[3]);
    op->held_message = held && op->note[0] && tally__tip_message_reserve(c->e, op);
    if (held && !op->held_message) op->note[0] = 0; /* no slot after all: the tip without its message */
  }
  tally__cmd_money_result(c, rc, existing);
}

void tally__cmd_refund(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "REFUND", TALLY__NA);
  if (c->t.count < 2 || c->t.count > 3) {
    tally__cmd_usage(c, "REFUND <receipt> [amount]");
    return;
  }
  uint64_t receipt;
  if (tally__uint_parse(c->t.word[1], c->t.len[1], UINT64_MAX / 10, &receipt)) {
    tally__cmd_refuse(c, TALLY_EUNKNOWN_RECEIPT);
    return;
  }
  int64_t amount = 0;
  if (c->t.count == 3 && tally__cmd_amount(c, 2, &amount)) return;
  tally__op *op = tally__cmd_op_slot(c);
  if (!op) {
    tally__cmd_refuse(c, TALLY_EBUSY);
    return;
  }
  uint64_t existing = 0;
  tally__decide_ctx ctx = ctx_of(c, tally__cmd_key(c, ""), &existing);
  int rc = tally__decide_refund(&c->e->st, &ctx, c->account, receipt, amount, op);
  if (rc == TALLY_OK) {
    /* The refund that completes the purchase's gives back the reward it
     * used, when no other refund of it is in flight: one in flight could
     * still fail, and the reward would be back on a purchase not refunded
     * in full (the simulator's R-return found it). */
    const tally__purchase *p = &c->e->st.purchases[op->purchase_slot];
    tally__reward_refund_attach(c->e, op, p->refund_held == op->amount && p->refunded + op->amount == p->amount);
  }
  tally__cmd_money_result(c, rc, existing);
}

/* Demo setting: a newly seen account gets credits once ("welcome:<name>"). */
void tally__cmd_welcome(tally__cmd *c, uint32_t account) {
  tally__op *op = tally__cmd_op_slot(c);
  if (!op) return; /* busy: the next command tries again (the key keeps it once) */
  char key[TALLY__KEY_BYTES_MAX + 1];
  snprintf(key, sizeof key, "welcome:%s", tally__account_name(&c->e->st, account));
  tally__decide_ctx ctx = ctx_of(c, key, NULL);
  int rc = tally__decide_grant(&c->e->st, &ctx, account, c->e->cfg.welcome_grant_minor, op);
  if (rc) {
    tally__cmd_op_unused(c);
    return;
  }
  tally__names_unref(&c->e->st.names, op->origin); /* silent: the command itself gets the answer */
  op->origin = 0;
  op->welcome = true;
  c->e->st.accounts[account].welcome_inflight = true;
  tally__cmd_op_added(c);
}

/* A grant request that can never be applied: logged, and left out of
 * later polls (until a restart) so it cannot crowd out the others. */
static void grant_skip(tally__engine *e, int64_t request_id, const char *why) {
  for (uint32_t i = 0; i < TALLY__GRANT_SKIPPED_MAX; i++)
    if (e->grant_skipped[i] == request_id) return;
  fprintf(stderr, "tally: grant request %lld not applied: %s\n", (long long)request_id, why);
  e->grant_skipped[e->grant_skipped_next++ % TALLY__GRANT_SKIPPED_MAX] = request_id;
}

void tally__grant_request_apply(tally__engine *e, int64_t request_id, const char *account,
                                int64_t amount) {
  if (request_id > e->last_grant_request) e->last_grant_request = request_id;
  tally__command_frame none = {0};
  tally__cmd c = {.e = e, .cmd = &none, .now = tally__now_mono_ms(e), .wall = tally__now_wall_ms(e),
                  .identity = TALLY__NONE};
  uint32_t to;
  if (amount <= 0 || tally__cmd_account(&c, account, &to) != TALLY_OK) {
    grant_skip(e, request_id, "unknown or bad account");
    return;
  }
  to = tally__account_person(&e->st, to); /* a linked identity's grant lands in its person's wallet */
  tally__op *op = tally__cmd_op_slot(&c);
  if (!op) return; /* busy: picked up again at the next poll */
  char key[TALLY__KEY_BYTES_MAX + 1];
  snprintf(key, sizeof key, "grant-request:%lld", (long long)request_id);
  tally__decide_ctx ctx = ctx_of(&c, key, NULL);
  int rc = tally__decide_grant(&e->st, &ctx, to, amount, op);
  if (rc == TALLY_EBUSY) {
    tally__cmd_op_unused(&c);
    return; /* picked up again at the next poll */
  }
  if (rc) tally__cmd_op_unused(&c);
  else {
    op->grant_request = request_id;
    tally__cmd_op_added(&c);
  }
  /* EEXISTS: in flight or committed under its key (the poll ran before the
   * commit); anything else can never apply. */
  if (rc && rc != TALLY_EEXISTS) grant_skip(e, request_id, tally_strerror(rc));
}
