/* matrix_txn.c — transactions in, commands to the engine, effects out.
 *
 * A transaction (Application Service API, "Pushing events": PUT
 * /_matrix/app/v1/transactions/{txnId}) is parsed with jansson; the events
 * that are commands to tally (m.room.message, msgtype m.text, a body
 * "!<word> ..." naming one of the engine's words) are kept; everything else
 * needs no record and is ignored: other event types and state events,
 * m.notice (bots answering bots), edits (m.relates_to rel_type m.replace:
 * an edit of "!buy" must not buy again), the bot's own echoes, and events
 * older than matrix_event_age_max (a backlog after an outage is not a rush
 * of purchases; age from unsigned.age, else origin_server_ts).
 *
 * The transaction and its command event ids are then written in ONE
 * statement (sql/014_matrix.sql) by a worker thread with its own
 * PostgreSQL connection (tallyd's loop never waits on PostgreSQL). Only when
 * it commits is the homeserver answered 200; if it fails, 500, and the
 * homeserver sends the same txnId again. The statement returns the events
 * to submit: those it inserted, and those an earlier tallyd process
 * recorded (it may have died before submitting them; the engine's
 * idempotency key is the event id, so a second submit cannot apply twice).
 * A txnId sent again to the same process submits nothing.
 *
 * Commands then go to the engine like every adapter's: identity = the
 * sender's MXID, network = matrix_network, msg_id = event id, channel = the
 * room. The 200 is never held back by the engine. Effects come back through
 * td_mx_effect; the command's origin is "<room> <event id> <sender>" (none
 * of the three holds a space), so a reply, also a deferred one, knows its
 * room and event without a table, and its outgoing txnId derives from the
 * event id and the answer (SHA-256 of the receipt id when there is one,
 * else of the code and text): a replayed command's answer, posted again,
 * carries the same txnId and the homeserver keeps one. */
#include "matrix.h"

#include <ctype.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { HTML_BYTES_MAX = 6 * (TALLY_TEXT_BYTES_MAX + 512) + 512 }; /* escaped text, <code> tags */

typedef struct td_mx_cmd {
  char event_id[TD_MX_ID_BYTES_MAX + 1], room[TD_MX_ID_BYTES_MAX + 1], sender[TD_MX_ID_BYTES_MAX + 1];
  char text[TALLY_TEXT_BYTES_MAX + 1];
  char thread[TD_MX_ID_BYTES_MAX + 1]; /* the thread the command was said in (its root), or "" */
  int too_long; /* the line did not fit TALLY_TEXT_BYTES_MAX: recorded, answered here */
  int tombstone; /* an m.room.tombstone made into ROOM MOVE (no line to redact) */
  int submit;   /* set by the worker */
} td_mx_cmd;

enum { JOB_TXN, JOB_OUTBOX, JOB_LOAD };

struct td_mx_job {
  td_mx_job *next;
  td_mx *m;
  int kind;
  char *add_json, *settle_json; /* JOB_OUTBOX: the rows, taken when it starts */
  json_t *loaded;               /* JOB_LOAD: [[txn, room, content], ...] */
  json_t *sides;                /* JOB_TXN: [["join"|"encrypted", room], ...], done after the 200 */
  uint32_t rows;
  td_mx_req *req;
  char txn_id[TD_MX_TXN_ID_BYTES_MAX + 1];
  td_mx_cmd *cmds;
  uint32_t n;
  char *rows_json; /* [[event_id, room, sender], ...] for the statement */
  int ok, inserted;
  char err[256];
  uv_work_t work;
};

static const char RECORD_SQL[] =
    "WITH ev AS (SELECT e->>0 AS event_id, e->>1 AS room_id, e->>2 AS sender FROM jsonb_array_elements($4::jsonb) e),"
    " t AS (INSERT INTO matrix_transactions (txn_id, boot, event_count, received_ms)"
    "       VALUES ($1, $2, (SELECT count(*) FROM ev), $3::bigint) ON CONFLICT (txn_id) DO NOTHING RETURNING txn_id),"
    " ins AS (INSERT INTO matrix_events (event_id, txn_id, boot, room_id, sender, received_ms)"
    "       SELECT event_id, $1, $2, room_id, sender, $3::bigint FROM ev WHERE EXISTS (SELECT 1 FROM t)"
    "       ON CONFLICT (event_id) DO NOTHING RETURNING event_id)"
    " SELECT ev.event_id, (SELECT count(*) FROM t) FROM ev WHERE ev.event_id IN (SELECT event_id FROM ins)"
    "    OR EXISTS (SELECT 1 FROM matrix_events m WHERE m.event_id = ev.event_id AND m.boot <> $2)"
    " UNION ALL SELECT NULL, (SELECT count(*) FROM t)";

static const char OUTBOX_ADD_SQL[] =
    "INSERT INTO matrix_outbox (txn_id, room_id, content, created_ms)"
    " SELECT e->>0, e->>1, e->>2, $2::bigint FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(e, n)"
    " ORDER BY n ON CONFLICT (txn_id) DO NOTHING";
static const char OUTBOX_SETTLE_SQL[] =
    "INSERT INTO matrix_settled (txn_id, outcome, settled_ms)"
    " SELECT e->>0, (e->>1)::smallint, $2::bigint FROM jsonb_array_elements($1::jsonb) e"
    " ON CONFLICT (txn_id) DO NOTHING";
/* What earlier processes left unposted: a day back at most (a homeserver
 * keeps txnIds for a limited time; an older answer is stale), in order. */
static const char OUTBOX_LOAD_SQL[] =
    "SELECT o.txn_id, o.room_id, o.content FROM matrix_outbox o"
    " WHERE NOT EXISTS (SELECT 1 FROM matrix_settled s WHERE s.txn_id = o.txn_id)"
    "   AND o.created_ms > $1::bigint - 86400000 ORDER BY o.id LIMIT $2::int";

static uint64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- which events are commands --------------------------------------------------- */
typedef struct word_probe {
  const char *word;
  size_t len;
  int found;
} word_probe;

static void probe_word(void *ud, const tally_command_doc *doc) {
  word_probe *p = ud;
  if (strlen(doc->word) == p->len && !strncasecmp(doc->word, p->word, p->len)) p->found = 1;
}

