/* LD_PRELOAD shim for item 11: LIBPROBE_FAIL=ftruncate -> ftruncate() fails with ENOSPC;
 * LIBPROBE_FAIL=mmap -> shared file-backed mmap() fails with ENOMEM. Other calls pass through.
 * build: gcc -O0 -Wall -shared -fPIC -o boost11_shim.so boost11_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
static int want(const char *w) { const char *e = getenv("LIBPROBE_FAIL"); return e && !strcmp(e, w); }
int ftruncate(int fd, off_t len) {
  static int (*real)(int, off_t);
  if (want("ftruncate")) { errno = ENOSPC; return -1; }
  if (!real) real = (int (*)(int, off_t))dlsym(RTLD_NEXT, "ftruncate");
  return real(fd, len);
}
int ftruncate64(int fd, off_t len) { return ftruncate(fd, len); }
void *mmap(void *a, size_t l, int p, int f, int fd, off_t o) {
  static void *(*real)(void *, size_t, int, int, int, off_t);
  if (want("mmap") && (f & MAP_SHARED) && fd >= 0) { errno = ENOMEM; return MAP_FAILED; }
  if (!real) real = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
  return real(a, l, p, f, fd, o);
}
void *mmap64(void *a, size_t l, int p, int f, int fd, off_t o) { return mmap(a, l, p, f, fd, o); }
