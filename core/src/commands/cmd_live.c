/* cmd_live.c — EVENT and DROP: what hosts (channel operators) type to run a
 * live event. Hosting is checked here, in core: the host adapter only says
 * whether the sender is an operator of the channel the line came from.
 * Anyone who creates an IRC channel is its operator, so selling (DROP
 * CREATE, EVENT TIER, EVENT REACT) also needs the creator role. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "command_rows.h"
#include "commands.h"
#include "decide.h"
#include "highlight.h"
#include "live.h"
#include "live_raffle.h"

/* What hosting needs besides the host role (which the dispatcher checked,
 * command_table.h's role rule): an account and the channel. */
static bool may_host(tally__cmd *c) {
  if (c->account == TALLY__NONE) {
    tally__cmd_refuse(c, TALLY_ENOT_LOGGED_IN);
    return false;
  }
  if (!c->cmd->channel[0]) {
    tally__reply(c->e, c->cmd, TALLY_ENOT_IN_CHANNEL, 0, "%s (e.g. EVENT START 30 Launch party)",
                 tally_strerror(TALLY_ENOT_IN_CHANNEL));
    return false;
  }
  return true;
}

void tally__cmd_event(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "EVENT", 0);
  tally__state *st = &c->e->st;
  uint32_t running = tally__live_event_in(st, c->net, c->cmd->channel);
  if (c->t.count == 1) {
    if (running == TALLY__NONE) {
      tally__reply(c->e, c->cmd, TALLY_OK, 0, "No event is running here.");
      return;
    }
    const tally__event *ev = &st->events[running];
    uint64_t now = tally__now_mono_ms(c->e);
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "Event \"%s\": %llu min left, %llu sales, %llu tips so far.", ev->title,
                 (unsigned long long)(ev->end_mono > now ? (ev->end_mono - now + 59999) / 60000 : 0),
                 (unsigned long long)ev->sales, (unsigned long long)ev->tips);
    return;
  }
  if (!may_host(c)) return;
  if (tally__word_is(&c->t, 1, "START")) {
    uint64_t minutes;
    if (c->t.count < 4 || tally__uint_parse(c->t.word[2], c->t.len[2], TALLY__EVENT_MINUTES_MAX, &minutes)) {
      tally__cmd_usage(c, "EVENT START <minutes 1-600> <title>");
      return;
    }
    if (running != TALLY__NONE) {
      tally__reply(c->e, c->cmd, TALLY_EEXISTS, 0, "An event is already running here: EVENT STOP first");
      return;
    }
    if (strlen(c->t.rest[3]) > TALLY__TITLE_BYTES_MAX) {
      tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "title: at most %d bytes", TALLY__TITLE_BYTES_MAX);
      return;
    }
    uint32_t i;
    int rc = tally__live_event_start(c->e, c->account, c->net, c->cmd->channel, c->t.rest[3], (uint32_t)minutes, &i);
    if (rc) {
      tally__cmd_refuse(c, rc);
      return;
    }
    tally__say say;
    tally__say_init(&say, TALLY_MSG_EVENT_STARTED);
    tally__sayf(&say, "t", "Live event \"%s\" starts now, for %llu min. Drops and tips here count toward it.",
                st->events[i].title, (unsigned long long)minutes);
    tally__announce_say_in(c->e, c->net, c->cmd->channel, &say);
    tally__cmd_ack_after_commit(c, "Event started (id %llu).", (unsigned long long)st->events[i].id);
  } else if (tally__word_is(&c->t, 1, "TIER") || tally__word_is(&c->t, 1, "REACT")) {
    if (!tally__cmd_may_sell(c)) return; /* their proceeds go to the sender */
    if (running == TALLY__NONE) {
      tally__reply(c->e, c->cmd, TALLY_ENOTFOUND, 0, "No event is running here: EVENT START first.");
      return;
    }
    tally__cmd_event_prices(c, running);
  } else if (tally__word_is(&c->t, 1, "STOP") && c->t.count == 2) {
    if (running == TALLY__NONE) {
      tally__reply(c->e, c->cmd, TALLY_ENOTFOUND, 0, "No event is running here.");
      return;
    }
    tally__live_event_stop(c->e, running);
    tally__cmd_ack_after_commit(c, "Event stopped.");
  } else {
    tally__cmd_usage(c, "EVENT [START <minutes> <title> | STOP | TIER <name> <price> <seconds> | REACT <price>]");
  }
}

