// Snapshot and volume management on the pool, on in-memory devices: point-in-time
// contents, writable snapshots of snapshots, delete/rename/rollback/resize, usage
// accounting, diffs, and reclaim leaving no leaked block (the checker after each test).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>
#include <random>

#include "store/memory_device.h"
#include "volume/pool.h"
#include "volume/pool_checker.h"
#include "pool_fixture.h"

namespace snapstore {
namespace {

constexpr std::uint64_t kBlock = 4096;

PoolOptions snapshot_options() {
  PoolOptions o = quiet_options();
  o.background_reclaim = false;  // reclaim runs when a test says so
  o.cache_bytes = 8 << 20;
  return o;
}

class SnapshotTest : public PoolFixture {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(format_and_open(128 << 20, 16 << 20, snapshot_options())); }
  void TearDown() override {
    close();
    expect_clean();
  }
  std::uint64_t id(const std::string& name) {
    auto v = pool_->find_volume(name);
    EXPECT_TRUE(v) << name << ": " << v.status().to_string();
    return v ? v->id : 0;
  }
  void write(const std::string& volume, std::uint64_t offset, const std::vector<std::byte>& data) {
    Status st = pool_->write(id(volume), offset, data, false);
    ASSERT_TRUE(st) << st.to_string();
  }
  std::vector<std::byte> read(const std::string& volume, std::uint64_t offset, std::size_t n) {
    std::vector<std::byte> out(n);
    Status st = pool_->read(id(volume), offset, out);
    EXPECT_TRUE(st) << st.to_string();
    return out;
  }
  void snapshot(const std::string& source, const std::string& name, bool ro = false) {
    auto r = pool_->create_snapshot(source, name, ro);
    ASSERT_TRUE(r) << r.status().to_string();
  }
  void reclaim_all() {
    auto left = pool_->reclaim();
    ASSERT_TRUE(left) << left.status().to_string();
    EXPECT_EQ(*left, 0u);
  }
  std::uint64_t data_blocks_used() {
    PoolStats s = pool_->stats();
    return s.data_blocks - s.data_blocks_free;
  }
};

TEST_F(SnapshotTest, SnapshotHoldsThePointInTimeAcrossReopen) {
  const auto a = pattern(256 * 1024, 1), b = pattern(256 * 1024, 2);
  write("origin", 0, a);
  snapshot("origin", "s1");
  write("origin", 0, b);
  EXPECT_EQ(read("s1", 0, a.size()), a);
  EXPECT_EQ(read("origin", 0, b.size()), b);
  reopen();
  EXPECT_EQ(read("s1", 0, a.size()), a);
  EXPECT_EQ(read("origin", 0, b.size()), b);
  auto s1 = pool_->find_volume("s1");
  ASSERT_TRUE(s1);
  EXPECT_EQ(s1->parent, id("origin"));
  EXPECT_EQ(s1->size, 16u << 20);
  EXPECT_FALSE(s1->read_only());
}

TEST_F(SnapshotTest, SnapshotsAreWritableAndIndependent) {
  const auto a = pattern(64 * 1024, 1);
  write("origin", 8192, a);
  snapshot("origin", "s1");
  const auto c = pattern(5000, 3);
  write("s1", 10000, c);  // partial blocks: read-merge-write on a shared block
  EXPECT_EQ(read("origin", 8192, a.size()), a);
  auto expect = a;
  std::copy(c.begin(), c.end(), expect.begin() + (10000 - 8192));
  EXPECT_EQ(read("s1", 8192, a.size()), expect);
}

TEST_F(SnapshotTest, SnapshotsOfSnapshotsToDepth) {
  std::vector<std::vector<std::byte>> written;
  std::string parent = "origin";
  for (int depth = 0; depth < 24; ++depth) {
    written.push_back(pattern(kBlock, 100 + depth));
    write(parent, depth * kBlock, written.back());
    const std::string name = "d" + std::to_string(depth);
    snapshot(parent, name);
    parent = name;
  }
  reopen();
  for (int depth = 0; depth < 24; ++depth) {
    const std::string name = "d" + std::to_string(depth);
    for (int k = 0; k < 24; ++k) {
      auto got = read(name, k * kBlock, kBlock);
      // d<n> was written (block n + 1) after its own snapshot d<n + 1> was taken from it.
      const bool holds = k <= depth + 1 && k < 24;
      EXPECT_EQ(got, holds ? written[k] : std::vector<std::byte>(kBlock)) << name << " block " << k;
    }
  }
}

TEST_F(SnapshotTest, NamesAreValidatedAndUnique) {
  snapshot("origin", "s1");
  EXPECT_EQ(pool_->create_snapshot("origin", "s1", false).status().code(), errc::exists);
  EXPECT_EQ(pool_->create_snapshot("origin", "origin", false).status().code(), errc::exists);
  EXPECT_EQ(pool_->create_snapshot("nope", "s2", false).status().code(), errc::not_found);
  EXPECT_EQ(pool_->create_snapshot("origin", "bad name", false).status().code(), errc::invalid_argument);
  EXPECT_EQ(pool_->create_snapshot("origin", "a/b", false).status().code(), errc::invalid_argument);
  EXPECT_EQ(pool_->create_snapshot("origin", "", false).status().code(), errc::invalid_argument);
  EXPECT_EQ(pool_->create_snapshot("origin", "-x", false).status().code(), errc::invalid_argument);
  EXPECT_EQ(pool_->create_snapshot("origin", std::string(129, 'a'), false).status().code(),
            errc::invalid_argument);
  EXPECT_TRUE(pool_->create_snapshot("origin", std::string(128, 'a'), false));
  EXPECT_EQ(pool_->rename_volume("s1", "origin").code(), errc::exists);
  EXPECT_EQ(pool_->rename_volume("nope", "x").code(), errc::not_found);
  EXPECT_EQ(pool_->delete_volume("nope").code(), errc::not_found);
  EXPECT_EQ(pool_->rollback("origin", "origin").code(), errc::invalid_argument);
  EXPECT_EQ(pool_->create_volume("v", 1000).status().code(), errc::invalid_argument);
  EXPECT_EQ(pool_->create_volume("v", 0).status().code(), errc::invalid_argument);
  EXPECT_EQ(pool_->volumes().size(), 3u);  // nothing above changed the pool
}

TEST_F(SnapshotTest, ReadOnlySnapshotIsFlagged) {
  snapshot("origin", "ro", true);
  reopen();
  EXPECT_TRUE(pool_->find_volume("ro")->read_only());
  EXPECT_EQ(pool_->rollback("ro", "origin").code(), errc::read_only);
  EXPECT_EQ(pool_->resize_volume("ro", 32 << 20).code(), errc::read_only);
}

TEST_F(SnapshotTest, DeletingAParentLeavesItsSnapshotsIntact) {
  const auto a = pattern(512 * 1024, 7);
  write("origin", 0, a);
  snapshot("origin", "s1");
  snapshot("s1", "s2");
  write("origin", 0, pattern(512 * 1024, 8));
  ASSERT_TRUE(pool_->delete_volume("origin"));
  ASSERT_TRUE(pool_->delete_volume("s1"));
  EXPECT_FALSE(pool_->find_volume("origin"));
  EXPECT_EQ(pool_->find_volume("s2")->parent, 0u);
  reclaim_all();
  EXPECT_EQ(read("s2", 0, a.size()), a);
  EXPECT_EQ(data_blocks_used(), a.size() / kBlock);
  reopen();
  EXPECT_EQ(read("s2", 0, a.size()), a);
  auto names = pool_->volumes();
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0].name, "s2");
}

