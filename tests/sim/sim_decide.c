/* sim_decide.c — random requests and their decisions, each checked against
 * the model's own legs and recorded (sim_internal.h). */
#include "sim_internal.h"

/* ---- decisions ---------------------------------------------------------------------------------- */
const char *random_key(world *w) {
  if (chance(w, w->fresh_pct)) {
    snprintf(w->key, sizeof w->key, "f%llu", (unsigned long long)++w->fresh);
  } else {
    uint32_t k = (uint32_t)below(w, w->key_pool);
    /* A few pool keys are as long as a key can be. */
    if (k % 61 == 7) snprintf(w->key, sizeof w->key, "%0*u", TALLY__KEY_BYTES_MAX, k);
    else snprintf(w->key, sizeof w->key, "k%u", k);
  }
  return w->key;
}

uint32_t random_user(world *w) { return w->users[below(w, w->user_count)]; }

int64_t random_amount(world *w) {
  uint64_t r = below(w, 100);
  if (r < 60) return between(w, 1, 500);
  if (r < 90) return between(w, 1, 20000);
  if (r < 99) return between(w, 1, 10000000);
  return between(w, 1, 1000000000000LL);
}

void random_req(world *w, req *q) {
  memset(q, 0, sizeof *q);
  uint64_t r = below(w, 100);
  q->account = random_user(w);
  q->chan = (uint8_t)below(w, SIM_CHANNELS + 1);
  if (r < 50) {
    static const uint32_t odd[] = {0, 101, 1000, UINT32_MAX};
    q->kind = TALLY__TRANSFER_PURCHASE;
    /* Buys aimed at drops, mostly at those not closed yet: a crowd at the
     * window, small quantities. */
    q->item = (uint32_t)below(w, w->st.item_count);
    if (w->drop_count && chance(w, 40)) {
      uint32_t open[SIM_ITEMS_MAX], n = 0;
      for (uint32_t d = 0; d < w->drop_count; d++)
        if (w->st.items[w->drops[d]].drop_state != TALLY__DROP_CLOSED) open[n++] = w->drops[d];
      q->item = n && chance(w, 75) ? open[below(w, n)] : w->drops[below(w, w->drop_count)];
    }
    uint64_t s = below(w, 100);
    q->qty = s < 80 ? (uint32_t)between(w, 1, 3) : s < 92 ? (uint32_t)between(w, 1, 100) : odd[below(w, 4)];
  } else if (r < 65) {
    q->kind = TALLY__TRANSFER_TIP;
    q->other = chance(w, 95) ? random_user(w) : (chance(w, 50) ? w->st.fees : w->st.external);
    q->amount = random_amount(w);
  } else if (r < 85) {
    q->kind = TALLY__TRANSFER_REFUND;
    uint64_t s = below(w, 100);
    bool old = (w->o.faults & SIM_FAULT_OLD_REFUNDS) && chance(w, 50);
    if (w->purchase_count && s < 90) {
      /* Purchases memory still remembers; by default not the oldest ones,
       * which a refund in flight would keep from being forgotten (a known
       * core bug, SIM_FAULT_OLD_REFUNDS aims there on purpose). */
      uint32_t keep = w->cfg.purchases_max, lo = 0, span;
      if (old) {
        lo = w->purchase_count > keep + 8 ? w->purchase_count - keep - 8 : 0;
        span = 24;
      } else {
        uint32_t margin = SIM_SLOTS_MAX * w->cfg.batch_max + 64;
        keep = keep > margin ? keep - margin : 1;
        lo = w->purchase_count > keep ? w->purchase_count - keep : 0;
        span = w->purchase_count - lo;
      }
      uint32_t i = lo + (uint32_t)below(w, span);
      q->ref = w->purchases[i < w->purchase_count ? i : w->purchase_count - 1];
      rec *p = rec_of(w, q->ref);
      if (s < 85) q->account = p->account;
      uint64_t a = below(w, 100);
      q->amount = a < 30 ? 0 : a < 75 ? between(w, 1, p->amount) : a < 90 ? between(w, 1, 10) : a < 95 ? -1 : p->amount + 1;
    } else {
      q->ref = (uint64_t)between(w, 0, (int64_t)w->st.next_id + 10);
      q->amount = chance(w, 50) ? 0 : random_amount(w);
    }
  } else {
    q->kind = TALLY__TRANSFER_GRANT;
    q->amount = random_amount(w) * (chance(w, 50) ? 100 : 1);
    if ((w->o.faults & SIM_FAULT_HUGE_AMOUNTS) && chance(w, 10))
      q->amount = between(w, 1, 999999999999999999LL);
  }
}

