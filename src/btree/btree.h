// BTree: a copy-on-write B-tree of u64 keys to fixed-size values, with shared,
// reference-counted nodes (Rodeh, "B-trees, Shadowing, and Clones").
//
// A tree is named by its root pointer; every modifying call takes the current root and
// returns the new one (the root moves whenever it is shadowed). clone() is O(1): it takes
// one more reference on the root, and the two trees share every node until one of them
// writes through it.
//
// Invariants (with those of btree_node.h):
//  1. Writes go through TransactionManager::shadow: nodes of the committed state and nodes
//     shared with another tree are never changed in place.
//  2. When a shared node is copied, everything the copy points to gains a reference:
//     child nodes through the space map, values through ValueTraits::inc.
//  3. Every node but the root holds at least one entry; inserts split full nodes and
//     removes merge or rebalance thin ones on the way down, so one pass suffices.
//  4. The tree never releases what a value points to on overwrite or remove: it hands the
//     old value back and the caller decides. Only release() of a whole tree calls
//     ValueTraits::dec, for values in leaves whose last reference goes.
//  5. seal() runs at commit: it computes checksums bottom-up over the nodes written in
//     this transaction and stores each in its parent's pointer.
#pragma once

#include <functional>
#include <optional>

#include "btree/btree_node.h"
#include "btree/transaction_manager.h"

namespace snapstore {

struct ValueTraits {
  std::uint32_t size = 0;
  std::function<Status(std::span<const std::byte>)> inc;  // a shared leaf was copied
  std::function<Status(std::span<const std::byte>)> dec;  // a leaf's last reference went
  std::function<Status(std::span<std::byte>)> seal;     // fix pointers inside a value
};

class BTree {
 public:
  using Visitor = std::function<bool(std::uint64_t key, std::span<const std::byte> value)>;
  using RemovedFn = std::function<void(std::uint64_t key, std::span<const std::byte> value)>;

  BTree(TransactionManager& tm, ValueTraits traits);

  Result<BlockPointer> create();
  // Copies the value for `key` into `out` (value size bytes); false when absent.
  Result<bool> lookup(const BlockPointer& root, std::uint64_t key, std::span<std::byte> out);
  // Inserts or overwrites. If `replaced` is set, it says whether a value was overwritten,
  // and the old value is copied into `old_value`.
  Result<BlockPointer> insert(const BlockPointer& root, std::uint64_t key,
                              std::span<const std::byte> value, std::span<std::byte> old_value = {},
                              bool* replaced = nullptr);
  // Sets keys first .. first + count - 1 to value_of(0 .. count - 1), descending once per
  // leaf rather than once per key; on_replaced sees each overwritten old value.
  using RunValueFn = std::function<std::span<const std::byte>(std::uint64_t index)>;
  Result<BlockPointer> insert_run(const BlockPointer& root, std::uint64_t first,
                                  std::uint64_t count, const RunValueFn& value_of,
                                  const RemovedFn& on_replaced);
  Result<BlockPointer> remove(const BlockPointer& root, std::uint64_t key,
                              std::span<std::byte> old_value = {}, bool* removed = nullptr);
  // Removes every key in [begin, end), calling on_removed for each.
  Result<BlockPointer> remove_range(const BlockPointer& root, std::uint64_t begin,
                                    std::uint64_t end, const RemovedFn& on_removed);
  // Visits keys in [begin, end) in order until the visitor returns false.
  Status scan(const BlockPointer& root, std::uint64_t begin, std::uint64_t end,
              const Visitor& visit);
  // The same over the whole tree, going on past nodes that cannot be read: on_lost gets
  // the key range [lo, hi) each one covered (hi = ~0 for "to the end") and why.
  using LostFn = std::function<void(std::uint64_t lo, std::uint64_t hi, const Status& why)>;
  Status scan_readable(const BlockPointer& root, const Visitor& visit, const LostFn& on_lost);
  // Reads every node that inserting keys [first, last] would read, and, with siblings,
  // every node that removing them would (the neighbours a removal merges with or borrows
  // from), changing nothing. The modifying calls read as they shadow, so a node they
  // cannot read leaves the tree half changed; checking first lets a caller refuse the
  // change instead (a damaged node costs the keys below it, not the pool).
  Status check_paths(const BlockPointer& root, std::uint64_t first, std::uint64_t last, bool siblings);
  Result<std::optional<std::uint64_t>> next_key(const BlockPointer& root, std::uint64_t key);

