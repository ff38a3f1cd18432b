// Error replies. libnbd runs with strict mode off, so it sends what a careless or hostile
// client would; each bad request must fail alone and leave the connection usable. Faults
// injected into the MemoryVolume must reach the client as that request's errno.
#include <gtest/gtest.h>

#include <cerrno>
#include <functional>

#include "test_server.h"

namespace snapstore::integration {
namespace {

// Runs with structured replies on (true) and off (false): errors travel differently.
class Errors : public ::testing::TestWithParam<bool> {
 protected:
  NbdHandle connect(const std::string& name, bool meta_context = true) {
    ConnectOptions o;
    o.export_name = name;
    o.strict = false;
    o.structured_replies = GetParam();
    o.meta_context = meta_context;
    return server_.connect(o);
  }

  // The connection still answers: a write and a read of the same bytes agree.
  static void expect_usable(nbd_handle* h, std::uint64_t offset = 0) {
    const auto data = pattern(512, offset + 99);
    const bool writable = nbd_is_read_only(h) == 0;
    if (writable) {
      EXPECT_EQ(nbd_pwrite(h, data.data(), data.size(), offset, 0), 0) << nbd_error_text();
    }
    std::vector<char> back(512);
    EXPECT_EQ(nbd_pread(h, back.data(), back.size(), offset, 0), 0) << nbd_error_text();
    if (writable) {
      EXPECT_EQ(back, data);
    }
  }

  InProcessServer server_;
};

// Block status exists only with structured replies.
class BlockStatusErrors : public Errors {};

// Expects `call` to fail with `err` (as nbd_get_errno reports it).
#define EXPECT_NBD_ERRNO(call, err)                                      \
  do {                                                                   \
    EXPECT_EQ((call), -1) << #call " should fail";                       \
    EXPECT_EQ(nbd_get_errno(), (err)) << #call ": " << nbd_error_text(); \
  } while (0)

TEST_P(Errors, ReadBeyondTheEndIsEinval) {
  auto h = connect("origin");
  ASSERT_TRUE(h);
  std::vector<char> buffer(8192);
  const std::uint64_t size = InProcessServer::origin_size;
  EXPECT_NBD_ERRNO(nbd_pread(h.get(), buffer.data(), 4096, size - 2048, 0), EINVAL);
  EXPECT_NBD_ERRNO(nbd_pread(h.get(), buffer.data(), 1, size, 0), EINVAL);
  EXPECT_NBD_ERRNO(nbd_cache(h.get(), 4096, size - 1, 0), EINVAL);
  expect_usable(h.get());
  EXPECT_EQ(nbd_pread(h.get(), buffer.data(), 1, size - 1, 0), 0) << "the last byte is readable";
}

// proto.md, "Error values": ENOSPC for writes (WRITE, WRITE_ZEROES) past the end, EINVAL
// for reads and trims.
TEST_P(Errors, WriteBeyondTheEndIsEnospcAndTrimBeyondItEinval) {
  auto h = connect("origin");
  ASSERT_TRUE(h);
  const auto data = pattern(4096, 1);
  const std::uint64_t size = InProcessServer::origin_size;
  EXPECT_NBD_ERRNO(nbd_pwrite(h.get(), data.data(), data.size(), size - 1, 0), ENOSPC);
  EXPECT_NBD_ERRNO(nbd_pwrite(h.get(), data.data(), 1, size, 0), ENOSPC);
  EXPECT_NBD_ERRNO(nbd_zero(h.get(), 8192, size - 4096, 0), ENOSPC);
  EXPECT_NBD_ERRNO(nbd_trim(h.get(), 8192, size - 4096, 0), EINVAL);
  expect_usable(h.get());
  std::vector<char> tail(1);
  ASSERT_EQ(nbd_pread(h.get(), tail.data(), 1, size - 1, 0), 0);
  EXPECT_EQ(tail[0], 0) << "a refused write must not land partly";
}

TEST_P(Errors, WritesToAReadOnlyExportAreEpermAndTheConnectionStaysUsable) {
  auto h = connect("ro");
  ASSERT_TRUE(h);
  const auto data = pattern(65536, 2);
  EXPECT_NBD_ERRNO(nbd_pwrite(h.get(), data.data(), data.size(), 0, 0), EPERM);
  EXPECT_NBD_ERRNO(nbd_trim(h.get(), 4096, 0, 0), EPERM);
  EXPECT_NBD_ERRNO(nbd_zero(h.get(), 4096, 0, 0), EPERM);
  // The refused write's payload was skipped, so the stream is still in step.
  expect_usable(h.get());
  std::vector<char> back(data.size(), '\x55');
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 0, 0), 0) << nbd_error_text();
  EXPECT_TRUE(all_zero(back.data(), back.size()));
  EXPECT_EQ(nbd_flush(h.get(), 0), 0) << nbd_error_text();
}