static const char *str_of(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static int id_ok(const char *s) { return s && s[0] && strlen(s) <= TD_MX_ID_BYTES_MAX && !strchr(s, ' '); }

/* 1 when ev is a command for tally (filled into c), 0 when it needs no record. */
static int command_of(td_mx *m, json_t *ev, td_mx_cmd *c) {
  const td_config *cfg = &m->d->cfg;
  const char *type = str_of(ev, "type"), *sender = str_of(ev, "sender"), *room = str_of(ev, "room_id"),
             *id = str_of(ev, "event_id");
  json_t *content = json_object_get(ev, "content");
  if (type && !strcmp(type, "m.room.tombstone") && json_is_object(content)) {
    /* A room upgrade (CS "Room Upgrades", m.room.tombstone, state_key ""):
     * the engine moves the room's settings and running event to the
     * replacement (ROOM MOVE, said by the tombstone's sender, whose power
     * level allowed it). A command like any other: recorded, applied once. */
    const char *to = str_of(content, "replacement_room"), *key = str_of(ev, "state_key");
    if (!key || key[0] || !id_ok(to) || !id_ok(sender) || !id_ok(room) || !id_ok(id) || !strcmp(to, room)) return 0;
    memset(c, 0, sizeof *c);
    snprintf(c->event_id, sizeof c->event_id, "%s", id);
    snprintf(c->room, sizeof c->room, "%s", room);
    snprintf(c->sender, sizeof c->sender, "%s", sender);
    snprintf(c->text, sizeof c->text, "ROOM MOVE %s", to);
    c->tombstone = 1;
    return 1;
  }
  if (!type || strcmp(type, "m.room.message") || json_object_get(ev, "state_key") || !json_is_object(content))
    return 0;
  if (!id_ok(sender) || !id_ok(room) || !id_ok(id)) return 0;
  if (!strcmp(sender, m->bot_id)) return 0; /* our own echo */
  const char *msgtype = str_of(content, "msgtype"), *body = str_of(content, "body");
  if (!msgtype || strcmp(msgtype, "m.text") || !body) return 0; /* m.notice and the rest */
  json_t *rel = json_object_get(content, "m.relates_to");
  const char *rel_type = json_is_object(rel) ? str_of(rel, "rel_type") : NULL;
  if (rel_type && !strcmp(rel_type, "m.replace")) return 0; /* an edit */
  json_t *unsig = json_object_get(ev, "unsigned"), *age = json_is_object(unsig) ? json_object_get(unsig, "age") : NULL;
  json_t *ts = json_object_get(ev, "origin_server_ts");
  uint64_t max_ms = (uint64_t)cfg->matrix_event_age_max_s * 1000;
  if (json_is_integer(age) && json_integer_value(age) > 0 && (uint64_t)json_integer_value(age) > max_ms) return 0;
  if (!json_is_integer(age) && json_is_integer(ts) && json_integer_value(ts) > 0 &&
      (uint64_t)json_integer_value(ts) + max_ms < wall_ms())
    return 0;
  if (body[0] != '!') return 0;
  size_t wl = strcspn(body + 1, " ");
  word_probe p = {body + 1, wl, 0};
  if (wl) tally_commands_describe(probe_word, &p);
  /* In a room an unknown !word is someone else's (another bot's) command;
   * in the bot's DM it can only be meant for tally: the engine answers it
   * (unknown command) rather than leave the sender without an answer. */
  if (!p.found && (!wl || !td_mx_rs_is_dm(m, td_mx_rs_get(m, room, 0)))) return 0;
  memset(c, 0, sizeof *c);
  /* Said in a thread (CS "Threading": rel_type m.thread, event_id the
   * root): a threaded answer joins that thread (threads do not nest). */
  const char *root = rel_type && !strcmp(rel_type, "m.thread") ? str_of(rel, "event_id") : NULL;
  if (id_ok(root)) snprintf(c->thread, sizeof c->thread, "%s", root);
  snprintf(c->event_id, sizeof c->event_id, "%s", id);
  snprintf(c->room, sizeof c->room, "%s", room);
  snprintf(c->sender, sizeof c->sender, "%s", sender);
  size_t len = strlen(body + 1);
  c->too_long = len > TALLY_TEXT_BYTES_MAX;
  if (!c->too_long) {
    memcpy(c->text, body + 1, len + 1);
    for (size_t i = 0; i < wl; i++) c->text[i] = (char)toupper((unsigned char)c->text[i]);
  }
  return 1;
}

/* ---- the record, on the worker -------------------------------------------------------- */
static int pg_ready(td_mx *m, td_mx_job *j) {
  PGconn *pg = m->pg;
  if (pg && PQstatus(pg) != CONNECTION_OK) PQreset(pg);
  if (!pg) {
    pg = m->pg = PQconnectdb(m->d->cfg.engine.dsn);
    if (PQstatus(pg) == CONNECTION_OK) PQclear(PQexec(pg, "SET statement_timeout = 10000"));
  }
  if (PQstatus(pg) == CONNECTION_OK) return 1;
  snprintf(j->err, sizeof j->err, "connect: %s", PQerrorMessage(pg));
  return 0;
}

static int exec_ok(td_mx_job *j, PGresult *r, ExecStatusType want) {
  if (PQresultStatus(r) == want) return 1;
  snprintf(j->err, sizeof j->err, "%s", PQresultErrorMessage(r));
  PQclear(r);
  return 0;
}

static void outbox_work(td_mx *m, td_mx_job *j, const char *now) {
  const char *p[2] = {j->add_json, now};
  if (j->add_json) {
    PGresult *r = PQexecParams(m->pg, OUTBOX_ADD_SQL, 2, NULL, p, NULL, NULL, 0);
    if (!exec_ok(j, r, PGRES_COMMAND_OK)) return;
    PQclear(r);
  }
  if (j->settle_json) {
    p[0] = j->settle_json;
    PGresult *r = PQexecParams(m->pg, OUTBOX_SETTLE_SQL, 2, NULL, p, NULL, NULL, 0);
    if (!exec_ok(j, r, PGRES_COMMAND_OK)) return;
    PQclear(r);
  }
  j->ok = 1;
}

static void load_work(td_mx *m, td_mx_job *j, const char *now) {
  char limit[16];
  snprintf(limit, sizeof limit, "%d", TD_MX_OUT_MAX / 2);
  const char *p[2] = {now, limit};
  PGresult *r = PQexecParams(m->pg, OUTBOX_LOAD_SQL, 2, NULL, p, NULL, NULL, 0);
  if (!exec_ok(j, r, PGRES_TUPLES_OK)) return;
  j->loaded = json_array();
  for (int i = 0; i < PQntuples(r); i++)
    json_array_append_new(j->loaded, json_pack("[sss]", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)));
  PQclear(r);
  j->ok = 1;
}

static void job_work(uv_work_t *w) {
  td_mx_job *j = w->data;
  td_mx *m = j->m;
  if (!pg_ready(m, j)) return;
  PGconn *pg = m->pg;
  char now[24];
  snprintf(now, sizeof now, "%llu", (unsigned long long)wall_ms());
  if (j->kind == JOB_OUTBOX) {
    outbox_work(m, j, now);
    return;
  }
  if (j->kind == JOB_LOAD) {
    load_work(m, j, now);
    return;
  }
  const char *params[4] = {j->txn_id, m->boot, now, j->rows_json};
  PGresult *r = PQexecParams(pg, RECORD_SQL, 4, NULL, params, NULL, NULL, 0);
  if (!exec_ok(j, r, PGRES_TUPLES_OK)) return;
  int rows = PQntuples(r);
  for (int i = 0; i < rows; i++) {
    if (PQgetisnull(r, i, 0)) {
      j->inserted = atoi(PQgetvalue(r, i, 1));
      continue;
    }
    const char *id = PQgetvalue(r, i, 0);
    for (uint32_t k = 0; k < j->n; k++)
      if (!strcmp(j->cmds[k].event_id, id)) j->cmds[k].submit = 1;
  }
  PQclear(r);
  j->ok = 1;
}

static void job_free(td_mx_job *j) {
  free(j->add_json);
  free(j->settle_json);
  json_decref(j->loaded);
  json_decref(j->sides);
  free(j->cmds);
  free(j->rows_json);
  free(j);
}

static void job_done(uv_work_t *w, int status);
static void do_sides(td_mx *m, json_t *sides);

static void job_next(td_mx *m) {
  if (m->job_running || !m->jobs_head) return;
  td_mx_job *j = m->jobs_head;
  if (j->kind == JOB_OUTBOX) { /* takes every row queued until now */
    json_t *add = m->ob_add, *settle = m->ob_settle;
    j->add_json = json_array_size(add) ? json_dumps(add, JSON_COMPACT) : NULL;
    j->settle_json = json_array_size(settle) ? json_dumps(settle, JSON_COMPACT) : NULL;
    j->rows = (uint32_t)(json_array_size(add) + json_array_size(settle));
    json_array_clear(add);
    json_array_clear(settle);
    m->ob_queued = 0;
  }
  m->job_running = 1;
  j->work.data = j;
  if (uv_queue_work(m->d->loop, &j->work, job_work, job_done) != 0) {
    m->job_running = 0;
    td_log(TD_ERR, "matrix: cannot queue a record job");
  }
}

static void reply_keyed(td_mx *m, const char *room, const char *event_id, const char *salt, const char *key_text,
                        const char *text, const char *html);
#define reply_text(m, room, event_id, salt, text) reply_keyed(m, room, event_id, salt, text, text, NULL)

typedef struct pend {
  struct pend *next;
  td_mx_cmd c;
} pend;

static void submit_now(td_mx *m, td_mx_cmd *c);

/* A command goes to the engine once its room's roles, names and kind are
 * known (matrix_rooms.c asks the homeserver at the room's first command);
 * until then it waits, in order. */
static void open_dm(td_mx *m, const char *peer);
static void html_escape(const char *in, char *out, size_t cap);

