// The pool's intent log (pool.h invariant 8, intent_log.h): every acknowledged change in a
// record before its acknowledgement (so the death of the process loses none), flushes made
// durable by one device flush instead of a commit, replay after a power cut, and damage to
// the records found, never skipped silently.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

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
  EXPECT_EQ(s.log_flushes, 60u);
  EXPECT_EQ(s.log_appends, 120u) << "a record per change and a marker per flush";
  EXPECT_GT(s.log_bytes, 0u);
  ASSERT_NO_FATAL_FAILURE(power_cut_and_reopen());
  EXPECT_NE(notes().find("intent log: 119 records"), std::string::npos) << notes();
  EXPECT_EQ(pool_->stats().log_replayed, 119u) << "every record but the last marker, which no flush covered";
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

// Writes not followed by a flush are in records no flush covered: a power cut may lose
// them (the crash contract allows it), and nothing else.
TEST_F(PoolLogTest, UnflushedWritesMayBeLostInAPowerCut) {
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 1)));
  ASSERT_NO_FATAL_FAILURE(flush());
  const auto flushed = model_;
  ASSERT_NO_FATAL_FAILURE(write_model(bs, pattern(bs, 2)));
  ASSERT_NO_FATAL_FAILURE(power_cut_and_reopen());
  model_ = flushed;
  expect_model();
}

// Found 8 of issue 11: after the process dies (its writes are in the kernel; no power
// cut), every acknowledged write is there, flushed or not.
TEST_F(PoolLogTest, TheDeathOfTheProcessLosesNoAcknowledgedWrite) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 200; ++i) {
    const std::uint64_t block = rng() % (kOrigin / bs - 8);
    if (i % 7 == 3) {
      ASSERT_NO_FATAL_FAILURE(unmap_model(block * bs, 3 * bs));
    } else {
      ASSERT_NO_FATAL_FAILURE(write_model(block * bs + (i % 3) * 100, pattern(bs * (1 + i % 4), i)));
    }
    if (i == 50) {
      ASSERT_NO_FATAL_FAILURE(flush());
    }
  }
  std::mt19937_64 crash_rng(1);
  auto image = crash_->crash_image(crash_rng, CrashMode::keep_all);  // what the kernel holds
  crash_->cut_power_at(crash_->write_count());
  pool_.reset();  // its close fails: the process is gone
  device_ = image_device(std::move(image));
  CheckReport r = check();
  EXPECT_TRUE(r.clean()) << problems_of(r);
  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_GT(pool_->stats().log_replayed, 0u);
  expect_model();
  close();
  expect_clean();
}

// A record no flush covered whose data did not reach the device (a power cut between the
// data and the record reaching it) is dropped, not replayed into a checksum error.
TEST_F(PoolLogTest, AnUnflushedRecordWhoseDataNeverLandedIsDropped) {
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 1)));
  ASSERT_NO_FATAL_FAILURE(flush());
  const auto first = model_;
  ASSERT_NO_FATAL_FAILURE(write_model(8 * bs, pattern(bs, 2)));
  ASSERT_NO_FATAL_FAILURE(write_model(9 * bs, pattern(bs, 3)));
  std::mt19937_64 rng(1);
  auto image = crash_->crash_image(rng, CrashMode::keep_all);
  crash_->cut_power_at(crash_->write_count());
  pool_.reset();  // its close fails: the power is off
  device_ = image_device(std::move(image));
  auto scan = read_intent_log({device_}, LogLayout::for_superblock(read_superblocks({device_})->newest),
                              read_superblocks({device_})->newest.pool_uuid,
                              read_superblocks({device_})->newest.generation);
  ASSERT_TRUE(scan);
  ASSERT_EQ(scan->records.size(), 4u);  // write, marker, write, write
  EXPECT_EQ(scan->durable, 1u);
  // The third record's data never landed.
  const LogRecord& third = scan->records[2];
  const std::uint64_t data_block = third.entries.at(0).mappings.at(0).data_block;
  const Superblock sb = read_superblocks({device_})->newest;
  std::uint64_t at = 0;
  for (const Chunk& c : sb.chunks)
    if (c.kind == space::data && c.index == data_block * bs / sb.chunk_size)
      at = c.stripes[0].offset + data_block * bs % sb.chunk_size;
  ASSERT_TRUE(device_->write(at, pattern(bs, 77)));
  last_report_ = check();
  EXPECT_TRUE(last_report_.clean()) << problems_of(last_report_);
  EXPECT_NE(notes().find("did not reach the device"), std::string::npos) << notes();
  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_EQ(pool_->stats().log_replayed, 4u);
  model_ = first;
  std::copy_n(pattern(bs, 3).begin(), bs, model_.begin() + 9 * bs);
  expect_model();
}

