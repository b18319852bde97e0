/* matrix.h — tallyd's Matrix Application Service (an adapter inside tallyd;
 * the engine knows no Matrix). Its files, all on tallyd's loop thread but
 * for the PostgreSQL worker:
 *   matrix_start.c   the registration file, the boot id; start and stop;
 *   matrix_http.c    the AS's HTTP server (libmicrohttpd in external epoll
 *                    mode, driven by the libuv loop): routes, hs_token check,
 *                    bodies;
 *   matrix_txn.c     a transaction: its record, the 200, then its commands to
 *                    the engine (waiting for their room's state);
 *   matrix_filter.c  which events are commands (not echoes, m.notice, edits,
 *                    old events) and which ask for an action after the 200
 *                    (invites, room upgrades, encrypted rooms);
 *   matrix_record.c  the worker thread: the durable record
 *                    (sql/014_matrix.sql), the outbox's writes and its load;
 *   matrix_effect.c  engine effects -> outgoing messages (plain and HTML,
 *                    derived txnIds, names never MXIDs);
 *   matrix_outbox.c  what waits to be posted: outbox rows, the outbox of
 *                    earlier processes, lines waiting for a DM;
 *   matrix_rooms.c   rooms' members, names, power levels, settings; DMs;
 *   matrix_send.c    the Client-Server API client: per-room ordered sends
 *                    with derived txnIds, 429 retry_after_ms, bounded backoff.
 *   matrix_tls.c     HTTPS for that client (matrix_homeserver https://).
 * docs/MATRIX.md is the admin's guide; docs/findings/matrix.md the plan. */
#ifndef TALLYD_MATRIX_H
#define TALLYD_MATRIX_H

#include "tallyd.h"

enum {
  TD_MX_TOKEN_BYTES_MAX = 255,     /* as_token, hs_token */
  TD_MX_ID_BYTES_MAX = 255,        /* user ids, room ids, event ids (spec: 255 bytes) */
  TD_MX_TXN_ID_BYTES_MAX = 255,    /* a homeserver's txnId we accept */
  TD_MX_EVENTS_PER_TXN_MAX = 1000, /* Synapse sends at most 100; more is refused (M_TOO_LARGE) */
  TD_MX_JOBS_MAX = 256,            /* transactions waiting for their record; more: 503, retried */
  TD_MX_OUT_MAX = 65536,           /* outgoing messages queued in all rooms; more: dropped, logged */
  TD_MX_ROOMS_MAX = 4096,          /* rooms with an outgoing queue */
  TD_MX_SENDS_INFLIGHT_MAX = 32,   /* HTTP requests to the homeserver at once (one per room) */
  TD_MX_SEND_TIMEOUT_MS = 15000,   /* one request to the homeserver */
  TD_MX_IDLE_MS = 30000,           /* a kept connection with no request closes after this */
  TD_MX_IDLE_CONNS_MAX = 64,       /* kept connections without a request (all rooms); more: closed */
  TD_MX_BACKOFF_MIN_MS = 200,      /* first retry after a 5xx or a lost connection */
  TD_MX_BACKOFF_MAX_MS = 30000,    /* backoff doubles up to this */
  TD_MX_ATTEMPTS_MAX = 12,         /* then the message is dropped (logged): bounded */
  TD_MX_RETRY_AFTER_MAX_MS = 600000, /* a 429's retry_after_ms is capped to this */
  TD_MX_RESPONSE_BYTES_MAX = 65536,  /* a homeserver's answer we read */
  TD_MX_TOLD_ROOMS_MAX = 1024,
  TD_MX_MEMBERS_MAX = 20000,       /* members (and names) kept per room; more: not kept (no name, no presence) */
  TD_MX_NAME_BYTES_MAX = 255,      /* a display name kept (longer: the masked localpart instead) */
  TD_MX_DMS_MAX = 10000,           /* DMs the bot makes (m.direct is written whole each time); more: the hint only */
  TD_MX_STATE_RETRY_MS = 5000,     /* a room's state that could not be read is asked again after this */
  TD_MX_PENDING_MAX = 4096,        /* commands waiting for their room's state; more: submitted without roles */
  TD_MX_DM_WAIT_MAX = 4096,        /* lines waiting for a DM being made (all peers); more: dropped, logged */
  TD_MX_PRESENCE_SLOT = 0xFFFFFF00u, /* the AS's slot in tallyd's presence merge (conn slots count from 1) */     /* encrypted rooms told so this process (more: told again, deduped by txnId) */
};

