// Unit tests for nbd/request_parser.h: request header decoding and validation.
#include "nbd/request_parser.h"

#include <gtest/gtest.h>

#include "nbd_test_util.h"

namespace snapstore::nbd {

// Readable verdicts in failure messages (found by gtest through ADL).
inline void PrintTo(ParsedRequest::verdict v, std::ostream* os) {
  constexpr const char* names[] = {"execute", "reply_error", "disconnect", "close"};
  *os << names[static_cast<int>(v)];
}

namespace {

using test::request_header;
using verdict = ParsedRequest::verdict;

constexpr std::uint64_t export_size = 1 << 20;
constexpr std::uint32_t max_block = 64 << 10;

constexpr std::uint16_t fua = 1 << 0;
constexpr std::uint16_t no_hole = 1 << 1;
constexpr std::uint16_t df = 1 << 2;
constexpr std::uint16_t req_one = 1 << 3;
constexpr std::uint16_t fast_zero = 1 << 4;
constexpr std::uint16_t payload_len = 1 << 5;

ExportShape shape(bool read_only = false, bool structured = true, bool meta = true) {
  ExportShape s;
  s.size = export_size;
  s.read_only = read_only;
  s.structured_replies = structured;
  s.has_meta_contexts = meta;
  s.block_sizes = {512, 4096, max_block};
  return s;
}

ParsedRequest parse(const ExportShape& s, std::uint16_t flags, std::uint16_t type,
                    std::uint64_t offset, std::uint32_t length, std::uint64_t cookie = 0x1122) {
  return RequestParser(s).parse(request_header(flags, type, cookie, offset, length));
}

void expect_execute(const ParsedRequest& p) {
  EXPECT_EQ(p.action, verdict::execute) << p.reason;
  EXPECT_EQ(p.error, 0u);
}

void expect_error(const ParsedRequest& p, std::uint32_t error) {
  EXPECT_EQ(p.action, verdict::reply_error);
  EXPECT_EQ(p.error, error);
  EXPECT_FALSE(p.reason.empty());
}

// --- well-formed requests --------------------------------------------------------------

TEST(RequestParser, DecodesEveryHeaderField) {
  ParsedRequest p = RequestParser(shape()).parse(
      request_header(fua, cmd_read, 0x0102030405060708ull, 0x2000, 0x1000));
  expect_execute(p);
  EXPECT_EQ(p.request.flags, fua);
  EXPECT_EQ(p.request.type, cmd_read);
  EXPECT_EQ(p.request.cookie, 0x0102030405060708ull);
  EXPECT_EQ(p.request.offset, 0x2000u);
  EXPECT_EQ(p.request.length, 0x1000u);
  EXPECT_EQ(p.payload_length, 0u);
}

TEST(RequestParser, ReadIsExecuted) {
  expect_execute(parse(shape(), 0, cmd_read, 0, 512));
  expect_execute(parse(shape(), 0, cmd_read, export_size - 512, 512));
  expect_execute(parse(shape(), 0, cmd_read, 0, max_block));
}

TEST(RequestParser, WriteCarriesItsPayloadLength) {
  ParsedRequest p = parse(shape(), 0, cmd_write, 4096, 8192);
  expect_execute(p);
  EXPECT_EQ(p.payload_length, 8192u);
  expect_execute(parse(shape(), 0, cmd_write, 0, max_block));
}

TEST(RequestParser, OnlyWritesCarryPayload) {
  for (std::uint16_t type : {cmd_read, cmd_trim, cmd_cache, cmd_write_zeroes, cmd_block_status}) {
    ParsedRequest p = parse(shape(), 0, type, 0, 4096);
    expect_execute(p);
    EXPECT_EQ(p.payload_length, 0u) << type;
  }
}

TEST(RequestParser, FlushIsExecuted) { expect_execute(parse(shape(), 0, cmd_flush, 0, 0)); }

TEST(RequestParser, TrimCacheZeroesAndBlockStatusAreExecuted) {
  expect_execute(parse(shape(), 0, cmd_trim, 0, export_size));
  expect_execute(parse(shape(), 0, cmd_cache, 512, 1024));
  expect_execute(parse(shape(), 0, cmd_write_zeroes, 0, max_block));
  expect_execute(parse(shape(), fast_zero, cmd_write_zeroes, 0, export_size));
  expect_execute(parse(shape(), 0, cmd_block_status, 0, export_size));
}

TEST(RequestParser, DiscDisconnects) {
  ParsedRequest p = parse(shape(), 0, cmd_disc, 0, 0);
  EXPECT_EQ(p.action, verdict::disconnect);
  EXPECT_EQ(p.error, 0u);
  EXPECT_EQ(p.payload_length, 0u);
}

TEST(RequestParser, ValidFlagsAreAccepted) {
  for (std::uint16_t type : {cmd_read, cmd_write, cmd_flush, cmd_trim, cmd_cache,
                             cmd_write_zeroes, cmd_block_status}) {
    std::uint32_t length = type == cmd_flush ? 0 : 4096;
    expect_execute(parse(shape(), fua, type, 0, length));  // FUA is valid on every command
  }
  expect_execute(parse(shape(), df, cmd_read, 0, 4096));
  expect_execute(parse(shape(), no_hole, cmd_write_zeroes, 0, 4096));
  expect_execute(parse(shape(), fast_zero, cmd_write_zeroes, 0, 4096));
  expect_execute(parse(shape(), fua | no_hole | fast_zero, cmd_write_zeroes, 0, 4096));
  expect_execute(parse(shape(), req_one, cmd_block_status, 0, 4096));
}

// --- malformed requests ----------------------------------------------------------------

TEST(RequestParser, BadMagicCloses) {
  ParsedRequest p = RequestParser(shape()).parse(request_header(0, cmd_read, 1, 0, 512, 0x25609514));
  EXPECT_EQ(p.action, verdict::close);
  EXPECT_EQ(p.payload_length, 0u);
  EXPECT_FALSE(p.reason.empty());
}

TEST(RequestParser, ShortHeaderCloses) {
  auto header = request_header(0, cmd_read, 1, 0, 512);
  header.pop_back();
  EXPECT_EQ(RequestParser(shape()).parse(header).action, verdict::close);
}

TEST(RequestParser, UnknownCommandIsEinval) {
  for (std::uint16_t type : {8, 9, 42, 0xffff}) {
    SCOPED_TRACE(type);
    ParsedRequest p = parse(shape(), 0, type, 0, 4096);
    expect_error(p, err_inval);
    EXPECT_EQ(p.payload_length, 0u);
  }
}

struct BadFlag {
  std::uint16_t type;
  std::uint16_t flags;
  const char* what;
};

class RequestParserBadFlags : public ::testing::TestWithParam<BadFlag> {};

TEST_P(RequestParserBadFlags, AreEinval) {
  const BadFlag& b = GetParam();
  std::uint32_t length = b.type == cmd_flush ? 0 : 4096;
  ParsedRequest p = parse(shape(), b.flags, b.type, 0, length);
  expect_error(p, err_inval);
  EXPECT_EQ(p.request.type, b.type);
}

INSTANTIATE_TEST_SUITE_P(
    Flags, RequestParserBadFlags,
    ::testing::Values(BadFlag{cmd_read, req_one, "ReqOneOnRead"},
                      BadFlag{cmd_read, no_hole, "NoHoleOnRead"},
                      BadFlag{cmd_read, fast_zero, "FastZeroOnRead"},
                      BadFlag{cmd_write, no_hole, "NoHoleOnWrite"},
                      BadFlag{cmd_write, df, "DfOnWrite"},
                      BadFlag{cmd_write, fast_zero, "FastZeroOnWrite"},
                      BadFlag{cmd_write, payload_len, "PayloadLenOnWrite"},
                      BadFlag{cmd_read, payload_len, "PayloadLenOnRead"},
                      BadFlag{cmd_trim, no_hole, "NoHoleOnTrim"},
                      BadFlag{cmd_trim, fast_zero, "FastZeroOnTrim"},
                      BadFlag{cmd_flush, df, "DfOnFlush"},
                      BadFlag{cmd_cache, req_one, "ReqOneOnCache"},
                      BadFlag{cmd_write_zeroes, req_one, "ReqOneOnZeroes"},
                      BadFlag{cmd_write_zeroes, df, "DfOnZeroes"},
                      BadFlag{cmd_block_status, df, "DfOnBlockStatus"},
                      BadFlag{cmd_block_status, fast_zero, "FastZeroOnBlockStatus"},
                      BadFlag{cmd_read, 1 << 6, "UnknownBit6"},
                      BadFlag{cmd_write_zeroes, 1 << 15, "UnknownBit15"},
                      BadFlag{cmd_block_status, 0xffc0, "AllUnknownBits"}),
    [](const auto& info) { return std::string(info.param.what); });

TEST(RequestParser, DfWithoutStructuredRepliesIsEinval) {
  expect_error(parse(shape(false, /*structured=*/false, false), df, cmd_read, 0, 4096), err_inval);
}

TEST(RequestParser, FlushWithOffsetOrLengthIsEinval) {
  expect_error(parse(shape(), 0, cmd_flush, 512, 0), err_inval);
  expect_error(parse(shape(), 0, cmd_flush, 0, 512), err_inval);
}

TEST(RequestParser, ZeroLengthIsEinval) {
  for (std::uint16_t type : {cmd_read, cmd_trim, cmd_cache, cmd_write_zeroes, cmd_block_status}) {
    SCOPED_TRACE(type);
    expect_error(parse(shape(), 0, type, 0, 0), err_inval);
  }
  ParsedRequest w = parse(shape(), 0, cmd_write, 0, 0);
  expect_error(w, err_inval);
  EXPECT_EQ(w.payload_length, 0u);
}

TEST(RequestParser, WritingBeyondTheEndIsEnospc) {
  expect_error(parse(shape(), 0, cmd_write_zeroes, export_size, 512), err_nospc);
  expect_error(parse(shape(), 0, cmd_write_zeroes, export_size - 512, 1024), err_nospc);
}

// proto.md, "Error values": the server "SHOULD return NBD_EINVAL if it receives a read or
// trim request including one or more sectors beyond the size of the device" (ENOSPC is for
// NBD_CMD_WRITE and NBD_CMD_WRITE_ZEROES).
TEST(RequestParser, TrimBeyondTheEndIsEinval) {
  expect_error(parse(shape(), 0, cmd_trim, export_size, 512), err_inval);
  expect_error(parse(shape(), 0, cmd_trim, export_size - 512, 1024), err_inval);
}

TEST(RequestParser, WriteBeyondTheEndKeepsItsPayloadToDrain) {
  ParsedRequest p = parse(shape(), 0, cmd_write, export_size - 512, 4096);
  expect_error(p, err_nospc);
  EXPECT_EQ(p.payload_length, 4096u);
}

TEST(RequestParser, ReadingBeyondTheEndIsEinval) {
  for (std::uint16_t type : {cmd_read, cmd_cache, cmd_block_status}) {
    SCOPED_TRACE(type);
    expect_error(parse(shape(), 0, type, export_size, 512), err_inval);
    expect_error(parse(shape(), 0, type, export_size - 512, 1024), err_inval);
  }
}

TEST(RequestParser, OffsetPlusLengthOverflowIsRejected) {
  const std::uint64_t near_max = 0xfffffffffffffe00ull;  // aligned to 512
  expect_error(parse(shape(), 0, cmd_read, near_max, 1024), err_inval);
  expect_error(parse(shape(), 0, cmd_block_status, near_max, 4096), err_inval);
  expect_error(parse(shape(), 0, cmd_write_zeroes, near_max, 1024), err_nospc);
  ParsedRequest w = parse(shape(), 0, cmd_write, near_max, 1024);
  expect_error(w, err_nospc);
  EXPECT_EQ(w.payload_length, 1024u);
}

TEST(RequestParser, WritesToReadOnlyExportAreEperm) {
  ExportShape ro = shape(/*read_only=*/true);
  for (std::uint16_t type : {cmd_trim, cmd_write_zeroes}) {
    SCOPED_TRACE(type);
    expect_error(parse(ro, 0, type, 0, 4096), err_perm);
  }
  ParsedRequest w = parse(ro, fua, cmd_write, 0, 4096);
  expect_error(w, err_perm);
  EXPECT_EQ(w.payload_length, 4096u);  // the payload still has to be read and dropped
}

TEST(RequestParser, ReadOnlyExportStillServesReads) {
  ExportShape ro = shape(/*read_only=*/true);
  expect_execute(parse(ro, 0, cmd_read, 0, 4096));
  expect_execute(parse(ro, 0, cmd_flush, 0, 0));
  expect_execute(parse(ro, 0, cmd_cache, 0, 4096));
  expect_execute(parse(ro, 0, cmd_block_status, 0, 4096));
}

TEST(RequestParser, MisalignedRequestsAreEinval) {
  for (std::uint16_t type : {cmd_read, cmd_write, cmd_trim, cmd_cache, cmd_write_zeroes,
                             cmd_block_status}) {
    SCOPED_TRACE(type);
    expect_error(parse(shape(), 0, type, 100, 512), err_inval);
    expect_error(parse(shape(), 0, type, 512, 100), err_inval);
    expect_error(parse(shape(), 0, type, 512, 513), err_inval);
  }
}

TEST(RequestParser, MinimumBlockSizeOfOneAllowsAnyAlignment) {
  ExportShape s = shape();
  s.block_sizes.minimum = 1;
  expect_execute(parse(s, 0, cmd_read, 1, 3));
  expect_execute(parse(s, 0, cmd_write, 7, 1));
}

// A write payload too large to be worth reading closes the connection (proto.md allows a
// hard disconnect for a payload "large enough to be deemed a denial of service attack").
TEST(RequestParser, HugeWriteClosesWithoutReadingPayload) {
  ParsedRequest p = parse(shape(), 0, cmd_write, 0, 64u << 20);
  EXPECT_EQ(p.action, verdict::close);
  EXPECT_EQ(p.error, err_inval);
  EXPECT_EQ(p.payload_length, 0u);
  EXPECT_FALSE(p.reason.empty());
  ParsedRequest huge = parse(shape(), 0, cmd_write, 0, 0xffffffffu);
  EXPECT_EQ(huge.action, verdict::close);
  EXPECT_EQ(huge.error, err_inval);
  EXPECT_EQ(huge.payload_length, 0u);
}

TEST(RequestParser, WriteOverAThirtyTwoMibMaximumCloses) {
  ExportShape s = shape();
  s.size = 1ull << 30;
  s.block_sizes.maximum = 32u << 20;
  ParsedRequest p = parse(s, 0, cmd_write, 0, (32u << 20) + 512);
  EXPECT_EQ(p.action, verdict::close);
  EXPECT_EQ(p.error, err_inval);
  EXPECT_EQ(p.payload_length, 0u);
}

// proto.md, "Block size constraints": a write longer than the advertised maximum SHOULD get
// NBD_EINVAL, and "any length less than 2^25 (33,554,432) bytes SHOULD NOT be considered a
// denial of service attack (even if the advertised maximum block size is smaller)". So a
// 64 KiB + 512 write to an export advertising 64 KiB is drained and refused, not a hang-up.
TEST(RequestParser, SlightlyOversizedWriteIsEinvalAndDrained) {
  ParsedRequest p = parse(shape(), 0, cmd_write, 0, max_block + 512);
  EXPECT_EQ(p.action, verdict::reply_error);
  EXPECT_EQ(p.error, err_inval);
  EXPECT_EQ(p.payload_length, max_block + 512);
}

TEST(RequestParser, ReadLongerThanMaximumIsEinval) {
  expect_error(parse(shape(), 0, cmd_read, 0, max_block + 512), err_inval);
}

TEST(RequestParser, ReadLongerThanMaximumWithDfIsEoverflow) {
  expect_error(parse(shape(), df, cmd_read, 0, max_block + 512), err_overflow);
}

TEST(RequestParser, BlockStatusWithoutMetaContextsIsEinval) {
  expect_error(parse(shape(false, true, /*meta=*/false), 0, cmd_block_status, 0, 4096), err_inval);
  expect_error(parse(shape(false, false, false), 0, cmd_block_status, 0, 4096), err_inval);
}

// proto.md, "Block size constraints": the maximum applies to READ, WRITE, CACHE and
// WRITE_ZEROES without FAST_ZERO; TRIM and BLOCK_STATUS may be longer.
TEST(RequestParser, TrimBlockStatusAndFastZeroMayExceedTheMaximumBlockSize) {
  expect_execute(parse(shape(), 0, cmd_trim, 0, max_block * 2));
  expect_execute(parse(shape(), 0, cmd_block_status, 0, max_block * 2));
  expect_execute(parse(shape(), fast_zero, cmd_write_zeroes, 0, max_block * 2));
}

// proto.md, "Block size constraints": "for NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_CACHE and
// NBD_CMD_WRITE_ZEROES (except for when NBD_CMD_FLAG_FAST_ZERO is set), the client MUST NOT
// use a length larger than any advertised maximum block size ... The server SHOULD report
// an NBD_EINVAL error if the client's request ... is larger than the advertised maximum".
TEST(RequestParser, CacheAndWriteZeroesLongerThanTheMaximumAreEinval) {
  expect_error(parse(shape(), 0, cmd_cache, 0, max_block * 2), err_inval);
  expect_error(parse(shape(), 0, cmd_write_zeroes, 0, max_block * 2), err_inval);
  expect_error(parse(shape(), no_hole, cmd_write_zeroes, 0, max_block * 2), err_inval);
}

TEST(RequestParser, CookieIsKeptOnErrors) {
  ParsedRequest p = parse(shape(), 0, cmd_read, export_size, 512, 0xfeedfacecafebeefull);
  expect_error(p, err_inval);
  EXPECT_EQ(p.request.cookie, 0xfeedfacecafebeefull);
}

}  // namespace
}  // namespace snapstore::nbd
