/* cmd_link.c — LINK and UNLINK: one wallet across networks (features/link.h
 * has the flow; README "One wallet across networks").
 *
 *   LINK                  (privately, on network A) a code, valid link_code_ttl
 *   LINK <code>           (privately, on network B) asks A's identity to confirm
 *   LINK CONFIRM <code>   (the issuer) joins B's identity to the wallet
 *   LINK CANCEL           (the issuer) drops its code
 *   UNLINK [<network:identity>]  detaches a linked identity (default: the sender)
 *
 * Every refusal names its reason. Money: a joining identity's own wallet
 * moves whole into the person's by one transfer (kind LINK), or nothing
 * moves when it is empty; it must be still (nothing held or in flight),
 * and it may not be a creator's (its sales would keep landing in it). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "command_rows.h"
#include "commands.h"
#include "decide.h"
#include "link.h"

/* A sentence that quotes names (an XMPP JID may be 2 KB), cut to fit and
 * never inside a character. */
__attribute__((format(printf, 3, 4))) static void say_into(char *out, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(out, n, fmt, ap);
  va_end(ap);
  if (w > 0) tally__text_trim_tail(out, (size_t)w < n ? (size_t)w : n - 1);
}

typedef char who_text[TALLY__NETWORK_NAME_BYTES_MAX + TALLY_IDENTITY_BYTES_MAX + 2];

/* Why identity x (its own account) cannot join wallet `person` now, or NULL. */
static const char *join_refusal(tally__cmd *c, uint32_t x, uint32_t person, int *code) {
  const tally__state *st = &c->e->st;
  const tally__account *a = &st->accounts[x];
  *code = TALLY_EEXISTS;
  if (tally__account_person(st, x) == person) return "this identity already uses that wallet";
  if (a->person != TALLY__NONE) return "this identity is already linked to a wallet: UNLINK it first";
  if (a->linked_count) return "other identities use this identity's wallet: UNLINK them first";
  *code = TALLY_ENO_PERMISSION;
  if (a->is_creator) return "a creator's wallet cannot join another (its sales are paid into it)";
  for (uint32_t i = 0; i < st->item_count; i++)
    if (st->items[i].creator == x) return "a creator's wallet cannot join another (its items sell into it)";
  return NULL;
}

static void link_issue(tally__cmd *c) {
  uint32_t slot;
  int rc = tally__link_issue(c->e, c->identity, c->net, c->origin, &slot);
  if (rc) {
    tally__cmd_refuse(c, rc);
    return;
  }
  uint32_t min = (c->e->cfg.link_code_ttl_s + 59) / 60;
  const char *code = tally__links_of(c->e)->codes[slot].code;
  tally__reply(c->e, c->cmd, TALLY_OK, 0,
               "Your link code: %s (valid %u min, once). On your other network, send privately: LINK %s - "
               "then confirm here who claimed it.", code, min, code);
}