/* What the AS can do, as a frame adapter's HELLO would say it (tally/frames.h;
 * logged at start): no interception (an AS only reacts), TOPIC as a pinned
 * event (m.room.pinned_events), MODERATORS by DM. */
enum { TD_MX_CAPS = TALLY_CAP_PIN_TOPIC | TALLY_CAP_HOLD_FOR_MODERATORS };

/* A room's reply setting (ROOM SET reply=, tally.h TALLY_EFFECT_ROOM). */
enum { TD_MX_REPLY_ROOM = 0, TD_MX_REPLY_THREAD = 1, TD_MX_REPLY_DM = 2 };

typedef struct td_mx td_mx;
typedef struct td_mx_job td_mx_job;
typedef struct td_mx_room td_mx_room;
typedef struct td_mx_rs td_mx_rs;

struct td_mx {
  td_daemon *d;
  struct MHD_Daemon *mhd;
  uv_poll_t poll;
  uv_timer_t timer;
  int handles_on, closing;
  uint16_t port;                    /* bound port (logged) */
  char as_token[TD_MX_TOKEN_BYTES_MAX + 1], hs_token[TD_MX_TOKEN_BYTES_MAX + 1];
  uint8_t hs_token_hash[32];        /* compared in constant time */
  char localpart[TD_MX_ID_BYTES_MAX + 1];
  char bot_id[TD_MX_ID_BYTES_MAX + 1]; /* @localpart:server_name */
  char boot[33];                    /* this process's id in matrix_transactions.boot */
  /* jobs waiting for the worker (matrix_record.c): FIFO, one on the worker */
  td_mx_job *jobs_head, *jobs_tail;
  uint32_t job_count;
  int job_running;
  void *pg;                         /* PGconn of the worker (only it touches it) */
  /* outgoing (matrix_send.c) */
  char hs_host[256], hs_port[8];
  td_mx_room *rooms;
  uint32_t room_count, out_count, inflight;
  uint64_t anon_seq;                /* txnIds of effects with no event */
  uint64_t sent, dropped;
  /* the outbox (matrix_outbox.c): rows to write with the next outbox job */
  void *ob_add, *ob_settle;         /* json_t arrays */
  int ob_queued;                    /* an outbox job waits in the FIFO */
  int loaded;                       /* the outbox of earlier processes is queued again */
  char (*told)[TD_MX_ID_BYTES_MAX + 1]; /* encrypted rooms already told */
  uint32_t told_count;
  /* rooms' state (matrix_rooms.c) */
  td_mx_rs **rs;
  uint32_t rs_count;
  void *direct;                     /* json_t: the bot's m.direct {peer: [room...]} */
  void *dm_making;                  /* json_t: {peer: true} while its createRoom is asked */
  void *pending;                    /* td_mx_cmd copies waiting for their room's state (matrix_txn.c) */
  uint32_t pending_count;
  /* counters, for logs */
  uint64_t txns, txn_replays, events_submitted, events_ignored;
  /* lines for someone's DM while it is being made (matrix_outbox.c), in order */
  void *dm_wait;
  uint32_t dm_wait_count;
  int direct_read; /* the bot's m.direct was answered (or given up): DMs are made from then on */
  SSL_CTX *hs_tls; /* matrix_homeserver is https:// (matrix_tls.c); NULL for http:// */
};

/* Config (config.c keys matrix_*): copied into td_config's tail. */
/* Starts the AS when cfg.matrix_listen is set: reads the registration file,
 * listens. TALLY_OK (also when off) or a code with err. */
