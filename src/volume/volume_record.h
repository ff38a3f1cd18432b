// VolumeRecord: one entry of the volume table, and the mapping-tree value.
//
// Volume table: a b-tree keyed by volume id (ids start at 1 and are never reused) whose
// values are 256-byte records:
//     0  24  mapping tree root (block, checksum, generation)
//    24   8  size in bytes
//    32   8  parent volume id (0: none)
//    40   8  created (unix nanoseconds)
//    48   8  flags (bit 0: read-only; bit 1: deleted, its tree awaits reclaim; bit 2:
//              damaged, some of its blocks could not be read on any copy)
//    56   8  generation created
//    64   8  mapped blocks (keys in the mapping tree)
//    72  24  reserved (zero)
//    96   2  name length (0 only when deleted, else 1..max_volume_name)
//    98 128  name bytes (no NUL), then zeroes to the end
//
// A deleted volume keeps its record, under no name, until reclaim has released its whole
// tree; reclaim shrinks that tree in bounded steps, so the record always names what is
// left and reclaim resumes after a restart.
//
// Mapping tree: a b-tree per volume keyed by volume block number (byte offset / data
// block size) whose 16-byte values are {u64 data block, u64 XXH3-64 of the block}. An
// absent key is a hole: it reads as zeroes and owns no space.
#pragma once

#include <array>
#include <string>

#include "store/endian.h"
#include "store/superblock.h"
#include "snapstore/status.h"

namespace snapstore {

inline constexpr std::uint32_t volume_record_size = 256;
inline constexpr std::size_t max_volume_name = 128;
inline constexpr std::uint32_t mapping_value_size = 16;
inline constexpr std::uint64_t volume_flag_read_only = 1;
inline constexpr std::uint64_t volume_flag_deleted = 2;
inline constexpr std::uint64_t volume_flag_damaged = 4;

struct VolumeRecord {
  std::uint64_t id = 0;
  std::string name;
  std::uint64_t size = 0;
  std::uint64_t parent = 0;
  std::uint64_t created_ns = 0;
  std::uint64_t flags = 0;
  std::uint64_t generation = 0;
  std::uint64_t mapped_blocks = 0;
  BlockPointer mapping;

  bool read_only() const { return flags & volume_flag_read_only; }
  bool deleted() const { return flags & volume_flag_deleted; }
  bool damaged() const { return flags & volume_flag_damaged; }
  bool operator==(const VolumeRecord&) const = default;
};

std::array<std::byte, volume_record_size> encode_volume_record(const VolumeRecord& r);
Result<VolumeRecord> decode_volume_record(std::uint64_t id, std::span<const std::byte> bytes);

struct MappingValue {
  std::uint64_t data_block = 0;
  std::uint64_t checksum = 0;
};

inline std::array<std::byte, mapping_value_size> encode_mapping(const MappingValue& m) {
  std::array<std::byte, mapping_value_size> v{};
  store_le64(v.data(), m.data_block);
  store_le64(v.data() + 8, m.checksum);
  return v;
}
inline MappingValue decode_mapping(std::span<const std::byte> v) {
  return {load_le64(v.data()), load_le64(v.data() + 8)};
}

// Names: 1 to 128 bytes of [A-Za-z0-9._-], not starting with '.' or '-', so that every
// name is usable unquoted in an NBD URI and on a command line.
Status validate_volume_name(std::string_view name);

}  // namespace snapstore
