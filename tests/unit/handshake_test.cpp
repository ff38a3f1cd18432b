// Unit tests for nbd/handshake.h: the fixed-newstyle negotiation state machine, driven
// without sockets. Replies are compared byte for byte against proto.md's layouts.
#include "nbd/handshake.h"

#include <gtest/gtest.h>

#include <memory>

#include "nbd_test_util.h"
#include "peer_volume.h"
#include "volume/memory_volume.h"

namespace snapstore::nbd {

// Readable actions in failure messages (found by gtest through ADL).
inline void PrintTo(HandshakeStep::next n, std::ostream* os) {
  constexpr const char* names[] = {"read_option_header", "read_option_data",
                                   "enter_transmission", "close"};
  *os << names[static_cast<int>(n)];
}

namespace {

using test::ByteBuilder;
using test::Bytes;
using test::hex;
using test::info_request;
using test::meta_context_request;
using test::option_header;
using test::option_reply;
using test::split_option_replies;
using next = HandshakeStep::next;

constexpr std::uint32_t fixed = 1;       // NBD_FLAG_C_FIXED_NEWSTYLE
constexpr std::uint32_t no_zeroes = 2;   // NBD_FLAG_C_NO_ZEROES
constexpr std::uint64_t disk_size = 1 << 20;
constexpr std::uint64_t ro_size = 64 << 10;
// HAS_FLAGS|SEND_FLUSH|SEND_FUA|SEND_TRIM|SEND_WRITE_ZEROES|CAN_MULTI_CONN|SEND_CACHE|
// SEND_FAST_ZERO
constexpr std::uint16_t writable_flags = 0x0d6d;
// HAS_FLAGS|READ_ONLY|SEND_FLUSH|SEND_FUA|CAN_MULTI_CONN|SEND_CACHE
constexpr std::uint16_t read_only_flags = 0x050f;
constexpr std::uint16_t df = 0x0080;  // NBD_FLAG_SEND_DF

class HandshakeTest : public ::testing::Test {
 protected:
  HandshakeTest() {
    disk_ = std::make_shared<MemoryVolume>(MemoryVolumeOptions{
        .size = disk_size, .read_only = false, .block_sizes = {512, 4096, 1 << 20},
        .description = "test disk"});
    ro_ = std::make_shared<MemoryVolume>(MemoryVolumeOptions{
        .size = ro_size, .read_only = true, .block_sizes = {1, 4096, 32 << 20},
        .description = "read-only disk"});
    EXPECT_TRUE(exports_.add("disk", disk_).is_ok());
    EXPECT_TRUE(exports_.add("ro", ro_).is_ok());
  }

  // Client flags; asserts that negotiation continues.
  void start(std::uint32_t flags = fixed) {
    HandshakeStep s = hs_.on_client_flags(flags);
    ASSERT_EQ(s.action, next::read_option_header);
    ASSERT_TRUE(s.reply.empty());
  }

  // Sends one option (header, then data) and returns the step that answers its data.
  HandshakeStep option(std::uint32_t opt, const Bytes& data = {}) {
    HandshakeStep h = hs_.on_option_header(option_header(opt, static_cast<std::uint32_t>(data.size())));
    EXPECT_EQ(h.action, next::read_option_data);
    EXPECT_EQ(h.data_length, data.size());
    EXPECT_TRUE(h.reply.empty());
    return hs_.on_option_data(data);
  }

  void negotiate_structured() {
    HandshakeStep s = option(opt_structured_reply);
    ASSERT_EQ(hex(s.reply), hex(option_reply(opt_structured_reply, rep_ack)));
  }

