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

/* "... balance 12.34 credits available ..." -> 1234 (decimals places). */
static bool wallet_minor(const char *text, unsigned decimals, int64_t *out) {
  const char *p = strstr(text, "balance ");
  if (!p) return false;
  p += 8;
  bool neg = *p == '-';
  if (neg) p++;
  int64_t v = 0;
  unsigned frac = 0;
  bool dot = false;
  for (; (*p >= '0' && *p <= '9') || (*p == '.' && !dot); p++) {
    if (*p == '.') {
      dot = true;
      continue;
    }
    if (dot && frac == decimals) continue;
    v = v * 10 + (*p - '0');
    frac += dot;
  }
  for (; frac < decimals; frac++) v *= 10;
  *out = neg ? -v : v;
  return true;
}

/* Right after a start, memory is what the loader rebuilt from the ledger
 * (nothing is in flight): each wallet is the sum of its entries, and a
 * purchase the ledger holds as refunded in part takes no refund of its
 * whole price. */
static bool loaded_matches(adv *a, char *why, size_t why_len);

bool adv_loaded_matches(adv *a, char *why, size_t why_len) {
  bool honest = a->honest_ready;
  a->honest_ready = false; /* no honest buy beside these: the wallets must stand still */
  bool ok = loaded_matches(a, why, why_len);
  a->honest_ready = honest;
  return ok;
}

static bool loaded_matches(adv *a, char *why, size_t why_len) {
  static const char *const who[] = {"b0", "b1", "b2", "b3", "honest"};
  th_reply r;
  for (size_t i = 0; i < sizeof who / sizeof who[0]; i++) {
    int64_t ledger = th_sql_i64f(a->dsn,
                                 "SELECT coalesce(sum(e.amount_minor), 0) FROM entries e JOIN accounts ac"
                                 " ON ac.id = e.account_id WHERE ac.name = 'user:%s'", who[i]);
    int64_t memory = 0;
    if (adv_say(a, who[i], "", "WALLET", 0, &r) != TALLY_OK ||
        !wallet_minor(r.text, a->cfg.currency_decimals, &memory) || memory != ledger) {
      snprintf(why, why_len, "after a start, %s's wallet says '%.120s'; the ledger holds %lld minor units", who[i],
               r.text, (long long)ledger);
      return false;
    }
    if (i >= ADV_BUYERS) continue;
    /* The newest purchase of theirs with a refund: its whole price again
     * is more than is left, whatever memory rebuilt. */
    uint64_t part = (uint64_t)th_sql_i64f(
        a->dsn,
        "SELECT coalesce(max(p.id), 0) FROM transfers p JOIN accounts ac ON ac.id = p.account_id"
        " WHERE ac.name = 'user:%s' AND p.kind = 1 AND EXISTS"
        " (SELECT 1 FROM transfers t WHERE t.kind = 3 AND t.ref_transfer = p.id)",
        who[i]);
    if (!part) continue;
    int64_t paid = th_sql_i64f(a->dsn, "SELECT amount_minor FROM transfers WHERE id = %llu", (unsigned long long)part);
    int64_t unit = 1;
    for (unsigned d = 0; d < a->cfg.currency_decimals; d++) unit *= 10;
    char text[96];
    snprintf(text, sizeof text, "REFUND %llu %lld.%0*lld", (unsigned long long)part, (long long)(paid / unit),
             (int)a->cfg.currency_decimals, (long long)(paid % unit));
    if (adv_say(a, who[i], "", text, 0, &r) == TALLY_OK) {
      snprintf(why, why_len, "after a start, purchase %llu, refunded in part in the ledger, was refunded in full again",
               (unsigned long long)part);
      return false;
    }
  }
  return true;
}
