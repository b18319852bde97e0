/* loader.c — start-up: migrate, then rebuild the engine's memory from the
 * ledger (RELIABILITY.md F5: after a crash, stock = initial - committed and
 * every balance = the sum of its entries). Blocking, on the engine thread,
 * before it takes its first command. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decide.h"
#include "engine_internal.h"
#include "hooks.h"
#include "loader.h"
#include "migrate.h"
#include "test_fault.h"

/* The shared helpers (loader.h) keep their short local names here. */
#define q tally__load_q
#define col_i64 tally__load_i64
#define acc_index tally__load_acc
#define item_index tally__load_item

PGresult *tally__load_q(loader *l, const char *sql, int n, const char *const *params) {
  PGresult *r = PQexecParams(l->c, sql, n, NULL, params, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return r;
  snprintf(l->err, l->err_len, "load: %s", PQresultErrorMessage(r));
  PQclear(r);
  return NULL;
}

int64_t tally__load_i64(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Longest query tally__load_ids_past builds: 24 tables of 40 bytes of
 * name and 60 of SQL each fit with room to spare. */
#define TALLY__LOAD_IDS_SQL_MAX 4096
#define TALLY__LOAD_IDS_TABLES_MAX 24

int tally__load_ids_past(loader *l, const tally__id_table *tables, size_t n) {
  assert(l && l->e && tables && n > 0 && n <= TALLY__LOAD_IDS_TABLES_MAX);
  char sql[TALLY__LOAD_IDS_SQL_MAX];
  size_t len = (size_t)snprintf(sql, sizeof sql, "SELECT coalesce(greatest(");
  for (size_t i = 0; i < n; i++) {
    assert(tables[i].name && tables[i].name[0]);
    int w = snprintf(sql + len, sizeof sql - len, "%s(SELECT max(%s) FROM %s)", i ? ", " : "",
                     tables[i].has_id ? "greatest(id, batch_id)" : "batch_id", tables[i].name);
    assert(w > 0 && (size_t)w < sizeof sql - len); /* the names are the code's own constants */
    len += (size_t)w;
  }
  int w = snprintf(sql + len, sizeof sql - len, "), 0)");
  assert(w > 0 && (size_t)w < sizeof sql - len);
  (void)w;
  PGresult *r = tally__load_q(l, sql, 0, NULL);
  if (!r) return TALLY_EDB;
  int64_t max_id = tally__load_i64(r, 0, 0);
  PQclear(r);
  assert(max_id >= 0);
  if ((uint64_t)max_id + 1 > l->e->st.next_id) l->e->st.next_id = (uint64_t)max_id + 1;
  return TALLY_OK;
}

static bool eq_acc_id(const void *ud, uint32_t i) {
  const loader *l = ud;
  (void)l;
  (void)i;
  return true; /* ids are unique: the hash of an id identifies it */
}

uint32_t tally__load_acc(const loader *l, int64_t id) {
  return tally__map_find(&l->acc_by_id, tally__hash_u64((uint64_t)id), eq_acc_id, l);
}
uint32_t tally__load_item(const loader *l, int64_t id) {
  return tally__map_find(&l->item_by_id, tally__hash_u64((uint64_t)id), eq_acc_id, l);
}

static int load_accounts(loader *l) {
  tally__state *st = &l->e->st;
  PGresult *r = q(l, "SELECT id, name, kind, created_ms FROM accounts ORDER BY id", 0, NULL);
  if (!r) return TALLY_EDB;
  int rc = TALLY_OK;
  for (int i = 0; i < PQntuples(r) && !rc; i++) {
    uint32_t idx;
    rc = tally__account_get(st, PQgetvalue(r, i, 1), (uint8_t)col_i64(r, i, 2), &idx);
    if (rc) break;
    st->accounts[idx].id = (uint64_t)col_i64(r, i, 0);
    st->accounts[idx].persisted = true;
    st->accounts[idx].first_seen_ms = col_i64(r, i, 3); /* a quiz's reward_min_account_age */
    rc = tally__map_put(&l->acc_by_id, tally__hash_u64(st->accounts[idx].id), idx);
  }
  PQclear(r);
  if (rc) snprintf(l->err, l->err_len, "load: accounts: %s", tally_strerror(rc));
  st->fees = tally__account_find(st, "sys:fees");
  st->external = tally__account_find(st, "sys:external");
  if (!rc && (st->fees == TALLY__NONE || st->external == TALLY__NONE)) {
    snprintf(l->err, l->err_len, "load: system accounts are missing");
    rc = TALLY_EDB;
  }
  return rc;
}

/* Networks and identities (sql/010). A user account that has none (written
 * into the ledger by hand after the migration) becomes the irc network's
 * identity of its name, as the migration did for every older one. Memory
 * keeps one identity per wallet today; a second identity of a wallet (LINK,
 * later) is logged and not loaded. */
static int load_identities(loader *l) {
  tally__state *st = &l->e->st;
  PGresult *r = q(l, "INSERT INTO identities (id, network_id, name, account_id, created_ms)"
                     " SELECT a.id, 1, substr(a.name, 6), a.id, a.created_ms FROM accounts a"
                     " WHERE a.kind = 1 AND a.name LIKE 'user:_%'"
                     " AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.account_id = a.id)"
                     " ON CONFLICT DO NOTHING", 0, NULL);
  if (!r) return TALLY_EDB;
  PQclear(r);
  if (!(r = q(l, "SELECT id, name FROM networks ORDER BY id", 0, NULL))) return TALLY_EDB;
  int rc = TALLY_OK;
  for (int i = 0; i < PQntuples(r) && !rc; i++)
    rc = tally__network_put(st, (uint16_t)col_i64(r, i, 0), PQgetvalue(r, i, 1));
  PQclear(r);
  if (rc) {
    snprintf(l->err, l->err_len, "load: networks: %s", tally_strerror(rc));
    return rc;
  }
  if (!(r = q(l, "SELECT id, network_id, account_id, name FROM identities ORDER BY id", 0, NULL))) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r) && !rc; i++) {
    uint32_t a = acc_index(l, col_i64(r, i, 2));
    uint16_t net = TALLY__NETWORKS_MAX;
    for (uint16_t k = 0; k < st->network_count; k++)
      if (st->networks[k].id == col_i64(r, i, 1)) net = k;
    const char *name = PQgetvalue(r, i, 3);
    size_t an = a == TALLY__NONE ? 0 : strlen(tally__account_name(st, a)), n = strlen(name);
    if (a == TALLY__NONE || net == TALLY__NETWORKS_MAX || st->accounts[a].identity_id || n > an ||
        strcmp(tally__account_name(st, a) + an - n, name) != 0) {
      fprintf(stderr, "tally: load: identity %s not kept in memory (a second identity of its wallet, or"
                      " not its wallet's name)\n", PQgetvalue(r, i, 0));
      continue;
    }
    rc = tally__identity_attach(st, a, (uint64_t)col_i64(r, i, 0), net, (uint16_t)(an - n));
  }
  PQclear(r);
  if (rc) snprintf(l->err, l->err_len, "load: identities: %s", tally_strerror(rc));
  return rc;
}