  std::shared_ptr<MemoryVolume> disk_, ro_;
  ExportTable exports_;
  Handshake hs_{exports_};
};

// Asserts that `s` is exactly one error reply of `type` to `opt`, with a message, and that
// negotiation goes on.
void expect_error(const HandshakeStep& s, std::uint32_t opt, std::uint32_t type) {
  auto replies = split_option_replies(s.reply);
  ASSERT_EQ(replies.size(), 1u) << hex(s.reply);
  EXPECT_EQ(replies[0].magic, 0x3e889045565a9ull);
  EXPECT_EQ(replies[0].option, opt);
  EXPECT_EQ(replies[0].type, type);
  EXPECT_FALSE(replies[0].data.empty()) << "error replies should carry a message";
  EXPECT_EQ(s.action, next::read_option_header);
}

Bytes info_export_body(std::uint64_t size, std::uint16_t flags) {
  return ByteBuilder().be16(info_export).be64(size).be16(flags);
}

Bytes block_size_body(std::uint32_t min, std::uint32_t preferred, std::uint32_t max) {
  return ByteBuilder().be16(info_block_size).be32(min).be32(preferred).be32(max);
}

Bytes meta_context(std::uint32_t id, std::string_view name) {
  return ByteBuilder().be32(id).text(name);
}

// --- greeting and client flags ---------------------------------------------------------

TEST_F(HandshakeTest, GreetingIsMagicIhaveoptAndFlags) {
  Bytes expected = ByteBuilder().text("NBDMAGIC").text("IHAVEOPT").be16(0x0003);
  EXPECT_EQ(hex(hs_.greeting()), hex(expected));
}

TEST_F(HandshakeTest, FixedNewstyleClientFlagsContinue) {
  HandshakeStep s = hs_.on_client_flags(fixed);
  EXPECT_EQ(s.action, next::read_option_header);
  EXPECT_TRUE(s.reply.empty());
}

TEST_F(HandshakeTest, FixedNewstyleWithNoZeroesContinues) {
  HandshakeStep s = hs_.on_client_flags(fixed | no_zeroes);
  EXPECT_EQ(s.action, next::read_option_header);
  EXPECT_TRUE(s.reply.empty());
}

TEST_F(HandshakeTest, ClientWithoutFixedNewstyleIsClosed) {
  for (std::uint32_t flags : {0u, no_zeroes}) {
    Handshake hs(exports_);
    HandshakeStep s = hs.on_client_flags(flags);
    EXPECT_EQ(s.action, next::close) << flags;
    EXPECT_TRUE(s.reply.empty());
    EXPECT_FALSE(s.reason.empty());
  }
}

TEST_F(HandshakeTest, UnknownClientFlagsAreClosed) {
  for (std::uint32_t flags : {fixed | 4u, fixed | no_zeroes | 0x80000000u, 0xffffffffu}) {
    Handshake hs(exports_);
    HandshakeStep s = hs.on_client_flags(flags);
    EXPECT_EQ(s.action, next::close) << flags;
    EXPECT_TRUE(s.reply.empty());
    EXPECT_FALSE(s.reason.empty());
  }
}

// --- NBD_OPT_EXPORT_NAME ---------------------------------------------------------------

TEST_F(HandshakeTest, ExportNameSendsSizeFlagsAndZeroes) {
  start(fixed);
  HandshakeStep s = option(opt_export_name, test::bytes_of("disk"));
  Bytes expected = ByteBuilder().be64(disk_size).be16(writable_flags).fill(124, 0);
  EXPECT_EQ(s.reply.size(), 134u);
  EXPECT_EQ(hex(s.reply), hex(expected));
  EXPECT_EQ(s.action, next::enter_transmission);
  EXPECT_EQ(hs_.negotiated().export_name, "disk");
  EXPECT_EQ(hs_.negotiated().volume, disk_);
  EXPECT_FALSE(hs_.negotiated().structured_replies);
  EXPECT_TRUE(hs_.negotiated().meta_contexts.empty());
  EXPECT_EQ(hs_.negotiated().transmission_flags, writable_flags);
}

TEST_F(HandshakeTest, ExportNameWithNoZeroesOmitsTheZeroes) {
  start(fixed | no_zeroes);
  HandshakeStep s = option(opt_export_name, test::bytes_of("disk"));
  Bytes expected = ByteBuilder().be64(disk_size).be16(writable_flags);
  EXPECT_EQ(s.reply.size(), 10u);
  EXPECT_EQ(hex(s.reply), hex(expected));
  EXPECT_EQ(s.action, next::enter_transmission);
}

TEST_F(HandshakeTest, ExportNameOfReadOnlyVolumeSetsReadOnlyFlag) {
  start(fixed | no_zeroes);
  HandshakeStep s = option(opt_export_name, test::bytes_of("ro"));
  EXPECT_EQ(hex(s.reply), hex(ByteBuilder().be64(ro_size).be16(read_only_flags)));
  EXPECT_EQ(hs_.negotiated().volume, ro_);
  EXPECT_EQ(hs_.negotiated().transmission_flags, read_only_flags);
}

TEST_F(HandshakeTest, ExportNameAfterStructuredRepliesAdvertisesDf) {
  start(fixed | no_zeroes);
  negotiate_structured();
  HandshakeStep s = option(opt_export_name, test::bytes_of("disk"));
  EXPECT_EQ(hex(s.reply), hex(ByteBuilder().be64(disk_size).be16(writable_flags | df)));
  EXPECT_TRUE(hs_.negotiated().structured_replies);
  EXPECT_EQ(hs_.negotiated().transmission_flags, writable_flags | df);
}

TEST_F(HandshakeTest, ExportNameOfUnknownExportCloses) {
  start();
  HandshakeStep s = option(opt_export_name, test::bytes_of("nosuch"));
  EXPECT_EQ(s.action, next::close);
  EXPECT_TRUE(s.reply.empty());  // EXPORT_NAME cannot carry an error
  EXPECT_FALSE(s.reason.empty());
  EXPECT_EQ(hs_.negotiated().volume, nullptr);
}

TEST_F(HandshakeTest, ExportNameEmptyIsNotADefaultExport) {
  start();
  HandshakeStep s = option(opt_export_name, {});
  EXPECT_EQ(s.action, next::close);
  EXPECT_TRUE(s.reply.empty());
}

TEST_F(HandshakeTest, ExportNameIsCaseSensitive) {
  start();
  HandshakeStep s = option(opt_export_name, test::bytes_of("DISK"));
  EXPECT_EQ(s.action, next::close);
}

// --- NBD_OPT_ABORT ---------------------------------------------------------------------

TEST_F(HandshakeTest, AbortIsAcknowledgedThenClosed) {
  start();
  HandshakeStep s = option(opt_abort);
  EXPECT_EQ(hex(s.reply), hex(option_reply(opt_abort, rep_ack)));
  EXPECT_EQ(s.action, next::close);
}

TEST_F(HandshakeTest, AbortIgnoresData) {
  start();
  HandshakeStep s = option(opt_abort, test::bytes_of("junk"));
  EXPECT_EQ(hex(s.reply), hex(option_reply(opt_abort, rep_ack)));
  EXPECT_EQ(s.action, next::close);
}

// --- NBD_OPT_LIST ----------------------------------------------------------------------

TEST_F(HandshakeTest, ListSendsOneServerReplyPerExportThenAck) {
  start();
  HandshakeStep s = option(opt_list);
  Bytes expected = test::concat({
      option_reply(opt_list, rep_server, ByteBuilder().be32(4).text("disk").text("test disk")),
      option_reply(opt_list, rep_server, ByteBuilder().be32(2).text("ro").text("read-only disk")),
      option_reply(opt_list, rep_ack),
  });
  EXPECT_EQ(hex(s.reply), hex(expected));
  EXPECT_EQ(s.action, next::read_option_header);
}

TEST_F(HandshakeTest, ListOfEmptyTableIsJustAck) {
  ExportTable empty;
  Handshake hs(empty);
  ASSERT_EQ(hs.on_client_flags(fixed).action, next::read_option_header);
  ASSERT_EQ(hs.on_option_header(option_header(opt_list, 0)).action, next::read_option_data);
  HandshakeStep s = hs.on_option_data({});
  EXPECT_EQ(hex(s.reply), hex(option_reply(opt_list, rep_ack)));
}

TEST_F(HandshakeTest, ListWithDataIsInvalid) {
  start();
  expect_error(option(opt_list, test::bytes_of("x")), opt_list, rep_err_invalid);
}

// --- NBD_OPT_STARTTLS and unknown options ----------------------------------------------

TEST_F(HandshakeTest, StartTlsIsUnsupportedAndNegotiationContinues) {
  start();
  expect_error(option(opt_starttls), opt_starttls, rep_err_unsup);
  HandshakeStep s = option(opt_list);  // still negotiating
  EXPECT_EQ(split_option_replies(s.reply).back().type, rep_ack);
}

TEST_F(HandshakeTest, UnknownOptionsAreUnsupportedAndNegotiationContinues) {
  start();
  for (std::uint32_t opt : {99u, 4u /*PEEK_EXPORT*/, 11u /*EXTENDED_HEADERS*/, 0u, 0xffffffffu}) {
    SCOPED_TRACE(opt);
    expect_error(option(opt, test::bytes_of("some data")), opt, rep_err_unsup);
  }
  HandshakeStep s = option(opt_export_name, test::bytes_of("disk"));
  EXPECT_EQ(s.action, next::enter_transmission);
}

// --- NBD_OPT_INFO / NBD_OPT_GO ---------------------------------------------------------

TEST_F(HandshakeTest, InfoSendsExportAndBlockSizeThenAck) {
  start();
  HandshakeStep s = option(opt_info, info_request("disk"));
  Bytes expected = test::concat({
      option_reply(opt_info, rep_info, info_export_body(disk_size, writable_flags)),
      option_reply(opt_info, rep_info, block_size_body(512, 4096, 1 << 20)),
      option_reply(opt_info, rep_ack),
  });
  EXPECT_EQ(hex(s.reply), hex(expected));
  EXPECT_EQ(s.action, next::read_option_header);
  EXPECT_EQ(hs_.negotiated().volume, nullptr);  // INFO does not choose the export
}

TEST_F(HandshakeTest, InfoSendsNameAndDescriptionWhenRequested) {
  start();
  HandshakeStep s = option(opt_info, info_request("disk", {info_name, info_description}));
  Bytes expected = test::concat({
      option_reply(opt_info, rep_info, info_export_body(disk_size, writable_flags)),
      option_reply(opt_info, rep_info, block_size_body(512, 4096, 1 << 20)),
      option_reply(opt_info, rep_info, ByteBuilder().be16(info_name).text("disk")),
      option_reply(opt_info, rep_info, ByteBuilder().be16(info_description).text("test disk")),
      option_reply(opt_info, rep_ack),
  });
  EXPECT_EQ(hex(s.reply), hex(expected));
}

TEST_F(HandshakeTest, InfoSendsOnlyTheRequestedExtras) {
  start();
  HandshakeStep s = option(opt_info, info_request("disk", {info_description}));
  auto replies = split_option_replies(s.reply);
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(hex(replies[2].data),
            hex(ByteBuilder().be16(info_description).text("test disk")));
  EXPECT_EQ(replies[3].type, rep_ack);
}

TEST_F(HandshakeTest, InfoIgnoresUnknownAndRepeatedInfoRequests) {
  start();
  HandshakeStep s = option(opt_info, info_request("disk", {info_block_size, 77, info_export}));
  Bytes expected = test::concat({
      option_reply(opt_info, rep_info, info_export_body(disk_size, writable_flags)),
      option_reply(opt_info, rep_info, block_size_body(512, 4096, 1 << 20)),
      option_reply(opt_info, rep_ack),
  });
  EXPECT_EQ(hex(s.reply), hex(expected));
}

TEST_F(HandshakeTest, InfoFlagsIncludeDfOnlyAfterStructuredReplies) {
  start();
  auto before = split_option_replies(option(opt_info, info_request("disk")).reply);
  ASSERT_GE(before.size(), 1u);
  EXPECT_EQ(hex(before[0].data), hex(info_export_body(disk_size, writable_flags)));
  negotiate_structured();
  auto after = split_option_replies(option(opt_info, info_request("disk")).reply);
  ASSERT_GE(after.size(), 1u);
  EXPECT_EQ(hex(after[0].data), hex(info_export_body(disk_size, writable_flags | df)));
}

TEST_F(HandshakeTest, InfoOfReadOnlyExport) {
  start();
  auto replies = split_option_replies(option(opt_info, info_request("ro")).reply);
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(hex(replies[0].data), hex(info_export_body(ro_size, read_only_flags)));
  EXPECT_EQ(hex(replies[1].data), hex(block_size_body(1, 4096, 32 << 20)));
}

TEST_F(HandshakeTest, GoSendsInfoAndEntersTransmission) {
  start();
  HandshakeStep s = option(opt_go, info_request("disk", {info_name}));
  Bytes expected = test::concat({
      option_reply(opt_go, rep_info, info_export_body(disk_size, writable_flags)),
      option_reply(opt_go, rep_info, block_size_body(512, 4096, 1 << 20)),
      option_reply(opt_go, rep_info, ByteBuilder().be16(info_name).text("disk")),
      option_reply(opt_go, rep_ack),
  });
  EXPECT_EQ(hex(s.reply), hex(expected));
  EXPECT_EQ(s.action, next::enter_transmission);
  EXPECT_EQ(hs_.negotiated().export_name, "disk");
  EXPECT_EQ(hs_.negotiated().volume, disk_);
  EXPECT_EQ(hs_.negotiated().transmission_flags, writable_flags);
}

// proto.md: with no intervening options, GO after INFO with the same parameters MUST reply
// with the same information.
TEST_F(HandshakeTest, GoRepeatsWhatInfoSaid) {
  start();
  negotiate_structured();
  auto info = split_option_replies(option(opt_info, info_request("disk", {info_name})).reply);
  auto go = split_option_replies(option(opt_go, info_request("disk", {info_name})).reply);
  ASSERT_EQ(info.size(), go.size());
  for (std::size_t i = 0; i < info.size(); ++i) {
    EXPECT_EQ(info[i].option, static_cast<std::uint32_t>(opt_info));
    EXPECT_EQ(go[i].option, static_cast<std::uint32_t>(opt_go));
    EXPECT_EQ(info[i].type, go[i].type);
    EXPECT_EQ(hex(info[i].data), hex(go[i].data));
  }
}

TEST_F(HandshakeTest, GoReplyIsTheSameWithNoZeroes) {
  start(fixed | no_zeroes);  // NO_ZEROES only affects NBD_OPT_EXPORT_NAME
  HandshakeStep s = option(opt_go, info_request("ro"));
  Bytes expected = test::concat({
      option_reply(opt_go, rep_info, info_export_body(ro_size, read_only_flags)),
      option_reply(opt_go, rep_info, block_size_body(1, 4096, 32 << 20)),
      option_reply(opt_go, rep_ack),
  });
  EXPECT_EQ(hex(s.reply), hex(expected));
  EXPECT_EQ(hs_.negotiated().transmission_flags, read_only_flags);
}

TEST_F(HandshakeTest, GoAfterStructuredRepliesRecordsThem) {
  start();
  negotiate_structured();
  HandshakeStep s = option(opt_go, info_request("disk"));
  EXPECT_EQ(s.action, next::enter_transmission);
  EXPECT_TRUE(hs_.negotiated().structured_replies);
  EXPECT_EQ(hs_.negotiated().transmission_flags, writable_flags | df);
}

class InfoOrGoTest : public HandshakeTest, public ::testing::WithParamInterface<std::uint32_t> {};

TEST_P(InfoOrGoTest, UnknownExportIsErrUnknown) {
  start();
  expect_error(option(GetParam(), info_request("nosuch")), GetParam(), rep_err_unknown);
  expect_error(option(GetParam(), info_request("")), GetParam(), rep_err_unknown);
  EXPECT_EQ(hs_.negotiated().volume, nullptr);
}

TEST_P(InfoOrGoTest, TruncatedRequestIsInvalid) {
  start();
  const std::uint32_t opt = GetParam();
  expect_error(option(opt, {}), opt, rep_err_invalid);
  expect_error(option(opt, test::bytes_of({0, 0, 0})), opt, rep_err_invalid);
  // Name present, request count missing.
  expect_error(option(opt, ByteBuilder().be32(4).text("disk")), opt, rep_err_invalid);
  // Count present but only one byte of it.
  expect_error(option(opt, ByteBuilder().be32(4).text("disk").fill(1, 0)), opt, rep_err_invalid);
}

TEST_P(InfoOrGoTest, NameLengthBeyondDataIsInvalid) {
  start();
  const std::uint32_t opt = GetParam();
  expect_error(option(opt, ByteBuilder().be32(100).text("disk").be16(0)), opt, rep_err_invalid);
  expect_error(option(opt, ByteBuilder().be32(0xffffffffu).text("disk").be16(0)), opt,
               rep_err_invalid);
}

TEST_P(InfoOrGoTest, InfoRequestCountNotMatchingDataIsInvalid) {
  start();
  const std::uint32_t opt = GetParam();
  // Count says 2, one request follows.
  expect_error(option(opt, ByteBuilder().be32(4).text("disk").be16(2).be16(info_name)), opt,
               rep_err_invalid);
  // Count says 1, three bytes follow (an odd byte).
  expect_error(option(opt, ByteBuilder().be32(4).text("disk").be16(1).be16(info_name).fill(1, 0)),
               opt, rep_err_invalid);
  // Count says 0, a stray byte follows.
  expect_error(option(opt, ByteBuilder().be32(4).text("disk").be16(0).fill(1, 0)), opt,
               rep_err_invalid);
  EXPECT_EQ(hs_.negotiated().volume, nullptr);
}

TEST_P(InfoOrGoTest, OverlongNameIsInvalid) {
  start();
  const std::uint32_t opt = GetParam();
  std::string name(4097, 'a');
  expect_error(option(opt, info_request(name)), opt, rep_err_invalid);
}

INSTANTIATE_TEST_SUITE_P(Options, InfoOrGoTest, ::testing::Values(opt_info, opt_go),
                         [](const auto& info) { return info.param == opt_info ? "Info" : "Go"; });

// --- NBD_OPT_STRUCTURED_REPLY ----------------------------------------------------------

TEST_F(HandshakeTest, StructuredReplyIsAcknowledged) {
  start();
  HandshakeStep s = option(opt_structured_reply);
  EXPECT_EQ(hex(s.reply), hex(option_reply(opt_structured_reply, rep_ack)));
  EXPECT_EQ(s.action, next::read_option_header);
}

TEST_F(HandshakeTest, StructuredReplyWithDataIsInvalidAndNotNegotiated) {
  start(fixed | no_zeroes);
  expect_error(option(opt_structured_reply, test::bytes_of("x")), opt_structured_reply,
               rep_err_invalid);
  HandshakeStep s = option(opt_export_name, test::bytes_of("disk"));
  EXPECT_FALSE(hs_.negotiated().structured_replies);
  EXPECT_EQ(hex(s.reply), hex(ByteBuilder().be64(disk_size).be16(writable_flags)));
}

// --- metadata contexts -----------------------------------------------------------------

class MetaContextTest : public HandshakeTest,
                        public ::testing::WithParamInterface<std::uint32_t> {};

TEST_P(MetaContextTest, BeforeStructuredRepliesIsInvalid) {
  start();
  const std::uint32_t opt = GetParam();
  expect_error(option(opt, meta_context_request("disk", {"base:allocation"})), opt,
               rep_err_invalid);
}

TEST_P(MetaContextTest, UnknownExportIsErrUnknown) {
  start();
  negotiate_structured();
  const std::uint32_t opt = GetParam();
  expect_error(option(opt, meta_context_request("nosuch", {"base:allocation"})), opt,
               rep_err_unknown);
}

TEST_P(MetaContextTest, MalformedRequestIsInvalid) {
  start();
  negotiate_structured();
  const std::uint32_t opt = GetParam();
  SCOPED_TRACE(opt);
  expect_error(option(opt, {}), opt, rep_err_invalid);
  expect_error(option(opt, ByteBuilder().be32(10).text("disk")), opt, rep_err_invalid);
  // Export name but no query count.
  expect_error(option(opt, ByteBuilder().be32(4).text("disk")), opt, rep_err_invalid);
  // One query announced, none sent.
  expect_error(option(opt, ByteBuilder().be32(4).text("disk").be32(1)), opt, rep_err_invalid);
  // Query length beyond the data.
  expect_error(option(opt, ByteBuilder().be32(4).text("disk").be32(1).be32(50).text("base:")),
               opt, rep_err_invalid);
  // Trailing bytes after the last query.
  Bytes trailing = meta_context_request("disk", {"base:allocation"});
  trailing.push_back(std::byte{0});
  expect_error(option(opt, trailing), opt, rep_err_invalid);
}

TEST_P(MetaContextTest, UnknownContextsMatchNothing) {
  start();
  negotiate_structured();
  const std::uint32_t opt = GetParam();
  HandshakeStep s = option(opt, meta_context_request("disk", {"x-foo:bar", "base:nothing"}));
  EXPECT_EQ(hex(s.reply), hex(option_reply(opt, rep_ack)));
  EXPECT_EQ(s.action, next::read_option_header);
}

TEST_P(MetaContextTest, BaseAllocationIsFound) {
  start();
  negotiate_structured();
  const std::uint32_t opt = GetParam();
  HandshakeStep s = option(opt, meta_context_request("disk", {"base:allocation"}));
  auto replies = split_option_replies(s.reply);
  ASSERT_EQ(replies.size(), 2u) << hex(s.reply);
  EXPECT_EQ(replies[0].magic, 0x3e889045565a9ull);
  EXPECT_EQ(replies[0].option, opt);
  EXPECT_EQ(replies[0].type, rep_meta_context);
  ASSERT_EQ(replies[0].data.size(), 4u + 15u);
  test::ByteCursor c(replies[0].data);
  std::uint32_t id = c.be32();
  EXPECT_EQ(c.text(15), "base:allocation");
  if (opt == opt_set_meta_context)
    EXPECT_NE(id, 0u);
  else
    EXPECT_EQ(id, 0u);  // proto.md: the id in LIST replies is reserved, SHOULD be zero
  EXPECT_EQ(hex(Bytes(s.reply.end() - 20, s.reply.end())), hex(option_reply(opt, rep_ack)));
}

INSTANTIATE_TEST_SUITE_P(Options, MetaContextTest,
                         ::testing::Values(opt_list_meta_context, opt_set_meta_context),
                         [](const auto& info) {
                           return info.param == opt_list_meta_context ? "List" : "Set";
                         });

TEST_F(HandshakeTest, ListMetaContextWithNoQueriesListsAll) {
  start();
  negotiate_structured();
  HandshakeStep s = option(opt_list_meta_context, meta_context_request("disk", {}));
  Bytes expected = test::concat({
      option_reply(opt_list_meta_context, rep_meta_context, meta_context(0, "base:allocation")),
      option_reply(opt_list_meta_context, rep_ack),
  });
  EXPECT_EQ(hex(s.reply), hex(expected));
}

TEST_F(HandshakeTest, ListMetaContextNamespaceListsItsContexts) {
  start();
  negotiate_structured();
  HandshakeStep s = option(opt_list_meta_context, meta_context_request("disk", {"base:"}));
  Bytes expected = test::concat({
      option_reply(opt_list_meta_context, rep_meta_context, meta_context(0, "base:allocation")),
      option_reply(opt_list_meta_context, rep_ack),
  });
  EXPECT_EQ(hex(s.reply), hex(expected));
}

TEST_F(HandshakeTest, ListMetaContextDoesNotSelect) {
  start();
  negotiate_structured();
  option(opt_list_meta_context, meta_context_request("disk", {"base:allocation"}));
  ASSERT_EQ(option(opt_go, info_request("disk")).action, next::enter_transmission);
  EXPECT_TRUE(hs_.negotiated().meta_contexts.empty());
}

TEST_F(HandshakeTest, SetMetaContextWithNoQueriesSelectsNothing) {
  start();
  negotiate_structured();
  HandshakeStep s = option(opt_set_meta_context, meta_context_request("disk", {}));
  EXPECT_EQ(hex(s.reply), hex(option_reply(opt_set_meta_context, rep_ack)));
  ASSERT_EQ(option(opt_go, info_request("disk")).action, next::enter_transmission);
  EXPECT_TRUE(hs_.negotiated().meta_contexts.empty());
}

TEST_F(HandshakeTest, SetMetaContextSelectionSurvivesGoToTheSameExport) {
  start();
  negotiate_structured();
  auto replies = split_option_replies(
      option(opt_set_meta_context, meta_context_request("disk", {"base:allocation"})).reply);
  ASSERT_EQ(replies.size(), 2u);
  const std::uint32_t id = test::ByteCursor(replies[0].data).be32();
  ASSERT_EQ(option(opt_go, info_request("disk")).action, next::enter_transmission);
  ASSERT_EQ(hs_.negotiated().meta_contexts.size(), 1u);
  EXPECT_EQ(hs_.negotiated().meta_contexts[0].id, id);
  EXPECT_NE(hs_.negotiated().meta_contexts[0].id, 0u);
  EXPECT_EQ(hs_.negotiated().meta_contexts[0].name, "base:allocation");
}

TEST_F(HandshakeTest, SetMetaContextDuplicateQueriesSelectOnce) {
  start();
  negotiate_structured();
  auto replies = split_option_replies(
      option(opt_set_meta_context,
             meta_context_request("disk", {"base:allocation", "x-a:b", "base:allocation"}))
          .reply);
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].type, rep_meta_context);
  EXPECT_EQ(replies[1].type, rep_ack);
  ASSERT_EQ(option(opt_go, info_request("disk")).action, next::enter_transmission);
  EXPECT_EQ(hs_.negotiated().meta_contexts.size(), 1u);
}

