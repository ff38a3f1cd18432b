// Pool fault tests on in-memory devices: failed device writes and flushes during a
// commit (sticky read-only, pool.h invariant 3), failed data writes and reads, bit flips
// in data and metadata (chunk_map.h invariant 3: repair from the other copy, or an error,
// never wrong bytes), and damaged, truncated, foreign or too-new superblocks (a clear
// refusal that writes nothing). Every pool that survives ends with the offline checker.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <random>

#include "store/checksum.h"
#include "store/memory_device.h"
#include "store/superblock.h"
#include "volume/pool.h"
#include "volume/pool_checker.h"
#include "pool_fixture.h"

namespace snapstore {
namespace {

constexpr std::uint64_t device_size = 16 << 20;
constexpr std::uint64_t origin_size = 4 << 20;
constexpr std::uint32_t bs = 4096;

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// Offsets (multiples of the block size) where the device holds exactly `block`.
std::vector<std::uint64_t> find_block(const MemoryDevice& device,
                                      std::span<const std::byte> block) {
  const auto image = device.contents();
  std::vector<std::uint64_t> hits;
  for (std::uint64_t off = 0; off + block.size() <= image.size(); off += bs)
    if (std::memcmp(image.data() + off, block.data(), block.size()) == 0) hits.push_back(off);
  return hits;
}

// Device offset of copy `copy` of logical byte `logical` of space `s`.
std::uint64_t device_offset(const Superblock& sb, space s, std::uint64_t logical,
                            std::size_t copy) {
  for (const Chunk& c : sb.chunks)
    if (c.kind == s && c.index == logical / sb.chunk_size)
      return c.stripes.at(copy).offset + logical % sb.chunk_size;
  ADD_FAILURE() << "no chunk holds logical offset " << logical;
  return 0;
}

std::vector<std::byte> read_bytes(MemoryDevice& d, std::uint64_t offset, std::size_t n) {
  std::vector<std::byte> out(n);
  EXPECT_TRUE(d.read(offset, out));
  return out;
}

// A pool on one MemoryDevice with a byte model of its origin volume.
class PoolFaultTest : public PoolFixture {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::off);  // failed commits log at critical on purpose
    ASSERT_NO_FATAL_FAILURE(format_and_open(device_size, origin_size, quiet_options(), "faulty"));
  }
  void TearDown() override {
    pool_.reset();
    spdlog::set_level(spdlog::level::info);
  }

  using PoolFixture::open;
  // Unlike PoolFixture::reopen, no check in between: some tests reopen damaged pools.
  void reopen(PoolOptions o = quiet_options()) {
    close();
    ASSERT_NO_FATAL_FAILURE(open(o));
  }
  void write(std::uint64_t offset, const std::vector<std::byte>& data) { write_model(offset, data); }
  void unmap(std::uint64_t offset, std::uint64_t length) { unmap_model(offset, length); }
  std::vector<std::byte> read_all() { return read_origin(0, origin_size); }
  // Drops a pool whose commit failed (nothing more is written), then checks that the
  // device holds the last commit intact: clean, at `generation`, with `committed` (what
  // that commit and the intent log after it hold).
  void expect_reopens_at(std::uint64_t generation, const std::vector<std::byte>& committed) {
    pool_.reset();
    CheckReport r = check();
    EXPECT_TRUE(r.clean()) << problems_of(r);
    EXPECT_EQ(r.generation, generation);
    ASSERT_NO_FATAL_FAILURE(open());
    EXPECT_TRUE(read_all() == committed) << "reopened pool lost or mixed committed data";
  }

  // Old state: some data, committed. Then a newer, unflushed state on top of it.
  void write_committed_state() {
    write(0, pattern(64 << 10, 1));
    write((1 << 20) + bs, pattern(bs, 2));
    write((2 << 20) + 1234, pattern(300 << 10, 3));
    ASSERT_TRUE(pool_->commit());
  }
  // Data chunks for two overwrites of half the origin, so that those need no new chunk (a
  // change the log cannot carry: the write that adds one commits at once).
  void grow_data_space() {
    for (int n = 0; n < 2; ++n) {
      write(0, pattern(origin_size, 20 + n));
      ASSERT_TRUE(pool_->commit());
    }
  }
  void write_unflushed_state() {
    write(2 * bs, pattern(4 * bs, 4));
    unmap(1 << 20, 4 * bs);
    write(3 << 20, pattern(128 << 10, 5));
    write(777, pattern(100, 6));
  }

};

