/* loader_shop.c — start-up for co-op items, item kinds, limited-edition
 * serials, pass redemptions and raffles (migration 004). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audience.h"
#include "highlight.h"
#include "live_raffle.h"
#include "loader_shop.h"
#include "tipmsg.h"

static int hex_to(const char *hex, uint8_t *out, size_t n) {
  if (strlen(hex) != 2 * n) return TALLY_EINVAL;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return TALLY_EINVAL;
    out[i] = (uint8_t)v;
  }
  return TALLY_OK;
}

/* "id:bps,id:bps" as written by the batch (account ids). */
static int split_from_text(loader *l, const char *s, tally__split *sp) {
  memset(sp, 0, sizeof *sp);
  long total = 0;
  while (*s) {
    char *end;
    long long id = strtoll(s, &end, 10);
    if (*end != ':' || sp->count >= TALLY__SPLIT_MAX) return TALLY_EINVAL;
    long bps = strtol(end + 1, &end, 10);
    uint32_t a = tally__load_acc(l, id);
    if (a == TALLY__NONE || bps <= 0 || bps > TALLY__BPS_WHOLE) return TALLY_EINVAL;
    for (uint32_t i = 0; i < sp->count; i++)
      if (sp->account[i] == a) return TALLY_EINVAL; /* each payee once: refunds find them by account */
    sp->account[sp->count] = a;
    sp->bps[sp->count++] = (uint16_t)bps;
    total += bps;
    if (*end == ',') end++;
    s = end;
  }
  return sp->count == 0 || total == TALLY__BPS_WHOLE ? TALLY_OK : TALLY_EINVAL;
}

static int load_item_extras(loader *l) {
  tally__state *st = &l->e->st;
  PGresult *r = tally__load_q(l, "SELECT id, split, kind, delivery, drop_mode, encode(raffle_seed, 'hex'),"
                                 " raffle_drawn, encode(raffle_entry_hash, 'hex'), raffle_entries, show_s, attendees_only FROM items",
                              0, NULL);
  if (!r) return TALLY_EDB;
  int rc = TALLY_OK;
  for (int i = 0; i < PQntuples(r) && !rc; i++) {
    uint32_t idx = tally__load_item(l, tally__load_i64(r, i, 0));
    if (idx == TALLY__NONE) continue;
    tally__item *it = &st->items[idx];
    if (split_from_text(l, PQgetvalue(r, i, 1), &it->split)) {
      snprintf(l->err, l->err_len, "load: item %s: bad split \"%s\"", it->sku, PQgetvalue(r, i, 1));
      rc = TALLY_EINVAL;
      break;
    }
    it->kind = (uint8_t)tally__load_i64(r, i, 2);
    snprintf(it->delivery, sizeof it->delivery, "%s", PQgetvalue(r, i, 3));
    it->drop_mode = (uint8_t)tally__load_i64(r, i, 4);
    if (it->drop_mode == TALLY__MODE_RAFFLE) hex_to(PQgetvalue(r, i, 5), it->raffle_seed, 32);
    it->raffle_drawn = PQgetvalue(r, i, 6)[0] == 't';
    if (it->raffle_drawn) hex_to(PQgetvalue(r, i, 7), it->raffle_entry_hash, 32);
    it->raffle_entries = (uint32_t)tally__load_i64(r, i, 8);
    it->show_s = (uint32_t)tally__load_i64(r, i, 9);
    it->attendees_only = PQgetvalue(r, i, 10)[0] == 't';
    rc = tally__item_serials_alloc(it);
  }
  PQclear(r);
  return rc;
}

/* Serials taken by committed purchases; kept purchases learn theirs. */
static int load_serials(loader *l) {
  tally__state *st = &l->e->st;
  PGresult *r = tally__load_q(l, "SELECT item_id, serial, qty, id FROM transfers WHERE kind IN (1, 6) AND serial IS NOT NULL",
                              0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t idx = tally__load_item(l, tally__load_i64(r, i, 0));
    if (idx == TALLY__NONE) continue;
    uint32_t first = (uint32_t)tally__load_i64(r, i, 1), qty = (uint32_t)tally__load_i64(r, i, 2);
    tally__serial_mark(&st->items[idx], first, qty);
    uint32_t slot = tally__purchase_find(st, (uint64_t)tally__load_i64(r, i, 3));
    if (slot != TALLY__NONE) st->purchases[slot].serial = first;
  }
  PQclear(r);
  return TALLY_OK;
}

