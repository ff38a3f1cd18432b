// Found 8 of issue 11: acknowledged writes must survive the death of the daemon process
// (SIGKILL), flushed or not, as they survive it with nbdkit's file plugin: before a write is
// acknowledged its mapping change is in the intent log, in the kernel's page cache.
//
// Several clients write without ever flushing, each to its own blocks, keeping a model of
// what the daemon acknowledged and what was in flight; the daemon is killed at a random
// moment, the pool checked offline, a new daemon started, and every block compared with
// the model: the last acknowledged content, or the write in flight when the daemon died.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>

#include "store/checksum.h"
#include "test_server.h"

namespace snapstore::integration {
namespace {

constexpr std::uint64_t block = 4096;
constexpr std::uint64_t blocks_per_writer = 512;
constexpr int writers = 4;

std::uint64_t sum_of(const char* p, std::size_t n) {
  return data_checksum({reinterpret_cast<const std::byte*>(p), n});
}

// What one writer's blocks may hold: by block, the checksums allowed after a crash.
struct WriterModel {
  std::map<std::uint64_t, std::uint64_t> acknowledged;  // block -> checksum
  std::optional<std::pair<std::uint64_t, std::uint64_t>> in_flight;
};

void write_until_error(nbd_handle* h, int id, std::uint64_t seed, WriterModel& model,
                       std::atomic<std::uint64_t>& acked) {
  std::mt19937_64 rng(seed);
  const std::uint64_t first = static_cast<std::uint64_t>(id) * blocks_per_writer;
  for (std::uint64_t n = 0;; ++n) {
    const std::uint64_t count = 1 + rng() % 4;
    const std::uint64_t b = first + rng() % (blocks_per_writer - count);
    const auto data = pattern(count * block, seed * 1000000 + n);
    model.in_flight = {b, count};
    if (nbd_pwrite(h, data.data(), data.size(), b * block, 0) != 0) return;
    for (std::uint64_t k = 0; k < count; ++k) model.acknowledged[b + k] = sum_of(data.data() + k * block, block);
    model.in_flight.reset();
    ++acked;
  }
}

TEST(KillNine, EveryAcknowledgedWriteSurvivesTheDeathOfTheDaemon) {
  TempDir dir;
  std::vector<WriterModel> models(writers);
  std::mt19937_64 rng(20261204);
  std::uint64_t acknowledged_total = 0, in_flight_total = 0, rounds = 0;
  const int want_rounds = 20;
  for (int round = 0; round < want_rounds && !::testing::Test::HasFailure(); ++round, ++rounds) {
    SCOPED_TRACE("round " + std::to_string(round));
    {
      DaemonProcess d(dir.path());
      ASSERT_TRUE(d.ready()) << d.log();
      std::vector<NbdHandle> handles;
      for (int w = 0; w < writers; ++w) {
        handles.push_back(d.connect());
        ASSERT_TRUE(handles.back()) << nbd_error_text();
      }
      std::atomic<std::uint64_t> acked{0};
      std::vector<std::thread> threads;
      for (int w = 0; w < writers; ++w)
        threads.emplace_back([&, w] { write_until_error(handles[w].get(), w, round * 10 + w + 1, models[w], acked); });
      // Some writes first, then death at a random moment.
      ASSERT_TRUE(eventually([&] { return acked.load() >= 200; }, 20s)) << d.log();
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 400));
      d.kill();
      for (auto& t : threads) t.join();
      acknowledged_total += acked;
    }
    const auto damage = damage_after_crash(dir.path(), dir.path() / "pool");
    ASSERT_TRUE(damage.empty()) << damage.front();
    DaemonProcess again(dir.path());
    ASSERT_TRUE(again.ready()) << again.log();
    auto h = again.connect();
    ASSERT_TRUE(h);
    std::vector<char> got(writers * blocks_per_writer * block);
    ASSERT_EQ(nbd_pread(h.get(), got.data(), got.size(), 0, 0), 0) << nbd_error_text();
    for (int w = 0; w < writers; ++w) {
      WriterModel& m = models[w];
      for (const auto& [b, sum] : m.acknowledged) {
        const std::uint64_t now = sum_of(got.data() + b * block, block);
        const bool in_flight = m.in_flight && b >= m.in_flight->first && b < m.in_flight->first + m.in_flight->second;
        if (now == sum) continue;
        if (in_flight) continue;  // the write in flight may have landed
        ADD_FAILURE() << "writer " << w << ", block " << b << ": an acknowledged write was lost";
      }
      // What the daemon holds now is what the next round's model starts from.
      if (m.in_flight) {
        ++in_flight_total;
        for (std::uint64_t k = 0; k < m.in_flight->second; ++k) {
          const std::uint64_t b = m.in_flight->first + k;
          m.acknowledged[b] = sum_of(got.data() + b * block, block);
        }
        m.in_flight.reset();
      }
    }
  }
  std::printf("SIGKILL rounds: %llu, acknowledged writes checked: %llu, writes in flight at a kill: %llu\n",
              static_cast<unsigned long long>(rounds), static_cast<unsigned long long>(acknowledged_total),
              static_cast<unsigned long long>(in_flight_total));
  EXPECT_EQ(rounds, static_cast<std::uint64_t>(want_rounds));
}

}  // namespace
}  // namespace snapstore::integration
