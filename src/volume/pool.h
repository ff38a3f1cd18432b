// Pool: the exception store. Volumes, their mapping trees and the data they point to,
// over the persistent-data layers, in one pool on one or more devices.
//
// Invariants:
//  1. Data is written out of place (redirect-on-write): a write goes to a newly
//     allocated data block and only then is the mapping switched, so a crash leaves
//     either the old block (still intact, still matching its checksum) or the new one.
//  2. A data block released in the open transaction is not reused before it commits, and
//     a reader that looked a block up holds the metadata lock until its data I/O is done,
//     so no commit can recycle a block under a read.
//  3. commit() writes everything the transaction changed, flushes, then writes the
//     superblock and flushes again. Concurrent flushes share one commit. If a commit
//     fails the pool turns read-only for good (failure() says why) and writes nothing more.
//     A commit never includes data blocks that a write has taken but not yet mapped
//     (WriteGate), so a crash cannot leak them. Writes wait only for the commit proper:
//     after much written data, the devices are first flushed while writes go on.
//     Besides the timer, a background commit starts early once overwrites have released
//     more data blocks than are still available (PoolOptions::early_commit).
//  4. Writes that need space fail with no_space when the pool is full; reads, flushes and
//     unmaps go on working, and unmapping gives space back. Device space for one more
//     metadata chunk and a reserve of metadata blocks are kept so that a commit, and an
//     unmap after ENOSPC, can always complete. Data chunks also leave the metadata room to
//     grow to about twice what is in use, so that one transaction can shadow all of it
//     (metadata_room_to_keep): a full pool commits for want of data blocks, not metadata.
//     A write larger than the free room goes in pieces with commits between them, so it
//     needs room for a piece at a time, not for itself beside all it replaces (pool_io.cpp,
//     write_blocks). Every no_space answered to a client is logged, rate-limited.
//  5. Locking: one reader/writer metadata lock (lookups and data reads shared; space map
//     and tree changes exclusive), plus striped locks that order concurrent writes to the
//     same block region so read-modify-write of partial blocks never loses an update.
//  6. Volumes share data by sharing tree nodes (snapshot = clone of the root). A deleted
//     volume keeps its record, nameless, until the reclaim thread has released its tree
//     in bounded steps (each under the metadata lock for a short while, inside ordinary
//     transactions), so deletion returns at once and reclaim resumes after a restart.
//     Reclaim only gives space back, so its steps may use the metadata reserve: it makes
//     progress on a pool whose metadata is full (pool_reclaim.cpp says how far it may go).
//  7. Every volume management call commits before it returns.
//  8. Every change (write, trim, zeroing) is in an intent log record (intent_log.h) before
//     it is acknowledged, so the death of the process loses none; flush() makes every
//     change acknowledged before it durable by flushing the devices once, when the log
//     holds them (nothing it cannot carry, a volume change, happened since the last
//     commit, and it has room); otherwise by a commit. commit() always commits, and
//     empties the log. Opening a pool replays the log's records of its commit, then (when
//     writable) commits at once.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <set>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "btree/data_space_map.h"
#include "store/superblock_set.h"
#include "volume/intent_log.h"
#include "volume/rate_limit.h"
#include "snapstore/volume.h"
#include "volume/volume_record.h"

