// The metadata damage matrix (issue 11, found 6 and deliver 5): each kind of metadata
// block damaged on one copy and on every copy. One copy: nothing is lost, reads heal it.
// Every copy: it costs what that block holds and nothing else. A lost mapping node answers
// EIO on its range only, reads and writes elsewhere go on, the volume is marked damaged
// and the pool stays writable; lost space maps or a lost volume table open the pool
// read-only with the reason, its data readable.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include "btree/btree_node.h"
#include "pool_fixture.h"

namespace snapstore {
namespace {

constexpr std::uint64_t device_size = 32 << 20;
constexpr std::uint64_t origin_size = 8 << 20;
constexpr std::uint32_t bs = 4096;

// Device offset of copy `copy` of metadata block `block`.
std::uint64_t metadata_offset(const Superblock& sb, std::uint64_t block, std::size_t copy) {
  const std::uint64_t logical = block * metadata_block_size;
  for (const Chunk& c : sb.chunks)
    if (c.kind == space::metadata && c.index == logical / sb.chunk_size)
      return c.stripes.at(copy).offset + logical % sb.chunk_size;
  ADD_FAILURE() << "no chunk holds metadata block " << block;
  return 0;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

enum class kind { mapping_leaf, mapping_interior, volume_table, data_space_map, metadata_space_map };
const char* kind_name(kind k) {
  switch (k) {
    case kind::mapping_leaf: return "a mapping leaf";
    case kind::mapping_interior: return "a mapping interior node";
    case kind::volume_table: return "the volume table";
    case kind::data_space_map: return "a data space-map page";
    case kind::metadata_space_map: return "a metadata space-map page";
  }
  return "?";
}

class PoolDamageTest : public PoolFixture {
 protected:
  // The origin fully written (a tree of two levels), a snapshot of it, then half the
  // origin overwritten (so its tree and the snapshot's share some leaves and not others),
  // and a second volume with data of its own.
  void SetUp() override {
    spdlog::set_level(spdlog::level::off);
    ASSERT_NO_FATAL_FAILURE(format_and_open(device_size, origin_size, quiet_options(), "damaged"));
    ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(origin_size, 1)));
    ASSERT_TRUE(pool_->create_snapshot("origin", "snap", false));
    snapshot_model_ = model_;
    ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(origin_size / 2, 2)));
    auto other = pool_->create_volume("other", 1 << 20);
    ASSERT_TRUE(other) << other.status().to_string();
    other_ = other->id;
    ASSERT_TRUE(pool_->write(other_, 0, pattern(1 << 20, 3), false));
    ASSERT_TRUE(pool_->commit());
    close();
    image_ = device_->contents();
    image_model_ = model_;
  }
  void TearDown() override {
    pool_.reset();
    spdlog::set_level(spdlog::level::info);
  }
  void restore() {
    pool_.reset();
    device_ = std::make_shared<MemoryDevice>(image_, "damaged");
    model_ = image_model_;
  }

  // The metadata block of `k`, and for a mapping leaf the volume blocks it holds.
  struct Target {
    std::uint64_t block = 0;
    std::uint64_t first_key = 0, end_key = 0;  // mapping leaf: [first, end) it maps
  };
  Target find(kind k) {
    PoolOptions ro = quiet_options();
    ro.read_only = true;
    auto p = Pool::open({device_}, ro);
    EXPECT_TRUE(p) << p.status().to_string();
    Target t;
    if (!p) return t;
    Pool& pool = **p;
    const Superblock& sb = pool.superblock();
    const BlockPointer root = pool.find_volume("origin")->mapping;
    auto node = pool.transaction_manager().read(root);
    EXPECT_TRUE(node);
    NodeView n((*node)->bytes);
    EXPECT_FALSE(n.is_leaf()) << "the test wants a tree of two levels";
    switch (k) {
      case kind::mapping_leaf: {
        // A leaf of the overwritten half: the origin's own, not shared with the snapshot.
        t.block = n.child(1).block;
        t.first_key = n.key(1);
        t.end_key = n.key(2);
        break;
      }
      case kind::mapping_interior: t.block = root.block; break;
      case kind::volume_table: t.block = sb.volume_table.block; break;
      case kind::data_space_map: {
        BTree index(pool.transaction_manager(), ValueTraits{32, nullptr, nullptr, nullptr});
        EXPECT_TRUE(index.scan(sb.data_sm_index, 0, ~0ull, [&](std::uint64_t, std::span<const std::byte> v) {
          t.block = decode_pointer(v.data()).block;
          return false;
        }));
        break;
      }
      case kind::metadata_space_map: t.block = sb.metadata_sm_index.at(0).block; break;
    }
    sb_ = sb;
    return t;
  }
  void damage(std::uint64_t block, std::size_t copy) {
    ASSERT_TRUE(device_->flip_bit(metadata_offset(sb_, block, copy) + 100, 3));
  }
  std::vector<std::byte> read(std::uint64_t volume, std::uint64_t offset, std::size_t n, Status* st = nullptr) {
    std::vector<std::byte> out(n);
    Status s = pool_->read(volume, offset, out);
    if (st) *st = s;
    else EXPECT_TRUE(s) << s.to_string();
    return out;
  }
  void expect_other_volumes_fine() {
    auto snap = pool_->find_volume("snap");
    ASSERT_TRUE(snap);
    EXPECT_TRUE(read(snap->id, 0, origin_size) == snapshot_model_) << "the snapshot lost data";
    EXPECT_TRUE(read(other_, 0, 1 << 20) == pattern(1 << 20, 3)) << "another volume lost data";
  }

  std::vector<std::byte> image_, image_model_, snapshot_model_;
  std::uint64_t other_ = 0;
  Superblock sb_;
};

