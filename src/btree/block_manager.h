// BlockManager: metadata blocks by number, through a bounded cache.
//
// Invariants:
//  1. Clean blocks are cached up to cache_bytes and evicted least-recently-used first;
//     a caller's reference keeps an evicted block's bytes alive until released.
//  2. A dirty block (created or shadowed in the open transaction) stays in memory until
//     the commit writes it; it is never evicted, so it is never read back half-written.
//  3. Every block read from the device is verified against the caller's expectation
//     (metadata_block.h) on every copy before it enters the cache; a block that fails on
//     every copy is corruption, never cached.
//  4. Only the transaction manager mutates blocks (via mutable_data on dirty blocks);
//     everyone else sees const bytes. Thread-safe for concurrent reads; writers are
//     serialised by the pool's metadata lock.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "btree/metadata_block.h"
#include "store/chunk_map.h"

namespace snapstore {

struct CachedBlock {
  explicit CachedBlock(std::uint64_t n) : number(n) {}
  std::uint64_t number;
  alignas(64) std::byte bytes[metadata_block_size]{};
  bool dirty = false;
  std::span<const std::byte> data() const { return {bytes, metadata_block_size}; }
  std::span<std::byte> mutable_data() { return {bytes, metadata_block_size}; }
};

using BlockRef = std::shared_ptr<const CachedBlock>;
using MutableBlockRef = std::shared_ptr<CachedBlock>;

struct CacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t cached_blocks = 0;
  std::uint64_t dirty_blocks = 0;
  std::uint64_t capacity_blocks = 0;
};

class BlockManager {
 public:
  BlockManager(ChunkMap& chunks, std::uint64_t cache_bytes);

  Result<BlockRef> read(const BlockExpectation& want);
  // A new zeroed dirty block at `number` (which the caller has allocated).
  MutableBlockRef create(std::uint64_t number);
  // The dirty block `number` if it is dirty, else nullptr.
  MutableBlockRef dirty_block(std::uint64_t number);
  bool is_dirty(std::uint64_t number);
  // Forgets a dirty block that was freed in the same transaction that made it.
  void discard_dirty(std::uint64_t number);
  // Forgets a block from the cache entirely (it was freed; its number may be reused).
  void forget(std::uint64_t number);

  std::vector<MutableBlockRef> dirty_blocks();
  // Writes every dirty block (already sealed) to the device, then marks them clean.
  Status write_dirty();
  // Drops every dirty block without writing (after a failed commit the pool is read-only).
  void drop_dirty();

  CacheStats stats();
  std::uint64_t dirty_count();
  std::uint64_t capacity_blocks() const { return capacity_; }

 private:
  // A block object for `number`: a recycled one when there is one (a 4 KiB allocation per
  // shadowed or read block otherwise, and glibc then spends its time consolidating).
  MutableBlockRef take_block(std::uint64_t number, bool zero);
  void recycle(MutableBlockRef b);  // caller holds mutex_
  void insert_clean(const MutableBlockRef& b);
  void evict_if_needed();

  ChunkMap& chunks_;
  std::uint64_t capacity_;
  std::mutex mutex_;
  std::list<MutableBlockRef> lru_;  // front = most recent; clean blocks only
  std::unordered_map<std::uint64_t, std::list<MutableBlockRef>::iterator> clean_;
  std::unordered_map<std::uint64_t, MutableBlockRef> dirty_;
  std::vector<MutableBlockRef> spare_;  // evicted or discarded blocks nobody else holds
  std::vector<std::byte> run_;          // write_dirty's staging buffer, kept between commits
  std::uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace snapstore
