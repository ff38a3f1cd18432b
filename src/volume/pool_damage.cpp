// Damage that stays where it is (issue 11, deliver 5): a block unreadable on every copy
// costs what it holds, not the pool.
//
//  1. Before a change to a volume's mapping tree, the nodes the change will read are read
//     first (BTree::check_paths). One that cannot be read fails the request (EIO) and
//     nothing changes; the pool goes on writable. (The tree calls read as they shadow:
//     failing half-way would leave the space maps wrong, which only a read-only pool can
//     afford.)
//  2. A volume whose blocks (metadata or data) failed verification on every copy is marked
//     damaged: at once in what volumes() and find_volume() return, and in its record's
//     flags at the next commit, until a repair (or a scrub that finds it whole) clears it.
//     An I/O error may pass, so it fails the request without marking anything. Other
//     volumes, commits and snapshots go on.
//  3. At open, a space map or a part of the volume table that cannot be read on any copy
//     opens the pool read-only with the reason (read_only_reason_): reads need neither
//     space map, and every volume whose record can be read is served.
//  4. A deleted tree that reclaim cannot read is dropped: its record leaves the volume
//     table and the blocks it still held stay allocated, unreachable, until
//     `snapstored repair` rebuilds the space maps from what is reachable.
//
// Locks: damaged_ has its own mutex (readers note damage under the shared metadata lock);
// the rest runs under the metadata lock held exclusively, or during open.
#include <spdlog/spdlog.h>

#include "volume/pool.h"

namespace snapstore {

void Pool::note_damage(std::uint64_t volume, const Status& why) {
  if (why.code() != errc::corruption) return;
  {
    std::lock_guard lock(damage_mutex_);
    if (!damaged_.emplace(volume, why.message()).second) return;
  }
  dirty_ = true;  // the flag reaches the volume's record at the next commit
  spdlog::error("volume {}: {}; the blocks it covers answer with an I/O error and the volume is marked "
                "damaged (snapshotctl scrub, or snapstored repair offline, says what is lost)",
                volume, why.message());
}

bool Pool::is_damaged(std::uint64_t volume) const {
  std::lock_guard lock(damage_mutex_);
  return damaged_.count(volume) != 0;
}

VolumeRecord Pool::with_damage(VolumeRecord r) const {
  if (is_damaged(r.id)) r.flags |= volume_flag_damaged;
  return r;
}

// Commit, metadata lock held exclusively: the damage noted since reaches the records.
void Pool::record_damage_locked() {
  std::lock_guard lock(damage_mutex_);
  for (const auto& [id, why] : damaged_) {
    auto it = volumes_.find(id);
    if (it == volumes_.end() || (it->second.record.flags & volume_flag_damaged)) continue;
    it->second.record.flags |= volume_flag_damaged;
    mark_changed(id, it->second);
  }
}

Status Pool::check_mapping_change(std::uint64_t volume, const VolumeState& v, std::uint64_t first,
                                  std::uint64_t last, bool removal) {
  Status st = mappings_->check_paths(v.record.mapping, first, last, removal);
  if (!st) note_damage(volume, st);
  return st;
}

void Pool::force_read_only(const std::string& reason) {
  spdlog::error("{}: {}", devices_[0]->name(), reason);
  open_problems_.push_back(reason);
  if (read_only_reason_.empty())
    read_only_reason_ = reason + "; opened read-only (copy the data out, or run `snapstored repair`)";
  options_.read_only = true;
  if (chunks_) chunks_->set_repair(false);  // a read-only open writes nothing
}

// Rule 3 for the space maps. Without them a pool can be read but not written: the
// metadata space map is then an empty one of the right size, never allocated from.
void Pool::load_space_maps(const Superblock& sb) {
  const std::uint64_t nr_metadata = chunks_->space_bytes(space::metadata) / metadata_block_size;
  auto msm = MetadataSpaceMap::load(*blocks_, sb.metadata_sm_index, nr_metadata);
  if (msm) {
    metadata_sm_ = std::make_unique<MetadataSpaceMap>(std::move(msm).value());
  } else {
    force_read_only("the metadata space map cannot be read (" + msm.status().message() + ")");
    metadata_sm_ = std::make_unique<MetadataSpaceMap>(nr_metadata);
  }
  tm_ = std::make_unique<TransactionManager>(*blocks_, *metadata_sm_, [this] { return grow_metadata(); },
                                             sb.generation + 1);
  data_sm_ = std::make_unique<DataSpaceMap>(*tm_, sb.data_sm_index,
                                            chunks_->space_bytes(space::data) / sb.data_block_size);
  Status dsm = data_sm_->load();
  if (dsm) dsm = data_sm_->verify_pages();
  if (!dsm) force_read_only("the data space map cannot be read (" + dsm.message() + ")");
}

// Rule 3 for the volume table: every record that can be read is loaded; the id ranges
// below unreadable nodes (or records that do not decode) are reported.
Status Pool::load_volume_table() {
  std::vector<std::string> lost;
  auto visit = [&](std::uint64_t id, std::span<const std::byte> v) {
    auto r = decode_volume_record(id, v);
    if (!r) {
      lost.push_back("volume " + std::to_string(id) + " (" + r.status().message() + ")");
      return true;
    }
    volumes_[id].record = *r;
    if (r->deleted()) deleted_volumes_.insert(id);
    else names_[r->name] = id;
    if (r->damaged()) damaged_.emplace(id, "marked damaged at an earlier open");
    return true;
  };
  auto on_lost = [&](std::uint64_t lo, std::uint64_t hi, const Status& why) {
    lost.push_back("volume ids " + std::to_string(lo) + " to " +
                   (hi == ~std::uint64_t{0} ? std::string("the last") : std::to_string(hi - 1)) + " (" +
                   why.message() + ")");
  };
  SNAPSTORE_RETURN_IF_ERROR(volume_table_->scan_readable(volume_table_root_, visit, on_lost));
  if (!lost.empty()) {
    std::string what = "the volume table cannot be read for";
    for (const std::string& l : lost) what += " " + l + ";";
    what.pop_back();
    force_read_only(what + ": those volumes are not served");
  }
  return Status::ok();
}

// Rule 4 (metadata lock held exclusively): the record goes; what the tree still held is
// leaked, never freed, so nothing reachable can be handed out again.
Result<Pool::ReclaimStep> Pool::drop_unreadable_tree(std::uint64_t id, const Status& why) {
  spdlog::error("reclaim: the tree of deleted volume {} cannot be read ({}); it is dropped, and the space it "
                "still holds comes back only with `snapstored repair`",
                id, why.message());
  {
    std::lock_guard lock(damage_mutex_);
    runtime_problems_.push_back("the tree of deleted volume " + std::to_string(id) +
                                " could not be read; its space is lost until `snapstored repair`");
  }
  return remove_volume_record(id);
}

}  // namespace snapstore
