/* Item 2: second zmq_bind (other context) on a live ipc:// path succeeds and steals it?
 * build: gcc -O0 -Wall -o zmq2 zmq2_ipc_steal.c $(pkg-config --cflags --libs libzmq)
 * run:   ./zmq2 ; exit 1 = second bind succeeded and took new connections, 0 = refused, 3 = timeout */
#include <zmq.h>
#include <stdio.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>
static char path[108];
static void bye(int s) { unlink(path); _exit(3); }
static void *sock(void *ctx) { void *s = zmq_socket(ctx, ZMQ_PAIR); int v = 0, t = 500;
  zmq_setsockopt(s, ZMQ_LINGER, &v, sizeof v); zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t); return s; }
/* new connector sends "ping"; which binder receives it? */
static void probe(void *ctx, const char *ep, void *b1, void *b2, const char *tag) {
  void *c = sock(ctx); char buf[8];
  zmq_connect(c, ep); zmq_send(c, "ping", 4, 0);
  int r1 = zmq_recv(b1, buf, 8, 0), r2 = b2 ? zmq_recv(b2, buf, 8, 0) : -2;
  printf("%s: binder1 recv=%d binder2 recv=%d\n", tag, r1, r2); zmq_close(c);
}
int main(void) {
  char ep[128]; struct stat st, st2;
  signal(SIGALRM, bye); alarm(10);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-z2.sock", getpid());
  snprintf(ep, sizeof ep, "ipc://%s", path);
  void *ctx1 = zmq_ctx_new(), *ctx2 = zmq_ctx_new(), *ctx3 = zmq_ctx_new();
  void *b1 = sock(ctx1), *b2 = sock(ctx2);
  printf("bind1=%d\n", zmq_bind(b1, ep)); stat(path, &st);
  probe(ctx3, ep, b1, NULL, "before 2nd bind");
  int rc = zmq_bind(b2, ep); int e = errno; stat(path, &st2);
  printf("bind2=%d (%s) inode %lu -> %lu\n", rc, rc ? zmq_strerror(e) : "ok",
         (unsigned long)st.st_ino, (unsigned long)st2.st_ino);
  probe(ctx3, ep, b1, b2, "after 2nd bind ");
  zmq_close(b2); zmq_ctx_term(ctx2);  /* second binder goes away (does not unlink in 4.3.4) */
  printf("after binder2 closed: path exists=%d\n", stat(path, &st2) == 0);
  void *c = sock(ctx3); char buf[8];
  zmq_connect(c, ep); zmq_send(c, "ping", 4, ZMQ_DONTWAIT);
  printf("after binder2 closed: binder1 recv=%d (binder1 still bound, unreachable)\n", zmq_recv(b1, buf, 8, 0));
  zmq_close(c); zmq_close(b1); zmq_ctx_term(ctx1); zmq_ctx_term(ctx3);
  unlink(path);
  return rc == 0 ? 1 : 0;
}
