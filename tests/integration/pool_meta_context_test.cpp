// x-snapstore:changed:NAME end to end on a real pool: PoolVolumes of an in-memory pool
// served by the in-process server, a snapshot taken between writes, and libnbd asking
// which blocks of the origin changed since the snapshot (and of the snapshot against the
// origin), until the snapshot is deleted.
#include <gtest/gtest.h>

#include <cerrno>
#include <map>

#include "store/memory_device.h"
#include "test_server.h"
#include "volume/pool.h"
#include "volume/pool_volume.h"

namespace snapstore::integration {
namespace {

constexpr std::uint64_t origin_bytes = 16ull << 20;
constexpr const char* changed_snap = "x-snapstore:changed:snap1";

int record_extents(void* user_data, const char* context, std::uint64_t /*offset*/,
                   std::uint32_t* entries, std::size_t nr_entries, int* /*error*/) {
  auto* by_context = static_cast<std::map<std::string, std::vector<ExtentEntry>>*>(user_data);
  for (std::size_t i = 0; i + 1 < nr_entries; i += 2)
    (*by_context)[context].push_back({entries[i], entries[i + 1]});
  return 0;
}

class PoolMetaContext : public ::testing::Test {
 protected:
  void SetUp() override {
    device_ = std::make_shared<MemoryDevice>(128 << 20);
    FormatOptions f;
    f.origin_size = origin_bytes;
    ASSERT_TRUE(Pool::format({device_}, f));
    PoolOptions o;
    o.background_reclaim = false;
    o.cache_bytes = 8 << 20;
    auto p = Pool::open({device_}, o);
    ASSERT_TRUE(p) << p.status().to_string();
    pool_ = std::shared_ptr<Pool>(std::move(p).value());
    block_ = pool_->data_block_size();
  }
  void TearDown() override {
    if (!server_.stop()) ADD_FAILURE() << "server did not stop";
    if (pool_) {
      EXPECT_TRUE(pool_->close());
    }
  }

  void serve(const std::string& name) {
    auto record = pool_->find_volume(name);
    ASSERT_TRUE(record) << record.status().to_string();
    ASSERT_TRUE(server_.exports()
                    .add("pool-" + name, std::make_shared<PoolVolume>(pool_, *record, "test"))
                    .is_ok());
  }
  void write_block(nbd_handle* h, std::uint64_t index, std::uint64_t seed) {
    const auto data = pattern(block_, seed);
    ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), index * block_, 0), 0) << nbd_error_text();
  }
  NbdHandle connect(const std::string& export_name, const char* peer_context) {
    ConnectOptions o;
    o.export_name = export_name;
    NbdHandle h = make_handle(o);  // asks for base:allocation
    if (h) {
      EXPECT_EQ(nbd_add_meta_context(h.get(), peer_context), 0);
    }
    if (h && nbd_connect_unix(h.get(), server_.socket_path().c_str()) != 0) {
      ADD_FAILURE() << nbd_error_text();
      h.reset();
    }
    return h;
  }
  // The changed extents over [0, length), walking on as a client does when the server
  // answers a prefix; merged where neighbours have the same flags.
  std::optional<std::vector<ExtentEntry>> changes(nbd_handle* h, const char* context,
                                                  std::uint64_t length, int* err = nullptr) {
    std::vector<ExtentEntry> out;
    for (std::uint64_t at = 0; at < length;) {
      std::map<std::string, std::vector<ExtentEntry>> by_context;
      nbd_extent_callback cb{record_extents, &by_context, nullptr};
      if (nbd_block_status(h, length - at, at, cb, 0) != 0) {
        if (err) *err = nbd_get_errno();
        return std::nullopt;
      }
      const auto& got = by_context[context];
      EXPECT_FALSE(got.empty());
      if (got.empty()) return std::nullopt;
      EXPECT_EQ(by_context.size(), 2u) << "one chunk for base:allocation, one for " << context;
      for (const ExtentEntry& e : got) {
        if (!out.empty() && out.back().flags == e.flags)
          out.back().length += e.length;
        else
          out.push_back(e);
        at += e.length;
      }
    }
    return out;
  }

  std::shared_ptr<MemoryDevice> device_;
  std::shared_ptr<Pool> pool_;
  std::uint64_t block_ = 0;
  InProcessServer server_;
};

TEST_F(PoolMetaContext, OriginChangesSinceASnapshotUntilTheSnapshotIsDeleted) {
  serve("origin");
  auto origin = connect("pool-origin", "base:allocation");
  ASSERT_TRUE(origin);
  write_block(origin.get(), 0, 1);
  write_block(origin.get(), 5, 2);
  ASSERT_EQ(nbd_flush(origin.get(), 0), 0);
  ASSERT_TRUE(pool_->create_snapshot("origin", "snap1", false));
  serve("snap1");

  // After the snapshot: one block rewritten, one new; block 0 stays as it was.
  write_block(origin.get(), 5, 3);
  write_block(origin.get(), 9, 4);
  origin.reset();

  auto h = connect("pool-origin", changed_snap);
  ASSERT_TRUE(h);
  ASSERT_EQ(nbd_can_meta_context(h.get(), changed_snap), 1);
  auto c = changes(h.get(), changed_snap, origin_bytes);
  ASSERT_TRUE(c) << nbd_error_text();
  const std::uint32_t b = static_cast<std::uint32_t>(block_);
  EXPECT_EQ(*c, (std::vector<ExtentEntry>{{5 * b, 0},
                                          {b, 1},
                                          {3 * b, 0},
                                          {b, 1},
                                          {static_cast<std::uint32_t>(origin_bytes) - 10 * b, 0}}));

  // The snapshot sees the same differences from its side.
  auto snap = connect("pool-snap1", "x-snapstore:changed:origin");
  ASSERT_TRUE(snap);
  auto back = changes(snap.get(), "x-snapstore:changed:origin", origin_bytes);
  ASSERT_TRUE(back) << nbd_error_text();
  EXPECT_EQ(*back, *c);

  // Deleting the snapshot: the origin's client gets EINVAL, not a made-up answer.
  snap.reset();
  ASSERT_TRUE(pool_->delete_volume("snap1"));
  int err = 0;
  EXPECT_FALSE(changes(h.get(), changed_snap, origin_bytes, &err));
  EXPECT_EQ(err, EINVAL) << nbd_error_text();
  EXPECT_TRUE(write_read_within(h.get(), 12 * block_, 5)) << "the connection lives on";

  // And a new client is no longer offered the context.
  auto late = connect("pool-origin", changed_snap);
  ASSERT_TRUE(late);
  EXPECT_NE(nbd_can_meta_context(late.get(), changed_snap), 1);
}

}  // namespace
}  // namespace snapstore::integration
