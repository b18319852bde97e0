/* cmd_admin.c — ITEM (creators) and TALLY (help for everyone; grant, role
 * and stats for server operators). Roles are checked here in core, not
 * only in the host adapter. Catalog changes apply in memory at once and are
 * acknowledged after the batch that carries their row commits. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "describe.h"
#include "decide.h"
#include "highlight.h"
#include "hooks.h"

static bool sku_valid(const tally__tokens *t, int i) {
  if (t->len[i] == 0 || t->len[i] > TALLY__SKU_BYTES_MAX) return false;
  for (size_t k = 0; k < t->len[i]; k++) {
    char ch = t->word[i][k];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_')) return false;
  }
  return true;
}

/* An admin may manage any creator's items. */
static bool is_oper(const tally__cmd *c) { return (c->roles & TALLY_ROLE_ADMIN) != 0; }

static uint32_t owned_item(tally__cmd *c, int token) {
  char sku[TALLY__SKU_BYTES_MAX + 1];
  uint32_t i = TALLY__NONE;
  if (tally__word_copy(&c->t, token, sku, sizeof sku) == TALLY_OK) i = tally__item_find(&c->e->st, sku);
  if (i == TALLY__NONE || c->e->st.items[i].deleted) {
    tally__cmd_refuse(c, TALLY_EUNKNOWN_ITEM);
    return TALLY__NONE;
  }
  if (c->e->st.items[i].creator != c->account && !is_oper(c)) {
    tally__cmd_refuse(c, TALLY_ENO_PERMISSION);
    return TALLY__NONE;
  }
  return i;
}

static int title_set(tally__item *it, const char *text) {
  size_t n = strlen(text);
  if (n == 0 || n > TALLY__TITLE_BYTES_MAX) return TALLY_EBAD_SYNTAX;
  memcpy(it->title, text, n + 1);
  return TALLY_OK;
}

int tally__split_parse(tally__cmd *c, const char *s, size_t n, tally__split *out) {
  tally__split sp = {0};
  uint32_t total = 0;
  int payee_rc = TALLY_OK;
  while (n > 0) {
    const char *comma = memchr(s, ',', n);
    size_t part = comma ? (size_t)(comma - s) : n;
    const char *colon = memchr(s, ':', part);
    uint64_t bps;
    if (!colon || colon == s || sp.count >= TALLY__SPLIT_MAX || (size_t)(colon - s) >= TALLY_TEXT_BYTES_MAX ||
        tally__uint_parse(colon + 1, part - (size_t)(colon - s) - 1, TALLY__BPS_WHOLE, &bps) || bps == 0)
      return TALLY_EBAD_SYNTAX;
    char name[TALLY__ACCOUNT_NAME_BYTES];
    snprintf(name, sizeof name, "%.*s", (int)(colon - s), s);
    if (tally__text_check(name, strlen(name)) || strpbrk(name, " :,")) return TALLY_EBAD_SYNTAX;
    /* Looked up, never created: a refused command creates no account, and
     * only creators are paid by a split. */
    uint32_t account = tally__identity_find(&c->e->st, c->net, name, strlen(name));
    if (account != TALLY__NONE) account = tally__account_person(&c->e->st, account); /* LINK: the person's */
    int payee = account == TALLY__NONE || c->e->st.accounts[account].kind != TALLY__ACCOUNT_USER ? TALLY_EUNKNOWN_ACCOUNT
                : !c->e->st.accounts[account].is_creator                                          ? TALLY_ENO_PERMISSION
                                                                                                  : TALLY_OK;
    if (!payee_rc) payee_rc = payee; /* told after the syntax, which comes first */
    for (uint32_t k = 0; k < sp.count && account != TALLY__NONE; k++)
      if (sp.account[k] == account) return TALLY_EBAD_SYNTAX; /* named twice */
    sp.account[sp.count] = account;
    sp.bps[sp.count++] = (uint16_t)bps;
    total += (uint32_t)bps;
    s += part + (comma ? 1 : 0);
    n -= part + (comma ? 1 : 0);
    if (comma && n == 0) return TALLY_EBAD_SYNTAX;
  }
  if (sp.count == 0 || total != TALLY__BPS_WHOLE) return TALLY_EBAD_SYNTAX;
  if (payee_rc) return payee_rc;
  *out = sp;
  return TALLY_OK;
}

/* A numbered edition keeps its size once a unit is taken: "7 of 100" must
 * stay true. Otherwise the serial table follows the new stock. */
static int stock_set(tally__item *it, int32_t stock) {
  bool taken = it->sold + it->held > 0;
  if (taken && stock != it->stock && (tally__item_numbered(it) || (stock > 0 && stock <= TALLY__SERIAL_STOCK_MAX)))
    return TALLY_EFIXED;
  it->stock = stock;
  return taken ? TALLY_OK : tally__item_serials_alloc(it);
}

