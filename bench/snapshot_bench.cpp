// snapshot_bench: server-side costs of snapshots, on a pool file, through the Pool API
// (no NBD, no control socket: what the daemon itself spends), and the offline pool
// preparation that bench/snapshot-fio.sh and bench/snapshot-create.sh build on.
//
//   snapshot_bench create DIR [--count N] [--writes-between K]
//       Time to create the Nth snapshot of a fully written 1 GiB origin for N up to
//       --count (default 100000), with K (default 1) random 4k writes to origin between
//       snapshots so each differs from the next. In the 202 calls up to N = 1, 100, 1,000,
//       10,000, 100,000 every other call (N, N-2, ...) is a real one: its commit makes its
//       two fdatasyncs, and right after it the peer runs, a bare 4 KiB pwrite + fdatasync
//       on a file in DIR (same moment, same load). Prints their median/p90/max, split into
//       commit and the rest, against the peer. The other calls of the window run with
//       fdatasync turned off (a device wrapper), showing what a create costs besides its
//       syncs; so do all calls outside the windows, which are not measured (the pool at N
//       is the same, reached in minutes). In the windows the writes are committed before
//       the create; elsewhere the create's commit takes them too.
//   snapshot_bench reclaim DIR [--size BYTES]
//       A snapshot that owns --size (default 1 GiB) alone is deleted; reports how long
//       background reclaim takes and the latency of 4k reads of origin (one every 500 µs)
//       during reclaim, against the same paced reads just before the delete and after.
//   snapshot_bench prepare POOL --size S [--snapshots N] [--writes-between K]
//                          [--spare BYTES] [--seed X]
//       Formats POOL (a sparse file with room for the snapshots and --spare bytes, default
//       S + 256M, for later writes), fills origin (S bytes) completely with random data,
//       then takes N snapshots snap-1 .. snap-N of origin with K (default 16) random 4k
//       writes to origin between consecutive snapshots, like periodic snapshots of a
//       live disk. After it origin equals snap-N (every block shared with it).
//   snapshot_bench add POOL COUNT [--source V] [--prefix P] [--start I] [--writes-between K]
//       Adds COUNT snapshots P<I> .. P<I+COUNT-1> of V (default origin, prefix snap-,
//       start 1) to an existing pool, with K (default 0) random 4k writes to V before each.
//   snapshot_bench delete POOL COUNT [--prefix P] [--start I]
//       Deletes snapshots P<I> .. P<I+COUNT-1> and reclaims them completely (a control:
//       the same origin layout without the snapshots).
//   snapshot_bench rollback POOL VOLUME SNAPSHOT
//       Rolls VOLUME back to SNAPSHOT and reclaims the replaced tree completely (used to
//       put a pool back into its prepared state between benchmark jobs).
//
// prepare, add, delete and rollback run on a device whose flush does nothing (one real fdatasync
// when the pool is closed): a crash meanwhile loses the pool, which is only a benchmark's
// input, and 10,000 snapshots take seconds instead of 10,000 commits' worth of syncs.

// Sizes take K, M, G, T suffixes (binary). DIR and POOL must be on a real disk (not tmpfs);
// create and reclaim remove their pool file afterwards.
#include <algorithm>
#include <atomic>
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

constexpr std::uint64_t block_bytes = 4096;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "snapshot_bench: %s\n", what.c_str());
  std::exit(1);
}

void check(const Status& st, const char* what) {
  if (!st) die(std::string(what) + ": " + st.to_string());
}

double us(clock_type::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }
double seconds_since(clock_type::time_point t0) { return us(clock_type::now() - t0) / 1e6; }

// ---- command line ----

std::string option(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}

// "4096", "16K", "1G", "1GiB": binary suffixes.
std::uint64_t parse_bytes(const std::string& text) {
  std::size_t end = 0;
  std::uint64_t n = 0;
  try {
    n = std::stoull(text, &end);
  } catch (const std::exception&) {
    die("not a size: '" + text + "'");
  }
  std::string unit = text.substr(end);
  if (unit.ends_with("iB")) unit.resize(unit.size() - 2);
  if (unit.empty() || unit == "B") return n;
  const std::string units = "KMGT";
  const auto at = units.find(static_cast<char>(std::toupper(static_cast<unsigned char>(unit[0]))));
  if (unit.size() != 1 || at == std::string::npos) die("not a size: '" + text + "'");
  return n << (10 * (at + 1));
}

