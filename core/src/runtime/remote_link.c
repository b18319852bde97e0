/* remote_link.c — non-blocking unix and TLS-over-TCP connections for remote
 * mode (remote_link.h). Runs on the remote thread only. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "remote_link.h"

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t err_len, int code, const char *fmt, ...) {
  if (err && err_len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
  }
  return code;
}

static const char *ssl_reason(void) {
  unsigned long e = ERR_get_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  ERR_clear_error();
  return r ? r : "unknown TLS error";
}

int tally__link_tls_new(const tally_config *cfg, SSL_CTX **out, char *err, size_t err_len) {
  *out = NULL;
  if (strncmp(cfg->address, "tls:", 4)) return TALLY_OK;
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return fail(err, err_len, TALLY_ENOMEM, "config address: cannot make a TLS context");
  /* TLS 1.3 only: the daemon accepts nothing older either. */
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  int ok = cfg->remote_ca && cfg->remote_ca[0] ? SSL_CTX_load_verify_locations(ctx, cfg->remote_ca, NULL)
                                               : SSL_CTX_set_default_verify_paths(ctx);
  if (ok != 1) {
    SSL_CTX_free(ctx);
    return fail(err, err_len, TALLY_ECONFIG, "config remote_ca: cannot load CA file %s",
                cfg->remote_ca && cfg->remote_ca[0] ? cfg->remote_ca : "(system default)");
  }
  if (cfg->remote_cert && cfg->remote_cert[0]) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->remote_cert) != 1) {
      SSL_CTX_free(ctx);
      return fail(err, err_len, TALLY_ECONFIG, "config remote_cert: cannot load %s", cfg->remote_cert);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->remote_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      SSL_CTX_free(ctx);
      return fail(err, err_len, TALLY_ECONFIG, "config remote_key: cannot load %s or it does not match the "
                  "certificate", cfg->remote_key);
    }
  }
  ERR_clear_error();
  *out = ctx;
  return TALLY_OK;
}

void tally__link_tls_free(SSL_CTX *ctx) { SSL_CTX_free(ctx); }

