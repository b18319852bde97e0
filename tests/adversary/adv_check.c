/* adv_check.c — the oracles checked after every hostile step: the honest
 * buyer's purchase commits, and the ledger's money invariants hold. */
#include <stdio.h>
#include <string.h>

#include "adv.h"

bool adv_canary(adv *a, char *why, size_t why_len) {
  th_reply r;
  int rc = adv_say(a, "honest", "", "BUY " ADV_CANARY_SKU, 0, &r);
  if (rc == TALLY_ENO_FUNDS || a->canary_topup) { /* 0.01 a buy: top up, as an operator would */
    a->canary_topup = false;
    adv_say(a, "admin", "", "TALLY GRANT honest 500", TALLY_ROLE_OPER | TALLY_ROLE_GRANT, &r);
    if (rc == TALLY_ENO_FUNDS) rc = adv_say(a, "honest", "", "BUY " ADV_CANARY_SKU, 0, &r);
  }
  if (rc != TALLY_OK || r.receipt == 0) {
    snprintf(why, why_len, "the honest buyer's purchase did not commit: %s (%s)", tally_err_name(rc), r.text);
    return false;
  }
  a->canary_buys++;
  return true;
}

typedef struct adv_rule {
  const char *name;
  const char *sql; /* counts the breaches */
} adv_rule;

/* Cheap enough to run after every step; `tally check` runs after restarts. */
static const adv_rule rules[] = {
    {"I1: a transfer whose legs do not sum to zero",
     "SELECT count(*) FROM transfers t WHERE (SELECT sum(x) FROM unnest(t.leg_amounts) x) <> 0"},
    {"I6: a wallet below zero",
     "SELECT count(*) FROM (SELECT e.account_id, sum(e.amount_minor) s FROM entries e"
     " JOIN accounts ac ON ac.id = e.account_id WHERE ac.kind <> 3 GROUP BY 1) q WHERE s < 0"},
    {"I4: refunds above their purchase",
     "SELECT count(*) FROM transfers p JOIN (SELECT ref_transfer, sum(amount_minor) s FROM transfers"
     " WHERE kind = 3 GROUP BY 1) r ON r.ref_transfer = p.id WHERE r.s > p.amount_minor OR p.kind <> 1"},
    {"wrong payee: a highlight or reaction paid to someone other than the event's host",
     "SELECT count(*) FROM transfers t JOIN items i ON i.id = t.item_id"
     " JOIN events ev ON ev.id = (CASE WHEN i.sku ~ '^hl-[0-9]+-' THEN split_part(i.sku, '-', 2)"
     "   WHEN i.sku ~ '^react-[0-9]+$' THEN split_part(i.sku, '-', 2) END)::bigint,"
     " unnest(t.leg_accounts, t.leg_amounts) AS l(acc, m)"
     " WHERE t.kind = 1 AND l.m > 0 AND l.acc <> ev.host_id AND l.acc <> 1"},
};

bool adv_invariants(adv *a, char *why, size_t why_len) {
  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
    int64_t n = th_sql_i64(a->dsn, rules[i].sql);
    if (n != 0) {
      snprintf(why, why_len, "%s (%lld rows)", rules[i].name, (long long)n);
      return false;
    }
  }
  return true;
}