namespace snapstore {

// WriteGate: writes between taking data blocks and mapping them, versus commits.
// A commit must not persist blocks that a write has allocated but not yet mapped (a
// crash after that commit would leak them), so it closes the gate, waits until no write
// is inside, commits, and opens it again. Writes arriving meanwhile wait (a commit is
// not starved by a stream of writes).
class WriteGate {
 public:
  void enter();
  void leave();
  void close();
  void open();

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  unsigned inside_ = 0;
  bool closed_ = false;
};

struct FormatOptions {
  std::uint64_t origin_size = 0;  // bytes; 0: origin_size_for_devices(total device size)
  std::uint32_t data_block_size = 4096;
  profile metadata_profile = profile::dup;
  profile data_profile = profile::single;
  // Bytes; 0: chosen from the total device size (1 MiB to 1 GiB). Otherwise a power of two
  // from 256 KiB (64 metadata blocks: the reserve and the first trees fit in one chunk) to
  // 1 GiB, and a multiple of the data block size. Tests use small chunks to play pools
  // that hold many chunks on small devices.
  std::uint64_t chunk_size = 0;
};

struct PoolOptions {
  std::uint64_t cache_bytes = 64ull << 20;
  std::chrono::milliseconds commit_interval{1000};
  // Commit in the background, before the interval is up, once overwrites have released
  // more data blocks than are still available. false: commits only on the timer and where
  // the caller asks (tests that count or place commits).
  bool early_commit = true;
  bool read_only = false;
  bool background_reclaim = true;  // false: only reclaim() releases deleted trees (tests)
  // A write, unmap or write of zeroes refused for want of space is logged (a warning with
  // the volume and the space left) at most once per interval; the rest are counted.
  std::chrono::milliseconds no_space_log_interval{5000};
};

struct PoolStats {
  std::uint64_t generation = 0;
  std::uint32_t data_block_size = 0;
  std::uint64_t data_blocks = 0, data_blocks_free = 0;
  std::uint64_t data_blocks_available = 0;  // free, plus what the data space may grow into
  std::uint64_t metadata_blocks = 0, metadata_blocks_free = 0;
  std::uint64_t device_bytes = 0, unallocated_bytes = 0;
  CacheStats cache;
  ChunkMapStats copies;
  std::uint64_t commits = 0;
  std::uint64_t commit_us_total = 0;  // time writes waited for commits, µs
  std::uint64_t last_commit_us = 0;
  std::uint64_t log_appends = 0;   // intent log records written (changes and markers)
  std::uint64_t log_bytes = 0;     // bytes of those records (one copy)
  std::uint64_t log_flushes = 0;   // flushes made durable by the log, without a commit
  std::uint64_t log_replayed = 0;  // records replayed when the pool was opened
  std::string failure;  // empty unless the pool turned read-only after a failed commit
  // Why the pool was opened read-only although a writable open was asked for (damage
  // found at open), or empty.
  std::string read_only_reason;
  // Damage found, in words: at open (superblock copies, intent log records, space maps,
  // the volume table; a writable open rewrites bad superblock copies at once) and since
  // (volumes with blocks unreadable on every copy, trees reclaim could not read).
  std::vector<std::string> damage;
  // Background reclaim of deleted volumes (and of trees replaced by a rollback).
  std::uint64_t reclaim_pending_volumes = 0;  // trees not yet fully released
  std::uint64_t reclaim_pending_blocks = 0;   // mapped blocks those trees still name (upper bound)
  std::uint64_t reclaim_released_blocks = 0;  // data block references dropped since open
};

// Space a volume takes. mapped = exclusive + shared, each a multiple of the block size.
struct VolumeUsage {
  std::uint64_t mapped_bytes = 0;     // bytes of the volume backed by a data block
  std::uint64_t exclusive_bytes = 0;  // space that deleting this volume would give back
  std::uint64_t shared_bytes = 0;     // mapped bytes whose data other volumes use too
};

// Per-volume I/O counters since the daemon started (not persisted).
struct VolumeIoStats {
  std::uint64_t reads = 0, read_bytes = 0;
  std::uint64_t writes = 0, write_bytes = 0;
  std::uint64_t trims = 0, zeroes = 0, flushes = 0;
  std::uint64_t errors = 0;
};

// The live counters behind VolumeIoStats, bumped by PoolVolume without any pool lock.
struct VolumeIoCounters {
  std::atomic<std::uint64_t> reads{0}, read_bytes{0}, writes{0}, write_bytes{0};
  std::atomic<std::uint64_t> trims{0}, zeroes{0}, flushes{0}, errors{0};
};

// Flag of an extent in a diff: the range differs between the two volumes.
inline constexpr std::uint32_t extent_changed = 1u << 0;

// Room for metadata beside a fully written origin: a pool file made for an origin of
// `origin_size` bytes is this big, so that the origin can be filled completely.
std::uint64_t pool_file_size_for(std::uint64_t origin_size);
// The origin size a pool on `device_bytes` of devices gets by default (the inverse).
std::uint64_t origin_size_for_devices(std::uint64_t device_bytes);

class Pool {
 public:
  static Status format(const std::vector<BlockDevicePtr>& devices, const FormatOptions& options);
  static Result<std::unique_ptr<Pool>> open(std::vector<BlockDevicePtr> devices,
                                            const PoolOptions& options);
  ~Pool();
  // Commits and stops background work. Returns the commit's status.
  Status close();