std::uint64_t size_option(int argc, char** argv, const char* name, const char* fallback) {
  return parse_bytes(option(argc, argv, name, fallback));
}

// ---- pools ----

void make_pool(const std::filesystem::path& file, std::uint64_t origin_size, std::uint64_t file_size) {
  std::filesystem::remove(file);
  auto dev = FileDevice::open(file, {true, file_size, false});
  if (!dev) die(dev.status().to_string());
  FormatOptions f;
  f.origin_size = origin_size;
  check(Pool::format({*dev}, f), "format");
}

// A device whose flush() does nothing while syncs are off (offline preparation, and the
// unmeasured stretches of the create benchmark); sync() always reaches the file.
class SwitchableSyncDevice final : public BlockDevice {
 public:
  explicit SwitchableSyncDevice(BlockDevicePtr inner) : inner_(std::move(inner)) {}
  std::uint64_t size() const override { return inner_->size(); }
  std::string name() const override { return inner_->name(); }
  Status read(std::uint64_t offset, std::span<std::byte> out) override { return inner_->read(offset, out); }
  Status write(std::uint64_t offset, std::span<const std::byte> data) override {
    return inner_->write(offset, data);
  }
  Status flush() override { return syncs_ ? inner_->flush() : Status::ok(); }
  Status discard(std::uint64_t offset, std::uint64_t length) override {
    return inner_->discard(offset, length);
  }
  Status sync() { return inner_->flush(); }
  void set_syncs(bool on) { syncs_ = on; }

 private:
  BlockDevicePtr inner_;
  std::atomic<bool> syncs_{false};
};

struct OpenPool {
  std::unique_ptr<Pool> pool;
  std::shared_ptr<SwitchableSyncDevice> device;

  Pool* operator->() const { return pool.get(); }
  Pool& operator*() const { return *pool; }
  // Commits, closes, and makes it durable.
  void close() {
    check(pool->close(), "close");
    pool.reset();
    check(device->sync(), "fdatasync");
  }
};

// syncs: whether commits reach the disk (see SwitchableSyncDevice; it can change later).
OpenPool open_pool(const std::filesystem::path& file, bool background_reclaim, bool syncs) {
  auto dev = FileDevice::open(file, {false, 0, false});
  if (!dev) die(dev.status().to_string());
  OpenPool out;
  out.device = std::make_shared<SwitchableSyncDevice>(*dev);
  out.device->set_syncs(syncs);
  PoolOptions o;
  o.background_reclaim = background_reclaim;
  auto pool = Pool::open({out.device}, o);
  if (!pool) die(pool.status().to_string());
  out.pool = std::move(pool).value();
  return out;
}

std::uint64_t volume_id(Pool& pool, const std::string& name) {
  auto v = pool.find_volume(name);
  if (!v) die(v.status().to_string());
  return v->id;
}

void fill_random(std::span<std::byte> buf, std::mt19937_64& rng) {
  for (std::size_t i = 0; i + 8 <= buf.size(); i += 8) {
    const std::uint64_t x = rng();
    std::memcpy(buf.data() + i, &x, 8);
  }
}

// Writes every byte of the volume (random data, 1 MiB at a time), then commits.
void fill_volume(Pool& pool, std::uint64_t volume, std::uint64_t size, std::mt19937_64& rng) {
  std::vector<std::byte> chunk(1 << 20);
  for (std::uint64_t off = 0; off < size; off += chunk.size()) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), size - off));
    fill_random(chunk, rng);
    check(pool.write(volume, off, std::span(chunk).first(n), false), "fill");
  }
  check(pool.flush(), "flush");
}

// count random 4 KiB writes at random block-aligned offsets of a volume of `size` bytes.
void random_writes(Pool& pool, std::uint64_t volume, std::uint64_t size, std::uint64_t count,
                   std::mt19937_64& rng) {
  std::vector<std::byte> block(block_bytes);
  for (std::uint64_t i = 0; i < count; ++i) {
    fill_random(block, rng);
    check(pool.write(volume, (rng() % (size / block_bytes)) * block_bytes, block, false), "write");
  }
}

