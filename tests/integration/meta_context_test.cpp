// The x-snapstore:changed:NAME metadata context through libnbd, next to base:allocation:
// negotiation (SET and LIST), one chunk per context in NBD_CMD_BLOCK_STATUS, REQ_ONE, and a
// peer deleted while the client is attached.
//
// The exports are TestVolumes (test_volumes.h) of one family: "live", "snap" and "other"
// can each compare themselves with the others by reading both.
#include <gtest/gtest.h>

#include <cerrno>
#include <map>

#include "test_server.h"
#include "test_volumes.h"

namespace snapstore::integration {
namespace {

constexpr std::uint64_t family_size = 4ull << 20;
constexpr const char* changed_snap = "x-snapstore:changed:snap";
constexpr const char* changed_other = "x-snapstore:changed:other";

// Extents per context name, as libnbd delivered them for one request.
struct ContextExtents {
  std::map<std::string, std::vector<ExtentEntry>> by_context;
  std::map<std::string, int> calls;
};

int record_extents(void* user_data, const char* context, std::uint64_t /*offset*/,
                   std::uint32_t* entries, std::size_t nr_entries, int* /*error*/) {
  auto* c = static_cast<ContextExtents*>(user_data);
  ++c->calls[context];
  for (std::size_t i = 0; i + 1 < nr_entries; i += 2)
    c->by_context[context].push_back({entries[i], entries[i + 1]});
  return 0;
}

int record_name(void* user_data, const char* name) {
  static_cast<std::vector<std::string>*>(user_data)->push_back(name);
  return 0;
}

class MetaContextTest : public ::testing::Test {
 protected:
  MetaContextTest() {
    for (const char* name : {"live", "snap", "other"}) {
      auto v = std::make_shared<TestVolume>(
          MemoryVolumeOptions{.size = family_size, .description = std::string(name)}, family_);
      volumes_[name] = v;
      family_->add(name, v);
      EXPECT_TRUE(server_.exports().add(name, v).is_ok());
    }
  }

  // A handle for `export_name` asking for `contexts`, connected (or in opt mode).
  NbdHandle connect(const std::string& export_name, std::initializer_list<const char*> contexts,
                    bool opt_mode = false) {
    ConnectOptions o;
    o.export_name = export_name;
    o.meta_context = false;
    o.opt_mode = opt_mode;
    NbdHandle h = make_handle(o);
    if (!h) return h;
    for (const char* c : contexts)
      EXPECT_EQ(nbd_add_meta_context(h.get(), c), 0) << nbd_error_text();
    if (nbd_connect_unix(h.get(), server_.socket_path().c_str()) != 0) {
      ADD_FAILURE() << "connecting to '" << export_name << "': " << nbd_error_text();
      h.reset();
    }
    return h;
  }

  void write(const std::string& name, std::uint64_t offset, std::size_t size, std::uint64_t seed) {
    const auto data = pattern(size, seed);
    ASSERT_TRUE(volumes_.at(name)
                    ->write(offset, std::as_bytes(std::span(data.data(), data.size())), false)
                    .is_ok());
  }

  std::optional<ContextExtents> status(nbd_handle* h, std::uint64_t count, std::uint64_t offset,
                                       std::uint32_t flags = 0, int* err = nullptr) {
    ContextExtents c;
    nbd_extent_callback cb{record_extents, &c, nullptr};
    if (nbd_block_status(h, count, offset, cb, flags) != 0) {
      if (err) *err = nbd_get_errno();
      return std::nullopt;
    }
    return c;
  }

  InProcessServer server_;
  std::shared_ptr<PeerDirectory> family_ = std::make_shared<PeerDirectory>();
  std::map<std::string, std::shared_ptr<TestVolume>> volumes_;
};

TEST_F(MetaContextTest, BothContextsAreNegotiated) {
  auto h = connect("live", {LIBNBD_CONTEXT_BASE_ALLOCATION, changed_snap, changed_other});
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_can_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
  EXPECT_EQ(nbd_can_meta_context(h.get(), changed_snap), 1);
  EXPECT_EQ(nbd_can_meta_context(h.get(), changed_other), 1);
}

TEST_F(MetaContextTest, UnknownPeersAndNamespacesAreNotNegotiated) {
  auto h = connect("live", {LIBNBD_CONTEXT_BASE_ALLOCATION, "x-snapstore:changed:nosuch",
                            "x-snapstore:changed:", "x-snapstore:"});
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_can_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
  EXPECT_NE(nbd_can_meta_context(h.get(), "x-snapstore:changed:nosuch"), 1);
  EXPECT_NE(nbd_can_meta_context(h.get(), "x-snapstore:changed:"), 1);
}

TEST_F(MetaContextTest, AVolumeWithoutPeersOffersNoChangedContext) {
  auto h = connect("origin", {LIBNBD_CONTEXT_BASE_ALLOCATION, changed_snap});  // a MemoryVolume
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_can_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION), 1);
  EXPECT_NE(nbd_can_meta_context(h.get(), changed_snap), 1);
}

TEST_F(MetaContextTest, ListAnswersExactNamesAndDoesNotEnumerateTheNamespace) {
  auto h = connect("live",
                   {changed_snap, "x-snapstore:changed:nosuch",
                    "x-snapstore:", "x-snapstore:changed:", LIBNBD_CONTEXT_BASE_ALLOCATION},
                   /*opt_mode=*/true);
  ASSERT_TRUE(h);
  std::vector<std::string> names;
  nbd_context_callback cb{record_name, &names, nullptr};
  EXPECT_EQ(nbd_opt_list_meta_context(h.get(), cb), 2) << nbd_error_text();
  EXPECT_EQ(names, (std::vector<std::string>{changed_snap, LIBNBD_CONTEXT_BASE_ALLOCATION}));
  ASSERT_EQ(nbd_opt_go(h.get()), 0) << nbd_error_text();
  EXPECT_EQ(nbd_can_meta_context(h.get(), changed_snap), 1);
}

