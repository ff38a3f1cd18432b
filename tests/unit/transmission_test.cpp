// Unit tests for nbd/transmission.h: executing validated requests against a MemoryVolume and
// the exact bytes of simple and structured replies.
#include "nbd/transmission.h"

#include <gtest/gtest.h>

#include <memory>

#include "nbd_test_util.h"
#include "peer_volume.h"
#include "volume/memory_volume.h"

namespace snapstore::nbd {
namespace {

using test::ByteBuilder;
using test::Bytes;
using test::ByteCursor;
using test::chunk_header;
using test::hex;
using test::pattern;
using test::simple_reply;
using test::split_chunks;

constexpr std::uint64_t cookie = 0x0123456789abcdefull;
constexpr std::uint64_t volume_size = 1 << 20;
constexpr std::uint16_t done = 1;
constexpr std::uint16_t t_none = 0, t_offset_data = 1, t_offset_hole = 2, t_block_status = 5,
                        t_error = 32769, t_error_offset = 32770;
constexpr std::uint32_t hole_zero = 3;  // NBD_STATE_HOLE | NBD_STATE_ZERO

Request req(std::uint16_t type, std::uint64_t offset, std::uint32_t length,
            std::uint16_t flags = 0) {
  Request r;
  r.type = type;
  r.flags = flags;
  r.cookie = cookie;
  r.offset = offset;
  r.length = length;
  return r;
}

Bytes whole(const Reply& r) {
  Bytes out = r.head;
  if (r.data) out.insert(out.end(), r.data.get(), r.data.get() + r.data_length);
  return out;
}

class TransmissionTest : public ::testing::Test {
 protected:
  TransmissionTest()
      : volume_(MemoryVolumeOptions{.size = volume_size, .read_only = false,
                                    .block_sizes = {512, 4096, 1 << 20},
                                    .description = "t"}) {}

  TransmissionContext ctx(bool structured) {
    return TransmissionContext{volume_, structured, contexts_};
  }
  Reply run(bool structured, const Request& r, const Bytes& payload = {}) {
    return execute(ctx(structured), r, payload);
  }
  void fill(std::uint64_t offset, const Bytes& data) {
    ASSERT_TRUE(volume_.write(offset, data, false).is_ok());
  }
  Bytes contents(std::uint64_t offset, std::size_t n) {
    Bytes out(n);
    EXPECT_TRUE(volume_.read(offset, out).is_ok());
    return out;
  }

  MemoryVolume volume_;
  std::vector<MetaContext> contexts_{{1, "base:allocation"}};
};

// --- reads -----------------------------------------------------------------------------

TEST_F(TransmissionTest, SimpleReadIsHeaderThenData) {
  Bytes data = pattern(4096, 3);
  fill(8192, data);
  Reply r = run(false, req(cmd_read, 8192, 4096));
  EXPECT_EQ(hex(r.head), hex(simple_reply(0, cookie)));
  ASSERT_EQ(r.data_length, 4096u);
  EXPECT_EQ(hex(whole(r)), hex(test::concat({simple_reply(0, cookie), data})));
}

TEST_F(TransmissionTest, SimpleReadOfZeroesStillSendsTheData) {
  Reply r = run(false, req(cmd_read, 0, 512));
  EXPECT_EQ(hex(whole(r)), hex(test::concat({simple_reply(0, cookie), Bytes(512)})));
}

TEST_F(TransmissionTest, StructuredReadIsOneOffsetDataChunkFlaggedDone) {
  Bytes data = pattern(1024, 5);
  fill(4096 + 512, data);
  Reply r = run(true, req(cmd_read, 4096 + 512, 1024));
  Bytes expected = test::concat({chunk_header(done, t_offset_data, cookie, 8 + 1024),
                                 ByteBuilder().be64(4096 + 512), data});
  EXPECT_EQ(hex(whole(r)), hex(expected));
}

TEST_F(TransmissionTest, StructuredReadWithDfIsOneChunk) {
  fill(0, pattern(8192));
  Reply r = run(true, req(cmd_read, 0, 8192, cmd_flag_df));
  auto chunks = split_chunks(whole(r));
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].type, t_offset_data);
  EXPECT_EQ(chunks[0].flags, done);
}