TEST_P(Errors, MisalignedRequestsOnA512ByteExportAreEinval) {
  auto h = connect("aligned");
  ASSERT_TRUE(h);
  ASSERT_EQ(nbd_get_block_size(h.get(), LIBNBD_SIZE_MINIMUM), 512);
  std::vector<char> buffer(1024);
  EXPECT_NBD_ERRNO(nbd_pread(h.get(), buffer.data(), 100, 0, 0), EINVAL);
  EXPECT_NBD_ERRNO(nbd_pread(h.get(), buffer.data(), 512, 256, 0), EINVAL);
  EXPECT_NBD_ERRNO(nbd_pwrite(h.get(), buffer.data(), 513, 512, 0), EINVAL);
  EXPECT_NBD_ERRNO(nbd_trim(h.get(), 512, 1, 0), EINVAL);
  EXPECT_NBD_ERRNO(nbd_zero(h.get(), 100, 512, 0), EINVAL);
  expect_usable(h.get(), 1024);
  std::vector<char> first(512, '\x55');
  ASSERT_EQ(nbd_pread(h.get(), first.data(), 512, 512, 0), 0);
  EXPECT_TRUE(all_zero(first.data(), first.size())) << "the misaligned write must not land";
}

TEST_P(Errors, BlockStatusWithoutAMetaContextIsEinval) {
  auto h = connect("origin", /*meta_context=*/false);
  ASSERT_TRUE(h);
  int err = 0;
  EXPECT_FALSE(block_status(h.get(), 4096, 0, 0, &err));
  EXPECT_EQ(err, EINVAL) << nbd_error_text();
  expect_usable(h.get());
}

// A range that wraps past 2^64 - 1 is out of bounds like any other. One connection per
// request, so that one which breaks the stream does not hide the other.
TEST_P(Errors, RangeThatWrapsPastTheLastOffsetIsRefused) {
  const std::uint64_t near_end = ~std::uint64_t{0} - 100;
  std::vector<char> buffer(4096);
  {
    SCOPED_TRACE("read");
    auto h = connect("origin");
    ASSERT_TRUE(h);
    EXPECT_NBD_ERRNO(nbd_pread(h.get(), buffer.data(), buffer.size(), near_end, 0), EINVAL);
    expect_usable(h.get());
  }
  {
    SCOPED_TRACE("write");
    auto h = connect("origin");
    ASSERT_TRUE(h);
    EXPECT_NBD_ERRNO(nbd_pwrite(h.get(), buffer.data(), buffer.size(), near_end, 0), ENOSPC);
    expect_usable(h.get());
  }
}

// Each command gets its own connection, so one that breaks the stream does not hide the rest.
TEST_P(Errors, ZeroLengthRequestsAreEinval) {
  const std::vector<std::pair<const char*, std::function<int(nbd_handle*)>>> cases = {
      {"read",
       [](nbd_handle* h) {
         char b;
         return nbd_pread(h, &b, 0, 4096, 0);
       }},
      {"write",
       [](nbd_handle* h) {
         char b = 1;
         return nbd_pwrite(h, &b, 0, 4096, 0);
       }},
      {"trim", [](nbd_handle* h) { return nbd_trim(h, 0, 4096, 0); }},
      {"write_zeroes", [](nbd_handle* h) { return nbd_zero(h, 0, 4096, 0); }},
      {"cache", [](nbd_handle* h) { return nbd_cache(h, 0, 4096, 0); }},
  };
  for (const auto& [name, call] : cases) {
    SCOPED_TRACE(name);
    auto h = connect("origin");
    ASSERT_TRUE(h);
    EXPECT_NBD_ERRNO(call(h.get()), EINVAL);
    expect_usable(h.get());
  }
  if (GetParam()) {
    SCOPED_TRACE("block_status");
    auto h = connect("origin");
    ASSERT_TRUE(h);
    int err = 0;
    EXPECT_FALSE(block_status(h.get(), 0, 4096, 0, &err));
    EXPECT_EQ(err, EINVAL) << nbd_error_text();
    expect_usable(h.get());
  }
}

TEST_P(Errors, FlagsThatDoNotBelongToTheCommandAreEinval) {
  auto h = connect("origin");
  ASSERT_TRUE(h);
  char byte = 0;
  // NO_HOLE belongs to WRITE_ZEROES only, REQ_ONE to BLOCK_STATUS only.
  EXPECT_NBD_ERRNO(nbd_pwrite(h.get(), &byte, 1, 0, LIBNBD_CMD_FLAG_NO_HOLE), EINVAL);
  EXPECT_NBD_ERRNO(nbd_trim(h.get(), 4096, 0, LIBNBD_CMD_FLAG_REQ_ONE), EINVAL);
  EXPECT_NBD_ERRNO(nbd_flush(h.get(), LIBNBD_CMD_FLAG_FAST_ZERO), EINVAL);
  expect_usable(h.get());
}

