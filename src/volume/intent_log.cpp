// Intent log records: encoding, decoding, reading and judging the copies. See intent_log.h.
#include "volume/intent_log.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "store/checksum.h"
#include "store/endian.h"
#include "store/chunk_map.h"

namespace snapstore {

namespace {

constexpr std::uint32_t map_type = 1, unmap_type = 2, chunk_type = 3;
constexpr std::size_t map_header_size = 24, map_pair_size = 16, unmap_size = 32;
constexpr std::size_t chunk_entry_bytes = 8 + chunk_entry_size;
constexpr std::size_t v1_header_size = 64;

std::uint64_t record_seed(std::uint64_t base, std::uint64_t position) {
  return checksum_seed(checksum_salt::intent_log, base, position);
}

void append(std::vector<std::byte>& out, std::uint64_t v, std::size_t width) {
  const std::size_t at = out.size();
  out.resize(at + width);
  if (width == 4) store_le32(out.data() + at, static_cast<std::uint32_t>(v));
  else store_le64(out.data() + at, v);
}

// Parses `count` entries from `bytes`; nullopt if they do not fill it exactly.
std::optional<std::vector<LogEntry>> parse_entries(std::span<const std::byte> bytes, std::uint32_t count) {
  std::vector<LogEntry> entries;
  std::size_t at = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (bytes.size() - at < map_header_size) return std::nullopt;
    const std::byte* p = bytes.data() + at;
    LogEntry e;
    const std::uint32_t type = load_le32(p);
    const std::uint32_t n = load_le32(p + 4);
    e.volume = load_le64(p + 8);
    e.first = load_le64(p + 16);
    if (type == map_type) {
      if (n == 0 || (bytes.size() - at - map_header_size) / map_pair_size < n) return std::nullopt;
      e.type = LogEntry::kind::map;
      e.end = e.first + n;
      if (e.end < e.first) return std::nullopt;
      for (std::uint32_t k = 0; k < n; ++k) {
        const std::byte* q = p + map_header_size + k * map_pair_size;
        e.mappings.push_back({load_le64(q), load_le64(q + 8)});
      }
      at += map_header_size + std::size_t{n} * map_pair_size;
    } else if (type == unmap_type) {
      if (n != 0 || bytes.size() - at < unmap_size) return std::nullopt;
      e.type = LogEntry::kind::unmap;
      e.end = load_le64(p + 24);
      if (e.end <= e.first) return std::nullopt;
      at += unmap_size;
    } else if (type == chunk_type) {
      if (n != 0 || bytes.size() - at < chunk_entry_bytes) return std::nullopt;
      auto chunk = decode_chunk(p + 8, max_devices);
      if (!chunk) return std::nullopt;
      e.type = LogEntry::kind::chunk;
      e.volume = e.first = e.end = 0;
      e.chunk = std::move(chunk).value();
      at += chunk_entry_bytes;
    } else {
      return std::nullopt;
    }
    entries.push_back(std::move(e));
  }
  if (at != bytes.size()) return std::nullopt;
  return entries;
}

}  // namespace

LogLayout LogLayout::for_superblock(const Superblock& sb) {
  LogLayout l;
  l.copies_per_device = sb.log_copies;
  l.copy_bytes = sb.log_copy_bytes;
  return l;
}

void LogBuffer::add_map(std::uint64_t volume, std::uint64_t first, std::span<const std::uint64_t> blocks,
                        std::span<const std::uint64_t> checksums) {
  // An entry holds at most 2^32 - 1 blocks; NBD requests are far smaller, but split anyway.
  constexpr std::size_t max_run = 0xffffffffu;
  for (std::size_t from = 0; from < blocks.size(); from += max_run) {
    const std::size_t n = std::min(max_run, blocks.size() - from);
    append(bytes_, map_type, 4);
    append(bytes_, n, 4);
    append(bytes_, volume, 8);
    append(bytes_, first + from, 8);
    for (std::size_t k = from; k < from + n; ++k) {
      append(bytes_, blocks[k], 8);
      append(bytes_, checksums[k], 8);
    }
    ++entries_;
  }
}

void LogBuffer::add_unmap(std::uint64_t volume, std::uint64_t first, std::uint64_t end) {
  if (end <= first) return;
  append(bytes_, unmap_type, 4);
  append(bytes_, 0, 4);
  append(bytes_, volume, 8);
  append(bytes_, first, 8);
  append(bytes_, end, 8);
  ++entries_;
}

void LogBuffer::add_chunk(const Chunk& chunk) {
  append(bytes_, chunk_type, 4);
  append(bytes_, 0, 4);
  const std::size_t at = bytes_.size();
  bytes_.resize(at + chunk_entry_size);
  encode_chunk(bytes_.data() + at, chunk);
  ++entries_;
}

void LogBuffer::clear() {
  bytes_.clear();
  entries_ = 0;
}

std::size_t log_record_size(std::size_t entry_bytes) {
  return (log_header_size + entry_bytes + log_alignment - 1) / log_alignment * log_alignment;
}

