// Background reclaim: releases the trees of deleted volumes in bounded steps.
// See pool.h, invariant 6.
//
// A step holds the metadata lock exclusively while it releases at most reclaim_budget
// units of one deleted tree (nodes visited, values released, shared subtrees dropped), so
// foreground I/O waits at most one small step. The record's root is updated after every
// step and reaches disk at the next commit like any change: a crash resumes from the last
// committed root. When a tree is gone its record leaves the volume table. Released data
// blocks become reusable at the commit after their step, as always.
#include <spdlog/spdlog.h>

#include "volume/pool.h"

namespace snapstore {

namespace {

constexpr std::uint64_t reclaim_budget = 512;
constexpr auto reclaim_pause = std::chrono::microseconds(200);

}  // namespace

Status Pool::reclaim_step() {
  std::unique_lock meta(meta_mutex_);
  if (deleted_volumes_.empty() || options_.read_only || !failure().is_ok()) return Status::ok();
  SNAPSTORE_RETURN_IF_ERROR(ensure_metadata_headroom(0));
  const std::uint64_t id = *deleted_volumes_.begin();
  VolumeState& v = volumes_.at(id);
  tm_->set_use_reserve(true);  // reclaim gives space back: it may use the reserve
  struct ReserveOff {
    TransactionManager& tm;
    ~ReserveOff() { tm.set_use_reserve(false); }
  } reserve_off{*tm_};
  std::uint64_t budget = reclaim_budget, released = 0;
  auto left = mappings_->release_some(v.record.mapping, budget, released);
  if (!left) return fail(left.status());  // the tree may be half-released: stop writing
  reclaim_released_ += released;
  v.record.mapped_blocks -= std::min(released, v.record.mapped_blocks);
  ++sharing_epoch_;  // other volumes may now hold alone what they shared with this one
  if (*left) {
    v.record.mapping = **left;
    mark_changed(id, v);
    return Status::ok();
  }
  bool removed = false;
  auto table = volume_table_->remove(volume_table_root_, id, {}, &removed);
  if (!table) return fail(table.status());
  volume_table_root_ = *table;
  volumes_.erase(id);
  dirty_volumes_.erase(id);
  deleted_volumes_.erase(id);
  dirty_ = true;
  return Status::ok();
}

Result<std::uint64_t> Pool::reclaim(std::uint64_t max_steps) {
  SNAPSTORE_RETURN_IF_ERROR(check_writable());
  for (std::uint64_t step = 0; step < max_steps; ++step) {
    {
      std::shared_lock meta(meta_mutex_);
      if (deleted_volumes_.empty()) break;
    }
    SNAPSTORE_RETURN_IF_ERROR(reclaim_step());
    if (blocks_->dirty_count() * 2 > blocks_->capacity_blocks()) SNAPSTORE_RETURN_IF_ERROR(commit());
  }
  SNAPSTORE_RETURN_IF_ERROR(commit());
  std::shared_lock meta(meta_mutex_);
  return static_cast<std::uint64_t>(deleted_volumes_.size());
}

void Pool::reclaim_loop() {
  std::unique_lock lock(timer_mutex_);
  while (!stopping_) {
    bool work = false;
    {
      std::shared_lock meta(meta_mutex_);
      work = !deleted_volumes_.empty() && failure().is_ok();
    }
    if (!work) {
      reclaim_cv_.wait_for(lock, std::chrono::seconds(1));
      continue;
    }
    lock.unlock();
    Status st = reclaim_step();
    if (st && blocks_->dirty_count() * 2 > blocks_->capacity_blocks()) st = commit();
    if (!st) {
      if (st.code() == errc::no_space) {  // a commit frees what earlier steps released
        st = commit();
      }
      if (!st) spdlog::error("reclaim: {}", st.to_string());
    }
    lock.lock();
    if (!st) reclaim_cv_.wait_for(lock, std::chrono::seconds(1));
    else reclaim_cv_.wait_for(lock, reclaim_pause);
  }
}

}  // namespace snapstore
