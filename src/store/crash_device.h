// CrashDevice: an in-memory BlockDevice that can tell what a power cut would leave behind.
//
// Crash tests run a workload on a CrashDevice, then ask crash_image() for the bytes a real
// device might hold after losing power at that moment, reopen the pool from those bytes
// (image_device) and check it. Cutting power at write K (cut_power_at) stops the workload
// at every possible point in turn.
//
// The model, precisely:
//  1. The device holds a durable image D and a log L of the mutations (writes and
//     discards) issued since the last completed flush, in issue order. What read()
//     returns is the volatile image V = D with every entry of L applied in order.
//  2. Every write() and discard() call takes the next write number, starting at 0;
//     write_count() is how many numbers were handed out (so after a clean run of a
//     workload that issued N mutations, the crash points are 0..N). A discard is recorded
//     as a write of zeroes over its range. Zero-length calls take a number but log nothing.
//  3. flush() applies L to D in order and empties L; afterwards D == V. flush_points()
//     lists write_count() at each completed flush.
//  4. cut_power_at(K): the mutation numbered K fails with io_error and leaves no trace
//     (not in L, not in V), and from then on every call (read, write, flush, discard)
//     fails with io_error until restart_from(). If K is already past, power is cut at
//     once. A write torn by the cut itself is not modelled separately: it is the same
//     state as crash point K + 1 with that write torn (invariant 5).
//  5. crash_image(rng, mode) returns D plus a subset of L, applied in issue order (a kept
//     later write overwrites a kept earlier one where they overlap):
//       keep_none          D: nothing since the last flush survived.
//       keep_all           V: everything issued survived.
//       random_subset      each entry of L is kept independently with probability 1/2,
//                          whole.
//       random_subset_torn as random_subset, but each kept entry is, with probability 1/2,
//                          torn: only its first j sectors are applied, j uniform in
//                          [1, n-1], where n is the number of 512-byte device sectors
//                          (boundaries at multiples of 512 from offset 0) the entry
//                          touches. An entry inside one sector is never torn.
//     Entries already made durable by a flush are never dropped or torn.
//  6. crash_image() is deterministic in the rng state and the operations issued: it uses
//     only raw rng() outputs (no std distributions, which differ between standard
//     libraries), so a failing seed reproduces anywhere. It does not change the device.
//  7. Thread-safe: one mutex serialises every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "snapstore/block_device.h"
#include "store/memory_device.h"

namespace snapstore {

enum class CrashMode : std::uint8_t { keep_none, keep_all, random_subset, random_subset_torn };

class CrashDevice final : public BlockDevice {
 public:
  static constexpr std::uint64_t sector_size = 512;

  explicit CrashDevice(std::uint64_t size, std::string name = "crash");
  explicit CrashDevice(std::vector<std::byte> durable_image, std::string name = "crash");

  std::uint64_t size() const override { return size_; }
  std::string name() const override { return name_; }

  Status read(std::uint64_t offset, std::span<std::byte> out) override;
  Status write(std::uint64_t offset, std::span<const std::byte> data) override;
  Status flush() override;
  Status discard(std::uint64_t offset, std::uint64_t length) override;

  // Power cut at write number k (invariant 4).
  void cut_power_at(std::uint64_t k);
  // Power cut at flush number f (counting every flush() call from 0): that flush fails
  // and applies nothing, so everything written since the previous flush stays in L. This
  // reaches the states a write cut cannot, e.g. a superblock written but not yet flushed.
  void cut_power_at_flush(std::uint64_t f);
  std::uint64_t flush_calls() const;
  bool power_is_cut() const;

  std::uint64_t write_count() const;
  std::uint64_t flush_count() const;
  std::vector<std::uint64_t> flush_points() const;
  std::size_t unflushed_count() const;  // entries in L

  std::vector<std::byte> durable_image() const;  // D
  std::vector<std::byte> crash_image(std::mt19937_64& rng, CrashMode mode) const;

  // Power back on holding `image` (same size): D = V = image, L empty, no cut armed.
  // Write numbers and flush points continue from where they were.
  Status restart_from(std::vector<std::byte> image);

 private:
  struct logged_write {
    std::uint64_t offset;
    std::uint64_t length;
    std::vector<std::byte> data;  // empty for a discard: zeroes
  };

  Status admit(const char* what);  // numbers a mutation, applies the cut; lock held
  Status check_power(const char* what) const;
  Status check_range(std::uint64_t offset, std::uint64_t length, const char* what) const;
  void log_and_apply(logged_write entry);
  static void apply(std::vector<std::byte>& image, const logged_write& entry, std::uint64_t length);
  static std::uint64_t torn_length(const logged_write& entry, std::mt19937_64& rng);

  const std::uint64_t size_;
  const std::string name_;
  mutable std::mutex mutex_;
  std::vector<std::byte> durable_;   // D
  std::vector<std::byte> volatile_;  // V
  std::vector<logged_write> log_;    // L
  std::uint64_t writes_ = 0;
  std::vector<std::uint64_t> flush_points_;
  std::optional<std::uint64_t> cut_at_;
  std::optional<std::uint64_t> cut_at_flush_;
  std::uint64_t flushes_ = 0;
  bool power_cut_ = false;
};

// A plain MemoryDevice holding `image`, to reopen a pool from a crash image.
std::shared_ptr<MemoryDevice> image_device(std::vector<std::byte> image,
                                           std::string name = "crash image");

}  // namespace snapstore
