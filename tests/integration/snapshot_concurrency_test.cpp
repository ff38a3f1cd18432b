// Snapshots created and deleted while clients write through several NBD connections:
// every client's data reads back correct in the origin afterwards, and every snapshot is
// readable and a point in time (it holds each write acknowledged before its creation was
// requested, and none started after its creation was acknowledged).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <optional>
#include <thread>

#include "ctl_support.h"

namespace snapstore::integration {
namespace {

using json = nlohmann::json;

constexpr int writers = 4;
constexpr std::uint64_t blocks_per_writer = 16;
constexpr std::size_t block_size = 4096;
constexpr std::uint64_t base = 2 << 20;  // where the writers' regions start

// Write number k of writer w goes to block k % blocks_per_writer of w's region, and holds
// k + 1 and w in its first 16 bytes, then a pattern of (w, k): so a read tells which write
// it sees, and a torn or misplaced block is caught.
std::uint64_t offset_of(int w, std::uint64_t k) {
  return base + (std::uint64_t(w) * blocks_per_writer + k % blocks_per_writer) * block_size;
}

std::vector<char> block_for(int w, std::uint64_t k) {
  std::vector<char> b = pattern(block_size, (std::uint64_t(w) << 32) | k);
  const std::uint64_t tag[2] = {k + 1, std::uint64_t(w)};
  std::memcpy(b.data(), tag, sizeof tag);
  return b;
}

// The write a block holds: nullopt for zeroes (never written); a test failure if it is
// neither zeroes nor exactly one write of writer w to that block.
std::optional<std::uint64_t> decode(const std::vector<char>& b, int w, std::uint64_t block) {
  if (all_zero(b.data(), b.size())) return std::nullopt;
  std::uint64_t tag[2];
  std::memcpy(tag, b.data(), sizeof tag);
  const std::uint64_t k = tag[0] - 1;
  if (tag[0] == 0 || tag[1] != std::uint64_t(w) || k % blocks_per_writer != block ||
      b != block_for(w, k)) {
    ADD_FAILURE() << "writer " << w << " block " << block << " holds data no write put there";
    return std::nullopt;
  }
  return k;
}

// The newest write to `block` among writes 0 .. count-1, if any.
std::optional<std::uint64_t> last_write(std::uint64_t count, std::uint64_t block) {
  if (count <= block) return std::nullopt;
  return block + (count - 1 - block) / blocks_per_writer * blocks_per_writer;
}

struct Counters {
  std::atomic<std::uint64_t> started{0}, acked{0};
};

// What a snapshot must hold: per writer, writes [0, lo) acknowledged before it was asked
// for, and no write from hi on (started after it was acknowledged).
struct Bounds {
  std::string name;
  std::uint64_t lo[writers], hi[writers];
};

// Reads every writer's region of `name` and checks it against the bounds.
void check_snapshot(const DaemonProcess& d, const Bounds& s) {
  SCOPED_TRACE("snapshot " + s.name);
  NbdHandle h = d.connect({.export_name = s.name});
  ASSERT_TRUE(h);
  std::vector<char> b(block_size);
  for (int w = 0; w < writers; ++w)
    for (std::uint64_t block = 0; block < blocks_per_writer; ++block) {
      ASSERT_EQ(nbd_pread(h.get(), b.data(), b.size(), offset_of(w, block), 0), 0)
          << nbd_error_text();
      auto found = decode(b, w, block);
      auto must = last_write(s.lo[w], block);
      if (must) {
        ASSERT_TRUE(found) << "writer " << w << " block " << block
                           << ": an acknowledged write is missing";
        EXPECT_GE(*found, *must) << "writer " << w << " block " << block << ": older data";
      }
      if (found) {
        EXPECT_LT(*found, s.hi[w]) << "writer " << w << " block " << block
                                   << ": a write from after the snapshot";
      }
    }
}

TEST(SnapshotConcurrency, CreateAndDeleteWhileClientsWrite) {
  TempDir dir;
  DaemonProcess d(dir.path());
  ASSERT_TRUE(d.ready());
  const auto& sock = d.control_socket();

  std::atomic<bool> stop{false}, failed{false};
  Counters counters[writers];
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      NbdHandle h = d.connect();
      if (!h) {
        failed = true;
        return;
      }
      for (std::uint64_t k = 0; !stop; ++k) {
        counters[w].started = k + 1;
        const auto data = block_for(w, k);
        if (nbd_pwrite(h.get(), data.data(), data.size(), offset_of(w, k), 0) != 0) {
          ADD_FAILURE() << "writer " << w << ": " << nbd_error_text();
          failed = true;
          return;
        }
        counters[w].acked = k + 1;
        if (k % 64 == 63 && nbd_flush(h.get(), 0) != 0) failed = true;
      }
      if (nbd_flush(h.get(), 0) != 0) failed = true;
    });

  // A second control client churns snapshots of its own at the same time.
  std::atomic<int> churned{0};
  std::thread churn([&] {
    for (int j = 0; !stop && j < 200; ++j) {
      const std::string name = "churn-" + std::to_string(j);
      json c = control(sock, "snapshot.create", {{"source", "origin"}, {"name", name}});
      json r = control(sock, "volume.delete", {{"name", name}});
      if (c.value("ok", false) && r.value("ok", false)) {
        ++churned;
      } else {
        ADD_FAILURE() << c.dump() << "\n" << r.dump();
      }
    }
  });

  std::vector<Bounds> live;
  constexpr int rounds = 20;
  for (int i = 0; i < rounds && !failed; ++i) {
    // Every writer has overwritten its region at least once since the last snapshot.
    ASSERT_TRUE(eventually([&] {
      for (int w = 0; w < writers; ++w)
        if (counters[w].acked < (live.empty() ? 0 : live.back().lo[w]) + blocks_per_writer)
          return false;
      return true;
    })) << "the writers stalled";
    Bounds s{"snap-" + std::to_string(i), {}, {}};
    for (int w = 0; w < writers; ++w) s.lo[w] = counters[w].acked;
    json r = control(sock, "snapshot.create", {{"source", "origin"}, {"name", s.name}});
    for (int w = 0; w < writers; ++w) s.hi[w] = counters[w].started;
    ASSERT_EQ(r.value("ok", false), true) << r.dump();
    check_snapshot(d, s);
    live.push_back(s);
    if (live.size() > 3) {
      json del = control(sock, "volume.delete", {{"name", live.front().name}});
      ASSERT_EQ(del.value("ok", false), true) << del.dump();
      live.erase(live.begin());
    }
  }
  stop = true;
  for (auto& t : threads) t.join();
  churn.join();
  ASSERT_FALSE(failed);
  EXPECT_GT(churned.load(), 0);

  // Each client's data, as it last wrote it, in the origin.
  NbdHandle origin = d.connect();
  ASSERT_TRUE(origin);
  std::vector<char> b(block_size);
  for (int w = 0; w < writers; ++w)
    for (std::uint64_t block = 0; block < blocks_per_writer; ++block) {
      ASSERT_EQ(nbd_pread(origin.get(), b.data(), b.size(), offset_of(w, block), 0), 0);
      EXPECT_EQ(decode(b, w, block), last_write(counters[w].acked, block))
          << "writer " << w << " block " << block;
    }
  // The snapshots that are left are still readable and unchanged.
  for (const Bounds& s : live) check_snapshot(d, s);
  std::vector<std::string> expected{"origin"};
  for (const Bounds& s : live) expected.push_back(s.name);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(volume_names(sock), expected);
}

}  // namespace
}  // namespace snapstore::integration
