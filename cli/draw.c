/* draw.c — `tally draw SKU`: recompute a raffle's draw from the ledger and
 * compare it with what the engine did.
 *
 * From the stored seed and entries (docs/RAFFLE.md has the rules) it checks that
 * the entry hash is the one stored at the draw, prints the commitment, the
 * seed, the hash and the draw order, and walks the order until the units
 * are gone: each entry reached must be charged (a raffle:<item>:<account>
 * purchase) or passed over with a stored reason (raffle_passes), nobody is
 * charged outside that walk, and no entry is both. Exit 0 when everything
 * matches. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tally.h"
#include "tally/admin.h"

static void hex32(const uint8_t p[32], char out[65]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[64] = '\0';
}

static int unhex(const char *hex, uint8_t out[32]) {
  if (strlen(hex) != 64) return -1;
  for (int i = 0; i < 32; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return 0;
}

static PGresult *query(PGconn *c, const char *sql, const char *param) {
  const char *params[1] = {param};
  PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    fprintf(stderr, "tally draw: %s", PQresultErrorMessage(r));
    PQclear(r);
    return NULL;
  }
  return r;
}

/* Is account name in the first column of rows r (charged winners, or
 * entries passed over)? Its row, or -1. */
static int row_of(const PGresult *r, const char *name) {
  for (int i = 0; i < PQntuples(r); i++)
    if (strcmp(PQgetvalue(r, i, 0), name) == 0) return i;
  return -1;
}

int cli_draw(PGconn *c, const char *sku) {
  PGresult *it = query(c, "SELECT id, encode(raffle_seed, 'hex'), raffle_drawn, encode(raffle_entry_hash, 'hex'),"
                          " raffle_entries, stock FROM items WHERE sku = $1 AND drop_mode = 1", sku);
  if (!it) return 2;
  if (PQntuples(it) != 1) {
    fprintf(stderr, "tally draw: no raffle drop %s\n", sku);
    PQclear(it);
    return 2;
  }
  const char *item_id = PQgetvalue(it, 0, 0);
  uint8_t seed[32], stored_hash[32], hash[32] = {0}, commit[32];
  bool drawn = PQgetvalue(it, 0, 2)[0] == 't';
  if (unhex(PQgetvalue(it, 0, 1), seed) || (drawn && unhex(PQgetvalue(it, 0, 3), stored_hash))) {
    fprintf(stderr, "tally draw: %s: bad seed or hash in the items row\n", sku);
    PQclear(it);
    return 1;
  }
  tally_admin_raffle_commitment(seed, commit);
  char hex[65];
  hex32(commit, hex);
  printf("raffle %s (item %s)\ncommitment sha256(seed): %s\n", sku, item_id, hex);
  if (!drawn) {
    printf("not drawn yet: the seed stays secret until the drop closes\n");
    PQclear(it);
    return 0;
  }
  PGresult *en = query(c, "SELECT a.name FROM raffle_entries e JOIN accounts a ON a.id = e.account_id"
                          " WHERE e.item_id = $1 ORDER BY e.seq", item_id);
  PGresult *w = en ? query(c, "SELECT a.name FROM transfers t JOIN accounts a ON a.id = t.account_id"
                              " WHERE t.kind = 1 AND t.item_id = $1 AND t.idem_key LIKE 'raffle:%'", item_id)
                   : NULL;
  PGresult *ps = w ? query(c, "SELECT a.name, p.reason FROM raffle_passes p JOIN accounts a ON a.id = p.account_id"
                              " WHERE p.item_id = $1", item_id)
                   : NULL;
  if (!en || !w || !ps) {
    PQclear(it);
    PQclear(en);
    PQclear(w);
    return 2;
  }
  uint32_t n = (uint32_t)PQntuples(en);
  int bad = 0;
  /* The whole draw order up front: its prefix is what the engine walked. */
  uint32_t *order = calloc(n ? n : 1, sizeof *order);
  const char **names = calloc(n ? n : 1, sizeof *names);
  for (uint32_t i = 0; i < n && names; i++) names[i] = PQgetvalue(en, (int)i, 0);
  if (!order || !names ||
      tally_admin_raffle_order(strtoull(item_id, NULL, 10), seed, names, n, hash, order) != TALLY_OK) {
    fprintf(stderr, "tally draw: hashing failed\n");
    bad = 1;
  }
  free(names);
  hex32(seed, hex);
  printf("seed: %s\n", hex);
  hex32(hash, hex);
  printf("entries: %u (stored at the draw: %s), entry hash %s\n", n, PQgetvalue(it, 0, 4), hex);
  if (!bad && (memcmp(hash, stored_hash, 32) != 0 || strtoul(PQgetvalue(it, 0, 4), NULL, 10) != n)) {
    printf("MISMATCH: the stored entries do not hash to the entry hash revealed at the draw\n");
    bad = 1;
  }
  /* The order: walked until the units are gone, every entry is either
   * charged or passed over with a stored reason; nobody is charged outside
   * that walk, and nobody charged is also recorded as passed over. */
  long stock = strtol(PQgetvalue(it, 0, 5), NULL, 10);
  int winners = PQntuples(w), seen = 0, passed = 0;
  int units = stock < 0 || stock > (long)n ? (int)n : (int)stock;
  for (uint32_t i = 0; i < n && order && !bad && seen < units; i++) {
    const char *name = PQgetvalue(en, (int)order[i], 0);
    int won = row_of(w, name), pass = row_of(ps, name);
    if (won >= 0 && pass >= 0) {
      printf("MISMATCH: draw %u: %s was charged and also recorded as passed over\n", i + 1, name);
      bad = 1;
    } else if (won >= 0) {
      printf("  draw %u: %s  (charged)\n", i + 1, name);
      seen++;
    } else if (pass >= 0) {
      printf("  draw %u: %s  (passed over: %s)\n", i + 1, name, PQgetvalue(ps, pass, 1));
      passed++;
    } else {
      printf("MISMATCH: draw %u: %s was neither charged nor passed over with a reason\n", i + 1, name);
      bad = 1;
    }
  }
  if (!bad && seen != winners) {
    printf("MISMATCH: %d charged winners, %d of them in draw order before the units ran out\n", winners, seen);
    bad = 1;
  }
  if (!bad && passed != PQntuples(ps)) {
    printf("MISMATCH: %d entries recorded as passed over, %d of them reached by the draw\n", PQntuples(ps), passed);
    bad = 1;
  }
  if (!bad) printf("OK: %d winners charged, all in draw order; %d passed over, each with its reason\n", winners, passed);
  free(order);
  PQclear(it);
  PQclear(en);
  PQclear(w);
  PQclear(ps);
  return bad;
}
