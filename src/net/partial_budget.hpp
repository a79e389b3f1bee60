// What a stream connection (tcp, ws) holds of the server-wide inbound budget for the
// message it is receiving: nothing up to a small allowance; past it, the message's whole
// declared size, taken before more of it is read, so that one that was admitted can
// always finish. When the budget cannot give it, reading waits (docs/reliability.md).
#pragma once

#include <msgtrans/transport.hpp>

#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <string>
#include <utility>

namespace msgtrans::net {

class partial_budget {
 public:
  /// A partial message up to this size is held without asking the budget.
  static constexpr std::size_t allowance = 64 * 1024;

  /// Holds what a partial message of `partial` declared bytes needs of `budget` (null: no
  /// budget). True: read on. False: the budget is full; `report_full(detail)` was called
  /// with the notice's detail ("reading paused: a N-byte WHAT waits for ..."), and the
  /// function `make_resume()` returns will be called on `loop` once bytes come back.
  /// Templates, not std::function: the common path (nothing to wait for) allocates nothing.
  template <class Report, class MakeResume>
  bool admit(inbound_budget* budget, std::size_t partial, boost::asio::io_context& loop, const char* what,
             Report&& report_full, MakeResume&& make_resume) {
    if (!budget) return true;
    const std::size_t need = partial > allowance ? partial : 0;
    if (need == held_) return true;
    release(budget);
    if (need == 0 || budget->try_acquire(need)) {
      held_ = need;
      return true;
    }
    report_full("reading paused: a " + std::to_string(need) + "-byte " + what + " waits for " +
                std::to_string(budget->used()) + " of " + std::to_string(budget->limit()) + " budget bytes in use");
    budget->wait(loop, make_resume());
    return false;
  }

  /// Gives back what is held.
  void release(inbound_budget* budget) noexcept {
    if (held_ && budget) budget->release(std::exchange(held_, 0));
  }

 private:
  std::size_t held_ = 0;
};

}  // namespace msgtrans::net
