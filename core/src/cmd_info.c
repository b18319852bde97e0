/* cmd_info.c — SHOP, WALLET, RECEIPTS and VERIFY: read-only answers from
 * memory, so browsing never touches PostgreSQL. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

enum { SHOP_LINES_MAX = 10 };

/* Is the item in creator's shop: theirs, or a co-op item they share? */
static bool shop_of(const tally__item *it, uint32_t creator) {
  if (it->creator == creator) return true;
  for (uint32_t k = 0; k < it->split.count; k++)
    if (it->split.account[k] == creator) return true;
  return false;
}

/* SHOP BIO <text>: the first line of a creator's shop card. */
static void shop_bio(tally__cmd *c) {
  tally__state *st = &c->e->st;
  if (c->account == TALLY__NONE || !st->accounts[c->account].is_creator) {
    tally__reply(c->e, c->cmd, TALLY_ENO_PERMISSION, 0, "%s: only creators have a shop card",
                 tally_strerror(TALLY_ENO_PERMISSION));
    return;
  }
  const char *text = c->t.count >= 3 ? c->t.rest[2] : "";
  if (strlen(text) > TALLY__BIO_BYTES_MAX) {
    tally__reply(c->e, c->cmd, TALLY_ETOOBIG, 0, "a bio is at most %d bytes", TALLY__BIO_BYTES_MAX);
    return;
  }
  tally__bio *bio = NULL;
  for (uint32_t i = 0; i < st->bio_count && !bio; i++)
    if (st->bios[i].account == c->account) bio = &st->bios[i];
  if (!bio && st->bio_count >= TALLY__BIOS_MAX) {
    tally__cmd_refuse(c, TALLY_ETOO_MANY);
    return;
  }
  if (!bio) {
    bio = &st->bios[st->bio_count++];
    memset(bio, 0, sizeof *bio);
    bio->account = c->account;
  }
  snprintf(bio->text, sizeof bio->text, "%s", text);
  bio->dirty = true;
  bio->version++;
  tally__cmd_ack_after_commit(c, "Your shop card says: %s", text[0] ? text : "(no bio)");
}

/* The card's first line: bio, items, live drops. */
static void shop_card(tally__cmd *c, uint32_t creator) {
  const tally__state *st = &c->e->st;
  const char *bio = "";
  for (uint32_t i = 0; i < st->bio_count; i++)
    if (st->bios[i].account == creator) bio = st->bios[i].text;
  int items = 0, live = 0;
  for (uint32_t i = 0; i < st->item_count; i++) {
    const tally__item *it = &st->items[i];
    if (it->deleted || !shop_of(it, creator) || it->kind == TALLY__KIND_HIGHLIGHT || it->kind == TALLY__KIND_REACTION)
      continue;
    items++;
    live += it->drop_state == TALLY__DROP_LIVE;
  }
  tally__reply(c->e, c->cmd, TALLY_OK, 0, "%s's shop%s%s - %d %s, %d live %s", st->accounts[creator].name + 5,
               bio[0] ? ": " : "", bio, items, items == 1 ? "item" : "items", live, live == 1 ? "drop" : "drops");
}

void tally__cmd_shop(tally__cmd *c) {
  tally__state *st = &c->e->st;
  uint32_t creator = TALLY__NONE;
  if (c->t.count >= 2 && tally__word_is(&c->t, 1, "BIO")) {
    shop_bio(c);
    return;
  }
  if (c->t.count >= 2) {
    char name[TALLY__ACCOUNT_NAME_BYTES];
    if (c->t.len[1] < TALLY_NAME_BYTES_MAX) {
      snprintf(name, sizeof name, "user:%.*s", (int)c->t.len[1], c->t.word[1]);
      creator = tally__account_find(st, name);
    }
    if (creator == TALLY__NONE) {
      tally__cmd_refuse(c, TALLY_EUNKNOWN_ACCOUNT);
      return;
    }
  }
  if (creator != TALLY__NONE) shop_card(c, creator);
  int shown = 0, total = 0;
  for (uint32_t i = 0; i < st->item_count; i++) {
    const tally__item *it = &st->items[i];
    if (it->deleted || it->kind == TALLY__KIND_HIGHLIGHT || it->kind == TALLY__KIND_REACTION) continue;
    if (creator != TALLY__NONE && !shop_of(it, creator)) continue;
    total++;
    if (shown == SHOP_LINES_MAX) continue;
    char price[48], left[32];
    tally__format_amount(c->e, it->price, price, sizeof price);
    int32_t n = tally__item_left(it);
    if (n < 0) snprintf(left, sizeof left, "available");
    else if (n == 0) snprintf(left, sizeof left, "sold out");
    else snprintf(left, sizeof left, "%d left", n);
    static const char *const kinds[] = {"", ", digital", ", pass"};
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "%s - %s - %s - %s (by %s%s%s%s)", it->sku, it->title, price, left,
                 st->accounts[it->creator].name + 5, it->split.count ? " and others" : "",
                 it->kind < 3 ? kinds[it->kind] : "", it->drop_state == TALLY__DROP_LIVE ? ", LIVE drop" : "");
    shown++;
  }
  if (total == 0) tally__reply(c->e, c->cmd, TALLY_OK, 0, "The shop is empty.");
  else if (total > shown)
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "...and %d more. SHOP <creator> narrows it.", total - shown);
  else tally__reply(c->e, c->cmd, TALLY_OK, 0, "BUY <sku> [qty] to buy; add max=<price> to refuse a higher price.");
}