static int nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int open_unix(tally__link *l, const char *path, char *err, size_t err_len) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) return fail(err, err_len, TALLY_EIO, "unix socket path too long: %s", path);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l->fd < 0) return fail(err, err_len, TALLY_EIO, "socket: %s", strerror(errno));
  /* A unix socket holds what its sender's buffer holds (212 KB by default,
   * a few hundred commands): a rush of thousands in flight would wait on
   * wake-ups that TCP's larger, self-tuning buffers do not need. Best
   * effort: the kernel caps it at net.core.wmem_max. */
  int sndbuf = TALLY__LINK_UNIX_SNDBUF_BYTES;
  (void)setsockopt(l->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  if (connect(l->fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
    l->phase = TALLY__LINK_OPEN;
    return TALLY_OK;
  }
  if (errno == EINPROGRESS || errno == EAGAIN) {
    l->phase = TALLY__LINK_CONNECTING;
    return TALLY_OK;
  }
  char why[TALLY_ERRBUF_BYTES];
  snprintf(why, sizeof why, "%s: %s", path, strerror(errno));
  tally__link_close(l);
  return fail(err, err_len, TALLY_EIO, "cannot connect to %s", why);
}

/* The lookup of a host name runs on glibc's own thread (getaddrinfo_a), so
 * stopping never waits for a slow resolver: a lookup still running at close
 * is cancelled, or, when glibc cannot cancel it, its request is left to glibc
 * (a few hundred bytes, once per stop during a lookup) instead of freed
 * under it. An IP address is never looked up. */
struct tally__resolve {
  struct gaicb req;
  struct addrinfo hints;
  char host[TALLY__LINK_HOST_BYTES_MAX + 1];
  char port[8];
};

/* Connects to the first address of l->addrs[l->next..] whose connect()
 * starts; an address whose connect fails later (SO_ERROR) is skipped by
 * calling this again, so "localhost" answering ::1 first still reaches a
 * daemon on 127.0.0.1. */
static int connect_next(tally__link *l, char *err, size_t err_len) {
  char why[TALLY_ERRBUF_BYTES] = "no address";
  while (l->next_addr) {
    struct addrinfo *a = l->next_addr;
    l->next_addr = a->ai_next;
    l->fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l->fd < 0) continue;
    int one = 1;
    setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* answers are small and urgent */
    if (nonblocking(l->fd) == 0 && (connect(l->fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS)) {
      l->phase = TALLY__LINK_CONNECTING;
      return TALLY_OK;
    }
    snprintf(why, sizeof why, "%s", strerror(errno));
    close(l->fd);
    l->fd = -1;
  }
  return fail(err, err_len, TALLY_EIO, "cannot connect to tallyd: %s", why);
}

static int connect_any(tally__link *l, struct addrinfo *res, char *err, size_t err_len) {
  l->addrs = l->next_addr = res;
  return connect_next(l, err, err_len);
}

static int open_tcp(tally__link *l, const char *hostport, char *err, size_t err_len) {
  const char *colon = strrchr(hostport, ':');
  size_t hlen = colon ? (size_t)(colon - hostport) : 0;
  if (!colon || hlen == 0 || hlen > TALLY__LINK_HOST_BYTES_MAX || strlen(colon + 1) >= 8)
    return fail(err, err_len, TALLY_EIO, "bad tls address %s", hostport);
  /* [::1]:6790 names an IPv6 address in brackets. */
  const char *h = hostport;
  if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
    h++;
    hlen -= 2;
  }
  memcpy(l->host, h, hlen);
  l->host[hlen] = 0;
  struct tally__resolve *r = calloc(1, sizeof *r);
  if (!r) return fail(err, err_len, TALLY_ENOMEM, "out of memory");
  memcpy(r->host, l->host, hlen + 1);
  snprintf(r->port, sizeof r->port, "%s", colon + 1);
  r->hints = (struct addrinfo){.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  unsigned char ip[16];
  if (inet_pton(AF_INET, l->host, ip) == 1 || inet_pton(AF_INET6, l->host, ip) == 1) {
    r->hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV; /* no lookup: cannot block */
    struct addrinfo *res = NULL;
    int g = getaddrinfo(r->host, r->port, &r->hints, &res);
    free(r);
    if (g) return fail(err, err_len, TALLY_EIO, "bad tls address %s: %s", hostport, gai_strerror(g));
    return connect_any(l, res, err, err_len);
  }
  r->req = (struct gaicb){.ar_name = r->host, .ar_service = r->port, .ar_request = &r->hints};
  struct gaicb *list[1] = {&r->req};
  int g = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
  if (g) {
    free(r);
    return fail(err, err_len, TALLY_EIO, "cannot resolve tallyd's host: %s", gai_strerror(g));
  }
  l->resolve = r;
  l->phase = TALLY__LINK_RESOLVING;
  return TALLY_OK;
}

/* The lookup finished (or failed): connect to what it found. */
static int resolved(tally__link *l, char *err, size_t err_len) {
  struct tally__resolve *r = l->resolve;
  int g = gai_error(&r->req);
  if (g == EAI_INPROGRESS) return TALLY_OK;
  l->resolve = NULL;
  struct addrinfo *res = r->req.ar_result;
  free(r);
  if (g) return fail(err, err_len, TALLY_EIO, "cannot resolve tallyd's host %s: %s", l->host, gai_strerror(g));
  return connect_any(l, res, err, err_len);
}

static void resolve_cancel(tally__link *l) {
  struct tally__resolve *r = l->resolve;
  if (!r) return;
  l->resolve = NULL;
  int c = gai_cancel(&r->req);
  if (c == EAI_NOTCANCELED) return; /* glibc still owns it: left to glibc, see above */
  if (c == EAI_ALLDONE && gai_error(&r->req) == 0) freeaddrinfo(r->req.ar_result);
  free(r);
}

/* The TLS session over a connected socket; the certificate must name the
 * host we dialled: its IP address, or its DNS name (also sent as SNI). */
static int tls_begin(tally__link *l, char *err, size_t err_len) {
  l->ssl = SSL_new(l->tls);
  if (!l->ssl || SSL_set_fd(l->ssl, l->fd) != 1) return fail(err, err_len, TALLY_ENOMEM, "cannot make a TLS session");
  unsigned char ip[16];
  if (inet_pton(AF_INET, l->host, ip) == 1 || inet_pton(AF_INET6, l->host, ip) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(l->ssl), l->host);
  } else {
    SSL_set_tlsext_host_name(l->ssl, l->host);
    SSL_set1_host(l->ssl, l->host);
  }
  return TALLY_OK;
}

int tally__link_open(tally__link *l, const char *address, SSL_CTX *tls, char *err, size_t err_len) {
  tally__link_close(l);
  if (!strncmp(address, "unix:", 5)) return open_unix(l, address + 5, err, err_len);
  l->tls = tls;
  return open_tcp(l, address + 4, err, err_len);
}

