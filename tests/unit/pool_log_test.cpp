// The pool's intent log (pool.h invariant 8, intent_log.h): flushes made durable by a
// log record instead of a commit, replayed after a power cut.
#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "pool_fixture.h"
#include "superblock_support.h"
#include "store/checksum.h"
#include "store/crash_device.h"

namespace snapstore {
namespace {

constexpr std::uint64_t kDevice = 64 << 20, kOrigin = 32 << 20, bs = 4096;

// A pool on a CrashDevice: power can be cut, keeping only what was flushed.
class PoolLogTest : public PoolFixture {
 protected:
  void SetUp() override {
    crash_ = std::make_shared<CrashDevice>(kDevice);
    FormatOptions f;
    f.origin_size = kOrigin;
    ASSERT_TRUE(Pool::format({crash_}, f));
    auto p = Pool::open({crash_}, quiet_options());
    ASSERT_TRUE(p) << p.status().to_string();
    pool_ = std::move(p).value();
    origin_ = pool_->find_volume("origin")->id;
    model_.assign(kOrigin, std::byte{0});
  }
  // Power cut now: only flushed writes survive. The pool is reopened on that image
  // (device_, a MemoryDevice), after checking the image offline.
  void power_cut_and_reopen(PoolOptions options = quiet_options()) {
    std::mt19937_64 rng(1);
    auto image = crash_->crash_image(rng, CrashMode::keep_none);
    crash_->cut_power_at(crash_->write_count());
    pool_.reset();  // its close fails: the power is off
    device_ = image_device(std::move(image));
    last_report_ = check();
    EXPECT_TRUE(last_report_.clean()) << problems_of(last_report_);
    options_ = options;
    ASSERT_NO_FATAL_FAILURE(open());
  }
  std::string notes() const {
    std::string s;
    for (const auto& n : last_report_.notes) s += n + "\n";
    return s;
  }
  void flush() {
    Status st = pool_->flush();
    ASSERT_TRUE(st) << st.to_string();
  }

  std::shared_ptr<CrashDevice> crash_;
  CheckReport last_report_;
};

TEST_F(PoolLogTest, FlushesAreDurableThroughTheLogWithoutACommit) {
  const std::uint64_t commits = pool_->stats().commits;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 60; ++i) {
    const std::uint64_t block = rng() % (kOrigin / bs - 4);
    switch (i % 4) {
      case 0: ASSERT_NO_FATAL_FAILURE(write_model(block * bs, pattern(bs, i))); break;
      case 1: ASSERT_NO_FATAL_FAILURE(write_model(block * bs + 100, pattern(300, i))); break;
      case 2: ASSERT_NO_FATAL_FAILURE(write_model(block * bs, pattern(3 * bs, i))); break;
      case 3: ASSERT_NO_FATAL_FAILURE(unmap_model(block * bs, 2 * bs)); break;
    }
    ASSERT_NO_FATAL_FAILURE(flush());
  }
  PoolStats s = pool_->stats();
  EXPECT_EQ(s.commits, commits) << "flushes committed instead of logging";
  EXPECT_EQ(s.log_appends, 60u);
  EXPECT_GT(s.log_bytes, 0u);
  ASSERT_NO_FATAL_FAILURE(power_cut_and_reopen());
  EXPECT_NE(notes().find("intent log: 60 records"), std::string::npos) << notes();
  EXPECT_EQ(pool_->stats().log_replayed, 60u);
  expect_model();
  // The replay was committed at open: the log is empty, and the pool works on.
  ASSERT_NO_FATAL_FAILURE(write_model(5 * bs, pattern(bs, 99)));
  close();
  CheckReport r = check();
  EXPECT_TRUE(r.clean()) << problems_of(r);
  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_EQ(pool_->stats().log_replayed, 0u);
  expect_model();
}

// Writes not followed by a flush are not in any record: after the cut they are gone
// (the crash contract allows it), and nothing else is.
TEST_F(PoolLogTest, UnflushedWritesAfterTheLastRecordAreNotReplayed) {
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 1)));
  ASSERT_NO_FATAL_FAILURE(flush());
  const auto flushed = model_;
  ASSERT_NO_FATAL_FAILURE(write_model(bs, pattern(bs, 2)));
  ASSERT_NO_FATAL_FAILURE(power_cut_and_reopen());
  model_ = flushed;
  expect_model();
}