static void submit(td_mx *m, td_mx_cmd *c) {
  if (!c->too_long && !td_mx_rs_ready(m, c->room)) {
    pend *p = m->pending_count < TD_MX_PENDING_MAX ? malloc(sizeof *p) : NULL;
    if (p) {
      p->c = *c;
      p->next = NULL;
      pend **tail = (pend **)&m->pending;
      while (*tail) tail = &(*tail)->next;
      *tail = p;
      m->pending_count++;
      return;
    }
    td_log(TD_WARN, "matrix: %s submitted before its room's state is known (TD_MX_PENDING_MAX)", c->event_id);
  }
  submit_now(m, c);
}

void td_mx_room_loaded(td_mx *m, const char *room) {
  pend **link = (pend **)&m->pending;
  while (*link) {
    pend *p = *link;
    if (strcmp(p->c.room, room)) {
      link = &p->next;
      continue;
    }
    *link = p->next;
    m->pending_count--;
    submit_now(m, &p->c);
    free(p);
  }
}

/* Is who one of list's ids (comma or space separated)? */
static int listed(const char *list, const char *who) {
  size_t wl = strlen(who);
  for (const char *p = list; *p;) {
    size_t n = strcspn(p, ", ");
    if (n == wl && !strncmp(p, who, n)) return 1;
    p += n;
    p += strspn(p, ", ");
  }
  return 0;
}

static void derived_txn(const char *event_id, const char *salt, const char *text, char out[48]);

static void on_redacted(td_mx *m, const char *queue, int status, const char *body, void *ud) {
  (void)m;
  (void)ud;
  if (status < 200 || status >= 300)
    td_log(TD_WARN, "matrix: a command line in %s not redacted (HTTP %d): %.200s", queue, status, body ? body : "");
}

/* ROOM SET redact=on: the command line is redacted (CS "Redactions": PUT
 * /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}, txnId from
 * the event, so a resubmit after a restart is the same request) when the
 * bot's power level reaches the room's redact level (or its
 * events["m.room.redaction"], when higher: matrix_rooms.c); else the room is told
 * once why not. Not m.room.tombstone (a state event is not a line). */
static void redact_line(td_mx *m, td_mx_rs *rs, const td_mx_cmd *c) {
  long long have = 0, need = 0;
  int told = 0;
  if (c->tombstone || !td_mx_rs_redact(m, rs, &have, &need, &told)) return;
  if (have < need) {
    if (told) return;
    char text[768], key[TD_MX_ID_BYTES_MAX + 64];
    snprintf(text, sizeof text,
             "tally cannot remove command lines here (ROOM SET redact=on): its power level (%lld) is below the "
             "level this room asks to redact (%lld): its redact, or events[m.room.redaction] when higher. Give %s "
             "level %lld, or say !room set redact=off.",
             have, need, m->bot_id, need);
    snprintf(key, sizeof key, "%s %lld/%lld", c->room, have, need); /* once per room and levels, in any process */
    reply_keyed(m, c->room, "", "redact-refused", key, text, NULL);
    return;
  }
  char txn[48], room_enc[3 * TD_MX_ID_BYTES_MAX + 1], ev_enc[3 * TD_MX_ID_BYTES_MAX + 1];
  char path[6 * TD_MX_ID_BYTES_MAX + 128];
  derived_txn(c->event_id, "redact", "", txn);
  td_mx_urlenc(c->room, room_enc, sizeof room_enc);
  td_mx_urlenc(c->event_id, ev_enc, sizeof ev_enc);
  snprintf(path, sizeof path, "/_matrix/client/v3/rooms/%s/redact/%s/%s", room_enc, ev_enc, txn);
  td_mx_request(m, c->room, "PUT", path, "{\"reason\":\"a tally command (this room removes them: ROOM SET redact=on)\"}",
                on_redacted, NULL);
}

static void submit_now(td_mx *m, td_mx_cmd *c) {
  td_daemon *d = m->d;
  if (c->too_long) {
    reply_text(m, c->room, c->event_id, "long", "that command is too long (at most 512 bytes); nothing was done");
    return;
  }
  /* "<room> <event> <sender>[ <thread root>]": none holds a space. */
  char origin[4 * (TD_MX_ID_BYTES_MAX + 1)];
  snprintf(origin, sizeof origin, "%s %s %s%s%s", c->room, c->event_id, c->sender, c->thread[0] ? " " : "", c->thread);
  uint32_t roles = listed(d->cfg.matrix_admins, c->sender) ? TALLY_ROLE_ADMIN : 0;
  /* The grant privilege (TALLY GRANT) as xmpp_grant_jids gives it on XMPP;
   * the engine still asks for ADMIN too. */
  if (listed(d->cfg.matrix_grant_ids, c->sender)) roles |= TALLY_ROLE_GRANT;
  /* Roles from the room's power levels; in a DM the command is private
   * (channel ""), as a private message is on IRC; the nick is the display
   * name, never the MXID (bridged MXIDs carry phone numbers). */
  td_mx_rs *rs = td_mx_rs_get(m, c->room, 0);
  int dm = td_mx_rs_is_dm(m, rs);
  /* An AS sees a room line after the room did: a quiz answer there is everyone's. */
  const char *hidden = dm ? NULL : td_room_line_refusal(c->room, c->text);
  if (hidden) {
    reply_text(m, c->room, c->event_id, "quiz", hidden);
    return;
  }
  if (!dm) roles |= td_mx_rs_roles(rs, c->sender);
  char nick[TD_MX_NAME_BYTES_MAX + 1];
  td_mx_rs_name(m, c->room, c->sender, strlen(c->sender), nick, sizeof nick);
  static uint64_t req_seq;
  tally_command cmd = {.size = sizeof cmd, .version = TALLY_COMMAND_VERSION, .req_id = ++req_seq,
                       .origin = origin, .account = c->sender, .nick = nick, .channel = dm ? "" : c->room,
                       .msg_id = c->event_id, .text = c->text, .roles = roles, .network = d->cfg.matrix_network};
  int rc = tally_engine_submit_command(d->engine, &cmd);
  if (rc == TALLY_OK) {
    m->events_submitted++;
    if (!dm) redact_line(m, rs, c);
    return;
  }
  td_log(TD_WARN, "matrix: %s from %s not submitted: %s", c->event_id, c->sender, tally_strerror(rc));
  reply_text(m, c->room, c->event_id, "busy", "tally is busy: nothing was done; send the command again in a moment");
}

static void job_push(td_mx *m, td_mx_job *j) {
  if (m->jobs_tail) m->jobs_tail->next = j;
  else m->jobs_head = j;
  m->jobs_tail = j;
  m->job_count++;
  job_next(m);
}

/* ---- the outbox --------------------------------------------------------------------- */
static void outbox_job(td_mx *m) {
  if (m->ob_queued) return;
  td_mx_job *j = calloc(1, sizeof *j);
  if (!j) {
    td_log(TD_ERR, "matrix: out of memory for an outbox job (rows wait for the next)");
    return;
  }
  j->m = m;
  j->kind = JOB_OUTBOX;
  m->ob_queued = 1;
  job_push(m, j);
}

void td_mx_outbox_add(td_mx *m, const char *txn_id, const char *room, const char *content) {
  if (!m->ob_add || json_array_append_new(m->ob_add, json_pack("[sss]", txn_id, room, content)) != 0)
    td_log(TD_ERR, "matrix: %s not written to the outbox (out of memory): not resent after a restart", txn_id);
  outbox_job(m);
}

void td_mx_outbox_settle(td_mx *m, const char *txn_id, int outcome) {
  if (!m->ob_settle || json_array_append_new(m->ob_settle, json_pack("[si]", txn_id, outcome)) != 0)
    td_log(TD_ERR, "matrix: %s not settled in the outbox (out of memory): may be resent after a restart", txn_id);
  outbox_job(m);
}

void td_mx_ready(td_daemon *d) {
  td_mx *m = d->mx;
  if (!m || m->loaded) return;
  td_mx_job *j = calloc(1, sizeof *j);
  if (!j) return;
  j->m = m;
  j->kind = JOB_LOAD;
  job_push(m, j);
  td_mx_rooms_start(m); /* the bot's m.direct: its DMs of earlier processes */
}

