/* Item 4: with small ZMQ_LINGER, messages sent just before zmq_close are dropped when linger expires
 * (receiver not yet bound). Control: same with linger 2000 ms, receiver binds after close -> delivered.
 * build: gcc -O0 -Wall -o zmq4 zmq4_linger_drop.c $(pkg-config --cflags --libs libzmq)
 * run:   ./zmq4 ; exit 1 = message lost with short linger (behaviour present), 0 = delivered, 3 = timeout */
#include <zmq.h>
#include <stdio.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>
static char path[108];
static void bye(int s) { unlink(path); _exit(3); }
static double ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
/* returns bytes received by a late binder, -1 if nothing */
static int trial(const char *ep, int linger) {
  void *sctx = zmq_ctx_new(), *rctx = zmq_ctx_new(), *s = zmq_socket(sctx, ZMQ_PAIR);
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_connect(s, ep);                              /* nobody bound yet: message is queued */
  int sr = zmq_send(s, "last-words", 10, ZMQ_DONTWAIT);
  zmq_close(s);
  usleep(200000);                                  /* receiver is late by 200 ms */
  void *r = zmq_socket(rctx, ZMQ_PAIR); int t = 1000, z = 0; char buf[16];
  zmq_setsockopt(r, ZMQ_RCVTIMEO, &t, sizeof t); zmq_setsockopt(r, ZMQ_LINGER, &z, sizeof z);
  zmq_bind(r, ep);
  int got = zmq_recv(r, buf, sizeof buf, 0);
  double t0 = ms(); zmq_ctx_term(sctx);
  printf("linger=%4d ms: zmq_send=%d, late receiver recv=%d, sender ctx_term took %.0f ms\n",
         linger, sr, got, ms() - t0);
  zmq_close(r); zmq_ctx_term(rctx); unlink(path);
  return got;
}
int main(void) {
  char ep[128];
  signal(SIGALRM, bye); alarm(10);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-z4.sock", getpid());
  snprintf(ep, sizeof ep, "ipc://%s", path);
  int short_l = trial(ep, 50), long_l = trial(ep, 2000);
  unlink(path);
  return (short_l < 0 && long_l == 10) ? 1 : 0;
}