// intent_log.h invariant 1: the last record may belong to a flush that did not
// complete. If its data is not on the device, the record is dropped, not replayed into
// a checksum error.
TEST_F(PoolLogTest, LastRecordWhoseDataNeverLandedIsDropped) {
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 1)));
  ASSERT_NO_FATAL_FAILURE(flush());
  const auto first = model_;
  ASSERT_NO_FATAL_FAILURE(write_model(8 * bs, pattern(bs, 2)));
  ASSERT_NO_FATAL_FAILURE(flush());
  // Find the second record's data block and put other bytes there.
  auto records = read_intent_log({crash_}, LogLayout::for_superblock(pool_->superblock()),
                                 pool_->superblock().pool_uuid, pool_->superblock().generation);
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 2u);
  const std::uint64_t data_block = records->back().entries.at(0).mappings.at(0).data_block;
  ASSERT_TRUE(pool_->chunk_map().write(space::data, data_block * bs, pattern(bs, 3)));
  ASSERT_TRUE(crash_->flush());
  ASSERT_NO_FATAL_FAILURE(power_cut_and_reopen());
  EXPECT_NE(notes().find("never completed"), std::string::npos) << notes();
  EXPECT_EQ(pool_->stats().log_replayed, 1u);
  model_ = first;
  expect_model();
}

// The log holds 448 KiB per copy: past that, a flush commits and the log starts again.
TEST_F(PoolLogTest, AFullLogFallsBackToACommit) {
  const std::uint64_t commits = pool_->stats().commits;
  for (int i = 0; i < 120; ++i) {
    ASSERT_NO_FATAL_FAILURE(write_model((i % 24) * (1 << 20), pattern(1 << 20, i)));
    ASSERT_NO_FATAL_FAILURE(flush());
  }
  PoolStats s = pool_->stats();
  EXPECT_GT(s.commits, commits);
  EXPECT_GT(s.log_appends, 60u);
  EXPECT_LT(s.log_appends, 120u);
  ASSERT_NO_FATAL_FAILURE(power_cut_and_reopen());
  expect_model();
}

// Writes without flushes that would need more than one record: the pending entries are
// dropped as they pass the log's size, and the flush commits.
TEST_F(PoolLogTest, MoreUnflushedChangesThanTheLogHoldsMakeTheFlushACommit) {
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(kOrigin, 1)));
  ASSERT_TRUE(pool_->commit());
  const PoolStats before = pool_->stats();
  // 15,000 single-block unmaps: 32 bytes each, more than a 448 KiB copy holds, and no
  // space needed (so nothing forces a commit on the way).
  for (std::uint64_t i = 0; i < 15000; ++i)
    ASSERT_NO_FATAL_FAILURE(unmap_model((i * 2 + i / 4096) % (kOrigin / bs) * bs, bs));
  EXPECT_EQ(pool_->stats().commits, before.commits);
  ASSERT_NO_FATAL_FAILURE(flush());
  const PoolStats after = pool_->stats();
  EXPECT_EQ(after.log_appends, before.log_appends);
  EXPECT_EQ(after.commits, before.commits + 1);
  // And the log works again after that commit.
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 5)));
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().log_appends, before.log_appends + 1);
  ASSERT_NO_FATAL_FAILURE(power_cut_and_reopen());
  expect_model();
}

// A volume change is not a log entry: a flush after one commits, so that after a cut the
// writes around it come back in the order they were made.
TEST_F(PoolLogTest, AVolumeChangeMakesTheNextFlushACommit) {
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 1)));
  ASSERT_NO_FATAL_FAILURE(flush());
  const auto at_snapshot = model_;
  auto snap = pool_->create_snapshot("origin", "s1", false);
  ASSERT_TRUE(snap) << snap.status().to_string();
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 2)));
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().log_appends, 2u);
  // Renaming the snapshot does not commit until the flush does: the flush must commit.
  const std::uint64_t commits = pool_->stats().commits;
  ASSERT_TRUE(pool_->rename_volume("s1", "s2"));
  EXPECT_GT(pool_->stats().commits, commits);
  ASSERT_NO_FATAL_FAILURE(write_model(bs, pattern(bs, 3)));
  ASSERT_NO_FATAL_FAILURE(flush());
  ASSERT_NO_FATAL_FAILURE(power_cut_and_reopen());
  expect_model();
  auto s2 = pool_->find_volume("s2");
  ASSERT_TRUE(s2) << s2.status().to_string();
  std::vector<std::byte> got(at_snapshot.size());
  ASSERT_TRUE(pool_->read(s2->id, 0, got));
  EXPECT_TRUE(got == at_snapshot);
}

