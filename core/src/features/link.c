/* link.c — LINK codes and links of identities (contract in link.h). */
#include "link.h"

#include <assert.h>
#include <stddef.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "loader.h"

/* 32 symbols: 256 is a multiple of 32, so a byte mod 32 is uniform. No 0,
 * O, 1 or I: codes are read off one screen and typed into another. */
static const char link_alphabet[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

int tally__link_random(char *out, size_t n) {
  uint8_t b[16];
  if (n > sizeof b || RAND_bytes(b, (int)n) != 1) return TALLY_ECRYPTO;
  for (size_t i = 0; i < n; i++) out[i] = link_alphabet[b[i] % 32];
  out[n] = 0;
  return TALLY_OK;
}

tally__links *tally__links_of(tally__engine *e) {
  assert(e->feature_data[TALLY__FDATA_LINKS]); /* allocated with the engine (runtime.c's entry) */
  return e->feature_data[TALLY__FDATA_LINKS];
}

void tally__link_code_free(tally__engine *e, uint32_t slot) {
  tally__state *st = &e->st;
  tally__link_code *k = &tally__links_of(e)->codes[slot];
  tally__names_unref(&st->names, k->issuer_origin);
  tally__names_unref(&st->names, k->claimer_origin);
  memset(k, 0, sizeof *k);
}

uint32_t tally__link_code_find(tally__engine *e, const char *code) {
  const tally__link_code *codes = tally__links_of(e)->codes;
  for (uint32_t i = 0; i < TALLY__LINK_CODES_MAX; i++)
    if (codes[i].state != TALLY__CODE_FREE && strcmp(codes[i].code, code) == 0) return i;
  return TALLY__NONE;
}

uint32_t tally__link_claim_of(tally__engine *e, uint32_t issuer) {
  const tally__link_code *codes = tally__links_of(e)->codes;
  for (uint32_t i = 0; i < TALLY__LINK_CODES_MAX; i++)
    if (codes[i].state == TALLY__CODE_CLAIMED && codes[i].issuer == issuer) return i;
  return TALLY__NONE;
}

int tally__link_issue(tally__engine *e, uint32_t issuer, uint16_t net, uint32_t origin, uint32_t *slot) {
  tally__state *st = &e->st;
  tally__link_code *codes = tally__links_of(e)->codes;
  uint64_t now = tally__now_mono_ms(e);
  uint32_t free_slot = TALLY__NONE;
  for (uint32_t i = 0; i < TALLY__LINK_CODES_MAX; i++) {
    tally__link_code *k = &codes[i];
    /* One code per issuer; expired codes free their slots (a RECORDING one
     * waits for its batch, however long). */
    if (k->state != TALLY__CODE_RECORDING && k->state != TALLY__CODE_FREE &&
        (k->issuer == issuer || k->expires_mono <= now))
      tally__link_code_free(e, i);
    if (k->state == TALLY__CODE_FREE && free_slot == TALLY__NONE) free_slot = i;
  }
  if (free_slot == TALLY__NONE) return TALLY_EBUSY;
  tally__link_code *k = &codes[free_slot];
  int rc;
  do { /* codes in use are unique: a repeat (one in 2^40 per pair) draws again */
    if ((rc = tally__link_random(k->code, TALLY__LINK_CODE_LEN))) return rc;
  } while (tally__link_code_find(e, k->code) != TALLY__NONE);
  k->state = TALLY__CODE_ISSUED;
  k->issuer = issuer;
  k->claimer = TALLY__NONE;
  k->issuer_net = net;
  k->issuer_origin = origin;
  tally__names_ref(&st->names, origin);
  k->expires_mono = now + (uint64_t)e->cfg.link_code_ttl_s * 1000;
  *slot = free_slot;
  return TALLY_OK;
}

/* The window restarts once it is over: at most N wrong codes in any
 * window, counted from the first wrong one. */
static void window_roll(uint8_t *fails, uint64_t *since, uint64_t now) {
  if (*fails && now - *since >= TALLY__LINK_GUESS_WINDOW_MS) *fails = 0;
  if (*fails == 0) *since = now;
}

bool tally__link_guess_allowed(tally__engine *e, uint32_t identity, uint64_t now, uint32_t *wait_min) {
  tally__links *links = tally__links_of(e);
  tally__account *a = &e->st.accounts[identity];
  if (a->link_fails && now - a->link_fails_mono >= TALLY__LINK_GUESS_WINDOW_MS) a->link_fails = 0;
  if (links->fails_global && now - links->fails_global_mono >= TALLY__LINK_GUESS_WINDOW_MS)
    links->fails_global = 0;
  uint64_t until = 0;
  if (a->link_fails >= TALLY__LINK_GUESSES_MAX) until = a->link_fails_mono + TALLY__LINK_GUESS_WINDOW_MS;
  if (links->fails_global >= TALLY__LINK_GUESSES_GLOBAL_MAX) {
    uint64_t g = links->fails_global_mono + TALLY__LINK_GUESS_WINDOW_MS;
    if (g > until) until = g;
  }
  if (!until) return true;
  *wait_min = (uint32_t)((until - now + 59999) / 60000);
  return false;
}

uint32_t tally__link_guess_failed(tally__engine *e, uint32_t identity, uint64_t now) {
  tally__links *links = tally__links_of(e);
  tally__account *a = &e->st.accounts[identity];
  window_roll(&a->link_fails, &a->link_fails_mono, now);
  a->link_fails++;
  if (links->fails_global == 0) links->fails_global_mono = now;
  links->fails_global++;
  return a->link_fails >= TALLY__LINK_GUESSES_MAX ? 0 : TALLY__LINK_GUESSES_MAX - a->link_fails;
}

static bool op_touches(const tally__op *op, uint32_t account) {
  if (op->account == account || op->counterparty == account) return true;
  for (uint32_t l = 0; l < op->leg_count; l++)
    if (op->legs[l].account == account) return true;
  return false;
}

bool tally__link_account_busy(const tally__engine *e, uint32_t account) {
  for (uint32_t i = 0; i < e->batch_slots; i++) {
    const tally__batch *b = &e->batches[i];
    if (b->phase == TALLY__BATCH_FREE) continue;
    for (uint32_t k = 0; k < b->op_count + b->hidden; k++)
      if (op_touches(&b->ops[k], account)) return true;
  }
  return false;
}

void tally__link_identity_text(const tally__state *st, uint32_t identity, char *out, size_t n) {
  const tally__account *a = &st->accounts[identity];
  snprintf(out, n, "%s:%s", st->networks[a->net].name, tally__account_label(st, identity));
}

__attribute__((format(printf, 3, 4))) static void say_into(char *out, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(out, n, fmt, ap);
  va_end(ap);
  if (w > 0) tally__text_trim_tail(out, (size_t)w < n ? (size_t)w : n - 1);
}

/* The person's wallet of a link op: the move's counterparty, or the
 * record op's account. */
static uint32_t op_person(const tally__op *op) {
  return op->type == TALLY__OP_TRANSFER ? op->counterparty : op->account;
}

void tally__link_pending(tally__state *st, const tally__op *op) {
  tally__account *a = &st->accounts[op->link_identity];
  if (op->link_event == 1) {
    a->person = op_person(op);
    a->link_state = TALLY__LINK_PENDING;
    st->accounts[op_person(op)].linked_count++;
  } else {
    a->link_state = TALLY__LINK_UNLINKING;
  }
}

/* A link or unlink committed (ok) or did not: memory follows, the code is
 * spent, and the joining identity is told (the issuer hears its own op's
 * answer). */
static void link_done(tally__engine *e, const tally__op *op, bool ok) {
  tally__state *st = &e->st;
  tally__account *a = &st->accounts[op->link_identity];
  uint32_t person = op_person(op);
  if (op->link_event == 2) {
    if (ok) {
      a->person = TALLY__NONE;
      a->link_state = TALLY__LINK_NONE;
      if (st->accounts[person].linked_count) st->accounts[person].linked_count--;
    } else {
      a->link_state = TALLY__LINK_LINKED;
    }
    return;
  }
  if (ok) {
    a->link_state = TALLY__LINK_LINKED;
    a->joined = person;
    a->joined_id = op->link_id;
  } else {
    a->person = TALLY__NONE;
    a->link_state = TALLY__LINK_NONE;
    if (st->accounts[person].linked_count) st->accounts[person].linked_count--;
  }
  if (op->link_slot == TALLY__NONE || op->link_slot >= TALLY__LINK_CODES_MAX) return;
  tally__link_code *k = &tally__links_of(e)->codes[op->link_slot];
  if (k->state != TALLY__CODE_RECORDING || k->claimer != op->link_identity) return;
  char who[TALLY__NETWORK_NAME_BYTES_MAX + TALLY_IDENTITY_BYTES_MAX + 2], text[TALLY_TEXT_BYTES_MAX + 1];
  tally__link_identity_text(st, op->link_by, who, sizeof who);
  if (ok && op->type == TALLY__OP_TRANSFER) {
    char amount[48];
    tally__format_amount(e, op->amount, amount, sizeof amount);
    say_into(text, sizeof text, "Linked: you now use the wallet of %s. Your %s moved into it (receipt %llu).", who,
             amount, (unsigned long long)op->transfer_id);
  } else if (ok) {
    say_into(text, sizeof text, "Linked: you now use the wallet of %s.", who);
  } else {
    say_into(text, sizeof text, "The link with %s could not be recorded; nothing moved. Start again with LINK.", who);
  }
  tally__emit_in(e, k->claimer_net, TALLY_EFFECT_REPLY, ok ? TALLY_OK : TALLY_EFAILED, 0,
                 ok && op->type == TALLY__OP_TRANSFER ? op->transfer_id : 0,
                 tally__origin_str(st, k->claimer_origin), "", text);
  tally__link_code_free(e, op->link_slot);
}

void tally__link_settled(tally__engine *e, const tally__op *op, int outcome) {
  if (op->kind == TALLY__TRANSFER_LINK && op->link_event) link_done(e, op, outcome == TALLY_OK);
}

void tally__link_record_settled(tally__engine *e, const tally__op *op, bool ok) {
  if (op->type == TALLY__OP_LINK) link_done(e, op, ok);
}

/* The latest event of each identity that has one: a link makes it use the
 * person's wallet; either kind says which wallet its older purchases
 * belong to (joined). */
int tally__link_restore(loader *l, int64_t now_ms) {
  (void)now_ms;
  tally__state *st = &l->e->st;
  PGresult *r = tally__load_q(l,
                              "SELECT i.account_id, k.account_id, k.event, k.id FROM"
                              " (SELECT DISTINCT ON (identity_id) identity_id, account_id, event, id FROM identity_links"
                              "  ORDER BY identity_id, id DESC) k JOIN identities i ON i.id = k.identity_id ORDER BY k.id",
                              0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t own = tally__load_acc(l, tally__load_i64(r, i, 0)), person = tally__load_acc(l, tally__load_i64(r, i, 1));
    if (own == TALLY__NONE || person == TALLY__NONE || own == person) continue;
    tally__account *a = &st->accounts[own];
    a->joined = person;
    a->joined_id = (uint64_t)tally__load_i64(r, i, 3);
    if (tally__load_i64(r, i, 2) != 1) continue;
    a->person = person;
    a->link_state = TALLY__LINK_LINKED;
    st->accounts[person].linked_count++;
  }
  PQclear(r);
  /* Links do not chain (the engine links to a root only); a ledger that
   * says otherwise is refused here, where an operator sees it. */
  for (uint32_t i = 0; i < st->account_count; i++) {
    uint32_t p = st->accounts[i].person;
    if (p != TALLY__NONE && st->accounts[p].person != TALLY__NONE) {
      snprintf(l->err, l->err_len, "load: identity_links: %s is linked to %s, itself linked", tally__account_name(st, i),
               tally__account_name(st, p));
      return TALLY_ELEDGER;
    }
  }
  return TALLY_OK;
}

/* ---- the feature's config keys (config.h; runtime.c registers them) ------- */
static const tally__config_key config_keys[] = {
    {"link_code_ttl", TALLY__CFG_U32, offsetof(tally_config, link_code_ttl_s), "600", 1, 3600,
     "seconds a LINK code stays valid for its LINK <code> on another network, and then for the issuer's "
     "LINK CONFIRM"},
};
const tally__config_keys tally__link_config_keys = TALLY__CONFIG_KEYS(config_keys);