// After a failed commit: read-only for good, reads still see the latest writes, and
// nothing at all is written to the device any more.
void expect_sticky_failure(Pool& pool, std::uint64_t origin, MemoryDevice& device,
                           const std::vector<std::byte>& latest) {
  EXPECT_FALSE(pool.failure().is_ok());
  EXPECT_TRUE(pool.read_only());
  EXPECT_FALSE(pool.stats().failure.empty());
  const std::uint64_t writes = device.write_count();
  const errc why = pool.failure().code();
  auto refused = [&](const Status& st) {
    EXPECT_FALSE(st.is_ok());
    EXPECT_TRUE(st.code() == errc::read_only || st.code() == why) << st.to_string();
  };
  refused(pool.write(origin, 0, pattern(bs, 99), false));
  refused(pool.write(origin, 5, pattern(10, 98), true));
  refused(pool.unmap(origin, 0, 8 * bs, false));
  refused(pool.write_zeroes(origin, 0, 8 * bs, false));
  refused(pool.flush());
  refused(pool.commit());
  std::vector<std::byte> now(origin_size);
  Status st = pool.read(origin, 0, now);
  EXPECT_TRUE(st) << st.to_string();
  EXPECT_TRUE(now == latest) << "reads after the failed commit differ from the latest writes";
  refused(pool.close());
  EXPECT_EQ(device.write_count(), writes) << "a failed pool kept writing";
}

// Fails each device write of a commit in turn (once), until a commit needs no more.
TEST_F(PoolFaultTest, FailedWriteDuringCommitTurnsThePoolReadOnlyForGood) {
  std::uint64_t failed_commits = 0;
  for (std::uint64_t k = 1; k < 200; ++k) {
    SCOPED_TRACE("commit write " + std::to_string(k));
    SetUp();
    ASSERT_NO_FATAL_FAILURE(write_committed_state());
    const std::vector<std::byte> committed = model_;
    const std::uint64_t generation = pool_->stats().generation;
    ASSERT_NO_FATAL_FAILURE(write_unflushed_state());
    device_->fail_nth(device_op::write, k, fault_repeat::once);
    Status st = pool_->commit();
    if (st) {  // k is past the commit's last write
      EXPECT_FALSE(pool_->read_only());
      break;
    }
    ++failed_commits;
    EXPECT_EQ(st.code(), errc::io_error) << st.to_string();
    const std::vector<std::byte> latest = model_;
    expect_sticky_failure(*pool_, origin_, *device_, latest);
    // The failed commit left the last committed state intact, and the intent log every
    // acknowledged change after it; only a failed write of its ring B copy comes after its
    // ring A copy is durable, and then the pool reopens at it (that copy a problem a crash
    // explains, rewritten by the open). Either way the latest writes are all there.
    pool_.reset();
    CheckReport r = check();
    EXPECT_TRUE(r.problems.empty()) << problems_of(r);
    ASSERT_TRUE(r.generation == generation || (r.generation == generation + 1 && !r.crash_explainable.empty()))
        << r.generation;
    ASSERT_NO_FATAL_FAILURE(open());
    model_ = latest;
    EXPECT_TRUE(read_all() == model_) << "reopened at generation " << r.generation << " with other content";
    EXPECT_FALSE(pool_->read_only());
    ASSERT_NO_FATAL_FAILURE(write(0, pattern(bs, 7)));
    ASSERT_TRUE(pool_->commit());
    close();
    expect_clean();
    if (HasFailure()) break;
  }
  // Every commit writes its metadata (two copies) and a superblock.
  EXPECT_GE(failed_commits, 3u);
  RecordProperty("failed_commits", static_cast<int>(failed_commits));
}

