// A process SIGKILLed inside a boost::interprocess::message_queue (1.74) call leaves the queue's
// mutex locked (it is not robust), and every later call blocks in its lock for good: a
// timed_receive then ignores its deadline. A child loops try_send/try_receive; the parent kills it
// at once and then asks for a message with a 100 ms deadline in a grandchild it watches for 1 s.
// build: g++ -std=c++17 -O1 -Wall -o repro_killed_holder repro_killed_holder.cc -lrt -lpthread
// run:   ./repro_killed_holder ; exit 1 = a timed_receive overran its deadline, 0 = never in 50 tries, 3 = timeout
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <csignal>
#include <cstdio>
#include <string>
namespace bip = boost::interprocess;
static char name[64];
static void bye(int) {
  bip::message_queue::remove(name);
  _exit(3);
}
int main() {
  signal(SIGALRM, bye);
  alarm(10);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  snprintf(name, sizeof name, "libprobe-%d-holder", getpid());
  int found = 0;
  for (int round = 0; round < 50 && !found; ++round) {
    bip::message_queue::remove(name);
    { bip::message_queue q(bip::create_only, name, 8, 64, bip::permissions(0600)); }
    pid_t busy = fork();
    if (busy == 0) {  // the peer: in and out of the queue's lock all the time
      bip::message_queue q(bip::open_only, name);
      char b[64];
      bip::message_queue::size_type n;
      unsigned p;
      for (;;) {
        q.try_send("x", 1, 0);
        q.try_receive(b, sizeof b, n, p);
      }
    }
    timespec ms{0, 1000000};
    nanosleep(&ms, nullptr);
    kill(busy, SIGKILL);
    waitpid(busy, nullptr, 0);
    pid_t asker = fork();
    if (asker == 0) {  // the survivor: a receive that must give up after 100 ms
      bip::message_queue q(bip::open_only, name);
      char b[64];
      bip::message_queue::size_type n;
      unsigned p;
      auto until = boost::posix_time::microsec_clock::universal_time() + boost::posix_time::milliseconds(100);
      while (q.timed_receive(b, sizeof b, n, p, until)) {
      }  // drain what the peer left, then time out
      _exit(0);
    }
    int st = 0;
    const timespec tick{0, 10000000};  // 10 ms, 100 times: 1 s
    for (int i = 0; i < 100 && waitpid(asker, &st, WNOHANG) == 0; ++i) nanosleep(&tick, nullptr);
    if (waitpid(asker, &st, WNOHANG) == 0) {
      printf("round %d: peer killed inside the queue; timed_receive(100 ms) still blocked after 1 s\n", round);
      kill(asker, SIGKILL);
      waitpid(asker, nullptr, 0);
      found = 1;
    }
  }
  if (!found) printf("50 rounds: every timed_receive returned by its deadline\n");
  bip::message_queue::remove(name);
  return found;
}
