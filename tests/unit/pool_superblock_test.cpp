// Superblock copies at the pool level: after a run of commits with a model of what was
// acknowledged (origin bytes, a snapshot), every copy of every slot is damaged in every
// way; the pool must open at the newest acknowledged commit with the damage reported and
// repaired, or, when every copy of that commit is gone, say so and refuse to write.
// Also: damage while the daemon runs, the format 1 upgrade, and the refusals (newer
// format, unknown features, truncated devices).
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "pool_fixture.h"
#include "superblock_support.h"

namespace snapstore {
namespace {

constexpr std::uint64_t device_size = 16 << 20;
constexpr std::uint64_t origin_size = 4 << 20;
constexpr std::uint32_t bs = 4096;

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

class PoolSuperblockTest : public PoolFixture {
 protected:
  // Five commits of writes after the format, the third with a snapshot; remembers what
  // each slot held after every commit (for "replaced with an older copy").
  void SetUp() override {
    spdlog::set_level(spdlog::level::off);
    ASSERT_NO_FATAL_FAILURE(format_and_open(device_size, origin_size, quiet_options(), "damaged"));
    for (int i = 0; i < 5; ++i) {
      ASSERT_NO_FATAL_FAILURE(write_model(i * 8 * bs, pattern(8 * bs, 40 + i)));
      if (i == 2) {
        ASSERT_TRUE(pool_->create_snapshot("origin", "snap", false));
        snapshot_model_ = model_;
      }
      ASSERT_TRUE(pool_->commit());
      for (SlotPlace s : all_slots()) history_[s.number()].push_back(slot_bytes(*device_, s));
    }
    newest_ = pool_->stats().generation;
    close();
    clean_image_ = device_->contents();
  }
  void TearDown() override {
    pool_.reset();
    spdlog::set_level(spdlog::level::info);
  }
  void restore() {
    pool_.reset();
    device_ = std::make_shared<MemoryDevice>(clean_image_, "damaged");
  }
  // What the slot held at an earlier commit than it holds now.
  const std::vector<std::byte>& older_of(SlotPlace s) {
    const auto& h = history_[s.number()];
    const std::uint64_t now = slot_generation(*device_, s);
    for (const auto& bytes : h) {
      auto sb = decode_superblock(bytes, s.number());
      if (sb && sb->generation < now) return bytes;
    }
    ADD_FAILURE() << "no older copy of slot " << s.number();
    return h.front();
  }
  // The pool holds everything that was acknowledged (the generation may be higher: a
  // writable open that repairs copies commits).
  void expect_acknowledged() {
    EXPECT_GE(pool_->stats().generation, newest_);
    expect_model();
    auto snap = pool_->find_volume("snap");
    ASSERT_TRUE(snap) << "the acknowledged snapshot is gone";
    std::vector<std::byte> bytes(origin_size);
    ASSERT_TRUE(pool_->read(snap->id, 0, bytes));
    EXPECT_TRUE(bytes == snapshot_model_) << "the snapshot holds other contents";
  }
  SlotPlace newest_slot(ring r) const { return {r, static_cast<std::uint32_t>(newest_ % 2)}; }

