// Item 10: boost::interprocess::message_queue(create_only, ...) gets mode 0644 in /dev/shm by default?
// build: g++ -O0 -Wall -o boost10 boost10_mq_mode.cc -lrt -lpthread
// run:   ./boost10 ; exit 1 = default-created queue is readable by others (S_IROTH), 0 = not, 3 = timeout
#include <boost/interprocess/ipc/message_queue.hpp>
#include <cstdio>
#include <csignal>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
namespace bip = boost::interprocess;
static char name[64];
static void bye(int) { shm_unlink(name); _exit(3); }
static unsigned mode_of(mode_t mask, const bip::permissions *perm) {
  umask(mask);
  bip::message_queue::remove(name);
  unsigned m = 0;
  try {
    if (perm) bip::message_queue q(bip::create_only, name, 4, 64, *perm);
    else      bip::message_queue q(bip::create_only, name, 4, 64);
    struct stat st;
    if (stat((std::string("/dev/shm/") + name).c_str(), &st) == 0) m = st.st_mode & 07777;
  } catch (const std::exception &e) { std::printf("exception: %s\n", e.what()); }
  bip::message_queue::remove(name);
  return m;
}
int main() {
  signal(SIGALRM, bye); alarm(10);
  snprintf(name, sizeof name, "libprobe-%d-mq10", getpid());
  std::printf("boost %d.%d, /dev/shm/%s\n", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, name);
  unsigned d022 = mode_of(022, nullptr), d077 = mode_of(077, nullptr), d000 = mode_of(0, nullptr);
  bip::permissions p600(0600), unr; unr.set_unrestricted();
  unsigned e600 = mode_of(022, &p600), eunr = mode_of(022, &unr);
  std::printf("default perms: umask 022 -> %04o, umask 077 -> %04o, umask 000 -> %04o\n", d022, d077, d000);
  std::printf("explicit permissions(0600) -> %04o, set_unrestricted() -> %04o (umask 022)\n", e600, eunr);
  bip::message_queue::remove(name);
  return (d022 & S_IROTH) ? 1 : 0;
}