/* The legs the model expects, from the request alone (and, for a refund,
 * from the model's record of its purchase). */
int expected_legs(world *w, const req *q, int64_t *amount, int64_t *fee, tally__leg *legs) {
  tally__state *st = &w->st;
  int n = 0;
#define LEG(acc, amt) do { if ((amt) != 0) { legs[n].account = (acc); legs[n].amount = (amt); n++; } } while (0)
  if (q->kind == TALLY__TRANSFER_PURCHASE) {
    *amount = w->price[q->item] * (int64_t)q->qty;
    *fee = (int64_t)(((__int128)*amount * w->cfg.fee_bps) / 10000);
    LEG(q->account, -*amount);
    const tally__split *sp = &st->items[q->item].split;
    if (sp->count) { /* the model's own largest remainder over the shares */
      int64_t net = *amount - *fee, part[TALLY__SPLIT_MAX], rem[TALLY__SPLIT_MAX], given = 0;
      for (int i = 0; i < sp->count; i++) {
        part[i] = (int64_t)(((__int128)net * sp->bps[i]) / TALLY__BPS_WHOLE);
        rem[i] = (int64_t)(((__int128)net * sp->bps[i]) % TALLY__BPS_WHOLE);
        given += part[i];
      }
      for (; given < net; given++) {
        int best = -1;
        for (int i = 0; i < sp->count; i++)
          if (rem[i] >= 0 && (best < 0 || rem[i] > rem[best])) best = i;
        part[best]++;
        rem[best] = -1;
      }
      for (int i = 0; i < sp->count; i++) LEG(sp->account[i], part[i]);
    } else {
      LEG(st->items[q->item].creator, *amount - *fee);
    }
    LEG(st->fees, *fee);
  } else if (q->kind == TALLY__TRANSFER_TIP) {
    *amount = q->amount;
    *fee = 0;
    LEG(q->account, -*amount);
    LEG(q->other, *amount);
  } else if (q->kind == TALLY__TRANSFER_REFUND) {
    const rec *p = rec_of(w, q->ref);
    int64_t done = p->refunded + p->refund_inflight;
    *amount = q->amount ? q->amount : p->amount - done;
    /* Cumulative share of the fee, less what earlier parts (committed or in
     * flight) returned; clamped so no part exceeds its amount or the fee. */
    int64_t before = p->refund_fees + p->refund_fee_inflight;
    int64_t f = (int64_t)(((__int128)p->fee * (done + *amount)) / p->amount) - before;
    if (f < 0) f = 0;
    if (f > *amount) f = *amount;
    if (f > p->fee - before) f = p->fee - before;
    *fee = f;
    LEG(q->account, *amount);
    LEG(p->other, -(*amount - *fee));
    LEG(st->fees, -*fee);
  } else {
    *amount = q->amount;
    *fee = 0;
    LEG(st->external, -*amount);
    LEG(q->account, *amount);
  }
#undef LEG
  return n;
}

/* A co-op refund cannot be predicted leg by leg from the request (its
 * rounding follows the earlier parts), so the model checks what it must
 * be: the buyer gets the amount, each payee gives back a part >= 0 that
 * keeps what it returned within what it was credited, and the parts sum to
 * the amount. Returns the leg count, or -1 after a failure. */