struct SeriesOptions {
  std::string source = "origin", prefix = "snap-";
  std::uint64_t start = 1, count = 0, writes_between = 0;
  bool writes_before_first = true;
};

// Snapshots prefix<start> ... of source, with writes_between random writes to the source
// before each one (but the first, unless writes_before_first). Progress on stderr.
void snapshot_series(Pool& pool, const SeriesOptions& s, std::mt19937_64& rng) {
  const std::uint64_t source = volume_id(pool, s.source);
  const std::uint64_t size = pool.find_volume(source)->size;
  const auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < s.count; ++i) {
    if (i > 0 || s.writes_before_first) random_writes(pool, source, size, s.writes_between, rng);
    auto r = pool.create_snapshot(s.source, s.prefix + std::to_string(s.start + i), false);
    if (!r) die(r.status().to_string());
    if ((i + 1) % 1000 == 0)
      std::fprintf(stderr, "snapshot_bench: %llu snapshots, %.0f s\n",
                   static_cast<unsigned long long>(i + 1), seconds_since(t0));
  }
}

void print_space(Pool& pool, const char* when) {
  const PoolStats s = pool.stats();
  std::printf("%s: metadata blocks in use %llu (%.1f MiB, both copies: %.1f MiB), data blocks in use %llu (%.1f MiB)\n",
              when, static_cast<unsigned long long>(s.metadata_blocks - s.metadata_blocks_free),
              (s.metadata_blocks - s.metadata_blocks_free) * 4096.0 / (1 << 20),
              (s.metadata_blocks - s.metadata_blocks_free) * 8192.0 / (1 << 20),
              static_cast<unsigned long long>(s.data_blocks - s.data_blocks_free),
              (s.data_blocks - s.data_blocks_free) * double(s.data_block_size) / (1 << 20));
}

// ---- statistics ----

struct Percentiles {
  double median, p90, max;
};
Percentiles percentiles(std::vector<double> v) {
  if (v.empty()) return {0, 0, 0};
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[v.size() * 9 / 10], v.back()};
}

// ---- create ----

constexpr std::uint64_t checkpoints[] = {1, 100, 1000, 10000, 100000};
constexpr std::uint64_t window_calls = 202;  // calls measured up to each checkpoint

bool in_window(std::uint64_t n, std::uint64_t count) {
  for (std::uint64_t c : checkpoints)
    if (c <= count && n <= c && n + window_calls > c) return true;
  return false;
}

// In a window, every other call (N itself, N-2, ...) commits with its fdatasyncs.
bool synced_call(std::uint64_t n, std::uint64_t count) {
  for (std::uint64_t c : checkpoints)
    if (c <= count && n <= c && n + window_calls > c) return (c - n) % 2 == 0;
  return false;
}

// One 4 KiB pwrite + fdatasync on a file of its own: the cost floor of any commit.
class SyncProbe {
 public:
  explicit SyncProbe(const std::filesystem::path& file) : file_(file), block_(block_bytes) {
    auto dev = FileDevice::open(file, {true, 64 << 20, false});
    if (!dev) die(dev.status().to_string());
    dev_ = *dev;
  }
  ~SyncProbe() {
    dev_.reset();
    std::filesystem::remove(file_);
  }
  double measure_us() {
    block_[next_ % block_bytes] = std::byte(next_);
    const auto t0 = clock_type::now();
    check(dev_->write((next_++ % 16384) * block_bytes, block_), "probe write");
    check(dev_->flush(), "probe flush");
    return us(clock_type::now() - t0);
  }

 private:
  std::filesystem::path file_;
  std::shared_ptr<FileDevice> dev_;
  std::vector<std::byte> block_;
  std::uint64_t next_ = 0;
};

struct CreateSample {
  double total_us = 0, commit_us = 0, probe_us = 0;
  bool synced = false;
};

