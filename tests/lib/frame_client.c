/* frame_client.c — see frame_client.h. Blocking sockets with poll()
 * timeouts; TLS through OpenSSL on the socket itself (the test side needs
 * no event loop). */
#include "frame_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fc_conn {
  int fd;
  SSL_CTX *ctx;
  SSL *ssl;
  tally_stream_reader reader;
  tally_frame_decoder *dec;
  uint8_t pending[8192]; /* bytes read, not yet fed */
  size_t pending_len, pending_off;
  uint64_t last_seq, seen, repeats;
  uint64_t msg_seq;
};

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static fc_conn *conn_new(int fd) {
  fc_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->fd = fd;
  tally_stream_reader_init(&c->reader);
  if (tally_frame_decoder_new(&c->dec) != TALLY_OK) {
    free(c);
    return NULL;
  }
  return c;
}

fc_conn *fc_unix(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (fd >= 0) close(fd);
    return NULL;
  }
  return conn_new(fd);
}

fc_conn *fc_tls(int port, const char *ca, const char *cert, const char *key, char *err, size_t err_len) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    snprintf(err, err_len, "connect: %s", strerror(errno));
    if (fd >= 0) close(fd);
    return NULL;
  }
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_load_verify_locations(ctx, ca, NULL);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  if (cert && (SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
               SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)) {
    snprintf(err, err_len, "client certificate %s does not load", cert);
    SSL_CTX_free(ctx);
    close(fd);
    return NULL;
  }
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set1_host(ssl, "localhost");
  if (SSL_connect(ssl) != 1) {
    unsigned long e = ERR_get_error();
    snprintf(err, err_len, "handshake: %s", e ? ERR_error_string(e, NULL) : "failed");
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return NULL;
  }
  fc_conn *c = conn_new(fd);
  c->ctx = ctx;
  c->ssl = ssl;
  return c;
}

void fc_close(fc_conn *c) {
  if (!c) return;
  if (c->ssl) SSL_free(c->ssl);
  if (c->ctx) SSL_CTX_free(c->ctx);
  close(c->fd);
  tally_frame_decoder_free(c->dec);
  free(c);
}

