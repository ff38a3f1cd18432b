// Exports added to and removed from the ExportTable while the server runs (what the control
// socket does on snapshot create and delete): NBD_OPT_LIST, NBD_OPT_INFO's description and
// attaching all follow the table at once.
#include <gtest/gtest.h>

#include <map>

#include "test_server.h"

namespace snapstore::integration {
namespace {

int record_export(void* user_data, const char* name, const char* description) {
  static_cast<std::map<std::string, std::string>*>(user_data)->emplace(name, description);
  return 0;
}

class DynamicExports : public ::testing::Test {
 protected:
  // NBD_OPT_LIST as a client sees it now.
  std::map<std::string, std::string> listed() {
    ConnectOptions o;
    o.opt_mode = true;
    auto h = server_.connect(o);
    std::map<std::string, std::string> out;
    if (!h) return out;
    nbd_list_callback cb{record_export, &out, nullptr};
    EXPECT_GE(nbd_opt_list(h.get(), cb), 0) << nbd_error_text();
    return out;
  }

  // NBD_INFO_DESCRIPTION of `name` through NBD_OPT_INFO, or nullopt if INFO fails.
  std::optional<std::string> description(const std::string& name) {
    ConnectOptions o;
    o.opt_mode = true;
    o.full_info = true;
    o.export_name = name;
    auto h = server_.connect(o);
    if (!h || nbd_opt_info(h.get()) != 0) return std::nullopt;
    std::unique_ptr<char, decltype(&free)> d(nbd_get_export_description(h.get()), free);
    return d ? std::optional<std::string>(d.get()) : std::nullopt;
  }

  InProcessServer server_;
};

TEST_F(DynamicExports, AnExportAddedWhileRunningIsListedDescribedAndAttachable) {
  ASSERT_EQ(listed().count("fresh"), 0u);
  auto volume = std::make_shared<MemoryVolume>(
      MemoryVolumeOptions{.size = 2 << 20, .description = "snapshot of origin, made just now"});
  ASSERT_TRUE(server_.exports().add("fresh", volume).is_ok());

  auto list = listed();
  ASSERT_EQ(list.count("fresh"), 1u);
  EXPECT_EQ(list.at("fresh"), "snapshot of origin, made just now");
  EXPECT_EQ(list.size(), server_.descriptions().size() + 1);
  EXPECT_EQ(description("fresh"), "snapshot of origin, made just now");

  auto h = server_.connect("fresh");
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_get_size(h.get()), 2 << 20);
  EXPECT_TRUE(write_read_within(h.get(), 4096, 1));
  EXPECT_EQ(server_.server().connections().count_attached("fresh"), 1u);
}

TEST_F(DynamicExports, AnExportRemovedWhileRunningDisappearsAndIsRefused) {
  ASSERT_EQ(listed().count("tiny"), 1u);
  ASSERT_TRUE(server_.exports().remove("tiny").is_ok());

  auto list = listed();
  EXPECT_EQ(list.count("tiny"), 0u);
  EXPECT_EQ(list.size(), server_.descriptions().size() - 1);
  EXPECT_EQ(description("tiny"), std::nullopt) << "NBD_OPT_INFO must refuse a removed export";
  NbdHandle h = make_handle({.export_name = "tiny"});
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_connect_unix(h.get(), server_.socket_path().c_str()), -1);
  RawSocket raw = server_.raw();
  EXPECT_FALSE(raw_attach(raw, "tiny")) << "NBD_OPT_EXPORT_NAME must close on a removed export";
}

TEST_F(DynamicExports, ANameRemovedAndAddedAgainServesTheNewVolume) {
  auto old_client = server_.connect("tiny");
  ASSERT_TRUE(old_client);
  ASSERT_TRUE(server_.exports().remove("tiny").is_ok());
  auto volume = std::make_shared<MemoryVolume>(
      MemoryVolumeOptions{.size = 1 << 20, .description = "tiny, rolled back"});
  ASSERT_TRUE(server_.exports().add("tiny", volume).is_ok());
  EXPECT_EQ(description("tiny"), "tiny, rolled back");

  auto h = server_.connect("tiny");
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_get_size(h.get()), 1 << 20);
  // The client attached before keeps the volume it attached to until it is disconnected.
  EXPECT_EQ(nbd_get_size(old_client.get()), static_cast<int64_t>(InProcessServer::tiny_size));
  EXPECT_TRUE(write_read_within(old_client.get(), 0, 2, 10s, 512));
}

}  // namespace
}  // namespace snapstore::integration
