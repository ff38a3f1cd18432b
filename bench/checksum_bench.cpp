// Measures the candidate block checksums on 4 KiB and 64 KiB buffers: hardware CRC32C
// (SSE4.2, one stream), XXH3-64 (the library's default entry point and its runtime
// dispatch, which picks AVX2/AVX-512) and XXH64 from libxxhash. The pool format uses the
// winner; docs/format.md records the figures.
// Run: build/bench/checksum_bench
#include <nmmintrin.h>
#define XXH_DISPATCH_DISABLE_REPLACE  // both entry points, by their own names
#include <xxh_x86dispatch.h>
#include <xxhash.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

namespace {

__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw(const void* data, std::size_t n) {
  auto p = static_cast<const unsigned char*>(data);
  std::uint64_t crc = 0xffffffffu;
  for (; n >= 8; n -= 8, p += 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    crc = _mm_crc32_u64(crc, v);
  }
  for (; n > 0; --n, ++p) crc = _mm_crc32_u8(static_cast<std::uint32_t>(crc), *p);
  return static_cast<std::uint32_t>(crc) ^ 0xffffffffu;
}

template <typename F>
double gib_per_second(const std::vector<unsigned char>& buf, std::size_t block, F f) {
  const std::size_t blocks = buf.size() / block;
  std::uint64_t sink = 0;
  double best = 0;
  for (int round = 0; round < 5; ++round) {
    auto start = std::chrono::steady_clock::now();
    for (int rep = 0; rep < 20; ++rep)
      for (std::size_t i = 0; i < blocks; ++i) sink += f(buf.data() + i * block, block);
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    best = std::max(best, 20.0 * buf.size() / took.count() / (1 << 30));
  }
  if (sink == 42) std::puts("");  // keep the work observable
  return best;
}

}  // namespace

int main() {
  std::vector<unsigned char> buf(16 << 20);
  std::mt19937_64 rng(1);
  for (auto& b : buf) b = static_cast<unsigned char>(rng());
  std::printf("%-10s %12s %12s\n", "checksum", "4KiB GiB/s", "64KiB GiB/s");
  auto row = [&](const char* name, auto f) {
    std::printf("%-10s %12.2f %12.2f\n", name, gib_per_second(buf, 4096, f),
                gib_per_second(buf, 65536, f));
  };
  row("crc32c-hw", [](const void* p, std::size_t n) { return std::uint64_t{crc32c_hw(p, n)}; });
  row("xxh3-64", [](const void* p, std::size_t n) { return std::uint64_t{XXH3_64bits(p, n)}; });
  row("xxh3-disp", [](const void* p, std::size_t n) { return std::uint64_t{XXH3_64bits_dispatch(p, n)}; });
  row("xxh64", [](const void* p, std::size_t n) { return std::uint64_t{XXH64(p, n, 0)}; });
  return 0;
}
