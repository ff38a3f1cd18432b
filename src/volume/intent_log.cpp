// Intent log records: encoding, decoding, reading and writing the copies. See intent_log.h.
#include "volume/intent_log.h"

#include <cstring>
#include <optional>

#include "store/checksum.h"
#include "store/endian.h"
#include "store/chunk_map.h"

namespace snapstore {

namespace {

constexpr std::uint32_t map_type = 1, unmap_type = 2;
constexpr std::size_t map_header_size = 24, map_pair_size = 16, unmap_size = 32;

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

void LogBuffer::clear() {
  bytes_.clear();
  entries_ = 0;
}

std::size_t log_record_size(std::size_t entry_bytes) {
  return (log_header_size + entry_bytes + log_sector_size - 1) / log_sector_size * log_sector_size;
}

std::vector<std::byte> encode_log_record(const Uuid& pool, std::uint64_t base, std::uint64_t sequence,
                                         std::uint64_t position, const LogBuffer& entries) {
  std::vector<std::byte> out(log_record_size(entries.bytes().size()));
  std::byte* p = out.data();
  store_le64(p, log_record_magic);
  store_le64(p + 16, base);
  store_le64(p + 24, sequence);
  store_le32(p + 32, static_cast<std::uint32_t>(out.size()));
  store_le32(p + 36, static_cast<std::uint32_t>(entries.entry_count()));
  store_le32(p + 40, static_cast<std::uint32_t>(entries.bytes().size()));
  std::memcpy(p + 48, pool.data(), pool.size());
  std::memcpy(p + log_header_size, entries.bytes().data(), entries.bytes().size());
  store_le64(p + 8, checksum(std::span<const std::byte>(out).subspan(16), record_seed(base, position)));
  return out;
}

std::optional<LogRecord> decode_log_record(std::span<const std::byte> copy, std::uint64_t position,
                                           const Uuid& pool, std::uint64_t base,
                                           std::uint64_t sequence) {
  if (position % log_sector_size != 0 || position + log_header_size > copy.size()) return std::nullopt;
  const std::byte* p = copy.data() + position;
  if (load_le64(p) != log_record_magic || load_le64(p + 16) != base || load_le64(p + 24) != sequence)
    return std::nullopt;
  const std::uint32_t length = load_le32(p + 32);
  const std::uint32_t count = load_le32(p + 36);
  const std::uint32_t entry_bytes = load_le32(p + 40);
  if (length % log_sector_size != 0 || length > copy.size() - position ||
      length != log_record_size(entry_bytes) || std::memcmp(p + 48, pool.data(), pool.size()) != 0)
    return std::nullopt;
  if (load_le64(p + 8) != checksum(copy.subspan(position + 16, length - 16), record_seed(base, position)))
    return std::nullopt;
  auto entries = parse_entries(copy.subspan(position + log_header_size, entry_bytes), count);
  if (!entries) return std::nullopt;
  return LogRecord{sequence, position, length, std::move(*entries)};
}

Result<std::vector<LogRecord>> read_intent_log(const std::vector<BlockDevicePtr>& devices,
                                               const LogLayout& layout, const Uuid& pool,
                                               std::uint64_t base) {
  std::vector<std::vector<std::byte>> copies;
  Status last_error = Status::ok();
  for (const auto& d : devices)
    for (std::uint32_t c = 0; c < layout.copies_per_device; ++c) {
      std::vector<std::byte> bytes(layout.copy_bytes);
      Status st = d->read(layout.copy_offset(c), bytes);
      if (st) copies.push_back(std::move(bytes));
      else last_error = st;
    }
  if (copies.empty()) return last_error;
  std::vector<LogRecord> records;
  std::uint64_t position = 0;
  for (;;) {
    std::optional<LogRecord> found;
    for (const auto& copy : copies)
      if ((found = decode_log_record(copy, position, pool, base, records.size()))) break;
    if (!found) break;
    position += found->length;
    records.push_back(std::move(*found));
  }
  return records;
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