static void item_add(tally__cmd *c) {
  tally__state *st = &c->e->st;
  if (c->t.count < 5) {
    tally__cmd_usage(c, "ITEM ADD <sku> <price> [stock] <title>");
    return;
  }
  if (!sku_valid(&c->t, 2)) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "sku: 1-32 of a-z 0-9 - _");
    return;
  }
  if (tally__highlight_sku_reserved(c->t.word[2], c->t.len[2])) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "%s: skus starting hl- or react- are the engine's "
                 "(EVENT TIER, EVENT REACT)", tally_strerror(TALLY_EBAD_SYNTAX));
    return;
  }
  int64_t price;
  if (tally__cmd_amount(c, 3, &price)) return;
  int title_at = 4;
  int64_t stock = -1;
  uint64_t v;
  if (c->t.count >= 6 && tally__uint_parse(c->t.word[4], c->t.len[4], 1000000000, &v) == TALLY_OK) {
    stock = (int64_t)v;
    title_at = 5;
  }
  char sku[TALLY__SKU_BYTES_MAX + 1];
  tally__word_copy(&c->t, 2, sku, sizeof sku);
  uint32_t i = tally__item_find(st, sku);
  if (i != TALLY__NONE && (!st->items[i].deleted || st->items[i].creator != c->account)) {
    tally__cmd_refuse(c, TALLY_EEXISTS);
    return;
  }
  tally__item probe = {0};
  if (title_set(&probe, c->t.rest[title_at])) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0, "title: 1-%d bytes", TALLY__TITLE_BYTES_MAX);
    return;
  }
  if (i == TALLY__NONE) {
    if (!tally__cmd_item_new(c, sku, &i)) return;
  }
  tally__item *it = &st->items[i];
  int32_t taken = it->sold + it->held;
  it->creator = c->account;
  it->price = price;
  int rc = stock_set(it, stock < 0 ? -1 : (int32_t)(stock + taken)); /* a revived item keeps its history */
  if (rc) {
    tally__cmd_refuse(c, rc);
    return;
  }
  it->deleted = false;
  it->refund_window_s = c->e->cfg.refund_window_s;
  memcpy(it->title, probe.title, sizeof it->title);
  tally__item_mark_dirty(st, i);
  tally__cmd_ack_after_commit(c, "Item %s added.", sku);
}

/* ITEM SET <sku> split|kind|delivery ...: fixed once a unit has sold,
 * because refunds and redemptions read them back. */
static int item_set_shop(tally__cmd *c, tally__item *it) {
  bool sold = it->sold + it->held > 0;
  if (tally__word_is(&c->t, 3, "split")) {
    if (sold) return TALLY_EFIXED;
    if (tally__word_is(&c->t, 4, "none")) {
      it->split.count = 0;
      return TALLY_OK;
    }
    return tally__split_parse(c, c->t.word[4], c->t.len[4], &it->split);
  }
  if (tally__word_is(&c->t, 3, "kind")) {
    if (sold) return TALLY_EFIXED;
    if (tally__word_is(&c->t, 4, "plain")) it->kind = TALLY__KIND_PLAIN;
    else if (tally__word_is(&c->t, 4, "digital")) it->kind = TALLY__KIND_DIGITAL;
    else if (tally__word_is(&c->t, 4, "pass")) it->kind = TALLY__KIND_PASS;
    else if (tally__word_is(&c->t, 4, "merch")) it->kind = TALLY__KIND_MERCH;
    else return TALLY_EBAD_SYNTAX;
    return TALLY_OK;
  }
  size_t n = strlen(c->t.rest[4]);
  if (n > TALLY__DELIVERY_BYTES_MAX) return TALLY_ETOOBIG;
  memcpy(it->delivery, c->t.rest[4], n + 1);
  return TALLY_OK;
}

