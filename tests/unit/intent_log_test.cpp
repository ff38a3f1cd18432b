// The intent log's record format: encoding, validation, reading and judging the copies
// (intent_log.h): holes below the durable mark are found, never skipped silently.
#include <gtest/gtest.h>

#include "store/checksum.h"
#include "store/endian.h"
#include "store/memory_device.h"
#include "volume/intent_log.h"

namespace snapstore {
namespace {

const Uuid kPool = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

LogBuffer sample_entries(std::uint64_t seed) {
  LogBuffer b;
  const std::vector<std::uint64_t> blocks = {seed, seed + 1, seed + 7};
  const std::vector<std::uint64_t> sums = {seed * 3, seed * 5, seed * 11};
  b.add_map(2, 100 + seed, blocks, sums);
  b.add_unmap(3, 40, 45);
  return b;
}

LogLayout dup_layout() {
  Superblock sb;
  sb.log_copies = 2;
  sb.log_copy_bytes = 384 << 10;
  return LogLayout::for_superblock(sb);
}

TEST(IntentLog, RecordRoundTripsAndIsPaddedTo16Bytes) {
  LogBuffer b = sample_entries(9);
  EXPECT_EQ(b.entry_count(), 2u);
  auto record = encode_log_record(kPool, 17, 4, 3, 1024, b);
  EXPECT_EQ(record.size() % log_alignment, 0u);
  EXPECT_EQ(record.size(), log_record_size(b.bytes().size()));
  EXPECT_LT(record.size(), 256u) << "a record of two small entries should stay small";
  std::vector<std::byte> copy(8192);
  std::copy(record.begin(), record.end(), copy.begin() + 1024);
  auto r = decode_log_record(copy, 1024, kPool, 17);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->sequence, 4u);
  EXPECT_EQ(r->durable, 3u);
  EXPECT_EQ(r->length, record.size());
  ASSERT_EQ(r->entries.size(), 2u);
  const LogEntry& m = r->entries[0];
  EXPECT_EQ(m.type, LogEntry::kind::map);
  EXPECT_EQ(m.volume, 2u);
  EXPECT_EQ(m.first, 109u);
  EXPECT_EQ(m.end, 112u);
  ASSERT_EQ(m.mappings.size(), 3u);
  EXPECT_EQ(m.mappings[2].data_block, 16u);
  EXPECT_EQ(m.mappings[2].checksum, 99u);
  const LogEntry& u = r->entries[1];
  EXPECT_EQ(u.type, LogEntry::kind::unmap);
  EXPECT_EQ(u.volume, 3u);
  EXPECT_EQ(u.first, 40u);
  EXPECT_EQ(u.end, 45u);
  // A marker: no entries, the header alone.
  auto marker = encode_log_record(kPool, 17, 5, 5, 2048, LogBuffer{});
  EXPECT_EQ(marker.size(), log_header_size);
}

// Invariant 4 and the checksum's seed: a record counts only for its pool, base and place,
// and whole.
TEST(IntentLog, RecordsOfAnotherPoolBaseOrPlaceAreRefused) {
  auto record = encode_log_record(kPool, 17, 4, 0, 0, sample_entries(1));
  std::vector<std::byte> copy(8192);
  std::copy(record.begin(), record.end(), copy.begin());
  EXPECT_TRUE(decode_log_record(copy, 0, kPool, 17));
  EXPECT_FALSE(decode_log_record(copy, 0, kPool, 18)) << "older base";
  Uuid other = kPool;
  other[0] ^= 1;
  EXPECT_FALSE(decode_log_record(copy, 0, other, 17)) << "another pool";
  std::vector<std::byte> moved(8192);
  std::copy(record.begin(), record.end(), moved.begin() + 512);
  EXPECT_FALSE(decode_log_record(moved, 512, kPool, 17)) << "the same bytes at another position";
  for (std::size_t at : {std::size_t{9}, std::size_t{40}, record.size() - 1}) {
    auto damaged = copy;
    damaged[at] ^= std::byte{0x10};
    EXPECT_FALSE(decode_log_record(damaged, 0, kPool, 17)) << "a flipped bit at " << at;
  }
  EXPECT_FALSE(decode_log_record(std::vector<std::byte>(8192), 0, kPool, 17)) << "zeroes";
  EXPECT_FALSE(decode_log_record(std::span(copy).first(record.size() - 16), 0, kPool, 17)) << "cut short";
}

// Writes records of base 30 back to back as the pool does: each with the durable mark it
// had when written. Returns their positions.
std::vector<std::uint64_t> write_log(MemoryDevice& device, const LogLayout& layout,
                                     const std::vector<std::uint64_t>& durable_marks) {
  std::vector<std::uint64_t> positions;
  std::uint64_t position = 0;
  for (std::uint64_t seq = 0; seq < durable_marks.size(); ++seq) {
    auto record = encode_log_record(kPool, 30, seq, durable_marks[seq], position, sample_entries(seq));
    EXPECT_TRUE(write_log_record({std::shared_ptr<MemoryDevice>(&device, [](MemoryDevice*) {})}, layout,
                                 position, record));
    positions.push_back(position);
    position += record.size();
  }
  return positions;
}

LogScan scan(MemoryDevice& device, const LogLayout& layout, std::uint64_t base = 30) {
  auto s = read_intent_log({std::shared_ptr<MemoryDevice>(&device, [](MemoryDevice*) {})}, layout, kPool, base);
  EXPECT_TRUE(s) << s.status().to_string();
  return s ? *s : LogScan{};
}

// Invariant 2: copies splice; below the durable mark a record no copy holds is a hole,
// never the end of the log; above it a missing record is what a crash leaves.
TEST(IntentLog, ReaderFindsHolesBelowTheDurableMarkAndEndsQuietlyAboveIt) {
  auto device = std::make_shared<MemoryDevice>(4 << 20);
  const LogLayout layout = dup_layout();
  // Records 0-5; records 0-3 were flushed before record 4 was written.
  const auto positions = write_log(*device, layout, {0, 0, 0, 0, 4, 4});
  // A stale record of the previous base after the last one: not part of the log.
  auto stale = encode_log_record(kPool, 29, 6, 0, positions.back() + 256, sample_entries(9));
  ASSERT_TRUE(write_log_record({device}, layout, positions.back() + 256, stale));
  LogScan s = scan(*device, layout);
  ASSERT_EQ(s.records.size(), 6u);
  EXPECT_EQ(s.durable, 4u);
  EXPECT_TRUE(s.lost.empty());
  EXPECT_TRUE(s.bad_copies.empty());
  EXPECT_EQ(s.records.back().entries[0].first, 105u);
  // Copy 0 loses record 1, copy 1 loses record 2: still six records, two bad copies of
  // durable records.
  ASSERT_TRUE(device->flip_bit(layout.copy_offset(0) + positions[1] + 100, 3));
  ASSERT_TRUE(device->flip_bit(layout.copy_offset(1) + positions[2] + 100, 3));
  s = scan(*device, layout);
  EXPECT_EQ(s.records.size(), 6u);
  EXPECT_TRUE(s.lost.empty());
  ASSERT_EQ(s.bad_copies.size(), 2u);
  EXPECT_TRUE(s.bad_copies[0].durable && s.bad_copies[1].durable);
  // Both copies of record 2 damaged: a hole, not the end of the log; the records after it
  // are still found.
  ASSERT_TRUE(device->flip_bit(layout.copy_offset(0) + positions[2] + 100, 3));
  s = scan(*device, layout);
  EXPECT_EQ(s.records.size(), 5u);
  ASSERT_EQ(s.lost.size(), 1u);
  EXPECT_EQ(s.lost[0], 2u);
  EXPECT_EQ(s.records.back().sequence, 5u);
  EXPECT_TRUE(scan(*device, layout, 31).records.empty());
}

TEST(IntentLog, ALostRecordThatNoFlushCoveredIsNoHole) {
  auto device = std::make_shared<MemoryDevice>(4 << 20);
  const LogLayout layout = dup_layout();
  const auto positions = write_log(*device, layout, {0, 0, 2, 2});
  for (std::uint32_t c = 0; c < 2; ++c) ASSERT_TRUE(device->flip_bit(layout.copy_offset(c) + positions[3] + 90, 1));
  LogScan s = scan(*device, layout);
  EXPECT_EQ(s.records.size(), 3u);
  EXPECT_TRUE(s.lost.empty());
  // Both damaged copies are reported, as a crash may explain them.
  ASSERT_EQ(s.bad_copies.size(), 2u);
  EXPECT_FALSE(s.bad_copies[0].durable);
  // Record 2 (not flushed) written to copy 0 only, as a crash between the two writes leaves it.
  ASSERT_TRUE(device->write(layout.copy_offset(1) + positions[2], std::vector<std::byte>(64)));
  s = scan(*device, layout);
  EXPECT_EQ(s.records.size(), 3u);
  EXPECT_TRUE(s.lost.empty());
}

// Format 1 records (512-byte aligned, 64-byte header, each flushed before the next).
std::vector<std::byte> encode_v1(std::uint64_t base, std::uint64_t sequence, std::uint64_t position,
                                 const LogBuffer& entries) {
  std::vector<std::byte> out((64 + entries.bytes().size() + 511) / 512 * 512);
  std::byte* p = out.data();
  store_le64(p, log_record_magic_v1);
  store_le64(p + 16, base);
  store_le64(p + 24, sequence);
  store_le32(p + 32, static_cast<std::uint32_t>(out.size()));
  store_le32(p + 36, static_cast<std::uint32_t>(entries.entry_count()));
  store_le32(p + 40, static_cast<std::uint32_t>(entries.bytes().size()));
  std::memcpy(p + 48, kPool.data(), kPool.size());
  std::memcpy(p + 64, entries.bytes().data(), entries.bytes().size());
  store_le64(p + 8, checksum(std::span<const std::byte>(out).subspan(16),
                             checksum_seed(checksum_salt::intent_log, base, position)));
  return out;
}

TEST(IntentLog, FormatOneRecordsAreReadWithTheLastOneNotFlushed) {
  auto device = std::make_shared<MemoryDevice>(4 << 20);
  Superblock sb;
  sb.log_copies = 2;
  sb.log_copy_bytes = 448 << 10;
  const LogLayout layout = LogLayout::for_superblock(sb);
  std::uint64_t position = 0;
  for (std::uint64_t seq = 0; seq < 3; ++seq) {
    auto record = encode_v1(30, seq, position, sample_entries(seq));
    ASSERT_TRUE(write_log_record({device}, layout, position, record));
    position += record.size();
  }
  auto s = read_intent_log_v1({device}, layout, kPool, 30);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->records.size(), 3u);
  EXPECT_EQ(s->durable, 2u);
  EXPECT_EQ(s->records[2].entries[0].first, 102u);
  EXPECT_TRUE(read_intent_log({device}, layout, kPool, 30)->records.empty()) << "format 1 read as format 2";
}

TEST(IntentLog, RecordsThatDoNotFitAreRefused) {
  auto device = std::make_shared<MemoryDevice>(4 << 20);
  const LogLayout layout = dup_layout();
  auto record = encode_log_record(kPool, 1, 0, 0, 0, sample_entries(1));
  EXPECT_FALSE(write_log_record({device}, layout, layout.copy_bytes, record));
  EXPECT_FALSE(write_log_record({device}, layout, layout.copy_bytes - 16, record));
  EXPECT_EQ(device->write_count(), 0u);
}

}  // namespace
}  // namespace snapstore
