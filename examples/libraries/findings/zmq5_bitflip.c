/* Item 5: ZMTP has no checksum: a payload byte flipped on the wire (by a tcp relay) is delivered as-is.
 * build: gcc -O0 -Wall -o zmq5 zmq5_bitflip.c $(pkg-config --cflags --libs libzmq) -lpthread
 * run:   ./zmq5 ; exit 1 = corrupted payload delivered as a message, 0 = not delivered / intact, 3 = timeout */
#define _GNU_SOURCE
#include <zmq.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <poll.h>
#include <pthread.h>
#include <arpa/inet.h>
static int lfd, zport;
static void bye(int s) { _exit(3); }
static void *relay(void *a) {   /* client <-> relay <-> zmq binder; flips one bit in client->binder data */
  int c = accept(lfd, 0, 0), u = socket(AF_INET, SOCK_STREAM, 0); char b[4096]; ssize_t n;
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(zport), .sin_addr.s_addr = htonl(0x7f000001) };
  connect(u, (void *)&sa, sizeof sa);
  struct pollfd p[2] = { { c, POLLIN }, { u, POLLIN } };
  for (;;) {
    if (poll(p, 2, -1) < 0) break;
    if (p[0].revents) { if ((n = read(c, b, sizeof b)) <= 0) break;
      char *hit = memmem(b, n, "PAYLOAD-0123456789", 18);
      if (hit) { hit[8] ^= 0x01; fprintf(stderr, "relay: flipped bit 0 of payload byte 8 in %zd-byte segment\n", n); }
      write(u, b, n); }
    if (p[1].revents) { if ((n = read(u, b, sizeof b)) <= 0) break; write(c, b, n); }
  }
  close(c); close(u); return 0;
}
int main(void) {
  char ep[64], buf[64]; size_t l = sizeof ep; pthread_t th; int z = 0, t = 2000;
  signal(SIGALRM, bye); alarm(10);
  void *ctx = zmq_ctx_new(), *r = zmq_socket(ctx, ZMQ_PAIR), *s = zmq_socket(ctx, ZMQ_PAIR);
  zmq_setsockopt(r, ZMQ_LINGER, &z, sizeof z); zmq_setsockopt(s, ZMQ_LINGER, &z, sizeof z);
  zmq_setsockopt(r, ZMQ_RCVTIMEO, &t, sizeof t);
  zmq_bind(r, "tcp://127.0.0.1:*"); zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &l);
  sscanf(strrchr(ep, ':') + 1, "%d", &zport);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) }; socklen_t sl = sizeof sa;
  lfd = socket(AF_INET, SOCK_STREAM, 0); bind(lfd, (void *)&sa, sl); listen(lfd, 1);
  getsockname(lfd, (void *)&sa, &sl);
  pthread_create(&th, 0, relay, 0);
  snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
  zmq_connect(s, ep);
  const char *msg = "PAYLOAD-0123456789";
  printf("sent : %s (rc=%d)\n", msg, zmq_send(s, msg, 18, 0));
  int n = zmq_recv(r, buf, sizeof buf - 1, 0);
  if (n >= 0) buf[n] = 0;
  printf("recv : %s (rc=%d)\n", n >= 0 ? buf : "(nothing)", n);
  zmq_close(s); zmq_close(r); zmq_ctx_term(ctx); close(lfd);
  return (n == 18 && memcmp(buf, msg, 18)) ? 1 : 0;
}
