// Authentication over real sockets, on TCP, TLS, WebSocket and QUIC: the JWT hook accepts a
// valid token and its identity reaches on_connected, every message and request, and
// server::identity; a missing, expired, badly signed or "none" token is refused with
// errc::unauthenticated and the reason, and nothing of that connection reaches a
// handler; a hook that answers 3 s later from another thread works; one that never
// answers times out; max_pending_auth refuses the surplus at once. Also the first-packet
// rules on raw TCP (docs/wire-format.md, "Authentication").
#include "auth/jwt_support.hpp"
#include "support/test_support.hpp"

#include <msgtrans/quic.hpp>
#include <msgtrans/ws.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <unistd.h>

using namespace msgtrans;
using namespace msgtrans::test;

namespace {

const std::string secret = "a-test-secret-of-reasonable-length";

struct cert_file {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("msgtrans-auth-" + std::to_string(::getpid()) + ".pem"))
                         .string();
  ~cert_file() { std::filesystem::remove(path); }
};

enum class proto { tcp, tls, ws, quic };
std::string name_of(proto p) {
  return p == proto::tcp ? "tcp" : p == proto::tls ? "tls" : p == proto::ws ? "ws" : "quic";
}

// tls://: a self-signed certificate for 127.0.0.1, made once by the openssl command.
struct tls_files {
  std::string dir = (std::filesystem::temp_directory_path() / ("msgtrans-auth-tls-" + std::to_string(::getpid())))
                        .string();
  tls_files() {
    std::filesystem::create_directories(dir);
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                            "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout " +
                            key() + " -out " + cert() + " 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl req failed");
  }
  ~tls_files() { std::filesystem::remove_all(dir); }
  std::string cert() const { return dir + "/cert.pem"; }
  std::string key() const { return dir + "/key.pem"; }
};
const tls_files& tls_certificate() {
  static const tls_files f;
  return f;
}

// What reached the server's handlers.
struct seen {
  waiter w;
  int connected = 0, messages = 0, requests = 0;
  std::string connected_user, message_user, request_user;
};

jwt_config hs256_config() {
  jwt_config c;
  c.algorithm = "HS256";
  c.key = secret;
  return c;
}

class Auth : public ::testing::TestWithParam<proto> {
 protected:
  server make_server(auth_handler h, std::chrono::milliseconds timeout = 10s, std::size_t max_pending = 1024) {
    server_builder b;
    if (GetParam() == proto::tcp) b.listen(tcp_server_config{"127.0.0.1:0"});
    if (GetParam() == proto::tls) {
      tcp_server_config t;
      t.bind_address = "127.0.0.1:0";
      t.tls_cert_file = tls_certificate().cert();
      t.tls_key_file = tls_certificate().key();
      b.listen(t);
    }
    if (GetParam() == proto::ws) b.listen(ws_server_config{});
    if (GetParam() == proto::quic) {
      quic_server_config q;
      q.bind_address = "127.0.0.1:0";
      q.write_self_signed_cert_to = cert_.path;
      q.connection.initial_rtt = 10ms;
      b.listen(q);
    }
    b.threads(2).on_authenticate(std::move(h)).auth_timeout(timeout).max_pending_auth(max_pending);
    b.on_connected([this](const connection_info& c) {
      seen_.w.update([&] {
        ++seen_.connected;
        if (c.identity) seen_.connected_user = c.identity->user;
      });
    });
    b.on_message([this](const message& m) {
      seen_.w.update([&] {
        ++seen_.messages;
        if (m.identity) seen_.message_user = m.identity->user;
      });
    });
    b.on_request([this](request& r) {
      seen_.w.update([&] {
        ++seen_.requests;
        if (r.identity) seen_.request_user = r.identity->user;
      });
      (void)r.respond(r.payload);
    });
    return b.build();
  }

  client make_client(const server& s, const std::string& token) {
    client_builder b;
    if (GetParam() == proto::tcp) b.connect_to(tcp_client_config{address_of(s)});
    if (GetParam() == proto::tls) {
      tcp_client_config t;
      t.address = address_of(s);
      t.tls = true;
      t.tls_ca_file = tls_certificate().cert();
      b.connect_to(t);
    }
    if (GetParam() == proto::ws) {
      ws_client_config c;
      c.url = "ws://" + address_of(s);
      b.connect_to(c);
    }
    if (GetParam() == proto::quic) {
      quic_client_config q;
      q.address = address_of(s);
      q.tls_ca_file = cert_.path;
      q.connection.initial_rtt = 10ms;
      b.connect_to(q);
    }
    if (!token.empty()) b.credentials(token);
    return b.connect_timeout(5s).build();
  }

