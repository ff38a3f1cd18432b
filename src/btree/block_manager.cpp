// Metadata block cache. See block_manager.h.
#include "btree/block_manager.h"

#include <algorithm>
#include <cstring>

namespace snapstore {

namespace {

constexpr std::size_t max_spare_blocks = 256;

}  // namespace

BlockManager::BlockManager(ChunkMap& chunks, std::uint64_t cache_bytes)
    : chunks_(chunks), capacity_(std::max<std::uint64_t>(cache_bytes / metadata_block_size, 64)) {}

Result<BlockRef> BlockManager::read(const BlockExpectation& want) {
  {
    std::lock_guard lock(mutex_);
    if (auto d = dirty_.find(want.block); d != dirty_.end()) {
      ++hits_;
      return BlockRef(d->second);
    }
    if (auto c = clean_.find(want.block); c != clean_.end()) {
      ++hits_;
      lru_.splice(lru_.begin(), lru_, c->second);
      MutableBlockRef b = *c->second;
      if (read_header(b->data()).checksum != want.checksum ||
          (want.generation && read_header(b->data()).generation != want.generation))
        return corruption("metadata block " + std::to_string(want.block) +
                          " does not match the pointer to it");
      return BlockRef(b);
    }
    ++misses_;
  }
  auto block = take_block(want.block, /*zero=*/false);
  Status st = chunks_.read(space::metadata, want.block * metadata_block_size,
                           block->mutable_data(), [&](std::span<const std::byte> bytes) {
                             return metadata_block_valid(bytes, want);
                           });
  if (!st.is_ok()) {
    if (st.code() == errc::corruption)
      return corruption("metadata block " + std::to_string(want.block) +
                        " is damaged on every copy");
    return st;
  }
  std::lock_guard lock(mutex_);
  if (auto c = clean_.find(want.block); c != clean_.end()) return BlockRef(*c->second);
  insert_clean(block);
  return BlockRef(block);
}

MutableBlockRef BlockManager::take_block(std::uint64_t number, bool zero) {
  MutableBlockRef b;
  {
    std::lock_guard lock(mutex_);
    if (!spare_.empty()) {
      b = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  if (!b) return std::make_shared<CachedBlock>(number);
  b->number = number;
  b->dirty = false;
  if (zero) std::memset(b->bytes, 0, metadata_block_size);
  return b;
}

void BlockManager::recycle(MutableBlockRef b) {
  // Only the cache holds it: nobody can see it change.
  if (b.use_count() == 1 && spare_.size() < max_spare_blocks) spare_.push_back(std::move(b));
}

void BlockManager::insert_clean(const MutableBlockRef& b) {
  lru_.push_front(b);
  clean_[b->number] = lru_.begin();
  evict_if_needed();
}

void BlockManager::evict_if_needed() {
  while (clean_.size() + dirty_.size() > capacity_ && !lru_.empty()) {
    clean_.erase(lru_.back()->number);
    recycle(std::move(lru_.back()));
    lru_.pop_back();
  }
}

MutableBlockRef BlockManager::create(std::uint64_t number) {
  auto block = take_block(number, /*zero=*/true);
  block->dirty = true;
  std::lock_guard lock(mutex_);
  if (auto c = clean_.find(number); c != clean_.end()) {
    lru_.erase(c->second);
    clean_.erase(c);
  }
  dirty_[number] = block;
  evict_if_needed();
  return block;
}

MutableBlockRef BlockManager::dirty_block(std::uint64_t number) {
  std::lock_guard lock(mutex_);
  auto d = dirty_.find(number);
  return d == dirty_.end() ? nullptr : d->second;
}

bool BlockManager::is_dirty(std::uint64_t number) {
  std::lock_guard lock(mutex_);
  return dirty_.count(number) != 0;
}

void BlockManager::discard_dirty(std::uint64_t number) {
  std::lock_guard lock(mutex_);
  if (auto d = dirty_.find(number); d != dirty_.end()) {
    MutableBlockRef b = std::move(d->second);
    dirty_.erase(d);
    recycle(std::move(b));
  }
}

void BlockManager::forget(std::uint64_t number) {
  std::lock_guard lock(mutex_);
  dirty_.erase(number);
  if (auto c = clean_.find(number); c != clean_.end()) {
    lru_.erase(c->second);
    clean_.erase(c);
  }
}

std::vector<MutableBlockRef> BlockManager::dirty_blocks() {
  std::lock_guard lock(mutex_);
  std::vector<MutableBlockRef> out;
  out.reserve(dirty_.size());
  for (auto& [n, b] : dirty_) out.push_back(b);
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a->number < b->number; });
  return out;
}

Status BlockManager::write_dirty() {
  // Runs of consecutive blocks inside one chunk go out as one device write.
  const std::vector<MutableBlockRef> dirty = dirty_blocks();
  const std::uint64_t per_chunk = chunks_.chunk_size() / metadata_block_size;
  std::vector<std::byte>& run = run_;
  std::size_t i = 0;
  while (i < dirty.size()) {
    std::size_t j = i + 1;
    while (j < dirty.size() && j - i < 256 && dirty[j]->number == dirty[j - 1]->number + 1 &&
           dirty[j]->number % per_chunk != 0)
      ++j;
    const std::uint64_t offset = dirty[i]->number * metadata_block_size;
    if (j - i == 1) {
      SNAPSTORE_RETURN_IF_ERROR(chunks_.write(space::metadata, offset, dirty[i]->data()));
    } else {
      run.resize((j - i) * metadata_block_size);
      for (std::size_t k = i; k < j; ++k)
        std::memcpy(run.data() + (k - i) * metadata_block_size, dirty[k]->bytes, metadata_block_size);
      SNAPSTORE_RETURN_IF_ERROR(chunks_.write(space::metadata, offset, run));
    }
    i = j;
  }
  std::lock_guard lock(mutex_);
  for (auto& [n, b] : dirty_) {
    b->dirty = false;
    lru_.push_front(b);
    clean_[n] = lru_.begin();
  }
  dirty_.clear();
  evict_if_needed();
  return Status::ok();
}

void BlockManager::drop_dirty() {
  std::lock_guard lock(mutex_);
  dirty_.clear();
}

CacheStats BlockManager::stats() {
  std::lock_guard lock(mutex_);
  return {hits_, misses_, clean_.size() + dirty_.size(), dirty_.size(), capacity_};
}

std::uint64_t BlockManager::dirty_count() {
  std::lock_guard lock(mutex_);
  return dirty_.size();
}

}  // namespace snapstore
