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

#include <vector>

#include "btree/btree.h"

namespace snapstore {

inline constexpr std::uint32_t data_sm_index_value_size = 32;

class DataSpaceMap {
 public:
  DataSpaceMap(TransactionManager& tm, BlockPointer index_root, std::uint64_t nr_blocks);
  // Reads the index tree into memory.
  Status load();
  // Reads every refcount page the index names (they are otherwise read when first used):
  // the first that cannot be read on any copy is the error.
  Status verify_pages();
  static Result<BlockPointer> create_index(TransactionManager& tm);

  std::uint64_t nr_blocks() const { return nr_blocks_; }
  std::uint64_t nr_free() const;  // allocatable now
  // Released in the open transaction: allocatable once it commits.
  std::uint64_t nr_released() const { return freed_list_.size(); }
  std::uint64_t nr_allocated() const { return nr_blocks_ - free_total_; }
  void grow(std::uint64_t nr_blocks);

  Result<std::uint32_t> count(std::uint64_t block);
  // Allocates up to `want` blocks (count 0 -> 1); returns fewer only when the space runs
  // out (no_space if none), or, for a large request, when it returns one run of
  // consecutive blocks that is shorter (call again for the rest).
  //
  // Placement: a request of run_threshold blocks or more takes a run of consecutive free
  // blocks (at least min(want, min_run) long) from the stream cursor on, so that large
  // writes stay contiguous on the device whatever small overwrites have left behind; the
  // stream cursor moves on through free space and is not reset at commits. Smaller
  // requests (and large ones when no such run is left) take the first free blocks from
  // the block cursor, which goes back to 0 at every commit, so that small overwrites
  // reuse the holes earlier overwrites left (blocks the backing file already holds).
  Result<std::vector<std::uint64_t>> allocate(std::size_t want);
  static constexpr std::size_t run_threshold = 8;
  static constexpr std::size_t min_run = 64;
  Status inc(std::uint64_t block);
  Status dec(std::uint64_t block);
  // Takes one particular block (count 0 -> 1), as allocate() once did: for replaying the
  // intent log. Fails if the block is in use or was released in the open transaction.
  Status adopt(std::uint64_t block);

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
    bool entry_dirty = false;  // listed in dirty_entries_
    MutableBlockRef writable;  // the page's dirty block in the open transaction, if any
  };
  static constexpr std::uint64_t no_page = ~std::uint64_t{0};

  static PageEntry unwritten_page();
  Result<MutableBlockRef> writable_page(std::uint64_t page);
  void mark_entry_dirty(std::uint64_t page);
  Result<std::vector<std::uint64_t>> allocate_run(std::size_t want);
  Status seal_page(std::span<std::byte> index_value);
  Status adjust(std::uint64_t block, int delta);
  std::uint32_t blocks_in_page(std::uint64_t page) const;

  TransactionManager& tm_;
  BTree index_;
  BlockPointer index_root_;
  std::uint64_t nr_blocks_;
  std::vector<PageEntry> pages_;
  std::vector<std::uint64_t> dirty_entries_;   // pages whose index entry changed
  std::vector<std::uint64_t> writable_pages_;  // pages with `writable` set
  // Blocks whose count dropped to zero in the open transaction: a bit per block for the
  // allocator's test and a list to clear them at commit (cost per freed block, not per
  // block of the pool: this runs at every commit).
  std::vector<bool> freed_bits_;
  std::vector<std::uint64_t> freed_list_;
  std::uint64_t free_total_ = 0;
  std::uint64_t cursor_ = 0;         // small requests: first candidate block
  std::uint64_t stream_cursor_ = 0;  // large requests: where the next run is looked for
  bool no_runs_ = false;             // a full sweep found no run; until more space is free
};

}  // namespace snapstore
