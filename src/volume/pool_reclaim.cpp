// Background reclaim: releases the trees of deleted volumes in bounded steps.
// See pool.h, invariant 6.
//
// A step holds the metadata lock exclusively while it releases at most reclaim_budget
// units of one deleted tree (nodes visited, values released, shared subtrees dropped), so
// foreground I/O waits at most one small step. The record's root is updated after every
// step and reaches disk at the next commit like any change: a crash resumes from the last
// committed root. When a tree is gone its record leaves the volume table. Released data
// blocks become reusable at the commit after their step, as always.
//
// Reclaim always makes progress, even with the metadata space full (the pool that most
// needs it):
//  1. A step only gives space back, so it may allocate from the metadata reserve: down to
//     half of it (reclaim_floor), the other half staying for the commit that follows.
//  2. What a step may allocate is bounded before it starts: every unit of budget allocates
//     at most one block (a node shadowed, or a data refcount page written), and removing
//     the record from the volume table a path and a sibling per level
//     (record_removal_bound). When the room above the floor is short the budget shrinks
//     to fit it.
//  3. Metadata blocks freed by a step come back only at the commit: when the free blocks
//     fall below the reserve, or the room is too short for a step, reclaim commits. If
//     there is still no room after a commit, reclaim reports no_space.
//  4. The background thread never busy-retries: with nothing to do it waits to be woken
//     (wake_reclaim), and after a failure it backs off, 1 s doubling to a minute.
#include <spdlog/spdlog.h>

#include "volume/pool.h"

