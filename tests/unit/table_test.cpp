// Unit tests for ctl/table.h: snapshotctl's plain-text tables.
#include "ctl/table.h"

#include <gtest/gtest.h>

namespace snapstore::ctl {
namespace {

// A right-aligned column's header is right-aligned too, over its numbers.
TEST(Table, PadsColumnsToTheWidestCell) {
  EXPECT_EQ(format_table({{"NAME"}, {"SIZE", true}, {"RO"}},
                         {{"origin", "16.0 GiB", "no"}, {"s", "1 B", "yes"}}),
            "NAME        SIZE  RO\n"
            "origin  16.0 GiB  no\n"
            "s            1 B  yes\n");
}

TEST(Table, NoRowsIsJustTheHeader) {
  EXPECT_EQ(format_table({{"NAME"}, {"PARENT"}}, {}), "NAME  PARENT\n");
}

TEST(Table, NoTrailingSpacesEvenWhenTheLastColumnIsShort) {
  std::string t = format_table({{"A"}, {"LONGHEADER"}}, {{"x", ""}, {"yy", "z"}});
  EXPECT_EQ(t, "A   LONGHEADER\nx\nyy  z\n");
}

TEST(Table, ShortRowsGetEmptyCellsAndLongRowsAreCut) {
  EXPECT_EQ(format_table({{"A"}, {"B", true}}, {{"1"}, {"2", "3", "extra"}}),
            "A  B\n1\n2  3\n");
}

TEST(Table, YesNo) {
  EXPECT_EQ(yes_no(true), "yes");
  EXPECT_EQ(yes_no(false), "no");
}

}  // namespace
}  // namespace snapstore::ctl
