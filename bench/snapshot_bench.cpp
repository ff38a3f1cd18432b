// snapshot_bench: server-side costs of snapshots, on a pool file, through the Pool API
// (no NBD, no control socket: what the daemon itself spends).
//
//   snapshot_bench create DIR [--count N]   time to create the Nth snapshot of origin for
//       N up to --count (default 100000); one 4k write to origin between snapshots, so each
//       snapshot differs from the next. Prints median/p90/max of the create calls around
//       N = 1, 100, 1,000, 10,000, 100,000 (each call includes its commit: two fdatasyncs).
//   snapshot_bench reclaim DIR [--size BYTES]  a snapshot that owns --size (default 1 GiB)
//       alone is deleted; reports how long background reclaim takes and, meanwhile, the
//       latency of 4k reads of origin (foreground I/O during reclaim).
//   snapshot_bench add POOL COUNT [--source NAME] [--prefix P]  adds COUNT snapshots to an
//       existing pool (used by bench/snapshot-fio.sh to prepare 100 or 10,000 snapshots).
//
// DIR must be on a real disk (not tmpfs); the pool file is removed afterwards.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "store/file_device.h"
#include "volume/pool.h"

using namespace snapstore;
using clock_type = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "snapshot_bench: %s\n", what.c_str());
  std::exit(1);
}

void check(const Status& st, const char* what) {
  if (!st) die(std::string(what) + ": " + st.to_string());
}

std::unique_ptr<Pool> make_pool(const std::filesystem::path& file, std::uint64_t origin_size) {
  std::filesystem::remove(file);
  auto dev = FileDevice::open(file, {true, pool_file_size_for(origin_size), false});
  if (!dev) die(dev.status().to_string());
  FormatOptions f;
  f.origin_size = origin_size;
  check(Pool::format({*dev}, f), "format");
  dev->reset();
  return nullptr;
}

std::unique_ptr<Pool> open_pool(const std::filesystem::path& file, bool background_reclaim) {
  auto dev = FileDevice::open(file, {false, 0, false});
  if (!dev) die(dev.status().to_string());
  PoolOptions o;
  o.background_reclaim = background_reclaim;
  auto pool = Pool::open({*dev}, o);
  if (!pool) die(pool.status().to_string());
  return std::move(pool).value();
}

double us(clock_type::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

struct Percentiles {
  double median, p90, max;
};
Percentiles percentiles(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[v.size() * 9 / 10], v.back()};
}

int create_bench(const std::filesystem::path& dir, std::uint64_t count) {
  const auto file = dir / "snapshot-bench.pool";
  make_pool(file, 1ull << 30);
  auto pool = open_pool(file, true);
  const std::uint64_t origin = pool->find_volume("origin")->id;
  std::vector<std::byte> block(4096);
  std::mt19937_64 rng(1);
  std::vector<double> times, commit_times;
  times.reserve(count);
  commit_times.reserve(count);
  for (std::uint64_t n = 1; n <= count; ++n) {
    for (auto& b : block) b = std::byte(rng());
    check(pool->write(origin, (rng() % (1 << 18)) * 4096, block, false), "write");
    check(pool->flush(), "flush");  // the write's own commit is not the snapshot's
    const std::uint64_t commit_before = pool->stats().commit_us_total;
    const auto t0 = clock_type::now();
    auto r = pool->create_snapshot("origin", "s" + std::to_string(n), false);
    times.push_back(us(clock_type::now() - t0));
    commit_times.push_back(static_cast<double>(pool->stats().commit_us_total - commit_before));
    if (!r) die(r.status().to_string());
  }
  std::printf("| N | create median µs | p90 µs | max µs | of which commit, median µs | without the commit, median µs | calls measured |\n"
              "|--:|--:|--:|--:|--:|--:|--:|\n");
  for (std::uint64_t n : {1ull, 100ull, 1000ull, 10000ull, 100000ull}) {
    if (n > count) break;
    // The calls just before N (up to 101 of them): one call is noise, a window is a figure.
    const std::uint64_t from = n > 101 ? n - 101 : 0;
    std::vector<double> window(times.begin() + static_cast<long>(from), times.begin() + static_cast<long>(n));
    std::vector<double> commits(commit_times.begin() + static_cast<long>(from),
                                commit_times.begin() + static_cast<long>(n));
    std::vector<double> rest;
    for (std::size_t i = 0; i < window.size(); ++i) rest.push_back(window[i] - commits[i]);
    Percentiles p = percentiles(window);
    std::printf("| %llu | %.0f | %.0f | %.0f | %.0f | %.1f | %zu |\n", static_cast<unsigned long long>(n),
                p.median, p.p90, p.max, percentiles(commits).median, percentiles(rest).median, window.size());
  }
  // The peer in the same run: what one 4 KiB write + fdatasync costs on this file system.
  {
    const auto probe = dir / "fdatasync-probe";
    auto dev = FileDevice::open(probe, {true, 64 << 20, false});
    if (!dev) die(dev.status().to_string());
    std::vector<double> syncs;
    for (int i = 0; i < 200; ++i) {
      const auto t0 = clock_type::now();
      check((*dev)->write(static_cast<std::uint64_t>(i) * 4096, block), "probe write");
      check((*dev)->flush(), "probe flush");
      syncs.push_back(us(clock_type::now() - t0));
    }
    dev->reset();
    std::filesystem::remove(probe);
    std::printf("\npeer, same run: 4 KiB pwrite + fdatasync on the same file system: median %.0f µs\n",
                percentiles(syncs).median);
  }
  PoolStats s = pool->stats();
  std::printf("\nmetadata blocks in use after %llu snapshots: %llu (%.1f MiB)\n",
              static_cast<unsigned long long>(count),
              static_cast<unsigned long long>(s.metadata_blocks - s.metadata_blocks_free),
              (s.metadata_blocks - s.metadata_blocks_free) * 4096.0 / (1 << 20));
  check(pool->close(), "close");
  pool.reset();
  std::filesystem::remove(file);
  return 0;
}