  std::vector<VolumeRecord> volumes() const;
  Result<VolumeRecord> find_volume(std::string_view name) const;
  Result<VolumeRecord> find_volume(std::uint64_t id) const;  // live volumes only
  std::uint32_t data_block_size() const { return superblock_.data_block_size; }
  bool read_only() const { return options_.read_only || !failure().is_ok(); }
  Status failure() const;
  PoolStats stats();

  // Volume I/O. The caller (PoolVolume) has checked ranges against the volume's size.
  Status read(std::uint64_t volume, std::uint64_t offset, std::span<std::byte> out);
  Status write(std::uint64_t volume, std::uint64_t offset, std::span<const std::byte> data,
               bool fua);
  // Unmaps the range. Partial blocks at its edges are zeroed; on a full pool that may be
  // impossible, which fails the call only if edges_required (a trim may leave them).
  Status unmap(std::uint64_t volume, std::uint64_t offset, std::uint64_t length, bool fua,
               bool edges_required = true);
  Status write_zeroes(std::uint64_t volume, std::uint64_t offset, std::uint64_t length, bool fua);
  Result<std::vector<Extent>> block_status(std::uint64_t volume, std::uint64_t offset,
                                           std::uint64_t length);
  // Makes every acknowledged write durable (invariant 8): an intent log record when it
  // can, else a commit.
  Status flush();
  // Commits the open transaction (a no-op when nothing changed).
  Status commit();

  // Volume management. Each call validates its names, changes the pool in one
  // transaction and commits it before returning, so an acknowledged call survives a
  // crash. Names are unique among live volumes (validate_volume_name).
  //
  // A snapshot is an O(1) clone of the source's mapping tree: it holds exactly the writes
  // the source acknowledged before the call and none after. Snapshots of snapshots work
  // the same way; parent names the source (0 once the source is deleted).
  Result<VolumeRecord> create_snapshot(std::string_view source, std::string_view name,
                                       bool read_only);
  Result<VolumeRecord> create_volume(std::string_view name, std::uint64_t size);
  // Removes the volume at once; its tree is released in the background (reclaim).
  // Descendants live on.
  Status delete_volume(std::string_view name);
  Status rename_volume(std::string_view from, std::string_view to);
  // The volume's tree becomes a clone of the snapshot's (O(1)); it takes the snapshot's
  // size; its old tree is reclaimed in the background.
  Status rollback(std::string_view volume, std::string_view snapshot);
  // Growing adds holes; shrinking unmaps everything past the new end.
  Status resize_volume(std::string_view name, std::uint64_t size);

  Result<VolumeUsage> usage(std::uint64_t volume);
  VolumeIoStats io_stats(std::uint64_t volume) const;
  std::shared_ptr<VolumeIoCounters> io_counters(std::uint64_t volume);
  // Describes a prefix of [offset, offset + length) of volume a as extents flagged
  // extent_changed where a differs from b (by mapping; a range past b's end counts as
  // changed unless a holds a hole there). Derived from the trees: shared subtrees are
  // skipped without reading them.
  Result<std::vector<Extent>> diff(std::uint64_t a, std::uint64_t b, std::uint64_t offset,
                                   std::uint64_t length);

  // Runs up to max_steps reclaim steps now (each bounded as in the background) and
  // commits; returns how many deleted trees are still pending.
  Result<std::uint64_t> reclaim(std::uint64_t max_steps = ~0ull);