TEST_F(TransmissionTest, StructuredReadOfZeroesIsOneOffsetHoleChunk) {
  Reply r = run(true, req(cmd_read, 65536, 8192));
  Bytes expected = test::concat(
      {chunk_header(done, t_offset_hole, cookie, 12), ByteBuilder().be64(65536).be32(8192)});
  EXPECT_EQ(hex(whole(r)), hex(expected));
  EXPECT_EQ(r.data_length, 0u);
}

TEST_F(TransmissionTest, StructuredReadOfWrittenZeroesIsAHoleChunkToo) {
  fill(0, Bytes(4096));  // allocated, but all zero
  auto chunks = split_chunks(whole(run(true, req(cmd_read, 0, 4096))));
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].type, t_offset_hole);
}

TEST_F(TransmissionTest, StructuredReadWithOneNonZeroByteIsData) {
  Bytes data(8192);
  data[8191] = std::byte{1};
  fill(0, data);
  auto chunks = split_chunks(whole(run(true, req(cmd_read, 0, 8192))));
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].type, t_offset_data);
  ASSERT_EQ(chunks[0].payload.size(), 8u + 8192u);
  EXPECT_EQ(chunks[0].payload.back(), std::byte{1});
}

// --- writes, flush, trim, zeroes, cache ------------------------------------------------

TEST_F(TransmissionTest, WriteReachesTheVolume) {
  Bytes data = pattern(4096, 9);
  Reply r = run(false, req(cmd_write, 12288, 4096), data);
  EXPECT_EQ(hex(whole(r)), hex(simple_reply(0, cookie)));
  EXPECT_EQ(hex(contents(12288, 4096)), hex(data));
  EXPECT_EQ(volume_.fua_count(), 0u);
}

TEST_F(TransmissionTest, StructuredWriteIsANoneChunkFlaggedDone) {
  Reply r = run(true, req(cmd_write, 0, 512), pattern(512));
  EXPECT_EQ(hex(whole(r)), hex(chunk_header(done, t_none, cookie, 0)));
}

TEST_F(TransmissionTest, FuaIsPassedToTheVolume) {
  (void)run(false, req(cmd_write, 0, 512, cmd_flag_fua), pattern(512));
  EXPECT_EQ(volume_.fua_count(), 1u);
  (void)run(false, req(cmd_trim, 0, 4096, cmd_flag_fua));
  EXPECT_EQ(volume_.fua_count(), 2u);
  (void)run(false, req(cmd_write_zeroes, 0, 4096, cmd_flag_fua));
  EXPECT_EQ(volume_.fua_count(), 3u);
  (void)run(false, req(cmd_write, 0, 512), pattern(512));
  EXPECT_EQ(volume_.fua_count(), 3u);
}

TEST_F(TransmissionTest, FlushReachesTheVolume) {
  Reply r = run(false, req(cmd_flush, 0, 0));
  EXPECT_EQ(hex(whole(r)), hex(simple_reply(0, cookie)));
  EXPECT_EQ(volume_.flush_count(), 1u);
  (void)run(true, req(cmd_flush, 0, 0));
  EXPECT_EQ(volume_.flush_count(), 2u);
}

TEST_F(TransmissionTest, TrimLeavesHolesThatReadAsZeroes) {
  fill(0, pattern(16384));
  Reply r = run(false, req(cmd_trim, 4096, 8192));
  EXPECT_EQ(hex(whole(r)), hex(simple_reply(0, cookie)));
  EXPECT_EQ(hex(contents(4096, 8192)), hex(Bytes(8192)));
  const Bytes before = pattern(16384);
  EXPECT_EQ(hex(contents(0, 4096)), hex(Bytes(before.begin(), before.begin() + 4096)));
  EXPECT_EQ(hex(contents(12288, 4096)), hex(Bytes(before.begin() + 12288, before.end())));
  auto extents = volume_.block_status(0, 16384);
  ASSERT_TRUE(extents.is_ok());
  EXPECT_EQ(extents.value(), (std::vector<Extent>{{4096, 0}, {8192, hole_zero}, {4096, 0}}));
}

