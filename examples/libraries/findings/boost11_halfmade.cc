// Item 11: failed ftruncate/mmap during message_queue(create_only) leaves a half-made /dev/shm object?
// build: g++ -O0 -Wall -o boost11 boost11_halfmade.cc -lrt -lpthread
// run:   ./boost11                      (ftruncate fails with EFBIG via RLIMIT_FSIZE=4096)
//        LD_PRELOAD=./boost11_shim.so LIBPROBE_FAIL=ftruncate ./boost11 shim   (ENOSPC)
//        LD_PRELOAD=./boost11_shim.so LIBPROBE_FAIL=mmap ./boost11 shim        (mmap ENOMEM)
// exit 1 = object left in /dev/shm after the failed constructor, 0 = nothing left, 3 = timeout/error
#include <boost/interprocess/ipc/message_queue.hpp>
#include <cstdio>
#include <csignal>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <unistd.h>
namespace bip = boost::interprocess;
static char name[64]; static volatile int left;
static void bye(int) { shm_unlink(name); write(1, "ALARM: still blocked, giving up\n", 32); _exit(left ? 1 : 3); }
int main(int argc, char **argv) {
  signal(SIGALRM, bye); alarm(10); setvbuf(stdout, nullptr, _IOLBF, 0);
  snprintf(name, sizeof name, "libprobe-%d-mq11", getpid());
  std::string path = std::string("/dev/shm/") + name;
  if (argc < 2) {               // make ftruncate beyond 4 KiB fail (EFBIG) instead of killing us (SIGXFSZ)
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = { 4096, 4096 }; setrlimit(RLIMIT_FSIZE, &rl);
  }
  struct stat st;
  try {
    bip::message_queue q(bip::create_only, name, 1000, 1000);   // ~1 MB segment
    std::printf("unexpected: queue created\n");
  } catch (const bip::interprocess_exception &e) {
    std::printf("create_only threw: \"%s\" (error_code %d, native %d)\n", e.what(), (int)e.get_error_code(), e.get_native_error());
  }
  if (stat(path.c_str(), &st) == 0) {
    left = 1;
    std::printf("left behind: %s mode %04o size %lld bytes\n", path.c_str(), (unsigned)(st.st_mode & 07777), (long long)st.st_size);
    alarm(3); std::printf("open_only on it (bounded by alarm(3))...\n");
    try { bip::message_queue q2(bip::open_only, name); std::printf("open_only on it: succeeded\n"); }
    catch (const bip::interprocess_exception &e) { std::printf("open_only on it: threw \"%s\" (error_code %d)\n", e.what(), (int)e.get_error_code()); }
    try { bip::message_queue q3(bip::create_only, name, 4, 64); std::printf("create_only retry: succeeded\n"); }
    catch (const bip::interprocess_exception &e) { std::printf("create_only retry: threw \"%s\"\n", e.what()); }
  } else std::printf("nothing left in /dev/shm\n");
  bip::message_queue::remove(name);
  return left;
}
