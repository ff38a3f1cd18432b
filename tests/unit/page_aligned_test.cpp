// PageAlignedBytes: alignment of small and large buffers, and the huge-page advice on large
// ones (page_aligned.h, invariants 1-3).
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "nbd/page_aligned.h"

namespace snapstore {
namespace {

std::uintptr_t address(const PageAlignedBytes& b) {
  return reinterpret_cast<std::uintptr_t>(b.data());
}

// The "THPeligible" line of the /proc/self/smaps entry holding `p`, or -1 if not found.
int thp_eligible(const void* p) {
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t from = 0, to = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> from >> dash >> to && dash == '-') {
      inside = from <= at && at < to;
      continue;
    }
    if (inside && line.rfind("THPeligible:", 0) == 0) return std::stoi(line.substr(12));
  }
  return -1;
}

bool transparent_huge_pages_offered() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(f, mode);
  return !mode.empty() && mode.find("[never]") == std::string::npos;
}

TEST(PageAlignedBytes, SmallBuffersStartOnAPage) {
  for (std::size_t size : {std::size_t{1}, std::size_t{4096}, std::size_t{65536}, huge_buffer_threshold - 1}) {
    PageAlignedBytes b(size);
    EXPECT_EQ(address(b) % 4096, 0u) << size;
  }
}

TEST(PageAlignedBytes, LargeBuffersStartOnAHugePageAndKeepTheirContentsWhenGrown) {
  PageAlignedBytes b(huge_buffer_threshold);
  EXPECT_EQ(address(b) % huge_page_size, 0u);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = std::byte(i * 7);
  b.resize(3 * huge_page_size + 4096);  // reallocates: the old bytes must move along
  EXPECT_EQ(address(b) % huge_page_size, 0u);
  for (std::size_t i = 0; i < huge_buffer_threshold; ++i)
    ASSERT_EQ(b[i], std::byte(i * 7)) << i;
  EXPECT_EQ(b.back(), std::byte{0});
}

TEST(PageAlignedBytes, LargeBuffersAreAdvisedForHugePages) {
  if (!transparent_huge_pages_offered()) GTEST_SKIP() << "transparent huge pages are off here";
  PageAlignedBytes big(std::size_t{1} << 20);
  const int eligible = thp_eligible(big.data());
  if (eligible < 0) GTEST_SKIP() << "this kernel's smaps has no THPeligible line";
  EXPECT_EQ(eligible, 1);
}

}  // namespace
}  // namespace snapstore
