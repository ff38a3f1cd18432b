// Crash tests for volume management: power cut at every backing write and flush of a
// random workload that mixes writes (some FUA), trims and flushes with snapshot create
// (of the origin and of snapshots), delete (parents of live snapshots too), rollback,
// rename, create, resize and explicit reclaim steps. At each cut, four crash images
// (crash_support.h) are reopened and checked:
//  1. the checker finds no problem;
//  2. the live volumes (names, ids, parents, sizes, read-only flags) and every block of
//     each match one whole state of the model: every management call that returned is
//     there (pool.h, invariant 7), a deleted volume never comes back, and the call the
//     cut stopped is there entirely or not at all; each block holds its content as of
//     the last commit or of a later write to it;
//  3. after reopening read-write and letting reclaim() release every deleted tree, the
//     checker again finds no problem (no leaked block) and every live volume reads back
//     exactly as before.
//
// Background reclaim is off so that the workload is deterministic. SNAPSTORE_SNAPSHOT_CRASH_POINTS
// (default 2200) caps the number of crash points; SNAPSTORE_CRASH_SEED picks other workloads.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "crash_support.h"
#include "store/crash_device.h"
#include "store/memory_device.h"
#include "volume/pool.h"
#include "volume/pool_checker.h"

namespace snapstore {
namespace {

using crash::BlockModel;

constexpr std::uint64_t device_size = 24 << 20;
constexpr std::uint64_t origin_size = 4 << 20;
constexpr std::uint64_t block = crash::model_block;
constexpr std::uint64_t size_step = 256 << 10;  // sizes of new and resized volumes
constexpr std::size_t max_live = 7;
// Distinct data blocks the workload may keep (live and awaiting reclaim), well inside
// the data space of the 24 MiB pool, so that no write meets a full pool.
constexpr std::uint64_t data_budget = 2400;

// Data operations first, then volume management calls; close is the commit at the end.
enum class op_kind : std::uint8_t {
  write,
  fua_write,
  trim,
  flush,
  snapshot,
  create,
  remove,
  rename,
  rollback,
  resize,
  reclaim,
  close
};
constexpr std::size_t op_kinds = 12;
constexpr const char* kind_names[op_kinds] = {"write",    "fua write", "trim",    "flush",
                                              "snapshot", "create",    "delete",  "rename",
                                              "rollback", "resize",    "reclaim", "close"};

bool is_management(op_kind k) {
  return k >= op_kind::snapshot && k != op_kind::close;
}

struct Op {
  op_kind kind = op_kind::flush;
  std::string name;   // the volume (a snapshot's source)
  std::string other;  // a snapshot's or a rename's new name, a rollback's snapshot
  std::uint64_t offset = 0;
  std::uint64_t length = 0;  // bytes written or trimmed; a new size; reclaim steps (0: all)
  std::uint64_t seed = 0;
  bool read_only = false;  // a read-only snapshot
};

// Makes a workload that only ever asks for valid calls, by playing the volume table
// forward as it goes; data blocks are tagged to bound the space the workload needs.
class WorkloadBuilder {
 public:
  explicit WorkloadBuilder(std::uint64_t seed) : rng_(seed) {
    live_["origin"] = {origin_size, false, next_id_++, 0,
                       std::vector<std::uint64_t>(origin_size / block)};
  }

  std::vector<Op> build(int count) {
    add_write("origin", 0, 1 << 20, false);  // shared by the snapshots to come
    add(op_kind::flush);
    for (int i = 0; i < count; ++i) add_random();
    return std::move(ops_);
  }

 private:
  struct Vol {
    std::uint64_t size;
    bool read_only;
    std::uint64_t id, parent;
    std::vector<std::uint64_t> tags;  // per block: the data it maps, 0 for a hole
  };

  void add(op_kind kind, std::string name = {}, std::string other = {}, std::uint64_t length = 0,
           std::uint64_t offset = 0, std::uint64_t seed = 0) {
    Op op;
    op.kind = kind;
    op.name = std::move(name);
    op.other = std::move(other);
    op.length = length;
    op.offset = offset;
    op.seed = seed;
    ops_.push_back(std::move(op));
  }
  std::uint64_t below(std::uint64_t n) { return rng_() % n; }
  bool one_in(std::uint64_t n) { return below(n) == 0; }

