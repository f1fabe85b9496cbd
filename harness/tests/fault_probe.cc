// A small program for the fault-plan tests, run as an exec'd child: it writes one byte into a
// socketpair and exits 0 when the outcome is the one named in argv[1] ("ok", or an errno name
// such as "EPIPE"), 1 otherwise. Built twice: linked with libipch_fault, and without any of our
// code (the tests LD_PRELOAD the library into that one).
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ok|<errno name>\n", argv[0]);
    return 2;
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 3;
  const ssize_t w = ::write(sv[0], "x", 1);
  const int e = errno;
  const char* got = w == 1 ? "ok" : e == EPIPE ? "EPIPE" : e == EINTR ? "EINTR" : e == EIO ? "EIO" : "other";
  std::printf("write -> %s\n", got);
  ::close(sv[0]);
  ::close(sv[1]);
  return std::strcmp(got, argv[1]) == 0 ? 0 : 1;
}
