/* An exclusive pair1 socket that already has its peer: a second dialer's nng_dial returns 0 (the
 * handshake completes), its nng_send returns 0, and then the listener drops that pipe. The message
 * is never delivered, not even once the first peer has gone; the second dialer learns of it only
 * from its pipe's removal (NNG_PIPE_EV_REM_POST), after its send had succeeded.
 * build: gcc -O0 -Wall -o repro_pair1_extra_peer repro_pair1_extra_peer.c -lnng
 * run:   ./repro_pair1_extra_peer ; exit 1 = the accepted message was lost (behaviour present),
 *        0 = it arrived or the send failed, 3 = timed out */
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static char path[100], ep[120];
static volatile int added, removed;
static void bye(int s) {
  unlink(path);
  _exit(3);
}
static void cb(nng_pipe p, nng_pipe_ev ev, void *x) {
  if (ev == NNG_PIPE_EV_ADD_POST) added++;
  if (ev == NNG_PIPE_EV_REM_POST) removed++;
}
int main(void) {
  nng_socket l, a, b;
  char buf[16];
  size_t sz;
  int rd, rs, rv, bad;
  signal(SIGALRM, bye);
  alarm(10);
  setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-pair1x.sock", getpid());
  snprintf(ep, sizeof ep, "ipc://%s", path);
  nng_pair1_open(&l);
  nng_pair1_open(&a);
  nng_pair1_open(&b);
  nng_setopt_ms(l, NNG_OPT_RECVTIMEO, 1000);
  nng_pipe_notify(b, NNG_PIPE_EV_ADD_POST, cb, NULL);
  nng_pipe_notify(b, NNG_PIPE_EV_REM_POST, cb, NULL);
  nng_listen(l, ep, NULL, 0);
  nng_dial(a, ep, NULL, 0);
  usleep(100000);                /* a: the listener's one peer */
  rd = nng_dial(b, ep, NULL, 0); /* b: one too many */
  rs = nng_send(b, "second", 6, 0);
  printf("second dialer: nng_dial=%d (%s), nng_send=%d (%s); its pipes added=%d, removed=%d so far\n", rd,
         nng_strerror(rd), rs, nng_strerror(rs), added, removed);
  usleep(200000);
  printf("200 ms later: the second dialer's pipes removed=%d (nng redials; each is dropped)\n", removed);
  nng_close(a); /* the first peer goes: the place is free */
  sz = sizeof buf;
  rv = nng_recv(l, buf, &sz, 0);
  printf("listener, after the first peer left: nng_recv=%d (%s)\n", rv, nng_strerror(rv));
  bad = rd == 0 && rs == 0 && (rv != 0 || sz != 6 || memcmp(buf, "second", 6) != 0);
  nng_close(b);
  nng_close(l);
  unlink(path);
  return bad ? 1 : 0;
}