/* Co-op shares of kept purchases: each payee's credit (the fee last) and
 * what refunds took back from it. Legs are told apart by their position,
 * not only by account: a purchase's first leg is the buyer's debit and a
 * refund's first leg the buyer's credit (decide.c writes them first), and a
 * co-creator may buy the item they share, so the buyer's account can also
 * be a payee's. Summing every leg of that account, as before, counted the
 * refund's credit as a negative return and aborted the next refund.
 * Which purchases have such a record is stored (coop_purchases, sql/007);
 * only purchases older than that table are still told by their legs. */
/* A record that does not add up (the ledger was written by other code, or
 * by hand) is kept, and said at start: its refunds are refused with
 * TALLY_ELEDGER (split.c checks every record it is given). */
static void coop_check(const tally__state *st) {
  for (uint32_t k = 0; k < st->cfg->coop_purchases_max && k < st->coop_next; k++) {
    const tally__coop *c = &st->coop[k];
    uint32_t slot = c->transfer_id ? tally__purchase_find(st, c->transfer_id) : TALLY__NONE;
    if (slot == TALLY__NONE) continue;
    const tally__purchase *p = &st->purchases[slot];
    __int128 credits = 0, returns = 0; /* legs are any bigint: no overflow */
    bool ok = true;
    for (uint32_t i = 0; i < c->count; i++) {
      ok &= c->credit[i] >= 0 && c->returned[i] >= 0 && c->returned[i] <= c->credit[i];
      credits += c->credit[i];
      returns += c->returned[i];
    }
    if (ok && credits == p->amount && returns == p->refunded) continue;
    fprintf(stderr, "tally: load: the co-op legs of purchase %llu do not add up (paid %lld, credited %lld,"
                    " refunded %lld, returned %lld); its refunds will be refused\n",
            (unsigned long long)c->transfer_id, (long long)p->amount, (long long)credits,
            (long long)p->refunded, (long long)returns);
  }
}

static int load_coop(loader *l, int64_t now_ms) {
  tally__state *st = &l->e->st;
  char since[24], limit[24];
  snprintf(since, sizeof since, "%lld", (long long)(now_ms - 90LL * 86400 * 1000));
  /* Every co-op purchase that may still be refunded from memory (the
   * purchase ring's size), oldest first: when there are more than the co-op
   * ring holds, the newest keep their records, and an older one's purchase
   * points at a slot reused by a later one, so its refund is refused
   * (tally__coop_of) instead of being taken from the primary creator alone. */
  snprintf(limit, sizeof limit, "%u", (unsigned)st->cfg->purchases_max);
  const char *params[2] = {since, limit};
  PGresult *r = tally__load_q(
      l,
      "WITH p AS (SELECT t.id, t.leg_accounts, t.leg_amounts FROM transfers t JOIN items i ON i.id = t.item_id"
      "  WHERE t.kind = 1 AND t.created_ms >= $1::bigint AND (EXISTS (SELECT 1 FROM coop_purchases c WHERE c.transfer_id = t.id)"
      "   OR (t.id <= (SELECT value FROM ledger_marks WHERE name = 'coop_purchases_from')"
      "    AND (i.split <> '' OR cardinality(t.leg_accounts) > 3)))"
      "  ORDER BY t.id DESC LIMIT $2::int)"
      " SELECT p.id, e.account_id, e.amount_minor, coalesce((SELECT -sum(r.amount_minor) FROM transfers rt,"
      "   unnest(rt.leg_accounts, rt.leg_amounts) WITH ORDINALITY AS r(account_id, amount_minor, n)"
      "   WHERE rt.kind = 3 AND rt.ref_transfer = p.id AND r.n > 1 AND r.account_id = e.account_id), 0)"
      " FROM p, unnest(p.leg_accounts, p.leg_amounts) WITH ORDINALITY AS e(account_id, amount_minor, n)"
      " WHERE e.n > 1 AND e.amount_minor > 0 ORDER BY p.id, (e.account_id = 1), e.n",
      2, params);
  if (!r) return TALLY_EDB;
  uint64_t current = 0;
  tally__coop *c = NULL;
  for (int i = 0; i < PQntuples(r); i++) {
    uint64_t id = (uint64_t)tally__load_i64(r, i, 0);
    if (id != current) {
      current = id;
      c = NULL;
      uint32_t slot = tally__purchase_find(st, id);
      if (slot == TALLY__NONE) continue;
      uint32_t coop = tally__coop_take(st);
      assert(coop != TALLY__NONE); /* nothing is in flight yet */
      st->purchases[slot].coop_slot = coop;
      c = &st->coop[coop];
      c->transfer_id = id;
    }
    uint32_t a = tally__load_acc(l, tally__load_i64(r, i, 1));
    if (!c || a == TALLY__NONE || c->count >= TALLY__PAYEES_MAX) continue;
    c->account[c->count] = a;
    c->credit[c->count] = tally__load_i64(r, i, 2);
    c->returned[c->count] = tally__load_i64(r, i, 3);
    c->count++;
  }
  PQclear(r);
  /* The fee is the last payee, even when it took nothing. */
  for (uint32_t k = 0; k < st->cfg->coop_purchases_max && k < st->coop_next; k++) {
    tally__coop *cp = &st->coop[k];
    if (cp->count == 0 || cp->account[cp->count - 1] == st->fees || cp->count >= TALLY__PAYEES_MAX) continue;
    cp->account[cp->count] = st->fees;
    cp->credit[cp->count] = cp->returned[cp->count] = 0;
    cp->count++;
  }
  coop_check(st);
  return TALLY_OK;
}

