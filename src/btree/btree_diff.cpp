// BTree::diff: the keys whose values differ between two trees that may share nodes.
//
// The two trees are walked side by side over the same key range. Where both point at the
// same block the subtree is identical and skipped; otherwise the deeper side (or both, at
// equal depth) is expanded child by child, each child compared over the part of the
// range it covers, until two leaves are merged entry by entry. The cost is therefore
// proportional to the nodes the trees do not share, not to their size.
#include <cstring>
#include <limits>

#include "btree/btree.h"

namespace snapstore {

namespace {

// Child i of internal node n, inside the parent's range [lo, hi), covers
// [child_begin, child_end).
std::uint64_t child_end(const NodeView& n, std::uint32_t i, std::uint64_t hi) {
  return i + 1 < n.size() ? std::min(hi, n.key(i + 1)) : hi;
}

std::uint32_t child_covering(const NodeView& n, std::uint64_t key) {
  const int i = n.lower_bound_index(key);
  return i < 0 ? 0 : static_cast<std::uint32_t>(i);
}

}  // namespace

Status BTree::diff(const BlockPointer& a, const BlockPointer& b, std::uint64_t begin,
                   std::uint64_t end, const DiffFn& on_diff) {
  bool go_on = true;
  if (begin >= end) return Status::ok();
  return diff_nodes(a, b, begin, end, on_diff, go_on);
}

Status BTree::diff_nodes(const BlockPointer& a, const BlockPointer& b, std::uint64_t lo,
                         std::uint64_t hi, const DiffFn& on_diff, bool& go_on) {
  if (a.block == b.block || !go_on) return Status::ok();
  auto block_a = tm_.read(a);
  if (!block_a) return block_a.status();
  auto block_b = tm_.read(b);
  if (!block_b) return block_b.status();
  NodeView na((*block_a)->bytes), nb((*block_b)->bytes);
  if (na.is_leaf() && nb.is_leaf()) return diff_leaves(na, nb, lo, hi, on_diff, go_on);
  const bool expand_a = na.level() >= nb.level();
  const bool expand_b = nb.level() >= na.level();
  for (std::uint64_t pos = lo; pos < hi && go_on;) {
    BlockPointer child_a = a, child_b = b;
    std::uint64_t segment_end = hi;
    if (expand_a) {
      const std::uint32_t i = child_covering(na, pos);
      child_a = na.child(i);
      segment_end = std::min(segment_end, child_end(na, i, hi));
    }
    if (expand_b) {
      const std::uint32_t j = child_covering(nb, pos);
      child_b = nb.child(j);
      segment_end = std::min(segment_end, child_end(nb, j, hi));
    }
    SNAPSTORE_RETURN_IF_ERROR(diff_nodes(child_a, child_b, pos, segment_end, on_diff, go_on));
    pos = segment_end;
  }
  return Status::ok();
}

Status BTree::diff_leaves(const NodeView& a, const NodeView& b, std::uint64_t lo,
                          std::uint64_t hi, const DiffFn& on_diff, bool& go_on) {
  constexpr std::uint64_t none = std::numeric_limits<std::uint64_t>::max();
  std::uint32_t i = a.first_at_or_after(lo), j = b.first_at_or_after(lo);
  while (go_on) {
    const std::uint64_t ka = i < a.size() && a.key(i) < hi ? a.key(i) : none;
    const std::uint64_t kb = j < b.size() && b.key(j) < hi ? b.key(j) : none;
    if (ka == none && kb == none) break;
    if (ka < kb) {
      go_on = on_diff(ka);
      ++i;
    } else if (kb < ka) {
      go_on = on_diff(kb);
      ++j;
    } else {
      if (std::memcmp(a.value(i), b.value(j), a.value_size()) != 0) go_on = on_diff(ka);
      ++i;
      ++j;
    }
  }
  return Status::ok();
}

}  // namespace snapstore