// When the log is full, a change commits and the log starts again. A trim and a flush take
// 512 bytes of a copy (a record, then a marker in a new sector): this loop fills it once and
// a half.
TEST_F(PoolLogTest, AFullLogFallsBackToACommit) {
  const std::uint64_t rounds = pool_->superblock().log_copy_bytes / 512 * 3 / 2;
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(kOrigin, 1)));
  ASSERT_TRUE(pool_->commit());
  const std::uint64_t commits = pool_->stats().commits;
  std::mt19937_64 rng(3);
  for (std::uint64_t i = 0; i < rounds; ++i) {
    ASSERT_NO_FATAL_FAILURE(unmap_model(rng() % (kOrigin / bs) * bs, bs));
    ASSERT_NO_FATAL_FAILURE(flush());
  }
  PoolStats s = pool_->stats();
  EXPECT_GT(s.commits, commits);
  EXPECT_GT(s.log_flushes, rounds / 2);
  EXPECT_LT(s.log_flushes, rounds);
  ASSERT_NO_FATAL_FAILURE(power_cut_and_reopen());
  expect_model();
}

// A stream of changes without flushes fills the log: the change that finds it full commits,
// and the log starts again after that commit.
TEST_F(PoolLogTest, ChangesWithoutFlushesFillTheLogAndCommit) {
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(kOrigin, 1)));
  ASSERT_TRUE(pool_->commit());
  const PoolStats before = pool_->stats();
  // 15,000 single-block unmaps: a record of 112 bytes each, more than a copy holds.
  for (std::uint64_t i = 0; i < 15000; ++i)
    ASSERT_NO_FATAL_FAILURE(unmap_model((i * 2 + i / 4096) % (kOrigin / bs) * bs, bs));
  const PoolStats after = pool_->stats();
  EXPECT_GT(after.commits, before.commits);
  EXPECT_GT(after.log_appends, before.log_appends + 3000);
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().commits, after.commits) << "the log should take the flush";
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
  EXPECT_EQ(pool_->stats().log_flushes, 2u);
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
    if (k < 3) device_->fail_nth(device_op::write, k);  // copy 0 or copy 1 of the marker
    else device_->fail_nth(device_op::flush, 1);
    EXPECT_FALSE(pool_->flush());
    EXPECT_TRUE(pool_->read_only());
    EXPECT_EQ(pool_->stats().log_flushes, k < 3 ? 2u : 1u) << "the device flush before a failed marker counts";
    pool_.reset();
    device_->clear_faults();
    CheckReport r = check();
    EXPECT_TRUE(r.problems.empty()) << problems_of(r);  // half a marker is what a crash leaves
    ASSERT_NO_FATAL_FAILURE(open());
    const auto now = read_origin(0, model_.size());
    EXPECT_TRUE(now == durable || now == model_);
    close();
  }
}

// A pool formatted before the log existed has no incompat_intent_log bit: a writable open
// commits at once (which sets the bit), and from then on changes go to the log.
TEST_F(PoolLogTest, APoolWithoutTheLogGetsItWhenOpenedWritable) {
  pool_.reset();
  device_ = image_device(crash_->durable_image());
  ASSERT_NO_FATAL_FAILURE(edit_superblock_copies(*device_, [](Superblock& sb) { sb.incompat_features = 0; }));
  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_TRUE(pool_->superblock().incompat_features & incompat_intent_log);
  const std::uint64_t commits = pool_->stats().commits;
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 1)));
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().log_flushes, 1u);
  EXPECT_EQ(pool_->stats().commits, commits);
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
  auto record = encode_log_record(sb.pool_uuid, sb.generation, 0, 0, 0, forged);
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

// Damage to the intent log's records (issue 11, found 3 and deliver 2). The helpers find
// the records of the newest commit on an image.
struct ImageLog {
  Superblock sb;
  LogLayout layout;
  LogScan scan;
};

ImageLog log_of(const std::shared_ptr<MemoryDevice>& device) {
  ImageLog l;
  auto sbs = read_superblocks({device});
  EXPECT_TRUE(sbs) << sbs.status().to_string();
  if (!sbs) return l;
  l.sb = sbs->newest;
  l.layout = LogLayout::for_superblock(l.sb);
  auto scan = read_intent_log({device}, l.layout, l.sb.pool_uuid, l.sb.generation);
  EXPECT_TRUE(scan);
  if (scan) l.scan = *scan;
  return l;
}

