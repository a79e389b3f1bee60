// jwt_authenticator on libjwt 1.10 (which decodes and verifies the signature; the
// claims are checked here, from libjwt's JSON of the grants, parsed by nlohmann::json).
#include <msgtrans/auth.hpp>

#include <jwt.h>
#include <nlohmann/json.hpp>

#include <climits>
#include <ctime>
#include <memory>
#include <stdexcept>

namespace msgtrans {

namespace {

struct jwt_free_t {
  void operator()(jwt_t* j) const noexcept { jwt_free(j); }
};

jwt_alg_t parse_alg(const std::string& a) {
  if (a == "HS256") return JWT_ALG_HS256;
  if (a == "RS256") return JWT_ALG_RS256;
  if (a == "ES256") return JWT_ALG_ES256;
  throw std::invalid_argument("jwt_config.algorithm: \"" + a + "\" is not HS256, RS256 or ES256");
}

}  // namespace

jwt_authenticator::jwt_authenticator(jwt_config c) : cfg_(std::move(c)), alg_(parse_alg(cfg_.algorithm)) {
  if (cfg_.key.empty()) throw std::invalid_argument("jwt_config.key is empty");
  if (cfg_.leeway.count() < 0) throw std::invalid_argument("jwt_config.leeway is negative");
}

std::pair<std::optional<identity>, std::string> jwt_authenticator::verify(const std::string& token) const {
  if (token.empty()) return {std::nullopt, "no token"};
  if (token.find('\0') != std::string::npos) return {std::nullopt, "malformed token"};
  jwt_t* raw = nullptr;
  const int rc = jwt_decode(&raw, token.c_str(), reinterpret_cast<const unsigned char*>(cfg_.key.data()),
                            static_cast<int>(cfg_.key.size()));
  std::unique_ptr<jwt_t, jwt_free_t> j(raw);
  if (rc != 0 || !j) return {std::nullopt, "invalid token (malformed, or its signature does not verify)"};
  // An algorithm other than the configured one is refused even if it verified ("none",
  // or HS256 keyed with an RSA public key).
  if (jwt_get_alg(j.get()) != static_cast<jwt_alg_t>(alg_))
    return {std::nullopt, std::string("token algorithm ") + jwt_alg_str(jwt_get_alg(j.get())) + " is not " + cfg_.algorithm};
  std::unique_ptr<char, decltype(&::free)> json(jwt_get_grants_json(j.get(), nullptr), &::free);
  if (!json) return {std::nullopt, "token has no claims"};
  nlohmann::json claims = nlohmann::json::parse(json.get(), nullptr, false);
  if (!claims.is_object()) return {std::nullopt, "token claims are not a JSON object"};
  const auto now = static_cast<long long>(std::time(nullptr));
  const long long leeway = cfg_.leeway.count();
  auto number = [&](const char* name) -> std::optional<long long> {
    auto it = claims.find(name);
    if (it == claims.end()) return std::nullopt;
    if (!it->is_number()) return LLONG_MIN;  // present but not a number: refused below
    return it->get<long long>();
  };
  if (auto exp = number("exp")) {
    if (*exp == LLONG_MIN) return {std::nullopt, "token exp is not a number"};
    if (now > *exp + leeway) return {std::nullopt, "token expired"};
  }
  if (auto nbf = number("nbf")) {
    if (*nbf == LLONG_MIN) return {std::nullopt, "token nbf is not a number"};
    if (now + leeway < *nbf) return {std::nullopt, "token not valid yet (nbf)"};
  }
  if (!cfg_.issuer.empty()) {
    auto it = claims.find("iss");
    if (it == claims.end() || !it->is_string() || it->get<std::string>() != cfg_.issuer)
      return {std::nullopt, "token issuer (iss) does not match"};
  }
  if (!cfg_.audience.empty()) {
    auto it = claims.find("aud");
    bool ok = false;
    if (it != claims.end() && it->is_string()) ok = it->get<std::string>() == cfg_.audience;
    if (it != claims.end() && it->is_array())
      for (auto& a : *it) ok = ok || (a.is_string() && a.get<std::string>() == cfg_.audience);
    if (!ok) return {std::nullopt, "token audience (aud) does not match"};
  }
  auto sub = claims.find("sub");
  if (sub == claims.end() || !sub->is_string() || sub->get<std::string>().empty())
    return {std::nullopt, "token has no subject (sub)"};
  identity who;
  who.user = sub->get<std::string>();
  for (auto& [k, v] : claims.items()) {
    if (v.is_string()) who.claims.emplace_back(k, v.get<std::string>());
    else if (v.is_number_integer()) who.claims.emplace_back(k, std::to_string(v.get<long long>()));
    else if (v.is_number()) who.claims.emplace_back(k, v.dump());
  }
  return {std::move(who), {}};
}

void jwt_authenticator::operator()(const auth_request& r, auth_responder a) const {
  auto [who, why] = verify(r.token);
  if (who) a.accept(std::move(*who));
  else a.reject(why);
}

}  // namespace msgtrans
