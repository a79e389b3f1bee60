// Error category (src/core/error.cpp): every code has its own actionable message.
#include <msgtrans/error.hpp>

#include <gtest/gtest.h>

#include <set>

namespace msgtrans {
namespace {

TEST(Error, CategoryIsNamedMsgtrans) {
  EXPECT_STREQ(category().name(), "msgtrans");
  EXPECT_EQ(&make_error_code(errc::timeout).category(), &category());
}

TEST(Error, EveryCodeHasADistinctMessage) {
  std::set<std::string> seen;
  for (int e = static_cast<int>(errc::short_header); e <= static_cast<int>(errc::unauthenticated); ++e) {
    const std::string m = make_error_code(static_cast<errc>(e)).message();
    EXPECT_FALSE(m.empty()) << e;
    EXPECT_EQ(m.find("unknown msgtrans error"), std::string::npos) << e;
    EXPECT_TRUE(seen.insert(m).second) << "duplicate message: " << m;
  }
  EXPECT_EQ(std::error_code(9999, category()).message(), "unknown msgtrans error");
}

TEST(Error, EnumConvertsImplicitlyAndComparesWithCodes) {
  std::error_code ec = errc::truncated;
  EXPECT_TRUE(ec);
  EXPECT_EQ(ec, errc::truncated);
  EXPECT_NE(ec, errc::trailing_bytes);
  EXPECT_NE(ec, std::make_error_code(std::errc::timed_out));
}

}  // namespace
}  // namespace msgtrans
