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
     " WHERE kind IN (1, 6) GROUP BY item_id) x ON x.item_id = i.id WHERE i.stock IS NOT NULL AND x.sold > i.stock"},
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
     " JOIN identities i ON i.id = ti.identity_id WHERE t.kind IN (1, 2, 3, 6) AND t.account_id <> i.account_id"
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
     " OR t.kind NOT IN (1, 6) OR t.account_id <> g.account_id OR t.created_ms > g.expires_ms OR i.creator_id <> d.creator_id"
     /* sql/020: a discount takes something off; a free unit (kind 6) or an access (on a purchase) nothing,
      * and only with an unlock reward for that very item */
     " OR (u.discount_minor > 0 AND (t.kind = 6 OR EXISTS (SELECT 1 FROM reward_unlocks k WHERE k.reward_id = d.id)))"
     " OR (u.discount_minor <= 0 AND NOT EXISTS (SELECT 1 FROM reward_unlocks k WHERE k.reward_id = d.id"
     "  AND k.item_id = t.item_id AND k.kind = CASE t.kind WHEN 6 THEN 1 ELSE 2 END))) LIMIT 5"},
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
    /* Community goals (sql/017). A level's grants name the level's id (reward_grants.quiz_id). */
    {"G1 a goal level pays only accounts present at its completion, each once",
     "SELECT l.id, g.account_id FROM goal_levels l JOIN reward_grants g ON g.quiz_id = l.id"
     " WHERE NOT EXISTS (SELECT 1 FROM goal_present p WHERE p.level_id = l.id AND p.account_id = g.account_id)"
     " UNION ALL SELECT g.quiz_id, g.account_id FROM reward_grants g JOIN goal_levels l ON l.id = g.quiz_id"
     " GROUP BY g.quiz_id, g.account_id HAVING count(*) > 1 LIMIT 5"},
    {"G2 a finished payout paid everyone present (the goal ended, or a later level was reached)",
     "SELECT p.level_id, p.account_id FROM goal_present p JOIN goal_levels l ON l.id = p.level_id"
     " JOIN goals g ON g.id = l.goal_id WHERE g.reward_id <> 0"
     " AND NOT EXISTS (SELECT 1 FROM reward_deletions d WHERE d.reward_id = g.reward_id)"
     " AND (EXISTS (SELECT 1 FROM goal_ends x WHERE x.goal_id = g.id)"
     "  OR EXISTS (SELECT 1 FROM goal_levels n WHERE n.goal_id = g.id AND n.level > l.level))"
     " AND NOT EXISTS (SELECT 1 FROM reward_grants r WHERE r.quiz_id = l.id AND r.account_id = p.account_id) LIMIT 5"},
    {"G3 goal levels are reached in order, within the goal's levels, each with its present accounts stored",
     "SELECT l.id FROM goal_levels l JOIN goals g ON g.id = l.goal_id WHERE l.level > cardinality(g.levels)"
     " OR (l.level > 1 AND NOT EXISTS (SELECT 1 FROM goal_levels p WHERE p.goal_id = l.goal_id AND p.level = l.level - 1"
     "  AND p.id < l.id))"
     " OR (g.reward_id <> 0 AND l.present <> (SELECT count(*) FROM goal_present x WHERE x.level_id = l.id))"
     " OR l.id <= g.id LIMIT 5"},
    /* Without their refunds: one decided before the level's completion may commit after it,
     * when memory no longer subtracts it (a refund counts while its level is open). */
    {"G4 a level reached has its amount in the ledger: the event's purchases and tips decided from its"
     " opening to its completion, from at least min-accounts distinct accounts",
     "WITH lv AS (SELECT l.id, g.event_id, g.levels[l.level] AS target, g.min_accounts,"
     "  coalesce((SELECT p.id FROM goal_levels p WHERE p.goal_id = l.goal_id AND p.level = l.level - 1), g.id) AS open_id"
     "  FROM goal_levels l JOIN goals g ON g.id = l.goal_id),"
     " s AS (SELECT lv.id, sum(t.amount_minor) AS total, count(DISTINCT t.account_id) AS who"
     "  FROM lv JOIN transfers t ON t.event_id = lv.event_id AND t.kind IN (1, 2) AND t.id > lv.open_id AND t.id < lv.id"
     "  GROUP BY lv.id)"
     " SELECT lv.id, coalesce(s.total, 0), lv.target FROM lv LEFT JOIN s ON s.id = lv.id"
     " WHERE coalesce(s.total, 0) < lv.target OR coalesce(s.who, 0) < lv.min_accounts"
     " OR (SELECT total_minor FROM goal_levels x WHERE x.id = lv.id) > coalesce(s.total, 0) LIMIT 5"},
    {"G5 a goal's end counts the levels it reached, all of them when it ended complete",
     "SELECT x.goal_id FROM goal_ends x JOIN goals g ON g.id = x.goal_id"
     " WHERE x.levels_reached <> (SELECT count(*) FROM goal_levels l WHERE l.goal_id = x.goal_id)"
     " OR (x.reason = 2 AND x.levels_reached <> cardinality(g.levels)) LIMIT 5"},
    {"goal tables are append-only (their triggers exist)",
     "SELECT x FROM unnest(ARRAY['goals_append_only','goal_levels_append_only','goal_present_append_only',"
     "'goal_ends_append_only']) x WHERE NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = x)"},
    /* Challenges and achievements (sql/018). Progress is never stored: each
     * achievement is held against what the ledger shows. */
    {"C1 an achievement names a challenge, reached after it was stored and not after its deletion",
     "SELECT a.challenge_id, a.account_id FROM challenge_achievements a LEFT JOIN challenge_defs d ON d.id = a.challenge_id"
     " LEFT JOIN challenge_deletions x ON x.challenge_id = a.challenge_id"
     " WHERE d.id IS NULL OR a.batch_id <= d.batch_id OR a.batch_id > x.batch_id LIMIT 5"},
    {"C2 a spent/tipped achievement: the account's purchases (tips) in one event of the challenge reach its threshold",
     "SELECT a.challenge_id, a.account_id FROM challenge_achievements a JOIN challenge_defs d ON d.id = a.challenge_id"
     " WHERE d.kind IN (2, 3) AND (a.event_id = 0 OR (d.event_id <> 0 AND d.event_id <> a.event_id)"
     " OR (d.event_id = 0 AND NOT EXISTS (SELECT 1 FROM events v WHERE v.id = a.event_id AND v.host_id = d.owner_id))"
     " OR (SELECT coalesce(sum(t.amount_minor), 0) FROM transfers t WHERE t.event_id = a.event_id"
     "  AND t.account_id = a.account_id AND t.kind = CASE d.kind WHEN 2 THEN 1 ELSE 2 END) < d.threshold) LIMIT 5"},
    {"C3 a minutes achievement: the account attended one event of the challenge for its time",
     "SELECT a.challenge_id, a.account_id FROM challenge_achievements a JOIN challenge_defs d ON d.id = a.challenge_id"
     " WHERE d.kind = 1 AND (a.progress < d.threshold OR (d.event_id <> 0 AND d.event_id <> a.event_id)"
     " OR (d.event_id = 0 AND NOT EXISTS (SELECT 1 FROM events v WHERE v.id = a.event_id AND v.host_id = d.owner_id))"
     " OR NOT EXISTS (SELECT 1 FROM attendance t WHERE t.event_id = a.event_id AND t.account_id = a.account_id)) LIMIT 5"},
    {"C4 a first-purchase achievement: a purchase of the owner's item, and none by that account before the challenge",
     "SELECT a.challenge_id, a.account_id FROM challenge_achievements a JOIN challenge_defs d ON d.id = a.challenge_id"
     " WHERE d.kind = 5 AND (NOT EXISTS (SELECT 1 FROM transfers t JOIN items i ON i.id = t.item_id WHERE t.id = a.transfer_id"
     "  AND t.kind = 1 AND t.account_id = a.account_id AND i.creator_id = d.owner_id)"
     " OR EXISTS (SELECT 1 FROM transfers t JOIN items i ON i.id = t.item_id WHERE t.kind = 1"
     "  AND t.account_id = a.account_id AND i.creator_id = d.owner_id AND t.id < d.id)) LIMIT 5"},
    {"C5 a streak achievement: the owner's last events up to that one were all attended",
     "SELECT a.challenge_id, a.account_id FROM challenge_achievements a JOIN challenge_defs d ON d.id = a.challenge_id"
     " WHERE d.kind = 4 AND (SELECT count(*) FROM (SELECT v.id FROM events v WHERE v.host_id = d.owner_id"
     "  AND v.start_ms <= (SELECT w.start_ms FROM events w WHERE w.id = a.event_id) ORDER BY v.start_ms DESC"
     "  LIMIT d.threshold) x WHERE EXISTS (SELECT 1 FROM attendance t WHERE t.event_id = x.id"
     "  AND t.account_id = a.account_id)) < d.threshold LIMIT 5"},
    {"C6 a challenge's reward goes only to an account that reached it, and is that challenge's (its owner's) reward",
     "SELECT g.id FROM reward_grants g JOIN challenge_defs d ON d.id = g.quiz_id WHERE d.reward_id <> g.reward_id"
     " OR NOT EXISTS (SELECT 1 FROM challenge_achievements a WHERE a.challenge_id = d.id AND a.account_id = g.account_id)"
     " UNION ALL SELECT d.id FROM challenge_defs d LEFT JOIN reward_defs r ON r.id = d.reward_id"
     " WHERE d.reward_id <> 0 AND (r.id IS NULL OR r.creator_id <> d.owner_id) LIMIT 5"},
    {"challenge tables are append-only (their triggers exist)",
     "SELECT x FROM unnest(ARRAY['challenge_defs_append_only','challenge_deletions_append_only',"
     "'challenge_achievements_append_only']) x WHERE NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = x)"},
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
    /* In force at a quiz: the latest offer or withdrawal (sql/023) of an
     * earlier batch (a quiz decided before a withdrawal may share its batch). */
    {"R9 a quiz or round gives another creator's reward only where that creator offered it, and not withdrawn",
     "SELECT z.id FROM (SELECT id, host_id, network_id, room, reward_id, batch_id FROM quizzes"
     " UNION ALL SELECT id, host_id, network_id, room, reward_id, batch_id FROM quiz_rounds) z"
     " JOIN reward_defs d ON d.id = z.reward_id WHERE d.creator_id <> z.host_id AND NOT coalesce((SELECT x.offered"
     " FROM (SELECT o.batch_id, true AS offered FROM reward_offers o WHERE o.reward_id = d.id"
     "  AND o.network_id = z.network_id AND o.room = z.room UNION ALL SELECT c.batch_id, c.offered"
     "  FROM reward_offer_changes c WHERE c.reward_id = d.id AND c.network_id = z.network_id AND c.room = z.room) x"
     " WHERE x.batch_id < z.batch_id ORDER BY x.batch_id DESC, x.offered LIMIT 1), false) LIMIT 5"},
    {"quiz round tables are append-only (their triggers exist)",
     "SELECT x FROM unnest(ARRAY['quiz_rounds_append_only','quiz_round_questions_append_only',"
     "'quiz_points_append_only','quiz_stops_append_only','quiz_round_ends_append_only','reward_offers_append_only',"
     "'reward_offer_changes_append_only']) x"
     " WHERE NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = x)"},
    /* Free units and access (sql/020). */
    {"R6 a free unit (kind 6) is one unit at amount 0 with two zero legs, and one reward use names it",
     "SELECT t.id FROM transfers t WHERE t.kind = 6 AND (t.qty <> 1 OR t.amount_minor <> 0 OR t.item_id IS NULL"
     " OR cardinality(t.leg_amounts) <> 2 OR EXISTS (SELECT 1 FROM unnest(t.leg_amounts) x WHERE x <> 0)"
     " OR (SELECT count(*) FROM reward_uses u WHERE u.transfer_id = t.id AND u.kind = 1) <> 1) LIMIT 5"},
    {"R7 a reward is a discount or an unlock of its own item, never both",
     "SELECT d.id FROM reward_defs d LEFT JOIN reward_unlocks k ON k.reward_id = d.id"
     " WHERE (k.reward_id IS NULL) = (d.percent_bps = 0 AND d.amount_minor = 0) OR k.item_id <> d.item_id"
     " UNION ALL SELECT k.reward_id FROM reward_unlocks k LEFT JOIN reward_defs d ON d.id = k.reward_id"
     " WHERE d.id IS NULL LIMIT 5"},
    {"reward unlocks are append-only (the trigger exists)",
     "SELECT x FROM unnest(ARRAY['reward_unlocks_append_only']) x"
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
