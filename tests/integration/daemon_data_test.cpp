// Data through snapstored, on each backend ("pool", the default, and "raw", where the
// pool file holds the export's bytes at the same offsets): both sockets, shutdown and a
// crash during a write stream, read-only mode and block status; and a pool that fills up.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>

#include "test_server.h"

namespace snapstore::integration {
namespace {

constexpr std::uint64_t export_size = 64ull << 20;  // --pool-size 64M: the origin's size too

class DaemonData : public ::testing::TestWithParam<std::string> {
 protected:
  bool raw() const { return GetParam() == "raw"; }
  std::filesystem::path pool() const { return dir_.path() / "pool"; }
  DaemonOptions options(bool tcp = false, std::vector<std::string> extra = {}) const {
    return {.tcp = tcp, .backend = GetParam(), .extra_args = std::move(extra)};
  }
  // The offline checker must find a pool that was shut down consistent, and one whose
  // daemon crashed without damage (maybe with a superblock copy or log record half written,
  // which the next open repairs).
  void expect_pool_checks_clean() {
    if (raw()) return;
    RunResult r = run_snapstored({"check", pool().string()}, dir_.path(), 30s);
    ASSERT_TRUE(r.exited) << "snapstored check still running after 30 s";
    EXPECT_TRUE(exited_with(r.status, 0)) << describe_wait_status(r.status) << "\n" << r.output;
  }
  void expect_no_damage_after_crash() {
    if (raw()) return;
    const auto damage = damage_after_crash(dir_.path(), pool());
    EXPECT_TRUE(damage.empty()) << damage.front();
  }

  TempDir dir_;
};

TEST_P(DaemonData, WrittenOverTcpReadsBackOverTheUnixSocket) {
  DaemonProcess d(dir_.path(), options(/*tcp=*/true));
  ASSERT_TRUE(d.ready());
  auto tcp = connect_tcp(d.tcp_port());
  auto local = d.connect();
  ASSERT_TRUE(tcp);
  ASSERT_TRUE(local);
  EXPECT_EQ(nbd_get_size(tcp.get()), static_cast<int64_t>(export_size));

  const auto data = pattern(1 << 20, 1);
  const std::uint64_t offset = (3 << 20) + 17;
  ASSERT_EQ(nbd_pwrite(tcp.get(), data.data(), data.size(), offset, 0), 0) << nbd_error_text();
  ASSERT_EQ(nbd_flush(tcp.get(), 0), 0) << nbd_error_text();
  std::vector<char> back(data.size());
  ASSERT_EQ(nbd_pread(local.get(), back.data(), back.size(), offset, 0), 0) << nbd_error_text();
  EXPECT_TRUE(back == data);
  if (raw()) {
    EXPECT_TRUE(read_file_range(pool(), offset, data.size()) == data)
        << "the raw pool file holds the export's bytes";
  }

  const auto more = pattern(4096, 2);  // and the other way round
  ASSERT_EQ(nbd_pwrite(local.get(), more.data(), more.size(), 0, LIBNBD_CMD_FLAG_FUA), 0)
      << nbd_error_text();
  std::vector<char> more_back(more.size());
  ASSERT_EQ(nbd_pread(tcp.get(), more_back.data(), more_back.size(), 0, 0), 0) << nbd_error_text();
  EXPECT_EQ(more_back, more);
}

// Block i of the stream holds pattern(i) and goes to slot i % slots of the first 16 MiB.
struct WriteStream {
  static constexpr std::size_t block = 64 * 1024;
  static constexpr std::uint64_t slots = 256;
  std::atomic<std::uint64_t> acknowledged{0};  // writes 0 .. acknowledged-1 were answered ok
  std::atomic<std::uint64_t> flushed{0};
  std::string error;  // why the stream stopped

  void run(nbd_handle* h, const std::atomic<bool>& stop) {
    for (std::uint64_t i = 0; !stop; ++i) {
      const auto data = pattern(block, i);
      if (nbd_pwrite(h, data.data(), block, (i % slots) * block, 0) != 0) {
        error = nbd_error_text();
        return;
      }
      acknowledged = i + 1;
      if (i % 16 == 15) {
        if (nbd_flush(h, 0) != 0) {
          error = nbd_error_text();
          return;
        }
        flushed = i + 1;
      }
    }
    error = "stopped by the test";
  }