  void clone(const BlockPointer& root) { tm_.inc(root.block); }
  // Drops one reference to the tree; nodes whose count reaches zero are freed, and so on
  // down, values of freed leaves going to ValueTraits::dec.
  Status release(const BlockPointer& root);
  Result<BlockPointer> seal(const BlockPointer& root);

  // Releases a tree in bounded steps, from its lowest keys up: spends at most about
  // `budget` units (a node visited, a value released, a shared subtree dropped) and
  // returns the root of what is left, a valid tree of the remaining keys, or nullopt once
  // the whole tree is gone. Values whose last reference goes are handed to
  // ValueTraits::dec; released_values counts them. A shared subtree costs one unit: it
  // only loses this tree's reference.
  Result<std::optional<BlockPointer>> release_some(const BlockPointer& root,
                                                   std::uint64_t& budget,
                                                   std::uint64_t& released_values);

  // Calls on_diff for every key in [begin, end) whose value differs between the trees at
  // a and b (present in one only, or different bytes), in increasing order, until it
  // returns false. Subtrees the two trees share are skipped without being read.
  using DiffFn = std::function<bool(std::uint64_t key)>;
  Status diff(const BlockPointer& a, const BlockPointer& b, std::uint64_t begin,
              std::uint64_t end, const DiffFn& on_diff);

  const ValueTraits& traits() const { return traits_; }

 private:
  Result<MutableBlockRef> shadow_node(const BlockPointer& ptr);
  Result<MutableBlockRef> new_node(std::uint16_t level);
  Status split_child(NodeWriter& parent, std::uint32_t i, const MutableBlockRef& child);
  Result<BlockPointer> descend_for_insert(const BlockPointer& root, std::uint64_t key,
                                          MutableBlockRef& leaf, std::uint64_t& upper);
  Result<MutableBlockRef> shadow_child_for_remove(NodeWriter& parent, std::uint32_t& i,
                                                  std::uint64_t key);
  Result<MutableBlockRef> rebalance(NodeWriter& parent, std::uint32_t left, std::uint64_t key,
                                    std::uint32_t& chosen);
  Result<BlockPointer> collapse_root(MutableBlockRef root);
  Result<MutableBlockRef> descend_for_remove(MutableBlockRef top, std::uint64_t key);
  Result<BlockPointer> remove_run(const BlockPointer& root, std::uint64_t first,
                                  std::uint64_t end, const RemovedFn& on_removed);
  Result<std::optional<std::uint64_t>> next_key_in(const BlockPointer& ptr, std::uint64_t key);
  Status scan_node(const BlockPointer& ptr, std::uint64_t begin, std::uint64_t end,
                   const Visitor& visit, bool& go_on);
  void scan_readable_node(const BlockPointer& ptr, std::uint64_t lo, std::uint64_t hi, const Visitor& visit,
                          const LostFn& on_lost, bool& go_on);
  Result<MutableBlockRef> dirty(const BlockPointer& ptr);
  Status diff_nodes(const BlockPointer& a, const BlockPointer& b, std::uint64_t lo,
                    std::uint64_t hi, const DiffFn& on_diff, bool& go_on);
  Status diff_leaves(const NodeView& a, const NodeView& b, std::uint64_t lo, std::uint64_t hi,
                     const DiffFn& on_diff, bool& go_on);

  TransactionManager& tm_;
  ValueTraits traits_;
};

}  // namespace snapstore
