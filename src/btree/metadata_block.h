// The header every metadata block starts with, and its validator.
//
// Layout (32 bytes, little-endian):
//    0  8  checksum: XXH3-64 of bytes [8, 4096), seeded with (metadata salt, type, block)
//    8  8  block: this block's own number in the metadata space
//   16  8  generation: the transaction that wrote it
//   24  4  type (metadata_type)
//   28  4  type-specific word (a refcount page's page number, for example)
//
// Invariants:
//  1. A block is valid only if its checksum, own address and type all match; the pointer
//     that led to it must also agree on checksum and generation. So a torn, lost or
//     misdirected write, or a block read as the wrong type, is always detected.
//  2. The checksum is computed once, when the block is sealed at commit; a block is not
//     changed after it is sealed.
#pragma once

#include <cstdint>
#include <span>

#include "store/checksum.h"
#include "store/endian.h"

namespace snapstore {

enum class metadata_type : std::uint32_t {
  btree_internal = 1,
  btree_leaf = 2,
  refcount_page = 3,
  sm_index_page = 4,
};

inline constexpr std::size_t metadata_header_size = 32;

struct MetadataHeader {
  std::uint64_t checksum = 0;
  std::uint64_t block = 0;
  std::uint64_t generation = 0;
  metadata_type type = metadata_type::btree_leaf;
  std::uint32_t extra = 0;
};

inline MetadataHeader read_header(std::span<const std::byte> b) {
  return {load_le64(b.data()), load_le64(b.data() + 8), load_le64(b.data() + 16),
          static_cast<metadata_type>(load_le32(b.data() + 24)), load_le32(b.data() + 28)};
}

inline std::uint64_t compute_metadata_checksum(std::span<const std::byte> b, metadata_type type,
                                               std::uint64_t block) {
  return checksum(b.subspan(8),
                  checksum_seed(checksum_salt::metadata, static_cast<std::uint32_t>(type), block));
}

// Writes block number, generation and checksum; the type and body must already be set.
inline std::uint64_t seal_metadata_block(std::span<std::byte> b, std::uint64_t block,
                                         std::uint64_t generation) {
  store_le64(b.data() + 8, block);
  store_le64(b.data() + 16, generation);
  auto type = static_cast<metadata_type>(load_le32(b.data() + 24));
  std::uint64_t sum = compute_metadata_checksum(b, type, block);
  store_le64(b.data(), sum);
  return sum;
}

inline void set_metadata_type(std::span<std::byte> b, metadata_type type, std::uint32_t extra = 0) {
  store_le32(b.data() + 24, static_cast<std::uint32_t>(type));
  store_le32(b.data() + 28, extra);
}

// What a reader expects of a block. generation 0 means "any" (for refcount pages, whose
// pointers keep only the checksum).
struct BlockExpectation {
  std::uint64_t block = 0;
  std::uint64_t checksum = 0;
  std::uint64_t generation = 0;
};

inline bool metadata_block_valid(std::span<const std::byte> b, const BlockExpectation& want) {
  MetadataHeader h = read_header(b);
  if (h.block != want.block || h.checksum != want.checksum) return false;
  if (want.generation != 0 && h.generation != want.generation) return false;
  return compute_metadata_checksum(b, h.type, h.block) == h.checksum;
}

}  // namespace snapstore