static int load_balances_roles(loader *l) {
  tally__state *st = &l->e->st;
  PGresult *r = q(l, "SELECT account_id, sum(amount_minor) FROM entries GROUP BY account_id", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t a = acc_index(l, col_i64(r, i, 0));
    if (a != TALLY__NONE) st->accounts[a].balance = col_i64(r, i, 1);
    if (a != TALLY__NONE && TALLY__FAULT(LOADER_BALANCE) && st->accounts[a].kind == TALLY__ACCOUNT_USER &&
        st->accounts[a].balance > 0)
      st->accounts[a].balance *= 2;
  }
  PQclear(r);
  r = q(l, "SELECT DISTINCT ON (account_id) account_id, role FROM role_changes"
           " ORDER BY account_id, id DESC", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t a = acc_index(l, col_i64(r, i, 0));
    if (a != TALLY__NONE) st->accounts[a].is_creator = strcmp(PQgetvalue(r, i, 1), "creator") == 0;
  }
  PQclear(r);
  r = q(l, "SELECT account_id FROM consents", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t a = acc_index(l, col_i64(r, i, 0));
    if (a == TALLY__NONE) continue;
    st->accounts[a].consented = 1;
    st->accounts[a].consent_persisted = true;
  }
  PQclear(r);
  return TALLY_OK;
}

