// Unit tests for the device layer: FileDevice, MemoryDevice (faults) and CrashDevice
// (the power-cut model stated in store/crash_device.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/crash_device.h"
#include "store/file_device.h"
#include "store/memory_device.h"

namespace snapstore {
namespace {

using Bytes = std::vector<std::byte>;

Bytes filled(std::size_t n, unsigned char value) {
  return Bytes(n, std::byte{value});
}

Bytes read_back(BlockDevice& dev, std::uint64_t offset, std::size_t n) {
  Bytes out(n, std::byte{0xEE});
  Status st = dev.read(offset, out);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return out;
}

bool all_equal(const Bytes& bytes, std::size_t from, std::size_t to, unsigned char value) {
  for (std::size_t i = from; i < to; ++i)
    if (bytes[i] != std::byte{value}) return false;
  return true;
}

// A fresh directory per test, removed afterwards.
class FileDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "device_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path pool() const { return dir_ / "pool.img"; }

  std::filesystem::path dir_;
};

constexpr std::uint64_t mib = 1 << 20;

TEST_F(FileDeviceTest, CreatesASparseFileOfTheRequestedSize) {
  auto dev = FileDevice::open(pool(), {.create = true, .create_size = 64 * mib});
  ASSERT_TRUE(dev) << dev.status().to_string();
  EXPECT_EQ((*dev)->size(), 64 * mib);
  EXPECT_EQ((*dev)->name(), pool().string());
  EXPECT_FALSE((*dev)->is_block_device());
  struct stat sb {};
  ASSERT_EQ(::stat(pool().c_str(), &sb), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(sb.st_size), 64 * mib);
  EXPECT_LT(static_cast<std::uint64_t>(sb.st_blocks) * 512, mib) << "file is not sparse";
  EXPECT_EQ(read_back(**dev, 10 * mib, 4096), filled(4096, 0));
}

TEST_F(FileDeviceTest, WritesReadBackAndSurviveReopen) {
  {
    auto dev = FileDevice::open(pool(), {.create = true, .create_size = mib});
    ASSERT_TRUE(dev) << dev.status().to_string();
    ASSERT_TRUE((*dev)->write(1000, filled(5000, 0xAB)).is_ok());
    ASSERT_TRUE((*dev)->flush().is_ok());
    EXPECT_EQ(read_back(**dev, 1000, 5000), filled(5000, 0xAB));
  }
  auto dev = FileDevice::open(pool(), {});
  ASSERT_TRUE(dev) << dev.status().to_string();
  EXPECT_EQ((*dev)->size(), mib);
  Bytes around = read_back(**dev, 999, 5002);
  EXPECT_EQ(around.front(), std::byte{0});
  EXPECT_TRUE(all_equal(around, 1, 5001, 0xAB));
  EXPECT_EQ(around.back(), std::byte{0});
}

// Large aligned writes bypass the page cache (O_DIRECT where the file system has it),
// from aligned and unaligned buffers alike; reads through the mapping (which cached the
// old bytes first), a second descriptor and a reopen all see the new bytes, and small or
// unaligned writes around them keep working.
TEST_F(FileDeviceTest, LargeWritesBypassThePageCacheAndReadBackEverywhere) {
  auto dev = FileDevice::open(pool(), {.create = true, .create_size = 16 * mib});
  ASSERT_TRUE(dev) << dev.status().to_string();
  ASSERT_TRUE((*dev)->write(0, filled(4 * mib, 0x11)).is_ok());
  EXPECT_EQ(read_back(**dev, 0, 4 * mib), filled(4 * mib, 0x11));  // now in the mapping
  std::mt19937_64 rng(3);
  Bytes big(mib + 8);
  for (auto& b : big) b = std::byte(rng());
  const std::span<const std::byte> aligned_src(big.data(), mib);       // vector storage
  const std::span<const std::byte> odd_src(big.data() + 8, mib);       // surely unaligned
  ASSERT_TRUE((*dev)->write(mib, aligned_src).is_ok());
  ASSERT_TRUE((*dev)->write(2 * mib, odd_src).is_ok());
  ASSERT_TRUE((*dev)->write(3 * mib + 100, filled(300 << 10, 0x22)).is_ok());  // unaligned offset
  auto expect_contents = [&](BlockDevice& d) {
    EXPECT_TRUE(read_back(d, mib, mib) == Bytes(aligned_src.begin(), aligned_src.end()));
    EXPECT_TRUE(read_back(d, 2 * mib, mib) == Bytes(odd_src.begin(), odd_src.end()));
    Bytes tail = read_back(d, 3 * mib, mib);
    EXPECT_TRUE(all_equal(tail, 0, 100, 0x11));
    EXPECT_TRUE(all_equal(tail, 100, 100 + (300 << 10), 0x22));
    EXPECT_TRUE(all_equal(tail, 100 + (300 << 10), mib, 0x11));
    EXPECT_TRUE(all_equal(read_back(d, 0, mib), 0, mib, 0x11));
  };
  expect_contents(**dev);
  ASSERT_TRUE((*dev)->flush().is_ok());
  {
    auto reader = FileDevice::open(pool(), {.read_only = true});
    if (reader) expect_contents(**reader);  // a shared lock may be refused while we hold it
  }
  dev->reset();
  auto again = FileDevice::open(pool(), {});
  ASSERT_TRUE(again) << again.status().to_string();
  expect_contents(**again);
}

TEST_F(FileDeviceTest, DiscardReadsBackZeroesOnAFile) {
  auto dev = FileDevice::open(pool(), {.create = true, .create_size = mib});
  ASSERT_TRUE(dev) << dev.status().to_string();
  ASSERT_TRUE((*dev)->write(0, filled(64 * 1024, 0x5A)).is_ok());
  ASSERT_TRUE((*dev)->discard(4096, 8192).is_ok());
  Bytes all = read_back(**dev, 0, 64 * 1024);
  EXPECT_TRUE(all_equal(all, 0, 4096, 0x5A));
  EXPECT_TRUE(all_equal(all, 4096, 12288, 0));
  EXPECT_TRUE(all_equal(all, 12288, all.size(), 0x5A));
  EXPECT_EQ((*dev)->size(), mib) << "discard must keep the size";
}

TEST_F(FileDeviceTest, OutOfRangeRequestsAreInvalidArguments) {
  auto dev = FileDevice::open(pool(), {.create = true, .create_size = 4096});
  ASSERT_TRUE(dev) << dev.status().to_string();
  Bytes buf(16);
  EXPECT_EQ((*dev)->read(4090, buf).code(), errc::invalid_argument);
  EXPECT_EQ((*dev)->write(~0ull - 4, buf).code(), errc::invalid_argument);
  EXPECT_EQ((*dev)->discard(4096, 1).code(), errc::invalid_argument);
  EXPECT_TRUE((*dev)->read(4080, buf).is_ok());
}

TEST_F(FileDeviceTest, SecondOpenOfALockedPoolFailsClearly) {
  {
    auto first = FileDevice::open(pool(), {.create = true, .create_size = mib});
    ASSERT_TRUE(first) << first.status().to_string();
    auto second = FileDevice::open(pool(), {.create = true, .create_size = mib});
    ASSERT_FALSE(second);
    EXPECT_EQ(second.status().code(), errc::busy);
    EXPECT_EQ(second.status().message(),
              "pool " + pool().string() + " is in use by another process");
    auto reader = FileDevice::open(pool(), {.read_only = true});
    ASSERT_FALSE(reader) << "a reader must not see a pool a writer holds";
    EXPECT_EQ(reader.status().code(), errc::busy);
  }
  auto after_close = FileDevice::open(pool(), {});  // the lock went with the first device
  EXPECT_TRUE(after_close) << after_close.status().to_string();
}

TEST_F(FileDeviceTest, ReadOnlyOpensShareAndRefuseWrites) {
  ASSERT_TRUE(FileDevice::open(pool(), {.create = true, .create_size = mib}));
  auto a = FileDevice::open(pool(), {.read_only = true});
  auto b = FileDevice::open(pool(), {.read_only = true});
  ASSERT_TRUE(a) << a.status().to_string();
  ASSERT_TRUE(b) << b.status().to_string();
  EXPECT_TRUE((*a)->read_only());
  EXPECT_EQ((*a)->write(0, filled(1, 1)).code(), errc::read_only);
  EXPECT_EQ((*a)->discard(0, 4096).code(), errc::read_only);
  EXPECT_EQ(read_back(**b, 0, 16), filled(16, 0));
  auto writer = FileDevice::open(pool(), {});
  ASSERT_FALSE(writer);
  EXPECT_EQ(writer.status().code(), errc::busy);
}

TEST_F(FileDeviceTest, MissingFileWithoutCreateFailsNamingThePath) {
  auto dev = FileDevice::open(pool(), {});
  ASSERT_FALSE(dev);
  EXPECT_EQ(dev.status().code(), errc::not_found);
  EXPECT_NE(dev.status().message().find(pool().string()), std::string::npos)
      << dev.status().message();
  EXPECT_FALSE(std::filesystem::exists(pool())) << "a failed open must not create the file";
}

TEST_F(FileDeviceTest, CreateWithoutASizeFails) {
  auto dev = FileDevice::open(pool(), {.create = true});
  ASSERT_FALSE(dev);
  EXPECT_EQ(dev.status().code(), errc::invalid_argument);
  EXPECT_FALSE(std::filesystem::exists(pool()));
}

TEST_F(FileDeviceTest, ADirectoryIsRefused) {
  for (bool read_only : {false, true}) {
    auto dev = FileDevice::open(dir_, {.read_only = read_only});
    ASSERT_FALSE(dev);
    EXPECT_EQ(dev.status().code(), errc::invalid_argument);
    EXPECT_EQ(dev.status().message(),
              dir_.string() + " is a directory, not a file or block device");
  }
}

TEST_F(FileDeviceTest, AnEmptyFileIsRefused) {
  int fd = ::open(pool().c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto dev = FileDevice::open(pool(), {});
  ASSERT_FALSE(dev);
  EXPECT_EQ(dev.status().code(), errc::invalid_argument);
  EXPECT_NE(dev.status().message().find("empty"), std::string::npos);
}

// Reads come from a mapping of the file (file_device.h, invariant 3): they must see every
// write at once, and a fault on the mapping must be an error for that read, not a crash.
TEST_F(FileDeviceTest, ReadsSeeEachWriteAtOnce) {
  auto dev = FileDevice::open(pool(), {.create = true, .create_size = mib});
  ASSERT_TRUE(dev) << dev.status().to_string();
  for (unsigned char v : {0x11, 0x22, 0x33}) {
    ASSERT_TRUE((*dev)->write(8192, filled(4096, v)).is_ok());
    EXPECT_EQ(read_back(**dev, 8192, 4096), filled(4096, v));
  }
  ASSERT_TRUE((*dev)->discard(8192, 4096).is_ok());
  EXPECT_EQ(read_back(**dev, 8192, 4096), filled(4096, 0));
}

TEST_F(FileDeviceTest, AReadPastAShrunkFileIsAnIoErrorNotACrash) {
  auto dev = FileDevice::open(pool(), {.create = true, .create_size = mib});
  ASSERT_TRUE(dev) << dev.status().to_string();
  ASSERT_TRUE((*dev)->write(0, filled(mib, 0x44)).is_ok());
  EXPECT_EQ(read_back(**dev, mib - 4096, 4096), filled(4096, 0x44));
  ASSERT_EQ(::truncate(pool().c_str(), 64 * 1024), 0);  // someone else shrinks it
  Bytes out(8192);
  Status st = (*dev)->read(mib - 8192, out);
  EXPECT_EQ(st.code(), errc::io_error) << st.to_string();
  EXPECT_EQ(read_back(**dev, 0, 4096), filled(4096, 0x44)) << "what is left still reads";
}

// ---- MemoryDevice ----

TEST(MemoryDevice, ReadsWritesDiscardsAndCounts) {
  MemoryDevice dev(8192);
  EXPECT_EQ(dev.size(), 8192u);
  EXPECT_EQ(dev.name(), "memory");
  ASSERT_TRUE(dev.write(100, filled(200, 7)).is_ok());
  EXPECT_EQ(read_back(dev, 100, 200), filled(200, 7));
  ASSERT_TRUE(dev.discard(150, 50).is_ok());
  Bytes b = read_back(dev, 100, 200);
  EXPECT_TRUE(all_equal(b, 0, 50, 7));
  EXPECT_TRUE(all_equal(b, 50, 100, 0));
  ASSERT_TRUE(dev.flush().is_ok());
  EXPECT_EQ(dev.write_count(), 1u);
  EXPECT_EQ(dev.read_count(), 2u);
  EXPECT_EQ(dev.flush_count(), 1u);
  EXPECT_EQ(dev.discard_count(), 1u);
  EXPECT_EQ(dev.write(8000, filled(200, 1)).code(), errc::invalid_argument);
}

TEST(MemoryDevice, NthWriteFailsOnce) {
  MemoryDevice dev(4096);
  ASSERT_TRUE(dev.write(0, filled(1, 1)).is_ok());
  dev.fail_nth(device_op::write, 3);  // third write from now
  EXPECT_TRUE(dev.write(0, filled(1, 2)).is_ok());
  EXPECT_TRUE(dev.write(0, filled(1, 3)).is_ok());
  Status st = dev.write(0, filled(1, 4));
  EXPECT_EQ(st.code(), errc::io_error);
  EXPECT_NE(st.message().find("write #4"), std::string::npos) << st.message();
  EXPECT_EQ(read_back(dev, 0, 1), filled(1, 3)) << "a failed write changes nothing";
  EXPECT_TRUE(dev.write(0, filled(1, 5)).is_ok());
  EXPECT_EQ(read_back(dev, 0, 1), filled(1, 5));
  EXPECT_EQ(dev.write_count(), 5u);
}

TEST(MemoryDevice, NthWriteFailsForeverUntilCleared) {
  MemoryDevice dev(4096);
  dev.fail_nth(device_op::write, 2, fault_repeat::forever, errc::no_space);
  EXPECT_TRUE(dev.write(0, filled(1, 1)).is_ok());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(dev.write(0, filled(1, 2)).code(), errc::no_space);
  Bytes one(1);
  EXPECT_TRUE(dev.read(0, one).is_ok()) << "reads are unaffected";
  EXPECT_EQ(read_back(dev, 0, 1), filled(1, 1));
  dev.clear_faults();
  EXPECT_TRUE(dev.write(0, filled(1, 3)).is_ok());
}

TEST(MemoryDevice, ReadAndFlushFaults) {
  MemoryDevice dev(4096);
  dev.fail_nth(device_op::read, 1);
  dev.fail_nth(device_op::flush, 2, fault_repeat::once, errc::corruption);
  Bytes out(4, std::byte{9});
  EXPECT_EQ(dev.read(0, out).code(), errc::io_error);
  EXPECT_EQ(out, filled(4, 9)) << "a failed read leaves the buffer alone";
  EXPECT_TRUE(dev.read(0, out).is_ok());
  EXPECT_TRUE(dev.flush().is_ok());
  EXPECT_EQ(dev.flush().code(), errc::corruption);
  EXPECT_TRUE(dev.flush().is_ok());
  EXPECT_EQ(dev.flush_count(), 3u);
}

TEST(MemoryDevice, BitFlipIsVisibleOnRead) {
  MemoryDevice dev(4096);
  ASSERT_TRUE(dev.write(0, filled(16, 0xF0)).is_ok());
  ASSERT_TRUE(dev.flip_bit(5, 0).is_ok());
  ASSERT_TRUE(dev.flip_bit(6, 7).is_ok());
  Bytes b = read_back(dev, 0, 16);
  EXPECT_EQ(b[4], std::byte{0xF0});
  EXPECT_EQ(b[5], std::byte{0xF1});
  EXPECT_EQ(b[6], std::byte{0x70});
  EXPECT_EQ(dev.flip_bit(4096, 0).code(), errc::invalid_argument);
  EXPECT_EQ(dev.flip_bit(0, 8).code(), errc::invalid_argument);
}

TEST(MemoryDevice, StartsFromAnImage) {
  Bytes image = filled(1024, 3);
  image[10] = std::byte{4};
  MemoryDevice dev(image, "img");
  EXPECT_EQ(dev.size(), 1024u);
  EXPECT_EQ(dev.name(), "img");
  EXPECT_EQ(dev.contents(), image);
}

// ---- CrashDevice ----

constexpr std::uint64_t dev_size = 64 * 1024;

TEST(CrashDevice, FlushedWritesAreDurableUnderEveryMode) {
  CrashDevice dev(dev_size);
  ASSERT_TRUE(dev.write(0, filled(4096, 1)).is_ok());
  ASSERT_TRUE(dev.write(8192, filled(4096, 2)).is_ok());
  ASSERT_TRUE(dev.flush().is_ok());
  EXPECT_EQ(dev.unflushed_count(), 0u);
  std::mt19937_64 rng(1);
  for (CrashMode mode : {CrashMode::keep_none, CrashMode::keep_all, CrashMode::random_subset,
                         CrashMode::random_subset_torn}) {
    Bytes image = dev.crash_image(rng, mode);
    EXPECT_TRUE(all_equal(image, 0, 4096, 1));
    EXPECT_TRUE(all_equal(image, 4096, 8192, 0));
    EXPECT_TRUE(all_equal(image, 8192, 12288, 2));
    EXPECT_EQ(image, dev.durable_image());
  }
  EXPECT_EQ(dev.flush_points(), std::vector<std::uint64_t>{2});
}

TEST(CrashDevice, KeepNoneDropsUnflushedWritesAndKeepAllAppliesThem) {
  CrashDevice dev(dev_size);
  ASSERT_TRUE(dev.write(0, filled(4096, 1)).is_ok());
  ASSERT_TRUE(dev.flush().is_ok());
  ASSERT_TRUE(dev.write(0, filled(1024, 2)).is_ok());
  ASSERT_TRUE(dev.write(512, filled(1024, 3)).is_ok());  // overlaps: later wins
  ASSERT_TRUE(dev.discard(3072, 1024).is_ok());
  EXPECT_EQ(dev.unflushed_count(), 3u);
  Bytes visible = read_back(dev, 0, dev_size);

  std::mt19937_64 rng(7);
  Bytes none = dev.crash_image(rng, CrashMode::keep_none);
  EXPECT_TRUE(all_equal(none, 0, 4096, 1));
  Bytes all = dev.crash_image(rng, CrashMode::keep_all);
  EXPECT_EQ(all, visible) << "keep_all is what reads saw";
  EXPECT_TRUE(all_equal(all, 0, 512, 2));
  EXPECT_TRUE(all_equal(all, 512, 1536, 3));
  EXPECT_TRUE(all_equal(all, 1536, 3072, 1));
  EXPECT_TRUE(all_equal(all, 3072, 4096, 0));
}

TEST(CrashDevice, RandomSubsetKeepsWholeWritesInOrder) {
  CrashDevice dev(dev_size);
  for (unsigned i = 0; i < 8; ++i)
    ASSERT_TRUE(dev.write(i * 4096, filled(4096, static_cast<unsigned char>(i + 1))).is_ok());
  std::set<unsigned> seen_kept_counts;
  for (std::uint64_t seed = 0; seed < 64; ++seed) {
    std::mt19937_64 rng(seed);
    Bytes image = dev.crash_image(rng, CrashMode::random_subset);
    unsigned kept = 0;
    for (unsigned i = 0; i < 8; ++i) {
      const bool whole = all_equal(image, i * 4096, (i + 1) * 4096, i + 1);
      const bool gone = all_equal(image, i * 4096, (i + 1) * 4096, 0);
      EXPECT_TRUE(whole || gone) << "seed " << seed << " write " << i << " is torn";
      kept += whole;
    }
    seen_kept_counts.insert(kept);
  }
  EXPECT_GT(seen_kept_counts.size(), 3u) << "subsets should vary with the seed";
}

TEST(CrashDevice, TornWritesApplySectorPrefixesOnly) {
  CrashDevice dev(dev_size);
  const std::uint64_t offset = 1000;  // not sector aligned: sectors 1..9 are touched
  const std::uint64_t length = 4000;
  ASSERT_TRUE(dev.write(offset, filled(length, 0xCC)).is_ok());
  std::set<std::uint64_t> prefix_lengths;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    std::mt19937_64 rng(seed);
    Bytes image = dev.crash_image(rng, CrashMode::random_subset_torn);
    std::uint64_t applied = 0;
    while (applied < length && image[offset + applied] == std::byte{0xCC}) ++applied;
    ASSERT_TRUE(all_equal(image, offset + applied, offset + length, 0))
        << "seed " << seed << ": only a prefix may be applied";
    ASSERT_TRUE(all_equal(image, 0, offset, 0));
    const std::uint64_t end = offset + applied;
    ASSERT_TRUE(applied == 0 || applied == length || end % CrashDevice::sector_size == 0)
        << "seed " << seed << ": torn at " << end << ", not a sector boundary";
    prefix_lengths.insert(applied);
  }
  EXPECT_TRUE(prefix_lengths.count(0)) << "some crashes drop the write";
  EXPECT_TRUE(prefix_lengths.count(length)) << "some crashes keep it whole";
  EXPECT_GT(prefix_lengths.size(), 4u) << "and several tear it at different sectors";
}

TEST(CrashDevice, SingleSectorWritesAreNeverTorn) {
  CrashDevice dev(dev_size);
  ASSERT_TRUE(dev.write(512, filled(512, 9)).is_ok());
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    std::mt19937_64 rng(seed);
    Bytes image = dev.crash_image(rng, CrashMode::random_subset_torn);
    EXPECT_TRUE(all_equal(image, 512, 1024, 9) || all_equal(image, 512, 1024, 0));
  }
}