int coop_refund_legs(world *w, const req *q, const tally__op *op, rec *p, int64_t *amount, int64_t *fee,
                            tally__leg *legs) {
  int64_t done = p->refunded + p->refund_inflight;
  *amount = q->amount ? q->amount : p->amount - done;
  *fee = 0;
  if (op->leg_count < 2 || op->legs[0].account != q->account || op->legs[0].amount != *amount) {
    fail(w, "I4: co-op refund %llu does not pay the buyer %lld", (unsigned long long)op->transfer_id, (long long)*amount);
    return -1;
  }
  int64_t sum = 0;
  for (int i = 1; i < op->leg_count; i++) {
    int k = -1;
    for (int j = 0; j < p->pay_n; j++)
      if (p->pay_acc[j] == op->legs[i].account) k = j;
    int64_t part = -op->legs[i].amount;
    if (k < 0 || part <= 0 || p->pay_back[k] + p->pay_inflight[k] + part > p->pay_credit[k]) {
      fail(w, "I4: co-op refund %llu takes %lld from %s, which it cannot", (unsigned long long)op->transfer_id,
           (long long)part, w->st.accounts[op->legs[i].account].name);
      return -1;
    }
    if (p->pay_acc[k] == w->st.fees) *fee = part;
    sum += part;
  }
  if (sum != *amount) {
    fail(w, "I1: co-op refund %llu gives %lld and takes back %lld", (unsigned long long)op->transfer_id,
         (long long)*amount, (long long)sum);
    return -1;
  }
  memcpy(legs, op->legs, sizeof op->legs[0] * op->leg_count);
  return op->leg_count;
}

/* A refund's parts against its co-op purchase: held (+1), applied (0) or
 * released (-1). */
void coop_refund_settle(world *w, const rec *t, int how) {
  rec *p = rec_of(w, t->ref);
  if (!p || !p->pay_n) return;
  for (int i = 1; i < t->leg_count; i++)
    for (int j = 0; j < p->pay_n; j++) {
      if (p->pay_acc[j] != t->legs[i].account) continue;
      int64_t part = -t->legs[i].amount;
      if (how > 0) p->pay_inflight[j] += part;
      else p->pay_inflight[j] -= part;
      if (how == 0) p->pay_back[j] += part;
    }
  if (how == 0 && p->refunded == p->amount)
    for (int j = 0; j < p->pay_n; j++)
      if (p->pay_back[j] != p->pay_credit[j])
        fail(w, "I4: co-op purchase %llu fully refunded, but %s got back %lld of %lld", (unsigned long long)t->ref,
             w->st.accounts[p->pay_acc[j]].name, (long long)p->pay_back[j], (long long)p->pay_credit[j]);
}