/* "+5m", "+30s", "+1h" or "HH:MM" (UTC, today or tomorrow) -> ms from now. */
static int parse_when(const char *s, size_t n, int64_t wall_ms, int64_t *delay_ms) {
  if (n >= 3 && s[0] == '+') {
    uint64_t v;
    char unit = s[n - 1];
    int64_t scale = unit == 's' ? 1000 : unit == 'm' ? 60000 : unit == 'h' ? 3600000 : 0;
    if (!scale || tally__uint_parse(s + 1, n - 2, 24 * 3600, &v)) return TALLY_EBAD_SYNTAX;
    *delay_ms = (int64_t)v * scale;
    return *delay_ms <= TALLY__DROP_WINDOW_MS_MAX ? TALLY_OK : TALLY_EBAD_SYNTAX;
  }
  if (n == 5 && s[2] == ':') {
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h < 0 || h > 23 || m < 0 || m > 59 || strspn(s, "0123456789:") != 5) return TALLY_EBAD_SYNTAX;
    int64_t day_ms = wall_ms % 86400000, at = ((int64_t)h * 60 + m) * 60000;
    *delay_ms = at >= day_ms ? at - day_ms : at + 86400000 - day_ms;
    return TALLY_OK;
  }
  return TALLY_EBAD_SYNTAX;
}

/* key=value options after the positional arguments. */
typedef struct drop_opts {
  uint64_t per_user;
  int64_t start_in_ms, for_ms;
  bool raffle, attendees_only;
  tally__split split;
} drop_opts;

static int drop_options(tally__cmd *c, int from, drop_opts *o) {
  for (int i = from; i < c->t.count; i++) {
    const char *w = c->t.word[i];
    size_t n = c->t.len[i];
    if (n == 14 && memcmp(w, "attendees-only", 14) == 0) {
      o->attendees_only = true;
      continue;
    }
    const char *eq = memchr(w, '=', n);
    if (!eq) return TALLY_EBAD_SYNTAX;
    size_t kn = (size_t)(eq - w), vn = n - kn - 1;
    const char *v = eq + 1;
    int rc = TALLY_EBAD_SYNTAX;
    if (kn == 8 && memcmp(w, "per-user", 8) == 0) rc = tally__uint_parse(v, vn, TALLY__QTY_MAX, &o->per_user);
    else if (kn == 5 && memcmp(w, "start", 5) == 0) rc = parse_when(v, vn, c->wall, &o->start_in_ms);
    else if (kn == 3 && memcmp(w, "for", 3) == 0 && vn >= 2) {
      char plus[16];
      if (vn + 1 < sizeof plus) {
        snprintf(plus, sizeof plus, "+%.*s", (int)vn, v);
        rc = parse_when(plus, vn + 1, c->wall, &o->for_ms);
        if (!rc && o->for_ms == 0) rc = TALLY_EBAD_SYNTAX;
      }
    } else if (kn == 4 && memcmp(w, "mode", 4) == 0) {
      o->raffle = vn == 6 && memcmp(v, "raffle", 6) == 0;
      rc = o->raffle || (vn == 5 && memcmp(v, "first", 5) == 0) ? TALLY_OK : TALLY_EBAD_SYNTAX;
    } else if (kn == 5 && memcmp(w, "split", 5) == 0)
      rc = tally__split_parse(c, v, vn, &o->split);
    if (rc) return rc;
  }
  /* A raffle is one entry, so one unit, per account. */
  return o->raffle && o->per_user ? TALLY_EBAD_SYNTAX : TALLY_OK;
}

/* Drops of this creator that are scheduled or live. */
static uint32_t drops_of(const tally__state *st, uint32_t creator) {
  uint32_t n = 0;
  for (uint32_t k = 0; k < st->drops_active_count; k++) n += st->items[st->drops_active[k]].creator == creator;
  return n;
}

/* The host's quotas and the shared tables: checked before anything is
 * created, so a refused drop leaves no item behind. */
static bool drop_room(tally__cmd *c) {
  const tally__state *st = &c->e->st;
  uint32_t mine = drops_of(st, c->account);
  if (mine >= c->e->cfg.drops_per_host) {
    tally__reply(c->e, c->cmd, TALLY_ETOO_MANY, 0, "%s: you have %u drops scheduled or live, the most at once "
                 "(DROP STOP one first)", tally_strerror(TALLY_ETOO_MANY), mine);
    return false;
  }
  if (st->drops_active_count >= TALLY__DROPS_ACTIVE_MAX) {
    tally__reply(c->e, c->cmd, TALLY_EBUSY, 0, "%s: too many drops are scheduled or live right now",
                 tally_strerror(TALLY_EBUSY));
    return false;
  }
  return tally__cmd_item_room(c);
}