void print_create_table(const std::vector<CreateSample>& samples, std::uint64_t count) {
  std::printf("| N | create median µs | p90 µs | max µs | of which commit, median µs | without the commit, median µs | peer: 4 KiB write+fdatasync, median µs | create / peer | create with fdatasync off, median µs (p90) | calls (each kind) |\n"
              "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (std::uint64_t n : checkpoints) {
    if (n > count) break;
    const std::uint64_t from = n >= window_calls ? n - window_calls : 0;  // samples[k] is call k+1
    std::vector<double> total, commit, rest, probe, unsynced;
    for (std::uint64_t k = from; k < n; ++k) {
      const CreateSample& c = samples[k];
      if (!c.synced) {
        unsynced.push_back(c.total_us);
        continue;
      }
      total.push_back(c.total_us);
      commit.push_back(c.commit_us);
      rest.push_back(c.total_us - c.commit_us);
      probe.push_back(c.probe_us);
    }
    const Percentiles p = percentiles(total), u = percentiles(unsynced);
    const double peer = percentiles(probe).median;
    std::printf("| %llu | %.0f | %.0f | %.0f | %.0f | %.1f | %.0f | %.2f | %s | %zu |\n",
                static_cast<unsigned long long>(n), p.median, p.p90, p.max, percentiles(commit).median,
                percentiles(rest).median, peer, peer > 0 ? p.median / peer : 0.0,
                unsynced.empty() ? "—" : (std::to_string(static_cast<long>(u.median)) + " (" +
                                          std::to_string(static_cast<long>(u.p90)) + ")").c_str(),
                total.size());
  }
}

int create_bench(const std::filesystem::path& dir, std::uint64_t count, std::uint64_t writes_between) {
  const auto file = dir / "snapshot-bench.pool";
  constexpr std::uint64_t origin_size = 1ull << 30;
  make_pool(file, origin_size, pool_file_size_for(origin_size) + count * 64 * 1024);
  auto pool = open_pool(file, true, false);
  const std::uint64_t origin = volume_id(*pool, "origin");
  SyncProbe probe(dir / "fdatasync-probe");
  std::mt19937_64 rng(1);
  fill_volume(*pool, origin, origin_size, rng);  // a fully written 1 GiB origin
  std::vector<CreateSample> samples(count);
  const auto started = clock_type::now();
  for (std::uint64_t n = 1; n <= count; ++n) {
    const bool measured = in_window(n, count);
    // Commits sync only on every other call of a measured window: elsewhere they do the
    // same work but skip the fdatasyncs, so that reaching N = 100,000 takes minutes,
    // and the unsynced calls of a window show what a create costs besides its syncs.
    samples[n - 1].synced = synced_call(n, count);
    pool.device->set_syncs(samples[n - 1].synced);
    random_writes(*pool, origin, origin_size, writes_between, rng);
    // In a measured window the writes get a commit of their own, which is not the
    // snapshot's; elsewhere the snapshot's commit takes them too.
    if (measured) check(pool->flush(), "flush");
    const std::uint64_t commit_before = pool->stats().commit_us_total;
    const auto t0 = clock_type::now();
    std::string name = "s";  // not "s" + to_string(n): g++ 12 -O3 warns (-Wrestrict), wrongly
    name += std::to_string(n);
    auto r = pool->create_snapshot("origin", name, false);
    samples[n - 1].total_us = us(clock_type::now() - t0);
    samples[n - 1].commit_us = static_cast<double>(pool->stats().commit_us_total - commit_before);
    if (!r) die(r.status().to_string());
    if (samples[n - 1].synced) samples[n - 1].probe_us = probe.measure_us();
    if (n % 10000 == 0)
      std::fprintf(stderr, "snapshot_bench: %llu snapshots, %.0f s\n",
                   static_cast<unsigned long long>(n), seconds_since(started));
  }
  print_create_table(samples, count);
  std::printf("\n%llu snapshots (with %llu random 4k write(s) to origin before each) in %.0f s\n",
              static_cast<unsigned long long>(count), static_cast<unsigned long long>(writes_between),
              seconds_since(started));
  print_space(*pool, "after the last snapshot");
  pool.device->set_syncs(true);
  pool.close();
  std::filesystem::remove(file);
  return 0;
}

// ---- reclaim ----

