/* shared by res_*.c: count /proc/self/fd by kind and /proc/self/task; poll until a condition holds */
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>
struct res { int fd, sock, evfd, epoll, other, thr; };
static struct res count(void) {
  struct res r = { 0 }; char p[300], l[128]; struct dirent *e; DIR *d = opendir("/proc/self/fd");
  while ((e = readdir(d))) { if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) continue;
    snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name); ssize_t n = readlink(p, l, sizeof l - 1); l[n > 0 ? n : 0] = 0;
    r.fd++; if (!strncmp(l, "socket:", 7)) r.sock++; else if (strstr(l, "eventfd")) r.evfd++;
    else if (strstr(l, "eventpoll")) r.epoll++; else r.other++; }
  closedir(d); d = opendir("/proc/self/task");
  while ((e = readdir(d))) if (e->d_name[0] != '.') r.thr++;
  closedir(d); return r;
}
static void show(const char *tag) { struct res r = count();
  printf("%-34s fds=%2d (socket %d, eventfd %d, epoll %d, other %d) threads=%2d\n", tag, r.fd, r.sock, r.evfd, r.epoll, r.other, r.thr); }
static double now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
/* ms until count().sock <= want_sock and count().fd <= want_fd (polled every 50 us), -1 if not within 2 s */
static double wait_fds(int want_sock, int want_fd) { double t0 = now_ms();
  for (;;) { struct res r = count(); if (r.sock <= want_sock && r.fd <= want_fd) return now_ms() - t0;
    if (now_ms() - t0 > 2000) return -1;
    usleep(50); } }