static void link_claim(tally__cmd *c) {
  tally__state *st = &c->e->st;
  uint32_t wait;
  if (!tally__link_guess_allowed(c->e, c->identity, c->now, &wait)) {
    tally__reply(c->e, c->cmd, TALLY_ERATE_LIMITED, 0, "%s: too many wrong link codes; try again in %u min",
                 tally_strerror(TALLY_ERATE_LIMITED), wait);
    return;
  }
  char code[TALLY__LINK_CODE_LEN + 1];
  uint32_t slot = TALLY__NONE;
  if (c->t.len[1] == TALLY__LINK_CODE_LEN) {
    for (size_t i = 0; i < TALLY__LINK_CODE_LEN; i++) code[i] = (char)toupper((unsigned char)c->t.word[1][i]);
    code[TALLY__LINK_CODE_LEN] = 0;
    slot = tally__link_code_find(c->e, code);
  }
  tally__link_code *k = slot == TALLY__NONE ? NULL : &tally__links_of(c->e)->codes[slot];
  if (!k || k->state != TALLY__CODE_ISSUED) {
    /* Unknown and already used read the same: either could be a guess. */
    uint32_t left = tally__link_guess_failed(c->e, c->identity, c->now);
    tally__reply(c->e, c->cmd, TALLY_EBAD_CODE, 0, "unknown or already used link code (%u wrong %s left this hour)",
                 left, left == 1 ? "try" : "tries");
    return;
  }
  if (k->expires_mono <= c->now) {
    tally__link_code_free(c->e, slot);
    tally__reply(c->e, c->cmd, TALLY_EBAD_CODE, 0, "that link code has expired: ask for a new one with LINK");
    return;
  }
  if (k->issuer_net == c->net) {
    tally__reply(c->e, c->cmd, TALLY_EBAD_SYNTAX, 0,
                 "send LINK <code> from your identity on another network, not the one that issued it");
    return;
  }
  uint32_t person = tally__account_person(st, k->issuer);
  int code_rc;
  const char *why = join_refusal(c, c->identity, person, &code_rc);
  if (why) {
    tally__reply(c->e, c->cmd, code_rc, 0, "cannot link: %s", why);
    return;
  }
  int rc = tally__link_random(k->confirm, TALLY__LINK_CONFIRM_LEN);
  if (rc) {
    tally__cmd_refuse(c, rc);
    return;
  }
  k->state = TALLY__CODE_CLAIMED;
  k->claimer = c->identity;
  k->claimer_net = c->net;
  k->claimer_origin = c->origin;
  tally__names_ref(&st->names, c->origin);
  k->expires_mono = c->now + (uint64_t)c->e->cfg.link_code_ttl_s * 1000;
  who_text me, issuer;
  tally__link_identity_text(st, c->identity, me, sizeof me);
  tally__link_identity_text(st, k->issuer, issuer, sizeof issuer);
  char text[TALLY_TEXT_BYTES_MAX + 1];
  say_into(text, sizeof text,
           "%s asks to join your wallet. If that is you, send privately: LINK CONFIRM %s (valid %u min). "
           "If not, ignore it or send LINK CANCEL.", me, k->confirm, (c->e->cfg.link_code_ttl_s + 59) / 60);
  tally__emit_in(c->e, k->issuer_net, TALLY_EFFECT_REPLY, TALLY_OK, 0, 0, tally__origin_str(st, k->issuer_origin), "",
                 text);
  tally__reply(c->e, c->cmd, TALLY_OK, 0, "Asked %s to confirm; you will be told here once it is done.", issuer);
}