TEST_F(HandshakeTest, SetMetaContextReplacesTheEarlierSelection) {
  start();
  negotiate_structured();
  option(opt_set_meta_context, meta_context_request("disk", {"base:allocation"}));
  option(opt_set_meta_context, meta_context_request("disk", {"x-other:thing"}));
  ASSERT_EQ(option(opt_go, info_request("disk")).action, next::enter_transmission);
  EXPECT_TRUE(hs_.negotiated().meta_contexts.empty());
}

TEST_F(HandshakeTest, GoToAnotherExportDropsSelectedContexts) {
  start();
  negotiate_structured();
  option(opt_set_meta_context, meta_context_request("disk", {"base:allocation"}));
  ASSERT_EQ(option(opt_go, info_request("ro")).action, next::enter_transmission);
  EXPECT_EQ(hs_.negotiated().export_name, "ro");
  EXPECT_TRUE(hs_.negotiated().meta_contexts.empty());
}

TEST_F(HandshakeTest, ExportNameToAnotherExportDropsSelectedContexts) {
  start();
  negotiate_structured();
  option(opt_set_meta_context, meta_context_request("ro", {"base:allocation"}));
  ASSERT_EQ(option(opt_export_name, test::bytes_of("disk")).action, next::enter_transmission);
  EXPECT_TRUE(hs_.negotiated().meta_contexts.empty());
}

