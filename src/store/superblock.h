// Superblock: the root of a pool on each backing device, in two alternating slots.
//
// Layout of one slot (65,536 bytes, little-endian; docs/format.md has the same table):
//   offset  size  field
//        0     8  magic "SNAPSTOR"
//        8     8  checksum: XXH3-64 of bytes [16, 65536), seed from (superblock salt, slot)
//       16     4  format_version (1)
//       20     4  slot (0 or 1)
//       24     8  generation: the commit number; the valid slot with the highest wins
//       32     8  incompat_features: a bit this build does not know -> refuse to open
//       40     8  ro_compat_features: a bit this build does not know -> open read-only
//       48     8  compat_features: unknown bits are ignored
//       56    16  pool_uuid
//       72    16  device_uuid
//       88     4  device_index       92  4  device_count
//       96     8  device_size (bytes of this device)
//      104     4  metadata_block_size (4096)   108  4  data_block_size
//      112     8  chunk_size
//      120     1  metadata_profile   121  1  data_profile   122  2  reserved (0)
//      124     4  chunk_count        128  8  created (unix seconds)
//      136     8  next_volume_id
//      144    24  volume_table root    (block, checksum, generation)
//      168    24  data_sm_index root   (block, checksum, generation)
//      192    24  reclaim_list root    (block, checksum, generation; reserved, all zero)
//      216     4  metadata_sm_index_count
//      220     4  reserved           224 .. 511: reserved (0)
//      512  2048  device table: 32 entries of {uuid 16, size 8, reserved 40}
//     2560 16384  metadata space-map index: 1024 entries of {block 8, checksum 8}
//    18944 46592  chunk map: 647 entries of 72 bytes (see chunk_map.h)
//
// Invariants:
//  1. A slot is valid iff its magic, checksum, slot number and version check out.
//  2. Commit N writes slot N % 2 after every block it names is durable, then flushes; so
//     the valid slot with the highest generation names a complete, durable pool.
//  3. Every reserved byte is written as zero and ignored on read.
//  4. Every byte of a slot past superblock_used_bytes() (the end of the last chunk entry,
//     rounded up to 4 KiB) is zero, on disk as in the encoding: format zeroes both slots,
//     and the chunk count never decreases. So a commit writes only that prefix; the
//     checksum still covers the whole slot.
//  5. The rest of the first device_reserved_bytes, from intent_log_offset on, belongs to
//     the intent log when incompat_intent_log is set, and is unused otherwise.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "snapstore/status.h"

namespace snapstore {

inline constexpr std::uint64_t superblock_magic = 0x524f545350414e53ull;  // "SNAPSTOR" LE
inline constexpr std::uint32_t format_version = 1;
inline constexpr std::size_t superblock_size = 65536;
inline constexpr std::uint64_t superblock_slot_offset[2] = {0, 65536};
inline constexpr std::uint64_t device_reserved_bytes = 1 << 20;  // slots live here
inline constexpr std::uint32_t metadata_block_size = 4096;
inline constexpr std::size_t max_devices = 32;
inline constexpr std::size_t max_metadata_sm_index = 1024;
inline constexpr std::size_t chunk_entry_size = 72;
inline constexpr std::size_t chunk_map_offset = 18944;
inline constexpr std::size_t max_chunks = (superblock_size - chunk_map_offset) / chunk_entry_size;
inline constexpr std::size_t max_stripes = 4;

// Incompatible feature: bytes [intent_log_offset, device_reserved_bytes) of every device
// hold the intent log (volume/intent_log.h), whose records may carry flushed writes that
// no commit holds yet; a build that ignored them would lose those writes.
inline constexpr std::uint64_t incompat_intent_log = 1ull << 0;
inline constexpr std::uint64_t intent_log_offset = 128 << 10;
// Feature bits this build understands.
inline constexpr std::uint64_t known_incompat_features = incompat_intent_log;
inline constexpr std::uint64_t known_ro_compat_features = 0;

using Uuid = std::array<std::uint8_t, 16>;

// A reference to a metadata block: where it is and what it must contain.
struct BlockPointer {
  std::uint64_t block = 0;
  std::uint64_t checksum = 0;
  std::uint64_t generation = 0;
  bool operator==(const BlockPointer&) const = default;
};

enum class space : std::uint8_t { metadata = 1, data = 2 };
enum class profile : std::uint8_t { single = 1, dup = 2, raid1 = 3, raid1c3 = 4 };

struct Stripe {
  std::uint32_t device = 0;
  std::uint64_t offset = 0;  // byte offset on the device
  bool operator==(const Stripe&) const = default;
};

// One chunk: chunk_size bytes of a space, stored once per stripe.
struct Chunk {
  space kind = space::data;
  profile layout = profile::single;
  std::uint32_t index = 0;  // position in its space: covers [index, index+1) * chunk_size
  std::vector<Stripe> stripes;
  bool operator==(const Chunk&) const = default;
};

struct DeviceEntry {
  Uuid uuid{};
  std::uint64_t size = 0;
  bool operator==(const DeviceEntry&) const = default;
};

struct SmIndexPointer {
  std::uint64_t block = 0;
  std::uint64_t checksum = 0;
  bool operator==(const SmIndexPointer&) const = default;
};

struct Superblock {
  std::uint32_t version = format_version;
  std::uint32_t slot = 0;
  std::uint64_t generation = 0;
  std::uint64_t incompat_features = 0;
  std::uint64_t ro_compat_features = 0;
  std::uint64_t compat_features = 0;
  Uuid pool_uuid{};
  Uuid device_uuid{};
  std::uint32_t device_index = 0;
  std::uint64_t device_size = 0;
  std::uint32_t data_block_size = 4096;
  std::uint64_t chunk_size = 0;
  profile metadata_profile = profile::dup;
  profile data_profile = profile::single;
  std::uint64_t created = 0;
  std::uint64_t next_volume_id = 1;
  BlockPointer volume_table;
  BlockPointer data_sm_index;
  BlockPointer reclaim_list;
  std::vector<DeviceEntry> devices;
  std::vector<SmIndexPointer> metadata_sm_index;
  std::vector<Chunk> chunks;

  bool operator==(const Superblock&) const = default;
};

// Encodes into exactly superblock_size bytes, checksum included. Fails if a list
// exceeds its capacity.
Result<std::vector<std::byte>> encode_superblock(const Superblock& sb);
// The same into `out` (superblock_size bytes, overwritten entirely), without allocating.
Status encode_superblock_into(const Superblock& sb, std::span<std::byte> out);
// How many leading bytes of sb's encoding can be non-zero (invariant 4): a multiple of
// 4 KiB, at most superblock_size.
std::size_t superblock_used_bytes(const Superblock& sb);

// Decodes one slot; the errors say what is wrong in words a user can act on
// (not a pool at all, damaged slot, newer format, unknown features).
Result<Superblock> decode_superblock(std::span<const std::byte> bytes, std::uint32_t slot);

std::string_view profile_name(profile p);
Result<profile> parse_profile(std::string_view name);

}  // namespace snapstore