static void side_job_done(td_mx *m, td_mx_job *j) {
  if (j->kind == JOB_OUTBOX) {
    if (!j->ok) {
      /* Kept for the next outbox job (started by the next row or settle, not
       * at once: a PostgreSQL that is down would make a tight loop). */
      td_log(TD_WARN, "matrix: %u outbox rows not written yet (%s): kept for the next write", j->rows, j->err);
      json_t *add = j->add_json ? json_loads(j->add_json, 0, NULL) : NULL;
      json_t *settle = j->settle_json ? json_loads(j->settle_json, 0, NULL) : NULL;
      if (add) json_array_extend(m->ob_add, add);
      if (settle) json_array_extend(m->ob_settle, settle);
      json_decref(add);
      json_decref(settle);
    }
    return;
  }
  if (!j->ok) { /* JOB_LOAD: tried again; transactions wait (503) meanwhile */
    td_log(TD_WARN, "matrix: the outbox did not load (%s); trying again", j->err);
    td_mx_job *again = calloc(1, sizeof *again);
    if (again) {
      again->m = m;
      again->kind = JOB_LOAD;
      again->next = NULL;
      if (m->jobs_tail) m->jobs_tail->next = again;
      else m->jobs_head = again;
      m->jobs_tail = again;
      m->job_count++;
    }
    return;
  }
  size_t n = json_array_size(j->loaded);
  for (size_t i = 0; i < n; i++) {
    json_t *row = json_array_get(j->loaded, i);
    const char *txn = json_string_value(json_array_get(row, 0)), *room = json_string_value(json_array_get(row, 1));
    const char *content = json_string_value(json_array_get(row, 2));
    if (room[0] == '@') td_mx_dm_loaded(m, room, txn, content); /* a line for a DM not made yet: send_private */
    else td_mx_send_content(m, room, txn, content, 0);
  }
  m->loaded = 1;
  td_log(n ? TD_INFO : TD_DEBUG, "matrix: %zu messages an earlier tallyd left unposted are queued again", n);
}

static void job_done(uv_work_t *w, int status) {
  (void)status;
  td_mx_job *j = w->data;
  td_mx *m = j->m;
  m->job_running = 0;
  m->jobs_head = j->next;
  if (!m->jobs_head) m->jobs_tail = NULL;
  m->job_count--;
  if (j->kind != JOB_TXN) {
    side_job_done(m, j);
    job_free(j);
    job_next(m);
    return;
  }
#ifdef TALLY_TEST_FAULTS
  /* A test build's crash point (never in the plain build): the process dies
   * after the record committed and before the 200 and the submit, as a
   * SIGKILL there would (tests/e2e/test_matrix_as.py). */
  const char *crash = getenv("TALLYD_TEST_CRASH");
  if (j->ok && j->n && crash && !strcmp(crash, "matrix-after-record")) {
    td_log(TD_WARN, "matrix: TALLYD_TEST_CRASH: exiting after the record of %s, before its 200", j->txn_id);
    _exit(9);
  }
#endif
  if (!j->ok) {
    td_log(TD_WARN, "matrix: transaction %s not recorded (the homeserver will retry): %s", j->txn_id, j->err);
    td_mx_answer(m, j->req, 500, "{\"errcode\":\"M_UNKNOWN\",\"error\":\"not recorded; retry\"}");
  } else {
    /* Recorded: acknowledged first, then the engine (never holds the 200). */
    td_mx_answer(m, j->req, 200, "{}");
    m->txns++;
    if (!j->inserted) m->txn_replays++;
    uint32_t subs = 0;
    for (uint32_t k = 0; k < j->n; k++)
      if (j->cmds[k].submit) {
        submit(m, &j->cmds[k]);
        subs++;
      }
    do_sides(m, j->sides);
    td_log(TD_DEBUG, "matrix: transaction %s%s: %u commands, %u submitted", j->txn_id,
           j->inserted ? "" : " (sent again)", j->n, subs);
  }
  job_free(j);
  job_next(m);
}

/* Is server (the part after ':' of an id) one whose invites are taken? */
static int invite_server_ok(const td_config *cfg, const char *id) {
  const char *server = strchr(id, ':');
  if (!server) return 0;
  server++;
  const char *list = cfg->matrix_invite_servers[0] ? cfg->matrix_invite_servers : cfg->matrix_server_name;
  size_t sl = strlen(server);
  for (const char *p = list; *p;) {
    size_t n = strcspn(p, ", ");
    if (n == sl && !strncmp(p, server, n)) return 1;
    p += n;
    p += strspn(p, ", ");
  }
  return 0;
}

/* Events that are not commands but ask for an action after the 200: an
 * invite of the bot (AS API: the homeserver pushes it to the AS; joined
 * when the room and the inviter are on an allowed server), and encryption
 * (m.room.encryption state, m.room.encrypted events: an AS cannot read
 * them, MSC3202 not being merged, so the room is told once). */
static void side_of(td_mx *m, json_t *ev, json_t *sides) {
  const char *type = str_of(ev, "type"), *room = str_of(ev, "room_id"), *sender = str_of(ev, "sender");
  if (!type || !id_ok(room)) return;
  json_t *content = json_object_get(ev, "content");
  if (!strcmp(type, "m.room.member")) {
    const char *key = str_of(ev, "state_key"), *ms = json_is_object(content) ? str_of(content, "membership") : NULL;
    if (!key || strcmp(key, m->bot_id) || !ms || strcmp(ms, "invite")) return;
    if (!id_ok(sender) || !invite_server_ok(&m->d->cfg, room) || !invite_server_ok(&m->d->cfg, sender)) {
      td_log(TD_INFO, "matrix: invite to %s by %s not accepted (matrix_invite_servers)", room, sender ? sender : "?");
      return;
    }
    json_array_append_new(sides, json_pack("[ss]", "join", room));
  } else if (!strcmp(type, "m.room.tombstone") && json_is_object(content)) {
    /* CS "Room Upgrades": the bot follows to the replacement room when it
     * is on an allowed server, as an invite would be (the room's settings
     * and running event follow through ROOM MOVE: command_of). */
    const char *to = str_of(content, "replacement_room"), *key = str_of(ev, "state_key");
    if (!key || key[0] || !id_ok(to)) return;
    if (!invite_server_ok(&m->d->cfg, to)) {
      td_log(TD_INFO, "matrix: %s was replaced by %s, not on an allowed server (matrix_invite_servers): not joined",
             room, to);
      return;
    }
    json_array_append_new(sides, json_pack("[ss]", "join", to));
  } else if (!strcmp(type, "m.room.encrypted") || (!strcmp(type, "m.room.encryption") && json_object_get(ev, "state_key"))) {
    json_array_append_new(sides, json_pack("[ss]", "encrypted", room));
  }
}

static void tell_encrypted(td_mx *m, const char *room) {
  for (uint32_t i = 0; i < m->told_count; i++)
    if (!strcmp(m->told[i], room)) return;
  if (m->told && m->told_count < TD_MX_TOLD_ROOMS_MAX) snprintf(m->told[m->told_count++], TD_MX_ID_BYTES_MAX + 1, "%s", room);
  /* Keyed by the room alone: said once per room, in any process. */
  reply_keyed(m, room, "", "encrypted", room,
              "tally cannot read this room: it is encrypted, and a Matrix application service cannot decrypt "
              "(MSC3202 is not part of the spec yet). Use tally in an unencrypted room.", NULL);
}

static void do_sides(td_mx *m, json_t *sides) {
  size_t n = json_array_size(sides);
  for (size_t i = 0; i < n; i++) {
    json_t *s = json_array_get(sides, i);
    const char *what = json_string_value(json_array_get(s, 0)), *room = json_string_value(json_array_get(s, 1));
    if (!strcmp(what, "join")) {
      td_log(TD_INFO, "matrix: invited to %s: joining", room);
      td_mx_join(m, room);
    } else {
      tell_encrypted(m, room);
    }
  }
}

