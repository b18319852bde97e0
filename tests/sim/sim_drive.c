/* sim_drive.c — the workload: chat lines from buyers, creators, hosts and
 * an operator, each through the real dispatcher (tally__engine_take_command),
 * and their answers read from the engine's effect queue, where the checks
 * on what people are told run (sim_internal.h). */
#include "sim_internal.h"

#include <inttypes.h>

/* ---- sending ------------------------------------------------------------------------------ */
static int16_t buyer_of(const char *account) {
  return account[0] == 'b' ? (int16_t)atoi(account + 1) : (int16_t)-1;
}

/* Sends one chat line; msg_id NULL: a fresh one. Returns its req_id. */
uint64_t say(world *w, const char *account, const char *channel, const char *msg_id, const char *text,
             uint32_t roles) {
  char fresh[24];
  if (!msg_id) {
    snprintf(fresh, sizeof fresh, "s%" PRIu64, ++w->fresh);
    msg_id = fresh;
  }
  if (w->req_next + 1 >= w->req_cap) return 0;
  uint64_t req = ++w->req_next;
  char origin[24], ident[320];
  snprintf(origin, sizeof origin, "o-%s", account);
  tally_command cmd = {.size = sizeof cmd, .version = TALLY_COMMAND_VERSION, .req_id = req, .origin = origin,
                       .account = account, .nick = account, .channel = channel, .msg_id = msg_id,
                       .text = text, .roles = roles};
  uint8_t frame[TALLY_FRAME_BYTES_MAX];
  size_t len;
  if (tally_command_encode(&cmd, frame, sizeof frame, &len) != TALLY_OK) {
    fail(w, "sim: could not encode '%s'", text);
    return 0;
  }
  sreq *q = &w->reqs[req];
  snprintf(ident, sizeof ident, "%s\x1f%s\x1f%s\x1f%s", account, channel, msg_id, text);
  q->ident = hash_str(ident);
  q->user = buyer_of(account);
  q->kind = (uint8_t)text[0];
  q->answered = (roles & TALLY__ROLE_PRESENCE) != 0; /* a presence change has no answer */
  trace(w, "req %" PRIu64 " %s%s%s [%s]: %s", req, account, channel[0] ? " in " : "", channel, msg_id, text);
  w->r->commands++;
  if (!tally__engine_take_command((tally__engine *)w->e, frame, len)) {
    collect(w); /* the effect ring was full: drained, then it is taken */
    if (!tally__engine_take_command((tally__engine *)w->e, frame, len)) q->answered = true; /* a host retries */
  }
  if (!w->setup) {
    sent *s = &w->recent[w->recent_count++ % SIM_RECENT];
    snprintf(s->account, sizeof s->account, "%s", account);
    snprintf(s->channel, sizeof s->channel, "%s", channel);
    snprintf(s->msg_id, sizeof s->msg_id, "%s", msg_id);
    snprintf(s->text, sizeof s->text, "%s", text);
    s->roles = roles;
  }
  return req;
}

/* ---- answers -------------------------------------------------------------------------------- */
/* Is an op of request `req` in a batch? ("pending" is then a notice, and
 * its answer follows; otherwise "pending" is the answer, e.g. to a line
 * delivered again while its first delivery is in flight.) Effects are
 * read right after each step, before any batch could settle. */
static bool in_flight(world *w, uint64_t req) {
  const tally__engine *e = (const tally__engine *)w->e;
  for (uint32_t i = 0; i < e->batch_slots; i++) {
    const tally__batch *b = &e->batches[i];
    if (b->phase == TALLY__BATCH_FREE) continue;
    for (uint32_t k = 0; k < b->op_count + b->hidden; k++)
      if (b->ops[k].req_id == req) return true;
  }
  return false;
}

/* What a person is told must agree with the ledger: a receipt names a
 * transfer the ledger holds (I7: receipts only after commit), "not
 * charged" is never said of one it holds, and the same request is never
 * answered with two receipts (I3). */
