// Unit tests for ctl/name_pattern.h: strftime expansion of snapshot names, in UTC.
#include "ctl/name_pattern.h"

#include <gtest/gtest.h>

namespace snapstore::ctl {
namespace {

// 2024-05-01 12:15:09 UTC, a Wednesday.
constexpr std::time_t may_first = 1714565709;

TEST(NamePattern, ExpandsStrftimeConversions) {
  EXPECT_EQ(expand_name_pattern("auto-%Y%m%d-%H%M", may_first, TimeZone::utc).value(),
            "auto-20240501-1215");
  EXPECT_EQ(expand_name_pattern("%F_%H.%M.%S", may_first, TimeZone::utc).value(),
            "2024-05-01_12.15.09");
  EXPECT_EQ(expand_name_pattern("week-%G-W%V", may_first, TimeZone::utc).value(), "week-2024-W18");
}

TEST(NamePattern, ANameWithoutConversionsIsTakenAsItIs) {
  EXPECT_EQ(expand_name_pattern("before-upgrade", may_first, TimeZone::utc).value(),
            "before-upgrade");
}

TEST(NamePattern, LocalTimeIsTheDefault) {
  auto local = expand_name_pattern("t%H%M", may_first);
  ASSERT_TRUE(local) << local.status().message();
  EXPECT_EQ(local->size(), 5u);
}

TEST(NamePattern, AnExpansionThatIsNoValidNameIsRefusedWithWhatItExpandedTo) {
  auto r = expand_name_pattern("snap %Y", may_first, TimeZone::utc);  // a space
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), errc::invalid_argument);
  EXPECT_NE(r.status().message().find("'snap 2024'"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("snap %Y"), std::string::npos) << r.status().message();

  for (const char* bad : {"auto-%c", "%%Y", "a/%Y", "-%Y", ".%Y", "%Y:%M", "x%"}) {
    SCOPED_TRACE(bad);
    auto refused = expand_name_pattern(bad, may_first, TimeZone::utc);
    EXPECT_FALSE(refused);
    EXPECT_EQ(refused.status().code(), errc::invalid_argument);
  }
}

TEST(NamePattern, InvalidPlainNamesAreRefusedToo) {
  for (const char* bad : {"", "with space", "-dash", ".dot", "slash/x"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(expand_name_pattern(bad, may_first, TimeZone::utc));
  }
}

TEST(NamePattern, TooLongExpansionsAreRefused) {
  std::string pattern;
  for (int i = 0; i < 40; ++i) pattern += "%Y";  // 160 bytes: over the 128-byte name limit
  EXPECT_FALSE(expand_name_pattern(pattern, may_first, TimeZone::utc));
  std::string huge;
  for (int i = 0; i < 300; ++i) huge += "%F";  // more than strftime's buffer
  auto r = expand_name_pattern(huge, may_first, TimeZone::utc);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("1023"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace snapstore::ctl
