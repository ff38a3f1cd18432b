// TransactionManager: the one door to writable metadata blocks (shadowing).
//
// Invariants:
//  1. A block written in the open transaction (new or already shadowed) and referenced
//     once is changed in place; any other block (committed, or shared by a clone) is
//     copied to a newly allocated block before it changes, so neither the committed state
//     on disk nor another tree ever sees the change.
//  2. shadow() tells the caller whether the original was shared (count > 1); the caller
//     then takes a reference on everything the copy points to (Rodeh's lazy reference
//     counting), because the copy and the original now both point to it.
//  3. A block freed in the open transaction is not reused before the commit (the metadata
//     space map enforces this), and a dirty block freed in the same transaction is
//     dropped from the cache instead of being written.
//  4. Callers hold the pool's metadata lock: shared for read(), exclusive for the rest.
#pragma once

#include <functional>

#include "btree/block_manager.h"
#include "btree/metadata_space_map.h"

namespace snapstore {

class TransactionManager {
 public:
  // grow_metadata is asked for more metadata space when the space map runs low; it
  // returns no_space when the pool cannot give any.
  TransactionManager(BlockManager& blocks, MetadataSpaceMap& space_map,
                     std::function<Status()> grow_metadata, std::uint64_t generation);

  std::uint64_t generation() const { return generation_; }
  // While set, allocations may dip into the metadata reserve (for operations that give
  // space back, such as unmapping, which must work when the pool is full).
  void set_use_reserve(bool on) { use_reserve_ = on; }
  void set_generation(std::uint64_t g) { generation_ = g; }

  Result<BlockRef> read(const BlockPointer& ptr);
  Result<MutableBlockRef> new_block(metadata_type type);

  struct Shadowed {
    MutableBlockRef block;
    bool was_shared = false;
  };
  Result<Shadowed> shadow(const BlockPointer& ptr);

  bool is_dirty(std::uint64_t block) { return blocks_.is_dirty(block); }
  void inc(std::uint64_t block) { space_map_.inc(block); }
  // Drops one reference; returns the count left. At zero the block is released.
  std::uint32_t dec(std::uint64_t block);
  std::uint32_t count(std::uint64_t block) const { return space_map_.count(block); }

  // A provisional pointer to a dirty block; its checksum is filled in when sealed.
  BlockPointer pointer_to(const CachedBlock& b) const { return {b.number, 0, generation_}; }

  BlockManager& blocks() { return blocks_; }
  MetadataSpaceMap& space_map() { return space_map_; }

 private:
  Result<std::uint64_t> allocate();

  BlockManager& blocks_;
  MetadataSpaceMap& space_map_;
  std::function<Status()> grow_metadata_;
  std::uint64_t generation_;
  bool use_reserve_ = false;
};

// Lets allocations dip into the metadata reserve while it lives (set_use_reserve), for
// operations that give space back. The caller holds the metadata lock exclusively for
// the scope's whole life; scopes do not nest.
class ReserveScope {
 public:
  explicit ReserveScope(TransactionManager& tm) : tm_(tm) { tm_.set_use_reserve(true); }
  ~ReserveScope() { tm_.set_use_reserve(false); }
  ReserveScope(const ReserveScope&) = delete;
  ReserveScope& operator=(const ReserveScope&) = delete;

 private:
  TransactionManager& tm_;
};

}  // namespace snapstore
