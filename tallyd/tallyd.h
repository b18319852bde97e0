/* tallyd.h — the daemon's own declarations, shared by its files. tallyd is
 * one libtally engine serving many chat servers over sockets: it sees the
 * engine only through core/include (tally.h, tally/frames.h), like any host.
 *
 * Threads: everything here runs on the daemon's one libuv loop thread; the
 * engine runs its own thread behind tally_engine_submit/drain. Names are
 * td_ (internal to this program). docs/DAEMON.md is the design. */
#ifndef TALLYD_H
#define TALLYD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "tally.h"
#include "tally/frames.h"

#define TD_VERSION "tallyd 0.1"

enum {
  TD_NETWORKS_MAX = 32,         /* networks with a secret */
  TD_SECRET_BYTES_MAX = 1024,   /* one network's shared secret */
  TD_SECRET_BYTES_MIN = 16,     /* shorter secrets are refused: guessable */
  TD_PATH_BYTES_MAX = 1024,     /* a file or socket path */
  TD_READ_BYTES = 65536,        /* one read from a socket */
  TD_WRITE_WINDOW_BYTES = 65536, /* bytes written but not yet taken by the kernel, per connection */
  TD_UNIX_SNDBUF_BYTES = 2 * 1024 * 1024, /* SO_SNDBUF of an accepted unix connection (conn.c) */
  TD_SLOT_ID_HEX_MAX = 8,       /* a slot id in an origin: "<hex>~" */
  /* Names kept per pending command and per merged presence: 255 bytes fits
   * IRC accounts, Matrix ids and nearly every JID; a longer one is still
   * served (its command is submitted, its presence refused and logged) but
   * not kept, so these tables stay a few MiB instead of 5 KiB per entry. */
  TD_KEPT_NAME_BYTES_MAX = 255,
  TD_DRAIN_BATCH = 256,         /* effects taken from the engine per drain call */
  TD_STOP_FLUSH_MS = 3000,      /* at SIGTERM: how long to keep writing answers after the engine stopped */
  TD_LOG_BYTES_MAX = 1024,      /* one log line */
  TD_CONFIG_VALUES_MAX = 128,   /* engine keys in a config file */
  TD_XMPP_DOMAIN_BYTES_MAX = 1023, /* an XMPP domainpart (RFC 7622) */
  TD_XMPP_NICK_BYTES_MAX = 64,  /* the component's own nick in rooms (configured, short) */
  /* roles bit 31 marks the engine's in-process presence commands (docs/FRAMES.md:
   * "a host writing raw frames must never set it"): tallyd clears it. */
  TD_ROLE_RESERVED = (int)(1u << 31),
};

/* ---- log (main.c) ----------------------------------------------------------- */
enum td_level { TD_ERR = 3, TD_WARN = 4, TD_INFO = 6, TD_DEBUG = 7 };
__attribute__((format(printf, 2, 3))) void td_log(int level, const char *fmt, ...);
void td_log_syslog(int on);

/* ---- config (config.c) ------------------------------------------------------- */
typedef struct td_secret {
  char network[TALLY_FRAME_NETWORK_BYTES_MAX + 1];
  char path[TD_PATH_BYTES_MAX];
  uint8_t bytes[TD_SECRET_BYTES_MAX];
  size_t len;
} td_secret;