/* A decision that succeeded: check it against the model, then record it. */
void decided(world *w, const req *q, const tally__op *op, const char *key) {
  if (op->transfer_id <= w->last_id)
    fail(w, "I9: transfer id %llu decided after %llu", (unsigned long long)op->transfer_id, (unsigned long long)w->last_id);
  w->last_id = op->transfer_id;
  rec *t = rec_of(w, op->transfer_id);
  if (!t || t->status != REC_FREE) {
    fail(w, "transfer id %llu out of the model's range or reused", (unsigned long long)op->transfer_id);
    return;
  }
  if (q->kind == TALLY__TRANSFER_REFUND) {
    const rec *p = rec_of(w, q->ref);
    if (!p || p->kind != TALLY__TRANSFER_PURCHASE || p->status != REC_APPLIED)
      fail(w, "I4: refund of %llu decided but that purchase is not committed", (unsigned long long)q->ref);
    else if (p->account != q->account)
      fail(w, "I4: refund of %llu decided for someone else than its buyer", (unsigned long long)q->ref);
    if (w->r->failed) return;
  }
  tally__leg legs[TALLY__LEGS_MAX];
  int64_t amount, fee;
  int n;
  rec *coop = q->kind == TALLY__TRANSFER_REFUND ? rec_of(w, q->ref) : NULL;
  if (coop && coop->pay_n) n = coop_refund_legs(w, q, op, coop, &amount, &fee, legs);
  else n = expected_legs(w, q, &amount, &fee, legs);
  if (n < 0) return;
  bool same = op->kind == q->kind && op->amount == amount && op->fee == fee && op->leg_count == n &&
              op->account == q->account;
  for (int i = 0; same && i < n; i++)
    same = op->legs[i].account == legs[i].account && op->legs[i].amount == legs[i].amount;
  if (!same) {
    fail(w, "%s %llu: op (amount %lld, fee %lld, %u legs) differs from the model (amount %lld, fee %lld, %d legs)",
         kind_name(q->kind), (unsigned long long)op->transfer_id, (long long)op->amount,
         (long long)op->fee, op->leg_count, (long long)amount, (long long)fee, n);
    return;
  }
  int64_t sum = 0;
  for (int i = 0; i < n; i++) sum += legs[i].amount;
  if (sum != 0) fail(w, "I1: legs of %llu sum to %lld", (unsigned long long)op->transfer_id, (long long)sum);
  if (q->kind == TALLY__TRANSFER_REFUND) {
    rec *p = rec_of(w, q->ref);
    if (p->refunded + p->refund_inflight + amount > p->amount)
      fail(w, "I4: refund of %lld on purchase %llu would exceed it", (long long)amount, (unsigned long long)q->ref);
    p->refund_inflight += amount;
    p->refund_fee_inflight += fee;
  }
  t->kind = q->kind;
  t->fp = w->st.keys[op->key_slot].fingerprint;
  t->status = REC_DECIDED;
  t->account = q->account;
  t->other = q->kind == TALLY__TRANSFER_PURCHASE ? w->st.items[q->item].creator : q->other;
  t->item = q->item;
  t->qty = q->qty;
  t->amount = amount;
  t->req_amount = q->amount;
  t->fee = fee;
  t->ref = q->ref;
  t->leg_count = (uint8_t)n;
  memcpy(t->legs, legs, sizeof legs);
  snprintf(t->key, sizeof t->key, "%s", key);
  t->pay_n = 0;
  if (q->kind == TALLY__TRANSFER_PURCHASE && w->st.items[q->item].split.count) {
    /* Payees: the creators' legs, then the fee (even when it took nothing). */
    for (int i = 1; i < n; i++)
      if (legs[i].account != w->st.fees) {
        t->pay_acc[t->pay_n] = legs[i].account;
        t->pay_credit[t->pay_n] = legs[i].amount;
        t->pay_back[t->pay_n] = t->pay_inflight[t->pay_n] = 0;
        t->pay_n++;
      }
    t->pay_acc[t->pay_n] = w->st.fees;
    t->pay_credit[t->pay_n] = fee;
    t->pay_back[t->pay_n] = t->pay_inflight[t->pay_n] = 0;
    t->pay_n++;
  }
  if (q->kind == TALLY__TRANSFER_REFUND) coop_refund_settle(w, t, +1);
  if (q->kind == TALLY__TRANSFER_PURCHASE) {
    w->purchases[w->purchase_count++] = op->transfer_id;
    w->pu_held[q->account][q->item] += (int32_t)q->qty;
  }
  w->decided_open++;
  w->r->decided++;
}

/* Does committed transfer t answer request q (same kind and parameters)? */
bool same_params(const rec *t, const req *q) {
  bool same = t->kind == q->kind && t->account == q->account;
  if (q->kind == TALLY__TRANSFER_PURCHASE) same = same && t->item == q->item && t->qty == q->qty;
  if (q->kind == TALLY__TRANSFER_TIP) same = same && t->other == q->other && t->amount == q->amount;
  if (q->kind == TALLY__TRANSFER_GRANT) same = same && t->amount == q->amount;
  if (q->kind == TALLY__TRANSFER_REFUND) same = same && t->ref == q->ref && t->req_amount == q->amount;
  return same;
}

/* The key was seen before with the same fingerprint: the answer must be
 * the transfer that owns the key (or "pending" while it is in flight). */
void replayed(world *w, const req *q, const char *key, uint64_t existing) {
  w->r->replays++;
  if (existing == 0) return; /* in flight: the engine says "pending" */
  rec *t = rec_of(w, existing);
  if (!t || t->status != REC_APPLIED || strcmp(t->key, key) != 0) {
    fail(w, "I3: replay of key '%s' answered with receipt %llu, which is not that key's committed transfer",
         key, (unsigned long long)existing);
    return;
  }
  if ((w->o.faults & SIM_FAULT_REPLAY_PARAMS) && !same_params(t, q))
    fail(w, "I3: key '%s' replayed as a %s answered 'already done' with receipt %llu, a %s with other parameters",
         key, kind_name(q->kind), (unsigned long long)existing, kind_name(t->kind));
}