std::vector<std::byte> encode_log_record(const Uuid& pool, std::uint64_t base, std::uint64_t sequence,
                                         std::uint64_t durable, std::uint64_t position,
                                         const LogBuffer& entries) {
  std::vector<std::byte> out(log_record_size(entries.bytes().size()));
  std::byte* p = out.data();
  store_le64(p, log_record_magic);
  store_le64(p + 16, base);
  store_le64(p + 24, sequence);
  store_le32(p + 32, static_cast<std::uint32_t>(out.size()));
  store_le32(p + 36, static_cast<std::uint32_t>(entries.entry_count()));
  store_le32(p + 40, static_cast<std::uint32_t>(entries.bytes().size()));
  store_le64(p + 48, durable);
  std::memcpy(p + 64, pool.data(), pool.size());
  std::memcpy(p + log_header_size, entries.bytes().data(), entries.bytes().size());
  store_le64(p + 8, checksum(std::span<const std::byte>(out).subspan(16), record_seed(base, position)));
  return out;
}

std::optional<LogRecord> decode_log_record(std::span<const std::byte> copy, std::uint64_t position,
                                           const Uuid& pool, std::uint64_t base) {
  if (position % log_alignment != 0 || position > copy.size() || copy.size() - position < log_header_size)
    return std::nullopt;
  const std::byte* p = copy.data() + position;
  if (load_le64(p) != log_record_magic || load_le64(p + 16) != base) return std::nullopt;
  const std::uint32_t length = load_le32(p + 32);
  const std::uint32_t count = load_le32(p + 36);
  const std::uint32_t entry_bytes = load_le32(p + 40);
  if (length > copy.size() - position || length != log_record_size(entry_bytes) ||
      std::memcmp(p + 64, pool.data(), pool.size()) != 0)
    return std::nullopt;
  if (load_le64(p + 8) != checksum(copy.subspan(position + 16, length - 16), record_seed(base, position)))
    return std::nullopt;
  auto entries = parse_entries(copy.subspan(position + log_header_size, entry_bytes), count);
  if (!entries) return std::nullopt;
  return LogRecord{load_le64(p + 24), position, length, load_le64(p + 48), std::move(*entries)};
}

namespace {

// Format 1: 512-byte aligned records with a 64-byte header and no `durable` field.
std::optional<LogRecord> decode_log_record_v1(std::span<const std::byte> copy, std::uint64_t position,
                                              const Uuid& pool, std::uint64_t base, std::uint64_t sequence) {
  if (position % log_sector_size != 0 || position > copy.size() || copy.size() - position < v1_header_size)
    return std::nullopt;
  const std::byte* p = copy.data() + position;
  if (load_le64(p) != log_record_magic_v1 || load_le64(p + 16) != base || load_le64(p + 24) != sequence)
    return std::nullopt;
  const std::uint32_t length = load_le32(p + 32);
  const std::uint32_t count = load_le32(p + 36);
  const std::uint32_t entry_bytes = load_le32(p + 40);
  const std::size_t expected = (v1_header_size + entry_bytes + log_sector_size - 1) / log_sector_size * log_sector_size;
  if (length > copy.size() - position || length != expected || std::memcmp(p + 48, pool.data(), pool.size()) != 0)
    return std::nullopt;
  if (load_le64(p + 8) != checksum(copy.subspan(position + 16, length - 16), record_seed(base, position)))
    return std::nullopt;
  auto entries = parse_entries(copy.subspan(position + v1_header_size, entry_bytes), count);
  if (!entries) return std::nullopt;
  return LogRecord{sequence, position, length, 0, std::move(*entries)};
}

// Every copy's bytes, in copy order (device by device); an unreadable copy is empty.
Result<std::vector<std::vector<std::byte>>> read_copies(const std::vector<BlockDevicePtr>& devices,
                                                        const LogLayout& layout) {
  std::vector<std::vector<std::byte>> copies;
  Status last_error = Status::ok();
  bool any = false;
  for (const auto& d : devices)
    for (std::uint32_t c = 0; c < layout.copies_per_device; ++c) {
      std::vector<std::byte> bytes(layout.copy_bytes);
      Status st = d->read(layout.copy_offset(c), bytes);
      if (st) any = true;
      else last_error = st, bytes.clear();
      copies.push_back(std::move(bytes));
    }
  if (!any) return last_error;
  return copies;
}

// What one copy holds: its valid records, and where something looks like a record of this
// base but is not valid (damaged or torn).
struct CopyContents {
  std::vector<LogRecord> records;
  std::vector<std::uint64_t> damaged;
};

bool looks_like_record(std::span<const std::byte> copy, std::uint64_t position, const Uuid& pool,
                       std::uint64_t base) {
  const std::byte* p = copy.data() + position;
  return load_le64(p) == log_record_magic && load_le64(p + 16) == base &&
         std::memcmp(p + 64, pool.data(), pool.size()) == 0;
}

CopyContents scan_copy(std::span<const std::byte> copy, const Uuid& pool, std::uint64_t base) {
  CopyContents out;
  for (std::uint64_t at = 0; at + log_header_size <= copy.size();) {
    if (!looks_like_record(copy, at, pool, base)) {
      at += log_alignment;
      continue;
    }
    if (auto r = decode_log_record(copy, at, pool, base)) {
      at += r->length;
      out.records.push_back(std::move(*r));
      continue;
    }
    out.damaged.push_back(at);
    at += log_alignment;
  }
  return out;
}

// Joins what the copies hold into one log and says what is missing where (invariant 2).
LogScan judge(const std::vector<CopyContents>& copies) {
  LogScan scan;
  std::map<std::uint64_t, LogRecord> by_sequence;
  std::map<std::uint64_t, std::set<std::uint32_t>> holders;
  for (std::uint32_t c = 0; c < copies.size(); ++c)
    for (const LogRecord& r : copies[c].records) {
      auto [it, fresh] = by_sequence.try_emplace(r.sequence, r);
      if (!fresh && it->second.position != r.position) continue;  // cannot happen in a sound log
      holders[r.sequence].insert(c);
      scan.durable = std::max(scan.durable, r.durable);
    }
  for (std::uint64_t s = 0; s < scan.durable; ++s)
    if (!by_sequence.count(s)) scan.lost.push_back(s);
  for (const auto& [sequence, record] : by_sequence) {
    for (std::uint32_t c = 0; c < copies.size(); ++c) {
      if (holders[sequence].count(c)) continue;
      const bool durable = sequence < scan.durable;
      scan.bad_copies.push_back({sequence, record.position, c, durable,
                                 "intent log copy " + std::to_string(c) + " does not hold record " +
                                     std::to_string(sequence) + " (at byte " + std::to_string(record.position) +
                                     ")" + (durable ? ", which a flush had made durable"
                                                    : ": not flushed yet, a crash may explain it")});
    }
    scan.records.push_back(record);
  }
  auto covered = [&](std::uint64_t at) {
    return std::any_of(scan.records.begin(), scan.records.end(),
                       [&](const LogRecord& r) { return at >= r.position && at < r.position + r.length; });
  };
  for (std::uint32_t c = 0; c < copies.size(); ++c)
    for (std::uint64_t at : copies[c].damaged)
      if (!covered(at))
        scan.bad_copies.push_back({~std::uint64_t{0}, at, c, false,
                                   "intent log copy " + std::to_string(c) + " holds a damaged or torn record at byte " +
                                       std::to_string(at)});
  return scan;
}

}  // namespace

