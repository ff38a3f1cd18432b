// Negotiation through libnbd: structured replies on and off, the export list, NBD_OPT_INFO,
// export names that do not exist, and the transmission flags each export advertises.
#include <gtest/gtest.h>

#include <map>

#include "test_server.h"

namespace snapstore::integration {
namespace {

class Negotiation : public ::testing::Test {
 protected:
  InProcessServer server_;
};

TEST_F(Negotiation, WithoutStructuredRepliesEverythingStillWorks) {
  ConnectOptions o;
  o.structured_replies = false;
  auto h = server_.connect(o);
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h.get()), 0);
  EXPECT_EQ(nbd_can_df(h.get()), 0) << "DF needs structured replies";
  EXPECT_NE(nbd_can_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION), 1)
      << "no metadata context without structured replies";

  const auto data = pattern(10000, 1);
  ASSERT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 777, 0), 0) << nbd_error_text();
  std::vector<char> back(data.size());
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 777, 0), 0) << nbd_error_text();
  EXPECT_EQ(back, data);
  std::vector<char> hole(4096, '\x55');
  ASSERT_EQ(nbd_pread(h.get(), hole.data(), hole.size(), 1 << 20, 0), 0) << nbd_error_text();
  EXPECT_TRUE(all_zero(hole.data(), hole.size()));
  EXPECT_EQ(nbd_flush(h.get(), 0), 0) << nbd_error_text();
  EXPECT_EQ(nbd_zero(h.get(), 100, 777, 0), 0) << nbd_error_text();
  EXPECT_EQ(nbd_trim(h.get(), 4096, 8192, 0), 0) << nbd_error_text();
}

TEST_F(Negotiation, WithStructuredRepliesDfAndBaseAllocationAreOffered) {
  auto h = server_.connect("origin");
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h.get()), 1);
  EXPECT_EQ(nbd_can_df(h.get()), 1);
  EXPECT_EQ(nbd_can_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
}

TEST_F(Negotiation, MetaContextIsOnlyGivenWhenAskedFor) {
  ConnectOptions o;
  o.meta_context = false;
  auto h = server_.connect(o);
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_get_structured_replies_negotiated(h.get()), 1);
  EXPECT_NE(nbd_can_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
}

struct ExportList {
  std::map<std::string, std::string> entries;
  int duplicates = 0;
};

int record_export(void* user_data, const char* name, const char* description) {
  auto* list = static_cast<ExportList*>(user_data);
  if (!list->entries.emplace(name, description).second) ++list->duplicates;
  return 0;
}

TEST_F(Negotiation, ExportListShowsEveryExportWithItsDescription) {
  ConnectOptions o;
  o.opt_mode = true;
  auto h = server_.connect(o);
  ASSERT_TRUE(h);
  ASSERT_EQ(nbd_aio_is_negotiating(h.get()), 1);
  ExportList list;
  nbd_list_callback cb{record_export, &list, nullptr};
  EXPECT_EQ(nbd_opt_list(h.get(), cb), 4) << nbd_error_text();
  EXPECT_EQ(list.entries, server_.descriptions());
  EXPECT_EQ(list.duplicates, 0);
  // The list does not end negotiation: the same handle can still attach.
  ASSERT_EQ(nbd_opt_go(h.get()), 0) << nbd_error_text();
  EXPECT_EQ(nbd_get_size(h.get()), static_cast<int64_t>(InProcessServer::origin_size));
}

int record_context(void* user_data, const char* name) {
  static_cast<std::vector<std::string>*>(user_data)->push_back(name);
  return 0;
}