static int tls_step(tally__link *l, char *err, size_t err_len) {
  int r = SSL_connect(l->ssl);
  if (r == 1) {
    l->phase = TALLY__LINK_OPEN;
    l->want_write = false;
    return TALLY_OK;
  }
  int e = SSL_get_error(l->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    l->want_write = e == SSL_ERROR_WANT_WRITE;
    return TALLY_OK;
  }
  long v = SSL_get_verify_result(l->ssl);
  if (v != X509_V_OK) return fail(err, err_len, TALLY_EIO, "TLS: tallyd's certificate: %s",
                                  X509_verify_cert_error_string(v));
  return fail(err, err_len, TALLY_EIO, "TLS handshake failed: %s", ssl_reason());
}

int tally__link_step(tally__link *l, char *err, size_t err_len) {
  if (l->phase == TALLY__LINK_RESOLVING) {
    int rc = resolved(l, err, err_len);
    if (rc || l->phase == TALLY__LINK_RESOLVING) return rc;
  }
  if (l->phase == TALLY__LINK_CONNECTING) {
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
    if (soerr == EINPROGRESS) return TALLY_OK;
    if (soerr && l->next_addr) { /* this address refused: the next one */
      close(l->fd);
      l->fd = -1;
      return connect_next(l, err, err_len);
    }
    if (soerr) return fail(err, err_len, TALLY_EIO, "cannot connect to tallyd: %s", strerror(soerr));
    if (l->tls) {
      int rc = tls_begin(l, err, err_len);
      if (rc) return rc;
    }
    l->phase = l->tls ? TALLY__LINK_HANDSHAKE : TALLY__LINK_OPEN;
  }
  if (l->phase == TALLY__LINK_HANDSHAKE) return tls_step(l, err, err_len);
  return TALLY_OK;
}

short tally__link_events(const tally__link *l, bool have_output) {
  switch (l->phase) {
  case TALLY__LINK_RESOLVING: return 0; /* no fd yet: the caller polls by timeout */
  case TALLY__LINK_CONNECTING: return POLLOUT;
  case TALLY__LINK_HANDSHAKE: return l->want_write ? POLLOUT : POLLIN;
  case TALLY__LINK_OPEN: return (short)(POLLIN | ((have_output || l->want_write) ? POLLOUT : 0));
  default: return 0;
  }
}

static ssize_t tls_io(tally__link *l, int r, const char *what, char *err, size_t err_len) {
  if (r > 0) {
    l->want_write = false;
    return r;
  }
  int e = SSL_get_error(l->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    l->want_write = e == SSL_ERROR_WANT_WRITE;
    return 0;
  }
  if (e == SSL_ERROR_ZERO_RETURN) return fail(err, err_len, -1, "tallyd closed the link");
  return fail(err, err_len, -1, "TLS %s: %s", what, e == SSL_ERROR_SYSCALL ? "connection reset" : ssl_reason());
}

ssize_t tally__link_read(tally__link *l, void *buf, size_t n, char *err, size_t err_len) {
  if (l->ssl) return tls_io(l, SSL_read(l->ssl, buf, (int)n), "read", err, err_len);
  ssize_t r = read(l->fd, buf, n);
  if (r > 0) return r;
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  return fail(err, err_len, -1, "tallyd closed the link%s", r == 0 ? "" : " (read error)");
}

ssize_t tally__link_write(tally__link *l, const void *buf, size_t n, char *err, size_t err_len) {
  if (l->ssl) return tls_io(l, SSL_write(l->ssl, buf, (int)n), "write", err, err_len);
  ssize_t r = send(l->fd, buf, n, MSG_NOSIGNAL);
  if (r > 0) return r;
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  return fail(err, err_len, -1, "write to tallyd failed: %s", strerror(errno));
}

size_t tally__link_buffered(const tally__link *l) {
  return l->ssl && l->phase == TALLY__LINK_OPEN ? (size_t)SSL_pending(l->ssl) : 0;
}

void tally__link_init(tally__link *l) {
  memset(l, 0, sizeof *l);
  l->fd = -1;
}

void tally__link_close(tally__link *l) {
  resolve_cancel(l);
  if (l->addrs) freeaddrinfo(l->addrs);
  l->addrs = l->next_addr = NULL;
  l->tls = NULL;
  if (l->ssl) {
    SSL_free(l->ssl);
    l->ssl = NULL;
  }
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
  l->phase = TALLY__LINK_CLOSED;
  l->want_write = false;
}
