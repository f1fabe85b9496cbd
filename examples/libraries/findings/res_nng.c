/* fd/thread footprint of nng 1.5.2 (pair1 over ipc://) and how fast descriptors go after nng_close (reaper).
 * build: gcc -O0 -Wall -o res_nng res_nng.c -lnng
 * run:   ./res_nng   (measurement only; exit 0, 3 = timeout) */
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <stdlib.h>
#include <signal.h>
#include "res_common.h"
static char path[100], ep[120];
static void bye(int s) { unlink(path); _exit(3); }
int main(int argc, char **argv) {
  nng_socket s, c; char b[8]; size_t sz = sizeof b;
  signal(SIGALRM, bye); alarm(10); setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-rn.sock", getpid()); snprintf(ep, sizeof ep, "ipc://%s", path);
  show("before first use");
  nng_pair1_open(&s); show("after 1st nng_pair1_open");
  nng_pair1_open(&c); struct res base = count();
  nng_listen(s, ep, NULL, 0); nng_dial(c, ep, NULL, 0); nng_send(c, "x", 1, 0); nng_recv(s, b, &sz, 0);
  show("after listen/dial/1 msg");
  double t0 = now_ms(); nng_close(c); nng_close(s); double tc = now_ms() - t0;
  show("right after 2x nng_close");
  double t = wait_fds(0, base.fd);
  printf("  2x nng_close took %.2f ms; socket fds gone %.2f ms after they returned\n", tc, t);
  show("after that");
  usleep(500000); show("500 ms later (no nng_fini)");
  if (argc < 2) { t0 = now_ms(); nng_fini(); printf("  nng_fini took %.2f ms\n", now_ms() - t0); show("right after nng_fini"); }
  unlink(path); return 0;
}