TEST_F(TransmissionTest, WriteZeroesMayUnmap) {
  fill(0, pattern(8192));
  Reply r = run(false, req(cmd_write_zeroes, 0, 8192));
  EXPECT_EQ(hex(whole(r)), hex(simple_reply(0, cookie)));
  EXPECT_EQ(hex(contents(0, 8192)), hex(Bytes(8192)));
  EXPECT_EQ(volume_.block_status(0, 8192).value(), (std::vector<Extent>{{8192, hole_zero}}));
}

TEST_F(TransmissionTest, WriteZeroesWithNoHoleKeepsTheBlocksAllocated) {
  fill(0, pattern(8192));
  Reply r = run(false, req(cmd_write_zeroes, 0, 8192, cmd_flag_no_hole));
  EXPECT_EQ(hex(whole(r)), hex(simple_reply(0, cookie)));
  EXPECT_EQ(hex(contents(0, 8192)), hex(Bytes(8192)));
  EXPECT_EQ(volume_.block_status(0, 8192).value(), (std::vector<Extent>{{8192, 0}}));
}

// Records the arguments write_zeroes was called with.
class RecordingVolume final : public Volume {
 public:
  std::uint64_t size() const override { return volume_size; }
  bool read_only() const override { return false; }
  std::string description() const override { return "recording"; }
  Status read(std::uint64_t, std::span<std::byte> out) override {
    std::fill(out.begin(), out.end(), std::byte{0});
    return Status::ok();
  }
  Status write(std::uint64_t, std::span<const std::byte>, bool) override { return Status::ok(); }
  Status flush() override { return Status::ok(); }
  Status trim(std::uint64_t, std::uint64_t, bool) override { return Status::ok(); }
  Status write_zeroes(std::uint64_t offset, std::uint64_t length, bool may_unmap, bool fast_only,
                      bool fua) override {
    calls.push_back({offset, length, may_unmap, fast_only, fua});
    return fast_only ? not_supported("slow zeroes only") : Status::ok();
  }
  Result<std::vector<Extent>> block_status(std::uint64_t, std::uint64_t length) override {
    return extents.empty() ? std::vector<Extent>{{length, 0}} : extents;
  }
  Status cache(std::uint64_t offset, std::uint64_t length) override {
    cached.push_back({offset, length});
    return Status::ok();
  }
  struct Call {
    std::uint64_t offset, length;
    bool may_unmap, fast_only, fua;
  };
  std::vector<Call> calls;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> cached;
  std::vector<Extent> extents;
};

TEST(TransmissionFlagsPassThrough, WriteZeroesFlags) {
  RecordingVolume v;
  std::vector<MetaContext> none;
  TransmissionContext ctx{v, false, none};
  (void)execute(ctx, req(cmd_write_zeroes, 512, 1024), {});
  (void)execute(ctx, req(cmd_write_zeroes, 0, 512, cmd_flag_no_hole | cmd_flag_fua), {});
  ASSERT_EQ(v.calls.size(), 2u);
  EXPECT_EQ(v.calls[0].offset, 512u);
  EXPECT_EQ(v.calls[0].length, 1024u);
  EXPECT_TRUE(v.calls[0].may_unmap);
  EXPECT_FALSE(v.calls[0].fast_only);
  EXPECT_FALSE(v.calls[0].fua);
  EXPECT_FALSE(v.calls[1].may_unmap);
  EXPECT_TRUE(v.calls[1].fua);
}

TEST(TransmissionFlagsPassThrough, FastZeroFailureIsEnotsup) {
  RecordingVolume v;
  std::vector<MetaContext> none;
  TransmissionContext ctx{v, false, none};
  Reply r = execute(ctx, req(cmd_write_zeroes, 0, 512, cmd_flag_fast_zero), {});
  ASSERT_EQ(v.calls.size(), 1u);
  EXPECT_TRUE(v.calls[0].fast_only);
  EXPECT_EQ(hex(whole(r)), hex(simple_reply(95, cookie)));
}