void damage_record_copy(MemoryDevice& device, const ImageLog& l, const LogRecord& r, std::uint32_t copy) {
  ASSERT_TRUE(device.flip_bit(l.layout.copy_offset(copy) + r.position + 40, 4));
}

class PoolLogDamageTest : public PoolLogTest {
 protected:
  // Four writes, each followed by a flush: records write, marker, write, marker, ...
  // `states[i]` is the origin after i writes. The image is what the kernel holds (no
  // power cut), so the last marker is there too.
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(PoolLogTest::SetUp());
    spdlog::set_level(spdlog::level::off);
    states_.push_back(model_);
    for (int i = 0; i < 4; ++i) {
      ASSERT_NO_FATAL_FAILURE(write_model(i * 8 * bs, pattern(2 * bs, 30 + i)));
      ASSERT_NO_FATAL_FAILURE(flush());
      states_.push_back(model_);
    }
    std::mt19937_64 rng(1);
    image_ = crash_->crash_image(rng, CrashMode::keep_all);
    crash_->cut_power_at(crash_->write_count());
    pool_.reset();
    restore();
    ImageLog l = log_of(device_);
    ASSERT_EQ(l.scan.records.size(), 8u);
    ASSERT_EQ(l.scan.durable, 7u);
  }
  void TearDown() override { spdlog::set_level(spdlog::level::info); }
  void restore() { device_ = image_device(image_); }

  std::vector<std::vector<std::byte>> states_;
  std::vector<std::byte> image_;
};

// One copy of any record damaged: nothing is lost, check reports it, and the writable open
// (which commits and starts the log afresh) leaves the pool clean.
TEST_F(PoolLogDamageTest, OneDamagedCopyOfAnyRecordLosesNothing) {
  int cases = 0;
  for (std::size_t i = 0; i < 8; ++i)
    for (std::uint32_t copy = 0; copy < 2; ++copy) {
      SCOPED_TRACE("record " + std::to_string(i) + ", copy " + std::to_string(copy));
      restore();
      ImageLog l = log_of(device_);
      ASSERT_NO_FATAL_FAILURE(damage_record_copy(*device_, l, l.scan.records[i], copy));
      CheckReport r = check();
      EXPECT_FALSE(r.clean()) << "a damaged log record copy went unreported";
      if (i < 7) {
        EXPECT_FALSE(r.problems.empty()) << "damage of a flushed record excused as a crash";
      }
      ASSERT_NO_FATAL_FAILURE(open());
      EXPECT_FALSE(pool_->read_only());
      model_ = states_.back();
      expect_model();
      close();
      expect_clean();
      ++cases;
      if (HasFailure()) return;
    }
  EXPECT_EQ(cases, 16);
}

// Found 3: a flushed record damaged on every copy, with intact records after it, is a hole,
// not the end of the log. The pool opens read-only at the last point it can prove (the
// records before the hole), says which record is lost, and writes nothing; check fails.
TEST_F(PoolLogDamageTest, AFlushedRecordLostOnEveryCopyOpensReadOnlyAtTheLastProvablePoint) {
  for (std::size_t i : {std::size_t{0}, std::size_t{2}, std::size_t{4}, std::size_t{6}}) {
    SCOPED_TRACE("record " + std::to_string(i));
    restore();
    ImageLog l = log_of(device_);
    for (std::uint32_t copy = 0; copy < 2; ++copy)
      ASSERT_NO_FATAL_FAILURE(damage_record_copy(*device_, l, l.scan.records[i], copy));
    CheckReport r = check();
    EXPECT_NE(problems_of(r).find("damaged on every copy"), std::string::npos) << problems_of(r);
    const std::uint64_t writes = device_->write_count();
    ASSERT_NO_FATAL_FAILURE(open());
    EXPECT_TRUE(pool_->read_only());
    const std::string reason = pool_->stats().read_only_reason;
    EXPECT_NE(reason.find("intent log record " + std::to_string(i)), std::string::npos) << reason;
    model_ = states_[i / 2];  // the writes before the damaged record's
    expect_model();
    EXPECT_EQ(pool_->write(origin_, 0, pattern(bs, 5), false).code(), errc::read_only);
    close();
    EXPECT_EQ(device_->write_count(), writes) << "the read-only open wrote";
  }
}

}  // namespace
}  // namespace snapstore
