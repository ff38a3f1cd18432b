// Paged data reference counts. See data_space_map.h.
#include "btree/data_space_map.h"

#include <algorithm>

namespace snapstore {

namespace {

constexpr std::uint64_t per_page = counts_per_refcount_page;

std::array<std::byte, data_sm_index_value_size> encode_entry(const BlockPointer& p,
                                                            std::uint32_t free) {
  std::array<std::byte, data_sm_index_value_size> v{};
  encode_pointer(v.data(), p);
  store_le32(v.data() + 24, free);
  return v;
}

}  // namespace

DataSpaceMap::DataSpaceMap(TransactionManager& tm, BlockPointer index_root,
                           std::uint64_t nr_blocks)
    : tm_(tm),
      index_(tm, ValueTraits{data_sm_index_value_size, nullptr, nullptr,
                             [this](std::span<std::byte> v) { return seal_page(v); }}),
      index_root_(index_root),
      nr_blocks_(0) {
  grow(nr_blocks);
}

Result<BlockPointer> DataSpaceMap::create_index(TransactionManager& tm) {
  BTree tree(tm, ValueTraits{data_sm_index_value_size, nullptr, nullptr, nullptr});
  return tree.create();
}

DataSpaceMap::PageEntry DataSpaceMap::unwritten_page() {
  PageEntry e;
  e.page = {no_page, 0, 0};
  return e;
}

std::uint32_t DataSpaceMap::blocks_in_page(std::uint64_t page) const {
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(per_page, nr_blocks_ - page * per_page));
}

void DataSpaceMap::grow(std::uint64_t nr_blocks) {
  if (nr_blocks <= nr_blocks_) return;
  const std::uint64_t old_pages = pages_.size();
  const std::uint64_t old_blocks = nr_blocks_;
  nr_blocks_ = nr_blocks;
  pages_.resize((nr_blocks + per_page - 1) / per_page, unwritten_page());
  freed_bits_.resize(nr_blocks, false);
  free_total_ += nr_blocks - old_blocks;
  // The last old page may have grown; new pages start all free.
  for (std::uint64_t p = old_pages ? old_pages - 1 : 0; p < pages_.size(); ++p) {
    const std::uint64_t first = p * per_page;
    const std::uint64_t added_from = std::max(first, old_blocks);
    const std::uint64_t end = std::min(first + per_page, nr_blocks);
    if (end > added_from) pages_[p].free += static_cast<std::uint32_t>(end - added_from);
    mark_entry_dirty(p);
  }
  no_runs_ = false;
}

void DataSpaceMap::mark_entry_dirty(std::uint64_t page) {
  if (pages_[page].entry_dirty) return;
  pages_[page].entry_dirty = true;
  dirty_entries_.push_back(page);
}

Status DataSpaceMap::load() {
  std::vector<PageEntry> found(pages_.size(), unwritten_page());
  std::uint64_t free_total = 0;
  Status st = index_.scan(index_root_, 0, ~0ull, [&](std::uint64_t page, std::span<const std::byte> v) {
    if (page < found.size()) {
      found[page].page = decode_pointer(v.data());
      found[page].free = load_le32(v.data() + 24);
    }
    return true;
  });
  if (!st) return st;
  for (std::uint64_t p = 0; p < found.size(); ++p) {
    if (found[p].page.block == no_page) found[p].free = blocks_in_page(p);
    if (found[p].free > blocks_in_page(p))
      return corruption("data space map page " + std::to_string(p) + " claims too many free blocks");
    free_total += found[p].free;
  }
  pages_ = std::move(found);
  free_total_ = free_total;
  dirty_entries_.clear();
  writable_pages_.clear();
  return Status::ok();
}

Status DataSpaceMap::verify_pages() {
  for (std::uint64_t p = 0; p < pages_.size(); ++p) {
    if (pages_[p].page.block == no_page) continue;
    if (auto page = tm_.read(pages_[p].page); !page)
      return Status(page.status().code(), "refcount page " + std::to_string(p) + ": " + page.status().message());
  }
  return Status::ok();
}

std::uint64_t DataSpaceMap::nr_free() const {
  return free_total_ - std::min<std::uint64_t>(free_total_, freed_list_.size());
}

