#include "ipch/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>

namespace ipch {

Status WriteFileAtomically(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::trunc | std::ios::binary);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.close();
    if (!f) {
      const int e = errno;
      std::remove(tmp.c_str());
      return ErrnoError("write " + tmp, e);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const Status st = ErrnoError("rename " + tmp + " to " + path, errno);
    std::remove(tmp.c_str());
    return st;
  }
  return Ok();
}

}  // namespace ipch