TEST_F(MetaContextTest, BlockStatusSendsOneChunkPerContext) {
  // live differs from snap where live was written after "the snapshot", and where snap
  // alone was written; the same data written to both is not a change.
  write("live", 64 << 10, 8192, 1);
  write("live", 1 << 20, 4096, 2);
  write("snap", 3 << 20, 4096, 3);
  write("live", 2 << 20, 4096, 4);
  write("snap", 2 << 20, 4096, 4);
  auto h = connect("live", {LIBNBD_CONTEXT_BASE_ALLOCATION, changed_snap});
  ASSERT_TRUE(h);
  auto c = status(h.get(), family_size, 0);
  ASSERT_TRUE(c) << nbd_error_text();
  EXPECT_EQ(c->calls,
            (std::map<std::string, int>{{LIBNBD_CONTEXT_BASE_ALLOCATION, 1}, {changed_snap, 1}}));
  // TestVolume answers at most 1 MiB of changes per request: a prefix, as allowed.
  EXPECT_EQ(c->by_context[changed_snap],
            (std::vector<ExtentEntry>{{64 << 10, 0}, {8192, 1}, {(1 << 20) - (72 << 10), 0}}));
  EXPECT_EQ(c->by_context[LIBNBD_CONTEXT_BASE_ALLOCATION],
            (std::vector<ExtentEntry>{{64 << 10, hole_zero},
                                      {8192, 0},
                                      {(1 << 20) - (72 << 10), hole_zero},
                                      {4096, 0},
                                      {(1 << 20) - 4096, hole_zero},
                                      {4096, 0},
                                      {(2 << 20) - 4096, hole_zero}}));

  // The next ranges, as a client walks them.
  c = status(h.get(), 3 << 20, 1 << 20);
  ASSERT_TRUE(c) << nbd_error_text();
  EXPECT_EQ(c->by_context[changed_snap],
            (std::vector<ExtentEntry>{{4096, 1}, {(1 << 20) - 4096, 0}}));
  c = status(h.get(), 1 << 20, 2 << 20);  // written alike on both: no change
  ASSERT_TRUE(c) << nbd_error_text();
  EXPECT_EQ(c->by_context[changed_snap], (std::vector<ExtentEntry>{{1 << 20, 0}}));
  c = status(h.get(), 1 << 20, 3 << 20);
  ASSERT_TRUE(c) << nbd_error_text();
  EXPECT_EQ(c->by_context[changed_snap],
            (std::vector<ExtentEntry>{{4096, 1}, {(1 << 20) - 4096, 0}}));
}

TEST_F(MetaContextTest, ChangesSeenThroughTheConnectionItself) {
  auto h = connect("live", {changed_snap});
  ASSERT_TRUE(h);
  auto c = status(h.get(), 1 << 20, 0);
  ASSERT_TRUE(c) << nbd_error_text();
  EXPECT_EQ(c->by_context[changed_snap], (std::vector<ExtentEntry>{{1 << 20, 0}}));
  const auto data = pattern(512, 9);
  ASSERT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 12288 + 100, 0), 0) << nbd_error_text();
  c = status(h.get(), 1 << 20, 0);
  ASSERT_TRUE(c) << nbd_error_text();
  EXPECT_EQ(c->by_context[changed_snap],
            (std::vector<ExtentEntry>{{12288, 0}, {4096, 1}, {(1 << 20) - 16384, 0}}));
  EXPECT_EQ(c->calls.size(), 1u) << "only the selected context is reported";
}

TEST_F(MetaContextTest, ReqOneGivesOneExtentPerContext) {
  write("live", 0, 4096, 5);
  auto h = connect("live", {LIBNBD_CONTEXT_BASE_ALLOCATION, changed_snap, changed_other});
  ASSERT_TRUE(h);
  write("other", 0, 4096, 5);  // the same bytes: no change against other
  auto c = status(h.get(), 65536, 0, LIBNBD_CMD_FLAG_REQ_ONE);
  ASSERT_TRUE(c) << nbd_error_text();
  EXPECT_EQ(c->by_context[LIBNBD_CONTEXT_BASE_ALLOCATION], (std::vector<ExtentEntry>{{4096, 0}}));
  EXPECT_EQ(c->by_context[changed_snap], (std::vector<ExtentEntry>{{4096, 1}}));
  EXPECT_EQ(c->by_context[changed_other], (std::vector<ExtentEntry>{{65536, 0}}));
}

// The peer is deleted after negotiation: EINVAL, not data; the connection lives on.
TEST_F(MetaContextTest, PeerDeletedAfterNegotiationIsEinval) {
  auto h = connect("live", {LIBNBD_CONTEXT_BASE_ALLOCATION, changed_snap});
  ASSERT_TRUE(h);
  family_->remove("snap");
  int err = 0;
  EXPECT_FALSE(status(h.get(), 65536, 0, 0, &err)) << "an answer about a deleted volume";
  EXPECT_EQ(err, EINVAL) << nbd_error_text();
  ASSERT_TRUE(write_read_within(h.get(), 8192, 6)) << "the connection is still usable";

  family_->add("snap", volumes_.at("snap"));  // the same name again: answers again
  auto c = status(h.get(), 65536, 0);
  ASSERT_TRUE(c) << nbd_error_text();
  EXPECT_EQ(c->by_context[changed_snap],
            (std::vector<ExtentEntry>{{8192, 0}, {4096, 1}, {65536 - 12288, 0}}));
}

}  // namespace
}  // namespace snapstore::integration