TEST(CrashDevice, PowerCutAtKFailsWriteKAndKeepsEarlierWrites) {
  CrashDevice dev(dev_size);
  dev.cut_power_at(3);
  for (unsigned i = 0; i < 3; ++i)
    ASSERT_TRUE(dev.write(i * 512, filled(512, static_cast<unsigned char>(i + 1))).is_ok());
  EXPECT_FALSE(dev.power_is_cut());
  EXPECT_EQ(dev.write_count(), 3u);
  Status st = dev.write(3 * 512, filled(512, 4));
  EXPECT_EQ(st.code(), errc::io_error);
  EXPECT_TRUE(dev.power_is_cut());
  EXPECT_EQ(dev.write(4 * 512, filled(512, 5)).code(), errc::io_error);
  EXPECT_EQ(dev.flush().code(), errc::io_error);
  Bytes one(1);
  EXPECT_EQ(dev.read(0, one).code(), errc::io_error);
  EXPECT_EQ(dev.write_count(), 5u);

  std::mt19937_64 rng(3);
  Bytes all = dev.crash_image(rng, CrashMode::keep_all);
  for (unsigned i = 0; i < 3; ++i)
    EXPECT_TRUE(all_equal(all, i * 512, (i + 1) * 512, i + 1)) << "write " << i;
  EXPECT_TRUE(all_equal(all, 3 * 512, dev_size, 0)) << "writes from K on leave no trace";
  EXPECT_EQ(dev.unflushed_count(), 3u);
}