static void drop_create(tally__cmd *c) {
  static const char usage[] = "DROP CREATE <sku> <qty> <price> [per-user=N] [start=+5m|HH:MM] [for=10m] "
                              "[mode=first|raffle] [split=alice:6000,bob:4000] [attendees-only]";
  tally__state *st = &c->e->st;
  uint64_t qty;
  int64_t price;
  drop_opts o = {.for_ms = TALLY__DROP_DEFAULT_MS};
  char sku[TALLY__SKU_BYTES_MAX + 1];
  if (c->t.count < 5 || tally__word_copy(&c->t, 2, sku, sizeof sku) ||
      strspn(sku, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(sku) ||
      tally__uint_parse(c->t.word[3], c->t.len[3], 1000000, &qty) ||
      tally__amount_parse(c->t.word[4], c->t.len[4], c->e->cfg.currency_decimals, &price)) {
    tally__cmd_usage(c, usage);
    return;
  }
  int rc = drop_options(c, 5, &o);
  if (rc == TALLY_EUNKNOWN_ACCOUNT || rc == TALLY_ENO_PERMISSION) {
    tally__reply(c->e, c->cmd, rc, 0, "%s: every split= payee must be an existing account with the creator role",
                 tally_strerror(rc));
    return;
  }
  if (rc) {
    tally__cmd_usage(c, usage);
    return;
  }
  if (tally__highlight_sku_reserved(sku, strlen(sku))) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: skus starting hl- or react- are the engine's "
                 "(EVENT TIER, EVENT REACT)", tally_strerror(TALLY_EBAD_SYNTAX));
    return;
  }
  if (tally__item_find(st, sku) != TALLY__NONE) {
    tally__reply(c->e, c->cmd, TALLY_EEXISTS, 0, "sku %s is taken: pick a new one for the drop", sku);
    return;
  }
  if (o.attendees_only && !tally__live_event_for(st, TALLY__NONE, c->net, c->cmd->channel)) {
    tally__reply(c->e, c->cmd, TALLY_ENOT_IN_CHANNEL, 0, "attendees-only needs a running event here: EVENT START first");
    return;
  }
  if (!drop_room(c)) return;
  /* What can fail is made before the item, which is then never left behind. */
  tally__item probe = {.stock = (int32_t)qty};
  if ((rc = tally__item_serials_alloc(&probe)) || (o.raffle && (rc = tally__raffle_new_seed(&probe)))) {
    free(probe.serials);
    tally__cmd_refuse(c, rc);
    return;
  }
  uint32_t i;
  if ((rc = tally__item_add(st, sku, &i))) {
    free(probe.serials);
    tally__cmd_refuse(c, rc);
    return;
  }
  tally__item *it = &st->items[i];
  it->serials = probe.serials;
  memcpy(it->raffle_seed, probe.raffle_seed, sizeof it->raffle_seed);
  it->creator = c->account;
  it->price = price;
  it->stock = (int32_t)qty;
  it->refund_window_s = c->e->cfg.refund_window_s;
  snprintf(it->title, sizeof it->title, "drop %s", sku);
  it->drop_net = c->net;
  tally__text_clip(it->drop_channel, sizeof it->drop_channel, c->cmd->channel);
  it->drop_state = TALLY__DROP_SCHEDULED;
  it->drop_per_user = (uint32_t)o.per_user;
  it->drop_start_ms = c->wall + o.start_in_ms;
  it->drop_end_ms = it->drop_start_ms + o.for_ms;
  it->drop_event = tally__live_event_for(st, TALLY__NONE, c->net, c->cmd->channel);
  it->split = o.split;
  it->attendees_only = o.attendees_only;
  it->drop_mode = o.raffle ? TALLY__MODE_RAFFLE : TALLY__MODE_FIRST;
  if ((rc = tally__live_drop_schedule(c->e, i))) { /* drop_room checked it: not reached */
    it->deleted = true;
    tally__cmd_refuse(c, rc);
    return;
  }
  tally__item_mark_dirty(st, i);
  char amount[48];
  tally__format_amount(c->e, price, amount, sizeof amount);
  if (o.start_in_ms > 0) {
    tally__say say;
    tally__say_init(&say, TALLY_MSG_DROP_COMING);
    tally__sayf(&say, "-snm", "%s coming: %s - %llu units at %s, starts in %lld s.", o.raffle ? "Raffle" : "Drop",
                sku, (unsigned long long)qty, amount, (long long)(o.start_in_ms / 1000));
    tally__say_value(&say, 2, price, TALLY__DECIMALS(c->e));
    tally__announce_say_in(c->e, c->net, c->cmd->channel, &say);
  }
  tally__cmd_ack_after_commit(c, "Drop %s created.", sku);
  if (o.start_in_ms == 0) tally__live_drop_open(c->e, i);
}

