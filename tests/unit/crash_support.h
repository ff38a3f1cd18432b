// Shared parts of the crash tests (crash_test.cpp, crash_snapshot_test.cpp): the content
// model of a volume under power cuts, seeded data, a formatted pool image, crash points
// and the crash images made at each of them. Header-only: tests/CMakeLists.txt builds
// every unit/*_test.cpp into unit_tests and nothing else.
//
// BlockModel, the rule every crash test checks a volume against:
//  1. Each block has a history of contents (by checksum), from the one it had when its
//     last durable version was made durable to the newest one written.
//  2. about_to_write() appends a version before the write is issued: if the write fails
//     half-way (the power cut), either version may be there, never a third.
//  3. durable_all() / durable_range() make the newest version the oldest allowed one, after
//     a flush, a FUA write or a commit that covers them.
//  4. allowed(b, sum): block b may read back as any version from the durable one on.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/checksum.h"
#include "store/crash_device.h"
#include "store/memory_device.h"
#include "volume/pool.h"

namespace snapstore::crash {

inline constexpr std::uint32_t model_block = 4096;

// The value of environment variable `name` as a number, or `fallback` when it is unset.
inline std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

// `length` bytes from a 64-bit Mersenne twister seeded with `seed` (the same on every
// standard library).
inline std::vector<std::byte> seeded_bytes(std::uint64_t length, std::uint64_t seed) {
  std::vector<std::byte> v(length);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < v.size(); i += 8) {
    std::uint64_t x = rng();
    std::memcpy(v.data() + i, &x, std::min<std::size_t>(8, v.size() - i));
  }
  return v;
}

// The bytes of a freshly formatted pool on one device of `device_size` bytes with an
// origin of `origin_size` bytes; empty if formatting failed.
inline std::vector<std::byte> formatted_image(std::uint64_t device_size,
                                              std::uint64_t origin_size) {
  auto device = std::make_shared<MemoryDevice>(device_size);
  FormatOptions f;
  f.origin_size = origin_size;
  if (!Pool::format({device}, f)) return {};
  return device->contents();
}

class BlockModel {
 public:
  explicit BlockModel(std::uint64_t size) { resize(size); }

  std::uint64_t size() const { return current_.size() * std::uint64_t{model_block}; }
  std::uint64_t blocks() const { return current_.size(); }

  // Records the contents a write of `length` bytes at `offset` is about to give (data
  // empty: zeroes).
  void about_to_write(std::uint64_t offset, std::uint64_t length, std::span<const std::byte> data) {
    for (std::uint64_t b = offset / model_block; b <= (offset + length - 1) / model_block; ++b) {
      const std::uint64_t start = std::max(offset, b * model_block);
      const std::uint64_t end = std::min(offset + length, (b + 1) * model_block);
      Block next;  // stays null (zeroes) when zeroing a zero block or a whole block
      if (!data.empty() || (current_[b] && end - start != model_block)) {
        auto bytes = current_[b] ? std::make_shared<std::vector<std::byte>>(*current_[b])
                                 : std::make_shared<std::vector<std::byte>>(model_block);
        std::byte* at = bytes->data() + (start - b * model_block);
        if (data.empty())
          std::fill_n(at, end - start, std::byte{0});
        else
          std::memcpy(at, data.data() + (start - offset), end - start);
        next = std::move(bytes);
      }
      current_[b] = std::move(next);
      history_[b].versions.push_back(sum_of(current_[b]));
    }
  }
  void durable_all() {
    for (auto& h : history_) settle(h);
  }
  void durable_range(std::uint64_t offset, std::uint64_t length) {
    for (std::uint64_t b = offset / model_block; b <= (offset + length - 1) / model_block; ++b)
      settle(history_[b]);
  }
  bool allowed(std::uint64_t b, std::uint64_t sum) const {
    const auto& v = history_[b].versions;
    return std::find(v.begin() + static_cast<long>(history_[b].durable), v.end(), sum) != v.end();
  }

  // A model that holds exactly this one's newest contents, durable: a snapshot of it, or
  // what it is after a commit.
  BlockModel settled() const {
    BlockModel m = *this;
    m.durable_all();
    return m;
  }
  // Shrinking drops the blocks past the new end; growing adds zero blocks, durable.
  void resize(std::uint64_t size) {
    const std::uint64_t n = size / model_block;
    current_.resize(n);
    history_.resize(n, History{{zero_sum()}, 0});
  }

 private:
  using Block = std::shared_ptr<const std::vector<std::byte>>;  // null: zeroes
  struct History {
    std::vector<std::uint64_t> versions;  // checksums, oldest first
    std::size_t durable = 0;
  };
  static std::uint64_t zero_sum() {
    static const std::uint64_t sum = data_checksum(std::vector<std::byte>(model_block));
    return sum;
  }
  static std::uint64_t sum_of(const Block& b) { return b ? data_checksum(*b) : zero_sum(); }
  // The newest version becomes the oldest allowed one; older ones are forgotten.
  static void settle(History& h) {
    h.versions.erase(h.versions.begin(), h.versions.end() - 1);
    h.durable = 0;
  }

  std::vector<Block> current_;
  std::vector<History> history_;
};

// Where power is cut: at a backing write (numbered from 0) or at a flush call (numbered
// from 0; the flush fails and applies nothing). See crash_device.h, invariant 4.
struct CrashPoint {
  bool at_flush = false;
  std::uint64_t number = 0;

  void arm(CrashDevice& device) const {
    if (at_flush)
      device.cut_power_at_flush(number);
    else
      device.cut_power_at(number);
  }
  std::string describe() const { return (at_flush ? "flush " : "write ") + std::to_string(number); }
};

// Makes the four crash images of `device` that every crash test checks, in this order
// (the rng is consumed in it, so a seed reproduces): keep none, keep all, a torn random
// subset, a random subset of the unflushed writes. Calls check(image, label) for each,
// label being " (keep none)" etc.; stops early when check returns false.
inline void for_each_crash_image(
    const CrashDevice& device, std::mt19937_64& rng,
    const std::function<bool(std::vector<std::byte>, std::string_view)>& check) {
  static constexpr std::pair<CrashMode, std::string_view> modes[] = {
      {CrashMode::keep_none, " (keep none)"},
      {CrashMode::keep_all, " (keep all)"},
      {CrashMode::random_subset_torn, " (torn subset)"},
      {CrashMode::random_subset, " (subset)"},
  };
  for (const auto& [mode, label] : modes)
    if (!check(device.crash_image(rng, mode), label)) return;
}

}  // namespace snapstore::crash
