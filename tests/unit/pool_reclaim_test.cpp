// Reclaim on a pool whose metadata space is full (pool.h invariant 6): snapshots can fill
// the metadata of a small pool until creates are refused; deleting some of them must give
// the space back (releasing a tree only frees space, so it may use the metadata reserve),
// after which creates work again; and a pool with nothing it can do uses no CPU.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <chrono>
#include <string>
#include <thread>

#include "pool_fixture.h"

namespace snapstore {
namespace {

constexpr std::uint64_t device_size = 12 << 20;  // the pool of the report: 12 MiB
constexpr std::uint32_t bs = 4096;

PoolOptions flood_options(bool background_reclaim) {
  PoolOptions o = quiet_options();
  o.background_reclaim = background_reclaim;
  return o;
}

// CPU time (user + system) this process has used so far.
std::chrono::microseconds process_cpu_time() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto us = [](const timeval& t) {
    return std::chrono::seconds(t.tv_sec) + std::chrono::microseconds(t.tv_usec);
  };
  return std::chrono::duration_cast<std::chrono::microseconds>(us(u.ru_utime) + us(u.ru_stime));
}

class PoolReclaimTest : public PoolFixture {
 protected:
  void TearDown() override {
    pool_.reset();
    spdlog::set_level(spdlog::level::info);
  }
  void start(bool background_reclaim) {
    spdlog::set_level(spdlog::level::off);
    ASSERT_NO_FATAL_FAILURE(format_and_open(device_size, origin_size_for_devices(device_size),
                                            flood_options(background_reclaim)));
    // Mapping trees of more than one leaf: releasing the last snapshot that holds a root
    // shadows it (so reclaim steps allocate metadata, not only free it).
    ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(prefilled, 1)));
    ASSERT_TRUE(pool_->commit());
  }
  static constexpr std::uint64_t prefilled = 2 << 20;

  // Snapshots of the origin until the pool refuses one for want of metadata. With
  // `writes`, while the data space has room, one of the origin's first `written_blocks`
  // blocks is written after every tenth snapshot (so that the snapshots' trees differ and
  // hold old versions of the blocks, as periodic snapshots of a volume in use do).
  // Returns how many were made.
  std::uint64_t flood(bool writes) {
    std::uint64_t n = 0;
    bool writing = writes;
    if (!writes) last_written_ = 0;
    for (;; ++n) {
      if (writing && n % 10 == 0) {
        const std::vector<std::byte> data = pattern(bs, n);
        Status st = pool_->write(origin_, block_written_after(n) * bs, data, false);
        if (st) {
          std::copy(data.begin(), data.end(),
                    model_.begin() + static_cast<long>(block_written_after(n) * bs));
        } else {
          EXPECT_EQ(st.code(), errc::no_space) << st.to_string();
          writing = false;
          last_written_ = n;
        }
      }
      auto r = pool_->create_snapshot("origin", name(n), false);
      if (!r) {
        EXPECT_EQ(r.status().code(), errc::no_space) << r.status().to_string();
        EXPECT_NE(r.status().message().find("metadata"), std::string::npos)
            << r.status().to_string();
        break;
      }
      if (n > 100000) {
        ADD_FAILURE() << "the metadata never filled";
        break;
      }
    }
    EXPECT_FALSE(pool_->read_only()) << pool_->failure().to_string();
    return n;
  }
  static std::string name(std::uint64_t n) { return "flood-" + std::to_string(n); }
  static std::uint64_t block_written_after(std::uint64_t n) { return n / 10 % written_blocks; }
  static constexpr std::uint64_t written_blocks = 64;

  // Deletes the older half of the first `made` snapshots, as a retention policy would;
  // every delete must work.
  void delete_half(std::uint64_t made) {
    for (std::uint64_t n = 0; n < made / 2; ++n) {
      Status st = pool_->delete_volume(name(n));
      ASSERT_TRUE(st) << "deleting " << name(n)
                      << " on a pool with full metadata: " << st.to_string();
    }
  }
  // The kept snapshots still read the blocks written just before them.
  void expect_kept_snapshots(std::uint64_t made) {
    for (std::uint64_t n = made / 2; n < std::min(made, last_written_); n += 7) {
      auto v = pool_->find_volume(name(n));
      ASSERT_TRUE(v) << name(n);
      std::vector<std::byte> out(bs);
      ASSERT_TRUE(pool_->read(v->id, block_written_after(n) * bs, out));
      EXPECT_EQ(out, pattern(bs, n / 10 * 10)) << name(n);
    }
  }
  // New snapshots can be made again (`count` of them, named prefix-0, prefix-1, ...).
  void expect_creates_work(const std::string& prefix, std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i) {
      auto r = pool_->create_snapshot("origin", prefix + "-" + std::to_string(i), false);
      ASSERT_TRUE(r) << "create " << i << " of " << count
                     << " after reclaim: " << r.status().to_string();
    }
  }

  // The report, on a pool flooded as flood(writes) does: deleting the older half of the
  // snapshots gives their space back (reclaim finishes, and then creates work again), also
  // across a reopen, and the pool checks clean.
  void flood_delete_half_reclaim(bool writes) {
    ASSERT_NO_FATAL_FAILURE(start(/*background_reclaim=*/false));
    const std::uint64_t made = flood(writes);
    ASSERT_GT(made, 1000u) << "a 12 MiB pool should hold thousands of snapshots";
    const PoolStats full = pool_->stats();
    ASSERT_NO_FATAL_FAILURE(delete_half(made));
    EXPECT_EQ(pool_->stats().reclaim_pending_volumes, made / 2);
    const auto started = std::chrono::steady_clock::now();
    auto left = pool_->reclaim();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ASSERT_TRUE(left) << left.status().to_string() << " (" << pool_->failure().to_string() << ")";
    EXPECT_EQ(*left, 0u);
    const PoolStats after = pool_->stats();
    EXPECT_EQ(after.reclaim_pending_volumes, 0u);
    if (writes) {
      EXPECT_GT(after.reclaim_released_blocks, 0u);
    }
    EXPECT_GT(after.metadata_blocks_free, full.metadata_blocks_free + 100)
        << "reclaiming half the snapshots gave back almost no metadata";
    EXPECT_FALSE(pool_->read_only()) << pool_->failure().to_string();
    std::printf(
        "%llu snapshots filled the metadata (%llu of %llu blocks free); half of them "
        "reclaimed in %.3f s (%llu data blocks released), then %llu free\n",
        static_cast<unsigned long long>(made),
        static_cast<unsigned long long>(full.metadata_blocks_free),
        static_cast<unsigned long long>(full.metadata_blocks), seconds,
        static_cast<unsigned long long>(after.reclaim_released_blocks),
        static_cast<unsigned long long>(after.metadata_blocks_free));
    ASSERT_NO_FATAL_FAILURE(expect_creates_work("after", made / 20));
    ASSERT_NO_FATAL_FAILURE(expect_kept_snapshots(made));
    expect_model();
    ASSERT_NO_FATAL_FAILURE(reopen());
    ASSERT_NO_FATAL_FAILURE(expect_creates_work("reopened", made / 20));
    ASSERT_NO_FATAL_FAILURE(expect_kept_snapshots(made));
    expect_model();
    close();
    expect_clean();
  }

  std::uint64_t last_written_ = ~0ull;  // the first snapshot after which no block was written
};