// Paced 4k reads of a volume (one every 500 µs) until done() or `reads` of them.
template <class Done>
std::vector<double> paced_reads(Pool& pool, std::uint64_t volume, std::uint64_t size,
                                std::mt19937_64& rng, std::size_t reads, Done done) {
  std::vector<double> out;
  std::vector<std::byte> block(block_bytes);
  while (out.size() < reads && !done()) {
    const auto r0 = clock_type::now();
    check(pool.read(volume, (rng() % (size / block_bytes)) * block_bytes, block), "read");
    out.push_back(us(clock_type::now() - r0));
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return out;
}

void print_reads(const char* what, const std::vector<double>& v) {
  const Percentiles p = percentiles(v);
  std::printf("| %s | %zu | %.1f | %.1f | %.0f |\n", what, v.size(), p.median, p.p90, p.max);
}

int reclaim_bench(const std::filesystem::path& dir, std::uint64_t size) {
  const auto file = dir / "snapshot-bench.pool";
  make_pool(file, 2 * size, pool_file_size_for(2 * size));
  auto pool = open_pool(file, true, true);
  const std::uint64_t origin = volume_id(*pool, "origin");
  std::mt19937_64 rng(2);
  fill_volume(*pool, origin, size, rng);  // origin: `size` bytes of data
  auto snap = pool->create_snapshot("origin", "victim", false);
  if (!snap) die(snap.status().to_string());
  fill_volume(*pool, snap->id, size, rng);  // the snapshot diverges fully
  auto usage = pool->usage(snap->id);
  if (!usage) die(usage.status().to_string());
  std::printf("snapshot to delete owns %.1f MiB alone (exclusive), %.1f MiB shared\n",
              usage->exclusive_bytes / 1048576.0, usage->shared_bytes / 1048576.0);
  auto never = [] { return false; };
  const auto before_reads = paced_reads(*pool, origin, size, rng, 2000, never);
  const PoolStats before = pool->stats();
  const auto t0 = clock_type::now();
  check(pool->delete_volume("victim"), "delete");
  const double delete_us = us(clock_type::now() - t0);
  const auto during_reads = paced_reads(*pool, origin, size, rng, ~std::size_t{0},
                                        [&] { return pool->stats().reclaim_pending_volumes == 0; });
  const double reclaim_s = seconds_since(t0);
  check(pool->flush(), "flush");
  const PoolStats after = pool->stats();
  const double freed_mib = (after.data_blocks_free - before.data_blocks_free) * 4096.0 / 1048576.0;
  const auto after_reads = paced_reads(*pool, origin, size, rng, 2000, never);
  std::printf("delete returned in %.0f µs; reclaim finished in %.2f s: %.0f MiB freed, %.0f MiB/s; "
              "%llu commits during reclaim\n",
              delete_us, reclaim_s, freed_mib, freed_mib / reclaim_s,
              static_cast<unsigned long long>(after.commits - before.commits));
  std::printf("\n| 4k reads of origin, one per 500 µs | reads | median µs | p90 µs | max µs |\n"
              "|---|--:|--:|--:|--:|\n");
  print_reads("before the delete", before_reads);
  print_reads("during reclaim", during_reads);
  print_reads("after reclaim", after_reads);
  pool.close();
  std::filesystem::remove(file);
  return 0;
}

// ---- offline preparation ----

int prepare(const std::filesystem::path& file, std::uint64_t size, std::uint64_t snapshots,
            std::uint64_t writes_between, std::uint64_t spare, std::uint64_t seed) {
  if (size == 0 || size % block_bytes) die("--size must be a non-zero multiple of 4096");
  // Per snapshot: its writes' data, and (generously) the b-tree nodes they shadow, twice.
  const std::uint64_t per_snapshot = writes_between * block_bytes + (2 * writes_between + 4) * 8192;
  const std::uint64_t file_size = (pool_file_size_for(size) + snapshots * per_snapshot + spare + (1 << 20) - 1) >> 20 << 20;
  make_pool(file, size, file_size);
  auto pool = open_pool(file, false, false);
  std::mt19937_64 rng(seed);
  auto t0 = clock_type::now();
  fill_volume(*pool, volume_id(*pool, "origin"), size, rng);
  std::printf("%s: %llu MiB file; origin of %llu MiB filled in %.1f s\n", file.c_str(),
              static_cast<unsigned long long>(file_size >> 20), static_cast<unsigned long long>(size >> 20),
              seconds_since(t0));
  t0 = clock_type::now();
  SeriesOptions s;
  s.count = snapshots;
  s.writes_between = writes_between;
  s.writes_before_first = false;
  snapshot_series(*pool, s, rng);
  std::printf("%llu snapshots with %llu random 4k writes between them in %.1f s\n",
              static_cast<unsigned long long>(snapshots), static_cast<unsigned long long>(writes_between),
              seconds_since(t0));
  print_space(*pool, "prepared");
  pool.close();
  return 0;
}

int add_snapshots(const std::filesystem::path& file, const SeriesOptions& s) {
  auto pool = open_pool(file, false, false);
  std::mt19937_64 rng(s.start);
  const auto t0 = clock_type::now();
  snapshot_series(*pool, s, rng);
  std::printf("added %llu snapshots in %.1f s\n", static_cast<unsigned long long>(s.count), seconds_since(t0));
  pool.close();
  return 0;
}

int delete_snapshots(const std::filesystem::path& file, const SeriesOptions& s) {
  auto pool = open_pool(file, false, false);
  const auto t0 = clock_type::now();
  for (std::uint64_t i = 0; i < s.count; ++i)
    check(pool->delete_volume(s.prefix + std::to_string(s.start + i)), "delete");
  auto left = pool->reclaim();
  if (!left) die(left.status().to_string());
  std::printf("deleted %llu snapshots and reclaimed them in %.1f s\n",
              static_cast<unsigned long long>(s.count), seconds_since(t0));
  print_space(*pool, "after the deletes");
  pool.close();
  return 0;
}

int rollback(const std::filesystem::path& file, const std::string& volume, const std::string& snapshot) {
  auto pool = open_pool(file, false, false);
  const auto t0 = clock_type::now();
  check(pool->rollback(volume, snapshot), "rollback");
  auto left = pool->reclaim();
  if (!left) die(left.status().to_string());
  std::printf("rolled %s back to %s and reclaimed its old tree in %.2f s\n", volume.c_str(),
              snapshot.c_str(), seconds_since(t0));
  pool.close();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || std::strcmp(argv[1], "--help") == 0)
    die("usage: snapshot_bench create|reclaim DIR ... | prepare POOL --size S ... | add POOL COUNT ... | "
        "rollback POOL VOLUME SNAPSHOT (see the head of bench/snapshot_bench.cpp)");
  const std::string mode = argv[1];
  if (mode == "create")
    return create_bench(argv[2], std::stoull(option(argc, argv, "--count", "100000")),
                        std::stoull(option(argc, argv, "--writes-between", "1")));
  if (mode == "reclaim") return reclaim_bench(argv[2], size_option(argc, argv, "--size", "1G"));
  if (mode == "prepare")
    return prepare(argv[2], size_option(argc, argv, "--size", "1G"),
                   std::stoull(option(argc, argv, "--snapshots", "0")),
                   std::stoull(option(argc, argv, "--writes-between", "16")),
                   option(argc, argv, "--spare", "").empty()
                       ? size_option(argc, argv, "--size", "1G") + (256 << 20)
                       : size_option(argc, argv, "--spare", "0"),
                   std::stoull(option(argc, argv, "--seed", "1")));
  if (mode == "add" && argc >= 4) {
    SeriesOptions s;
    s.count = std::stoull(argv[3]);
    s.source = option(argc, argv, "--source", "origin");
    s.prefix = option(argc, argv, "--prefix", "snap-");
    s.start = std::stoull(option(argc, argv, "--start", "1"));
    s.writes_between = std::stoull(option(argc, argv, "--writes-between", "0"));
    return add_snapshots(argv[2], s);
  }
  if (mode == "delete" && argc >= 4) {
    SeriesOptions s;
    s.count = std::stoull(argv[3]);
    s.prefix = option(argc, argv, "--prefix", "snap-");
    s.start = std::stoull(option(argc, argv, "--start", "1"));
    return delete_snapshots(argv[2], s);
  }
  if (mode == "rollback" && argc >= 5) return rollback(argv[2], argv[3], argv[4]);
  die("unknown mode or missing arguments: " + mode + " (try --help)");
}