static int load_items(loader *l) {
  tally__state *st = &l->e->st;
  PGresult *r = q(l, "SELECT id, sku, creator_id, price_minor, coalesce(stock, -1), title,"
                     " refund_window_s, deleted, version, coalesce(drop_channel, ''), coalesce(drop_start_ms, 0),"
                     " coalesce(drop_end_ms, 0), drop_per_user, drop_state, coalesce(drop_event, 0)"
                     " FROM items ORDER BY id", 0, NULL);
  if (!r) return TALLY_EDB;
  int rc = TALLY_OK;
  for (int i = 0; i < PQntuples(r) && !rc; i++) {
    uint32_t idx, creator = acc_index(l, col_i64(r, i, 2));
    if (creator == TALLY__NONE) continue;
    if ((rc = tally__item_add(st, PQgetvalue(r, i, 1), &idx))) break;
    tally__item *it = &st->items[idx];
    it->id = (uint64_t)col_i64(r, i, 0);
    it->creator = creator;
    it->price = col_i64(r, i, 3);
    it->stock = (int32_t)col_i64(r, i, 4);
    snprintf(it->title, sizeof it->title, "%s", PQgetvalue(r, i, 5));
    it->refund_window_s = (uint32_t)col_i64(r, i, 6);
    it->deleted = PQgetvalue(r, i, 7)[0] == 't';
    it->version = (uint64_t)col_i64(r, i, 8);
    snprintf(it->drop_channel, sizeof it->drop_channel, "%s", PQgetvalue(r, i, 9));
    it->drop_net = st->accounts[creator].net; /* its creator ran the drop, in its network (see loader_live.c) */
    it->drop_start_ms = col_i64(r, i, 10);
    it->drop_end_ms = col_i64(r, i, 11);
    it->drop_per_user = (uint32_t)col_i64(r, i, 12);
    it->drop_state = (uint8_t)col_i64(r, i, 13);
    it->drop_event = (uint64_t)col_i64(r, i, 14);
    rc = tally__map_put(&l->item_by_id, tally__hash_u64(it->id), idx);
  }
  PQclear(r);
  if (rc) {
    snprintf(l->err, l->err_len, "load: items: %s", tally_strerror(rc));
    return rc;
  }
  r = q(l, "SELECT item_id, sum(qty) FROM transfers WHERE kind IN (1, 6) GROUP BY item_id" /* 6: free units take stock */, 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t it = item_index(l, col_i64(r, i, 0));
    if (it != TALLY__NONE) st->items[it].sold = (int32_t)col_i64(r, i, 1);
  }
  PQclear(r);
  return TALLY_OK;
}

/* Purchases still inside the longest refund window, with their fee and what
 * was refunded of them already. */
static int load_purchases(loader *l, int64_t now_ms) {
  tally__state *st = &l->e->st;
  char since[24], limit[24];
  snprintf(since, sizeof since, "%lld", (long long)(now_ms - 90LL * 86400 * 1000));
  snprintf(limit, sizeof limit, "%u", st->cfg->purchases_max);
  const char *params[2] = {since, limit};
  PGresult *r = q(l,
                  "WITH p AS (SELECT id, account_id, item_id, amount_minor, created_ms, qty FROM transfers"
                  "  WHERE kind IN (1, 6) AND created_ms >= $1::bigint ORDER BY id DESC LIMIT $2::int)," /* 6: REFUND says why not */
                  " f AS (SELECT e.transfer_id, e.amount_minor FROM entries e JOIN p ON p.id = e.transfer_id"
                  "  WHERE e.account_id = 1),"
                  " r AS (SELECT t.ref_transfer, sum(t.amount_minor) AS s, coalesce(sum(-e.amount_minor), 0) AS fs"
                  "  FROM transfers t LEFT JOIN entries e ON e.transfer_id = t.id AND e.account_id = 1"
                  "  WHERE t.kind = 3 GROUP BY t.ref_transfer)"
                  " SELECT p.id, p.account_id, p.item_id, p.amount_minor, p.created_ms,"
                  "  coalesce(f.amount_minor, 0), coalesce(r.s, 0), coalesce(r.fs, 0), p.qty"
                  " FROM p LEFT JOIN f ON f.transfer_id = p.id LEFT JOIN r ON r.ref_transfer = p.id"
                  " ORDER BY p.id",
                  2, params);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t buyer = acc_index(l, col_i64(r, i, 1)), item = item_index(l, col_i64(r, i, 2));
    if (buyer == TALLY__NONE || item == TALLY__NONE) continue;
    tally__purchase p = {.transfer_id = (uint64_t)col_i64(r, i, 0), .buyer = buyer, .item = item,
                         .amount = col_i64(r, i, 3), .created_ms = col_i64(r, i, 4),
                         .fee = col_i64(r, i, 5), .refunded = col_i64(r, i, 6),
                         .fee_refunded = col_i64(r, i, 7), .committed = true, .qty = (uint32_t)col_i64(r, i, 8),
                         .coop_slot = TALLY__NONE};
    if (TALLY__FAULT(LOADER_REFUND)) p.refunded = p.fee_refunded = 0; /* refunds forgotten */
    tally__purchase_add(st, &p);
  }
  PQclear(r);
  return TALLY_OK;
}

