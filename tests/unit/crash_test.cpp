// Crash tests: cut power at every backing write of a random workload in turn, keep a
// random subset of the unflushed writes (some torn at 512 bytes), reopen, run the checker,
// and check every block of the volume: it must hold its content as of the last completed
// flush or of a later write to it; never an error, never another block's data.
//
// SNAPSTORE_CRASH_POINTS (default 2400) caps the number of crash points; SNAPSTORE_CRASH_SEED
// picks another workload.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <random>
#include <thread>

#include "crash_support.h"
#include "store/crash_device.h"
#include "store/memory_device.h"
#include "volume/pool.h"
#include "volume/pool_checker.h"

namespace snapstore {
namespace {

constexpr std::uint64_t device_size = 24 << 20;
constexpr std::uint64_t volume_size = 4 << 20;
constexpr std::uint32_t block = 4096;
constexpr std::uint64_t nblocks = volume_size / block;

enum class op_kind { write, fua_write, trim, zero, flush, commit };
struct Op {
  op_kind kind;
  std::uint64_t offset = 0, length = 0, seed = 0;
};

std::vector<Op> make_workload(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Op> ops;
  for (int i = 0; i < 36; ++i) {
    Op op;
    const unsigned r = rng() % 20;
    op.kind = r < 11 ? op_kind::write : r < 13 ? op_kind::fua_write : r < 15 ? op_kind::trim
            : r < 16 ? op_kind::zero : r < 19 ? op_kind::flush : op_kind::commit;
    const bool big = rng() % 8 == 0;
    op.length = big ? (1 << 20) : 4096 * (1 + rng() % 24);
    if (rng() % 3 == 0) op.length += rng() % 4096;  // unaligned end
    op.length = std::min(op.length, volume_size);
    op.offset = rng() % (volume_size - op.length + 1);
    if (rng() % 2 == 0) op.offset &= ~std::uint64_t{4095};
    op.seed = rng();
    ops.push_back(op);
  }
  return ops;
}

std::vector<std::byte> bytes_for(const Op& op) { return crash::seeded_bytes(op.length, op.seed); }

// What each block may hold after a crash: any version from the last durable one on.
class Model {
 public:
  // Records the new contents an operation is about to give (before it runs: if it fails
  // half-way, what it wrote may or may not be there).
  void about_to(const Op& op, std::span<const std::byte> data) {
    if (op.kind == op_kind::flush || op.kind == op_kind::commit) return;
    blocks_.about_to_write(op.offset, op.length, data);
  }
  void durable_all() { blocks_.durable_all(); }
  void durable_range(std::uint64_t offset, std::uint64_t length) {
    blocks_.durable_range(offset, length);
  }
  bool allowed(std::uint64_t b, std::uint64_t h) const { return blocks_.allowed(b, h); }

