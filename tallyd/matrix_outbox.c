/* matrix_outbox.c — what waits to be posted.
 *
 * Every message is written to the outbox (sql/014: matrix_outbox) when it
 * is queued, and settled there (matrix_settled) when the homeserver takes
 * it or it is given up (matrix_send.c says which); the rows are written by
 * the worker's next outbox job (matrix_record.c) without anyone waiting
 * for it. At the start, once the engine is ready, what earlier processes
 * left unsettled is loaded and posted again with its txnIds (transactions
 * wait, 503, until then).
 *
 * A line for someone's DM (a reply with ROOM SET reply=dm, a moderator's
 * held tip message) waits here, in order, while the bot reads its m.direct
 * or makes the DM (createRoom, matrix_rooms.c); it is in the outbox at
 * once, under the peer's MXID in place of a room id, so a tallyd stopped
 * before the DM exists posts it after its restart. */
#include "matrix.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void outbox_job(td_mx *m) {
  if (m->ob_queued) return;
  td_mx_job *j = calloc(1, sizeof *j);
  if (!j) {
    td_log(TD_ERR, "matrix: out of memory for an outbox job (rows wait for the next)");
    return;
  }
  j->m = m;
  j->kind = TD_MX_JOB_OUTBOX;
  m->ob_queued = 1;
  td_mx_job_push(m, j);
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
  j->kind = TD_MX_JOB_LOAD;
  td_mx_job_push(m, j);
  td_mx_rooms_start(m); /* the bot's m.direct: its DMs of earlier processes */
}

/* The rows an earlier process left unposted (matrix_record.c loaded
 * them): queued again, in order; transactions are taken from now on. */
void td_mx_outbox_loaded(td_mx *m, json_t *loaded) {
  size_t n = json_array_size(loaded);
  for (size_t i = 0; i < n; i++) {
    json_t *row = json_array_get(loaded, i);
    const char *txn = json_string_value(json_array_get(row, 0)), *room = json_string_value(json_array_get(row, 1));
    const char *content = json_string_value(json_array_get(row, 2));
    if (room[0] == '@') td_mx_dm_loaded(m, room, txn, content); /* a line for a DM not made yet: td_mx_send_private */
    else td_mx_send_content(m, room, txn, content, 0);
  }
  m->loaded = 1;
  td_log(n ? TD_INFO : TD_DEBUG, "matrix: %zu messages an earlier tallyd left unposted are queued again", n);
}

/* Asks for a DM with peer once (matrix_rooms.c); td_mx_dm_made follows. */
void td_mx_dm_open(td_mx *m, const char *peer) {
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
    td_mx_reply_keyed(m, room, "", "dm", room,
                      "This is your direct message with tally: what you send here is private. Commands that must "
                      "not be said in a room (SHIP, DELIVERY, LINK) work here, as does every other command.", NULL);
  dm_flush(m, peer, room); /* the lines that waited for it, after its first line */
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
void td_mx_send_private(td_mx *m, const char *peer, const char *txn, const char *body, const char *html) {
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
  td_mx_dm_open(m, peer);
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
  td_mx_dm_open(m, peer);
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
    td_mx_dm_open(m, peer);
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

void td_mx_dm_wait_free(td_mx *m) {
  while (m->dm_wait) {
    dm_line *l = m->dm_wait;
    m->dm_wait = l->next;
    dm_line_free(l);
  }
}