  template <class Pred>
  std::optional<std::string> pick(Pred pred) {
    std::vector<std::string> names;
    for (const auto& [name, v] : live_)
      if (pred(v)) names.push_back(name);
    if (names.empty()) return std::nullopt;
    return names[below(names.size())];
  }
  std::string new_name(const char* prefix) {
    std::vector<std::string> reusable;  // names of deleted or renamed volumes
    for (const auto& n : freed_)
      if (!live_.contains(n)) reusable.push_back(n);
    if (!reusable.empty() && one_in(3)) return reusable[below(reusable.size())];
    return prefix + std::to_string(next_name_++);
  }
  std::uint64_t data_in_use() const {
    std::set<std::uint64_t> tags;
    for (const auto& [name, v] : live_) tags.insert(v.tags.begin(), v.tags.end());
    for (const auto& t : pending_) tags.insert(t.begin(), t.end());
    return tags.size();
  }
  void retire(std::vector<std::uint64_t> tags) { pending_.push_back(std::move(tags)); }

  void add_write(const std::string& name, std::uint64_t offset, std::uint64_t length, bool fua) {
    Vol& v = live_.at(name);
    for (std::uint64_t b = offset / block; b <= (offset + length - 1) / block; ++b)
      v.tags[b] = next_tag_++;
    add(fua ? op_kind::fua_write : op_kind::write, name, "", length, offset, rng_());
  }

  void add_random() {
    const std::uint64_t r = below(100);
    if (r < 22) return random_write(r < 4);
    if (r < 25) return random_trim();
    if (r < 30) return add(op_kind::flush);
    if (r < 46) return random_snapshot();
    if (r < 58) return random_delete();
    if (r < 68) return random_rollback();
    if (r < 72) return random_rename();
    if (r < 74) return random_create();
    if (r < 76) return big_delete();
    if (r < 80) return random_resize();
    return random_reclaim();
  }

  void random_write(bool fua) {
    auto name = pick([](const Vol& v) { return !v.read_only; });
    if (!name) return add(op_kind::flush);
    const Vol& v = live_.at(*name);
    std::uint64_t length = one_in(8) ? block * (32 + below(97)) : block * (1 + below(16));
    if (one_in(3)) length += below(block);  // unaligned end
    length = std::min(length, v.size);
    std::uint64_t offset = below(v.size - length + 1);
    if (one_in(2)) offset &= ~(block - 1);
    if (data_in_use() + length / block + 2 > data_budget) {  // make room first
      if (pending_.empty()) return add(op_kind::flush);
      return add_reclaim(0);
    }
    add_write(*name, offset, length, fua);
  }

  void random_trim() {
    auto name = pick([](const Vol& v) { return !v.read_only; });
    if (!name) return add(op_kind::flush);
    Vol& v = live_.at(*name);
    const std::uint64_t length = std::min(v.size, block * (1 + below(32)) + below(block));
    const std::uint64_t offset = below(v.size - length + 1);
    for (std::uint64_t b = offset / block; b <= (offset + length - 1) / block; ++b)
      v.tags[b] = (b * block >= offset && (b + 1) * block <= offset + length) ? 0 : next_tag_++;
    add(op_kind::trim, *name, "", length, offset);
  }

  void random_snapshot() {
    if (live_.size() >= max_live) return random_delete();
    const std::string source = *pick([](const Vol&) { return true; });
    const std::string name = new_name("s");
    Vol copy = live_.at(source);
    copy.read_only = one_in(6);
    copy.parent = copy.id;
    copy.id = next_id_++;
    add(op_kind::snapshot, source, name);
    ops_.back().read_only = copy.read_only;
    live_[name] = std::move(copy);
  }