namespace snapstore {

namespace {

constexpr std::uint64_t reclaim_budget = 512;
// A step with less budget than this might only shadow the path to its first leaf.
constexpr std::uint64_t min_reclaim_budget = 16;
constexpr auto reclaim_pause = std::chrono::microseconds(200);
constexpr auto reclaim_idle_wait = std::chrono::seconds(60);
constexpr auto reclaim_first_backoff = std::chrono::seconds(1);
constexpr auto reclaim_max_backoff = std::chrono::seconds(60);

}  // namespace

// The free metadata blocks a reclaim step leaves for the commit after it (invariant 1).
std::uint64_t Pool::reclaim_floor() const { return metadata_sm_->reserve() / 2; }

// Blocks that removing a record from the volume table may allocate (invariant 2): the
// root, and below it the node on the path and a sibling to merge with at each level.
// Metadata lock held.
Result<std::uint64_t> Pool::record_removal_bound() {
  auto table_root = tm_->read(volume_table_root_);
  if (!table_root) return table_root.status();
  return 1 + 2 * std::uint64_t{NodeView((*table_root)->bytes).level()};
}

Result<Pool::ReclaimStep> Pool::reclaim_step() {
  std::unique_lock meta(meta_mutex_);
  if (deleted_volumes_.empty() || options_.read_only || !failure().is_ok())
    return ReclaimStep::nothing_to_do;
  const std::uint64_t free_blocks = metadata_sm_->nr_free();
  const std::uint64_t room = free_blocks > reclaim_floor() ? free_blocks - reclaim_floor() : 0;
  auto removal = record_removal_bound();
  if (!removal) return removal.status();
  if (room < *removal + min_reclaim_budget) return ReclaimStep::no_room;
  std::uint64_t budget = std::min(reclaim_budget, room - *removal);  // a block per unit at most
  const std::uint64_t id = *deleted_volumes_.begin();
  VolumeState& v = volumes_.at(id);
  ReserveScope reserve(*tm_);  // reclaim gives space back: it may use the reserve
  std::uint64_t released = 0;
  auto left = mappings_->release_some(v.record.mapping, budget, released);
  if (!left && (left.status().code() == errc::corruption || left.status().code() == errc::io_error))
    return drop_unreadable_tree(id, left.status());  // pool_damage.cpp, rule 4
  if (!left) return fail(left.status());  // the tree may be half-released: stop writing
  reclaim_released_ += released;
  v.record.mapped_blocks -= std::min(released, v.record.mapped_blocks);
  ++sharing_epoch_;  // other volumes may now hold alone what they shared with this one
  if (*left) {
    v.record.mapping = **left;
    mark_changed(id, v);
    return ReclaimStep::progressed;
  }
  return remove_volume_record(id);
}

// The deleted volume's tree is gone: its record leaves the volume table. Metadata lock
// held exclusively.
Result<Pool::ReclaimStep> Pool::remove_volume_record(std::uint64_t id) {
  bool removed = false;
  auto table = volume_table_->remove(volume_table_root_, id, {}, &removed);
  if (!table) return fail(table.status());
  volume_table_root_ = *table;
  volumes_.erase(id);
  dirty_volumes_.erase(id);
  deleted_volumes_.erase(id);
  dirty_ = true;
  return ReclaimStep::progressed;
}

// Invariant 3: commit once the steps have dipped into the reserve (what they freed comes
// back only then), or once half the cache is dirty.
bool Pool::reclaim_should_commit() {
  std::shared_lock meta(meta_mutex_);
  return metadata_sm_->nr_free() < metadata_sm_->reserve() ||
         blocks_->dirty_count() * 2 > blocks_->capacity_blocks();
}

Result<bool> Pool::reclaim_once() {
  auto step = reclaim_step();
  if (step && *step == ReclaimStep::no_room) {
    SNAPSTORE_RETURN_IF_ERROR(commit());  // gives back what earlier steps freed
    step = reclaim_step();
    if (step && *step == ReclaimStep::no_room)
      return no_space("metadata space is too full for a reclaim step, even after a commit");
  }
  if (!step) return step.status();
  if (*step == ReclaimStep::nothing_to_do) return false;
  if (reclaim_should_commit()) SNAPSTORE_RETURN_IF_ERROR(commit());
  return true;
}

Result<std::uint64_t> Pool::reclaim(std::uint64_t max_steps) {
  SNAPSTORE_RETURN_IF_ERROR(check_writable());
  for (std::uint64_t step = 0; step < max_steps; ++step) {
    auto progressed = reclaim_once();
    if (!progressed) return progressed.status();
    if (!*progressed) break;
  }
  SNAPSTORE_RETURN_IF_ERROR(commit());
  std::shared_lock meta(meta_mutex_);
  return static_cast<std::uint64_t>(deleted_volumes_.size());
}

void Pool::wake_reclaim() {
  {
    std::lock_guard lock(timer_mutex_);
    reclaim_wakeup_ = true;
  }
  reclaim_cv_.notify_all();
}

// Runs reclaim_once and says how long to wait before the next round (invariant 4).
// `backoff` is the wait after the last failure (zero: the last round did not fail).
std::chrono::microseconds Pool::reclaim_round(std::chrono::microseconds& backoff) {
  auto progressed = reclaim_once();
  if (progressed) {
    backoff = {};
    if (*progressed) return reclaim_pause;
    return reclaim_idle_wait;
  }
  using std::chrono::microseconds;
  backoff = backoff.count() == 0 ? microseconds(reclaim_first_backoff)
                                 : std::min<microseconds>(backoff * 2, reclaim_max_backoff);
  spdlog::error("reclaim: {} (next try in {} s)", progressed.status().to_string(),
                std::chrono::duration_cast<std::chrono::seconds>(backoff).count());
  return backoff;
}

// The timer mutex guards stopping_ and the wakeup flag only: it is never held while the
// metadata lock is taken (a writer may take the timer mutex under the metadata lock).
void Pool::reclaim_loop() {
  std::chrono::microseconds wait{}, backoff{};
  for (;;) {
    {
      std::unique_lock lock(timer_mutex_);
      reclaim_cv_.wait_for(lock, wait, [this] { return stopping_ || reclaim_wakeup_; });
      if (stopping_) return;
      reclaim_wakeup_ = false;
    }
    wait = reclaim_round(backoff);
  }
}

}  // namespace snapstore