static void on_effect(void *ud, const tally_effect *eff) {
  world *w = ud;
  if (eff->kind != TALLY_EFFECT_REPLY || w->r->failed) return;
  trace(w, "  -> req %" PRIu64 " %s: %s%s%" PRIu64 " %s", eff->req_id, tally_err_name(eff->code), "receipt ",
        "", eff->receipt_id, eff->text);
  if (eff->req_id == 0 || eff->req_id > w->req_next) return;
  sreq *q = &w->reqs[eff->req_id];
  if (eff->code == TALLY_EPENDING && in_flight(w, eff->req_id)) return; /* a notice; the answer follows */
  q->answered = true;
  if (eff->code == TALLY_OK && eff->receipt_id) {
    w->r->receipts++;
    if (!ledger_tx(w, eff->receipt_id)) {
      fail(w, "I7: req %" PRIu64 " was given receipt %" PRIu64 ", which the ledger does not hold (%s)", eff->req_id,
           eff->receipt_id, eff->text);
      return;
    }
    uint32_t first = umap_get(&w->first_receipt, q->ident);
    if (!first) umap_put(&w->first_receipt, q->ident, (uint32_t)umap_get(&w->tx_by_id, eff->receipt_id));
    else if (w->tx[first - 1].id != eff->receipt_id)
      fail(w, "I3: req %" PRIu64 " was answered with receipt %" PRIu64 ", the same request before with %" PRIu64,
           eff->req_id, eff->receipt_id, w->tx[first - 1].id);
    if (strncmp(eff->text, "Bought", 6) == 0 && q->user >= 0 && w->receipt_count < SIM_RECEIPTS) {
      w->receipts[w->receipt_count] = eff->receipt_id;
      w->receipt_user[w->receipt_count++] = (int8_t)q->user;
    }
    return;
  }
  if (eff->code == TALLY_EFAILED && w->tx_of_req[eff->req_id]) {
    fail(w, "I7: req %" PRIu64 " was told it was not charged, but the ledger holds its transfer %" PRIu64,
         eff->req_id, w->tx[w->tx_of_req[eff->req_id] - 1].id);
    return;
  }
  if (eff->code == TALLY_ECONSENT && q->user >= 0) {
    const char *c = strstr(eff->text, "CONFIRM ");
    if (c) snprintf(w->consent_code[q->user], sizeof w->consent_code[q->user], "%.6s", c + 8);
  }
  if (eff->code != TALLY_OK) w->r->refused++;
}

void collect(world *w) { tally_engine_drain(w->e, on_effect, w, SIZE_MAX); }

/* ---- the workload --------------------------------------------------------------------------- */
/* Live commands mostly in "#c1", so that events there get tiers and
 * reactions that buyers then use. */
static uint32_t live_chan(world *w) { return chance(w, 60) ? 1u : (uint32_t)between(w, 1, SIM_CHANNELS); }

static const char *random_msg_id(world *w, char *buf, size_t n) {
  if (chance(w, w->fresh_pct)) snprintf(buf, n, "f%" PRIu64, ++w->fresh);
  else snprintf(buf, n, "p%" PRIu64, below(w, w->key_pool));
  return buf;
}

/* An amount in major units, as people type them. */
static void random_amount(world *w, char *buf, size_t n) {
  uint64_t r = below(w, 100);
  if (r < 50) snprintf(buf, n, "%lld", (long long)between(w, 1, 50));
  else if (r < 80) snprintf(buf, n, "%lld.%02lld", (long long)between(w, 0, 20), (long long)between(w, 1, 99));
  else if (r < 97) snprintf(buf, n, "%lld", (long long)between(w, 1, 5000));
  else snprintf(buf, n, "%lld", (long long)between(w, 1, 1000000000));
}

static void buy(world *w, const char *who, const char *chan, const char *id) {
  static const char *const odd[] = {"0", "101", "1000", "4294967295", "-1"};
  char text[SIM_TEXT];
  const char *sku = w->item_sku[below(w, w->items)];
  uint64_t s = below(w, 100);
  if (s < 80) snprintf(text, sizeof text, "BUY %s %lld", sku, (long long)between(w, 1, 3));
  else if (s < 90) snprintf(text, sizeof text, "BUY %s", sku);
  else if (s < 96) snprintf(text, sizeof text, "BUY %s %lld", sku, (long long)between(w, 1, 100));
  else snprintf(text, sizeof text, "BUY %s %s", sku, odd[below(w, 5)]);
  if (chance(w, 15)) snprintf(text + strlen(text), sizeof text - strlen(text), " noreward"); /* keeps a reward */
  say(w, who, chan, id, text, 0);
}

/* A buyer shows up in (or leaves) a live room, as a chat server reports
 * it, or answers the quiz running there (privately: "ANSWER #c1 yes"). A
 * presence change has no answer. */
static void audience(world *w, const char *who) {
  const char *room = chan_names[live_chan(w)];
  char text[SIM_TEXT];
  if (chance(w, 50)) {
    say(w, who, room, NULL, chance(w, 90) ? "PRESENCE JOIN" : "PRESENCE PART", TALLY__ROLE_PRESENCE);
    return;
  }
  snprintf(text, sizeof text, "ANSWER %s %s", room, chance(w, 75) ? "yes" : "no");
  say(w, who, "", NULL, text, 0);
}

