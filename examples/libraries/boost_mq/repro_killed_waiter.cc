// A receiver SIGKILLed while it waits in boost::interprocess::message_queue::timed_receive (1.74):
// can the survivor still send? The dead process was a waiter of the queue's process-shared
// condition variable (or held its mutex, for the microseconds around each wait), and neither is
// robust: the survivor's try_sends, which never wait for room, may then block for good in the
// mutex or in notify_one. The receiver waits in 50 ms slices, as the ipch adapter does; the
// parent kills it at a random moment and then sends 8 messages in a grandchild it watches for 1 s.
// build: g++ -std=c++17 -O1 -Wall -o repro_killed_waiter repro_killed_waiter.cc -lrt -lpthread
// run:   ./repro_killed_waiter ; exit 1 = a try_send blocked (gdb -p shows where), 0 = never in 40 rounds, 3 = timeout
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <csignal>
#include <cstdio>
#include <random>
namespace bip = boost::interprocess;
static char name[64];
static void bye(int) {
  bip::message_queue::remove(name);
  _exit(3);
}
int main(int argc, char** argv) {
  signal(SIGALRM, bye);
  alarm(10);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  snprintf(name, sizeof name, "libprobe-%d-waiter", getpid());
  const bool keep = argc > 1;  // leave the blocked sender for gdb (kill it yourself)
  std::mt19937 rng(getpid());
  int found = 0;
  for (int round = 0; round < 40 && !found; ++round) {
    bip::message_queue::remove(name);
    { bip::message_queue q(bip::create_only, name, 8, 64, bip::permissions(0600)); }
    pid_t waiter = fork();
    if (waiter == 0) {
      bip::message_queue q(bip::open_only, name);
      char b[64];
      bip::message_queue::size_type n;
      unsigned p;
      for (;;) {
        auto until = boost::posix_time::microsec_clock::universal_time() + boost::posix_time::milliseconds(50);
        q.timed_receive(b, sizeof b, n, p, until);
      }
    }
    const timespec pause{0, static_cast<long>(1000000 + rng() % 60000000)};
    nanosleep(&pause, nullptr);
    kill(waiter, SIGKILL);
    waitpid(waiter, nullptr, 0);
    pid_t sender = fork();
    if (sender == 0) {
      bip::message_queue q(bip::open_only, name);
      for (int i = 0; i < 8; ++i) q.try_send("x", 1, 0);  // 8 fit: these never wait for room
      _exit(0);
    }
    int st = 0;
    const timespec tick{0, 10000000};  // 10 ms, 100 times: 1 s
    for (int i = 0; i < 100 && waitpid(sender, &st, WNOHANG) == 0; ++i) nanosleep(&tick, nullptr);
    if (kill(sender, 0) == 0 && waitpid(sender, &st, WNOHANG) == 0) {
      printf("round %d: receiver killed after %ld ms; the survivor's try_sends still blocked after 1 s (pid %d)\n",
             round, pause.tv_nsec / 1000000, sender);
      if (!keep) kill(sender, SIGKILL), waitpid(sender, nullptr, 0);
      found = 1;
    }
  }
  if (!found) printf("40 rounds: every try_send returned\n");
  if (!keep) bip::message_queue::remove(name);
  return found;
}
