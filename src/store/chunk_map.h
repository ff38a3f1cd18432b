// ChunkMap: the pool's two logical address spaces (metadata and data) over its devices.
//
// Each space is a sequence of chunks of chunk_size bytes; chunk i of a space covers
// logical bytes [i * chunk_size, (i + 1) * chunk_size) and is stored once per stripe
// (one stripe for `single`, two on one device for `dup`, two or three on distinct devices
// for `raid1`/`raid1c3`). Layers above see only (space, logical offset).
//
// Chunk entry on disk (72 bytes, in the superblock's chunk map):
//   0 u8 space (1 metadata, 2 data)   1 u8 profile   2 u8 stripe count   3 u8 reserved
//   4 u32 index in its space          8 4 x {u32 device, u32 reserved, u64 byte offset}
//
// Invariants:
//  1. Chunks of one space have indexes 0..n-1 with no gap; a space only grows.
//  2. Stripes never overlap each other, the reserved area at the start of a device
//     (superblock copies and the intent log: superblock.h), or the device end.
//  3. A read verifies each copy with the caller's check; the first good copy is returned
//     and written back over every copy that failed (self-healing); if no copy passes, the
//     result is corruption (or io_error), never unverified bytes.
//  4. Thread-safe: I/O takes a shared lock on the chunk list, allocation an exclusive one.
#pragma once

#include <atomic>
#include <functional>
#include <shared_mutex>
#include <vector>

#include "snapstore/block_device.h"
#include "store/superblock.h"

namespace snapstore {

struct ChunkMapStats {
  std::uint64_t checksum_failures = 0;  // copies that failed verification
  std::uint64_t repairs = 0;            // bad copies rewritten from a good one
  std::uint64_t unrecoverable = 0;      // reads where every copy was bad
};

class ChunkMap {
 public:
  using Verifier = std::function<bool(std::span<const std::byte>)>;

  // reserved_bytes: the area at the start of every device that chunks leave alone.
  ChunkMap(std::vector<BlockDevicePtr> devices, std::uint64_t chunk_size, std::vector<Chunk> chunks,
           std::uint64_t reserved_bytes);

  std::uint64_t chunk_size() const { return chunk_size_; }
  std::uint64_t space_bytes(space s) const;
  std::vector<Chunk> chunks() const;
  // Chunks only ever get added (invariant 1): an unchanged count means an unchanged map.
  std::size_t chunk_count() const;
  std::size_t device_count() const { return devices_.size(); }
  const BlockDevicePtr& device(std::size_t i) const { return devices_[i]; }
  ChunkMapStats stats() const;

  // Adds a chunk to `s` with profile `p` and returns it; no_space when the devices cannot
  // hold it, or when it would leave less than `keep_free` bytes of unallocated device space.
  Result<Chunk> allocate_chunk(space s, profile p, std::uint64_t keep_free = 0);
  // Adds a chunk placed elsewhere (by an earlier run, as the intent log recorded it):
  // corruption unless it is the next of its space, its stripes lie on the devices, past
  // the reserved area, and overlap no other stripe.
  Status add_chunk(const Chunk& c);
  // Unallocated bytes of device space (counting each stripe).
  std::uint64_t unallocated_bytes() const;
  // Whether a chunk of profile p could be placed now.
  bool can_allocate(profile p) const;

  Status read(space s, std::uint64_t offset, std::span<std::byte> out, const Verifier& verify);
  // Reads several runs of one space, each inside one chunk: the first copy of every run in
  // one device call per device, then verify(i, bytes) on each; a run that fails either
  // way is read again through read() (every copy, repair), so the result is read()'s.
  struct Run {
    std::uint64_t offset = 0;  // logical
    std::span<std::byte> out;
  };
  using RunVerifier = std::function<bool(std::size_t run, std::span<const std::byte>)>;
  Status read_runs(space s, std::span<const Run> runs, const RunVerifier& verify);
  Status write(space s, std::uint64_t offset, std::span<const std::byte> data);
  // Reads copy `copy` alone, unverified (for scrub and the checker).
  Status read_copy(space s, std::uint64_t offset, std::size_t copy, std::span<std::byte> out);
  std::size_t copies(space s, std::uint64_t offset) const;
  Status flush();
  // With repair off, reads still fall back to a good copy but never rewrite a bad one
  // (the offline checker must not write).
  void set_repair(bool on) { repair_ = on; }

 private:
  struct Location {
    const Chunk* chunk = nullptr;
    std::uint64_t within = 0;
  };
  Result<Location> locate(space s, std::uint64_t offset, std::uint64_t length) const;
  // read() from copy `first` on; copies before it failed with `earlier` (an I/O error).
  Status read_copies(space s, std::uint64_t offset, std::span<std::byte> out,
                     const Verifier& verify, std::size_t first, Status earlier);
  Result<std::vector<Stripe>> place(profile p) const;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> free_extents(std::uint32_t device) const;

  std::vector<BlockDevicePtr> devices_;
  std::uint64_t chunk_size_;
  std::uint64_t reserved_bytes_;
  mutable std::shared_mutex mutex_;
  std::vector<Chunk> chunks_;
  std::vector<const Chunk*> by_space_[2];  // index -> chunk, per space
  // Whole chunk-sized pieces of device space no chunk holds (each stripe counted), kept
  // with by_space_: pool writes ask for it on their allocation path.
  std::uint64_t unallocated_ = 0;
  std::atomic<std::uint64_t> checksum_failures_{0}, repairs_{0}, unrecoverable_{0};
  bool repair_ = true;

  void rebuild_index();  // by_space_ and unallocated_, after chunks_ changed
};

// Number of stripes a profile keeps.
std::size_t stripe_count(profile p);

}  // namespace snapstore
