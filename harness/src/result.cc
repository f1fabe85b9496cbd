#include "ipch/result.h"

#include <cerrno>
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

namespace {

bool Names(const std::string& context, const char* call) { return context.find(call) != std::string::npos; }

// The limit an errno from a call that acquires something means, where it is one: "" otherwise.
const char* LimitReached(const std::string& context, int err) {
  if (err == EMFILE && Names(context, "mq_open")) {
    return "the process's descriptor limit, RLIMIT_NOFILE, or the user's POSIX queue memory, RLIMIT_MSGQUEUE, is "
           "reached";
  }
  if (err == EMFILE) return "the process's descriptor limit, RLIMIT_NOFILE, is reached";
  if (err == ENFILE) return "the system's open file limit, fs.file-max, is reached";
  if (err == ENOSPC && Names(context, "msgget")) return "the system's SysV queue limit, kernel.msgmni, is reached";
  if (err == ENOSPC && Names(context, "shmget")) {
    return "the system's SysV shared memory limits, kernel.shmmni or kernel.shmall, are reached";
  }
  if (err == ENOSPC && Names(context, "mq_open")) return "the POSIX queue limit, fs.mqueue.queues_max, is reached";
  if (err == ENOSPC && (Names(context, "fallocate") || Names(context, "ftruncate") || Names(context, "shm_open"))) {
    return "/dev/shm is full: its tmpfs size is reached";
  }
  return "";
}

}  // namespace

Error ErrnoError(std::string context, int err) {
  if (const char* limit = LimitReached(context, err); *limit != '\0') context += std::string("; ") + limit;
  return {std::error_code(err, std::system_category()), std::move(context)};
}

}  // namespace ipch
