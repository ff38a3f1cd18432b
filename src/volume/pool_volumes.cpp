// Volume management on the pool: snapshots, new volumes, delete, rename, rollback,
// resize. See pool.h, invariants 6 and 7.
//
// Each operation changes the in-memory volume state under the exclusive metadata lock
// (records reach the volume table at the commit, like mapping roots), then commits.
#include <chrono>

#include "volume/pool.h"

namespace snapstore {

namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

constexpr std::uint64_t max_volume_size = 1ull << 60;

}  // namespace

Result<Pool::VolumeState*> Pool::live_volume(std::string_view name) {
  auto it = names_.find(name);
  if (it == names_.end()) return not_found("no volume named '" + std::string(name) + "'");
  return &volumes_.at(it->second);
}

void Pool::mark_changed(std::uint64_t id, VolumeState& v) {
  v.dirty = true;
  v.usage_valid = false;
  if (v.may_share) ++sharing_epoch_;
  dirty_volumes_.insert(id);
  dirty_ = true;
}

Status Pool::check_new_name(std::string_view name) const {
  SNAPSTORE_RETURN_IF_ERROR(validate_volume_name(name));
  if (names_.contains(name)) return already_exists("a volume named '" + std::string(name) + "' already exists");
  return Status::ok();
}

Result<VolumeRecord> Pool::create_snapshot(std::string_view source, std::string_view name,
                                           bool read_only) {
  SNAPSTORE_RETURN_IF_ERROR(check_writable());
  VolumeRecord r;
  {
    std::unique_lock meta(meta_mutex_);
    log_blocked_ = true;  // a volume change is not a log entry: the next sync commits
    auto src = live_volume(source);
    if (!src) return src.status();
    SNAPSTORE_RETURN_IF_ERROR(check_new_name(name));
    SNAPSTORE_RETURN_IF_ERROR(ensure_metadata_headroom(0));
    r.id = superblock_.next_volume_id++;
    r.name = std::string(name);
    r.size = (*src)->record.size;
    r.parent = (*src)->record.id;
    r.created_ns = now_ns();
    r.flags = read_only ? volume_flag_read_only : 0;
    r.generation = tm_->generation();
    r.mapped_blocks = (*src)->record.mapped_blocks;
    r.mapping = (*src)->record.mapping;
    mappings_->clone(r.mapping);
    (*src)->may_share = true;
    (*src)->usage_valid = false;
    VolumeState& snap = volumes_[r.id];
    snap.record = r;
    snap.may_share = true;
    names_[r.name] = r.id;
    mark_changed(r.id, snap);
  }
  SNAPSTORE_RETURN_IF_ERROR(commit());
  return r;
}

Result<VolumeRecord> Pool::create_volume(std::string_view name, std::uint64_t size) {
  SNAPSTORE_RETURN_IF_ERROR(check_writable());
  const std::uint32_t bs = superblock_.data_block_size;
  if (size == 0 || size % bs != 0 || size > max_volume_size)
    return invalid_argument("a volume size must be a non-zero multiple of the pool's block size (" +
                            std::to_string(bs) + " bytes), at most 1 EiB");
  VolumeRecord r;
  {
    std::unique_lock meta(meta_mutex_);
    log_blocked_ = true;  // a volume change is not a log entry: the next sync commits
    SNAPSTORE_RETURN_IF_ERROR(check_new_name(name));
    SNAPSTORE_RETURN_IF_ERROR(ensure_metadata_headroom(0));
    auto root = mappings_->create();
    if (!root) return fail(root.status());
    r.id = superblock_.next_volume_id++;
    r.name = std::string(name);
    r.size = size;
    r.created_ns = now_ns();
    r.generation = tm_->generation();
    r.mapping = *root;
    VolumeState& v = volumes_[r.id];
    v.record = r;
    names_[r.name] = r.id;
    mark_changed(r.id, v);
  }
  SNAPSTORE_RETURN_IF_ERROR(commit());
  return r;
}