  // For the checker and tests.
  TransactionManager& transaction_manager() { return *tm_; }
  ChunkMap& chunk_map() { return *chunks_; }
  const Superblock& superblock() const { return superblock_; }

 private:
  Pool(std::vector<BlockDevicePtr> devices, PoolOptions options);
  Status load(const Superblock& sb);
  // Damage containment (pool_damage.cpp).
  void note_damage(std::uint64_t volume, const Status& why);
  bool is_damaged(std::uint64_t volume) const;
  VolumeRecord with_damage(VolumeRecord r) const;
  void record_damage_locked();
  void force_read_only(const std::string& reason);
  void load_space_maps(const Superblock& sb);
  Status load_volume_table();
  void take_superblock_scan(const SuperblockScan& scan);
  void upgrade_format();
  Status rewrite_superblocks();
  Status init_fresh(const Superblock& sb, const FormatOptions& options);
  void start_timer();
  void request_early_commit_if_short();  // metadata lock held exclusively
  // Data blocks free now, plus those the data space may still grow into on the devices.
  std::uint64_t data_blocks_available() const;

  struct VolumeState {
    VolumeRecord record;
    bool dirty = false;  // mapping root or record changed in the open transaction
    // Has shared blocks with another volume at some point (snapshot source or copy,
    // rollback): its writes may change other volumes' exclusive space.
    bool may_share = false;
    // Cached exclusive block count, valid while usage_valid and the sharing epoch it
    // was computed in is current (usage_mutex_ guards both).
    bool usage_valid = false;
    std::uint64_t usage_epoch = 0;
    std::uint64_t exclusive_blocks = 0;
  };
  struct Mapped {
    std::uint64_t block;  // volume block number
    MappingValue value;
  };