// Fails each device flush of a commit in turn. A failed first flush must stop the commit
// before the superblock is written; a failed later flush leaves the new superblock's ring A
// copy on this (always durable) device, and maybe not its ring B copy (a problem that a
// crash explains, which the writable open repairs), so the pool reopens at one or the other.
TEST_F(PoolFaultTest, FailedFlushDuringCommitTurnsThePoolReadOnlyForGood) {
  std::uint64_t failed_commits = 0;
  for (std::uint64_t k = 1; k < 20; ++k) {
    SCOPED_TRACE("commit flush " + std::to_string(k));
    SetUp();
    ASSERT_NO_FATAL_FAILURE(write_committed_state());
    const std::vector<std::byte> committed = model_;
    const std::uint64_t generation = pool_->stats().generation;
    ASSERT_NO_FATAL_FAILURE(write_unflushed_state());
    const std::vector<std::byte> latest = model_;
    const std::uint64_t writes_before = device_->write_count();
    device_->fail_nth(device_op::flush, k, fault_repeat::once);
    Status st = pool_->commit();
    if (st) break;
    ++failed_commits;
    EXPECT_EQ(st.code(), errc::io_error) << st.to_string();
    const std::uint64_t writes_in_commit = device_->write_count() - writes_before;
    expect_sticky_failure(*pool_, origin_, *device_, latest);
    pool_.reset();
    CheckReport r = check();
    EXPECT_TRUE(r.problems.empty()) << problems_of(r);
    if (k == 1) {
      EXPECT_EQ(r.generation, generation) << "superblock written before the first flush";
    }
    ASSERT_TRUE(r.generation == generation || r.generation == generation + 1) << r.generation;
    ASSERT_NO_FATAL_FAILURE(open());
    // The intent log held every acknowledged change after the last commit.
    EXPECT_TRUE(read_all() == latest) << "reopened at generation " << r.generation << " with other content";
    EXPECT_GT(writes_in_commit, 0u);
    close();
    expect_clean();
    if (HasFailure()) break;
  }
  EXPECT_EQ(failed_commits, 3u) << "a commit on one device flushes three times (data, ring A, ring B)";
}

// After more than Pool::prewrite_threshold of data, a commit first flushes the data while
// writes go on (pool_commit.cpp). That flush failing is a failed commit like any other:
// read-only for good, nothing of the commit written, the last commit intact.
TEST_F(PoolFaultTest, FailedFlushBeforeACommitOfMuchDataTurnsThePoolReadOnly) {
  ASSERT_NO_FATAL_FAILURE(grow_data_space());
  ASSERT_NO_FATAL_FAILURE(write_committed_state());
  const std::uint64_t generation = pool_->stats().generation;
  // Each piece overwrites half the origin: as much data as the threshold, few blocks.
  const std::uint64_t commits = pool_->stats().commits;
  for (int n = 0; n < 2; ++n) ASSERT_NO_FATAL_FAILURE(write(n * origin_size / 2, pattern(origin_size / 2, 10 + n)));
  ASSERT_EQ(pool_->stats().commits, commits) << "the writes needed a new chunk after all";
  const std::vector<std::byte> latest = model_;
  const std::uint64_t writes_before = device_->write_count();
  device_->fail_nth(device_op::flush, 1, fault_repeat::once);
  Status st = pool_->commit();
  ASSERT_FALSE(st) << "the commit succeeded although its first flush failed";
  EXPECT_EQ(st.code(), errc::io_error) << st.to_string();
  EXPECT_EQ(device_->write_count(), writes_before) << "the commit wrote after a failed flush";
  expect_sticky_failure(*pool_, origin_, *device_, latest);
  // The last commit intact, and the intent log holding the writes after it.
  ASSERT_NO_FATAL_FAILURE(expect_reopens_at(generation, latest));
}

// The same writes without a fault: that commit flushes four times (one before it stops
// writes, then its data, ring A and ring B), and a later commit of little data three times.
TEST_F(PoolFaultTest, ACommitOfMuchDataFlushesOnceBeforeItsTwoPhases) {
  ASSERT_NO_FATAL_FAILURE(grow_data_space());
  ASSERT_NO_FATAL_FAILURE(write_committed_state());
  for (int n = 0; n < 2; ++n) ASSERT_NO_FATAL_FAILURE(write(n * origin_size / 2, pattern(origin_size / 2, 10 + n)));
  std::uint64_t flushes = device_->flush_count();
  ASSERT_TRUE(pool_->commit());
  EXPECT_EQ(device_->flush_count() - flushes, 4u);
  ASSERT_NO_FATAL_FAILURE(write(0, pattern(bs, 12)));
  flushes = device_->flush_count();
  ASSERT_TRUE(pool_->commit());
  EXPECT_EQ(device_->flush_count() - flushes, 3u);
  reopen();
  EXPECT_TRUE(read_all() == model_);
}