TEST(TransmissionFlagsPassThrough, CacheReachesTheVolume) {
  RecordingVolume v;
  std::vector<MetaContext> none;
  TransmissionContext ctx{v, true, none};
  Reply r = execute(ctx, req(cmd_cache, 4096, 8192), {});
  EXPECT_EQ(hex(whole(r)), hex(chunk_header(done, t_none, cookie, 0)));
  ASSERT_EQ(v.cached.size(), 1u);
  EXPECT_EQ(v.cached[0], (std::pair<std::uint64_t, std::uint64_t>{4096, 8192}));
}

// --- errors ----------------------------------------------------------------------------

TEST(NbdErrorFor, MapsEveryStatusCode) {
  EXPECT_EQ(nbd_error_for(Status::ok()), 0u);
  EXPECT_EQ(nbd_error_for(io_error("x")), 5u);
  EXPECT_EQ(nbd_error_for(corruption("x")), 5u);
  EXPECT_EQ(nbd_error_for(no_space("x")), 28u);
  EXPECT_EQ(nbd_error_for(read_only_error("x")), 1u);
  EXPECT_EQ(nbd_error_for(invalid_argument("x")), 22u);
  EXPECT_EQ(nbd_error_for(not_supported("x")), 95u);
  EXPECT_EQ(nbd_error_for(not_found("x")), 5u);
  EXPECT_EQ(nbd_error_for(Status(errc::exists, "x")), 5u);
  EXPECT_EQ(nbd_error_for(Status(errc::busy, "x")), 5u);
}

// ERROR_OFFSET: error, message length, message, offset.
Bytes error_offset_chunk(std::uint32_t error, std::string_view message, std::uint64_t offset) {
  return test::concat(
      {chunk_header(done, t_error_offset, cookie, static_cast<std::uint32_t>(14 + message.size())),
       ByteBuilder()
           .be32(error)
           .be16(static_cast<std::uint16_t>(message.size()))
           .text(message)
           .be64(offset)});
}

Bytes error_chunk(std::uint32_t error, std::string_view message) {
  return test::concat(
      {chunk_header(done, t_error, cookie, static_cast<std::uint32_t>(6 + message.size())),
       ByteBuilder().be32(error).be16(static_cast<std::uint16_t>(message.size())).text(message)});
}

TEST_F(TransmissionTest, FailedReadIsErrorOffsetChunk) {
  volume_.inject_failure(volume_op::read, io_error("disk on fire"));
  Reply r = run(true, req(cmd_read, 4096, 512));
  EXPECT_EQ(hex(whole(r)), hex(error_offset_chunk(5, "disk on fire", 4096)));
  EXPECT_EQ(r.data_length, 0u);
}

TEST_F(TransmissionTest, FailedReadWithoutStructuredIsSimpleErrorWithoutData) {
  volume_.inject_failure(volume_op::read, io_error("disk on fire"));
  Reply r = run(false, req(cmd_read, 4096, 512));
  EXPECT_EQ(hex(whole(r)), hex(simple_reply(5, cookie)));
}

TEST_F(TransmissionTest, FailedWriteIsErrorOffsetChunk) {
  volume_.inject_failure(volume_op::write, no_space("pool full"));
  Reply r = run(true, req(cmd_write, 8192, 512), pattern(512));
  EXPECT_EQ(hex(whole(r)), hex(error_offset_chunk(28, "pool full", 8192)));
  EXPECT_EQ(hex(contents(8192, 512)), hex(Bytes(512)));  // nothing was written
}

TEST_F(TransmissionTest, FailedWriteWithoutStructuredIsSimpleError) {
  volume_.inject_failure(volume_op::write, read_only_error("sticky failure"));
  Reply r = run(false, req(cmd_write, 0, 512), pattern(512));
  EXPECT_EQ(hex(whole(r)), hex(simple_reply(1, cookie)));
}

TEST_F(TransmissionTest, FailedTrimIsErrorOffsetChunk) {
  volume_.inject_failure(volume_op::trim, read_only_error("read-only now"));
  Reply r = run(true, req(cmd_trim, 512, 512));
  EXPECT_EQ(hex(whole(r)), hex(error_offset_chunk(1, "read-only now", 512)));
}

TEST_F(TransmissionTest, FailedFlushIsErrorChunk) {
  volume_.inject_failure(volume_op::flush, io_error("fsync failed"));
  Reply r = run(true, req(cmd_flush, 0, 0));
  EXPECT_EQ(hex(whole(r)), hex(error_chunk(5, "fsync failed")));
  EXPECT_EQ(volume_.flush_count(), 0u);
}

