/* cmd_info.c — SHOP, WALLET, RECEIPTS and VERIFY: read-only answers from
 * memory, so browsing never touches PostgreSQL. */
#include <stdio.h>
#include <string.h>

#include "text.h"
#include "commands.h"
#include "challenges.h"

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
  tally__text_clip(bio->text, sizeof bio->text, text);
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
  tally__reply(c->e, c->cmd, TALLY_OK, 0, "%s's shop%s%s - %d %s, %d live %s", tally__account_label(st, creator),
               bio[0] ? ": " : "", bio, items, items == 1 ? "item" : "items", live, live == 1 ? "drop" : "drops");
  char badges[TALLY_TEXT_BYTES_MAX / 2]; /* the creator's challenges (features/challenges) */
  tally__challenge_card(c->e, creator, badges, sizeof badges);
  if (badges[0]) tally__reply(c->e, c->cmd, TALLY_OK, 0, "Challenges: %s", badges);
}

void tally__cmd_shop(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "SHOP", 0);
  tally__state *st = &c->e->st;
  uint32_t creator = TALLY__NONE;
  if (c->t.count >= 2 && tally__word_is(&c->t, 1, "BIO")) {
    shop_bio(c);
    return;
  }
  if (c->t.count >= 2) {
    creator = tally__cmd_named(c, 1);
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
                 tally__account_label(st, it->creator), it->split.count ? " and others" : "",
                 it->kind < 3 ? kinds[it->kind] : "", it->drop_state == TALLY__DROP_LIVE ? ", LIVE drop" : "");
    shown++;
  }
  if (total == 0) tally__reply(c->e, c->cmd, TALLY_OK, 0, "The shop is empty.");
  else if (total > shown)
    tally__reply(c->e, c->cmd, TALLY_OK, 0, "...and %d more. SHOP <creator> narrows it.", total - shown);
  else tally__reply(c->e, c->cmd, TALLY_OK, 0, "BUY <sku> [qty] to buy; add max=<price> to refuse a higher price.");
}

void tally__cmd_wallet(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "WALLET", TALLY__NA);
  const tally__account *a = &c->e->st.accounts[c->account];
  char avail[48], pending[48], spent[48], cap[48];
  tally__format_amount(c->e, tally__account_available(a), avail, sizeof avail);
  tally__format_amount(c->e, a->held, pending, sizeof pending);
  int64_t today = a->spent_day == tally__utc_day(c->wall) ? a->spent_today : 0;
  tally__format_amount(c->e, today, spent, sizeof spent);
  if (c->e->cfg.daily_cap_minor > 0)
    tally__format_amount(c->e, c->e->cfg.daily_cap_minor, cap, sizeof cap);
  else snprintf(cap, sizeof cap, "no cap");
  char badges[TALLY_TEXT_BYTES_MAX / 2]; /* earned in challenges (features/challenges) */
  tally__challenge_badges(c->e, c->account, badges, sizeof badges);
  tally__reply(c->e, c->cmd, TALLY_OK, 0, "Wallet %s: balance %s available, %s pending. Spent today: %s (daily cap: %s)%s%s",
               tally__account_label(&c->e->st, c->account), avail, pending, spent, cap, badges[0] ? ". Badges: " : "",
               badges);
}

void tally__cmd_receipts(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "RECEIPTS", TALLY__NA);
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

/* VERIFY <receipt>: the checks of `tally verify`, against the ledger, by the
 * verifier thread (verifier.c); answered in tally__cmd_verify_answer. Its
 * own bucket and a bounded queue ("busy") keep a flood of VERIFY away from
 * everyone's purchases: nothing here waits for PostgreSQL. */
void tally__cmd_verify(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "VERIFY", 0);
  if (c->t.count >= 2 && tally__word_is(&c->t, 1, "DRAW")) {
    tally__cmd_verify_draw(c);
    return;
  }
  if (c->t.count != 2) {
    tally__cmd_usage(c, "VERIFY <receipt> | VERIFY DRAW <sku>");
    return;
  }
  uint64_t id;
  if (tally__uint_parse(c->t.word[1], c->t.len[1], INT64_MAX, &id)) {
    tally__cmd_refuse(c, TALLY_EUNKNOWN_RECEIPT);
    return;
  }
  tally__engine *e = c->e;
  if (!tally__bucket_take(&e->verify_tokens_milli, &e->verify_at_ms, e->cfg.rate_verify_per_min, c->now)) {
    tally__cmd_refuse(c, TALLY_ERATE_LIMITED);
    return;
  }
  tally__verify_job *j = tally__verifier_slot(e->verifier);
  if (!j) {
    tally__reply(e, c->cmd, TALLY_EBUSY, 0, "%s: too many receipts are being checked", tally_strerror(TALLY_EBUSY));
    return;
  }
  j->req_id = c->cmd->req_id;
  j->receipt = id;
  if (c->account != TALLY__NONE) snprintf(j->requester, sizeof j->requester, "%s", tally__account_name(&e->st, c->account));
  snprintf(j->origin, sizeof j->origin, "%s", c->cmd->origin);
  snprintf(j->channel, sizeof j->channel, "%s", c->cmd->channel);
  j->net = c->net;
  tally__verifier_commit(e->verifier);
  /* Its answer needs room in the effects ring, as an op's does. */
  e->ops_pending++;
  e->effects_reserved += tally__effects_bytes(j->origin, j->channel);
}