static void item_set(tally__cmd *c) {
  static const char usage[] = "ITEM SET <sku> price|stock|title|split|kind|delivery <value>";
  if (c->t.count < 5) {
    tally__cmd_usage(c, usage);
    return;
  }
  uint32_t i = owned_item(c, 2);
  if (i == TALLY__NONE) return;
  tally__item *it = &c->e->st.items[i];
  if (tally__word_is(&c->t, 3, "price")) {
    int64_t price;
    if (tally__cmd_amount(c, 4, &price)) return;
    /* Raffle winners are charged at the draw, by the engine, with no
     * CONFIRM: the price every entrant agreed to must be the one charged. */
    if (it->drop_mode == TALLY__MODE_RAFFLE && (it->raffle_seq > 0 || it->entries_inflight > 0)) {
      tally__reply(c->e, c->cmd, TALLY_EFIXED, 0, "%s: a raffle's price is fixed once it has entries",
                   tally_strerror(TALLY_EFIXED));
      return;
    }
    it->price = price;
  } else if (tally__word_is(&c->t, 3, "stock")) {
    uint64_t v = 0;
    bool unlimited = tally__word_is(&c->t, 4, "unlimited");
    if (!unlimited && c->t.len[4] == 1 && c->t.word[4][0] == '0') v = 0;
    else if (!unlimited && tally__uint_parse(c->t.word[4], c->t.len[4], 1000000000, &v)) {
      tally__cmd_refuse(c, TALLY_EBAD_QTY);
      return;
    }
    /* "stock N" means N more can be sold from now on. */
    int64_t stock = (int64_t)v + it->sold + it->held;
    if (!unlimited && stock > INT32_MAX) {
      tally__cmd_refuse(c, TALLY_EBAD_QTY);
      return;
    }
    int rc = stock_set(it, unlimited ? -1 : (int32_t)stock);
    if (rc) {
      tally__cmd_refuse(c, rc);
      return;
    }
  } else if (tally__word_is(&c->t, 3, "split") || tally__word_is(&c->t, 3, "kind") ||
             tally__word_is(&c->t, 3, "delivery")) {
    int rc = item_set_shop(c, it);
    if (rc) {
      if (rc == TALLY_EBAD_SYNTAX)
        tally__cmd_usage(c, "ITEM SET <sku> split <name>:<bps>,... (bps sum 10000) | split none | kind plain|digital|pass|merch "
                            "| delivery <text>");
      else
        tally__cmd_refuse(c, rc);
      return;
    }
  } else if (tally__word_is(&c->t, 3, "title")) {
    if (title_set(it, c->t.rest[4])) {
      tally__cmd_refuse(c, TALLY_EBAD_SYNTAX);
      return;
    }
  } else {
    tally__cmd_usage(c, usage);
    return;
  }
  tally__item_mark_dirty(&c->e->st, i);
  tally__cmd_ack_after_commit(c, "Item %s updated.", it->sku);
}

void tally__cmd_item(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "ITEM", TALLY__NA);
  tally__account *a = &c->e->st.accounts[c->account];
  if (!a->is_creator && !is_oper(c)) {
    tally__reply(c->e, c->cmd, TALLY_ENO_PERMISSION, 0, "%s: only creators can manage items",
                 tally_strerror(TALLY_ENO_PERMISSION));
    return;
  }
  if (tally__word_is(&c->t, 1, "ADD")) item_add(c);
  else if (tally__word_is(&c->t, 1, "SET")) item_set(c);
  else if (tally__word_is(&c->t, 1, "DEL") && c->t.count == 3) {
    uint32_t i = owned_item(c, 2);
    if (i == TALLY__NONE) return;
    c->e->st.items[i].deleted = true;
    tally__item_mark_dirty(&c->e->st, i);
    tally__cmd_ack_after_commit(c, "Item %s removed.", c->e->st.items[i].sku);
  } else tally__cmd_usage(c, "ITEM ADD|SET|DEL ...");
}

/* ---- TALLY ------------------------------------------------------------------ */

/* grant_max in minor units (INT64_MAX: no cap); false on overflow, which
 * the config's bounds rule out (10^12 x 10^6 < 2^63). */
static bool grant_cap(const tally__engine *e, int64_t *cap) {
  *cap = INT64_MAX;
  if (e->cfg.grant_max_major == 0) return true;
  int64_t unit = 1;
  for (uint32_t d = 0; d < e->cfg.currency_decimals; d++) unit *= 10;
  return tally__mul_i64(e->cfg.grant_max_major, unit, cap);
}

/* Creating credits needs more than being an admin: the adapter sets
 * TALLY_ROLE_GRANT only for operators with that privilege (tally/grant);
 * the dispatcher checks it (command_table.h's role rule). */