int td_mx_start(td_daemon *d, char *err, size_t err_len);
/* Closes its loop handles (tallyd is finishing; no new requests or sends). */
void td_mx_close(td_daemon *d);
/* Frees everything (after the loop ended), logging what was left unsent. */
void td_mx_stop(td_daemon *d);
/* Is network the AS's? (effects of it go to td_mx_effect) */
int td_mx_owns(const td_daemon *d, const char *network);
/* An engine effect of the matrix network (matrix_effect.c). */
void td_mx_effect(td_daemon *d, const tally_effect *e);

/* ---- inside the adapter ------------------------------------------------------ */
struct MHD_Connection;
typedef struct td_mx_req td_mx_req;

/* matrix_txn.c: a transaction body, authenticated and read whole. Answers
 * now (400...) or suspends the request and answers once recorded. */
void td_mx_txn_received(td_mx *m, td_mx_req *r, const char *txn_id, const char *body, size_t len);
/* matrix_http.c: listens on matrix_listen; closes the loop handles; frees. */
int td_mx_http_start(td_mx *m, char *err, size_t err_len);
void td_mx_http_close(td_mx *m);
void td_mx_http_free(td_mx *m);
/* matrix_http.c: answers a (suspended or not) request and resumes it. */
void td_mx_answer(td_mx *m, td_mx_req *r, unsigned status, const char *json);
/* matrix_send.c: queues one message for room; txn_id is stable across
 * retries (and across a replayed command). */
void td_mx_send(td_mx *m, const char *room, const char *txn_id, const char *body, const char *html,
                const char *reply_to);
/* matrix_send.c: td_mx_send, and done (ud NULL) gets
 * the homeserver's final answer ({"event_id"} on 200; -1 not queued). Not
 * told when the message is left to the outbox for the next process. */
typedef void (*td_mx_done_fn)(td_mx *m, const char *queue, int status, const char *body, void *ud);
void td_mx_send_done(td_mx *m, const char *room, const char *txn_id, const char *body, const char *html,
                     const char *reply_to, td_mx_done_fn done);
char *td_mx_notice_json(const char *body, const char *html, const char *reply_to); /* caller frees */
/* matrix_send.c: td_mx_send in a thread: root is the thread's root event
 * (reply_to itself when the command started none). */
void td_mx_send_thread(td_mx *m, const char *room, const char *txn_id, const char *body, const char *html,
                       const char *reply_to, const char *root);
/* matrix_send.c: queues content (the event's JSON) as is; persist: also
 * written to the outbox (not for messages loaded from it). */
void td_mx_send_content(td_mx *m, const char *room, const char *txn_id, const char *content, int persist);
void td_mx_send_content_done(td_mx *m, const char *room, const char *txn_id, const char *content, int persist,
                             td_mx_done_fn done);
/* matrix_outbox.c: outbox rows, written by the worker with the next job. */
void td_mx_outbox_add(td_mx *m, const char *txn_id, const char *room, const char *content);
void td_mx_outbox_settle(td_mx *m, const char *txn_id, int outcome);
/* The engine is ready (route.c): the outbox of earlier processes is loaded. */
void td_mx_ready(td_daemon *d);
int td_mx_send_init(td_mx *m, char *err, size_t err_len);
void td_mx_join(td_mx *m, const char *room);
/* matrix_send.c: another Client-Server request, in queue's FIFO (a room id,
 * or any key); done (may be NULL) gets the final status (-1 not queued, 0
 * no answer after the retries) and body. path is already URL-encoded. */
void td_mx_request(td_mx *m, const char *queue, const char *method, const char *path, const char *json,
                   td_mx_done_fn done, void *ud);
void td_mx_urlenc(const char *in, char *out, size_t cap);

/* matrix_rooms.c: rooms' members, names, power levels; the bot's DMs. */
struct json_t;
td_mx_rs *td_mx_rs_get(td_mx *m, const char *room, int create);
/* A state event of a transaction (m.room.member, m.room.power_levels). */
void td_mx_rs_event(td_mx *m, struct json_t *ev);
/* 1 when room's state is known; else asks for it (once) and returns 0:
 * td_mx_room_loaded(room) follows. */
