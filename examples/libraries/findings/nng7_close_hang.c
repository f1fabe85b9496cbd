/* Item 7: nng_close hangs after nng_send to a peer that is not reading / was killed?
 * Peer = raw AF_UNIX client that does the SP pair1 handshake, then never reads (A, B) or is SIGKILLed (C);
 * D: peer is a real nng pair1 dialer in this process that never calls nng_recv.
 * (none of A-D hangs; the configuration that does hang is in nng7b_close_deadlock.c)
 * build: gcc -O0 -Wall -o nng7 nng7_close_hang.c -lnng -lpthread
 * run:   ./nng7 ; exit 1 = an nng_close hung (alarm fired), 0 = every close returned */
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <stdio.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/socket.h>
static char path[100], ep[120]; static pid_t kid;
static void bye(int s) { unlink(path); if (kid > 0) kill(kid, SIGKILL); write(1, "ALARM: hang\n", 12); _exit(1); }
static double ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static int rawpeer(void) {  /* SP header: 00 'S' 'P' 00 proto(0x0011 = pair1) 00 00 */
  struct sockaddr_un a = { AF_UNIX }; char h[8] = { 0, 'S', 'P', 0, 0, 0x11, 0, 0 }, r[8];
  int fd = socket(AF_UNIX, SOCK_STREAM, 0); snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  connect(fd, (void *)&a, sizeof a); write(fd, h, 8); read(fd, r, 8); return fd;
}
static nng_socket s; static char big[65536];
static void *blocked_send(void *x) { int rc = nng_send(s, big, sizeof big, 0); printf("  B: blocked nng_send returned %d (%s)\n", rc, nng_strerror(rc)); return 0; }
static void open_listen(void) { nng_pair1_open(&s); nng_listen(s, ep, NULL, 0); }
static int fill(void) { int n = 0; nng_setopt_ms(s, NNG_OPT_SENDTIMEO, 200);
  while (nng_send(s, big, sizeof big, 0) == 0) n++;
  return n; }
static void timed_close(const char *tag) { double t = ms(); int rc = nng_close(s); printf("  %s: nng_close=%d after %.1f ms\n", tag, rc, ms() - t); }
int main(void) {
  signal(SIGALRM, bye); alarm(10);
  snprintf(path, sizeof path, "/tmp/libprobe-%d-n7.sock", getpid()); snprintf(ep, sizeof ep, "ipc://%s", path);
  open_listen(); int fd = rawpeer();           /* A: connected, not reading, send until SENDTIMEO */
  printf("A: %d x 64KiB accepted before send timeout\n", fill()); timed_close("A"); close(fd);
  open_listen(); fd = rawpeer();               /* B: thread blocked in nng_send (no timeout) */
  nng_setopt_ms(s, NNG_OPT_SENDTIMEO, 200); fill(); nng_setopt_ms(s, NNG_OPT_SENDTIMEO, -1);
  pthread_t th; pthread_create(&th, 0, blocked_send, 0); usleep(300000);
  timed_close("B"); pthread_join(th, 0); close(fd);
  open_listen();                               /* C: peer process killed */
  if ((kid = fork()) == 0) { rawpeer(); pause(); _exit(0); }
  usleep(200000); nng_setopt_ms(s, NNG_OPT_SENDTIMEO, 200);
  printf("C: %d x 64KiB accepted while peer alive\n", fill());
  kill(kid, SIGKILL); waitpid(kid, 0, 0); kid = 0; usleep(100000);
  int rc = nng_send(s, big, sizeof big, 0);
  printf("C: nng_send after peer killed=%d (%s)\n", rc, nng_strerror(rc)); timed_close("C");
  open_listen(); nng_socket d; nng_pair1_open(&d); nng_dial(d, ep, NULL, 0); usleep(100000);
  printf("D: %d x 64KiB accepted by non-reading nng peer\n", fill()); timed_close("D"); nng_close(d);
  unlink(path); return 0;
}