 private:
  crash::BlockModel blocks_{volume_size};
};

// Runs the workload until it ends or an operation fails (the power cut). Returns false
// when something other than the cut failed.
void run_workload(Pool& pool, std::uint64_t volume, const std::vector<Op>& ops, Model& model) {
  for (const Op& op : ops) {
    Status st;
    switch (op.kind) {
      case op_kind::write:
      case op_kind::fua_write: {
        auto data = bytes_for(op);
        model.about_to(op, data);
        st = pool.write(volume, op.offset, data, op.kind == op_kind::fua_write);
        if (st && op.kind == op_kind::fua_write) model.durable_range(op.offset, op.length);
        break;
      }
      case op_kind::trim:
        model.about_to(op, {});
        st = pool.unmap(volume, op.offset, op.length, false);
        break;
      case op_kind::zero:
        model.about_to(op, {});
        st = pool.write_zeroes(volume, op.offset, op.length, false);
        break;
      case op_kind::flush:
        st = pool.flush();
        if (st) model.durable_all();
        break;
      case op_kind::commit:  // what the timer does: the log's changes into the trees
        st = pool.commit();
        if (st) model.durable_all();
        break;
    }
    if (!st) return;
  }
}

PoolOptions quiet_options() {
  PoolOptions o;
  o.commit_interval = std::chrono::hours(24);  // commits only when the workload flushes
  o.early_commit = false;
  o.cache_bytes = 1 << 20;
  return o;
}

std::vector<std::byte> formatted_image() {
  auto image = crash::formatted_image(device_size, volume_size);
  EXPECT_FALSE(image.empty());
  return image;
}

// Opens a crash image, runs the checker and compares every block with the model.
void verify_image(std::vector<std::byte> image, const Model& model, const std::string& where) {
  auto device = std::make_shared<MemoryDevice>(std::move(image));
  CheckReport report = check_pool({device});
  for (const auto& p : report.problems) ADD_FAILURE() << where << ": checker: " << p;
  auto pool = Pool::open({device}, [] { auto o = quiet_options(); o.read_only = true; return o; }());
  ASSERT_TRUE(pool) << where << ": " << pool.status().to_string();
  auto volume = (*pool)->find_volume("origin");
  ASSERT_TRUE(volume);
  std::vector<std::byte> data(volume_size);
  Status st = (*pool)->read(volume->id, 0, data);
  ASSERT_TRUE(st) << where << ": read after crash: " << st.to_string();
  for (std::uint64_t b = 0; b < nblocks; ++b)
    if (!model.allowed(b, data_checksum({data.data() + b * block, block})))
      ADD_FAILURE() << where << ": block " << b << " holds content it never had, or lost a flushed write";
  pool->reset();
  // A writable open replays the intent log and commits it: the same contents, and a
  // pool the checker passes with the log applied.
  auto writable = Pool::open({device}, quiet_options());
  ASSERT_TRUE(writable) << where << ": writable open: " << writable.status().to_string();
  std::vector<std::byte> again(volume_size);
  st = (*writable)->read(volume->id, 0, again);
  ASSERT_TRUE(st) << where << ": read after replay: " << st.to_string();
  EXPECT_TRUE(again == data) << where << ": the writable open sees other contents than the read-only one";
  EXPECT_TRUE((*writable)->close());
  writable->reset();
  CheckReport after = check_pool({device});
  for (const auto& p : after.problems) ADD_FAILURE() << where << ": checker after replay: " << p;
}

// Over the clean runs: how the workloads' flushes were made durable.
std::uint64_t g_log_appends = 0, g_commits = 0;

// Runs one workload with power cut at each of its backing writes in turn (up to
// max_points of them, evenly spread); returns how many crash points it tried.
std::uint64_t crash_every_write(std::uint64_t seed, std::uint64_t max_points,
                                const std::vector<std::byte>& image) {
  const auto ops = make_workload(seed);
  std::uint64_t total_writes = 0, total_flushes = 0;
  {
    auto device = std::make_shared<CrashDevice>(image);
    auto pool = Pool::open({device}, quiet_options());
    EXPECT_TRUE(pool);
    if (!pool) return 0;
    Model model;
    run_workload(**pool, (*pool)->find_volume("origin")->id, ops, model);
    EXPECT_TRUE((*pool)->flush());
    total_writes = device->write_count();
    total_flushes = device->flush_calls();
    const PoolStats stats = (*pool)->stats();
    g_log_appends += stats.log_appends;
    g_commits += stats.commits;
  }
  // Crash points: every backing write, then every flush (a cut there keeps what it would
  // have made durable in the unflushed log).
  const std::uint64_t total = total_writes + total_flushes;
  const std::uint64_t stride = std::max<std::uint64_t>(1, (total + max_points - 1) / max_points);
  std::uint64_t points = 0;
  std::mt19937_64 rng(seed);
  for (std::uint64_t k = 0; k < total; k += stride, ++points) {
    auto device = std::make_shared<CrashDevice>(image);
    const crash::CrashPoint point{k >= total_writes, k < total_writes ? k : k - total_writes};
    point.arm(*device);
    Model model;
    {
      auto pool = Pool::open({device}, quiet_options());
      EXPECT_TRUE(pool);
      if (!pool) return points;
      run_workload(**pool, (*pool)->find_volume("origin")->id, ops, model);
    }  // closing tries to commit: it fails, the power is off
    const std::string where = "seed " + std::to_string(seed) + ", crash at " + point.describe();
    crash::for_each_crash_image(*device, rng,
                                [&](std::vector<std::byte> img, std::string_view label) {
                                  verify_image(std::move(img), model, where + std::string(label));
                                  return true;
                                });
    if (::testing::Test::HasFailure()) break;
  }
  return points;
}

TEST(Crash, EveryCrashPointRecoversToAFlushedOrLaterState) {
  spdlog::set_level(spdlog::level::off);
  const std::uint64_t first_seed = crash::env_or("SNAPSTORE_CRASH_SEED", 20261121);
  const std::uint64_t want = crash::env_or("SNAPSTORE_CRASH_POINTS", 2100);
  const auto image = formatted_image();
  std::uint64_t points = 0, workloads = 0;
  for (std::uint64_t seed = first_seed; points < want && !HasFailure(); ++seed, ++workloads)
    points += crash_every_write(seed, want - points, image);
  std::printf("crash points: %llu over %llu workloads, 4 crash images each; the clean runs "
              "made %llu intent log records and %llu commits\n",
              static_cast<unsigned long long>(points), static_cast<unsigned long long>(workloads),
              static_cast<unsigned long long>(g_log_appends), static_cast<unsigned long long>(g_commits));
  EXPECT_GT(g_log_appends, 0u) << "the workloads never used the intent log";
  EXPECT_GT(g_commits, 0u) << "the workloads never committed";
  EXPECT_GE(points, want);
}

}  // namespace
}  // namespace snapstore

namespace snapstore {
namespace {

// Several writers and a flusher at once, power cut at a random backing write: the
// checker must find no leaked or doubly used block (a commit must never include data
// blocks a write has taken but not yet mapped).
TEST(Crash, ConcurrentWritersLeaveNoLeakedBlocks) {
  spdlog::set_level(spdlog::level::off);
  const auto image = formatted_image();
  std::mt19937_64 rng(99);
  for (int round = 0; round < 40 && !HasFailure(); ++round) {
    auto device = std::make_shared<CrashDevice>(image);
    device->cut_power_at(40 + rng() % 600);
    {
      auto pool = Pool::open({device}, quiet_options());
      ASSERT_TRUE(pool);
      const std::uint64_t id = (*pool)->find_volume("origin")->id;
      std::atomic<bool> stop{false};
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
          std::mt19937_64 r(round * 10 + t);
          std::vector<std::byte> data(64 << 10, std::byte(t + 1));
          while (!stop && (*pool)->write(id, (r() % (volume_size / data.size())) * data.size(), data, false))
            ;
          stop = true;
        });
      threads.emplace_back([&] {
        while (!stop && (*pool)->flush()) std::this_thread::yield();
        stop = true;
      });
      for (auto& t : threads) t.join();
    }
    for (CrashMode mode : {CrashMode::keep_all, CrashMode::random_subset_torn}) {
      auto img = std::make_shared<MemoryDevice>(device->crash_image(rng, mode));
      CheckReport report = check_pool({img});
      for (const auto& p : report.problems) ADD_FAILURE() << "round " << round << ": " << p;
    }
  }
}

}  // namespace
}  // namespace snapstore
