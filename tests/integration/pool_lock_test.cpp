// One file, one writer: snapstored of either backend refuses a pool or image file that
// another snapstored serves, unless both only read it (the pool file lock: store/file_device.h
// and volume/file_volume.h). The refused daemon exits 1 with a clear message before it
// listens, and the daemon that holds the file goes on serving it unharmed.
#include <gtest/gtest.h>

#include "test_server.h"

namespace snapstore::integration {
namespace {

class PoolLock : public ::testing::Test {
 protected:
  PoolLock() {
    std::filesystem::create_directory(first_dir());
    std::filesystem::create_directory(second_dir());
    std::filesystem::create_directory(refused_dir());
  }
  std::filesystem::path first_dir() const { return dir_.path() / "first"; }
  std::filesystem::path second_dir() const { return dir_.path() / "second"; }
  std::filesystem::path refused_dir() const { return dir_.path() / "refused"; }
  std::filesystem::path file() const { return dir_.path() / "pool"; }

  // The daemon that gets the file first, with its sockets in first/.
  DaemonProcess start_first(const std::string& backend, bool read_only = false) {
    DaemonOptions o{.backend = backend, .pool = file()};
    if (read_only) o.extra_args = {"--read-only"};
    return DaemonProcess(first_dir(), o);
  }
  // A second daemon on the same file, with its own sockets in second/.
  DaemonOptions second_options(const std::string& backend, bool read_only) const {
    DaemonOptions o{.backend = backend, .pool = file()};
    if (read_only) o.extra_args = {"--read-only"};
    return o;
  }
  // Runs one more daemon on the file, with its sockets in refused/; it must exit 1, saying
  // the file is in use, without ever creating its sockets.
  void expect_refused(const std::string& backend, bool read_only) {
    SCOPED_TRACE("another daemon: --backend " + backend + (read_only ? " --read-only" : ""));
    const auto nbd_socket = refused_dir() / "nbd.sock";
    const auto control_socket = refused_dir() / "ctl.sock";
    std::vector<std::string> args{"--pool",           file().string(),         "--backend",
                                  backend,            "--no-tcp",              "--nbd-socket",
                                  nbd_socket.string(), "--control-socket", control_socket.string()};
    if (read_only) args.emplace_back("--read-only");
    RunResult r = run_snapstored(args, refused_dir());
    ASSERT_TRUE(r.exited) << "a second daemon served a file in use; output:\n" << r.output;
    EXPECT_TRUE(exited_with(r.status, 1)) << describe_wait_status(r.status) << "; output:\n"
                                          << r.output;
    const std::string message = "pool " + file().string() + " is in use by another process";
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("serving NBD"), std::string::npos) << r.output;
    EXPECT_FALSE(std::filesystem::exists(nbd_socket));
    EXPECT_FALSE(std::filesystem::exists(control_socket));
  }
  // The first daemon still serves its writes and reads correctly.
  void expect_still_served(const DaemonProcess& d) {
    auto h = d.connect();
    ASSERT_TRUE(h);
    EXPECT_TRUE(write_read_within(h.get(), 1 << 20, ++seed_)) << "the first daemon was disturbed";
  }

  TempDir dir_;
  std::uint64_t seed_ = 0;
};

TEST_F(PoolLock, APoolInUseIsRefusedByARawDaemon) {
  DaemonProcess pool = start_first("pool");
  ASSERT_TRUE(pool.ready());
  expect_refused("raw", false);
  expect_refused("raw", true);
  expect_refused("pool", false);
  expect_refused("pool", true);
  expect_still_served(pool);
}

TEST_F(PoolLock, AnImageARawDaemonServesIsRefusedByEveryOther) {
  DaemonProcess raw = start_first("raw");
  ASSERT_TRUE(raw.ready());
  const auto data = pattern(4096, 77);
  {
    auto h = raw.connect();
    ASSERT_TRUE(h);
    ASSERT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 0, 0), 0) << nbd_error_text();
    ASSERT_EQ(nbd_flush(h.get(), 0), 0) << nbd_error_text();
  }
  expect_refused("pool", false);
  expect_refused("pool", true);
  expect_refused("raw", false);
  expect_refused("raw", true);
  EXPECT_TRUE(read_file_range(file(), 0, data.size()) == data)
      << "a refused daemon changed the image";
  expect_still_served(raw);
}

// Readers share: any number of read-only daemons of either backend, but no writer.
TEST_F(PoolLock, ReadOnlyDaemonsShareAFileAndKeepWritersOut) {
  {
    DaemonProcess formatting = start_first("pool");  // makes the pool, then lets it go
    ASSERT_TRUE(formatting.ready());
  }
  DaemonProcess reader = start_first("pool", /*read_only=*/true);
  ASSERT_TRUE(reader.ready());
  {
    DaemonProcess raw_reader(second_dir(), second_options("raw", true));
    EXPECT_TRUE(raw_reader.ready()) << "a second reader was refused; log:\n" << raw_reader.log();
  }
  {
    DaemonProcess pool_reader(second_dir(), second_options("pool", true));
    EXPECT_TRUE(pool_reader.ready()) << "a second reader was refused; log:\n"
                                     << pool_reader.log();
    expect_refused("raw", false);
    expect_refused("pool", false);
  }
  auto h = reader.connect();
  ASSERT_TRUE(h);
  std::vector<char> block(4096);
  EXPECT_EQ(nbd_pread(h.get(), block.data(), block.size(), 0, 0), 0) << nbd_error_text();
}

TEST_F(PoolLock, TheFileIsFreeAgainOnceItsDaemonHasStopped) {
  {
    DaemonProcess raw = start_first("raw");
    ASSERT_TRUE(raw.ready());
    expect_refused("raw", false);
  }
  DaemonProcess again(second_dir(), second_options("raw", false));
  ASSERT_TRUE(again.ready()) << again.log();
  expect_still_served(again);
}

}  // namespace
}  // namespace snapstore::integration
