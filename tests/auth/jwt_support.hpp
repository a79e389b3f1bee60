// Tokens for the authentication tests, made with libjwt (the same library the server
// checks them with, used here only to sign): HS256 with a secret, the "none" algorithm,
// and claims of our choosing.
#pragma once

#include <jwt.h>

#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace msgtrans::test {

struct token_spec {
  std::string sub = "alice";
  long exp_in = 3600;  // seconds from now; negative: expired
  long nbf_in = 0;     // seconds from now; 0: no nbf claim
  std::string aud, iss;
  std::vector<std::pair<std::string, std::string>> extra;
};

inline std::string make_token(jwt_alg_t alg, const std::string& key, const token_spec& t = {}) {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::runtime_error("jwt_new");
  std::unique_ptr<jwt_t, void (*)(jwt_t*)> j(raw, jwt_free);
  const long now = static_cast<long>(std::time(nullptr));
  if (!t.sub.empty()) jwt_add_grant(j.get(), "sub", t.sub.c_str());
  jwt_add_grant_int(j.get(), "exp", now + t.exp_in);
  if (t.nbf_in) jwt_add_grant_int(j.get(), "nbf", now + t.nbf_in);
  if (!t.aud.empty()) jwt_add_grant(j.get(), "aud", t.aud.c_str());
  if (!t.iss.empty()) jwt_add_grant(j.get(), "iss", t.iss.c_str());
  for (auto& [k, v] : t.extra) jwt_add_grant(j.get(), k.c_str(), v.c_str());
  if (jwt_set_alg(j.get(), alg, alg == JWT_ALG_NONE ? nullptr : reinterpret_cast<const unsigned char*>(key.data()),
                  alg == JWT_ALG_NONE ? 0 : static_cast<int>(key.size())) != 0)
    throw std::runtime_error("jwt_set_alg");
  std::unique_ptr<char, decltype(&::free)> s(jwt_encode_str(j.get()), &::free);
  if (!s) throw std::runtime_error("jwt_encode_str");
  return s.get();
}

inline std::string hs256(const std::string& secret, const token_spec& t = {}) {
  return make_token(JWT_ALG_HS256, secret, t);
}

}  // namespace msgtrans::test