typedef struct td_config {
  char path[TD_PATH_BYTES_MAX]; /* the file it came from */
  char listen_unix[TD_PATH_BYTES_MAX];
  uint32_t unix_mode;
  char listen_tcp[TD_PATH_BYTES_MAX]; /* host:port, "" off */
  char tls_cert[TD_PATH_BYTES_MAX], tls_key[TD_PATH_BYTES_MAX], tls_client_ca[TD_PATH_BYTES_MAX];
  char server_id[TALLY_FRAME_INSTANCE_BYTES_MAX + 1];
  char state_dir[TD_PATH_BYTES_MAX];
  td_secret secrets[TD_NETWORKS_MAX];
  uint32_t secret_count;
  uint32_t conns_max, slots_max, slot_effects_max, slot_bytes_max, slot_linger_s;
  uint32_t busy_reserve, presence_max, hello_timeout_ms;
  /* The engine's part: keys tallyd does not know go to tally_config_set. */
  tally_config engine;
  char *values[TD_CONFIG_VALUES_MAX]; /* engine values, owned (engine.* points here) */
  uint32_t value_count;
  char signing_key[TD_PATH_BYTES_MAX]; /* default under state_dir */
  /* The XEP-0114 component (xmpp_*.c); xmpp_component "" is off. */
  char xmpp_component[TD_PATH_BYTES_MAX];                  /* IP:PORT of the server's component port */
  char xmpp_component_domain[TD_XMPP_DOMAIN_BYTES_MAX + 1]; /* e.g. shop.example.org */
  td_secret xmpp_secret;                                   /* path: xmpp_component_secret */
  char xmpp_network[TALLY_FRAME_NETWORK_BYTES_MAX + 1];
  char xmpp_rooms[TALLY_CONFIG_LINE_BYTES_MAX + 1];        /* room@conference.host,... */
  char xmpp_nick[TD_XMPP_NICK_BYTES_MAX + 1];              /* its nick in rooms */
  char xmpp_domains[TALLY_CONFIG_LINE_BYTES_MAX + 1];      /* user domains served; "" the parent domain */
  /* The Matrix Application Service (matrix.h), off unless matrix_listen is set. */
  char matrix_listen[TD_PATH_BYTES_MAX];       /* IPv4:PORT of the AS's HTTP server */
  char matrix_registration[TD_PATH_BYTES_MAX]; /* the registration YAML (tokens, localpart) */
  char matrix_homeserver[TD_PATH_BYTES_MAX];   /* http://HOST:PORT of the Client-Server API */
  char matrix_server_name[256];                /* the homeserver's name: @bot:NAME */
  char matrix_network[TALLY_FRAME_NETWORK_BYTES_MAX + 1];
  char matrix_admins[TD_PATH_BYTES_MAX];       /* MXIDs with the admin role, comma separated */
  uint32_t matrix_event_age_max_s, matrix_body_bytes_max;
  char matrix_invite_servers[TD_PATH_BYTES_MAX]; /* servers whose rooms' invites are accepted */
  char xmpp_grant_jids[TALLY_CONFIG_LINE_BYTES_MAX + 1];   /* bare JIDs with the grant privilege */
  char matrix_grant_ids[TD_PATH_BYTES_MAX];              /* MXIDs with the grant privilege, comma separated */
  char matrix_homeserver_ca[TD_PATH_BYTES_MAX]; /* PEM CAs for an https:// homeserver ("": the system store) */
} td_config;

/* Loads path into cfg (defaults first). TALLY_ECONFIG/EIO with err. */
int td_config_load(td_config *cfg, const char *path, char *err, size_t err_len);
void td_config_free(td_config *cfg);
/* Prints every key with its default and help (tallyd's, then the engine's). */
void td_config_help(FILE *out);
const td_secret *td_config_secret(const td_config *cfg, const char *network);

/* ---- TLS (tls.c) ----------------------------------------------------------------- */
/* A TLS 1.3-only server context from the files; NULL with err. */
SSL_CTX *td_tls_context(const td_config *cfg, char *err, size_t err_len);
struct td_conn;
typedef void (*td_plain_fn)(struct td_conn *c, const uint8_t *plain, size_t len);
int td_tls_begin(struct td_conn *c, SSL_CTX *ctx);
void td_tls_end(struct td_conn *c);
/* Feeds bytes read from the socket. Before the handshake is done it drives
 * it (and returns 1 the moment it completes, without reading on when plain is
 * NULL); after, it hands plaintext to plain. 0 more is needed, -1 error (err
 * says why: a bad certificate, not TLS 1.3...), -2 plain closed the conn. */
int td_tls_read(struct td_conn *c, const uint8_t *in, size_t len, td_plain_fn plain, char *err,
                size_t err_len);
/* Encrypts plaintext into the connection's out buffer. */
int td_tls_write(struct td_conn *c, const uint8_t *plain, size_t len);
/* OpenSSL's latest error as text (its queue cleared), for a log line. */
void td_tls_reason(char *out, size_t len);
/* SSL_CTX_new(method), or NULL with err "what: OpenSSL's reason". */
SSL_CTX *td_tls_ctx_new(const SSL_METHOD *method, const char *what, char *err, size_t err_len);

/* ---- connections (conn.c) ------------------------------------------------------ */
typedef struct td_slot td_slot;
typedef struct td_daemon td_daemon;

enum td_conn_state { TD_CONN_TLS, TD_CONN_HELLO, TD_CONN_LIVE, TD_CONN_CLOSING };

