/* live_raffle.c — raffle drops: entries, the frozen list and the draw
 * (live_raffle.h; the rules anyone can recompute are in raffle.h). */
#include "text.h"
#include "live_raffle.h"

#include <assert.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "decide.h"
#include "live.h"
#include "raffle.h"

int tally__raffle_new_seed(tally__item *it) {
  return RAND_bytes(it->raffle_seed, sizeof it->raffle_seed) == 1 ? TALLY_OK : TALLY_ECRYPTO;
}

void tally__raffle_announce_open(tally__engine *e, uint32_t item) {
  const tally__item *it = &e->st.items[item];
  uint8_t commit[32];
  char hex[65], price[48];
  tally__raffle_commitment(it->raffle_seed, commit);
  tally__hex(commit, 32, hex);
  tally__format_amount(e, it->price, price, sizeof price);
  tally__say say;
  tally__say_init(&say, TALLY_MSG_RAFFLE_OPEN);
  tally__sayf(&say, "tnm", "RAFFLE OPEN: %s - %d units at %s. Enter with ", it->title, tally__item_left(it), price);
  size_t command = say.len; /* the adapter says the command its network's way */
  tally__sayf(&say, "s", "BUY %s", it->sku);
  tally__say_span(&say, TALLY_ARG_COMMAND, command);
  tally__sayf(&say, "-", " (no charge now; winners are drawn and charged at close). Seed commitment sha256: %s",
              hex);
  tally__say_value(&say, 2, it->price, TALLY__DECIMALS(e));
  tally__announce_say_in(e, it->drop_net, it->drop_channel, &say);
}

bool tally__raffle_entered(tally__state *st, uint32_t item, uint32_t account) {
  int32_t *units;
  return tally__per_user_units(st, account, item, &units) > 0;
}

/* Live entries keep their order when the table is compacted. */
static void entries_compact(tally__state *st) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < st->entry_count; i++) {
    if (!st->entries[i].live) {
      tally__names_unref(&st->names, st->entries[i].origin);
      continue;
    }
    if (n != i) st->entries[n] = st->entries[i];
    n++;
  }
  st->entry_count = n;
}

uint32_t tally__raffle_entry_add(tally__state *st, uint32_t item, uint32_t account, uint32_t origin) {
  /* Compaction moves entries, so never while one is in flight (its op
   * names its slot). */
  bool inflight = false;
  for (uint32_t i = 0; i < st->item_count && !inflight; i++) inflight = st->items[i].entries_inflight > 0;
  inflight |= st->draw.active; /* the draw names entries by slot (draw_scratch, ops) */
  if (st->entry_count >= TALLY__RAFFLE_ENTRIES_MAX && !inflight) entries_compact(st);
  if (st->entry_count >= TALLY__RAFFLE_ENTRIES_MAX) return TALLY__NONE;
  int32_t *units;
  tally__per_user_units(st, account, item, &units);
  if (!units) return TALLY__NONE;
  *units = 1;
  uint32_t slot = st->entry_count++;
  tally__raffle_entry *en = &st->entries[slot];
  memset(en, 0, sizeof *en);
  en->item = item;
  en->account = account;
  en->live = true;
  en->seq = st->items[item].raffle_seq++;
  en->net = st->accounts[account].net; /* the command's, set by its caller (LINK) */
  en->origin = origin; /* referenced while the entry is kept (entries_compact gives it back) */
  tally__names_ref(&st->names, origin);
  return slot;
}

void tally__raffle_close(tally__engine *e, uint32_t item) {
  tally__item *it = &e->st.items[item];
  if (it->drop_mode != TALLY__MODE_RAFFLE || it->raffle_drawn) return;
  e->st.raffles_due++;
}

/* Freezes the stored entries of the draw's item, reveals the seed and
 * the entry hash. */
static int draw_freeze(tally__engine *e, uint32_t item) {
  tally__state *st = &e->st;
  tally__item *it = &st->items[item];
  struct tally__draw_run *d = &st->draw;
  uint32_t n = 0, last_seq = 0;
  for (uint32_t i = 0; i < st->entry_count; i++) {
    const tally__raffle_entry *en = &st->entries[i];
    if (!en->live || !en->persisted || en->item != item) continue;
    assert(n == 0 || en->seq > last_seq);
    last_seq = en->seq;
    st->draw_scratch[n++] = i;
  }
  tally__raffle_hasher *h = tally__raffle_hash_begin(it->id, n);
  int rc = h ? TALLY_OK : TALLY_ECRYPTO;
  for (uint32_t k = 0; k < n && !rc; k++)
    rc = tally__raffle_hash_add(h, tally__account_name(st, st->entries[st->draw_scratch[k]].account));
  if (h && tally__raffle_hash_end(h, it->raffle_entry_hash) && !rc) rc = TALLY_ECRYPTO;
  if (rc) return rc;
  memset(d, 0, sizeof *d);
  d->active = true;
  d->item = item;
  d->n = n;
  int32_t left = tally__item_left(it);
  d->units = left < 0 ? n : (uint32_t)left;
  it->raffle_entries = n;
  tally__raffle_rng_init(&d->rng, it->raffle_seed, it->raffle_entry_hash);
  char seed[65], hash[65];
  tally__hex(it->raffle_seed, 32, seed);
  tally__hex(it->raffle_entry_hash, 32, hash);
  tally__say say;
  tally__say_init(&say, TALLY_MSG_RAFFLE_CLOSED);
  tally__sayf(&say, "sn--ns",
              "RAFFLE %s closed with %u entries. Seed: %s Entry hash: %s. Drawing %u winners now "
              "(VERIFY DRAW %s to check).",
              it->sku, n, seed, hash, d->units < n ? d->units : n, it->sku);
  tally__announce_say_in(e, it->drop_net, it->drop_channel, &say);
  return TALLY_OK;
}

