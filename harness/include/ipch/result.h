// Result<T>, Error and the project's one error category, Errc.
// No exceptions cross a transport API: every fallible call returns a Result.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace ipch {

// The outcome classes every transport reports. Where none fits, the raw errno is kept
// (std::system_category) rather than folding several causes into one vague code.
enum class Errc : int {
  PeerClosed = 1,    // the other end is gone (closed, exited, killed, reset, never there)
  Timeout,           // the deadline passed while waiting
  WouldBlock,        // an already-expired deadline and nothing could be done at once
  MessageTooLarge,   // above max_message_size; nothing was sent
  Corrupt,           // bytes from the peer or shared memory violate the wire format
  OrphanedResource,  // a named object left behind by a dead owner that we may not reclaim
  AlreadyExists,     // the name or address is taken by a live owner or a foreign object
  PermissionDenied,  // ownership or mode of a resource is not what we require
  InvalidArgument,   // the caller's argument is malformed (bad address, name too long)
  Closed,            // the operation was called on an endpoint that we closed ourselves
};

const std::error_category& ErrcCategory() noexcept;
std::error_code make_error_code(Errc e) noexcept;
const char* ErrcName(Errc e) noexcept;

struct Error {
  std::error_code code;
  std::string context;  // what we were doing: "tcp connect 127.0.0.1:4000"

  bool Is(Errc e) const noexcept { return code == make_error_code(e); }
  std::string ToString() const;
};

Error MakeError(Errc e, std::string context);
// Captures errno (or the given value) in std::system_category.
Error ErrnoError(std::string context, int err = errno);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }
  bool Is(Errc e) const noexcept { return !ok() && error().Is(e); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  const Error& error() const& { return *error_; }
  Error&& error() && { return std::move(*error_); }
  bool Is(Errc e) const noexcept { return !ok() && error_->Is(e); }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

inline Status Ok() { return {}; }

}  // namespace ipch

namespace std {
template <>
struct is_error_code_enum<ipch::Errc> : true_type {};
}  // namespace std

// Early return on error; keeps call sites flat.
#define IPCH_RETURN_IF_ERROR(expr)                                  \
  do {                                                              \
    auto ipch_status_ = (expr);                                     \
    if (!ipch_status_.ok()) return std::move(ipch_status_).error(); \
  } while (0)
