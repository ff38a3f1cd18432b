// Size and address parsing. See size_parse.h.
#include "daemon/size_parse.h"

#include <cctype>
#include <charconv>
#include <cstdio>

namespace snapstore {

namespace {

int shift_for_suffix(std::string_view s) {
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.empty() || lower == "b") return 0;
  static constexpr std::pair<char, int> units[] = {{'k', 10}, {'m', 20}, {'g', 30}, {'t', 40}, {'p', 50}};
  for (auto [letter, shift] : units) {
    if (lower[0] != letter) continue;
    std::string_view rest = std::string_view(lower).substr(1);
    if (rest.empty() || rest == "b" || rest == "ib") return shift;
  }
  return -1;
}

}  // namespace

Result<std::uint64_t> parse_size(std::string_view text) {
  auto bad = [&](std::string why) {
    return invalid_argument("bad size '" + std::string(text) + "': " + why);
  };
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) return bad("too large");
  if (ec != std::errc() || end == text.data()) return bad("expected a number such as 16G");
  int shift = shift_for_suffix(std::string_view(end, text.data() + text.size() - end));
  if (shift < 0) return bad("unknown unit (use K, M, G, T or P)");
  if (value == 0) return bad("must be greater than zero");
  if (shift > 0 && value > (UINT64_MAX >> shift)) return bad("too large");
  return value << shift;
}

std::string format_size(std::uint64_t bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int unit = 0;
  double v = static_cast<double>(bytes);
  while (v >= 1024 && unit < 5) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", v, units[unit]);
  return buf;
}

Result<HostPort> parse_host_port(std::string_view text) {
  auto bad = [&](std::string why) {
    return invalid_argument("bad address '" + std::string(text) + "': " + why);
  };
  HostPort hp;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("expected [IPv6]:PORT");
    hp.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("expected HOST:PORT");
    hp.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (hp.host.empty()) return bad("missing host");
  if (hp.host == "localhost") hp.host = "127.0.0.1";
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535)
    return bad("port must be a number from 0 to 65535");
  hp.port = static_cast<std::uint16_t>(port);
  return hp;
}

}  // namespace snapstore
