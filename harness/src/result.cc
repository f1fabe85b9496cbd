#include "ipch/result.h"

#include <cstring>

namespace ipch {
namespace {

class ErrcCategoryImpl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ipch"; }
  std::string message(int v) const override { return ErrcName(static_cast<Errc>(v)); }
};

}  // namespace

const char* ErrcName(Errc e) noexcept {
  switch (e) {
    case Errc::PeerClosed:
      return "PeerClosed";
    case Errc::Timeout:
      return "Timeout";
    case Errc::WouldBlock:
      return "WouldBlock";
    case Errc::MessageTooLarge:
      return "MessageTooLarge";
    case Errc::Corrupt:
      return "Corrupt";
    case Errc::OrphanedResource:
      return "OrphanedResource";
    case Errc::AlreadyExists:
      return "AlreadyExists";
    case Errc::PermissionDenied:
      return "PermissionDenied";
    case Errc::InvalidArgument:
      return "InvalidArgument";
    case Errc::Closed:
      return "Closed";
  }
  return "unknown ipch error";
}

const std::error_category& ErrcCategory() noexcept {
  static const ErrcCategoryImpl category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), ErrcCategory()}; }

std::string Error::ToString() const {
  std::string s = code.category() == ErrcCategory() ? std::string(ErrcName(static_cast<Errc>(code.value())))
                                                    : std::string(code.category().name()) + ":" + code.message();
  if (!context.empty()) s += " (" + context + ")";
  return s;
}

Error MakeError(Errc e, std::string context) { return {make_error_code(e), std::move(context)}; }

Error ErrnoError(std::string context, int err) {
  return {std::error_code(err, std::system_category()), std::move(context)};
}

}  // namespace ipch