/* Idempotency keys of the last day, with the fingerprints of their
 * requests, so a replayed command with other parameters is still refused. */
/* The unit price each buyer last paid for each item: a BUY above it asks
 * for a fresh CONFIRM (a confirmed raise is followed by its purchase, so
 * the purchases carry every price agreed to). Newest first: pairs beyond
 * the table mark their account, whose BUYs then ask again. */
static int load_agreed(loader *l) {
  tally__state *st = &l->e->st;
  PGresult *r = q(l, "SELECT account_id, item_id, amount_minor / qty FROM"
                     " (SELECT DISTINCT ON (account_id, item_id) id, account_id, item_id, amount_minor, qty"
                     "  FROM transfers WHERE kind = 1 AND qty > 0 AND item_id IS NOT NULL"
                     "  ORDER BY account_id, item_id, id DESC) s ORDER BY id DESC",
                  0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t a = acc_index(l, col_i64(r, i, 0)), it = item_index(l, col_i64(r, i, 1));
    int64_t price = col_i64(r, i, 2);
    if (a != TALLY__NONE && it != TALLY__NONE && price > 0) tally__agreed_note(st, a, it, price);
  }
  PQclear(r);
  return TALLY_OK;
}

static int load_keys(loader *l, int64_t now_ms) {
  tally__state *st = &l->e->st;
  char since[24], limit[24];
  snprintf(since, sizeof since, "%lld", (long long)(now_ms - TALLY__KEY_RETENTION_MS));
  snprintf(limit, sizeof limit, "%u", st->cfg->keys_max / 2);
  const char *params[2] = {since, limit};
  PGresult *r = q(l,
                  "SELECT * FROM (SELECT idem_key, id, request_fp, created_ms FROM transfers"
                  " WHERE created_ms >= $1::bigint ORDER BY id DESC LIMIT $2::int) k ORDER BY id",
                  2, params);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    if (strlen(PQgetvalue(r, i, 0)) > TALLY__KEY_BYTES_MAX) continue;
    tally__key_add(st, PQgetvalue(r, i, 0), (uint64_t)col_i64(r, i, 2), (uint64_t)col_i64(r, i, 1),
                   TALLY__KEY_DONE, col_i64(r, i, 3));
  }
  PQclear(r);
  return TALLY_OK;
}