TEST_F(SnapshotTest, DeletedNamesCanBeReused) {
  write("origin", 0, pattern(kBlock, 1));
  snapshot("origin", "s");
  ASSERT_TRUE(pool_->delete_volume("s"));
  snapshot("origin", "s");  // before reclaim ran
  EXPECT_EQ(read("s", 0, kBlock), pattern(kBlock, 1));
  reclaim_all();
  EXPECT_EQ(read("s", 0, kBlock), pattern(kBlock, 1));
}

TEST_F(SnapshotTest, RollbackRestoresTheSnapshotAndFreesTheOldTree) {
  const auto a = pattern(1 << 20, 1), b = pattern(1 << 20, 2);
  write("origin", 0, a);
  snapshot("origin", "good");
  write("origin", 0, b);
  write("origin", 4 << 20, b);
  ASSERT_TRUE(pool_->rollback("origin", "good"));
  EXPECT_EQ(read("origin", 0, a.size()), a);
  EXPECT_EQ(read("origin", 4 << 20, b.size()), std::vector<std::byte>(b.size()));
  reclaim_all();
  EXPECT_EQ(data_blocks_used(), a.size() / kBlock);  // b's blocks came back
  write("origin", 0, b);  // the rolled-back volume is writable, the snapshot unchanged
  EXPECT_EQ(read("good", 0, a.size()), a);
  reopen();
  EXPECT_EQ(read("origin", 0, b.size()), b);
}

