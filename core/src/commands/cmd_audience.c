/* cmd_audience.c — what an event's audience and its host do beyond buying:
 * HIGHLIGHT and REACT (paid, shown in the channel), EVENT TIER and EVENT
 * REACT (the host's prices for them), REFCODE (a creator's referral codes
 * for affiliates) and TALLY PRIVACY (not being named in summaries). */
#include <stdio.h>
#include <string.h>

#include "text.h"
#include "command_rows.h"
#include "commands.h"
#include "highlight.h"
#include "live.h"

static bool name_valid(const char *s, size_t n, size_t max) {
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_')) return false;
  return true;
}

/* The running event of the command's channel, or TALLY__NONE (answered). */
static uint32_t running_event(tally__cmd *c) {
  uint32_t ev = tally__live_event_in(&c->e->st, c->net, c->cmd->channel);
  if (ev == TALLY__NONE)
    tally__reply(c->e, c->cmd, TALLY_ENOT_IN_CHANNEL, 0, "%s: this needs a running event in its channel",
                 tally_strerror(TALLY_ENOT_IN_CHANNEL));
  return ev;
}

/* Highlights and reactions are paid in one step: the first purchase's
 * CONFIRM must have happened before. */
static bool consented(tally__cmd *c) {
  if (c->e->st.accounts[c->account].consented) return true;
  tally__reply(c->e, c->cmd, TALLY_ECONSENT, 0, "%s: make a first purchase (BUY, then CONFIRM) before paying for this",
               tally_strerror(TALLY_ECONSENT));
  return false;
}

static void highlight_list(tally__cmd *c, const tally__event *ev) {
  const tally__state *st = &c->e->st;
  char list[TALLY_TEXT_BYTES_MAX / 2] = "";
  size_t n = 0;
  char prefix[TALLY__SKU_BYTES_MAX + 1];
  int plen = snprintf(prefix, sizeof prefix, "hl-%llu-", (unsigned long long)ev->id);
  for (uint32_t i = 0; i < st->item_count; i++) {
    const tally__item *it = &st->items[i];
    if (it->kind != TALLY__KIND_HIGHLIGHT || it->deleted || strncmp(it->sku, prefix, (size_t)plen) != 0) continue;
    char price[48];
    tally__format_amount(c->e, it->price, price, sizeof price);
    int w = snprintf(list + n, sizeof list - n, "%s%s %s for %u s", n ? ", " : "", it->sku + plen, price, it->show_s);
    if (w > 0 && (size_t)w < sizeof list - n) n += (size_t)w;
  }
  if (!n) tally__reply(c->e, c->cmd, TALLY_OK, 0, "No highlights on sale in this event.");
  else tally__reply(c->e, c->cmd, TALLY_OK, 0, "Highlights: %s. HIGHLIGHT <tier> <message>", list);
}

