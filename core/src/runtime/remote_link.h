/* remote_link.h — the byte pipe of remote mode: a non-blocking unix socket,
 * or TCP with TLS 1.3 (OpenSSL) to a tallyd.
 *
 * Contract: every call returns at once (the remote thread polls the fd for
 * the events tally__link_events names); nothing here knows frames. A link is
 * plain memory: tally__link_init it, open it, close it (close is idempotent). The TLS
 * context is made once per engine (tally__link_tls_new) from the config's
 * remote_ca / remote_cert / remote_key, and shared by every reconnect. */
#ifndef TALLY_REMOTE_LINK_H
#define TALLY_REMOTE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <netdb.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "tally.h"

enum {
  TALLY__LINK_HOST_BYTES_MAX = 255, /* a DNS name */
  TALLY__LINK_RESOLVE_POLL_MS = 20, /* how often a running lookup is looked at */
  TALLY__LINK_UNIX_SNDBUF_BYTES = 2 * 1024 * 1024, /* SO_SNDBUF of a unix link */
};

typedef enum {
  TALLY__LINK_CLOSED = 0,
  TALLY__LINK_RESOLVING,  /* the host name's lookup in progress (no fd yet) */
  TALLY__LINK_CONNECTING, /* connect() in progress */
  TALLY__LINK_HANDSHAKE,  /* TLS handshake in progress */
  TALLY__LINK_OPEN,       /* bytes flow */
} tally__link_phase;

typedef struct tally__link {
  int fd;                 /* -1 when closed */
  tally__link_phase phase;
  SSL *ssl;               /* NULL on a unix socket, and until connected */
  SSL_CTX *tls;           /* the engine's context on a tls: link, else NULL */
  struct tally__resolve *resolve; /* the lookup in progress (RESOLVING) */
  struct addrinfo *addrs, *next_addr; /* what the lookup found; the next to try */
  bool want_write;        /* the last TLS call needs the fd writable */
  char host[TALLY__LINK_HOST_BYTES_MAX + 1];
} tally__link;

/* A closed link. */
void tally__link_init(tally__link *l);

/* The TLS context for a tls: address (NULL for unix:): TLS 1.3 only, the
 * server's certificate verified against remote_ca (or the system's CAs),
 * the client certificate loaded when given. TALLY_ECONFIG with a message
 * naming the file that failed. */
int tally__link_tls_new(const tally_config *cfg, SSL_CTX **out, char *err, size_t err_len);
void tally__link_tls_free(SSL_CTX *ctx);

/* Starts connecting to address ("unix:/path" or "tls:host:port"). TALLY_OK
 * with the link CONNECTING (or OPEN already on a unix socket), or TALLY_EIO
 * with the reason in err. */
int tally__link_open(tally__link *l, const char *address, SSL_CTX *tls, char *err, size_t err_len);
/* Advances connect and handshake after the fd polled ready: TALLY_OK (look
 * at l->phase), or TALLY_EIO with the reason in err. */
int tally__link_step(tally__link *l, char *err, size_t err_len);
/* The poll events the link waits for, given whether the caller has bytes to
 * write. */
short tally__link_events(const tally__link *l, bool have_output);
/* > 0 bytes moved, 0 when it would block, -1 when the peer closed or the link
 * failed (reason in err). */
ssize_t tally__link_read(tally__link *l, void *buf, size_t n, char *err, size_t err_len);
ssize_t tally__link_write(tally__link *l, const void *buf, size_t n, char *err, size_t err_len);
void tally__link_close(tally__link *l);
/* Bytes TLS has decrypted and not handed out yet: the socket will not poll
 * readable for them, so the caller must read again before it polls. */
size_t tally__link_buffered(const tally__link *l);

#endif
