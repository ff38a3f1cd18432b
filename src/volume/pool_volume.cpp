// PoolVolume: forwards to the pool and counts. See pool_volume.h.
#include "volume/pool_volume.h"

#include <ctime>

namespace snapstore {

PoolVolume::PoolVolume(std::shared_ptr<Pool> pool, VolumeRecord record, std::string pool_name)
    : pool_(std::move(pool)),
      record_(std::move(record)),
      pool_name_(std::move(pool_name)),
      io_(pool_->io_counters(record_.id)) {}

std::string PoolVolume::description() const {
  std::string d = "snapstore volume '" + record_.name + "' of pool " + pool_name_;
  if (record_.parent != 0) {
    auto found = pool_->find_volume(record_.parent);
    const std::string parent = found ? "'" + found->name + "'" : "a deleted volume";
    const std::time_t t = static_cast<std::time_t>(record_.created_ns / 1000000000);
    char when[32] = "";
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    d += ", snapshot of " + parent + " taken " + when;
  }
  if (record_.read_only()) d += " (read-only)";
  return d;
}

BlockSizes PoolVolume::block_sizes() const {
  return {1, pool_->data_block_size(), 32u << 20};
}

Status PoolVolume::count(Status st) {
  if (!st) ++io_->errors;
  return st;
}

Status PoolVolume::read(std::uint64_t offset, std::span<std::byte> out) {
  ++io_->reads;
  io_->read_bytes += out.size();
  return count(pool_->read(record_.id, offset, out));
}

Status PoolVolume::write(std::uint64_t offset, std::span<const std::byte> data, bool fua) {
  ++io_->writes;
  io_->write_bytes += data.size();
  return count(pool_->write(record_.id, offset, data, fua));
}

Status PoolVolume::flush() {
  ++io_->flushes;
  return count(pool_->flush());
}

Status PoolVolume::trim(std::uint64_t offset, std::uint64_t length, bool fua) {
  ++io_->trims;
  // NBD lets a trim leave partial blocks as they were when the pool has no room.
  return count(pool_->unmap(record_.id, offset, length, fua, /*edges_required=*/false));
}

Status PoolVolume::write_zeroes(std::uint64_t offset, std::uint64_t length, bool may_unmap,
                                bool fast_only, bool fua) {
  ++io_->zeroes;
  if (may_unmap) return count(pool_->unmap(record_.id, offset, length, fua));
  if (fast_only) return not_supported("allocating zeroes means writing them; not fast");
  return count(pool_->write_zeroes(record_.id, offset, length, fua));
}

Result<std::vector<Extent>> PoolVolume::block_status(std::uint64_t offset, std::uint64_t length) {
  return pool_->block_status(record_.id, offset, length);
}

bool PoolVolume::has_peer(std::string_view other) const {
  return pool_->find_volume(other).is_ok();
}

Result<std::vector<Extent>> PoolVolume::changed_extents(std::string_view other,
                                                        std::uint64_t offset,
                                                        std::uint64_t length) {
  auto peer = pool_->find_volume(other);
  if (!peer) return peer.status();
  return pool_->diff(record_.id, peer->id, offset, length);
}

}  // namespace snapstore