static void link_confirm(tally__cmd *c) {
  tally__state *st = &c->e->st;
  uint32_t wait;
  if (c->t.count != 3) {
    tally__cmd_usage(c, "LINK CONFIRM <code>");
    return;
  }
  if (!tally__link_guess_allowed(c->e, c->identity, c->now, &wait)) {
    tally__reply(c->e, c->cmd, TALLY_ERATE_LIMITED, 0, "%s: too many wrong link codes; try again in %u min",
                 tally_strerror(TALLY_ERATE_LIMITED), wait);
    return;
  }
  uint32_t slot = tally__link_claim_of(c->e, c->identity);
  tally__link_code *k = slot == TALLY__NONE ? NULL : &tally__links_of(c->e)->codes[slot];
  char code[TALLY__LINK_CONFIRM_LEN + 1] = {0};
  if (c->t.len[2] == TALLY__LINK_CONFIRM_LEN)
    for (size_t i = 0; i < TALLY__LINK_CONFIRM_LEN; i++) code[i] = (char)toupper((unsigned char)c->t.word[2][i]);
  if (!k || strcmp(code, k->confirm) != 0) {
    uint32_t left = tally__link_guess_failed(c->e, c->identity, c->now);
    tally__reply(c->e, c->cmd, TALLY_EBAD_CODE, 0, "%s (%u wrong %s left this hour)",
                 k ? "wrong confirmation code" : "no link waits for your confirmation", left,
                 left == 1 ? "try" : "tries");
    return;
  }
  who_text who;
  tally__link_identity_text(st, k->claimer, who, sizeof who);
  if (k->expires_mono <= c->now) {
    tally__link_code_free(c->e, slot);
    tally__reply(c->e, c->cmd, TALLY_EBAD_CODE, 0, "the link with %s has expired: start again with LINK", who);
    return;
  }
  uint32_t x = k->claimer, person = c->account; /* the issuer's wallet: its person's if itself linked */
  int code_rc;
  const char *why = join_refusal(c, x, person, &code_rc);
  if (why) {
    tally__reply(c->e, c->cmd, code_rc, 0, "cannot link %s: %s", who, why);
    return;
  }
  tally__account *a = &st->accounts[x];
  /* The identity rows the link names go first in the batch statement; an
   * account row in flight in another batch could commit after this one
   * (its row would be missing): wait for it. */
  const tally__account *in[3] = {a, &st->accounts[c->identity], &st->accounts[person]};
  bool rows_in_flight = false;
  for (int i = 0; i < 3; i++) rows_in_flight |= !in[i]->persisted && in[i]->row_batches > 0;
  if (rows_in_flight) {
    tally__reply(c->e, c->cmd, TALLY_EBUSY, 0, "%s: the new identity is still being recorded, confirm again in a moment",
                 tally_strerror(TALLY_EBUSY));
    return;
  }
  if (a->held || a->welcome_inflight || tally__link_account_busy(c->e, x)) {
    tally__reply(c->e, c->cmd, TALLY_EPENDING, 0,
                 "cannot link %s yet: a payment of its is still being recorded; confirm again in a moment", who);
    return;
  }
  if (a->balance < 0) {
    tally__reply(c->e, c->cmd, TALLY_ELEDGER, 0, "cannot link %s: %s", who, tally_strerror(TALLY_ELEDGER));
    return;
  }
  tally__op *op = tally__cmd_op_slot(c);
  if (!op) {
    tally__cmd_refuse(c, TALLY_EBUSY);
    return;
  }
  uint64_t link_id = tally__state_take_id(st);
  char amount[48];
  tally__format_amount(c->e, a->balance, amount, sizeof amount);
  if (a->balance > 0) {
    char key[32];
    snprintf(key, sizeof key, "link:%llu", (unsigned long long)link_id);
    uint64_t existing = 0;
    tally__decide_ctx ctx = {.wall_ms = c->wall, .mono_ms = c->now, .req_id = c->cmd->req_id,
                             .origin = c->cmd->origin, .origin_name = c->origin, .channel = c->cmd->channel,
                             .net = c->net, .maker = c->identity, .key = key, .existing_transfer = &existing};
    int rc = tally__decide_link_move(st, &ctx, x, person, a->balance, op);
    if (rc) {
      tally__cmd_op_unused(c);
      tally__reply(c->e, c->cmd, rc, 0, "cannot link %s: %s", who, tally_strerror(rc));
      return;
    }
    say_into(op->note, sizeof op->note, "Linked %s to this wallet; its %s moved here by one transfer.", who, amount);
    tally__cmd_op_added(c);
  } else {
    tally__cmd_op_unused(c);
    op = tally__cmd_record_op(c, TALLY__OP_LINK);
    if (!op) return;
    say_into(op->note, sizeof op->note, "Linked %s to this wallet (its own was empty: nothing moved).", who);
  }
  op->link_event = 1;
  op->link_identity = x;
  op->link_by = c->identity;
  op->link_slot = slot;
  op->link_id = link_id;
  k->state = TALLY__CODE_RECORDING;
  tally__link_pending(st, op);
}

void tally__cmd_link(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "LINK", TALLY__NA | TALLY__PRIV);
  tally__state *st = &c->e->st;
  if (c->t.count == 1) {
    link_issue(c);
  } else if (tally__word_is(&c->t, 1, "CONFIRM")) {
    link_confirm(c);
  } else if (tally__word_is(&c->t, 1, "CANCEL") && c->t.count == 2) {
    bool any = false;
    for (uint32_t i = 0; i < TALLY__LINK_CODES_MAX; i++) {
      tally__link_code *k = &tally__links_of(c->e)->codes[i];
      if (k->state != TALLY__CODE_ISSUED && k->state != TALLY__CODE_CLAIMED) continue;
      if (k->issuer != c->identity) continue;
      if (k->state == TALLY__CODE_CLAIMED)
        tally__emit_in(c->e, k->claimer_net, TALLY_EFFECT_REPLY, TALLY_EBAD_CODE, 0, 0,
                       tally__origin_str(st, k->claimer_origin), "", "Your LINK was declined by the code's issuer.");
      tally__link_code_free(c->e, i);
      any = true;
    }
    tally__reply(c->e, c->cmd, any ? TALLY_OK : TALLY_ENOTFOUND, 0, "%s",
                 any ? "Link code cancelled." : "no link code of yours is waiting");
  } else if (c->t.count == 2) {
    link_claim(c);
  } else {
    tally__cmd_usage(c, "LINK | LINK <code> | LINK CONFIRM <code> | LINK CANCEL");
  }
}