TEST_F(HandshakeTest, ExportNameToTheSameExportKeepsSelectedContexts) {
  start();
  negotiate_structured();
  option(opt_set_meta_context, meta_context_request("disk", {"base:allocation"}));
  ASSERT_EQ(option(opt_export_name, test::bytes_of("disk")).action, next::enter_transmission);
  ASSERT_EQ(hs_.negotiated().meta_contexts.size(), 1u);
  EXPECT_EQ(hs_.negotiated().meta_contexts[0].name, "base:allocation");
}

// proto.md, NBD_OPT_SET_META_CONTEXT: "Issuing this command replaces all previously-set
// metadata contexts (including when this command fails)".
TEST_F(HandshakeTest, FailedSetMetaContextStillClearsThePreviousSelection) {
  start();
  negotiate_structured();
  option(opt_set_meta_context, meta_context_request("disk", {"base:allocation"}));
  expect_error(option(opt_set_meta_context, meta_context_request("nosuch", {"base:allocation"})),
               opt_set_meta_context, rep_err_unknown);
  ASSERT_EQ(option(opt_go, info_request("disk")).action, next::enter_transmission);
  EXPECT_TRUE(hs_.negotiated().meta_contexts.empty())
      << "a failed SET_META_CONTEXT left " << hs_.negotiated().meta_contexts.size()
      << " context(s) selected";
}

