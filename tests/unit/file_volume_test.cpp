// Unit tests for volume/file_volume.h: the raw file backend on the host file system, in a
// private temporary directory. Hole checks assume a file system with SEEK_HOLE and
// FALLOC_FL_PUNCH_HOLE at 4 KiB granularity or finer (ext4, xfs, btrfs, tmpfs).
#include "volume/file_volume.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "nbd_test_util.h"
#include "store/file_device.h"

namespace snapstore {
namespace {

using test::Bytes;
using test::hex;
using test::pattern;
using test::TempDir;

constexpr std::uint32_t hz = extent_hole | extent_zero;
constexpr std::uint64_t mib = 1 << 20;

FileVolumeOptions create_options(std::uint64_t size) {
  FileVolumeOptions o;
  o.create = true;
  o.create_size = size;
  return o;
}

struct stat stat_of(const std::filesystem::path& p) {
  struct stat sb {};
  EXPECT_EQ(::stat(p.c_str(), &sb), 0) << p;
  return sb;
}

void write_file(const std::filesystem::path& p, const Bytes& data) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

Bytes read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return test::bytes_of(s);
}

Bytes read(Volume& v, std::uint64_t offset, std::size_t n) {
  Bytes out(n, std::byte{0xee});
  Status st = v.read(offset, out);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return out;
}

std::vector<Extent> extents(Volume& v, std::uint64_t offset, std::uint64_t length) {
  auto r = v.block_status(offset, length);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? r.value() : std::vector<Extent>{};
}

Bytes slice(const Bytes& b, std::size_t from, std::size_t n) {
  return Bytes(b.begin() + static_cast<std::ptrdiff_t>(from),
               b.begin() + static_cast<std::ptrdiff_t>(from + n));
}

class FileVolumeTest : public ::testing::Test {
 protected:
  std::shared_ptr<FileVolume> create(std::uint64_t size = mib) {
    auto r = FileVolume::open(path_, create_options(size));
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? r.value() : nullptr;
  }

  TempDir dir_;
  std::filesystem::path path_ = dir_ / "volume.img";
};

// --- opening ---------------------------------------------------------------------------

TEST_F(FileVolumeTest, CreatesASparseFileOfTheRequestedSize) {
  auto v = create(16 * mib);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->size(), 16 * mib);
  EXPECT_FALSE(v->read_only());
  struct stat sb = stat_of(path_);
  EXPECT_TRUE(S_ISREG(sb.st_mode));
  EXPECT_EQ(static_cast<std::uint64_t>(sb.st_size), 16 * mib);
  EXPECT_EQ(sb.st_blocks, 0) << "a new volume file should be sparse";
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  EXPECT_EQ(extents(*v, 0, 16 * mib), (std::vector<Extent>{{16 * mib, hz}}));
  EXPECT_EQ(hex(read(*v, 0, 4096)), hex(Bytes(4096)));
}

TEST_F(FileVolumeTest, CreatingWithoutASizeFails) {
  auto r = FileVolume::open(path_, create_options(0));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), errc::invalid_argument);
  EXPECT_NE(r.status().message().find(path_.string()), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(FileVolumeTest, MissingFileWithoutCreateFails) {
  FileVolumeOptions o;
  o.create = false;
  o.create_size = mib;
  auto r = FileVolume::open(path_, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find(path_.string()), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(FileVolumeTest, MissingFileIsNotCreatedReadOnly) {
  FileVolumeOptions o = create_options(mib);
  o.read_only = true;
  auto r = FileVolume::open(path_, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(FileVolumeTest, MissingParentDirectoryFails) {
  auto r = FileVolume::open(dir_ / "no" / "such" / "file", create_options(mib));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("no/such/file"), std::string::npos);
}

TEST_F(FileVolumeTest, OpeningADirectoryForWritingFailsClearly) {
  auto r = FileVolume::open(dir_.path(), create_options(mib));
  ASSERT_FALSE(r.is_ok());
  const std::string& m = r.status().message();
  EXPECT_NE(m.find(dir_.path().string()), std::string::npos) << m;
  EXPECT_NE(m.find("Is a directory"), std::string::npos) << m;
}

TEST_F(FileVolumeTest, OpeningADirectoryReadOnlyFailsClearly) {
  FileVolumeOptions o;
  o.read_only = true;
  auto r = FileVolume::open(dir_.path(), o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), errc::invalid_argument);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find(dir_.path().string()), std::string::npos) << m;
  EXPECT_NE(m.find("neither a regular file nor a block device"), std::string::npos) << m;
}

TEST_F(FileVolumeTest, OpeningAnEmptyFileFailsClearly) {
  write_file(path_, {});
  auto r = FileVolume::open(path_, create_options(mib));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), errc::invalid_argument);
  EXPECT_NE(r.status().message().find("empty"), std::string::npos) << r.status().message();
  EXPECT_EQ(std::filesystem::file_size(path_), 0u);  // not grown to create_size
}

