/* split.h — dividing an amount among payees without creating or losing a
 * unit (co-op items, the platform fee, refunds of both).
 *
 * Contract
 * - tally__apportion: largest remainder (Hamilton). Each payee first gets
 *   floor(amount * weight / total_weight); the units left over (fewer than
 *   the number of payees) go one each to the largest remainders, ties to
 *   the payee listed first. The parts always sum to `amount` exactly, and
 *   each is within one unit of its exact share.
 * - tally__apportion_refund: the parts a refund of `amount` takes back from
 *   payees who were credited credit[i] by a purchase (sum = total) and have
 *   returned returned[i] of it so far (sum = refunded_before). The target
 *   after the refund is the exact proportional share of all refunds so far,
 *   rounded by largest remainder; no part is negative, no payee ever
 *   returns more than it was credited, the parts sum to `amount`, and the
 *   refund of everything left returns every credit exactly, however many
 *   partial refunds came before. Its inputs come from the ledger, so they
 *   are checked: each returned[i] in [0, credit[i]], the credits summing
 *   to total, the returns to refunded_before, and amount within what is
 *   left; otherwise it returns TALLY__SPLIT_EINCONSISTENT and sets no part
 *   (0 when the parts are set).
 * Pure functions: no allocation, no state. */
#ifndef TALLY_SPLIT_H
#define TALLY_SPLIT_H

#include <stdint.h>

enum {
  TALLY__SPLIT_MAX = 8,       /* creators sharing one item */
  TALLY__BPS_WHOLE = 10000,   /* shares are in basis points and sum to this */
  TALLY__PAYEES_MAX = TALLY__SPLIT_MAX + 2, /* creators, an affiliate, the platform fee */
  TALLY__SPLIT_EINCONSISTENT = -1,           /* tally__apportion_refund: a record that does not add up */
};

void tally__apportion(int64_t amount, const int64_t *weights, uint32_t n, int64_t *parts);

int tally__apportion_refund(const int64_t *credit, const int64_t *returned, uint32_t n,
                            int64_t total, int64_t refunded_before, int64_t amount,
                            int64_t *parts);

#endif