void td_mx_txn_received(td_mx *m, td_mx_req *r, const char *txn_id, const char *body, size_t len) {
  if (!m->d->engine_ready || !m->loaded) { /* answers of earlier processes go first */
    td_mx_answer(m, r, 503, "{\"errcode\":\"M_UNKNOWN\",\"error\":\"tally is starting; retry\"}");
    return;
  }
  json_error_t je;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    td_mx_answer(m, r, 400, "{\"errcode\":\"M_NOT_JSON\",\"error\":\"the body is not JSON\"}");
    return;
  }
  json_t *events = json_is_object(root) ? json_object_get(root, "events") : NULL;
  if (!json_is_array(events)) {
    json_decref(root);
    td_mx_answer(m, r, 400, "{\"errcode\":\"M_BAD_JSON\",\"error\":\"no events array\"}");
    return;
  }
  size_t count = json_array_size(events);
  if (count > TD_MX_EVENTS_PER_TXN_MAX || m->job_count >= TD_MX_JOBS_MAX) {
    json_decref(root);
    if (count > TD_MX_EVENTS_PER_TXN_MAX)
      td_mx_answer(m, r, 413, "{\"errcode\":\"M_TOO_LARGE\",\"error\":\"too many events in one transaction\"}");
    else
      td_mx_answer(m, r, 503, "{\"errcode\":\"M_UNKNOWN\",\"error\":\"busy; retry\"}");
    return;
  }
  td_mx_job *j = calloc(1, sizeof *j);
  j->cmds = count ? calloc(count, sizeof *j->cmds) : NULL;
  json_t *rows = json_array();
  if (j) j->sides = json_array();
  if (!j || (count && !j->cmds) || !rows || !j->sides) {
    if (j) job_free(j);
    json_decref(rows);
    json_decref(root);
    td_mx_answer(m, r, 503, "{\"errcode\":\"M_UNKNOWN\",\"error\":\"out of memory; retry\"}");
    return;
  }
  for (size_t i = 0; i < count; i++) {
    td_mx_cmd *c = &j->cmds[j->n];
    if (json_is_object(json_array_get(events, i))) td_mx_rs_event(m, json_array_get(events, i));
    /* Invites, encryption, room upgrades: acted on after the 200 (a
     * command event is never one of those; a tombstone is both). */
    side_of(m, json_array_get(events, i), j->sides);
    if (!command_of(m, json_array_get(events, i), c)) {
      m->events_ignored++;
      continue;
    }
    int dup = 0;
    for (uint32_t k = 0; k < j->n && !dup; k++) dup = !strcmp(j->cmds[k].event_id, c->event_id);
    if (dup) continue; /* the same event twice in one transaction: once */
    json_array_append_new(rows, json_pack("[sss]", c->event_id, c->room, c->sender));
    j->n++;
  }
  json_decref(root);
  j->rows_json = json_dumps(rows, JSON_COMPACT);
  json_decref(rows);
  j->m = m;
  j->req = r;
  snprintf(j->txn_id, sizeof j->txn_id, "%s", txn_id);
  job_push(m, j);
}

/* ---- effects -> messages ---------------------------------------------------------------- */
static void hex40(const uint8_t *h, char *out) {
  static const char x[] = "0123456789abcdef";
  for (int i = 0; i < 20; i++) {
    out[2 * i] = x[h[i] >> 4];
    out[2 * i + 1] = x[h[i] & 15];
  }
  out[40] = 0;
}

/* txnId of an answer to event_id: the same answer to the same event is the
 * same txnId, in this process and the next. */
static void derived_txn(const char *event_id, const char *salt, const char *text, char out[48]) {
  char in[TD_MX_ID_BYTES_MAX + 64 + 4 * TALLY_TEXT_BYTES_MAX];
  int n = snprintf(in, sizeof in, "%s%c%s%c%s", event_id, 0, salt, 0, text);
  uint8_t h[32];
  SHA256((const uint8_t *)in, n > 0 && (size_t)n < sizeof in ? (size_t)n : sizeof in - 1, h);
  memcpy(out, "tly", 3);
  hex40(h, out + 3);
}

static void html_escape(const char *in, char *out, size_t cap) {
  size_t o = 0;
  for (; *in && o + 7 < cap; in++) {
    const char *rep = *in == '<' ? "&lt;" : *in == '>' ? "&gt;" : *in == '&' ? "&amp;" : *in == '"' ? "&quot;" : NULL;
    if (rep) {
      memcpy(out + o, rep, strlen(rep));
      o += strlen(rep);
    } else {
      out[o++] = *in;
    }
  }
  out[o] = 0;
}

/* Posts text in room as a reply to event_id; the txnId derives from
 * (event_id, salt, key_text). */
static void reply_keyed(td_mx *m, const char *room, const char *event_id, const char *salt, const char *key_text,
                        const char *text, const char *html) {
  char txn[48], escaped[HTML_BYTES_MAX];
  derived_txn(event_id, salt, key_text, txn);
  if (!html) {
    html_escape(text, escaped, sizeof escaped);
    html = escaped;
  }
  td_mx_send(m, room, txn, text, html, event_id);
}

/* Appends src[0..n) to out (cap), HTML-escaped when html. */
static void put(char *out, size_t cap, size_t *at, const char *src, size_t n, int html) {
  char piece[HTML_BYTES_MAX];
  char raw[TALLY_TEXT_BYTES_MAX + 512];
  if (n >= sizeof raw) n = sizeof raw - 1;
  memcpy(raw, src, n);
  raw[n] = 0;
  if (html) html_escape(raw, piece, sizeof piece);
  const char *p = html ? piece : raw;
  size_t len = strlen(p);
  if (*at + len >= cap) len = cap - *at - 1;
  memcpy(out + *at, p, len);
  *at += len;
  out[*at] = 0;
}

/* The effect's text as Matrix users read it: each command the engine names
 * (TALLY_ARG_COMMAND, "CONFIRM k3x") as it is typed here ("!confirm k3x";
 * <code> in HTML), then the hint's phrase. Text only, an older effect, or
 * arguments that do not parse: the text as it is. */
static void render(td_mx *m, const char *room, const tally_effect *e, const char *hint, char *plain, size_t pcap,
                   char *html, size_t hcap) {
  const char *text = e->text ? e->text : "";
  size_t pa = 0, ha = 0, at = 0, n = 0;
  plain[0] = html[0] = 0;
  tally_effect_arg args[TALLY_EFFECT_ARGS_MAX];
  int spans = TALLY_HAS_FIELD(e, tally_effect, args) && e->version >= 3 && e->msg && e->args && e->args[0] &&
              tally_effect_args_parse(text, e->args, args, TALLY_EFFECT_ARGS_MAX, &n) == TALLY_OK;
  for (size_t i = 0; spans && i < n; i++) {
    if ((args[i].kind != TALLY_ARG_COMMAND && args[i].kind != TALLY_ARG_ACCOUNT) || args[i].start < at) continue;
    put(plain, pcap, &pa, text + at, args[i].start - at, 0);
    put(html, hcap, &ha, text + at, args[i].start - at, 1);
    if (args[i].kind == TALLY_ARG_ACCOUNT) {
      /* A Matrix account is named by display name, never by MXID (as
       * xmpp.c names occupants by nick); other networks' names as they are. */
      const char *a = text + args[i].start;
      size_t len = args[i].len;
      if (len > 7 && !strncmp(a, "matrix:", 7)) a += 7, len -= 7;
      char name[TD_MX_NAME_BYTES_MAX + 1];
      if (len && a[0] == '@') td_mx_rs_name(m, room, a, len, name, sizeof name);
      else snprintf(name, sizeof name, "%.*s", (int)len, a);
      put(plain, pcap, &pa, name, strlen(name), 0);
      put(html, hcap, &ha, name, strlen(name), 1);
      at = args[i].start + args[i].len;
      continue;
    }
    char cmd[TALLY_TEXT_BYTES_MAX + 2] = "!";
    size_t len = args[i].len < TALLY_TEXT_BYTES_MAX ? args[i].len : TALLY_TEXT_BYTES_MAX;
    memcpy(cmd + 1, text + args[i].start, len);
    cmd[len + 1] = 0;
    for (char *c = cmd + 1; *c && *c != ' '; c++) *c = (char)tolower((unsigned char)*c);
    put(plain, pcap, &pa, cmd, strlen(cmd), 0);
    put(html, hcap, &ha, "<code>", 6, 0);
    put(html, hcap, &ha, cmd, strlen(cmd), 1);
    put(html, hcap, &ha, "</code>", 7, 0);
    at = args[i].start + args[i].len;
  }
  put(plain, pcap, &pa, text + at, strlen(text + at), 0);
  put(html, hcap, &ha, text + at, strlen(text + at), 1);
  put(plain, pcap, &pa, hint, strlen(hint), 0);
  put(html, hcap, &ha, hint, strlen(hint), 1);
}