// A FUA write whose data lands but whose commit fails is a commit failure too.
TEST_F(PoolFaultTest, FailedCommitOfAFuaWriteTurnsThePoolReadOnly) {
  ASSERT_NO_FATAL_FAILURE(write_committed_state());
  const std::vector<std::byte> committed = model_;
  device_->fail_nth(device_op::flush, 1, fault_repeat::once);
  auto data = pattern(2 * bs, 11);
  Status st = pool_->write(origin_, 8 * bs, data, true);
  EXPECT_FALSE(st.is_ok());
  std::copy(data.begin(), data.end(), model_.begin() + 8 * bs);
  expect_sticky_failure(*pool_, origin_, *device_, model_);
  pool_.reset();
  expect_clean();
  ASSERT_NO_FATAL_FAILURE(open());
  // The failed write was never acknowledged: it may or may not be there (its intent log
  // record reached the device, only the flush after it failed), but nothing else changed.
  const auto now = read_all();
  EXPECT_TRUE(now == committed || now == model_);
}

// pool.h invariants 3 and 4: a data write that fails is an error for that request only.
TEST_F(PoolFaultTest, FailedDataWriteFailsThatRequestOnly) {
  ASSERT_NO_FATAL_FAILURE(write_committed_state());
  const std::uint64_t free_before = pool_->stats().data_blocks_free;
  // Whole blocks, over mapped and unmapped blocks; nothing is committed yet.
  device_->fail_nth(device_op::write, 1, fault_repeat::once);
  Status st = pool_->write(origin_, 12 * bs, pattern(8 * bs, 20), false);
  EXPECT_EQ(st.code(), errc::io_error) << st.to_string();
  EXPECT_TRUE(pool_->failure().is_ok()) << pool_->failure().to_string();
  EXPECT_FALSE(pool_->read_only());
  expect_model();
  // A partial-block write (read-modify-write) and a FUA write fail the same way.
  device_->fail_nth(device_op::write, 1, fault_repeat::once);
  st = pool_->write(origin_, 100, pattern(5000, 21), false);
  EXPECT_EQ(st.code(), errc::io_error) << st.to_string();
  device_->fail_nth(device_op::write, 1, fault_repeat::once);
  st = pool_->write(origin_, 40 * bs, pattern(bs, 22), true);
  EXPECT_EQ(st.code(), errc::io_error) << st.to_string();
  EXPECT_FALSE(pool_->read_only());
  expect_model();
  // The next writes and the commit work; no block leaked (blocks 12..15 were mapped).
  ASSERT_NO_FATAL_FAILURE(write(12 * bs, pattern(8 * bs, 23)));
  ASSERT_TRUE(pool_->commit());
  EXPECT_FALSE(pool_->read_only());
  EXPECT_EQ(pool_->stats().data_blocks_free, free_before - 4);
  expect_model();
  close();
  expect_clean();
  ASSERT_NO_FATAL_FAILURE(open());
  expect_model();
}

// A failing read during the read-modify-write of a partial write: that write fails only.
TEST_F(PoolFaultTest, FailedReadDuringPartialWriteFailsThatRequestOnly) {
  ASSERT_NO_FATAL_FAILURE(write_committed_state());
  device_->fail_nth(device_op::read, 1, fault_repeat::once);
  Status st = pool_->write(origin_, 100, pattern(200, 30), false);  // block 0 is mapped
  EXPECT_EQ(st.code(), errc::io_error) << st.to_string();
  EXPECT_FALSE(pool_->read_only());
  expect_model();
  ASSERT_NO_FATAL_FAILURE(write(100, pattern(200, 31)));
  ASSERT_TRUE(pool_->commit());
  close();
  expect_clean();
}

// A metadata block missing from the cache whose first copy cannot be read is served from
// the second copy (dup profile).
TEST_F(PoolFaultTest, FailedMetadataReadIsServedFromTheOtherCopy) {
  ASSERT_NO_FATAL_FAILURE(write_committed_state());
  PoolOptions small = quiet_options();
  small.cache_bytes = 1;  // the minimum cache; a fresh open has not read the mapping tree
  ASSERT_NO_FATAL_FAILURE(reopen(small));
  const PoolStats before = pool_->stats();
  device_->fail_nth(device_op::read, 1, fault_repeat::once);
  std::vector<std::byte> out(64 << 10);
  Status st = pool_->read(origin_, 0, out);
  ASSERT_TRUE(st) << st.to_string();
  EXPECT_TRUE(std::equal(out.begin(), out.end(), model_.begin()));
  const PoolStats after = pool_->stats();
  EXPECT_GT(after.cache.misses, before.cache.misses) << "the read did not miss the cache";
  EXPECT_EQ(after.copies.unrecoverable, before.copies.unrecoverable);
  EXPECT_FALSE(pool_->read_only());
  expect_model();
  close();
  expect_clean();
}