  // Checks one slot: the last acknowledged write to it, or (if the one write that may
  // have been in flight at shutdown went there) that write; zeroes if never written.
  void expect_slot(std::uint64_t slot, const std::vector<char>& got) const {
    const std::uint64_t acked = acknowledged;
    if (slot >= acked) {
      const bool in_flight = slot == acked && got == pattern(block, acked);
      EXPECT_TRUE(in_flight || (got.size() == block && all_zero(got.data(), got.size())))
          << "slot " << slot << " was never written";
      return;
    }
    const std::uint64_t last = slot + slots * ((acked - 1 - slot) / slots);
    const bool in_flight_here = last + slots == acked && got == pattern(block, acked);
    EXPECT_TRUE(got == pattern(block, last) || in_flight_here)
        << "slot " << slot << " lost acknowledged write " << last << " (of " << acked << ")";
  }

  // After a crash only flushed writes are promised: the slot holds the last write to it
  // that a flush covered, or any later write that may have landed (or zeroes, if no
  // flushed write went there).
  void expect_slot_after_crash(std::uint64_t slot, const std::vector<char>& got) const {
    const std::uint64_t acked = acknowledged, durable = flushed;
    std::uint64_t first_allowed = slot;  // the oldest write that may be what we see
    if (slot < durable) first_allowed = slot + slots * ((durable - 1 - slot) / slots);
    if (slot >= durable && got.size() == block && all_zero(got.data(), got.size())) return;
    for (std::uint64_t j = first_allowed; j <= acked; j += slots)
      if (got == pattern(block, j)) return;
    ADD_FAILURE() << "slot " << slot << " holds none of the writes it may hold (flushed " << durable
                  << ", acknowledged " << acked << ")";
  }
};

TEST_P(DaemonData, SigtermDuringAWriteStreamExitsZeroAndKeepsAcknowledgedData) {
  WriteStream stream;
  {
    DaemonProcess d(dir_.path(), options());
    ASSERT_TRUE(d.ready());
    auto h = d.connect();
    ASSERT_TRUE(h);
    std::atomic<bool> stop{false};
    std::thread writer([&] { stream.run(h.get(), stop); });
    const bool streaming = eventually([&] { return stream.flushed >= 300; });  // wraps once
    auto status = d.terminate(10s);
    stop = true;  // only matters if the daemon kept the connection open
    writer.join();
    ASSERT_TRUE(streaming) << "the write stream never got going: " << stream.error;
    ASSERT_TRUE(status) << "snapstored ignored SIGTERM for 10 s; log:\n" << d.log();
    EXPECT_TRUE(exited_with(*status, 0)) << describe_wait_status(*status) << "; log:\n" << d.log();
    EXPECT_NE(stream.error, "stopped by the test") << "the daemon exited but the stream went on";
    EXPECT_FALSE(std::filesystem::exists(d.nbd_socket())) << "NBD socket left behind";
    EXPECT_FALSE(std::filesystem::exists(d.control_socket())) << "control socket left behind";
  }
  const std::uint64_t checked = WriteStream::slots;
  if (raw()) {
    ASSERT_EQ(std::filesystem::file_size(pool()), export_size);
    for (std::uint64_t slot = 0; slot < checked; ++slot)
      stream.expect_slot(slot,
                         read_file_range(pool(), slot * WriteStream::block, WriteStream::block));
  }
  expect_pool_checks_clean();

  DaemonProcess again(dir_.path(), options());  // the restarted daemon serves the same bytes
  ASSERT_TRUE(again.ready());
  auto h = again.connect();
  ASSERT_TRUE(h);
  std::vector<char> got(WriteStream::block);
  for (std::uint64_t slot = 0; slot < checked; ++slot) {
    ASSERT_EQ(nbd_pread(h.get(), got.data(), got.size(), slot * WriteStream::block, 0), 0)
        << nbd_error_text();
    stream.expect_slot(slot, got);
  }
}

// SIGKILL in the middle of the stream: the pool must come back consistent, with every
// write that a flush covered.
TEST_P(DaemonData, KillDuringAWriteStreamKeepsFlushedData) {
  WriteStream stream;
  {
    DaemonProcess d(dir_.path(), options());
    ASSERT_TRUE(d.ready());
    auto h = d.connect();
    ASSERT_TRUE(h);
    std::atomic<bool> stop{false};
    std::thread writer([&] { stream.run(h.get(), stop); });
    const bool streaming = eventually([&] { return stream.flushed >= 600; });  // wraps twice
    d.kill();
    stop = true;
    writer.join();
    ASSERT_TRUE(streaming) << "the write stream never got going: " << stream.error;
  }
  expect_no_damage_after_crash();
  DaemonProcess again(dir_.path(), options());
  ASSERT_TRUE(again.ready()) << again.log();
  auto h = again.connect();
  ASSERT_TRUE(h);
  std::vector<char> got(WriteStream::block);
  for (std::uint64_t slot = 0; slot < WriteStream::slots; ++slot) {
    ASSERT_EQ(nbd_pread(h.get(), got.data(), got.size(), slot * WriteStream::block, 0), 0)
        << nbd_error_text();
    stream.expect_slot_after_crash(slot, got);
  }
}

// FUA and flushed writes must survive a crash (SIGKILL), and a new daemon must start over
// the sockets the dead one left behind.
TEST_P(DaemonData, DurableWritesSurviveAKillAndStaleSocketsAreReplaced) {
  const auto fua = pattern(4096, 14), flushed = pattern(64 * 1024, 15);
  {
    DaemonProcess d(dir_.path(), options());
    ASSERT_TRUE(d.ready());
    auto h = d.connect();
    ASSERT_TRUE(h);
    ASSERT_EQ(nbd_pwrite(h.get(), fua.data(), fua.size(), 0, LIBNBD_CMD_FLAG_FUA), 0)
        << nbd_error_text();
    ASSERT_EQ(nbd_pwrite(h.get(), flushed.data(), flushed.size(), 5 << 20, 0), 0)
        << nbd_error_text();
    ASSERT_EQ(nbd_flush(h.get(), 0), 0) << nbd_error_text();
    d.kill();
    ASSERT_TRUE(std::filesystem::exists(d.nbd_socket())) << "SIGKILL should leave the socket";
  }
  expect_no_damage_after_crash();
  DaemonProcess again(dir_.path(), options());
  ASSERT_TRUE(again.ready()) << again.log();
  auto h = again.connect();
  ASSERT_TRUE(h);
  std::vector<char> back(fua.size());
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 0, 0), 0) << nbd_error_text();
  EXPECT_EQ(back, fua) << "a FUA write was lost in the crash";
  back.resize(flushed.size());
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 5 << 20, 0), 0) << nbd_error_text();
  EXPECT_TRUE(back == flushed) << "a flushed write was lost in the crash";
}