int td_mx_rs_ready(td_mx *m, const char *room);
void td_mx_room_loaded(td_mx *m, const char *room); /* matrix_txn.c: its commands go */
int td_mx_rs_is_dm(td_mx *m, const td_mx_rs *r);
uint32_t td_mx_rs_roles(const td_mx_rs *r, const char *who);
/* How room names mxid[0..len): the display name (this room's, else any
 * room's), else the localpart with digit runs hidden. Never the MXID. */
const char *td_mx_rs_name(td_mx *m, const char *room, const char *mxid, size_t len, char *buf, size_t cap);
/* The bot's latest DM with peer, or NULL. */
const char *td_mx_dm_of(td_mx *m, const char *peer);
/* createRoom for a DM with peer; td_mx_dm_made(peer, room or NULL) follows. */
void td_mx_dm_create(td_mx *m, const char *peer);
void td_mx_dm_made(td_mx *m, const char *peer, const char *room); /* matrix_outbox.c */
/* matrix_outbox.c: the outbox's line for peer's DM not made yet (room_id =
 * the peer's MXID); and the bot's m.direct has been read. */
void td_mx_dm_loaded(td_mx *m, const char *peer, const char *txn, const char *content);
void td_mx_dm_direct_read(td_mx *m);
void td_mx_rooms_start(td_mx *m);
/* A join's answer (td_mx_done_fn): state read before it is read again. */
void td_mx_rs_joined(td_mx *m, const char *queue, int status, const char *body, void *ud);
void td_mx_rooms_free(td_mx *m);
/* ROOM SET (TALLY_EFFECT_ROOM): room's settings from the effect's text. */
void td_mx_rs_settings(td_mx *m, const char *room, const char *text);
int td_mx_rs_reply(const td_mx_rs *r); /* TD_MX_REPLY_*; a room never set: ROOM */
/* 1 when redact=on in r: *bot_level, *needed (the room's redact level, or
 * its events["m.room.redaction"] when higher),
 * *told (the room heard already that the bot may not; marked now when so). */
int td_mx_rs_redact(td_mx *m, td_mx_rs *r, long long *bot_level, long long *needed, int *told);
/* fn for each joined member (not the bot) at or above r's redact level
 * (events["m.room.redaction"] when higher). */
void td_mx_rs_each_moderator(td_mx *m, const td_mx_rs *r, void (*fn)(td_mx *m, const char *mxid, void *ud), void *ud);
/* TALLY_EFFECT_TOPIC as a pinned event (CS "m.room.pinned_events"): 1
 * when the bot's power level allows it in room (then the highlight is
 * live: td_mx_rs_pin_posted pins it); 0 with why (cap) when not. */
int td_mx_rs_pin_begin(td_mx *m, const char *room, char *why, size_t cap);
/* td_mx_done_fn of the highlight's line: its event id is pinned, unless
 * taken down meanwhile. */
void td_mx_rs_pin_posted(td_mx *m, const char *room, int status, const char *body, void *ud);
/* TOPIC "": our pinned line comes out of the room's pinned events. */
void td_mx_rs_unpin(td_mx *m, const char *room);
void td_mx_send_close(td_mx *m);
void td_mx_send_free(td_mx *m);
uint32_t td_mx_send_pending(const td_mx *m);

/* ---- between the transaction's files ------------------------------------------- */
/* A command event of a transaction (matrix_filter.c fills it). */
typedef struct td_mx_cmd {
  char event_id[TD_MX_ID_BYTES_MAX + 1], room[TD_MX_ID_BYTES_MAX + 1], sender[TD_MX_ID_BYTES_MAX + 1];
  char text[TALLY_TEXT_BYTES_MAX + 1];
  char thread[TD_MX_ID_BYTES_MAX + 1]; /* the thread the command was said in (its root), or "" */
  int too_long; /* the line did not fit TALLY_TEXT_BYTES_MAX: recorded, answered here */
  int tombstone; /* an m.room.tombstone made into ROOM MOVE (no line to redact) */
  int submit;   /* set by the worker */
} td_mx_cmd;

/* A job of the worker (matrix_record.c); TD_MX_JOB_TXN is 0 (calloc). */
enum { TD_MX_JOB_TXN, TD_MX_JOB_OUTBOX, TD_MX_JOB_LOAD };