TEST_F(TransmissionTest, FailedFlushWithoutStructuredIsSimpleError) {
  volume_.inject_failure(volume_op::flush, io_error("fsync failed"));
  EXPECT_EQ(hex(whole(run(false, req(cmd_flush, 0, 0)))), hex(simple_reply(5, cookie)));
}

TEST_F(TransmissionTest, FailedWriteZeroesIsEnotsupErrorChunk) {
  volume_.inject_failure(volume_op::write_zeroes, not_supported("no fast zero"));
  Reply r = run(true, req(cmd_write_zeroes, 0, 4096, cmd_flag_fast_zero));
  auto chunks = split_chunks(whole(r));
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].flags, done);
  ASSERT_TRUE(chunks[0].type == t_error || chunks[0].type == t_error_offset) << chunks[0].type;
  ByteCursor c(chunks[0].payload);
  EXPECT_EQ(c.be32(), 95u);
  std::uint16_t n = c.be16();
  EXPECT_EQ(c.text(n), "no fast zero");
}

// proto.md, NBD_CMD_WRITE_ZEROES: "If the server advertised NBD_FLAG_SEND_FAST_ZERO but
// NBD_CMD_FLAG_FAST_ZERO is not set, then the server MUST NOT fail with NBD_ENOTSUP".
// MemoryVolume supports fast zero, so the handshake advertises SEND_FAST_ZERO for it.
TEST_F(TransmissionTest, WriteZeroesWithoutFastZeroNeverFailsWithEnotsup) {
  ASSERT_TRUE(volume_.supports_fast_zero());
  volume_.inject_failure(volume_op::write_zeroes, not_supported("cannot zero here"), -1);
  for (bool structured : {false, true}) {
    SCOPED_TRACE(structured);
    Bytes reply = whole(run(structured, req(cmd_write_zeroes, 0, 4096)));
    std::uint32_t error = 0;
    if (structured) {
      auto chunks = split_chunks(reply);
      ASSERT_EQ(chunks.size(), 1u);
      error = ByteCursor(chunks[0].payload).be32();
    } else {
      error = ByteCursor(reply).be(8) & 0xffffffffu;  // magic, then error
    }
    EXPECT_NE(error, 0u);
    EXPECT_NE(error, 95u) << "NBD_ENOTSUP without NBD_CMD_FLAG_FAST_ZERO";
  }
}

// proto.md, "Error values": "The server SHOULD NOT return NBD_ENOTSUP except as documented
// in response to NBD_CMD_WRITE_ZEROES when NBD_CMD_FLAG_FAST_ZERO is supported."
TEST_F(TransmissionTest, OtherCommandsNeverFailWithEnotsup) {
  volume_.inject_failure(volume_op::trim, not_supported("no discard"), -1);
  volume_.inject_failure(volume_op::flush, not_supported("no flush"), -1);
  volume_.inject_failure(volume_op::write, not_supported("no write"), -1);
  for (const Request& r : {req(cmd_trim, 0, 4096), req(cmd_flush, 0, 0), req(cmd_write, 0, 512)}) {
    SCOPED_TRACE(r.type);
    Bytes reply = whole(run(false, r, pattern(r.type == cmd_write ? 512 : 0)));
    std::uint32_t error = ByteCursor(reply).be(8) & 0xffffffffu;
    EXPECT_NE(error, 0u);
    EXPECT_NE(error, 95u);
  }
}

TEST_F(TransmissionTest, FailedBlockStatusIsErrorOffsetChunk) {
  volume_.inject_failure(volume_op::block_status, io_error("map unreadable"));
  Reply r = run(true, req(cmd_block_status, 1024, 4096));
  EXPECT_EQ(hex(whole(r)), hex(error_offset_chunk(5, "map unreadable", 1024)));
}

TEST_F(TransmissionTest, InjectedFailureIsUsedOnceByDefault) {
  volume_.inject_failure(volume_op::flush, io_error("once"));
  EXPECT_EQ(hex(whole(run(false, req(cmd_flush, 0, 0)))), hex(simple_reply(5, cookie)));
  EXPECT_EQ(hex(whole(run(false, req(cmd_flush, 0, 0)))), hex(simple_reply(0, cookie)));
}