TEST_P(BlockStatusErrors, BlockStatusBeyondTheEndIsEinval) {
  auto h = connect("origin");
  ASSERT_TRUE(h);
  int err = 0;
  EXPECT_FALSE(block_status(h.get(), 8192, InProcessServer::origin_size - 4096, 0, &err));
  EXPECT_EQ(err, EINVAL) << nbd_error_text();
  expect_usable(h.get());
}

TEST_P(Errors, InjectedFaultsFailOnlyTheRequestTheyHit) {
  auto h = connect("origin");
  ASSERT_TRUE(h);
  MemoryVolume& v = server_.volume("origin");
  const auto data = pattern(8192, 3);
  ASSERT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 0, 0), 0) << nbd_error_text();
  std::vector<char> back(data.size());

  v.inject_failure(volume_op::read, io_error("injected read fault"));
  EXPECT_NBD_ERRNO(nbd_pread(h.get(), back.data(), back.size(), 0, 0), EIO);
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 0, 0), 0) << nbd_error_text();
  EXPECT_EQ(back, data);

  v.inject_failure(volume_op::write, no_space("injected: pool full"));
  EXPECT_NBD_ERRNO(nbd_pwrite(h.get(), data.data(), 4096, 65536, 0), ENOSPC);
  EXPECT_EQ(nbd_pwrite(h.get(), data.data(), 4096, 65536, 0), 0) << nbd_error_text();

  v.inject_failure(volume_op::flush, io_error("injected flush fault"));
  EXPECT_NBD_ERRNO(nbd_flush(h.get(), 0), EIO);
  EXPECT_EQ(nbd_flush(h.get(), 0), 0) << nbd_error_text();

  v.inject_failure(volume_op::trim, io_error("injected trim fault"));
  EXPECT_NBD_ERRNO(nbd_trim(h.get(), 4096, 0, 0), EIO);

  v.inject_failure(volume_op::write_zeroes, no_space("injected zero fault"));
  EXPECT_NBD_ERRNO(nbd_zero(h.get(), 4096, 0, 0), ENOSPC);

  v.inject_failure(volume_op::write, read_only_error("injected: volume went read-only"));
  EXPECT_NBD_ERRNO(nbd_pwrite(h.get(), data.data(), 512, 0, 0), EPERM);

  v.inject_failure(volume_op::read, corruption("injected: checksum mismatch on every copy"));
  EXPECT_NBD_ERRNO(nbd_pread(h.get(), back.data(), 512, 0, 0), EIO);

  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 0, 0), 0) << nbd_error_text();
  EXPECT_EQ(back, data) << "the failed trim, zero and write must not have changed anything";
}

TEST_P(Errors, FastZeroIsRefusedWhenTheVolumeWouldBeSlow) {
  auto h = connect("origin");
  ASSERT_TRUE(h);
  server_.volume("origin").inject_failure(volume_op::write_zeroes,
                                          not_supported("zeroing would not be fast"));
  EXPECT_NBD_ERRNO(nbd_zero(h.get(), 4096, 0, LIBNBD_CMD_FLAG_FAST_ZERO), ENOTSUP);
  EXPECT_EQ(nbd_zero(h.get(), 4096, 0, LIBNBD_CMD_FLAG_FAST_ZERO), 0) << nbd_error_text();
}

TEST_P(BlockStatusErrors, InjectedBlockStatusFaultIsEio) {
  auto h = connect("origin");
  ASSERT_TRUE(h);
  server_.volume("origin").inject_failure(volume_op::block_status, io_error("injected"));
  int err = 0;
  EXPECT_FALSE(block_status(h.get(), 4096, 0, 0, &err));
  EXPECT_EQ(err, EIO) << nbd_error_text();
  EXPECT_TRUE(block_status(h.get(), 4096, 0, 0)) << nbd_error_text();
}

TEST_P(Errors, APersistentReadFaultLeavesWritesAndFlushesWorking) {
  auto h = connect("origin");
  ASSERT_TRUE(h);
  server_.volume("origin").inject_failure(volume_op::read, io_error("disk gone"), 3);
  const auto data = pattern(4096, 4);
  std::vector<char> back(4096);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NBD_ERRNO(nbd_pread(h.get(), back.data(), back.size(), 0, 0), EIO);
    EXPECT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 4096 * i, 0), 0) << nbd_error_text();
    EXPECT_EQ(nbd_flush(h.get(), 0), 0) << nbd_error_text();
  }
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 8192, 0), 0) << nbd_error_text();
  EXPECT_EQ(back, data);
}

INSTANTIATE_TEST_SUITE_P(StructuredReplies, Errors, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "structured" : "simple"; });
INSTANTIATE_TEST_SUITE_P(StructuredReplies, BlockStatusErrors, ::testing::Values(true),
                         [](const auto&) { return "structured"; });

}  // namespace
}  // namespace snapstore::integration
