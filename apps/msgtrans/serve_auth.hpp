// `msgtrans serve --jwt-secret-file F | --jwt-public-key F`: JWT authentication of every
// connection (msgtrans::jwt_authenticator), and its [auth] settings.
#pragma once

#include "serve_config.hpp"

#include <msgtrans/msgtrans.hpp>

#include <string>

namespace msgtrans::cli {

/// Sets the server's authentication from `o` (nothing when no JWT key is given). Returns
/// "" or what is wrong (an unreadable file, both keys, a key of another type).
std::string add_auth(server_builder& b, const serve_options& o);

}  // namespace msgtrans::cli
