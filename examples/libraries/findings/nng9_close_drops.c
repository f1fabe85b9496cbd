/* Item 9: messages accepted by nng_send are dropped at nng_close (receiver never gets them)?
 * Receiver = pair1 dialer in this process that only starts reading after the sender was closed.
 * (recvbuf>0 with 1 MiB messages is avoided here: that combination can deadlock nng_close, see nng7b)
 * build: gcc -O0 -Wall -o nng9 nng9_close_drops.c -lnng
 * run:   ./nng9 ; exit 1 = some accepted messages never arrive (behaviour present), 0 = all arrive */
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <stdio.h>
#include <signal.h>
#include <unistd.h>
static char path[100], ep[120];
static void bye(int s) { unlink(path); _exit(3); }
static int trial(int n, size_t size, int sendbuf, int recvbuf, int delay_ms) {
  static char payload[1 << 20]; nng_socket s, r; int ok = 0, got = 0;
  nng_pair1_open(&s); nng_pair1_open(&r);
  nng_setopt_int(s, NNG_OPT_SENDBUF, sendbuf); nng_setopt_int(r, NNG_OPT_RECVBUF, recvbuf);
  nng_setopt_ms(s, NNG_OPT_SENDTIMEO, 100); nng_setopt_ms(r, NNG_OPT_RECVTIMEO, 500);
  nng_listen(s, ep, NULL, 0); nng_dial(r, ep, NULL, 0); usleep(100000);
  for (int i = 0; i < n; i++) if (nng_send(s, payload, size, 0) == 0) ok++;
  if (delay_ms) usleep(delay_ms * 1000);
  nng_close(s);                               /* close right after the last accepted send */
  char *buf; size_t sz;
  while (nng_recv(r, &buf, &sz, NNG_FLAG_ALLOC) == 0) { got++; nng_free(buf, sz); }
  nng_close(r);
  printf("%4d x %7zu B, sendbuf=%3d recvbuf=%2d, close after %4d ms: nng_send accepted %4d, receiver got %4d\n",
         n, size, sendbuf, recvbuf, delay_ms, ok, got);
  unlink(path); usleep(100000);
  return ok - got;
}
int main(void) {
  signal(SIGALRM, bye); alarm(10); setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-n9.sock", getpid()); snprintf(ep, sizeof ep, "ipc://%s", path);
  int lost = trial(10, 16, 0, 0, 0);
  lost += trial(1000, 16, 1000, 0, 0);
  lost += trial(10, 1 << 20, 16, 0, 0);
  trial(1000, 16, 1000, 0, 1000);              /* waiting 1 s before close does not flush them */
  unlink(path);
  return lost > 0 ? 1 : 0;
}
