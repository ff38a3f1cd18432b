// Volume I/O on the pool: lookups, redirect-on-write, unmapping. See pool.h.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "volume/pool.h"

namespace snapstore {

namespace {

constexpr std::uint64_t blocks_per_region = 256;
// The most a write maps in one piece (write_blocks). The metadata headroom a piece asks
// for grows with it (ensure_metadata_headroom), and asking for a whole 32 MiB request's
// worth at once grew the metadata space of a new pool by two chunks that data could
// never use again (measured on 50 to 80 MiB origins: 256 -> 768 metadata blocks, against
// 256 -> 512 in 8 MiB pieces, with fewer commits).
constexpr std::uint64_t max_piece_bytes = 8 << 20;

}  // namespace

Status Pool::check_writable() const {
  if (options_.read_only)
    return read_only_error(read_only_reason_.empty() ? "the pool is open read-only" : read_only_reason_);
  return failure();
}

Result<Pool::VolumeState*> Pool::volume_state(std::uint64_t id) {
  auto it = volumes_.find(id);
  if (it == volumes_.end() || it->second.record.deleted())
    return not_found("volume " + std::to_string(id) + " does not exist (deleted?)");
  return &it->second;
}

std::mutex& Pool::region_mutex(std::uint64_t volume, std::uint64_t block) {
  const std::uint64_t h = (volume * 0x9e3779b97f4a7c15ull) ^ (block / blocks_per_region);
  return region_locks_[h % region_locks_.size()];
}

// Locks the regions of the first and last block of a request, in a fixed order.
Pool::RegionGuard Pool::lock_regions(std::uint64_t volume, std::uint64_t first, std::uint64_t last) {
  std::mutex* a = &region_mutex(volume, first);
  std::mutex* b = &region_mutex(volume, last);
  if (a > b) std::swap(a, b);
  RegionGuard g;
  g.first = std::unique_lock(*a);
  if (b != a) g.second = std::unique_lock(*b);
  return g;
}

Status Pool::lookup_range(VolumeState& v, std::uint64_t first, std::uint64_t count,
                          std::vector<Mapped>& out) {
  out.clear();
  return mappings_->scan(v.record.mapping, first, first + count,
                         [&](std::uint64_t key, std::span<const std::byte> value) {
                           out.push_back({key, decode_mapping(value)});
                           return true;
                         });
}

// Reads whole blocks [first, first + count) of a volume into out; the caller holds the
// metadata lock (shared) across the data reads (invariant 2). Runs of blocks that are
// consecutive on both sides go out as one range, all ranges in one chunk-map call.
Status Pool::read_blocks_locked(VolumeState& v, std::uint64_t first, std::uint64_t count,
                                std::byte* out) {
  const std::uint32_t bs = superblock_.data_block_size;
  thread_local std::vector<Mapped> mapped;
  thread_local std::vector<ChunkMap::Run> runs;
  thread_local std::vector<std::size_t> run_start;  // index into mapped of each run's first block
  if (Status st = lookup_range(v, first, count, mapped); !st) {
    note_damage(v.record.id, st);
    return st;
  }
  runs.clear();
  run_start.clear();
  const std::uint64_t per_chunk = chunks_->chunk_size() / bs;
  std::uint64_t next = first;  // first block not yet covered
  std::size_t i = 0;
  while (i < mapped.size()) {
    // A run of mapped blocks whose data blocks are consecutive and inside one chunk.
    std::size_t j = i + 1;
    while (j < mapped.size() && mapped[j].block == mapped[j - 1].block + 1 &&
           mapped[j].value.data_block == mapped[j - 1].value.data_block + 1 &&
           mapped[j].value.data_block % per_chunk != 0)
      ++j;
    const std::uint64_t start = mapped[i].block;
    std::memset(out + (next - first) * bs, 0, (start - next) * bs);
    runs.push_back({mapped[i].value.data_block * bs,
                    std::span<std::byte>(out + (start - first) * bs, (j - i) * bs)});
    run_start.push_back(i);
    next = start + (j - i);
    i = j;
  }
  std::memset(out + (next - first) * bs, 0, (first + count - next) * bs);
  Status st = chunks_->read_runs(space::data, runs, [&](std::size_t r, std::span<const std::byte> bytes) {
    const std::size_t k0 = run_start[r];
    for (std::size_t k = 0; k * bs < bytes.size(); ++k)
      if (data_checksum(bytes.subspan(k * bs, bs)) != mapped[k0 + k].value.checksum) return false;
    return true;
  });
  if (!st) {
    if (st.code() == errc::corruption)
      st = corruption("data of volume '" + v.record.name + "' in blocks " + std::to_string(first) + ".." +
                      std::to_string(first + count - 1) + " fails its checksum on every copy");
    note_damage(v.record.id, st);
    return st;
  }
  return Status::ok();
}

Status Pool::read(std::uint64_t volume, std::uint64_t offset, std::span<std::byte> out) {
  const std::uint32_t bs = superblock_.data_block_size;
  const std::uint64_t first = offset / bs;
  const std::uint64_t last = (offset + out.size() - 1) / bs;
  const std::uint64_t count = last - first + 1;
  std::shared_lock meta(meta_mutex_);
  auto v = volume_state(volume);
  if (!v) return v.status();
  if (offset % bs == 0 && out.size() % bs == 0)
    return read_blocks_locked(**v, first, count, out.data());
  std::vector<std::byte> whole(count * bs);
  SNAPSTORE_RETURN_IF_ERROR(read_blocks_locked(**v, first, count, whole.data()));
  std::memcpy(out.data(), whole.data() + offset % bs, out.size());
  return Status::ok();
}

// Takes up to `max` free data blocks, at least one, growing the data space when it runs
// out and the devices allow; no_space when there is not one. Metadata lock held
// exclusively.
Result<std::vector<std::uint64_t>> Pool::allocate_some_data(std::size_t max) {
  std::vector<std::uint64_t> got;
  while (got.size() < max) {
    if (data_sm_->nr_free() == 0 && !grow_data().is_ok()) break;
    auto more = data_sm_->allocate(max - got.size());
    if (!more) {
      if (more.status().code() != errc::no_space) {
        // Given back, but only reusable after a commit: mark the pool changed so the
        // next flush commits and frees them.
        if (!got.empty()) dirty_ = true;
        (void)release_data(got);
        return more.status();
      }
      if (!grow_data().is_ok()) break;
      continue;
    }
    got.insert(got.end(), more->begin(), more->end());
  }
  if (got.empty()) return no_space("the pool is full");
  dirty_ = true;
  request_early_commit_if_short();
  return got;
}

std::uint64_t Pool::data_blocks_available() const {
  const std::uint64_t unallocated = chunks_->unallocated_bytes();
  const std::uint64_t keep = metadata_room_to_keep();
  const std::uint64_t growable =
      unallocated > keep
          ? (unallocated - keep) / stripe_count(superblock_.data_profile) / superblock_.data_block_size
          : 0;
  return data_sm_->nr_free() + growable;
}

// Overwrites release their old blocks only at the next commit. Once more blocks wait for
// it than are still free (in the data space, or on the devices for it to grow into),
// commit now in the background while writes go on into the rest, rather than let
// writers run into ENOSPC and commit in the foreground. A pool with room to spare never
// gets here between timer commits.
void Pool::request_early_commit_if_short() {
  if (!options_.early_commit || early_commit_requested_.load(std::memory_order_relaxed)) return;
  const std::uint64_t released = data_sm_->nr_released();
  if (data_sm_->nr_free() >= released) return;
  if (data_blocks_available() >= released) return;
  early_commit_requested_ = true;
  std::lock_guard lock(timer_mutex_);
  timer_cv_.notify_all();
}

// Makes sure a remap of `data_blocks` blocks cannot run out of metadata half-way: the
// b-tree path and space-map pages it may shadow, above the reserve kept for commits.
Status Pool::ensure_metadata_headroom(std::uint64_t data_blocks) {
  const std::uint64_t need = metadata_sm_->reserve() + 16 + data_blocks / 16;
  if (metadata_sm_->nr_free() >= need) return Status::ok();
  if (grow_metadata().is_ok() && metadata_sm_->nr_free() >= need) return Status::ok();
  return no_space("metadata space is full");
}

Status Pool::release_data(const std::vector<std::uint64_t>& blocks) {
  for (std::uint64_t b : blocks) SNAPSTORE_RETURN_IF_ERROR(data_sm_->dec(b));
  return Status::ok();
}

// Writes data to freshly allocated blocks, one device write per run of consecutive blocks.
Status Pool::write_data_runs(const std::vector<std::uint64_t>& blocks,
                             std::span<const std::byte> data) {
  const std::uint32_t bs = superblock_.data_block_size;
  const std::uint64_t per_chunk = chunks_->chunk_size() / bs;
  std::size_t i = 0;
  while (i < blocks.size()) {
    std::size_t j = i + 1;
    while (j < blocks.size() && blocks[j] == blocks[j - 1] + 1 && blocks[j] % per_chunk != 0) ++j;
    SNAPSTORE_RETURN_IF_ERROR(
        chunks_->write(space::data, blocks[i] * bs, data.subspan(i * bs, (j - i) * bs)));
    i = j;
  }
  data_bytes_since_commit_ += data.size();
  return Status::ok();
}

// Points blocks [first, ...) of the volume at the new data blocks and releases the old ones.
Status Pool::remap(std::uint64_t volume, std::uint64_t first, const std::vector<std::uint64_t>& blocks,
                   std::span<const std::uint64_t> sums) {
  const std::uint32_t bs = superblock_.data_block_size;
  std::unique_lock meta(meta_mutex_);
  auto v = volume_state(volume);
  Status usable = v ? Status::ok() : v.status();
  if (usable && (first + blocks.size()) * bs > (*v)->record.size)  // shrunk meanwhile
    usable = invalid_argument("write beyond the end of volume '" + (*v)->record.name + "'");
  if (!usable) {
    (void)release_data(blocks);
    return usable;
  }
  SNAPSTORE_RETURN_IF_ERROR(map_blocks_locked(volume, **v, first, blocks, sums));
  log_map(volume, first, blocks, sums);
  return Status::ok();
}

Status Pool::map_blocks_locked(std::uint64_t volume, VolumeState& v, std::uint64_t first,
                               std::span<const std::uint64_t> blocks,
                               std::span<const std::uint64_t> sums) {
  if (blocks.empty()) return Status::ok();
  if (Status readable = check_mapping_change(volume, v, first, first + blocks.size() - 1, false); !readable) {
    for (std::uint64_t b : blocks) (void)data_sm_->dec(b);  // the new blocks go back, unused
    return readable;
  }
  std::array<std::byte, mapping_value_size> value{};
  std::vector<std::uint64_t> released;
  auto root = mappings_->insert_run(
      v.record.mapping, first, blocks.size(),
      [&](std::uint64_t i) {
        value = encode_mapping({blocks[i], sums[i]});
        return std::span<const std::byte>(value);
      },
      [&](std::uint64_t, std::span<const std::byte> old) {
        released.push_back(decode_mapping(old).data_block);
      });
  if (!root) return fail(root.status());  // the tree may be half-changed: stop writing
  v.record.mapping = *root;
  v.record.mapped_blocks += blocks.size() - released.size();
  mark_changed(volume, v);
  for (std::uint64_t old_block : released) {
    Status st = data_sm_->dec(old_block);
    if (!st) return fail(st);
  }
  return Status::ok();
}

// Fails a write of `count` blocks at `first` at once, before anything is written, when
// it could not fit even once every block it replaces had come back: when the pool has no
// block to start with (available now, or released in the open transaction and free at
// its commit), or fewer than `count` counting those of the range that only this volume
// holds (the write itself releases them). This is advisory: concurrent writes may still
// take the room meanwhile, or the metadata space grow into it, and the write then fails
// part-way, each of its blocks holding its old or its new data.
Status Pool::check_room(std::uint64_t volume, std::uint64_t first, std::uint64_t count) {
  std::shared_lock meta(meta_mutex_);
  const std::uint64_t coming = data_blocks_available() + data_sm_->nr_released();
  if (count <= coming) return Status::ok();
  auto v = volume_state(volume);
  if (!v) return v.status();
  auto replaced = exclusive_blocks((*v)->record.mapping, first, first + count);
  if (!replaced) return replaced.status();
  if (coming > 0 && count <= coming + *replaced) return Status::ok();
  return no_space("the pool is full: the write needs " + std::to_string(count) + " data blocks; " +
                  std::to_string(coming) + " are free or come back at the next commit, and " +
                  std::to_string(*replaced) + " of those it replaces would come back");
}

// Takes between 1 and `want` data blocks for a write and enters the write gate with them
// (the caller leaves it once they are mapped or given back): all `want` when there are
// that many (up to max_piece_bytes), else what there is. With none free it commits,
// which gives back what writes released (this write's earlier pieces among them), and
// tries again: at most once after a commit of its own (after another thread's commit it
// just tries again).
Result<std::vector<std::uint64_t>> Pool::take_data_blocks(std::size_t want) {
  const std::uint32_t bs = superblock_.data_block_size;
  bool committed = false;
  for (int attempt = 0;; ++attempt) {
    Status st = Status::ok();
    std::uint64_t commits_seen = 0;
    write_gate_.enter();
    {
      std::unique_lock meta(meta_mutex_);
      commits_seen = commits_;
      // The metadata room a piece asks for is for the blocks it can take, not for the
      // whole request: growing the metadata for more takes device space from the data.
      const std::uint64_t most = std::max<std::uint64_t>(max_piece_bytes / bs, 1);
      const std::uint64_t room = std::max<std::uint64_t>(data_blocks_available(), 1);
      const auto piece = static_cast<std::size_t>(std::min({std::uint64_t{want}, most, room}));
      st = ensure_metadata_headroom(piece);
      if (st) {
        auto got = allocate_some_data(piece);
        if (got) return got;
        st = got.status();
      }
    }
    write_gate_.leave();
    if (st.code() != errc::no_space || committed || attempt >= max_room_attempts) return st;
    auto made = make_room(commits_seen);
    if (!made) return made.status();
    committed = *made;
  }
}

// Writes a prefix of whole blocks out of place: takes up to data.size() / bs blocks,
// writes that many leading blocks of `data` to them, then maps them (releasing the blocks
// they replace). Returns how many blocks it wrote.
Result<std::size_t> Pool::write_piece(std::uint64_t volume, std::uint64_t first,
                                      std::span<const std::byte> data,
                                      std::span<const std::uint64_t> sums) {
  const std::uint32_t bs = superblock_.data_block_size;
  auto blocks = take_data_blocks(data.size() / bs);
  if (!blocks) return blocks.status();
  struct GatePass {  // from taking the blocks until they are mapped (or given back)
    WriteGate& gate;
    ~GatePass() { gate.leave(); }
  } pass{write_gate_};
  const std::size_t n = blocks->size();
  Status io = write_data_runs(*blocks, data.first(n * bs));
  if (!io) {
    std::unique_lock meta(meta_mutex_);
    (void)release_data(*blocks);
    return io;
  }
  SNAPSTORE_RETURN_IF_ERROR(remap(volume, first, *blocks, sums.first(n)));
  return n;
}

// Writes whole blocks: checksums them, then writes and maps them in pieces.
//
// Redirect-on-write needs a new block for every block written, and the blocks a write
// replaces come back only at the next commit. So a request goes in pieces: each piece
// takes as many blocks as are free, up to 8 MiB (max_piece_bytes), and is mapped before
// the next one takes its blocks, and when none are free a commit gives back what the
// earlier pieces replaced. A request then needs room
// for a piece at a time, not for all of itself beside all it replaces. Keeping room for
// the largest request instead (32 MiB) would cost every pool that much space, and more
// than the whole data space of the smallest ones. A crash between pieces leaves some
// blocks of the request new and some old (NBD allows it); each block is old or new
// whole, and the write gate keeps blocks taken but not yet mapped out of every commit.
Status Pool::write_blocks(std::uint64_t volume, std::uint64_t first, std::span<const std::byte> data) {
  const std::uint32_t bs = superblock_.data_block_size;
  const std::size_t count = data.size() / bs;
  // Checksums first, while the request's bytes are still in this core's cache.
  std::vector<std::uint64_t> sums(count);
  for (std::size_t i = 0; i < count; ++i) sums[i] = data_checksum(data.subspan(i * bs, bs));
  SNAPSTORE_RETURN_IF_ERROR(check_room(volume, first, count));
  for (std::size_t done = 0; done < count;) {
    auto n = write_piece(volume, first + done, data.subspan(done * bs),
                         std::span(sums).subspan(done));
    if (!n) return n.status();
    done += *n;
  }
  return Status::ok();
}

// A write found no room. Commits, unless a commit has completed since the write looked
// (it waits for one in progress, such as an early commit, which usually gives back
// plenty): then the write just tries again. Returns whether this call committed.
Result<bool> Pool::make_room(std::uint64_t commits_seen) {
  {
    std::lock_guard commit_lock(commit_mutex_);
    std::shared_lock meta(meta_mutex_);
    if (commits_ != commits_seen) {
      SNAPSTORE_RETURN_IF_ERROR(failure());
      return false;
    }
  }
  SNAPSTORE_RETURN_IF_ERROR(commit());
  return true;
}

// Before a change is acknowledged: durable with FUA; otherwise at least in the kernel
// (an intent log record), so that it survives the death of this process.
Status Pool::commit_if_needed(bool fua) {
  if (fua) return flush();
  if (blocks_->dirty_count() * 2 > blocks_->capacity_blocks()) return commit();
  return log_changes();
}

// Writes under the region locks of the request's ends, without a commit.
Status Pool::write_range(std::uint64_t volume, std::uint64_t offset,
                         std::span<const std::byte> data) {
  const std::uint32_t bs = superblock_.data_block_size;
  const std::uint64_t first = offset / bs;
  const std::uint64_t last = (offset + data.size() - 1) / bs;
  RegionGuard guard = lock_regions(volume, first, last);
  if (offset % bs == 0 && data.size() % bs == 0) return write_blocks(volume, first, data);
  return write_partial(volume, offset, data);
}

Status Pool::write(std::uint64_t volume, std::uint64_t offset, std::span<const std::byte> data,
                   bool fua) {
  Status st = check_writable();
  if (st) st = write_range(volume, offset, data);
  if (st) st = commit_if_needed(fua);
  return report_no_space(st, volume, "write", offset, data.size());
}

// Logs a no_space answer to a client (rate-limited: no_space_log_) with what the pool
// has left, and returns it unchanged; any other status passes through silently.
Status Pool::report_no_space(Status st, std::uint64_t volume, std::string_view request,
                             std::uint64_t offset, std::uint64_t length) {
  if (st.code() != errc::no_space) return st;
  std::uint64_t suppressed = 0;
  if (!no_space_log_.allow(suppressed)) return st;
  std::shared_lock meta(meta_mutex_);
  auto v = volumes_.find(volume);
  const std::string name =
      v == volumes_.end() ? std::to_string(volume) : "'" + v->second.record.name + "'";
  const std::string held_back =
      suppressed ? fmt::format(" ({} more refused since the last report)", suppressed) : "";
  spdlog::warn(
      "volume {}: {} of {} bytes at {} refused for want of space ({}); data blocks: {} free, "
      "{} available of {}, {} waiting for a commit; metadata blocks: {} free of {}{}",
      name, request, length, offset, st.message(), data_sm_->nr_free(), data_blocks_available(),
      data_sm_->nr_blocks(), data_sm_->nr_released(), metadata_sm_->nr_free(),
      metadata_sm_->nr_blocks(), held_back);
  return st;
}

// A write that starts or ends inside a block: read the old edges, merge, write whole blocks.
Status Pool::write_partial(std::uint64_t volume, std::uint64_t offset,
                           std::span<const std::byte> data) {
  const std::uint32_t bs = superblock_.data_block_size;
  const std::uint64_t first = offset / bs;
  const std::uint64_t last = (offset + data.size() - 1) / bs;
  const std::uint64_t count = last - first + 1;
  std::vector<std::byte> merged(count * bs);
  {
    std::shared_lock meta(meta_mutex_);
    auto v = volume_state(volume);
    if (!v) return v.status();
    SNAPSTORE_RETURN_IF_ERROR(read_blocks_locked(**v, first, 1, merged.data()));
    if (count > 1)
      SNAPSTORE_RETURN_IF_ERROR(read_blocks_locked(**v, last, 1, merged.data() + (count - 1) * bs));
  }
  std::memcpy(merged.data() + offset % bs, data.data(), data.size());
  return write_blocks(volume, first, merged);
}

// Drops the mappings of whole blocks [first, end) and releases their data.
Status Pool::unmap_blocks(std::uint64_t volume, std::uint64_t first, std::uint64_t end) {
  std::unique_lock meta(meta_mutex_);
  return unmap_blocks_locked(volume, first, end);
}

Status Pool::unmap_blocks_locked(std::uint64_t volume, std::uint64_t first, std::uint64_t end) {
  auto v = volume_state(volume);
  if (!v) return v.status();
  if (first < end) SNAPSTORE_RETURN_IF_ERROR(check_mapping_change(volume, **v, first, end - 1, true));
  ReserveScope reserve(*tm_);  // unmapping gives space back: it may use the reserve
  Status released = Status::ok();
  std::uint64_t removed = 0;
  auto root = mappings_->remove_range((*v)->record.mapping, first, end,
                                      [&](std::uint64_t, std::span<const std::byte> value) {
                                        ++removed;
                                        if (released)
                                          released = data_sm_->dec(decode_mapping(value).data_block);
                                      });
  if (!root) return fail(root.status());
  (*v)->record.mapping = *root;
  (*v)->record.mapped_blocks -= std::min(removed, (*v)->record.mapped_blocks);
  mark_changed(volume, **v);
  if (!released) return fail(released);
  log_unmap(volume, first, end);
  return Status::ok();
}

Status Pool::unmap(std::uint64_t volume, std::uint64_t offset, std::uint64_t length, bool fua,
                   bool edges_required) {
  Status st = check_writable();
  if (st) st = unmap_range(volume, offset, length, edges_required);
  if (st) st = commit_if_needed(fua);
  return report_no_space(st, volume, "unmap", offset, length);
}

// Unmaps under the region locks of the range's ends, without a commit.
Status Pool::unmap_range(std::uint64_t volume, std::uint64_t offset, std::uint64_t length,
                         bool edges_required) {
  const std::uint32_t bs = superblock_.data_block_size;
  const std::uint64_t end = offset + length;
  const std::uint64_t whole_first = (offset + bs - 1) / bs;
  const std::uint64_t whole_end = end / bs;
  RegionGuard guard = lock_regions(volume, offset / bs, (end - 1) / bs);
  // Whole blocks first: that gives space back even on a full pool.
  if (whole_first < whole_end) SNAPSTORE_RETURN_IF_ERROR(unmap_blocks(volume, whole_first, whole_end));
  // Partial edge blocks are zeroed (they keep their other bytes); that needs a new block.
  Status edges = Status::ok();
  const std::uint64_t head_end = std::min(end, whole_first * bs);
  if (offset < head_end) edges = write_partial(volume, offset, std::vector<std::byte>(head_end - offset));
  const std::uint64_t tail_start = std::max(offset, whole_end * bs);
  if (edges && tail_start < end && tail_start >= head_end)
    edges = write_partial(volume, tail_start, std::vector<std::byte>(end - tail_start));
  if (!edges && (edges_required || edges.code() != errc::no_space)) return edges;
  return Status::ok();
}

// Writes zeroes in steps of at most 8 MiB (the buffer of zeroes), each in pieces as any
// write (write_blocks); a request that cannot fit fails before the first (check_room).
Status Pool::write_zeroes(std::uint64_t volume, std::uint64_t offset, std::uint64_t length,
                          bool fua) {
  const std::uint32_t bs = superblock_.data_block_size;
  Status st = check_writable();
  if (st) st = check_room(volume, offset / bs, (offset + length - 1) / bs - offset / bs + 1);
  const std::uint64_t step_max = 8ull << 20;
  const std::vector<std::byte> zeroes(st ? std::min(length, step_max) : 0);
  for (std::uint64_t done = 0; st && done < length;) {
    const std::uint64_t step = std::min(length - done, step_max);
    st = write_range(volume, offset + done, {zeroes.data(), step});
    if (st) st = commit_if_needed(false);
    done += step;
  }
  if (st) st = commit_if_needed(fua);
  return report_no_space(st, volume, "write of zeroes", offset, length);
}

Result<std::vector<Extent>> Pool::block_status(std::uint64_t volume, std::uint64_t offset,
                                               std::uint64_t length) {
  const std::uint32_t bs = superblock_.data_block_size;
  const std::uint64_t end = offset + length;
  const std::uint64_t first = offset / bs;
  const std::uint64_t last = (end - 1) / bs;
  std::vector<Mapped> mapped;
  {
    std::shared_lock meta(meta_mutex_);
    auto v = volume_state(volume);
    if (!v) return v.status();
    if (Status st = lookup_range(**v, first, last - first + 1, mapped); !st) {
      note_damage(volume, st);
      return st;
    }
  }
  std::vector<Extent> extents;
  auto add = [&](std::uint64_t from, std::uint64_t to, std::uint32_t flags) {
    from = std::max(from, offset);
    to = std::min(to, end);
    if (from >= to) return;
    if (!extents.empty() && extents.back().flags == flags)
      extents.back().length += to - from;
    else
      extents.push_back({to - from, flags});
  };
  std::uint64_t pos = first;
  for (const Mapped& m : mapped) {
    add(pos * bs, m.block * bs, extent_hole | extent_zero);
    add(m.block * bs, (m.block + 1) * bs, 0);
    pos = m.block + 1;
  }
  add(pos * bs, end, extent_hole | extent_zero);
  return extents;
}

}  // namespace snapstore