int fc_write(fc_conn *c, const void *data, size_t len) {
  const uint8_t *p = data;
  while (len > 0) {
    long n = c->ssl ? SSL_write(c->ssl, p, (int)len) : send(c->fd, p, len, MSG_NOSIGNAL);
    if (n <= 0) {
      if (!c->ssl && n < 0 && errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

long fc_write_some(fc_conn *c, const void *data, size_t len) {
  if (c->ssl) return fc_write(c, data, len) == 0 ? (long)len : -1;
  long n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
  return n;
}

int fc_send(fc_conn *c, const uint8_t *frame, size_t len) {
  uint8_t buf[TALLY_STREAM_PREFIX_BYTES + TALLY_FRAME_BYTES_MAX];
  size_t n;
  if (tally_stream_wrap(frame, len, buf, sizeof buf, &n) != TALLY_OK) return -1;
  return fc_write(c, buf, n);
}

/* Fills c->pending: 1 bytes, 0 timeout, -1 closed. */
static int fill(fc_conn *c, int timeout_ms) {
  if (!(c->ssl && SSL_pending(c->ssl) > 0)) {
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc == 0) return 0;
    if (rc < 0) return errno == EINTR ? 0 : -1;
  }
  long n = c->ssl ? SSL_read(c->ssl, c->pending, sizeof c->pending) : recv(c->fd, c->pending, sizeof c->pending, 0);
  if (n <= 0) {
    if (c->ssl) {
      int e = SSL_get_error(c->ssl, (int)n);
      ERR_clear_error();
      if (e == SSL_ERROR_WANT_READ) return 0;
    }
    return -1;
  }
  c->pending_len = (size_t)n;
  c->pending_off = 0;
  return 1;
}

int fc_read_frame(fc_conn *c, int timeout_ms, uint8_t *buf, size_t *len) {
  long deadline = now_ms() + timeout_ms;
  for (;;) {
    while (c->pending_off < c->pending_len) {
      size_t used;
      const uint8_t *frame;
      size_t n;
      int rc = tally_stream_feed(&c->reader, c->pending + c->pending_off, c->pending_len - c->pending_off, &used,
                                 &frame, &n);
      c->pending_off += used;
      if (rc < 0) return -1;
      if (rc == 1) {
        memcpy(buf, frame, n);
        *len = n;
        return 1;
      }
    }
    long left = deadline - now_ms();
    if (left <= 0) return 0;
    int rc = fill(c, (int)left);
    if (rc <= 0) return rc;
  }
}

int fc_closed_within(fc_conn *c, int timeout_ms) {
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t n;
  long deadline = now_ms() + timeout_ms;
  for (;;) {
    long left = deadline - now_ms();
    if (left <= 0) return 0;
    int rc = fc_read_frame(c, (int)left, buf, &n);
    if (rc < 0) return 1;
    if (rc == 0) return 0;
  }
}

uint64_t fc_hello_caps = TALLY_CAP_INTERCEPT_COMMANDS;

int fc_hello(fc_conn *c, const char *network, const char *instance, const char *secret, uint64_t acked,
             uint64_t wire_min, uint64_t wire_max, tally_frame_hello_server *verdict) {
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t n;
  tally_frame_hello_server ch;
  if (fc_read_frame(c, 10000, buf, &n) != 1 || tally_frame_hello_server_decode(c->dec, buf, n, &ch) != TALLY_OK)
    return -1000;
  tally_frame_hello h;
  memset(&h, 0, sizeof h);
  h.wire_min = wire_min;
  h.wire_max = wire_max;
  snprintf(h.network, sizeof h.network, "%s", network);
  snprintf(h.adapter, sizeof h.adapter, "frame_client/1");
  snprintf(h.instance, sizeof h.instance, "%s", instance);
  h.caps = fc_hello_caps;
  h.acked = acked;
  if (secret) tally_hello_answer((const uint8_t *)secret, strlen(secret), ch.challenge, h.answer);
  else memset(h.answer, '0', TALLY_FRAME_HELLO_HEX_BYTES);
  if (tally_frame_hello_encode(&h, buf, sizeof buf, &n) != TALLY_OK || fc_send(c, buf, n) != 0) return -1000;
  if (fc_read_frame(c, 10000, buf, &n) != 1 || tally_frame_hello_server_decode(c->dec, buf, n, verdict) != TALLY_OK)
    return -1000;
  return (int)verdict->code;
}

static int encode_command_in(uint64_t req_id, const char *account, const char *channel, const char *text,
                             uint32_t roles, const char *network, const char *msg_id, uint8_t *buf, size_t *n) {
  tally_frame_command f;
  memset(&f, 0, sizeof f);
  f.req_id = req_id;
  f.roles = roles;
  snprintf(f.origin, sizeof f.origin, "%s", account);
  snprintf(f.account, sizeof f.account, "%s", account);
  snprintf(f.nick, sizeof f.nick, "%s", account);
  snprintf(f.channel, sizeof f.channel, "%s", channel);
  snprintf(f.msg_id, sizeof f.msg_id, "%s", msg_id);
  snprintf(f.text, sizeof f.text, "%s", text);
  snprintf(f.network, sizeof f.network, "%s", network ? network : "");
  return tally_frame_command_encode(&f, buf, TALLY_FRAME_BYTES_MAX, n);
}

static int encode_command(uint64_t req_id, const char *account, const char *text, uint32_t roles,
                          const char *network, const char *msg_id, uint8_t *buf, size_t *n) {
  return encode_command_in(req_id, account, "", text, roles, network, msg_id, buf, n);
}

int fc_command_in(fc_conn *c, uint64_t req_id, const char *account, const char *channel, const char *text,
                  uint32_t roles) {
  char key[64];
  snprintf(key, sizeof key, "fc-in-%d-%p-%llu", (int)getpid(), (void *)c, (unsigned long long)++c->msg_seq);
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t n;
  if (encode_command_in(req_id, account, channel, text, roles, NULL, key, buf, &n) != TALLY_OK) return -1;
  return fc_send(c, buf, n);
}

int fc_command(fc_conn *c, uint64_t req_id, const char *account, const char *text, uint32_t roles,
               const char *network, const char *msg_id) {
  char key[64];
  if (!msg_id) {
    snprintf(key, sizeof key, "fc-%d-%p-%llu", (int)getpid(), (void *)c, (unsigned long long)++c->msg_seq);
    msg_id = key;
  }
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t n;
  if (encode_command(req_id, account, text, roles, network, msg_id, buf, &n) != TALLY_OK) return -1;
  return fc_send(c, buf, n);
}

size_t fc_command_bytes(uint64_t req_id, const char *account, const char *text, uint8_t *buf, size_t cap) {
  uint8_t frame[TALLY_FRAME_BYTES_MAX];
  size_t n, out;
  char key[64];
  snprintf(key, sizeof key, "fc-cut-%d-%llu", (int)getpid(), (unsigned long long)req_id);
  if (encode_command(req_id, account, text, 0, NULL, key, frame, &n) != TALLY_OK) return 0;
  return tally_stream_wrap(frame, n, buf, cap, &out) == TALLY_OK ? out : 0;
}

int fc_ack(fc_conn *c, uint64_t seq) {
  tally_frame_ack a = {.seq = seq};
  uint8_t buf[64];
  size_t n;
  return tally_frame_ack_encode(&a, buf, sizeof buf, &n) == TALLY_OK ? fc_send(c, buf, n) : -1;
}

int fc_presence(fc_conn *c, const char *network, const char *account, const char *room, int present) {
  tally_frame_presence p;
  memset(&p, 0, sizeof p);
  snprintf(p.network, sizeof p.network, "%s", network ? network : "");
  snprintf(p.account, sizeof p.account, "%s", account);
  snprintf(p.room, sizeof p.room, "%s", room);
  p.present = present ? 1 : 0;
  p.local = 1;
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t n;
  return tally_frame_presence_encode(&p, buf, sizeof buf, &n) == TALLY_OK ? fc_send(c, buf, n) : -1;
}

int fc_effect(fc_conn *c, int timeout_ms, tally_frame_effect *out) {
  uint8_t buf[TALLY_FRAME_BYTES_MAX];
  size_t n;
  int rc = fc_read_frame(c, timeout_ms, buf, &n);
  if (rc != 1) return rc;
  if (tally_frame_effect_decode(c->dec, buf, n, out) != TALLY_OK) return -1;
  if (out->seq <= c->last_seq) c->repeats++;
  else c->last_seq = out->seq;
  c->seen++;
  return 1;
}

int fc_reply(fc_conn *c, uint64_t req_id, int timeout_ms, tally_frame_effect *out) {
  long deadline = now_ms() + timeout_ms;
  for (;;) {
    long left = deadline - now_ms();
    if (left <= 0) return 0;
    int rc = fc_effect(c, (int)left, out);
    if (rc != 1) return rc;
    if (out->kind == TALLY_EFFECT_REPLY && out->req_id == req_id && out->code != TALLY_EPENDING) return 1;
  }
}

uint64_t fc_last_seq(const fc_conn *c) { return c->last_seq; }
uint64_t fc_effects_seen(const fc_conn *c) { return c->seen; }
uint64_t fc_repeats(const fc_conn *c) { return c->repeats; }

/* ---- a tallyd process ---------------------------------------------------------- */
static int run(const char *cmd) {
  int rc = system(cmd);
  if (rc != 0) fprintf(stderr, "frame_client: failed (%d): %s\n", rc, cmd);
  return rc;
}

int fc_make_certs(const char *dir) {
  char cmd[4096];
  const char *quiet = ">/dev/null 2>&1";
  snprintf(cmd, sizeof cmd,
           "cd '%s' && "
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem "
           "-days 2 -subj /CN=tally-test-ca %s && "
           "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr "
           "-subj /CN=localhost %s && "
           "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && "
           "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
           "-extfile san.ext %s && "
           "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr "
           "-subj /CN=irc1.libera %s && "
           "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 %s && "
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout rogue.key -out rogue.pem "
           "-days 2 -subj /CN=rogue %s",
           dir, quiet, quiet, quiet, quiet, quiet, quiet);
  return run(cmd);
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

int fc_daemon_logged(const fc_daemon *d, const char *needle, int timeout_ms) {
  long deadline = now_ms() + timeout_ms;
  for (;;) {
    FILE *f = fopen(d->log, "r");
    if (f) {
      char line[2048];
      int found = 0;
      while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
      fclose(f);
      if (found) return 1;
    }
    if (now_ms() >= deadline) return 0;
    usleep(20000);
  }
}

static int tls_port_from_log(const fc_daemon *d) {
  FILE *f = fopen(d->log, "r");
  if (!f) return 0;
  char line[2048];
  int port = 0;
  while (fgets(line, sizeof line, f)) {
    const char *at = strstr(line, "listening on tls ");
    if (at && (at = strstr(at, " port "))) port = atoi(at + 6);
  }
  fclose(f);
  return port;
}

int fc_daemon_start(fc_daemon *d, const char *name, const char *dsn, const char *key_path, const char *extra, int tls,
                    int client_ca, const char *notify_socket) {
  memset(d, 0, sizeof *d);
  const char *tmp = getenv("TALLY_TMP");
  snprintf(d->dir, sizeof d->dir, "%s/tallyd-%s-%d", tmp ? tmp : "/tmp", name, (int)getpid());
  mkdir(d->dir, 0700);
  snprintf(d->sock, sizeof d->sock, "%s/tally.sock", d->dir);
  snprintf(d->log, sizeof d->log, "%s/tallyd.log", d->dir);
  snprintf(d->conf, sizeof d->conf, "%s/tallyd.conf", d->dir);
  char path[400], text[8192];
  snprintf(path, sizeof path, "%s/libera.secret", d->dir);
  write_file(path, FC_SECRET "\n");
  snprintf(path, sizeof path, "%s/oftc.secret", d->dir);
  write_file(path, FC_SECRET2 "\n");
  if (tls && file_size(strcat(strcpy(path, d->dir), "/ca.pem")) <= 0 && fc_make_certs(d->dir) != 0) return -1;
  int n = snprintf(text, sizeof text,
                   "# written by tests/lib/frame_client.c\n"
                   "dsn = %s\nsigning_key = %s\nnetwork = " FC_NETWORK "\n"
                   "rate_account = 0\nrate_channel = 0\ngrant_max = 0\n"
                   "listen_unix = %s\nserver_id = test-tallyd\nstate_dir = %s\n"
                   "secret." FC_NETWORK " = %s/libera.secret\nsecret." FC_NETWORK2 " = %s/oftc.secret\n",
                   dsn, key_path, d->sock, d->dir, d->dir, d->dir);
  if (tls)
    n += snprintf(text + n, sizeof text - (size_t)n,
                  "listen_tcp = 127.0.0.1:0\ntls_cert = %s/server.pem\ntls_key = %s/server.key\n", d->dir, d->dir);
  if (tls && client_ca) n += snprintf(text + n, sizeof text - (size_t)n, "tls_client_ca = %s/ca.pem\n", d->dir);
  if (extra) snprintf(text + n, sizeof text - (size_t)n, "%s\n", extra);
  if (write_file(d->conf, text) != 0) return -1;
  const char *build = getenv("TALLY_SAN_BUILD");
  char bin[400];
  snprintf(bin, sizeof bin, "%s/tallyd", build ? build : "build/san");
  unlink(d->log);
  d->pid = fork();
  if (d->pid < 0) return -1;
  if (d->pid == 0) {
    /* A test that fails half-way must not leave its daemon running. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    dup2(fd, 1);
    if (notify_socket) setenv("NOTIFY_SOCKET", notify_socket, 1);
    else unsetenv("NOTIFY_SOCKET");
    execl(bin, bin, "--config", d->conf, (char *)NULL);
    _exit(127);
  }
  long deadline = now_ms() + 60000;
  while (now_ms() < deadline) {
    if (fc_daemon_logged(d, "engine ready", 0)) {
      if (tls) d->tls_port = tls_port_from_log(d);
      return 0;
    }
    int status;
    if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
      fprintf(stderr, "tallyd exited at start (status %d); its log:\n", status);
      char cmd[512];
      snprintf(cmd, sizeof cmd, "cat '%s' >&2", d->log);
      run(cmd);
      d->pid = 0;
      return -1;
    }
    usleep(50000);
  }
  return -1;
}

int fc_daemon_stop(fc_daemon *d, int sig, int timeout_ms) {
  if (d->pid <= 0) return -1;
  if (sig) kill(d->pid, sig);
  long deadline = now_ms() + timeout_ms;
  int status;
  while (now_ms() < deadline) {
    if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
      d->pid = 0;
      return status;
    }
    usleep(20000);
  }
  kill(d->pid, SIGKILL);
  waitpid(d->pid, &status, 0);
  d->pid = 0;
  return -1;
}

long fc_daemon_rss_kb(const fc_daemon *d) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)d->pid);
  FILE *f = fopen(path, "r");
  long kb = 0;
  if (!f) return 0;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
  fclose(f);
  return kb;
}