/* One winner's charge: TALLY_OK with *sent (its op is in the open batch;
 * the outcome comes back through tally__raffle_charge_settled), TALLY_OK
 * without (charged before: its key is done), a reason the winner cannot
 * pay (passed over), or TALLY_EBUSY (no batch room: later). */
static int draw_charge(tally__engine *e, tally__item *it, uint32_t item, uint32_t slot, bool *sent) {
  tally__state *st = &e->st;
  const tally__raffle_entry *en = &st->entries[slot];
  *sent = false;
  tally__batch *b = tally__engine_open_batch(e);
  if (!b) return TALLY_EBUSY;
  tally__op *op = tally__batch_append(b);
  char key[TALLY__KEY_BYTES_MAX + 1];
  snprintf(key, sizeof key, "raffle:%llu:%llu", (unsigned long long)it->id,
           (unsigned long long)st->accounts[en->account].id);
  uint64_t existing = 0;
  tally__decide_ctx ctx = {.wall_ms = tally__now_wall_ms(e), .mono_ms = tally__now_mono_ms(e),
                           .origin = tally__origin_str(st, en->origin), .channel = it->drop_channel, .key = key,
                           .existing_transfer = &existing, .by_engine = true,
                           .net = en->net};
  int rc = tally__decide_buy(st, &ctx, en->account, item, 1, op);
  if (rc != TALLY_OK) {
    b->op_count--;
    return rc == TALLY_EEXISTS ? TALLY_OK : rc;
  }
  op->event_id = it->drop_event;
  op->raffle_charge = true;
  op->entry_slot = slot;
  tally__event_inflight(st, op->event_id, +1);
  tally__engine_pending_add(e, op);
  *sent = true;
  return TALLY_OK;
}

static void draw_won(tally__state *st, struct tally__draw_run *d, tally__raffle_entry *en) {
  en->drawn = TALLY__DRAWN_WON;
  d->winners++;
  d->next++;
  const char *name = tally__account_label(st, en->account);
  size_t used = strlen(d->named);
  if (st->accounts[en->account].unnamed) d->unnamed++; /* TALLY PRIVACY on: counted, not named */
  else if (used + strlen(name) + 3 < sizeof d->named) {
    snprintf(d->named + used, sizeof d->named - used, "%s%s", used ? ", " : "", name);
    tally__say_mark(&d->named_marks, TALLY_ARG_ACCOUNT, used + (used ? 2 : 0), strlen(name), 0, 0);
  }
}

/* The entry at position `next` is passed over: told why, and a
 * raffle_passes row records it (sent by draw_passes_send). */
static void draw_pass(tally__engine *e, struct tally__draw_run *d, tally__raffle_entry *en, int why) {
  en->drawn = TALLY__DRAWN_PASS_NEW;
  en->pass_reason = why;
  d->next++;
  if (!en->origin) return;
  char text[TALLY_TEXT_BYTES_MAX + 1];
  snprintf(text, sizeof text, "You won the %s raffle but could not pay (%s); your unit goes to the next entry drawn.",
           e->st.items[d->item].sku, tally_strerror(why));
  tally__emit_in(e, en->net, TALLY_EFFECT_REPLY, why, 0, 0, tally__origin_str(&e->st, en->origin), "", text);
}

/* Sends the rows of entries passed over; false while any is not stored. */
static bool draw_passes_send(tally__engine *e, const struct tally__draw_run *d) {
  tally__state *st = &e->st;
  bool stored = true;
  for (uint32_t k = 0; k < d->next && k < d->n; k++) {
    uint32_t slot = st->draw_scratch[k];
    tally__raffle_entry *en = &st->entries[slot];
    if (en->drawn == TALLY__DRAWN_PASS_SENT) stored = false;
    if (en->drawn != TALLY__DRAWN_PASS_NEW) continue;
    stored = false;
    tally__op *op = tally__engine_record_op(e, TALLY__OP_PASS, en->account, d->item);
    if (!op) return false;
    op->entry_slot = slot;
    op->fee = en->pass_reason;
    en->drawn = TALLY__DRAWN_PASS_SENT;
  }
  return stored;
}