typedef struct td_conn {
  td_daemon *d;
  uv_tcp_t tcp; /* or a pipe: both are streams (a union would do; kept simple) */
  uv_pipe_t pipe;
  uv_stream_t *stream;
  int is_tls;
  SSL *ssl;
  BIO *rbio, *wbio;
  int state;
  uint64_t id;           /* for logs: connection number */
  char peer[96];         /* for logs */
  char challenge[TALLY_FRAME_HELLO_HEX_BYTES + 1];
  uint64_t opened_ms;
  td_slot *slot;         /* once welcomed */
  uint64_t sent_seq;     /* highest effect seq written to this connection */
  size_t inflight_bytes; /* written, write callback not yet run */
  tally_stream_reader reader;
  uint8_t *out;          /* bytes to write at the next flush */
  size_t out_len, out_cap;
  uint8_t *plain;        /* TLS: plaintext to encrypt at the next flush */
  size_t plain_len, plain_cap;
  int closing_after_write;
  int closed;
  struct td_conn *next;  /* the daemon's list */
  int pump_due;          /* effects were queued: write them before the loop next waits */
  uint64_t caps;         /* its HELLO's enum tally_cap bits */
} td_conn;

void td_conn_accepted(td_daemon *d, uv_stream_t *server, int is_tls);
/* Appends bytes as they go on the socket (after TLS) to the out buffer. */
void td_conn_out_raw(td_conn *c, const uint8_t *bytes, size_t len);
/* Writes every effect of its slot above sent_seq that fits the window. */
void td_conn_pump(td_conn *c);
/* Marks c to be pumped once, before the loop next waits for I/O
 * (td_conns_pump_due, from a uv_prepare): the effects of one engine drain
 * go out in one write (one TLS record run, one syscall), not one each. */
void td_conn_pump_soon(td_conn *c);
void td_conns_pump_due(td_daemon *d);
/* Closes now (buffered writes are dropped). */
void td_conn_close(td_conn *c, const char *why);
/* Sends a verdict HELLO_SERVER refusing with code and text, then closes. */
void td_conn_refuse(td_conn *c, int code, const char *text);
/* Closes every connection whose handshake is older than the limit. */
void td_conn_sweep(td_daemon *d, uint64_t now_ms);

/* ---- slots and routing (route.c) ---------------------------------------------- */
typedef struct td_entry {
  uint64_t seq;
  uint32_t len; /* bytes of data: the stream prefix and the frame */
  uint8_t data[];
} td_entry;

struct td_slot {
  int used;
  uint32_t id; /* unique in this process; "<id hex>~" prefixes origins */
  char network[TALLY_FRAME_NETWORK_BYTES_MAX + 1];
  char instance[TALLY_FRAME_INSTANCE_BYTES_MAX + 1];
  uint64_t next_seq;     /* seq the next effect gets */
  td_entry **ring;       /* unacknowledged effects, oldest first */
  uint32_t head, count, ring_cap; /* ring positions; ring_cap = slot_effects_max */
  size_t bytes;          /* bytes held by the ring */
  td_conn *conn;         /* live connection, or NULL */
  uint64_t away_since_ms;
  uint64_t dropped;      /* effects dropped, total (logged) */
  struct td_pending *pend; /* commands not answered yet (pending.c) */
  uint32_t pend_cap, pend_count;
  struct td_pending_names *pend_names; /* their names, pend_cap places (pending.c) */
  uint32_t *pend_free, pend_free_count;  /* free places of pend_names, a stack */
  struct td_xmpp *xmpp; /* set: an adapter inside tallyd (xmpp_*.c) takes its effects; no conn, no ring */
};

/* ---- unanswered commands (pending.c) ------------------------------------------ */
int td_pending_add(td_daemon *d, td_slot *s, uint64_t req_id, const char *origin, const char *channel);
/* A final answer to req_id was routed. */
void td_pending_done(td_slot *s, uint64_t req_id);
/* Answers every unanswered command with code and text (at stop). */
uint32_t td_pending_answer_all(td_daemon *d, td_slot *s, int code, const char *text);
void td_pending_free(td_slot *s);

/* Slot of (network, instance), created if absent (NULL when full). */
td_slot *td_slot_get(td_daemon *d, const char *network, const char *instance, uint64_t acked);
td_slot *td_slot_by_id(td_daemon *d, uint32_t id);
/* Drops acknowledged effects (<= seq). */
void td_slot_ack(td_slot *s, uint64_t seq);
/* Is the slot's out-queue past its bound for new commands? */
int td_slot_full(const td_daemon *d, const td_slot *s);

