// TreeWalker: the checker's walk over a b-tree.
//
// Each pointer found counts one reference to the block it names (so the caller can
// compare the totals with the space map); each node is checked and descended into only
// the first time it is reached, so trees that share nodes cost no more than their
// distinct nodes. Problems are collected as readable sentences; the walk goes on past
// them wherever it can.
//
// Checks: the pointer's checksum, generation and the block's own address and type (via
// the read function), the node's header, strictly increasing keys, keys inside the range
// the parent gives, equal depth of every leaf, no empty node below the root.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "btree/block_manager.h"
#include "btree/btree_node.h"

namespace snapstore {

class TreeWalker {
 public:
  using ReadFn = std::function<Result<BlockRef>(const BlockPointer&)>;
  using ValueFn = std::function<void(std::uint64_t key, std::span<const std::byte> value)>;

  TreeWalker(ReadFn read, std::map<std::uint64_t, std::uint32_t>& references,
             std::vector<std::string>& problems);

  // Walks the tree at `root`, whose leaves hold values of `value_size` bytes. on_value is
  // called once for every value of every leaf reached for the first time.
  void walk(const BlockPointer& root, std::uint32_t value_size, const std::string& name,
            const ValueFn& on_value);
  std::uint64_t nodes_seen() const { return seen_.size(); }

 private:
  void visit(const BlockPointer& ptr, std::uint32_t value_size, std::uint64_t lo,
             std::uint64_t hi, int expected_level, bool is_root, const std::string& name,
             const ValueFn& on_value);
  void problem(const std::string& name, std::uint64_t block, const std::string& what);

  ReadFn read_;
  std::map<std::uint64_t, std::uint32_t>& references_;
  std::vector<std::string>& problems_;
  std::set<std::uint64_t> seen_;
};

}  // namespace snapstore
