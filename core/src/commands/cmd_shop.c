/* cmd_shop.c — what buyers do beyond BUY: enter a raffle drop, REDEEM a
 * pass, VERIFY DRAW of a raffle. Each answers once its record is durable
 * (ENTRY and REDEEM ops), like every other write. */
#include <stdio.h>
#include <string.h>

#include "text.h"
#include "commands.h"
#include "live_raffle.h"
#include "raffle.h"

int tally__cmd_raffle_enter(tally__cmd *c, uint32_t item) {
  tally__state *st = &c->e->st;
  tally__item *it = &st->items[item];
  if (it->creator == c->account) {
    tally__cmd_refuse(c, TALLY_ESELF);
    return TALLY_ESELF;
  }
  if (tally__raffle_entered(st, item, c->account)) {
    tally__cmd_refuse(c, TALLY_EENTERED);
    return TALLY_EENTERED;
  }
  /* Entering is free, but a winner who cannot pay is passed over: say so
   * now rather than at the draw. */
  if (tally__account_available(&st->accounts[c->account]) < it->price) {
    char price[48];
    tally__format_amount(c->e, it->price, price, sizeof price);
    tally__reply(c->e, c->cmd, TALLY_ENO_FUNDS, 0, "%s: a %s raffle win costs %s; top up before you enter",
                 tally_strerror(TALLY_ENO_FUNDS), it->sku, price);
    return TALLY_ENO_FUNDS;
  }
  uint32_t slot = tally__raffle_entry_add(st, item, c->account, c->origin);
  if (slot != TALLY__NONE) st->entries[slot].net = c->net; /* answered where it was said (LINK) */
  if (slot == TALLY__NONE) {
    tally__cmd_refuse(c, TALLY_EBUSY);
    return TALLY_EBUSY;
  }
  tally__op *op = tally__cmd_record_op(c, TALLY__OP_ENTRY);
  if (!op) {
    st->entries[slot].live = false;
    int32_t *units;
    tally__per_user_units(st, c->account, item, &units);
    if (units) *units = 0;
    return TALLY_EBUSY;
  }
  op->item = item;
  op->entry_slot = slot;
  it->entries_inflight++;
  snprintf(op->note, sizeof op->note,
           "You're in the %s raffle. Winners are drawn when it closes; you pay only if you win.", it->sku);
  return TALLY_OK;
}

/* The caller's purchase named by the receipt in token 1 (with at least
 * min_tokens tokens), and the kind it must have; TALLY__NONE once answered. */
static uint32_t own_purchase(tally__cmd *c, int min_tokens, uint8_t kind, int wrong_kind, const char *usage) {
  uint64_t receipt;
  if (c->t.count < min_tokens || tally__uint_parse(c->t.word[1], c->t.len[1], UINT64_MAX / 10, &receipt)) {
    tally__cmd_usage(c, usage);
    return TALLY__NONE;
  }
  tally__state *st = &c->e->st;
  uint32_t slot = tally__purchase_find(st, receipt);
  int rc = TALLY_OK;
  if (slot == TALLY__NONE) rc = TALLY_EUNKNOWN_RECEIPT;
  else if (tally__purchase_owner(st, &st->purchases[slot]) != c->account) rc = TALLY_ENOT_YOURS;
  else if (st->items[st->purchases[slot].item].kind != kind) rc = wrong_kind;
  else if (!st->purchases[slot].committed) rc = TALLY_EPENDING;
  if (rc) tally__cmd_refuse(c, rc);
  return rc ? TALLY__NONE : slot;
}

void tally__cmd_redeem(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "REDEEM", TALLY__NA);
  if (c->t.count != 2) {
    tally__cmd_usage(c, "REDEEM <receipt of a pass>");
    return;
  }
  uint32_t slot = own_purchase(c, 2, TALLY__KIND_PASS, TALLY_ENOT_A_PASS, "REDEEM <receipt of a pass>");
  if (slot == TALLY__NONE) return;
  tally__state *st = &c->e->st;
  tally__purchase *p = &st->purchases[slot];
  const tally__item *it = &st->items[p->item];
  uint64_t receipt = p->transfer_id;
  if (p->redeemed || p->redeem_held || p->refund_held) {
    tally__cmd_refuse(c, p->redeemed ? TALLY_EREDEEMED : TALLY_EPENDING);
    return;
  }
  if (p->refunded > 0) {
    tally__reply(c->e, c->cmd, TALLY_ENOT_A_PASS, 0, "that pass was refunded, so it can no longer be redeemed");
    return;
  }
  tally__op *op = tally__cmd_record_op(c, TALLY__OP_REDEEM);
  if (!op) return;
  op->item = p->item;
  op->ref_transfer = receipt;
  op->purchase_slot = slot;
  p->redeem_held = true;
  snprintf(op->note, sizeof op->note, "Pass %s redeemed (receipt %llu): it is yours to use now.", it->sku,
           (unsigned long long)receipt);
}

/* DELIVERY <receipt>: a digital purchase's delivery text, to its buyer,
 * privately, as often as asked. The first one is recorded (a redemptions
 * row, as REDEEM writes for a pass) and answered once stored: from then on
 * the purchase counts as delivered and is no longer refundable. */
