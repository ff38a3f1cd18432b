// Plain-text tables for snapshotctl's human output.
//
//   NAME        SIZE  RO
//   origin  16.0 GiB  no
//
// Columns are separated by two spaces and padded to their widest cell; right-aligned
// columns (numbers) pad on the left, their header too. No trailing spaces; every line ends in '\n'. A table
// with no rows is just its header. Pure.
#pragma once

#include <string>
#include <vector>

namespace snapstore::ctl {

struct Column {
  std::string header;
  bool right = false;
};

using Row = std::vector<std::string>;

// Rows shorter than the header get empty cells; longer ones are cut to the header.
std::string format_table(const std::vector<Column>& columns, const std::vector<Row>& rows);

std::string yes_no(bool b);

}  // namespace snapstore::ctl