static void refund(world *w, uint32_t user, const char *who, const char *chan, const char *id) {
  char text[SIM_TEXT], amount[32];
  uint64_t receipt = below(w, 1000000) + 1000;
  uint32_t mine[SIM_RECEIPTS], n = 0;
  for (uint32_t i = 0; i < w->receipt_count; i++)
    if (w->receipt_user[i] == (int8_t)user) mine[n++] = i;
  if (n && chance(w, 85)) receipt = w->receipts[mine[below(w, n)]];
  else if (w->receipt_count && chance(w, 80)) receipt = w->receipts[below(w, w->receipt_count)];
  uint64_t a = below(w, 100);
  if (a < 45) snprintf(text, sizeof text, "REFUND %" PRIu64, receipt);
  else if (a < 90) {
    snprintf(amount, sizeof amount, "0.%02lld", (long long)between(w, 1, 99));
    snprintf(text, sizeof text, "REFUND %" PRIu64 " %s", receipt, amount);
  } else {
    random_amount(w, amount, sizeof amount);
    snprintf(text, sizeof text, "REFUND %" PRIu64 " %s", receipt, amount);
  }
  say(w, who, chan, id, text, 0);
}

/* A buyer's, or the operator's, money command (BUY, TIP, REFUND, GRANT,
 * HIGHLIGHT, REACT, CONFIRM), a CLI grant request; or a line delivered
 * again. */
void step_command(world *w) {
  char who[16], id[24], text[SIM_TEXT], amount[32];
  uint32_t user = (uint32_t)below(w, w->buyers);
  snprintf(who, sizeof who, "b%u", user);
  uint64_t c = below(w, SIM_CHANNELS + 1);
  const char *chan = chance(w, 50) ? "" : chan_names[c];
  random_msg_id(w, id, sizeof id);
  uint64_t r = below(w, 100);
  if (r < 45) {
    buy(w, who, chan, id);
  } else if (r < 60) {
    random_amount(w, amount, sizeof amount);
    if (chance(w, 80)) snprintf(text, sizeof text, "TIP b%u %s", (unsigned)below(w, w->buyers), amount);
    else snprintf(text, sizeof text, "TIP c%u %s thanks", (unsigned)below(w, w->creators), amount);
    say(w, who, chan, id, text, 0);
  } else if (r < 80) {
    refund(w, user, who, chan, id);
  } else if (r < 87) {
    random_amount(w, amount, sizeof amount);
    snprintf(text, sizeof text, "TALLY GRANT b%u %s", user, amount);
    say(w, "op", "", id, text, TALLY_ROLE_OPER | TALLY_ROLE_GRANT);
  } else if (r < 90) { /* paid messages and reactions, in an event's channel */
    const char *ev = chan_names[live_chan(w)];
    if (chance(w, 50)) snprintf(text, sizeof text, "HIGHLIGHT %s hello from %s", chance(w, 80) ? "gold" : "tin", who);
    else snprintf(text, sizeof text, "REACT %s", chance(w, 50) ? ":)" : "<3");
    say(w, who, ev, id, text, 0);
  } else if (r < 94) {
    if (!w->consent_code[user][0]) return;
    snprintf(text, sizeof text, "CONFIRM %s", w->consent_code[user]);
    if (chance(w, 80)) w->consent_code[user][0] = 0;
    say(w, who, chan, id, text, 0);
  } else if (r < 96) { /* a grant request `tally grant` queued, as the writer's poll returns it */
    uint64_t req = (uint64_t)between(w, 1, (int64_t)w->grant_requests + 1);
    if (req > w->grant_requests) w->grant_requests = req;
    snprintf(text, sizeof text, "grant-request:%" PRIu64, req);
    if (umap_get(&w->tx_by_key, hash_str(text))) return; /* the poll skips requests with a transfer */
    trace(w, "grant request %" PRIu64 " for %s", req, who);
    w->e->hooks->grant_request((tally__engine *)w->e, (int64_t)req, who, (int64_t)(req * 7919 % 100000) + 1);
  } else if (w->recent_count) { /* F7: the host delivers a line again */
    const sent *s = &w->recent[below(w, w->recent_count < SIM_RECENT ? w->recent_count : SIM_RECENT)];
    w->r->replays++;
    say(w, s->account, s->channel, s->msg_id, s->text, s->roles);
  }
}

/* A quiz's life in a live room, one piece per step, so the pieces meet in
 * every order: the host starts an event, buyers show up, the host asks a
 * quiz that gives their reward "r" to its first right answers, buyers
 * answer. Winners then BUY with the reward (step_command). */