TEST_F(FileVolumeTest, ExistingFileKeepsItsSizeAndContent) {
  Bytes data = pattern(8192, 7);
  write_file(path_, data);
  auto v = create(mib);  // create_size is ignored for an existing file
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->size(), 8192u);
  EXPECT_EQ(std::filesystem::file_size(path_), 8192u);
  EXPECT_EQ(hex(read(*v, 0, 8192)), hex(data));
}

TEST_F(FileVolumeTest, ReadOnlyOpenReadsButNeverWrites) {
  Bytes data = pattern(8192, 8);
  write_file(path_, data);
  FileVolumeOptions o;
  o.read_only = true;
  auto r = FileVolume::open(path_, o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto& v = *r.value();
  EXPECT_TRUE(v.read_only());
  EXPECT_NE(v.description().find("read-only"), std::string::npos);
  EXPECT_EQ(hex(read(v, 4096, 4096)), hex(slice(data, 4096, 4096)));
  EXPECT_FALSE(v.write(0, pattern(512, 9), false).is_ok());
  EXPECT_EQ(hex(read_file(path_)), hex(data));
}

TEST_F(FileVolumeTest, DescriptionNamesTheFile) {
  auto v = create();
  ASSERT_NE(v, nullptr);
  EXPECT_NE(v->description().find(path_.string()), std::string::npos);
  EXPECT_EQ(v->description().find("read-only"), std::string::npos);
}

// --- the pool file lock ----------------------------------------------------------------
// FileVolume and FileDevice (the pool backend) take one lock, so that no two daemons serve
// one file unless both only read it.

FileVolumeOptions read_only_options() {
  FileVolumeOptions o;
  o.read_only = true;
  o.create = false;
  return o;
}

void expect_in_use(const Status& st, const std::filesystem::path& path) {
  EXPECT_EQ(st.code(), errc::busy) << st.to_string();
  EXPECT_EQ(st.message(), "pool " + path.string() + " is in use by another process");
}

TEST_F(FileVolumeTest, AWritableVolumeRefusesEveryOtherOpen) {
  auto v = create();
  ASSERT_NE(v, nullptr);
  expect_in_use(FileVolume::open(path_, create_options(mib)).status(), path_);
  expect_in_use(FileVolume::open(path_, read_only_options()).status(), path_);
  expect_in_use(FileDevice::open(path_, {.read_only = false}).status(), path_);
  expect_in_use(FileDevice::open(path_, {.read_only = true}).status(), path_);
  ASSERT_TRUE(v->write(0, pattern(4096, 1), false).is_ok()) << "the holder stopped working";
}

TEST_F(FileVolumeTest, AReadOnlyVolumeSharesTheFileWithReadersOnly) {
  write_file(path_, pattern(8192, 2));
  auto r = FileVolume::open(path_, read_only_options());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto second = FileVolume::open(path_, read_only_options());
  EXPECT_TRUE(second.is_ok()) << second.status().to_string();
  auto device = FileDevice::open(path_, {.read_only = true});
  EXPECT_TRUE(device.is_ok()) << device.status().to_string();
  expect_in_use(FileVolume::open(path_, create_options(mib)).status(), path_);
  expect_in_use(FileDevice::open(path_, {.read_only = false}).status(), path_);
}

TEST_F(FileVolumeTest, AFileThePoolBackendHoldsIsRefused) {
  write_file(path_, pattern(8192, 3));
  {
    auto pool = FileDevice::open(path_, {.read_only = false});
    ASSERT_TRUE(pool.is_ok()) << pool.status().to_string();
    expect_in_use(FileVolume::open(path_, create_options(mib)).status(), path_);
    expect_in_use(FileVolume::open(path_, read_only_options()).status(), path_);
  }
  auto reader = FileDevice::open(path_, {.read_only = true});
  ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
  expect_in_use(FileVolume::open(path_, create_options(mib)).status(), path_);
  EXPECT_TRUE(FileVolume::open(path_, read_only_options()).is_ok());
  EXPECT_EQ(hex(read_file(path_)), hex(pattern(8192, 3))) << "a refused open changed the file";
}

TEST_F(FileVolumeTest, TheLockIsReleasedWhenTheVolumeCloses) {
  auto v = create();
  ASSERT_NE(v, nullptr);
  v.reset();
  {
    auto again = FileVolume::open(path_, create_options(mib));
    EXPECT_TRUE(again.is_ok()) << again.status().to_string();
  }
  auto device = FileDevice::open(path_, {.read_only = false});
  EXPECT_TRUE(device.is_ok()) << device.status().to_string();
}

// --- I/O -------------------------------------------------------------------------------

TEST_F(FileVolumeTest, WriteReadsBackAndLandsInTheFileAtTheSameOffset) {
  auto v = create(64 * 1024);
  ASSERT_NE(v, nullptr);
  Bytes data = pattern(5000, 3);
  ASSERT_TRUE(v->write(1000, data, false).is_ok());
  ASSERT_TRUE(v->write(20000, data, true).is_ok());  // FUA
  EXPECT_EQ(hex(read(*v, 1000, 5000)), hex(data));
  Bytes file = read_file(path_);
  ASSERT_EQ(file.size(), 64u * 1024u);
  EXPECT_EQ(hex(slice(file, 1000, 5000)), hex(data));
  EXPECT_EQ(hex(slice(file, 20000, 5000)), hex(data));
  EXPECT_EQ(hex(slice(file, 0, 1000)), hex(Bytes(1000)));
}

TEST_F(FileVolumeTest, WritesPersistAcrossReopen) {
  Bytes data = pattern(4096, 4);
  {
    auto v = create();
    ASSERT_NE(v, nullptr);
    ASSERT_TRUE(v->write(mib - 4096, data, false).is_ok());
    ASSERT_TRUE(v->flush().is_ok());
  }
  auto v = create();
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->size(), mib);
  EXPECT_EQ(hex(read(*v, mib - 4096, 4096)), hex(data));
}

