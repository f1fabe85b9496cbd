#pragma once

#include <filesystem>

#include "ipch/result.h"

namespace ipch {

// A private (0700) directory, removed with its contents on destruction.
class TempDir {
 public:
  static Result<TempDir> Create(const std::string& prefix);
  TempDir() = default;
  TempDir(TempDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  TempDir& operator=(TempDir&& o) noexcept;
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  explicit TempDir(std::filesystem::path p) : path_(std::move(p)) {}
  void Remove() noexcept;
  std::filesystem::path path_;
};

}  // namespace ipch