/* Matrix's words for what a refusal's hint asks to explain (enum tally_hint). */
static const char *hint_phrase(td_mx *m, const tally_effect *e, const char *sender, char *buf, size_t cap) {
  if (!TALLY_HAS_FIELD(e, tally_effect, hint)) return "";
  switch (e->hint) {
  case TALLY_HINT_SEND_PRIVATELY: {
    /* The DM is named: the one the bot has with the sender, or the one it
     * makes now (createRoom; the sender gets an invite). */
    const char *dm = sender ? td_mx_dm_of(m, sender) : NULL;
    if (dm) snprintf(buf, cap, " (send it in your direct message with %s, room %s: this room is public)", m->bot_id, dm);
    else if (sender && (open_dm(m, sender), json_object_get(m->dm_making, sender)))
      snprintf(buf, cap, " (send it in a direct message with %s: it has invited you to one; this room is public)",
               m->bot_id);
    else snprintf(buf, cap, " (send it to %s in a direct message: this room is public)", m->bot_id);
    return buf;
  }
  case TALLY_HINT_ADMIN_ROLE: return "; tally's admins on Matrix are set by tallyd's matrix_admins";
  case TALLY_HINT_HOST_ROLE:
    return " (on Matrix: members whose power level is at least the room's state_default, or the host_level a "
           "host set with !room set)";
  case TALLY_HINT_GRANT_PRIVILEGE: return " (the grant privilege is given with `tally grant`)";
  case TALLY_HINT_ALREADY_SAID: return " (an AS cannot take a message back; a moderator can redact it)";
  default: return "";
  }
}

/* Asks for a DM with peer once (matrix_rooms.c); td_mx_dm_made follows. */
static void open_dm(td_mx *m, const char *peer) {
  if (!m->dm_making || json_object_get(m->dm_making, peer) || strlen(peer) > TD_MX_ID_BYTES_MAX) return;
  if (json_object_size(m->direct) + json_object_size(m->dm_making) >= TD_MX_DMS_MAX) {
    td_log(TD_WARN, "matrix: no DM made for %s: the bot has TD_MX_DMS_MAX (%d) already", peer, TD_MX_DMS_MAX);
    return;
  }
  json_object_set_new(m->dm_making, peer, json_true());
  td_mx_dm_create(m, peer);
}

static void dm_flush(td_mx *m, const char *peer, const char *room);

void td_mx_dm_made(td_mx *m, const char *peer, const char *room) {
  json_object_del(m->dm_making, peer);
  /* The first line of a DM says what it is for; keyed by the room, so said once. */
  if (room)
    reply_keyed(m, room, "", "dm", room,
                "This is your direct message with tally: what you send here is private. Commands that must not be "
                "said in a room (SHIP, DELIVERY, LINK) work here, as does every other command.", NULL);
  dm_flush(m, peer, room); /* the lines that waited for it, after its first line */
}

/* A line for a room (not a DM) names people by display name, never by
 * MXID (bridged MXIDs carry phone numbers; the engine's text-only answers
 * name the account: "Wallet @bob:server: ..."): each user id in s (cap),
 * "@localpart:server" with the server's characters of a hostname and port,
 * becomes td_mx_rs_name's; the bot's own id stays (it is no person's).
 * escape: s is HTML (the name is escaped). */