  Status check_writable() const;
  Result<VolumeState*> volume_state(std::uint64_t id);  // live volumes only
  Result<VolumeState*> live_volume(std::string_view name);
  // Marks a volume's record or tree changed in the open transaction.
  void mark_changed(std::uint64_t id, VolumeState& v);
  Status check_new_name(std::string_view name) const;
  // Data blocks with keys in [begin, end) under node that only this tree holds: reached
  // through nodes of reference count 1, with a data reference count of 1.
  Result<std::uint64_t> exclusive_blocks(const BlockPointer& node, std::uint64_t begin = 0,
                                         std::uint64_t end = ~0ull);
  // Reclaim (pool_reclaim.cpp). A step releases part of one deleted tree; no_room: the
  // metadata space has too little room above reclaim_floor() for a step until a commit.
  enum class ReclaimStep { nothing_to_do, progressed, no_room };
  Result<ReclaimStep> reclaim_step();
  Result<ReclaimStep> remove_volume_record(std::uint64_t id);
  Result<ReclaimStep> drop_unreadable_tree(std::uint64_t id, const Status& why);
  Status check_mapping_change(std::uint64_t volume, const VolumeState& v, std::uint64_t first,
                              std::uint64_t last, bool removal);
  std::uint64_t reclaim_floor() const;
  Result<std::uint64_t> record_removal_bound();
  bool reclaim_should_commit();
  Result<bool> reclaim_once();  // a step and the commits it needs; false: nothing to do
  std::chrono::microseconds reclaim_round(std::chrono::microseconds& backoff);
  void reclaim_loop();
  void wake_reclaim();  // work for reclaim (a delete, a rollback)
  Status sync(bool full);
  Status commit_locked();
  // Intent log (pool_log.cpp). log_map/log_unmap record a mapping change (metadata lock
  // held exclusively); log_changes appends what is recorded before a write is acknowledged;
  // append_log is a flush's part (commit_mutex_ held): true when the log made the changes
  // durable (or there were none), false when a commit is needed.
  void log_map(std::uint64_t volume, std::uint64_t first, std::span<const std::uint64_t> blocks,
               std::span<const std::uint64_t> sums);
  void log_unmap(std::uint64_t volume, std::uint64_t first, std::uint64_t end);
  void log_chunk(const Chunk& chunk);
  void stop_logging_if_too_big();
  Status log_changes();
  Result<bool> append_log();
  Result<bool> append_pending_locked();  // log_mutex_ held, as for the next two
  Status write_record_locked(std::uint64_t position, std::span<const std::byte> record);
  Result<bool> write_marker_locked();
  void request_early_commit();
  void reset_log_after_commit();
  Status replay_log();
  std::size_t judge_log_scan(const LogScan& scan);
  Status apply_log_entry(const LogEntry& e);
  Status replay_chunks(const LogScan& scan, std::size_t usable);
  bool log_entry_data_intact(const LogEntry& e);
  // Maps blocks [first, ...) of v to new data blocks; releases the old ones. Metadata
  // lock held exclusively.
  Status map_blocks_locked(std::uint64_t volume, VolumeState& v, std::uint64_t first,
                           std::span<const std::uint64_t> blocks, std::span<const std::uint64_t> sums);
  Status write_superblocks(std::uint64_t gen, const BlockPointer& volume_table,
                           const BlockPointer& data_sm_index,
                           std::vector<SmIndexPointer> metadata_sm_index);
  Status fail(Status why);
  Status grow_metadata();
  void took_chunk(const Chunk& chunk);
  Status grow_data();
  std::uint64_t metadata_room_to_keep() const;
  Result<std::vector<std::uint64_t>> allocate_some_data(std::size_t max);
  Status release_data(const std::vector<std::uint64_t>& blocks);
  Status ensure_metadata_headroom(std::uint64_t data_blocks);
  Status unmap_blocks(std::uint64_t volume, std::uint64_t first, std::uint64_t end);
  Status unmap_blocks_locked(std::uint64_t volume, std::uint64_t first, std::uint64_t end);
  Status lookup_range(VolumeState& v, std::uint64_t first, std::uint64_t count,
                      std::vector<Mapped>& out);
  Status read_blocks_locked(VolumeState& v, std::uint64_t first, std::uint64_t count,
                            std::byte* out);
  Status write_range(std::uint64_t volume, std::uint64_t offset,
                     std::span<const std::byte> data);
  Status unmap_range(std::uint64_t volume, std::uint64_t offset, std::uint64_t length,
                     bool edges_required);
  Status report_no_space(Status st, std::uint64_t volume, std::string_view request,
                         std::uint64_t offset, std::uint64_t length);
  Status write_blocks(std::uint64_t volume, std::uint64_t first, std::span<const std::byte> data);
  Status check_room(std::uint64_t volume, std::uint64_t first, std::uint64_t count);
  // Enters the write gate with the blocks it returns; the caller leaves it.
  Result<std::vector<std::uint64_t>> take_data_blocks(std::size_t want);
  Result<std::size_t> write_piece(std::uint64_t volume, std::uint64_t first,
                                  std::span<const std::byte> data,
                                  std::span<const std::uint64_t> sums);
  Status write_data_runs(const std::vector<std::uint64_t>& blocks, std::span<const std::byte> data);
  Status remap(std::uint64_t volume, std::uint64_t first, const std::vector<std::uint64_t>& blocks,
               std::span<const std::uint64_t> sums);
  Status commit_if_needed(bool fua);
  Result<bool> make_room(std::uint64_t commits_seen);
  static constexpr int max_room_attempts = 4;  // allocations tried by one write
  struct RegionGuard {
    std::unique_lock<std::mutex> first, second;
  };
  std::mutex& region_mutex(std::uint64_t volume, std::uint64_t block);
  RegionGuard lock_regions(std::uint64_t volume, std::uint64_t first, std::uint64_t last);
  Status write_partial(std::uint64_t volume, std::uint64_t offset, std::span<const std::byte> data);

