/* matrix_tls.c — HTTPS from the Application Service to the homeserver
 * (matrix_homeserver = https://HOST[:PORT]), OpenSSL 3 over libuv.
 *
 * As in tls.c (the listener), an SSL object never touches its socket: the
 * bytes libuv reads go into a memory BIO, the bytes OpenSSL wants to send
 * come out of another and matrix_send.c writes them with uv_write. So a
 * handshake is a few more turns of the loop, never a wait on it.
 *
 * The client context: TLS 1.2 or newer (homeservers behind common reverse
 * proxies still offer 1.2; nothing older), the peer's certificate verified
 * against the system CA store or matrix_homeserver_ca, and the name we
 * dialled checked in it (a DNS name, also sent as SNI; or an IP address,
 * which RFC 6066 3 keeps out of SNI). A failed handshake is the caller's
 * "no answer": retried with backoff, its reason logged. */
#include "matrix.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

SSL_CTX *td_mx_tls_context(const td_config *cfg, char *err, size_t err_len) {
  char why[256];
  SSL_CTX *ctx = td_tls_ctx_new(TLS_client_method(), "matrix_homeserver: TLS", err, err_len);
  if (!ctx) return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  const char *ca = cfg->matrix_homeserver_ca;
  int ok = ca[0] ? SSL_CTX_load_verify_locations(ctx, ca, NULL) : SSL_CTX_set_default_verify_paths(ctx);
  if (ok != 1) {
    td_tls_reason(why, sizeof why);
    snprintf(err, err_len, "matrix_homeserver_ca %s: %s", ca[0] ? ca : "(the system CA store)", why);
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

SSL *td_mx_tls_new(SSL_CTX *ctx, const char *host) {
  SSL *s = SSL_new(ctx);
  BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
  if (!s || !rbio || !wbio) {
    BIO_free(rbio);
    BIO_free(wbio);
    SSL_free(s);
    return NULL;
  }
  SSL_set_bio(s, rbio, wbio); /* the SSL owns both now */
  SSL_set_connect_state(s);
  unsigned char ip[16];
  int ok;
  if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1)
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), host);
  else
    ok = SSL_set_tlsext_host_name(s, host) == 1 && SSL_set1_host(s, host) == 1;
  if (ok != 1) { /* never a session that would not check the name */
    SSL_free(s);
    return NULL;
  }
  return s;
}

/* Why the session failed: the certificate's verdict when it was refused
 * (unknown CA, name mismatch, expired...), else OpenSSL's reason. */
static void failure(SSL *s, int rc, char *err, size_t err_len) {
  long verify = SSL_get_verify_result(s);
  int e = SSL_get_error(s, rc);
  char why[256];
  if (verify != X509_V_OK) {
    snprintf(err, err_len, "certificate refused: %s", X509_verify_cert_error_string(verify));
    ERR_clear_error();
  } else if (e == SSL_ERROR_SSL) {
    td_tls_reason(why, sizeof why);
    snprintf(err, err_len, "%s", why);
  } else if (e == SSL_ERROR_ZERO_RETURN) {
    snprintf(err, err_len, "closed by the homeserver (close_notify)");
  } else {
    snprintf(err, err_len, "TLS error %d", e);
    ERR_clear_error();
  }
}

int td_mx_tls_feed(SSL *s, const char *in, size_t len, char **plain, size_t *plain_len, char *err,
                   size_t err_len) {
  *plain = NULL;
  *plain_len = 0;
  if (len > 0 && BIO_write(SSL_get_rbio(s), in, (int)len) != (int)len) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  if (!SSL_is_init_finished(s)) {
    int rc = SSL_do_handshake(s);
    if (rc != 1) {
      int e = SSL_get_error(s, rc);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
      failure(s, rc, err, err_len);
      return -1;
    }
  }
  char buf[16384];
  size_t cap = 0;
  for (;;) {
    int n = SSL_read(s, buf, sizeof buf);
    if (n > 0) {
      if (*plain_len + (size_t)n + 1 > cap) {
        size_t c = cap ? cap * 2 : sizeof buf + 1;
        while (c < *plain_len + (size_t)n + 1) c *= 2;
        char *p = realloc(*plain, c);
        if (!p) {
          snprintf(err, err_len, "out of memory");
          return -1;
        }
        *plain = p;
        cap = c;
      }
      memcpy(*plain + *plain_len, buf, (size_t)n);
      *plain_len += (size_t)n;
      (*plain)[*plain_len] = 0;
      continue;
    }
    int e = SSL_get_error(s, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 1;
    if (*plain_len) return 1; /* what came before the close counts; the close shows as EOF */
    failure(s, n, err, err_len);
    return -1;
  }
}

int td_mx_tls_write(SSL *s, const char *plain, size_t len) {
  /* Memory BIOs grow, so SSL_write never wants to wait. */
  return SSL_write(s, plain, (int)len) == (int)len ? TALLY_OK : TALLY_EIO;
}

size_t td_mx_tls_take(SSL *s, char **out) {
  BIO *w = SSL_get_wbio(s);
  size_t n = (size_t)BIO_ctrl_pending(w);
  *out = NULL;
  if (!n || !(*out = malloc(n))) return 0;
  int got = BIO_read(w, *out, (int)n);
  if (got <= 0) {
    free(*out);
    *out = NULL;
    return 0;
  }
  return (size_t)got;
}

void td_mx_reload(td_daemon *d, const td_config *next) {
  td_mx *m = d->mx;
  if (!m) return;
  if (strcmp(next->matrix_homeserver, d->cfg.matrix_homeserver))
    td_log(TD_WARN, "SIGHUP: matrix_homeserver changed: needs a restart");
  if (!m->hs_tls) return;
  /* Built again each time, changed or not: a CA file rotated in place is
   * read anew (cheap: one file, once per SIGHUP). */
  char err[TALLY_ERRBUF_BYTES];
  SSL_CTX *ctx = td_mx_tls_context(next, err, sizeof err);
  if (!ctx) {
    td_log(TD_ERR, "SIGHUP: %s; matrix_homeserver_ca not changed", err);
    return;
  }
  memcpy(d->cfg.matrix_homeserver_ca, next->matrix_homeserver_ca, sizeof d->cfg.matrix_homeserver_ca);
  td_log(TD_INFO, "SIGHUP: matrix_homeserver_ca reloaded (%s)",
         next->matrix_homeserver_ca[0] ? next->matrix_homeserver_ca : "the system CA store");
  td_mx_send_tls_context(m, ctx);
}