static int server_char(char c) { return isalnum((unsigned char)c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']'; }

static void names_for_room(td_mx *m, const char *room, char *s, size_t cap, int escape) {
  for (char *p = strchr(s, '@'); p; p = strchr(p, '@')) {
    char *q = p + 1;
    while (*q && !isspace((unsigned char)*q) && *q != ':' && *q != '@' && *q != '<' && *q != '&') q++;
    char *colon = q;
    if (*colon != ':' || colon == p + 1) {
      p = q;
      continue;
    }
    q = colon + 1;
    while (server_char(*q)) q++;
    while (q > colon + 1 && (q[-1] == ':' || q[-1] == '.')) q--; /* "Wallet @bob:server: ..." */
    size_t idl = (size_t)(q - p);
    if (q == colon + 1 || idl > TD_MX_ID_BYTES_MAX || (strlen(m->bot_id) == idl && !strncmp(p, m->bot_id, idl))) {
      p = q;
      continue;
    }
    char name[TD_MX_NAME_BYTES_MAX + 1], hname[6 * TD_MX_NAME_BYTES_MAX + 1];
    td_mx_rs_name(m, room, p, idl, name, sizeof name);
    const char *put_name = name;
    if (escape) {
      html_escape(name, hname, sizeof hname);
      put_name = hname;
    }
    size_t nl = strlen(put_name), tail = strlen(q);
    if ((size_t)(p - s) + nl + tail + 1 > cap) return;
    memmove(p + nl, q, tail + 1);
    memcpy(p, put_name, nl);
    p += nl;
  }
}

int td_mx_owns(const td_daemon *d, const char *network) {
  return d->mx && d->cfg.matrix_listen[0] && network && !strcmp(network, d->cfg.matrix_network);
}

/* ---- lines for someone's DM ------------------------------------------------------------ */
typedef struct dm_line {
  struct dm_line *next;
  char peer[TD_MX_ID_BYTES_MAX + 1], txn[48];
  char *content; /* the m.notice's JSON */
} dm_line;

static void dm_line_free(dm_line *l) {
  free(l->content);
  free(l);
}

/* Queues content for peer's DM (not made yet), in order; 0 when full or
 * out of memory (the caller says so). */
static int dm_wait_push(td_mx *m, const char *peer, const char *txn, const char *content) {
  dm_line *l = m->dm_wait_count < TD_MX_DM_WAIT_MAX ? calloc(1, sizeof *l) : NULL;
  if (l) l->content = strdup(content);
  if (!l || !l->content) {
    if (l) dm_line_free(l);
    return 0;
  }
  snprintf(l->peer, sizeof l->peer, "%s", peer);
  snprintf(l->txn, sizeof l->txn, "%s", txn);
  dm_line **tail = (dm_line **)&m->dm_wait;
  while (*tail) tail = &(*tail)->next;
  *tail = l;
  m->dm_wait_count++;
  return 1;
}

/* Sends a line to peer's DM with the bot: now when the DM is known, else
 * once the bot has made it (createRoom), in order, at most
 * TD_MX_DM_WAIT_MAX lines waiting (all peers). A waiting line is in the
 * outbox at once, under the peer's MXID in place of a room id (a room id
 * starts with '!', a user id with '@': sql/014's room_id needs no new
 * column): a tallyd stopped before the DM exists posts it after its
 * restart, in the DM it finds in m.direct or makes then (td_mx_dm_loaded),
 * with the same txnId. */
static void send_private(td_mx *m, const char *peer, const char *txn, const char *body, const char *html) {
  const char *dm = td_mx_dm_of(m, peer);
  if (dm) {
    td_mx_send(m, dm, txn, body, html, NULL);
    return;
  }
  char *content = td_mx_notice_json(body, html, NULL);
  if (!content || !dm_wait_push(m, peer, txn, content)) {
    free(content);
    m->dropped++;
    td_log(TD_WARN, "matrix: a line for %s's DM dropped (TD_MX_DM_WAIT_MAX lines wait, or out of memory)", peer);
    return;
  }
  td_mx_outbox_add(m, txn, peer, content);
  free(content);
  if (!m->direct_read) return; /* the DMs of earlier processes first: td_mx_dm_direct_read */
  open_dm(m, peer);
  if (!json_object_get(m->dm_making, peer)) td_mx_dm_made(m, peer, NULL); /* none can be made: dropped there */
}

/* A line the outbox kept for peer's DM (an earlier process queued it while
 * the DM was being made): queued again the same way. */
void td_mx_dm_loaded(td_mx *m, const char *peer, const char *txn, const char *content) {
  const char *dm = m->direct_read ? td_mx_dm_of(m, peer) : NULL;
  if (dm) {
    td_mx_send_content(m, dm, txn, content, 0);
    return;
  }
  if (!dm_wait_push(m, peer, txn, content)) {
    m->dropped++;
    td_mx_outbox_settle(m, txn, 2);
    td_log(TD_WARN, "matrix: a line an earlier tallyd kept for %s's DM dropped (TD_MX_DM_WAIT_MAX lines wait)", peer);
    return;
  }
  if (!m->direct_read) return;
  open_dm(m, peer);
  if (!json_object_get(m->dm_making, peer)) td_mx_dm_made(m, peer, NULL);
}

/* The bot's m.direct is read (matrix_rooms.c; or could not be): lines that
 * waited for it go to the DMs it names, or their DMs are made now. */
void td_mx_dm_direct_read(td_mx *m) {
  m->direct_read = 1;
  /* Each round settles one peer: its lines go (flushed or dropped) or its
   * DM is being made (then its lines are passed over), so this ends. */
  for (;;) {
    dm_line *l = m->dm_wait;
    while (l && json_object_get(m->dm_making, l->peer)) l = l->next;
    if (!l) return;
    char peer[TD_MX_ID_BYTES_MAX + 1], room[TD_MX_ID_BYTES_MAX + 1];
    snprintf(peer, sizeof peer, "%s", l->peer);
    const char *dm = td_mx_dm_of(m, peer);
    if (dm) {
      snprintf(room, sizeof room, "%s", dm);
      dm_flush(m, peer, room);
      continue;
    }
    open_dm(m, peer);
    if (!json_object_get(m->dm_making, peer)) td_mx_dm_made(m, peer, NULL); /* none can be made: dropped */
  }
}

/* The DM with peer is made (room) or could not be (NULL): its lines go
 * (their outbox rows settled by txnId when posted, or as dropped). */
static void dm_flush(td_mx *m, const char *peer, const char *room) {
  dm_line **link = (dm_line **)&m->dm_wait;
  while (*link) {
    dm_line *l = *link;
    if (strcmp(l->peer, peer)) {
      link = &l->next;
      continue;
    }
    *link = l->next;
    m->dm_wait_count--;
    if (room) td_mx_send_content(m, room, l->txn, l->content, 0);
    else if (m->closing) {
      td_log(TD_INFO, "matrix: a line for %s's DM kept in the outbox for the next start", peer);
    } else {
      m->dropped++;
      td_mx_outbox_settle(m, l->txn, 2);
      td_log(TD_WARN, "matrix: a line for %s dropped: no DM could be made", peer);
    }
    dm_line_free(l);
  }
}

/* MODERATORS (a held tip message): each moderator of the room (power
 * level >= its redact level) gets the line in their DM; never the room. */
typedef struct mod_line {
  const char *room, *key, *plain, *html;
  uint32_t told;
} mod_line;

static void tell_moderator(td_mx *m, const char *mxid, void *ud) {
  mod_line *l = ud;
  char txn[48];
  derived_txn(mxid, "moderators", l->key, txn); /* once per moderator and line, in any process */
  send_private(m, mxid, txn, l->plain, l->html);
  l->told++;
}

static void moderators_effect(td_mx *m, const tally_effect *e, char *plain, size_t pcap, char *html, size_t hcap) {
  const char *room = e->channel ? e->channel : "";
  td_mx_rs *rs = room[0] ? td_mx_rs_get(m, room, 0) : NULL;
  render(m, room, e, "", plain, pcap, html, hcap);
  names_for_room(m, room, plain, pcap, 0);
  names_for_room(m, room, html, hcap, 1);
  /* Where it is from, and where HIDE is said: the room's id (names of
   * rooms are not kept). */
  size_t pl = strlen(plain), hl = strlen(html);
  char esc[6 * TD_MX_ID_BYTES_MAX + 1];
  html_escape(room, esc, sizeof esc);
  snprintf(plain + pl, pcap - pl, " (in room %s: say !hide there)", room);
  snprintf(html + hl, hcap - hl, " (in room %s: say <code>!hide</code> there)", esc);
  char key[TALLY_TEXT_BYTES_MAX + 64];
  snprintf(key, sizeof key, "%s %llu %s", room, (unsigned long long)e->receipt_id, e->text ? e->text : "");
  mod_line l = {room, key, plain, html, 0};
  td_mx_rs_each_moderator(m, rs, tell_moderator, &l);
  if (!l.told)
    td_log(TD_WARN, "matrix: a line for the moderators of %s dropped: none known (never said in the room)", room);
}

void td_mx_effect(td_daemon *d, const tally_effect *e) {
  td_mx *m = d->mx;
  char hb[2 * TD_MX_ID_BYTES_MAX + 160];
  char text[TALLY_TEXT_BYTES_MAX + 512], plain[TALLY_TEXT_BYTES_MAX + 512], html[HTML_BYTES_MAX];
  if (e->kind == TALLY_EFFECT_REPLY) {
    char room[TD_MX_ID_BYTES_MAX + 1] = "", event[TD_MX_ID_BYTES_MAX + 1] = "", sender[TD_MX_ID_BYTES_MAX + 1] = "";
    const char *o = e->origin ? e->origin : "";
    size_t a = strcspn(o, " ");
    const char *ev = o[a] ? o + a + 1 : "";
    size_t b = strcspn(ev, " ");
    const char *snd = ev[b] ? ev + b + 1 : "";
    size_t c = strcspn(snd, " ");
    const char *root = snd[c] ? snd + c + 1 : ""; /* the thread the command was said in */
    if (!a || a > TD_MX_ID_BYTES_MAX || !b || b > TD_MX_ID_BYTES_MAX || c > TD_MX_ID_BYTES_MAX ||
        strlen(root) > TD_MX_ID_BYTES_MAX) {
      td_log(TD_WARN, "matrix: reply to an origin that is not ours (\"%.80s\"); dropped", o);
      return;
    }
    memcpy(room, o, a);
    memcpy(event, ev, b);
    memcpy(sender, snd, c);
    const char *hint = hint_phrase(m, e, sender[0] ? sender : NULL, hb, sizeof hb);
    /* The txnId derives from the engine's text and the hint without the DM's
     * room id: the same answer after a restart is the same txnId. */
    snprintf(text, sizeof text, "%s%s", e->text ? e->text : "",
             e->hint == TALLY_HINT_SEND_PRIVATELY && TALLY_HAS_FIELD(e, tally_effect, hint) ? " (dm)" : hint);
    render(m, room, e, hint, plain, sizeof plain, html, sizeof html);
    /* A receipt's answer is keyed by its receipt alone: the engine's answer
     * to the same event submitted again ("Already done: receipt N", after a
     * restart) gets the first answer's txnId, so the homeserver keeps one. */
    char salt[48], txn[48];
    if (e->receipt_id) snprintf(salt, sizeof salt, "receipt %llu", (unsigned long long)e->receipt_id);
    else snprintf(salt, sizeof salt, "r%d", e->code);
    derived_txn(event, salt, e->receipt_id ? "" : text, txn);
    td_mx_rs *rs = td_mx_rs_get(m, room, 0);
    int in_dm = td_mx_rs_is_dm(m, rs), mode = in_dm ? TD_MX_REPLY_ROOM : td_mx_rs_reply(rs);
    if (mode == TD_MX_REPLY_DM && sender[0]) {
      /* ROOM SET reply=dm: the asker reads it in their DM, as the engine
       * wrote it (the reader owns the account). */
      send_private(m, sender, txn, plain, html);
      return;
    }
    if (!in_dm) {
      names_for_room(m, room, plain, sizeof plain, 0);
      names_for_room(m, room, html, sizeof html, 1);
    }
    if (mode == TD_MX_REPLY_THREAD) td_mx_send_thread(m, room, txn, plain, html, event, root[0] ? root : event);
    else td_mx_send(m, room, txn, plain, html, event);
    return;
  }
  if (e->kind == TALLY_EFFECT_ROOM) { /* ROOM SET: this room's settings */
    if (e->channel && e->channel[0]) td_mx_rs_settings(m, e->channel, e->text ? e->text : "");
    return;
  }
  if (e->kind == TALLY_EFFECT_MODERATORS) {
    moderators_effect(m, e, plain, sizeof plain, html, sizeof html);
    return;
  }
  const char *hint = hint_phrase(m, e, NULL, hb, sizeof hb);
  render(m, e->channel, e, hint, plain, sizeof plain, html, sizeof html);
  if (e->kind == TALLY_EFFECT_TOPIC && e->channel && e->channel[0]) {
    /* A paid highlight shown as a topic (highlight_topic=1; TD_MX_CAPS has
     * TALLY_CAP_PIN_TOPIC): Matrix pins it instead of replacing the room's
     * topic. The line is posted, then its event id is added to the room's
     * m.room.pinned_events (matrix_rooms.c) when the bot's power level
     * allows that state event; else it is posted plainly and the log says
     * why. TOPIC "": our pin comes out, the room's own pins stay. */
    if (!e->text || !e->text[0]) {
      td_mx_rs_unpin(m, e->channel);
      return;
    }
    names_for_room(m, e->channel, plain, sizeof plain, 0);
    names_for_room(m, e->channel, html, sizeof html, 1);
    char txn[48], why[256];
    snprintf(txn, sizeof txn, "tlp%s.%llu", m->boot, (unsigned long long)++m->anon_seq);
    int pin = td_mx_rs_pin_begin(m, e->channel, why, sizeof why);
    if (!pin) td_log(TD_INFO, "matrix: a highlight in %s posted plainly, not pinned: %s", e->channel, why);
    td_mx_send_done(m, e->channel, txn, plain, html, NULL, pin ? td_mx_rs_pin_posted : NULL);
    return;
  }
  if (e->kind == TALLY_EFFECT_ANNOUNCE && e->channel && e->channel[0]) {
    names_for_room(m, e->channel, plain, sizeof plain, 0);
    names_for_room(m, e->channel, html, sizeof html, 1);
    /* No event to derive from: a per-process id (see the plan: the outbox). */
    char txn[48];
    snprintf(txn, sizeof txn, "tla%s.%llu", m->boot, (unsigned long long)++m->anon_seq);
    td_mx_send(m, e->channel, txn, plain, html, NULL);
    return;
  }
  if (e->kind == TALLY_EFFECT_ROSTER) {
    /* An event starts in a room: who is there now (membership events and
     * joined_members were reported to tallyd's presence merge). */
    td_presence_replay(d->presence, d->cfg.matrix_network, e->channel ? e->channel : "", td_presence_submit, d);
    return;
  }
  td_log(TD_DEBUG, "matrix: effect kind %u for %s not rendered on Matrix yet", e->kind, e->channel ? e->channel : "");
}

/* ---- start and stop ---------------------------------------------------------------------- */
/* Reads the top-level scalars of the registration YAML that tallyd needs
 * (as written by `tally matrix-registration`: `key: "value"` lines). */
static int read_registration(td_mx *m, const char *path, char *err, size_t err_len) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, err_len, "matrix_registration %s: cannot read it", path);
    return TALLY_EIO;
  }
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    if (line[0] == ' ' || line[0] == '-' || line[0] == '#') continue; /* nested or comment */
    char *colon = strchr(line, ':');
    if (!colon) continue;
    *colon = 0;
    char *v = colon + 1;
    v += strspn(v, " \t");
    v[strcspn(v, "\r\n")] = 0;
    size_t vl = strlen(v);
    if (vl >= 2 && (v[0] == '"' || v[0] == '\'') && v[vl - 1] == v[0]) {
      v[vl - 1] = 0;
      v++;
    }
    char *dst = !strcmp(line, "as_token") ? m->as_token : !strcmp(line, "hs_token") ? m->hs_token
              : !strcmp(line, "sender_localpart") ? m->localpart : NULL;
    if (dst) snprintf(dst, TD_MX_TOKEN_BYTES_MAX + 1, "%s", v);
  }
  fclose(f);
  if (strlen(m->hs_token) < 16 || strlen(m->as_token) < 16 || !m->localpart[0]) {
    snprintf(err, err_len, "matrix_registration %s: as_token, hs_token (16 bytes at least) and sender_localpart "
                           "are needed (write one with `tally matrix-registration`)", path);
    return TALLY_ECONFIG;
  }
  return TALLY_OK;
}