void step_quiz(world *w) {
  uint32_t ch = live_chan(w), c = (uint32_t)below(w, w->creators);
  char host[16], who[16], text[SIM_TEXT];
  snprintf(host, sizeof host, "c%u", c);
  uint64_t r = below(w, 100);
  if (r < 20) {
    snprintf(text, sizeof text, "EVENT START %lld quiz night", (long long)between(w, 5, 30));
    say(w, host, chan_names[ch], NULL, text, TALLY_ROLE_CHANOP);
  } else if (r < 27) { /* a goal whose levels the room's tips and purchases fill */
    w->r->goals++;
    snprintf(text, sizeof text, "GOAL START %lld,%lld reward=%s for=%llds", (long long)between(w, 1, 20),
             (long long)between(w, 1, 40), chance(w, 60) ? "r" : "f", (long long)between(w, 30, 120));
    say(w, host, chan_names[ch], NULL, text, TALLY_ROLE_CHANOP);
  } else if (r < 35) {
    w->r->quizzes++;
    snprintf(text, sizeof text, "QUIZ START %lld Ready? | yes winners=%lld reward=%s min-players=1",
             (long long)between(w, 10, 40), (long long)between(w, 1, 3), chance(w, 70) ? "r" : "f");
    say(w, host, chan_names[ch], NULL, text, TALLY_ROLE_CHANOP);
  } else if (r < 45) { /* someone buys one of the item that the host's reward "f" gives free */
    for (uint32_t i = 0; i < w->items; i++) {
      if (w->item_creator[i] != (int8_t)c) continue;
      snprintf(who, sizeof who, "b%u", (unsigned)below(w, w->buyers));
      snprintf(text, sizeof text, "BUY %s", w->item_sku[i]);
      say(w, who, chance(w, 50) ? chan_names[ch] : "", NULL, text, 0);
      break;
    }
  } else {
    for (int k = 0; k < 2; k++) {
      snprintf(who, sizeof who, "b%u", (unsigned)below(w, w->buyers));
      audience(w, who);
    }
  }
}

/* A creator changes an item (ITEM SET stock / price, ITEM DEL). */
void step_catalog(world *w) {
  uint32_t i = (uint32_t)below(w, w->items);
  char who[16], text[SIM_TEXT];
  snprintf(who, sizeof who, "c%d", w->item_creator[i]);
  uint64_t r = below(w, 100);
  if (r < 45) {
    if (chance(w, 20)) snprintf(text, sizeof text, "ITEM SET %s stock unlimited", w->item_sku[i]);
    else snprintf(text, sizeof text, "ITEM SET %s stock %lld", w->item_sku[i], (long long)between(w, 0, 20));
  } else if (r < 90) {
    snprintf(text, sizeof text, "ITEM SET %s price %lld", w->item_sku[i], (long long)between(w, 1, 500));
  } else {
    snprintf(text, sizeof text, "ITEM DEL %s", w->item_sku[i]);
  }
  say(w, who, "", NULL, text, 0);
}

/* A host's live command in a channel: EVENT START / STOP / TIER / REACT,
 * DROP CREATE / START / STOP. */
void step_live(world *w) {
  uint32_t ch = live_chan(w), c = (uint32_t)below(w, w->creators);
  char who[16], text[SIM_TEXT];
  snprintf(who, sizeof who, "c%u", c);
  uint64_t r = below(w, 100);
  if (r < 30) {
    snprintf(text, sizeof text, "EVENT START %lld show %u", (long long)between(w, 1, 10), ch);
  } else if (r < 45) {
    snprintf(text, sizeof text, "EVENT STOP");
  } else if (r < 52) { /* the host's paid extras (tiers and reactions need the creator role) */
    if (chance(w, 60)) snprintf(text, sizeof text, "EVENT TIER gold %lld %lld", (long long)between(w, 1, 20),
                                (long long)between(w, 5, 120));
    else snprintf(text, sizeof text, "EVENT REACT %lld", (long long)between(w, 1, 5));
  } else if (r < 65 && w->items < SIM_ITEMS_MAX) {
    uint32_t k = w->items++;
    snprintf(w->item_sku[k], sizeof w->item_sku[k], "drop%u", w->drops++);
    w->item_creator[k] = (int8_t)c;
    int n = snprintf(text, sizeof text, "DROP CREATE %s %lld %lld", w->item_sku[k], (long long)between(w, 1, 30),
                     (long long)between(w, 1, 200));
    if (chance(w, 80)) n += snprintf(text + n, sizeof text - (size_t)n, " per-user=%lld", (long long)between(w, 1, 3));
    if (chance(w, 50)) n += snprintf(text + n, sizeof text - (size_t)n, " start=+%lldm", (long long)between(w, 1, 2));
    snprintf(text + n, sizeof text - (size_t)n, " for=%lldm", (long long)between(w, 1, 5));
  } else if (w->drops) {
    uint32_t d = (uint32_t)below(w, w->drops);
    snprintf(text, sizeof text, "DROP %s drop%u", chance(w, 50) ? "START" : "STOP", d);
  } else {
    return;
  }
  say(w, who, chan_names[ch], NULL, text, TALLY_ROLE_CHANOP);
}
