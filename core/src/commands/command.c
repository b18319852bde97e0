/* command.c — from a chat line to a decision: checks the text, rate limits,
 * finds the account, dispatches on the command word, and answers refusals
 * at once. Money commands end in decide.c and are answered after commit.
 * Every refusal names its reason (tally_strerror of a specific code). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audience.h"
#include "commands.h"
#include "describe.h"
#include "hooks.h"
#include "live.h"
#include "decide.h"
#include "text.h"
#include "tipmsg.h"

/* ---- rate limits: token buckets in thousandths of a command --------------- */
bool tally__bucket_take(int64_t *tokens, int64_t *at_ms, uint32_t per_min, uint64_t now) {
  if (per_min == 0) return true;
  int64_t cap = (int64_t)(per_min < 5 ? 5 : per_min / 4 + 5) * 1000;
  if (*at_ms == 0) *tokens = cap;
  int64_t refill = ((int64_t)now - *at_ms) * per_min / 60;
  *at_ms = (int64_t)now;
  *tokens = *tokens + refill > cap ? cap : *tokens + refill;
  if (*tokens < 1000) return false;
  *tokens -= 1000;
  return true;
}

typedef struct channel_probe {
  const tally__state *st;
  uint16_t net;
  const char *name;
} channel_probe;

/* A room is (network, name): "#live" on two networks has two buckets. */
static bool channel_eq(const void *ud, uint32_t i) {
  const channel_probe *p = ud;
  return p->st->channels[i].net == p->net && strcmp(p->st->channels[i].name, p->name) == 0;
}

/* A bucket that has been idle long enough to refill is the same as a new
 * one: when the table is full, such a bucket is given to the new channel.
 * When every channel is busy, new channels are refused (a global limit). */
static uint32_t channel_bucket(tally__state *st, uint16_t net, const char *channel, uint32_t per_min, uint64_t now) {
  uint64_t h = tally__hash_u64(tally__hash_str(channel) ^ net);
  if (!h) h = 1;
  channel_probe p = {st, net, channel};
  uint32_t i = tally__map_find(&st->channel_by_name, h, channel_eq, &p);
  if (i != TALLY__NONE) return i;
  if (st->channel_count < TALLY__CHANNELS_MAX) {
    i = st->channel_count++;
  } else {
    int64_t refill_ms = (int64_t)(per_min < 5 ? 5 : per_min / 4 + 5) * 60000 / per_min;
    for (uint32_t n = 0; n < TALLY__CHANNELS_MAX && i == TALLY__NONE; n++) {
      uint32_t k = st->channel_cursor++ % TALLY__CHANNELS_MAX;
      if ((int64_t)now - st->channels[k].at_ms >= refill_ms) i = k;
    }
    if (i == TALLY__NONE) return TALLY__NONE;
    tally__map_del(&st->channel_by_name, st->channels[i].hash, i);
  }
  tally__bucket *b = &st->channels[i];
  memset(b, 0, sizeof *b);
  b->hash = h;
  b->net = net;
  tally__text_clip(b->name, sizeof b->name, channel); /* fits: command.c holds rooms to TALLY__ROOM_KEPT_BYTES_MAX */
  if (tally__map_put(&st->channel_by_name, h, i)) return TALLY__NONE;
  return i;
}

static bool channel_allows(tally__engine *e, uint16_t net, const char *channel, uint64_t now) {
  if (!channel[0] || e->cfg.rate_channel_per_min == 0) return true;
  uint32_t i = channel_bucket(&e->st, net, channel, e->cfg.rate_channel_per_min, now);
  if (i == TALLY__NONE) return false;
  tally__bucket *b = &e->st.channels[i];
  return tally__bucket_take(&b->tokens_milli, &b->at_ms, e->cfg.rate_channel_per_min, now);
}

/* A buy of a live drop skips the channel's bucket: the LIVE NOW line asks
 * the whole channel to type `!buy <sku>` at once, and such a line is
 * answered in memory (sold, sold out) without a database round trip. It
 * still needs a logged-in sender and passes the global bucket and the
 * sender's own, which hold back a flood by a few accounts. A first-time
 * buyer's CONFIRM of a pending consent for a live drop counts as its buy. */
