/* notify.c — systemd's readiness protocol without libsystemd: one datagram
 * ("READY=1", "STOPPING=1", ...) to the unix socket named by $NOTIFY_SOCKET.
 * A name starting with '@' is in the abstract namespace (the '@' stands for
 * a leading NUL byte). Not under systemd (no NOTIFY_SOCKET): nothing to do. */
#include "tallyd.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int td_notify(const char *state) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) return 0;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t n = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path) return -1;
  memcpy(sa.sun_path, path, n);
  if (path[0] == '@') sa.sun_path[0] = 0;
  /* An abstract name's length is exact (no NUL ends it); a path's includes its NUL. */
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
  int saved = errno;
  close(fd);
  errno = saved;
  return sent == (ssize_t)strlen(state) ? 0 : -1;
}
