/* tls.c — TLS 1.3 for tallyd's TCP listener, OpenSSL 3 over libuv. The SSL
 * object of a connection never touches its socket: bytes read from libuv go
 * into a memory BIO (rbio), bytes OpenSSL wants to send come out of another
 * (wbio) and are written with uv_write (conn.c does both). This file builds
 * the server context: TLS 1.3 only, this server's certificate, and, when
 * tls_client_ca is set, a client certificate required and checked against
 * that CA. SIGHUP builds a new context; connections keep the one they began
 * with (SSL objects hold a reference). */
#include "tallyd.h"

#include <openssl/err.h>
#include <string.h>

void td_tls_reason(char *out, size_t len) {
  unsigned long e = ERR_get_error();
  if (e) ERR_error_string_n(e, out, len);
  else snprintf(out, len, "unknown OpenSSL error");
  ERR_clear_error();
}

SSL_CTX *td_tls_ctx_new(const SSL_METHOD *method, const char *what, char *err, size_t err_len) {
  SSL_CTX *ctx = SSL_CTX_new(method);
  if (!ctx) {
    char why[256];
    td_tls_reason(why, sizeof why);
    snprintf(err, err_len, "%s: %s", what, why);
  }
  return ctx;
}

SSL_CTX *td_tls_context(const td_config *cfg, char *err, size_t err_len) {
  char why[256];
  SSL_CTX *ctx = td_tls_ctx_new(TLS_server_method(), "TLS", err, err_len);
  if (!ctx) return NULL;
  /* TLS 1.3 only: older versions are refused at the handshake. */
  if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) || !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
    snprintf(err, err_len, "TLS: this OpenSSL cannot do TLS 1.3 only");
    goto fail;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
  if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
    td_tls_reason(why, sizeof why);
    snprintf(err, err_len, "tls_cert %s: %s", cfg->tls_cert, why);
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    td_tls_reason(why, sizeof why);
    snprintf(err, err_len, "tls_key %s: %s", cfg->tls_key, why);
    goto fail;
  }
  if (cfg->tls_client_ca[0]) {
    if (SSL_CTX_load_verify_locations(ctx, cfg->tls_client_ca, NULL) != 1) {
      td_tls_reason(why, sizeof why);
      snprintf(err, err_len, "tls_client_ca %s: %s", cfg->tls_client_ca, why);
      goto fail;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->tls_client_ca);
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  }
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

/* Moves what OpenSSL wants to send into the connection's out buffer. */
static void tls_flush(td_conn *c) {
  uint8_t buf[16384];
  int n;
  while ((n = BIO_read(c->wbio, buf, sizeof buf)) > 0) td_conn_out_raw(c, buf, (size_t)n);
}

int td_tls_begin(td_conn *c, SSL_CTX *ctx) {
  c->ssl = SSL_new(ctx);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (!c->ssl || !c->rbio || !c->wbio) {
    BIO_free(c->rbio);
    BIO_free(c->wbio);
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->rbio = c->wbio = NULL;
    return TALLY_ENOMEM;
  }
  SSL_set_bio(c->ssl, c->rbio, c->wbio); /* the SSL owns both BIOs now */
  SSL_set_accept_state(c->ssl);
  return TALLY_OK;
}

void td_tls_end(td_conn *c) {
  if (c->ssl) SSL_free(c->ssl);
  c->ssl = NULL;
  c->rbio = c->wbio = NULL;
}

static void describe_error(td_conn *c, int rc, char *err, size_t err_len) {
  int e = SSL_get_error(c->ssl, rc);
  char why[256];
  long verify = SSL_get_verify_result(c->ssl);
  if (verify != X509_V_OK)
    snprintf(err, err_len, "TLS: bad client certificate: %s", X509_verify_cert_error_string(verify));
  else if (e == SSL_ERROR_SSL) {
    td_tls_reason(why, sizeof why);
    snprintf(err, err_len, "TLS: %s", why);
  } else
    snprintf(err, err_len, "TLS: error %d", e);
  ERR_clear_error();
}

int td_tls_read(td_conn *c, const uint8_t *in, size_t len, td_plain_fn plain, char *err, size_t err_len) {
  if (len > 0 && BIO_write(c->rbio, in, (int)len) != (int)len) {
    snprintf(err, err_len, "TLS: out of memory");
    return -1;
  }
  int just_done = 0;
  if (!SSL_is_init_finished(c->ssl)) {
    int rc = SSL_do_handshake(c->ssl);
    tls_flush(c); /* the handshake's own records, or an alert */
    if (rc != 1) {
      int e = SSL_get_error(c->ssl, rc);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
      describe_error(c, rc, err, err_len);
      return -1;
    }
    just_done = 1;
    if (plain == NULL) return 1;
  }
  uint8_t buf[16384];
  for (;;) {
    int n = SSL_read(c->ssl, buf, sizeof buf);
    if (n > 0) {
      plain(c, buf, (size_t)n);
      if (c->closed) return -2;
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    tls_flush(c); /* post-handshake messages, key updates */
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      snprintf(err, err_len, "TLS: closed by the peer");
      return -1;
    }
    describe_error(c, n, err, err_len);
    return -1;
  }
  return just_done;
}

int td_tls_write(td_conn *c, const uint8_t *plain, size_t len) {
  /* Memory BIOs grow, so SSL_write never wants to wait. */
  int n = SSL_write(c->ssl, plain, (int)len);
  tls_flush(c);
  return n == (int)len ? TALLY_OK : TALLY_EIO;
}