static bool live_drop_buy(const tally__cmd *c) {
  const tally__state *st = &c->e->st;
  if (c->account == TALLY__NONE) return false;
  uint32_t item = TALLY__NONE;
  if (tally__word_is(&c->t, 0, "BUY") && c->t.count >= 2) {
    char sku[TALLY__SKU_BYTES_MAX + 1];
    if (tally__word_copy(&c->t, 1, sku, sizeof sku) == TALLY_OK) item = tally__item_find(st, sku);
  } else if (tally__word_is(&c->t, 0, "CONFIRM")) {
    uint32_t slot = st->accounts[c->account].consent_slot;
    if (slot != TALLY__NONE && st->consents[slot].account == c->account) item = st->consents[slot].item;
  }
  return item != TALLY__NONE && !st->items[item].deleted && st->items[item].drop_state == TALLY__DROP_LIVE;
}

/* ---- shared helpers for the command files ---------------------------------- */
int tally__cmd_account(tally__cmd *c, const char *account, uint32_t *index) {
  bool existed = tally__identity_find(&c->e->st, c->net, account, strlen(account)) != TALLY__NONE;
  int rc = tally__identity_get(&c->e->st, c->net, account, index);
  if (rc) return rc;
  if (!existed) {
    c->e->st.accounts[*index].first_seen_ms = c->wall; /* its accounts row's created_ms is the batch's */
    tally__account_mark_dirty(&c->e->st, *index);
    if (c->e->cfg.welcome_grant_minor > 0) tally__cmd_welcome(c, *index);
  }
  return TALLY_OK;
}

/* A linked identity names its person's wallet (a tip to it lands there),
 * also while its link is in flight: then the wallet it is joining, so no
 * credit reaches the own wallet whose balance the link moves. */
uint32_t tally__cmd_named(tally__cmd *c, int token) {
  uint32_t i = tally__identity_find(&c->e->st, c->net, c->t.word[token], c->t.len[token]);
  return i == TALLY__NONE ? i : tally__account_person(&c->e->st, i);
}

bool tally__cmd_may_sell(tally__cmd *c) {
  if (c->account != TALLY__NONE && c->e->st.accounts[c->account].is_creator) return true;
  tally__reply_hint(c->e, c->cmd, TALLY_ENO_PERMISSION, TALLY_HINT_ADMIN_ROLE,
                    "%s: selling needs the creator role, which an admin gives with TALLY ROLE <account> creator",
                    tally_strerror(TALLY_ENO_PERMISSION));
  return false;
}

bool tally__cmd_item_room(tally__cmd *c) {
  const tally__state *st = &c->e->st;
  uint32_t mine = 0;
  for (uint32_t i = 0; i < st->item_count; i++) mine += st->items[i].creator == c->account;
  if (st->item_count >= st->cfg->items_max) {
    tally__cmd_refuse(c, TALLY_ETOO_MANY);
    return false;
  }
  if (mine < st->cfg->items_per_creator) return true;
  tally__reply(c->e, c->cmd, TALLY_ETOO_MANY, 0, "%s: you have %u items, the most one creator may have "
               "(deleted items and drops count: memory keeps them)", tally_strerror(TALLY_ETOO_MANY), mine);
  return false;
}

bool tally__cmd_item_new(tally__cmd *c, const char *sku, uint32_t *index) {
  if (!tally__cmd_item_room(c)) return false;
  int rc = tally__item_add(&c->e->st, sku, index);
  if (rc) tally__cmd_refuse(c, rc);
  return rc == TALLY_OK;
}

void tally__cmd_refuse(tally__cmd *c, int code) {
  tally__reply(c->e, c->cmd, code, 0, "%s", tally_strerror(code));
}

void tally__cmd_usage(tally__cmd *c, const char *usage) {
  tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s. Usage: %s", tally_strerror(TALLY_EBAD_SYNTAX),
               usage);
}

tally__op *tally__cmd_op_slot(tally__cmd *c) {
  tally__batch *b = tally__engine_open_batch(c->e);
  if (!b) return NULL;
  return tally__batch_append(b);
}