static uint32_t drop_named(tally__cmd *c, int token) {
  char sku[TALLY__SKU_BYTES_MAX + 1];
  uint32_t i = TALLY__NONE;
  if (tally__word_copy(&c->t, token, sku, sizeof sku) == TALLY_OK) i = tally__item_find(&c->e->st, sku);
  if (i == TALLY__NONE || c->e->st.items[i].drop_state == TALLY__DROP_NONE ||
      c->e->st.items[i].drop_net != c->net || strcmp(c->e->st.items[i].drop_channel, c->cmd->channel) != 0) {
    tally__reply(c->e, c->cmd, TALLY_EUNKNOWN_ITEM, 0, "no such drop in this channel");
    return TALLY__NONE;
  }
  return i;
}

static void drop_list(tally__cmd *c) {
  static const char *const states[] = {"", "scheduled", "LIVE", "closed"};
  const tally__state *st = &c->e->st;
  int shown = 0;
  for (uint32_t i = 0; i < st->item_count && shown < 10; i++) {
    const tally__item *it = &st->items[i];
    if (it->drop_state == TALLY__DROP_NONE || it->drop_net != c->net || strcmp(it->drop_channel, c->cmd->channel) != 0) continue;
    char price[48];
    tally__format_amount(c->e, it->price, price, sizeof price);
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "%s: %s%s, %d of %d sold, %s each%s%s", it->sku,
                 it->drop_mode == TALLY__MODE_RAFFLE ? "raffle, " : "", states[it->drop_state], it->sold,
                 it->stock, price, it->drop_per_user ? ", limit per buyer" : "", it->split.count ? ", co-op" : "");
    shown++;
  }
  if (!shown) tally__reply(c->e, c->cmd, TALLY_OK, 0, "No drops in this channel.");
}

void tally__cmd_drop(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "DROP", 0);
  if (tally__word_is(&c->t, 1, "LIST") || c->t.count == 1) {
    drop_list(c);
    return;
  }
  if (!may_host(c)) return;
  if (tally__word_is(&c->t, 1, "CREATE")) {
    if (tally__cmd_may_sell(c)) drop_create(c);
    return;
  }
  bool start = tally__word_is(&c->t, 1, "START"), stop = tally__word_is(&c->t, 1, "STOP");
  if ((!start && !stop) || c->t.count != 3) {
    tally__cmd_usage(c, "DROP CREATE|START|STOP|LIST ...");
    return;
  }
  uint32_t i = drop_named(c, 2);
  if (i == TALLY__NONE) return;
  if (start) tally__live_drop_open(c->e, i);
  else tally__live_drop_close(c->e, i);
  tally__cmd_ack_after_commit(c, "Drop %s %s.", c->e->st.items[i].sku, start ? "started" : "stopped");
}

/* ---- the feature's command words (command_rows.h; runtime.c registers them) -- */
static const tally__role_row event_roles[] = {TALLY__ROLE_ROW("", 0, HOSTS, OPEN)};
static const tally__role_row drop_roles[] = {TALLY__ROLE_ROW("LIST", 0, OPEN, OPEN),
                                             TALLY__ROLE_ROW("", 0, HOSTS, OPEN)};
static const tally__command_row live_rows[] = {
    {"EVENT", tally__cmd_event, 0, TALLY_COMMAND_GROUP_HOSTS,
     "START <minutes> <title> | EVENT STOP | EVENT TIER <name> <price> <seconds> | EVENT REACT <price>",
     "run a live event in this channel (tiers and reactions need the creator role too)",
     event_roles, sizeof event_roles / sizeof event_roles[0]},
    {"DROP", tally__cmd_drop, 0, TALLY_COMMAND_GROUP_HOSTS,
     "CREATE <sku> <qty> <price> [per-user=N] [start=+5m|HH:MM] [for=10m] [mode=first|raffle] "
     "[split=a:6000,b:4000] [attendees-only] | DROP START|STOP <sku> | DROP LIST",
     "timed drops in this channel (creating one needs the creator role too)",
     drop_roles, sizeof drop_roles / sizeof drop_roles[0]},
};
const tally__command_rows tally__live_commands = TALLY__ROWS(live_rows);
