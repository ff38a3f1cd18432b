// In-memory metadata reference counts and their fixed-point commit. See the header.
#include "btree/metadata_space_map.h"

#include <bit>

namespace snapstore {

namespace {

constexpr std::uint64_t no_block = ~std::uint64_t{0};

}  // namespace

MetadataSpaceMap::MetadataSpaceMap(std::uint64_t nr_blocks) { grow(nr_blocks); }

std::uint64_t MetadataSpaceMap::page_count() const {
  return (counts_.size() + counts_per_refcount_page - 1) / counts_per_refcount_page;
}

std::uint64_t MetadataSpaceMap::index_page_count() const {
  return (page_count() + entries_per_index_page - 1) / entries_per_index_page;
}

void MetadataSpaceMap::grow(std::uint64_t nr_blocks) {
  const std::uint64_t old = counts_.size();
  if (nr_blocks <= old) return;
  counts_.resize(nr_blocks, 0);
  freed_.resize(nr_blocks, false);
  avail_.resize((nr_blocks + 63) / 64, 0);
  for (std::uint64_t b = old; b < nr_blocks; ++b) update_avail(b);
  nr_free_ += nr_blocks - old;
  page_location_.resize(page_count(), {no_block, 0});
  index_location_.resize(index_page_count(), {no_block, 0});
  for (std::uint64_t b = old; b < nr_blocks; b += counts_per_refcount_page) touch(b);
  touch(nr_blocks - 1);
}

void MetadataSpaceMap::set_count(std::uint64_t block, std::uint32_t value) {
  counts_[block] = value;
  update_avail(block);
  touch(block);
}

void MetadataSpaceMap::update_avail(std::uint64_t block) {
  const std::uint64_t bit = std::uint64_t{1} << (block % 64);
  if (counts_[block] == 0 && !freed_[block])
    avail_[block / 64] |= bit;
  else
    avail_[block / 64] &= ~bit;
}

// The first allocatable block at or after the cursor (wrapping), a word of the bitmap at
// a time.
Result<std::uint64_t> MetadataSpaceMap::allocate(bool use_reserve) {
  if (nr_free_ == 0 || (!use_reserve && nr_free_ <= reserve_))
    return no_space("metadata space is full");
  const std::uint64_t n = counts_.size();
  const std::uint64_t words = avail_.size();
  const std::uint64_t start = cursor_ < n ? cursor_ : 0;
  for (std::uint64_t k = 0; k <= words; ++k) {
    const std::uint64_t w = (start / 64 + k) % words;
    std::uint64_t bits = avail_[w];
    if (k == 0) bits &= ~std::uint64_t{0} << (start % 64);  // below the cursor: the last pass
    if (bits == 0) continue;
    const std::uint64_t b = w * 64 + static_cast<std::uint64_t>(std::countr_zero(bits));
    if (b >= n) continue;
    set_count(b, 1);
    --nr_free_;
    cursor_ = b + 1;
    return b;
  }
  return no_space("metadata space is full");
}

void MetadataSpaceMap::inc(std::uint64_t block) {
  if (counts_[block] == 0 && !freed_[block]) --nr_free_;
  set_count(block, counts_[block] + 1);
}

std::uint32_t MetadataSpaceMap::dec(std::uint64_t block) {
  if (counts_[block] == 0) return 0;  // the checker reports such double frees
  set_count(block, counts_[block] - 1);
  if (counts_[block] == 0) {
    freed_[block] = true;
    freed_list_.push_back(block);
    update_avail(block);
  }
  return counts_[block];
}

void MetadataSpaceMap::end_transaction() {
  for (std::uint64_t b : freed_list_) {
    freed_[b] = false;
    update_avail(b);
    if (counts_[b] == 0) ++nr_free_;
  }
  freed_list_.clear();
  cursor_ = 0;  // reuse what was freed first: metadata stays compact
  dirty_pages_.clear();
  dirty_index_pages_.clear();
}

Result<MetadataSpaceMap> MetadataSpaceMap::load(BlockManager& blocks,
                                                const std::vector<SmIndexPointer>& index,
                                                std::uint64_t nr_blocks) {
  MetadataSpaceMap sm(nr_blocks);
  if (index.size() != sm.index_page_count())
    return corruption("metadata space map index has " + std::to_string(index.size()) +
                      " pages; the metadata space needs " + std::to_string(sm.index_page_count()));
  sm.nr_free_ = 0;
  for (std::uint64_t i = 0; i < index.size(); ++i) {
    auto page = blocks.read({index[i].block, index[i].checksum, 0});
    if (!page) return page.status();
    auto h = read_header((*page)->data());
    if (h.type != metadata_type::sm_index_page || h.extra != i)
      return corruption("metadata space map index page " + std::to_string(i) + " is misplaced");
    sm.index_location_[i] = index[i];
    for (std::uint64_t e = 0; e < entries_per_index_page; ++e) {
      const std::uint64_t p = i * entries_per_index_page + e;
      if (p >= sm.page_count()) break;
      const std::byte* entry = (*page)->bytes + metadata_header_size + e * 24;
      SmIndexPointer loc{load_le64(entry), load_le64(entry + 8)};
      auto rc = blocks.read({loc.block, loc.checksum, 0});
      if (!rc) return rc.status();
      auto rh = read_header((*rc)->data());
      if (rh.type != metadata_type::refcount_page || rh.extra != p)
        return corruption("metadata refcount page " + std::to_string(p) + " is misplaced");
      sm.page_location_[p] = loc;
      for (std::uint64_t k = 0; k < counts_per_refcount_page; ++k) {
        const std::uint64_t b = p * counts_per_refcount_page + k;
        if (b >= nr_blocks) break;
        sm.counts_[b] = load_le32((*rc)->bytes + metadata_header_size + k * 4);
        sm.update_avail(b);
        if (sm.counts_[b] == 0) ++sm.nr_free_;
      }
    }
  }
  sm.dirty_pages_.clear();
  return sm;
}

Result<std::vector<SmIndexPointer>> MetadataSpaceMap::commit(BlockManager& blocks,
                                                             std::uint64_t gen) {
  // Phase 1: give every dirty page (and its index page) a new location until nothing new
  // becomes dirty. Each page moves at most once per commit, so this terminates.
  std::set<std::uint64_t> moved_pages, moved_index;
  for (;;) {
    bool changed = false;
    for (std::uint64_t p : std::set<std::uint64_t>(dirty_pages_)) {
      if (moved_pages.count(p)) continue;
      auto b = allocate(/*use_reserve=*/true);
      if (!b) return b.status();
      if (page_location_[p].block != no_block) dec(page_location_[p].block);
      page_location_[p] = {*b, 0};
      moved_pages.insert(p);
      dirty_index_pages_.insert(p / entries_per_index_page);
      changed = true;
    }
    for (std::uint64_t i : std::set<std::uint64_t>(dirty_index_pages_)) {
      if (moved_index.count(i)) continue;
      auto b = allocate(/*use_reserve=*/true);
      if (!b) return b.status();
      if (index_location_[i].block != no_block) dec(index_location_[i].block);
      index_location_[i] = {*b, 0};
      moved_index.insert(i);
      changed = true;
    }
    if (!changed) break;
  }
  // Phase 2: write the pages from the final counts, then the index pages.
  for (std::uint64_t p : moved_pages) {
    MutableBlockRef page = blocks.create(page_location_[p].block);
    set_metadata_type(page->mutable_data(), metadata_type::refcount_page, static_cast<std::uint32_t>(p));
    for (std::uint64_t k = 0; k < counts_per_refcount_page; ++k) {
      const std::uint64_t b = p * counts_per_refcount_page + k;
      if (b >= counts_.size()) break;
      store_le32(page->bytes + metadata_header_size + k * 4, counts_[b]);
    }
    page_location_[p].checksum = seal_metadata_block(page->mutable_data(), page->number, gen);
  }
  for (std::uint64_t i : moved_index) {
    MutableBlockRef page = blocks.create(index_location_[i].block);
    set_metadata_type(page->mutable_data(), metadata_type::sm_index_page, static_cast<std::uint32_t>(i));
    for (std::uint64_t e = 0; e < entries_per_index_page; ++e) {
      const std::uint64_t p = i * entries_per_index_page + e;
      if (p >= page_count()) break;
      std::byte* entry = page->bytes + metadata_header_size + e * 24;
      store_le64(entry, page_location_[p].block);
      store_le64(entry + 8, page_location_[p].checksum);
    }
    index_location_[i].checksum = seal_metadata_block(page->mutable_data(), page->number, gen);
  }
  return index_location_;
}

}  // namespace snapstore
