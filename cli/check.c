/* check.c — `tally check`: the invariants of RELIABILITY.md that SQL can
 * see. Each is a query that returns the rows that break it; any row is a
 * breach, printed with the invariant's name, and the exit code is 1. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "tally.h"
#include "tally/admin.h"

typedef struct invariant {
  const char *name;
  const char *sql; /* rows returned = breaches */
} invariant;

static const invariant invariants[] = {
    {"I1 entries of every transfer sum to zero",
     "SELECT transfer_id, sum(amount_minor) FROM entries GROUP BY transfer_id"
     " HAVING sum(amount_minor) <> 0 LIMIT 5"},
    {"I1 every transfer has entries",
     "SELECT t.id FROM transfers t WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.transfer_id = t.id) LIMIT 5"},
    {"I1 every entry belongs to a transfer and an account",
     "SELECT e.transfer_id FROM entries e LEFT JOIN transfers t ON t.id = e.transfer_id"
     " LEFT JOIN accounts a ON a.id = e.account_id WHERE t.id IS NULL OR a.id IS NULL LIMIT 5"},
    {"I1 a transfer's amount is what its payer's entry moved",
     "SELECT t.id FROM transfers t JOIN entries e ON e.transfer_id = t.id"
     " GROUP BY t.id, t.amount_minor HAVING sum(greatest(e.amount_minor, 0)) <> t.amount_minor LIMIT 5"},
    {"I2 committed units never exceed stock",
     "SELECT i.sku, x.sold, i.stock FROM items i JOIN (SELECT item_id, sum(qty) AS sold FROM transfers"
     " WHERE kind = 1 GROUP BY item_id) x ON x.item_id = i.id WHERE i.stock IS NOT NULL AND x.sold > i.stock"},
    {"I3 at most one transfer per idempotency key",
     "SELECT idem_key FROM transfers GROUP BY idem_key HAVING count(*) > 1 LIMIT 5"},
    {"I4 refunds never exceed their purchase",
     "SELECT p.id FROM transfers p JOIN (SELECT ref_transfer, sum(amount_minor) AS s FROM transfers"
     " WHERE kind = 3 GROUP BY ref_transfer) r ON r.ref_transfer = p.id WHERE r.s > p.amount_minor LIMIT 5"},
    {"I4 refunds only of committed purchases",
     "SELECT r.id FROM transfers r WHERE r.kind = 3 AND NOT EXISTS (SELECT 1 FROM transfers p"
     " WHERE p.id = r.ref_transfer AND p.kind = 1 AND p.id < r.id) LIMIT 5"},
    {"I6 no wallet below zero",
     "SELECT a.name, b.s FROM accounts a JOIN (SELECT account_id, sum(amount_minor) AS s FROM entries"
     " GROUP BY account_id) b ON b.account_id = a.id WHERE a.kind IN (1, 2) AND b.s < 0 LIMIT 5"},
    {"I9 every transfer lies in its batch's range, before the batch id",
     "SELECT t.id FROM transfers t JOIN batches b ON b.id = t.batch_id"
     " WHERE t.id NOT BETWEEN b.first_transfer AND b.last_transfer OR t.id >= b.id LIMIT 5"},
    {"I9 batch leaf counts match their transfers",
     "SELECT b.id FROM batches b LEFT JOIN (SELECT batch_id, count(*) AS n FROM transfers GROUP BY batch_id) t"
     " ON t.batch_id = b.id WHERE coalesce(t.n, 0) <> b.leaf_count LIMIT 5"},
    {"ledger tables are append-only (their triggers exist)",
     "SELECT x FROM unnest(ARRAY['transfers_append_only','batches_append_only','audit_append_only','roles_append_only',"
     "'held_messages_append_only','hidden_messages_append_only','networks_append_only','identities_append_only',"
     "'transfer_identities_append_only']) x"
     " WHERE NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = x)"},
    {"held and hidden messages belong to tips that carry a message",
     "SELECT m.transfer_id FROM (SELECT transfer_id FROM held_messages UNION ALL SELECT transfer_id FROM hidden_messages) m"
     " LEFT JOIN transfers t ON t.id = m.transfer_id WHERE t.id IS NULL OR t.kind <> 2 OR t.memo IS NULL LIMIT 5"},
    {"every identity's wallet is a user account",
     "SELECT i.id, i.name FROM identities i LEFT JOIN accounts a ON a.id = i.account_id"
     " WHERE a.id IS NULL OR a.kind <> 1 LIMIT 5"},
    {"every user account is some network's identity",
     "SELECT a.id, a.name FROM accounts a WHERE a.kind = 1"
     " AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.account_id = a.id) LIMIT 5"},
    {"identity links are append-only (their trigger exists)",
     "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'identity_links_append_only')"},
    {"a link joins an identity to another user wallet",
     "SELECT l.id FROM identity_links l JOIN identities i ON i.id = l.identity_id JOIN accounts a ON a.id = l.account_id"
     " WHERE a.kind <> 1 OR (l.event = 1 AND l.account_id = i.account_id) LIMIT 5"},
    {"an unlink follows a link of the same identity to the same wallet",
     "SELECT u.id FROM identity_links u WHERE u.event = 2 AND NOT EXISTS (SELECT 1 FROM identity_links l"
     " WHERE l.identity_id = u.identity_id AND l.account_id = u.account_id AND l.event = 1 AND l.id < u.id) LIMIT 5"},
    {"links do not chain (a wallet others use is not itself linked)",
     "WITH cur AS (SELECT DISTINCT ON (identity_id) identity_id, account_id, event FROM identity_links"
     "  ORDER BY identity_id, id DESC),"
     " linked AS (SELECT c.identity_id, c.account_id AS person, i.account_id AS own FROM cur c"
     "  JOIN identities i ON i.id = c.identity_id WHERE c.event = 1)"
     " SELECT a.identity_id FROM linked a JOIN linked b ON b.own = a.person LIMIT 5"},
    {"a linked identity's own wallet is empty (its money is the person's)",
     "WITH cur AS (SELECT DISTINCT ON (identity_id) identity_id, event FROM identity_links ORDER BY identity_id, id DESC)"
     " SELECT i.id, i.name FROM cur c JOIN identities i ON i.id = c.identity_id WHERE c.event = 1"
     " AND (SELECT coalesce(sum(e.amount_minor), 0) FROM entries e WHERE e.account_id = i.account_id) <> 0 LIMIT 5"},
    {"a link's move is one transfer (kind 5) of the identity's own wallet into the person's",
     "SELECT l.id FROM identity_links l JOIN identities i ON i.id = l.identity_id LEFT JOIN transfers t ON t.id = l.transfer_id"
     " WHERE l.transfer_id IS NOT NULL AND (t.id IS NULL OR t.kind <> 5 OR t.account_id <> i.account_id OR l.event <> 1"
     " OR NOT EXISTS (SELECT 1 FROM entries e WHERE e.transfer_id = t.id AND e.account_id = l.account_id"
     "  AND e.amount_minor = t.amount_minor))"
     " UNION ALL SELECT t.id FROM transfers t WHERE t.kind = 5"
     " AND NOT EXISTS (SELECT 1 FROM identity_links l WHERE l.transfer_id = t.id) LIMIT 5"},
    {"an identity buys, tips and refunds from its own wallet or one it was linked to",
     "SELECT t.id FROM transfer_identities ti JOIN transfers t ON t.id = ti.transfer_id"
     " JOIN identities i ON i.id = ti.identity_id WHERE t.kind IN (1, 2, 3) AND t.account_id <> i.account_id"
     " AND NOT EXISTS (SELECT 1 FROM identity_links l WHERE l.identity_id = i.id AND l.account_id = t.account_id"
     "  AND l.event = 1) LIMIT 5"},
    {"a transfer's identity exists, and so does the transfer",
     "SELECT ti.transfer_id FROM transfer_identities ti LEFT JOIN identities i ON i.id = ti.identity_id"
     " LEFT JOIN transfers t ON t.id = ti.transfer_id WHERE (i.id IS NULL AND ti.identity_id <> 0) OR t.id IS NULL"
     " LIMIT 5"},
    /* Rewards and quizzes (sql/015). */
    {"R1 a reward is used on a purchase by the account it is bound to, before it expired, on its creator's item",
     "SELECT u.transfer_id FROM reward_uses u LEFT JOIN reward_grants g ON g.id = u.grant_id"
     " LEFT JOIN reward_defs d ON d.id = g.reward_id LEFT JOIN transfers t ON t.id = u.transfer_id"
     " LEFT JOIN items i ON i.id = t.item_id WHERE u.kind = 1 AND (g.id IS NULL OR d.id IS NULL OR t.id IS NULL"
     " OR t.kind <> 1 OR t.account_id <> g.account_id OR t.created_ms > g.expires_ms OR i.creator_id <> d.creator_id"
     " OR u.discount_minor <= 0) LIMIT 5"},
    {"R2 a reward is used at most once until a full refund gives it back",
     "SELECT grant_id FROM reward_uses GROUP BY grant_id"
     " HAVING count(*) FILTER (WHERE kind = 1) - count(*) FILTER (WHERE kind = 3) NOT IN (0, 1)"
     " OR (count(*) FILTER (WHERE kind = 2) > 0 AND count(*) FILTER (WHERE kind = 1) > count(*) FILTER (WHERE kind = 3))"
     " LIMIT 5"},
    {"R3 a reward comes back only with the full refund of the purchase that used it",
     "SELECT u.transfer_id FROM reward_uses u LEFT JOIN transfers r ON r.id = u.transfer_id WHERE u.kind = 3 AND"
     " (r.id IS NULL OR r.kind <> 3 OR NOT EXISTS (SELECT 1 FROM reward_uses x WHERE x.grant_id = u.grant_id"
     " AND x.kind = 1 AND x.transfer_id = r.ref_transfer) OR (SELECT sum(amount_minor) FROM transfers f WHERE f.kind = 3"
     " AND f.ref_transfer = r.ref_transfer AND f.id <= r.id) <> (SELECT amount_minor FROM transfers p"
     " WHERE p.id = r.ref_transfer)) LIMIT 5"},
    {"R4 a quiz pays at most its number of winners",
     "SELECT q.id FROM quizzes q JOIN reward_grants g ON g.quiz_id = q.id GROUP BY q.id, q.winners"
     " HAVING count(*) > q.winners LIMIT 5"},
    {"reward and quiz tables are append-only (their triggers exist)",
     "SELECT x FROM unnest(ARRAY['reward_defs_append_only','reward_deletions_append_only','reward_grants_append_only',"
     "'reward_uses_append_only','quizzes_append_only','quiz_answers_append_only','quiz_ends_append_only']) x"
     " WHERE NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = x)"},
    /* Quiz rounds and stops (sql/019). */
    {"R5 a round pays at most its number of winners",
     "SELECT r.id FROM quiz_rounds r JOIN reward_grants g ON g.quiz_id = r.id GROUP BY r.id, r.winners"
     " HAVING count(*) > r.winners LIMIT 5"},
    {"R6 a round's points are max(1, 10 - floor(9 t / T)) for a stored right answer, 0 for a wrong one",
     "SELECT p.quiz_id, p.account_id FROM quiz_points p LEFT JOIN quiz_answers a ON a.quiz_id = p.quiz_id"
     " AND a.account_id = p.account_id LEFT JOIN quiz_round_questions x ON x.quiz_id = p.quiz_id"
     " LEFT JOIN quizzes q ON q.id = p.quiz_id WHERE a.quiz_id IS NULL OR x.quiz_id IS NULL OR q.id IS NULL"
     " OR p.points <> CASE WHEN a.correct THEN greatest(1, 10 - (9 * p.elapsed_ms) / q.duration_ms) ELSE 0 END LIMIT 5"},
    {"R7 a round's reward goes only to an account that scored in it",
     "SELECT g.id FROM reward_grants g JOIN quiz_rounds r ON r.id = g.quiz_id WHERE NOT EXISTS (SELECT 1"
     " FROM quiz_points p JOIN quiz_round_questions x ON x.quiz_id = p.quiz_id WHERE x.round_id = r.id"
     " AND p.account_id = g.account_id AND p.points > 0) LIMIT 5"},
    {"R8 a round's questions belong to it and are within its count",
     "SELECT x.quiz_id FROM quiz_round_questions x LEFT JOIN quiz_rounds r ON r.id = x.round_id"
     " WHERE r.id IS NULL OR x.n > r.questions LIMIT 5"},
    {"R9 a quiz or round gives another creator's reward only where that creator offered it",
     "SELECT z.id FROM (SELECT id, host_id, network_id, room, reward_id FROM quizzes"
     " UNION ALL SELECT id, host_id, network_id, room, reward_id FROM quiz_rounds) z"
     " JOIN reward_defs d ON d.id = z.reward_id WHERE d.creator_id <> z.host_id AND NOT EXISTS (SELECT 1"
     " FROM reward_offers o WHERE o.reward_id = d.id AND o.network_id = z.network_id AND o.room = z.room) LIMIT 5"},
    {"quiz round tables are append-only (their triggers exist)",
     "SELECT x FROM unnest(ARRAY['quiz_rounds_append_only','quiz_round_questions_append_only',"
     "'quiz_points_append_only','quiz_stops_append_only','quiz_round_ends_append_only','reward_offers_append_only']) x"
     " WHERE NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = x)"},
};