// One copy of any kind of metadata: nothing lost; the reads that pass heal it, so after a
// writable open that reads everything, the pool is clean again.
TEST_F(PoolDamageTest, OneDamagedCopyOfAnyMetadataLosesNothing) {
  for (kind k : {kind::mapping_leaf, kind::mapping_interior, kind::volume_table, kind::data_space_map,
                 kind::metadata_space_map}) {
    SCOPED_TRACE(kind_name(k));
    restore();
    const Target t = find(k);
    ASSERT_NO_FATAL_FAILURE(damage(t.block, 0));
    EXPECT_FALSE(check().clean()) << "a damaged copy went unreported";
    ASSERT_NO_FATAL_FAILURE(open());
    EXPECT_FALSE(pool_->read_only());
    expect_model();
    ASSERT_NO_FATAL_FAILURE(expect_other_volumes_fine());
    ASSERT_NO_FATAL_FAILURE(write_model(100 * bs, pattern(bs, 9)));
    close();
    expect_clean();
    if (HasFailure()) return;
  }
}

// Found 6: a mapping leaf lost on every copy costs its range. Reads and writes there fail
// with an error, everything else goes on, the pool stays writable across reopens, and the
// volume says it is damaged.
TEST_F(PoolDamageTest, AMappingLeafLostOnEveryCopyCostsItsRangeOnly) {
  restore();
  const Target t = find(kind::mapping_leaf);
  ASSERT_LT(t.first_key, t.end_key);
  for (std::size_t copy = 0; copy < 2; ++copy) ASSERT_NO_FATAL_FAILURE(damage(t.block, copy));
  CheckReport r = check();
  EXPECT_TRUE(contains(problems_of(r), "damaged on every copy")) << problems_of(r);
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "first open" : "after a reopen");
    ASSERT_NO_FATAL_FAILURE(open());
    EXPECT_FALSE(pool_->read_only()) << pool_->stats().read_only_reason;
    Status st;
    (void)read(origin_, t.first_key * bs, bs, &st);
    EXPECT_EQ(st.code(), errc::corruption) << st.to_string();
    st = pool_->write(origin_, t.first_key * bs, pattern(bs, 20 + round), false);
    EXPECT_FALSE(st) << "a write into the lost range succeeded";
    EXPECT_TRUE(pool_->failure().is_ok()) << pool_->failure().to_string();
    // Everything outside the range: reads, writes, commits, snapshots.
    const std::uint64_t outside = (t.end_key + 10) * bs;
    ASSERT_NO_FATAL_FAILURE(write_model(outside, pattern(bs, 30 + round)));
    EXPECT_TRUE(read(origin_, outside, bs) == pattern(bs, 30 + round));
    EXPECT_TRUE(read(origin_, 0, t.first_key * bs) ==
                std::vector<std::byte>(model_.begin(), model_.begin() + t.first_key * bs));
    ASSERT_TRUE(pool_->commit());
    ASSERT_TRUE(pool_->create_snapshot("other", "other-snap-" + std::to_string(round), false));
    ASSERT_NO_FATAL_FAILURE(expect_other_volumes_fine());
    EXPECT_TRUE(pool_->find_volume("origin")->damaged());
    EXPECT_FALSE(pool_->find_volume("other")->damaged());
    bool listed = false;
    for (const std::string& d : pool_->stats().damage) listed |= contains(d, "'origin' is damaged");
    EXPECT_TRUE(listed) << "status does not name the damaged volume";
    close();
  }
}