void tally__cmd_op_unused(tally__cmd *c) {
  tally__batch *b = c->e->open;
  tally__op *op = &b->ops[--b->op_count];
  tally__names_unref(&c->e->st.names, op->origin); /* 0 unless its decision took one */
  op->origin = 0;
}

void tally__cmd_op_added(tally__cmd *c) {
  tally__batch *b = c->e->open; /* the op is the last one tally__cmd_op_slot appended */
  assert(b && b->op_count > 0);
  tally__engine_pending_add(c->e, &b->ops[b->op_count - 1]);
}

void tally__cmd_ack_after_commit(tally__cmd *c, const char *fmt, ...) {
  tally__op *op = tally__cmd_op_slot(c);
  if (!op) {
    tally__cmd_refuse(c, TALLY_EBUSY);
    return;
  }
  memset(op, 0, sizeof *op);
  op->type = TALLY__OP_ACK;
  op->req_id = c->cmd->req_id;
  op->net = c->net;
  op->origin = c->origin;
  tally__names_ref(&c->e->st.names, op->origin);
  tally__text_clip(op->channel, sizeof op->channel, c->cmd->channel);
  tally__engine_pending_add(c->e, op); /* its answer needs room in the effects ring too */
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(op->note, sizeof op->note, fmt, ap);
  va_end(ap);
  /* The note quotes user text (a bio...): never cut inside a character. */
  if (n > 0) tally__text_trim_tail(op->note, (size_t)n < sizeof op->note ? (size_t)n : sizeof op->note - 1);
}

/* Fills a record op (not a transfer) from the command. */
tally__op *tally__cmd_record_op(tally__cmd *c, uint8_t type) {
  tally__op *op = tally__cmd_op_slot(c);
  if (!op) {
    tally__cmd_refuse(c, TALLY_EBUSY);
    return NULL;
  }
  memset(op, 0, sizeof *op);
  op->type = type;
  op->account = c->account;
  op->counterparty = TALLY__NONE;
  op->req_id = c->cmd->req_id;
  op->created_ms = c->wall;
  op->net = c->net;
  op->origin = c->origin;
  tally__names_ref(&c->e->st.names, op->origin);
  tally__text_clip(op->channel, sizeof op->channel, c->cmd->channel);
  tally__cmd_op_added(c);
  return op;
}

int tally__cmd_amount(tally__cmd *c, int token, int64_t *out) {
  int rc = tally__amount_parse(c->t.word[token], c->t.len[token], c->e->cfg.currency_decimals, out);
  if (rc) tally__cmd_refuse(c, rc);
  return rc;
}

/* The idempotency key of this command: (network, identity, message id).
 * On the irc network it is the message id alone, as before identities: the
 * server assigns message ids (IRCv3 msgid, or the module's own counter),
 * unique across the network whoever sends, and a command retried across an
 * upgrade still finds the key the previous release stored. Elsewhere
 * clients choose their own ids (XMPP, Matrix), so the key names the
 * sender's identity id (which implies its network): "<prefix>i<id>/<msg id>". */
const char *tally__cmd_key(tally__cmd *c, const char *prefix) {
  const tally__state *st = &c->e->st;
  if (st->networks[c->net].id == TALLY__NETWORK_IRC_ID || c->account == TALLY__NONE)
    snprintf(c->key, sizeof c->key, "%s%s", prefix, c->cmd->msg_id);
  else
    snprintf(c->key, sizeof c->key, "%si%llu/%s", prefix, (unsigned long long)st->accounts[c->identity].identity_id,
             c->cmd->msg_id);
  return c->key;
}

/* ---- dispatch ---------------------------------------------------------------- */
/* A presence change from the adapter: no reply, no rate limit (the adapter
 * sends one per join or part, not per line). */
static void presence(tally__engine *e, const tally__command_frame *frame, uint16_t net) {
  if (!frame->account[0] || !frame->channel[0]) return;
  tally__state *st = &e->st;
  if (tally__live_event_in(st, net, frame->channel) == TALLY__NONE) return;
  tally__command_frame none = {0};
  tally__cmd c = {.e = e, .cmd = &none, .now = tally__now_mono_ms(e), .wall = tally__now_wall_ms(e), .net = net};
  uint32_t account;
  if (tally__cmd_account(&c, frame->account, &account)) return;
  if (e->st.accounts[account].link_state == TALLY__LINK_LINKED) account = tally__account_person(&e->st, account);
  tally__audience_presence(e, net, frame->channel, account, strcmp(frame->text, "PRESENCE JOIN") == 0);
}