  // A rejected token: connect fails with unauthenticated naming `why`, and nothing of
  // the connection reached a handler even after it tried to send.
  void expect_refused(const std::string& token, const std::string& why) {
    auto s = make_server(jwt_authenticator{hs256_config()});
    ASSERT_FALSE(s.start());
    auto c = make_client(s, token);
    auto e = c.connect();
    EXPECT_EQ(e, errc::unauthenticated) << e.message();
    EXPECT_NE(e.message().find(why), std::string::npos) << e.message();
    EXPECT_EQ(c.send("sneaked in"), errc::not_connected);
    EXPECT_EQ(s.stats().auth_rejected, 1u);
    const auto metrics = to_prometheus(s.stats());
    EXPECT_NE(metrics.find("msgtrans_auth_total{outcome=\"rejected\"} 1\n"), std::string::npos) << metrics;
    EXPECT_TRUE(s.sessions().empty());
    EXPECT_EQ(seen_.connected + seen_.messages + seen_.requests, 0);
  }

  cert_file cert_;
  seen seen_;
};

TEST_P(Auth, ValidTokenIsAcceptedAndItsIdentityArrivesEverywhere) {
  auto s = make_server(jwt_authenticator{hs256_config()});
  ASSERT_FALSE(s.start());
  token_spec t;
  t.sub = "alice";
  t.extra = {{"role", "admin"}};
  auto c = make_client(s, hs256(secret, t));
  ASSERT_FALSE(c.connect());
  ASSERT_FALSE(c.send("one-way"));
  auto r = c.call(as_bytes(std::string_view("ping")), 5s);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(as_string(r->payload), "ping");
  ASSERT_TRUE(seen_.w.wait([&] { return seen_.messages == 1 && seen_.requests == 1; }));
  EXPECT_EQ(seen_.connected, 1);
  EXPECT_EQ(seen_.connected_user, "alice");
  EXPECT_EQ(seen_.message_user, "alice");
  EXPECT_EQ(seen_.request_user, "alice");
  ASSERT_EQ(s.sessions().size(), 1u);
  auto who = s.identity(s.sessions()[0]);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->user, "alice");
  ASSERT_TRUE(who->claim("role"));
  EXPECT_EQ(*who->claim("role"), "admin");
  EXPECT_EQ(s.stats().auth_accepted, 1u);
}

TEST_P(Auth, ExpiredTokenIsRefused) {
  token_spec t;
  t.exp_in = -60;
  expect_refused(hs256(secret, t), "expired");
}

TEST_P(Auth, BadlySignedTokenIsRefused) { expect_refused(hs256("another-secret-entirely-0123456789"), "signature"); }

TEST_P(Auth, AlgNoneTokenIsRefused) { expect_refused(make_token(JWT_ALG_NONE, ""), "invalid token"); }

TEST_P(Auth, MissingTokenIsRefusedAndNothingReachesTheHandlers) {
  auto s = make_server(jwt_authenticator{hs256_config()});
  ASSERT_FALSE(s.start());
  auto c = make_client(s, "");
  auto e = c.connect();
  if (GetParam() == proto::ws) {
    // Refused before the upgrade: HTTP 401 with the reason.
    EXPECT_EQ(e, errc::unauthenticated);
    EXPECT_NE(e.message().find("401"), std::string::npos) << e.message();
  } else {
    // The transport connects; the first request is answered with the refusal.
    ASSERT_FALSE(e) << e.message();
    auto r = c.call(as_bytes(std::string_view("let me in")), 5s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unauthenticated);
  }
  EXPECT_EQ(seen_.connected + seen_.messages + seen_.requests, 0);
  EXPECT_TRUE(s.sessions().empty());
}

TEST_P(Auth, AHandlerMayAnswerSecondsLaterFromAnotherThread) {
  std::vector<std::thread> answering;
  std::mutex mu;
  auto s = make_server([&](const auth_request& r, auth_responder a) {
    std::lock_guard lock(mu);
    answering.emplace_back([token = r.token, a = std::move(a)]() mutable {
      std::this_thread::sleep_for(3s);  // a slow identity service, not a wait for an event
      identity who;
      who.user = "late-" + token;
      a.accept(who);
    });
  });
  ASSERT_FALSE(s.start());
  auto c = make_client(s, "bob");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_FALSE(c.connect());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 3s);
  auto r = c.call(as_bytes(std::string_view("hello")), 5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(seen_.connected_user, "late-bob");
  for (auto& t : answering) t.join();
}