TEST(ErrorReply, SimpleWhenNotStructured) {
  Reply r = error_reply(req(cmd_read, 0, 512), false, err_inval, "bad");
  EXPECT_EQ(hex(r.head), hex(simple_reply(22, cookie)));
  EXPECT_EQ(r.data_length, 0u);
}

TEST(ErrorReply, StructuredReadErrorCarriesTheOffset) {
  Reply r = error_reply(req(cmd_read, 0x10000, 512), true, err_io, "bad sector", true);
  EXPECT_EQ(hex(r.head), hex(error_offset_chunk(5, "bad sector", 0x10000)));
}

TEST(ErrorReply, RefusedRequestsGetAPlainErrorChunk) {
  // A request refused by validation may name an offset outside the export: no offset.
  Reply r = error_reply(req(cmd_read, 0x10000, 512), true, err_inval, "bad flags");
  EXPECT_EQ(hex(r.head), hex(error_chunk(22, "bad flags")));
}

TEST(ErrorReply, StructuredFlushErrorHasNoOffset) {
  Reply r = error_reply(req(cmd_flush, 0, 0), true, err_io, "");
  EXPECT_EQ(hex(r.head), hex(error_chunk(5, "")));
}

TEST(ErrorReply, MessageIsCappedAt4096Bytes) {
  std::string long_message(5000, 'm');
  Reply r = error_reply(req(cmd_flush, 0, 0), true, err_io, long_message);
  EXPECT_EQ(hex(r.head), hex(error_chunk(5, std::string(4096, 'm'))));
}

// --- block status ----------------------------------------------------------------------

Bytes block_status_chunk(std::uint16_t flags, std::uint32_t id,
                         std::initializer_list<std::pair<std::uint32_t, std::uint32_t>> extents) {
  ByteBuilder body;
  body.be32(id);
  for (auto [length, state] : extents) body.be32(length).be32(state);
  Bytes b = body;
  return test::concat(
      {chunk_header(flags, t_block_status, cookie, static_cast<std::uint32_t>(b.size())), b});
}

TEST_F(TransmissionTest, BlockStatusDescribesTheRange) {
  fill(4096, pattern(4096));
  Reply r = run(true, req(cmd_block_status, 0, 16384));
  EXPECT_EQ(hex(whole(r)),
            hex(block_status_chunk(done, 1, {{4096, hole_zero}, {4096, 0}, {8192, hole_zero}})));
}

TEST_F(TransmissionTest, BlockStatusUsesTheContextId) {
  contexts_ = {{7, "base:allocation"}};
  Reply r = run(true, req(cmd_block_status, 0, 4096));
  EXPECT_EQ(hex(whole(r)), hex(block_status_chunk(done, 7, {{4096, hole_zero}})));
}

TEST_F(TransmissionTest, BlockStatusWithReqOneHasExactlyOneDescriptor) {
  fill(4096, pattern(4096));
  Reply r = run(true, req(cmd_block_status, 0, 16384, cmd_flag_req_one));
  EXPECT_EQ(hex(whole(r)), hex(block_status_chunk(done, 1, {{4096, hole_zero}})));
}

TEST_F(TransmissionTest, BlockStatusOfUnalignedRangeStaysInsideIt) {
  fill(0, pattern(4096));
  Reply r = run(true, req(cmd_block_status, 512, 1024));
  EXPECT_EQ(hex(whole(r)), hex(block_status_chunk(done, 1, {{1024, 0}})));
}

TEST_F(TransmissionTest, BlockStatusWithTwoContextsSendsTwoChunksDoneOnTheLast) {
  contexts_ = {{1, "base:allocation"}, {2, "base:allocation"}};
  fill(0, pattern(4096));
  Reply r = run(true, req(cmd_block_status, 0, 8192));
  Bytes expected = test::concat({block_status_chunk(0, 1, {{4096, 0}, {4096, hole_zero}}),
                                 block_status_chunk(done, 2, {{4096, 0}, {4096, hole_zero}})});
  EXPECT_EQ(hex(whole(r)), hex(expected));
}

