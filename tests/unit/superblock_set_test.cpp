// SuperblockSet on its own (superblock_set.h): commits written by SuperblockWriter on one
// or two devices, then every copy damaged in every way, and power cut at every write of a
// commit. The rules under test: one damaged copy never changes the commit a reader picks
// and is always reported; a crash is never taken for damage of a newer commit; losing
// every copy of the newest commit is said loudly.
#include <gtest/gtest.h>

#include <random>

#include "store/crash_device.h"
#include "store/memory_device.h"
#include "store/superblock_set.h"
#include "superblock_support.h"

namespace snapstore {
namespace {

constexpr std::uint64_t device_size = 8 << 20;
constexpr std::uint64_t reserved = 2 << 20;

Superblock commit_superblock(std::size_t devices, std::uint64_t generation) {
  Superblock sb;
  sb.generation = generation;
  sb.pool_uuid[0] = 7;
  for (std::size_t d = 0; d < devices; ++d) sb.devices.push_back({Uuid{static_cast<std::uint8_t>(d + 1)}, device_size});
  sb.chunk_size = 1 << 20;
  sb.reserved_bytes = reserved;
  sb.log_copies = 1;
  sb.log_copy_bytes = 1 << 20;
  sb.next_volume_id = generation + 1;  // something that changes with every commit
  sb.volume_table = {generation * 3, generation * 5, generation};
  return sb;
}

std::vector<BlockDevicePtr> as_devices(const std::vector<std::shared_ptr<MemoryDevice>>& ds) {
  return {ds.begin(), ds.end()};
}

// Devices holding commits 1..last, written as a pool writes them.
std::vector<std::shared_ptr<MemoryDevice>> committed(std::size_t devices, std::uint64_t last) {
  std::vector<std::shared_ptr<MemoryDevice>> ds;
  for (std::size_t d = 0; d < devices; ++d) ds.push_back(std::make_shared<MemoryDevice>(device_size));
  SuperblockWriter writer(as_devices(ds));
  for (std::uint64_t g = 1; g <= last; ++g) EXPECT_TRUE(writer.write(commit_superblock(devices, g)));
  return ds;
}

SuperblockScan scan_of(const std::vector<std::shared_ptr<MemoryDevice>>& ds) {
  auto scan = read_superblocks(as_devices(ds));
  EXPECT_TRUE(scan) << scan.status().to_string();
  return scan ? *scan : SuperblockScan{};
}

TEST(SuperblockSet, EveryCommitLandsInBothRingsOfItsPair) {
  auto ds = committed(1, 6);
  EXPECT_EQ(slot_generation(*ds[0], {ring::a, 0}), 6u);
  EXPECT_EQ(slot_generation(*ds[0], {ring::b, 0}), 6u);
  EXPECT_EQ(slot_generation(*ds[0], {ring::a, 1}), 5u);
  EXPECT_EQ(slot_generation(*ds[0], {ring::b, 1}), 5u);
  SuperblockScan scan = scan_of(ds);
  EXPECT_EQ(scan.newest.generation, 6u);
  EXPECT_TRUE(scan.problems.empty());
  EXPECT_TRUE(scan.newer_commit_lost.empty());
  EXPECT_FALSE(scan.needs_rewrite);
  EXPECT_EQ(scan.copies.size(), 4u);
}

TEST(SuperblockSet, AFreshPoolHasOnePairEmpty) {
  auto ds = committed(1, 1);
  SuperblockScan scan = scan_of(ds);
  EXPECT_EQ(scan.newest.generation, 1u);
  EXPECT_TRUE(scan.problems.empty());
  EXPECT_TRUE(scan.newer_commit_lost.empty());
}

// One damaged copy, whichever and however: the newest commit is still picked, the copy is
// reported, and nothing is loud.
TEST(SuperblockSet, OneDamagedCopyNeverChangesTheCommitAndIsAlwaysReported) {
  std::vector<std::vector<std::byte>> older(4);
  {
    auto early = committed(1, 3);  // what each slot held two commits before the end
    for (SlotPlace s : all_slots()) older[s.number()] = slot_bytes(*early[0], s);
  }
  int cases = 0;
  for (SlotPlace s : all_slots())
    for (damage k : all_damage()) {
      SCOPED_TRACE(std::string("slot ") + std::to_string(s.number()) + ", " + damage_name(k));
      auto ds = committed(1, 5);
      ASSERT_NO_FATAL_FAILURE(damage_slot(*ds[0], s, k, older[s.number()]));
      SuperblockScan scan = scan_of(ds);
      EXPECT_EQ(scan.newest.generation, 5u);
      ASSERT_EQ(scan.problems.size(), 1u);
      EXPECT_EQ(scan.problems[0].copy.where, s.where);
      EXPECT_EQ(scan.problems[0].copy.parity, s.parity);
      EXPECT_TRUE(scan.newer_commit_lost.empty()) << scan.newer_commit_lost;
      EXPECT_TRUE(scan.needs_rewrite);
      // Damage of a copy a crash cannot have touched is never excused as one.
      const bool newest_pair = s.parity == 1;
      if (newest_pair == (s.where == ring::a)) {
        EXPECT_FALSE(scan.problems[0].maybe_torn) << scan.problems[0].what;
      }
      ++cases;
    }
  EXPECT_EQ(cases, 16);
}

// Both copies of the newest commit lost: the reader falls back to the commit before, but
// says so; a newer commit's copies that a crash could have torn are not enough for that.
// (Both copies replaced by a matching older pair cannot be told from that older pool, so
// older_copy is not among the damage here.)
TEST(SuperblockSet, EveryCopyOfTheNewestCommitLostIsLoud) {
  for (damage k : {damage::flip_used, damage::flip_tail, damage::zero}) {
    SCOPED_TRACE(damage_name(k));
    auto early = committed(1, 3);
    auto ds = committed(1, 5);
    for (SlotPlace s : {SlotPlace{ring::a, 1}, SlotPlace{ring::b, 1}})
      ASSERT_NO_FATAL_FAILURE(damage_slot(*ds[0], s, k, slot_bytes(*early[0], s)));
    SuperblockScan scan = scan_of(ds);
    EXPECT_EQ(scan.newest.generation, 4u);
    EXPECT_FALSE(scan.newer_commit_lost.empty());
  }
}

TEST(SuperblockSet, ATornRingACopyOfTheNextCommitIsNotLoud) {
  auto ds = committed(1, 5);
  ASSERT_NO_FATAL_FAILURE(damage_slot(*ds[0], {ring::a, 0}, damage::flip_used, {}));
  SuperblockScan scan = scan_of(ds);
  EXPECT_EQ(scan.newest.generation, 5u);
  ASSERT_EQ(scan.problems.size(), 1u);
  EXPECT_TRUE(scan.problems[0].maybe_torn);
  EXPECT_TRUE(scan.newer_commit_lost.empty());
}

TEST(SuperblockSet, EveryCopyDamagedIsCorruptionAndZeroesAreNotAPool) {
  auto ds = committed(1, 4);
  for (SlotPlace s : all_slots()) ASSERT_NO_FATAL_FAILURE(damage_slot(*ds[0], s, damage::flip_used, {}));
  auto scan = read_superblocks(as_devices(ds));
  ASSERT_FALSE(scan);
  EXPECT_EQ(scan.status().code(), errc::corruption);
  auto blank = std::make_shared<MemoryDevice>(device_size);
  auto none = read_superblocks({blank});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.status().code(), errc::invalid_argument);
}

// Ring A lost on every device (the first 128 KiB overwritten): ring B is found without it.
TEST(SuperblockSet, RingBIsFoundWhenRingAIsGone) {
  auto ds = committed(2, 7);
  for (auto& d : ds) ASSERT_TRUE(d->write(0, std::vector<std::byte>(superblock_ring_bytes)));
  SuperblockScan scan = scan_of(ds);
  EXPECT_EQ(scan.newest.generation, 7u);
  EXPECT_EQ(scan.newest.reserved_bytes, reserved);
  EXPECT_EQ(scan.problems.size(), 4u);
}

// A pool image inside the pool's data (a VM disk holding another pool) is never taken for
// ring B, even when every copy of this pool is gone.
TEST(SuperblockSet, AnotherPoolsCopyIsNotTakenForRingB) {
  auto ds = committed(1, 3);
  // The other pool's ring B copy, where ring B of a larger reserved area would be.
  Superblock foreign = commit_superblock(1, 9);
  foreign.pool_uuid[0] = 8;
  foreign.reserved_bytes = 4 << 20;
  foreign.devices[0].size = foreign.device_size = 1ull << 30;  // the device it came from
  foreign.slot = 2;
  auto encoded = encode_superblock(foreign);
  ASSERT_TRUE(encoded);
  ASSERT_TRUE(ds[0]->write(slot_offset(ring::b, 0, 4 << 20), *encoded));
  // This pool's copies still there: the foreign one is simply never looked at.
  EXPECT_EQ(scan_of(ds).newest.generation, 3u);
  // Every copy of this pool gone: still not the other pool.
  ASSERT_TRUE(ds[0]->write(0, std::vector<std::byte>(superblock_ring_bytes)));
  ASSERT_TRUE(ds[0]->write(reserved - superblock_ring_bytes, std::vector<std::byte>(superblock_ring_bytes)));
  auto scan = read_superblocks(as_devices(ds));
  EXPECT_FALSE(scan) << "opened the pool stored inside this one";
}

// On two devices, the first commit's copies on device 1 may be damaged without losing it.
TEST(SuperblockSet, TwoDevicesSurviveOneDamagedCopyEach) {
  auto ds = committed(2, 6);
  ASSERT_NO_FATAL_FAILURE(damage_slot(*ds[0], {ring::a, 0}, damage::zero, {}));
  ASSERT_NO_FATAL_FAILURE(damage_slot(*ds[1], {ring::b, 0}, damage::flip_tail, {}));
  SuperblockScan scan = scan_of(ds);
  EXPECT_EQ(scan.newest.generation, 6u);
  EXPECT_EQ(scan.problems.size(), 2u);
  EXPECT_TRUE(scan.newer_commit_lost.empty());
}

// Every copy is written whole at every commit of its pair: damage in an unused tail
// lasts until then, never for good.
TEST(SuperblockSet, EveryCommitWritesItsCopiesWhole) {
  auto ds = committed(1, 4);
  SuperblockWriter writer(as_devices(ds));
  for (SlotPlace s : all_slots()) ASSERT_NO_FATAL_FAILURE(damage_slot(*ds[0], s, damage::flip_tail, {}));
  const std::uint64_t writes = ds[0]->write_count();
  ASSERT_TRUE(writer.write(commit_superblock(1, 5)));
  EXPECT_EQ(ds[0]->write_count() - writes, 2u) << "one write per copy";
  EXPECT_EQ(scan_of(ds).problems.size(), 2u);  // the other pair is still damaged
  ASSERT_TRUE(writer.write(commit_superblock(1, 6)));
  EXPECT_TRUE(scan_of(ds).problems.empty());
}

// Power cut at every write of a commit, every crash image: the reader opens at the commit
// before or the one being written, never calls a torn copy damage, never cries a lost
// newer commit.
TEST(SuperblockSet, APowerCutAnywhereInACommitIsNeverTakenForDamage) {
  for (std::size_t devices : {1, 2}) {
    std::vector<std::shared_ptr<MemoryDevice>> base = committed(devices, 6);
    std::uint64_t writes_per_commit = 0;
    {
      std::vector<std::shared_ptr<CrashDevice>> cs;
      for (auto& d : base) cs.push_back(std::make_shared<CrashDevice>(d->contents()));
      SuperblockWriter writer({cs.begin(), cs.end()});
      ASSERT_TRUE(writer.write(commit_superblock(devices, 7)));
      for (auto& c : cs) writes_per_commit += c->write_count();
    }
    std::mt19937_64 rng(devices);
    int images = 0;
    for (std::size_t victim = 0; victim < devices; ++victim)
      for (std::uint64_t k = 0; k <= writes_per_commit; ++k)
        for (CrashMode mode : {CrashMode::keep_none, CrashMode::keep_all, CrashMode::random_subset_torn}) {
          SCOPED_TRACE("devices " + std::to_string(devices) + ", cut on device " + std::to_string(victim) +
                       " at write " + std::to_string(k));
          std::vector<std::shared_ptr<CrashDevice>> cs;
          for (auto& d : base) cs.push_back(std::make_shared<CrashDevice>(d->contents()));
          cs[victim]->cut_power_at(k);
          SuperblockWriter writer({cs.begin(), cs.end()});
          (void)writer.write(commit_superblock(devices, 7));
          std::vector<std::shared_ptr<MemoryDevice>> after;
          for (auto& c : cs) after.push_back(std::make_shared<MemoryDevice>(c->crash_image(rng, mode)));
          SuperblockScan scan = scan_of(after);
          EXPECT_TRUE(scan.newest.generation == 6 || scan.newest.generation == 7) << scan.newest.generation;
          EXPECT_TRUE(scan.newer_commit_lost.empty()) << scan.newer_commit_lost;
          for (const CopyProblem& p : scan.problems) EXPECT_TRUE(p.maybe_torn) << p.what;
          ++images;
        }
    EXPECT_GE(images, 9);
  }
}

}  // namespace
}  // namespace snapstore