static int load_today_and_recent(loader *l, int64_t now_ms) {
  tally__state *st = &l->e->st;
  char day0[24];
  int32_t today = tally__utc_day(now_ms);
  snprintf(day0, sizeof day0, "%lld", (long long)today * 86400000LL);
  const char *params[1] = {day0};
  /* The count belongs to the latest UTC day with spending, as in memory
   * (decide.c): a clock set back after a restart does not reopen a day. */
  PGresult *r = q(l, "SELECT account_id, day, s FROM (SELECT account_id, created_ms / 86400000 AS day,"
                     " sum(amount_minor) AS s, rank() OVER (PARTITION BY account_id ORDER BY created_ms / 86400000 DESC) AS n"
                     " FROM transfers WHERE kind IN (1, 2) AND created_ms >= $1::bigint GROUP BY 1, 2) d WHERE n = 1",
                  1, params);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t a = acc_index(l, col_i64(r, i, 0));
    if (a == TALLY__NONE) continue;
    st->accounts[a].spent_day = (int32_t)col_i64(r, i, 1);
    st->accounts[a].spent_today = col_i64(r, i, 2);
  }
  PQclear(r);
  r = q(l, "SELECT account_id, id FROM (SELECT account_id, id, row_number() OVER"
           " (PARTITION BY account_id ORDER BY id DESC) AS n FROM transfers WHERE kind IN (1, 2, 3, 6)) s"
           " WHERE n <= 8 ORDER BY id", 0, NULL);
  if (!r) return TALLY_EDB;
  for (int i = 0; i < PQntuples(r); i++) {
    uint32_t a = acc_index(l, col_i64(r, i, 0));
    if (a != TALLY__NONE) tally__account_note_receipt(&st->accounts[a], (uint64_t)col_i64(r, i, 1));
  }
  PQclear(r);
  return TALLY_OK;
}

static int load_counters(loader *l) {
  tally__engine *e = l->e;
  PGresult *r = q(l,
                  "SELECT greatest((SELECT max(id) FROM accounts), (SELECT max(id) FROM items),"
                  " (SELECT max(id) FROM transfers), (SELECT max(id) FROM batches), (SELECT max(id) FROM events),"
                  " (SELECT max(id) FROM identities)),"
                  " (SELECT coalesce(max(substr(idem_key, 15)::bigint), 0) FROM transfers"
                  "  WHERE idem_key LIKE 'grant-request:%')",
                  0, NULL);
  if (!r) return TALLY_EDB;
  uint64_t max_id = (uint64_t)col_i64(r, 0, 0);
  if (max_id + 1 > e->st.next_id) e->st.next_id = max_id + 1;
  e->last_grant_request = col_i64(r, 0, 1);
  PQclear(r);
  return TALLY_OK;
}

/* The ledger's currency decimals: recorded by the first engine, and an
 * engine configured otherwise must not start (it would misread every
 * amount by a power of ten). Checked before the lease, so a misconfigured
 * engine never fences out the running one. */
static int check_decimals(loader *l, int64_t now_ms) {
  char dec[8], ms[24];
  snprintf(dec, sizeof dec, "%u", l->e->cfg.currency_decimals);
  snprintf(ms, sizeof ms, "%lld", (long long)now_ms);
  const char *params[2] = {dec, ms};
  PGresult *r = q(l, "WITH ins AS (INSERT INTO ledger_currency (id, decimals, created_ms)"
                     " VALUES (1, $1::smallint, $2::bigint) ON CONFLICT DO NOTHING RETURNING decimals)"
                     " SELECT decimals FROM ins UNION ALL SELECT decimals FROM ledger_currency", 2, params);
  if (!r) return TALLY_EDB;
  int64_t stored = PQntuples(r) > 0 ? col_i64(r, 0, 0) : -1;
  PQclear(r);
  if (stored == (int64_t)l->e->cfg.currency_decimals) return TALLY_OK;
  snprintf(l->err, l->err_len,
           "config decimals: this ledger counts money with %lld decimals, this engine is set to %u;"
           " set decimals=\"%lld\" (the ledger's value never changes)",
           (long long)stored, l->e->cfg.currency_decimals, (long long)stored);
  return TALLY_ECONFIG;
}

/* Takes the ledger's lease: the UPDATE waits for every batch of a previous
 * engine that is still committing, and fences that engine out afterwards. */
static int take_lease(loader *l, int64_t now_ms) {
  char holder[96], ms[24];
  char host[64] = "?";
  gethostname(host, sizeof host - 1);
  snprintf(holder, sizeof holder, "%s:%d", host, (int)getpid());
  snprintf(ms, sizeof ms, "%lld", (long long)now_ms);
  const char *params[2] = {holder, ms};
  PGresult *r = q(l, "UPDATE engine_lease SET epoch = epoch + 1, holder = $1, since_ms = $2::bigint"
                     " WHERE id = 1 RETURNING epoch", 2, params);
  if (!r) return TALLY_EDB;
  l->e->lease_epoch = (uint64_t)col_i64(r, 0, 0);
  PQclear(r);
  return TALLY_OK;
}

