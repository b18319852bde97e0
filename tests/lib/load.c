/* load.c — see load.h. */
#include "load.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

int64_t th_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t load_seq;

void th_load_init(th_load *L, tally_engine *e, int cap) {
  memset(L, 0, sizeof *L);
  L->e = e;
  L->cap = cap;
  L->reqs = calloc((size_t)cap, sizeof *L->reqs);
  if (!L->reqs) abort();
  /* Far above harness.c's counter, distinct per load. */
  L->base = (1ull << 40) + (++load_seq << 24);
}

void th_load_free(th_load *L) {
  free(L->reqs);
  L->reqs = NULL;
}

void th_load_reset(th_load *L) {
  L->n = 0;
  L->base = (1ull << 40) + (++load_seq << 24);
}

int th_load_add(th_load *L, const char *key) {
  if (L->n >= L->cap) abort();
  th_req *q = &L->reqs[L->n];
  memset(q, 0, sizeof *q);
  snprintf(q->key, sizeof q->key, "%s", key);
  q->final_code = TH_NO_ANSWER;
  q->sent_ms = th_now_ms();
  return L->n++;
}

int th_load_find(const th_load *L, const char *key) {
  for (int i = 0; i < L->n; i++)
    if (strcmp(L->reqs[i].key, key) == 0) return i;
  return -1;
}

static void final_answer(th_req *q, int code, uint64_t receipt, const char *text) {
  q->finals++;
  if (q->finals > 1) return; /* keep the first; the count tells the bug */
  q->final_code = code;
  q->receipt = receipt;
  q->answered_ms = th_now_ms();
  snprintf(q->text, sizeof q->text, "%s", text ? text : "");
}

int th_load_send(th_load *L, const char *account, const char *text, const char *key, uint32_t roles) {
  char id[48];
  if (!key) {
    snprintf(id, sizeof id, "L%d-%llx-%d", (int)getpid(), (unsigned long long)(L->base >> 24), L->n);
    key = id;
  }
  int i = th_load_add(L, key);
  tally_command c = {.size = sizeof c, .version = TALLY_COMMAND_VERSION, .req_id = L->base + (uint64_t)i,
                     .origin = "loader", .account = account, .nick = account, .channel = "",
                     .msg_id = key, .text = text, .roles = roles};
  int rc = tally_engine_submit_command(L->e, &c);
  if (rc != TALLY_OK) {
    char why[96];
    snprintf(why, sizeof why, "submit refused: %s", tally_strerror(rc));
    final_answer(&L->reqs[i], rc, 0, why);
  }
  return i;
}

static void on_effect(void *ud, const tally_effect *eff) {
  th_load *L = ud;
  if (eff->kind != TALLY_EFFECT_REPLY || eff->req_id < L->base || eff->req_id >= L->base + (uint64_t)L->n)
    return;
  th_req *q = &L->reqs[eff->req_id - L->base];
  if (eff->code == TALLY_EPENDING) {
    q->pending++;
    return;
  }
  final_answer(q, eff->code, eff->receipt_id, eff->text);
}

void th_load_pump(th_load *L, int ms) {
  int64_t end = th_now_ms() + ms;
  do {
    struct pollfd p = {tally_engine_fd(L->e), POLLIN, 0};
    int64_t left = end - th_now_ms();
    poll(&p, 1, left > 0 ? (int)(left < 5 ? left : 5) : 0);
    tally_engine_drain(L->e, on_effect, L, 100000);
  } while (th_now_ms() < end);
}

static int without_final(const th_load *L) {
  int n = 0;
  for (int i = 0; i < L->n; i++) n += L->reqs[i].finals == 0;
  return n;
}

int th_load_wait(th_load *L, int timeout_ms) {
  int64_t end = th_now_ms() + timeout_ms;
  while (without_final(L) > 0 && th_now_ms() < end) th_load_pump(L, 10);
  return without_final(L);
}

