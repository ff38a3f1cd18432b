// PoolVolume: one volume of a Pool, served through the Volume interface.
//
// Invariants:
//  1. A thin view: every call goes to the pool with this volume's id; the volume holds no
//     data of its own and may be used from any number of connections at once
//     (writes and flushes are pool-wide, so multi-conn is safe).
//  2. read_only() is true when the volume is flagged read-only, the pool was opened
//     read-only, or the pool turned read-only after a failed commit.
//  3. The record is a copy taken when the export was made: size and name stay as the
//     client negotiated them (a renamed or resized volume gets a new PoolVolume); the id
//     keeps naming the same volume, and calls fail once it is deleted.
//  4. Every call is counted in the pool's per-volume I/O counters.
#pragma once

#include "volume/pool.h"

namespace snapstore {

class PoolVolume final : public Volume {
 public:
  PoolVolume(std::shared_ptr<Pool> pool, VolumeRecord record, std::string pool_name);

  std::uint64_t size() const override { return record_.size; }
  bool read_only() const override { return record_.read_only() || pool_->read_only(); }
  std::string description() const override;
  BlockSizes block_sizes() const override;

  Status read(std::uint64_t offset, std::span<std::byte> out) override;
  Status write(std::uint64_t offset, std::span<const std::byte> data, bool fua) override;
  Status flush() override;
  Status trim(std::uint64_t offset, std::uint64_t length, bool fua) override;
  Status write_zeroes(std::uint64_t offset, std::uint64_t length, bool may_unmap,
                      bool fast_only, bool fua) override;
  Result<std::vector<Extent>> block_status(std::uint64_t offset, std::uint64_t length) override;
  bool has_peer(std::string_view other) const override;
  Result<std::vector<Extent>> changed_extents(std::string_view other, std::uint64_t offset,
                                              std::uint64_t length) override;

 private:
  Status count(Status st);
  std::shared_ptr<Pool> pool_;
  VolumeRecord record_;
  std::string pool_name_;
  std::shared_ptr<VolumeIoCounters> io_;
};

}  // namespace snapstore