  void random_delete() {
    if (live_.size() <= 1) return random_snapshot();
    std::set<std::uint64_t> parents;
    for (const auto& [n, v] : live_) parents.insert(v.parent);
    auto name =
        one_in(2) ? pick([&](const Vol& v) { return parents.contains(v.id); }) : std::nullopt;
    if (!name) name = pick([](const Vol&) { return true; });
    Vol gone = std::move(live_.at(*name));
    live_.erase(*name);
    for (auto& [n, v] : live_)
      if (v.parent == gone.id) v.parent = gone.parent;
    retire(std::move(gone.tags));
    freed_.insert(*name);
    add(op_kind::remove, *name);
  }

  void random_rollback() {
    auto name = pick([](const Vol& v) { return !v.read_only; });
    if (!name || live_.size() < 2) return random_snapshot();
    std::string snap;
    do snap = *pick([](const Vol&) { return true; });
    while (snap == *name);
    Vol& v = live_.at(*name);
    retire(std::move(v.tags));
    v.tags = live_.at(snap).tags;
    v.size = live_.at(snap).size;
    add(op_kind::rollback, *name, snap);
  }

  void random_rename() {
    const std::string from = *pick([](const Vol&) { return true; });
    const std::string to = new_name("r");
    auto node = live_.extract(from);
    node.key() = to;
    live_.insert(std::move(node));
    freed_.insert(from);
    add(op_kind::rename, from, to);
  }

  void random_create() {
    if (live_.size() >= max_live) return random_delete();
    const std::string name = new_name("n");
    const std::uint64_t size = size_step * (1 + below(16));
    live_[name] = {size, false, next_id_++, 0, std::vector<std::uint64_t>(size / block)};
    add(op_kind::create, name, "", size);
  }

  // A volume of its own data, deleted and then reclaimed one step at a time: a tree too
  // big for one step (pool_reclaim.cpp), so that commits hold half-released trees.
  void big_delete() {
    if (live_.size() >= max_live) return random_delete();
    const std::uint64_t length = 3 << 20;
    if (data_in_use() + length / block + 2 > data_budget) return add_reclaim(0);
    const std::string name = new_name("b");
    live_[name] = {origin_size, false, next_id_++, 0,
                   std::vector<std::uint64_t>(origin_size / block)};
    add(op_kind::create, name, "", origin_size);
    for (std::uint64_t at = 0; at < length; at += 1 << 20) add_write(name, at, 1 << 20, false);
    Vol gone = std::move(live_.at(name));
    live_.erase(name);
    retire(std::move(gone.tags));
    freed_.insert(name);
    add(op_kind::remove, name);
    add_reclaim(1);
  }

  void random_resize() {
    auto name = pick([](const Vol& v) { return !v.read_only; });
    if (!name) return random_reclaim();
    Vol& v = live_.at(*name);
    std::uint64_t size = size_step * (1 + below(24));
    if (size == v.size) size += size_step;
    v.size = size;
    v.tags.resize(size / block);
    add(op_kind::resize, *name, "", size);
  }

  void random_reclaim() { add_reclaim(one_in(4) ? 0 : 1 + below(3)); }
  void add_reclaim(std::uint64_t steps) {
    if (steps == 0) pending_.clear();  // for the budget: until then, count them all
    add(op_kind::reclaim, "", "", steps);
  }

