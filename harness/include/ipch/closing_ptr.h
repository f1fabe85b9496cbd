// Move-only owner of an endpoint's state (the pimpl of a Connection or Listener) that closes
// the state before letting go of it: when the endpoint is destroyed or moved over. The endpoint
// declares its moves and destructor and defaults them where State is complete; State has
// `Status Close()`, idempotent. A state still being built is not closed: it becomes an
// endpoint's only once it is handed over.
#pragma once

#include <memory>
#include <utility>

namespace ipch {

template <class State>
class ClosingPtr {
 public:
  ClosingPtr() = default;
  explicit ClosingPtr(std::unique_ptr<State> s) noexcept : p_(std::move(s)) {}
  ClosingPtr(ClosingPtr&&) noexcept = default;
  ClosingPtr& operator=(ClosingPtr&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::move(o.p_);
    }
    return *this;
  }
  ~ClosingPtr() { reset(); }

  State* get() const noexcept { return p_.get(); }
  State* operator->() const noexcept { return p_.get(); }
  State& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  void reset() noexcept {
    if (p_) (void)p_->Close();
    p_.reset();
  }

 private:
  std::unique_ptr<State> p_;
};

}  // namespace ipch