  std::uint64_t newest_ = 0;
  std::vector<std::byte> clean_image_, snapshot_model_;
  std::vector<std::vector<std::vector<std::byte>>> history_ =
      std::vector<std::vector<std::vector<std::byte>>>(4);
};

// Found 1 and 2 of issue 11: one bad copy, anywhere in it, never rolls the pool back; it
// is reported by check, warned about at open, and rewritten whole.
TEST_F(PoolSuperblockTest, EveryDamageOfOneCopyOpensAtTheNewestCommitAndIsRepaired) {
  int cases = 0;
  for (SlotPlace s : all_slots())
    for (damage k : all_damage()) {
      SCOPED_TRACE(std::string("slot ") + std::to_string(s.number()) + ", " + damage_name(k));
      restore();
      ASSERT_NO_FATAL_FAILURE(damage_slot(*device_, s, k, older_of(s)));
      CheckReport before = check();
      EXPECT_FALSE(before.clean()) << "check passed a pool with a damaged superblock copy";
      EXPECT_EQ(before.generation, newest_);
      ASSERT_NO_FATAL_FAILURE(open());
      EXPECT_FALSE(pool_->read_only());
      EXPECT_FALSE(pool_->stats().damage.empty()) << "the open did not report the damage";
      ASSERT_NO_FATAL_FAILURE(expect_acknowledged());
      close();
      expect_clean();  // the writable open rewrote every copy
      ASSERT_NO_FATAL_FAILURE(open());
      EXPECT_TRUE(pool_->stats().damage.empty());
      expect_model();
      close();
      ++cases;
      if (HasFailure()) return;
    }
  EXPECT_EQ(cases, 16);
  RecordProperty("damage_cases", cases);
}

// Both copies of the newest commit lost (two bad copies, no crash explains them): the pool
// opens at the commit before, read-only, with the reason in the log, status and check.
TEST_F(PoolSuperblockTest, EveryCopyOfTheNewestCommitLostOpensReadOnlyAndLoud) {
  for (damage k : {damage::flip_used, damage::flip_tail, damage::zero}) {
    SCOPED_TRACE(damage_name(k));
    restore();
    for (ring r : {ring::a, ring::b}) ASSERT_NO_FATAL_FAILURE(damage_slot(*device_, newest_slot(r), k, {}));
    CheckReport r = check();
    EXPECT_FALSE(r.problems.empty()) << "check passed a pool that lost its newest commit";
    EXPECT_TRUE(contains(problems_of(r), "may have existed")) << problems_of(r);
    const std::uint64_t writes = device_->write_count();
    ASSERT_NO_FATAL_FAILURE(open());
    EXPECT_TRUE(pool_->read_only());
    EXPECT_EQ(pool_->stats().generation, newest_ - 1);
    EXPECT_TRUE(contains(pool_->stats().read_only_reason, "may have existed")) << pool_->stats().read_only_reason;
    Status st = pool_->write(origin_, 0, pattern(bs, 9), false);
    EXPECT_EQ(st.code(), errc::read_only);
    EXPECT_TRUE(contains(st.message(), "repair")) << st.message();
    close();
    EXPECT_EQ(device_->write_count(), writes) << "a loud open wrote to the pool";
  }
}

// A crash in the middle of the next commit tears its ring A copy: no loss, no alarm.
TEST_F(PoolSuperblockTest, ATornCopyOfTheNextCommitOpensQuietlyAtTheNewest) {
  restore();
  const SlotPlace next{ring::a, static_cast<std::uint32_t>((newest_ + 1) % 2)};
  ASSERT_NO_FATAL_FAILURE(damage_slot(*device_, next, damage::flip_used, {}));
  CheckReport r = check();
  EXPECT_TRUE(r.problems.empty()) << problems_of(r);
  EXPECT_EQ(r.crash_explainable.size(), 1u);
  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_TRUE(pool_->stats().read_only_reason.empty());
  ASSERT_NO_FATAL_FAILURE(expect_acknowledged());
  close();
  expect_clean();
}

// Found 2: damage in a copy while the daemon runs (in its unused tail, which a writer
// that rewrote only changed pages would never touch again): every copy is healed by the
// next commit of its pair, so two commits later the pool is clean and nothing was lost.
TEST_F(PoolSuperblockTest, DamageWhileRunningIsHealedByTheNextCommits) {
  restore();
  ASSERT_NO_FATAL_FAILURE(open());
  for (SlotPlace s : all_slots()) ASSERT_NO_FATAL_FAILURE(damage_slot(*device_, s, damage::flip_tail, {}));
  for (int i = 0; i < 2; ++i) {
    ASSERT_NO_FATAL_FAILURE(write_model(40 * bs + i * bs, pattern(bs, 70 + i)));
    ASSERT_TRUE(pool_->commit());
  }
  close();
  expect_clean();
  ASSERT_NO_FATAL_FAILURE(open());
  expect_model();
  close();
}

// One copy damaged while running, the pool stopped before its pair is written again: the
// next open finds it and rewrites it.
TEST_F(PoolSuperblockTest, DamageOfOneCopyWhileRunningIsRepairedAtTheNextOpen) {
  restore();
  ASSERT_NO_FATAL_FAILURE(open());
  ASSERT_NO_FATAL_FAILURE(write_model(40 * bs, pattern(bs, 70)));
  ASSERT_TRUE(pool_->commit());
  const std::uint64_t generation = pool_->stats().generation;
  ASSERT_NO_FATAL_FAILURE(damage_slot(*device_, {ring::a, static_cast<std::uint32_t>(generation % 2)},
                                      damage::flip_tail, {}));
  close();  // nothing changed since the commit: no commit at close
  EXPECT_FALSE(check().clean()) << "a damaged copy of the newest commit went unreported";
  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_EQ(pool_->stats().generation, generation + 2);  // found, and rewritten by two commits
  expect_model();
  close();
  expect_clean();
}

// A format 1 pool (ring A only, the log in [128 KiB, 1 MiB)) opens as it is read-only and
// is upgraded by a writable open, losing nothing.
TEST_F(PoolSuperblockTest, AFormatOnePoolIsReadAndUpgraded) {
  restore();
  ASSERT_EQ(reserved_bytes_of(*device_), device_reserved_bytes);  // a small pool: same area
  ASSERT_NO_FATAL_FAILURE(edit_superblock_copies(*device_, [](Superblock& sb) {
    if (sb.slot >= 2) return;
    sb.version = 1;
  }));
  for (std::uint32_t parity = 0; parity < 2; ++parity)  // format 1 had no ring B
    ASSERT_TRUE(device_->write(slot_offset(ring::b, parity, device_reserved_bytes),
                               std::vector<std::byte>(superblock_size)));
  EXPECT_TRUE(check().clean()) << problems_of(check());
  PoolOptions ro = quiet_options();
  ro.read_only = true;
  const std::uint64_t writes = device_->write_count();
  ASSERT_NO_FATAL_FAILURE(open(ro));
  EXPECT_EQ(pool_->superblock().version, 1u);
  ASSERT_NO_FATAL_FAILURE(expect_acknowledged());
  close();
  EXPECT_EQ(device_->write_count(), writes);
  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_EQ(pool_->superblock().version, format_version);
  expect_model();
  close();
  expect_clean();
  for (SlotPlace s : all_slots()) {
    auto sb = decode_superblock(slot_bytes(*device_, s), s.number());
    ASSERT_TRUE(sb) << "slot " << s.number() << ": " << sb.status().to_string();
    EXPECT_EQ(sb->version, format_version);
  }
}

// The end of the last chunk stripe on the device.
std::uint64_t stripes_end(MemoryDevice& d) {
  auto scan = read_superblocks({std::shared_ptr<MemoryDevice>(&d, [](MemoryDevice*) {})});
  EXPECT_TRUE(scan);
  std::uint64_t end = 0;
  for (const Chunk& c : scan->newest.chunks)
    for (const Stripe& s : c.stripes) end = std::max(end, s.offset + scan->newest.chunk_size);
  return end;
}

class PoolSuperblockRefusalTest : public PoolSuperblockTest {
 protected:
  void expect_refused(const std::string& words, errc code) {
    const std::uint64_t writes = device_->write_count();
    auto p = Pool::open({device_}, quiet_options());
    ASSERT_FALSE(p) << "opened a pool it should refuse";
    EXPECT_EQ(p.status().code(), code) << p.status().to_string();
    EXPECT_TRUE(contains(p.status().message(), words)) << p.status().message();
    EXPECT_EQ(device_->write_count(), writes) << "a refused open wrote to the device";
  }
};

// Cut inside the last stripe: refused by open, reported by the checker.
TEST_F(PoolSuperblockRefusalTest, DeviceTruncatedInsideAChunkIsRefusedWithoutWriting) {
  restore();
  auto image = device_->contents();
  const std::uint64_t end = stripes_end(*device_);
  ASSERT_GT(end, 2 * device_reserved_bytes);
  image.resize(end - 3 * bs);
  device_ = std::make_shared<MemoryDevice>(std::move(image), "truncated");
  ASSERT_NO_FATAL_FAILURE(expect_refused("truncated", errc::corruption));
  EXPECT_FALSE(check().clean());
}

// Cut after the last stripe: every chunk is still there, but the device is not the size
// the pool recorded for it; the checker agrees with open.
TEST_F(PoolSuperblockRefusalTest, DeviceTruncatedAfterItsChunksIsRefusedWithoutWriting) {
  restore();
  auto image = device_->contents();
  ASSERT_LT(stripes_end(*device_), device_size / 2);
  image.resize(device_size / 2);
  device_ = std::make_shared<MemoryDevice>(std::move(image), "truncated");
  ASSERT_NO_FATAL_FAILURE(expect_refused("truncated", errc::corruption));
  EXPECT_FALSE(check().clean()) << "check_pool passes a device that Pool::open refuses as truncated";
}

TEST_F(PoolSuperblockRefusalTest, NewerFormatVersionIsRefusedByName) {
  restore();
  ASSERT_NO_FATAL_FAILURE(edit_superblock_copies(*device_, [](Superblock& sb) { sb.version = 7; }));
  ASSERT_NO_FATAL_FAILURE(expect_refused("version 7", errc::not_supported));
}

TEST_F(PoolSuperblockRefusalTest, UnknownIncompatFeatureIsRefused) {
  restore();
  ASSERT_NO_FATAL_FAILURE(
      edit_superblock_copies(*device_, [](Superblock& sb) { sb.incompat_features = 1ull << 17; }));
  ASSERT_NO_FATAL_FAILURE(expect_refused("features", errc::not_supported));
}

// Only one copy of the newest commit carries the unknown bit: still refused, not opened
// from the other copy or rolled back.
TEST_F(PoolSuperblockRefusalTest, UnknownIncompatFeatureInOneCopyIsRefused) {
  restore();
  ASSERT_NO_FATAL_FAILURE(edit_superblock_copies(*device_, [&](Superblock& sb) {
    if (sb.slot == slot_number(ring::b, newest_ % 2)) sb.incompat_features = 1ull << 63;
  }));
  ASSERT_NO_FATAL_FAILURE(expect_refused("features", errc::not_supported));
}

TEST_F(PoolSuperblockRefusalTest, UnknownReadOnlyCompatFeatureOpensReadOnly) {
  restore();
  ASSERT_NO_FATAL_FAILURE(
      edit_superblock_copies(*device_, [](Superblock& sb) { sb.ro_compat_features = 1ull << 5; }));
  const std::uint64_t writes = device_->write_count();
  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_TRUE(pool_->read_only());
  expect_model();
  EXPECT_EQ(pool_->write(origin_, 0, pattern(bs, 53), false).code(), errc::read_only);
  EXPECT_EQ(pool_->unmap(origin_, 0, bs, false).code(), errc::read_only);
  close();
  EXPECT_EQ(device_->write_count(), writes);
}

}  // namespace
}  // namespace snapstore
