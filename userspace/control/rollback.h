// Undo log for all-or-nothing changes: the undo steps run in reverse order when the Rollback is
// destroyed, unless Commit() was called. Attach (control/attach.cc) and the config reconcile
// (config/reconcile.cc) share it, so a failure half-way leaves the host as it was.
#ifndef CSUMFIX_USERSPACE_CONTROL_ROLLBACK_H_
#define CSUMFIX_USERSPACE_CONTROL_ROLLBACK_H_

#include <functional>
#include <utility>
#include <vector>

namespace csumfix::control {

class Rollback {
 public:
  Rollback() = default;
  Rollback(const Rollback&) = delete;
  Rollback& operator=(const Rollback&) = delete;
  ~Rollback() {
    if (committed_) return;
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) (*it)();
  }
  // Records how to undo a step that has just taken effect.
  void Add(std::function<void()> undo) { undo_.push_back(std::move(undo)); }
  // Keeps every step: nothing is undone.
  void Commit() { committed_ = true; }
  size_t size() const { return undo_.size(); }

 private:
  std::vector<std::function<void()>> undo_;
  bool committed_ = false;
};

}  // namespace csumfix::control

#endif  // CSUMFIX_USERSPACE_CONTROL_ROLLBACK_H_
