// B-tree tests against std::map models, with a reference-count check after each step:
// every metadata block's count must equal the pointers the walker finds, and every
// value's count (kept by the value traits) must equal the leaves that hold it.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "btree/btree.h"
#include "btree/tree_walker.h"
#include "store/memory_device.h"

namespace snapstore {
namespace {

constexpr std::uint32_t value_size = 16;

std::array<std::byte, value_size> make_value(std::uint64_t id) {
  std::array<std::byte, value_size> v{};
  store_le64(v.data(), id);
  store_le64(v.data() + 8, id * 31 + 7);
  return v;
}

std::uint64_t value_id(std::span<const std::byte> v) { return load_le64(v.data()); }

class MetadataStack {
 public:
  explicit MetadataStack(std::uint64_t cache_bytes = 256 << 10)
      : device_(std::make_shared<MemoryDevice>(64 << 20)),
        chunks_({device_}, 8 << 20, {Chunk{space::metadata, profile::single, 0, {{0, 1 << 20}}}}, device_reserved_bytes),
        blocks_(chunks_, cache_bytes),
        space_map_((8 << 20) / metadata_block_size),
        tm_(blocks_, space_map_, nullptr, 1),
        tree_(tm_, traits()) {}

  BTree& tree() { return tree_; }
  TransactionManager& tm() { return tm_; }
  std::map<std::uint64_t, int>& value_refs() { return value_refs_; }

  void commit(std::vector<BlockPointer*> roots) {
    for (BlockPointer* r : roots) {
      auto sealed = tree_.seal(*r);
      ASSERT_TRUE(sealed) << sealed.status().to_string();
      *r = *sealed;
    }
    auto index = space_map_.commit(blocks_, tm_.generation());
    ASSERT_TRUE(index) << index.status().to_string();
    ASSERT_TRUE(blocks_.write_dirty());
    space_map_.end_transaction();
    tm_.set_generation(tm_.generation() + 1);
  }

  // Walks every root; checks structure, metadata counts and value counts.
  void check(const std::vector<BlockPointer>& roots) {
    std::map<std::uint64_t, std::uint32_t> refs;
    std::vector<std::string> problems;
    std::map<std::uint64_t, int> values;
    TreeWalker walker([&](const BlockPointer& p) { return tm_.read(p); }, refs, problems);
    for (const auto& r : roots)
      walker.walk(r, value_size, "tree", [&](std::uint64_t, std::span<const std::byte> v) {
        ++values[value_id(v)];
      });
    for (const auto& p : problems) ADD_FAILURE() << p;
    for (std::uint64_t b = 0; b < space_map_.nr_blocks(); ++b) {
      std::uint32_t expected = refs.count(b) ? refs[b] : 0;
      if (space_map_.count(b) != expected && !is_space_map_page(b))
        ADD_FAILURE() << "block " << b << ": count " << space_map_.count(b) << ", found "
                      << expected;
    }
    for (auto& [id, n] : value_refs_)
      if (n != (values.count(id) ? values[id] : 0))
        ADD_FAILURE() << "value " << id << ": count " << n << ", found " << values[id];
  }

 private:
  bool is_space_map_page(std::uint64_t b) {
    auto ref = blocks_.dirty_block(b);
    if (ref) return false;
    if (space_map_.count(b) != 1) return false;
    auto r = chunks_.read(space::metadata, b * metadata_block_size, probe_, [](auto) { return true; });
    auto type = read_header(probe_).type;
    return r.is_ok() && (type == metadata_type::refcount_page || type == metadata_type::sm_index_page);
  }

  ValueTraits traits() {
    ValueTraits t;
    t.size = value_size;
    t.inc = [this](std::span<const std::byte> v) {
      ++value_refs_[value_id(v)];
      return Status::ok();
    };
    t.dec = [this](std::span<const std::byte> v) {
      --value_refs_[value_id(v)];
      return Status::ok();
    };
    return t;
  }

