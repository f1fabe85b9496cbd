/* A read error on an nng pipe (the socket read failing with ENOMEM, which recv(2) lists) is never
 * reported: nng closes the pipe, and the socket's user only sees its peer vanish.
 * The program interposes the read calls nng makes (readv, recvmsg, read, recv) and fails the next
 * read of a socket descriptor once with ENOMEM, then waits for a message the peer sent.
 * build: gcc -O0 -Wall -o repro_read_errno repro_read_errno.c -lnng -ldl
 * run:   ./repro_read_errno ; exit 1 = the errno never reaches the caller (behaviour present),
 *        0 = some nng call returned it, 3 = timed out */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
static char path[100], ep[120];
static volatile int armed, injected, removed;
static void bye(int s) {
  unlink(path);
  _exit(3);
}
/* Fails the next read of a socket once with ENOMEM (nng's own wake-up descriptors are not sockets). */
static int fail_now(int fd) {
  struct stat st;
  if (!armed || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  armed = 0;
  injected = 1;
  errno = ENOMEM;
  return 1;
}
ssize_t readv(int fd, const struct iovec *iov, int n) {
  static ssize_t (*real)(int, const struct iovec *, int);
  if (!real) real = dlsym(RTLD_NEXT, "readv");
  return fail_now(fd) ? -1 : real(fd, iov, n);
}
ssize_t recvmsg(int fd, struct msghdr *m, int f) {
  static ssize_t (*real)(int, struct msghdr *, int);
  if (!real) real = dlsym(RTLD_NEXT, "recvmsg");
  return fail_now(fd) ? -1 : real(fd, m, f);
}
ssize_t read(int fd, void *b, size_t n) {
  static ssize_t (*real)(int, void *, size_t);
  if (!real) real = dlsym(RTLD_NEXT, "read");
  return fail_now(fd) ? -1 : real(fd, b, n);
}
ssize_t recv(int fd, void *b, size_t n, int f) {
  static ssize_t (*real)(int, void *, size_t, int);
  if (!real) real = dlsym(RTLD_NEXT, "recv");
  return fail_now(fd) ? -1 : real(fd, b, n, f);
}
static void cb(nng_pipe p, nng_pipe_ev ev, void *x) { removed = 1; }
int main(void) {
  nng_socket l, d;
  char buf[16];
  size_t sz = sizeof buf;
  int rv, rs, rr;
  signal(SIGALRM, bye);
  alarm(10);
  setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-rerr.sock", getpid());
  snprintf(ep, sizeof ep, "ipc://%s", path);
  nng_pair1_open(&l);
  nng_pair1_open(&d);
  nng_pipe_notify(l, NNG_PIPE_EV_REM_POST, cb, NULL);
  nng_setopt_ms(l, NNG_OPT_RECVTIMEO, 1000);
  nng_setopt_ms(d, NNG_OPT_SENDTIMEO, 1000);
  nng_listen(l, ep, NULL, 0);
  nng_dial(d, ep, NULL, 0);
  usleep(100000);
  armed = 1; /* the listener's pipe reads next: that read fails */
  rs = nng_send(d, "x", 1, 0);
  rv = nng_recv(l, buf, &sz, 0);
  usleep(100000);
  armed = 0;
  rr = nng_recv(l, buf, &sz, NNG_FLAG_NONBLOCK);
  printf("ENOMEM injected=%d; dialer nng_send=%d (%s)\n", injected, rs, nng_strerror(rs));
  printf("listener nng_recv=%d (%s); pipe removed=%d; next nng_recv=%d (%s)\n", rv, nng_strerror(rv), removed, rr,
         nng_strerror(rr));
  nng_close(d);
  nng_close(l);
  unlink(path);
  if (!injected) return 3;
  /* The errno would come back as NNG_ENOMEM (nng's code for it) or NNG_ESYSERR|ENOMEM. */
  return (rv == NNG_ENOMEM || rv == (NNG_ESYSERR | ENOMEM) || rr == NNG_ENOMEM) ? 0 : 1;
}