  std::mt19937_64 rng_;
  std::vector<Op> ops_;
  std::map<std::string, Vol> live_;
  std::vector<std::vector<std::uint64_t>> pending_;  // trees of deleted volumes
  std::set<std::string> freed_;
  std::uint64_t next_id_ = 1, next_name_ = 0, next_tag_ = 1;
};

// ---------------------------------------------------------------------------------------
// The model: every live volume by name, with what each of its blocks may hold.

struct VolumeModel {
  std::uint64_t id = 0, parent = 0;
  bool read_only = false;
  BlockModel blocks{0};
};
using PoolModel = std::map<std::string, VolumeModel>;

void durable_all(PoolModel& m) {
  for (auto& [name, v] : m) v.blocks.durable_all();
}

// What a management call leaves, once committed: the call's change, every block durable.
// `new_id` is the id a snapshot or a new volume takes.
PoolModel after_call(PoolModel m, const Op& op, std::uint64_t new_id) {
  switch (op.kind) {
    case op_kind::snapshot: {
      const VolumeModel& src = m.at(op.name);
      m[op.other] = {new_id, src.id, op.read_only, src.blocks.settled()};
      break;
    }
    case op_kind::create:
      m[op.name] = {new_id, 0, false, BlockModel(op.length)};
      break;
    case op_kind::remove: {
      const VolumeModel gone = std::move(m.at(op.name));
      m.erase(op.name);
      for (auto& [name, v] : m)  // children now descend from the grandparent
        if (v.parent == gone.id) v.parent = gone.parent;
      break;
    }
    case op_kind::rename: {
      auto node = m.extract(op.name);
      node.key() = op.other;
      m.insert(std::move(node));
      break;
    }
    case op_kind::rollback:
      m.at(op.name).blocks = m.at(op.other).blocks.settled();
      break;
    case op_kind::resize:
      m.at(op.name).blocks.resize(op.length);
      break;
    default:  // reclaim: no live volume changes
      break;
  }
  durable_all(m);
  return m;
}

Status call(Pool& pool, const Op& op) {
  switch (op.kind) {
    case op_kind::snapshot:
      return pool.create_snapshot(op.name, op.other, op.read_only).status();
    case op_kind::create:
      return pool.create_volume(op.name, op.length).status();
    case op_kind::remove:
      return pool.delete_volume(op.name);
    case op_kind::rename:
      return pool.rename_volume(op.name, op.other);
    case op_kind::rollback:
      return pool.rollback(op.name, op.other);
    case op_kind::resize:
      return pool.resize_volume(op.name, op.length);
    case op_kind::reclaim:
      return pool.reclaim(op.length == 0 ? ~0ull : op.length).status();
    default:
      return invalid_argument("not a management call");
  }
}

// Where the workload is (or stopped) and what the pool may hold there.
struct Outcome {
  PoolModel state;                 // every call that returned, and the writes issued
  std::optional<PoolModel> after;  // the management call under way, once committed
  std::size_t op = 0;              // the operation under way (ops.size(): close), or failed
};

// A run of a workload: its operations and the data each write writes.
struct Workload {
  std::vector<Op> ops;
  std::vector<std::vector<std::byte>> data;  // per operation

