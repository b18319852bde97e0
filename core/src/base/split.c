/* split.c — largest-remainder apportionment (see split.h for the rules). */
#include "split.h"

#include <assert.h>
#include <stdbool.h>

/* floor(a * b / c) and its remainder, exact for any int64 inputs >= 0. */
static int64_t mul_div(int64_t a, int64_t b, int64_t c, int64_t *rem) {
  __int128 p = (__int128)a * b;
  *rem = (int64_t)(p % c);
  return (int64_t)(p / c);
}

void tally__apportion(int64_t amount, const int64_t *weights, uint32_t n, int64_t *parts) {
  assert(n > 0 && n <= TALLY__PAYEES_MAX && amount >= 0);
  int64_t whole = 0, rem[TALLY__PAYEES_MAX], given = 0;
  for (uint32_t i = 0; i < n; i++) {
    assert(weights[i] >= 0);
    whole += weights[i];
  }
  assert(whole > 0);
  for (uint32_t i = 0; i < n; i++) {
    parts[i] = mul_div(amount, weights[i], whole, &rem[i]);
    given += parts[i];
  }
  /* Fewer than n units are left: one each to the largest remainders. */
  for (int64_t left = amount - given; left > 0; left--) {
    uint32_t best = n;
    for (uint32_t i = 0; i < n; i++)
      if (rem[i] >= 0 && (best == n || rem[i] > rem[best])) best = i;
    assert(best < n);
    parts[best]++;
    rem[best] = -1; /* at most one extra unit each */
  }
}

/* The record a refund is computed from comes from the ledger (rebuilt at
 * start-up): it is checked, not assumed, so a record that does not add up
 * is refused instead of reaching an assert. */
static bool refund_inputs_valid(const int64_t *credit, const int64_t *returned, uint32_t n,
                                int64_t total, int64_t refunded_before, int64_t amount) {
  if (n == 0 || n > TALLY__PAYEES_MAX || total <= 0 || amount <= 0 || refunded_before < 0 ||
      refunded_before > total - amount)
    return false;
  int64_t credits = 0, returns = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (credit[i] < 0 || returned[i] < 0 || returned[i] > credit[i] || credit[i] > total - credits)
      return false;
    credits += credit[i];
    returns += returned[i]; /* <= credits <= total: no overflow */
  }
  return credits == total && returns == refunded_before;
}

int tally__apportion_refund(const int64_t *credit, const int64_t *returned, uint32_t n,
                            int64_t total, int64_t refunded_before, int64_t amount,
                            int64_t *parts) {
  if (!refund_inputs_valid(credit, returned, n, total, refunded_before, amount)) return TALLY__SPLIT_EINCONSISTENT;
  int64_t after = refunded_before + amount, rem[TALLY__PAYEES_MAX], sum = 0;
  for (uint32_t i = 0; i < n; i++) {
    int64_t target = mul_div(credit[i], after, total, &rem[i]);
    assert(target <= credit[i]); /* after <= total */
    parts[i] = target > returned[i] ? target - returned[i] : 0;
    sum += parts[i];
  }
  /* Rounding in earlier refunds leaves sum off by fewer than n units either
   * way: add to the largest remainders that still have room, or take back
   * from the smallest that gave something. With the inputs checked above
   * there is always room: sum(credit - returned) = total - before >= amount. */
  while (sum < amount) {
    uint32_t best = n;
    for (uint32_t i = 0; i < n; i++)
      if (returned[i] + parts[i] < credit[i] && (best == n || rem[i] > rem[best])) best = i;
    assert(best < n);
    parts[best]++;
    rem[best] = -1;
    sum++;
  }
  while (sum > amount) {
    uint32_t best = n;
    for (uint32_t i = 0; i < n; i++)
      if (parts[i] > 0 && (best == n || rem[i] <= rem[best])) best = i;
    assert(best < n);
    parts[best]--;
    rem[best] = INT64_MAX;
    sum--;
  }
  return 0;
}
