// Node accessors. See btree_node.h for the layout.
#include "btree/btree_node.h"

namespace snapstore {

int NodeView::lower_bound_index(std::uint64_t k) const {
  int lo = 0, hi = static_cast<int>(size()) - 1, found = -1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (key(static_cast<std::uint32_t>(mid)) <= k) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

std::uint32_t NodeView::first_at_or_after(std::uint64_t k) const {
  std::uint32_t lo = 0, hi = size();
  while (lo < hi) {
    std::uint32_t mid = (lo + hi) / 2;
    if (key(mid) < k)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

bool NodeView::well_formed(std::uint32_t expected_value_size) const {
  const std::uint32_t vs = is_leaf() ? expected_value_size : pointer_value_size;
  if (value_size() != vs || max_entries() != max_entries_for(vs) || size() > max_entries())
    return false;
  for (std::uint32_t i = 1; i < size(); ++i)
    if (key(i - 1) >= key(i)) return false;
  return true;
}

void NodeWriter::init(std::uint32_t value_size, std::uint16_t level) {
  store_le32(w_ + 32, 0);
  store_le32(w_ + 36, max_entries_for(value_size));
  store_le32(w_ + 40, value_size);
  store_le16(w_ + 44, level);
  store_le16(w_ + 46, 0);
}

void NodeWriter::insert_at(std::uint32_t i, std::uint64_t k, std::span<const std::byte> v) {
  const std::uint32_t n = size();
  const std::uint32_t vs = value_size();
  std::byte* keys = w_ + node_header_end;
  std::memmove(keys + 8 * (i + 1), keys + 8 * i, 8 * (n - i));
  std::memmove(value(i + 1), value(i), std::size_t{vs} * (n - i));
  set_key(i, k);
  set_value(i, v);
  set_size(n + 1);
}

void NodeWriter::remove_range(std::uint32_t from, std::uint32_t to) {
  const std::uint32_t n = size();
  const std::uint32_t vs = value_size();
  std::byte* keys = w_ + node_header_end;
  std::memmove(keys + 8 * from, keys + 8 * to, 8 * (n - to));
  std::memmove(value(from), value(to), std::size_t{vs} * (n - to));
  set_size(n - (to - from));
}

void NodeWriter::move_tail_to(NodeWriter& dest, std::uint32_t from) {
  const std::uint32_t n = size();
  const std::uint32_t d = dest.size();
  const std::uint32_t count = n - from;
  std::memcpy(dest.w_ + node_header_end + 8 * d, w_ + node_header_end + 8 * from, 8 * count);
  std::memcpy(dest.value(d), value(from), std::size_t{value_size()} * count);
  dest.set_size(d + count);
  set_size(from);
}

void NodeWriter::take_head_from(NodeWriter& src, std::uint32_t n) {
  const std::uint32_t d = size();
  std::memcpy(w_ + node_header_end + 8 * d, src.w_ + node_header_end, 8 * n);
  std::memcpy(value(d), src.value(0), std::size_t{value_size()} * n);
  set_size(d + n);
  src.remove_range(0, n);
}

}  // namespace snapstore