TEST_F(SnapshotTest, RenameKeepsDataAndFreesTheOldName) {
  write("origin", 0, pattern(kBlock, 4));
  ASSERT_TRUE(pool_->rename_volume("origin", "main"));
  snapshot("main", "origin");
  reopen();
  EXPECT_EQ(read("main", 0, kBlock), pattern(kBlock, 4));
  EXPECT_EQ(read("origin", 0, kBlock), pattern(kBlock, 4));
}

TEST_F(SnapshotTest, NewVolumesStartEmptyAndResize) {
  auto r = pool_->create_volume("data", 8 << 20);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(read("data", 0, 8192), std::vector<std::byte>(8192));
  write("data", (8 << 20) - kBlock, pattern(kBlock, 5));
  write("data", 0, pattern(kBlock, 6));
  ASSERT_TRUE(pool_->resize_volume("data", 4 << 20));  // drops the last block
  EXPECT_EQ(pool_->find_volume("data")->size, 4u << 20);
  EXPECT_EQ(pool_->find_volume("data")->mapped_blocks, 1u);
  std::vector<std::byte> out(kBlock);
  EXPECT_EQ(pool_->write(id("data"), 4 << 20, out, false).code(), errc::invalid_argument);
  ASSERT_TRUE(pool_->resize_volume("data", 12 << 20));  // grows with a hole
  EXPECT_EQ(read("data", (8 << 20) - kBlock, kBlock), std::vector<std::byte>(kBlock));
  EXPECT_EQ(read("data", 0, kBlock), pattern(kBlock, 6));
  EXPECT_EQ(pool_->resize_volume("data", 12345).code(), errc::invalid_argument);
  reopen();
  EXPECT_EQ(pool_->find_volume("data")->size, 12u << 20);
}

