// IntentLog: the mapping changes made since the last commit, appended to the log before a
// write is acknowledged and made durable by one device flush at an NBD flush.
//
// A full commit writes every changed metadata block (two copies with `dup`), flushes, and
// writes the superblock copies with two more flushes. The log instead takes one record per
// group of concurrent writes, "volume V blocks [b, b+n) now map to data blocks d.. with
// checksums c..", or "volume V blocks [b, e) are unmapped", written without a flush: once
// the record is in the kernel, the write survives the death of the daemon process (the
// page cache keeps it, as it keeps nbdkit's). An NBD flush then flushes the device once,
// and a power cut can take nothing it covered. Opening the pool replays the records of the
// last commit on top of it (pool_log.cpp).
//
// Where: bytes [intent_log_offset, intent_log_offset + copies * copy_bytes) of every
// device, in equal copies (the superblock's log geometry: two on a pool of one device
// whose metadata keeps two copies, else one per device). Every copy holds the same records
// at the same positions.
//
// Record (format 2; little-endian; starts at a multiple of 16 bytes from the start of its
// copy, length a multiple of 16, zero padded):
//   offset size field
//        0    8 magic "SNAPILG2"
//        8    8 checksum: XXH3-64 of bytes [16, length), seeded with (log salt, base
//               generation, position of the record in its copy)
//       16    8 base generation: the commit this record follows
//       24    8 sequence: 0 for the first record after that commit, then 1, 2, ...
//       32    4 length in bytes
//       36    4 entry count     40  4 entry bytes     44  4 reserved (0)
//       48    8 durable: every record of this base with a smaller sequence was made
//               durable by a completed device flush before this record was written
//       56    8 reserved (0)
//       64   16 pool uuid
//       80      entries, one after the other:
//               map:   u32 type 1, u32 count n, u64 volume, u64 first block,
//                      then n x {u64 data block, u64 data checksum}
//               unmap: u32 type 2, u32 0, u64 volume, u64 first block, u64 end block
//               chunk: u32 type 3, u32 0, then a 72-byte chunk entry (chunk_map.h): a
//                      chunk added to the pool since the base commit
// A record with no entries is a marker: written after a flush, it carries the news that
// the records before it are durable.
//
// Invariants:
//  1. Records after commit G are written in sequence order, back to back from position 0
//     of every copy. After a device flush completes, the next record starts at a multiple
//     of 512 bytes: no record is ever written into a sector that holds a durable one, so a
//     torn write can damage only records that no flush covered.
//  2. A reader (read_intent_log) takes every valid record of base G from any copy. With
//     D the largest `durable` among them, every sequence below D was durable: one that no
//     copy holds is a hole, damage that lost flushed writes (reported, never skipped
//     silently). Sequences from D on were not flushed: a power cut may have lost any of
//     them, or their data, so each of their map entries is replayed only if its data
//     blocks hold data matching their checksums.
//  3. Every data block a map entry names was free at the base commit (or lies in a chunk
//     a chunk entry added) and is named by no other entry of the same base (blocks freed in
//     the open transaction are not reused before the next commit), so replay can take each
//     one as it comes, in any subset. Replay adds every chunk of the records it applies
//     first, in order: chunks are only ever added.
//  4. Records of an older base, left from before the last commit, are never valid.
// Format 1 pools wrote records of another layout (magic "SNAPILOG", 512-byte aligned, a
// 64-byte header without `durable`), each flushed before the next: read_intent_log_v1
// reads them as format 2 records whose last one alone was not flushed.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "snapstore/block_device.h"
#include "store/superblock.h"

namespace snapstore {

inline constexpr std::uint64_t log_record_magic = 0x32474c4950414e53ull;     // "SNAPILG2" LE
inline constexpr std::uint64_t log_record_magic_v1 = 0x474f4c4950414e53ull;  // "SNAPILOG" LE
inline constexpr std::size_t log_alignment = 16;
inline constexpr std::size_t log_sector_size = 512;
inline constexpr std::size_t log_header_size = 80;

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
  enum class kind : std::uint32_t { map = 1, unmap = 2, chunk = 3 };
  kind type = kind::map;
  std::uint64_t volume = 0;
  std::uint64_t first = 0;
  std::uint64_t end = 0;               // map: first + mappings.size()
  std::vector<LogMapping> mappings;    // map only
  Chunk chunk;                         // chunk only
};

struct LogRecord {
  std::uint64_t sequence = 0;
  std::uint64_t position = 0;  // bytes from the start of its copy
  std::uint64_t length = 0;
  std::uint64_t durable = 0;
  std::vector<LogEntry> entries;
};

// Entries waiting for the next record, encoded as they come.
class LogBuffer {
 public:
  void add_map(std::uint64_t volume, std::uint64_t first, std::span<const std::uint64_t> blocks,
               std::span<const std::uint64_t> checksums);
  void add_unmap(std::uint64_t volume, std::uint64_t first, std::uint64_t end);
  void add_chunk(const Chunk& chunk);
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
                                         std::uint64_t durable, std::uint64_t position,
                                         const LogBuffer& entries);

// Decodes the record at `position` of a copy's bytes if it is a valid record of (pool,
// base), whatever its sequence; nullopt otherwise.
std::optional<LogRecord> decode_log_record(std::span<const std::byte> copy, std::uint64_t position,
                                           const Uuid& pool, std::uint64_t base);

// One copy of one record that does not hold it (damaged, torn, or never written).
struct LogCopyProblem {
  std::uint64_t sequence = 0;  // ~0: an unreadable record whose sequence is unknown
  std::uint64_t position = 0;
  std::uint32_t copy = 0;      // device * copies_per_device + copy on the device
  bool durable = false;        // a flush had covered the record: damage, not a crash
  std::string what;
};

// What read_intent_log found (invariant 2).
struct LogScan {
  std::vector<LogRecord> records;  // valid records, in sequence order, one per sequence
  std::uint64_t durable = 0;       // sequences below this were durable
  std::vector<std::uint64_t> lost;  // durable sequences no copy holds, in order
  std::vector<LogCopyProblem> bad_copies;
  std::uint32_t copies = 0;  // copies that could be read
};

// Reads every copy on every device and judges them. Fails only when no copy could be
// read at all.
Result<LogScan> read_intent_log(const std::vector<BlockDevicePtr>& devices, const LogLayout& layout,
                                const Uuid& pool, std::uint64_t base);
// The same for a format 1 pool's records.
Result<LogScan> read_intent_log_v1(const std::vector<BlockDevicePtr>& devices, const LogLayout& layout,
                                   const Uuid& pool, std::uint64_t base);

// Writes `record` at `position` of every copy on every device (no flush).
Status write_log_record(const std::vector<BlockDevicePtr>& devices, const LogLayout& layout,
                        std::uint64_t position, std::span<const std::byte> record);

}  // namespace snapstore