void tally__cmd_highlight(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "HIGHLIGHT", TALLY__NA | TALLY__EV);
  uint32_t ev = running_event(c);
  if (ev == TALLY__NONE) return;
  tally__state *st = &c->e->st;
  if (c->t.count == 1) {
    highlight_list(c, &st->events[ev]);
    return;
  }
  if (c->t.count == 2 && tally__word_is(&c->t, 1, "REMOVE")) {
    /* moderators only: command_table.h's role rule, checked by the dispatcher */
    bool removed = tally__highlight_remove(c->e, c->net, c->cmd->channel);
    tally__reply(c->e, c->cmd, removed ? TALLY_OK : TALLY_ENOTFOUND, 0,
                 removed ? "Highlight removed (it stays paid)." : "No highlight is showing here.");
    return;
  }
  char tier[TALLY__TIER_NAME_BYTES_MAX + 1];
  if (c->t.count < 3 || !name_valid(c->t.word[1], c->t.len[1], TALLY__TIER_NAME_BYTES_MAX)) {
    tally__cmd_usage(c, "HIGHLIGHT <tier> <message> | HIGHLIGHT (tiers) | HIGHLIGHT REMOVE (moderators)");
    return;
  }
  snprintf(tier, sizeof tier, "%.*s", (int)c->t.len[1], c->t.word[1]);
  uint32_t item = tally__highlight_item(st, st->events[ev].id, tier);
  if (item == TALLY__NONE) {
    tally__reply(c->e, c->cmd, TALLY_EUNKNOWN_ITEM, 0, "no highlight tier %s here; HIGHLIGHT lists them", tier);
    return;
  }
  const char *text = c->t.rest[2];
  if (strlen(text) >= sizeof st->highlights[0].text) {
    tally__reply(c->e, c->cmd, TALLY_ETOOBIG, 0, "a highlight is at most %zu bytes", sizeof st->highlights[0].text - 1);
    return;
  }
  if (!consented(c)) return;
  /* Refused before payment; a replay (known key) gets its first answer. */
  const char *key = tally__cmd_key(c, "");
  int room = tally__key_find(st, key) == TALLY__NONE ? tally__highlight_room(st, c->account, item) : TALLY_OK;
  if (room == TALLY_ETOO_MANY) {
    tally__reply(c->e, c->cmd, room, 0, "%s: you have %u highlights waiting or showing; buy more once they are shown",
                 tally_strerror(room), c->e->cfg.highlights_per_account);
    return;
  }
  if (room) {
    tally__reply(c->e, c->cmd, room, 0, "%s: the highlight queue is full", tally_strerror(room));
    return;
  }
  (void)tally__cmd_buy_item(c, item, 1, key, text, TALLY__NONE);
}

void tally__cmd_react(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "REACT", TALLY__NA | TALLY__EV);
  uint32_t ev = running_event(c);
  if (ev == TALLY__NONE) return;
  tally__state *st = &c->e->st;
  if (c->t.count != 2 || c->t.len[1] > TALLY__EMOTE_BYTES_MAX) {
    tally__cmd_usage(c, "REACT <emote> (one word, at most 16 bytes)");
    return;
  }
  uint32_t item = tally__highlight_item(st, st->events[ev].id, NULL);
  if (item == TALLY__NONE) {
    tally__reply(c->e, c->cmd, TALLY_EUNKNOWN_ITEM, 0, "reactions are not on sale in this event");
    return;
  }
  if (!consented(c)) return;
  char emote[TALLY__EMOTE_BYTES_MAX + 1];
  snprintf(emote, sizeof emote, "%.*s", (int)c->t.len[1], c->t.word[1]);
  (void)tally__cmd_buy_item(c, item, 1, tally__cmd_key(c, ""), emote, TALLY__NONE);
}

/* The event's item for a tier (name) or its reactions (NULL), made or
 * repriced by the host. */