TEST_P(Auth, AnUnansweredHookTimesOut) {
  std::vector<auth_responder> held;
  std::mutex mu;
  auto s = make_server(
      [&](const auth_request&, auth_responder a) {
        std::lock_guard lock(mu);
        held.push_back(std::move(a));
      },
      300ms);
  ASSERT_FALSE(s.start());
  auto c = make_client(s, "carol");
  auto e = c.connect();
  EXPECT_EQ(e, errc::unauthenticated);
  EXPECT_NE(e.message().find("timed out"), std::string::npos) << e.message();
  EXPECT_EQ(s.stats().auth_timeouts, 1u);
  std::lock_guard lock(mu);
  ASSERT_EQ(held.size(), 1u);
  identity late;
  late.user = "too-late";
  EXPECT_FALSE(held[0].accept(late));  // decided already
  EXPECT_EQ(seen_.connected, 0);
}

TEST_P(Auth, MaxPendingAuthRefusesTheSurplusAtOnce) {
  std::vector<auth_responder> held;
  waiter w;
  auto s = make_server(
      [&](const auth_request&, auth_responder a) { w.update([&] { held.push_back(std::move(a)); }); }, 10s, 2);
  ASSERT_FALSE(s.start());
  auto c1 = make_client(s, "t1");
  auto c2 = make_client(s, "t2");
  c1.async_connect([](std::error_code) {});
  c2.async_connect([](std::error_code) {});
  ASSERT_TRUE(w.wait([&] { return held.size() == 2; }));
  auto c3 = make_client(s, "t3");
  const auto t0 = std::chrono::steady_clock::now();
  auto e = c3.connect();
  EXPECT_EQ(e, errc::unauthenticated);
  EXPECT_NE(e.message().find("busy"), std::string::npos) << e.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(s.stats().auth_refused_busy, 1u);
  EXPECT_EQ(s.stats().auth_rejected, 1u);  // every refusal counts as rejected
  EXPECT_EQ(s.stats().auth_pending, 2u);
  w.update([&] { held.clear(); });  // dropped unanswered: rejected
}

INSTANTIATE_TEST_SUITE_P(Transports, Auth, ::testing::Values(proto::tcp, proto::tls, proto::ws, proto::quic),
                         [](const auto& i) { return name_of(i.param); });

// ---- the first packet, from a raw TCP peer -----------------------------------------------

class AuthWire : public ::testing::Test {
 protected:
  void SetUp() override {
    server_builder b;
    b.listen(tcp_server_config{"127.0.0.1:0"})
        .on_authenticate(jwt_authenticator{hs256_config()})
        .on_request([this](request& r) {
          requests_.fetch_add(1);
          (void)r.respond("x");
        })
        .on_message([this](const message&) { requests_.fetch_add(1); });
    s_ = std::make_unique<server>(b.build());
    ASSERT_FALSE(s_->start());
  }
  byte_buffer auth_packet(std::uint32_t id, const std::string& token) {
    packet p;
    p.type = packet_type::request;
    p.message_id = id;
    p.ext_header = to_buffer(as_bytes(std::string_view("msgtrans.auth/1")));
    p.payload = to_buffer(as_bytes(token));
    return encode(p).value();
  }
  std::unique_ptr<server> s_;
  std::atomic<int> requests_{0};
};

TEST_F(AuthWire, ARequestBeforeAuthenticationIsAnsweredWithTheRefusalThenClosed) {
  raw_peer peer(address_of(*s_));
  ASSERT_TRUE(peer.write(encode_packet(packet_type::request, 5, "hello")));
  auto answer = peer.read_packet();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->type, packet_type::response);
  EXPECT_EQ(answer->message_id, 5u);
  EXPECT_EQ(as_string(answer->ext_header), "msgtrans.auth/1");
  ASSERT_FALSE(answer->payload.empty());
  EXPECT_EQ(answer->payload[0], std::byte{0});
  EXPECT_EQ(as_string(bytes_view(answer->payload).subspan(1)), "authentication required");
  EXPECT_FALSE(peer.read_packet(2s));  // then closed
  EXPECT_EQ(requests_.load(), 0);
}

TEST_F(AuthWire, AcceptedAnswerCarriesTheUserThenPacketsFlow) {
  raw_peer peer(address_of(*s_));
  ASSERT_TRUE(peer.write(auth_packet(1, hs256(secret))));
  auto answer = peer.read_packet();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->message_id, 1u);
  EXPECT_EQ(as_string(answer->ext_header), "msgtrans.auth/1");
  ASSERT_FALSE(answer->payload.empty());
  EXPECT_EQ(answer->payload[0], std::byte{1});
  EXPECT_EQ(as_string(bytes_view(answer->payload).subspan(1)), "alice");
  ASSERT_TRUE(peer.write(encode_packet(packet_type::request, 2, "now")));
  auto reply = peer.read_packet();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->message_id, 2u);
  EXPECT_EQ(requests_.load(), 1);
}

