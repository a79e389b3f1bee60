// Validation of the QUIC configuration (make_listener / make_connector throw on a bad one).
#pragma once

#include <msgtrans/quic.hpp>

#include <string>

namespace msgtrans::quic_detail {

/// Throws std::invalid_argument "NAME.FIELD must ..." on a value the transport cannot use.
void validate(const quic_connection_options& o, const std::string& name);

}  // namespace msgtrans::quic_detail