// The report: a 12 MiB pool flooded with snapshots of an idle origin until metadata is full.
TEST_F(PoolReclaimTest, SnapshotFloodThenDeletingHalfGivesTheSpaceBack) {
  flood_delete_half_reclaim(/*writes=*/false);
}

// The same with the origin written between snapshots: the deleted trees hold nodes and
// data of their own, so reclaim steps shadow metadata (from the reserve) as they go.
TEST_F(PoolReclaimTest, FloodOfSnapshotsOfAVolumeInUseThenDeletingHalf) {
  flood_delete_half_reclaim(/*writes=*/true);
}

// The same with the deletes committed and the pool reopened before reclaim starts: the
// pending trees are released after a restart too.
TEST_F(PoolReclaimTest, ReclaimOfAFullPoolWorksAfterAReopen) {
  ASSERT_NO_FATAL_FAILURE(start(/*background_reclaim=*/false));
  const std::uint64_t made = flood(/*writes=*/true);
  ASSERT_GT(made, 1000u);
  ASSERT_NO_FATAL_FAILURE(delete_half(made));
  ASSERT_NO_FATAL_FAILURE(reopen());
  EXPECT_EQ(pool_->stats().reclaim_pending_volumes, made / 2);
  auto left = pool_->reclaim();
  ASSERT_TRUE(left) << left.status().to_string();
  EXPECT_EQ(*left, 0u);
  ASSERT_NO_FATAL_FAILURE(expect_creates_work("after", made / 20));
  close();
  expect_clean();
}

// As the daemon runs it: background reclaim releases the deleted snapshots by itself,
// and once it is done (or could do nothing) the pool's threads use no CPU.
TEST_F(PoolReclaimTest, BackgroundReclaimFinishesAndThenThePoolIsIdle) {
  ASSERT_NO_FATAL_FAILURE(start(/*background_reclaim=*/true));
  const std::uint64_t made = flood(/*writes=*/true);
  ASSERT_GT(made, 1000u);
  ASSERT_NO_FATAL_FAILURE(delete_half(made));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (pool_->stats().reclaim_pending_volumes > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(pool_->stats().reclaim_pending_volumes, 0u)
      << "background reclaim did not finish in 60 s";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the last step settle
  const auto cpu_before = process_cpu_time();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const auto idle_cpu = process_cpu_time() - cpu_before;
  std::printf("CPU used by an idle pool over 1 s: %lld us\n",
              static_cast<long long>(idle_cpu.count()));
  EXPECT_LT(idle_cpu, std::chrono::milliseconds(50)) << "an idle pool keeps a thread busy";
  ASSERT_NO_FATAL_FAILURE(expect_creates_work("after", made / 20));
  close();
  expect_clean();
}

}  // namespace
}  // namespace snapstore
