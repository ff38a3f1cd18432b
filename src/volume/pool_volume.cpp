// PoolVolume: forwards to the pool. See pool_volume.h.
#include "volume/pool_volume.h"

namespace snapstore {

PoolVolume::PoolVolume(std::shared_ptr<Pool> pool, VolumeRecord record, std::string pool_name)
    : pool_(std::move(pool)), record_(std::move(record)), pool_name_(std::move(pool_name)) {}

std::string PoolVolume::description() const {
  std::string d = "snapstore volume '" + record_.name + "' of pool " + pool_name_;
  if (record_.read_only()) d += " (read-only)";
  return d;
}

BlockSizes PoolVolume::block_sizes() const {
  return {1, pool_->data_block_size(), 32u << 20};
}

Status PoolVolume::read(std::uint64_t offset, std::span<std::byte> out) {
  return pool_->read(record_.id, offset, out);
}

Status PoolVolume::write(std::uint64_t offset, std::span<const std::byte> data, bool fua) {
  return pool_->write(record_.id, offset, data, fua);
}

Status PoolVolume::trim(std::uint64_t offset, std::uint64_t length, bool fua) {
  // NBD lets a trim leave partial blocks as they were when the pool has no room.
  return pool_->unmap(record_.id, offset, length, fua, /*edges_required=*/false);
}

Status PoolVolume::write_zeroes(std::uint64_t offset, std::uint64_t length, bool may_unmap,
                                bool fast_only, bool fua) {
  if (may_unmap) return pool_->unmap(record_.id, offset, length, fua);
  if (fast_only) return not_supported("allocating zeroes means writing them; not fast");
  return pool_->write_zeroes(record_.id, offset, length, fua);
}

Result<std::vector<Extent>> PoolVolume::block_status(std::uint64_t offset, std::uint64_t length) {
  return pool_->block_status(record_.id, offset, length);
}

}  // namespace snapstore
