// The pool's side of the intent log: recording mapping changes, appending them before a
// write is acknowledged, making them durable at a flush, and replaying them at open.
// See intent_log.h for the format and pool.h, invariant 8.
//
// Locks: log_pending_, log_blocked_ and log_added_ change under meta_mutex_ (held
// exclusively by whoever changes a mapping); the write position, the sequence and the
// durable marks under log_mutex_, which is taken before meta_mutex_ and, by commits and
// flushes, after commit_mutex_.
#include <spdlog/spdlog.h>

#include "volume/pool.h"

namespace snapstore {

// Metadata lock held exclusively. A change is counted even when the log cannot carry it
// (log_blocked_): whoever acknowledges it then sees it unwritten and commits.
void Pool::log_map(std::uint64_t volume, std::uint64_t first, std::span<const std::uint64_t> blocks,
                   std::span<const std::uint64_t> sums) {
  ++log_added_;
  if (log_blocked_) return;
  log_pending_.add_map(volume, first, blocks, sums);
  stop_logging_if_too_big();
}

void Pool::log_unmap(std::uint64_t volume, std::uint64_t first, std::uint64_t end) {
  ++log_added_;
  if (log_blocked_) return;
  log_pending_.add_unmap(volume, first, end);
  stop_logging_if_too_big();
}

void Pool::log_chunk(const Chunk& chunk) {
  ++log_added_;
  if (log_blocked_) return;
  log_pending_.add_chunk(chunk);
  stop_logging_if_too_big();
}

// More pending entries than one record can hold: the changes must be committed anyway, so
// stop collecting them. Metadata lock held exclusively.
void Pool::stop_logging_if_too_big() {
  if (log_record_size(log_pending_.bytes().size()) <= log_layout_.copy_bytes) return;
  log_blocked_ = true;
  log_pending_.clear();
}

// Appends the pending entries as one record, without a flush (log_mutex_ held). False when
// the log cannot take them (a change it cannot carry since the last commit, or no room):
// then only a commit makes them safe.
Result<bool> Pool::append_pending_locked() {
  std::vector<std::byte> record;
  std::uint64_t position = 0, covered = 0;
  {
    std::unique_lock meta(meta_mutex_);
    if (!(superblock_.incompat_features & incompat_intent_log) || log_blocked_) return false;
    covered = log_added_;
    if (log_pending_.empty()) {
      log_written_ = covered;
      return true;
    }
    const std::size_t size = log_record_size(log_pending_.bytes().size());
    if (log_position_ + size > log_layout_.copy_bytes) return false;
    position = log_position_;
    record = encode_log_record(superblock_.pool_uuid, superblock_.generation, log_sequence_, log_durable_,
                               position, log_pending_);
    log_pending_.clear();
  }
  SNAPSTORE_RETURN_IF_ERROR(write_record_locked(position, record));
  log_written_ = covered;
  return true;
}

// Writes a record at the end of the log (log_mutex_ held). Once the log is three quarters
// full the timer is asked to commit, so that writes rarely find it full.
Status Pool::write_record_locked(std::uint64_t position, std::span<const std::byte> record) {
  if (Status st = write_log_record(devices_, log_layout_, position, record); !st) return fail(st);
  log_position_ = position + record.size();
  log_marked_ = std::max(log_marked_, log_durable_);
  ++log_sequence_;
  ++log_appends_;
  log_bytes_ += record.size();
  if (log_position_ * 4 > log_layout_.copy_bytes * 3) request_early_commit();
  return Status::ok();
}

// Before a write, trim or zeroing is acknowledged: its mapping change reaches the kernel in
// a record (grouped with whatever else is pending), so the death of this process cannot
// lose it. When the log cannot carry it, a commit does.
Status Pool::log_changes() {
  const std::uint64_t target = log_added_;
  {
    std::lock_guard log(log_mutex_);
    if (log_written_ >= target) return Status::ok();
    SNAPSTORE_RETURN_IF_ERROR(failure());
    auto appended = append_pending_locked();
    if (!appended) return appended.status();
    if (*appended) return Status::ok();
  }
  return commit();
}

// A flush (commit_mutex_ held): appends what is pending, flushes the devices once, and
// records that everything so far is durable. True when the log made the changes durable
// (or there were none), false when a commit is needed.
Result<bool> Pool::append_log() {
  std::lock_guard log(log_mutex_);
  auto appended = append_pending_locked();
  if (!appended || !*appended) return appended;
  if (log_sequence_ == log_durable_) return true;  // every record already flushed
  if (Status st = chunks_->flush(); !st) return fail(st);
  ++log_flushes_;
  log_durable_ = log_sequence_;
  // Invariant 1: nothing is written again into a sector holding a durable record.
  log_position_ = (log_position_ + log_sector_size - 1) / log_sector_size * log_sector_size;
  return write_marker_locked();
}

// A record without entries that carries the new durable mark (intent_log.h), so that a
// reader can tell a flushed last record damaged on every copy from one a crash tore. Not
// flushed itself: it is news, not data. Skipped when the log has no room for it.
Result<bool> Pool::write_marker_locked() {
  if (log_marked_ >= log_durable_) return true;
  const LogBuffer none;
  const std::size_t size = log_record_size(0);
  if (log_position_ + size > log_layout_.copy_bytes) return true;
  auto marker = encode_log_record(superblock_.pool_uuid, superblock_.generation, log_sequence_, log_durable_,
                                  log_position_, none);
  SNAPSTORE_RETURN_IF_ERROR(write_record_locked(log_position_, marker));
  return true;
}

void Pool::request_early_commit() {
  if (!options_.early_commit || early_commit_requested_.exchange(true)) return;
  std::lock_guard lock(timer_mutex_);
  timer_cv_.notify_all();
}

// After a commit (commit_locked: metadata lock and log_mutex_ held): the log starts afresh
// after it, and everything changed so far is in the commit.
void Pool::reset_log_after_commit() {
  log_pending_.clear();
  log_blocked_ = false;
  log_position_ = 0;
  log_sequence_ = 0;
  log_durable_ = 0;
  log_marked_ = 0;
  log_written_ = log_added_;
}

// The data of a map entry from a record no flush covered may not have reached the device
// (a power cut): the entry counts only if every block it maps holds matching data.
bool Pool::log_entry_data_intact(const LogEntry& e) {
  const std::uint32_t bs = superblock_.data_block_size;
  std::vector<std::byte> buf(bs);
  for (const LogMapping& m : e.mappings) {
    if (m.data_block >= data_sm_->nr_blocks()) return false;
    Status st = chunks_->read(space::data, m.data_block * bs, buf,
                              [&](std::span<const std::byte> b) { return data_checksum(b) == m.checksum; });
    if (!st) return false;
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

// Adds the chunks the records added, before any mapping is replayed (intent_log.h,
// invariant 3): so the data blocks they hold exist, and metadata the replay itself
// allocates cannot be placed where they lie. A record no flush covered may have been lost
// with the chunk before the one a later record adds: that chunk is left out too, and so
// are the writes into it (their blocks lie beyond the data space, so their data is not
// intact). Metadata lock held exclusively.
Status Pool::replay_chunks(const LogScan& scan, std::size_t usable) {
  for (std::size_t i = 0; i < usable; ++i) {
    const LogRecord& r = scan.records[i];
    for (const LogEntry& e : r.entries) {
      if (e.type != LogEntry::kind::chunk) continue;
      Status st = chunks_->add_chunk(e.chunk);
      if (!st && r.sequence < scan.durable)
        return corruption("cannot replay the intent log (record " + std::to_string(r.sequence) + "): " + st.message());
      if (st) took_chunk(e.chunk);
    }
  }
  return Status::ok();
}

// Reports what the scan found wrong. A flushed record that no copy holds loses writes a
// flush acknowledged: the pool opens read-only at the last point it can prove (the records
// before the hole), so that nothing is built on the gap and nobody mistakes it for the
// newest state. Returns how many records may be applied.
std::size_t Pool::judge_log_scan(const LogScan& scan) {
  const std::string& name = devices_[0]->name();
  for (const LogCopyProblem& p : scan.bad_copies) {
    if (p.durable) {
      spdlog::warn("{}: {}; the commit after opening drops the log", name, p.what);
      open_problems_.push_back(p.what);
    } else {
      spdlog::info("{}: {}", name, p.what);
    }
  }
  if (scan.lost.empty()) return scan.records.size();
  const std::uint64_t first = scan.lost.front();
  std::size_t before = 0;
  while (before < scan.records.size() && scan.records[before].sequence < first) ++before;
  const std::string lost = "intent log record " + std::to_string(first) + " after commit " +
                           std::to_string(superblock_.generation) +
                           ", which a flush had made durable, is damaged on every copy: the writes it held are "
                           "lost (" + std::to_string(scan.lost.size()) + " such records in all)";
  read_only_reason_ = lost + "; opened read-only with the " + std::to_string(before) +
                      " records before it applied and the " + std::to_string(scan.records.size() - before) +
                      " after it not (copy the data out, or run `snapstored repair` to go on without them)";
  spdlog::error("{}: {}", name, read_only_reason_);
  open_problems_.push_back(lost);
  options_.read_only = true;
  chunks_->set_repair(false);  // a read-only open writes nothing
  return before;
}

// At open, after load(): applies the records that follow the superblock's commit as the
// writes themselves did (same tree and space map changes), in memory. A writable open
// then commits them (Pool::open); a read-only one keeps them in memory only.
Status Pool::replay_log() {
  if (!(superblock_.incompat_features & incompat_intent_log) || superblock_.generation == 0)
    return Status::ok();
  auto scan = superblock_.version == 1
                  ? read_intent_log_v1(devices_, log_layout_, superblock_.pool_uuid, superblock_.generation)
                  : read_intent_log(devices_, log_layout_, superblock_.pool_uuid, superblock_.generation);
  if (!scan) return scan.status();
  log_found_ = !scan->records.empty() || !scan->bad_copies.empty();
  const std::size_t usable = judge_log_scan(*scan);
  std::unique_lock meta(meta_mutex_);
  SNAPSTORE_RETURN_IF_ERROR(replay_chunks(*scan, usable));
  std::uint64_t mapped = 0, skipped = 0;
  for (std::size_t i = 0; i < usable; ++i) {
    const LogRecord& r = scan->records[i];
    const bool flushed = r.sequence < scan->durable;
    for (const LogEntry& e : r.entries) {
      if (e.type == LogEntry::kind::chunk) continue;
      if (e.type == LogEntry::kind::map && !flushed && !log_entry_data_intact(e)) {
        skipped += e.mappings.size();
        continue;
      }
      Status st = apply_log_entry(e);
      if (!st)
        return Status(st.code(), "cannot replay the intent log (record " + std::to_string(r.sequence) +
                                     "): " + st.message());
      mapped += e.mappings.size();
    }
  }
  log_pending_.clear();
  log_replayed_ = usable;
  if (skipped > 0)
    spdlog::warn("intent log: {} block mappings of writes no flush covered are dropped: their data did not "
                 "reach the device (a power cut)", skipped);
  if (log_replayed_ > 0) {
    dirty_ = true;
    spdlog::info("intent log: replayed {} records ({} block mappings) after generation {}", log_replayed_, mapped,
                 superblock_.generation);
  }
  return Status::ok();
}

}  // namespace snapstore