TEST(CrashDevice, PowerCutInThePastCutsAtOnce) {
  CrashDevice dev(dev_size);
  ASSERT_TRUE(dev.write(0, filled(1, 1)).is_ok());
  ASSERT_TRUE(dev.write(1, filled(1, 1)).is_ok());
  dev.cut_power_at(1);
  EXPECT_TRUE(dev.power_is_cut());
  EXPECT_EQ(dev.flush().code(), errc::io_error);
}

TEST(CrashDevice, DiscardsAreNumberedAndLoggedAsZeroes) {
  CrashDevice dev(filled(dev_size, 0xFF));
  ASSERT_TRUE(dev.discard(0, 4096).is_ok());
  EXPECT_EQ(dev.write_count(), 1u);
  EXPECT_TRUE(all_equal(read_back(dev, 0, 4096), 0, 4096, 0));
  std::mt19937_64 rng(0);
  EXPECT_TRUE(all_equal(dev.crash_image(rng, CrashMode::keep_none), 0, 4096, 0xFF));
  EXPECT_TRUE(all_equal(dev.crash_image(rng, CrashMode::keep_all), 0, 4096, 0));
}

Bytes run_workload_and_crash(std::uint64_t seed) {
  CrashDevice dev(dev_size);
  for (unsigned i = 0; i < 20; ++i) {
    EXPECT_TRUE(dev.write((i * 1237) % (dev_size - 3000), filled(3000, i + 1)).is_ok());
    if (i == 9) {
      EXPECT_TRUE(dev.flush().is_ok());
    }
  }
  std::mt19937_64 rng(seed);
  return dev.crash_image(rng, CrashMode::random_subset_torn);
}

