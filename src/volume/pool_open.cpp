// Pool life cycle: format, open, background commits, close. See pool.h.
#include <spdlog/spdlog.h>

#include <chrono>
#include <random>

#include "volume/pool.h"

namespace snapstore {

namespace {

constexpr std::uint64_t min_device_size = 8ull << 20;

std::uint64_t choose_chunk_size(std::uint64_t total) {
  std::uint64_t size = 1ull << 20;
  while (size * 2 <= total / 256 && size < (1ull << 30)) size *= 2;
  return size;
}

Uuid random_uuid() {
  std::random_device rd;
  Uuid u;
  for (auto& b : u) b = static_cast<std::uint8_t>(rd());
  u[6] = static_cast<std::uint8_t>((u[6] & 0x0f) | 0x40);
  u[8] = static_cast<std::uint8_t>((u[8] & 0x3f) | 0x80);
  return u;
}

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// The reserved area of a new pool: ring A, the intent log's copies, ring B (superblock.h).
// Every acknowledged change appends to the log (pool_log.cpp) and a log three quarters
// full asks for a commit, so the log gets about 1/128 of the devices: at least 384 KiB and
// at most 16 MiB a copy (16 MiB holds 4 KiB writes for about two seconds at 100,000 a
// second in records of 4: 60 bytes a write; a 1 GiB pool gets 8 MiB).
void set_format2_geometry(Superblock& sb, std::uint64_t total, std::size_t devices) {
  sb.version = format_version;
  sb.log_copies = devices == 1 && sb.metadata_profile != profile::single ? 2 : 1;
  const std::uint64_t target = std::clamp<std::uint64_t>(total / 128 / 65536 * 65536, 384 << 10, 16 << 20);
  const std::uint64_t need = 2 * superblock_ring_bytes + sb.log_copies * target;
  sb.reserved_bytes = (need + device_reserved_bytes - 1) / device_reserved_bytes * device_reserved_bytes;
  sb.log_copy_bytes = (sb.reserved_bytes - 2 * superblock_ring_bytes) / sb.log_copies / 4096 * 4096;
}

// The metadata reserve of a space of `nr` blocks: blocks only commits and unmaps may take
// (MetadataSpaceMap invariant 3).
std::uint64_t metadata_reserve_for(std::uint64_t nr) {
  return std::clamp<std::uint64_t>(nr / 16, 32, 1024);
}

}  // namespace

// The allowance holds the metadata (two copies) and the room redirect-on-write needs for
// a transaction's overwrites before their old blocks come back at the commit: measured
// with a fully written origin, an allowance of size/16 left so little room that nearly
// every write forced a commit (bench run 2: 1 MiB writes at 0.04x nbdkit-file). Of a
// 1 GiB origin's 160 MiB, the metadata with room to be rewritten in one transaction
// (metadata_room_to_keep) takes 64 MiB (8,192 blocks, two copies) and data keeps ~92 MiB
// beyond the origin (measured: pool_bench 1024 seqwrite:3000 randwrite:30000).
std::uint64_t pool_file_size_for(std::uint64_t origin_size) {
  const std::uint64_t allowance = origin_size / 8 + (32ull << 20);
  return (origin_size + allowance + (1 << 20) - 1) / (1 << 20) * (1 << 20);
}

std::uint64_t origin_size_for_devices(std::uint64_t device_bytes) {
  if (device_bytes <= (32ull << 20)) return device_bytes / 2 / (1 << 20) * (1 << 20);
  return (device_bytes - (32ull << 20)) / 9 * 8 / (1 << 20) * (1 << 20);
}

Pool::Pool(std::vector<BlockDevicePtr> devices, PoolOptions options)
    : devices_(std::move(devices)), options_(options) {}

Pool::~Pool() {
  Status st = close();
  if (!st) spdlog::error("pool close: {}", st.to_string());
}

Status Pool::format(const std::vector<BlockDevicePtr>& devices, const FormatOptions& options) {
  if (devices.empty() || devices.size() > max_devices)
    return invalid_argument("a pool has 1 to 32 devices");
  const std::uint32_t bs = options.data_block_size;
  if (bs < 4096 || bs > (1u << 20) || (bs & (bs - 1)) != 0)
    return invalid_argument("the data block size must be a power of two from 4 KiB to 1 MiB");
  std::uint64_t total = 0;
  Superblock sb;
  for (const auto& d : devices) {
    if (d->size() < min_device_size)
      return invalid_argument(d->name() + " is too small for a pool (at least 8 MiB)");
    total += d->size();
    sb.devices.push_back({random_uuid(), d->size()});
  }
  sb.pool_uuid = random_uuid();
  sb.data_block_size = bs;
  const std::uint64_t cs = options.chunk_size;
  if (cs != 0 && (cs < (256 << 10) || cs > (1ull << 30) || (cs & (cs - 1)) != 0 || cs % bs != 0))
    return invalid_argument(
        "the chunk size must be a power of two from 256 KiB to 1 GiB and a "
        "multiple of the data block size");
  sb.chunk_size = cs != 0 ? cs : std::max<std::uint64_t>(choose_chunk_size(total), bs);
  sb.metadata_profile = options.metadata_profile;
  sb.data_profile = options.data_profile;
  sb.created = now_ns() / 1000000000;
  sb.incompat_features = incompat_intent_log;
  set_format2_geometry(sb, total, devices.size());
  const std::vector<std::byte> zeroes(superblock_size);
  for (const auto& d : devices)  // an old pool's superblocks must not outlive the format
    for (ring r : {ring::a, ring::b})
      for (std::uint32_t parity = 0; parity < 2; ++parity)
        SNAPSTORE_RETURN_IF_ERROR(d->write(slot_offset(r, parity, sb.reserved_bytes), zeroes));
  Pool pool(devices, PoolOptions{});
  FormatOptions resolved = options;
  if (resolved.origin_size == 0) resolved.origin_size = origin_size_for_devices(total);
  if (Status st = pool.init_fresh(sb, resolved); !st) {
    pool.options_.read_only = true;  // half built: its destructor must not try to commit it
    return st;
  }
  return pool.close();
}

Result<std::unique_ptr<Pool>> Pool::open(std::vector<BlockDevicePtr> devices,
                                         const PoolOptions& options) {
  if (devices.empty()) return invalid_argument("no devices");
  auto scan = read_superblocks(devices);
  if (!scan) return scan.status();
  const Superblock& sb = scan->newest;
  if (sb.devices.size() != devices.size())
    return invalid_argument("the pool has " + std::to_string(sb.devices.size()) +
                            " devices; " + std::to_string(devices.size()) + " were given");
  for (std::size_t i = 0; i < devices.size(); ++i)
    if (devices[i]->size() < sb.devices[i].size)
      return corruption(devices[i]->name() + " is smaller than the pool expects (truncated?)");
  PoolOptions opts = options;
  if (sb.ro_compat_features & ~known_ro_compat_features) {
    spdlog::warn("pool has features this snapstored can only read; opening read-only");
    opts.read_only = true;
  }
  std::unique_ptr<Pool> pool(new Pool(std::move(devices), opts));
  pool->take_superblock_scan(*scan);
  SNAPSTORE_RETURN_IF_ERROR(pool->load(sb));
  SNAPSTORE_RETURN_IF_ERROR(pool->replay_log());
  if (!pool->options_.read_only) {
    // Replayed records become part of a commit before anything new is written; damaged
    // or old-format superblock copies are rewritten whole, both pairs of slots.
    if (scan->needs_rewrite) {
      SNAPSTORE_RETURN_IF_ERROR(pool->rewrite_superblocks());
    } else if (pool->log_found_ || !(sb.incompat_features & incompat_intent_log)) {
      // Even if nothing was replayed: the log starts afresh after a commit (and a pool made
      // before the log existed gets it with that commit).
      pool->dirty_ = true;
      SNAPSTORE_RETURN_IF_ERROR(pool->commit());
    }
    pool->start_timer();
    if (opts.background_reclaim)
      pool->reclaim_ = std::thread([p = pool.get()] { p->reclaim_loop(); });
  }
  return pool;
}

// Logs what the scan found wrong with the superblock copies and keeps it for status. A
// commit newer than the one found may be lost on every copy: the pool is opened read-only
// (superblock_set.h, rule 3), so that nothing is written over what may be left of it and
// nobody mistakes the older state for the newest.
void Pool::take_superblock_scan(const SuperblockScan& scan) {
  const std::string& name = devices_[0]->name();
  for (const CopyProblem& p : scan.problems) {
    spdlog::warn("{}: {}; the next commit rewrites it", name, p.what);
    open_problems_.push_back(p.what);
  }
  if (scan.newest.version < format_version)
    spdlog::info("{}: format {} pool: the first commit upgrades it to format {}", name, scan.newest.version,
                 format_version);
  if (!scan.newer_commit_lost.empty()) {
    read_only_reason_ = scan.newer_commit_lost +
                        "; opened read-only at commit " + std::to_string(scan.newest.generation) +
                        " (copy the data out, or run `snapstored repair` to go on from this commit)";
    spdlog::error("{}: {}", name, read_only_reason_);
    open_problems_.push_back(scan.newer_commit_lost);
    options_.read_only = true;
  }
}

// A format 1 pool takes format 2 here: ring B at the end of its 1 MiB reserved area and
// the intent log between the rings. Called after the log was replayed (it is read with
// the old layout) and before the commit that writes the first format 2 copies.
void Pool::upgrade_format() {
  Superblock& sb = superblock_;
  sb.version = format_version;
  sb.reserved_bytes = device_reserved_bytes;
  sb.log_copy_bytes = (sb.reserved_bytes - 2 * superblock_ring_bytes) / sb.log_copies / 4096 * 4096;
  log_layout_ = LogLayout::for_superblock(sb);
}

// Two commits, each writing its pair of slots whole: afterwards every copy in both pairs
// is valid and of the current format.
Status Pool::rewrite_superblocks() {
  if (superblock_.version < format_version) upgrade_format();
  for (int i = 0; i < 2; ++i) {
    dirty_ = true;
    SNAPSTORE_RETURN_IF_ERROR(commit());
  }
  spdlog::info("{}: every superblock copy rewritten at commit {}", devices_[0]->name(), superblock_.generation);
  return Status::ok();
}

Status Pool::init_fresh(const Superblock& sb, const FormatOptions& options) {
  superblock_ = sb;
  superblock_.generation = 0;
  chunks_ = std::make_unique<ChunkMap>(devices_, sb.chunk_size, std::vector<Chunk>{}, sb.reserved_bytes);
  for (space s : {space::metadata, space::data}) {
    auto chunk = chunks_->allocate_chunk(s, s == space::metadata ? sb.metadata_profile : sb.data_profile);
    if (!chunk) return chunk.status();
  }
  blocks_ = std::make_unique<BlockManager>(*chunks_, options_.cache_bytes);
  metadata_sm_ = std::make_unique<MetadataSpaceMap>(
      chunks_->space_bytes(space::metadata) / metadata_block_size);
  tm_ = std::make_unique<TransactionManager>(*blocks_, *metadata_sm_, [this] { return grow_metadata(); }, 1);
  auto dsm_root = DataSpaceMap::create_index(*tm_);
  if (!dsm_root) return dsm_root.status();
  data_sm_ = std::make_unique<DataSpaceMap>(*tm_, *dsm_root,
                                            chunks_->space_bytes(space::data) / sb.data_block_size);
  SNAPSTORE_RETURN_IF_ERROR(load(superblock_));
  VolumeRecord origin;
  origin.id = superblock_.next_volume_id++;
  origin.name = "origin";
  origin.size = options.origin_size / sb.data_block_size * sb.data_block_size;
  origin.created_ns = now_ns();
  origin.generation = 1;
  auto root = mappings_->create();
  if (!root) return root.status();
  origin.mapping = *root;
  volumes_[origin.id].record = origin;
  names_[origin.name] = origin.id;
  mark_changed(origin.id, volumes_[origin.id]);
  return Status::ok();
}

// Builds the in-memory state from a superblock; a fresh pool has its parts already.
Status Pool::load(const Superblock& sb) {
  superblock_ = sb;
  log_layout_ = LogLayout::for_superblock(sb);
  if (!sb_writer_) sb_writer_ = std::make_unique<SuperblockWriter>(devices_);
  if (!chunks_) {
    chunks_ = std::make_unique<ChunkMap>(devices_, sb.chunk_size, sb.chunks, sb.reserved_bytes);
    if (options_.read_only) chunks_->set_repair(false);  // a read-only open writes nothing
    blocks_ = std::make_unique<BlockManager>(*chunks_, options_.cache_bytes);
    load_space_maps(sb);
  }
  const std::uint64_t nr = metadata_sm_->nr_blocks();
  metadata_sm_->set_reserve(metadata_reserve_for(nr));
  DataSpaceMap* dsm = data_sm_.get();
  mappings_ = std::make_unique<BTree>(
      *tm_, ValueTraits{mapping_value_size,
                        [dsm](std::span<const std::byte> v) { return dsm->inc(decode_mapping(v).data_block); },
                        [dsm](std::span<const std::byte> v) { return dsm->dec(decode_mapping(v).data_block); },
                        nullptr});
  TransactionManager* tm = tm_.get();
  volume_table_ = std::make_unique<BTree>(
      *tm_, ValueTraits{volume_record_size,
                        [tm](std::span<const std::byte> v) {
                          tm->inc(decode_pointer(v.data()).block);
                          return Status::ok();
                        },
                        nullptr, nullptr});
  if (sb.generation == 0) {  // fresh: no tables on disk yet
    auto root = volume_table_->create();
    if (!root) return root.status();
    volume_table_root_ = *root;
    return Status::ok();
  }
  volume_table_root_ = sb.volume_table;
  SNAPSTORE_RETURN_IF_ERROR(load_volume_table());
  // Which volumes shared blocks before is not recorded: with more than one tree in the
  // pool, any of them may share.
  if (volumes_.size() > 1)
    for (auto& [id, v] : volumes_) v.may_share = true;
  return Status::ok();
}

void Pool::start_timer() {
  timer_ = std::thread([this] {
    std::unique_lock lock(timer_mutex_);
    while (!stopping_) {
      timer_cv_.wait_for(lock, options_.commit_interval,
                         [this] { return stopping_ || early_commit_requested_.load(); });
      if (stopping_) break;
      lock.unlock();
      if (dirty_ && failure().is_ok()) {
        Status st = commit();
        if (!st) spdlog::error("background commit failed: {}", st.to_string());
      }
      // Answered (a failed commit leaves the request set; a write still short of room
      // asks again at its next allocation).
      early_commit_requested_ = false;
      lock.lock();
    }
  });
}

Status Pool::close() {
  {
    std::lock_guard lock(timer_mutex_);
    stopping_ = true;
  }
  timer_cv_.notify_all();
  reclaim_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
  if (reclaim_.joinable()) reclaim_.join();
  if (options_.read_only || !failure().is_ok() || !dirty_) return failure();
  return commit();
}

Status Pool::failure() const {
  std::lock_guard lock(failure_mutex_);
  return failure_;
}

Status Pool::fail(Status why) {
  {
    std::lock_guard lock(failure_mutex_);
    if (failure_.is_ok()) {
      failure_ = Status(why.code(), "pool is read-only after a failed commit: " + why.message());
      spdlog::critical("{}", failure_.message());
    }
  }
  return why;
}

// The chunk goes to the intent log like any change (replay adds it before the mappings
// that use it), so growing needs no commit.
Status Pool::grow_metadata() {
  auto chunk = chunks_->allocate_chunk(space::metadata, superblock_.metadata_profile);
  if (!chunk) return chunk.status();
  took_chunk(*chunk);
  log_chunk(*chunk);
  return Status::ok();
}

// The space maps follow a chunk added to the chunk map (allocated now, or replayed).
void Pool::took_chunk(const Chunk& chunk) {
  if (chunk.kind == space::metadata) {
    const std::uint64_t nr = chunks_->space_bytes(space::metadata) / metadata_block_size;
    metadata_sm_->grow(nr);
    metadata_sm_->set_reserve(metadata_reserve_for(nr));
  } else {
    data_sm_->grow(chunks_->space_bytes(space::data) / superblock_.data_block_size);
  }
  dirty_ = true;
}

// Device space a new data chunk must leave unallocated, so that the metadata space can
// still grow as far as one transaction may need without a commit.
//
// Copy-on-write: a transaction shadows every metadata block it changes, once, to a newly
// allocated block, and the old one comes back only at the commit. Random overwrites of a
// fully written volume reach every leaf within a few thousand writes, so a transaction
// may need as many free blocks as are in use, or as many as commit_if_needed lets it
// dirty (half the cache) if that is fewer. The metadata space must therefore be able to
// reach in_use + min(in_use, cache / 2), plus the reserve for commits and unmaps and
// ensure_metadata_headroom's margin; in_use counts the blocks referenced now, what the
// next transaction could shadow. Never less than one metadata chunk (invariant 4).
//
// Keeping only that one chunk let a fast sequential rewrite (frequent commits, each
// shadowing few leaves) hand the device to data while the metadata space was barely
// larger than its contents: 4k random overwrites of a fully written 1 GiB origin then
// committed every ~1,000 writes for want of metadata blocks, with ~95 MiB of data free.
// The cost: a fully written origin has ~13.5 MiB of metadata per GiB, so the room kept
// for it with `dup`'s two copies is ~54 MiB per GiB, within pool_file_size_for's allowance.
std::uint64_t Pool::metadata_room_to_keep() const {
  const std::uint64_t chunk = chunks_->chunk_size();
  const std::uint64_t stripes = stripe_count(superblock_.metadata_profile);
  const std::uint64_t in_use = metadata_sm_->nr_in_use();
  const std::uint64_t shadows = std::min(in_use, blocks_->capacity_blocks() / 2);
  std::uint64_t target = in_use + shadows;
  target += metadata_reserve_for(target) + 16;
  const std::uint64_t have = metadata_sm_->nr_blocks();
  const std::uint64_t per_chunk = chunk / metadata_block_size;
  const std::uint64_t chunks = target > have ? (target - have + per_chunk - 1) / per_chunk : 0;
  return std::max<std::uint64_t>(chunks, 1) * stripes * chunk;
}

Status Pool::grow_data() {
  auto chunk = chunks_->allocate_chunk(space::data, superblock_.data_profile, metadata_room_to_keep());
  if (!chunk) return chunk.status();
  took_chunk(*chunk);
  log_chunk(*chunk);
  return Status::ok();
}

std::vector<VolumeRecord> Pool::volumes() const {
  std::shared_lock lock(meta_mutex_);
  std::vector<VolumeRecord> out;
  for (const auto& [id, v] : volumes_)
    if (!v.record.deleted()) out.push_back(with_damage(v.record));
  return out;
}

Result<VolumeRecord> Pool::find_volume(std::string_view name) const {
  std::shared_lock lock(meta_mutex_);
  auto it = names_.find(name);
  if (it == names_.end()) return not_found("no volume named '" + std::string(name) + "'");
  return with_damage(volumes_.at(it->second).record);
}

Result<VolumeRecord> Pool::find_volume(std::uint64_t id) const {
  std::shared_lock lock(meta_mutex_);
  auto it = volumes_.find(id);
  if (it == volumes_.end() || it->second.record.deleted())
    return not_found("no volume with id " + std::to_string(id));
  return with_damage(it->second.record);
}

PoolStats Pool::stats() {
  std::shared_lock lock(meta_mutex_);
  PoolStats s;
  s.generation = superblock_.generation;
  s.data_block_size = superblock_.data_block_size;
  s.data_blocks = data_sm_->nr_blocks();
  s.data_blocks_free = data_sm_->nr_free();
  s.data_blocks_available = data_blocks_available();
  s.metadata_blocks = metadata_sm_->nr_blocks();
  s.metadata_blocks_free = metadata_sm_->nr_free();
  for (const auto& d : devices_) s.device_bytes += d->size();
  s.unallocated_bytes = chunks_->unallocated_bytes();
  s.cache = blocks_->stats();
  s.copies = chunks_->stats();
  s.commits = commits_;
  s.commit_us_total = commit_us_total_;
  s.last_commit_us = last_commit_us_;
  s.log_appends = log_appends_;
  s.log_bytes = log_bytes_;
  s.log_flushes = log_flushes_;
  s.log_replayed = log_replayed_;
  s.failure = failure().is_ok() ? "" : failure().message();
  s.read_only_reason = read_only_reason_;
  s.damage = open_problems_;
  {
    std::lock_guard lock(damage_mutex_);
    s.damage.insert(s.damage.end(), runtime_problems_.begin(), runtime_problems_.end());
    for (const auto& [id, why] : damaged_) {
      auto it = volumes_.find(id);
      const std::string name = it == volumes_.end() || it->second.record.deleted()
                                   ? "deleted volume " + std::to_string(id)
                                   : "volume '" + it->second.record.name + "'";
      s.damage.push_back(name + " is damaged: " + why);
    }
  }
  s.reclaim_pending_volumes = deleted_volumes_.size();
  for (std::uint64_t id : deleted_volumes_) s.reclaim_pending_blocks += volumes_.at(id).record.mapped_blocks;
  s.reclaim_released_blocks = reclaim_released_;
  return s;
}

}  // namespace snapstore
