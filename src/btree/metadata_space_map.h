// MetadataSpaceMap: reference counts of every metadata block, held in memory and written
// out at each commit.
//
// On disk: refcount pages (type refcount_page; after the header, 1,016 little-endian u32
// counts; the header's extra word is the page number) listed by index pages (type
// sm_index_page; up to 169 entries of {u64 block, u64 checksum, u64 reserved (0)};
// extra word = index page number), which the superblock lists.
//
// Invariants:
//  1. count(b) is the number of references to block b: parents' pointers, roots named by
//     the superblock or the volume table, and the space map's own pages.
//  2. A block whose count dropped to zero in the open transaction is not handed out again
//     before that transaction commits (the committed state may still reference it).
//  3. Allocations below the reserve fail with no_space unless the caller is the commit,
//     which must always be able to write the space maps themselves.
//  4. commit() reaches a fixed point: the pages it writes record the counts of the blocks
//     they occupy and the release of the pages they replace.
#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "btree/block_manager.h"
#include "store/superblock.h"

namespace snapstore {

inline constexpr std::size_t counts_per_refcount_page =
    (metadata_block_size - metadata_header_size) / 4;  // 1016
inline constexpr std::size_t entries_per_index_page =
    (metadata_block_size - metadata_header_size) / 24;  // 169

class MetadataSpaceMap {
 public:
  explicit MetadataSpaceMap(std::uint64_t nr_blocks = 0);
  static Result<MetadataSpaceMap> load(BlockManager& blocks,
                                       const std::vector<SmIndexPointer>& index,
                                       std::uint64_t nr_blocks);

  std::uint64_t nr_blocks() const { return counts_.size(); }
  std::uint64_t nr_free() const { return nr_free_; }  // count 0 and not freed this txn
  // Blocks with a reference: what would be in use if the open transaction committed now.
  std::uint64_t nr_in_use() const {
    const std::uint64_t unused = nr_free_ + freed_list_.size();
    return unused < nr_blocks() ? nr_blocks() - unused : 0;
  }
  std::uint32_t count(std::uint64_t block) const { return counts_[block]; }
  bool freed_this_transaction(std::uint64_t block) const { return freed_[block]; }
  void set_reserve(std::uint64_t blocks) { reserve_ = blocks; }
  std::uint64_t reserve() const { return reserve_; }

  void grow(std::uint64_t nr_blocks);
  Result<std::uint64_t> allocate(bool use_reserve = false);
  void inc(std::uint64_t block);
  // Returns the new count.
  std::uint32_t dec(std::uint64_t block);

  // Writes the dirty pages as new dirty blocks in `blocks` (sealed, generation `gen`) and
  // returns the index list for the superblock.
  Result<std::vector<SmIndexPointer>> commit(BlockManager& blocks, std::uint64_t gen);
  // After the superblock naming this commit is durable.
  void end_transaction();

 private:
  void touch(std::uint64_t block) { dirty_pages_.insert(block / counts_per_refcount_page); }
  void set_count(std::uint64_t block, std::uint32_t value);
  // Keeps block's bit in avail_ equal to "count 0 and not freed in this transaction".
  void update_avail(std::uint64_t block);
  std::uint64_t page_count() const;
  std::uint64_t index_page_count() const;

  std::vector<std::uint32_t> counts_;
  std::vector<bool> freed_;
  std::vector<std::uint64_t> avail_;  // a bit per block: allocatable now (64 per word)
  std::vector<std::uint64_t> freed_list_;
  std::uint64_t nr_free_ = 0;
  std::uint64_t cursor_ = 0;
  std::uint64_t reserve_ = 64;
  std::vector<SmIndexPointer> page_location_;   // per refcount page
  std::vector<SmIndexPointer> index_location_;  // per index page
  std::set<std::uint64_t> dirty_pages_;
  std::set<std::uint64_t> dirty_index_pages_;
};

}  // namespace snapstore
