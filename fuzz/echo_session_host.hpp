// The session host of the read-path fuzzers: echoes messages and answers requests with
// their own payload, as `msgtrans serve` does, and notes when the session closes.
#pragma once

#include "runtime/session_core.hpp"

namespace msgtrans::fuzz {

class echo_session_host final : public detail::session_host {
 public:
  void session_established(detail::session_core&) override {}
  void session_message(detail::session_core& s, const message& m) override {
    (void)s.send(packet_type::one_way, 0, m.payload, send_options{m.biz_type(), m.ext_header, m.header.flags});
  }
  void session_request(detail::session_core&, msgtrans::request& r) override {
    (void)r.respond(r.payload, send_options{r.biz_type(), r.ext_header, r.header.flags, r.header.compression});
  }
  void session_closed(detail::session_core&, const close_info&) override { closed = true; }
  detail::host_counters& counters() noexcept override { return counters_; }
  bool closed = false;
  detail::host_counters counters_;
};

}  // namespace msgtrans::fuzz