  std::shared_ptr<MemoryDevice> device_;
  ChunkMap chunks_;
  BlockManager blocks_;
  MetadataSpaceMap space_map_;
  TransactionManager tm_;
  BTree tree_;
  std::map<std::uint64_t, int> value_refs_;
  std::array<std::byte, metadata_block_size> probe_{};
};

void expect_matches(BTree& tree, const BlockPointer& root,
                    const std::map<std::uint64_t, std::uint64_t>& model) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
  ASSERT_TRUE(tree.scan(root, 0, ~0ull, [&](std::uint64_t k, std::span<const std::byte> v) {
    seen.emplace_back(k, value_id(v));
    return true;
  }));
  std::vector<std::pair<std::uint64_t, std::uint64_t>> want(model.begin(), model.end());
  ASSERT_EQ(seen, want);
}

TEST(BTree, InsertLookupRemoveAgainstMap) {
  MetadataStack s;
  auto root = s.tree().create();
  ASSERT_TRUE(root);
  BlockPointer r = *root;
  std::map<std::uint64_t, std::uint64_t> model;
  std::mt19937_64 rng(7);
  std::uint64_t next_id = 1;
  for (int step = 0; step < 6000; ++step) {
    const std::uint64_t key = rng() % 3000;
    if (rng() % 3 != 0) {
      auto v = make_value(next_id);
      bool replaced = false;
      std::array<std::byte, value_size> old{};
      auto nr = s.tree().insert(r, key, v, old, &replaced);
      ASSERT_TRUE(nr) << nr.status().to_string();
      r = *nr;
      ASSERT_EQ(replaced, model.count(key) == 1);
      if (replaced) {
        EXPECT_EQ(value_id(old), model[key]);
      }
      model[key] = next_id++;
    } else {
      bool removed = false;
      std::array<std::byte, value_size> old{};
      auto nr = s.tree().remove(r, key, old, &removed);
      ASSERT_TRUE(nr) << nr.status().to_string();
      r = *nr;
      ASSERT_EQ(removed, model.erase(key) == 1);
    }
    if (step % 500 == 499) {
      s.commit({&r});
      s.check({r});
      expect_matches(s.tree(), r, model);
    }
  }
  for (std::uint64_t k = 0; k < 3000; k += 7) {
    std::array<std::byte, value_size> out{};
    auto found = s.tree().lookup(r, k, out);
    ASSERT_TRUE(found);
    ASSERT_EQ(*found, model.count(k) == 1);
    if (*found) {
      EXPECT_EQ(value_id(out), model[k]);
    }
  }
}

TEST(BTree, RemoveRangeEmptiesAndRebalances) {
  MetadataStack s;
  BlockPointer r = *s.tree().create();
  std::map<std::uint64_t, std::uint64_t> model;
  for (std::uint64_t k = 0; k < 20000; ++k) {
    r = *s.tree().insert(r, k * 2, make_value(k + 1));
    model[k * 2] = k + 1;
  }
  s.commit({&r});
  std::uint64_t removed = 0;
  auto nr = s.tree().remove_range(r, 1000, 30001, [&](std::uint64_t k, auto) {
    ++removed;
    model.erase(k);
  });
  ASSERT_TRUE(nr);
  r = *nr;
  EXPECT_EQ(removed, 14501u);
  s.commit({&r});
  s.check({r});
  expect_matches(s.tree(), r, model);
  r = *s.tree().remove_range(r, 0, ~0ull, [&](std::uint64_t k, auto) { model.erase(k); });
  s.commit({&r});
  s.check({r});
  EXPECT_TRUE(model.empty());
  expect_matches(s.tree(), r, model);
}

// Several trees (clones of one another) over one MetadataStack, each with a std::map
// model. Overwritten and removed values are released here, as the volume layer does.
struct Forest {
  explicit Forest(MetadataStack& stack) : s(stack), roots{*stack.tree().create()}, models(1) {}

