// net::address: the one parser and formatter of "host:port" for every transport.
#include "net/address.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

using msgtrans::net::address;

namespace {

std::string why_of(std::string_view text) {
  std::string why;
  EXPECT_FALSE(address::parse(text, why)) << text;
  return why;
}

}  // namespace

TEST(net_address, parses_names_ipv4_and_bracketed_ipv6) {
  std::string why;
  auto a = address::parse("localhost:8001", why);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "localhost");
  EXPECT_EQ(a->port, 8001);
  EXPECT_FALSE(a->is_ip_literal());
  auto b = address::parse("127.0.0.1:0", why);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->port, 0);
  EXPECT_TRUE(b->is_ip_literal());
  auto c = address::parse("[::1]:65535", why);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 65535);
  EXPECT_TRUE(c->is_ip_literal());
}

TEST(net_address, refuses_each_malformed_form_with_a_reason) {
  EXPECT_NE(why_of("localhost").find("no port"), std::string::npos);
  EXPECT_NE(why_of("localhost:").find("no port"), std::string::npos);
  EXPECT_NE(why_of("h:65536").find("0..65535"), std::string::npos);
  EXPECT_NE(why_of("h:-1").find("0..65535"), std::string::npos);
  EXPECT_NE(why_of("h:80x").find("0..65535"), std::string::npos);
  EXPECT_NE(why_of("::1:80").find("brackets"), std::string::npos);
  EXPECT_NE(why_of("[::1:80").find("']'"), std::string::npos);
  EXPECT_NE(why_of("[::1]80").find("no port"), std::string::npos);
  EXPECT_NE(why_of("[]:80").find("empty"), std::string::npos);
  EXPECT_NE(why_of("a b:80").find("character"), std::string::npos);
  EXPECT_NE(why_of("a/b:80").find("character"), std::string::npos);
  // Every reason names the text and the expected form.
  auto w = why_of("nope");
  EXPECT_NE(w.find("'nope'"), std::string::npos);
  EXPECT_NE(w.find("host:port"), std::string::npos);
}

TEST(net_address, an_empty_host_binds_everywhere_but_cannot_be_dialled) {
  std::string why;
  auto b = address::parse_bind(":9000", why);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "0.0.0.0");
  EXPECT_FALSE(address::parse_connect(":9000", why));
  EXPECT_NE(why.find("no host"), std::string::npos);
  EXPECT_TRUE(address::parse_connect("example.org:1", why));
}

TEST(net_address, formats_what_it_parses) {
  std::string why;
  for (std::string s : {"127.0.0.1:1", "[::1]:2", "[fe80::1]:443", "host.example:8080"}) {
    auto a = address::parse(s, why);
    ASSERT_TRUE(a) << s;
    EXPECT_EQ(a->to_string(), s);
  }
}

TEST(net_address, formats_socket_addresses) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(7);
  ::inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
  EXPECT_EQ(msgtrans::net::format(reinterpret_cast<sockaddr*>(&in)), "10.1.2.3:7");
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(9);
  ::inet_pton(AF_INET6, "::1", &in6.sin6_addr);
  EXPECT_EQ(msgtrans::net::format(reinterpret_cast<sockaddr*>(&in6)), "[::1]:9");
  sockaddr other{};
  other.sa_family = AF_UNIX;
  EXPECT_EQ(msgtrans::net::format(&other), "?");
}
