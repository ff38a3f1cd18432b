// DataSpaceMap: reference counts of data blocks, paged through the metadata cache.
//
// On disk: refcount pages (the same layout as the metadata space map's: type
// refcount_page, 1,016 u32 counts, extra word = page number), named by an index b-tree
// keyed by page number whose 32-byte values are {BlockPointer page (24), u32 free count,
// u32 reserved}. A page that was never written is absent from the index: all its counts
// are zero.
//
// In memory: the index as a vector (one entry per page), so allocation finds a page with
// free blocks without reading the tree.
//
// Invariants:
//  1. count(d) is the number of mapping-tree leaves whose values point at data block d.
//  2. A data block whose count dropped to zero in the open transaction is not allocated
//     again before that transaction commits.
//  3. Pages change only through the transaction manager (shadowing), like any metadata.
//  4. Callers hold the pool's metadata lock exclusively for every call but count().
#pragma once

#include <unordered_set>
#include <vector>

#include "btree/btree.h"

namespace snapstore {

inline constexpr std::uint32_t data_sm_index_value_size = 32;

class DataSpaceMap {
 public:
  DataSpaceMap(TransactionManager& tm, BlockPointer index_root, std::uint64_t nr_blocks);
  // Reads the index tree into memory.
  Status load();
  static Result<BlockPointer> create_index(TransactionManager& tm);

  std::uint64_t nr_blocks() const { return nr_blocks_; }
  std::uint64_t nr_free() const;  // allocatable now
  std::uint64_t nr_allocated() const { return nr_blocks_ - free_total_; }
  void grow(std::uint64_t nr_blocks);

  Result<std::uint32_t> count(std::uint64_t block);
  // Allocates up to `want` blocks (count 0 -> 1), preferring consecutive ones; returns
  // fewer only when the space runs out (no_space if none).
  Result<std::vector<std::uint64_t>> allocate(std::size_t want);
  Status inc(std::uint64_t block);
  Status dec(std::uint64_t block);

  // Commit, before sealing: writes changed index entries into the index tree.
  Status flush_index();
  Result<BlockPointer> seal();  // seals the index tree and the pages it names
  void end_transaction();
  BlockPointer index_root() const { return index_root_; }
  BTree& index_tree() { return index_; }

 private:
  struct PageEntry {
    BlockPointer page;  // block == no_page: never written, all zero
    std::uint32_t free = 0;
  };
  static constexpr std::uint64_t no_page = ~std::uint64_t{0};

  Result<MutableBlockRef> writable_page(std::uint64_t page);
  Status seal_page(std::span<std::byte> index_value);
  Status adjust(std::uint64_t block, int delta);
  std::uint32_t blocks_in_page(std::uint64_t page) const;

  TransactionManager& tm_;
  BTree index_;
  BlockPointer index_root_;
  std::uint64_t nr_blocks_;
  std::vector<PageEntry> pages_;
  std::unordered_set<std::uint64_t> dirty_entries_;
  // Blocks whose count dropped to zero in the open transaction: a bit per block for the
  // allocator's test and a list to clear them at commit (cost per freed block, not per
  // block of the pool: this runs at every commit).
  std::vector<bool> freed_bits_;
  std::vector<std::uint64_t> freed_list_;
  std::uint64_t free_total_ = 0;
  std::uint64_t cursor_ = 0;
};

}  // namespace snapstore
