/* decide.h — the money decisions: buy, tip, refund, grant.
 *
 * Contract: each function checks everything in memory (no I/O), and either
 * refuses with a specific TALLY_E* code and changes nothing, or fills `op`,
 * reserves its transfer id and idempotency key, and holds its debits and
 * stock (tally__op_hold) before returning TALLY_OK. The caller appends the
 * op to the open batch and replies only when that batch commits.
 *
 * Idempotency: when `key` was seen before with the same parameters the
 * function returns TALLY_EEXISTS and sets *existing_transfer (0 while still
 * in flight); with other parameters it returns TALLY_EKEY_MISMATCH. */
#ifndef TALLY_DECIDE_H
#define TALLY_DECIDE_H

#include "state.h"

typedef struct tally__decide_ctx {
  int64_t wall_ms;
  uint64_t mono_ms;
  uint64_t req_id;
  const char *origin, *channel, *key;
  /* origin as a name already interned in network net (the caller holds a
   * reference, as the dispatcher does for its command), or 0: interned
   * from `origin`. Saves the hot path a second hash of the origin. */
  uint32_t origin_name;
  uint16_t net; /* the network origin and channel belong to (st->networks index) */
  /* The account whose identity's command it is (transfer_identities, the
   * v2 receipt leaf); 0 (sys:fees, no identity) or TALLY__NONE: the engine's. */
  uint32_t maker;
  uint64_t *existing_transfer; /* out, for TALLY_EEXISTS */
  bool by_engine; /* the engine acts on its own: refunds of unshown highlights,
                     charges of raffle winners after the window closed */
  const struct tally__refcode *ref; /* BUY ... ref=<code>: an affiliate's share */
  /* BUY: minor units an earned reward takes off the total (features/rewards:
   * 0 <= discount < price x qty, from the creator's part); 0: none. */
  int64_t discount;
  /* BUY (features/rewards, sql/020): a free unit an earned reward gives (qty
   * 1, amount 0, two zero legs: stored as kind 6), and an access grant that
   * opens an attendees-only item to a buyer who did not attend. */
  bool free_unit, access;
} tally__decide_ctx;

int tally__decide_buy(tally__state *st, const tally__decide_ctx *ctx, uint32_t buyer,
                      uint32_t item, uint32_t qty, tally__op *op);
int tally__decide_tip(tally__state *st, const tally__decide_ctx *ctx, uint32_t from,
                      uint32_t to, int64_t amount, tally__op *op);
/* amount 0 = everything not yet refunded. */
int tally__decide_refund(tally__state *st, const tally__decide_ctx *ctx, uint32_t requester,
                         uint64_t receipt, int64_t amount, tally__op *op);
int tally__decide_grant(tally__state *st, const tally__decide_ctx *ctx, uint32_t to,
                        int64_t amount, tally__op *op);
/* LINK: the whole balance of `from` (a joining identity's own wallet,
 * nothing held) to the person's wallet `to`, one transfer of kind LINK.
 * TALLY_EPENDING when anything of `from` is held. */
int tally__decide_link_move(tally__state *st, const tally__decide_ctx *ctx, uint32_t from, uint32_t to,
                            int64_t amount, tally__op *op);

/* Hash of a request as typed: (kind, account id, item or counterparty id,
 * qty or referenced receipt, amount typed). Ids, not memory indices, so the
 * value stored in the ledger means the same after a restart. */
uint64_t tally__transfer_fingerprint(uint32_t kind, uint64_t a, uint64_t b, uint64_t c,
                                    int64_t amount);

/* Cheap checks a host-facing "sold out" needs, without touching state. */
int tally__check_stock(const tally__item *it, uint32_t qty);
/* An affiliate's referral code must be one of the item's creators'. */
bool tally__refcode_fits(const tally__item *it, const struct tally__refcode *ref);
/* A drop sells only while live. */
int tally__check_drop(const tally__item *it);

#endif
