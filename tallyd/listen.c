/* listen.c — tallyd's listeners: a unix socket for chat servers on the same
 * machine (its file permissions are the first gate) and TCP with TLS 1.3
 * for the others. Both lead to the same HELLO; only TCP adds TLS. */
#include "tallyd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { TD_BACKLOG = 128 };

static void on_unix(uv_stream_t *server, int status) {
  td_daemon *d = server->data;
  if (status < 0) {
    td_log(TD_WARN, "unix accept: %s", uv_strerror(status));
    return;
  }
  td_conn_accepted(d, server, 0);
}

static void on_tcp(uv_stream_t *server, int status) {
  td_daemon *d = server->data;
  if (status < 0) {
    td_log(TD_WARN, "tcp accept: %s", uv_strerror(status));
    return;
  }
  td_conn_accepted(d, server, 1);
}

static int listen_unix(td_daemon *d, char *err, size_t err_len) {
  const char *path = d->cfg.listen_unix;
  struct stat st;
  /* A socket left by a previous run is removed; anything else is not ours. */
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      snprintf(err, err_len, "listen_unix %s: exists and is not a socket", path);
      return TALLY_ECONFIG;
    }
    unlink(path);
  }
  uv_pipe_init(d->loop, &d->unix_server, 0);
  d->unix_server.data = d;
  d->unix_on = 1;
  int rc = uv_pipe_bind(&d->unix_server, path);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&d->unix_server, TD_BACKLOG, on_unix);
  if (rc != 0) {
    char dir[TD_PATH_BYTES_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    snprintf(err, err_len, "listen_unix %s: %s%s%s", path, uv_strerror(rc),
             rc == UV_ENOENT ? ": create the directory " : "", rc == UV_ENOENT ? dir : "");
    return TALLY_EIO;
  }
  if (chmod(path, d->cfg.unix_mode) != 0) {
    snprintf(err, err_len, "listen_unix %s: chmod: %s", path, strerror(errno));
    return TALLY_EIO;
  }
  td_log(TD_INFO, "listening on unix %s", path);
  return TALLY_OK;
}

static int parse_host_port(const char *s, struct sockaddr_storage *ss) {
  char host[TD_PATH_BYTES_MAX];
  const char *colon = strrchr(s, ':');
  if (!colon || !colon[1]) return -1;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535) return -1;
  size_t n = (size_t)(colon - s);
  if (n >= sizeof host) return -1;
  memcpy(host, s, n);
  host[n] = 0;
  if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
    host[n - 1] = 0;
    return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) == 0 ? 0 : -1;
  }
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ? 0 : -1;
}

static int listen_tcp(td_daemon *d, char *err, size_t err_len) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (parse_host_port(d->cfg.listen_tcp, &ss) != 0) {
    snprintf(err, err_len, "listen_tcp %s: expected HOST:PORT (an IP address, [v6]:port)", d->cfg.listen_tcp);
    return TALLY_ECONFIG;
  }
  uv_tcp_init(d->loop, &d->tcp_server);
  d->tcp_server.data = d;
  d->tcp_on = 1;
  int rc = uv_tcp_bind(&d->tcp_server, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&d->tcp_server, TD_BACKLOG, on_tcp);
  if (rc != 0) {
    snprintf(err, err_len, "listen_tcp %s: %s", d->cfg.listen_tcp, uv_strerror(rc));
    return TALLY_EIO;
  }
  struct sockaddr_storage got;
  int len = sizeof got;
  char host[64] = "?";
  int port = 0;
  if (uv_tcp_getsockname(&d->tcp_server, (struct sockaddr *)&got, &len) == 0) {
    if (got.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&got, host, sizeof host);
      port = ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&got, host, sizeof host);
      port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    }
  }
  td_log(TD_INFO, "listening on tls %s port %d%s", host, port,
         d->cfg.tls_client_ca[0] ? " (client certificate required)" : "");
  return TALLY_OK;
}

int td_listen_start(td_daemon *d, char *err, size_t err_len) {
  int rc = TALLY_OK;
  if (d->cfg.listen_unix[0]) rc = listen_unix(d, err, err_len);
  if (rc == TALLY_OK && d->cfg.listen_tcp[0]) rc = listen_tcp(d, err, err_len);
  return rc;
}

void td_listen_stop(td_daemon *d) {
  if (d->unix_on && !uv_is_closing((uv_handle_t *)&d->unix_server)) {
    uv_close((uv_handle_t *)&d->unix_server, NULL);
    unlink(d->cfg.listen_unix);
  }
  if (d->tcp_on && !uv_is_closing((uv_handle_t *)&d->tcp_server)) uv_close((uv_handle_t *)&d->tcp_server, NULL);
}