TEST_F(HandshakeTest, MalformedSetMetaContextStillClearsThePreviousSelection) {
  start();
  negotiate_structured();
  option(opt_set_meta_context, meta_context_request("disk", {"base:allocation"}));
  expect_error(option(opt_set_meta_context, ByteBuilder().be32(4).text("disk").be32(1)),
               opt_set_meta_context, rep_err_invalid);
  ASSERT_EQ(option(opt_go, info_request("disk")).action, next::enter_transmission);
  EXPECT_TRUE(hs_.negotiated().meta_contexts.empty())
      << "a failed SET_META_CONTEXT left " << hs_.negotiated().meta_contexts.size()
      << " context(s) selected";
}

// proto.md, the base: namespace: "`base:` - the server MUST ignore this form during
// NBD_OPT_SET_META_CONTEXT".
TEST_F(HandshakeTest, SetMetaContextIgnoresTheBareNamespace) {
  start();
  negotiate_structured();
  HandshakeStep s = option(opt_set_meta_context, meta_context_request("disk", {"base:"}));
  EXPECT_EQ(hex(s.reply), hex(option_reply(opt_set_meta_context, rep_ack)));
  ASSERT_EQ(option(opt_go, info_request("disk")).action, next::enter_transmission);
  EXPECT_TRUE(hs_.negotiated().meta_contexts.empty());
}