  explicit Workload(std::uint64_t seed) : ops(WorkloadBuilder(seed).build(70)), data(ops.size()) {
    for (std::size_t i = 0; i < ops.size(); ++i)
      if (ops[i].kind == op_kind::write || ops[i].kind == op_kind::fua_write)
        data[i] = crash::seeded_bytes(ops[i].length, ops[i].seed);
  }
};

Status run_op(Pool& pool, const Op& op, std::span<const std::byte> data, Outcome& out) {
  PoolModel& m = out.state;
  if (op.kind == op_kind::flush) {
    Status st = pool.flush();
    if (st) durable_all(m);
    return st;
  }
  if (!is_management(op.kind)) {
    VolumeModel& v = m.at(op.name);
    v.blocks.about_to_write(op.offset, op.length, data);
    if (op.kind == op_kind::trim) return pool.unmap(v.id, op.offset, op.length, false);
    const bool fua = op.kind == op_kind::fua_write;
    Status st = pool.write(v.id, op.offset, data, fua);
    if (st && fua) v.blocks.durable_range(op.offset, op.length);
    return st;
  }
  const std::uint64_t new_id = pool.superblock().next_volume_id;  // the id a new volume takes
  out.after = after_call(m, op, new_id);
  Status st = call(pool, op);
  if (st) {
    m = std::move(*out.after);
    out.after.reset();
  }
  return st;
}

// Runs the workload until it ends or an operation fails (the power cut), then closes the
// pool. `out` tells a device hook where the run is.
void run_workload(std::unique_ptr<Pool> pool, const Workload& w, Outcome& out) {
  auto origin = pool->find_volume("origin");
  out = Outcome();
  out.state["origin"] = {origin->id, 0, false, BlockModel(origin->size)};
  for (; out.op < w.ops.size(); ++out.op)
    if (!run_op(*pool, w.ops[out.op], w.data[out.op], out)) return;
  (void)pool->close();  // commits what is left; fails if the power is off
}

PoolOptions test_options(bool read_only) {
  PoolOptions o;
  o.commit_interval = std::chrono::hours(24);  // commits only when the workload asks
  o.early_commit = false;
  o.cache_bytes = 1 << 20;
  o.background_reclaim = false;
  o.read_only = read_only;
  return o;
}

// ---------------------------------------------------------------------------------------
// Checking a crash image.

// A live volume as read back: its record and the checksum of each block.
struct Seen {
  VolumeRecord record;
  std::vector<std::uint64_t> sums;
  std::uint64_t mapped = 0;  // blocks block_status reports as data
};
using SeenPool = std::map<std::string, Seen>;

// Reads every live volume; holes (by block_status) are not read, they are zeroes.
Result<SeenPool> read_volumes(Pool& pool) {
  static const std::uint64_t zero_sum = data_checksum(std::vector<std::byte>(block));
  SeenPool seen;
  std::vector<std::byte> data;
  for (const VolumeRecord& r : pool.volumes()) {
    auto fail = [&](const Status& st) {
      return Status(st.code(), "reading '" + r.name + "': " + st.message());
    };
    auto extents = pool.block_status(r.id, 0, r.size);
    if (!extents) return fail(extents.status());
    Seen& s = seen[r.name];
    s.record = r;
    std::uint64_t at = 0;
    for (const Extent& e : *extents) {
      if (e.flags & extent_hole) {
        s.sums.insert(s.sums.end(), e.length / block, zero_sum);
      } else {
        s.mapped += e.length / block;
        data.resize(e.length);
        Status st = pool.read(r.id, at, data);
        if (!st) return fail(st);
        for (std::uint64_t b = 0; b < e.length / block; ++b)
          s.sums.push_back(data_checksum({data.data() + b * block, block}));
      }
      at += e.length;
    }
    if (at != r.size) return fail(corruption("block_status does not cover the volume"));
  }
  return seen;
}

// The first way `seen` differs from the model, or "" when it matches it.
std::string difference(const PoolModel& m, const SeenPool& seen) {
  for (const auto& [name, s] : seen)
    if (!m.contains(name)) return "volume '" + name + "' should not exist";
  for (const auto& [name, v] : m) {
    auto it = seen.find(name);
    if (it == seen.end()) return "volume '" + name + "' is missing";
    const VolumeRecord& r = it->second.record;
    if (r.id != v.id || r.parent != v.parent || r.read_only() != v.read_only ||
        r.size != v.blocks.size())
      return "volume '" + name + "' has id " + std::to_string(r.id) + ", parent " +
             std::to_string(r.parent) + ", size " + std::to_string(r.size) +
             (r.read_only() ? ", read-only" : "") + "; expected id " + std::to_string(v.id) +
             ", parent " + std::to_string(v.parent) + ", size " + std::to_string(v.blocks.size()) +
             (v.read_only ? ", read-only" : "");
    for (std::uint64_t b = 0; b < v.blocks.blocks(); ++b)
      if (!v.blocks.allowed(b, it->second.sums[b]))
        return "block " + std::to_string(b) + " of '" + name +
               "' holds content it never had, or lost a committed write";
  }
  return "";
}

bool same_volumes(const SeenPool& a, const SeenPool& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, s] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second.sums != s.sums) return false;
    const VolumeRecord &x = s.record, &y = it->second.record;
    if (x.id != y.id || x.parent != y.parent || x.size != y.size || x.flags != y.flags)
      return false;
  }
  return true;
}

struct Tally {
  std::uint64_t points = 0, images = 0;
  std::array<std::uint64_t, op_kinds> points_in{};  // by the kind of operation cut
  std::uint64_t call_present = 0, call_absent = 0, call_either = 0;
  std::uint64_t reclaim_passes = 0;  // images in which reclaim found trees to release
  std::uint64_t cross_checked = 0;   // points also run with a real power cut
  std::uint64_t images_reused = 0;   // durable images already examined at an earlier point
};

std::nullopt_t fatal(const std::string& message) {
  ADD_FAILURE() << message;
  return std::nullopt;
}

void expect_clean(const std::shared_ptr<MemoryDevice>& device, const std::string& where,
                  bool verify_data) {
  CheckOptions options;
  options.verify_data = verify_data;
  CheckReport report = check_pool({device}, options);
  for (const auto& p : report.problems) ADD_FAILURE() << where << ": checker: " << p;
}

