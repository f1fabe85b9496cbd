#include "ipch/deadline.h"

#include <cstdlib>

#ifndef IPCH_SLOWDOWN
#define IPCH_SLOWDOWN 1
#endif

namespace ipch {

int SlowdownFactor() {
  static const int factor = [] {
    if (const char* env = std::getenv("IPCH_SLOWDOWN")) {
      int v = std::atoi(env);
      if (v >= 1 && v <= 1000) return v;
    }
    return IPCH_SLOWDOWN;
  }();
  return factor;
}

}  // namespace ipch