int reclaim_bench(const std::filesystem::path& dir, std::uint64_t size) {
  const auto file = dir / "snapshot-bench.pool";
  make_pool(file, 2 * size);
  auto pool = open_pool(file, true);
  const std::uint64_t origin = pool->find_volume("origin")->id;
  std::vector<std::byte> chunk(1 << 20);
  std::mt19937_64 rng(2);
  for (std::uint64_t off = 0; off < size; off += chunk.size()) {  // origin: size of data
    for (std::size_t i = 0; i < chunk.size(); i += 8) chunk[i] = std::byte(rng());
    check(pool->write(origin, off, chunk, false), "fill origin");
  }
  auto snap = pool->create_snapshot("origin", "victim", false);
  if (!snap) die(snap.status().to_string());
  for (std::uint64_t off = 0; off < size; off += chunk.size()) {  // the snapshot diverges fully
    for (std::size_t i = 0; i < chunk.size(); i += 8) chunk[i] = std::byte(rng());
    check(pool->write(snap->id, off, chunk, false), "overwrite snapshot");
  }
  check(pool->flush(), "flush");
  auto usage = pool->usage(snap->id);
  if (!usage) die(usage.status().to_string());
  std::printf("snapshot to delete owns %.1f MiB alone (exclusive), %.1f MiB shared\n",
              usage->exclusive_bytes / 1048576.0, usage->shared_bytes / 1048576.0);
  const PoolStats before = pool->stats();
  const auto t0 = clock_type::now();
  check(pool->delete_volume("victim"), "delete");
  const double delete_us = us(clock_type::now() - t0);
  std::vector<double> read_us;
  std::vector<std::byte> block(4096);
  while (pool->stats().reclaim_pending_volumes > 0) {
    const auto r0 = clock_type::now();
    check(pool->read(origin, (rng() % (size / 4096)) * 4096, block), "read during reclaim");
    read_us.push_back(us(clock_type::now() - r0));
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  const double reclaim_s = us(clock_type::now() - t0) / 1e6;
  check(pool->flush(), "flush");
  const PoolStats after = pool->stats();
  const double freed_mib = (after.data_blocks_free - before.data_blocks_free) * 4096.0 / 1048576.0;
  std::printf("delete returned in %.0f µs; reclaim finished in %.2f s: %.0f MiB freed, %.0f MiB/s\n",
              delete_us, reclaim_s, freed_mib, freed_mib / reclaim_s);
  if (!read_us.empty()) {
    Percentiles p = percentiles(read_us);
    std::printf("4k reads of origin during reclaim: %zu reads, median %.0f µs, p90 %.0f µs, max %.0f µs\n",
                read_us.size(), p.median, p.p90, p.max);
  }
  std::vector<double> quiet_us;
  for (int i = 0; i < 2000; ++i) {
    const auto r0 = clock_type::now();
    check(pool->read(origin, (rng() % (size / 4096)) * 4096, block), "read");
    quiet_us.push_back(us(clock_type::now() - r0));
  }
  Percentiles q = percentiles(quiet_us);
  std::printf("4k reads of origin with no reclaim: median %.0f µs, p90 %.0f µs, max %.0f µs\n",
              q.median, q.p90, q.max);
  check(pool->close(), "close");
  pool.reset();
  std::filesystem::remove(file);
  return 0;
}

int add_snapshots(const std::filesystem::path& file, std::uint64_t count, const std::string& source,
                  const std::string& prefix) {
  auto pool = open_pool(file, false);
  for (std::uint64_t n = 1; n <= count; ++n) {
    auto r = pool->create_snapshot(source, prefix + std::to_string(n), false);
    if (!r) die(r.status().to_string());
  }
  check(pool->close(), "close");
  return 0;
}

std::string option(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) die("usage: snapshot_bench create|reclaim DIR [--count N] [--size BYTES] | add POOL COUNT");
  const std::string mode = argv[1];
  if (mode == "create") return create_bench(argv[2], std::stoull(option(argc, argv, "--count", "100000")));
  if (mode == "reclaim") return reclaim_bench(argv[2], std::stoull(option(argc, argv, "--size", "1073741824")));
  if (mode == "add" && argc >= 4)
    return add_snapshots(argv[2], std::stoull(argv[3]), option(argc, argv, "--source", "origin"),
                         option(argc, argv, "--prefix", "bench-"));
  die("unknown mode " + mode);
}
