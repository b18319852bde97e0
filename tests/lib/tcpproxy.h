/* tcpproxy.h — a fault-injecting proxy in front of PostgreSQL, for tests.
 *
 * Listens on 127.0.0.1 at a free port (bound to 0) and forwards every
 * connection to the server named by a libpq DSN (its host= and port=; a
 * host starting with '/' is a unix socket directory, as tools/pg.sh prints).
 * It runs on its own thread and can be told to
 *   - stall: hold all traffic in both directions until released (F3, F7);
 *   - cut all: close every connection on both sides at once (F2);
 *   - cut after a message: when the client->server stream carries the
 *     given text, forward it, let the server answer, drop that answer and
 *     close both sides as soon as the server's ReadyForQuery ('Z') has gone
 *     by — the statement committed but its reply never arrived (F2).
 * The proxy only speaks the PostgreSQL wire protocol to find message
 * boundaries after the marker; give the engine a DSN with sslmode=disable
 * (th_proxy_dsn does). */
#ifndef TALLY_TEST_TCPPROXY_H
#define TALLY_TEST_TCPPROXY_H

#include <stddef.h>

typedef struct th_proxy th_proxy;

/* Starts a proxy to the server of upstream_dsn; NULL on failure. */
th_proxy *th_proxy_start(const char *upstream_dsn);
int th_proxy_port(const th_proxy *p);
/* dsn with host/port pointed at the proxy (later keywords win in libpq). */
void th_proxy_dsn(const th_proxy *p, const char *dsn, char *out, size_t out_len);
/* 1 holds all traffic, 0 releases it. */
void th_proxy_stall(th_proxy *p, int on);
/* Closes every current connection, both sides. */
void th_proxy_cut_all(th_proxy *p);
/* One shot: cut the connection whose client sends `needle` once the server
 * has answered it (answer dropped). NULL disarms. */
void th_proxy_cut_after(th_proxy *p, const char *needle);
/* Cuts after `needle` as above, and arms `then` the moment that cut
 * starts: a follow-up statement (the key lookup of the resend) cannot slip
 * through before a test could arm it. */
void th_proxy_cut_after_then(th_proxy *p, const char *needle, const char *then);
/* The same, but only for a statement whose parameters (its Bind message)
 * take at least min_bind_bytes: picks a big batch among small ones. */
void th_proxy_cut_after_big(th_proxy *p, const char *needle, size_t min_bind_bytes);
/* Connections cut by cut_after so far / by cut_all / accepted. */
int th_proxy_cuts(const th_proxy *p);
int th_proxy_accepted(const th_proxy *p);
/* Stops the thread and closes everything. */
void th_proxy_stop(th_proxy *p);

#endif
