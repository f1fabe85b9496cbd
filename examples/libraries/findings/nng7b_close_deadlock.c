/* Item 7 (variant that hangs): nng_close deadlocks when a socket is closed while 1 MiB messages are in
 * flight to a buffered, non-reading pair1 peer in the same process. Intermittent: loops until alarm.
 * build: gcc -O0 -Wall -o nng7b nng7b_close_deadlock.c -lnng
 * run:   ./nng7b ; exit 1 = an nng_close never returned (alarm after 10 s), 0 = no hang in 30 rounds */
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <stdio.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>
static char path[100], ep[120]; static volatile int round_, which; static volatile double since;
static double ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static void bye(int s) {
  char b[128]; int n = snprintf(b, sizeof b, "ALARM: round %d: nng_close(%s) not returned after %.0f ms\n",
                                round_, which == 1 ? "sender" : which == 2 ? "receiver" : "-", which ? ms() - since : 0.0);
  write(1, b, n); unlink(path); _exit(which ? 1 : 3);
}
int main(void) {
  static char payload[1 << 20];
  signal(SIGALRM, bye); alarm(10); setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-n7b.sock", getpid()); snprintf(ep, sizeof ep, "ipc://%s", path);
  for (round_ = 1; round_ <= 30; round_++) {
    nng_socket s, r; int ok = 0;
    nng_pair1_open(&s); nng_pair1_open(&r);
    nng_setopt_int(s, NNG_OPT_SENDBUF, 16); nng_setopt_int(r, NNG_OPT_RECVBUF, 16);
    nng_setopt_ms(s, NNG_OPT_SENDTIMEO, 100);
    nng_listen(s, ep, NULL, 0); nng_dial(r, ep, NULL, 0); usleep(50000);
    for (int i = 0; i < 10; i++) ok += nng_send(s, payload, sizeof payload, 0) == 0;
    since = ms(); which = 1; nng_close(s);   /* close with transfers in flight */
    double t1 = ms() - since;
    since = ms(); which = 2; nng_close(r); which = 0;
    printf("round %2d: %d x 1 MiB accepted; close(sender) %.1f ms, close(receiver) %.1f ms\n",
           round_, ok, t1, ms() - since);
    unlink(path);
  }
  return 0;
}