// A data block (single profile) whose read fails: an I/O error for that read, and the next
// read succeeds.
TEST_F(PoolFaultTest, FailedDataReadIsAnIoErrorOnce) {
  ASSERT_NO_FATAL_FAILURE(write_committed_state());
  std::vector<std::byte> out(bs);
  ASSERT_TRUE(pool_->read(origin_, 0, out));  // the mapping is cached now
  device_->fail_nth(device_op::read, 1, fault_repeat::once);
  Status st = pool_->read(origin_, 0, out);
  EXPECT_EQ(st.code(), errc::io_error) << st.to_string();
  st = pool_->read(origin_, 0, out);
  ASSERT_TRUE(st) << st.to_string();
  EXPECT_TRUE(std::equal(out.begin(), out.end(), model_.begin()));
  EXPECT_FALSE(pool_->read_only());
  // A device that fails every read: reads fail, nothing else changes.
  device_->fail_nth(device_op::read, 1, fault_repeat::forever);
  EXPECT_EQ(pool_->read(origin_, 0, out).code(), errc::io_error);
  device_->clear_faults();
  expect_model();
  close();
  expect_clean();
}

// A flipped bit in a data block: corruption (EIO) on that block, never its wrong bytes.
TEST_F(PoolFaultTest, DataBitFlipIsCorruptionNeverWrongBytes) {
  const auto block5 = pattern(bs, 40);
  ASSERT_NO_FATAL_FAILURE(write(4 * bs, pattern(bs, 41)));
  ASSERT_NO_FATAL_FAILURE(write(5 * bs, block5));
  ASSERT_NO_FATAL_FAILURE(write(6 * bs, pattern(bs, 42)));
  ASSERT_TRUE(pool_->commit());
  const auto where = find_block(*device_, block5);
  ASSERT_EQ(where.size(), 1u);
  ASSERT_TRUE(device_->flip_bit(where[0] + 1000, 3));
  for (int pass = 0; pass < 2; ++pass) {  // from the running pool, then after a reopen
    SCOPED_TRACE(pass == 0 ? "running pool" : "reopened pool");
    std::vector<std::byte> out(bs, std::byte{0x5a});
    Status st = pool_->read(origin_, 5 * bs, out);
    EXPECT_EQ(st.code(), errc::corruption) << st.to_string();
    EXPECT_TRUE(contains(st.message(), "checksum")) << st.message();
    // Any read covering it fails; reads of its neighbours do not.
    std::vector<std::byte> three(3 * bs);
    EXPECT_EQ(pool_->read(origin_, 4 * bs, three).code(), errc::corruption);
    std::vector<std::byte> one(bs);
    ASSERT_TRUE(pool_->read(origin_, 4 * bs, one));
    EXPECT_TRUE(std::equal(one.begin(), one.end(), model_.begin() + 4 * bs));
    ASSERT_TRUE(pool_->read(origin_, 6 * bs, one));
    EXPECT_TRUE(std::equal(one.begin(), one.end(), model_.begin() + 6 * bs));
    EXPECT_GE(pool_->stats().copies.unrecoverable, 1u);
    EXPECT_FALSE(pool_->read_only());
    if (pass == 0) {
      ASSERT_NO_FATAL_FAILURE(reopen());
    }
  }
  close();
  CheckReport r = check();
  ASSERT_FALSE(r.clean());
  bool named = false;
  for (const auto& p : r.problems) named |= contains(p, "block 5 ") && contains(p, "checksum");
  EXPECT_TRUE(named) << problems_of(r);
  // Overwriting the block heals the volume.
  ASSERT_NO_FATAL_FAILURE(open());
  ASSERT_NO_FATAL_FAILURE(write(5 * bs, pattern(bs, 43)));
  ASSERT_TRUE(pool_->commit());
  expect_model();
  close();
  expect_clean();
}

// Fixture helpers for the origin's mapping-tree root (a single leaf for a few blocks).
struct LeafCopies {
  std::uint64_t block = 0;
  std::uint64_t copy[2] = {0, 0};
};