struct td_mx_job {
  td_mx_job *next;
  td_mx *m;
  int kind;
  char *add_json, *settle_json; /* TD_MX_JOB_OUTBOX: the rows, taken when it starts */
  struct json_t *loaded;        /* TD_MX_JOB_LOAD: [[txn, room, content], ...] */
  struct json_t *sides;         /* TD_MX_JOB_TXN: [["join"|"encrypted", room], ...], done after the 200 */
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

/* matrix_filter.c: 1 when ev is a command for tally (filled into c), 0
 * when it needs no record. */
int td_mx_command_of(td_mx *m, struct json_t *ev, td_mx_cmd *c);
/* matrix_filter.c: appends to sides what ev asks for after the 200. */
void td_mx_side_of(td_mx *m, struct json_t *ev, struct json_t *sides);
/* matrix_filter.c: is who one of list's ids (comma or space separated)? */
int td_mx_listed(const char *list, const char *who);
/* matrix_record.c: the wall clock (ms since the epoch), as the rows keep it. */
uint64_t td_mx_wall_ms(void);
/* matrix_record.c: queues j for the worker (started when it is free). */
void td_mx_job_push(td_mx *m, td_mx_job *j);
void td_mx_job_free(td_mx_job *j);
void td_mx_jobs_free(td_mx *m); /* the jobs never run, and the worker's connection */
/* matrix_txn.c: a transaction's record ended (j->ok or not): answered,
 * then its side actions and commands. */
void td_mx_txn_recorded(td_mx *m, td_mx_job *j);
void td_mx_pending_free(td_mx *m);
/* matrix_outbox.c: the rows of earlier processes, loaded: queued again;
 * then transactions are taken. */
void td_mx_outbox_loaded(td_mx *m, struct json_t *loaded);
/* matrix_outbox.c: a line for peer's DM, now or once it is made (in the
 * outbox meanwhile under the peer's MXID). */
void td_mx_send_private(td_mx *m, const char *peer, const char *txn, const char *body, const char *html);
/* matrix_outbox.c: asks for a DM with peer once; td_mx_dm_made follows. */
void td_mx_dm_open(td_mx *m, const char *peer);
void td_mx_dm_wait_free(td_mx *m);
/* matrix_effect.c: txnId of an answer to event_id: the same answer to the
 * same event is the same txnId, in this process and the next. */
void td_mx_derived_txn(const char *event_id, const char *salt, const char *text, char out[48]);
/* matrix_effect.c: posts text in room as a reply to event_id (html NULL:
 * the text escaped); the txnId derives from (event_id, salt, key_text). */
void td_mx_reply_keyed(td_mx *m, const char *room, const char *event_id, const char *salt, const char *key_text,
                       const char *text, const char *html);
/* matrix_tls.c: HTTPS to the homeserver. A client context (TLS 1.2+, the
 * certificate verified against matrix_homeserver_ca or the system store);
 * NULL with err. */
SSL_CTX *td_mx_tls_context(const td_config *cfg, char *err, size_t err_len);
/* A client session over memory BIOs that checks host (DNS name + SNI, or IP). */
SSL *td_mx_tls_new(SSL_CTX *ctx, const char *host);
/* Feeds bytes read from the socket: drives the handshake, then decrypts.
 * 0 handshake not done, 1 open (*plain: malloc'd plaintext, maybe none),
 * -1 refused or broken (err: why, e.g. the certificate's verdict). */
int td_mx_tls_feed(SSL *s, const char *in, size_t len, char **plain, size_t *plain_len, char *err,
                   size_t err_len);
int td_mx_tls_write(SSL *s, const char *plain, size_t len);
/* What OpenSSL has to send (malloc'd in *out), its length (0: nothing). */
size_t td_mx_tls_take(SSL *s, char **out);
/* SIGHUP (main.c): matrix_homeserver_ca is loaded again (a bad one
 * logged, the old kept); rooms waiting after a TLS failure retry at once. */
void td_mx_reload(td_daemon *d, const td_config *next);
/* matrix_send.c: takes ctx for new connections (kept ones keep theirs). */
void td_mx_send_tls_context(td_mx *m, SSL_CTX *ctx);

#endif