/* Whether `account` is one of the config's `admins` (names separated by
 * commas or spaces): such an account is an admin whatever the adapter says,
 * so a network without operators can have admins. */
static bool admin_listed(const char *admins, const char *account) {
  size_t n = strlen(account);
  if (!admins || n == 0) return false;
  for (const char *p = admins; *p;) {
    p += strspn(p, ", ");
    size_t len = strcspn(p, ", ");
    if (len == n && memcmp(p, account, n) == 0) return true;
    p += len;
  }
  return false;
}

/* The role rule of the word's row (command_rows.h) for this form, decided here once for
 * every handler; false: refused (answered). */
static bool roles_allow(tally__cmd *c, size_t index) {
  uint8_t sets[2];
  if (!tally__role_rule_find(c->e->hooks->commands, index, &c->t, sets)) return true;
  for (int k = 0; k < 2; k++) {
    const tally__role_set_info *s = &tally__role_sets[sets[k]];
    if (s->any_of == 0 || (c->roles & s->any_of)) continue;
    tally__reply_hint(c->e, c->cmd, TALLY_ENO_PERMISSION, s->hint, "%s%s", tally_strerror(TALLY_ENO_PERMISSION),
                      s->why);
    return false;
  }
  return true;
}

void tally__command_handle(tally__engine *e, const tally__command_frame *frame) {
  tally__cmd c = {.e = e, .cmd = frame, .now = tally__now_mono_ms(e), .wall = tally__now_wall_ms(e),
                  .account = TALLY__NONE, .roles = (uint32_t)frame->roles, .identity = TALLY__NONE};
  /* Every string of the frame goes into replies or the ledger: all must be
   * clean UTF-8 without control characters, not only the command text. */
  const char *fields[] = {frame->account, frame->channel, frame->msg_id, frame->origin, frame->nick, frame->network};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    if (tally__text_check(fields[i], strlen(fields[i])) != TALLY_OK) {
      tally__emit(e, TALLY_EFFECT_REPLY, TALLY_EBAD_UTF8, frame->req_id, 0,
                  i == 3 ? "" : frame->origin, "", "invalid characters in the message's metadata");
      return;
    }
  /* The frame's limits fit every network (tally.h); the names the engine
   * keeps (in ops, accounts, rooms) are held to what its tables store. */
  if (strlen(frame->origin) > TALLY__ORIGIN_KEPT_BYTES_MAX || strlen(frame->account) > TALLY__IDENTITY_KEPT_BYTES_MAX ||
      strlen(frame->channel) > TALLY__ROOM_KEPT_BYTES_MAX) {
    if (!(frame->roles & TALLY__ROLE_PRESENCE))
      tally__emit(e, TALLY_EFFECT_REPLY, TALLY_ETOOBIG, frame->req_id, 0, frame->origin, "",
                  "a name of this message is longer than this engine keeps");
    return;
  }
  /* Every name the frame carries belongs to its network. */
  int rc = tally__network_get(&e->st, frame->network[0] ? frame->network : e->cfg.network, &c.net);
  if (rc) {
    if (!(frame->roles & TALLY__ROLE_PRESENCE)) tally__cmd_refuse(&c, rc);
    return;
  }
  /* `admins` names accounts of the configured network only: "alice" on
   * another network is another person. */
  if ((!frame->network[0] || strcmp(frame->network, e->cfg.network) == 0) && admin_listed(e->cfg.admins, frame->account))
    c.roles |= TALLY_ROLE_ADMIN;
  if (frame->roles & TALLY__ROLE_PRESENCE) {
    presence(e, frame, c.net);
    return;
  }
  size_t len = strlen(frame->text);
  rc = tally__text_check(frame->text, len);
  if (rc == TALLY_OK) rc = tally__tokenize(frame->text, &c.t);
  if (rc == TALLY_ETOO_MANY) rc = TALLY_EBAD_SYNTAX;
  if (rc == TALLY_OK && c.t.count == 0) rc = TALLY_EUNKNOWN_CMD;
  if (rc) {
    tally__cmd_refuse(&c, rc);
    return;
  }
  /* The core's words and every registered feature's (describe.c built the
   * set once, at engine creation: runtime.c). */
  size_t index = 0;
  const tally__command_row *entry = tally__command_find(e->hooks->commands, &c.t, &index);
  if (!entry) {
    tally__reply(e, frame, TALLY_EUNKNOWN_CMD, 0, "%s. Try: TALLY HELP", tally_strerror(TALLY_EUNKNOWN_CMD));
    return;
  }
  if (!tally__bucket_take(&e->st.global_tokens_milli, &e->st.global_at_ms, e->cfg.rate_global_per_min, c.now)) {
    tally__cmd_refuse(&c, TALLY_ERATE_LIMITED);
    return;
  }
  /* The account's bucket first: a line its sender may not send costs the
   * channel nothing, so a few flooding accounts cannot use up the channel's
   * bucket for everyone else there. */
  if (frame->account[0]) {
    if ((rc = tally__cmd_account(&c, frame->account, &c.account))) {
      tally__cmd_refuse(&c, rc == TALLY_ETOO_MANY ? TALLY_EBUSY : rc);
      return;
    }
    tally__account *a = &e->st.accounts[c.account];
    if (!tally__bucket_take(&a->rate_tokens_milli, &a->rate_at_ms, e->cfg.rate_account_per_min, c.now)) {
      tally__cmd_refuse(&c, TALLY_ERATE_LIMITED);
      return;
    }
    /* One wallet across networks: a linked identity's commands use its
     * person's wallet (balance, limits, caps, consents); c.identity stays
     * the sender's own, which keys and receipts name. While its link is in
     * flight, its own wallet is being emptied: money commands wait. */
    c.identity = c.account;
    if (a->link_state == TALLY__LINK_PENDING && (entry->flags & TALLY_COMMAND_NEEDS_ACCOUNT) && entry->fn != tally__cmd_link) {
      tally__reply(e, frame, TALLY_EBUSY, 0, "%s: your LINK is being recorded, try again in a moment",
                   tally_strerror(TALLY_EBUSY));
      return;
    }
    if (a->link_state == TALLY__LINK_LINKED || a->link_state == TALLY__LINK_UNLINKING)
      c.account = tally__account_person(&e->st, c.account);
  }
  if (!live_drop_buy(&c) && !channel_allows(e, c.net, frame->channel, c.now)) {
    tally__cmd_refuse(&c, TALLY_ERATE_LIMITED);
    return;
  }
  if (!frame->account[0] && (entry->flags & TALLY_COMMAND_NEEDS_ACCOUNT)) {
    tally__reply(e, frame, TALLY_ENOT_LOGGED_IN, 0,
                 "%s: log in to your account first", /* hint TALLY_HINT_LOG_IN: the adapter says how */
                 tally_strerror(TALLY_ENOT_LOGGED_IN));
    return;
  }
  /* Personal data (an address, a download link) is refused before anything
   * about it is looked up: a network that cannot intercept lines (a Matrix
   * room) has shown the line already, the answer must not add to it. */
  if ((entry->flags & TALLY_COMMAND_PRIVATE_ONLY) && frame->channel[0]) {
    tally__reply_hint(e, frame, TALLY_EBAD_SYNTAX, TALLY_HINT_SEND_PRIVATELY, "send %s privately, not in a channel",
                      entry->word);
    return;
  }
  if (!roles_allow(&c, index)) return;
  /* Whom to answer, interned once (a reference for the command's time), so
   * the ops it makes take theirs without a failure. A full table refuses
   * only commands that bring a new name. */
  if ((rc = tally__origin_take(&e->st, c.net, frame->origin, &c.origin))) {
    tally__cmd_refuse(&c, rc);
    return;
  }
  entry->fn(&c);
  tally__names_unref(&e->st.names, c.origin);
}