/* The invariants read tables of every migration: an older ledger is
 * reported as such, not as a list of SQL errors. */
static int schema_current(PGconn *c) {
  int want = tally_admin_schema_version();
  PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations");
  int have = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  if (have >= want) return 1;
  fprintf(stderr, "check: the ledger's schema is at version %d, this tally expects %d: run `tally migrate` "
                  "(or start the engine) first\n", have, want);
  return 0;
}

static void report_bad_batch(void *ud, uint64_t batch_id, const char *why) {
  (void)ud;
  printf("BREACH I7 batch %llu: %s\n", (unsigned long long)batch_id, why);
}

int cli_check(PGconn *c) {
  if (!schema_current(c)) return 2;
  int breaches = 0;
  for (size_t i = 0; i < sizeof invariants / sizeof invariants[0]; i++) {
    PGresult *r = PQexec(c, invariants[i].sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      fprintf(stderr, "check: %s: %s", invariants[i].name, PQresultErrorMessage(r));
      PQclear(r);
      return 2;
    }
    int n = PQntuples(r);
    printf("%-6s %s\n", n ? "BREACH" : "ok", invariants[i].name);
    for (int row = 0; row < n; row++) {
      printf("       ");
      for (int col = 0; col < PQnfields(r); col++) printf(" %s", PQgetvalue(r, row, col));
      printf("\n");
    }
    breaches += n > 0;
    PQclear(r);
  }
  uint64_t batches = 0, bad = 0;
  char err[TALLY_ERRBUF_BYTES] = "";
  /* Every bad batch is listed (one line each), not only the first. */
  int rc = tally_admin_check_batches(c, &batches, &bad, report_bad_batch, NULL, err, sizeof err);
  bool db_error = rc != TALLY_OK && rc != TALLY_EBADSIG;
  printf("%-6s I7 every batch's receipts verify against its signing key (%llu good, %llu bad)%s%s\n",
         rc ? "BREACH" : "ok", (unsigned long long)batches, (unsigned long long)bad, db_error ? ": " : "",
         db_error ? err : "");
  breaches += rc != 0;
  printf("%s\n", breaches ? "tally check: FAILED" : "tally check: all invariants hold");
  return breaches ? 1 : 0;
}