void tally__cmd_delivery(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "DELIVERY", TALLY__NA | TALLY__PRIV);
  static const char usage[] = "DELIVERY <receipt of a digital item> (send it privately)";
  if (c->t.count != 2) {
    tally__cmd_usage(c, usage);
    return;
  }
  assert(!c->cmd->channel[0]); /* private only: the dispatcher refused it in a channel */
  uint32_t slot = own_purchase(c, 2, TALLY__KIND_DIGITAL, TALLY_ENOT_DIGITAL, usage);
  if (slot == TALLY__NONE) return;
  tally__state *st = &c->e->st;
  tally__purchase *p = &st->purchases[slot];
  const tally__item *it = &st->items[p->item];
  if (p->redeem_held || p->refund_held) {
    tally__cmd_refuse(c, TALLY_EPENDING);
    return;
  }
  if (p->refunded > 0) {
    tally__reply(c->e, c->cmd, TALLY_ENOT_DIGITAL, 0, "that purchase was refunded, so it is no longer delivered");
    return;
  }
  if (p->redeemed) { /* delivered before: send it again, nothing to store */
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "Your %s: %s", it->sku, it->delivery);
    return;
  }
  tally__op *op = tally__cmd_record_op(c, TALLY__OP_REDEEM);
  if (!op) return;
  op->item = p->item;
  op->ref_transfer = p->transfer_id;
  op->purchase_slot = slot;
  p->redeem_held = true;
  snprintf(op->note, sizeof op->note, "Your %s: %s", it->sku, it->delivery);
}

void tally__cmd_ship(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "SHIP", TALLY__NA | TALLY__PRIV);
  uint32_t slot = own_purchase(c, 3, TALLY__KIND_MERCH, TALLY_ENOT_MERCH,
                               "SHIP <receipt> <shipping address or note> (send it privately)");
  if (slot == TALLY__NONE) return;
  tally__purchase *p = &c->e->st.purchases[slot];
  uint64_t receipt = p->transfer_id;
  if (p->refunded >= p->amount) {
    tally__cmd_refuse(c, TALLY_EREFUND_EXCEEDS);
    return;
  }
  const char *note = c->t.rest[2];
  if (strlen(note) > TALLY__SHIP_NOTE_BYTES_MAX) {
    tally__reply(c->e, c->cmd, TALLY_ETOOBIG, 0, "a shipping note is at most %d bytes", TALLY__SHIP_NOTE_BYTES_MAX);
    return;
  }
  assert(!c->cmd->channel[0]); /* private only: the dispatcher refused it in a channel */
  tally__op *op = tally__cmd_record_op(c, TALLY__OP_SHIP);
  if (!op) return;
  op->item = p->item;
  op->ref_transfer = receipt;
  op->purchase_slot = slot;
  tally__text_clip(op->note, sizeof op->note, note);
}

/* ORDERS: a creator's newest merch orders and their shipping notes. */
void tally__cmd_orders(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "ORDERS", TALLY__NA);
  tally__state *st = &c->e->st;
  if (!st->accounts[c->account].is_creator) {
    tally__cmd_refuse(c, TALLY_ENO_PERMISSION);
    return;
  }
  int shown = 0;
  uint32_t max = st->cfg->purchases_max, n = st->purchase_next < max ? st->purchase_next : max;
  for (uint32_t k = 0; k < n && shown < TALLY__ORDERS_SHOWN; k++) {
    const tally__purchase *p = &st->purchases[(st->purchase_next - 1 - k) % max];
    const tally__item *it = &st->items[p->item];
    if (!p->live || !p->committed || it->kind != TALLY__KIND_MERCH || it->creator != c->account) continue;
    const char *note = NULL;
    for (uint32_t j = 0; j < TALLY__SHIP_NOTES_KEPT && !note; j++) {
      const tally__ship_note *s = &st->ship_notes[(st->ship_next - 1 - j) % TALLY__SHIP_NOTES_KEPT];
      if (s->transfer_id == p->transfer_id) note = s->note;
    }
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "order %llu: %ux %s for %s%s - ship to: %s", (unsigned long long)p->transfer_id,
                 p->qty, it->sku, tally__account_label(st, p->buyer),
                 p->refunded ? " (refunded)" : "", note ? note : "(no shipping note yet)");
    shown++;
  }
  if (!shown) tally__reply(c->e, c->cmd, TALLY_OK, 0, "No merch orders yet.");
}

/* VERIFY DRAW <sku>: the commitment, and once drawn the seed, entry hash
 * and entry count anyone can recompute the winners from. */
void tally__cmd_verify_draw(tally__cmd *c) {
  char sku[TALLY__SKU_BYTES_MAX + 1];
  tally__state *st = &c->e->st;
  uint32_t i = TALLY__NONE;
  if (c->t.count == 3 && tally__word_copy(&c->t, 2, sku, sizeof sku) == TALLY_OK) i = tally__item_find(st, sku);
  if (i == TALLY__NONE || st->items[i].drop_mode != TALLY__MODE_RAFFLE) {
    tally__reply(c->e, c->cmd, TALLY_EUNKNOWN_ITEM, 0, "no raffle drop by that name. Usage: VERIFY DRAW <sku>");
    return;
  }
  const tally__item *it = &st->items[i];
  uint8_t commit[32];
  char commit_hex[65], seed[65], hash[65];
  tally__raffle_commitment(it->raffle_seed, commit);
  tally__hex(commit, 32, commit_hex);
  if (!it->raffle_drawn && !(st->draw.active && st->draw.item == i)) {
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "raffle %s (item %llu) is not drawn yet. Seed commitment sha256: %s",
                 it->sku, (unsigned long long)it->id, commit_hex);
    return;
  }
  tally__hex(it->raffle_seed, 32, seed);
  tally__hex(it->raffle_entry_hash, 32, hash);
  tally__reply(c->e, c->cmd, TALLY_OK, 0,
               "raffle %s (item %llu): %u entries, entry hash %s, seed %s (sha256 %s). Recompute: docs/RAFFLE.md, "
               "or an admin runs: tally draw %s",
               it->sku, (unsigned long long)it->id, it->raffle_entries, hash, seed, commit_hex, it->sku);
}
