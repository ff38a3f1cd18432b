// The pool's side of the intent log: appending a record on flush, and replaying the
// records at open. See intent_log.h for the format and pool.h, invariant 8.
#include <spdlog/spdlog.h>

#include "volume/pool.h"

namespace snapstore {

// Caller holds commit_mutex_ (so no commit runs meanwhile, and records go out in order).
// The metadata lock is held only to take the pending entries: writes go on while the
// record and the flush are in flight. A write mapped after that is simply not covered
// (its own flush comes later); its blocks stay out of the record and, after a crash,
// free, as they were at the commit the log follows.
Result<bool> Pool::append_log() {
  std::vector<std::byte> record;
  std::uint64_t position = 0;
  {
    std::unique_lock meta(meta_mutex_);
    if (!(superblock_.incompat_features & incompat_intent_log) || log_blocked_) return false;
    if (log_pending_.empty()) return true;  // nothing mapped since the last durable point
    const std::size_t size = log_record_size(log_pending_.bytes().size());
    if (log_position_ + size > log_layout_.copy_bytes) return false;  // full: commit instead
    position = log_position_;
    record = encode_log_record(superblock_.pool_uuid, superblock_.generation, log_sequence_, position,
                               log_pending_);
    log_pending_.clear();
  }
  // Data written before the entries were mapped, and the record: durable together.
  Status st = write_log_record(devices_, log_layout_, position, record);
  if (st) st = chunks_->flush();
  if (!st) return fail(st);
  log_position_ = position + record.size();
  ++log_sequence_;
  ++log_appends_;
  log_bytes_ += record.size();
  return true;
}

// More pending entries than one record can hold: the next flush must commit anyway, so
// stop collecting them (a stream of writes without flushes would otherwise grow the
// buffer until the next commit). Metadata lock held exclusively.
void Pool::stop_logging_if_too_big() {
  if (log_record_size(log_pending_.bytes().size()) <= log_layout_.copy_bytes) return;
  log_blocked_ = true;
  log_pending_.clear();
}

// After a commit (commit_locked, metadata lock held): the log starts afresh after it.
void Pool::reset_log_after_commit() {
  log_pending_.clear();
  log_blocked_ = false;
  log_position_ = 0;
  log_sequence_ = 0;
}

// The last record may belong to a flush that never completed (intent_log.h, invariant 1):
// its data blocks were written before it, but without the flush they may not have
// reached the device. It counts only if every block it maps holds its data.
bool Pool::log_record_data_intact(const LogRecord& r) {
  const std::uint32_t bs = superblock_.data_block_size;
  std::vector<std::byte> buf(bs);
  for (const LogEntry& e : r.entries) {
    if (e.type != LogEntry::kind::map) continue;
    for (const LogMapping& m : e.mappings) {
      if (m.data_block >= data_sm_->nr_blocks()) return false;
      Status st = chunks_->read(space::data, m.data_block * bs, buf,
                                [&](std::span<const std::byte> b) { return data_checksum(b) == m.checksum; });
      if (!st) return false;
    }
  }
  return true;
}

Status Pool::apply_log_entry(const LogEntry& e) {
  auto v = volume_state(e.volume);
  if (!v) return corruption("intent log names volume " + std::to_string(e.volume) + ", which does not exist");
  const std::uint32_t bs = superblock_.data_block_size;
  if (e.end < e.first || e.end > ((*v)->record.size + bs - 1) / bs)
    return corruption("intent log maps blocks beyond the end of volume '" + (*v)->record.name + "'");
  if (e.type == LogEntry::kind::unmap) return unmap_blocks_locked(e.volume, e.first, e.end);
  SNAPSTORE_RETURN_IF_ERROR(ensure_metadata_headroom(e.mappings.size()));
  std::vector<std::uint64_t> blocks, sums;
  for (const LogMapping& m : e.mappings) {
    Status taken = data_sm_->adopt(m.data_block);
    if (!taken)
      return corruption("intent log maps data block " + std::to_string(m.data_block) +
                        ", which is not free at the commit it follows: " + taken.message());
    blocks.push_back(m.data_block);
    sums.push_back(m.checksum);
  }
  return map_blocks_locked(e.volume, **v, e.first, blocks, sums);
}

// At open, after load(): applies the records that follow the superblock's commit as the
// writes themselves did (same tree and space map changes), in memory. A writable open
// then commits them (Pool::open); a read-only one keeps them in memory only.
Status Pool::replay_log() {
  if (!(superblock_.incompat_features & incompat_intent_log) || superblock_.generation == 0)
    return Status::ok();
  auto records = read_intent_log(devices_, log_layout_, superblock_.pool_uuid, superblock_.generation);
  if (!records) return records.status();
  if (records->empty()) return Status::ok();
  if (!log_record_data_intact(records->back())) {
    spdlog::warn("intent log: the last record's data did not all reach the device (a flush that "
                 "never completed); dropping that record");
    records->pop_back();
  }
  std::unique_lock meta(meta_mutex_);
  std::uint64_t mapped = 0;
  for (const LogRecord& r : *records)
    for (const LogEntry& e : r.entries) {
      Status st = apply_log_entry(e);
      if (!st)
        return Status(st.code(), "cannot replay the intent log (record " + std::to_string(r.sequence) +
                                     "): " + st.message());
      mapped += e.mappings.size();
    }
  log_pending_.clear();
  log_replayed_ = records->size();
  if (log_replayed_ > 0) {
    dirty_ = true;
    spdlog::info("intent log: replayed {} records ({} block mappings) after generation {}", log_replayed_,
                 mapped, superblock_.generation);
  }
  return Status::ok();
}

}  // namespace snapstore