// Opens a crash image, runs the checker and reads every live volume; then reclaims every
// deleted tree and checks again: no leaked block, the live volumes unchanged. Returns
// what it read (nothing after a fatal failure).
std::optional<SeenPool> examine_image(std::vector<std::byte> image, const std::string& where,
                                      Tally& tally) {
  ++tally.images;
  auto device = std::make_shared<MemoryDevice>(std::move(image));
  expect_clean(device, where, true);
  SeenPool seen;
  std::uint64_t pending = 0;  // deleted trees not yet released
  {
    auto pool = Pool::open({device}, test_options(true));
    if (!pool) return fatal(where + ": open: " + pool.status().to_string());
    auto s = read_volumes(**pool);
    if (!s) return fatal(where + ": read after crash: " + s.status().to_string());
    seen = std::move(s).value();
    pending = (*pool)->stats().reclaim_pending_volumes;
  }
  for (const auto& [name, v] : seen)
    EXPECT_EQ(v.record.mapped_blocks, v.mapped)
        << where << ": the record of '" << name << "' counts other mapped blocks than its tree";
  if (pending == 0) return seen;  // reclaim would find nothing to do
  {
    auto pool = Pool::open({device}, test_options(false));
    if (!pool) return fatal(where + ": open read-write: " + pool.status().to_string());
    auto left = (*pool)->reclaim();
    if (!left) return fatal(where + ": reclaim: " + left.status().to_string());
    EXPECT_EQ(*left, 0u) << where;
    Status st = (*pool)->close();
    if (!st) return fatal(where + ": close after reclaim: " + st.to_string());
  }
  ++tally.reclaim_passes;
  expect_clean(device, where + ", after reclaim", false);  // the reads below verify the data
  auto pool = Pool::open({device}, test_options(true));
  if (!pool) return fatal(where + ": open after reclaim: " + pool.status().to_string());
  EXPECT_EQ((*pool)->stats().reclaim_pending_volumes, 0u) << where;
  auto again = read_volumes(**pool);
  if (!again) return fatal(where + ": read after reclaim: " + again.status().to_string());
  EXPECT_TRUE(same_volumes(seen, *again)) << where << ": reclaim changed a live volume";
  return seen;
}

// The volumes read back must match the state before the call the cut stopped, or the
// state after it, entirely.
void judge(const SeenPool& seen, const Outcome& out, const std::string& where, Tally& tally) {
  const std::string before = difference(out.state, seen);
  const std::string after = out.after ? difference(*out.after, seen) : "no call was cut short";
  if (out.after) {
    if (before.empty() && after.empty())
      ++tally.call_either;
    else if (after.empty())
      ++tally.call_present;
    else if (before.empty())
      ++tally.call_absent;
  }
  if (!before.empty() && !after.empty())
    ADD_FAILURE() << where
                  << ": the volumes match no state of the model. Before the cut call: " << before
                  << ". After it: " << after;
}

void verify_image(std::vector<std::byte> image, const Outcome& out, const std::string& where,
                  Tally& tally) {
  if (auto seen = examine_image(std::move(image), where, tally)) judge(*seen, out, where, tally);
}

// ---------------------------------------------------------------------------------------
// Crash points.

// A BlockDevice in front of a CrashDevice that calls a hook just before each write,
// discard or flush reaches it. The crash images made in the hook are exactly those of a
// power cut at that write or flush, since the cut one leaves no trace and nothing after
// it reaches the device (crash_device.h, invariant 4): one run visits every crash point.
class HookedDevice final : public BlockDevice {
 public:
  using Hook = std::function<void(const crash::CrashPoint&)>;
  HookedDevice(std::shared_ptr<CrashDevice> inner, Hook hook)
      : inner_(std::move(inner)), hook_(std::move(hook)) {}