TEST_F(FileVolumeTest, FlushAndCacheSucceed) {
  auto v = create();
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(v->flush().is_ok());
  EXPECT_TRUE(v->cache(0, mib).is_ok());
}

TEST_F(FileVolumeTest, WrittenBlocksAreData) {
  auto v = create(64 * 1024);
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->write(16384, pattern(8192), false).is_ok());
  EXPECT_EQ(extents(*v, 0, 64 * 1024),
            (std::vector<Extent>{{16384, hz}, {8192, 0}, {64 * 1024 - 24576, hz}}));
  EXPECT_EQ(extents(*v, 20000, 1000), (std::vector<Extent>{{1000, 0}}));
  EXPECT_EQ(extents(*v, 100, 1000), (std::vector<Extent>{{1000, hz}}));
  EXPECT_EQ(extents(*v, 16000, 9000), (std::vector<Extent>{{384, hz}, {8192, 0}, {424, hz}}));
}

TEST_F(FileVolumeTest, FullyWrittenFileIsOneDataExtent) {
  auto v = create(64 * 1024);
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->write(0, pattern(64 * 1024), false).is_ok());
  EXPECT_EQ(extents(*v, 0, 64 * 1024), (std::vector<Extent>{{64 * 1024, 0}}));
}

TEST_F(FileVolumeTest, TrimPunchesHolesThatReadAsZeroes) {
  auto v = create(64 * 1024);
  ASSERT_NE(v, nullptr);
  Bytes data = pattern(3 * 4096, 5);
  ASSERT_TRUE(v->write(0, data, false).is_ok());
  ASSERT_TRUE(v->flush().is_ok());
  const auto blocks_before = stat_of(path_).st_blocks;
  ASSERT_TRUE(v->trim(4096, 4096, false).is_ok());
  EXPECT_EQ(extents(*v, 0, 3 * 4096), (std::vector<Extent>{{4096, 0}, {4096, hz}, {4096, 0}}));
  EXPECT_EQ(hex(read(*v, 4096, 4096)), hex(Bytes(4096)));
  EXPECT_EQ(hex(read(*v, 0, 4096)), hex(slice(data, 0, 4096)));
  EXPECT_EQ(hex(read(*v, 8192, 4096)), hex(slice(data, 8192, 4096)));
  EXPECT_LT(stat_of(path_).st_blocks, blocks_before) << "trim should give space back";
  EXPECT_EQ(std::filesystem::file_size(path_), 64u * 1024u);  // size unchanged
}