Result<LogScan> read_intent_log(const std::vector<BlockDevicePtr>& devices, const LogLayout& layout,
                                const Uuid& pool, std::uint64_t base) {
  auto bytes = read_copies(devices, layout);
  if (!bytes) return bytes.status();
  std::vector<CopyContents> copies;
  std::uint32_t readable = 0;
  for (const auto& copy : *bytes) {
    copies.push_back(copy.empty() ? CopyContents{} : scan_copy(copy, pool, base));
    readable += copy.empty() ? 0 : 1;
  }
  LogScan scan = judge(copies);
  scan.copies = readable;
  return scan;
}

// Format 1: position by position, the first copy holding the next record wins; the log
// ends where no copy does. Each record was flushed before the next was written.
Result<LogScan> read_intent_log_v1(const std::vector<BlockDevicePtr>& devices, const LogLayout& layout,
                                   const Uuid& pool, std::uint64_t base) {
  auto bytes = read_copies(devices, layout);
  if (!bytes) return bytes.status();
  std::vector<CopyContents> copies(bytes->size());
  for (std::uint64_t position = 0, sequence = 0;; ++sequence) {
    std::optional<LogRecord> found;
    for (std::uint32_t c = 0; c < bytes->size(); ++c)
      if (auto r = decode_log_record_v1((*bytes)[c], position, pool, base, sequence)) {
        found = r;
        copies[c].records.push_back(*r);
      }
    if (!found) break;
    position += found->length;
  }
  LogScan scan = judge(copies);
  scan.durable = scan.records.empty() ? 0 : scan.records.size() - 1;
  for (LogCopyProblem& p : scan.bad_copies) p.durable = p.sequence < scan.durable;
  scan.copies = static_cast<std::uint32_t>(bytes->size());
  return scan;
}

Status write_log_record(const std::vector<BlockDevicePtr>& devices, const LogLayout& layout,
                        std::uint64_t position, std::span<const std::byte> record) {
  if (position + record.size() > layout.copy_bytes)
    return invalid_argument("intent log record does not fit in the log");
  for (const auto& d : devices)
    for (std::uint32_t c = 0; c < layout.copies_per_device; ++c)
      SNAPSTORE_RETURN_IF_ERROR(d->write(layout.copy_offset(c) + position, record));
  return Status::ok();
}

}  // namespace snapstore