TEST(CrashDevice, RandomSubsetsAreReproducibleBySeed) {
  EXPECT_EQ(run_workload_and_crash(42), run_workload_and_crash(42));
  EXPECT_EQ(run_workload_and_crash(43), run_workload_and_crash(43));
  EXPECT_NE(run_workload_and_crash(42), run_workload_and_crash(43));
}

TEST(CrashDevice, ImageDeviceReopensACrashImage) {
  CrashDevice dev(dev_size);
  ASSERT_TRUE(dev.write(0, filled(512, 1)).is_ok());
  ASSERT_TRUE(dev.flush().is_ok());
  ASSERT_TRUE(dev.write(512, filled(512, 2)).is_ok());
  std::mt19937_64 rng(0);
  auto reopened = image_device(dev.crash_image(rng, CrashMode::keep_none));
  EXPECT_EQ(reopened->size(), dev_size);
  EXPECT_EQ(read_back(*reopened, 0, 1024).front(), std::byte{1});
  EXPECT_EQ(read_back(*reopened, 512, 512), filled(512, 0));
}

TEST(CrashDevice, RestartFromAnImagePowersBackOn) {
  CrashDevice dev(dev_size);
  dev.cut_power_at(1);
  ASSERT_TRUE(dev.write(0, filled(512, 1)).is_ok());
  ASSERT_FALSE(dev.write(512, filled(512, 2)).is_ok());
  std::mt19937_64 rng(0);
  ASSERT_TRUE(dev.restart_from(dev.crash_image(rng, CrashMode::keep_all)).is_ok());
  EXPECT_FALSE(dev.power_is_cut());
  EXPECT_EQ(dev.unflushed_count(), 0u);
  EXPECT_EQ(read_back(dev, 0, 512), filled(512, 1));
  EXPECT_TRUE(dev.write(512, filled(512, 3)).is_ok());
  EXPECT_EQ(dev.restart_from(Bytes(10)).code(), errc::invalid_argument);
}

}  // namespace
}  // namespace snapstore