TEST_F(FileVolumeTest, UnalignedTrimZeroesPartialBlocksAndKeepsThemAllocated) {
  auto v = create(64 * 1024);
  ASSERT_NE(v, nullptr);
  Bytes data = pattern(4 * 4096, 6);
  ASSERT_TRUE(v->write(0, data, false).is_ok());
  ASSERT_TRUE(v->trim(1000, 9000 - 1000, true).is_ok());  // [1000, 9000), FUA
  EXPECT_EQ(hex(read(*v, 0, 1000)), hex(slice(data, 0, 1000)));
  EXPECT_EQ(hex(read(*v, 1000, 8000)), hex(Bytes(8000)));
  EXPECT_EQ(hex(read(*v, 9000, 4 * 4096 - 9000)), hex(slice(data, 9000, 4 * 4096 - 9000)));
  EXPECT_EQ(extents(*v, 0, 4 * 4096),
            (std::vector<Extent>{{4096, 0}, {4096, hz}, {2 * 4096, 0}}));
}

TEST_F(FileVolumeTest, WriteZeroesWithUnmapPunchesAHole) {
  auto v = create(64 * 1024);
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->write(0, pattern(8192), false).is_ok());
  ASSERT_TRUE(v->write_zeroes(0, 8192, /*may_unmap=*/true, /*fast_only=*/false, false).is_ok());
  EXPECT_EQ(hex(read(*v, 0, 8192)), hex(Bytes(8192)));
  EXPECT_EQ(extents(*v, 0, 8192), (std::vector<Extent>{{8192, hz}}));
}

TEST_F(FileVolumeTest, WriteZeroesWithoutUnmapZeroesTheRange) {
  auto v = create(64 * 1024);
  ASSERT_NE(v, nullptr);
  Bytes data = pattern(3 * 4096, 7);
  ASSERT_TRUE(v->write(0, data, false).is_ok());
  ASSERT_TRUE(v->write_zeroes(2048, 8192, /*may_unmap=*/false, false, true).is_ok());
  EXPECT_EQ(hex(read(*v, 0, 2048)), hex(slice(data, 0, 2048)));
  EXPECT_EQ(hex(read(*v, 2048, 8192)), hex(Bytes(8192)));
  EXPECT_EQ(hex(read(*v, 10240, 2048)), hex(slice(data, 10240, 2048)));
  EXPECT_EQ(std::filesystem::file_size(path_), 64u * 1024u);
}

TEST_F(FileVolumeTest, FastZeroEitherZeroesOrSaysNotSupported) {
  auto v = create(64 * 1024);
  ASSERT_NE(v, nullptr);
  Bytes data = pattern(8192, 8);
  ASSERT_TRUE(v->write(0, data, false).is_ok());
  Status st = v->write_zeroes(0, 8192, true, /*fast_only=*/true, false);
  if (st.is_ok()) {
    EXPECT_EQ(hex(read(*v, 0, 8192)), hex(Bytes(8192)));
  } else {
    EXPECT_EQ(st.code(), errc::not_supported);
    EXPECT_EQ(hex(read(*v, 0, 8192)), hex(data));  // no slow work was done
  }
}

TEST_F(FileVolumeTest, TrimOfTheLastBlockKeepsTheSize) {
  auto v = create(64 * 1024);
  ASSERT_NE(v, nullptr);
  ASSERT_TRUE(v->write(0, pattern(64 * 1024), false).is_ok());
  ASSERT_TRUE(v->trim(60 * 1024, 4096, false).is_ok());
  EXPECT_EQ(std::filesystem::file_size(path_), 64u * 1024u);
  EXPECT_EQ(v->size(), 64u * 1024u);
  EXPECT_EQ(extents(*v, 0, 64 * 1024), (std::vector<Extent>{{60 * 1024, 0}, {4096, hz}}));
}

}  // namespace
}  // namespace snapstore