/* Appends an effect for the slot (numbered), writing it if live. */
void td_slot_push(td_daemon *d, td_slot *s, const tally_effect *e, const char *origin);
/* The oldest seq still held (0 when empty). */
uint64_t td_slot_first_seq(const td_slot *s);
const td_entry *td_slot_entry(const td_slot *s, uint64_t seq);
void td_slot_away(td_daemon *d, td_slot *s, uint64_t now_ms);
/* Frees slots away longer than slot_linger_s (presence withdrawn). */
void td_slots_expire(td_daemon *d, uint64_t now_ms);
void td_slots_free(td_daemon *d);
/* Effect callback of tally_engine_drain. */
void td_route_effect(void *ud, const tally_effect *e);
/* A reply to one command of c, made by tallyd (busy, wrong network...). */
void td_reply(td_conn *c, const tally_frame_command *cmd, int code, const char *text);
/* Room lines a host that cannot intercept them must not send (a quiz's
 * ANSWER, QUIZ START): the refusal to answer with, or NULL (room_lines.c). */
const char *td_room_line_refusal(const char *channel, const char *text);
/* Sends the current engine status to a just-welcomed slot. */
void td_route_welcome(td_daemon *d, td_slot *s);

/* ---- presence merge (presence.c) ---------------------------------------------- */
typedef struct td_presence td_presence;
typedef void (*td_presence_fn)(void *ud, const char *network, const char *account,
                               const char *room, int present);
td_presence *td_presence_new(uint32_t max);
void td_presence_free(td_presence *p);
/* Records slot's report; calls fn on the network's 0->1 or 1->0. TALLY_OK,
 * or TALLY_ETOO_MANY when the table is full (not recorded). */
int td_presence_report(td_presence *p, uint32_t slot, const char *network, const char *account,
                       const char *room, int present, td_presence_fn fn, void *ud);
/* Withdraws everything slot reported (fn for each 1->0). */
void td_presence_withdraw(td_presence *p, uint32_t slot, td_presence_fn fn, void *ud);
/* Calls fn(present 1) for every account present in (network, room). */
void td_presence_replay(td_presence *p, const char *network, const char *room, td_presence_fn fn,
                        void *ud);
uint32_t td_presence_count(const td_presence *p);

/* ---- systemd (notify.c) ------------------------------------------------------- */
/* Sends state ("READY=1") to $NOTIFY_SOCKET if set; 0 sent or not asked, -1 failed. */
int td_notify(const char *state);

/* ---- the daemon (main.c) ------------------------------------------------------- */
struct td_daemon {
  uv_loop_t *loop;
  td_config cfg;
  tally_engine *engine;
  uv_poll_t engine_poll;
  uv_pipe_t unix_server;
  uv_tcp_t tcp_server;
  int unix_on, tcp_on;
  SSL_CTX *tls;
  td_conn *conns;
  uint32_t conn_count;
  uint64_t conn_seq;
  td_slot *slots;
  uint32_t slot_next_id;
  td_presence *presence;
  uv_timer_t tick;
  uv_signal_t sig_term, sig_int, sig_hup;
  int stopping;  /* SIGTERM seen: no new commands */
  int engine_ready;
  int status_code; /* the engine's latest STATUS */
  char status_text[TALLY_TEXT_BYTES_MAX + 1];
  uint64_t dropped_total;
  struct td_xmpp *xmpp; /* the XEP-0114 component, or NULL (xmpp_*.c) */
  struct td_mx *mx; /* the Matrix AS (matrix.h), NULL when off */
  uv_prepare_t pump_prep; /* td_conns_pump_due before each wait for I/O */
};

uint64_t td_now_ms(td_daemon *d);
/* Listeners (listen.c): TALLY_OK or a code with err. */
int td_listen_start(td_daemon *d, char *err, size_t err_len);
void td_listen_stop(td_daemon *d);
/* Submits one merged presence change to the engine (main.c). */
void td_presence_submit(void *ud, const char *network, const char *account, const char *room,
                        int present);

/* ---- the XEP-0114 component (xmpp_*.c) ---------------------------------------------- */
typedef struct td_xmpp td_xmpp;
/* Starts the component if xmpp_component is set (connects out, reconnects
 * with backoff). TALLY_OK, or a code with err (bad address, no memory). */
int td_xmpp_start(td_daemon *d, char *err, size_t err_len);
/* An effect for the component's slot (route.c): sent as a stanza. */
void td_xmpp_effect(td_xmpp *x, const tally_effect *e, const char *origin);
/* 1 when nothing is waiting to be written (stop waits for it). */
int td_xmpp_flushed(const td_xmpp *x);
/* Closes the link and its handles (at exit); frees it once they closed. */
void td_xmpp_close(td_xmpp *x);
/* SIGHUP: takes the component's keys from next (checked first: a bad one
 * changes nothing, logged); a changed address, domain, secret, nick or room
 * list relinks at once. Turning it on or off, or xmpp_network, needs a restart. */
void td_xmpp_reload(td_daemon *d, const td_config *next);

#endif