TEST_F(PoolLogTest, ReadOnlyOpenReplaysInMemoryAndWritesNothing) {
  ASSERT_NO_FATAL_FAILURE(write_model(3 * bs, pattern(2 * bs, 1)));
  ASSERT_NO_FATAL_FAILURE(flush());
  std::mt19937_64 rng(1);
  auto image = image_device(crash_->crash_image(rng, CrashMode::keep_none));
  PoolOptions ro = quiet_options();
  ro.read_only = true;
  auto p = Pool::open({image}, ro);
  ASSERT_TRUE(p) << p.status().to_string();
  std::vector<std::byte> got(model_.size());
  ASSERT_TRUE((*p)->read(origin_, 0, got));
  EXPECT_TRUE(got == model_);
  EXPECT_EQ((*p)->stats().log_replayed, 1u);
  EXPECT_TRUE((*p)->close());
  EXPECT_EQ(image->write_count(), 0u);
}

// A failed log write or flush is a failed commit: read-only for good; after a restart the
// pool holds the last durable state, or the failed flush's writes too, never a mix.
TEST_F(PoolLogTest, AFailedAppendTurnsThePoolReadOnly) {
  for (int k = 1; k <= 3; ++k) {
    SCOPED_TRACE("fault " + std::to_string(k));
    format_and_open(kDevice, kOrigin);
    ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 1)));
    ASSERT_NO_FATAL_FAILURE(flush());
    const auto durable = model_;
    ASSERT_NO_FATAL_FAILURE(write_model(4 * bs, pattern(bs, 2)));
    if (k < 3) device_->fail_nth(device_op::write, k);  // copy 0 or copy 1 of the record
    else device_->fail_nth(device_op::flush, 1);
    EXPECT_FALSE(pool_->flush());
    EXPECT_TRUE(pool_->read_only());
    EXPECT_EQ(pool_->stats().log_appends, 1u);
    pool_.reset();
    device_->clear_faults();
    expect_clean();
    ASSERT_NO_FATAL_FAILURE(open());
    const auto now = read_origin(0, model_.size());
    EXPECT_TRUE(now == durable || now == model_);
    close();
  }
}

// A pool formatted before the log existed has no incompat_intent_log bit: its first
// flush commits (which sets the bit), later ones use the log.
TEST_F(PoolLogTest, APoolWithoutTheLogGetsItAtItsFirstCommit) {
  pool_.reset();
  device_ = image_device(crash_->durable_image());
  ASSERT_NO_FATAL_FAILURE(edit_superblock_copies(*device_, [](Superblock& sb) { sb.incompat_features = 0; }));
  ASSERT_NO_FATAL_FAILURE(open());
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 1)));
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().log_appends, 0u);
  EXPECT_TRUE(pool_->superblock().incompat_features & incompat_intent_log);
  ASSERT_NO_FATAL_FAILURE(write_model(bs, pattern(bs, 2)));
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().log_appends, 1u);
  close();
  expect_clean();
}

// A record naming a data block the pool already uses cannot come from this pool's
// writes (intent_log.h, invariant 4): the checker reports it and open refuses, touching
// nothing.
TEST_F(PoolLogTest, ARecordTakingABlockInUseIsReportedAndRefused) {
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 1)));
  ASSERT_TRUE(pool_->commit());
  // The first data block, in use, with the checksum of what it holds (so the record is
  // not simply dropped as an incomplete last one).
  std::vector<std::uint64_t> blocks = {0}, sums = {data_checksum(pattern(bs, 1))};
  LogBuffer forged;
  forged.add_map(origin_, 9, blocks, sums);
  const Superblock& sb = pool_->superblock();
  auto record = encode_log_record(sb.pool_uuid, sb.generation, 0, 0, forged);
  const LogLayout layout = LogLayout::for_superblock(sb);
  pool_.reset();
  device_ = image_device(crash_->durable_image());
  ASSERT_TRUE(write_log_record({device_}, layout, 0, record));
  CheckReport r = check();
  EXPECT_FALSE(r.clean());
  EXPECT_NE(problems_of(r).find("in use at the commit the log follows"), std::string::npos) << problems_of(r);
  const auto before = device_->contents();
  const std::uint64_t writes = device_->write_count();
  auto p = Pool::open({device_}, quiet_options());
  ASSERT_FALSE(p);
  EXPECT_EQ(p.status().code(), errc::corruption);
  EXPECT_NE(p.status().message().find("intent log"), std::string::npos) << p.status().message();
  EXPECT_EQ(device_->write_count(), writes);
  EXPECT_TRUE(device_->contents() == before);
}

}  // namespace
}  // namespace snapstore
