// Plain-text tables. See table.h.
#include "ctl/table.h"

#include <algorithm>

namespace snapstore::ctl {

std::string format_table(const std::vector<Column>& columns, const std::vector<Row>& rows) {
  std::vector<std::size_t> width(columns.size());
  for (std::size_t i = 0; i < columns.size(); ++i) width[i] = columns[i].header.size();
  for (const Row& row : rows)
    for (std::size_t i = 0; i < columns.size() && i < row.size(); ++i)
      width[i] = std::max(width[i], row[i].size());

  std::string out;
  auto line = [&](auto cell) {
    std::string text;
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const std::string& c = cell(i);
      const std::string pad(width[i] - c.size(), ' ');
      if (i > 0) text += "  ";
      text += columns[i].right ? pad + c : c + pad;
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + '\n';
  };
  line([&](std::size_t i) -> const std::string& { return columns[i].header; });
  static const std::string empty;
  for (const Row& row : rows)
    line([&](std::size_t i) -> const std::string& { return i < row.size() ? row[i] : empty; });
  return out;
}

std::string yes_no(bool b) {
  return b ? "yes" : "no";
}

}  // namespace snapstore::ctl