Result<std::uint32_t> DataSpaceMap::count(std::uint64_t block) {
  if (block >= nr_blocks_) return corruption("data block " + std::to_string(block) + " beyond the data space");
  const PageEntry& e = pages_[block / per_page];
  if (e.page.block == no_page) return 0u;
  auto page = tm_.read(e.page);
  if (!page) return page.status();
  return load_le32((*page)->bytes + metadata_header_size + (block % per_page) * 4);
}

Result<MutableBlockRef> DataSpaceMap::writable_page(std::uint64_t page) {
  PageEntry& e = pages_[page];
  if (e.writable) return e.writable;  // refcount pages are never shared: still ours
  MutableBlockRef block;
  if (e.page.block == no_page) {
    auto fresh = tm_.new_block(metadata_type::refcount_page);
    if (!fresh) return fresh.status();
    block = *fresh;
    set_metadata_type(block->mutable_data(), metadata_type::refcount_page, static_cast<std::uint32_t>(page));
  } else {
    auto s = tm_.shadow(e.page);
    if (!s) return s.status();
    block = s->block;
  }
  e.page = tm_.pointer_to(*block);
  e.writable = block;
  writable_pages_.push_back(page);
  mark_entry_dirty(page);
  return block;
}

Status DataSpaceMap::adjust(std::uint64_t block, int delta) {
  if (block >= nr_blocks_) return corruption("data block " + std::to_string(block) + " beyond the data space");
  const std::uint64_t p = block / per_page;
  auto page = writable_page(p);
  if (!page) return page.status();
  std::byte* slot = (*page)->bytes + metadata_header_size + (block % per_page) * 4;
  const std::uint32_t before = load_le32(slot);
  if (delta < 0 && before == 0)
    return corruption("data block " + std::to_string(block) + " released more often than taken");
  const std::uint32_t after = before + static_cast<std::uint32_t>(delta);
  store_le32(slot, after);
  if (before == 0) {
    --pages_[p].free;
    --free_total_;
  }
  if (after == 0) {
    ++pages_[p].free;
    ++free_total_;
    if (!freed_bits_[block]) {
      freed_bits_[block] = true;
      freed_list_.push_back(block);
    }
  }
  return Status::ok();
}

Status DataSpaceMap::inc(std::uint64_t block) { return adjust(block, +1); }

Status DataSpaceMap::adopt(std::uint64_t block) {
  if (block >= nr_blocks_) return corruption("data block " + std::to_string(block) + " beyond the data space");
  if (freed_bits_[block]) return corruption("data block " + std::to_string(block) + " was released in this transaction");
  auto n = count(block);
  if (!n) return n.status();
  if (*n != 0) return corruption("data block " + std::to_string(block) + " is in use");
  return adjust(block, +1);
}
Status DataSpaceMap::dec(std::uint64_t block) { return adjust(block, -1); }

Result<std::vector<std::uint64_t>> DataSpaceMap::allocate_run(std::size_t want) {
  std::vector<std::uint64_t> out;
  if (no_runs_ || pages_.empty()) return out;
  const std::uint64_t need = std::min<std::uint64_t>(want, min_run);
  const std::uint64_t npages = pages_.size();
  if (stream_cursor_ >= nr_blocks_) stream_cursor_ = 0;
  for (std::uint64_t scanned = 0; scanned <= npages; ++scanned) {
    const std::uint64_t p = (stream_cursor_ / per_page + scanned) % npages;
    if (pages_[p].free < need) continue;
    BlockRef current;
    if (pages_[p].page.block != no_page) {
      auto page = tm_.read(pages_[p].page);
      if (!page) return page.status();
      current = *page;
    }
    auto is_free = [&](std::uint64_t i) {
      return !freed_bits_[p * per_page + i] &&
             (!current || load_le32(current->bytes + metadata_header_size + i * 4) == 0);
    };
    // The first run of free blocks at least `need` long (taking up to `want` of it).
    const std::uint64_t n = blocks_in_page(p);
    std::uint64_t i = scanned == 0 ? stream_cursor_ % per_page : 0;
    while (i < n) {
      while (i < n && !is_free(i)) ++i;
      std::uint64_t end = i;
      while (end < n && end - i < want && is_free(end)) ++end;
      if (end - i >= need) {
        auto page = writable_page(p);
        if (!page) return page.status();
        for (std::uint64_t k = i; k < end; ++k) {
          store_le32((*page)->bytes + metadata_header_size + k * 4, 1);
          out.push_back(p * per_page + k);
        }
        pages_[p].free -= static_cast<std::uint32_t>(end - i);
        free_total_ -= end - i;
        stream_cursor_ = p * per_page + end;
        return out;
      }
      i = end;
    }
  }
  no_runs_ = true;
  return out;
}