void tally__cmd_wallet(tally__cmd *c) {
  const tally__account *a = &c->e->st.accounts[c->account];
  char avail[48], pending[48], spent[48], cap[48];
  tally__format_amount(c->e, tally__account_available(a), avail, sizeof avail);
  tally__format_amount(c->e, a->held, pending, sizeof pending);
  int64_t today = a->spent_day == tally__utc_day(c->wall) ? a->spent_today : 0;
  tally__format_amount(c->e, today, spent, sizeof spent);
  if (c->e->cfg.daily_cap_minor > 0)
    tally__format_amount(c->e, c->e->cfg.daily_cap_minor, cap, sizeof cap);
  else snprintf(cap, sizeof cap, "no cap");
  tally__reply(c->e, c->cmd, TALLY_OK, 0, "Wallet %s: balance %s available, %s pending. Spent today: %s (daily cap: %s)",
               a->name + 5, avail, pending, spent, cap);
}

void tally__cmd_receipts(tally__cmd *c) {
  const tally__account *a = &c->e->st.accounts[c->account];
  char list[TALLY_TEXT_BYTES_MAX] = "";
  size_t n = 0;
  uint32_t count = a->recent_next < TALLY__RECENT_RECEIPTS ? a->recent_next : TALLY__RECENT_RECEIPTS;
  for (uint32_t k = 0; k < count; k++) {
    uint64_t id = a->recent[(a->recent_next - 1 - k) % TALLY__RECENT_RECEIPTS];
    int w = snprintf(list + n, sizeof list - n, "%s%llu", n ? ", " : "", (unsigned long long)id);
    if (w < 0 || (size_t)w >= sizeof list - n) break;
    n += (size_t)w;
  }
  if (count == 0) tally__reply(c->e, c->cmd, TALLY_OK, 0, "No receipts yet.");
  else tally__reply(c->e, c->cmd, TALLY_OK, 0, "Your recent receipts: %s. VERIFY <receipt> for its proof.", list);
}

void tally__cmd_verify(tally__cmd *c) {
  if (c->t.count >= 2 && tally__word_is(&c->t, 1, "DRAW")) {
    tally__cmd_verify_draw(c);
    return;
  }
  if (c->t.count != 2) {
    tally__cmd_usage(c, "VERIFY <receipt> | VERIFY DRAW <sku>");
    return;
  }
  uint64_t id;
  if (tally__uint_parse(c->t.word[1], c->t.len[1], UINT64_MAX / 10, &id)) {
    tally__cmd_refuse(c, TALLY_EUNKNOWN_RECEIPT);
    return;
  }
  uint32_t slot = tally__purchase_find(&c->e->st, id);
  if (slot == TALLY__NONE) {
    tally__reply(c->e, c->cmd, TALLY_EUNKNOWN_RECEIPT, 0,
                 "receipt %llu is not among recent purchases; an admin can check any receipt with: tally verify %llu",
                 (unsigned long long)id, (unsigned long long)id);
    return;
  }
  const tally__purchase *p = &c->e->st.purchases[slot];
  char paid[48], refunded[48];
  tally__format_amount(c->e, p->amount, paid, sizeof paid);
  tally__format_amount(c->e, p->refunded, refunded, sizeof refunded);
  tally__reply(c->e, c->cmd, p->committed ? TALLY_OK : TALLY_EPENDING, p->committed ? id : 0,
               "receipt %llu: %s, %s of %s paid, %s refunded; signed in its batch (Ed25519 over a Merkle root). "
               "Offline proof: tally verify %llu",
               (unsigned long long)id, p->committed ? "committed" : "pending", paid,
               c->e->st.items[p->item].sku, refunded, (unsigned long long)id);
}