/* The committed transfer a replay of q under `key` must answer with, when
 * the engine still remembers the key; 0 when no answer is prescribed. */
uint64_t replay_expected(world *w, const req *q, const char *key) {
  uint32_t slot = tally__key_find(&w->st, key);
  if (slot == TALLY__NONE || w->st.keys[slot].state != TALLY__KEY_DONE) return 0;
  uint64_t id = kmap_get(w, &w->applied_keys, key);
  return id && same_params(rec_of(w, id), q) ? id : 0;
}

/* The event an op joins, from the model's records (cmd_money.c: a buy joins
 * its drop's event, else the event running in the channel it was said in;
 * a tip the channel's; refunds and grants none). *ev = index + 1. */
uint64_t model_event(world *w, const req *q, uint8_t *ev) {
  uint64_t id = 0;
  if (q->kind == TALLY__TRANSFER_PURCHASE && w->item_event[q->item]) id = w->item_event[q->item];
  else if (q->kind == TALLY__TRANSFER_PURCHASE || q->kind == TALLY__TRANSFER_TIP) id = w->chan_event[q->chan];
  *ev = 0;
  for (uint32_t i = 0; id && i < w->ev_count; i++)
    if (w->ev_id[i] == id) *ev = (uint8_t)(i + 1);
  return id;
}

const char *const drop_state_names[] = {"not a drop", "SCHEDULED", "LIVE", "CLOSED"};

/* D1, D2: a buy of a drop is decided only while it is LIVE and within the
 * per-buyer limit (units committed and in flight, in the model); a drop
 * refusal names the state the drop was in, and "limit" is said only when
 * the model agrees that this buy would pass it. */
void drop_checks(world *w, const req *q, int rc, uint8_t state, uint32_t limit, int64_t have) {
  if (q->kind != TALLY__TRANSFER_PURCHASE) return;
  const tally__item *it = &w->st.items[q->item];
  const char *buyer = w->st.accounts[q->account].name;
  if (rc == TALLY_OK && state != TALLY__DROP_NONE) {
    w->r->drop_buys++;
    if (state != TALLY__DROP_LIVE)
      fail(w, "D2: %s bought %u of drop %s while it was %s", buyer, q->qty, it->sku, drop_state_names[state]);
    if (limit && have + q->qty > limit)
      fail(w, "D1: %s bought %u of drop %s holding %lld already, limit %u", buyer, q->qty, it->sku,
           (long long)have, limit);
  }
  if (rc == TALLY_EDROP_NOT_LIVE) {
    w->r->drop_not_live++;
    if (state != TALLY__DROP_SCHEDULED)
      fail(w, "D2: buy of %s refused 'not live' while it was %s", it->sku, drop_state_names[state]);
  }
  if (rc == TALLY_EDROP_CLOSED) {
    w->r->drop_closed++;
    if (state != TALLY__DROP_CLOSED)
      fail(w, "D2: buy of %s refused 'closed' while it was %s", it->sku, drop_state_names[state]);
  }
  if (rc == TALLY_EPER_USER_LIMIT) {
    w->r->drop_limit++;
    if (!limit || have + q->qty <= limit)
      fail(w, "D1: %s refused %u of %s over the per-buyer limit, but has %lld (committed %d, in flight %d), limit %u",
           buyer, q->qty, it->sku, (long long)have, w->pu_sold[q->account][q->item],
           w->pu_held[q->account][q->item], limit);
  }
}

