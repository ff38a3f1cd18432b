// MemoryVolume: a volume held in memory, for tests. Tracks which 4 KiB pages hold data so
// that block_status reports holes, and can be told to fail chosen operations.
//
// Invariants:
//  1. A page is allocated iff some byte of it was written since it was last unmapped;
//     unallocated pages read as zeroes and report hole|zero.
//  2. Trim and unmapping zero-writes free every page they cover entirely; partial pages
//     are zero-filled and stay allocated.
//  3. Thread-safe (one shared mutex: readers share, writers exclude).
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "snapstore/volume.h"

namespace snapstore {

struct MemoryVolumeOptions {
  std::uint64_t size = 64 << 20;
  bool read_only = false;
  BlockSizes block_sizes{};
  std::string description = "in-memory test volume";
};

enum class volume_op { read, write, flush, trim, write_zeroes, block_status };

class MemoryVolume final : public Volume {
 public:
  static constexpr std::uint64_t page_size = 4096;
  explicit MemoryVolume(MemoryVolumeOptions options);

  std::uint64_t size() const override { return options_.size; }
  bool read_only() const override { return options_.read_only; }
  std::string description() const override { return options_.description; }
  BlockSizes block_sizes() const override { return options_.block_sizes; }

  Status read(std::uint64_t offset, std::span<std::byte> out) override;
  Status write(std::uint64_t offset, std::span<const std::byte> data, bool fua) override;
  Status flush() override;
  Status trim(std::uint64_t offset, std::uint64_t length, bool fua) override;
  Status write_zeroes(std::uint64_t offset, std::uint64_t length, bool may_unmap,
                      bool fast_only, bool fua) override;
  Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) override;

  // Makes the next `count` calls of `op` fail with `status` (count < 0: forever).
  void inject_failure(volume_op op, Status status, int count = 1);
  std::uint64_t flush_count() const { return flushes_.load(); }
  std::uint64_t fua_count() const { return fua_writes_.load(); }

 private:
  Status injected(volume_op op);
  void unmap(std::uint64_t offset, std::uint64_t length);
  void note_fua(bool fua) { if (fua) ++fua_writes_; }

  MemoryVolumeOptions options_;
  mutable std::shared_mutex mutex_;
  std::vector<std::byte> bytes_;
  std::vector<bool> allocated_;  // one flag per page
  std::mutex fault_mutex_;
  std::map<volume_op, std::pair<Status, int>> faults_;
  std::atomic<std::uint64_t> flushes_{0}, fua_writes_{0};
};

}  // namespace snapstore