  void set(std::size_t t, std::uint64_t key) {
    std::array<std::byte, value_size> old{};
    bool replaced = false;
    const std::uint64_t id = next_id++;
    s.value_refs()[id] += 1;
    roots[t] = *s.tree().insert(roots[t], key, make_value(id), old, &replaced);
    if (replaced) --s.value_refs()[value_id(old)];
    models[t][key] = id;
  }
  void erase(std::size_t t, std::uint64_t key) {
    std::array<std::byte, value_size> old{};
    bool removed = false;
    roots[t] = *s.tree().remove(roots[t], key, old, &removed);
    if (removed) --s.value_refs()[value_id(old)];
    models[t].erase(key);
  }
  void clone(std::size_t src) {
    s.tree().clone(roots[src]);
    roots.push_back(roots[src]);
    models.push_back(models[src]);
  }
  void drop(std::size_t t) {  // forget a tree the caller has released
    roots.erase(roots.begin() + static_cast<long>(t));
    models.erase(models.begin() + static_cast<long>(t));
  }
  void commit() {
    std::vector<BlockPointer*> ptrs;
    for (auto& r : roots) ptrs.push_back(&r);
    s.commit(ptrs);
  }
  void expect_models() {
    for (std::size_t t = 0; t < roots.size(); ++t) expect_matches(s.tree(), roots[t], models[t]);
  }

  MetadataStack& s;
  std::vector<BlockPointer> roots;
  std::vector<std::map<std::uint64_t, std::uint64_t>> models;
  std::uint64_t next_id = 1;
};

TEST(BTree, ClonesShareUntilWrittenAndKeepCountsExact) {
  MetadataStack s;
  Forest f(s);
  std::mt19937_64 rng(11);
  for (int i = 0; i < 2000; ++i) f.set(0, rng() % 5000);
  for (int round = 0; round < 30; ++round) {
    f.clone(rng() % f.roots.size());
    for (int i = 0; i < 200; ++i) {
      const std::size_t t = rng() % f.roots.size();
      const std::uint64_t key = rng() % 5000;
      if (rng() % 4 == 0) f.erase(t, key);
      else f.set(t, key);
    }
    if (round % 5 == 4 && f.roots.size() > 2) {  // delete a tree while its clones live on
      const std::size_t victim = rng() % f.roots.size();
      ASSERT_TRUE(s.tree().release(f.roots[victim]));
      f.drop(victim);
    }
    f.commit();
    s.check(f.roots);
    f.expect_models();
  }
}

}  // namespace
}  // namespace snapstore

namespace snapstore {
namespace {

TEST(BTree, InsertRunMatchesSingleInserts) {
  MetadataStack s;
  BlockPointer r = *s.tree().create();
  std::map<std::uint64_t, std::uint64_t> model;
  std::mt19937_64 rng(5);
  std::uint64_t next_id = 1;
  for (int round = 0; round < 300; ++round) {
    const std::uint64_t first = rng() % 20000;
    const std::uint64_t count = 1 + rng() % 700;
    std::vector<std::array<std::byte, value_size>> values;
    for (std::uint64_t i = 0; i < count; ++i) values.push_back(make_value(next_id + i));
    std::uint64_t replaced = 0;
    auto nr = s.tree().insert_run(
        r, first, count, [&](std::uint64_t i) { return std::span<const std::byte>(values[i]); },
        [&](std::uint64_t key, std::span<const std::byte> old) {
          ++replaced;
          EXPECT_EQ(value_id(old), model[key]);
        });
    ASSERT_TRUE(nr) << nr.status().to_string();
    r = *nr;
    std::uint64_t expected_replaced = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      expected_replaced += model.count(first + i);
      model[first + i] = next_id + i;
    }
    EXPECT_EQ(replaced, expected_replaced);
    next_id += count;
    if (round % 50 == 49) {
      s.commit({&r});
      s.check({r});
      expect_matches(s.tree(), r, model);
    }
  }
}

}  // namespace
}  // namespace snapstore

