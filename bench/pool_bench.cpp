// pool_bench: the pool engine's own cost per operation, without NBD or a client: CPU time
// (getrusage, all threads) and wall time per operation on a pool file.
//
//   pool_bench POOL SIZE_MIB [--spare MIB] [--prealloc] JOB...
//     JOB: flush:N | randwrite:N | seqwrite:N | seqread:N | randread:N
// POOL is created (an origin of SIZE_MIB, the pool file sized as `snapstored format --size
// SIZE+SPARE` makes it, written full of zeroes first with --prealloc) and the origin is
// filled with random data by 1 MiB writes before the jobs run. flush:N = N times (one
// 4 KiB random write, then a flush); seq* go through the volume 1 MiB at a time.
// Build: the pool_bench target (bench/CMakeLists.txt), best in a Release build directory.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "store/file_device.h"
#include "volume/pool.h"

using namespace snapstore;

namespace {

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void die(const std::string& what, const Status& st) {
  std::fprintf(stderr, "pool_bench: %s: %s\n", what.c_str(), st.to_string().c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: pool_bench POOL SIZE_MIB [--spare MIB] [--prealloc] JOB...\n");
    return 2;
  }
  const std::string path = argv[1];
  const std::uint64_t size = std::strtoull(argv[2], nullptr, 10) << 20;
  int arg = 3;
  bool prealloc = false;
  std::uint64_t spare = 0;
  for (; arg < argc && std::string(argv[arg]).starts_with("--"); ++arg) {
    if (std::string(argv[arg]) == "--prealloc") {
      prealloc = true;
    } else if (std::string(argv[arg]) == "--spare" && arg + 1 < argc) {
      spare = std::strtoull(argv[++arg], nullptr, 10) << 20;
    } else {
      std::fprintf(stderr, "pool_bench: unknown option %s\n", argv[arg]);
      return 2;
    }
  }
  std::remove(path.c_str());
  const std::uint64_t file_size = pool_file_size_for(size + spare);
  auto dev = FileDevice::open(path, {.create = true, .create_size = file_size});
  if (!dev) die("open", dev.status());
  std::mt19937_64 rng(42);
  std::vector<std::byte> buf(1 << 20);
  for (auto& b : buf) b = std::byte(rng());
  if (prealloc) {
    std::vector<std::byte> zero(1 << 20);
    for (std::uint64_t o = 0; o < file_size; o += zero.size())
      if (Status st = (*dev)->write(o, std::span(zero).first(std::min<std::uint64_t>(zero.size(), file_size - o))); !st)
        die("prealloc", st);
    (void)(*dev)->flush();
  }
  FormatOptions fo;
  fo.origin_size = size;
  if (Status st = Pool::format({*dev}, fo); !st) die("format", st);
  auto pool = Pool::open({*dev}, PoolOptions{});
  if (!pool) die("pool open", pool.status());
  auto origin = (*pool)->find_volume("origin");
  if (!origin) die("origin", origin.status());
  const std::uint64_t vol = origin->id;
  for (std::uint64_t o = 0; o < size; o += buf.size())
    if (Status st = (*pool)->write(vol, o, buf, false); !st) die("fill", st);
  if (Status st = (*pool)->flush(); !st) die("flush", st);
  const std::uint64_t blocks = size / 4096;
  std::uint64_t seq = 0;
  for (; arg < argc; ++arg) {
    std::string job = argv[arg];
    const auto colon = job.find(':');
    const std::uint64_t n = colon == std::string::npos ? 1000 : std::strtoull(job.c_str() + colon + 1, nullptr, 10);
    job = job.substr(0, colon);
    const double c0 = cpu_seconds(), t0 = now();
    for (std::uint64_t i = 0; i < n; ++i) {
      Status st;
      if (job == "flush") {
        buf[0] = std::byte(i);
        st = (*pool)->write(vol, (rng() % blocks) * 4096, std::span(buf).first(4096), false);
        if (st) st = (*pool)->flush();
      } else if (job == "randwrite") {
        buf[0] = std::byte(i);
        st = (*pool)->write(vol, (rng() % blocks) * 4096, std::span(buf).first(4096), false);
      } else if (job == "randread") {
        st = (*pool)->read(vol, (rng() % blocks) * 4096, std::span(buf).first(4096));
      } else if (job == "seqwrite" || job == "seqread") {
        const std::uint64_t off = (seq++ % (size >> 20)) << 20;
        st = job == "seqwrite" ? (*pool)->write(vol, off, buf, false) : (*pool)->read(vol, off, buf);
      } else {
        std::fprintf(stderr, "unknown job %s\n", job.c_str());
        return 2;
      }
      if (!st) die(job, st);
    }
    const double c1 = cpu_seconds(), t1 = now();
    const PoolStats ps = (*pool)->stats();
    std::printf(
        "commits %llu  metadata %llu free of %llu  data %llu free of %llu  unallocated %llu MiB\n",
        static_cast<unsigned long long>(ps.commits),
        static_cast<unsigned long long>(ps.metadata_blocks_free),
        static_cast<unsigned long long>(ps.metadata_blocks),
        static_cast<unsigned long long>(ps.data_blocks_free),
        static_cast<unsigned long long>(ps.data_blocks),
        static_cast<unsigned long long>(ps.unallocated_bytes >> 20));
    std::printf("%-10s n=%-7llu cpu %8.1f us/op  wall %8.1f us/op\n", job.c_str(),
                static_cast<unsigned long long>(n), (c1 - c0) / n * 1e6, (t1 - t0) / n * 1e6);
  }
  if (Status st = (*pool)->close(); !st) die("close", st);
  return 0;
}