// Writes racing a shrink either land before it (and are unmapped) or are refused: after
// growing again the tail reads as zeroes and no block stays mapped past the end.
TEST_F(SnapshotTest, ShrinkRacingWritesLeavesNothingPastTheEnd) {
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(pool_->resize_volume("origin", 16 << 20));
    std::atomic<bool> stop{false};
    const std::uint64_t v = id("origin");
    std::thread writer([&] {
      const auto data = pattern(2 * kBlock, round);
      for (std::uint64_t i = 0; !stop; ++i) {
        Status st = pool_->write(v, (8 << 20) + (i % 512) * kBlock + 100, data, false);
        if (!st && st.code() != errc::invalid_argument) ADD_FAILURE() << st.to_string();
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ASSERT_TRUE(pool_->resize_volume("origin", 8 << 20));
    stop = true;
    writer.join();
    ASSERT_TRUE(pool_->resize_volume("origin", 16 << 20));
    EXPECT_EQ(read("origin", 8 << 20, 8 << 20), std::vector<std::byte>(8 << 20)) << "round " << round;
  }
  EXPECT_EQ(pool_->find_volume("origin")->mapped_blocks, 0u);
}

TEST_F(SnapshotTest, UsageSplitsExclusiveAndSharedBytes) {
  write("origin", 0, pattern(100 * kBlock, 1));
  auto usage = [&](const std::string& v) {
    auto u = pool_->usage(id(v));
    EXPECT_TRUE(u) << u.status().to_string();
    return u ? *u : VolumeUsage{};
  };
  EXPECT_EQ(usage("origin").exclusive_bytes, 100 * kBlock);
  snapshot("origin", "s1");
  EXPECT_EQ(usage("origin").exclusive_bytes, 0u);
  EXPECT_EQ(usage("origin").shared_bytes, 100 * kBlock);
  write("origin", 0, pattern(10 * kBlock, 2));  // 10 blocks diverge
  EXPECT_EQ(usage("origin").exclusive_bytes, 10 * kBlock);
  EXPECT_EQ(usage("origin").shared_bytes, 90 * kBlock);
  EXPECT_EQ(usage("s1").exclusive_bytes, 10 * kBlock);
  EXPECT_EQ(usage("s1").mapped_bytes, 100 * kBlock);
  write("origin", 200 * kBlock, pattern(kBlock, 3));  // a new block, exclusive
  EXPECT_EQ(usage("origin").exclusive_bytes, 11 * kBlock);
  EXPECT_EQ(usage("origin").mapped_bytes, 101 * kBlock);
  ASSERT_TRUE(pool_->delete_volume("s1"));
  reclaim_all();
  EXPECT_EQ(usage("origin").exclusive_bytes, 101 * kBlock);
  reopen();
  EXPECT_EQ(usage("origin").mapped_bytes, 101 * kBlock);
  EXPECT_EQ(usage("origin").exclusive_bytes, 101 * kBlock);
}

TEST_F(SnapshotTest, DiffReportsExactlyTheChangedBlocks) {
  write("origin", 0, pattern(2 << 20, 1));
  snapshot("origin", "base");
  std::set<std::uint64_t> changed = {3, 4, 5, 100, 511, 700, 3000};
  for (std::uint64_t b : changed) write("origin", b * kBlock, pattern(kBlock, b + 10));
  ASSERT_TRUE(pool_->unmap(id("origin"), 200 * kBlock, kBlock, false));  // data -> hole
  changed.insert(200);
  const std::uint64_t size = 16 << 20;
  std::set<std::uint64_t> seen;
  for (std::uint64_t pos = 0; pos < size;) {
    auto ext = pool_->diff(id("origin"), id("base"), pos, size - pos);
    ASSERT_TRUE(ext) << ext.status().to_string();
    ASSERT_FALSE(ext->empty());
    for (const Extent& e : *ext) {
      ASSERT_GT(e.length, 0u);
      if (e.flags & extent_changed)
        for (std::uint64_t b = pos / kBlock; b < (pos + e.length) / kBlock; ++b) seen.insert(b);
      pos += e.length;
    }
  }
  EXPECT_EQ(seen, changed);
  auto none = pool_->diff(id("base"), id("base"), 0, size);
  ASSERT_TRUE(none);
  ASSERT_EQ(none->size(), 1u);
  EXPECT_EQ((*none)[0], (Extent{size, 0}));
  // An unrelated empty volume differs wherever the origin holds data.
  ASSERT_TRUE(pool_->create_volume("empty", size));
  auto vs_empty = pool_->diff(id("origin"), id("empty"), 0, 1 << 20);
  ASSERT_TRUE(vs_empty);
  EXPECT_EQ((*vs_empty)[0], (Extent{200 * kBlock, extent_changed}));  // block 200 is a hole
  EXPECT_EQ((*vs_empty)[1], (Extent{kBlock, 0}));
}

TEST_F(SnapshotTest, ManySnapshotsThenDeleteAllLeaksNothing) {
  std::mt19937_64 rng(11);
  std::map<std::string, std::vector<std::byte>> first_block;
  for (int i = 0; i < 200; ++i) {
    const auto data = pattern(kBlock, 1000 + i);
    write("origin", (rng() % 4096) * kBlock, pattern(kBlock, i));
    write("origin", 0, data);
    snapshot("origin", "snap" + std::to_string(i));
    first_block["snap" + std::to_string(i)] = data;
  }
  for (auto& [name, data] : first_block) EXPECT_EQ(read(name, 0, kBlock), data) << name;
  reopen();
  for (auto& [name, data] : first_block) ASSERT_TRUE(pool_->delete_volume(name));
  const std::uint64_t origin_mapped = pool_->find_volume("origin")->mapped_blocks;
  reclaim_all();
  EXPECT_EQ(data_blocks_used(), origin_mapped);
  EXPECT_EQ(pool_->stats().reclaim_pending_volumes, 0u);
}

// The scale users reach with a snapshot every few minutes kept for months.
TEST_F(SnapshotTest, TenThousandSnapshotsOfOneVolume) {
  const int count = 10000;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < count; ++i) {
    if (i % 10 == 0) write("origin", (i / 10 % 4096) * kBlock, pattern(kBlock, i));
    snapshot("origin", "auto-" + std::to_string(i));
  }
  const auto created = std::chrono::steady_clock::now();
  EXPECT_EQ(pool_->volumes().size(), count + 1u);
  reopen();
  EXPECT_EQ(pool_->volumes().size(), count + 1u);
  for (int i : {0, 9, 10, 4999, 9999})  // auto-i holds the block written just before it
    EXPECT_EQ(read("auto-" + std::to_string(i), (i / 10 % 4096) * kBlock, kBlock),
              pattern(kBlock, i / 10 * 10)) << i;
  for (int i = 0; i < count; ++i) ASSERT_TRUE(pool_->delete_volume("auto-" + std::to_string(i)));
  reclaim_all();
  EXPECT_EQ(data_blocks_used(), pool_->find_volume("origin")->mapped_blocks);
  std::printf("10,000 snapshots: created in %.2f s, deleted and reclaimed in %.2f s\n",
              std::chrono::duration<double>(created - start).count(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - created).count());
}

TEST_F(SnapshotTest, ReclaimResumesAfterReopen) {
  ASSERT_TRUE(pool_->create_volume("big", 16 << 20));
  write("big", 0, pattern(16 << 20, 9));
  ASSERT_TRUE(pool_->delete_volume("big"));
  auto left = pool_->reclaim(3);  // a few bounded steps, then "crash" (clean reopen)
  ASSERT_TRUE(left);
  EXPECT_EQ(*left, 1u);
  EXPECT_EQ(pool_->stats().reclaim_pending_volumes, 1u);
  reopen();
  EXPECT_EQ(pool_->stats().reclaim_pending_volumes, 1u);
  reclaim_all();
  EXPECT_EQ(data_blocks_used(), 0u);
}

TEST_F(SnapshotTest, DeletedVolumeRefusesIo) {
  const std::uint64_t s = (snapshot("origin", "s"), id("s"));
  ASSERT_TRUE(pool_->delete_volume("s"));
  std::vector<std::byte> buf(kBlock);
  EXPECT_EQ(pool_->read(s, 0, buf).code(), errc::not_found);
  EXPECT_EQ(pool_->write(s, 0, buf, false).code(), errc::not_found);
}

// Interleaves writes to many volumes with creates, deletes and rollbacks, checks every
// volume against a byte model, and the pool with the checker after reopens.
TEST_F(SnapshotTest, ModelBasedVolumeOperations) {
  const std::uint64_t size = 16 << 20;
  const std::uint64_t span = 64;  // blocks in use per volume, to keep models small
  std::map<std::string, std::vector<std::byte>> model;
  model["origin"] = std::vector<std::byte>(span * kBlock);
  std::mt19937_64 rng(2024);
  int next_name = 0;
  auto pick = [&]() {
    auto it = model.begin();
    std::advance(it, rng() % model.size());
    return it->first;
  };
  for (int step = 0; step < 600; ++step) {
    const unsigned op = rng() % 20;
    const std::string v = pick();
    if (op < 11) {  // write, often partial
      const std::uint64_t len = 1 + rng() % (4 * kBlock);
      const std::uint64_t off = rng() % (span * kBlock - len);
      auto data = pattern(len, step);
      ASSERT_TRUE(pool_->write(id(v), off, data, rng() % 8 == 0));
      std::copy(data.begin(), data.end(), model[v].begin() + off);
    } else if (op < 13) {  // unmap
      const std::uint64_t len = 1 + rng() % (8 * kBlock);
      const std::uint64_t off = rng() % (span * kBlock - len);
      ASSERT_TRUE(pool_->unmap(id(v), off, len, false));
      std::fill(model[v].begin() + off, model[v].begin() + off + len, std::byte{0});
    } else if (op < 16 && model.size() < 24) {  // snapshot
      const std::string name = "v" + std::to_string(next_name++);
      snapshot(v, name);
      model[name] = model[v];
    } else if (op < 18 && model.size() > 1) {  // delete
      ASSERT_TRUE(pool_->delete_volume(v));
      model.erase(v);
      if (rng() % 3 == 0) {
        ASSERT_TRUE(pool_->reclaim(rng() % 4));
      }
    } else if (model.size() > 1) {  // rollback v to another volume
      std::string to = pick();
      if (to == v) continue;
      ASSERT_TRUE(pool_->rollback(v, to));
      model[v] = model[to];
    }
    if (step % 100 == 99) {
      reopen();
      if (step % 200 == 199) reclaim_all();
    }
    if (step % 25 == 0 || step == 599) {
      for (auto& [name, bytes] : model) ASSERT_EQ(read(name, 0, bytes.size()), bytes) << name << " step " << step;
    }
  }
  (void)size;
  reclaim_all();
  reopen();
  for (auto& [name, bytes] : model) ASSERT_EQ(read(name, 0, bytes.size()), bytes) << name;
}

}  // namespace
}  // namespace snapstore