static void tally_grant(tally__cmd *c) {
  if (c->t.count != 4) {
    tally__cmd_usage(c, "TALLY GRANT <account> <amount>");
    return;
  }
  if (c->t.len[2] > TALLY_TEXT_BYTES_MAX) { /* an account named in the line: any that fits it */
    tally__cmd_refuse(c, TALLY_EUNKNOWN_ACCOUNT);
    return;
  }
  int64_t amount;
  if (tally__cmd_amount(c, 3, &amount)) return;
  int64_t cap;
  if (!grant_cap(c->e, &cap) || amount > cap) {
    char most[48];
    tally__format_amount(c->e, cap, most, sizeof most);
    tally__reply(c->e, c->cmd, TALLY_EOVERFLOW, 0, "%s: at most %s per grant (grant_max)",
                 tally_strerror(TALLY_EOVERFLOW), most);
    return;
  }
  char name[TALLY_TEXT_BYTES_MAX + 1];
  tally__word_copy(&c->t, 2, name, sizeof name);
  uint32_t to;
  int rc = tally__cmd_account(c, name, &to);
  if (!rc) to = tally__account_person(&c->e->st, to); /* a linked identity's grant lands in its person's wallet */
  if (rc) {
    tally__cmd_refuse(c, rc);
    return;
  }
  tally__op *op = tally__cmd_op_slot(c);
  if (!op) {
    tally__cmd_refuse(c, TALLY_EBUSY);
    return;
  }
  uint64_t existing = 0;
  tally__decide_ctx ctx = {.wall_ms = c->wall, .mono_ms = c->now, .req_id = c->cmd->req_id,
                           .origin = c->cmd->origin, .origin_name = c->origin, .channel = c->cmd->channel,
                           .net = c->net, .maker = c->identity,
                           .key = tally__cmd_key(c, "grant:"), .existing_transfer = &existing};
  rc = tally__decide_grant(&c->e->st, &ctx, to, amount, op);
  if (rc == TALLY_OK) { /* its batch writes an audit_log row naming the operator */
    op->audited = true;
    op->actor = c->account;
  }
  tally__cmd_money_result(c, rc, existing);
}

static void tally_role(tally__cmd *c) {
  bool creator = tally__word_is(&c->t, 3, "creator");
  if (c->t.count != 4 || (!creator && !tally__word_is(&c->t, 3, "none"))) {
    tally__cmd_usage(c, "TALLY ROLE <account> creator|none");
    return;
  }
  char name[TALLY_TEXT_BYTES_MAX + 1];
  if (tally__word_copy(&c->t, 2, name, sizeof name)) {
    tally__cmd_refuse(c, TALLY_EUNKNOWN_ACCOUNT);
    return;
  }
  uint32_t who;
  int rc = tally__cmd_account(c, name, &who);
  if (!rc) who = tally__account_person(&c->e->st, who); /* roles are the wallet's, the person's */
  if (rc) {
    tally__cmd_refuse(c, rc);
    return;
  }
  tally__account *a = &c->e->st.accounts[who];
  /* One role change per account in flight: role_changes has no version,
   * so two in two batches could be stored in the wrong order. */
  if (a->role_dirty) {
    tally__reply(c->e, c->cmd, TALLY_EBUSY, 0, "%s: %s's previous role change is still being saved",
                 tally_strerror(TALLY_EBUSY), name);
    return;
  }
  a->is_creator = creator;
  a->role_by = c->account; /* role_changes.by_account */
  a->role_dirty = true;
  a->role_version++;
  tally__account_mark_dirty(&c->e->st, who);
  tally__cmd_ack_after_commit(c, "%s is now %s.", name, creator ? "a creator" : "a regular account");
}

void tally__cmd_tally(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "TALLY", 0);
  if (c->t.count == 1 || tally__word_is(&c->t, 1, "HELP")) {
    /* From the dispatcher's command set (the core's words and every
     * feature's), like tally_commands_describe. */
    char line[TALLY_TEXT_BYTES_MAX + 1];
    for (size_t i = 0; tally__commands_help_line(c->e->hooks->commands, i, line, sizeof line); i++)
      tally__reply(c->e, c->cmd, TALLY_OK, 0, "%s", line);
    return;
  }
  if (tally__word_is(&c->t, 1, "PRIVACY")) {
    tally__cmd_privacy(c);
    return;
  }
  /* the admin role (and TALLY GRANT's grant privilege): command_table.h's
   * role rule, checked by the dispatcher */
  if (c->account == TALLY__NONE) {
    tally__cmd_refuse(c, TALLY_ENOT_LOGGED_IN);
    return;
  }
  if (tally__word_is(&c->t, 1, "GRANT")) tally_grant(c);
  else if (tally__word_is(&c->t, 1, "ROLE")) tally_role(c);
  else if (tally__word_is(&c->t, 1, "STATS")) {
    tally_stats s;
    tally_engine_stats(c->e, &s);
    tally__reply(c->e, c->cmd, TALLY_OK, 0,
                 "accounts %u, items %u, buys committed %llu, batches %llu, retries %llu, busy %llu, pending %u",
                 c->e->st.account_count, c->e->st.item_count, (unsigned long long)s.buys_committed,
                 (unsigned long long)s.batches_committed, (unsigned long long)s.batch_retries,
                 (unsigned long long)s.busy_rejects, c->e->ops_pending);
  } else tally__cmd_usage(c, "TALLY HELP|PRIVACY|GRANT|ROLE|STATS");
}
