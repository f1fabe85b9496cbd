// fd/thread footprint of boost::interprocess::message_queue 1.74 (create, send/receive, destroy, remove).
// build: g++ -O0 -Wall -o res_boost res_boost.cc -lrt -lpthread
// run:   ./res_boost   (measurement only; exit 0, 3 = timeout)
#include <boost/interprocess/ipc/message_queue.hpp>
#include <cstdlib>
#include <csignal>
#include <sys/mman.h>
#include "res_common.h"
namespace bip = boost::interprocess;
static char name[64];
static void bye(int) { shm_unlink(name); _exit(3); }
static void showm(const char *tag) {   // plus: number of /dev/shm mappings in /proc/self/maps
  char l[512]; int m = 0; FILE *f = fopen("/proc/self/maps", "r");
  while (fgets(l, sizeof l, f)) m += strstr(l, "/dev/shm/") != NULL;
  fclose(f); show(tag); printf("%-34s   /dev/shm mappings=%d\n", "", m); }
int main() {
  signal(SIGALRM, bye); alarm(10); setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(name, sizeof name, "libprobe-%d-rb", getpid());
  showm("before first use");
  try {
    bip::message_queue q(bip::create_only, name, 8, 64); showm("after create_only");
    bip::message_queue q2(bip::open_only, name); showm("after 2nd handle (open_only)");
    char b[64]; bip::message_queue::size_type n; unsigned prio;
    q.send("x", 1, 0); q2.receive(b, sizeof b, n, prio); showm("after send/receive");
  } catch (const std::exception &e) { printf("exception: %s\n", e.what()); }
  showm("after both destructors");
  bip::message_queue::remove(name); showm("after message_queue::remove");
  (void)wait_fds; return 0;
}