TEST(BlockStatusClipping, DescriptorsNeverExtendBeyondTheRequest) {
  RecordingVolume v;
  v.extents = {{1000, 0}, {1u << 20, hole_zero}};  // a misbehaving backend: too long
  std::vector<MetaContext> contexts{{3, "base:allocation"}};
  TransmissionContext ctx{v, true, contexts};
  Reply r = execute(ctx, req(cmd_block_status, 0, 4096), {});
  EXPECT_EQ(hex(whole(r)), hex(block_status_chunk(done, 3, {{1000, 0}, {3096, hole_zero}})));
}

TEST(BlockStatusClipping, ExtentCountIsCappedByMaxExtents) {
  RecordingVolume v;
  v.extents = {{512, 0}, {512, hole_zero}, {512, 0}, {512, hole_zero}};
  std::vector<MetaContext> contexts{{1, "base:allocation"}};
  TransmissionContext ctx{v, true, contexts, /*max_extents=*/2};
  Reply r = execute(ctx, req(cmd_block_status, 0, 2048), {});
  EXPECT_EQ(hex(whole(r)), hex(block_status_chunk(done, 1, {{512, 0}, {512, hole_zero}})));
}

TEST(BlockStatusClipping, BackendWithNoExtentsIsAnError) {
  class EmptyExtents final : public Volume {
   public:
    std::uint64_t size() const override { return 4096; }
    bool read_only() const override { return false; }
    std::string description() const override { return "empty"; }
    Status read(std::uint64_t, std::span<std::byte>) override { return Status::ok(); }
    Status write(std::uint64_t, std::span<const std::byte>, bool) override { return Status::ok(); }
    Status flush() override { return Status::ok(); }
    Status trim(std::uint64_t, std::uint64_t, bool) override { return Status::ok(); }
    Status write_zeroes(std::uint64_t, std::uint64_t, bool, bool, bool) override {
      return Status::ok();
    }
    Result<std::vector<Extent>> block_status(std::uint64_t, std::uint64_t) override {
      return std::vector<Extent>{};
    }
  } v;
  std::vector<MetaContext> contexts{{1, "base:allocation"}};
  TransmissionContext ctx{v, true, contexts};
  auto chunks = split_chunks(whole(execute(ctx, req(cmd_block_status, 0, 4096), {})));
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].type, t_error_offset);
  EXPECT_EQ(chunks[0].flags, done);
  EXPECT_EQ(ByteCursor(chunks[0].payload).be32(), 5u);
}

// --- x-snapstore:changed:NAME ----------------------------------------------------------

class ChangedContextTransmission : public ::testing::Test {
 protected:
  ChangedContextTransmission() { volume_.peers = {"snap1", "snap2"}; }
  Reply run(const Request& r) {
    TransmissionContext ctx{volume_, true, contexts_};
    return execute(ctx, r, {});
  }
  test::ScriptedPeerVolume volume_{volume_size};
  std::vector<MetaContext> contexts_{{1, "x-snapstore:changed:snap1"}};
};

TEST_F(ChangedContextTransmission, ChunkCarriesChangedExtentsOfThePeer) {
  volume_.changed["snap1"] = {{4096, 1}, {8192, 0}, {4096, 1}};
  Reply r = run(req(cmd_block_status, 65536, 16384));
  EXPECT_EQ(hex(whole(r)), hex(block_status_chunk(done, 1, {{4096, 1}, {8192, 0}, {4096, 1}})));
  EXPECT_EQ(volume_.calls, (std::vector<test::ScriptedPeerVolume::Call>{{"snap1", 65536, 16384}}));
}

TEST_F(ChangedContextTransmission, BaseAllocationAndChangedSendOneChunkEachDoneOnTheLast) {
  contexts_ = {{1, "base:allocation"}, {2, "x-snapstore:changed:snap2"}};
  volume_.allocation = {{4096, hole_zero}, {4096, 0}};
  volume_.changed["snap2"] = {{2048, 0}, {6144, 1}};
  Reply r = run(req(cmd_block_status, 0, 8192));
  Bytes expected = test::concat({block_status_chunk(0, 1, {{4096, hole_zero}, {4096, 0}}),
                                 block_status_chunk(done, 2, {{2048, 0}, {6144, 1}})});
  EXPECT_EQ(hex(whole(r)), hex(expected));
}