Status Pool::delete_volume(std::string_view name) {
  SNAPSTORE_RETURN_IF_ERROR(check_writable());
  {
    std::unique_lock meta(meta_mutex_);
    log_blocked_ = true;  // a volume change is not a log entry: the next sync commits
    auto v = live_volume(name);
    if (!v) return v.status();
    const std::uint64_t id = (*v)->record.id;
    for (auto& [other_id, other] : volumes_)  // children now descend from the grandparent
      if (other.record.parent == id && !other.record.deleted()) {
        other.record.parent = (*v)->record.parent;
        mark_changed(other_id, other);
      }
    names_.erase((*v)->record.name);
    (*v)->record.name.clear();
    (*v)->record.flags |= volume_flag_deleted;
    (*v)->record.parent = 0;
    ++sharing_epoch_;
    mark_changed(id, **v);
    deleted_volumes_.insert(id);
  }
  wake_reclaim();
  return commit();
}

Status Pool::rename_volume(std::string_view from, std::string_view to) {
  SNAPSTORE_RETURN_IF_ERROR(check_writable());
  {
    std::unique_lock meta(meta_mutex_);
    log_blocked_ = true;  // a volume change is not a log entry: the next sync commits
    auto v = live_volume(from);
    if (!v) return v.status();
    if (from == to) return Status::ok();
    SNAPSTORE_RETURN_IF_ERROR(check_new_name(to));
    names_.erase((*v)->record.name);
    (*v)->record.name = std::string(to);
    names_[(*v)->record.name] = (*v)->record.id;
    mark_changed((*v)->record.id, **v);
  }
  return commit();
}

Status Pool::rollback(std::string_view volume, std::string_view snapshot) {
  SNAPSTORE_RETURN_IF_ERROR(check_writable());
  {
    std::unique_lock meta(meta_mutex_);
    log_blocked_ = true;  // a volume change is not a log entry: the next sync commits
    auto v = live_volume(volume);
    if (!v) return v.status();
    auto s = live_volume(snapshot);
    if (!s) return s.status();
    if (*v == *s) return invalid_argument("cannot roll a volume back to itself");
    if ((*v)->record.read_only())
      return read_only_error("volume '" + std::string(volume) + "' is read-only");
    SNAPSTORE_RETURN_IF_ERROR(ensure_metadata_headroom(0));
    // The old tree goes to reclaim under a nameless deleted record of its own.
    VolumeRecord old;
    old.id = superblock_.next_volume_id++;
    old.size = (*v)->record.size;
    old.created_ns = now_ns();
    old.flags = volume_flag_deleted;
    old.generation = tm_->generation();
    old.mapped_blocks = (*v)->record.mapped_blocks;
    old.mapping = (*v)->record.mapping;
    VolumeState& zombie = volumes_[old.id];
    zombie.record = old;
    zombie.may_share = true;
    mark_changed(old.id, zombie);
    deleted_volumes_.insert(old.id);
    mappings_->clone((*s)->record.mapping);
    (*v)->record.mapping = (*s)->record.mapping;
    (*v)->record.size = (*s)->record.size;
    (*v)->record.mapped_blocks = (*s)->record.mapped_blocks;
    (*v)->may_share = true;
    (*s)->may_share = true;
    (*s)->usage_valid = false;
    ++sharing_epoch_;
    mark_changed((*v)->record.id, **v);
  }
  wake_reclaim();
  return commit();
}

Status Pool::resize_volume(std::string_view name, std::uint64_t size) {
  SNAPSTORE_RETURN_IF_ERROR(check_writable());
  const std::uint32_t bs = superblock_.data_block_size;
  if (size == 0 || size % bs != 0 || size > max_volume_size)
    return invalid_argument("a volume size must be a non-zero multiple of the pool's block size (" +
                            std::to_string(bs) + " bytes), at most 1 EiB");
  // The new size and the unmapping of everything past it change together, under one
  // hold of the metadata lock: no commit sees one without the other, and a write past
  // the new end either lands before (and is unmapped) or is refused (remap checks size).
  {
    std::unique_lock meta(meta_mutex_);
    log_blocked_ = true;  // a volume change is not a log entry: the next sync commits
    auto v = live_volume(name);
    if (!v) return v.status();
    if ((*v)->record.read_only())
      return read_only_error("volume '" + std::string(name) + "' is read-only");
    const std::uint64_t id = (*v)->record.id;
    const std::uint64_t old_size = (*v)->record.size;
    if (size < old_size)
      SNAPSTORE_RETURN_IF_ERROR(unmap_blocks_locked(id, size / bs, (old_size + bs - 1) / bs));
    (*v)->record.size = size;
    mark_changed(id, **v);
  }
  return commit();
}

}  // namespace snapstore