// --- x-snapstore:changed:NAME ----------------------------------------------------------

// "pooled" is a volume that can compare itself with snap1, snap2 and a:b; "disk" (a plain
// MemoryVolume) compares with nothing.
class ChangedContextTest : public HandshakeTest {
 protected:
  ChangedContextTest() {
    pooled_->peers = {"snap1", "snap2", "a:b"};
    EXPECT_TRUE(exports_.add("pooled", pooled_).is_ok());
  }

  // Sends SET or LIST for "pooled" with `queries`; start() and structured replies first.
  HandshakeStep query(std::uint32_t opt, std::initializer_list<std::string_view> queries,
                      std::string_view name = "pooled") {
    return option(opt, meta_context_request(name, queries));
  }

  std::vector<MetaContext> selected_after_go(std::string_view name = "pooled") {
    HandshakeStep go = option(opt_go, info_request(name));
    EXPECT_EQ(go.action, next::enter_transmission);
    return hs_.negotiated().meta_contexts;
  }

  std::shared_ptr<test::ScriptedPeerVolume> pooled_ =
      std::make_shared<test::ScriptedPeerVolume>(disk_size);
};

TEST_F(ChangedContextTest, SetSelectsBaseAllocationAndAKnownPeerWithIdsInQueryOrder) {
  start();
  negotiate_structured();
  HandshakeStep s = query(opt_set_meta_context, {"x-snapstore:changed:snap1", "base:allocation"});
  Bytes expected = test::concat({
      option_reply(opt_set_meta_context, rep_meta_context,
                   meta_context(1, "x-snapstore:changed:snap1")),
      option_reply(opt_set_meta_context, rep_meta_context, meta_context(2, "base:allocation")),
      option_reply(opt_set_meta_context, rep_ack),
  });
  EXPECT_EQ(hex(s.reply), hex(expected));
  EXPECT_EQ(s.action, next::read_option_header);
  EXPECT_EQ(selected_after_go(),
            (std::vector<MetaContext>{{1, "x-snapstore:changed:snap1"}, {2, "base:allocation"}}));
}

TEST_F(ChangedContextTest, SetSelectsSeveralPeersOnce) {
  start();
  negotiate_structured();
  HandshakeStep s = query(
      opt_set_meta_context,
      {"x-snapstore:changed:snap2", "x-snapstore:changed:snap1", "x-snapstore:changed:snap2"});
  Bytes expected = test::concat({
      option_reply(opt_set_meta_context, rep_meta_context,
                   meta_context(1, "x-snapstore:changed:snap2")),
      option_reply(opt_set_meta_context, rep_meta_context,
                   meta_context(2, "x-snapstore:changed:snap1")),
      option_reply(opt_set_meta_context, rep_ack),
  });
  EXPECT_EQ(hex(s.reply), hex(expected));
  EXPECT_EQ(selected_after_go().size(), 2u);
}

TEST_F(ChangedContextTest, PeerNamesMayContainColons) {
  start();
  negotiate_structured();
  HandshakeStep s = query(opt_set_meta_context, {"x-snapstore:changed:a:b"});
  EXPECT_EQ(hex(s.reply),
            hex(test::concat({option_reply(opt_set_meta_context, rep_meta_context,
                                           meta_context(1, "x-snapstore:changed:a:b")),
                              option_reply(opt_set_meta_context, rep_ack)})));
}