TEST_F(ChangedContextTransmission, TwoPeersAreAskedSeparately) {
  contexts_ = {{1, "x-snapstore:changed:snap1"}, {2, "x-snapstore:changed:snap2"}};
  volume_.changed["snap1"] = {{4096, 1}};
  volume_.changed["snap2"] = {{4096, 0}};
  Reply r = run(req(cmd_block_status, 0, 4096));
  Bytes expected = test::concat(
      {block_status_chunk(0, 1, {{4096, 1}}), block_status_chunk(done, 2, {{4096, 0}})});
  EXPECT_EQ(hex(whole(r)), hex(expected));
  EXPECT_EQ(volume_.calls,
            (std::vector<test::ScriptedPeerVolume::Call>{{"snap1", 0, 4096}, {"snap2", 0, 4096}}));
}

TEST_F(ChangedContextTransmission, ReqOneGivesOneDescriptorPerContext) {
  contexts_ = {{1, "base:allocation"}, {2, "x-snapstore:changed:snap1"}};
  volume_.allocation = {{4096, 0}, {4096, hole_zero}};
  volume_.changed["snap1"] = {{1024, 1}, {7168, 0}};
  Reply r = run(req(cmd_block_status, 0, 8192, cmd_flag_req_one));
  Bytes expected = test::concat(
      {block_status_chunk(0, 1, {{4096, 0}}), block_status_chunk(done, 2, {{1024, 1}})});
  EXPECT_EQ(hex(whole(r)), hex(expected));
}

TEST_F(ChangedContextTransmission, DescriptorsNeverExtendBeyondTheRequest) {
  volume_.changed["snap1"] = {{512, 1}, {1u << 20, 0}};  // a backend that says too much
  Reply r = run(req(cmd_block_status, 0, 4096));
  EXPECT_EQ(hex(whole(r)), hex(block_status_chunk(done, 1, {{512, 1}, {3584, 0}})));
}

// A peer deleted after SET_META_CONTEXT: EINVAL at the request's offset, and no chunk for
// any other context either (a partial answer would look like a complete one to some clients).
TEST_F(ChangedContextTransmission, PeerDeletedSinceSetIsEinvalNotData) {
  contexts_ = {{1, "base:allocation"}, {2, "x-snapstore:changed:snap1"}};
  volume_.peers.erase("snap1");
  auto chunks = split_chunks(whole(run(req(cmd_block_status, 8192, 4096))));
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].type, t_error_offset);
  EXPECT_EQ(chunks[0].flags, done);
  ByteCursor c(chunks[0].payload);
  EXPECT_EQ(c.be32(), 22u);
  const std::string message = c.text(c.be16());
  EXPECT_NE(message.find("snap1"), std::string::npos) << message;
  EXPECT_EQ(c.be64(), 8192u);
}

TEST_F(ChangedContextTransmission, OtherFailuresKeepTheirOwnError) {
  volume_.failures["snap1"] = io_error("mapping tree unreadable");
  auto chunks = split_chunks(whole(run(req(cmd_block_status, 0, 4096))));
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].type, t_error_offset);
  EXPECT_EQ(ByteCursor(chunks[0].payload).be32(), 5u);
}

TEST_F(ChangedContextTransmission, NoExtentsFromTheBackendIsAnError) {
  volume_.changed["snap1"] = {};
  auto chunks = split_chunks(whole(run(req(cmd_block_status, 0, 4096))));
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].type, t_error_offset);
  EXPECT_EQ(ByteCursor(chunks[0].payload).be32(), 5u);
}

TEST_F(TransmissionTest, UnknownCommandIsEinval) {
  EXPECT_EQ(hex(whole(run(false, req(42, 0, 512)))), hex(simple_reply(22, cookie)));
  auto chunks = split_chunks(whole(run(true, req(42, 0, 512))));
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].type, t_error);
  EXPECT_EQ(ByteCursor(chunks[0].payload).be32(), 22u);
}

}  // namespace
}  // namespace snapstore::nbd