namespace snapstore {
namespace {

// Random inserts, removes, lookups, clones and releases with the full check (structure,
// every metadata count, every value count) after every single step.
TEST(BTree, CheckerPassesAfterEveryStep) {
  MetadataStack s;
  std::mt19937_64 rng(23);
  std::vector<BlockPointer> roots{*s.tree().create()};
  std::vector<std::map<std::uint64_t, std::uint64_t>> models(1);
  std::uint64_t next_id = 1;
  for (int step = 0; step < 700; ++step) {
    const std::size_t t = rng() % roots.size();
    const std::uint64_t key = rng() % 600;
    const unsigned op = rng() % 20;
    std::array<std::byte, value_size> old{};
    if (op < 11) {
      const std::uint64_t id = next_id++;
      s.value_refs()[id] += 1;
      bool replaced = false;
      roots[t] = *s.tree().insert(roots[t], key, make_value(id), old, &replaced);
      if (replaced) --s.value_refs()[value_id(old)];
      models[t][key] = id;
    } else if (op < 16) {
      bool removed = false;
      roots[t] = *s.tree().remove(roots[t], key, old, &removed);
      ASSERT_EQ(removed, models[t].erase(key) == 1);
      if (removed) --s.value_refs()[value_id(old)];
    } else if (op < 18) {
      std::array<std::byte, value_size> out{};
      auto found = s.tree().lookup(roots[t], key, out);
      ASSERT_TRUE(found);
      ASSERT_EQ(*found, models[t].count(key) == 1);
    } else if (op == 18 && roots.size() < 6) {
      s.tree().clone(roots[t]);
      roots.push_back(roots[t]);
      models.push_back(models[t]);
    } else if (roots.size() > 1) {
      ASSERT_TRUE(s.tree().release(roots[t]));
      roots.erase(roots.begin() + static_cast<long>(t));
      models.erase(models.begin() + static_cast<long>(t));
    }
    if (step % 100 == 99) {
      std::vector<BlockPointer*> ptrs;
      for (auto& r : roots) ptrs.push_back(&r);
      s.commit(ptrs);
    }
    s.check(roots);
    if (HasFailure()) FAIL() << "after step " << step;
  }
  for (std::size_t t = 0; t < roots.size(); ++t) expect_matches(s.tree(), roots[t], models[t]);
}

}  // namespace
}  // namespace snapstore

namespace snapstore {
namespace {

// Clones diverge by random changes; diff must report exactly the keys whose values
// differ in the models, and releasing trees in small bounded steps (committing between
// steps) must keep every other tree intact and every count exact.
TEST(BTree, DiffAndStepwiseReleaseAgainstModels) {
  MetadataStack s;
  Forest f(s);
  std::mt19937_64 rng(29);
  for (int i = 0; i < 3000; ++i) f.set(0, rng() % 20000);
  for (int round = 0; round < 8; ++round) {
    f.clone(rng() % f.roots.size());
    const int changes = round % 2 == 0 ? 5 : 300;
    for (int i = 0; i < changes; ++i) {
      const std::size_t t = rng() % f.roots.size();
      const std::uint64_t key = rng() % 20000;
      if (rng() % 5 == 0) f.erase(t, key);
      else f.set(t, key);
    }
    f.commit();
  }
  for (std::size_t a = 0; a < f.roots.size(); ++a)
    for (std::size_t b = 0; b < f.roots.size(); ++b) {
      const std::uint64_t lo = rng() % 5000, hi = lo + rng() % 20000;
      std::vector<std::uint64_t> want, got;
      for (std::uint64_t k = lo; k < hi; ++k) {
        auto ia = f.models[a].find(k), ib = f.models[b].find(k);
        const bool in_a = ia != f.models[a].end(), in_b = ib != f.models[b].end();
        if (in_a != in_b || (in_a && ia->second != ib->second)) want.push_back(k);
      }
      ASSERT_TRUE(s.tree().diff(f.roots[a], f.roots[b], lo, hi, [&](std::uint64_t k) {
        got.push_back(k);
        return true;
      }));
      ASSERT_EQ(got, want) << "trees " << a << " and " << b;
    }
  // Release every tree but the last in small steps, committing in between.
  while (f.roots.size() > 1) {
    const std::size_t victim = rng() % (f.roots.size() - 1);
    for (bool gone = false; !gone;) {
      std::uint64_t budget = 1 + rng() % 64, released = 0;
      auto left = s.tree().release_some(f.roots[victim], budget, released);
      ASSERT_TRUE(left) << left.status().to_string();
      gone = !*left;
      if (gone) f.drop(victim);
      else f.roots[victim] = **left;
      if (rng() % 4 == 0 || gone) {
        f.commit();  // seals the roots: the next step starts from the sealed pointer
        s.check(f.roots);
      }
    }
    f.expect_models();
  }
  ASSERT_TRUE(s.tree().release(f.roots[0]));
  f.drop(0);
  f.commit();
  s.check(f.roots);
}

}  // namespace
}  // namespace snapstore
