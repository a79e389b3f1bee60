// Packet codec throughput: encode_to, decode_view, and the two together, at 64 B, 1 KiB
// and 64 KiB payloads. Bytes/s counts the packet's bytes on the wire.
#include <msgtrans/packet.hpp>

#include <benchmark/benchmark.h>

#include <cstring>

namespace {

using namespace msgtrans;

struct fixture {
  byte_buffer ext, payload, wire;
  packet_view view;

  explicit fixture(std::size_t payload_size) : ext(8, std::byte{'e'}), payload(payload_size, std::byte{'p'}) {
    view.header.type = packet_type::request;
    view.header.biz_type = 3;
    view.header.message_id = 12345;
    view.ext_header = ext;
    view.payload = payload;
    wire.resize(encoded_size(view));
  }
};

void BM_encode_to(benchmark::State& state) {
  fixture f(static_cast<std::size_t>(state.range(0)));
  std::uint32_t id = 0;
  for (auto _ : state) {
    f.view.header.message_id = ++id;
    auto n = encode_to(f.view, f.wire);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.wire.size()));
}

void BM_decode_view(benchmark::State& state) {
  fixture f(static_cast<std::size_t>(state.range(0)));
  if (!encode_to(f.view, f.wire)) state.SkipWithError("encode failed");
  for (auto _ : state) {
    auto v = decode_view(f.wire);
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.wire.size()));
}

// What a transport does per message: encode into the write buffer, and on the other side
// decode the view and hand the payload on (copied out, as an application would).
void BM_encode_decode(benchmark::State& state) {
  fixture f(static_cast<std::size_t>(state.range(0)));
  byte_buffer sink(f.payload.size());
  std::uint32_t id = 0;
  for (auto _ : state) {
    f.view.header.message_id = ++id;
    auto n = encode_to(f.view, f.wire);
    benchmark::DoNotOptimize(n);
    auto v = decode_view(f.wire);
    if (!v) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(v);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.wire.size()));
}

// The yardstick: copying the payload to where encode_to puts it (same buffers, same
// offset, so the same alignment and cache behaviour).
void BM_memcpy(benchmark::State& state) {
  fixture f(static_cast<std::size_t>(state.range(0)));
  const std::size_t offset = header_size + f.ext.size();
  for (auto _ : state) {
    std::memcpy(f.wire.data() + offset, f.payload.data(), f.payload.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.payload.size()));
}

#define SIZES Arg(64)->Arg(1024)->Arg(64 * 1024)
BENCHMARK(BM_encode_to)->SIZES;
BENCHMARK(BM_decode_view)->SIZES;
BENCHMARK(BM_encode_decode)->SIZES;
BENCHMARK(BM_memcpy)->SIZES;

}  // namespace

BENCHMARK_MAIN();