  std::vector<BlockDevicePtr> devices_;
  PoolOptions options_;
  Superblock superblock_;
  std::unique_ptr<ChunkMap> chunks_;
  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<MetadataSpaceMap> metadata_sm_;
  std::unique_ptr<TransactionManager> tm_;
  std::unique_ptr<DataSpaceMap> data_sm_;
  std::unique_ptr<BTree> mappings_;
  std::unique_ptr<BTree> volume_table_;
  BlockPointer volume_table_root_;
  std::map<std::uint64_t, VolumeState> volumes_;     // live and deleted (awaiting reclaim)
  std::map<std::string, std::uint64_t, std::less<>> names_;  // live volumes by name
  std::set<std::uint64_t> dirty_volumes_;            // volumes_[id].dirty
  std::set<std::uint64_t> deleted_volumes_;          // trees awaiting reclaim
  std::uint64_t sharing_epoch_ = 1;                  // bumped when sharing may have changed
  std::mutex usage_mutex_;
  std::atomic<std::uint64_t> reclaim_released_{0};
  mutable std::mutex io_mutex_;
  std::map<std::uint64_t, std::shared_ptr<VolumeIoCounters>> io_;

  mutable std::shared_mutex meta_mutex_;
  std::mutex commit_mutex_;
  WriteGate write_gate_;
  std::atomic<bool> dirty_{false};
  // Data bytes written since the last look: while above prewrite_threshold, a commit
  // flushes the devices before it stops writes, up to max_prewrite_rounds (see sync()).
  std::atomic<std::uint64_t> data_bytes_since_commit_{0};
  static constexpr std::uint64_t prewrite_threshold = 4 << 20;
  static constexpr int max_prewrite_rounds = 3;
  // Set when overwrites have released more data blocks than are still available: the timer
  // thread commits at once instead of waiting for its interval (or a writer for ENOSPC).
  std::atomic<bool> early_commit_requested_{false};
  std::atomic<std::uint64_t> flush_requests_{0};
  std::uint64_t flushes_covered_ = 0;  // flush tickets made durable (commit or log)
  std::uint64_t commits_covered_ = 0;  // ... by a commit
  // Intent log (pool_log.cpp has the lock rules). Pending entries, whether the open
  // transaction holds a change the log cannot carry, and the count of changes recorded
  // are guarded by meta_mutex_; where the log ends and what it has made durable by
  // log_mutex_ (taken after commit_mutex_, before meta_mutex_).
  LogLayout log_layout_;
  LogBuffer log_pending_;
  bool log_blocked_ = false;
  std::atomic<std::uint64_t> log_added_{0};  // mapping changes recorded since open
  std::mutex log_mutex_;
  std::uint64_t log_written_ = 0;   // changes of log_added_ appended or committed
  std::uint64_t log_position_ = 0;  // where the next record goes
  std::uint64_t log_sequence_ = 0;  // the next record's sequence
  std::uint64_t log_durable_ = 0;   // records below this sequence were flushed
  std::uint64_t log_marked_ = 0;    // the largest durable mark written in a record
  std::atomic<std::uint64_t> log_appends_{0}, log_bytes_{0}, log_flushes_{0};
  std::uint64_t log_replayed_ = 0;
  bool log_found_ = false;  // the open found records (or damaged ones) of its commit
  std::uint64_t commits_ = 0;
  std::atomic<std::uint64_t> commit_us_total_{0};
  std::atomic<std::uint64_t> last_commit_us_{0};
  mutable std::mutex failure_mutex_;
  Status failure_;
  std::array<std::mutex, 64> region_locks_;
  mutable std::mutex damage_mutex_;
  std::map<std::uint64_t, std::string> damaged_;  // volumes found damaged, and why (damage_mutex_)
  std::vector<std::string> runtime_problems_;      // damage found since open (damage_mutex_)
  std::unique_ptr<SuperblockWriter> sb_writer_;  // used under commit_mutex_
  std::vector<std::string> open_problems_;        // constant after open
  std::string read_only_reason_;                  // constant after open
  RateLimit no_space_log_{options_.no_space_log_interval};  // report_no_space

  std::mutex timer_mutex_;
  std::condition_variable timer_cv_;
  bool stopping_ = false;
  std::thread timer_;
  std::condition_variable reclaim_cv_;
  bool reclaim_wakeup_ = false;  // guarded by timer_mutex_ (wake_reclaim)
  std::thread reclaim_;
};

}  // namespace snapstore
