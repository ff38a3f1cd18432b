// Checker walk over b-trees. See tree_walker.h.
#include "btree/tree_walker.h"

namespace snapstore {

TreeWalker::TreeWalker(ReadFn read, std::map<std::uint64_t, std::uint32_t>& references,
                       std::vector<std::string>& problems)
    : read_(std::move(read)), references_(references), problems_(problems) {}

void TreeWalker::problem(const std::string& name, std::uint64_t block, const std::string& what) {
  problems_.push_back(name + ": node " + std::to_string(block) + ": " + what);
}

void TreeWalker::walk(const BlockPointer& root, std::uint32_t value_size, const std::string& name,
                      const ValueFn& on_value) {
  visit(root, value_size, 0, ~std::uint64_t{0}, -1, true, name, on_value);
}

void TreeWalker::visit(const BlockPointer& ptr, std::uint32_t value_size, std::uint64_t lo,
                       std::uint64_t hi, int expected_level, bool is_root,
                       const std::string& name, const ValueFn& on_value) {
  ++references_[ptr.block];
  if (!seen_.insert(ptr.block).second) return;
  auto block = read_(ptr);
  if (!block) {
    problem(name, ptr.block, block.status().to_string());
    return;
  }
  NodeView n((*block)->bytes);
  const auto type = read_header((*block)->data()).type;
  if (type != (n.is_leaf() ? metadata_type::btree_leaf : metadata_type::btree_internal)) {
    problem(name, ptr.block, "block type does not match the node level");
    return;
  }
  if (!n.well_formed(value_size)) {
    problem(name, ptr.block, "malformed node header or keys out of order");
    return;
  }
  if (expected_level >= 0 && n.level() != expected_level)
    problem(name, ptr.block, "unbalanced: level " + std::to_string(n.level()) + ", expected " +
                                 std::to_string(expected_level));
  if (!is_root && n.size() == 0) problem(name, ptr.block, "empty node below the root");
  for (std::uint32_t i = 0; i < n.size(); ++i) {
    const std::uint64_t k = n.key(i);
    if (k >= hi || (k < lo && !(i == 0 && !n.is_leaf())))
      problem(name, ptr.block, "key " + std::to_string(k) + " outside its parent's range");
    if (n.is_leaf()) {
      if (on_value) on_value(k, n.value_span(i));
      continue;
    }
    const std::uint64_t child_hi = i + 1 < n.size() ? n.key(i + 1) : hi;
    visit(n.child(i), value_size, std::max(lo, k), child_hi, n.level() - 1, false, name,
          on_value);
  }
}

}  // namespace snapstore