// proto.md: queries in an unknown namespace, or naming an unknown leaf, are ignored.
TEST_F(ChangedContextTest, UnknownPeersAndMalformedNamesAreIgnoredBySet) {
  start();
  negotiate_structured();
  HandshakeStep s =
      query(opt_set_meta_context,
            {"x-snapstore:changed:nosuch", "x-snapstore:changed:", "x-snapstore:changed",
             "x-snapstore:", "x-snapstore:other:snap1", "x-snapstore:changed:SNAP1",
             "x-other:changed:snap1", "x-snapstore:changed:snap1 "});
  EXPECT_EQ(hex(s.reply), hex(option_reply(opt_set_meta_context, rep_ack)));
  EXPECT_TRUE(selected_after_go().empty());
}

TEST_F(ChangedContextTest, PeersBelongToTheNamedExport) {
  start();
  negotiate_structured();
  // "disk" is a MemoryVolume: it compares with nothing, whatever "pooled" knows.
  HandshakeStep s = query(opt_set_meta_context, {"x-snapstore:changed:snap1"}, "disk");
  EXPECT_EQ(hex(s.reply), hex(option_reply(opt_set_meta_context, rep_ack)));
  EXPECT_TRUE(selected_after_go("disk").empty());
}

TEST_F(ChangedContextTest, ListAnswersAnExactNameWithIdZero) {
  start();
  negotiate_structured();
  HandshakeStep s =
      query(opt_list_meta_context, {"x-snapstore:changed:snap2", "x-snapstore:changed:nosuch"});
  EXPECT_EQ(hex(s.reply),
            hex(test::concat({option_reply(opt_list_meta_context, rep_meta_context,
                                           meta_context(0, "x-snapstore:changed:snap2")),
                              option_reply(opt_list_meta_context, rep_ack)})));
  EXPECT_TRUE(selected_after_go().empty()) << "LIST must not select";
}

// meta_context.h, rule 3: the namespace is not enumerated (thousands of snapshots).
TEST_F(ChangedContextTest, ListOfTheNamespaceFindsNothing) {
  start();
  negotiate_structured();
  HandshakeStep s = query(opt_list_meta_context, {"x-snapstore:", "x-snapstore:changed:"});
  EXPECT_EQ(hex(s.reply), hex(option_reply(opt_list_meta_context, rep_ack)));
}

TEST_F(ChangedContextTest, ListWithoutQueriesShowsOnlyBaseAllocation) {
  start();
  negotiate_structured();
  HandshakeStep s = query(opt_list_meta_context, {});
  EXPECT_EQ(hex(s.reply), hex(test::concat({option_reply(opt_list_meta_context, rep_meta_context,
                                                         meta_context(0, "base:allocation")),
                                            option_reply(opt_list_meta_context, rep_ack)})));
}

TEST_F(ChangedContextTest, APeerDeletedBeforeSetIsNotSelected) {
  start();
  negotiate_structured();
  pooled_->peers.erase("snap1");
  HandshakeStep s = query(opt_set_meta_context, {"base:allocation", "x-snapstore:changed:snap1"});
  EXPECT_EQ(hex(s.reply), hex(test::concat({option_reply(opt_set_meta_context, rep_meta_context,
                                                         meta_context(1, "base:allocation")),
                                            option_reply(opt_set_meta_context, rep_ack)})));
}

TEST_F(ChangedContextTest, TooManyContextsIsTooBigAndSelectsNothing) {
  HandshakeLimits limits;
  limits.max_meta_contexts = 2;
  Handshake hs(exports_, limits);
  auto send = [&](std::uint32_t opt, const Bytes& data) {
    EXPECT_EQ(
        hs.on_option_header(option_header(opt, static_cast<std::uint32_t>(data.size()))).action,
        next::read_option_data);
    return hs.on_option_data(data);
  };
  ASSERT_EQ(hs.on_client_flags(fixed).action, next::read_option_header);
  ASSERT_EQ(hex(send(opt_structured_reply, {}).reply),
            hex(option_reply(opt_structured_reply, rep_ack)));
  // Two is the limit and fine; duplicates and misses do not count.
  auto two = split_option_replies(
      send(opt_set_meta_context,
           meta_context_request("pooled", {"base:allocation", "x-snapstore:changed:nosuch",
                                           "x-snapstore:changed:snap1", "base:allocation"}))
          .reply);
  ASSERT_EQ(two.size(), 3u);
  for (std::uint32_t opt : {opt_set_meta_context, opt_list_meta_context}) {
    expect_error(
        send(opt, meta_context_request("pooled", {"base:allocation", "x-snapstore:changed:snap1",
                                                  "x-snapstore:changed:snap2"})),
        opt, rep_err_too_big);
  }
  ASSERT_EQ(send(opt_go, info_request("pooled")).action, next::enter_transmission);
  EXPECT_TRUE(hs.negotiated().meta_contexts.empty());
}

// --- an export removed between GO's lookup and the reply (handshake.h, invariant 6) ------

TEST_F(ChangedContextTest, ExportGoneAtGoIsErrUnknownAndKeepsTheSelection) {
  start();
  negotiate_structured();
  query(opt_set_meta_context, {"base:allocation", "x-snapstore:changed:snap1"});
  HandshakeStep go = option(opt_go, info_request("pooled"));
  ASSERT_EQ(go.action, next::enter_transmission);
  HandshakeStep gone = hs_.on_export_gone();
  expect_error(gone, opt_go, rep_err_unknown);
  EXPECT_EQ(hs_.negotiated().volume, nullptr);
  EXPECT_EQ(hs_.negotiated().export_name, "");
  EXPECT_TRUE(hs_.negotiated().meta_contexts.empty());
  // The client may try again (here the export is still there) with what it selected.
  EXPECT_EQ(selected_after_go(),
            (std::vector<MetaContext>{{1, "base:allocation"}, {2, "x-snapstore:changed:snap1"}}));
  EXPECT_EQ(hs_.negotiated().volume, pooled_);
}

TEST_F(ChangedContextTest, ExportGoneAtExportNameCloses) {
  start(fixed | no_zeroes);
  ASSERT_EQ(option(opt_export_name, test::bytes_of("pooled")).action, next::enter_transmission);
  HandshakeStep gone = hs_.on_export_gone();
  EXPECT_EQ(gone.action, next::close);
  EXPECT_TRUE(gone.reply.empty());
  EXPECT_FALSE(gone.reason.empty());
  EXPECT_EQ(hs_.negotiated().volume, nullptr);
}

