/* Item 8: second nng_listen on a live ipc:// path is refused (NNG_EADDRINUSE) but breaks the first listener?
 * build: gcc -O0 -Wall -o nng8 nng8_listen_twice.c -lnng
 * run:   ./nng8 [raw] ; exit 1 = first listener no longer takes new peers after the refused 2nd listen
 *        ("raw": instead of the 2nd nng_listen, just connect()+close() a plain AF_UNIX socket to the path) */
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/socket.h>
static char path[100], ep[120]; static volatile int added;
static void bye(int s) { unlink(path); _exit(3); }
static void cb(nng_pipe p, nng_pipe_ev ev, void *x) { added++; }
/* fresh dialer sends "ping"; does listener socket l receive it? */
static int probe(nng_socket l, const char *tag) {
  nng_socket d; char buf[8]; size_t sz = sizeof buf; int rc, rr, before = added;
  nng_pair1_open(&d); nng_setopt_ms(d, NNG_OPT_SENDTIMEO, 500);
  rc = nng_dial(d, ep, NULL, 0);
  if (rc == 0) rc = nng_send(d, "ping", 4, 0);
  rr = nng_recv(l, buf, &sz, 0);
  printf("%-26s dialer: dial+send=%d (%s); listener: new pipes=%d recv=%d (%s)\n", tag, rc, nng_strerror(rc),
         added - before, rr, nng_strerror(rr));
  nng_close(d); usleep(200000);   /* let pair1 drop the old pipe before the next probe */
  return rr;
}
int main(int argc, char **argv) {
  nng_socket a, b; struct stat st; int rc = 0, bad;
  signal(SIGALRM, bye); alarm(10);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-n8.sock", getpid()); snprintf(ep, sizeof ep, "ipc://%s", path);
  nng_pair1_open(&a); nng_setopt_ms(a, NNG_OPT_RECVTIMEO, 1000);
  nng_pipe_notify(a, NNG_PIPE_EV_ADD_POST, cb, NULL);
  printf("listen#1=%d\n", nng_listen(a, ep, NULL, 0));
  probe(a, "before 2nd listen (1)"); probe(a, "before 2nd listen (2)");
  nng_pair1_open(&b);
  if (argc > 1) { struct sockaddr_un sa = { AF_UNIX }; int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    strcpy(sa.sun_path, path); printf("raw connect=%d, closed\n", connect(fd, (void *)&sa, sizeof sa)); close(fd);
  } else { rc = nng_listen(b, ep, NULL, 0);
    printf("listen#2=%d (%s); path exists=%d\n", rc, nng_strerror(rc), stat(path, &st) == 0); }
  bad = probe(a, "after refused 2nd listen") != 0;
  nng_close(b);
  bad |= probe(a, "after closing 2nd socket") != 0;
  nng_close(a); unlink(path);
  return bad ? 1 : 0;
}
