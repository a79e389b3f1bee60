// Marks a descriptor close-on-exec. Asio opens and accepts sockets without
// SOCK_CLOEXEC, so a process that starts a child (a supervisor, a broker, a shell) would
// hand it every connection; the child would keep them open past their close.
#pragma once

#include <fcntl.h>

namespace msgtrans::net {

inline void close_on_exec(int fd) noexcept {
  if (fd < 0) return;
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) (void)::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

}  // namespace msgtrans::net
