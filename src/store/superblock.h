// Superblock: the root of a pool, written as two copies on every device at every commit.
//
// Where (per device; superblock_set.h reads and writes the copies):
//   ring A: slot 0 at [0, 64 KiB) holds even generations, slot 1 at [64 KiB, 128 KiB) odd ones;
//   ring B: slots 2 and 3 at the last 128 KiB of the device's reserved area, likewise;
//   between them the intent log (volume/intent_log.h). Chunks start at reserved_bytes.
// Format 1 pools have ring A only and a fixed 1 MiB reserved area; they are read as they
// are and upgraded to format 2 by their first writable commit.
//
// Layout of one slot (65,536 bytes, little-endian; docs/format.md has the same table):
//   offset  size  field
//        0     8  magic "SNAPSTOR"
//        8     8  checksum: XXH3-64 of bytes [16, 65536), seed from (superblock salt, slot)
//       16     4  format_version (2; 1 is read and upgraded)
//       20     4  slot (0..3 in format 2, 0..1 in format 1), must match the slot's place
//       24     8  generation: the commit number
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
//      220     4  reserved (0)
//      224     8  reserved_bytes: the device area before the first chunk (format 2)
//      232     8  log_copy_bytes: bytes of one intent log copy (format 2)
//      240     4  log_copies: intent log copies per device (format 2)
//      244 .. 511: reserved (0)
//      512  2048  device table: 32 entries of {uuid 16, size 8, reserved 40}
//     2560 16384  metadata space-map index: 1024 entries of {block 8, checksum 8}
//    18944 46592  chunk map: 647 entries of 72 bytes (see chunk_map.h)
//
// Invariants:
//  1. A slot is valid iff its magic, checksum, slot number and version check out; the
//     checksum covers the whole slot, so damage anywhere in it, unused tail included, is
//     found when it is read.
//  2. Commit N writes slot N % 2 of ring A on every device after every block it names is
//     durable, flushes, then slot N % 2 of ring B on every device, and flushes again. So a
//     valid copy names a complete, durable pool; a crash can damage only the copies being
//     written; and a ring B copy of N is never written before every ring A copy of N is
//     durable (which lets a reader tell a torn write from damage: superblock_set.h).
//  3. Every reserved byte is written as zero and ignored on read.
//  4. Every byte of a slot past superblock_used_bytes() (the end of the last chunk entry,
//     rounded up to 4 KiB) is zero, and a slot is always written whole.
//  5. Bytes [intent_log_offset, intent_log_offset + log_copies * log_copy_bytes) of every
//     device belong to the intent log when incompat_intent_log is set; the rest of the
//     reserved area up to ring B is zero.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "snapstore/status.h"

namespace snapstore {

inline constexpr std::uint64_t superblock_magic = 0x524f545350414e53ull;  // "SNAPSTOR" LE
inline constexpr std::uint32_t format_version = 2;
inline constexpr std::uint32_t oldest_format_version = 1;  // read, and upgraded when written
inline constexpr std::size_t superblock_size = 65536;
inline constexpr std::uint64_t superblock_ring_bytes = 2 * superblock_size;
// The reserved area of a format 1 pool (and the smallest one of format 2).
inline constexpr std::uint64_t device_reserved_bytes = 1 << 20;
inline constexpr std::uint64_t max_reserved_bytes = 64ull << 20;  // new pools take up to 33 MiB
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
inline constexpr std::uint64_t intent_log_offset = superblock_ring_bytes;
// Feature bits this build understands.
inline constexpr std::uint64_t known_incompat_features = incompat_intent_log;
inline constexpr std::uint64_t known_ro_compat_features = 0;

using Uuid = std::array<std::uint8_t, 16>;

// The two rings of superblock copies on every device (invariant 2).
enum class ring : std::uint8_t { a = 0, b = 1 };
// Slot number of (ring, parity) in format 2: 0, 1 in ring A; 2, 3 in ring B.
inline constexpr std::uint32_t slot_number(ring r, std::uint32_t parity) {
  return static_cast<std::uint32_t>(r) * 2 + parity;
}
// Byte offset of a slot on a device whose reserved area is reserved_bytes long.
inline constexpr std::uint64_t slot_offset(ring r, std::uint32_t parity, std::uint64_t reserved_bytes) {
  return (r == ring::a ? 0 : reserved_bytes - superblock_ring_bytes) + parity * superblock_size;
}

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
  // Device geometry (format 2 fields; for a format 1 pool, what format 1 implied).
  std::uint64_t reserved_bytes = device_reserved_bytes;
  std::uint64_t log_copy_bytes = 0;
  std::uint32_t log_copies = 0;
  std::vector<DeviceEntry> devices;
  std::vector<SmIndexPointer> metadata_sm_index;
  std::vector<Chunk> chunks;

  bool operator==(const Superblock&) const = default;
};

// Encodes into exactly superblock_size bytes, checksum included, as format sb.version
// (format 1 only for tests that build old pools). Fails if a list exceeds its capacity.
Result<std::vector<std::byte>> encode_superblock(const Superblock& sb);
// The same into `out` (superblock_size bytes, overwritten entirely), without allocating.
Status encode_superblock_into(const Superblock& sb, std::span<std::byte> out);
// How many leading bytes of sb's encoding can be non-zero (invariant 4): a multiple of
// 4 KiB, at most superblock_size.
std::size_t superblock_used_bytes(const Superblock& sb);

// Decodes one slot; the errors say what is wrong in words a user can act on
// (not a pool at all, damaged slot, newer format, unknown features). A format 1 slot gets
// the geometry format 1 implied (reserved area of 1 MiB, the log in [128 KiB, 1 MiB)).
Result<Superblock> decode_superblock(std::span<const std::byte> bytes, std::uint32_t slot);

// One 72-byte chunk entry (chunk_map.h has the layout), for the superblock's chunk map and
// the intent log's chunk entries. decode fails on a malformed entry or one naming a
// device index not below device_count.
void encode_chunk(std::byte* p, const Chunk& c);
Result<Chunk> decode_chunk(const std::byte* p, std::size_t device_count);

std::string_view profile_name(profile p);
Result<profile> parse_profile(std::string_view name);

}  // namespace snapstore