TEST_P(DaemonData, ReadOnlyDaemonServesTheDataButRefusesWrites) {
  const auto data = pattern(8192, 3);
  {
    DaemonProcess writer(dir_.path(), options());
    ASSERT_TRUE(writer.ready());
    auto h = writer.connect();
    ASSERT_TRUE(h);
    ASSERT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 4096, 0), 0) << nbd_error_text();
  }
  DaemonProcess d(dir_.path(), options(false, {"--read-only"}));
  ASSERT_TRUE(d.ready());
  auto h = d.connect({.strict = false});
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_is_read_only(h.get()), 1);
  std::vector<char> back(data.size());
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 4096, 0), 0) << nbd_error_text();
  EXPECT_EQ(back, data);
  EXPECT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 1 << 20, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EPERM) << nbd_error_text();
  EXPECT_EQ(nbd_trim(h.get(), 4096, 4096, 0), -1);
  EXPECT_EQ(nbd_get_errno(), EPERM) << nbd_error_text();
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 1 << 20, 0), 0) << nbd_error_text();
  EXPECT_TRUE(all_zero(back.data(), back.size())) << "the refused write landed";
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 4096, 0), 0) << nbd_error_text();
  EXPECT_EQ(back, data) << "the refused trim landed";
}

TEST_P(DaemonData, BlockStatusShowsHolesAndData) {
  DaemonProcess d(dir_.path(), options());
  ASSERT_TRUE(d.ready());
  auto h = d.connect();
  ASSERT_TRUE(h);
  const std::uint32_t mib = 1 << 20, written = 64 * 1024;
  auto e = block_status(h.get(), 4 * mib, 0);
  ASSERT_TRUE(e) << nbd_error_text();
  EXPECT_EQ(*e, (std::vector<ExtentEntry>{{4 * mib, hole_zero}})) << "a new pool is sparse";

  const auto data = pattern(written, 13);
  ASSERT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), mib, 0), 0) << nbd_error_text();
  e = block_status(h.get(), 4 * mib, 0);
  ASSERT_TRUE(e) << nbd_error_text();
  if (raw()) {
    EXPECT_EQ(*e, (std::vector<ExtentEntry>{
                      {mib, hole_zero}, {written, 0}, {3 * mib - written, hole_zero}}));
  } else {  // allocation is per data block: check only what must hold
    std::uint64_t at = 0;
    for (const ExtentEntry& x : *e) {
      if (at < mib + written && at + x.length > mib) {
        EXPECT_EQ(x.flags & hole_zero, 0u) << "written data reported as a hole at " << at;
      }
      at += x.length;
    }
    EXPECT_LE(at, 4u * mib);
    EXPECT_EQ(e->front().flags, hole_zero) << "the start of the pool was never written";
  }
  ASSERT_EQ(nbd_trim(h.get(), written, mib, 0), 0) << nbd_error_text();
  std::vector<char> back(data.size(), '\x55');
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), mib, 0), 0) << nbd_error_text();
  EXPECT_TRUE(all_zero(back.data(), back.size())) << "trimmed data must read as zeroes";
  if (raw()) {
    e = block_status(h.get(), 4 * mib, 0);
    ASSERT_TRUE(e) << nbd_error_text();
    EXPECT_EQ(*e, (std::vector<ExtentEntry>{{4 * mib, hole_zero}})) << "trim punches the hole";
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, DaemonData, ::testing::Values("pool", "raw"),
                         [](const auto& info) { return info.param; });

