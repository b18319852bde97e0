/* frame_client.h — a small blocking client of tallyd's wire, for tests: a
 * unix or TLS connection, frames sent and read with the public codec of
 * tally/frames.h (the same a chat server's adapter uses), HELLO answered
 * with a network's secret, commands, acks and presence. Every read takes a
 * timeout; nothing here blocks forever. And a tallyd process for a test:
 * its config, secrets and certificates written into a temp dir, started,
 * awaited until ready, its log searched, stopped with a signal. */
#ifndef TALLY_TEST_FRAME_CLIENT_H
#define TALLY_TEST_FRAME_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tally.h"
#include "tally/frames.h"

typedef struct fc_conn fc_conn;

/* Connects; NULL on failure. */
fc_conn *fc_unix(const char *path);
/* TLS 1.3 to 127.0.0.1:port, checking the server against ca; cert/key may be
 * NULL (no client certificate). NULL when the handshake fails (err says why). */
fc_conn *fc_tls(int port, const char *ca, const char *cert, const char *key, char *err, size_t err_len);
void fc_close(fc_conn *c);
/* Raw bytes, as they go on the socket (after TLS). 0 ok, -1 error. */
int fc_write(fc_conn *c, const void *data, size_t len);
/* The same without waiting: bytes written (maybe fewer), -1 error. */
long fc_write_some(fc_conn *c, const void *data, size_t len);
/* One frame with its length prefix. */
int fc_send(fc_conn *c, const uint8_t *frame, size_t len);
/* The next frame: 1 with buf/len, 0 on timeout, -1 when closed. */
int fc_read_frame(fc_conn *c, int timeout_ms, uint8_t *buf, size_t *len);
/* Has the server closed the connection within timeout_ms (frames before
 * the close are skipped)? */
int fc_closed_within(fc_conn *c, int timeout_ms);

/* Reads the challenge and answers it; *verdict is the server's second
 * HELLO_SERVER. Returns its code, or -1000 if the connection closed first.
 * secret NULL: a wrong answer. */
/* The caps fc_hello sends (TALLY_CAP_INTERCEPT_COMMANDS unless a test says
 * otherwise: a host that cannot hide room lines sends 0). */
extern uint64_t fc_hello_caps;
int fc_hello(fc_conn *c, const char *network, const char *instance, const char *secret, uint64_t acked,
             uint64_t wire_min, uint64_t wire_max, tally_frame_hello_server *verdict);
/* A COMMAND: said privately by account (origin = account), msg_id NULL: a
 * fresh one. network NULL: "". */
int fc_command(fc_conn *c, uint64_t req_id, const char *account, const char *text, uint32_t roles,
               const char *network, const char *msg_id);
/* The same, said in channel (origin = account). */
int fc_command_in(fc_conn *c, uint64_t req_id, const char *account, const char *channel, const char *text,
                  uint32_t roles);
/* Encodes the same COMMAND into buf (with its prefix): for cut frames. */
size_t fc_command_bytes(uint64_t req_id, const char *account, const char *text, uint8_t *buf, size_t cap);
int fc_ack(fc_conn *c, uint64_t seq);
int fc_presence(fc_conn *c, const char *network, const char *account, const char *room, int present);
/* The next EFFECT: 1, 0 timeout, -1 closed (other frames are an error: -1). */
int fc_effect(fc_conn *c, int timeout_ms, tally_frame_effect *out);
/* The final REPLY to req_id (pending notices skipped; other effects kept
 * in c's count only): 1 found, 0 timeout, -1 closed. */
int fc_reply(fc_conn *c, uint64_t req_id, int timeout_ms, tally_frame_effect *out);
/* Highest effect seq seen, and how many effects were seen, on c. */
uint64_t fc_last_seq(const fc_conn *c);
uint64_t fc_effects_seen(const fc_conn *c);
/* Sets c's effects-seen count of each seq to check "never twice": returns
 * how many effects arrived with a seq not above one seen before. */
uint64_t fc_repeats(const fc_conn *c);

/* ---- a tallyd process ------------------------------------------------------ */
typedef struct fc_daemon {
  pid_t pid;
  char dir[256];    /* its temp dir: config, secrets, certs, socket, log */
  char sock[320];
  char log[320];
  char conf[320];
  int tls_port;     /* 0 without TLS */
} fc_daemon;

#define FC_NETWORK "libera"
#define FC_SECRET "libera-shared-secret-0123456789"
#define FC_NETWORK2 "oftc"
#define FC_SECRET2 "oftc-shared-secret-abcdefghijkl"

/* Writes CA, server, client and a rogue client's certificates into dir
 * (ca.pem, server.pem/.key, client.pem/.key, rogue.pem/.key). 0 ok. */
int fc_make_certs(const char *dir);
/* Starts build/san/tallyd (or $TALLY_SAN_BUILD/tallyd) for name on dsn with
 * the engine's signing key at key_path, extra config lines appended (may be
 * NULL), tls 1 to listen on TCP too (client_ca 1 to require a certificate),
 * env "NOTIFY_SOCKET=..." or NULL. Waits until the engine is ready (or
 * until it exits). 0 ok. */
int fc_daemon_start(fc_daemon *d, const char *name, const char *dsn, const char *key_path, const char *extra,
                    int tls, int client_ca, const char *notify_socket);
/* Waits for its exit after sending sig (0: none): its wait status, or -1
 * on timeout (then it is killed). */
int fc_daemon_stop(fc_daemon *d, int sig, int timeout_ms);
/* Does its log contain needle (waiting up to timeout_ms)? */
int fc_daemon_logged(const fc_daemon *d, const char *needle, int timeout_ms);
/* Resident memory of the process in kB (VmRSS), 0 if unknown. */
long fc_daemon_rss_kb(const fc_daemon *d);

#endif
