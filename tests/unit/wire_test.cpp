// Unit tests for nbd/wire.h: big-endian writer/reader and the protocol constants.
#include "nbd/wire.h"

#include <gtest/gtest.h>

#include "nbd_test_util.h"

namespace snapstore::nbd {
namespace {

using test::Bytes;
using test::bytes_of;
using test::hex;

TEST(WireConstants, MagicNumbersMatchTheSpec) {
  EXPECT_EQ(nbd_magic, 0x4e42444d41474943ull);
  EXPECT_EQ(ihaveopt_magic, 0x49484156454F5054ull);
  EXPECT_EQ(option_reply_magic, 0x3e889045565a9ull);
  EXPECT_EQ(request_magic, 0x25609513u);
  EXPECT_EQ(simple_reply_magic, 0x67446698u);
  EXPECT_EQ(structured_reply_magic, 0x668e33efu);
  EXPECT_EQ(request_header_size, 28u);
  EXPECT_EQ(option_header_size, 16u);
}

TEST(WireConstants, OptionAndReplyNumbersMatchTheSpec) {
  EXPECT_EQ(opt_export_name, 1u);
  EXPECT_EQ(opt_go, 7u);
  EXPECT_EQ(opt_structured_reply, 8u);
  EXPECT_EQ(opt_list_meta_context, 9u);
  EXPECT_EQ(opt_set_meta_context, 10u);
  EXPECT_EQ(opt_extended_headers, 11u);
  EXPECT_EQ(rep_err_unsup, 0x80000001u);
  EXPECT_EQ(rep_err_invalid, 0x80000003u);
  EXPECT_EQ(rep_err_unknown, 0x80000006u);
  EXPECT_EQ(rep_err_too_big, 0x80000009u);
  EXPECT_EQ(chunk_error, 32769u);
  EXPECT_EQ(chunk_error_offset, 32770u);
  EXPECT_EQ(chunk_block_status, 5u);
  EXPECT_EQ(err_notsup, 95u);
  EXPECT_EQ(err_overflow, 75u);
}

TEST(WireWriter, WritesIntegersBigEndian) {
  Bytes out;
  WireWriter(out).u16(0x0102).u32(0x03040506u).u64(0x0708090a0b0c0d0eull);
  EXPECT_EQ(hex(out), hex(bytes_of({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14})));
}

TEST(WireWriter, WritesExtremeValues) {
  Bytes out;
  WireWriter(out).u16(0xffff).u32(0).u64(0xffffffffffffffffull);
  EXPECT_EQ(hex(out), hex(bytes_of({0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff})));
}

TEST(WireWriter, AppendsTextBytesAndZeroes) {
  Bytes out = bytes_of({0xaa});
  WireWriter(out).text("ab").bytes(bytes_of({0x10, 0x20})).zeroes(3).text("");
  EXPECT_EQ(hex(out), hex(bytes_of({0xaa, 'a', 'b', 0x10, 0x20, 0, 0, 0})));
}

TEST(WireLoad, LoadsBigEndian) {
  Bytes in = bytes_of({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08});
  EXPECT_EQ(load_be16(in.data()), 0x0102u);
  EXPECT_EQ(load_be32(in.data()), 0x01020304u);
  EXPECT_EQ(load_be64(in.data()), 0x0102030405060708ull);
  Bytes high = bytes_of({0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8});
  EXPECT_EQ(load_be16(high.data()), 0xfffeu);
  EXPECT_EQ(load_be32(high.data()), 0xfffefdfcu);
  EXPECT_EQ(load_be64(high.data()), 0xfffefdfcfbfaf9f8ull);
}

TEST(WireReader, ReadsValuesInOrder) {
  Bytes in = bytes_of({0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 'x', 'y', 'z'});
  WireReader r(in);
  std::uint16_t a = 0;
  std::uint32_t b = 0;
  std::string s;
  ASSERT_TRUE(r.u16(a));
  ASSERT_TRUE(r.u32(b));
  EXPECT_EQ(r.remaining(), 3u);
  ASSERT_TRUE(r.text(3, s));
  EXPECT_EQ(a, 0x1234u);
  EXPECT_EQ(b, 0xdeadbeefu);
  EXPECT_EQ(s, "xyz");
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_FALSE(r.failed());
}

TEST(WireReader, ShortReadFailsWithoutConsuming) {
  Bytes in = bytes_of({0x01, 0x02, 0x03});
  WireReader r(in);
  std::uint32_t v = 0xcafe;
  EXPECT_FALSE(r.u32(v));
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(v, 0xcafeu);  // untouched
  EXPECT_EQ(r.remaining(), 3u);
}

TEST(WireReader, FailureIsSticky) {
  Bytes in = bytes_of({0x01, 0x02, 0x03});
  WireReader r(in);
  std::string s;
  EXPECT_FALSE(r.text(4, s));
  std::uint16_t v = 0;
  EXPECT_FALSE(r.u16(v));  // two bytes are there, but the reader already failed
  EXPECT_TRUE(r.failed());
}

TEST(WireReader, ZeroLengthTextSucceedsAtEnd) {
  Bytes in;
  WireReader r(in);
  std::string s = "old";
  EXPECT_TRUE(r.text(0, s));
  EXPECT_EQ(s, "");
  EXPECT_FALSE(r.failed());
}

TEST(WireAsBytes, ViewsTheCharacters) {
  auto b = as_bytes("Hi");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0], std::byte{'H'});
  EXPECT_EQ(b[1], std::byte{'i'});
}

}  // namespace
}  // namespace snapstore::nbd