  std::uint64_t size() const override { return inner_->size(); }
  std::string name() const override { return inner_->name(); }
  Status read(std::uint64_t offset, std::span<std::byte> out) override {
    return inner_->read(offset, out);
  }
  Status write(std::uint64_t offset, std::span<const std::byte> data) override {
    hook_({false, inner_->write_count()});
    return inner_->write(offset, data);
  }
  Status flush() override {
    hook_({true, inner_->flush_calls()});
    return inner_->flush();
  }
  Status discard(std::uint64_t offset, std::uint64_t length) override {
    hook_({false, inner_->write_count()});
    return inner_->discard(offset, length);
  }

 private:
  std::shared_ptr<CrashDevice> inner_;
  Hook hook_;
};

// Runs the workload on a copy of `image`, calling hook(point, outcome, device) before each
// backing write and flush.
using PointHook = std::function<void(const crash::CrashPoint&, const Outcome&, const CrashDevice&)>;
void run_hooked(const Workload& w, const std::vector<std::byte>& image, const PointHook& hook) {
  auto device = std::make_shared<CrashDevice>(image);
  Outcome out;
  auto hooked = std::make_shared<HookedDevice>(
      device, [&](const crash::CrashPoint& p) { hook(p, out, *device); });
  auto pool = Pool::open({hooked}, test_options(false));
  ASSERT_TRUE(pool) << pool.status().to_string();
  run_workload(std::move(pool).value(), w, out);
  ASSERT_EQ(out.op, w.ops.size()) << "operation " << out.op << " failed without a power cut";
}

// A real power cut at `point`: the workload must stop in the operation the hook saw, the
// device must have seen the same writes and flushes (bytes differ: records carry creation
// times), and the crash images must pass the same checks.
void check_real_cut(const Workload& w, const std::vector<std::byte>& image,
                    const crash::CrashPoint& point, const Outcome& seen_out,
                    const CrashDevice& seen, const std::string& where, std::mt19937_64& rng,
                    Tally& tally) {
  auto device = std::make_shared<CrashDevice>(image);
  point.arm(*device);
  Outcome out;
  {
    auto pool = Pool::open({device}, test_options(false));
    ASSERT_TRUE(pool) << pool.status().to_string();
    run_workload(std::move(pool).value(), w, out);
  }
  ASSERT_TRUE(device->power_is_cut()) << where;
  ASSERT_EQ(out.op, seen_out.op) << where << ": a real cut stops in another operation";
  ASSERT_EQ(device->flush_points(), seen.flush_points()) << where;
  ASSERT_EQ(device->unflushed_count(), seen.unflushed_count()) << where;
  crash::for_each_crash_image(
      *device, rng, [&](std::vector<std::byte> img, std::string_view label) {
        verify_image(std::move(img), out, where + ", real cut" + std::string(label), tally);
        return !::testing::Test::HasFailure();
      });
}

struct PlannedPoint {
  op_kind in;  // the kind of operation it falls in
  bool cross_check = false;
};

// Which crash points to check: every write and flush of a management call or of close,
// every data_stride-th of the others, evenly thinned to at most max_points. Found by a
// run that counts the writes and flushes of each operation.
std::map<std::pair<bool, std::uint64_t>, PlannedPoint> plan(const Workload& w,
                                                            const std::vector<std::byte>& image,
                                                            std::uint64_t max_points) {
  constexpr std::uint64_t data_stride = 4, cross_check_every = 97;
  std::vector<std::pair<std::pair<bool, std::uint64_t>, PlannedPoint>> all;
  std::uint64_t data_points = 0;
  run_hooked(w, image, [&](const crash::CrashPoint& p, const Outcome& out, const CrashDevice&) {
    const op_kind k = out.op < w.ops.size() ? w.ops[out.op].kind : op_kind::close;
    if (is_management(k) || k == op_kind::close || data_points++ % data_stride == 0)
      all.push_back({{p.at_flush, p.number}, {k}});
  });
  std::map<std::pair<bool, std::uint64_t>, PlannedPoint> chosen;
  const std::uint64_t n = std::min<std::uint64_t>(all.size(), max_points);
  for (std::uint64_t i = 0; i < n; ++i) {
    auto [key, point] = all[i * all.size() / n];
    point.cross_check = i % cross_check_every == cross_check_every / 2;
    chosen[key] = point;
  }
  return chosen;
}