void tally__raffle_charge_settled(tally__engine *e, const tally__op *op, int outcome) {
  tally__state *st = &e->st;
  struct tally__draw_run *d = &st->draw;
  if (!d->active || !d->charging || op->item != d->item || d->next >= d->n ||
      st->draw_scratch[d->next] != op->entry_slot)
    return; /* not the charge the draw waits for (cannot happen: one at a time) */
  tally__raffle_entry *en = &st->entries[op->entry_slot];
  d->charging = false;
  if (outcome == TALLY_OK) {
    draw_won(st, d, en);
  } else if (outcome == TALLY_EFAILED && ++en->tries < TALLY__RAFFLE_CHARGE_TRIES) {
    /* The batch failed, not the winner: the same entry again, later. */
    en->drawn = TALLY__DRAWN_NOT;
    d->retry_mono_ms = tally__now_mono_ms(e) + TALLY__RAFFLE_RETRY_MS;
  } else {
    draw_pass(e, d, en, outcome);
  }
}

void tally__raffle_pass_settled(tally__engine *e, const tally__op *op, bool ok) {
  tally__raffle_entry *en = &e->st.entries[op->entry_slot];
  if (en->drawn == TALLY__DRAWN_PASS_SENT) en->drawn = ok ? TALLY__DRAWN_PASSED : TALLY__DRAWN_PASS_NEW;
}

/* Winners are charged one at a time, in draw order, and named only once
 * their charge committed: a charge that fails at batch level is tried
 * again (TALLY__RAFFLE_CHARGE_TRIES), then passed over with its reason
 * like a winner who cannot pay. The draw ends once every pass is stored. */
static void draw_run(tally__engine *e) {
  tally__state *st = &e->st;
  struct tally__draw_run *d = &st->draw;
  tally__item *it = &st->items[d->item];
  if (d->charging || tally__now_mono_ms(e) < d->retry_mono_ms) return;
  while (d->winners < d->units && d->next < d->n) {
    /* The step is taken once per position, whether or not its charge has
     * to wait for batch room or be tried again. */
    if (d->stepped == d->next) {
      tally__raffle_step(&d->rng, st->draw_scratch, d->n, d->next);
      d->stepped++;
    }
    uint32_t slot = st->draw_scratch[d->next];
    tally__raffle_entry *en = &st->entries[slot];
    if (en->drawn == TALLY__DRAWN_PASSED) { /* stored before a restart: passed over again */
      d->next++;
      continue;
    }
    bool sent;
    int rc = draw_charge(e, it, d->item, slot, &sent);
    if (rc == TALLY_EBUSY) return; /* next tick */
    if (sent) {
      en->drawn = TALLY__DRAWN_CHARGING;
      d->charging = true;
      return; /* tally__raffle_charge_settled goes on */
    }
    if (rc == TALLY_OK) draw_won(st, d, en);
    else draw_pass(e, d, en, rc);
  }
  if (!draw_passes_send(e, d)) return;
  it->raffle_drawn = true;
  tally__item_mark_dirty(st, d->item);
  for (uint32_t i = 0; i < st->entry_count; i++)
    if (st->entries[i].item == d->item) st->entries[i].live = false;
  char unnamed[64] = "";
  if (d->unnamed)
    snprintf(unnamed, sizeof unnamed, "%s%u who prefer%s not to be named", d->named[0] ? ", and " : "", d->unnamed,
             d->unnamed == 1 ? "s" : "");
  tally__say say;
  tally__say_init(&say, TALLY_MSG_RAFFLE_WINNERS);
  tally__sayf(&say, "snn", "RAFFLE %s winners (%u of %u units): ", it->sku, d->winners, d->units);
  tally__say_marks none = {0};
  tally__say_splice(&say, d->named[0] || d->unnamed ? d->named : "nobody", d->named[0] ? &d->named_marks : &none);
  tally__sayf(&say, "", "%s%s", unnamed, d->winners > 0 ? ". Receipts are on their way." : "");
  tally__announce_say_in(e, it->drop_net, it->drop_channel, &say);
  d->active = false;
  st->raffles_due--;
}

void tally__raffle_tick(tally__engine *e) {
  tally__state *st = &e->st;
  if (!st->raffles_due) return;
  if (!st->draw.active) {
    for (uint32_t i = 0; i < st->item_count; i++) {
      tally__item *it = &st->items[i];
      if (it->drop_mode != TALLY__MODE_RAFFLE || it->raffle_drawn || it->drop_state != TALLY__DROP_CLOSED ||
          it->entries_inflight)
        continue;
      if (draw_freeze(e, i) == TALLY_OK) break;
    }
  }
  if (st->draw.active) draw_run(e);
}