TEST_F(AuthWire, PacketsPipelinedBehindTheCredentialsWaitForTheVerdict) {
  raw_peer peer(address_of(*s_));
  auto both = auth_packet(1, hs256(secret));
  auto more = encode_packet(packet_type::request, 2, "right behind");
  both.insert(both.end(), more.begin(), more.end());
  ASSERT_TRUE(peer.write(both));
  auto answer = peer.read_packet();  // the verdict comes first, then the request's reply
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->message_id, 1u);
  auto reply = peer.read_packet();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->message_id, 2u);
  EXPECT_EQ(requests_.load(), 1);
}

TEST_F(AuthWire, PacketsPipelinedBehindRefusedCredentialsAreNeverDelivered) {
  raw_peer peer(address_of(*s_));
  auto both = auth_packet(1, hs256("the-wrong-secret-0123456789abcdef"));
  auto more = encode_packet(packet_type::request, 2, "too early");
  both.insert(both.end(), more.begin(), more.end());
  ASSERT_TRUE(peer.write(both));
  auto answer = peer.read_packet();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->payload.at(0), std::byte{0});
  EXPECT_FALSE(peer.read_packet(2s));  // closed; request 2 never answered
  EXPECT_EQ(requests_.load(), 0);
}

TEST(JwtAuthenticator, ChecksAudienceIssuerNotBeforeAndSubject) {
  jwt_config c = hs256_config();
  c.audience = "chat";
  c.issuer = "https://id.example";
  jwt_authenticator j{c};
  token_spec ok;
  ok.aud = "chat";
  ok.iss = "https://id.example";
  EXPECT_TRUE(j.verify(hs256(secret, ok)).first);
  auto wrong_aud = ok;
  wrong_aud.aud = "other";
  EXPECT_NE(j.verify(hs256(secret, wrong_aud)).second.find("aud"), std::string::npos);
  auto wrong_iss = ok;
  wrong_iss.iss = "https://evil.example";
  EXPECT_NE(j.verify(hs256(secret, wrong_iss)).second.find("iss"), std::string::npos);
  auto early = ok;
  early.nbf_in = 600;
  EXPECT_NE(j.verify(hs256(secret, early)).second.find("nbf"), std::string::npos);
  auto nobody = ok;
  nobody.sub.clear();
  EXPECT_NE(j.verify(hs256(secret, nobody)).second.find("sub"), std::string::npos);
  EXPECT_FALSE(j.verify("not.a.token").first);
  EXPECT_FALSE(j.verify("").first);
  EXPECT_THROW(jwt_authenticator(jwt_config{"HS512", secret, {}, {}, 0s}), std::invalid_argument);
  EXPECT_THROW(jwt_authenticator(jwt_config{"HS256", "", {}, {}, 0s}), std::invalid_argument);
}

}  // namespace

namespace {

// The WebSocket upgrade reaches the hook: path, query, headers (looked up without regard
// to case), and the token from the query parameter or the bearer header.
TEST(AuthWebSocket, TheHookSeesTheUpgradeRequest) {
  std::mutex mu;
  std::vector<auth_request> seen;
  server s = server_builder{}
                 .listen(ws_server_config{})
                 .on_authenticate([&](const auth_request& r, auth_responder a) {
                   {
                     std::lock_guard lock(mu);
                     seen.push_back(r);
                   }
                   identity who;
                   who.user = r.token;
                   a.accept(who);
                 })
                 .on_request([](request& r) { r.respond(r.identity->user); })
                 .build();
  ASSERT_FALSE(s.start());
  ws_client_config q;
  q.url = "ws://" + address_of(s) + "?room=a&token=t%2B1";
  q.headers = {{"X-Trace", "7"}};
  client by_query = client_builder{}.connect_to(q).build();
  ASSERT_FALSE(by_query.connect());
  auto r = by_query.call(as_bytes(std::string_view("who")), 5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(as_string(r->payload), "t+1");  // percent-decoded

  ws_client_config h;
  h.url = "ws://" + address_of(s);
  client by_header = client_builder{}.connect_to(h).credentials("bearer-token").build();
  ASSERT_FALSE(by_header.connect());

  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].protocol, "ws");
  EXPECT_EQ(seen[0].path, "/");
  EXPECT_EQ(seen[0].query, "room=a&token=t%2B1");
  EXPECT_EQ(seen[0].token, "t+1");
  ASSERT_TRUE(seen[0].header("x-trace"));
  EXPECT_EQ(*seen[0].header("X-TRACE"), "7");
  EXPECT_EQ(seen[0].header("authorization"), nullptr);
  EXPECT_FALSE(seen[0].peer_address.empty());
  EXPECT_EQ(seen[1].token, "bearer-token");
  ASSERT_TRUE(seen[1].header("AUTHORIZATION"));
  EXPECT_EQ(*seen[1].header("authorization"), "Bearer bearer-token");
}

}  // namespace
