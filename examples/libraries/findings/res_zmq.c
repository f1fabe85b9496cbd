/* fd/thread footprint of libzmq 4.3.4 (PAIR over ipc://) and how fast descriptors go after close/term.
 * build: gcc -O0 -Wall -o res_zmq res_zmq.c $(pkg-config --cflags --libs libzmq)
 * run:   ./res_zmq   (measurement only; exit 0, 3 = timeout) */
#include <zmq.h>
#include <stdlib.h>
#include <signal.h>
#include "res_common.h"
static char path[108];
static void bye(int s) { unlink(path); _exit(3); }
int main(void) {
  char ep[128], b[8]; int z = 0;
  signal(SIGALRM, bye); alarm(10); setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-rz.sock", getpid()); snprintf(ep, sizeof ep, "ipc://%s", path);
  show("before first use");
  void *ctx = zmq_ctx_new(); show("after zmq_ctx_new");
  void *s = zmq_socket(ctx, ZMQ_PAIR), *c = zmq_socket(ctx, ZMQ_PAIR); show("after 2x zmq_socket");
  struct res base = count();
  zmq_setsockopt(s, ZMQ_LINGER, &z, sizeof z); zmq_setsockopt(c, ZMQ_LINGER, &z, sizeof z);
  zmq_bind(s, ep); zmq_connect(c, ep); zmq_send(c, "x", 1, 0); zmq_recv(s, b, sizeof b, 0);
  show("after bind/connect/1 msg");
  zmq_close(c); zmq_close(s);
  show("right after 2x zmq_close");
  double t = wait_fds(0, base.fd - 2);   /* connection + listener sockets and both mailboxes gone */
  printf("  socket fds gone %.2f ms after zmq_close returned\n", t);
  show("after that");
  double t0 = now_ms(); zmq_ctx_term(ctx); printf("  zmq_ctx_term took %.2f ms\n", now_ms() - t0);
  show("right after zmq_ctx_term");
  unlink(path); return 0;
}