static int load_redemptions(loader *l) {
  tally__state *st = &l->e->st;
  PGresult *r = tally__load_q(l, "SELECT transfer_id FROM redemptions", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t slot = tally__purchase_find(st, (uint64_t)tally__load_i64(r, i, 0));
    if (slot != TALLY__NONE) st->purchases[slot].redeemed = true;
  }
  PQclear(r);
  return TALLY_OK;
}

/* Entries of undrawn raffles that a draw interrupted by a restart already
 * passed over (and said why): the draw again passes over them. */
static int load_raffle_passes(loader *l) {
  tally__state *st = &l->e->st;
  PGresult *r = tally__load_q(l, "SELECT p.item_id, p.account_id, p.reason_code FROM raffle_passes p"
                                 " JOIN items i ON i.id = p.item_id WHERE NOT i.raffle_drawn", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t item = tally__load_item(l, tally__load_i64(r, i, 0));
    uint32_t account = tally__load_acc(l, tally__load_i64(r, i, 1));
    for (uint32_t k = 0; k < st->entry_count && item != TALLY__NONE; k++) {
      tally__raffle_entry *en = &st->entries[k];
      if (en->item != item || en->account != account) continue;
      en->drawn = TALLY__DRAWN_PASSED;
      en->pass_reason = (int32_t)tally__load_i64(r, i, 2);
    }
  }
  PQclear(r);
  return TALLY_OK;
}

/* Entries of raffles not yet drawn, in their order; closed raffles whose
 * draw did not finish draw again (same seed, same entries). */
static int load_raffles(loader *l) {
  tally__state *st = &l->e->st;
  PGresult *r = tally__load_q(l, "SELECT e.item_id, e.account_id, e.seq FROM raffle_entries e"
                                 " JOIN items i ON i.id = e.item_id WHERE i.drop_mode = 1 AND NOT i.raffle_drawn"
                                 " ORDER BY e.item_id, e.seq",
                              0, NULL);
  if (!r) return TALLY_EDB;
  int rc = TALLY_OK;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t item = tally__load_item(l, tally__load_i64(r, i, 0));
    uint32_t account = tally__load_acc(l, tally__load_i64(r, i, 1));
    if (item == TALLY__NONE || account == TALLY__NONE) continue;
    uint32_t slot = tally__raffle_entry_add(st, item, account, 0);
    if (slot == TALLY__NONE) {
      snprintf(l->err, l->err_len, "load: more raffle entries than TALLY__RAFFLE_ENTRIES_MAX");
      rc = TALLY_ETOO_MANY;
      break;
    }
    st->entries[slot].seq = (uint32_t)tally__load_i64(r, i, 2);
    st->entries[slot].persisted = true;
    st->items[item].raffle_seq = st->entries[slot].seq + 1;
  }
  PQclear(r);
  if (!rc) rc = load_raffle_passes(l);
  for (uint32_t i = 0; i < st->item_count && !rc; i++) {
    const tally__item *it = &st->items[i];
    if (it->drop_mode == TALLY__MODE_RAFFLE && !it->raffle_drawn && it->drop_state == TALLY__DROP_CLOSED)
      st->raffles_due++;
  }
  return rc;
}

/* Events of the last day: who attended and for how long, what each account
 * spent and earned in them; privacy choices; referral codes. */