static void event_price(tally__cmd *c, const tally__event *ev, const char *name, int64_t price, uint32_t show_s) {
  tally__state *st = &c->e->st;
  char sku[TALLY__SKU_BYTES_MAX + 1];
  tally__highlight_sku(ev->id, name, sku);
  uint32_t i = tally__item_find(st, sku);
  if (i != TALLY__NONE && !tally__highlight_item_is(st, i, ev->id, name)) {
    /* Not made by EVENT TIER/REACT for this event: taking it over would
     * pay its creator for every highlight. */
    fprintf(stderr, "tally: sku %s is taken by an item that is not event %llu's %s; refused\n", sku,
            (unsigned long long)ev->id, name ? "highlight tier" : "reactions");
    tally__reply(c->e, c->cmd, TALLY_EEXISTS, 0, "%s: sku %s is taken by another item; pick another tier name",
                 tally_strerror(TALLY_EEXISTS), sku);
    return;
  }
  if (i == TALLY__NONE) {
    if (!tally__cmd_item_new(c, sku, &i)) return;
    tally__item *it = &st->items[i];
    it->creator = c->account;
    it->kind = name ? TALLY__KIND_HIGHLIGHT : TALLY__KIND_REACTION;
    it->drop_event = ev->id;
    it->refund_window_s = 86400; /* the engine refunds what it could not show */
    it->drop_net = ev->net;
    tally__text_clip(it->drop_channel, sizeof it->drop_channel, ev->channel);
    snprintf(it->title, sizeof it->title, name ? "highlight %s" : "reaction%s", name ? name : "");
  }
  tally__item *it = &st->items[i];
  it->price = price;
  it->show_s = show_s;
  it->deleted = false;
  tally__item_mark_dirty(st, i);
  char amount[48];
  tally__format_amount(c->e, price, amount, sizeof amount);
  if (name) {
    tally__say say;
    tally__say_init(&say, TALLY_MSG_HIGHLIGHTS_ON_SALE);
    tally__sayf(&say, "t-m", "Highlights on sale: %s pins your message for %u s, %s. Type: ", name, show_s, amount);
    size_t command = say.len; /* the adapter says the command its network's way */
    tally__sayf(&say, "t", "HIGHLIGHT %s <message>", name);
    tally__say_span(&say, TALLY_ARG_COMMAND, command);
    tally__say_value(&say, 1, price, TALLY__DECIMALS(c->e));
    tally__announce_say_in(c->e, ev->net, ev->channel, &say);
  } else {
    tally__say say;
    tally__say_init(&say, TALLY_MSG_REACTIONS_ON_SALE);
    tally__sayf(&say, "m", "Paid reactions on sale: %s each. Type: ", amount);
    size_t command = say.len; /* the adapter says the command its network's way */
    tally__sayf(&say, "", "REACT <emote>");
    tally__say_span(&say, TALLY_ARG_COMMAND, command);
    tally__say_value(&say, 0, price, TALLY__DECIMALS(c->e));
    tally__announce_say_in(c->e, ev->net, ev->channel, &say);
  }
  tally__cmd_ack_after_commit(c, "%s priced.", name ? "Highlight tier" : "Reactions");
}

void tally__cmd_event_prices(tally__cmd *c, uint32_t event) {
  const tally__event *ev = &c->e->st.events[event];
  int64_t price;
  uint64_t seconds;
  if (tally__word_is(&c->t, 1, "TIER")) {
    if (c->t.count != 5 || !name_valid(c->t.word[2], c->t.len[2], TALLY__TIER_NAME_BYTES_MAX) ||
        tally__amount_parse(c->t.word[3], c->t.len[3], c->e->cfg.currency_decimals, &price) ||
        tally__uint_parse(c->t.word[4], c->t.len[4], TALLY__TIER_SECONDS_MAX, &seconds)) {
      tally__cmd_usage(c, "EVENT TIER <name a-z0-9, 1-12> <price> <seconds 1-3600>");
      return;
    }
    char name[TALLY__TIER_NAME_BYTES_MAX + 1];
    snprintf(name, sizeof name, "%.*s", (int)c->t.len[2], c->t.word[2]);
    event_price(c, ev, name, price, (uint32_t)seconds);
    return;
  }
  if (c->t.count != 3 || tally__amount_parse(c->t.word[2], c->t.len[2], c->e->cfg.currency_decimals, &price)) {
    tally__cmd_usage(c, "EVENT REACT <price>");
    return;
  }
  event_price(c, ev, NULL, price, 0);
}

