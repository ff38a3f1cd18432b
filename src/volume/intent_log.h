// IntentLog: the record of mapping changes made since the last commit, so that an NBD
// flush can be made durable with one device flush instead of a full commit.
//
// A full commit writes every changed metadata block (in two copies with `dup`), flushes,
// writes the superblock and flushes again. A flush after a few small writes instead
// appends one record, "volume V blocks [b, b+n) now map to data blocks d.. with checksums
// c..", or "volume V blocks [b, e) are unmapped", to the log, and flushes once: the data
// written before it and the record become durable together. Opening the pool replays the
// records of the last commit on top of it (pool_log.cpp).
//
// Where: the superblock's log geometry, from intent_log_offset on every device, in
// copies_per_device equal copies: two on a pool of one device whose metadata profile
// keeps two copies (dup), else one per device. Every copy holds the same records
// at the same positions.
//
// Record (little-endian, padded with zeroes to a multiple of 512 bytes, starting at a
// multiple of 512 bytes from the start of its copy):
//   offset size field
//        0    8 magic "SNAPILOG"
//        8    8 checksum: XXH3-64 of bytes [16, length), seeded with (log salt, base
//               generation, position of the record in its copy)
//       16    8 base generation: the commit this record follows
//       24    8 sequence: 0 for the first record after that commit, then 1, 2, ...
//       32    4 length in bytes (a multiple of 512)
//       36    4 entry count     40  4 entry bytes     44  4 reserved (0)
//       48   16 pool uuid
//       64      entries, one after the other:
//               map:   u32 type 1, u32 count n, u64 volume, u64 first block,
//                      then n x {u64 data block, u64 data checksum}
//               unmap: u32 type 2, u32 0, u64 volume, u64 first block, u64 end block
//
// Invariants:
//  1. Records after commit G are written in sequence order, back to back from position 0,
//     each followed by a device flush before the next is written; so only the last valid
//     record can belong to a flush that did not complete.
//  2. A record never rewrites a sector that holds an earlier record of the same base: a
//     torn write can only damage the record being written.
//  3. A reader takes, position by position, the first copy that holds a valid record with
//     the expected base, pool and sequence; the log ends where no copy does. Records of
//     an older base (left from before the last commit) are never valid.
//  4. Every data block a map entry names was free at the base commit and is named by no
//     earlier entry of the same base (blocks freed in the open transaction are not reused
//     before the next commit), so replay can take each one as it comes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "snapstore/block_device.h"
#include "store/superblock.h"

namespace snapstore {

inline constexpr std::uint64_t log_record_magic = 0x474f4c4950414e53ull;  // "SNAPILOG" LE
inline constexpr std::size_t log_sector_size = 512;
inline constexpr std::size_t log_header_size = 64;

struct LogLayout {
  std::uint32_t copies_per_device = 1;
  std::uint64_t copy_bytes = 0;
  static LogLayout for_superblock(const Superblock& sb);
  std::uint64_t copy_offset(std::uint32_t copy) const { return intent_log_offset + copy * copy_bytes; }
};

struct LogMapping {
  std::uint64_t data_block = 0;
  std::uint64_t checksum = 0;
};

struct LogEntry {
  enum class kind : std::uint32_t { map = 1, unmap = 2 };
  kind type = kind::map;
  std::uint64_t volume = 0;
  std::uint64_t first = 0;
  std::uint64_t end = 0;               // map: first + mappings.size()
  std::vector<LogMapping> mappings;    // map only
};

struct LogRecord {
  std::uint64_t sequence = 0;
  std::uint64_t position = 0;  // bytes from the start of its copy
  std::uint64_t length = 0;
  std::vector<LogEntry> entries;
};

// Entries waiting for the next record, encoded as they come.
class LogBuffer {
 public:
  void add_map(std::uint64_t volume, std::uint64_t first, std::span<const std::uint64_t> blocks,
               std::span<const std::uint64_t> checksums);
  void add_unmap(std::uint64_t volume, std::uint64_t first, std::uint64_t end);
  bool empty() const { return entries_ == 0; }
  std::size_t entry_count() const { return entries_; }
  std::span<const std::byte> bytes() const { return bytes_; }
  void clear();

 private:
  std::vector<std::byte> bytes_;
  std::size_t entries_ = 0;
};

// Size of a record holding `entry_bytes` bytes of entries (header and padding included).
std::size_t log_record_size(std::size_t entry_bytes);

// Encodes a record for the copy position `position`.
std::vector<std::byte> encode_log_record(const Uuid& pool, std::uint64_t base, std::uint64_t sequence,
                                         std::uint64_t position, const LogBuffer& entries);

// Decodes the record at `position` of a copy's bytes if it is valid for (pool, base,
// sequence); nullopt otherwise (invariant 3).
std::optional<LogRecord> decode_log_record(std::span<const std::byte> copy, std::uint64_t position,
                                           const Uuid& pool, std::uint64_t base,
                                           std::uint64_t sequence);

// Reads every copy on every device and returns the valid records of `base`, in order.
// Fails only when no copy could be read at all.
Result<std::vector<LogRecord>> read_intent_log(const std::vector<BlockDevicePtr>& devices,
                                               const LogLayout& layout, const Uuid& pool,
                                               std::uint64_t base);

// Writes `record` at `position` of every copy on every device (no flush).
Status write_log_record(const std::vector<BlockDevicePtr>& devices, const LogLayout& layout,
                        std::uint64_t position, std::span<const std::byte> record);

}  // namespace snapstore