Result<std::vector<std::uint64_t>> DataSpaceMap::allocate(std::size_t want) {
  if (want >= run_threshold) {
    auto run = allocate_run(want);
    if (!run || !run->empty()) return run;
  }
  std::vector<std::uint64_t> out;
  const std::uint64_t npages = pages_.size();
  for (std::uint64_t scanned = 0; scanned <= npages && out.size() < want; ++scanned) {
    const std::uint64_t p = (cursor_ / per_page + scanned) % npages;
    if (pages_[p].free == 0) continue;
    // Find free blocks in this page, then take them all with one write to the page.
    const std::uint64_t start = scanned == 0 ? cursor_ % per_page : 0;
    BlockRef current;
    if (pages_[p].page.block != no_page) {
      auto page = tm_.read(pages_[p].page);
      if (!page) return page.status();
      current = *page;
    }
    const std::size_t before = out.size();
    for (std::uint64_t i = start; i < blocks_in_page(p) && out.size() < want; ++i) {
      const std::uint64_t b = p * per_page + i;
      if (current && load_le32(current->bytes + metadata_header_size + i * 4) != 0) continue;
      if (freed_bits_[b]) continue;
      out.push_back(b);
    }
    if (out.size() == before) continue;
    auto page = writable_page(p);
    if (!page) return page.status();
    for (std::size_t k = before; k < out.size(); ++k)
      store_le32((*page)->bytes + metadata_header_size + (out[k] % per_page) * 4, 1);
    pages_[p].free -= static_cast<std::uint32_t>(out.size() - before);
    free_total_ -= out.size() - before;
    cursor_ = out.back() + 1;
  }
  if (out.empty()) return no_space("no free data blocks");
  return out;
}

Status DataSpaceMap::flush_index() {
  std::sort(dirty_entries_.begin(), dirty_entries_.end());
  for (std::uint64_t p : dirty_entries_) {
    pages_[p].entry_dirty = false;
    if (pages_[p].page.block == no_page) continue;
    auto root = index_.insert(index_root_, p, encode_entry(pages_[p].page, pages_[p].free));
    if (!root) return root.status();
    index_root_ = *root;
  }
  dirty_entries_.clear();
  return Status::ok();
}

Status DataSpaceMap::seal_page(std::span<std::byte> value) {
  BlockPointer p = decode_pointer(value.data());
  MutableBlockRef page = tm_.blocks().dirty_block(p.block);
  if (!page) return Status::ok();
  const std::uint64_t number = read_header(page->data()).extra;
  if (number >= pages_.size()) return corruption("refcount page with a bad page number");
  p.checksum = seal_metadata_block(page->mutable_data(), p.block, tm_.generation());
  p.generation = tm_.generation();
  encode_pointer(value.data(), p);
  pages_[number].page = p;
  return Status::ok();
}

Result<BlockPointer> DataSpaceMap::seal() {
  auto root = index_.seal(index_root_);
  if (!root) return root.status();
  index_root_ = *root;
  return index_root_;
}

// What the transaction freed is reusable now; searching from the start again hands it
// out first, so overwrites land on blocks the backing file already holds instead of
// growing into holes (which costs the host file system an allocation each time).
void DataSpaceMap::end_transaction() {
  for (std::uint64_t b : freed_list_) freed_bits_[b] = false;
  if (!freed_list_.empty()) no_runs_ = false;
  freed_list_.clear();
  for (std::uint64_t p : writable_pages_) pages_[p].writable.reset();
  writable_pages_.clear();
  cursor_ = 0;
}

}  // namespace snapstore