static int load_audience(loader *l, int64_t now_ms) {
  tally__state *st = &l->e->st;
  char since[24];
  snprintf(since, sizeof since, "%lld", (long long)(now_ms - 86400000LL));
  const char *params[1] = {since};
  PGresult *r = tally__load_q(l, "SELECT a.event_id, a.account_id, a.seconds, a.first_ms FROM attendance a"
                                 " JOIN events e ON e.id = a.event_id WHERE e.stopped_ms IS NULL OR e.stopped_ms >= $1::bigint",
                              1, params);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t acc = tally__load_acc(l, tally__load_i64(r, i, 1));
    if (acc == TALLY__NONE) continue;
    uint32_t row = tally__audience_row(st, (uint64_t)tally__load_i64(r, i, 0), acc, true);
    if (row == TALLY__NONE) break;
    st->audience[row].total_ms = (uint64_t)tally__load_i64(r, i, 2) * 1000;
    st->audience[row].first_ms = tally__load_i64(r, i, 3);
  }
  PQclear(r);
  r = tally__load_q(l, "SELECT t.event_id, t.account_id, t.kind, t.amount_minor, t.leg_accounts, t.leg_amounts"
                       " FROM transfers t JOIN events e ON e.id = t.event_id WHERE t.kind IN (1, 2)"
                       " AND (e.stopped_ms IS NULL OR e.stopped_ms >= $1::bigint)", 1, params);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t acc = tally__load_acc(l, tally__load_i64(r, i, 1));
    if (acc == TALLY__NONE) continue;
    /* The committed op again, enough for tally__audience_committed. */
    tally__op op = {.kind = (uint8_t)tally__load_i64(r, i, 2), .event_id = (uint64_t)tally__load_i64(r, i, 0),
                    .account = acc, .amount = tally__load_i64(r, i, 3)};
    const char *accs = PQgetvalue(r, i, 4), *amts = PQgetvalue(r, i, 5);
    while (*accs && *amts && op.leg_count < TALLY__LEGS_MAX) {
      if (*accs == '{' || *accs == ',') accs++;
      if (*amts == '{' || *amts == ',') amts++;
      char *end_a, *end_m;
      long long id = strtoll(accs, &end_a, 10), amount = strtoll(amts, &end_m, 10);
      if (end_a == accs || end_m == amts) break;
      uint32_t who = tally__load_acc(l, id);
      if (who != TALLY__NONE) op.legs[op.leg_count++] = (tally__leg){who, amount};
      accs = end_a;
      amts = end_m;
    }
    tally__audience_committed(st, &op);
  }
  PQclear(r);
  r = tally__load_q(l, "SELECT DISTINCT ON (account_id) account_id, hidden, version FROM privacy_changes"
                       " ORDER BY account_id, version DESC", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t acc = tally__load_acc(l, tally__load_i64(r, i, 0));
    if (acc == TALLY__NONE) continue;
    st->accounts[acc].unnamed = PQgetvalue(r, i, 1)[0] == 't';
    st->accounts[acc].privacy_version = (uint64_t)tally__load_i64(r, i, 2);
  }
  PQclear(r);
  r = tally__load_q(l, "SELECT code, creator_id, affiliate_id, bps FROM referral_codes ORDER BY created_ms", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r) && st->refcode_count < TALLY__REFCODES_MAX; i++) {
    uint32_t creator = tally__load_acc(l, tally__load_i64(r, i, 1)), affiliate = tally__load_acc(l, tally__load_i64(r, i, 2));
    if (creator == TALLY__NONE || affiliate == TALLY__NONE) continue;
    tally__refcode *rc = &st->refcodes[st->refcode_count++];
    snprintf(rc->code, sizeof rc->code, "%s", PQgetvalue(r, i, 0));
    rc->creator = creator;
    rc->affiliate = affiliate;
    rc->bps = (uint16_t)tally__load_i64(r, i, 3);
    rc->persisted = true;
  }
  PQclear(r);
  return TALLY_OK;
}

/* Highlights paid for and neither shown to the end nor refunded: queued
 * again while their event runs (with their full time: the buyer's favour),
 * refunded once it has ended. */
