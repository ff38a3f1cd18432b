// Copy-on-write B-tree operations. See btree.h for the contract.
#include "btree/btree.h"

#include <algorithm>
#include <vector>

namespace snapstore {

namespace {

metadata_type type_for_level(std::uint16_t level) {
  return level == 0 ? metadata_type::btree_leaf : metadata_type::btree_internal;
}

// Nodes with at most this many entries are merged or topped up before a remove descends.
std::uint32_t thin_limit(const NodeView& n) { return n.max_entries() / 3; }

}  // namespace

BTree::BTree(TransactionManager& tm, ValueTraits traits) : tm_(tm), traits_(std::move(traits)) {}

Result<MutableBlockRef> BTree::new_node(std::uint16_t level) {
  auto block = tm_.new_block(type_for_level(level));
  if (!block) return block.status();
  NodeWriter(( *block)->bytes).init(level == 0 ? traits_.size : pointer_value_size, level);
  return block;
}

Result<BlockPointer> BTree::create() {
  auto root = new_node(0);
  if (!root) return root.status();
  return tm_.pointer_to(**root);
}

Result<MutableBlockRef> BTree::shadow_node(const BlockPointer& ptr) {
  auto s = tm_.shadow(ptr);
  if (!s) return s.status();
  if (s->was_shared) {  // the copy now points at everything the original did
    NodeView n(s->block->bytes);
    for (std::uint32_t i = 0; i < n.size(); ++i) {
      if (!n.is_leaf())
        tm_.inc(n.child(i).block);
      else if (traits_.inc)
        SNAPSTORE_RETURN_IF_ERROR(traits_.inc(n.value_span(i)));
    }
  }
  return s->block;
}

Result<MutableBlockRef> BTree::dirty(const BlockPointer& ptr) {
  MutableBlockRef b = tm_.blocks().dirty_block(ptr.block);
  if (!b) return corruption("b-tree expected a dirty node at " + std::to_string(ptr.block));
  return b;
}

Result<bool> BTree::lookup(const BlockPointer& root, std::uint64_t key, std::span<std::byte> out) {
  BlockPointer ptr = root;
  for (;;) {
    auto block = tm_.read(ptr);
    if (!block) return block.status();
    NodeView n((*block)->bytes);
    if (n.is_leaf()) {
      std::uint32_t j = n.first_at_or_after(key);
      if (j >= n.size() || n.key(j) != key) return false;
      std::memcpy(out.data(), n.value(j), std::min<std::size_t>(out.size(), n.value_size()));
      return true;
    }
    int i = n.lower_bound_index(key);
    if (i < 0) return false;
    ptr = n.child(static_cast<std::uint32_t>(i));
  }
}

Status BTree::split_child(NodeWriter& parent, std::uint32_t i, const MutableBlockRef& child) {
  NodeWriter c(child->bytes);
  auto sibling = new_node(c.level());
  if (!sibling) return sibling.status();
  NodeWriter s((*sibling)->bytes);
  c.move_tail_to(s, c.size() / 2);
  std::vector<std::byte> pointer(pointer_value_size);
  encode_pointer(pointer.data(), tm_.pointer_to(**sibling));
  parent.insert_at(i + 1, s.key(0), pointer);
  parent.set_child(i, tm_.pointer_to(*child));
  return Status::ok();
}

// Shadows the path from the root to the leaf where `key` belongs, splitting full nodes on
// the way down. Returns the new root; `leaf` is the (writable) leaf and `upper` the first
// key that belongs to a later leaf (~0 if none).
Result<BlockPointer> BTree::descend_for_insert(const BlockPointer& root, std::uint64_t key,
                                               MutableBlockRef& leaf, std::uint64_t& upper) {
  auto top = shadow_node(root);
  if (!top) return top.status();
  MutableBlockRef cur = *top;
  if (NodeView(cur->bytes).size() == NodeView(cur->bytes).max_entries()) {
    auto grown = new_node(static_cast<std::uint16_t>(NodeView(cur->bytes).level() + 1));
    if (!grown) return grown.status();
    NodeWriter g((*grown)->bytes);
    std::vector<std::byte> pointer(pointer_value_size);
    encode_pointer(pointer.data(), tm_.pointer_to(*cur));
    g.insert_at(0, NodeView(cur->bytes).key(0), pointer);
    SNAPSTORE_RETURN_IF_ERROR(split_child(g, 0, cur));
    cur = *grown;
  }
  const BlockPointer new_root = tm_.pointer_to(*cur);
  upper = ~std::uint64_t{0};
  for (;;) {
    NodeWriter node(cur->bytes);
    if (node.is_leaf()) break;
    int found = node.lower_bound_index(key);
    std::uint32_t i = found < 0 ? 0 : static_cast<std::uint32_t>(found);
    if (found < 0) node.set_key(0, key);
    auto child = shadow_node(node.child(i));
    if (!child) return child.status();
    MutableBlockRef next = *child;
    node.set_child(i, tm_.pointer_to(*next));
    if (NodeView(next->bytes).size() == NodeView(next->bytes).max_entries()) {
      SNAPSTORE_RETURN_IF_ERROR(split_child(node, i, next));
      if (key >= node.key(i + 1)) {
        auto right = dirty(node.child(i + 1));
        if (!right) return right.status();
        next = *right;
        ++i;
      }
    }
    if (i + 1 < node.size()) upper = std::min(upper, node.key(i + 1));
    cur = next;
  }
  leaf = cur;
  return new_root;
}

Result<BlockPointer> BTree::insert(const BlockPointer& root, std::uint64_t key,
                                   std::span<const std::byte> value,
                                   std::span<std::byte> old_value, bool* replaced) {
  MutableBlockRef cur;
  std::uint64_t upper = 0;
  auto new_root = descend_for_insert(root, key, cur, upper);
  if (!new_root) return new_root;
  NodeWriter leaf(cur->bytes);
  std::uint32_t j = leaf.first_at_or_after(key);
  const bool exists = j < leaf.size() && leaf.key(j) == key;
  if (replaced) *replaced = exists;
  if (exists) {
    if (!old_value.empty()) std::memcpy(old_value.data(), leaf.value(j), leaf.value_size());
    leaf.set_value(j, value);
  } else {
    leaf.insert_at(j, key, value);
  }
  return new_root;
}

Result<BlockPointer> BTree::insert_run(const BlockPointer& root, std::uint64_t first,
                                       std::uint64_t count, const RunValueFn& value_of,
                                       const RemovedFn& on_replaced) {
  BlockPointer current = root;
  std::uint64_t done = 0;
  while (done < count) {
    MutableBlockRef cur;
    std::uint64_t upper = 0;
    auto r = descend_for_insert(current, first + done, cur, upper);
    if (!r) return r;
    current = *r;
    NodeWriter leaf(cur->bytes);
    std::uint32_t j = leaf.first_at_or_after(first + done);
    do {  // fill this leaf while the keys belong to it and it has room
      const std::uint64_t key = first + done;
      if (j < leaf.size() && leaf.key(j) == key) {
        if (on_replaced) on_replaced(key, leaf.value_span(j));
        leaf.set_value(j, value_of(done));
      } else if (leaf.size() < leaf.max_entries()) {
        leaf.insert_at(j, key, value_of(done));
      } else {
        break;
      }
      ++j;
      ++done;
    } while (done < count && first + done < upper);
  }
  return current;
}

Result<MutableBlockRef> BTree::rebalance(NodeWriter& parent, std::uint32_t left,
                                         std::uint64_t key, std::uint32_t& chosen) {
  const std::uint32_t right = left + 1;
  auto l = shadow_node(parent.child(left));
  if (!l) return l.status();
  parent.set_child(left, tm_.pointer_to(**l));
  auto r = shadow_node(parent.child(right));
  if (!r) return r.status();
  parent.set_child(right, tm_.pointer_to(**r));
  NodeWriter lw((*l)->bytes), rw((*r)->bytes);
  if (lw.size() + rw.size() <= lw.max_entries() * 3 / 4) {  // merge right into left
    lw.take_head_from(rw, rw.size());
    const std::uint64_t freed = (*r)->number;
    parent.remove_at(right);
    tm_.dec(freed);  // its entries moved; nothing below loses a reference
    chosen = left;
    return *l;
  }
  const std::uint32_t total = lw.size() + rw.size();
  const std::uint32_t want_left = total / 2;
  if (lw.size() < want_left) {
    lw.take_head_from(rw, want_left - lw.size());
  } else if (lw.size() > want_left) {
    // Move left's tail to the front of right, through a scratch node in memory.
    alignas(64) std::byte scratch[metadata_block_size];
    NodeWriter tw(scratch);
    tw.init(lw.value_size(), lw.level());
    lw.move_tail_to(tw, want_left);
    tw.take_head_from(rw, rw.size());
    rw.take_head_from(tw, tw.size());
  }
  parent.set_key(right, rw.key(0));
  if (key >= rw.key(0)) {
    chosen = right;
    return *r;
  }
  chosen = left;
  return *l;
}

Result<MutableBlockRef> BTree::shadow_child_for_remove(NodeWriter& parent, std::uint32_t& i,
                                                       std::uint64_t key) {
  auto child = tm_.read(parent.child(i));
  if (!child) return child.status();
  NodeView c((*child)->bytes);
  if (c.size() > thin_limit(c) || parent.size() < 2) {
    auto s = shadow_node(parent.child(i));
    if (!s) return s.status();
    parent.set_child(i, tm_.pointer_to(**s));
    return s;
  }
  const std::uint32_t left = i + 1 < parent.size() ? i : i - 1;
  return rebalance(parent, left, key, i);
}

Result<BlockPointer> BTree::collapse_root(MutableBlockRef root) {
  for (;;) {
    NodeView n(root->bytes);
    if (n.is_leaf() || n.size() != 1) return tm_.pointer_to(*root);
    BlockPointer only = n.child(0);
    auto child = dirty(only);  // the remove descended through it, so it is dirty
    if (!child) return child.status();
    tm_.dec(root->number);  // the child inherits the root's reference
    root = *child;
  }
}

// Shadows the path from `top` to the leaf where `key` would be, merging or topping up
// thin nodes on the way down so that the leaf can lose entries without emptying a node.
Result<MutableBlockRef> BTree::descend_for_remove(MutableBlockRef top, std::uint64_t key) {
  MutableBlockRef cur = std::move(top);
  for (;;) {
    NodeWriter node(cur->bytes);
    if (node.is_leaf()) return cur;
    int found = node.lower_bound_index(key);
    std::uint32_t i = found < 0 ? 0 : static_cast<std::uint32_t>(found);
    auto child = shadow_child_for_remove(node, i, key);
    if (!child) return child.status();
    cur = *child;
  }
}

Result<BlockPointer> BTree::remove(const BlockPointer& root, std::uint64_t key,
                                   std::span<std::byte> old_value, bool* removed) {
  if (removed) *removed = false;
  auto top = shadow_node(root);
  if (!top) return top.status();
  auto found = descend_for_remove(*top, key);
  if (!found) return found.status();
  NodeWriter leaf((*found)->bytes);
  std::uint32_t j = leaf.first_at_or_after(key);
  if (j < leaf.size() && leaf.key(j) == key) {
    if (!old_value.empty()) std::memcpy(old_value.data(), leaf.value(j), leaf.value_size());
    leaf.remove_at(j);
    if (removed) *removed = true;
  }
  return collapse_root(*top);
}

Result<BlockPointer> BTree::remove_run(const BlockPointer& root, std::uint64_t first,
                                       std::uint64_t end, const RemovedFn& on_removed) {
  auto top = shadow_node(root);
  if (!top) return top.status();
  auto found = descend_for_remove(*top, first);
  if (!found) return found.status();
  MutableBlockRef cur = *found;
  NodeWriter leaf(cur->bytes);
  std::uint32_t from = leaf.first_at_or_after(first);
  std::uint32_t to = from;
  // A leaf below the root keeps one entry; the next pass merges it with a sibling first.
  const std::uint32_t max_remove = cur == *top ? leaf.size() : leaf.size() - 1;
  while (to < leaf.size() && to - from < max_remove && leaf.key(to) < end) {
    if (on_removed) on_removed(leaf.key(to), leaf.value_span(to));
    ++to;
  }
  if (to == from) return corruption("b-tree range removal made no progress");
  leaf.remove_range(from, to);
  return collapse_root(*top);
}

Result<BlockPointer> BTree::remove_range(const BlockPointer& root, std::uint64_t begin,
                                         std::uint64_t end, const RemovedFn& on_removed) {
  BlockPointer current = root;
  for (;;) {
    auto next = next_key(current, begin);
    if (!next) return next.status();
    if (!*next || **next >= end) return current;
    auto r = remove_run(current, **next, end, on_removed);
    if (!r) return r.status();
    current = *r;
    begin = **next;
  }
}

Result<std::optional<std::uint64_t>> BTree::next_key(const BlockPointer& root,
                                                     std::uint64_t key) {
  return next_key_in(root, key);
}

Result<std::optional<std::uint64_t>> BTree::next_key_in(const BlockPointer& ptr,
                                                        std::uint64_t key) {
  auto block = tm_.read(ptr);
  if (!block) return block.status();
  NodeView n((*block)->bytes);
  if (n.is_leaf()) {
    std::uint32_t j = n.first_at_or_after(key);
    if (j < n.size()) return std::optional<std::uint64_t>(n.key(j));
    return std::optional<std::uint64_t>();
  }
  int found = n.lower_bound_index(key);
  for (std::uint32_t c = found < 0 ? 0 : static_cast<std::uint32_t>(found); c < n.size(); ++c) {
    auto r = next_key_in(n.child(c), key);
    if (!r || *r) return r;
  }
  return std::optional<std::uint64_t>();
}

Status BTree::scan(const BlockPointer& root, std::uint64_t begin, std::uint64_t end,
                   const Visitor& visit) {
  bool go_on = true;
  return scan_node(root, begin, end, visit, go_on);
}

Status BTree::scan_node(const BlockPointer& ptr, std::uint64_t begin, std::uint64_t end,
                        const Visitor& visit, bool& go_on) {
  auto block = tm_.read(ptr);
  if (!block) return block.status();
  NodeView n((*block)->bytes);
  if (n.is_leaf()) {
    for (std::uint32_t j = n.first_at_or_after(begin); go_on && j < n.size() && n.key(j) < end; ++j)
      go_on = visit(n.key(j), n.value_span(j));
    return Status::ok();
  }
  int found = n.lower_bound_index(begin);
  for (std::uint32_t c = found < 0 ? 0 : static_cast<std::uint32_t>(found);
       go_on && c < n.size() && n.key(c) < end; ++c)
    SNAPSTORE_RETURN_IF_ERROR(scan_node(n.child(c), begin, end, visit, go_on));
  return Status::ok();
}

Status BTree::scan_readable(const BlockPointer& root, const Visitor& visit, const LostFn& on_lost) {
  bool go_on = true;
  scan_readable_node(root, 0, ~std::uint64_t{0}, visit, on_lost, go_on);
  return Status::ok();
}

void BTree::scan_readable_node(const BlockPointer& ptr, std::uint64_t lo, std::uint64_t hi,
                               const Visitor& visit, const LostFn& on_lost, bool& go_on) {
  auto block = tm_.read(ptr);
  if (!block) {
    on_lost(lo, hi, block.status());
    return;
  }
  NodeView n((*block)->bytes);
  for (std::uint32_t c = 0; go_on && c < n.size(); ++c) {
    if (n.is_leaf()) {
      go_on = visit(n.key(c), n.value_span(c));
      continue;
    }
    const std::uint64_t child_hi = c + 1 < n.size() ? n.key(c + 1) : hi;
    scan_readable_node(n.child(c), c == 0 ? lo : n.key(c), child_hi, visit, on_lost, go_on);
  }
}

Status BTree::check_paths(const BlockPointer& root, std::uint64_t first, std::uint64_t last, bool siblings) {
  auto block = tm_.read(root);
  if (!block) return block.status();
  NodeView n((*block)->bytes);
  if (n.is_leaf() || n.size() == 0) return Status::ok();
  const int lo = n.lower_bound_index(first), hi = n.lower_bound_index(last);
  const std::uint32_t c0 = lo < 0 ? 0 : static_cast<std::uint32_t>(lo);
  const std::uint32_t c1 = hi < 0 ? 0 : static_cast<std::uint32_t>(hi);
  if (siblings && c0 > 0) SNAPSTORE_RETURN_IF_ERROR(tm_.read(n.child(c0 - 1)).status());
  if (siblings && c1 + 1 < n.size()) SNAPSTORE_RETURN_IF_ERROR(tm_.read(n.child(c1 + 1)).status());
  for (std::uint32_t c = c0; c <= c1; ++c) SNAPSTORE_RETURN_IF_ERROR(check_paths(n.child(c), first, last, siblings));
  return Status::ok();
}

Status BTree::release(const BlockPointer& root) {
  auto block = tm_.read(root);  // keep the bytes: the block may leave the cache below
  if (!block) return block.status();
  if (tm_.dec(root.block) > 0) return Status::ok();
  NodeView n((*block)->bytes);
  for (std::uint32_t i = 0; i < n.size(); ++i) {
    if (!n.is_leaf())
      SNAPSTORE_RETURN_IF_ERROR(release(n.child(i)));
    else if (traits_.dec)
      SNAPSTORE_RETURN_IF_ERROR(traits_.dec(n.value_span(i)));
  }
  return Status::ok();
}

Result<std::optional<BlockPointer>> BTree::release_some(const BlockPointer& root,
                                                        std::uint64_t& budget,
                                                        std::uint64_t& released_values) {
  using Left = std::optional<BlockPointer>;
  if (budget > 0) --budget;
  if (tm_.count(root.block) > 1) {  // shared: the other trees keep it
    tm_.dec(root.block);
    return Left();
  }
  auto block = tm_.read(root);
  if (!block) return block.status();
  NodeView view((*block)->bytes);
  if (view.is_leaf() && view.size() <= budget) {
    budget -= view.size();
    released_values += view.size();
    SNAPSTORE_RETURN_IF_ERROR(release(root));
    return Left();
  }
  auto node = shadow_node(root);  // not shared: moved (or changed in place), no new refs
  if (!node) return node.status();
  NodeWriter n((*node)->bytes);
  if (n.is_leaf()) {  // release the lowest `budget` values
    const std::uint32_t take = static_cast<std::uint32_t>(std::min<std::uint64_t>(budget, n.size()));
    for (std::uint32_t i = 0; i < take; ++i)
      if (traits_.dec) SNAPSTORE_RETURN_IF_ERROR(traits_.dec(n.value_span(i)));
    n.remove_range(0, take);
    budget -= take;
    released_values += take;
  } else {
    while (n.size() > 0 && budget > 0) {
      auto left = release_some(n.child(0), budget, released_values);
      if (!left) return left.status();
      if (*left) {
        n.set_child(0, **left);
        break;
      }
      n.remove_at(0);
    }
  }
  if (n.size() == 0) {
    tm_.dec((*node)->number);
    return Left();
  }
  return Left(tm_.pointer_to(**node));
}

Result<BlockPointer> BTree::seal(const BlockPointer& root) {
  MutableBlockRef node = tm_.blocks().dirty_block(root.block);
  if (!node) return root;  // unchanged in this transaction: the pointer is already right
  NodeWriter n(node->bytes);
  for (std::uint32_t i = 0; i < n.size(); ++i) {
    if (!n.is_leaf()) {
      auto child = seal(n.child(i));
      if (!child) return child.status();
      n.set_child(i, *child);
    } else if (traits_.seal) {
      SNAPSTORE_RETURN_IF_ERROR(traits_.seal({n.value(i), n.value_size()}));
    }
  }
  const std::uint64_t sum = seal_metadata_block(node->mutable_data(), node->number, tm_.generation());
  return BlockPointer{node->number, sum, tm_.generation()};
}

}  // namespace snapstore