// --- option headers and limits ---------------------------------------------------------

TEST_F(HandshakeTest, OptionHeaderWithBadMagicCloses) {
  start();
  HandshakeStep s = hs_.on_option_header(option_header(opt_list, 0, 0x49484156454F5055ull));
  EXPECT_EQ(s.action, next::close);
  EXPECT_TRUE(s.reply.empty());
  EXPECT_FALSE(s.reason.empty());
}

TEST_F(HandshakeTest, ShortOptionHeaderCloses) {
  start();
  Bytes header = option_header(opt_list, 0);
  header.pop_back();
  EXPECT_EQ(hs_.on_option_header(header).action, next::close);
}

TEST_F(HandshakeTest, OptionDataAtTheLimitIsRead) {
  start();
  HandshakeStep s = hs_.on_option_header(option_header(99, 64 * 1024));
  EXPECT_EQ(s.action, next::read_option_data);
  EXPECT_EQ(s.data_length, 64u * 1024u);
}

TEST_F(HandshakeTest, OptionDataOverTheLimitClosesWithErrTooBig) {
  start();
  HandshakeStep s = hs_.on_option_header(option_header(opt_go, 64 * 1024 + 1));
  EXPECT_EQ(s.action, next::close);
  EXPECT_FALSE(s.reason.empty());
  auto replies = split_option_replies(s.reply);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].magic, 0x3e889045565a9ull);
  EXPECT_EQ(replies[0].option, static_cast<std::uint32_t>(opt_go));
  EXPECT_EQ(replies[0].type, 0x80000009u);
}

TEST_F(HandshakeTest, HugeOptionLengthClosesWithErrTooBig) {
  start();
  HandshakeStep s = hs_.on_option_header(option_header(opt_list, 0xffffffffu));
  EXPECT_EQ(s.action, next::close);
  auto replies = split_option_replies(s.reply);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].type, static_cast<std::uint32_t>(rep_err_too_big));
}

TEST_F(HandshakeTest, CustomLimitsApply) {
  HandshakeLimits limits;
  limits.max_option_length = 100;
  limits.max_name_length = 8;
  Handshake hs(exports_, limits);
  ASSERT_EQ(hs.on_client_flags(fixed).action, next::read_option_header);
  EXPECT_EQ(hs.on_option_header(option_header(99, 100)).action, next::read_option_data);
  (void)hs.on_option_data(Bytes(100));
  // A 9-byte name is over max_name_length.
  Bytes data = info_request("123456789");
  ASSERT_EQ(hs.on_option_header(option_header(opt_info, static_cast<std::uint32_t>(data.size())))
                .action,
            next::read_option_data);
  expect_error(hs.on_option_data(data), opt_info, rep_err_invalid);
  EXPECT_EQ(hs.on_option_header(option_header(99, 101)).action, next::close);
}

TEST_F(HandshakeTest, TooManyOptionsClose) {
  HandshakeLimits limits;
  limits.max_options = 3;
  Handshake hs(exports_, limits);
  ASSERT_EQ(hs.on_client_flags(fixed).action, next::read_option_header);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(hs.on_option_header(option_header(99, 0)).action, next::read_option_data) << i;
    EXPECT_EQ(hs.on_option_data({}).action, next::read_option_header);
  }
  HandshakeStep s = hs.on_option_header(option_header(opt_list, 0));
  EXPECT_EQ(s.action, next::close);
  EXPECT_FALSE(s.reason.empty());
}

TEST_F(HandshakeTest, DefaultLimitAllowsManyOptions) {
  start();
  for (int i = 0; i < 1024; ++i)
    ASSERT_EQ(hs_.on_option_header(option_header(99, 0)).action, next::read_option_data) << i;
  EXPECT_EQ(hs_.on_option_header(option_header(99, 0)).action, next::close);
}

// --- transmission flags ----------------------------------------------------------------

class PlainVolume final : public Volume {
 public:
  PlainVolume(bool ro, bool fast_zero, bool multi_conn)
      : ro_(ro), fast_zero_(fast_zero), multi_conn_(multi_conn) {}
  std::uint64_t size() const override { return 4096; }
  bool read_only() const override { return ro_; }
  std::string description() const override { return "plain"; }
  bool multi_conn_safe() const override { return multi_conn_; }
  bool supports_fast_zero() const override { return fast_zero_; }
  Status read(std::uint64_t, std::span<std::byte>) override { return Status::ok(); }
  Status write(std::uint64_t, std::span<const std::byte>, bool) override { return Status::ok(); }
  Status flush() override { return Status::ok(); }
  Status trim(std::uint64_t, std::uint64_t, bool) override { return Status::ok(); }
  Status write_zeroes(std::uint64_t, std::uint64_t, bool, bool, bool) override {
    return Status::ok();
  }
  Result<std::vector<Extent>> block_status(std::uint64_t, std::uint64_t length) override {
    return std::vector<Extent>{{length, 0}};
  }

 private:
  bool ro_, fast_zero_, multi_conn_;
};

TEST(TransmissionFlags, WritableVolume) {
  PlainVolume v(false, true, true);
  EXPECT_EQ(Handshake::transmission_flags_for(v, false), writable_flags);
  EXPECT_EQ(Handshake::transmission_flags_for(v, true), writable_flags | df);
}

TEST(TransmissionFlags, ReadOnlyVolumeHasNoTrimOrZeroes) {
  PlainVolume v(true, true, true);
  std::uint16_t f = Handshake::transmission_flags_for(v, false);
  EXPECT_EQ(f, read_only_flags);
  EXPECT_EQ(f & 0x0020, 0);  // SEND_TRIM
  EXPECT_EQ(f & 0x0040, 0);  // SEND_WRITE_ZEROES
  EXPECT_EQ(f & 0x0800, 0);  // SEND_FAST_ZERO
  EXPECT_EQ(Handshake::transmission_flags_for(v, true), read_only_flags | df);
}

TEST(TransmissionFlags, FastZeroAndMultiConnFollowTheVolume) {
  PlainVolume v(false, false, false);
  EXPECT_EQ(Handshake::transmission_flags_for(v, false), writable_flags & ~0x0800 & ~0x0100);
}

}  // namespace
}  // namespace snapstore::nbd
