// Does boost::interprocess::message_queue (1.74) survive a scribbled segment? A process with write
// access to the queue's /dev/shm object (its peer) fills it with 0xff, or writes one random word
// into the queue's header; a try_receive, try_send and get_num_msg then run in a child, which
// the parent watches: a crash, a hang (alarm 1 s) or a bogus message are the library trusting
// its shared segment (it has no integrity check); an exception is a refusal.
// build: g++ -std=c++17 -O1 -Wall -o repro_scribble repro_scribble.cc -lrt -lpthread
// run:   ./repro_scribble ; exit 1 = a scribble crashed, hung or delivered garbage, 0 = every one refused, 3 = timeout
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/interprocess/ipc/message_queue.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
namespace bip = boost::interprocess;
static char name[64];
static void bye(int) {
  shm_unlink(name);
  _exit(3);
}
// One scribble on a queue a child has open; 1 if the child crashed, hung or got a wrong message.
static int trial(const char *what, void (*scribble)(unsigned char *, size_t, unsigned), unsigned seed) {
  bip::message_queue::remove(name);
  { bip::message_queue q(bip::create_only, name, 4, 64, bip::permissions(0600)); }
  fflush(stdout);
  pid_t c = fork();
  if (c == 0) {
    signal(SIGALRM, SIG_DFL);  // a hang ends the child by SIGALRM, which the parent reports
    alarm(1);
    try {
      bip::message_queue q(bip::open_only, name);  // a live end: its queue is open and mapped
      q.send("hello", 5, 0);
      // The peer's scribble, through its own mapping of the same object.
      int fd = shm_open((std::string("/") + name).c_str(), O_RDWR, 0);
      struct stat st;
      fstat(fd, &st);
      auto *p = static_cast<unsigned char *>(mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
      close(fd);
      scribble(p, st.st_size, seed);
      char buf[64];
      bip::message_queue::size_type n = 0;
      unsigned prio = 0;
      unsigned long num = q.get_num_msg();
      bool got = q.try_receive(buf, sizeof buf, n, prio);
      bool sent = q.try_send("x", 1, 0);
      printf("  %-24s get_num_msg=%lu try_receive=%d (size %lu) try_send=%d\n", what, num, got, (unsigned long)n, sent);
      _exit(got && (n != 5 || memcmp(buf, "hello", 5) != 0) ? 4 : 0);
    } catch (const std::exception &e) {
      printf("  %-24s refused: %s\n", what, e.what());
      _exit(0);
    }
  }
  int status = 0;
  waitpid(c, &status, 0);
  bip::message_queue::remove(name);
  if (WIFSIGNALED(status)) {
    printf("  %-24s child killed by signal %d (%s)\n", what, WTERMSIG(status),
           WTERMSIG(status) == SIGALRM ? "hung: alarm" : strsignal(WTERMSIG(status)));
    return 1;
  }
  if (WEXITSTATUS(status) == 4) {
    printf("  %-24s delivered a wrong message\n", what);
    return 1;
  }
  return 0;
}
static void all_ff(unsigned char *p, size_t n, unsigned) { memset(p, 0xff, n); }
// One random word at 8-byte offset `seed` of the segment (the header: index pointer, sizes, count, mutex, ...).
static void one_word(unsigned char *p, size_t, unsigned seed) {
  std::mt19937_64 rng(seed);
  uint64_t w = rng();
  memcpy(p + 8 * seed, &w, sizeof w);
}
int main() {
  signal(SIGALRM, bye);
  alarm(10);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  snprintf(name, sizeof name, "libprobe-%d-scribble", getpid());
  printf("boost %d.%d, /dev/shm/%s\n", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, name);
  int bad = trial("all bytes 0xff", all_ff, 0);
  for (unsigned s = 0; s < 24; ++s) bad |= trial(("random word at byte " + std::to_string(8 * s)).c_str(), one_word, s);
  bip::message_queue::remove(name);
  return bad;
}