static int register_key(loader *l, int64_t now_ms) {
  uint8_t pub[32];
  char hex[65], ms[24];
  tally__signer_public(l->e->signer, pub);
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", pub[i]);
  snprintf(ms, sizeof ms, "%lld", (long long)now_ms);
  const char *params[3] = {tally__signer_key_id(l->e->signer), hex, ms};
  PGresult *r = q(l, "INSERT INTO signing_keys (key_id, public_key, created_ms)"
                     " VALUES ($1, decode($2, 'hex'), $3::bigint) ON CONFLICT DO NOTHING", 3, params);
  if (!r) return TALLY_EDB;
  PQclear(r);
  return TALLY_OK;
}

/* The features' memory (events and drops, co-op shares, raffles, ...),
 * through the hook table, in its order: a feature may rely on the ones
 * before it (the shop's raffles on live's events). */
static int restore_features(loader *l, int64_t now_ms) {
  const tally__hooks *h = l->e->hooks;
  int rc = TALLY_OK;
  for (size_t f = 0; f < h->feature_count && !rc; f++)
    if (h->features[f].restore) rc = h->features[f].restore(l, now_ms);
  return rc;
}

/* lock_timeout for this session (0: none): see TALLY__LOAD_LOCK_TIMEOUT_MS. */
static int set_lock_timeout(PGconn *conn, int ms, char *err, size_t err_len) {
  char sql[64];
  snprintf(sql, sizeof sql, "SET lock_timeout = %d", ms);
  PGresult *r = PQexec(conn, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) snprintf(err, err_len, "load: %s: %s", sql, PQerrorMessage(conn));
  PQclear(r);
  return ok ? TALLY_OK : TALLY_EDB;
}

static int engine_load(tally__engine *e, PGconn *conn, char *err, size_t err_len);

int tally__engine_load(tally__engine *e, PGconn *conn, char *err, size_t err_len) {
  int rc = set_lock_timeout(conn, TALLY__LOAD_LOCK_TIMEOUT_MS, err, err_len);
  if (!rc) rc = engine_load(e, conn, err, err_len);
  /* The same session writes batches next, which may wait on locks. */
  if (!rc) rc = set_lock_timeout(conn, 0, err, err_len);
  return rc;
}

static int engine_load(tally__engine *e, PGconn *conn, char *err, size_t err_len) {
  loader l = {.e = e, .c = conn, .err = err, .err_len = err_len};
  int applied;
  int rc = tally__migrate(conn, &applied, err, err_len);
  if (rc) return rc;
  int64_t now = tally__now_wall_ms(e);
  /* Start from empty memory: a failed earlier attempt may have left some. */
  tally__state_free(&e->st);
  rc = tally__state_init(&e->st, &e->cfg);
  for (size_t f = 0; f < e->hooks->feature_count; f++) { /* the features' own state too (hooks.h) */
    const tally__feature_hooks *h = &e->hooks->features[f];
    if (h->data_size) memset(e->feature_data[h->data_slot], 0, h->data_size);
  }
  if (!rc) rc = tally__map_init(&l.acc_by_id, e->cfg.accounts_max);
  if (!rc) rc = tally__map_init(&l.item_by_id, e->cfg.items_max);
  if (rc) {
    snprintf(err, err_len, "load: out of memory");
    return rc;
  }
  rc = check_decimals(&l, now);
  if (!rc) rc = take_lease(&l, now);
  if (!rc) rc = register_key(&l, now);
  if (!rc) rc = load_accounts(&l);
  if (!rc) rc = load_identities(&l);
  if (!rc) rc = load_balances_roles(&l);
  if (!rc) rc = load_items(&l);
  if (!rc) rc = load_purchases(&l, now);
  if (!rc) rc = load_agreed(&l);
  if (!rc) rc = load_keys(&l, now);
  if (!rc) rc = load_today_and_recent(&l, now);
  if (!rc) rc = restore_features(&l, now);
  if (!rc) rc = load_counters(&l);
  tally__map_free(&l.acc_by_id);
  tally__map_free(&l.item_by_id);
  if (!rc)
    fprintf(stderr, "tally: loaded %u accounts, %u items; %d migrations applied\n",
            e->st.account_count, e->st.item_count, applied);
  return rc;
}
