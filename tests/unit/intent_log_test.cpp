// The intent log's record format: encoding, validation and reading the copies.
#include <gtest/gtest.h>

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

TEST(IntentLog, RecordRoundTripsAndIsPaddedToSectors) {
  LogBuffer b = sample_entries(9);
  EXPECT_EQ(b.entry_count(), 2u);
  auto record = encode_log_record(kPool, 17, 4, 1024, b);
  EXPECT_EQ(record.size() % log_sector_size, 0u);
  EXPECT_EQ(record.size(), log_record_size(b.bytes().size()));
  std::vector<std::byte> copy(8192);
  std::copy(record.begin(), record.end(), copy.begin() + 1024);
  auto r = decode_log_record(copy, 1024, kPool, 17, 4);
  ASSERT_TRUE(r);
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
}

// Invariant 3: a record counts only for its pool, base, sequence and place, and whole.
TEST(IntentLog, RecordsOfAnotherPoolBaseSequenceOrPlaceAreRefused) {
  auto record = encode_log_record(kPool, 17, 4, 0, sample_entries(1));
  std::vector<std::byte> copy(8192);
  std::copy(record.begin(), record.end(), copy.begin());
  EXPECT_TRUE(decode_log_record(copy, 0, kPool, 17, 4));
  EXPECT_FALSE(decode_log_record(copy, 0, kPool, 18, 4)) << "older base";
  EXPECT_FALSE(decode_log_record(copy, 0, kPool, 17, 5)) << "wrong sequence";
  Uuid other = kPool;
  other[0] ^= 1;
  EXPECT_FALSE(decode_log_record(copy, 0, other, 17, 4)) << "another pool";
  // The same bytes at another position: the checksum's seed names the position.
  std::vector<std::byte> moved(8192);
  std::copy(record.begin(), record.end(), moved.begin() + 512);
  EXPECT_FALSE(decode_log_record(moved, 512, kPool, 17, 4));
  // Any flipped bit, including in the padding.
  for (std::size_t at : {8ul, 20ul, 40ul, 70ul, record.size() - 1}) {
    auto bad = copy;
    bad[at] ^= std::byte{0x10};
    EXPECT_FALSE(decode_log_record(bad, 0, kPool, 17, 4)) << "flipped byte " << at;
  }
  // Torn: the first sector only.
  std::vector<std::byte> big_copy(8192);
  LogBuffer big;
  std::vector<std::uint64_t> blocks(100, 5), sums(100, 6);
  big.add_map(1, 0, blocks, sums);
  auto big_record = encode_log_record(kPool, 17, 0, 0, big);
  ASSERT_GT(big_record.size(), log_sector_size);
  std::copy(big_record.begin(), big_record.begin() + log_sector_size, big_copy.begin());
  EXPECT_FALSE(decode_log_record(big_copy, 0, kPool, 17, 0));
  // Zeroes, and a record running past the end of its copy.
  EXPECT_FALSE(decode_log_record(std::vector<std::byte>(8192), 0, kPool, 17, 0));
  EXPECT_FALSE(decode_log_record(std::span(big_copy).first(600), 0, kPool, 17, 0));
}

LogLayout dup_layout() {
  Superblock sb;
  sb.log_copies = 2;
  sb.log_copy_bytes = 448 << 10;
  return LogLayout::for_superblock(sb);
}

// Invariant 3: position by position, the first copy holding the next record wins, so
// damage in different records of different copies loses nothing.
TEST(IntentLog, ReaderSplicesCopiesAndStopsWhereNoCopyHoldsTheNextRecord) {
  auto device = std::make_shared<MemoryDevice>(4 << 20);
  const LogLayout layout = dup_layout();
  std::uint64_t position = 0;
  std::vector<std::uint64_t> positions;
  for (std::uint64_t seq = 0; seq < 4; ++seq) {
    auto record = encode_log_record(kPool, 30, seq, position, sample_entries(seq));
    ASSERT_TRUE(write_log_record({device}, layout, position, record));
    positions.push_back(position);
    position += record.size();
  }
  // A stale record of the previous base right after the last one: not part of the log.
  auto stale = encode_log_record(kPool, 29, 4, position, sample_entries(9));
  ASSERT_TRUE(write_log_record({device}, layout, position, stale));
  auto all = read_intent_log({device}, layout, kPool, 30);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ(all->back().entries[0].first, 103u);
  // Copy 0 loses record 1, copy 1 loses record 2: still four records.
  ASSERT_TRUE(device->flip_bit(layout.copy_offset(0) + positions[1] + 100, 3));
  ASSERT_TRUE(device->flip_bit(layout.copy_offset(1) + positions[2] + 100, 3));
  all = read_intent_log({device}, layout, kPool, 30);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 4u);
  // Both copies of record 2 damaged: the log ends before it.
  ASSERT_TRUE(device->flip_bit(layout.copy_offset(0) + positions[2] + 100, 3));
  all = read_intent_log({device}, layout, kPool, 30);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 2u);
  EXPECT_TRUE(read_intent_log({device}, layout, kPool, 31)->empty());
}

TEST(IntentLog, RecordsThatDoNotFitAreRefused) {
  auto device = std::make_shared<MemoryDevice>(4 << 20);
  const LogLayout layout = dup_layout();
  auto record = encode_log_record(kPool, 1, 0, 0, sample_entries(1));
  ASSERT_EQ(record.size(), 512u);
  EXPECT_FALSE(write_log_record({device}, layout, layout.copy_bytes, record));
  EXPECT_FALSE(write_log_record({device}, layout, layout.copy_bytes - 256, record));
  EXPECT_EQ(device->write_count(), 0u);
}

}  // namespace
}  // namespace snapstore