LeafCopies mapping_root_copies(Pool& pool) {
  LeafCopies l;
  auto v = pool.find_volume("origin");
  EXPECT_TRUE(v);
  l.block = v->mapping.block;
  const std::uint64_t logical = l.block * metadata_block_size;
  EXPECT_EQ(pool.chunk_map().copies(space::metadata, logical), 2u);
  for (std::size_t c = 0; c < 2; ++c)
    l.copy[c] = device_offset(pool.superblock(), space::metadata, logical, c);
  return l;
}

TEST_F(PoolFaultTest, MetadataBitFlipInOneCopyIsRepaired) {
  ASSERT_NO_FATAL_FAILURE(write_committed_state());
  const LeafCopies leaf = mapping_root_copies(*pool_);
  const auto good = read_bytes(*device_, leaf.copy[1], metadata_block_size);
  ASSERT_TRUE(read_bytes(*device_, leaf.copy[0], metadata_block_size) == good);
  close();
  ASSERT_TRUE(device_->flip_bit(leaf.copy[0] + 200, 5));  // covered by its checksum
  ASSERT_NO_FATAL_FAILURE(open());
  const PoolStats before = pool_->stats();
  expect_model();
  const PoolStats after = pool_->stats();
  EXPECT_EQ(after.copies.checksum_failures, before.copies.checksum_failures + 1);
  EXPECT_EQ(after.copies.repairs, before.copies.repairs + 1);
  EXPECT_EQ(after.copies.unrecoverable, before.copies.unrecoverable);
  EXPECT_TRUE(read_bytes(*device_, leaf.copy[0], metadata_block_size) == good)
      << "the bad copy was not rewritten";
  close();
  expect_clean();
}

TEST_F(PoolFaultTest, MetadataBitFlipInBothCopiesIsCorruptionNeverWrongData) {
  ASSERT_NO_FATAL_FAILURE(write_committed_state());
  const LeafCopies leaf = mapping_root_copies(*pool_);
  close();
  ASSERT_TRUE(device_->flip_bit(leaf.copy[0] + 200, 5));
  ASSERT_TRUE(device_->flip_bit(leaf.copy[1] + 200, 5));
  ASSERT_NO_FATAL_FAILURE(open());
  for (int i = 0; i < 2; ++i) {  // corruption is not cached as good data
    std::vector<std::byte> out(64 << 10);
    Status st = pool_->read(origin_, 0, out);
    EXPECT_EQ(st.code(), errc::corruption) << st.to_string();
  }
  EXPECT_GE(pool_->stats().copies.unrecoverable, 1u);
  auto ext = pool_->block_status(origin_, 0, 1 << 20);
  EXPECT_FALSE(ext) << "block status answered from a damaged tree";
  close();
  CheckReport r = check();
  EXPECT_FALSE(r.clean());
}

// The offline checker promises not to write (pool_checker.h): a damaged metadata copy is
// a problem to report, not something to repair behind the user's back.
TEST_F(PoolFaultTest, CheckerReportsADamagedMetadataCopyAndWritesNothing) {
  ASSERT_NO_FATAL_FAILURE(write_committed_state());
  const LeafCopies leaf = mapping_root_copies(*pool_);
  close();
  ASSERT_TRUE(device_->flip_bit(leaf.copy[0] + 200, 5));
  const std::uint64_t writes = device_->write_count();
  CheckReport r = check();
  EXPECT_EQ(device_->write_count(), writes) << "check_pool wrote to the pool";
  EXPECT_FALSE(r.clean()) << "a damaged copy of metadata block " << leaf.block
                          << " went unreported";
}

TEST(PoolFault, ForeignDevicesAreNotAPool) {
  std::vector<std::shared_ptr<MemoryDevice>> devices = {
      std::make_shared<MemoryDevice>(device_size, "zeroes"),
      std::make_shared<MemoryDevice>(pattern(device_size, 60), "random"),
      std::make_shared<MemoryDevice>(pattern(40000, 61), "tiny")};
  for (const auto& d : devices) {
    SCOPED_TRACE(d->name());
    auto p = Pool::open({d}, quiet_options());
    ASSERT_FALSE(p);
    EXPECT_TRUE(contains(p.status().message(), "not a snapstore pool")) << p.status().message();
    EXPECT_EQ(d->write_count(), 0u);
    EXPECT_FALSE(check_pool({d}).clean());
    EXPECT_EQ(d->write_count(), 0u);
  }
}

}  // namespace
}  // namespace snapstore
