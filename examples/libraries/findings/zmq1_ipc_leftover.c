/* Item 1: libzmq leaves ipc:// socket file after zmq_close + zmq_ctx_term?
 * build: gcc -O0 -Wall -o zmq1 zmq1_ipc_leftover.c $(pkg-config --cflags --libs libzmq)
 * run:   ./zmq1 ; exit 1 = file left behind (behaviour present), 0 = removed, 3 = timeout/error */
#include <zmq.h>
#include <stdio.h>
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>
static char path[108];
static void bye(int s) { unlink(path); _exit(3); }
int main(void) {
  struct stat st; char ep[128]; int rc, left;
  signal(SIGALRM, bye); alarm(10);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-z1.sock", getpid());
  snprintf(ep, sizeof ep, "ipc://%s", path);
  void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_PAIR);
  int lin = 0; zmq_setsockopt(s, ZMQ_LINGER, &lin, sizeof lin);
  rc = zmq_bind(s, ep);
  printf("zmq %d.%d.%d bind=%d exists_after_bind=%d\n", ZMQ_VERSION_MAJOR, ZMQ_VERSION_MINOR,
         ZMQ_VERSION_PATCH, rc, stat(path, &st) == 0);
  /* connect a peer and exchange a message so the listener has really been used */
  void *c = zmq_socket(ctx, ZMQ_PAIR); zmq_setsockopt(c, ZMQ_LINGER, &lin, sizeof lin);
  zmq_connect(c, ep); zmq_send(c, "x", 1, 0); char b[4]; zmq_recv(s, b, 4, 0);
  zmq_close(c);
  zmq_close(s);
  printf("exists_after_close=%d\n", stat(path, &st) == 0);
  zmq_ctx_term(ctx);
  left = stat(path, &st) == 0;
  printf("exists_after_ctx_term=%d\n", left);
  unlink(path);
  return left ? 1 : 0;
}