TEST_F(PoolDamageTest, AMappingRootLostOnEveryCopyCostsThatVolumeOnly) {
  restore();
  const Target t = find(kind::mapping_interior);
  for (std::size_t copy = 0; copy < 2; ++copy) ASSERT_NO_FATAL_FAILURE(damage(t.block, copy));
  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_FALSE(pool_->read_only());
  Status st;
  (void)read(origin_, 0, bs, &st);
  EXPECT_EQ(st.code(), errc::corruption);
  EXPECT_FALSE(pool_->write(origin_, 0, pattern(bs, 5), false));
  EXPECT_FALSE(pool_->unmap(origin_, 0, 64 * bs, false));
  ASSERT_NO_FATAL_FAILURE(expect_other_volumes_fine());
  ASSERT_TRUE(pool_->write(other_, 0, pattern(bs, 6), false));
  ASSERT_TRUE(pool_->commit());
  EXPECT_TRUE(pool_->failure().is_ok());
  EXPECT_TRUE(pool_->find_volume("origin")->damaged());
  close();
}

// Lost space maps or volume table: the pool opens read-only with the reason, writes
// nothing, and serves what can be read.
TEST_F(PoolDamageTest, LostSpaceMapsOrVolumeTableOpenReadOnlyWithTheReason) {
  const std::pair<kind, const char*> cases[] = {{kind::data_space_map, "data space map"},
                                                {kind::metadata_space_map, "metadata space map"},
                                                {kind::volume_table, "volume table"}};
  for (const auto& [k, words] : cases) {
    SCOPED_TRACE(kind_name(k));
    restore();
    const Target t = find(k);
    for (std::size_t copy = 0; copy < 2; ++copy) ASSERT_NO_FATAL_FAILURE(damage(t.block, copy));
    EXPECT_FALSE(check().clean());
    const std::uint64_t writes = device_->write_count();
    ASSERT_NO_FATAL_FAILURE(open());
    EXPECT_TRUE(pool_->read_only());
    EXPECT_TRUE(contains(pool_->stats().read_only_reason, words)) << pool_->stats().read_only_reason;
    if (k != kind::volume_table) {
      expect_model();
      ASSERT_NO_FATAL_FAILURE(expect_other_volumes_fine());
    }
    EXPECT_EQ(pool_->write(origin_, 0, pattern(bs, 7), false).code(), errc::read_only);
    close();
    EXPECT_EQ(device_->write_count(), writes) << "a read-only open wrote";
  }
}

// A deleted volume's tree that reclaim cannot read: reclaim drops it and goes on, the pool
// stays writable, and the space it held is reported lost (leaked) until a repair.
TEST_F(PoolDamageTest, ADeletedTreeThatCannotBeReadIsDroppedWithoutHarm) {
  restore();
  const Target t = find(kind::mapping_leaf);
  for (std::size_t copy = 0; copy < 2; ++copy) ASSERT_NO_FATAL_FAILURE(damage(t.block, copy));
  PoolOptions o = quiet_options();
  o.background_reclaim = false;
  ASSERT_NO_FATAL_FAILURE(open(o));
  ASSERT_TRUE(pool_->delete_volume("origin"));
  auto pending = pool_->reclaim();
  ASSERT_TRUE(pending) << pending.status().to_string();
  EXPECT_EQ(*pending, 0u);
  EXPECT_TRUE(pool_->failure().is_ok()) << pool_->failure().to_string();
  bool reported = false;
  for (const std::string& d : pool_->stats().damage) reported |= contains(d, "could not be read");
  EXPECT_TRUE(reported);
  ASSERT_NO_FATAL_FAILURE(expect_other_volumes_fine());
  ASSERT_TRUE(pool_->write(other_, 0, pattern(bs, 8), false));
  ASSERT_TRUE(pool_->commit());
  close();
  CheckReport r = check();
  EXPECT_TRUE(contains(problems_of(r), "leaked")) << problems_of(r);
}

}  // namespace
}  // namespace snapstore
