/* Closing an nng socket whose listener has just accepted a connection (the dialer's nng_dial has
 * returned, the listener's side is still negotiating) leaves two socket descriptors open for
 * good: the accepted connection and the dialer's, which never sees its peer go.
 * build: gcc -O0 -Wall -o repro_close_nego_leak repro_close_nego_leak.c -lnng
 * run:   ./repro_close_nego_leak [tcp|ipc] ; exit 1 = descriptors left behind (behaviour present),
 *        0 = none in 50 rounds, 3 = timed out */
#include <dirent.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static char path[100];
static void bye(int s) {
  unlink(path);
  _exit(3);
}
static int sockets_open(void) { /* socket descriptors of this process */
  int n = 0;
  char p[300], l[64];
  struct dirent *e;
  DIR *d = opendir("/proc/self/fd");
  while ((e = readdir(d)) != NULL) {
    snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
    ssize_t k = readlink(p, l, sizeof l - 1);
    if (k > 0) {
      l[k] = 0;
      n += strncmp(l, "socket:", 7) == 0;
    }
  }
  closedir(d);
  return n;
}
int main(int argc, char **argv) {
  int ipc = argc > 1 && strcmp(argv[1], "ipc") == 0, leaked = 0, rounds = 0;
  signal(SIGALRM, bye);
  alarm(10);
  setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-nego.sock", getpid());
  nng_socket w;
  nng_pair1_open(&w);
  nng_close(w);
  usleep(100000); /* nng's own descriptors first */
  const int base = sockets_open();
  for (; rounds < 50; rounds++) {
    nng_socket l, c;
    nng_listener ll;
    char url[120];
    int port = 0;
    nng_pair1_open(&l);
    nng_pair1_open(&c);
    if (ipc)
      snprintf(url, sizeof url, "ipc://%s", path);
    else
      strcpy(url, "tcp://127.0.0.1:0");
    nng_listener_create(&ll, l, url);
    nng_listener_start(ll, 0);
    if (!ipc) {
      nng_listener_get_int(ll, NNG_OPT_TCP_BOUND_PORT, &port);
      snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    }
    nng_dial(c, url, NULL, 0);
    nng_close(l); /* at once: the listener's side of the new connection is negotiating */
    usleep(50000);
    nng_close(c);
    usleep(100000);
    if (sockets_open() > base) break;
  }
  if (rounds < 50) {
    usleep(2000000); /* not the reaper being late: still there 2 s later */
    leaked = sockets_open() - base;
    printf("round %d: %d socket descriptor(s) still open 2 s after both nng_close calls\n", rounds, leaked);
  } else {
    printf("no descriptor left behind in 50 rounds\n");
  }
  unlink(path);
  return leaked > 0 ? 1 : 0;
}