/* Every key has a final answer (copies of a key may only have "pending"). */
static int keys_unresolved(const th_load *L) {
  int n = 0;
  for (int i = 0; i < L->n; i++) {
    if (L->reqs[i].finals) continue;
    int resolved = 0;
    for (int j = 0; j < L->n && !resolved; j++)
      resolved = L->reqs[j].finals && L->reqs[j].final_code != TALLY_EKEY_MISMATCH &&
                 strcmp(L->reqs[j].key, L->reqs[i].key) == 0;
    n += !resolved;
  }
  return n;
}

int th_load_wait_keys(th_load *L, int timeout_ms) {
  int64_t end = th_now_ms() + timeout_ms;
  while (keys_unresolved(L) > 0 && th_now_ms() < end) th_load_pump(L, 10);
  return keys_unresolved(L);
}

void th_load_stop_engine(th_load *L) {
  tally_engine_stop(L->e);
  tally_engine_drain(L->e, on_effect, L, 1000000);
}

/* ---- a shop ------------------------------------------------------------------- */
int th_load_shop(th_load *L, int buyers, int stock, int credits) {
  th_reply r;
  char text[128], who[32];
  if (th_cmd(L->e, "admin", "TALLY ROLE alice creator", TALLY_ROLE_OPER, &r) != TALLY_OK) return -1;
  /* "host" runs drops in #live: selling needs the creator role. */
  if (th_cmd(L->e, "admin", "TALLY ROLE host creator", TALLY_ROLE_OPER, &r) != TALLY_OK) return -1;
  snprintf(text, sizeof text, "ITEM ADD tee 1 %d Tee", stock);
  if (th_cmd(L->e, "alice", text, 0, &r) != TALLY_OK) return -1;
  if (th_cmd(L->e, "alice", "ITEM ADD pin 1 Pin", 0, &r) != TALLY_OK) return -1;
  th_load_reset(L);
  /* In groups of 8 so that small batch_max settings do not answer "busy". */
  for (int i = 0; i < buyers; i++) {
    snprintf(who, sizeof who, "b%d", i);
    snprintf(text, sizeof text, "TALLY GRANT %s %d", who, credits);
    th_load_send(L, "admin", text, NULL, TALLY_ROLE_OPER | TALLY_ROLE_GRANT);
    if (i % 8 == 7 && th_load_wait(L, 30000)) return -1;
  }
  if (th_load_wait(L, 30000)) return -1;
  for (int i = 0; i < L->n; i++)
    if (L->reqs[i].final_code != TALLY_OK) {
      fprintf(stderr, "shop: grant %d: %s\n", i, L->reqs[i].text);
      return -1;
    }
  th_load_reset(L);
  for (int i = 0; i < buyers; i++) {
    snprintf(who, sizeof who, "b%d", i);
    th_load_send(L, who, "BUY pin", NULL, 0);
    if (i % 8 == 7 && th_load_wait(L, 30000)) return -1;
  }
  if (th_load_wait(L, 30000)) return -1;
  th_load asked = *L;
  th_req *copy = malloc((size_t)L->n * sizeof *copy);
  if (!copy) abort();
  memcpy(copy, L->reqs, (size_t)L->n * sizeof *copy);
  asked.reqs = copy;
  th_load_reset(L);
  for (int i = 0; i < asked.n; i++) {
    const char *code = strstr(copy[i].text, "CONFIRM ");
    if (copy[i].final_code != TALLY_ECONSENT || !code) {
      fprintf(stderr, "shop: consent %d: %s\n", i, copy[i].text);
      free(copy);
      return -1;
    }
    snprintf(who, sizeof who, "b%d", i);
    snprintf(text, sizeof text, "CONFIRM %.6s", code + 8);
    th_load_send(L, who, text, NULL, 0);
    if (i % 8 == 7 && th_load_wait(L, 30000)) {
      free(copy);
      return -1;
    }
  }
  free(copy);
  if (th_load_wait(L, 30000)) return -1;
  for (int i = 0; i < L->n; i++)
    if (L->reqs[i].final_code != TALLY_OK || !L->reqs[i].receipt) {
      fprintf(stderr, "shop: confirm %d: %s\n", i, L->reqs[i].text);
      return -1;
    }
  th_load_reset(L);
  return 0;
}

