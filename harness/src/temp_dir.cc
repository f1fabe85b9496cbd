#include "ipch/temp_dir.h"

#include <stdlib.h>

#include <system_error>

namespace ipch {

Result<TempDir> TempDir::Create(const std::string& prefix) {
  std::error_code ec;
  auto base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string tmpl = (base / (prefix + "XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) return ErrnoError("mkdtemp " + tmpl);  // mode 0700
  return TempDir(std::filesystem::path(tmpl));
}

TempDir& TempDir::operator=(TempDir&& o) noexcept {
  if (this != &o) {
    Remove();
    path_ = std::exchange(o.path_, {});
  }
  return *this;
}

TempDir::~TempDir() { Remove(); }

void TempDir::Remove() noexcept {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  path_.clear();
}

}  // namespace ipch