// A pool smaller than its (thin) origin: writes past the space it has fail with ENOSPC,
// one request at a time, while reads, flushes and the daemon itself carry on.
TEST(DaemonPoolSpace, AFullPoolFailsWritesWithEnospcAndKeepsServing) {
  TempDir dir;
  const auto pool = dir.path() / "pool";
  RunResult format = run_snapstored(
      {"format", pool.string(), "--size", "32M", "--origin-size", "64M"}, dir.path(), 30s);
  ASSERT_TRUE(format.exited && exited_with(format.status, 0)) << format.output;
  DaemonProcess d(dir.path());
  ASSERT_TRUE(d.ready());
  auto h = d.connect();
  ASSERT_TRUE(h);
  ASSERT_EQ(nbd_get_size(h.get()), static_cast<int64_t>(export_size));
  constexpr std::size_t chunk = 1 << 20;
  std::uint64_t written = 0;
  int err = 0;
  for (; written < export_size; written += chunk) {
    const auto data = pattern(chunk, written);
    if (nbd_pwrite(h.get(), data.data(), chunk, written, 0) != 0) {
      err = nbd_get_errno();
      break;
    }
  }
  ASSERT_LT(written, export_size) << "a 32 MiB pool cannot hold 64 MiB of data";
  EXPECT_EQ(err, ENOSPC) << nbd_error_text();
  std::vector<char> back(chunk);
  for (std::uint64_t at = 0; at < written; at += chunk) {
    ASSERT_EQ(nbd_pread(h.get(), back.data(), chunk, at, 0), 0) << nbd_error_text();
    EXPECT_TRUE(back == pattern(chunk, at)) << "data at " << at << " damaged by the full pool";
  }
  EXPECT_EQ(nbd_flush(h.get(), 0), 0) << nbd_error_text();

  // Trimming gives the space back: a write that did not fit fits once trim and flush are done.
  ASSERT_EQ(nbd_trim(h.get(), 8 * chunk, 0, 0), 0) << nbd_error_text();
  ASSERT_EQ(nbd_flush(h.get(), 0), 0) << nbd_error_text();
  const auto late = pattern(4 * chunk, 77);
  const std::uint64_t late_at = export_size - late.size();
  EXPECT_TRUE(eventually(
      [&] { return nbd_pwrite(h.get(), late.data(), late.size(), late_at, 0) == 0; }, 5s))
      << "trimmed space was not reused: " << nbd_error_text();
  back.resize(late.size());
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), late_at, 0), 0) << nbd_error_text();
  EXPECT_TRUE(back == late);

  auto status = d.terminate(10s);
  ASSERT_TRUE(status) << d.log();
  EXPECT_TRUE(exited_with(*status, 0)) << describe_wait_status(*status) << "; log:\n" << d.log();
  RunResult check = run_snapstored({"check", pool.string()}, dir.path(), 30s);
  EXPECT_TRUE(check.exited && exited_with(check.status, 0)) << check.output;
}

}  // namespace
}  // namespace snapstore::integration
