// Commit: the two-phase write of a transaction, and group commit. See pool.h, invariant 3.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>

#include "volume/pool.h"

namespace snapstore {

void WriteGate::enter() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return !closed_; });
  ++inside_;
}

void WriteGate::leave() {
  std::lock_guard lock(mutex_);
  if (--inside_ == 0) changed_.notify_all();
}

void WriteGate::close() {
  std::unique_lock lock(mutex_);
  closed_ = true;
  changed_.wait(lock, [this] { return inside_ == 0; });
}

void WriteGate::open() {
  std::lock_guard lock(mutex_);
  closed_ = false;
  changed_.notify_all();
}

Status Pool::flush() { return sync(false); }
Status Pool::commit() { return sync(true); }

// Group commit: a caller takes a ticket, then waits its turn; if a sync that began after
// its ticket already covered it (a commit, or for a flush a log record), it is done.
Status Pool::sync(bool full) {
  if (options_.read_only) return Status::ok();
  const std::uint64_t ticket = ++flush_requests_;
  std::lock_guard commit_lock(commit_mutex_);
  SNAPSTORE_RETURN_IF_ERROR(failure());
  if ((full ? commits_covered_ : flushes_covered_) >= ticket) return Status::ok();
  const std::uint64_t covering = flush_requests_.load();
  if (!full) {
    auto logged = append_log();
    if (!logged) return logged.status();
    if (*logged) {
      flushes_covered_ = covering;
      return Status::ok();
    }
  }
  // Most of a commit's time is the flush that makes the transaction's data durable
  // before the metadata naming it. When much data was written, flush while writes and
  // reads go on, again for what came meanwhile (each round shorter than the last), so
  // that the flush inside the commit, which stops them, has little left to do.
  for (int round = 0; round < max_prewrite_rounds && dirty_ &&
                      data_bytes_since_commit_.exchange(0) >= prewrite_threshold;
       ++round) {
    if (Status f = chunks_->flush(); !f) return fail(f);
  }
  write_gate_.close();  // no data blocks taken but not yet mapped go into this commit
  const auto started = std::chrono::steady_clock::now();  // writes wait from here on
  const std::uint64_t commits_before = commits_;
  Status st = Status::ok();
  {
    std::lock_guard log(log_mutex_);  // no record is written while the log restarts
    st = commit_locked();
  }
  if (commits_ != commits_before) {
    last_commit_us_ = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                      std::chrono::steady_clock::now() - started)
                                                      .count());
    commit_us_total_ += last_commit_us_;
  }
  write_gate_.open();
  if (st) flushes_covered_ = commits_covered_ = covering;
  return st;
}

// Writes the commit's superblock copies (SuperblockWriter: ring A on every device, flush,
// ring B, flush). superblock_ takes the new roots here (a failure after this point turns
// the pool read-only, so nothing reads them before they are durable).
Status Pool::write_superblocks(std::uint64_t gen, const BlockPointer& volume_table,
                               const BlockPointer& data_sm_index,
                               std::vector<SmIndexPointer> metadata_sm_index) {
  Superblock& sb = superblock_;
  sb.generation = gen;
  sb.volume_table = volume_table;
  sb.data_sm_index = data_sm_index;
  sb.metadata_sm_index = std::move(metadata_sm_index);
  if (chunks_->chunk_count() != sb.chunks.size()) sb.chunks = chunks_->chunks();
  return sb_writer_->write(sb);
}

Status Pool::commit_locked() {
  std::unique_lock meta(meta_mutex_);
  if (!dirty_) return Status::ok();
  const std::uint64_t gen = tm_->generation();
  // The commit may use the metadata reserve throughout (MetadataSpaceMap invariant 3):
  // sealing the volume table and the data space map's index shadows their paths too.
  ReserveScope reserve(*tm_);
  // A pool formatted before the intent log existed gets it with this commit.
  if (!options_.read_only) superblock_.incompat_features |= incompat_intent_log;
  record_damage_locked();  // volumes found damaged carry the flag from this commit on
  // Phase 0: fold in-memory state into trees, then seal every tree bottom-up.
  Status st = data_sm_->flush_index();
  for (std::uint64_t id : dirty_volumes_) {
    if (!st) break;
    VolumeState& v = volumes_.at(id);
    auto root = mappings_->seal(v.record.mapping);
    if (!root) {
      st = root.status();
      break;
    }
    v.record.mapping = *root;
    auto vt = volume_table_->insert(volume_table_root_, id, encode_volume_record(v.record));
    if (!vt) st = vt.status();
    else volume_table_root_ = *vt;
  }
  Result<BlockPointer> vt_root = st ? volume_table_->seal(volume_table_root_) : Result<BlockPointer>(st);
  Result<BlockPointer> dsm_root = vt_root ? data_sm_->seal() : Result<BlockPointer>(vt_root.status());
  Result<std::vector<SmIndexPointer>> msm_index =
      dsm_root ? metadata_sm_->commit(*blocks_, gen) : Result<std::vector<SmIndexPointer>>(dsm_root.status());
  if (!msm_index) return fail(msm_index.status());
  // Phase 1: every block of the transaction, then a flush.
  if (Status w = blocks_->write_dirty(); !w) return fail(w);
  if (Status f = chunks_->flush(); !f) return fail(f);
  // Phase 2: the superblock copies that name it all, each ring flushed.
  if (Status w = write_superblocks(gen, *vt_root, *dsm_root, std::move(*msm_index)); !w)
    return fail(w);
  // Committed: what this transaction freed may now be reused.
  volume_table_root_ = *vt_root;
  for (std::uint64_t id : dirty_volumes_) volumes_.at(id).dirty = false;
  dirty_volumes_.clear();
  metadata_sm_->end_transaction();
  data_sm_->end_transaction();
  early_commit_requested_ = false;  // what was released is free again
  tm_->set_generation(gen + 1);
  dirty_ = false;
  ++commits_;
  reset_log_after_commit();
  // Keep a metadata chunk's worth of headroom where the devices allow it.
  if (metadata_sm_->nr_free() < metadata_sm_->reserve() * 2 &&
      chunks_->can_allocate(superblock_.metadata_profile)) {
    if (Status g = grow_metadata(); !g) spdlog::warn("cannot grow metadata space: {}", g.message());
  }
  return Status::ok();
}

}  // namespace snapstore