void tally__cmd_refcode(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "REFCODE", TALLY__NA);
  tally__state *st = &c->e->st;
  if (!st->accounts[c->account].is_creator) {
    tally__reply(c->e, c->cmd, TALLY_ENO_PERMISSION, 0, "%s: only creators issue referral codes",
                 tally_strerror(TALLY_ENO_PERMISSION));
    return;
  }
  if (c->t.count == 1 || (c->t.count == 2 && tally__word_is(&c->t, 1, "LIST"))) {
    char list[TALLY_TEXT_BYTES_MAX / 2] = "";
    size_t n = 0;
    for (uint32_t i = 0; i < st->refcode_count; i++) {
      const tally__refcode *r = &st->refcodes[i];
      if (r->creator != c->account) continue;
      int w = snprintf(list + n, sizeof list - n, "%s%s -> %s %u bps", n ? ", " : "", r->code,
                       tally__account_label(st, r->affiliate), r->bps);
      if (w > 0 && (size_t)w < sizeof list - n) n += (size_t)w;
    }
    tally__reply(c->e, c->cmd, TALLY_OK, 0, n ? "Your referral codes: %s" : "No referral codes yet.%s", list);
    return;
  }
  uint64_t bps;
  if (c->t.count != 5 || !tally__word_is(&c->t, 1, "ADD") || !name_valid(c->t.word[2], c->t.len[2], 24) ||
      c->t.len[3] >= TALLY_TEXT_BYTES_MAX || tally__uint_parse(c->t.word[4], c->t.len[4], 5000, &bps) || bps == 0) {
    tally__cmd_usage(c, "REFCODE ADD <code a-z0-9-_> <affiliate account> <bps 1-5000> | REFCODE LIST");
    return;
  }
  char code[TALLY__SKU_BYTES_MAX + 1], name[TALLY_TEXT_BYTES_MAX];
  snprintf(code, sizeof code, "%.*s", (int)c->t.len[2], c->t.word[2]);
  snprintf(name, sizeof name, "%.*s", (int)c->t.len[3], c->t.word[3]);
  for (uint32_t i = 0; i < st->refcode_count; i++)
    if (strcmp(st->refcodes[i].code, code) == 0) {
      tally__reply(c->e, c->cmd, TALLY_EEXISTS, 0, "referral code %s is taken", code);
      return;
    }
  if (st->refcode_count >= TALLY__REFCODES_MAX) {
    tally__cmd_refuse(c, TALLY_ETOO_MANY);
    return;
  }
  uint32_t affiliate;
  int rc = tally__text_check(name, strlen(name));
  if (!rc) rc = tally__cmd_account(c, name, &affiliate);
  if (!rc) affiliate = tally__account_person(&c->e->st, affiliate);
  if (rc) {
    tally__cmd_refuse(c, rc == TALLY_EBAD_UTF8 ? rc : TALLY_EUNKNOWN_ACCOUNT);
    return;
  }
  if (affiliate == c->account) {
    tally__cmd_refuse(c, TALLY_ESELF);
    return;
  }
  tally__refcode *r = &st->refcodes[st->refcode_count++];
  memset(r, 0, sizeof *r);
  snprintf(r->code, sizeof r->code, "%s", code);
  r->creator = c->account;
  r->affiliate = affiliate;
  r->bps = (uint16_t)bps;
  tally__cmd_ack_after_commit(c, "Referral code %s: %s gets %u bps of your takings from BUY <sku> ref=%s.", code,
                              name, (unsigned)bps, code);
}

void tally__cmd_privacy(tally__cmd *c) {
  if (c->account == TALLY__NONE) {
    tally__cmd_refuse(c, TALLY_ENOT_LOGGED_IN);
    return;
  }
  bool on = tally__word_is(&c->t, 2, "on"), off = tally__word_is(&c->t, 2, "off");
  if (c->t.count != 3 || (!on && !off)) {
    tally__cmd_usage(c, "TALLY PRIVACY on|off (on: summaries do not name you)");
    return;
  }
  tally__account *a = &c->e->st.accounts[c->account];
  a->unnamed = on;
  a->privacy_dirty = true;
  a->privacy_version++;
  tally__account_mark_dirty(&c->e->st, c->account);
  tally__cmd_ack_after_commit(c, on ? "Event summaries will not name you." : "Event summaries may name you again.");
}

/* ---- the feature's command words (command_rows.h; runtime.c registers them) -- */
static const tally__role_row highlight_roles[] = {TALLY__ROLE_ROW("REMOVE", 2, MODERATORS, OPEN)};
static const tally__command_row highlight_rows[] = {
    {"HIGHLIGHT", tally__cmd_highlight, TALLY__NA | TALLY__EV, TALLY_COMMAND_GROUP_EVENT,
     "<tier> <message>",
     "a paid, pinned message",
     highlight_roles, sizeof highlight_roles / sizeof highlight_roles[0]},
    {"REACT", tally__cmd_react, TALLY__NA | TALLY__EV, TALLY_COMMAND_GROUP_EVENT,
     "<emote>",
     "a paid reaction", NULL, 0},
};
const tally__command_rows tally__highlight_commands = TALLY__ROWS(highlight_rows);