void step_decide(world *w) {
  sbatch *b = open_batch(w);
  if (!b) {
    w->r->busy++;
    return;
  }
  req q;
  const char *key;
  if (w->recent_count && chance(w, 20)) { /* F7: the same command delivered again */
    const sent *d = &w->recent[below(w, w->recent_count < SIM_RECENT ? w->recent_count : SIM_RECENT)];
    if (chance(w, 80)) q = d->q;
    else random_req(w, &q);
    snprintf(w->key, sizeof w->key, "%s", d->key);
    key = w->key;
  } else {
    random_req(w, &q);
    key = random_key(w);
  }
  sent *keep = &w->recent[w->recent_count++ % SIM_RECENT];
  keep->q = q;
  snprintf(keep->key, sizeof keep->key, "%s", key);
  tally__op *op = &b->ops[b->op_count];
  uint64_t existing = UINT64_MAX, next_id = w->st.next_id;
  uint32_t key_next = w->st.key_next, purchase_next = w->st.purchase_next;
  tally__decide_ctx ctx = {.wall_ms = w->wall, .mono_ms = w->mono, .req_id = ++w->req_id,
                           .origin = "sim", .channel = chan_names[q.chan], .key = key,
                           .existing_transfer = &existing};
  tally__state *st = &w->st;
  /* What the model knows of a drop before the decision (D1, D2). */
  uint8_t drop_state = 0;
  uint32_t limit = 0;
  int64_t have = 0;
  if (q.kind == TALLY__TRANSFER_PURCHASE) {
    drop_state = st->items[q.item].drop_state;
    limit = st->items[q.item].drop_per_user;
    have = (int64_t)w->pu_sold[q.account][q.item] + w->pu_held[q.account][q.item];
  }
  uint64_t first = (w->o.faults & SIM_FAULT_REPLAY_FIRST) ? replay_expected(w, &q, key) : 0;
  int rc;
  switch (q.kind) {
  case TALLY__TRANSFER_PURCHASE: rc = tally__decide_buy(st, &ctx, q.account, q.item, q.qty, op); break;
  case TALLY__TRANSFER_TIP: rc = tally__decide_tip(st, &ctx, q.account, q.other, q.amount, op); break;
  case TALLY__TRANSFER_REFUND: rc = tally__decide_refund(st, &ctx, q.account, q.ref, q.amount, op); break;
  default: rc = tally__decide_grant(st, &ctx, q.account, q.amount, op); break;
  }
  trace(w, "%s acct=%u item=%u qty=%u amount=%lld ref=%llu key=%s -> %s", kind_name(q.kind), q.account,
        q.item, q.qty, (long long)q.amount, (unsigned long long)q.ref, key, tally_err_name(rc));
  if (first && (rc != TALLY_EEXISTS || existing != first))
    fail(w, "I3: %s replayed with key '%s' after receipt %llu committed, answered %s (receipt %llu)",
         kind_name(q.kind), key, (unsigned long long)first, tally_err_name(rc),
         (unsigned long long)(rc == TALLY_EEXISTS ? existing : 0));
  drop_checks(w, &q, rc, drop_state, limit, have);
  if (rc == TALLY_OK) {
    /* cmd_money.c: after a successful decision the op joins its event. */
    uint8_t ev = 0;
    uint64_t ev_id = model_event(w, &q, &ev);
    if (q.kind == TALLY__TRANSFER_PURCHASE || q.kind == TALLY__TRANSFER_TIP) {
      uint64_t core_ev = tally__live_event_for(st, q.kind == TALLY__TRANSFER_PURCHASE ? q.item : TALLY__NONE,
                                               chan_names[q.chan]);
      if (core_ev != ev_id)
        fail(w, "D3: %s in '%s' joins event %llu, the model says %llu", kind_name(q.kind), chan_names[q.chan],
             (unsigned long long)core_ev, (unsigned long long)ev_id);
    }
    if (ev && w->ev_stopped[ev - 1])
      fail(w, "D3: %s decided into event %llu after it stopped", kind_name(q.kind), (unsigned long long)ev_id);
    op->event_id = ev_id;
    tally__event_inflight(st, ev_id, +1);
    b->op_count++;
    decided(w, &q, op, key);
    rec *t = rec_of(w, op->transfer_id);
    if (t) {
      t->event_id = ev_id;
      t->ev = ev;
    }
    if (ev) w->r->event_ops++;
    return;
  }
  /* decide.h: a refusal changes nothing (no id, key or purchase taken). */
  if (st->next_id != next_id || st->key_next != key_next || st->purchase_next != purchase_next)
    fail(w, "%s refused with %s but took an id, key or purchase slot", kind_name(q.kind), tally_err_name(rc));
  if (rc == TALLY_EEXISTS) replayed(w, &q, key, existing);
  else w->r->refused++;
  if (rc == TALLY_EEXISTS && existing == UINT64_MAX) fail(w, "EEXISTS without an answer for key '%s'", key);
}