static const char *shown_name(const char *account) {
  return strncmp(account, "user:", 5) == 0 ? account + 5 : account;
}

/* What the transfer is, for its own buyer (or a tip's recipient). */
static void owner_details(tally__engine *e, const tally__verify_job *j, bool payer, char *out, size_t n) {
  const tally__receipt_proof *p = &j->proof;
  char amount[48], refunded[48], serial[40] = "";
  tally__format_amount(e, p->amount_minor, amount, sizeof amount);
  tally__format_amount(e, j->refunded_minor, refunded, sizeof refunded);
  if (p->serial) snprintf(serial, sizeof serial, " (serial %u)", p->serial);
  /* Names may be JIDs of 2 KB: the sentence shows their first 120 bytes
   * (cut on a character boundary). */
  char sku[TALLY__SKU_BYTES_MAX + 1], name[121];
  tally__text_clip(sku, sizeof sku, p->sku);
  tally__text_clip(name, sizeof name, shown_name(p->kind == 2 && payer ? p->counterparty : p->account));
  if (p->kind == 1)
    snprintf(out, n, "your purchase of %ux %s%s for %s, %s refunded", p->qty, sku, serial, amount, refunded);
  else if (p->kind == 2 && payer)
    snprintf(out, n, "your tip of %s to %s", amount, name);
  else if (p->kind == 2) snprintf(out, n, "a tip of %s to you from %s", amount, name);
  else if (p->kind == 3) snprintf(out, n, "your refund of %s (of receipt %llu)", amount, (unsigned long long)p->ref_transfer);
  else snprintf(out, n, "a grant of %s to you", amount);
}

void tally__cmd_verify_answer(void *ud, const tally__verify_job *j) {
  tally__engine *e = ud;
  uint32_t reserved = tally__effects_bytes(j->origin, j->channel);
  assert(e->ops_pending > 0 && e->effects_reserved >= reserved);
  e->ops_pending--;
  e->effects_reserved -= reserved;
  const tally__receipt_proof *p = &j->proof;
  unsigned long long id = (unsigned long long)j->receipt;
  char text[TALLY_TEXT_BYTES_MAX + 1], what[TALLY_TEXT_BYTES_MAX / 2];
  int code = j->rc;
  if (j->rc == TALLY_OK) {
    /* Anyone may learn that a receipt is valid and in which batch; what
     * was bought, for how much and its refunds only its owner. */
    bool payer = j->requester[0] && strcmp(j->requester, p->account) == 0;
    bool payee = j->requester[0] && p->counterparty[0] && strcmp(j->requester, p->counterparty) == 0;
    if (payer || payee) owner_details(e, j, payer, what, sizeof what);
    else snprintf(what, sizeof what, "its details are shown only to its buyer");
    snprintf(text, sizeof text,
             "receipt %llu: VALID, in batch %llu (leaf %u of %u): the leaf from the stored transfer, its Merkle "
             "proof and the batch's signature check with the engine's key %s; %s.",
             id, (unsigned long long)p->batch_id, p->leaf_index + 1, p->leaf_count, p->key_id, what);
  } else if (j->rc == TALLY_EBADSIG) {
    snprintf(text, sizeof text, "receipt %llu: NOT VALID: %s", id, j->why);
  } else if (j->rc == TALLY_ENOTFOUND) {
    code = TALLY_EUNKNOWN_RECEIPT;
    snprintf(text, sizeof text, "receipt %llu: not in the ledger: %s", id, j->why);
  } else {
    code = TALLY_EDB;
    snprintf(text, sizeof text, "receipt %llu cannot be checked now (%s); try again", id, tally_strerror(TALLY_EDB));
  }
  tally__emit_in(e, j->net, TALLY_EFFECT_REPLY, code, j->req_id, j->rc == TALLY_OK ? j->receipt : 0, j->origin, j->channel,
              text);
}