static int load_highlights(loader *l) {
  tally__engine *e = l->e;
  PGresult *r = tally__load_q(l, "SELECT t.id, t.account_id, t.item_id, coalesce(t.memo, '') FROM transfers t"
                                 " JOIN items i ON i.id = t.item_id WHERE t.kind = 1 AND i.kind = 3"
                                 " AND NOT EXISTS (SELECT 1 FROM redemptions d WHERE d.transfer_id = t.id)"
                                 " AND NOT EXISTS (SELECT 1 FROM transfers f WHERE f.kind = 3 AND f.ref_transfer = t.id)"
                                 " ORDER BY t.id LIMIT 256", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t buyer = tally__load_acc(l, tally__load_i64(r, i, 1)), item = tally__load_item(l, tally__load_i64(r, i, 2));
    if (buyer == TALLY__NONE || item == TALLY__NONE) continue;
    tally__highlight_queue(e, (uint64_t)tally__load_i64(r, i, 0), buyer, item, "", PQgetvalue(r, i, 3));
  }
  PQclear(r);
  return TALLY_OK;
}

/* Creators' bios; the newest shipping notes (for ORDERS). */
static int load_merch(loader *l) {
  tally__state *st = &l->e->st;
  PGresult *r = tally__load_q(l, "SELECT account_id, bio, version FROM creator_bios LIMIT 1024", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r) && st->bio_count < TALLY__BIOS_MAX; i++) {
    uint32_t acc = tally__load_acc(l, tally__load_i64(r, i, 0));
    if (acc == TALLY__NONE) continue;
    tally__bio *bio = &st->bios[st->bio_count++];
    bio->account = acc;
    bio->version = (uint64_t)tally__load_i64(r, i, 2);
    snprintf(bio->text, sizeof bio->text, "%s", PQgetvalue(r, i, 1));
  }
  PQclear(r);
  r = tally__load_q(l, "SELECT transfer_id, note FROM (SELECT * FROM shipping_notes ORDER BY updated_ms DESC"
                       " LIMIT 1024) s ORDER BY updated_ms", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    tally__ship_note *n = &st->ship_notes[st->ship_next++ % TALLY__SHIP_NOTES_KEPT];
    n->transfer_id = (uint64_t)tally__load_i64(r, i, 0);
    snprintf(n->note, sizeof n->note, "%s", PQgetvalue(r, i, 1));
  }
  PQclear(r);
  return TALLY_OK;
}

/* Tip messages held for moderators whose time had not come, or came at
 * most TALLY__HELD_REPLAY_MS ago, and that no moderator hid: they wait
 * again for what is left of their hold (tipmsg.h). The newest first: at
 * most a table's worth, and the oldest were the most likely said. */
static int load_tip_messages(loader *l, int64_t now_ms) {
  char since[24];
  snprintf(since, sizeof since, "%lld", (long long)(now_ms - TALLY__HELD_REPLAY_MS));
  const char *params[1] = {since};
  PGresult *r = tally__load_q(l, "SELECT h.transfer_id, h.channel, h.show_ms, t.account_id, t.counterparty_id,"
                                 " t.amount_minor, coalesce(t.memo, '') FROM held_messages h"
                                 " JOIN transfers t ON t.id = h.transfer_id WHERE h.show_ms > $1::bigint"
                                 " AND NOT EXISTS (SELECT 1 FROM hidden_messages d WHERE d.transfer_id = h.transfer_id)"
                                 " ORDER BY h.show_ms DESC LIMIT 256", 1, params);
  if (!r) return TALLY_EDB;
  uint64_t mono = tally__now_mono_ms(l->e);
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t tipper = tally__load_acc(l, tally__load_i64(r, i, 3));
    uint32_t recipient = tally__load_acc(l, tally__load_i64(r, i, 4));
    if (tipper == TALLY__NONE || recipient == TALLY__NONE) continue;
    int64_t wait_ms = tally__load_i64(r, i, 2) - now_ms;
    /* The room is the tipper's network's: a tip is made by an identity, in a
     * room of its network (the ledger stores the channel only). */
    tally__tip_message_queue(l->e, (uint64_t)tally__load_i64(r, i, 0), tipper, recipient, tally__load_i64(r, i, 5),
                             l->e->st.accounts[tipper].net, PQgetvalue(r, i, 1), PQgetvalue(r, i, 6), mono + (uint64_t)(wait_ms > 0 ? wait_ms : 0));
  }
  PQclear(r);
  return TALLY_OK;
}

int tally__load_shop(loader *l, int64_t now_ms) {
  int rc = load_item_extras(l);
  if (!rc) rc = load_serials(l);
  if (!rc) rc = load_coop(l, now_ms);
  if (!rc) rc = load_redemptions(l);
  if (!rc) rc = load_raffles(l);
  if (!rc) rc = load_audience(l, now_ms);
  if (!rc) rc = load_highlights(l);
  if (!rc) rc = load_merch(l);
  if (!rc) rc = load_tip_messages(l, now_ms);
  return rc;
}
