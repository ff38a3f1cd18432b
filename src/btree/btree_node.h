// B-tree node layout and accessors.
//
// Layout (one 4 KiB metadata block, little-endian):
//    0  32  metadata header (type btree_internal or btree_leaf)
//   32   4  nr_entries
//   36   4  max_entries = (4096 - 48) / (8 + value_size)
//   40   4  value_size (internal nodes: 24, a BlockPointer)
//   44   2  level (0 = leaf)
//   46   2  reserved (0)
//   48      keys[max_entries]   (u64)
//           values[max_entries] (value_size bytes each)
//
// Invariants:
//  1. Keys in a node are strictly increasing.
//  2. In an internal node, key[i] <= every key under child i, and every key under child i
//     is < key[i + 1]. (key[0] may be lower than anything under child 0.)
//  3. Every leaf is at level 0 and every child of a level-n node is at level n - 1: the
//     tree is balanced.
//  4. A child pointer is {block, checksum, generation} of the child as last sealed.
#pragma once

#include <cstring>
#include <span>

#include "btree/metadata_block.h"
#include "store/superblock.h"

namespace snapstore {

inline constexpr std::size_t node_header_end = 48;
inline constexpr std::uint32_t pointer_value_size = 24;

inline std::uint32_t max_entries_for(std::uint32_t value_size) {
  return static_cast<std::uint32_t>((metadata_block_size - node_header_end) / (8 + value_size));
}

inline void encode_pointer(std::byte* p, const BlockPointer& ptr) {
  store_le64(p, ptr.block);
  store_le64(p + 8, ptr.checksum);
  store_le64(p + 16, ptr.generation);
}
inline BlockPointer decode_pointer(const std::byte* p) {
  return {load_le64(p), load_le64(p + 8), load_le64(p + 16)};
}

// Read access to a node's bytes.
class NodeView {
 public:
  explicit NodeView(const std::byte* bytes) : b_(bytes) {}
  std::uint32_t size() const { return load_le32(b_ + 32); }
  std::uint32_t max_entries() const { return load_le32(b_ + 36); }
  std::uint32_t value_size() const { return load_le32(b_ + 40); }
  std::uint16_t level() const { return load_le16(b_ + 44); }
  bool is_leaf() const { return level() == 0; }
  std::uint64_t key(std::uint32_t i) const { return load_le64(b_ + node_header_end + 8 * i); }
  const std::byte* value(std::uint32_t i) const {
    return b_ + node_header_end + 8 * max_entries() + value_size() * i;
  }
  std::span<const std::byte> value_span(std::uint32_t i) const { return {value(i), value_size()}; }
  BlockPointer child(std::uint32_t i) const { return decode_pointer(value(i)); }
  // Index of the last key <= k, or -1 when k is below every key.
  int lower_bound_index(std::uint64_t k) const;
  // Index of the first key >= k (size() if none).
  std::uint32_t first_at_or_after(std::uint64_t k) const;
  // A structural check: the header fields agree with each other and keys increase.
  bool well_formed(std::uint32_t expected_value_size) const;

 protected:
  const std::byte* b_;
};

// Write access to a dirty node's bytes.
class NodeWriter : public NodeView {
 public:
  explicit NodeWriter(std::byte* bytes) : NodeView(bytes), w_(bytes) {}
  void init(std::uint32_t value_size, std::uint16_t level);
  void set_size(std::uint32_t n) { store_le32(w_ + 32, n); }
  void set_key(std::uint32_t i, std::uint64_t k) { store_le64(w_ + node_header_end + 8 * i, k); }
  std::byte* value(std::uint32_t i) {
    return w_ + node_header_end + 8 * max_entries() + value_size() * i;
  }
  void set_value(std::uint32_t i, std::span<const std::byte> v) {
    std::memcpy(value(i), v.data(), value_size());
  }
  void set_child(std::uint32_t i, const BlockPointer& p) { encode_pointer(value(i), p); }
  void insert_at(std::uint32_t i, std::uint64_t k, std::span<const std::byte> v);
  void remove_at(std::uint32_t i) { remove_range(i, i + 1); }
  void remove_range(std::uint32_t from, std::uint32_t to);
  // Moves entries [from, size) of this node to the end of `dest`.
  void move_tail_to(NodeWriter& dest, std::uint32_t from);
  // Moves the first n entries of `src` to the end of this node.
  void take_head_from(NodeWriter& src, std::uint32_t n);

 private:
  std::byte* w_;
};

}  // namespace snapstore
