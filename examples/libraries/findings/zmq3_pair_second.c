/* Item 3: a second PAIR connector to a bound PAIR: zmq_send succeeds, messages silently dropped?
 * build: gcc -O0 -Wall -o zmq3 zmq3_pair_second.c $(pkg-config --cflags --libs libzmq)
 * run:   ./zmq3 ; exit 1 = 2nd connector's sends succeed but never arrive, 0 = not so, 3 = timeout */
#include <zmq.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
static char path[108];
static void bye(int s) { unlink(path); _exit(3); }
static void *sock(void *ctx) { void *s = zmq_socket(ctx, ZMQ_PAIR); int v = 0, t = 300;
  zmq_setsockopt(s, ZMQ_LINGER, &v, sizeof v); zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t); return s; }
int main(void) {
  char ep[128], buf[16]; int ok2 = 0, got2 = 0, r;
  signal(SIGALRM, bye); alarm(10);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-z3.sock", getpid());
  snprintf(ep, sizeof ep, "ipc://%s", path);
  void *ctx = zmq_ctx_new(), *b = sock(ctx), *c1 = sock(ctx), *c2 = sock(ctx);
  zmq_bind(b, ep);
  zmq_connect(c1, ep); zmq_send(c1, "from-c1", 7, 0);
  r = zmq_recv(b, buf, sizeof buf, 0); printf("binder got from c1: %d\n", r);
  zmq_socket_monitor(c2, "inproc://mon2", ZMQ_EVENT_ALL);
  void *mon = zmq_socket(ctx, ZMQ_PAIR); zmq_connect(mon, "inproc://mon2");
  zmq_connect(c2, ep);
  for (int i = 0; i < 5; i++) {
    r = zmq_send(c2, "from-c2", 7, ZMQ_DONTWAIT); if (r == 7) ok2++;
    printf("c2 zmq_send #%d -> %d\n", i, r);
  }
  usleep(300000);
  while ((r = zmq_recv(b, buf, sizeof buf, 0)) >= 0) {
    buf[r] = 0; printf("binder got: %s\n", buf); if (!strcmp(buf, "from-c2")) got2++; }
  zmq_send(c1, "c1-again", 8, 0); r = zmq_recv(b, buf, sizeof buf, 0);
  printf("binder still gets c1: %d\n", r);
  int t = 100; zmq_setsockopt(mon, ZMQ_RCVTIMEO, &t, sizeof t);
  zmq_msg_t m; zmq_msg_init(&m);  /* c2 monitor events: first frame = u16 event, u32 value */
  while (zmq_msg_recv(&m, mon, 0) >= 0) {
    if (zmq_msg_size(&m) == 6) { unsigned short ev; memcpy(&ev, zmq_msg_data(&m), 2); printf("c2 event 0x%04x\n", ev); }
  }
  zmq_msg_close(&m); zmq_close(mon);
  printf("c2: %d/5 sends returned success, %d delivered\n", ok2, got2);
  zmq_close(c1); zmq_close(c2); zmq_close(b); zmq_ctx_term(ctx); unlink(path);
  return (ok2 > 0 && got2 == 0) ? 1 : 0;
}