TEST_F(Negotiation, MetaContextListOffersBaseAllocation) {
  ConnectOptions o;
  o.opt_mode = true;
  auto h = server_.connect(o);
  ASSERT_TRUE(h);
  std::vector<std::string> contexts;
  nbd_context_callback cb{record_context, &contexts, nullptr};
  EXPECT_EQ(nbd_opt_list_meta_context(h.get(), cb), 1) << nbd_error_text();
  EXPECT_EQ(contexts, std::vector<std::string>{LIBNBD_CONTEXT_BASE_ALLOCATION});
  ASSERT_EQ(nbd_opt_go(h.get()), 0) << nbd_error_text();
  EXPECT_EQ(nbd_can_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
}

TEST_F(Negotiation, OptInfoDescribesAnExportAndRefusesAnUnknownOne) {
  ConnectOptions o;
  o.opt_mode = true;
  o.full_info = true;
  o.export_name = "nope";
  auto h = server_.connect(o);
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_opt_info(h.get()), -1) << "NBD_OPT_INFO on an unknown export must fail";
  ASSERT_EQ(nbd_aio_is_negotiating(h.get()), 1) << "an INFO error must not end negotiation";

  ASSERT_EQ(nbd_set_export_name(h.get(), "aligned"), 0);
  ASSERT_EQ(nbd_opt_info(h.get()), 0) << nbd_error_text();
  EXPECT_EQ(nbd_get_size(h.get()), static_cast<int64_t>(InProcessServer::small_size));
  EXPECT_EQ(nbd_get_block_size(h.get(), LIBNBD_SIZE_MINIMUM), 512);
  EXPECT_EQ(nbd_get_block_size(h.get(), LIBNBD_SIZE_PREFERRED), 4096);
  EXPECT_EQ(nbd_get_block_size(h.get(), LIBNBD_SIZE_MAXIMUM), InProcessServer::max_block);
  std::unique_ptr<char, decltype(&free)> description(nbd_get_export_description(h.get()), free);
  ASSERT_TRUE(description) << nbd_error_text();
  EXPECT_EQ(std::string(description.get()), server_.descriptions().at("aligned"));
  std::unique_ptr<char, decltype(&free)> name(nbd_get_canonical_export_name(h.get()), free);
  ASSERT_TRUE(name) << nbd_error_text();
  EXPECT_EQ(std::string(name.get()), "aligned");

  ASSERT_EQ(nbd_opt_go(h.get()), 0) << nbd_error_text();
  std::vector<char> buffer(512);
  EXPECT_EQ(nbd_pread(h.get(), buffer.data(), buffer.size(), 512, 0), 0) << nbd_error_text();
}

// NBD_OPT_GO can carry an error, so a wrong name must not end negotiation.
TEST_F(Negotiation, GoToAnUnknownExportFailsButTheClientMayTryAgain) {
  ConnectOptions o;
  o.opt_mode = true;
  o.export_name = "nope";
  auto h = server_.connect(o);
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_opt_go(h.get()), -1);
  ASSERT_EQ(nbd_aio_is_negotiating(h.get()), 1) << "a GO error must not end negotiation";
  ASSERT_EQ(nbd_set_export_name(h.get(), "tiny"), 0);
  ASSERT_EQ(nbd_opt_go(h.get()), 0) << nbd_error_text();
  EXPECT_EQ(nbd_get_size(h.get()), static_cast<int64_t>(InProcessServer::tiny_size));
  EXPECT_EQ(nbd_can_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
}

TEST_F(Negotiation, UnknownAndEmptyExportNamesAreRefused) {
  for (const char* name : {"nope", "", "origin ", "ORIGIN"}) {
    NbdHandle h = make_handle();
    ASSERT_TRUE(h);
    ASSERT_EQ(nbd_set_export_name(h.get(), name), 0);
    EXPECT_EQ(nbd_connect_unix(h.get(), server_.socket_path().c_str()), -1)
        << "export '" << name << "' does not exist";
    EXPECT_NE(nbd_aio_is_ready(h.get()), 1);
  }
  auto h = server_.connect("origin");  // the server is unharmed
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_flush(h.get(), 0), 0) << nbd_error_text();
}

TEST_F(Negotiation, WritableExportAdvertisesEveryCommand) {
  auto h = server_.connect("origin");
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_get_size(h.get()), static_cast<int64_t>(InProcessServer::origin_size));
  EXPECT_EQ(nbd_is_read_only(h.get()), 0);
  EXPECT_EQ(nbd_can_flush(h.get()), 1);
  EXPECT_EQ(nbd_can_fua(h.get()), 1);
  EXPECT_EQ(nbd_can_trim(h.get()), 1);
  EXPECT_EQ(nbd_can_zero(h.get()), 1);
  EXPECT_EQ(nbd_can_fast_zero(h.get()), 1);
  EXPECT_EQ(nbd_can_cache(h.get()), 1);
  EXPECT_EQ(nbd_can_multi_conn(h.get()), 1);
}

TEST_F(Negotiation, ReadOnlyExportAdvertisesNoWritingCommands) {
  auto h = server_.connect("ro");
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_is_read_only(h.get()), 1);
  EXPECT_EQ(nbd_can_trim(h.get()), 0);
  EXPECT_EQ(nbd_can_zero(h.get()), 0);
  EXPECT_EQ(nbd_can_fast_zero(h.get()), 0);
  EXPECT_EQ(nbd_can_flush(h.get()), 1);
  EXPECT_EQ(nbd_can_cache(h.get()), 1);
}

}  // namespace
}  // namespace snapstore::integration
