/* Item 6: nng used in a forked child (no exec) after nng was initialised in the parent aborts?
 * build: gcc -O0 -Wall -o nng6 nng6_fork.c -lnng
 * run:   ./nng6 ; exit 1 = child aborted (behaviour present), 0 = child fine, 3 = timeout */
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>
static pid_t kid;
static void bye(int s) { if (kid > 0) kill(kid, SIGKILL); _exit(3); }
int main(void) {
  nng_socket s, s2; int st, rc;
  signal(SIGALRM, bye); alarm(10);
  rc = nng_pair1_open(&s);
  printf("parent: nng %s nng_pair1_open=%d\n", nng_version(), rc);
  fflush(stdout);
  if ((kid = fork()) == 0) {
    alarm(5);
    fprintf(stderr, "child: calling nng_pair1_open\n");
    rc = nng_pair1_open(&s2);             /* first nng call in the child */
    fprintf(stderr, "child: nng_pair1_open returned %d (%s)\n", rc, nng_strerror(rc));
    _exit(rc ? 2 : 0);
  }
  waitpid(kid, &st, 0); kid = 0;
  if (WIFSIGNALED(st)) printf("child killed by signal %d (%s)\n", WTERMSIG(st), strsignal(WTERMSIG(st)));
  else printf("child exit status %d\n", WEXITSTATUS(st));
  nng_close(s);
  return (WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT) ? 1 : 0;
}