/* "<network>:<identity>" of a network the engine knows, or NULL. */
static uint32_t identity_named(tally__cmd *c, const char *s, size_t n) {
  const tally__state *st = &c->e->st;
  const char *colon = memchr(s, ':', n);
  if (!colon) return TALLY__NONE;
  size_t nl = (size_t)(colon - s);
  for (uint16_t k = 0; k < st->network_count; k++)
    if (strlen(st->networks[k].name) == nl && memcmp(st->networks[k].name, s, nl) == 0)
      return tally__identity_find(st, k, colon + 1, n - nl - 1);
  return TALLY__NONE;
}

void tally__cmd_unlink(tally__cmd *c) {
  TALLY__CMD_ENTRY(c, "UNLINK", TALLY__NA | TALLY__PRIV);
  tally__state *st = &c->e->st;
  if (c->t.count > 2) {
    tally__cmd_usage(c, "UNLINK [<network:identity>]");
    return;
  }
  uint32_t x = c->t.count == 1 ? c->identity : identity_named(c, c->t.word[1], c->t.len[1]);
  if (x == TALLY__NONE || tally__account_person(st, x) != c->account) {
    tally__reply(c->e, c->cmd, TALLY_EUNKNOWN_ACCOUNT, 0,
                 "%s: no identity of that name uses this wallet (write it as network:name, e.g. xmpp:alice@example.org)",
                 tally_strerror(TALLY_EUNKNOWN_ACCOUNT));
    return;
  }
  who_text who;
  tally__link_identity_text(st, x, who, sizeof who);
  tally__account *a = &st->accounts[x];
  if (a->person == TALLY__NONE && a->linked_count == 0) {
    tally__reply(c->e, c->cmd, TALLY_ENOTFOUND, 0, "%s is not linked: it uses its own wallet", who);
    return;
  }
  if (a->person == TALLY__NONE) {
    tally__reply(c->e, c->cmd, TALLY_ENO_PERMISSION, 0,
                 "cannot unlink %s: the wallet is its own; unlink the identities linked to it instead", who);
    return;
  }
  if (a->link_state != TALLY__LINK_LINKED) {
    tally__reply(c->e, c->cmd, TALLY_EBUSY, 0, "%s: its link is being recorded", tally_strerror(TALLY_EBUSY));
    return;
  }
  /* Nothing reaches a linked identity's own wallet (credits go to the
   * person's); were it otherwise, the money would stay and be said. */
  if (a->balance != 0 || a->held != 0 || tally__link_account_busy(c->e, x)) {
    tally__reply(c->e, c->cmd, TALLY_EPENDING, 0, "cannot unlink %s: its own wallet is not empty", who);
    return;
  }
  tally__op *op = tally__cmd_record_op(c, TALLY__OP_LINK);
  if (!op) return;
  op->link_event = 2;
  op->link_identity = x;
  op->link_by = c->identity;
  op->link_slot = TALLY__NONE;
  op->link_id = tally__state_take_id(st);
  say_into(op->note, sizeof op->note,
           "Unlinked %s: it has its own empty wallet again; receipts and refunds stay with this wallet.", who);
  tally__link_pending(st, op);
}

/* ---- the feature's command words (command_rows.h; runtime.c registers them) -- */
static const tally__command_row link_rows[] = {
    {"LINK", tally__cmd_link, TALLY__NA | TALLY__PRIV, TALLY_COMMAND_GROUP_EVERYONE,
     "| LINK <code> | LINK CONFIRM <code> | LINK CANCEL",
     "one wallet across networks: LINK here gives a code, LINK <code> on your other network claims it, "
     "LINK CONFIRM here agrees (privately)", NULL, 0},
    {"UNLINK", tally__cmd_unlink, TALLY__NA | TALLY__PRIV, TALLY_COMMAND_GROUP_EVERYONE,
     "[<network:identity>]",
     "detach a linked identity (privately; receipts stay with the wallet)", NULL, 0},
};
const tally__command_rows tally__link_commands = TALLY__ROWS(link_rows);
