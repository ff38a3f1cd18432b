// Shadowing and allocation of metadata blocks. See transaction_manager.h.
#include "btree/transaction_manager.h"

#include <cstring>

namespace snapstore {

TransactionManager::TransactionManager(BlockManager& blocks, MetadataSpaceMap& space_map,
                                       std::function<Status()> grow_metadata,
                                       std::uint64_t generation)
    : blocks_(blocks),
      space_map_(space_map),
      grow_metadata_(std::move(grow_metadata)),
      generation_(generation) {}

Result<BlockRef> TransactionManager::read(const BlockPointer& ptr) {
  if (ptr.block >= space_map_.nr_blocks())
    return corruption("pointer to metadata block " + std::to_string(ptr.block) +
                      " beyond the metadata space");
  if (auto dirty = blocks_.dirty_block(ptr.block)) return BlockRef(dirty);
  return blocks_.read({ptr.block, ptr.checksum, ptr.generation});
}

Result<std::uint64_t> TransactionManager::allocate() {
  auto b = space_map_.allocate(use_reserve_);
  if (b || !grow_metadata_) return b;
  if (grow_metadata_().is_ok()) return space_map_.allocate(use_reserve_);
  return b;
}

Result<MutableBlockRef> TransactionManager::new_block(metadata_type type) {
  auto b = allocate();
  if (!b) return b.status();
  MutableBlockRef block = blocks_.create(*b);
  set_metadata_type(block->mutable_data(), type);
  return block;
}

Result<TransactionManager::Shadowed> TransactionManager::shadow(const BlockPointer& ptr) {
  const bool shared = space_map_.count(ptr.block) > 1;
  if (!shared)
    if (auto dirty = blocks_.dirty_block(ptr.block)) return Shadowed{dirty, false};
  auto original = read(ptr);
  if (!original) return original.status();
  auto b = allocate();
  if (!b) return b.status();
  MutableBlockRef copy = blocks_.create(*b);
  std::memcpy(copy->bytes, (*original)->bytes, metadata_block_size);
  dec(ptr.block);
  return Shadowed{copy, shared};
}

std::uint32_t TransactionManager::dec(std::uint64_t block) {
  std::uint32_t left = space_map_.dec(block);
  if (left == 0) blocks_.discard_dirty(block);
  return left;
}

}  // namespace snapstore