int td_mx_start(td_daemon *d, char *err, size_t err_len) {
  const td_config *cfg = &d->cfg;
  if (!cfg->matrix_listen[0]) return TALLY_OK;
  td_mx *m = calloc(1, sizeof *m);
  if (!m) {
    snprintf(err, err_len, "matrix: out of memory");
    return TALLY_ENOMEM;
  }
  m->d = d;
  d->mx = m;
  int rc = read_registration(m, cfg->matrix_registration, err, err_len);
  if (rc != TALLY_OK) return rc;
  if (!strcmp(cfg->matrix_network, cfg->engine.network)) {
    snprintf(err, err_len, "matrix_network \"%s\" is also the engine's network: its effects would all go to "
                           "Matrix (give Matrix a network of its own)", cfg->matrix_network);
    return TALLY_ECONFIG;
  }
  if (!cfg->matrix_server_name[0]) {
    snprintf(err, err_len, "matrix_server_name: needed with matrix_listen (the homeserver's name, as in @bot:NAME)");
    return TALLY_ECONFIG;
  }
  int bl = snprintf(m->bot_id, sizeof m->bot_id, "@%.100s:%.150s", m->localpart, cfg->matrix_server_name);
  if (bl < 0 || strlen(m->localpart) > 100 || strlen(cfg->matrix_server_name) > 150) {
    snprintf(err, err_len, "matrix: sender_localpart or matrix_server_name too long for a user id");
    return TALLY_ECONFIG;
  }
  SHA256((const uint8_t *)m->hs_token, strlen(m->hs_token), m->hs_token_hash);
  uint8_t b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    snprintf(err, err_len, "matrix: no random bytes for the boot id");
    return TALLY_EIO;
  }
  for (int i = 0; i < 16; i++) snprintf(m->boot + 2 * i, 3, "%02x", b[i]);
  m->ob_add = json_array();
  m->ob_settle = json_array();
  m->told = calloc(TD_MX_TOLD_ROOMS_MAX, sizeof *m->told);
  m->direct = json_object();
  m->dm_making = json_object();
  if ((rc = td_mx_send_init(m, err, err_len)) != TALLY_OK) return rc;
  if ((rc = td_mx_http_start(m, err, err_len)) != TALLY_OK) return rc;
  td_log(TD_INFO, "matrix: bot %s, network \"%s\", homeserver %s, caps %u (cannot intercept; pins highlights; "
                  "moderators by DM)", m->bot_id, cfg->matrix_network, cfg->matrix_homeserver, (unsigned)TD_MX_CAPS);
  return TALLY_OK;
}

void td_mx_close(td_daemon *d) {
  td_mx *m = d->mx;
  if (!m) return;
  m->closing = 1;
  td_mx_http_close(m);
  td_mx_send_close(m);
}

void td_mx_stop(td_daemon *d) {
  td_mx *m = d->mx;
  if (!m) return;
  td_log(TD_INFO, "matrix: %llu transactions (%llu sent again), %llu commands submitted, %llu events ignored, "
                  "%llu messages sent, %u unsent (kept by no one: see docs/findings/matrix.md)",
         (unsigned long long)m->txns, (unsigned long long)m->txn_replays, (unsigned long long)m->events_submitted,
         (unsigned long long)m->events_ignored, (unsigned long long)m->sent, td_mx_send_pending(m));
  td_mx_http_free(m);
  td_mx_send_free(m);
  while (m->jobs_head) {
    td_mx_job *j = m->jobs_head;
    m->jobs_head = j->next;
    job_free(j);
  }
  if (m->pg) PQfinish(m->pg);
  json_decref(m->ob_add);
  json_decref(m->ob_settle);
  free(m->told);
  td_mx_rooms_free(m);
  json_decref(m->dm_making);
  while (m->pending) {
    pend *p = m->pending;
    m->pending = p->next;
    free(p);
  }
  while (m->dm_wait) {
    dm_line *l = m->dm_wait;
    m->dm_wait = l->next;
    dm_line_free(l);
  }
  free(m);
  d->mx = NULL;
}
