// What volumes use and how they differ: exclusive/shared space, diffs, I/O counters.
//
// Exclusive space is what deleting a volume would give back: the data blocks reachable
// only through nodes this volume alone references (reference count 1 all the way down)
// whose own reference count is 1. The walk stops at the first shared node, so it costs
// the nodes the volume owns alone, and its result is cached until the volume changes or
// sharing anywhere may have changed (the sharing epoch). mapped blocks are counted
// exactly on every write and unmap and kept in the volume record.
#include "volume/pool.h"

namespace snapstore {

namespace {

constexpr std::size_t max_diff_extents = 4096;

}  // namespace

Result<std::uint64_t> Pool::exclusive_blocks(const BlockPointer& node, std::uint64_t begin,
                                             std::uint64_t end) {
  if (tm_->count(node.block) > 1) return std::uint64_t{0};
  auto block = tm_->read(node);
  if (!block) return block.status();
  NodeView n((*block)->bytes);
  std::uint64_t total = 0;
  for (std::uint32_t i = 0; i < n.size(); ++i) {
    if (n.key(i) >= end) break;  // every key under entry i and after is >= end
    if (!n.is_leaf()) {
      if (i + 1 < n.size() && n.key(i + 1) <= begin) continue;  // child i ends before begin
      auto below = exclusive_blocks(n.child(i), begin, end);
      if (!below) return below.status();
      total += *below;
      continue;
    }
    if (n.key(i) < begin) continue;
    auto refs = data_sm_->count(decode_mapping(n.value_span(i)).data_block);
    if (!refs) return refs.status();
    if (*refs == 1) ++total;
  }
  return total;
}

Result<VolumeUsage> Pool::usage(std::uint64_t volume) {
  std::shared_lock meta(meta_mutex_);
  auto v = volume_state(volume);
  if (!v) return v.status();
  const std::uint64_t bs = superblock_.data_block_size;
  std::lock_guard usage_lock(usage_mutex_);
  VolumeState& state = **v;
  if (!state.usage_valid || state.usage_epoch != sharing_epoch_) {
    auto exclusive = exclusive_blocks(state.record.mapping);
    if (!exclusive) return exclusive.status();
    state.exclusive_blocks = *exclusive;
    state.usage_epoch = sharing_epoch_;
    state.usage_valid = true;
  }
  const std::uint64_t mapped = state.record.mapped_blocks;
  const std::uint64_t exclusive = std::min(state.exclusive_blocks, mapped);
  return VolumeUsage{mapped * bs, exclusive * bs, (mapped - exclusive) * bs};
}

std::shared_ptr<VolumeIoCounters> Pool::io_counters(std::uint64_t volume) {
  std::lock_guard lock(io_mutex_);
  auto& counters = io_[volume];
  if (!counters) counters = std::make_shared<VolumeIoCounters>();
  return counters;
}

VolumeIoStats Pool::io_stats(std::uint64_t volume) const {
  std::lock_guard lock(io_mutex_);
  auto it = io_.find(volume);
  if (it == io_.end()) return {};
  const VolumeIoCounters& c = *it->second;
  return {c.reads.load(), c.read_bytes.load(), c.writes.load(), c.write_bytes.load(),
          c.trims.load(),  c.zeroes.load(),     c.flushes.load(), c.errors.load()};
}

Result<std::vector<Extent>> Pool::diff(std::uint64_t a, std::uint64_t b, std::uint64_t offset,
                                       std::uint64_t length) {
  const std::uint64_t bs = superblock_.data_block_size;
  const std::uint64_t end = offset + length;
  std::vector<Extent> extents;
  std::uint64_t covered = offset;  // extents describe [offset, covered)
  bool stopped = false;
  auto add = [&](std::uint64_t to, std::uint32_t flags) {
    to = std::min(to, end);
    if (to <= covered) return;
    if (!extents.empty() && extents.back().flags == flags)
      extents.back().length += to - covered;
    else
      extents.push_back({to - covered, flags});
    covered = to;
  };
  {
    std::shared_lock meta(meta_mutex_);
    auto va = volume_state(a);
    if (!va) return va.status();
    auto vb = volume_state(b);
    if (!vb) return vb.status();
    Status st = mappings_->diff((*va)->record.mapping, (*vb)->record.mapping, offset / bs,
                                (end + bs - 1) / bs, [&](std::uint64_t key) {
                                  if (extents.size() >= max_diff_extents &&
                                      covered < key * bs) {
                                    stopped = true;  // a prefix is enough; the client asks again
                                    return false;
                                  }
                                  add(key * bs, 0);
                                  add((key + 1) * bs, extent_changed);
                                  return true;
                                });
    if (!st) return st;
  }
  if (!stopped) add(end, 0);  // no difference after the last one found
  return extents;
}

}  // namespace snapstore