// Runs one workload and checks the crash images at each planned crash point.
void crash_workload(std::uint64_t seed, std::uint64_t max_points,
                    const std::vector<std::byte>& image, Tally& tally) {
  const Workload w(seed);
  const auto planned = plan(w, image, max_points);
  std::mt19937_64 rng(seed);
  bool stop = false;
  std::uint64_t durable_epoch = ~0ull;  // flush count when durable_seen was read
  std::optional<SeenPool> durable_seen;
  run_hooked(
      w, image, [&](const crash::CrashPoint& p, const Outcome& out, const CrashDevice& device) {
        auto it = planned.find({p.at_flush, p.number});
        if (stop || it == planned.end()) return;
        const PlannedPoint& pp = it->second;
        ++tally.points;
        ++tally.points_in[static_cast<std::size_t>(pp.in)];
        const std::string where = "seed " + std::to_string(seed) + ", crash at " + p.describe() +
                                  " (in " + kind_names[static_cast<std::size_t>(pp.in)] + ", op " +
                                  std::to_string(out.op) + ")";
        if (pp.cross_check) {
          ++tally.cross_checked;
          check_real_cut(w, image, p, out, device, where, rng, tally);
        }
        // The durable image changes only at a flush: examined once per flush, judged at every
        // point against the model of the moment.
        if (durable_epoch != device.flush_count()) {
          durable_epoch = device.flush_count();
          durable_seen = examine_image(device.durable_image(), where + " (keep none)", tally);
        } else {
          ++tally.images_reused;
        }
        if (durable_seen) judge(*durable_seen, out, where + " (keep none)", tally);
        // With nothing unflushed, every crash image is the durable one.
        for (const auto& [mode, label] :
             {std::pair{CrashMode::keep_all, " (keep all)"},
              std::pair{CrashMode::random_subset_torn, " (torn subset)"},
              std::pair{CrashMode::random_subset, " (subset)"}}) {
          if (::testing::Test::HasFailure() || device.unflushed_count() == 0) break;
          verify_image(device.crash_image(rng, mode), out, where + label, tally);
        }
        stop = ::testing::Test::HasFailure();
      });
}

TEST(CrashSnapshot, EveryCrashPointInVolumeManagementRecoversToAWholeState) {
  spdlog::set_level(spdlog::level::off);
  const std::uint64_t first_seed = crash::env_or("SNAPSTORE_CRASH_SEED", 20261121);
  const std::uint64_t want = crash::env_or("SNAPSTORE_SNAPSHOT_CRASH_POINTS", 2200);
  const auto image = crash::formatted_image(device_size, origin_size);
  ASSERT_FALSE(image.empty());
  const auto start = std::chrono::steady_clock::now();
  Tally tally;
  std::uint64_t workloads = 0;
  for (std::uint64_t seed = first_seed; tally.points < want && !HasFailure(); ++seed, ++workloads)
    crash_workload(seed, want - tally.points, image, tally);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  auto in = [&](op_kind k) { return tally.points_in[static_cast<std::size_t>(k)]; };
  std::printf(
      "snapshot crash points: %llu over %llu workloads in %.1f s; %llu in create, delete, "
      "rollback or reclaim\n",
      u(tally.points), u(workloads), seconds,
      u(in(op_kind::snapshot) + in(op_kind::create) + in(op_kind::remove) + in(op_kind::rollback) +
        in(op_kind::reclaim)));
  std::printf("  cut in:");
  for (std::size_t k = 0; k < op_kinds; ++k)
    if (tally.points_in[k]) std::printf(" %s %llu", kind_names[k], u(tally.points_in[k]));
  std::printf(
      "\n  crash images: %llu examined (%llu had trees left to reclaim), %llu more judged "
      "on an identical durable image; %llu points also cut for real\n",
      u(tally.images), u(tally.reclaim_passes), u(tally.images_reused), u(tally.cross_checked));
  std::printf("  call cut short: present in %llu images, absent in %llu, either in %llu\n",
              u(tally.call_present), u(tally.call_absent), u(tally.call_either));
  EXPECT_GE(tally.points, want);
}

}  // namespace
}  // namespace snapstore