/* ---- ledger checks --------------------------------------------------------------- */
int th_sql_exec(const char *dsn, const char *sql) {
  PGconn *c = PQconnectdb(dsn);
  int rc = -1;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
    if (rc) fprintf(stderr, "sql: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
  } else {
    fprintf(stderr, "sql: %s", PQerrorMessage(c));
  }
  PQfinish(c);
  return rc;
}

int th_sql_exec_retry(const char *dsn, const char *sql, int max_ms) {
  int64_t t0 = th_now_ms();
  for (;;) {
    if (!th_sql_exec(dsn, sql)) return 0;
    if (th_now_ms() - t0 >= max_ms) return -1;
    usleep(250 * 1000);
  }
}

typedef struct key_ix {
  const char *key;
  int req;
} key_ix;

static int key_ix_cmp(const void *a, const void *b) {
  return strcmp(((const key_ix *)a)->key, ((const key_ix *)b)->key);
}

/* First index in the sorted array with this key, or -1. */
static int key_lower(const key_ix *ix, int n, const char *key) {
  int lo = 0, hi = n;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (strcmp(ix[mid].key, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && strcmp(ix[lo].key, key) == 0 ? lo : -1;
}

static int is_refusal(int code) {
  return code != TALLY_OK && code != TH_NO_ANSWER && code != TALLY_EPENDING;
}

int th_load_check(const th_load *L, const char *dsn, const char *sku, th_ledger_report *r,
                  const char *tag) {
  memset(r, 0, sizeof *r);
  r->reqs = L->n;
  for (int i = 0; i < L->n; i++) {
    const th_req *q = &L->reqs[i];
    if (q->finals > 1) r->double_answers++;
    if (q->finals == 0 && q->pending) r->pending_only++;
    else if (q->finals == 0) r->unanswered++;
    else if (q->final_code == TALLY_OK) {
      r->ok++;
      r->receipts += q->receipt != 0;
    } else if (q->final_code == TALLY_EBUSY) r->busy++;
    else if (q->final_code == TALLY_EFAILED) r->failed++;
    else if (q->final_code == TALLY_ESOLD_OUT) r->sold_out++;
    else r->other++;
  }
  key_ix *ix = calloc((size_t)L->n + 1, sizeof *ix);
  if (!ix) abort();
  for (int i = 0; i < L->n; i++) ix[i] = (key_ix){L->reqs[i].key, i};
  qsort(ix, (size_t)L->n, sizeof *ix, key_ix_cmp);

  /* One key, one receipt. */
  for (int a = 0; a < L->n;) {
    int b = a;
    uint64_t rec = 0;
    while (b < L->n && strcmp(ix[b].key, ix[a].key) == 0) {
      const th_req *q = &L->reqs[ix[b].req];
      if (q->final_code == TALLY_OK && q->receipt) {
        if (rec && rec != q->receipt) r->receipt_conflicts++;
        rec = q->receipt;
      }
      b++;
    }
    a = b;
  }

  PGconn *c = PQconnectdb(dsn);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "%s: %s", tag, PQerrorMessage(c));
    PQfinish(c);
    free(ix);
    return -1;
  }
  const char *params[1] = {sku};
  PGresult *res = PQexecParams(c,
                               "SELECT t.id, t.idem_key, t.qty FROM transfers t JOIN items i ON i.id = t.item_id"
                               " WHERE t.kind = 1 AND i.sku = $1 ORDER BY t.idem_key",
                               1, NULL, params, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    fprintf(stderr, "%s: %s", tag, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
    free(ix);
    return -1;
  }
  int rows = PQntuples(res), said = 0; /* diagnostics printed: the first 10 */
  r->ledger_rows = rows;
  /* Which receipts were found in the ledger with their own key. */
  char *found = calloc((size_t)L->n + 1, 1);
  if (!found) abort();
  for (int k = 0; k < rows; k++) {
    uint64_t id = strtoull(PQgetvalue(res, k, 0), NULL, 10);
    const char *key = PQgetvalue(res, k, 1);
    r->ledger_qty += atoi(PQgetvalue(res, k, 2));
    if (k > 0 && strcmp(key, PQgetvalue(res, k - 1, 1)) == 0) r->ledger_dup_keys++;
    int at = key_lower(ix, L->n, key);
    if (at < 0) {
      r->ledger_unexplained++;
      if (said++ < 10) fprintf(stderr, "%s: transfer %llu has key %s that no buyer sent\n", tag, (unsigned long long)id, key);
      continue;
    }
    int may_own = 0, refused = 0;
    for (int j = at; j < L->n && strcmp(ix[j].key, key) == 0; j++) {
      const th_req *q = &L->reqs[ix[j].req];
      if (q->final_code == TALLY_OK && q->receipt == id) found[ix[j].req] = 1;
      if (q->final_code == TALLY_OK || q->finals == 0) may_own = 1;
      else if (is_refusal(q->final_code) && q->final_code != TALLY_EKEY_MISMATCH) refused = 1;
    }
    if (!may_own) {
      r->refused_in_ledger += refused;
      r->ledger_unexplained += !refused;
      if (said++ < 10) fprintf(stderr, "%s: transfer %llu (key %s) is in the ledger but its buyer was refused\n", tag,
              (unsigned long long)id, key);
    }
  }
  for (int i = 0; i < L->n; i++) {
    const th_req *q = &L->reqs[i];
    if (q->final_code == TALLY_OK && q->receipt && !found[i]) {
      r->receipts_missing++;
      if (said++ < 10) fprintf(stderr, "%s: receipt %llu (key %s) seen by a buyer but not in the ledger\n", tag,
              (unsigned long long)q->receipt, q->key);
    }
  }
  free(found);
  PQclear(res);
  PQfinish(c);
  free(ix);
  fprintf(stderr,
          "%s: %d requests: %d ok (%d receipts), %d busy, %d failed, %d sold out, %d other, %d pending only,"
          " %d unanswered, %d double answers; ledger %d rows (%d units), %d unexplained, %d refused but"
          " charged, %d keys charged twice, %d receipts missing, %d receipt conflicts\n",
          tag, r->reqs, r->ok, r->receipts, r->busy, r->failed, r->sold_out, r->other, r->pending_only,
          r->unanswered, r->double_answers, r->ledger_rows, r->ledger_qty, r->ledger_unexplained,
          r->refused_in_ledger, r->ledger_dup_keys, r->receipts_missing, r->receipt_conflicts);
  return r->unanswered || r->double_answers || r->receipts_missing || r->receipt_conflicts ||
                 r->refused_in_ledger || r->ledger_unexplained || r->ledger_dup_keys
             ? -1
             : 0;
}

int64_t th_wallet_available(const char *text, int decimals) {
  const char *s = strstr(text, "balance ");
  if (!s) return INT64_MIN;
  s += 8;
  int64_t whole = 0, frac = 0;
  int neg = *s == '-';
  if (neg) s++;
  while (*s >= '0' && *s <= '9') whole = whole * 10 + (*s++ - '0');
  int digits = 0;
  if (*s == '.')
    for (s++; *s >= '0' && *s <= '9'; s++, digits++) frac = frac * 10 + (*s - '0');
  for (; digits < decimals; digits++) frac *= 10;
  int64_t scale = 1;
  for (int k = 0; k < decimals; k++) scale *= 10;
  int64_t v = whole * scale + frac;
  return neg ? -v : v;
}

int th_load_run(th_load *L, int buyers, const char *text, int interval_ms, int max_ms, th_load_hook hook,
                void *ud) {
  int64_t start = th_now_ms();
  int sent = 0;
  char who[32];
  for (;;) {
    int64_t now = th_now_ms() - start;
    if (now >= max_ms || (hook && hook(ud, now))) break;
    if (L->n >= L->cap) {
      th_load_pump(L, interval_ms);
      continue;
    }
    snprintf(who, sizeof who, "b%d", sent % buyers);
    th_load_send(L, who, text, NULL, 0);
    sent++;
    th_load_pump(L, interval_ms);
  }
  return sent;
}

void th_fault_fx_free(th_fault_fx *f) {
  if (f->e) {
    th_engine_free(f->e);
    f->e = NULL;
  }
  th_load_free(&f->L);
}
