// Conformance with the shared wire vectors: for every *.json in shared/fixtures/wire,
// encode(json) == .bin and decode(.bin) == the json fields. The directory is read at run
// time, so a new fixture is tested without a code change. Compressed fixtures are compared
// after decompression (compressor output differs between library versions).
#include <msgtrans/error.hpp>
#include <msgtrans/packet.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "support.hpp"

namespace msgtrans {
namespace {

namespace fs = std::filesystem;

const fs::path fixture_dir = fs::path(MSGTRANS_SHARED_DIR) / "fixtures" / "wire";
// Our own vectors in the same form: the authentication packet (docs/wire-format.md).
const fs::path auth_fixture_dir = fs::path(MSGTRANS_SOURCE_DIR) / "tests" / "fixtures" / "auth";

std::vector<fs::path> fixtures() {
  std::vector<fs::path> out;
  for (const auto& dir : {fixture_dir, auth_fixture_dir})
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && e.path().extension() == ".json") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

byte_buffer read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + p.string());
  std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  byte_buffer b(c.size());
  std::transform(c.begin(), c.end(), b.begin(), [](char x) { return std::byte(static_cast<unsigned char>(x)); });
  return b;
}

struct vector_case {
  std::string name;
  nlohmann::json json;
  byte_buffer bin;
  packet expected;  // the owning packet the json describes (payload uncompressed)
};

vector_case load(const fs::path& json_path) {
  vector_case c;
  c.name = json_path.filename().string();
  std::ifstream f(json_path);
  c.json = nlohmann::json::parse(f);
  auto bin_path = json_path;
  bin_path.replace_extension(".bin");
  c.bin = read_file(bin_path);
  const auto& j = c.json;
  c.expected.type = static_cast<packet_type>(j.at("packet_type").get<int>());
  c.expected.compression = static_cast<compression>(j.at("compression").get<int>());
  c.expected.biz_type = j.at("biz_type").get<std::uint8_t>();
  c.expected.message_id = j.at("message_id").get<std::uint32_t>();
  c.expected.flags = j.at("reserved").get<std::uint16_t>();  // "reserved" is the flags field
  c.expected.ext_header = test::from_hex(j.at("ext_header_hex").get<std::string>());
  c.expected.payload = test::from_hex(j.at("payload_hex").get<std::string>());
  return c;
}

TEST(Conformance, FixtureDirectoryHoldsVectors) {
  ASSERT_TRUE(fs::is_directory(fixture_dir)) << fixture_dir;
  const auto all = fixtures();
  EXPECT_GE(all.size(), 11u) << "8 shared vectors and 3 of authentication when this test was written";
  for (const auto& p : all) {
    auto bin = p;
    bin.replace_extension(".bin");
    EXPECT_TRUE(fs::exists(bin)) << "missing " << bin;
  }
}

TEST(Conformance, EncodeProducesEachBin) {
  for (const auto& path : fixtures()) {
    const auto c = load(path);
    SCOPED_TRACE(c.name);
    ASSERT_EQ(c.json.at("version").get<int>(), protocol_version);
    auto wire = encode(c.expected);
    ASSERT_TRUE(wire) << wire.error().message();
    if (c.expected.compression == compression::none) {
      EXPECT_EQ(test::to_hex(*wire), test::to_hex(c.bin));
      // The allocation-free path writes the same bytes.
      packet_view v;
      v.header.compression = c.expected.compression;
      v.header.type = c.expected.type;
      v.header.biz_type = c.expected.biz_type;
      v.header.message_id = c.expected.message_id;
      v.header.flags = c.expected.flags;
      v.ext_header = c.expected.ext_header;
      v.payload = c.expected.payload;
      byte_buffer out(encoded_size(v));
      auto n = encode_to(v, out);
      ASSERT_TRUE(n);
      EXPECT_EQ(*n, c.bin.size());
      EXPECT_EQ(test::to_hex(out), test::to_hex(c.bin));
    } else {
      // Compressed: the header up to payload_len must match, and our encoding must decode
      // back to the json's fields.
      EXPECT_EQ(test::to_hex(bytes_view(*wire).first(10)), test::to_hex(bytes_view(c.bin).first(10)));
      auto back = decode(*wire);
      ASSERT_TRUE(back) << back.error().message();
      EXPECT_EQ(*back, c.expected);
    }
  }
}

TEST(Conformance, DecodeGivesEachJsonsFields) {
  for (const auto& path : fixtures()) {
    const auto c = load(path);
    SCOPED_TRACE(c.name);
    auto v = decode_view(c.bin);
    ASSERT_TRUE(v) << v.error().message();
    const auto& j = c.json;
    EXPECT_EQ(v->header.version, j.at("version").get<int>());
    EXPECT_EQ(static_cast<int>(v->header.compression), j.at("compression").get<int>());
    EXPECT_EQ(static_cast<int>(v->header.type), j.at("packet_type").get<int>());
    EXPECT_EQ(v->header.biz_type, j.at("biz_type").get<int>());
    EXPECT_EQ(v->header.message_id, j.at("message_id").get<std::uint32_t>());
    EXPECT_EQ(v->header.flags, j.at("reserved").get<int>());
    EXPECT_EQ(test::to_hex(v->ext_header), j.at("ext_header_hex").get<std::string>());
    EXPECT_EQ(v->header.ext_header_len, v->ext_header.size());
    EXPECT_EQ(v->header.total_size(), c.bin.size());
    if (c.expected.compression == compression::none) {
      EXPECT_EQ(test::to_hex(v->payload), j.at("payload_hex").get<std::string>());
    }

    auto p = decode(c.bin);
    ASSERT_TRUE(p) << p.error().message();
    EXPECT_EQ(*p, c.expected);  // payload compared after decompression
  }
}

}  // namespace
}  // namespace msgtrans
