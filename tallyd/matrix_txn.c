/* matrix_txn.c — a transaction in, its commands to the engine.
 *
 * A transaction (Application Service API, "Pushing events": PUT
 * /_matrix/app/v1/transactions/{txnId}) is parsed with jansson; each event
 * updates its room's state (matrix_rooms.c), and the commands among them
 * (matrix_filter.c) are recorded with the txnId by the worker
 * (matrix_record.c); the rest needs no record. Once recorded, the
 * homeserver is answered 200; then invites, room upgrades and encrypted
 * rooms are acted on, and the commands go to the engine.
 *
 * Commands go to the engine like every adapter's: identity = the sender's
 * MXID, network = matrix_network, msg_id = event id, channel = the room
 * ("" in the bot's DM). The 200 is never held back by the engine. Effects
 * come back through td_mx_effect (matrix_effect.c); the command's origin
 * is "<room> <event id> <sender>" (none of the three holds a space), so a
 * reply, also a deferred one, knows its room and event without a table. */
#include "matrix.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define reply_text(m, room, event_id, salt, text) td_mx_reply_keyed(m, room, event_id, salt, text, text, NULL)

typedef struct pend {
  struct pend *next;
  td_mx_cmd c;
} pend;

static void submit_now(td_mx *m, td_mx_cmd *c);

/* A command goes to the engine once its room's roles, names and kind are
 * known (matrix_rooms.c asks the homeserver at the room's first command);
 * until then it waits, in order. */
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
    td_mx_reply_keyed(m, c->room, "", "redact-refused", key, text, NULL);
    return;
  }
  char txn[48], room_enc[3 * TD_MX_ID_BYTES_MAX + 1], ev_enc[3 * TD_MX_ID_BYTES_MAX + 1];
  char path[6 * TD_MX_ID_BYTES_MAX + 128];
  td_mx_derived_txn(c->event_id, "redact", "", txn);
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
  uint32_t roles = td_mx_listed(d->cfg.matrix_admins, c->sender) ? TALLY_ROLE_ADMIN : 0;
  /* The grant privilege (TALLY GRANT) as xmpp_grant_jids gives it on XMPP;
   * the engine still asks for ADMIN too. */
  if (td_mx_listed(d->cfg.matrix_grant_ids, c->sender)) roles |= TALLY_ROLE_GRANT;
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

static void tell_encrypted(td_mx *m, const char *room) {
  for (uint32_t i = 0; i < m->told_count; i++)
    if (!strcmp(m->told[i], room)) return;
  if (m->told && m->told_count < TD_MX_TOLD_ROOMS_MAX) snprintf(m->told[m->told_count++], TD_MX_ID_BYTES_MAX + 1, "%s", room);
  /* Keyed by the room alone: said once per room, in any process. */
  td_mx_reply_keyed(m, room, "", "encrypted", room,
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
    if (j) td_mx_job_free(j);
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
    td_mx_side_of(m, json_array_get(events, i), j->sides);
    if (!td_mx_command_of(m, json_array_get(events, i), c)) {
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
  td_mx_job_push(m, j);
}

/* The record's job ended (matrix_record.c): the 200 (or a 500), then the
 * side actions, and the commands it says to submit. */
void td_mx_txn_recorded(td_mx *m, td_mx_job *j) {
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
}

void td_mx_pending_free(td_mx *m) {
  while (m->pending) {
    pend *p = m->pending;
    m->pending = p->next;
    free(p);
  }
}
